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
    out.code(3);
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
