//! What ends a run, and with which exit code: one test per row of the table in README.md
//! ("Exit codes") and docs/architecture.md. Exit 3 means the release (or a step of it) was found
//! bad, or a person or the script chose to roll back, and everything was undone cleanly; exit 5
//! means the run itself broke and was rolled back cleanly, so CI can tell the two apart.

use crate::support;

use crate::support::Test;

/// A runbook that changed something (an undo stands) and then does `then`.
fn after_a_change(then: &str) -> Test {
    Test::new().script(&format!(
        "sh(\"touch changed\");\non_rollback(\"remove the change\", \"rm changed\");\n{then}\n"
    ))
}

fn expect(out: &support::Output, code: i32, outcome: &str) {
    out.expect_status(code);
    let end = out.records("run.end");
    assert_eq!(end.len(), 1, "{end:?}");
    assert_eq!(end[0]["outcome"], outcome, "{end:?}");
    assert_eq!(end[0]["exit_code"], code, "{end:?}");
}

#[test]
fn completed_is_0() {
    let out = after_a_change("print(\"done\");").run();
    expect(&out, 0, "completed");
    out.expect_stderr_exact("")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch changed\ndone\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
    assert!(out.dir.join("changed").exists());
}

#[test]
fn the_script_calling_rollback_is_3() {
    let out = after_a_change("rollback(\"the canary looked wrong\");").run();
    expect(&out, 3, "rolled back");
    assert!(!out.dir.join("changed").exists(), "the undo ran");
}

#[test]
fn a_failing_verdict_then_rollback_is_3() {
    let out = after_a_change(
        r#"let r = analyze(#{ name: "canary", interval: "10ms", count: 3, metrics: [
               #{ name: "error_rate", provider: #{ command: #{ run: "echo 0.2" } }, failure: "> 0.05" } ] });
           if !r.healthy { rollback(r.reason); }"#,
    )
    .run();
    expect(&out, 3, "rolled back");
    assert!(!out.dir.join("changed").exists());
}

#[test]
fn a_failed_command_is_3() {
    let out = after_a_change("sh(\"exit 1\");").run();
    expect(&out, 3, "rolled back");
    out.expect_stderr_exact("error: command `exit 1` failed with exit code 1\n --> deploy.rhai:3:1\n  |\n3 | sh(\"exit 1\");\n  | ^\n");
    assert!(!out.dir.join("changed").exists());
}

#[test]
fn a_failed_health_check_is_3() {
    let out = after_a_change("check(#{ cmd: \"false\" });").run();
    expect(&out, 3, "rolled back");
    out.expect_stderr_exact("error: check `false` failed: exit 1\n --> deploy.rhai:3:1\n  |\n3 | check(#{ cmd: \"false\" });\n  | ^\n");
    assert!(!out.dir.join("changed").exists());
}

#[test]
fn a_person_choosing_rollback_after_a_failure_is_3_and_refusing_is_1() {
    let yes = after_a_change("sh(\"exit 1\");")
        .file("answers.yaml", "initiate-rollback: yes\n")
        .args(&[
            "--answers",
            "answers.yaml",
            "--set",
            "rollback.on_failure=ask",
        ])
        .run();
    expect(&yes, 3, "rolled back");
    yes.expect_stderr_exact("error: command `exit 1` failed with exit code 1\n --> deploy.rhai:3:1\n  |\n3 | sh(\"exit 1\");\n  | ^\n");
    let no = after_a_change("sh(\"exit 1\");")
        .file("answers.yaml", "initiate-rollback: no\n")
        .args(&[
            "--answers",
            "answers.yaml",
            "--set",
            "rollback.on_failure=ask",
        ])
        .run();
    expect(&no, 1, "failed");
    no.expect_stderr_exact("error: command `exit 1` failed with exit code 1\n --> deploy.rhai:3:1\n  |\n3 | sh(\"exit 1\");\n  | ^\n")
        .expect_stdout_lines(&[
            "⚠\u{fe0f} Issue detected! Initiate rollback? (y/n):",
            "  → no (answers file answers.yaml)",
            "✗ Run failed; 1 undo step(s) still stand: see rollback-plan.md",
        ]);
    assert!(no.dir.join("changed").exists(), "nothing was undone");
}

#[test]
fn a_runbook_error_after_changes_is_5_not_3() {
    for (what, bug, error) in [
        (
            "an unknown function",
            "no_such_function(1);",
            "error: no function `no_such_function`\n --> deploy.rhai:3:1\n  |\n3 | no_such_function(1);\n  | ^\n",
        ),
        (
            "an index out of range",
            "let a = [1]; print(a[5]);",
            "error: Array index 5 out of bounds: only 1 element in array\n --> deploy.rhai:3:22\n  |\n3 | let a = [1]; print(a[5]);\n  |                      ^\n",
        ),
        (
            "a missing property",
            "let m = #{}; print(m.nope);",
            "error: the map has no property `nope`\n --> deploy.rhai:3:22\n  |\n3 | let m = #{}; print(m.nope);\n  |                      ^\n",
        ),
    ] {
        let out = after_a_change(bug).run();
        expect(&out, 5, "rolled back after an error");
        assert!(!out.dir.join("changed").exists(), "{what}: the undo ran");
        out.expect_stderr_exact(error)
            .expect_stdout_lines(&["↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above."]);
    }
}

