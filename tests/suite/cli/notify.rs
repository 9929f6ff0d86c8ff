//! Notify: webhook, Slack, file and stdout channels.

use crate::support::{Server, Test};

#[test]
fn notifications_reach_webhook_slack_file_and_stdout_and_a_failure_never_fails_the_run() {
    let server = Server::start(|path| {
        if path == "/broken" {
            (500, "no".into())
        } else {
            (200, "ok".into())
        }
    });
    let config = format!(
        "notify:\n  ops: {{ type: webhook, url: \"{}\", headers: {{ X-Token: abc }} }}\n  team: {{ type: slack, url: \"{}\" }}\n  audit: {{ type: file, path: audit.jsonl }}\n  console: {{ type: stdout }}\n  broken: {{ type: webhook, url: \"{}\" }}\n",
        server.url("/ops"),
        server.url("/slack"),
        server.url("/broken")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .args(&["--set", "feature=checkout"])
        .script(r#"notify(["ops", "team", "audit", "console"], "deployed v2"); let ok = notify("broken", "x"); print(`broken ok=${ok}`);"#)
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `checkout`\n  run directory: deployments/<date>-checkout\n  ✉ ops: deployed v2\n  ✉ team: deployed v2\n  ✉ audit: deployed v2\n📣 [console] deployed v2\n  ✉ console: deployed v2\nbroken ok=false\n✅ Run completed.\n  artifacts in deployments/<date>-checkout: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("warning: notification to `broken` failed: the webhook answered 500 Internal Server Error\n");
    let bodies = server.bodies();
    let ops = bodies.iter().find(|(p, _)| p == "/ops").unwrap();
    let v: serde_json::Value = serde_json::from_str(&ops.1).unwrap();
    assert_eq!(v["text"], "deployed v2");
    assert_eq!(v["feature"], "checkout");
    let slack = bodies.iter().find(|(p, _)| p == "/slack").unwrap();
    assert_eq!(slack.1, r#"{"text":"deployed v2"}"#);
    assert!(std::fs::read_to_string(out.dir.join("audit.jsonl"))
        .unwrap()
        .contains("\"text\":\"deployed v2\""));
}

#[test]
fn an_unknown_channel_is_an_error_with_a_suggestion() {
    let out = Test::new()
        .file("runbook.yaml", "notify:\n  team: { type: stdout }\n")
        .script(r#"notify("tema", "x");"#)
        .run();
    // Written literally in the script: found before the run starts (tests/suite/claims_output.rs).
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: no notification channel `tema` (did you mean `team`?): the channels defined are team\n --> deploy.rhai:1:1\n  |\n1 | notify(\"tema\", \"x\");\n  | ^\n  help: add `tema` under `notify:` in runbook.yaml (docs/configuration.md, \"Notification channels\"), or name a channel that is defined\n");
}
