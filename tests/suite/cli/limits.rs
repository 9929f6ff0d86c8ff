//! Limits: wall clock, call depth, string, array and map sizes, signals.

use super::{only_run_dir, wait_for_journal};
use crate::support::{pty, Test};

#[test]
fn the_wall_clock_limit_stops_a_long_command_a_sleep_and_a_busy_loop_then_rolls_back() {
    for (body, shown) in [
        ("sh(\"sleep 30\");", "$ sleep 30\n"),
        ("sleep(\"30s\");", ""),
        ("let i = 0; loop { i += 1; }", ""),
    ] {
        let started = std::time::Instant::now();
        let out = Test::new()
            .script(&format!(
                "on_rollback(\"undo\", \"touch undone\");\n{body}\nsh(\"touch after\");\n"
            ))
            .args(&[
                "--set",
                "limits.wall_clock=1s",
                "--set",
                "commands.kill_grace=200ms",
            ])
            .run();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{body}: took {:?}",
            started.elapsed()
        );
        out.expect_status(3)
            .expect_stderr_exact("error: the run passed its wall-clock limit of 1.0s (`limits.wall_clock`)\n")
            .expect_stdout_exact(&format!("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n{shown}Nobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: a step failed\n↩ undo (touch undone)\n  ✓ undo\nRollback complete: 1 step(s) undone.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"));
        assert!(out.dir.join("undone").exists(), "{body}: rolled back");
        assert!(!out.dir.join("after").exists(), "{body}");
    }
}

#[test]
fn call_depth_string_array_and_map_limits_each_stop_the_script() {
    for (body, set, want) in [
        (
            "fn f(n) { f(n + 1) } f(0);",
            "limits.call_depth=20",
            "error: the script called functions too deeply (`limits.call_depth`)\n --> deploy.rhai:1:22\n  |\n1 | fn f(n) { f(n + 1) } f(0);\n  |                      ^\n",
        ),
        (
            "let s = \"x\"; loop { s += s; }",
            "limits.string_size=1000",
            "error: Length of string grew past its limit (see `limits` in runbook.yaml)\n --> deploy.rhai:1:23\n  |\n1 | let s = \"x\"; loop { s += s; }\n  |                       ^\n",
        ),
        (
            "let a = []; loop { a.push(1); }",
            "limits.array_size=1000",
            "error: Size of array/BLOB grew past its limit (see `limits` in runbook.yaml)\n --> deploy.rhai:1:22\n  |\n1 | let a = []; loop { a.push(1); }\n  |                      ^\n",
        ),
        (
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
            "limits.map_size=1000",
            "error: Size of object map grew past its limit (see `limits` in runbook.yaml)\n --> deploy.rhai:1:32\n  |\n1 | let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }\n  |                                ^\n",
        ),
    ] {
        // The operation limit is a backstop here: the limit under test must come first.
        let out = Test::new()
            .script(body)
            .args(&["--set", set, "--set", "limits.operations=2000000"])
            .run();
        out.expect_status(1)
            .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
            .expect_stderr_exact(want);
    }
}

#[test]
fn sigterm_during_a_sleep_or_a_prompt_exits_130_with_the_lock_released() {
    // A sleep, without a terminal.
    let t = Test::new().script("on_rollback(\"u\", \"true\");\nlog(\"sleeping\");\nsleep(\"30s\");\nsh(\"touch after\");\n");
    let mut child = t
        .command()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_journal(t.path(), "sleeping");
    std::thread::sleep(std::time::Duration::from_millis(100));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!t.path().join("after").exists());
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
    let journal = std::fs::read_to_string(only_run_dir(t.path()).join("journal.jsonl")).unwrap();
    assert!(
        journal.trim_end().ends_with("}") && journal.contains("\"outcome\":\"interrupted\""),
        "{journal}"
    );

    // A prompt, at a terminal: the first Ctrl-C stops it and offers rollback; "n" leaves it.
    let t = Test::new().script("on_rollback(\"u\", \"touch undone\");\nconfirm(\"Proceed to production?\");\nsh(\"touch after\");\n");
    let mut p = pty(&t, &[]);
    p.exp_string("Proceed to production? (y/n):").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Roll back what this run changed? (y/n):")
        .unwrap();
    p.send_line("n").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 130)"), "{status:?}");
    assert!(!t.path().join("after").exists() && !t.path().join("undone").exists());
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
}
