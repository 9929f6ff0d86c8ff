//! Sh: commands, their output, failures, retries, options and the kill on a timeout.

use crate::support::Test;

#[test]
fn sh_streams_output_and_returns_a_map() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("echo out; echo err >&2");
            if r.code != 0 || r.stdout != "out\n" || r.stderr != "err\n" { throw "bad result " + r; }
            let a = sh(["printf", "%s|%s", "a b", "c"]);
            if a.stdout != "a b|c\n" && a.stdout != "a b|c" { throw "argv: " + a.stdout; }
            print("duration is int: " + type_of(r.duration));
            "#,
        )
        .run();
    // The two streams are read concurrently: their relative order is not fixed.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "$ echo out; echo err >&2",
            "  │ out",
            "$ printf %s|%s 'a b' c",
        ])
        .expect_stdout_lines(&[
            "$ echo out; echo err >&2",
            "  ! err",
            "$ printf %s|%s 'a b' c",
        ])
        .expect_stdout_lines(&[
            "$ printf %s|%s 'a b' c",
            "  │ a b|c",
            "duration is int: i64",
            "✅ Run completed.",
        ]);
    let log = out.artifact("deployment-log.txt");
    assert!(log.contains("| out") && log.contains("! err"), "{log}");
}

#[test]
fn a_failing_command_is_a_catchable_error_unless_allowed() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("exit 3", #{ allow_fail: true });
            print(`allowed code ${r.code}`);
            try { sh("echo bad >&2; exit 7"); } catch (e) { print(`caught: ${e}`); }
            "#,
        )
        .run();
    out.expect_status(0).expect_stderr_exact("").expect_stdout_exact(
        "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ exit 3\n  ✗ command `exit 3` failed with exit code 3 (allowed)\nallowed code 3\n$ echo bad >&2; exit 7\n  ! bad\n  ✗ command `echo bad >&2; exit 7` failed with exit code 7: bad\ncaught: command `echo bad >&2; exit 7` failed with exit code 7: bad\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n",
    );
}

#[test]
fn retries_with_backoff_until_the_command_succeeds() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]",
                       #{ retries: 3, backoff: "10ms" });
            print(`attempts ${r.attempts}`);
            "#,
        )
        .run();
    out.expect_status(0).expect_stderr_exact("").expect_stdout_exact(
        "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]\n  ✗ command `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]` failed with exit code 1; retry 1 of 3 in 10ms\n$ n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]\n  ✗ command `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]` failed with exit code 1; retry 2 of 3 in 20ms\n$ n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]\nattempts 3\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n",
    );
    assert_eq!(
        out.records("effect.intent")
            .iter()
            .filter(|r| r["kind"] == "sh")
            .count(),
        3
    );
}

#[test]
fn env_and_cwd_options_reach_the_command() {
    let out = Test::new()
        .file("sub/x.txt", "")
        .script(r#"let r = sh("echo $GREETING; ls", #{ env: #{ GREETING: "hi" }, cwd: "sub" }); print(r.stdout);"#)
        .run();
    out.expect_status(0).expect_stderr_exact("").expect_stdout_exact(
        "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo $GREETING; ls\n  │ hi\n  │ x.txt\nhi\nx.txt\n\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n",
    );
}

#[test]
fn an_unknown_option_is_named_with_a_suggestion() {
    let out = Test::new()
        .script(r#"sh("true", #{ timout: "1s" });"#)
        .run();
    out.expect_status(1).expect_stderr_exact(
        "error: `sh` has no option `timout` (did you mean `timeout`?); its options are: timeout, env, cwd, retries, backoff, allow_fail, quiet, name\n --> deploy.rhai:1:1\n  |\n1 | sh(\"true\", #{ timout: \"1s\" });\n  | ^\n",
    );
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period_with_its_children() {
    let start = std::time::Instant::now();
    let out = Test::new()
        .script(
            r#"
            try {
                sh("trap '' TERM; (trap '' TERM; sleep 30; touch orphan-survived) & sleep 30", #{ timeout: "300ms" });
            } catch (e) { print(`caught: ${e}`); }
            "#,
        )
        .args(&["--set", "commands.kill_grace=200ms"])
        .run();
    out.expect_status(0);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    // How long it took is in the message: the rest is pinned.
    out.expect_stderr_exact("").expect_stdout_contains(&[
        "\ncaught: command `trap '' TERM; (trap '' TERM; sleep 30; touch orphan-survived) & sleep 30` timed out after ",
        "ms\n✅ Run completed.\n",
    ]);
    // The background grandchild was in the same process group: it must be gone too.
    let pgrep = std::process::Command::new("pgrep")
        .args(["-f", "touch orphan-survived"])
        .output();
    if let Ok(p) = pgrep {
        assert!(
            p.stdout.is_empty(),
            "a grandchild survived: {}",
            String::from_utf8_lossy(&p.stdout)
        );
    }
}
