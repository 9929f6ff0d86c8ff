//! Prompts and answers: answer files, the environment, approvals.

use crate::support::Test;

const PROMPTS: &str = r#"
let s = choose("How would you like to deploy this feature?", [
    #{ key: "blue-green", label: "Blue-Green Deployment", notes: ["Zero downtime", "Easy rollback", "Resource intensive"] },
    #{ key: "rolling", label: "Rolling Deployment", notes: ["Gradual update"] },
    #{ key: "canary", label: "Canary Release", notes: ["Test with small traffic %"] },
    #{ key: "feature-flag", label: "Feature Flag", notes: ["Deploy dark"] },
], #{ id: "strategy" });
print(`strategy=${s}`);
let name = input("Release name", "r1");
print(`name=${name}`);
let unchecked = checklist("Pre-deployment checklist:", ["All tests passing?", "Security scan clean?"]);
print(`unchecked=${unchecked}`);
if confirm("Proceed to production?") { print("proceeding"); }
"#;

#[test]
fn answers_come_from_a_file_keyed_by_prompt_id() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 3\nrelease-name: spring\npre-deployment-checklist:\n  all-tests-passing: yes\n  security-scan-clean: no\nproceed-to-production: y\n",
        )
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\nHow would you like to deploy this feature?\n\n1\u{fe0f}\u{20e3} Blue-Green Deployment\n   - Zero downtime\n   - Easy rollback\n   - Resource intensive\n\n2\u{fe0f}\u{20e3} Rolling Deployment\n   - Gradual update\n\n3\u{fe0f}\u{20e3} Canary Release\n   - Test with small traffic %\n\n4\u{fe0f}\u{20e3} Feature Flag\n   - Deploy dark\n  → Canary Release (answers file answers.yaml)\nstrategy=canary\n  → spring (answers file answers.yaml)\nname=spring\n\nPre-deployment checklist:\n- [x] All tests passing? (answers file answers.yaml)\n- [ ] Security scan clean? (answers file answers.yaml)\nunchecked=[\"Security scan clean?\"]\n\nProceed to production? (y/n):\n  → yes (answers file answers.yaml)\nproceeding\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact("");
    let checklist = out.artifact("pre-deployment-checklist.md");
    assert!(
        checklist.contains("| All tests passing? | ✅ yes | tester | answers file answers.yaml |"),
        "{checklist}"
    );
    assert!(
        checklist.contains("| Security scan clean? | ❌ no | tester | answers file answers.yaml |"),
        "{checklist}"
    );
    let plan = out.artifact("deployment-plan.md");
    assert!(plan.contains("- Strategy: Canary Release"), "{plan}");
}

#[test]
fn answers_come_from_the_environment_too() {
    let out = Test::new()
        .script(PROMPTS)
        .env("RUNBOOK_ANSWER_STRATEGY", "Feature Flag")
        .env("RUNBOOK_ANSWER_RELEASE_NAME", "env-name")
        .env("RUNBOOK_ANSWER_PRE_DEPLOYMENT_CHECKLIST", "yes")
        .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "no")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\nHow would you like to deploy this feature?\n\n1\u{fe0f}\u{20e3} Blue-Green Deployment\n   - Zero downtime\n   - Easy rollback\n   - Resource intensive\n\n2\u{fe0f}\u{20e3} Rolling Deployment\n   - Gradual update\n\n3\u{fe0f}\u{20e3} Canary Release\n   - Test with small traffic %\n\n4\u{fe0f}\u{20e3} Feature Flag\n   - Deploy dark\n  → Feature Flag (environment RUNBOOK_ANSWER_STRATEGY)\nstrategy=feature-flag\n  → env-name (environment RUNBOOK_ANSWER_RELEASE_NAME)\nname=env-name\n\nPre-deployment checklist:\n- [x] All tests passing? (environment RUNBOOK_ANSWER_PRE_DEPLOYMENT_CHECKLIST)\n- [x] Security scan clean? (environment RUNBOOK_ANSWER_PRE_DEPLOYMENT_CHECKLIST)\nunchecked=[]\n\nProceed to production? (y/n):\n  → no (environment RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION)\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact("");
}

