//! A person at a real terminal (a pty): prompts, Ctrl-C, the quickstart.

use super::only_run_dir;
use crate::support::{pty, Test};

#[test]
fn prompts_at_a_real_terminal_re_ask_on_a_bad_answer_and_record_the_person() {
    let t = Test::new().script(
        r#"
        let s = choose("How would you like to deploy this feature?", ["Blue-Green Deployment", "Rolling Deployment", "Canary Release", "Feature Flag"], #{ id: "strategy" });
        print(`strategy=${s}`);
        let missing = checklist("Pre-deployment checklist:", ["All tests passing?", "Team notified?"]);
        print(`missing=${missing}`);
        approve(#{ feature: "checkout", changes: "payments", risk: "High", rollback_time: "1m" });
        sh("touch approved-marker");
        "#,
    );
    let mut p = pty(&t, &[]);
    p.exp_string("Press 1, 2, 3, or 4:").unwrap();
    p.send_line("7").unwrap();
    p.exp_string("`7` is not one of the choices; press 1, 2, 3, or 4")
        .unwrap();
    p.send_line("3").unwrap();
    p.exp_string("strategy=Canary Release").unwrap();
    p.exp_string("- [ ] All tests passing? (y/n):").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("- [ ] Team notified? (y/n):").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("missing=[\"Team notified?\"]").unwrap();
    p.exp_string("Do you approve deployment? (y/n):").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Run completed.").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 0)"), "{status:?}");
    assert!(t.path().join("approved-marker").exists());
    let dir = only_run_dir(t.path());
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let approval: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "effect.result" && r["kind"] == "prompt.approve")
        .expect("an approval record");
    assert_eq!(approval["result"]["approved"], true);
    assert_eq!(approval["result"]["by"], "tester");
    assert!(journal.contains(r#""how":"at the terminal""#), "{journal}");
}

#[test]
fn ctrl_c_at_a_terminal_stops_the_command_and_offers_rollback() {
    let t = Test::new().script(
        r#"
        on_rollback("undo deploy", "touch rolled-back");
        sh("echo deploying; sleep 30");
        sh("touch never");
        "#,
    );
    let mut p = pty(&t, &[]);
    p.exp_string("deploying").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Roll back what this run changed? (y/n):")
        .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Rollback complete").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 3)"), "{status:?}");
    assert!(t.path().join("rolled-back").exists());
    assert!(!t.path().join("never").exists());
}

#[test]
fn a_second_ctrl_c_aborts_at_once_with_130() {
    let t = Test::new().script(
        "on_rollback(\"undo\", \"touch rolled-back\");\nsh(\"echo deploying; sleep 30\");\n",
    );
    let mut p = pty(&t, &[]);
    p.exp_string("deploying").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("(Ctrl-C again to abort now)").unwrap();
    p.exp_string("(y/n):").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted twice: aborting now").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 130)"), "{status:?}");
    assert!(!t.path().join("rolled-back").exists());
}