#[test]
fn a_module_error_after_changes_is_5() {
    let out = after_a_change("import \"lib\" as lib;\nlib::broken();")
        .file("lib.rhai", "fn broken() { let a = []; a[3] }\n")
        .run();
    expect(&out, 5, "rolled back after an error");
    out.expect_stderr_exact("error: Array index 3 out of bounds: array is empty\n --> lib.rhai:1:29\n  |\n1 | fn broken() { let a = []; a[3] }\n  |                             ^\n  note: called from deploy.rhai:4:6\n  |\n4 | lib::broken();\n  |      ^\n")
        .expect_stdout_lines(&["↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above."]);
    assert!(!out.dir.join("changed").exists());
}

#[test]
fn a_bad_answer_found_after_changes_is_rolled_back_with_5() {
    // A question built at run time: its answer is checked only when it is asked.
    let out =
        after_a_change("let q = \"Proceed to production?\";\nif confirm(q) { print(\"go\"); }")
            .file("answers.yaml", "proceed-to-production: maybe\n")
            .args(&["--answers", "answers.yaml"])
            .run();
    expect(&out, 5, "rolled back after an error");
    out.expect_stderr_exact("error: answer `proceed-to-production` in `answers.yaml`: `maybe` is not an answer; type y or n\n  help: for example `proceed-to-production: yes`\n")
        .expect_stdout_lines(&["↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above."]);
    assert!(!out.dir.join("changed").exists(), "the undo ran");
}

#[test]
fn an_unanswerable_prompt_after_changes_is_rolled_back_with_5() {
    // (It once called `input` with `()` for its default, which no `input` takes: it exited 5
    // for an unknown function, not for the prompt. The message pins which error it was.)
    let out = after_a_change("input(\"Which region?\", \"eu\");").run();
    expect(&out, 5, "rolled back after an error");
    out.expect_stderr_exact(
        "error: input `which-region` needs an answer and there is no terminal to ask\n  \
         question: Which region?\n  \
         help: answer it in a file given with `--answers FILE`, as `which-region: some text`\n  \
         help: or set the environment variable RUNBOOK_ANSWER_WHICH_REGION\n",
    )
    .expect_stdout_lines(&["↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above."]);
    assert!(!out.dir.join("changed").exists(), "the undo ran");
}

#[test]
fn a_bad_answer_before_any_change_is_2() {
    // Found before the run starts: no run directory, nothing changed.
    let out = Test::new()
        .script("if confirm(\"Proceed to production?\") { sh(\"touch changed\"); }")
        .file("answers.yaml", "proceed-to-production: maybe\n")
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: answer `proceed-to-production` in `answers.yaml`: `maybe` is not an answer to a yes/no question: yes or no\n  help: found before the run started, so nothing was changed; fix the answer and run again\n");
    assert!(!out.dir.join("deployments").exists());
    assert!(!out.dir.join("changed").exists());
    // A question built at run time, asked before any change: exit 2, "stopped".
    let out = Test::new()
        .script("let q = \"Proceed to production?\";\nif confirm(q) { sh(\"touch changed\"); }")
        .file("answers.yaml", "proceed-to-production: maybe\n")
        .args(&["--answers", "answers.yaml"])
        .run();
    expect(&out, 2, "stopped");
    out.expect_stderr_exact("error: answer `proceed-to-production` in `answers.yaml`: `maybe` is not an answer; type y or n\n  help: for example `proceed-to-production: yes`\n");
    assert!(!out.dir.join("changed").exists());
}

#[test]
fn a_rollback_that_fails_is_1() {
    let out = Test::new()
        .script("on_rollback(\"cannot undo\", \"exit 1\");\nsh(\"exit 1\");")
        .run();
    expect(&out, 1, "rollback failed");
    out.expect_stderr_exact("error: command `exit 1` failed with exit code 1\n --> deploy.rhai:2:1\n  |\n2 | sh(\"exit 1\");\n  | ^\n")
        .expect_stdout_lines(&[
            "  ✗ cannot undo: command `exit 1` failed with exit code 1",
            "Rollback incomplete: 1 of 1 undo step(s) failed: cannot undo",
        ]);
}

#[test]
fn a_runbook_error_with_nothing_to_undo_is_1() {
    let out = Test::new().script("no_such_function(1);").run();
    expect(&out, 1, "failed");
    out.expect_stderr_exact("error: no function `no_such_function`\n --> deploy.rhai:1:1\n  |\n1 | no_such_function(1);\n  | ^\n")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n");
}

