//! The shipped workflow on the setups teams run: the script adapter with their own commands,
//! monitoring through a Prometheus API.

mod support;

use support::{Server, Test};

/// A Prometheus API that answers every query with one series at 0 (no errors, no latency).
fn prometheus_at_zero(_path: &str) -> (u16, String) {
    (
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0"]}]}}"#
            .to_string(),
    )
}

/// Records its arguments, one `[arg]` each, a line per call.
const RECORDER: &str = r#"#!/bin/sh
{ printf 'CALL'; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\n'; } >> calls.log
"#;

const HOSTILE: &str = r#"adapter: script
feature: "pay$(touch PWNED_FEATURE)"
version: "v2; touch PWNED_VERSION"
current_version: "v1`touch PWNED_CURRENT` 'x"
script:
  deploy: ./rec.sh deploy {env} {version} {colour}
  health: ./rec.sh health {env} {version} {colour}
  smoke: ./rec.sh smoke {env} {version} {colour}
  switch: ./rec.sh switch {from} {to} {from_version} {to_version} {version}
  weight: ./rec.sh weight {version} {percent} {colour} {other} {other_percent} {other_colour}
  flag: ./rec.sh flag {action} {name} {percent} {version}
  remove: ./rec.sh remove {env} {version} {colour}
rollout:
  steps: [100]
"#;

fn hostile_run(strategy: &str) -> (support::Output, Vec<String>) {
    let prom = Server::start(prometheus_at_zero);
    let config = format!(
        "{HOSTILE}monitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
        prom.url("")
    );
    let answers = format!(
        "strategy: {strategy}\nprerequisites: yes\npre-deployment-checklist: yes\n\
         staging-deployment-successful-proceed-to-production: yes\n"
    );
    let out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config)
        .file("answers.yaml", &answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    let calls = std::fs::read_to_string(out.dir.join("calls.log")).unwrap_or_default();
    let pwned: Vec<_> = std::fs::read_dir(&out.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("PWNED"))
        .collect();
    assert!(
        pwned.is_empty(),
        "{strategy}: a value ran as shell code: {pwned:?}\n{calls}"
    );
    assert_eq!(out.code, 0, "{strategy}\n{}\n{}", out.stdout, out.stderr);
    (out, calls.lines().map(str::to_string).collect())
}

const V2: &str = "[v2; touch PWNED_VERSION]";
const V1: &str = "[v1`touch PWNED_CURRENT` 'x]";

#[test]
fn script_adapter_passes_hostile_values_as_single_arguments_blue_green() {
    let (_out, calls) = hostile_run("blue-green");
    for want in [
        format!("CALL [deploy] [staging] {V2} [green]"),
        format!("CALL [smoke] [staging] {V2} [green]"),
        format!("CALL [health] [staging] {V2} [green]"),
        format!("CALL [deploy] [production-green] {V2} [green]"),
        format!("CALL [switch] [blue] [green] {V1} {V2} {V2}"),
    ] {
        assert!(
            calls.contains(&want),
            "missing {want}\n{}",
            calls.join("\n")
        );
    }
}

#[test]
fn script_adapter_passes_hostile_values_as_single_arguments_canary() {
    let (_out, calls) = hostile_run("canary");
    for want in [
        format!("CALL [weight] {V2} [5] [green] {V1} [95] [blue]"),
        format!("CALL [weight] {V2} [100] [green] {V1} [0] [blue]"),
    ] {
        assert!(
            calls.contains(&want),
            "missing {want}\n{}",
            calls.join("\n")
        );
    }
}

#[test]
fn script_adapter_passes_hostile_values_as_single_arguments_feature_flag() {
    let (_out, calls) = hostile_run("feature-flag");
    let want = format!("CALL [flag] [enable] [pay$(touch PWNED_FEATURE)-enabled] [5] {V2}");
    assert!(
        calls.contains(&want),
        "missing {want}\n{}",
        calls.join("\n")
    );
}

#[test]
fn a_script_template_that_quotes_a_placeholder_is_refused_before_anything_runs() {
    for (template, shown) in [
        ("./deploy.sh '{env}'", "{env} (inside '...')"),
        (
            "./deploy.sh --name=\"app-{version}\"",
            "{version} (inside \"...\")",
        ),
    ] {
        let out = Test::new()
            .executable("rec.sh", RECORDER)
            .file(
                "runbook.yaml",
                &format!("adapter: script\nscript:\n  deploy: {template:?}\n"),
            )
            .file("deploy.rhai", "print(\"ran\");")
            .args(&["check", "deploy.rhai"])
            .run();
        assert_eq!(out.code, 2, "{template}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("script.deploy")
                && out.stderr.contains(&format!(
                    "the placeholder {shown} is quoted in the template; runbook quotes every value"
                )),
            "{template}: {}",
            out.stderr
        );
    }
    // Quotes around literal text, away from any placeholder, are the team's business.
    let out = Test::new()
        .file(
            "runbook.yaml",
            "adapter: script\nscript:\n  deploy: \"./deploy.sh --note 'no {braces' {env}\"\n",
        )
        .file("deploy.rhai", "print(\"ran\");")
        .args(&["check", "deploy.rhai"])
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

/// The shipped workflow, blue-green, script adapter (all commands `true`), PromQL from a fake
/// Prometheus API at 0, plus `extra` config; returns the run and the Prometheus requests.
fn healthy_script_run(extra: &str) -> (support::Output, Vec<(String, String)>) {
    let prom = Server::start(prometheus_at_zero);
    let config = format!(
        "adapter: script\nfeature: payments\nversion: v2\ncurrent_version: v1\n\
         script:\n  deploy: \"true\"\n  health: \"true\"\n  switch: \"true\"\n\
         monitoring:\n  interval: 20ms\n  samples: 3\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n{extra}",
        prom.url("")
    );
    let answers = "strategy: blue-green\nprerequisites: yes\npre-deployment-checklist: yes\n\
                   staging-deployment-successful-proceed-to-production: yes\n";
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    (out, prom.bodies())
}

#[test]
fn a_team_metric_inherits_the_trigger_limits_so_one_empty_reading_is_not_a_rollback() {
    // The first reading prints nothing (no data), the next ones 1: within the triggers'
    // inconclusive limit, a healthy release.
    let (out, _) = healthy_script_run(
        "  metrics:\n    - name: queue_depth\n      failure: \"> 800\"\n      provider: { command: { run: \"if [ -f seen ]; then echo 1; else touch seen; fi\" } }\n",
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let snapshot = out.artifact("monitoring-snapshot.json");
    assert!(snapshot.contains("queue_depth"), "{snapshot}");
}

#[test]
fn a_team_metric_without_a_url_reads_monitoring_prometheus() {
    let (out, asked) = healthy_script_run(
        "  metrics:\n    - name: p99\n      failure: \"> 800\"\n      provider: { prometheus: { query: 'p99{version=\"{{version}}\"}' } }\n",
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        asked.iter().any(|(path, body)| {
            let both = format!("{path} {body}");
            both.contains("p99") && both.contains("v2")
        }),
        "the team's query never reached monitoring.prometheus: {asked:?}"
    );
}
