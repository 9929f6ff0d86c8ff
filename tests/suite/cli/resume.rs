//! Resume after a crash: replay exactly once.

use super::{only_run_dir, wait_for_journal};
use crate::support::Test;

/// A deployment of three steps; step `kill_at` kills the runner (SIGKILL) the first time it runs.
fn crash_script(kill_at: usize) -> String {
    let mut s = String::from(
        "if !confirm(\"Proceed to production?\") { decline(\"no\"); }\nstage(\"Deploy\", || {\n",
    );
    for k in 1..=3 {
        let kill = if k == kill_at {
            format!("; [ -f killed-{k} ] || {{ touch killed-{k}; kill -9 $PPID; }}")
        } else {
            String::new()
        };
        s.push_str(&format!("    sh(\"echo x >> ran-{k}{kill}\");\n    on_rollback(\"undo {k}\", \"echo u >> undone-{k}\");\n"));
    }
    s.push_str("});\nsh(\"touch finished\");\n");
    s
}

fn lines(dir: &std::path::Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join(file))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn resume_after_sigkill_at_each_effect_replays_what_completed_exactly_once() {
    for kill_at in 1..=3 {
        for choice in ["rerun", "skip"] {
            let first = Test::new()
                .script(&crash_script(kill_at))
                .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "yes")
                .run();
            assert_eq!(
                first.code, -1,
                "killed by SIGKILL at step {kill_at}: {}",
                first.stderr
            );
            let dir = first.dir.clone();
            let resumed = first
                .again()
                .env("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", choice)
                .args(&["resume"])
                .run();
            resumed.code(0);
            assert!(
                dir.join("finished").exists(),
                "{kill_at}/{choice}: {}",
                resumed.stdout
            );
            for k in 1..=3 {
                let want = if k == kill_at && choice == "rerun" {
                    2
                } else {
                    1
                };
                assert_eq!(
                    lines(&dir, &format!("ran-{k}")),
                    want,
                    "step {k}, killed at {kill_at}, {choice}\n{}",
                    resumed.stdout
                );
            }
            // The answer given before the crash came from the environment, which the resumed run
            // does not have: it completed (exit 0, not 2) because the answer was replayed.
            assert!(
                resumed.stdout.contains(&format!(
                    "in flight when the run died: sh `echo x >> ran-{kill_at}"
                )),
                "{}",
                resumed.stdout
            );
            let v = resumed
                .again()
                .args(&["verify", &only_run_dir(&dir).display().to_string()])
                .run();
            v.code(0);
        }
    }
}

#[test]
fn resume_with_nobody_to_ask_rolls_back_by_default_and_refuses_a_changed_script() {
    let first = Test::new()
        .script(&crash_script(2))
        .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "yes")
        .run();
    assert_eq!(first.code, -1);
    let dir = first.dir.clone();
    // The script changed: refused.
    std::fs::write(
        dir.join("deploy.rhai"),
        crash_script(2) + "sh(\"echo new step\");\n",
    )
    .unwrap();
    let refused = first.again().args(&["resume"]).run();
    refused.code(2);
    assert!(
        refused
            .stderr
            .starts_with("error: the script changed since the run in `deployments/"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("run `runbook resume --force` to go on anyway"),
        "{}",
        refused.stderr
    );
    std::fs::write(dir.join("deploy.rhai"), crash_script(2)).unwrap();
    // Nobody to ask about the step in flight: `resume.in_flight` (rollback) decides.
    let out = refused.again().args(&["resume"]).run();
    out.code(3);
    assert_eq!(lines(&dir, "ran-1"), 1);
    assert_eq!(lines(&dir, "ran-2"), 1);
    assert_eq!(
        lines(&dir, "undone-1"),
        1,
        "the undo registered before the crash ran"
    );
    assert!(!dir.join("finished").exists());
    assert!(out.stdout.contains("in flight when the run died: sh `echo x >> ran-2; [ -f killed-2 ] || { touch killed-2; kill -9 $PPID; }`: rollback"), "{}", out.stdout);
    // Finished now: nothing more to resume.
    let again = out.again().args(&["resume"]).run();
    again.code(2);
    assert!(
        again
            .stderr
            .starts_with("error: nothing to resume: no unfinished run under `deployments`"),
        "{}",
        again.stderr
    );
}

#[test]
fn sigterm_during_monitoring_exits_130_with_the_journal_complete_and_the_lock_released() {
    let t = Test::new();
    let mut cmd = t.command();
    cmd.args([
        "demo",
        "--unattended",
        "--strategy",
        "canary",
        "--set",
        "monitoring.interval=1s",
    ])
    .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_for_journal(t.path(), "\"kind\":\"measure\"");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
    let journal = std::fs::read_to_string(only_run_dir(t.path()).join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "interrupted");
}