#[test]
fn a_missing_answer_without_a_terminal_stops_before_the_prompt_with_exit_2() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 1\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\nHow would you like to deploy this feature?\n\n1\u{fe0f}\u{20e3} Blue-Green Deployment\n   - Zero downtime\n   - Easy rollback\n   - Resource intensive\n\n2\u{fe0f}\u{20e3} Rolling Deployment\n   - Gradual update\n\n3\u{fe0f}\u{20e3} Canary Release\n   - Test with small traffic %\n\n4\u{fe0f}\u{20e3} Feature Flag\n   - Deploy dark\n  → Blue-Green Deployment (answers file answers.yaml)\nstrategy=blue-green\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact(
        "error: input `release-name` needs an answer and there is no terminal to ask\n  \
         question: Release name\n  \
         help: answer it in a file given with `--answers FILE`, as `release-name: some text`\n  \
         help: or set the environment variable RUNBOOK_ANSWER_RELEASE_NAME\n",
    );
}

#[test]
fn an_answer_no_prompt_asked_for_is_reported_as_unused() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 1\nrelease-name: x\npre-deployment-checklist: yes\nproceed-to-production: yes\nproced-to-production: no\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\nHow would you like to deploy this feature?\n\n1\u{fe0f}\u{20e3} Blue-Green Deployment\n   - Zero downtime\n   - Easy rollback\n   - Resource intensive\n\n2\u{fe0f}\u{20e3} Rolling Deployment\n   - Gradual update\n\n3\u{fe0f}\u{20e3} Canary Release\n   - Test with small traffic %\n\n4\u{fe0f}\u{20e3} Feature Flag\n   - Deploy dark\n  → Blue-Green Deployment (answers file answers.yaml)\nstrategy=blue-green\n  → x (answers file answers.yaml)\nname=x\n\nPre-deployment checklist:\n- [x] All tests passing? (answers file answers.yaml)\n- [x] Security scan clean? (answers file answers.yaml)\nunchecked=[]\n\nProceed to production? (y/n):\n  → yes (answers file answers.yaml)\nproceeding\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact(
        "warning: answers.yaml: `proced-to-production` answers no prompt this runbook asks; did you mean `proceed-to-production`?\n\
         warning: answers file `answers.yaml` has an answer for `proced-to-production` that no prompt asked for (did you mean `proceed-to-production`?)\n",
    );
}

/// A run that stopped early never reached some prompts: their answers are said to be unreached,
/// not wrong (found by the new-team trial: every later answer was reported "no prompt asked for").
#[test]
fn answers_a_run_never_reached_are_not_called_wrong() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 1
release-name: x
pre-deployment-checklist: yes
proceed-to-production: yes
",
        )
        .script("sh(\"false\");\n")
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ false\n  ✗ command `false` failed with exit code 1\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: command `false` failed with exit code 1\n --> deploy.rhai:1:1\n  |\n1 | sh(\"false\");\n  | ^\nwarning: the run ended (failed) before the prompts of 4 answer(s) in `answers.yaml` were reached: pre-deployment-checklist, proceed-to-production, release-name, strategy\n");
}

#[test]
fn a_bad_answer_names_the_file_the_id_and_the_fix() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 9\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(2).expect_stdout_exact("").expect_stderr_exact(
        "error: answer `strategy` in `answers.yaml`: `9` is not one of the choices: blue-green, rolling, canary, feature-flag (or its number)\n  help: found before the run started, so nothing was changed; fix the answer and run again\n",
    );
}

#[test]
fn an_answers_file_that_is_not_yaml_is_an_error_with_its_place() {
    let out = Test::new()
        .file("answers.yaml", "strategy: [1\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: answers file `answers.yaml:2:1`: did not find expected ',' or ']'\n  help: an answers file is a YAML map from prompt id to answer, e.g. `strategy: canary`\n");
    assert!(
        !out.dir.join("deployments").exists(),
        "nothing should be created before the run"
    );
}