#[test]
fn declined_at_a_gate_is_4() {
    let out = after_a_change("decline(\"staging sign-off\");").run();
    expect(&out, 4, "declined");
    out.expect_stderr_exact("error: `staging sign-off` was declined by the runbook; nothing further was changed\n")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch changed\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
}

#[test]
fn a_dry_run_that_stops_at_a_missing_answer_is_2_and_rolls_nothing_back() {
    let out = after_a_change("if confirm(\"Proceed to production?\") { print(\"go\"); }")
        .args(&["--dry-run"])
        .run();
    expect(&out, 2, "stopped");
    out.expect_stderr_exact("error: confirmation `proceed-to-production` needs an answer and there is no terminal to ask\n  question: Proceed to production?\n  help: answer it in a file given with `--answers FILE`, as `proceed-to-production: yes`\n  help: or set the environment variable RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION\n  help: or pass --yes to answer confirmations and checklists with yes\n")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy` (dry-run: nothing will be executed)\n  run directory: deployments/<date>-deploy-dry-run\n$ touch changed\n\n  artifacts in deployments/<date>-deploy-dry-run: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
}

#[test]
fn monitoring_that_could_not_measure_is_5_not_3() {
    let out = after_a_change(
        r#"import "stdlib/monitor" as monitor;
           let r = analyze(#{ name: "canary", interval: "10ms", count: 3, metrics: [
               #{ name: "error_rate", provider: #{ command: #{ run: "exit 1" } }, failure: "> 0.05" } ] });
           if monitor::must_roll_back(r) { monitor::roll_back(r, `v2: ${r.reason}`); }"#,
    )
    .run();
    expect(&out, 5, "rolled back after an error");
    assert!(!out.dir.join("changed").exists());
    out.expect_stderr_exact("").expect_stdout_lines(&[
        "↩ Rolled back because the run could not judge the release (exit 5): monitoring could not measure: v2: error_rate: no successful measurement in 3: 3 provider error(s); last: error: `exit 1` exited with 1",
    ]);
}

#[test]
fn a_lost_lock_stops_the_run_before_its_next_step_with_1_and_rolls_nothing_back() {
    // The run holds `production` with a short lease (renewed every 100 ms); while its first step
    // runs, someone breaks the lock. Its next step is refused, nothing is rolled back.
    let t = Test::new()
        .script(
            "sh(\"touch first\");\non_rollback(\"undo first\", \"rm first\");\nsh(\"sleep 1.5\");\nsh(\"touch second\");\n",
        )
        .args(&["--set", "lock.lease=300ms"]);
    let dir = t.path().to_path_buf();
    let child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dir.join("first").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let unlock = std::process::Command::new(support::BIN)
        .args(["unlock", "production", "--reason", "taking over by hand"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        unlock.status.success(),
        "{}",
        String::from_utf8_lossy(&unlock.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the lock on `production` was lost while this run held it: it was broken (`runbook unlock`) and nobody holds it"),
        "{stderr}"
    );
    assert!(
        !dir.join("second").exists(),
        "a step ran after the lock was lost"
    );
    assert!(dir.join("first").exists(), "nothing was rolled back");
}

/// Reads are not changes: a run that measured, probed, checked, scraped and notified, and then
/// met a prompt nobody can answer, changed nothing: exit 2, as for a prompt before any effect
/// (found by a team whose workflow probed its Prometheus first: it exited 1).
#[test]
fn a_missing_answer_after_reads_only_is_2() {
    let out = Test::new()
        .file("runbook.yaml", "notify:\n  team: { type: stdout }\n")
        .script(
            "measure(#{ command: #{ cmd: \"echo 1\" } });\n\
             probe(#{ command: #{ cmd: \"echo 1\" } });\n\
             check(#{ cmd: \"true\" });\n\
             notify(\"team\", \"starting\");\n\
             if confirm(\"Proceed to production?\") { print(\"go\"); }\n",
        )
        .run();
    expect(&out, 2, "stopped");
    out.expect_stderr_exact("error: confirmation `proceed-to-production` needs an answer and there is no terminal to ask\n  question: Proceed to production?\n  help: answer it in a file given with `--answers FILE`, as `proceed-to-production: yes`\n  help: or set the environment variable RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION\n  help: or pass --yes to answer confirmations and checklists with yes\n");
    // A command is a change: after one, the same missing answer is a failure, not exit 2.
    let out = Test::new()
        .script("sh(\"true\");\nif confirm(\"Proceed to production?\") { print(\"go\"); }\n")
        .run();
    out.expect_status(1)
        .expect_stderr_exact("error: confirmation `proceed-to-production` needs an answer and there is no terminal to ask\n  question: Proceed to production?\n  help: answer it in a file given with `--answers FILE`, as `proceed-to-production: yes`\n  help: or set the environment variable RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION\n  help: or pass --yes to answer confirmations and checklists with yes\n")
        .expect_stdout_lines(&["✗ Run failed (nothing was registered to undo)."]);
}
