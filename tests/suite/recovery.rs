//! Recovery paths: resuming, rolling back after a crash, locks, secrets and full disks. Kills are
//! placed by what the journal holds (a prompt reached, a record written), never at random.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{pty, Output, Test};

/// The run directories under `root`/deployments (not the lock directory), sorted.
fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("deployments"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    dirs.sort();
    dirs
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait until some journal under `root`/deployments has a record of `kind` (`count` of them).
fn wait_for_record(root: &Path, kind: &str, count: usize) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for d in run_dirs(root) {
            if journal(&d).iter().filter(|r| r["type"] == kind).count() >= count {
                return d;
            }
        }
        assert!(Instant::now() < deadline, "no journal has {count} {kind:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL the process that started (or last resumed) the run in `dir`, as its journal names it.
fn kill_runner(dir: &Path) {
    let pid = journal(dir)
        .iter()
        .rev()
        .find(|r| r["type"] == "run.start" || r["type"] == "run.resume")
        .and_then(|r| r["pid"].as_i64())
        .expect("the journal names the runner's pid");
    // SAFETY: a plain kill(2) of a child this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Whether `text` is `pattern` where each `[..]` stands for any text within a line: for the
/// output of runs the builder cannot make (two at once, or under `ulimit`), as `expect_*_like`
/// reads the builder's.
fn like(text: &str, pattern: &str) -> bool {
    let text = support::undated(text);
    let mut parts = pattern.split("[..]");
    let Some(rest) = text.strip_prefix(parts.next().unwrap()) else {
        return false;
    };
    let mut rest = rest.to_string();
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let line_end = rest.find('\n').unwrap_or(rest.len());
        // The earliest place within this line where the part begins (the last part ends the text).
        let at = (0..=line_end)
            .filter(|&k| rest.is_char_boundary(k))
            .find(|&k| rest[k..].starts_with(part) && (!last || rest.len() == k + part.len()));
        let Some(at) = at else { return false };
        rest = rest[at + part.len()..].to_string();
    }
    rest.is_empty()
}

/// `runbook ARGS` in `t`'s directory, with `env` added.
fn run(t: Test, env: &[(&str, &str)], args: &[&str]) -> Output {
    env.iter().fold(t, |t, (k, v)| t.env(k, v)).args(args).run()
}

const RULE: &str = "━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━";

/// What a run says when it takes over the lock of a dead run (its host, pid and age vary).
fn took_over(reason: &str, run_dir: &str) -> String {
    format!("warning: took over the stale lock of `production`: tester on [..] (pid [..]) has held it for [..] (reason: {reason}), run {run_dir}\n")
}

// ---------------------------------------------------------------- 1: a dry-run stays a dry-run

#[test]
fn resuming_a_killed_dry_run_stays_a_dry_run() {
    let t = Test::new().file(
        "deploy.rhai",
        "sh(\"echo x >> ran\");\non_rollback(\"undo\", \"echo u >> undone\");\nif !confirm(\"Go on?\") { decline(\"no\"); }\nsh(\"touch finished\");\n",
    );
    let mut p = pty(&t, &["deploy.rhai", "--dry-run"]);
    p.exp_string("Go on?").unwrap();
    let dir = wait_for_record(t.path(), "run.start", 1);
    kill_runner(&dir);
    let _ = p.process().wait();
    assert!(dir.to_string_lossy().ends_with("-dry-run"), "{dir:?}");
    let resumed = run(
        t,
        &[("RUNBOOK_ANSWER_GO_ON", "yes")],
        &["resume", &dir.display().to_string()],
    );
    let d = dir.display();
    resumed
        .expect_status(0)
        .expect_stdout_exact(&format!(
            "▶ deploy.rhai — feature `deploy` (dry-run: nothing will be executed)\n  run directory: {d}\n\
             ↻ resuming: 1 completed effect(s) replayed from the journal, without acting again\n\n\
             Go on? (y/n):\n  → yes (environment RUNBOOK_ANSWER_GO_ON)\n$ touch finished\n✅ Run completed.\n\
             \x20 artifacts in {d}: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n"
        ))
        .expect_stderr_exact("");
    for f in ["ran", "undone", "finished"] {
        assert!(
            !resumed.dir.join(f).exists(),
            "a resumed dry-run acted: `{f}` exists\n{}",
            resumed.describe()
        );
    }
    let records = journal(&dir);
    let intents: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "effect.intent")
        .collect();
    assert!(intents.iter().all(|r| r["dry_run"] == true), "{intents:?}");
}

/// A dry-run that asks nothing, registers an undo, writes a file and notifies: every act
/// would leave a file behind.
const DRY_KILL: &str = "sh(\"echo x >> ran-1\");\n\
    on_rollback(\"undo\", \"echo u >> undone\");\n\
    write_file(\"written.txt\", \"x\");\n\
    sh(\"echo x >> ran-2\");\n\
    sleep(\"10ms\");\n\
    sh(\"echo x >> ran-3\");\n";

#[test]
fn a_dry_run_killed_after_any_record_and_resumed_acts_on_nothing() {
    let whole = run(
        Test::new().file("deploy.rhai", DRY_KILL),
        &[],
        &["deploy.rhai", "--dry-run"],
    );
    whole.expect_status(0);
    let total = journal(&run_dirs(&whole.dir).pop().unwrap()).len();
    assert!(total > 8, "{total}");
    for k in 1..total {
        let t = Test::new().file("deploy.rhai", DRY_KILL);
        let kill = k.to_string();
        let first = run(
            t,
            &[("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill)],
            &["deploy.rhai", "--dry-run"],
        );
        first.expect_status(-1);
        let dir = run_dirs(&first.dir).pop().unwrap();
        assert!(dir.to_string_lossy().ends_with("-dry-run"), "{dir:?}");
        let resumed = run(
            first.again(),
            &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun")],
            &["resume", &dir.display().to_string()],
        );
        resumed.expect_status(0);
        for f in ["ran-1", "ran-2", "ran-3", "undone", "written.txt"] {
            assert!(
                !resumed.dir.join(f).exists(),
                "killed after record {k}: the resumed dry-run acted: `{f}` exists\n{}",
                resumed.describe()
            );
        }
        let records = journal(&dir);
        let results: Vec<_> = records
            .iter()
            .filter(|r| r["type"] == "effect.result")
            .collect();
        assert!(
            results.iter().all(|r| r["dry_run"] == true),
            "killed after record {k}: {results:?}"
        );
        assert_eq!(
            records.iter().filter(|r| r["type"] == "run.end").count(),
            1,
            "killed after record {k}"
        );
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- 3: rollback after a killed rollback

/// Three undo steps left standing (the run failed, `rollback.on_failure: never`); the second one
/// to run (undo 2) kills the process running it, the first time.
const THREE_UNDOS: &str = r#"
sh("true");
on_rollback("undo 1", "echo u >> undone-1");
on_rollback("undo 2", "echo u >> undone-2; [ -f killed ] || { touch killed; kill -9 $PPID; }");
on_rollback("undo 3", "echo u >> undone-3");
sh("false");
"#;

#[test]
fn a_rollback_killed_midway_is_finished_by_the_next_one_without_redoing_what_it_did() {
    for (answer, want_2) in [("yes", 2), ("no", 1)] {
        let failed = run(
            Test::new().file("deploy.rhai", THREE_UNDOS),
            &[],
            &["deploy.rhai", "--set", "rollback.on_failure=never"],
        );
        failed.expect_status(1);
        let root = failed.dir.clone();
        let target = run_dirs(&root).pop().unwrap();
        let first = run(failed.again(), &[], &["rollback", "--yes"]);
        // Killed during undo 2.
        first.expect_status(-1);
        assert_eq!(lines(&root.join("undone-3")), 1);
        assert_eq!(lines(&root.join("undone-2")), 1);
        assert_eq!(lines(&root.join("undone-1")), 0);
        // The next rollback (of the newest deployment, not of the killed rollback) runs only what
        // still stands, and asks about the undo that was under way.
        let second = run(
            first.again(),
            &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", answer)],
            &[
                "rollback",
                "--yes",
                "--take-over",
                "the first rollback was killed",
            ],
        );
        let target_shown = target.strip_prefix(&root).unwrap().display().to_string();
        let undo_2 = "echo u >> undone-2; [ -f killed ] || { touch killed; kill -9 $PPID; }";
        let (rerun, undone) = match answer {
            "yes" => (format!("↩ undo 2 ({undo_2})\n  ✓ undo 2\n"), 2),
            _ => (String::new(), 1),
        };
        second
            .expect_status(3)
            .expect_stdout_exact(&format!(
                "▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback-2\n\
                 Deployment: {target_shown}\nUndo steps, in the order they will run:\n  ↩ undo 2: {undo_2}\n  ↩ undo 1: echo u >> undone-1\n\n\
                 ⚠\u{fe0f} Roll back {target_shown}? (2 step(s)) (y/n):\n  → yes (--yes)\n\
                 The last rollback died while undoing `undo 2` (it may or may not have happened). Run it again? (y/n):\n\
                 \x20 → {answer} (environment RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT)\n\n{RULE}\nRolling back: manual rollback\n\
                 {rerun}↩ undo 1 (echo u >> undone-1)\n  ✓ undo 1\nRollback complete: {undone} step(s) undone.\n↩ Rolled back: manual rollback\n\
                 \x20 artifacts in deployments/<date>-rollback-2: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
            ))
            .expect_stderr_like(&took_over(
                "<shipped>/runbooks/rollback.rhai",
                "deployments/<date>-rollback",
            ));
        assert_eq!(lines(&root.join("undone-3")), 1, "undo 3 ran once");
        assert_eq!(
            lines(&root.join("undone-2")),
            want_2,
            "undo 2, answer {answer}"
        );
        assert_eq!(lines(&root.join("undone-1")), 1, "undo 1 ran once");
        // Nothing stands now.
        let third = run(second.again(), &[], &["rollback", "--yes"]);
        third
            .expect_status(0)
            .expect_stdout_exact(&format!(
                "▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback-3\n\
                 Deployment: {target_shown}\n\
                 Nothing stands to be undone: the run completed its own rollback, or registered no undo steps.\n✅ Run completed.\n\
                 \x20 artifacts in deployments/<date>-rollback-3: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n"
            ))
            .expect_stderr_exact("");
        assert_eq!(lines(&root.join("undone-1")), 1);
        run(
            third.again(),
            &[],
            &["verify", &target.display().to_string()],
        )
        .expect_status(0);
    }
}

// ---------------------------------------------------------------- 4, 2, 12: the lock

const LOCK: &str = "deployments/.locks/production.lock";

/// Three steps; step 2 kills the runner (SIGKILL) the first time it runs, leaving its lock.
const KILLED_AT_2: &str = r#"
sh("echo x >> ran-1");
sh("echo x >> ran-2; [ -f killed ] || { touch killed; kill -9 $PPID; }");
sh("sleep 1; echo x >> ran-3");
"#;

#[test]
fn an_empty_or_half_written_lock_is_not_a_live_holder() {
    for junk in ["", "{\n  \"environment\": \"produc"] {
        let out = run(
            Test::new()
                .file(LOCK, junk)
                .file("deploy.rhai", "sh(\"touch ran\");\n"),
            &[],
            &["deploy.rhai"],
        );
        let root = out.dir.clone();
        out.expect_status(2)
            .expect_stderr_exact(&format!("error: `production` has a stale lock (the lock file `{LOCK}` is empty or half-written: its writer died before finishing it, so no run holds it)\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"));
        assert!(!root.join("ran").exists());
        let out = run(
            out.again(),
            &[],
            &["deploy.rhai", "--take-over", "the lock file was empty"],
        );
        out.expect_status(0)
            .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch ran\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
            .expect_stderr_exact("warning: took over the stale lock of `production`: its lock file was empty or half-written\n");
        assert!(root.join("ran").exists());
        assert!(!root.join(LOCK).exists(), "released");
        // `runbook unlock` breaks it too.
        std::fs::write(root.join(LOCK), junk).unwrap();
        let u = run(
            out.again(),
            &[],
            &["unlock", "production", "--reason", "empty lock"],
        );
        u.expect_status(0)
            .expect_stdout_exact("ok: `production` unlocked (was: an empty or half-written lock file); recorded in deployments/.locks/unlock-log.jsonl\n")
            .expect_stderr_exact("");
        assert!(!root.join(LOCK).exists());
        // A run killed while writing its lock: `runbook resume` goes on without a manual unlock.
        let killed = run(
            Test::new().file("deploy.rhai", KILLED_AT_2),
            &[],
            &["deploy.rhai"],
        );
        killed.expect_status(-1);
        let root = killed.dir.clone();
        std::fs::write(root.join(LOCK), junk).unwrap();
        let r = run(
            killed.again(),
            &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
            &["resume"],
        );
        r.expect_status(0)
            .expect_stderr_exact("warning: took over the stale lock of `production`: its lock file was empty or half-written\n");
        assert_eq!(lines(&root.join("ran-3")), 1, "{}", r.describe());
    }
}

#[test]
fn the_lock_file_is_never_seen_partly_written_and_no_temporary_file_is_left() {
    let t = Test::new().file("deploy.rhai", "sh(\"sleep 2\");\n");
    let mut child = t
        .command()
        .arg("deploy.rhai")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        if let Ok(text) = std::fs::read_to_string(t.path().join(LOCK)) {
            // Present means whole: every read parses.
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("a partly written lock: {e}: {text:?}"));
            assert_eq!(v["environment"], "production");
            seen += 1;
        }
    }
    assert!(seen > 0);
    let left: Vec<_> = std::fs::read_dir(t.path().join("deployments/.locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn two_resumes_of_one_dead_run_one_wins_and_the_loser_is_told_who() {
    let killed = run(
        Test::new().file("deploy.rhai", KILLED_AT_2),
        &[],
        &["deploy.rhai"],
    );
    killed.expect_status(-1);
    let t = killed.again();
    // Both read the dead run's stale lock, then pause before taking it over: with a
    // read-check-write take-over, both would win. (Two at once: the builder runs one at a time.)
    // A resume names its run directory as it takes the lock: the loser is told which run.
    let spawn = || {
        let mut c = t.command();
        c.args(["resume"])
            .env("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")
            .env("RUNBOOK_FAULT_LOCK_PAUSE", "500ms");
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let both = format!(
        "--- first resume: status {:?}\n--- stdout\n{}--- stderr\n{}--- second resume: status {:?}\n--- stdout\n{}--- stderr\n{}--- end",
        a.status.code(),
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&a.stderr),
        b.status.code(),
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&b.stderr)
    );
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(2)], "\n{both}");
    let (winner, loser) = if a.status.code() == Some(0) {
        (a, b)
    } else {
        (b, a)
    };
    let _ = winner;
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        like(
            &err,
            "error: `production` is locked by another deployment: tester on [..] (pid [..]) has held it for [..] (reason: resume of deployments/<date>-deploy: deploy.rhai), run deployments/<date>-deploy\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`\n"
        ),
        "the loser's stderr is not as expected\n{both}"
    );
    assert_eq!(lines(&t.path().join("ran-3")), 1, "step 3 ran once\n{both}");
    let dir = run_dirs(t.path()).pop().unwrap();
    run(t, &[], &["verify", &dir.display().to_string()]).expect_status(0);
}

#[test]
fn a_live_run_renews_its_short_lease_so_it_is_never_taken_over() {
    let t = Test::new()
        .file("first.rhai", "sh(\"sleep 4\");\n")
        .file("second.rhai", "sh(\"touch second-ran\");\n");
    let root = t.path().to_path_buf();
    // The first run is left running while the second one tries: spawned, not the builder's run.
    let mut first = t.command();
    first
        .args(["first.rhai", "--set", "lock.lease=1500ms"])
        .stdout(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    wait_for_record(&root, "lock.acquire", 1);
    std::thread::sleep(Duration::from_millis(2500));
    // Past the first lease: a live run renewed it, so it is not stale.
    let second = run(t, &[], &["second.rhai", "--take-over", "it looks stale"]);
    second
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like("error: `production` is locked by another deployment: tester on [..] (pid [..]) has held it for [..] (reason: first.rhai), run deployments/<date>-first\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`\n");
    assert!(!root.join("second-ran").exists());
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn the_default_lease_is_tens_of_seconds() {
    let t = Test::new().file("deploy.rhai", "sh(\"sleep 2\");\n");
    let mut child = t
        .command()
        .arg("deploy.rhai")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_record(t.path(), "lock.acquire", 1);
    let holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join(LOCK)).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = holder["expires"].as_u64().unwrap().saturating_sub(now);
    assert!((10..=60).contains(&left), "lease ends in {left}s");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---------------------------------------------------------------- 5: a resume killed in its rollback

/// Step 3 kills the runner the first time; undo 2 kills the runner (the resume rolling back) the
/// first time.
const KILLED_AT_3_AND_IN_UNDO_2: &str = r#"
sh("echo x >> ran-1");
on_rollback("undo 1", "echo u >> undone-1");
sh("echo x >> ran-2");
on_rollback("undo 2", "echo u >> undone-2; [ -f killed-u ] || { touch killed-u; kill -9 $PPID; }");
sh("echo x >> ran-3; [ -f killed ] || { touch killed; kill -9 $PPID; }");
sh("touch finished");
"#;

#[test]
fn a_resume_killed_during_its_rollback_is_resumed_and_finishes_the_rollback() {
    for (answer, want_2) in [("yes", 2), ("no", 1)] {
        let killed = run(
            Test::new().file("deploy.rhai", KILLED_AT_3_AND_IN_UNDO_2),
            &[],
            &["deploy.rhai"],
        );
        killed.expect_status(-1);
        let root = killed.dir.clone();
        // Nobody to ask about step 3: roll back (`resume.in_flight`), killed during undo 2.
        let first = run(killed.again(), &[], &["resume"]);
        first.expect_status(-1);
        assert_eq!(lines(&root.join("undone-2")), 1);
        assert_eq!(lines(&root.join("undone-1")), 0);
        let second = run(
            first.again(),
            &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", answer)],
            &["resume"],
        );
        let (rerun, undone) = match answer {
            "yes" => ("↩ undo 2 (echo u >> undone-2; [ -f killed-u ] || { touch killed-u; kill -9 $PPID; })\n  ✓ undo 2\n", 2),
            _ => ("", 1),
        };
        second
            .expect_status(3)
            .expect_stdout_exact(&format!(
                "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\
                 ↻ the run died while rolling back: finishing its rollback (the script is not run again)\n\
                 The last rollback died while undoing `undo 2` (it may or may not have happened). Run it again? (y/n):\n\
                 \x20 → {answer} (environment RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT)\n\n{RULE}\n\
                 Rolling back: finishing the rollback the run died in\n{rerun}↩ undo 1 (echo u >> undone-1)\n  ✓ undo 1\n\
                 Rollback complete: {undone} step(s) undone.\n\
                 \x20 artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
            ))
            .expect_stderr_like(&took_over(
                "resume of deployments/<date>-deploy: deploy.rhai",
                "deployments/<date>-deploy",
            ));
        for k in 1..=3 {
            assert_eq!(lines(&root.join(format!("ran-{k}"))), 1, "step {k}");
        }
        assert_eq!(lines(&root.join("undone-2")), want_2, "undo 2, {answer}");
        assert_eq!(lines(&root.join("undone-1")), 1, "undo 1 ran once");
        assert!(!root.join("finished").exists());
        let dir = run_dirs(&root).pop().unwrap();
        let v = run(second.again(), &[], &["verify", &dir.display().to_string()]);
        v.expect_status(0);
        let again = run(v.again(), &[], &["resume"]);
        again
            .expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact(
                "error: nothing to resume: no unfinished run under `deployments`\n",
            );
    }
}

// ---------------------------------------------------------------- 6: settings given at resume time

#[test]
fn resume_honours_resume_settings_given_at_resume_time_and_refuses_other_changes() {
    let killed = run(
        Test::new().file("deploy.rhai", KILLED_AT_2),
        &[],
        &["deploy.rhai"],
    );
    killed.expect_status(-1);
    let root = killed.dir.clone();
    // Another setting changed: refused as a changed config.
    let refused = run(killed.again(), &[], &["resume", "--set", "vars.region=eu"]);
    refused
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: the config changed since the run in `deployments/<date>-deploy` started: replaying it against different inputs could repeat or skip real effects\n  help: put them back as they were, or run `runbook resume --force` to go on anyway\n");
    assert_eq!(lines(&root.join("ran-3")), 0);
    // How to resume is the resume's to say: re-run the step in flight (not the default rollback).
    let out = run(
        refused.again(),
        &[],
        &["resume", "--set", "resume.in_flight=rerun"],
    );
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n↻ resuming: 1 completed effect(s) replayed from the journal, without acting again\n$ echo x >> ran-2; [ -f killed ] || { touch killed; kill -9 $PPID; }\n↻ in flight when the run died: sh `echo x >> ran-2; [ -f killed ] || { touch killed; kill -9 $PPID; }`: rerun\n$ sleep 1; echo x >> ran-3\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like(&took_over("deploy.rhai", "deployments/<date>-deploy"));
    assert_eq!(lines(&root.join("ran-2")), 2, "re-run");
    assert_eq!(lines(&root.join("ran-3")), 1);
}

// ---------------------------------------------------------------- 8: --deployments-dir everywhere

#[test]
fn rollback_resume_and_unlock_honour_deployments_dir() {
    let t = Test::new()
        .file(
            "a.rhai",
            "on_rollback(\"undo a\", \"touch undone-a\");\nsh(\"false\");\n",
        )
        .file(
            "b.rhai",
            "on_rollback(\"undo b\", \"touch undone-b\");\nsh(\"false\");\n",
        );
    let root = t.path().to_path_buf();
    let a = run(t, &[], &["a.rhai", "--set", "rollback.on_failure=never"]);
    a.expect_status(1);
    std::thread::sleep(Duration::from_millis(50));
    let b = run(
        a.again(),
        &[],
        &[
            "b.rhai",
            "--set",
            "rollback.on_failure=never",
            "--deployments-dir",
            "team-b",
        ],
    );
    b.expect_status(1);
    // The newest run under ./deployments is a's; rolling back team-b's must touch only b's.
    let out = run(
        b.again(),
        &[],
        &["rollback", "--yes", "--deployments-dir", "team-b"],
    );
    out.expect_status(3)
        .expect_stdout_exact(&format!(
            "▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: team-b/<date>-rollback\n\
             Deployment: team-b/<date>-b\nUndo steps, in the order they will run:\n  ↩ undo b: touch undone-b\n\n\
             ⚠\u{fe0f} Roll back team-b/<date>-b? (1 step(s)) (y/n):\n  → yes (--yes)\n\n{RULE}\nRolling back: manual rollback\n\
             ↩ undo b (touch undone-b)\n  ✓ undo b\nRollback complete: 1 step(s) undone.\n↩ Rolled back: manual rollback\n\
             \x20 artifacts in team-b/<date>-rollback: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
        ))
        .expect_stderr_exact("");
    assert!(root.join("undone-b").exists());
    assert!(
        !root.join("undone-a").exists(),
        "another team's deployment was rolled back"
    );
    // resume looks for unfinished runs where it is told.
    let killed = run(
        Test::new().file("deploy.rhai", KILLED_AT_2),
        &[],
        &["deploy.rhai", "--deployments-dir", "team-b"],
    );
    killed.expect_status(-1);
    let root2 = killed.dir.clone();
    let r = run(
        killed.again(),
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume", "--deployments-dir", "team-b"],
    );
    r.expect_status(0)
        .expect_stdout_lines(&["  run directory: team-b/<date>-deploy"])
        .expect_stderr_like(&took_over("deploy.rhai", "team-b/<date>-deploy"));
    assert_eq!(lines(&root2.join("ran-3")), 1);
    // unlock breaks the lock where it is told.
    let stale = r#"{"environment":"production","user":"ghost","host":"elsewhere","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":1,"run_dir":"team-b/old"}"#;
    std::fs::create_dir_all(root2.join("team-b/.locks")).unwrap();
    std::fs::write(root2.join("team-b/.locks/production.lock"), stale).unwrap();
    let u = run(
        r.again(),
        &[],
        &[
            "unlock",
            "production",
            "--reason",
            "checked",
            "--deployments-dir",
            "team-b",
        ],
    );
    u.expect_status(0)
        .expect_stdout_like("ok: `production` unlocked (was: ghost on elsewhere (pid 4000000) has held it for [..] (reason: old run), run team-b/old); recorded in team-b/.locks/unlock-log.jsonl\n")
        .expect_stderr_exact("");
    assert!(!root2.join("team-b/.locks/production.lock").exists());
    // Pointed at a place with no lock, unlock says where it looked.
    let u = run(
        u.again(),
        &[],
        &["unlock", "production", "--reason", "checked"],
    );
    u.expect_status(0)
        .expect_stdout_exact("`production` was not locked (no lock under `deployments`: see --deployments-dir); recorded in deployments/.locks/unlock-log.jsonl\n")
        .expect_stderr_exact("");
}

// ---------------------------------------------------------------- 11: a full disk

#[test]
fn a_full_disk_leaves_whole_records_and_the_run_stops_before_acting_unrecorded() {
    let script: String = (1..=40)
        .map(|k| format!("sh(\"echo x >> ran-{k}\");\n"))
        .collect();
    let t = Test::new().file("deploy.rhai", &script);
    // Files may grow to 8 KiB (16 blocks of 512 bytes): the journal fills up a dozen steps in.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -f 16; exec {} deploy.rhai", support::BIN))
        .current_dir(t.path())
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!(
        "--- command\n(cd {} && ulimit -f 16; runbook deploy.rhai)\n--- status\n{:?}\n--- stdout\n{}--- stderr\n{stderr}--- end",
        t.path().display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    // The step it stops at depends on how long the records are: the rest is pinned.
    assert!(
        like(
            &stderr,
            "error: journal `deployments/<date>-deploy/journal.jsonl`: cannot record sh `echo x >> ran-[..]`: the journal could not be written earlier (File too large (os error 27)), so it was not carried out: the run stops rather than act unrecorded\n"
        ),
        "stderr is not as expected\n{all}"
    );
    let dir = run_dirs(t.path()).pop().unwrap();
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(
        text.ends_with('\n'),
        "a record is whole or absent: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every record is whole JSON"))
        .collect();
    let intents = records
        .iter()
        .filter(|r| r["type"] == "effect.intent")
        .count();
    let ran = (1..=40)
        .filter(|k| t.path().join(format!("ran-{k}")).exists())
        .count();
    assert!(ran > 3 && ran < 40, "{ran}");
    assert_eq!(
        ran, intents,
        "no step ran without its intent in the journal"
    );
    let root = t.path().to_path_buf();
    run(t, &[], &["verify", &dir.display().to_string()]).expect_status(0);
    for k in 1..=40 {
        assert!(lines(&root.join(format!("ran-{k}"))) <= 1, "step {k}");
    }
}

// ---------------------------------------------------------------- 9, 10: secrets

/// Every file under `dir`, concatenated (the run directories and their artifacts).
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for d in run_dirs(dir) {
        for e in std::fs::read_dir(&d).unwrap() {
            out.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
        }
    }
    out
}

#[test]
fn an_undo_with_a_secret_runs_with_the_secret_when_run_from_the_journal() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "secrets:\n  env: [DEPLOY_TOKEN]\n  values:\n    api_token: tok-98765-secret\n",
        )
        .file(
            "deploy.rhai",
            r#"
on_rollback("revoke api", `echo ${secret("api_token")} > revoked-api`);
on_rollback("revoke deploy", `echo ${env("DEPLOY_TOKEN")} > revoked-deploy`);
sh("false");
"#,
        );
    let root = t.path().to_path_buf();
    let token = ("DEPLOY_TOKEN", "dtok-55555-secret");
    let failed = run(
        t,
        &[token],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    );
    failed.expect_status(1);
    let text = all_text(&root);
    assert!(
        !text.contains("tok-98765-secret") && !text.contains("dtok-55555-secret"),
        "{text}"
    );
    // Without DEPLOY_TOKEN: the undo that needs it fails, naming it; the other runs with its secret.
    let first = run(failed.again(), &[], &["rollback", "--yes"]);
    first
        .expect_status(1)
        .expect_stdout_exact(&format!(
            "▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback\n\
             Deployment: deployments/<date>-deploy\nUndo steps, in the order they will run:\n\
             \x20 ↩ revoke deploy: echo {{{{secret:DEPLOY_TOKEN}}}} > revoked-deploy\n\
             \x20 ↩ revoke api: echo {{{{secret:api_token}}}} > revoked-api\n\n\
             ⚠\u{fe0f} Roll back deployments/<date>-deploy? (2 step(s)) (y/n):\n  → yes (--yes)\n\n{RULE}\nRolling back: manual rollback\n\
             ↩ revoke deploy (echo {{{{secret:DEPLOY_TOKEN}}}} > revoked-deploy)\n\
             \x20 ✗ revoke deploy: the undo needs the secret `DEPLOY_TOKEN`, which this process does not have (give it in runbook.yaml `secrets`, with `--set secrets.values.DEPLOY_TOKEN=...`, or in the environment)\n\
             ↩ revoke api (echo {{{{secret:api_token}}}} > revoked-api)\n  ✓ revoke api\n\
             Rollback incomplete: 1 of 2 undo step(s) failed: revoke deploy\n✗ Rollback failed: see rollback-plan.md for what still stands\n\
             \x20 artifacts in deployments/<date>-rollback: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
        ))
        .expect_stderr_exact("");
    assert_eq!(
        std::fs::read_to_string(root.join("revoked-api")).unwrap(),
        "tok-98765-secret\n"
    );
    assert!(!root.join("revoked-deploy").exists());
    // Given the secret, the next rollback runs what still stands, with the secret's value.
    let second = run(first.again(), &[token], &["rollback", "--yes"]);
    second
        .expect_status(3)
        .expect_stdout_lines(&[
            "  ↩ revoke deploy: echo {{secret:DEPLOY_TOKEN}} > revoked-deploy",
            "  ✓ revoke deploy",
            "Rollback complete: 1 step(s) undone.",
        ])
        .expect_stderr_exact("");
    assert_eq!(
        std::fs::read_to_string(root.join("revoked-deploy")).unwrap(),
        "dtok-55555-secret\n"
    );
    let text = all_text(&root);
    assert!(
        !text.contains("tok-98765-secret") && !text.contains("dtok-55555-secret"),
        "{text}"
    );
}