#[test]
fn a_list_answers_the_same_prompt_asked_again_in_order() {
    let out = Test::new()
        .file("answers.yaml", "canary-looks-healthy-increase-traffic: [a, b, c]\n")
        .script(
            r#"
            for i in 0..3 {
                let c = choose("Canary looks healthy. Increase traffic?", [
                    #{ key: "25", label: "Yes, increase to 25%" }, #{ key: "50", label: "Yes, increase to 50%" },
                    #{ key: "100", label: "Complete rollout (100%)" }, #{ key: "hold", label: "Hold at current %" },
                    #{ key: "rollback", label: "Rollback" }], #{ style: "letters" });
                print(`step ${c}`);
            }
            "#,
        )
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\nCanary looks healthy. Increase traffic?\n\na) Yes, increase to 25%\nb) Yes, increase to 50%\nc) Complete rollout (100%)\nd) Hold at current %\ne) Rollback\n  → Yes, increase to 25% (answers file answers.yaml)\nstep 25\n\nCanary looks healthy. Increase traffic?\n\na) Yes, increase to 25%\nb) Yes, increase to 50%\nc) Complete rollout (100%)\nd) Hold at current %\ne) Rollback\n  → Yes, increase to 50% (answers file answers.yaml)\nstep 50\n\nCanary looks healthy. Increase traffic?\n\na) Yes, increase to 25%\nb) Yes, increase to 50%\nc) Complete rollout (100%)\nd) Hold at current %\ne) Rollback\n  → Complete rollout (100%) (answers file answers.yaml)\nstep 100\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
}

const APPROVE: &str = r#"
approve(#{ feature: "checkout", changes: "new payment flow", risk: "Medium", rollback_time: "5 minutes" });
sh("touch approved-marker");
"#;

#[test]
fn yes_never_approves() {
    let out = Test::new().script(APPROVE).args(&["--yes"]).run();
    out.expect_status(2)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: checkout\nChanges: new payment flow\nRisk Level: Medium\nRollback Time: 5 minutes\n\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("error: approval `approve-deployment` needs an answer and there is no terminal to ask\n  question: ⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n  help: answer it in a file given with `--answers FILE`, as `approve-deployment: yes`\n  help: or set the environment variable RUNBOOK_ANSWER_APPROVE_DEPLOYMENT\n  help: or pass --approve on the command line\n");
    assert!(!out.dir.join("approved-marker").exists());
}

#[test]
fn the_approval_box_and_the_record_of_who_approved() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "approve-deployment: { approved: yes, by: alice }\n",
        )
        .script(APPROVE)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: checkout\nChanges: new payment flow\nRisk Level: Medium\nRollback Time: 5 minutes\n\nDo you approve deployment? (y/n):\n  → approved by alice (answers file answers.yaml)\n$ touch approved-marker\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact("");
    let rec = out
        .records("effect.result")
        .into_iter()
        .find(|r| r["kind"] == "prompt.approve")
        .unwrap();
    assert_eq!(rec["result"]["approved"], true);
    assert_eq!(rec["result"]["by"], "alice");
    assert_eq!(rec["result"]["how"], "answers file answers.yaml");
    assert!(rec["result"]["host"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert!(rec["result"]["at"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));
    assert!(out
        .artifact("pre-deployment-checklist.md")
        .contains("- Decision: approved\n- By: alice\n- How: answers file answers.yaml\n"));
}

#[test]
fn approve_flag_approves_and_is_recorded_as_such() {
    let out = Test::new().script(APPROVE).args(&["--approve"]).run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: checkout\nChanges: new payment flow\nRisk Level: Medium\nRollback Time: 5 minutes\n\nDo you approve deployment? (y/n):\n  → approved by tester (--approve)\n$ touch approved-marker\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact("");
    let rec = out
        .records("effect.result")
        .into_iter()
        .find(|r| r["kind"] == "prompt.approve")
        .unwrap();
    assert_eq!(rec["result"]["by"], "tester");
    assert_eq!(rec["result"]["how"], "--approve");
}

#[test]
fn a_declined_approval_exits_4_and_changes_nothing_further() {
    let out = Test::new()
        .script(APPROVE)
        .env("RUNBOOK_ANSWER_APPROVE_DEPLOYMENT", "n")
        .run();
    out.expect_status(4)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n\n⚠\u{fe0f} CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: checkout\nChanges: new payment flow\nRisk Level: Medium\nRollback Time: 5 minutes\n\nDo you approve deployment? (y/n):\n  → declined by tester (environment RUNBOOK_ANSWER_APPROVE_DEPLOYMENT)\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n")
        .expect_stderr_exact("error: `CRITICAL DECISION: Deploy to Production` was declined by tester; nothing further was changed\n");
    assert!(!out.dir.join("approved-marker").exists());
    assert!(!out.run_dir().join("post-mortem.md").exists());
}
