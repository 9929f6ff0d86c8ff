//! Dry-run: nothing executed, the plan written.

use crate::support::Test;

#[test]
fn dry_run_executes_nothing_and_writes_the_plan() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 3\n")
        .script(
            r#"
            let s = choose("How would you like to deploy this feature?", ["Blue-Green Deployment", "Rolling Deployment", "Canary Release", "Feature Flag"], #{ id: "strategy" });
            stage("Stage 1: Staging Deployment", || {
                sh("touch marker");
                on_rollback("remove marker", "rm marker");
                check(#{ http: "http://127.0.0.1:1/health" });
            });
            stage("Stage 2: Production Deployment", || { sh(["kubectl", "apply", "-f", "k8s/canary/"]); sleep("1h"); });
            "#,
        )
        .args(&["--dry-run", "--answers", "answers.yaml"])
        .run();
    // Each stage's line says how long it took: the rest is pinned line by line.
    out.expect_status(0).expect_stderr_exact("").expect_stdout_lines(&[
        "▶ deploy.rhai — feature `deploy` (dry-run: nothing will be executed)",
        "  run directory: deployments/<date>-deploy-dry-run",
        "  → Canary Release (answers file answers.yaml)",
        "━━ Stage 1: Staging Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
        "$ touch marker",
        "  (dry-run) check http://127.0.0.1:1/health",
        "━━ Stage 2: Production Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━",
        "$ kubectl apply -f k8s/canary/",
        "✅ Run completed.",
        "  artifacts in deployments/<date>-deploy-dry-run: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md",
    ]);
    assert!(!out.dir.join("marker").exists(), "dry-run ran a command");
    let plan = out.artifact("deployment-plan.md");
    assert!(
        plan.contains(
            "- Mode: dry-run (nothing was executed; every command below is what would run)"
        ),
        "{plan}"
    );
    assert!(plan.contains("- Strategy: Canary Release"), "{plan}");
    assert!(
        plan.contains("1. Stage 1: Staging Deployment (done"),
        "{plan}"
    );
    assert!(
        plan.contains("| Stage 1: Staging Deployment | `touch marker` | planned |"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "| Stage 2: Production Deployment | `kubectl apply -f k8s/canary/` | planned |"
        ),
        "{plan}"
    );
    assert!(out
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with("-dry-run"));
    assert!(out
        .artifact("rollback-plan.md")
        .contains("1. remove marker: `rm marker`"));
}