#[test]
fn a_run_given_a_secret_with_set_is_resumed_with_the_secret_given_again() {
    let t = Test::new().file(
        "deploy.rhai",
        r#"
sh(`echo ${secret("api_token")} >> used-1`);
sh("echo x >> ran-2; [ -f killed ] || { touch killed; kill -9 $PPID; }");
sh(`echo ${secret("api_token")} >> used-3`);
"#,
    );
    let root = t.path().to_path_buf();
    let secret = "secrets.values.api_token=tok-24680-secret";
    let killed = run(t, &[], &["deploy.rhai", "--set", secret]);
    killed.expect_status(-1);
    let dir = run_dirs(&root).pop().unwrap();
    let journal_text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(!journal_text.contains("tok-24680-secret"), "{journal_text}");
    // Not given again: said before anything runs.
    let without = run(
        killed.again(),
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume"],
    );
    without.expect_status(2).expect_stderr_exact(
        "error: the run was started with the secret `api_token`, which this resume was not given\n  help: give it again: `--set secrets.values.api_token=...`, or in runbook.yaml\n",
    );
    // Given again at resume: not a changed input, and the run goes on with it.
    let with = run(
        without.again(),
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume", "--set", secret],
    );
    with.expect_status(0);
    assert_eq!(
        std::fs::read_to_string(root.join("used-3")).unwrap(),
        "tok-24680-secret\n"
    );
    assert_eq!(lines(&root.join("used-1")), 1);
    let text = all_text(&root);
    assert!(!text.contains("tok-24680-secret"), "{text}");
}

