//! Recovery paths: resuming, rolling back after a crash, locks, secrets and full disks. Kills are
//! placed by what the journal holds (a prompt reached, a record written), never at random.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{pty, Test};

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

/// What one `runbook` command printed and how it exited.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    #[track_caller]
    fn code(&self, want: i32) -> &Ran {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `runbook ARGS` in the test's directory, with `env` added.
fn run(t: &Test, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let mut cmd = t.command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run runbook");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
        &t,
        &[("RUNBOOK_ANSWER_GO_ON", "yes")],
        &["resume", &dir.display().to_string()],
    );
    resumed.code(0);
    for f in ["ran", "undone", "finished"] {
        assert!(
            !t.path().join(f).exists(),
            "a resumed dry-run acted: `{f}` exists\n{}",
            resumed.stdout
        );
    }
    assert!(
        resumed
            .stdout
            .contains("(dry-run: nothing will be executed)"),
        "{}",
        resumed.stdout
    );
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
    let whole = Test::new().file("deploy.rhai", DRY_KILL);
    run(&whole, &[], &["deploy.rhai", "--dry-run"]).code(0);
    let total = journal(&run_dirs(whole.path()).pop().unwrap()).len();
    assert!(total > 8, "{total}");
    for k in 1..total {
        let t = Test::new().file("deploy.rhai", DRY_KILL);
        let kill = k.to_string();
        let first = run(
            &t,
            &[("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill)],
            &["deploy.rhai", "--dry-run"],
        );
        assert_eq!(first.code, -1, "killed after record {k}\n{}", first.stderr);
        let dir = run_dirs(t.path()).pop().unwrap();
        assert!(dir.to_string_lossy().ends_with("-dry-run"), "{dir:?}");
        let resumed = run(
            &t,
            &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun")],
            &["resume", &dir.display().to_string()],
        );
        resumed.code(0);
        for f in ["ran-1", "ran-2", "ran-3", "undone", "written.txt"] {
            assert!(
                !t.path().join(f).exists(),
                "killed after record {k}: the resumed dry-run acted: `{f}` exists\n{}",
                resumed.stdout
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
        let t = Test::new().file("deploy.rhai", THREE_UNDOS);
        run(
            &t,
            &[],
            &["deploy.rhai", "--set", "rollback.on_failure=never"],
        )
        .code(1);
        let target = run_dirs(t.path()).pop().unwrap();
        let first = run(&t, &[], &["rollback", "--yes"]);
        assert_eq!(first.code, -1, "killed during undo 2\n{}", first.stdout);
        assert_eq!(lines(&t.path().join("undone-3")), 1);
        assert_eq!(lines(&t.path().join("undone-2")), 1);
        assert_eq!(lines(&t.path().join("undone-1")), 0);
        // The next rollback (of the newest deployment, not of the killed rollback) runs only what
        // still stands, and asks about the undo that was under way.
        let second = run(
            &t,
            &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", answer)],
            &[
                "rollback",
                "--yes",
                "--take-over",
                "the first rollback was killed",
            ],
        );
        second.code(3);
        assert!(
            second.stdout.contains(&format!(
                "Deployment: {}",
                target.strip_prefix(t.path()).unwrap().display()
            )),
            "{}",
            second.stdout
        );
        assert!(
            second
                .stdout
                .contains("The last rollback died while undoing `undo 2`"),
            "{}",
            second.stdout
        );
        assert_eq!(lines(&t.path().join("undone-3")), 1, "undo 3 ran once");
        assert_eq!(
            lines(&t.path().join("undone-2")),
            want_2,
            "undo 2, answer {answer}"
        );
        assert_eq!(lines(&t.path().join("undone-1")), 1, "undo 1 ran once");
        // Nothing stands now.
        let third = run(&t, &[], &["rollback", "--yes"]);
        third.code(0);
        assert!(
            third.stdout.contains("Nothing stands to be undone"),
            "{}",
            third.stdout
        );
        assert_eq!(lines(&t.path().join("undone-1")), 1);
        let v = run(&t, &[], &["verify", &target.display().to_string()]);
        v.code(0);
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
        let t = Test::new()
            .file(LOCK, junk)
            .file("deploy.rhai", "sh(\"touch ran\");\n");
        let out = run(&t, &[], &["deploy.rhai"]);
        out.code(2);
        assert_eq!(
            out.stderr,
            format!("error: `production` has a stale lock (the lock file `{LOCK}` is empty or half-written: its writer died before finishing it, so no run holds it)\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"),
        );
        assert!(!t.path().join("ran").exists());
        run(
            &t,
            &[],
            &["deploy.rhai", "--take-over", "the lock file was empty"],
        )
        .code(0);
        assert!(t.path().join("ran").exists());
        assert!(!t.path().join(LOCK).exists(), "released");
        // `runbook unlock` breaks it too.
        std::fs::write(t.path().join(LOCK), junk).unwrap();
        let u = run(&t, &[], &["unlock", "production", "--reason", "empty lock"]);
        u.code(0);
        assert!(
            u.stdout
                .starts_with("ok: `production` unlocked (was: an empty or half-written lock file)"),
            "{}",
            u.stdout
        );
        assert!(!t.path().join(LOCK).exists());
        // A run killed while writing its lock: `runbook resume` goes on without a manual unlock.
        let t = Test::new().file("deploy.rhai", KILLED_AT_2);
        assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
        std::fs::write(t.path().join(LOCK), junk).unwrap();
        let r = run(
            &t,
            &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
            &["resume"],
        );
        r.code(0);
        assert_eq!(lines(&t.path().join("ran-3")), 1);
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
    let t = Test::new().file("deploy.rhai", KILLED_AT_2);
    assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
    // Both read the dead run's stale lock, then pause before taking it over: with a
    // read-check-write take-over, both would win.
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
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(2)],
        "\n{}\n{}\n{}\n{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&b.stderr)
    );
    let (winner, loser) = if a.status.code() == Some(0) {
        (a, b)
    } else {
        (b, a)
    };
    let _ = winner;
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.starts_with("error: `production` is locked by another deployment: tester on "),
        "{err}"
    );
    assert!(err.contains("(reason: resume of deployments/"), "{err}");
    assert_eq!(lines(&t.path().join("ran-3")), 1, "step 3 ran once");
    let dir = run_dirs(t.path()).pop().unwrap();
    run(&t, &[], &["verify", &dir.display().to_string()]).code(0);
}

#[test]
fn a_live_run_renews_its_short_lease_so_it_is_never_taken_over() {
    let t = Test::new()
        .file("first.rhai", "sh(\"sleep 4\");\n")
        .file("second.rhai", "sh(\"touch second-ran\");\n");
    let mut first = t.command();
    first
        .args(["first.rhai", "--set", "lock.lease=1500ms"])
        .stdout(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    wait_for_record(t.path(), "lock.acquire", 1);
    std::thread::sleep(Duration::from_millis(2500));
    // Past the first lease: a live run renewed it, so it is not stale.
    let second = run(&t, &[], &["second.rhai", "--take-over", "it looks stale"]);
    second.code(2);
    assert!(
        second
            .stderr
            .starts_with("error: `production` is locked by another deployment: "),
        "{}",
        second.stderr
    );
    assert!(!t.path().join("second-ran").exists());
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
        let t = Test::new().file("deploy.rhai", KILLED_AT_3_AND_IN_UNDO_2);
        assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
        // Nobody to ask about step 3: roll back (`resume.in_flight`), killed during undo 2.
        let first = run(&t, &[], &["resume"]);
        first.code(-1);
        assert_eq!(lines(&t.path().join("undone-2")), 1);
        assert_eq!(lines(&t.path().join("undone-1")), 0);
        let second = run(
            &t,
            &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", answer)],
            &["resume"],
        );
        second.code(3);
        assert!(
            second
                .stdout
                .contains("The last rollback died while undoing `undo 2`"),
            "{}",
            second.stdout
        );
        for k in 1..=3 {
            assert_eq!(lines(&t.path().join(format!("ran-{k}"))), 1, "step {k}");
        }
        assert_eq!(
            lines(&t.path().join("undone-2")),
            want_2,
            "undo 2, {answer}"
        );
        assert_eq!(lines(&t.path().join("undone-1")), 1, "undo 1 ran once");
        assert!(!t.path().join("finished").exists());
        let dir = run_dirs(t.path()).pop().unwrap();
        run(&t, &[], &["verify", &dir.display().to_string()]).code(0);
        let again = run(&t, &[], &["resume"]);
        again.code(2);
    }
}

// ---------------------------------------------------------------- 6: settings given at resume time

#[test]
fn resume_honours_resume_settings_given_at_resume_time_and_refuses_other_changes() {
    let t = Test::new().file("deploy.rhai", KILLED_AT_2);
    assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
    // Another setting changed: refused as a changed config.
    let refused = run(&t, &[], &["resume", "--set", "vars.region=eu"]);
    refused.code(2);
    assert!(
        refused
            .stderr
            .starts_with("error: the config changed since the run in `deployments/"),
        "{}",
        refused.stderr
    );
    assert_eq!(lines(&t.path().join("ran-3")), 0);
    // How to resume is the resume's to say: re-run the step in flight (not the default rollback).
    let out = run(&t, &[], &["resume", "--set", "resume.in_flight=rerun"]);
    out.code(0);
    assert!(
        out.stdout.contains("kill -9 $PPID; }`: rerun"),
        "{}",
        out.stdout
    );
    assert_eq!(lines(&t.path().join("ran-2")), 2, "re-run");
    assert_eq!(lines(&t.path().join("ran-3")), 1);
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
    run(&t, &[], &["a.rhai", "--set", "rollback.on_failure=never"]).code(1);
    std::thread::sleep(Duration::from_millis(50));
    run(
        &t,
        &[],
        &[
            "b.rhai",
            "--set",
            "rollback.on_failure=never",
            "--deployments-dir",
            "team-b",
        ],
    )
    .code(1);
    // The newest run under ./deployments is a's; rolling back team-b's must touch only b's.
    let out = run(
        &t,
        &[],
        &["rollback", "--yes", "--deployments-dir", "team-b"],
    );
    out.code(3);
    assert!(out.stdout.contains("Deployment: team-b/"), "{}", out.stdout);
    assert!(t.path().join("undone-b").exists());
    assert!(
        !t.path().join("undone-a").exists(),
        "another team's deployment was rolled back"
    );
    // resume looks for unfinished runs where it is told.
    let t2 = Test::new().file("deploy.rhai", KILLED_AT_2);
    assert_eq!(
        run(&t2, &[], &["deploy.rhai", "--deployments-dir", "team-b"]).code,
        -1
    );
    let r = run(
        &t2,
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume", "--deployments-dir", "team-b"],
    );
    r.code(0);
    assert_eq!(lines(&t2.path().join("ran-3")), 1);
    // unlock breaks the lock where it is told.
    let stale = r#"{"environment":"production","user":"ghost","host":"elsewhere","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":1,"run_dir":"team-b/old"}"#;
    std::fs::create_dir_all(t2.path().join("team-b/.locks")).unwrap();
    std::fs::write(t2.path().join("team-b/.locks/production.lock"), stale).unwrap();
    let u = run(
        &t2,
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
    u.code(0);
    assert!(
        u.stdout
            .starts_with("ok: `production` unlocked (was: ghost"),
        "{}",
        u.stdout
    );
    assert!(!t2.path().join("team-b/.locks/production.lock").exists());
    // Pointed at a place with no lock, unlock says where it looked.
    let u = run(&t2, &[], &["unlock", "production", "--reason", "checked"]);
    u.code(0);
    assert!(
        u.stdout.starts_with(
            "`production` was not locked (no lock under `deployments`: see --deployments-dir)"
        ),
        "{}",
        u.stdout
    );
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
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: journal `deployments/"), "{stderr}");
    assert!(stderr.contains("File too large (os error 27)"), "{stderr}");
    assert!(
        stderr.contains("so it was not carried out: the run stops rather than act unrecorded"),
        "{stderr}"
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
    run(&t, &[], &["verify", &dir.display().to_string()]).code(0);
    for k in 1..=40 {
        assert!(lines(&t.path().join(format!("ran-{k}"))) <= 1, "step {k}");
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
    let token = ("DEPLOY_TOKEN", "dtok-55555-secret");
    run(
        &t,
        &[token],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    )
    .code(1);
    let text = all_text(t.path());
    assert!(
        !text.contains("tok-98765-secret") && !text.contains("dtok-55555-secret"),
        "{text}"
    );
    // Without DEPLOY_TOKEN: the undo that needs it fails, naming it; the other runs with its secret.
    let first = run(&t, &[], &["rollback", "--yes"]);
    first.code(1);
    assert!(
        first.stdout.contains("✗ revoke deploy: the undo needs the secret `DEPLOY_TOKEN`, which this process does not have"),
        "{}",
        first.stdout
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("revoked-api")).unwrap(),
        "tok-98765-secret\n"
    );
    assert!(!t.path().join("revoked-deploy").exists());
    // Given the secret, the next rollback runs what still stands, with the secret's value.
    let second = run(&t, &[token], &["rollback", "--yes"]);
    second.code(3);
    assert_eq!(
        std::fs::read_to_string(t.path().join("revoked-deploy")).unwrap(),
        "dtok-55555-secret\n"
    );
    let text = all_text(t.path());
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
    let secret = "secrets.values.api_token=tok-24680-secret";
    assert_eq!(run(&t, &[], &["deploy.rhai", "--set", secret]).code, -1);
    let dir = run_dirs(t.path()).pop().unwrap();
    let journal_text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(!journal_text.contains("tok-24680-secret"));
    // Not given again: said before anything runs.
    let without = run(
        &t,
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume"],
    );
    without.code(2);
    assert_eq!(
        without.stderr,
        "error: the run was started with the secret `api_token`, which this resume was not given\n  help: give it again: `--set secrets.values.api_token=...`, or in runbook.yaml\n"
    );
    // Given again at resume: not a changed input, and the run goes on with it.
    let with = run(
        &t,
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume", "--set", secret],
    );
    with.code(0);
    assert_eq!(
        std::fs::read_to_string(t.path().join("used-3")).unwrap(),
        "tok-24680-secret\n"
    );
    assert_eq!(lines(&t.path().join("used-1")), 1);
    let text = all_text(t.path());
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
    let whole = Test::new().file("deploy.rhai", KILL_MATRIX);
    run(&whole, &answers, &["deploy.rhai"]).code(3);
    let total = journal(&run_dirs(whole.path()).pop().unwrap()).len();
    assert!(total > 20, "{total}");
    let (mut kills, mut resume_kills, mut reruns) = (0, 0, 0);
    for k in 1..total {
        let t = Test::new().file("deploy.rhai", KILL_MATRIX);
        let kill = k.to_string();
        let mut env = answers.to_vec();
        env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill));
        let first = run(&t, &env, &["deploy.rhai"]);
        assert_eq!(first.code, -1, "killed after record {k}\n{}", first.stderr);
        kills += 1;
        let mut started = started_when_killed(t.path());
        let dir = run_dirs(t.path()).pop().unwrap();
        // Every other time, the first resume is killed too, a few records in.
        let mut resume_kill = (k % 2 == 0).then(|| (journal(&dir).len() + 1 + k % 4).to_string());
        let mut last = None;
        for _ in 0..4 {
            let mut env = answers.to_vec();
            if let Some(n) = &resume_kill {
                env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", n));
            }
            let r = run(&t, &env, &["resume"]);
            if r.code == -1 {
                resume_kills += 1;
                resume_kill = None;
                started.extend(started_when_killed(t.path()));
                continue;
            }
            last = Some(r);
            break;
        }
        let last = last.expect("the run finished after a few resumes");
        reruns += started.len();
        last.code(3);
        for f in [
            "ran-1", "ran-2", "ran-3", "undone-1", "undone-2", "undone-3",
        ] {
            let rerun = started.iter().filter(|m| *m == f).count();
            assert_eq!(
                lines(&t.path().join(f)),
                1 + rerun,
                "{f}, killed after record {k}\n{}\n{}",
                last.stdout,
                last.stderr
            );
        }
        run(&t, &[], &["verify", &dir.display().to_string()]).code(0);
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
    let whole = Test::new().file("deploy.rhai", deploy);
    run(&whole, &[], &never).code(1);
    run(&whole, &answers, &["rollback", "--yes"]).code(3);
    let rollback_dir = run_dirs(whole.path())
        .into_iter()
        .find(|d| d.to_string_lossy().contains("rollback"))
        .unwrap();
    let total = journal(&rollback_dir).len();
    let (mut kills, mut reruns) = (0, 0);
    for k in 1..total {
        let t = Test::new().file("deploy.rhai", deploy);
        run(&t, &[], &never).code(1);
        let target = run_dirs(t.path()).pop().unwrap();
        let kill = k.to_string();
        let mut env = answers.to_vec();
        env.push(("RUNBOOK_FAULT_KILL_AFTER_RECORD", &kill));
        let first = run(&t, &env, &["rollback", "--yes"]);
        if first.code != -1 {
            // The deployment's own journal numbers its records higher: no kill this time.
            first.code(3);
            continue;
        }
        kills += 1;
        let started = started_when_killed(t.path());
        reruns += started.len();
        let again = run(
            &t,
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
            "killed after record {k}\n{}\n{}",
            again.stdout,
            again.stderr
        );
        for f in [
            "ran-1", "ran-2", "ran-3", "undone-1", "undone-2", "undone-3",
        ] {
            let rerun = started.iter().filter(|m| *m == f).count();
            assert_eq!(
                lines(&t.path().join(f)),
                1 + rerun,
                "{f}, rollback killed after record {k}\n{}",
                again.stdout
            );
        }
        run(&t, &[], &["verify", &target.display().to_string()]).code(0);
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
        let t = Test::new().file("deploy.rhai", OUTLIVES_ITS_RUNNER);
        assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
        assert!(!t.path().join("long-end").exists(), "still running");
        let r = run(
            &t,
            &[
                ("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun"),
                ("RUNBOOK_ANSWER_RESUME_STILL_RUNNING", choice),
            ],
            &["resume"],
        );
        r.code(0);
        assert!(
            r.stdout.contains("is still running (process group "),
            "{}",
            r.stdout
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("order")).unwrap(),
            want_order,
            "{choice}: the re-run and the first copy"
        );
        std::thread::sleep(Duration::from_millis(1700));
        assert_eq!(t.path().join("long-end").exists(), want_end, "{choice}");
        assert_eq!(lines(&t.path().join("ran-2")), 1);
    }
}

// ---------------------------------------------------------------- 13: smaller recovery cases

#[test]
fn binary_garbage_as_config_answers_or_runbook_is_a_usage_error() {
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(600).collect();
    let t = Test::new().file("deploy.rhai", "sh(\"touch ran\");\n");
    std::fs::write(t.path().join("garbage"), &garbage).unwrap();
    for (args, what) in [
        (vec!["deploy.rhai", "--config", "garbage"], "config"),
        (vec!["deploy.rhai", "--answers", "garbage"], "answers"),
        (vec!["garbage"], "runbook"),
        (vec!["check", "garbage"], "runbook"),
    ] {
        let out = run(&t, &[], &args);
        out.code(2);
        assert_eq!(
            out.stderr,
            format!("error: cannot read {what} `garbage`: it is not text (not valid UTF-8)\n"),
            "{args:?}"
        );
    }
    assert!(!t.path().join("ran").exists());
}

#[test]
fn verify_refuses_an_empty_journal_and_names_a_repaired_record() {
    let t = Test::new().file("deployments/empty/journal.jsonl", "");
    let v = run(&t, &[], &["verify", "deployments/empty"]);
    v.code(1);
    assert_eq!(
        v.stderr,
        "error: journal `deployments/empty/journal.jsonl` is empty: it holds no record to check\n"
    );
    // A run killed mid-record, then resumed: the torn line is repaired, and verify says so.
    let t = Test::new().file("deploy.rhai", KILLED_AT_2);
    assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
    let dir = run_dirs(t.path()).pop().unwrap();
    let mut text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.push_str("{\"seq\":99,\"ty");
    std::fs::write(dir.join("journal.jsonl"), &text).unwrap();
    run(
        &t,
        &[("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "skip")],
        &["resume"],
    )
    .code(0);
    let v = run(&t, &[], &["verify", &dir.display().to_string()]);
    v.code(0);
    let n = text.lines().count();
    assert!(
        v.stdout.starts_with(&format!(
            "note: record {n} is a `journal.repaired` record: the record after record {} was cut off mid-write (its fragment is kept in it)\n",
            n - 1
        )),
        "{}",
        v.stdout
    );
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
    let out = run(&t, &[], &["deploy.rhai"]);
    out.code(0);
    assert!(
        out.stderr.contains("warning: the secret `pin` is shorter than 4 characters, so it is not redacted (it would mask ordinary text everywhere): use a longer one\n"),
        "{}",
        out.stderr
    );
    let everything = format!("{}{}{}", out.stdout, out.stderr, all_text(t.path()));
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
    assert_eq!(out.status.code(), Some(0));
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
    let out = run(&t, &[], &["deploy.rhai", "--answers", "answers.yaml"]);
    // Something changed already: not "nothing changed" (2), but a broken run, rolled back (5).
    out.code(5);
    assert!(
        out.stderr
            .starts_with("error: answer `proceed` in `answers.yaml`: "),
        "{}",
        out.stderr
    );
    assert_eq!(lines(&t.path().join("undone")), 1);
    assert!(!t.path().join("finished").exists());
    // Nothing to undo: exit 1, said so.
    let t = Test::new().file("answers.yaml", "proceed: maybe\n").file(
        "deploy.rhai",
        "sh(\"echo x >> ran\");\nlet q = \"Proceed?\";\nconfirm(q);\n",
    );
    let out = run(&t, &[], &["deploy.rhai", "--answers", "answers.yaml"]);
    out.code(1);
    assert!(
        out.stdout
            .contains("✗ Run failed (nothing was registered to undo)."),
        "{}",
        out.stdout
    );
}

#[test]
fn deeply_nested_yaml_is_refused_at_once() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let t = Test::new()
        .file("deploy.rhai", "sh(\"touch ran\");\n")
        .file("runbook.yaml", &format!("vars:\n  x: {deep}\n"))
        .file("answers.yaml", &format!("x: {deep}\n"));
    let started = Instant::now();
    let out = run(&t, &[], &["check", "deploy.rhai"]);
    out.code(2);
    assert!(
        out.stderr.contains("it nests more than 64 levels deep"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(t.path().join("runbook.yaml")).unwrap();
    let out = run(&t, &[], &["deploy.rhai", "--answers", "answers.yaml"]);
    out.code(2);
    assert_eq!(
        out.stderr,
        "error: answers file `answers.yaml:1:68`: it nests more than 64 levels deep\n  help: an answers file is a YAML map from prompt id to answer, e.g. `strategy: canary`\n"
    );
    // One argument holds at most 128 KiB.
    let deep_arg = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    let out = run(
        &t,
        &[],
        &["deploy.rhai", "--set", &format!("vars.x={deep_arg}")],
    );
    out.code(2);
    // Not a minute of parsing: a fraction of a second each (a debug build).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!t.path().join("ran").exists());
}

#[test]
fn resume_of_a_killed_rollback_points_at_runbook_rollback() {
    let t = Test::new().file("deploy.rhai", THREE_UNDOS);
    run(
        &t,
        &[],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    )
    .code(1);
    let target = run_dirs(t.path()).pop().unwrap();
    let target = target.strip_prefix(t.path()).unwrap().display().to_string();
    assert_eq!(run(&t, &[], &["rollback", "--yes"]).code, -1);
    let r = run(&t, &[], &["resume"]);
    r.code(2);
    assert!(
        r.stderr.starts_with("error: the run in `deployments/") && r.stderr.contains(&format!(
            "` was rolling back `{target}` when it died: finish that with `runbook rollback --set vars.deployment={target}` (it runs only what still stands)"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(lines(&t.path().join("undone-3")), 1);
    assert_eq!(lines(&t.path().join("undone-1")), 0);
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
    let t = Test::new().file("deploy.rhai", UNDO_OUTLIVES_ITS_RUNNER);
    run(
        &t,
        &[],
        &["deploy.rhai", "--set", "rollback.on_failure=never"],
    )
    .code(1);
    assert_eq!(run(&t, &[], &["rollback", "--yes"]).code, -1);
    let again = run(
        &t,
        &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes")],
        &["rollback", "--yes", "--take-over", "killed"],
    );
    again.code(3);
    assert!(
        again.stdout.contains("is still running (process group "),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("order")).unwrap(),
        "after\n"
    );
    assert_eq!(lines(&t.path().join("undone-1")), 1);
    // A run killed in its own rollback, resumed.
    let t = Test::new().file("deploy.rhai", UNDO_OUTLIVES_ITS_RUNNER);
    assert_eq!(run(&t, &[], &["deploy.rhai"]).code, -1);
    let r = run(
        &t,
        &[("RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT", "yes")],
        &["resume"],
    );
    r.code(3);
    assert!(
        r.stdout.contains("is still running (process group "),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("order")).unwrap(),
        "after\n"
    );
    assert_eq!(lines(&t.path().join("undone-1")), 1);
}

#[test]
fn a_runaway_push_is_stopped_by_the_array_limit_at_once() {
    // Each push used to re-measure the whole array (n pushes: O(n^2)); the limit still stops a
    // runaway loop, flat or nested.
    for (what, body) in [
        ("flat", "a.push(\"x\");"),
        ("nested", "a.push([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);"),
    ] {
        let out = Test::new()
            .script(&format!("let a = [];\nloop {{ {body} }}\n"))
            .args(&["--set", "limits.array_size=100000"])
            .run();
        assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(
                "error: Size of array/BLOB grew past its limit (see `limits` in runbook.yaml)"
            ),
            "{what}: {}",
            out.stderr
        );
    }
    // Growing within the limit is whole and correct.
    let out = Test::new()
        .script("let a = [];\nfor i in 0..200000 { a.push(i); }\nprint(`len ${a.len()} last ${a[199999]}`);\n")
        .run();
    out.expect_status(0);
    assert!(
        out.stdout.contains("len 200000 last 199999"),
        "{}",
        out.stdout
    );
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
            "`all-tests-passin` is not one of its items",
        ),
    ] {
        // `runbook check --answers` says so...
        let out = Test::new()
            .file("answers.yaml", answers)
            .args(&["check", "deploy", "--answers", "answers.yaml"])
            .run();
        assert_eq!(out.code, 2, "{id}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&format!("error: answer `{id}` in `answers.yaml`: "))
                && out.stderr.contains(says),
            "{id}: {}",
            out.stderr
        );
        // ...and a run refuses before anything changes.
        let out = Test::new()
            .file("runbook.yaml", "adapter: local\nlocal: { url: \"http://127.0.0.1:9\" }\nversion: v2\ncurrent_version: v1\n")
            .file("answers.yaml", answers)
            .args(&["deploy", "--answers", "answers.yaml", "--approve"])
            .run();
        assert_eq!(out.code, 2, "{id}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{id}: {}", out.stderr);
        assert!(!out.stdout.contains("Prerequisites"), "{id}: the run began\n{}", out.stdout);
    }
    // Answers that fit are valid.
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 3\nstaging-deployment-successful-proceed-to-production: yes\npre-deployment-checklist: { all-tests-passing: yes }\n",
        )
        .args(&["check", "deploy", "--answers", "answers.yaml"])
        .run();
    out.expect_status(0);
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
    let out = run(&t, &[], &["resume", "--set", "resume.in_flight=rerun"]);
    let _ = child.wait();
    out.code(0);
    assert!(
        out.stderr.contains("took over the stale lock"),
        "{}",
        out.stderr
    );
    assert_eq!(lines(&t.path().join("steps")), 2);
}
