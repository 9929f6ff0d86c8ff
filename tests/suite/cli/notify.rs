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
    out.code(0);
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
    assert!(
        out.stdout.contains("📣 [console] deployed v2"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("broken ok=false"), "{}", out.stdout);
    assert_eq!(out.stderr, "warning: notification to `broken` failed: the webhook answered 500 Internal Server Error\n");
}

#[test]
fn an_unknown_channel_is_an_error_with_a_suggestion() {
    let out = Test::new()
        .file("runbook.yaml", "notify:\n  team: { type: stdout }\n")
        .script(r#"notify("tema", "x");"#)
        .run();
    // Written literally in the script: found before the run starts (tests/suite/claims_output.rs).
    out.code(2);
    assert!(out.stderr.starts_with("error: no notification channel `tema` (did you mean `team`?): the channels defined are team\n"), "{}", out.stderr);
}