// ---------------------------------------------------------------- kills placed by record number

/// The marker files of the commands a killed process had started (an `effect.child` is the last
/// record of its journal): each ran, though its result was never recorded, so re-running it when
/// asked about it runs it a second time. Any other step must run exactly once.
fn started_when_killed(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in run_dirs(root) {
        let records = journal(&d);
        let Some(last) = records.last().filter(|r| r["type"] == "effect.child") else {
            continue;
        };
        let Some(intent) = records
            .iter()
            .find(|r| r["type"] == "effect.intent" && r["effect"] == last["effect"])
        else {
            continue;
        };
        let text = intent["intent"]["command"]
            .as_str()
            .or(intent["intent"]["action"]["line"].as_str())
            .unwrap_or("");
        if let Some(marker) = text
            .split(">> ")
            .nth(1)
            .and_then(|m| m.split_whitespace().next())
        {
            out.push(marker.to_string());
        }
    }
    out
}

/// A confirmation, three steps each with an undo, then a failing step: the run rolls back.
const KILL_MATRIX: &str = r#"
if !confirm("Proceed?") { decline("no"); }
stage("Deploy", || {
    sh("echo x >> ran-1");
    on_rollback("undo 1", "echo u >> undone-1");
    sh("echo x >> ran-2");
    on_rollback("undo 2", "echo u >> undone-2");
    sh("echo x >> ran-3");
    on_rollback("undo 3", "echo u >> undone-3");
});
sh("false");
"#;

