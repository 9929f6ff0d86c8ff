//! Secrets: never in any output.

use crate::support::{Server, Test};

#[test]
fn secrets_never_appear_in_any_output() {
    let server = Server::start(|_| (200, "ok".into()));
    let config = format!(
        "secrets:\n  env: [DEPLOY_TOKEN]\n  values:\n    db_password: hunter2-secret\nnotify:\n  ops: {{ type: webhook, url: \"{}\" }}\n  console: {{ type: stdout }}\n",
        server.url("/ops")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .env("DEPLOY_TOKEN", "tok-12345-abcdef")
        .script(
            r#"
            let token = env("DEPLOY_TOKEN");
            sh(`echo using ${token}; echo ${secret("db_password")} >&2`);
            print(`token is ${token}`);
            on_rollback("revoke", `echo revoke ${token}`);
            notify(["ops", "console"], `deployed with ${token}`);
            sh(`echo ${token}; exit 1`);
            "#,
        )
        .run();
    out.expect_status(3)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo using [REDACTED]; echo [REDACTED] >&2\n  │ using [REDACTED]\n  ! [REDACTED]\ntoken is [REDACTED]\n  ✉ ops: deployed with [REDACTED]\n📣 [console] deployed with [REDACTED]\n  ✉ console: deployed with [REDACTED]\n$ echo [REDACTED]; exit 1\n  │ [REDACTED]\n  ✗ command `echo [REDACTED]; exit 1` failed with exit code 1\nNobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: a step failed\n↩ revoke (echo revoke {{secret:DEPLOY_TOKEN}})\n  │ revoke [REDACTED]\n  ✓ revoke\nRollback complete: 1 step(s) undone.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: command `echo [REDACTED]; exit 1` failed with exit code 1\n --> deploy.rhai:7:13\n  |\n7 |             sh(`echo ${token}; exit 1`);\n  |             ^\n");
    let mut everything = format!("{}{}", out.stdout, out.stderr);
    for entry in std::fs::read_dir(out.run_dir()).unwrap() {
        everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for (_, body) in server.bodies() {
        everything.push_str(&body);
    }
    assert!(everything.contains("[REDACTED]"));
    assert!(
        !everything.contains("tok-12345-abcdef"),
        "token leaked:\n{everything}"
    );
    assert!(
        !everything.contains("hunter2-secret"),
        "password leaked:\n{everything}"
    );
}