#[test]
fn the_quickstart_example_runs_and_its_module_undo_rolls_back() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let t = Test::new().example(
        "quickstart",
        &[
            "runbook.yaml",
            "deploy.rhai",
            "answers.yaml",
            "lib/app.rhai",
        ],
    );
    let out = t.args(&["deploy.rhai", "--answers", "answers.yaml"]).run();
    // Each step's time varies: the rest of what the quickstart shows is pinned.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_like("▶ deploy.rhai — feature `quickstart`\n  run directory: deployments/<date>-quickstart\n\n━━ Pre-deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ Full test suite: true\n○ Integration tests: not configured (set checks.integration in runbook.yaml)\n○ End-to-end tests: not configured (set checks.e2e in runbook.yaml)\n○ Security scan: not configured (set checks.security in runbook.yaml)\n○ Performance check: not configured (set checks.performance in runbook.yaml)\n$ Build verification: echo building\n  │ building\n2 of 6 automated checks configured and passing\n\nPre-deployment checklist:\n- [x] All tests passing? (answers file answers.yaml)\n- [x] Security scan clean? (answers file answers.yaml)\n- [x] Performance acceptable? (answers file answers.yaml)\n- [x] Database migrations ready? (answers file answers.yaml)\n- [x] Rollback plan prepared? (answers file answers.yaml)\n- [x] Monitoring alerts configured? (answers file answers.yaml)\n- [x] Team notified? (answers file answers.yaml)\n✓ Pre-deployment ([..])\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: quickstart\nChanges: quickstart example\nRisk Level: Low\nRollback Time: 1 minute\n\nDo you approve deployment? (y/n):\n  → approved by quickstart-user (answers file answers.yaml)\n\n━━ Stage 1: Staging Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ mkdir -p releases && echo 1.0.0 > releases/staging\n  ✓ staging release written (exit 0, [..])\n✓ Stage 1: Staging Deployment ([..])\n\nStaging deployment successful. Proceed to production? (y/n):\n  → yes (answers file answers.yaml)\n\n━━ Stage 2: Production Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ mkdir -p releases && echo 1.0.0 > releases/production\n✓ Stage 2: Production Deployment ([..])\n📣 [console] quickstart 1.0.0 deployed\n  ✉ console: quickstart 1.0.0 deployed\n✅ Run completed.\n  artifacts in deployments/<date>-quickstart: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n");
    assert_eq!(
        std::fs::read_to_string(out.dir.join("releases/production")).unwrap(),
        "1.0.0\n"
    );

    // The same deploy with a failing production step: the module-function undos restore both.
    let t = Test::new().example(
        "quickstart",
        &["runbook.yaml", "answers.yaml", "lib/app.rhai"],
    );
    let script = std::fs::read_to_string(example.join("deploy.rhai"))
        .unwrap()
        .replace(
            "app::deploy(\"production\", config(\"version\"));",
            "app::deploy(\"production\", config(\"version\")); sh(\"exit 1\");",
        );
    let out = t
        .file("deploy.rhai", &script)
        .args(&["deploy.rhai", "--answers", "answers.yaml"])
        .run();
    out.expect_status(3)
        .expect_stderr_exact("error: command `exit 1` failed with exit code 1\n --> deploy.rhai:21:51\n   |\n21 |     app::deploy(\"production\", config(\"version\")); sh(\"exit 1\");\n   |                                                   ^\n  note: called from deploy.rhai:20:1\n   |\n20 | stage(\"Stage 2: Production Deployment\", || {\n   | ^\n")
        .expect_stdout_like("▶ deploy.rhai — feature `quickstart`\n  run directory: deployments/<date>-quickstart\n\n━━ Pre-deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ Full test suite: true\n○ Integration tests: not configured (set checks.integration in runbook.yaml)\n○ End-to-end tests: not configured (set checks.e2e in runbook.yaml)\n○ Security scan: not configured (set checks.security in runbook.yaml)\n○ Performance check: not configured (set checks.performance in runbook.yaml)\n$ Build verification: echo building\n  │ building\n2 of 6 automated checks configured and passing\n\nPre-deployment checklist:\n- [x] All tests passing? (answers file answers.yaml)\n- [x] Security scan clean? (answers file answers.yaml)\n- [x] Performance acceptable? (answers file answers.yaml)\n- [x] Database migrations ready? (answers file answers.yaml)\n- [x] Rollback plan prepared? (answers file answers.yaml)\n- [x] Monitoring alerts configured? (answers file answers.yaml)\n- [x] Team notified? (answers file answers.yaml)\n✓ Pre-deployment ([..])\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: quickstart\nChanges: quickstart example\nRisk Level: Low\nRollback Time: 1 minute\n\nDo you approve deployment? (y/n):\n  → approved by quickstart-user (answers file answers.yaml)\n\n━━ Stage 1: Staging Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ mkdir -p releases && echo 1.0.0 > releases/staging\n  ✓ staging release written (exit 0, [..])\n✓ Stage 1: Staging Deployment ([..])\n\nStaging deployment successful. Proceed to production? (y/n):\n  → yes (answers file answers.yaml)\n\n━━ Stage 2: Production Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━\n$ mkdir -p releases && echo 1.0.0 > releases/production\n$ exit 1\n  ✗ command `exit 1` failed with exit code 1\n✗ Stage 2: Production Deployment ([..])\nNobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: a step failed\n↩ restore production (lib/app::restore(\"production\"))\n$ rm -f releases/production\n  ✓ restore production\n↩ restore staging (lib/app::restore(\"staging\"))\n$ rm -f releases/staging\n  ✓ restore staging\nRollback complete: 2 step(s) undone.\n  artifacts in deployments/<date>-quickstart: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md, post-mortem.md\n");
    assert!(!out.dir.join("releases/production").exists());
    assert!(!out.dir.join("releases/staging").exists());
}

/// Ctrl-D at a question on a real terminal ends its input: the error says so, not that there is
/// no terminal (found by a new team's trial).
#[test]
fn ctrl_d_at_a_question_says_the_terminals_input_ended() {
    let t =
        Test::new().script("let ok = confirm(\"Proceed to production?\");\nsh(\"touch never\");\n");
    let mut p = pty(&t, &[]);
    p.exp_string("Proceed to production? (y/n):").unwrap();
    p.send_control('d').unwrap();
    p.exp_string(
        "error: confirmation `proceed-to-production` needs an answer and the terminal's input ended (Ctrl-D) before one was given",
    )
    .unwrap();
    p.exp_string("  question: Proceed to production?").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 2)"), "{status:?}");
    assert!(!t.path().join("never").exists());
}