#[test]
fn killed_after_any_record_and_resumed_every_step_and_undo_runs_exactly_once() {
    let answers = [
        ("RUNBOOK_ANSWER_PROCEED", "yes"),
        ("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun"),
        ("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes"),
    ];
    // The records of a run nobody kills.
    let whole = run(
        Test::new().file("deploy.rhai", KILL_MATRIX),
        &answers,
        &["deploy.rhai"],
    );
    whole.expect_status(3);
    let total = journal(&run_dirs(&whole.dir).pop().unwrap()).len();
    assert!(total > 20, "{total}");
    let (mut kills, mut resume_kills, mut reruns) = (0, 0, 0);
    for k in 1..total {
        let t = Test::new().file("deploy.rhai", KILL_MATRIX);
        let root = t.path().to_path_buf();
        let kill = k.to_string();
        let mut env = answers.to_vec();
        env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill));
        let first = run(t, &env, &["deploy.rhai"]);
        first.expect_status(-1);
        kills += 1;
        let mut started = started_when_killed(&root);
        let dir = run_dirs(&root).pop().unwrap();
        // Every other time, the first resume is killed too, a few records in.
        let mut resume_kill = (k % 2 == 0).then(|| (journal(&dir).len() + 1 + k % 4).to_string());
        let mut t = first.again();
        let mut last = None;
        for _ in 0..4 {
            let mut env = answers.to_vec();
            if let Some(n) = &resume_kill {
                env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", n));
            }
            let r = run(t, &env, &["resume"]);
            if r.code == -1 {
                resume_kills += 1;
                resume_kill = None;
                started.extend(started_when_killed(&root));
                t = r.again();
                continue;
            }
            last = Some(r);
            break;
        }
        let last = last.expect("the run finished after a few resumes");
        reruns += started.len();
        last.expect_status(3);
        for f in [
            "ran-1", "ran-2", "ran-3", "undone-1", "undone-2", "undone-3",
        ] {
            let rerun = started.iter().filter(|m| *m == f).count();
            assert_eq!(
                lines(&root.join(f)),
                1 + rerun,
                "{f}, killed after record {k}\n{}",
                last.describe()
            );
        }
        run(last.again(), &[], &["verify", &dir.display().to_string()]).expect_status(0);
    }
    eprintln!("{kills} runs killed, {resume_kills} resumes killed, all resumed; every step and undo ran once, but {reruns} that had started when killed and were re-run as answered");
}

