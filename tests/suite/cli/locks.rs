//! Locks: one run at a time, released on every exit path, stale locks.

use super::wait_for_journal;
use crate::support::Test;

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock_and_the_lock_goes_with_it() {
    let t = Test::new()
        .file("first.rhai", "sh(\"sleep 30\");\n")
        .file("second.rhai", "sh(\"touch second-ran\");\n");
    let mut first = t.command();
    first.arg("first.rhai").stdout(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    wait_for_journal(t.path(), "sleep 30");
    let lock = t.path().join("deployments/.locks/production.lock");
    let holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(holder["pid"], first.id());
    assert_eq!(holder["user"], "tester");
    let second = t.command().arg("second.rhai").output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.starts_with(&format!("error: `production` is locked by another deployment: tester on {} (pid {}) has held it for ", holder["host"].as_str().unwrap(), first.id())),
        "{err}"
    );
    assert!(err.contains("help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`"), "{err}");
    assert!(!t.path().join("second-ran").exists());
    unsafe {
        libc::kill(first.id() as i32, libc::SIGTERM);
    }
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert!(!lock.exists(), "the lock is released on interrupt");
}

#[test]
fn the_lock_is_released_on_every_exit_path() {
    for (script, code, last_line) in [
        ("sh(\"true\");", 0, "✅ Run completed."),
        (
            "sh(\"false\");",
            1,
            "✗ Run failed (nothing was registered to undo).",
        ),
        (
            "on_rollback(\"u\", \"true\"); rollback(\"r\");",
            3,
            "↩ Rolled back: r",
        ),
        (
            "decline(\"no\");",
            4,
            "  run directory: deployments/<date>-deploy",
        ),
        (
            "on_rollback(\"u\", \"true\"); sh(\"false\");",
            3,
            "Rollback complete: 1 step(s) undone.",
        ),
    ] {
        let out = Test::new().script(script).run();
        out.expect_status(code).expect_stdout_lines(&[last_line]);
        assert!(
            !out.dir.join("deployments/.locks/production.lock").exists(),
            "{script}"
        );
        let journal = out.artifact("journal.jsonl");
        assert!(
            journal.contains("\"type\":\"lock.acquire\"")
                && journal.contains("\"type\":\"lock.release\""),
            "{script}"
        );
    }
}

#[test]
fn a_stale_lock_is_reported_and_taken_over_only_with_a_reason_and_unlock_is_recorded() {
    // A holder whose lease ran out (it stopped renewing: it died, or its host did) is followed
    // at once, and the run journals whom it followed (#15: every backend, the file one included).
    let expired = r#"{"environment":"production","user":"ghost","host":"elsewhere","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":1,"run_dir":"deployments/old"}"#;
    let out = Test::new()
        .file("deployments/.locks/production.lock", expired)
        .script("sh(\"touch ran\");")
        .run();
    // How long it was held is a duration: the rest is pinned.
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch ran\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like("warning: the last holder of `production` let its lease run out without releasing it (it died, or lost the lock store): ghost on elsewhere (pid 4000000) has held it for [..] (reason: old run), run deployments/old\n");
    assert!(out.dir.join("ran").exists());
    assert_eq!(out.records("lock.expired")[0]["previous"]["user"], "ghost");

    // One whose process is gone on this host while its lease still runs is stale: reported,
    // and taken over only with a reason.
    let stale = format!(
        r#"{{"environment":"production","user":"ghost","host":"{}","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":99999999999,"run_dir":"deployments/old"}}"#,
        runbook::identity::host()
    );
    let t = Test::new()
        .file("deployments/.locks/production.lock", &stale)
        .script("sh(\"touch ran\");");
    let out = t.run();
    let host = runbook::identity::host();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!("error: `production` has a stale lock (its process 4000000 is gone): ghost on {host} (pid 4000000) has held it for [..] (reason: old run), run deployments/old\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"));
    assert!(!out.dir.join("ran").exists());
    let out = out
        .again()
        .args(&[
            "deploy.rhai",
            "--take-over",
            "the old runner host was decommissioned",
        ])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch ran\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like(&format!("warning: took over the stale lock of `production`: ghost on {host} (pid 4000000) has held it for [..] (reason: old run), run deployments/old\n"));
    assert!(out.dir.join("ran").exists());
    let takeover = out.records("lock.takeover");
    assert_eq!(takeover[0]["previous"]["user"], "ghost");
    assert_eq!(
        takeover[0]["reason"],
        "the old runner host was decommissioned (stale: its process 4000000 is gone)"
    );
    // Break-glass: unlock records who broke which lock and why.
    let t = out
        .again()
        .file("deployments/.locks/production.lock", &stale)
        .args(&["unlock", "production", "--reason", "checked by hand"]);
    let u = t.run();
    u.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_like(&format!("ok: `production` unlocked (was: ghost on {host} (pid 4000000) has held it for [..] (reason: old run), run deployments/old); recorded in deployments/.locks/unlock-log.jsonl\n"));
    assert!(!u.dir.join("deployments/.locks/production.lock").exists());
    let log = std::fs::read_to_string(u.dir.join("deployments/.locks/unlock-log.jsonl")).unwrap();
    assert!(
        log.contains("\"reason\":\"checked by hand\"") && log.contains("\"user\":\"ghost\""),
        "{log}"
    );
}
