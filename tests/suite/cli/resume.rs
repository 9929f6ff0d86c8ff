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

const DEPLOY: &str = "━━ Deploy ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━";
const ARTIFACTS: &str = "  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md";

/// What a resumed run says of the lock its dead run left (its pid and age vary).
fn stale_lock_taken_over() -> String {
    format!(
        "warning: took over the stale lock of `production`: tester on {} (pid [..]) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n",
        runbook::identity::host()
    )
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
            // The stage's time and the dead run's pid vary: the rest is pinned.
            let step = format!(
                "echo x >> ran-{kill_at}; [ -f killed-{kill_at} ] || {{ touch killed-{kill_at}; kill -9 $PPID; }}"
            );
            let after: String = (kill_at + 1..=3)
                .map(|k| format!("$ echo x >> ran-{k}\n"))
                .collect();
            resumed
                .expect_status(0)
                .expect_stdout_like(&format!(
                    "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\
                     ↻ resuming: {kill_at} completed effect(s) replayed from the journal, without acting again\n\
                     Proceed to production? (y/n):\n\n{DEPLOY}\n$ {step}\n\
                     ↻ in flight when the run died: sh `{step}`: {choice}\n{after}✓ Deploy ([..])\n\
                     $ touch finished\n✅ Run completed.\n\
                     {ARTIFACTS}\n"
                ))
                .expect_stderr_like(&stale_lock_taken_over());
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
            let v = resumed
                .again()
                .args(&["verify", &only_run_dir(&dir).display().to_string()])
                .run();
            v.expect_status(0).expect_stderr_exact("");
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
    refused
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: the script changed since the run in `deployments/<date>-deploy` started: replaying it against different inputs could repeat or skip real effects\n  help: put them back as they were, or run `runbook resume --force` to go on anyway\n");
    std::fs::write(dir.join("deploy.rhai"), crash_script(2)).unwrap();
    // Nobody to ask about the step in flight: `resume.in_flight` (rollback) decides.
    let out = refused.again().args(&["resume"]).run();
    let step = "echo x >> ran-2; [ -f killed-2 ] || { touch killed-2; kill -9 $PPID; }";
    out.expect_status(3)
        .expect_stdout_like(&format!(
            "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\
             ↻ resuming: 2 completed effect(s) replayed from the journal, without acting again\n\
             Proceed to production? (y/n):\n\n{DEPLOY}\n$ {step}\n\
             ↻ in flight when the run died: sh `{step}`: rollback\n✗ Deploy ([..])\n\n\
             ━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n\
             Rolling back: the run died during sh `{step}`\n\
             ↩ undo 1 (echo u >> undone-1)\n  ✓ undo 1\nRollback complete: 1 step(s) undone.\n\
             ↩ Rolled back: the run died during sh `{step}`\n\
             {ARTIFACTS}, post-mortem.md\n"
        ))
        .expect_stderr_like(&stale_lock_taken_over());
    assert_eq!(lines(&dir, "ran-1"), 1);
    assert_eq!(lines(&dir, "ran-2"), 1);
    assert_eq!(
        lines(&dir, "undone-1"),
        1,
        "the undo registered before the crash ran"
    );
    assert!(!dir.join("finished").exists());
    // Finished now: nothing more to resume.
    let again = out.again().args(&["resume"]).run();
    again
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: nothing to resume: no unfinished run under `deployments`\n");
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