#[test]
fn a_rollback_killed_after_any_record_is_finished_by_the_next_and_every_undo_runs_once() {
    let deploy = r#"
sh("echo x >> ran-1");
on_rollback("undo 1", "echo u >> undone-1");
sh("echo x >> ran-2");
on_rollback("undo 2", "echo u >> undone-2");
sh("echo x >> ran-3");
on_rollback("undo 3", "echo u >> undone-3");
sh("false");
"#;
    let answers = [("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes")];
    let never = ["deploy.rhai", "--set", "rollback.on_failure=never"];
    let whole = run(Test::new().file("deploy.rhai", deploy), &[], &never);
    whole.expect_status(1);
    let whole = run(whole.again(), &answers, &["rollback", "--yes"]);
    whole.expect_status(3);
    let rollback_dir = run_dirs(&whole.dir)
        .into_iter()
        .find(|d| d.to_string_lossy().contains("rollback"))
        .unwrap();
    let total = journal(&rollback_dir).len();
    let (mut kills, mut reruns) = (0, 0);
    for k in 1..total {
        let failed = run(Test::new().file("deploy.rhai", deploy), &[], &never);
        failed.expect_status(1);
        let root = failed.dir.clone();
        let target = run_dirs(&root).pop().unwrap();
        let kill = k.to_string();
        let mut env = answers.to_vec();
        env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill));
        let first = run(failed.again(), &env, &["rollback", "--yes"]);
        if first.code != -1 {
            // The deployment's own journal numbers its records higher: no kill this time.
            first.expect_status(3);
            continue;
        }
        kills += 1;
        let started = started_when_killed(&root);
        reruns += started.len();
        let again = run(
            first.again(),
            &answers,
            &[
                "rollback",
                "--yes",
                "--take-over",
                "the last rollback was killed",
            ],
        );
        assert!(
            again.code == 3 || again.stdout.contains("Nothing stands to be undone"),
            "killed after record {k}\n{}",
            again.describe()
        );
        for f in [
            "ran-1", "ran-2", "ran-3", "undone-1", "undone-2", "undone-3",
        ] {
            let rerun = started.iter().filter(|m| *m == f).count();
            assert_eq!(
                lines(&root.join(f)),
                1 + rerun,
                "{f}, rollback killed after record {k}\n{}",
                again.describe()
            );
        }
        run(
            again.again(),
            &[],
            &["verify", &target.display().to_string()],
        )
        .expect_status(0);
    }
    eprintln!("{kills} rollbacks killed, each finished by the next one; every undo ran once, but {reruns} that had started when killed and were re-run as answered");
}

