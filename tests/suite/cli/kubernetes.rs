//! The kubernetes adapter, with a recording kubectl; team runbooks over the shipped ones.

use crate::support;
use crate::support::Test;

const FAKE_KUBECTL: &str = r#"#!/bin/sh
# No cluster runs here: this kubectl records its arguments and answers like a healthy cluster,
# except that the canary's rollout status fails after FAIL_CANARY_AFTER successes.
echo "$*" >> "$KUBECTL_LOG"
case "$*" in
  *"rollout status deployment/app-canary "*)
    n=$(cat "$KUBECTL_LOG.canary" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$KUBECTL_LOG.canary"
    if [ -n "$FAIL_CANARY_AFTER" ] && [ "$n" -gt "$FAIL_CANARY_AFTER" ]; then
      echo 'error: deployment "app-canary" exceeded its progress deadline' >&2; exit 1
    fi
    echo 'deployment "app-canary" successfully rolled out' ;;
  *"rollout status"*) echo "successfully rolled out" ;;
  *) echo "ok" ;;
esac
"#;

fn kube_test(fail_after: Option<u32>) -> (support::Output, Vec<String>) {
    let t = Test::new().executable("bin/kubectl", FAKE_KUBECTL);
    let dir = t.path().to_path_buf();
    let path = format!(
        "{}/bin:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut t = t
        .file(
            "runbook.yaml",
            "adapter: kubernetes\nfeature: checkout\nversion: v2\ncurrent_version: v1\nmonitoring:\n  interval: 50ms\n  samples: 2\n",
        )
        .file("answers.yaml", "strategy: canary\n")
        .env("PATH", &path)
        .env("KUBECTL_LOG", &format!("{}/kubectl.log", dir.display()));
    if let Some(n) = fail_after {
        t = t.env("FAIL_CANARY_AFTER", &n.to_string());
    }
    let out = t
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    let log = std::fs::read_to_string(dir.join("kubectl.log")).unwrap_or_default();
    (out, log.lines().map(str::to_string).collect())
}

fn weights(stable: u32, canary: u32) -> String {
    format!(
        r#"patch virtualservice app --type merge -p {{"spec":{{"http":[{{"route":[{{"destination":{{"host":"app","subset":"stable"}},"weight":{stable}}},{{"destination":{{"host":"app","subset":"canary"}},"weight":{canary}}}]}}]}}}}"#
    )
}

#[test]
fn kubernetes_canary_applies_steps_weights_and_promotes_with_exact_commands() {
    let (out, log) = kube_test(None);
    out.expect_status(0).expect_stderr_exact("");
    let status = |d: &str| format!("rollout status deployment/{d} --timeout=60s");
    let mut want: Vec<String> = vec![
        "apply -f k8s/staging/".into(),
        "rollout status deployment/app-staging --timeout=5m".into(),
        status("app-staging"),
        "apply -f k8s/canary/".into(),
        "rollout status deployment/app-canary --timeout=5m".into(),
        weights(95, 5),
    ];
    for (s, c) in [(75, 25), (50, 50), (0, 100)] {
        want.extend([status("app-canary"), status("app-canary")]);
        want.push(weights(s, c));
    }
    want.extend([status("app-canary"), status("app-canary")]);
    want.extend([
        "apply -f k8s/production/".into(),
        "rollout status deployment/app --timeout=5m".into(),
        weights(100, 0),
        "delete -f k8s/canary/".into(),
        status("app"),
        "delete -f k8s/staging/".into(),
    ]);
    assert_eq!(log, want, "\n{}", out.stdout);
    let plan = out.artifact("rollback-plan.md");
    assert!(
        plan.contains("1. undo the rollout of app: `stdlib/kubernetes::undo_rollout()`"),
        "{plan}"
    );
}

#[test]
fn kubernetes_canary_failing_its_rollout_is_rolled_back_with_the_seed_commands() {
    // The canary's rollout fails after the third status check (during the 25% window).
    let (out, log) = kube_test(Some(3));
    out.expect_status(3).expect_stderr_exact("");
    let tail: Vec<&str> = log.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        vec![
            weights(100, 0).as_str(),
            "delete -f k8s/canary/",
            "delete -f k8s/staging/"
        ],
        "{log:#?}"
    );
    assert!(log.contains(&weights(75, 25)), "{log:#?}");
    assert!(!log.contains(&weights(50, 50)), "{log:#?}");
    assert!(
        out.artifact("post-mortem.md")
            .contains("failed health check"),
        "{}",
        out.artifact("post-mortem.md")
    );
}

