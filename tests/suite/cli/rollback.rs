//! Stages and rollback: the undo stack, last in first out.

use crate::support::Test;

#[test]
fn rollback_runs_undos_last_in_first_out_and_exits_3() {
    let out = Test::new()
        .script(
            r#"
            stage("Deploy", || {
                on_rollback("first", "echo undo-first >> order");
                on_rollback("second", ["sh", "-c", "echo undo-second >> order"]);
                on_rollback("third", "echo undo-third >> order");
            });
            rollback("error rate above 5%");
            sh("touch never");
            "#,
        )
        .run();
    // The stage's line says how long it took: the rest is pinned line by line.
    out.expect_status(3)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
            "Rolling back: error rate above 5%",
            "↩ third (echo undo-third >> order)",
            "  ✓ third",
            "↩ second (sh -c 'echo undo-second >> order')",
            "  ✓ second",
            "↩ first (echo undo-first >> order)",
            "  ✓ first",
            "Rollback complete: 3 step(s) undone.",
            "↩ Rolled back: error rate above 5%",
        ]);
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "undo-third\nundo-second\nundo-first\n"
    );
    assert!(!out.dir.join("never").exists());
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("- Outcome: rolled back"), "{pm}");
    assert!(pm.contains("rollback started: error rate above 5%"), "{pm}");
    let rp = out.artifact("rollback-plan.md");
    assert!(
        rp.contains("None: nothing this run did is waiting to be undone."),
        "{rp}"
    );
    assert!(rp.contains("- third: exit 0"), "{rp}");
}

#[test]
fn a_failing_undo_is_reported_the_rest_still_run_and_the_exit_is_1() {
    let out = Test::new()
        .script(
            r#"
            on_rollback("first", "echo first >> order");
            on_rollback("broken", "echo broken >&2; exit 9");
            on_rollback("last", "echo last >> order");
            rollback("manual");
            "#,
        )
        .run();
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: manual\n↩ last (echo last >> order)\n  ✓ last\n↩ broken (echo broken >&2; exit 9)\n  ! broken\n  ✗ broken: command `echo broken >&2; exit 9` failed with exit code 9: broken\n↩ first (echo first >> order)\n  ✓ first\nRollback incomplete: 1 of 3 undo step(s) failed: broken\n✗ Rollback failed: see rollback-plan.md for what still stands\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "last\nfirst\n"
    );
    assert!(out
        .artifact("post-mortem.md")
        .contains("- Outcome: rollback failed"));
}

#[test]
fn an_uncaught_failure_rolls_back_on_its_own_when_nobody_can_be_asked() {
    let out = Test::new()
        .script(
            r#"
            stage("Deploy", || {
                sh("touch deployed");
                on_rollback("remove deployed", "rm deployed");
                sh("echo boom >&2; exit 1");
            });
            "#,
        )
        .run();
    // The stage's line says how long it took: the rest is pinned line by line.
    out.expect_status(3)
        .expect_stderr_exact("error: command `echo boom >&2; exit 1` failed with exit code 1: boom\n --> deploy.rhai:5:17\n  |\n5 |                 sh(\"echo boom >&2; exit 1\");\n  |                 ^\n  note: called from deploy.rhai:2:13\n  |\n2 |             stage(\"Deploy\", || {\n  |             ^\n")
        .expect_stdout_lines(&[
            "  ✗ command `echo boom >&2; exit 1` failed with exit code 1: boom",
            "Nobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).",
            "Rolling back: a step failed",
            "↩ remove deployed (rm deployed)",
            "  ✓ remove deployed",
            "Rollback complete: 1 step(s) undone.",
        ]);
    assert!(!out.dir.join("deployed").exists());
}

#[test]
fn on_failure_never_leaves_the_undo_stack_standing_with_exit_1() {
    let out = Test::new()
        .script("on_rollback(\"undo it\", \"rm deployed\"); sh(\"touch deployed\"); sh(\"false\");")
        .args(&["--set", "rollback.on_failure=never"])
        .run();
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch deployed\n$ false\n  ✗ command `false` failed with exit code 1\n✗ Run failed; 1 undo step(s) still stand: see rollback-plan.md\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: command `false` failed with exit code 1\n --> deploy.rhai:1:62\n  |\n1 | on_rollback(\"undo it\", \"rm deployed\"); sh(\"touch deployed\"); sh(\"false\");\n  |                                                              ^\n");
    assert!(out.dir.join("deployed").exists());
    let rp = out.artifact("rollback-plan.md");
    assert!(rp.contains("1. undo it: `rm deployed`"), "{rp}");
}

#[test]
fn a_stdlib_function_undo_is_data_and_runs_from_its_module() {
    let out = Test::new()
        .file("ops.rhai", "fn restore(name, n) { sh(`echo restored ${name} ${n} >> order`); }\n")
        .script(r#"on_rollback("restore", #{ function: "ops::restore", args: ["blue", 2] }); rollback("test");"#)
        .run();
    out.expect_status(3)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: test\n↩ restore (ops::restore(\"blue\", 2))\n$ echo restored blue 2 >> order\n  ✓ restore\nRollback complete: 1 step(s) undone.\n↩ Rolled back: test\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "restored blue 2\n"
    );
    let reg = &out.records("undo.register")[0];
    assert_eq!(
        reg["action"],
        serde_json::json!({ "kind": "call", "module": "ops", "function": "restore", "args": ["blue", 2] })
    );
}

#[test]
fn a_closure_cannot_be_an_undo() {
    let out = Test::new()
        .script("on_rollback(\"x\", || sh(\"true\"));")
        .run();
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: an undo must be data the journal can hold (a command, or #{ function: \"module::function\", args: [...] }), not a closure: a closure dies with the process, and `runbook rollback` must be able to undo what a dead run did\n --> deploy.rhai:1:1\n  |\n1 | on_rollback(\"x\", || sh(\"true\"));\n  | ^\n");
}