// ---------------------------------------------------------------- 7: the command in flight still runs

/// Step 1 kills the runner and goes on for a second and a half (it survives its runner); run
/// again, it notes whether the first copy had finished.
const OUTLIVES_ITS_RUNNER: &str = r#"
sh("if [ -f killed ]; then if [ -f long-end ]; then echo after >> order; else echo overlap >> order; fi; exit 0; fi; touch killed; kill -9 $PPID; sleep 1.5; echo end >> long-end");
sh("echo x >> ran-2");
"#;

#[test]
fn resume_waits_for_or_stops_the_command_still_running_from_the_dead_run() {
    for (choice, want_order, want_end) in [("wait", "after\n", true), ("stop", "overlap\n", false)]
    {
        let killed = run(
            Test::new().file("deploy.rhai", OUTLIVES_ITS_RUNNER),
            &[],
            &["deploy.rhai"],
        );
        killed.expect_status(-1);
        let root = killed.dir.clone();
        assert!(!root.join("long-end").exists(), "still running");
        let r = run(
            killed.again(),
            &[
                ("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun"),
                ("RUNBOOK_ANSWER_RESUME_STILL_RUNNING", choice),
            ],
            &["resume"],
        );
        let step = "if [ -f killed ]; then if [ -f long-end ]; then echo after >> order; else echo overlap >> order; fi; exit 0; fi; touch killed; kill -9 $PPID; sleep 1.5; echo end >> long-end";
        let what = match choice {
            "wait" => "waiting for it to end (answer `resume-still-running: stop` to stop it)",
            _ => "stopping it (answer `resume-still-running`)",
        };
        r.expect_status(0)
            .expect_stdout_like(&format!(
                "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\
                 ↻ resuming: 0 completed effect(s) replayed from the journal, without acting again\n$ {step}\n\
                 ↻ the command in flight when the run died is still running (process group [..]): {what}\n\
                 ↻ in flight when the run died: sh `{step}`: rerun\n$ echo x >> ran-2\n✅ Run completed.\n\
                 \x20 artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n"
            ))
            .expect_stderr_like(&took_over("deploy.rhai", "deployments/<date>-deploy"));
        assert_eq!(
            std::fs::read_to_string(root.join("order")).unwrap(),
            want_order,
            "{choice}: the re-run and the first copy"
        );
        std::thread::sleep(Duration::from_millis(1700));
        assert_eq!(root.join("long-end").exists(), want_end, "{choice}");
        assert_eq!(lines(&root.join("ran-2")), 1);
    }
}

// ---------------------------------------------------------------- 13: smaller recovery cases

#[test]
fn binary_garbage_as_config_answers_or_runbook_is_a_usage_error() {
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(600).collect();
    let mut t = Test::new().file("deploy.rhai", "sh(\"touch ran\");\n");
    let root = t.path().to_path_buf();
    std::fs::write(root.join("garbage"), &garbage).unwrap();
    for (args, what) in [
        (vec!["deploy.rhai", "--config", "garbage"], "config"),
        (vec!["deploy.rhai", "--answers", "garbage"], "answers"),
        (vec!["garbage"], "runbook"),
        (vec!["check", "garbage"], "runbook"),
    ] {
        let out = run(t, &[], &args);
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact(&format!(
                "error: cannot read {what} `garbage`: it is not text (not valid UTF-8)\n"
            ));
        t = out.again();
    }
    assert!(!root.join("ran").exists());
}

#[test]
fn verify_refuses_an_empty_journal_and_names_a_repaired_record() {
    let v = run(
        Test::new().file("deployments/empty/journal.jsonl", ""),
        &[],
        &["verify", "deployments/empty"],
    );
    v.expect_status(1).expect_stderr_exact(
        "error: journal `deployments/empty/journal.jsonl` is empty: it holds no record to check\n",
    );
    // A run killed mid-record, then resumed: the torn line is repaired, and verify says so.
    let killed = run(
        Test::new().file("deploy.rhai", KILLED_AT_2),
        &[],
        &["deploy.rhai"],
    );
    killed.expect_status(-1);
    let dir = run_dirs(&killed.dir).pop().unwrap();
    let mut text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.push_str("{\"seq\":99,\"ty");
    std::fs::write(dir.join("journal.jsonl"), &text).unwrap();
    let resumed = run(
        killed.again(),
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume"],
    );
    // The torn line is said to be ignored.
    resumed.expect_status(0).expect_stderr_like(&format!(
        "warning: deployments/<date>-deploy/journal.jsonl:{}: the last record is incomplete (the run was cut off while writing it); it was ignored\n{}",
        text.lines().count(),
        took_over("deploy.rhai", "deployments/<date>-deploy")
    ));
    let v = run(
        resumed.again(),
        &[],
        &["verify", &dir.display().to_string()],
    );
    let n = text.lines().count();
    v.expect_status(0)
        .expect_stdout_like(&format!(
            "note: record {n} is a `journal.repaired` record: the record after record {} was cut off mid-write (its fragment is kept in it)\n\
             ok: deployment-plan.md pins the last record\n\
             ok: {}/journal.jsonl: [..] records, hash chain intact; final hash [..]\n",
            n - 1,
            dir.display()
        ))
        .expect_stderr_exact("");
}

#[test]
fn a_multi_line_secret_is_redacted_line_by_line_and_a_short_one_is_warned_about() {
    let key = "-----BEGIN KEY-----\nline-two-secret-abc\nline-three-secret-def\n-----END KEY-----";
    let t = Test::new()
        .file(
            "runbook.yaml",
            "secrets:\n  values:\n    key: \"-----BEGIN KEY-----\\nline-two-secret-abc\\nline-three-secret-def\\n-----END KEY-----\"\n    pin: \"ab1\"\n",
        )
        .file("key.pem", &format!("{key}\n"))
        .file("deploy.rhai", "sh(\"cat key.pem\");\n");
    let out = run(t, &[], &["deploy.rhai"]);
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ cat key.pem\n  │ [REDACTED]\n  │ [REDACTED]\n  │ [REDACTED]\n  │ [REDACTED]\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("warning: the secret `pin` is shorter than 4 characters, so it is not redacted (it would mask ordinary text everywhere): use a longer one\n");
    let everything = format!("{}{}{}", out.stdout, out.stderr, all_text(&out.dir));
    for line in ["line-two-secret-abc", "line-three-secret-def"] {
        assert!(!everything.contains(line), "{line} leaked:\n{everything}");
    }
}