#[test]
fn a_team_runbook_shadows_the_shipped_one_and_overrides_one_stage() {
    // examples/canary-kubernetes, copied as a team would have it, with the recording kubectl.
    let t = Test::new()
        .example(
            "canary-kubernetes",
            &[
                "runbook.yaml",
                "answers.yaml",
                "runbooks/deploy.rhai",
                "scripts/smoke.sh",
                "scripts/unit-tests.sh",
                "scripts/build.sh",
                "k8s/staging/deployment.yaml",
                "k8s/canary/deployment.yaml",
                "k8s/production/deployment.yaml",
            ],
        )
        .executable("bin/kubectl", FAKE_KUBECTL);
    let dir = t.path().to_path_buf();
    let path = format!(
        "{}/bin:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let list = Test::new()
        .file("runbooks/deploy.rhai", "// x\n")
        .args(&["list"])
        .run();
    list.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "NAME       SOURCE                                 DESCRIPTION",
            "deploy     runbooks/deploy.rhai (shadows shipped)  x",
        ]);
    let out = t
        .env("PATH", &path)
        .env("KUBECTL_LOG", &format!("{}/kubectl.log", dir.display()))
        .args(&[
            "deploy",
            "--answers",
            "answers.yaml",
            "--approve",
            "--set",
            "monitoring.interval=50ms",
            "--set",
            "monitoring.samples=2",
        ])
        .run();
    // The team's runbook runs, not the shipped one, with its own stage.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "▶ runbooks/deploy.rhai — feature `checkout`",
            "  │ unit tests: 412 passed",
            "━━ Stage 1: Staging Deployment (checkout smoke suite) ━━━━━━",
            "  │ smoke suite: staging 2.4.0: cart, checkout, payment paths",
            "✅ Run completed.",
        ]);
    let log = std::fs::read_to_string(dir.join("kubectl.log")).unwrap();
    assert!(log.starts_with("-n shop apply -f k8s/staging/\n-n shop rollout status deployment/checkout-staging --timeout=5m\n-n shop apply -f k8s/canary/\n"), "{log}");
    assert!(
        log.contains("-n shop patch virtualservice checkout --type merge -p"),
        "{log}"
    );
    assert!(
        std::fs::read_to_string(dir.join("deployments/notifications.jsonl"))
            .unwrap()
            .contains("checkout 2.4.0 deployed with Canary Release")
    );
}

#[test]
fn the_incident_runbook_rolls_back_the_last_deployment_and_writes_the_report() {
    let first = Test::new()
        .file(
            "runbook.yaml",
            "feature: search\nnotify:\n  oncall: { type: file, path: oncall.jsonl }\n",
        )
        .script("sh(\"touch released\");\non_rollback(\"unrelease\", \"rm released\");\n")
        .run();
    first.expect_status(0).expect_stderr_exact("");
    assert!(first.dir.join("released").exists());
    let out = first
        .again()
        .file(
            "answers.yaml",
            "incident-title: search returns 500s\nuser-impact: 30\nrollback-last-deployment: yes\nroot-cause: a bad index\nremediation: rolled back\nprevention: canary the index build\n",
        )
        .args(&["incident", "--answers", "answers.yaml", "--yes"])
        .run();
    out.expect_status(0).expect_stderr_exact("");
    assert!(
        !out.dir.join("released").exists(),
        "the last deployment was rolled back:\n{}",
        out.stdout
    );
    let reports: Vec<std::path::PathBuf> = std::fs::read_dir(out.dir.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path().join("incident-report.md"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(reports.len(), 1);
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    for section in [
        "# Incident Report - search returns 500s",
        "## Timeline",
        "## Root cause\n\na bad index",
        "## Impact assessment\n\n- User impact: 30%",
        "## Remediation steps\n\nrolled back",
        "## Prevention measures\n\ncanary the index build",
    ] {
        assert!(report.contains(section), "missing {section:?} in\n{report}");
    }
    let opened = report.find("incident opened").unwrap();
    let rolled = report.find("rolled back deployments/").unwrap();
    let notified = report.find("notified oncall").unwrap();
    assert!(opened < rolled && rolled < notified, "{report}");
    assert!(
        report.contains("status_page: no channel configured"),
        "{report}"
    );
    assert!(std::fs::read_to_string(out.dir.join("oncall.jsonl"))
        .unwrap()
        .contains("[incident] search returns 500s"));
}