#[test]
fn the_journal_s_directory_is_synced_after_the_journal_is_created() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok(),
        "strace is not installed: .ci/run installs it with apt-get (package strace)"
    );
    let t = Test::new().file("deploy.rhai", "sh(\"true\");\n");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-e",
            "trace=openat,fsync,fdatasync,execve",
            "-o",
            "trace.txt",
            support::BIN,
            "deploy.rhai",
        ])
        .current_dir(t.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(t.path().join("trace.txt")).unwrap();
    let dir = run_dirs(t.path()).pop().unwrap();
    let dir = dir.strip_prefix(t.path()).unwrap().display().to_string();
    // The directories are synced on threads of their own: strace -f splits a call another
    // thread interleaves into "<unfinished ...>" and "<... resumed>". Join them, each call at
    // the line where it began, with the line where it ended.
    let mut calls: Vec<(String, usize)> = Vec::new();
    let mut open: std::collections::HashMap<&str, usize> = Default::default();
    for (n, l) in trace.lines().enumerate() {
        let pid = l.split_whitespace().next().unwrap_or("");
        if let Some(head) = l.strip_suffix(" <unfinished ...>") {
            open.insert(pid, calls.len());
            calls.push((head.to_string(), n));
        } else if let (Some(i), Some(&c)) = (l.find("resumed>"), open.get(pid)) {
            open.remove(pid);
            calls[c].0.push_str(&l[i + "resumed>".len()..]);
            calls[c].1 = n;
        } else {
            calls.push((l.to_string(), n));
        }
    }
    let created = calls
        .iter()
        .position(|(l, _)| l.contains(&format!("\"{dir}/journal.jsonl\"")) && l.contains("O_CREAT"))
        .expect("the journal is created");
    // The command's first exec (a search of PATH tries several).
    let command = calls
        .iter()
        .find(|(l, _)| l.contains("execve(") && l.contains("/true\""))
        .map(|(_, end)| *end)
        .expect("the command ran");
    // After the journal was created: the run directory opened, and that descriptor synced,
    // that sync ended before the command started.
    let synced = calls[created..].iter().any(|(l, _)| {
        l.contains(&format!("openat(AT_FDCWD, \"{dir}\"")) && {
            let fd = l.rsplit("= ").next().unwrap_or("").trim().to_string();
            calls[created..]
                .iter()
                .any(|(m, end)| m.contains(&format!("fsync({fd})")) && *end < command)
        }
    });
    assert!(
        synced,
        "no fsync of {dir} after the journal was created and before the command ran:\n{trace}"
    );
}

#[test]
fn a_bad_answer_found_after_effects_ran_is_a_failure_that_rolls_back() {
    let t = Test::new()
        .file("answers.yaml", "proceed: maybe\n")
        .file(
            "deploy.rhai",
            // A question built at run time: only then is its answer checked (the ones written
            // literally are checked before the run starts).
            "sh(\"echo x >> ran\");\non_rollback(\"undo\", \"echo u >> undone\");\nlet q = \"Proceed?\";\nif confirm(q) { sh(\"touch finished\"); }\n",
        );
    let out = run(t, &[], &["deploy.rhai", "--answers", "answers.yaml"]);
    // Something changed already: not "nothing changed" (2), but a broken run, rolled back (5).
    out.expect_status(5)
        .expect_stdout_exact(&format!(
            "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo x >> ran\n\nProceed? (y/n):\n\
             Nobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).\n\n{RULE}\n\
             Rolling back: the run broke (a runbook, stdlib or answer error)\n↩ undo (echo u >> undone)\n  ✓ undo\n\
             Rollback complete: 1 step(s) undone.\n\
             ↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above.\n\
             \x20 artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
        ))
        .expect_stderr_exact("error: answer `proceed` in `answers.yaml`: `maybe` is not an answer; type y or n\n  help: for example `proceed: yes`\n");
    assert_eq!(lines(&out.dir.join("undone")), 1);
    assert!(!out.dir.join("finished").exists());
    // Nothing to undo: exit 1, said so.
    let t = Test::new().file("answers.yaml", "proceed: maybe\n").file(
        "deploy.rhai",
        "sh(\"echo x >> ran\");\nlet q = \"Proceed?\";\nconfirm(q);\n",
    );
    let out = run(t, &[], &["deploy.rhai", "--answers", "answers.yaml"]);
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo x >> ran\n\nProceed? (y/n):\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: answer `proceed` in `answers.yaml`: `maybe` is not an answer; type y or n\n  help: for example `proceed: yes`\n");
}

#[test]
fn deeply_nested_yaml_is_refused_at_once() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let t = Test::new()
        .file("deploy.rhai", "sh(\"touch ran\");\n")
        .file("runbook.yaml", &format!("vars:\n  x: {deep}\n"))
        .file("answers.yaml", &format!("x: {deep}\n"));
    let root = t.path().to_path_buf();
    let started = Instant::now();
    let out = run(t, &[], &["check", "deploy.rhai"]);
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: invalid config: it nests more than 64 levels deep\n --> runbook.yaml:2:70\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n");
    std::fs::remove_file(root.join("runbook.yaml")).unwrap();
    let out = run(
        out.again(),
        &[],
        &["deploy.rhai", "--answers", "answers.yaml"],
    );
    out.expect_status(2).expect_stderr_exact(
        "error: answers file `answers.yaml:1:68`: it nests more than 64 levels deep\n  help: an answers file is a YAML map from prompt id to answer, e.g. `strategy: canary`\n",
    );
    // One argument holds at most 128 KiB.
    let deep_arg = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    let out = run(
        out.again(),
        &[],
        &["deploy.rhai", "--set", &format!("vars.x={deep_arg}")],
    );
    out.expect_status(2);
    // Not a minute of parsing: a fraction of a second each (a debug build).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!root.join("ran").exists());
}

#[test]
fn resume_of_a_killed_rollback_points_at_runbook_rollback() {
    let failed = run(
        Test::new().file("deploy.rhai", THREE_UNDOS),
        &[],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    );
    failed.expect_status(1);
    let root = failed.dir.clone();
    let target = run_dirs(&root).pop().unwrap();
    let target = target.strip_prefix(&root).unwrap().display().to_string();
    let killed = run(failed.again(), &[], &["rollback", "--yes"]);
    killed.expect_status(-1);
    let r = run(killed.again(), &[], &["resume"]);
    r.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!(
            "error: the run in `deployments/<date>-rollback` was rolling back `{target}` when it died: finish that with `runbook rollback --set vars.deployment={target}` (it runs only what still stands)\n"
        ));
    assert_eq!(lines(&root.join("undone-3")), 1);
    assert_eq!(lines(&root.join("undone-1")), 0);
}

/// An undo that kills the process running it and outlives it by a second and a half; run again,
/// it notes whether the first copy had finished.
const UNDO_OUTLIVES_ITS_RUNNER: &str = r#"
sh("true");
on_rollback("undo 1", "echo u >> undone-1");
on_rollback("undo 2", "if [ -f killed ]; then if [ -f long-end ]; then echo after >> order; else echo overlap >> order; fi; exit 0; fi; touch killed; kill -9 $PPID; sleep 1.5; echo end >> long-end");
sh("false");
"#;

#[test]
fn an_undo_still_running_from_a_killed_rollback_is_waited_for() {
    // `runbook rollback` killed, run again.
    let failed = run(
        Test::new().file("deploy.rhai", UNDO_OUTLIVES_ITS_RUNNER),
        &[],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    );
    failed.expect_status(1);
    let root = failed.dir.clone();
    let killed = run(failed.again(), &[], &["rollback", "--yes"]);
    killed.expect_status(-1);
    let again = run(
        killed.again(),
        &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes")],
        &["rollback", "--yes", "--take-over", "killed"],
    );
    let undo_2 = "if [ -f killed ]; then if [ -f long-end ]; then echo after >> order; else echo overlap >> order; fi; exit 0; fi; touch killed; kill -9 $PPID; sleep 1.5; echo end >> long-end";
    again
        .expect_status(3)
        .expect_stdout_like(&format!(
            "▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback-2\n\
             Deployment: deployments/<date>-deploy\nUndo steps, in the order they will run:\n  ↩ undo 2: {undo_2}\n  ↩ undo 1: echo u >> undone-1\n\n\
             ⚠\u{fe0f} Roll back deployments/<date>-deploy? (2 step(s)) (y/n):\n  → yes (--yes)\n\
             ↻ the command in flight when the run died is still running (process group [..]): waiting for it to end (answer `resume-still-running: stop` to stop it)\n\
             The last rollback died while undoing `undo 2` (it may or may not have happened). Run it again? (y/n):\n\
             \x20 → yes (environment RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT)\n\n{RULE}\nRolling back: manual rollback\n\
             ↩ undo 2 ({undo_2})\n  ✓ undo 2\n↩ undo 1 (echo u >> undone-1)\n  ✓ undo 1\nRollback complete: 2 step(s) undone.\n↩ Rolled back: manual rollback\n\
             \x20 artifacts in deployments/<date>-rollback-2: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
        ))
        .expect_stderr_like(&took_over(
            "<shipped>/runbooks/rollback.rhai",
            "deployments/<date>-rollback",
        ));
    assert_eq!(
        std::fs::read_to_string(root.join("order")).unwrap(),
        "after\n"
    );
    assert_eq!(lines(&root.join("undone-1")), 1);
    // A run killed in its own rollback, resumed.
    let killed = run(
        Test::new().file("deploy.rhai", UNDO_OUTLIVES_ITS_RUNNER),
        &[],
        &["deploy.rhai"],
    );
    killed.expect_status(-1);
    let root = killed.dir.clone();
    let r = run(
        killed.again(),
        &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes")],
        &["resume"],
    );
    r.expect_status(3)
        .expect_stdout_like(&format!(
            "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\
             ↻ the run died while rolling back: finishing its rollback (the script is not run again)\n\
             ↻ the command in flight when the run died is still running (process group [..]): waiting for it to end (answer `resume-still-running: stop` to stop it)\n\
             The last rollback died while undoing `undo 2` (it may or may not have happened). Run it again? (y/n):\n\
             \x20 → yes (environment RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT)\n\n{RULE}\nRolling back: finishing the rollback the run died in\n\
             ↩ undo 2 ({undo_2})\n  ✓ undo 2\n↩ undo 1 (echo u >> undone-1)\n  ✓ undo 1\nRollback complete: 2 step(s) undone.\n\
             \x20 artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"
        ))
        .expect_stderr_like(&took_over("deploy.rhai", "deployments/<date>-deploy"));
    assert_eq!(
        std::fs::read_to_string(root.join("order")).unwrap(),
        "after\n"
    );
    assert_eq!(lines(&root.join("undone-1")), 1);
}

#[test]
fn a_runaway_push_is_stopped_by_the_array_limit_at_once() {
    // Each push used to re-measure the whole array (n pushes: O(n^2)); the limit still stops a
    // runaway loop, flat or nested.
    // (Which case failed shows in the failure's command: the script differs.)
    for (_case, body) in [
        ("flat", "a.push(\"x\");"),
        ("nested", "a.push([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);"),
    ] {
        let out = Test::new()
            .script(&format!("let a = [];\nloop {{ {body} }}\n"))
            .args(&["--set", "limits.array_size=100000"])
            .run();
        out.expect_status(1)
            .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
            .expect_stderr_exact(&format!(
                "error: Size of array/BLOB grew past its limit (see `limits` in runbook.yaml)\n --> deploy.rhai:2:10\n  |\n2 | loop {{ {body} }}\n  |          ^\n"
            ));
    }
    // Growing within the limit is whole and correct.
    let out = Test::new()
        .script("let a = [];\nfor i in 0..200000 { a.push(i); }\nprint(`len ${a.len()} last ${a[199999]}`);\n")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nlen 200000 last 199999\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
}

#[test]
fn answers_that_cannot_fit_a_declared_prompt_are_found_before_anything_runs() {
    for (answers, id, says) in [
        ("strategy: 9\n", "strategy", "`9` is not one of the choices: blue-green, rolling, canary, feature-flag (or its number)"),
        (
            "strategy: canary\nstaging-deployment-successful-proceed-to-production: maybe\n",
            "staging-deployment-successful-proceed-to-production",
            "`maybe` is not an answer to a yes/no question: yes or no",
        ),
        (
            "pre-deployment-checklist: { all-tests-passin: yes }\n",
            "pre-deployment-checklist",
            "`{\"all-tests-passin\":\"yes\"}` is not yes/no per item; `all-tests-passin` is not one of its items (all-tests-passing, security-scan-clean, performance-acceptable, database-migrations-ready, rollback-plan-prepared, monitoring-alerts-configured, team-notified)",
        ),
    ] {
        // `runbook check --answers` says so...
        let out = Test::new()
            .file("answers.yaml", answers)
            .args(&["check", "deploy", "--answers", "answers.yaml"])
            .run();
        let error = format!(
            "error: answer `{id}` in `answers.yaml`: {says}\n  help: found before the run started, so nothing was changed; fix the answer and run again\n"
        );
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact(&error);
        // ...and a run refuses before anything changes.
        let out = Test::new()
            .file("runbook.yaml", "adapter: local\nlocal: { url: \"http://127.0.0.1:9\" }\nversion: v2\ncurrent_version: v1\n")
            .file("answers.yaml", answers)
            .args(&["deploy", "--answers", "answers.yaml", "--approve"])
            .run();
        // Nothing printed on stdout: the run never began.
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact(&error);
    }
    // Answers that fit are valid.
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 3\nstaging-deployment-successful-proceed-to-production: yes\npre-deployment-checklist: { all-tests-passing: yes }\n",
        )
        .args(&["check", "deploy", "--answers", "answers.yaml"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("ok: <shipped>/runbooks/deploy.rhai compiles with 3 module(s); config defaults (no runbook.yaml); answers `answers.yaml` is valid\n")
        .expect_stderr_exact("");
}

#[test]
fn a_run_killed_but_not_yet_reaped_does_not_hold_its_lock() {
    // SIGKILL, and its parent (this test) has not waited for it yet: the process is a zombie,
    // which still "exists" for kill(pid, 0). It holds nothing: resume takes its lock over.
    let t = Test::new().file(
        "deploy.rhai",
        "sh(\"echo a >> steps\");\nsh(\"sleep 3\");\nsh(\"echo b >> steps\");\n",
    );
    let mut child = t
        .command()
        .arg("deploy.rhai")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.path().join("steps").exists() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    assert!(
        stat.contains(") Z "),
        "the killed run should be an unreaped zombie: {stat}"
    );
    let root = t.path().to_path_buf();
    let out = run(t, &[], &["resume", "--set", "resume.in_flight=rerun"]);
    let _ = child.wait();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n↻ resuming: 1 completed effect(s) replayed from the journal, without acting again\n$ sleep 3\n↻ the command in flight when the run died is still running (process group [..]): waiting for it to end (answer `resume-still-running: stop` to stop it)\n↻ in flight when the run died: sh `sleep 3`: rerun\n$ echo b >> steps\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like(&took_over("deploy.rhai", "deployments/<date>-deploy"));
    assert_eq!(lines(&root.join("steps")), 2);
}
