//! The shipped workflow on the setups teams run: the script adapter with their own commands,
//! monitoring through a Prometheus API.

use crate::support;

use crate::support::{Server, Test};

/// Records its arguments, one `[arg]` each, a line per call. The line is written with one
/// `printf`, so calls the workflow makes at the same time (smoke test and health check) cannot
/// interleave inside a line.
const RECORDER: &str = r#"#!/bin/sh
line='CALL'; for a in "$@"; do line="$line [$a]"; done
printf '%s\n' "$line" >> calls.log
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
    let prom = Server::start(support::prometheus_at_zero);
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
    out.expect_status(0);
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
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact(&format!(
                "error: invalid config at `script.deploy`: the placeholder {shown} is quoted in the template; runbook quotes every value it substitutes for the shell, so write the placeholder outside quotes\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n"
            ));
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
    out.expect_status(0)
        .expect_stdout_exact(
            "ok: deploy.rhai compiles; config `runbook.yaml` is valid; answers not given\n",
        )
        .expect_stderr_exact("");
}

/// The shipped workflow, blue-green, script adapter (all commands `true`), PromQL from a fake
/// Prometheus API at 0, plus `extra` config; returns the run and the Prometheus requests.
fn healthy_script_run(extra: &str) -> (support::Output, Vec<(String, String)>) {
    let prom = Server::start(support::prometheus_at_zero);
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
    // The second reading (the first of the window: the one before is the source check before
    // the release) prints nothing (no data), the others 1: within the triggers' inconclusive
    // limit, a healthy release.
    let (out, _) = healthy_script_run(
        "  metrics:\n    - name: queue_depth\n      failure: \"> 800\"\n      provider: { command: { run: \"n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -eq 2 ] || echo 1\" } }\n",
    );
    out.expect_status(0);
    let snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    let first = &snapshot["measurements"][0]["metrics"]["queue_depth"];
    assert_eq!(first["outcome"], "no_data", "{snapshot}");
}

#[test]
fn a_team_metric_without_a_url_reads_monitoring_prometheus() {
    let (out, asked) = healthy_script_run(
        "  metrics:\n    - name: p99\n      failure: \"> 800\"\n      provider: { prometheus: { query: 'p99{version=\"{{version}}\"}' } }\n",
    );
    out.expect_status(0);
    assert!(
        asked.iter().any(|(path, body)| {
            let both = format!("{path} {body}");
            both.contains("p99") && both.contains("v2")
        }),
        "the team's query never reached monitoring.prometheus: {asked:?}"
    );
}

/// A Prometheus API whose answer depends on the query: `no_errors` gives an empty vector (a
/// code-labelled counter while a version has no errors), `bad(` a PromQL parse error, anything
/// else one series at 0.
fn prometheus_by_query(path: &str) -> (u16, String) {
    if path.contains("no_errors") {
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
        )
    } else if path.contains("bad%28") || path.contains("bad(") {
        (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"1:4: parse error: unexpected end of input"}"#.into(),
        )
    } else {
        support::prometheus_at_zero(path)
    }
}

fn preflight_run(prometheus: &str, error_query: &str, extra: &str) -> support::Output {
    let config = format!(
        "adapter: script\nfeature: payments\nversion: v2\ncurrent_version: v1\n\
         script:\n  deploy: ./rec.sh deploy\n  health: \"true\"\n  switch: ./rec.sh switch\n\
         monitoring:\n  interval: 20ms\n  samples: 2\n  prometheus: {prometheus}\n  queries:\n    error_rate: '{error_query}'\n{extra}"
    );
    let answers = "strategy: blue-green\nprerequisites: yes\npre-deployment-checklist: yes\n\
                   staging-deployment-successful-proceed-to-production: yes\n";
    Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config)
        .file("answers.yaml", answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run()
}

/// What a run stopped by the sources' check prints: the prerequisites, then the stop.
const STOPPED_AT_PREFLIGHT: &str = "▶ <shipped>/runbooks/deploy.rhai — feature `payments`\n  run directory: deployments/<date>-payments\nDeploying payments v2 (now running: v1) with the script adapter\n\n━━ Prerequisites ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n\nPrerequisites\n- [x] Feature development complete (answers file answers.yaml)\n- [x] All tests passing (answers file answers.yaml)\n- [x] Code review approved (answers file answers.yaml)\n- [x] Documentation updated (answers file answers.yaml)\n✗ Prerequisites ([..])\n  artifacts in deployments/<date>-payments: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, pre-deployment-checklist.md\n";

/// The warning a run stopped at the sources' check ends with.
const UNREACHED: &str = "warning: the run ended (stopped) before the prompts of 3 answer(s) in `answers.yaml` were reached: pre-deployment-checklist, staging-deployment-successful-proceed-to-production, strategy\n";

fn nothing_deployed(out: &support::Output) {
    assert!(
        !out.dir.join("calls.log").exists(),
        "a command ran before the sources were checked: {}",
        std::fs::read_to_string(out.dir.join("calls.log")).unwrap_or_default()
    );
}

#[test]
fn a_dead_prometheus_stops_the_run_before_anything_is_deployed_naming_its_url() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = preflight_run(&url, "vector(0)", "");
    out.expect_status(2)
        .expect_stdout_like(STOPPED_AT_PREFLIGHT)
        .expect_stderr_like(&format!(
            "error: monitoring: Error Rate (query vector(0) at {url}) cannot be read: {url}: cannot connect: [..]. Fix the source before deploying: production was not touched.\n{UNREACHED}"
        ));
    nothing_deployed(&out);
}

#[test]
fn a_mistyped_query_stops_the_run_before_anything_is_deployed() {
    let prom = Server::start(prometheus_by_query);
    let out = preflight_run(&prom.url(""), "bad(", "");
    let url = prom.url("");
    out.expect_status(2)
        .expect_stdout_like(STOPPED_AT_PREFLIGHT)
        .expect_stderr_exact(&format!(
            "error: monitoring: Error Rate (query bad( at {url}) cannot be read: {url}: Prometheus answered bad_data (HTTP 400): 1:4: parse error: unexpected end of input. Fix the source before deploying: production was not touched.\n{UNREACHED}"
        ));
    nothing_deployed(&out);
}

#[test]
fn an_empty_vector_for_the_running_version_stops_the_run_with_the_or_vector_hint() {
    let prom = Server::start(prometheus_by_query);
    let out = preflight_run(&prom.url(""), "sum(rate(no_errors[1m]))", "");
    let url = prom.url("");
    out.expect_status(2)
        .expect_stdout_like(STOPPED_AT_PREFLIGHT)
        .expect_stderr_exact(&format!(
            "error: monitoring: Error Rate returned an empty vector for the running version v1 (query sum(rate(no_errors[1m])) at {url}), so it could never judge the new one. No series matched: a mistyped metric or label, or a counter with no series yet for this version (an error counter has none while a version has had no errors: write the numerator as `(sum(rate(...)) or vector(0))`). Or set the metric's on_empty: pass to accept it.\n{UNREACHED}"
        ));
    nothing_deployed(&out);
}

#[test]
fn an_empty_vector_accepted_by_on_empty_pass_is_said_and_journaled() {
    let prom = Server::start(prometheus_by_query);
    let out = preflight_run(
        &prom.url(""),
        "sum(rate(no_errors[1m]))",
        "  on_empty: pass\n",
    );
    out.expect_status(0)
        .expect_stdout_lines(&[
            "- [x] Documentation updated (answers file answers.yaml)",
            &format!(
                "⚠\u{fe0f} Error Rate: an empty vector for the running version v1 (query sum(rate(no_errors[1m])) at {}); accepted, as on_empty: pass says.",
                prom.url("")
            ),
            "monitoring preflight: Error Rate returned empty for v1, accepted (on_empty: pass)",
            "✓ 1 metric source(s) answer with a number for the running version v1",
        ])
        .expect_stderr_exact("");
    let log = out.artifact("deployment-log.txt");
    assert!(
        log.contains(
            "monitoring preflight: Error Rate returned empty for v1, accepted (on_empty: pass)"
        ),
        "{log}"
    );
}

/// One series at 0, except a `ghost` query for v2: an empty vector (no data for the new version).
fn prometheus_v2_ghost(path: &str) -> (u16, String) {
    if path.contains("ghost") && path.contains("v2") {
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
        )
    } else {
        support::prometheus_at_zero(path)
    }
}

fn criteria_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start_matches("- ").to_string())
        .filter(|l| {
            [
                "Deployed successfully",
                "All health checks passing",
                "No increase in errors",
                "Performance maintained",
                "Users notified",
                "Documentation updated",
            ]
            .iter()
            .any(|c| l.contains(&format!(" {c}: ")))
        })
        .collect()
}

#[test]
fn success_criteria_say_what_was_measured_what_was_not_and_what_was_overridden() {
    // Error rate measured and passing; response time with no query: not measured.
    let (out, _) = healthy_script_run("");
    out.expect_status(0)
        .expect_stdout_lines(&[
            "Success Criteria",
            "- ✅ Deployed successfully: all 7 stage(s) completed",
            "- ✅ All health checks passing: 3 measurement(s) in 1 window(s), every window passed; last passing",
            "- ✅ No increase in errors: 3 measurement(s) in 1 window(s), every window passed; last 0.0%",
            "- ➖ Performance maintained: not measured: no response-time source (`monitoring.prometheus` with `monitoring.queries.response_time`, or `monitoring.metrics_url`)",
            "- ➖ Users notified: no notification was sent (no channels configured under `notify:`)",
            "- ✅ Documentation updated: written: deployment-log.txt (no changelog or release notes configured: `documentation.*`)",
            "✅ Run completed.",
        ])
        .expect_stderr_exact("");
    let printed = criteria_lines(&out.stdout);
    assert_eq!(printed.len(), 6, "{}", out.describe());
    // deployment-plan.md says the same, from the journal.
    let plan = criteria_lines(&out.artifact("deployment-plan.md"));
    assert_eq!(plan[..4], printed[..4], "plan vs summary");

    // An inconclusive window let through by monitoring.on_inconclusive: continue is overridden,
    // never passed.
    let prom = Server::start(prometheus_v2_ghost);
    let config = format!(
        "adapter: script\nfeature: payments\nversion: v2\ncurrent_version: v1\n\
         script:\n  deploy: \"true\"\n  health: \"true\"\n  switch: \"true\"\n\
         monitoring:\n  interval: 20ms\n  samples: 2\n  on_inconclusive: continue\n  prometheus: {}\n\
         \x20 queries:\n    error_rate: 'ghost{{version=\"{{{{version}}}}\"}}'\n",
        prom.url("")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file(
            "answers.yaml",
            "strategy: blue-green\nprerequisites: yes\npre-deployment-checklist: yes\n\
             staging-deployment-successful-proceed-to-production: yes\n",
        )
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    out.expect_status(0)
        .expect_stdout_lacks(&["✅ No increase in errors"])
        .expect_stderr_exact("");
    // The line ends with the time it was overridden: the rest of it is pinned.
    let printed = criteria_lines(&out.stdout);
    assert!(
        printed[2].starts_with("⚠️ No increase in errors: overridden: 100% (switched): inconclusive (error rate: 5 inconclusive measurement(s), more than the 4 tolerated (inconclusive_limit); last: no data (empty result)), continued by the config (monitoring.on_inconclusive: continue) at 20")
            && printed[2].ends_with('Z')
            && !printed[2][..printed[2].len() - 1].contains('\n'),
        "{printed:?}\n{}",
        out.describe()
    );
}

#[test]
fn the_rollback_plan_shows_the_commands_and_a_rollback_says_what_it_skipped() {
    // Canary with scripts, the deploy to production fails, nobody rolls back on their own:
    // what stands is listed with the command each undo will run, last registered first.
    let config = "adapter: script\nfeature: payments\nversion: v2\ncurrent_version: v1\n\
                  script:\n  deploy: ./rec.sh deploy {env} {version}\n  health: \"true\"\n\
                  \x20 weight: ./rec.sh weight {version} {percent}\n  remove: ./rec.sh remove {env} {version}\n\
                  rollback:\n  on_failure: never\n";
    let answers = "strategy: canary\nprerequisites: yes\npre-deployment-checklist: yes\n\
                   staging-deployment-successful-proceed-to-production: yes\n";
    let out = Test::new()
        .executable(
            "rec.sh",
            "#!/bin/sh\necho \"$@\" >> calls.log\n[ \"$1 $2\" != \"weight v2\" ]\n",
        )
        .file("runbook.yaml", config)
        .file("answers.yaml", answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    out.expect_status(1);
    let plan = out.artifact("rollback-plan.md");
    for want in [
        "1. all traffic back to v1: `./rec.sh weight v1 100` (through `script::set_weight(\"v1\", 100, \"v2\")`)",
        "2. delete canary v2: `./rec.sh remove production-green v2` (through `script::remove_canary(\"v2\")`)",
        "3. remove v2 from staging: `./rec.sh remove staging v2` (through `script::remove(\"staging\", \"v2\")`)",
    ] {
        assert!(plan.contains(want), "missing {want}\n{plan}");
    }

    // Without `script.remove`, an undo that has nothing to do is "skipped", not "ok".
    let config = config.replace("  remove: ./rec.sh remove {env} {version}\n", "");
    let out = Test::new()
        .executable(
            "rec.sh",
            "#!/bin/sh\necho \"$@\" >> calls.log\n[ \"$1 $2\" != \"weight v2\" ]\n",
        )
        .file("runbook.yaml", &config)
        .file("answers.yaml", answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    out.expect_status(1);
    // `runbook rollback` lists the steps in the order they will run, then runs them.
    let out = out.again().args(&["rollback", "--yes"]).run();
    out.expect_status(3)
        .expect_stdout_exact("▶ <shipped>/runbooks/rollback.rhai — feature `payments`\n  run directory: deployments/<date>-payments-2\nDeployment: deployments/<date>-payments\nUndo steps, in the order they will run:\n  ↩ all traffic back to v1: script::set_weight(\"v1\", 100, \"v2\")\n  ↩ delete canary v2: script::remove_canary(\"v2\")\n  ↩ remove v2 from staging: script::remove(\"staging\", \"v2\")\n\n⚠\u{fe0f} Roll back deployments/<date>-payments? (3 step(s)) (y/n):\n  → yes (--yes)\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: manual rollback\n↩ all traffic back to v1 (script::set_weight(\"v1\", 100, \"v2\"))\n$ weight: ./rec.sh weight v1 100\n  ✓ all traffic back to v1\n↩ delete canary v2 (script::remove_canary(\"v2\"))\n  – delete canary v2: skipped: not configured (no `script.remove` command in runbook.yaml)\n↩ remove v2 from staging (script::remove(\"staging\", \"v2\"))\n  – remove v2 from staging: skipped: not configured (no `script.remove` command in runbook.yaml)\nRollback complete: 1 step(s) undone, 2 skipped (nothing to do).\n↩ Rolled back: manual rollback\n  artifacts in deployments/<date>-payments-2: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
}

#[test]
fn runbook_yaml_takes_values_from_the_environment() {
    let script = r#"print(`${config("version")}|${config("current_version")}|${config("monitoring.samples") + 1}|${config("monitoring.prometheus")}|${config("vars.note")}`);"#;
    let config = "version: ${VERSION}\ncurrent_version: \"v${CURRENT}\"\nmonitoring:\n  samples: ${SAMPLES}\n  prometheus: http://${PROM_HOST}:9090\nvars:\n  note: \"costs $${HOME}\"\n";
    let out = Test::new()
        .file("runbook.yaml", config)
        .script(script)
        .env("VERSION", "2")
        .env("CURRENT", "1.10")
        .env("SAMPLES", "7")
        .env("PROM_HOST", "prom.internal")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n2|v1.10|8|http://prom.internal:9090|costs ${HOME}\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    // An unset variable is an error naming the key and the variable, before anything runs.
    let out = Test::new()
        .file("runbook.yaml", config)
        .script(script)
        .env("VERSION", "2")
        .env("SAMPLES", "7")
        .env("PROM_HOST", "x")
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: invalid config at `current_version`: the environment variable `CURRENT` is not set (the value is \"v${CURRENT}\"); set it, or write `$${` for a literal `${`\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n");
}

#[test]
fn set_gives_a_value_the_type_its_key_expects() {
    let out = Test::new()
        .script(r#"print(`${config("version")}|${config("feature")}|${config("checks.tests")}|${config("monitoring.samples") * 2}`);"#)
        .args(&[
            "--set",
            "version=2",
            "--set",
            "feature=123",
            "--set",
            "checks.tests=true",
            "--set",
            "monitoring.samples=4",
        ])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `123`\n  run directory: deployments/<date>-123\n2|123|true|8\n✅ Run completed.\n  artifacts in deployments/<date>-123: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
}

#[test]
fn a_rolled_back_demo_gets_a_chart_per_metric_with_every_measurement_the_threshold_and_the_rollback(
) {
    let out = Test::new()
        .args(&["demo", "--bad-release", "--unattended"])
        .run();
    // The demo shows every part measured: automated checks that really ran (the binary and the
    // fleet), and CPU and memory read from the fleet's own process, judged by the triggers. (The
    // integration tests' line ends with how long they took.)
    out.expect_status(3)
        .expect_stdout_lines(&["4 of 6 automated checks configured and passing"])
        .expect_stdout_contains(&["\n  ✓ Integration tests (status 200, "])
        .expect_stdout_lacks(&["no source configured"])
        .expect_stderr_exact("");
    let demo_snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    for metric in ["cpu", "memory"] {
        let measured: Vec<f64> = demo_snapshot["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["metrics"][metric]["value"].as_f64())
            .collect();
        assert!(
            !measured.is_empty() && measured.iter().all(|v| *v >= 0.0),
            "{metric}: {measured:?}"
        );
    }
    let dir = out.run_dir();
    let svg =
        std::fs::read_to_string(dir.join("chart-error_rate.svg")).expect("an error-rate chart");
    let snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    let measured = snapshot["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["metrics"].get("error_rate").is_some())
        .count();
    assert!(measured >= 2, "{snapshot}");
    // One mark per measurement (a value, or a hollow mark for no value).
    assert_eq!(svg.matches("<circle").count(), measured, "{svg}");
    assert!(
        svg.contains("threshold &gt; 5.0%") || svg.contains("threshold > 5.0%"),
        "{svg}"
    );
    assert!(svg.contains("\nrollback\n</text>"), "{svg}");
    // A fraction shown as a percent is drawn in percent, as its threshold says (found by the
    // new-team trial: the axis ran 0.0-0.5 under a "> 5.0%" title).
    assert!(svg.contains("Error Rate (%)"), "{svg}");
    assert!(svg.contains("v2 5%"), "the traffic change is marked: {svg}");
    // Embedded in the post-mortem and the plan.
    for doc in ["post-mortem.md", "deployment-plan.md"] {
        let text = out.artifact(doc);
        assert!(
            text.contains("![Error Rate](chart-error_rate.svg)"),
            "{doc}: {text}"
        );
    }
    // `runbook report` draws the same charts again from the journal alone.
    std::fs::remove_file(dir.join("chart-error_rate.svg")).unwrap();
    let rel = dir.strip_prefix(&out.dir).unwrap().display().to_string();
    let again = out.again().args(&["report", &rel]).run();
    again.expect_status(0).expect_stderr_exact("");
    let redrawn =
        std::fs::read_to_string(again.dir.join(&rel).join("chart-error_rate.svg")).unwrap();
    assert_eq!(redrawn, svg, "report draws the same chart");
}

#[test]
fn the_rollout_menu_keeps_its_letters_and_refuses_a_step_already_taken() {
    // At a terminal: the shipped canary on the demo fleet; the menu answered by a person.
    let (_rt, fleet) = support::fleet(&[]);
    let t = Test::new()
        .file(
            "runbook.yaml",
            &format!(
                "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\n\
                 rollout:\n  initial: 20\nmonitoring:\n  interval: 500ms\n  samples: 2\n",
                fleet.url()
            ),
        )
        .file("answers.yaml", &format!("strategy: canary\n{}", "prerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n"));
    let mut p = support::pty(
        &t,
        &["deploy", "--answers", "answers.yaml", "--approve", "--yes"],
    );
    p.exp_string("Canary looks healthy. Increase traffic?")
        .unwrap();
    p.exp_string("Press a, b, c, d, or e:").unwrap();
    p.send_line("a").unwrap();
    p.exp_string("now gets 25% of traffic").unwrap();
    p.exp_string("a) Yes, increase to 25% (not available: already at 25%)")
        .unwrap();
    p.exp_string("Press b, c, d, or e:").unwrap();
    p.send_line("a").unwrap();
    p.exp_string("is not available: already at 25%").unwrap();
    p.send_line("c").unwrap();
    p.exp_string("now gets 100% of traffic").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn runbook_rollback_picks_the_newest_run_with_undo_steps_standing() {
    // A run that changed something and left its undo standing, then a later one that changed
    // nothing: `runbook rollback` rolls back the first, and says why.
    let out = Test::new()
        .file(
            "first.rhai",
            "sh(\"touch changed\");\non_rollback(\"remove the change\", \"rm changed\");\n",
        )
        .file("second.rhai", "throw \"stopped at a check\";\n")
        .args(&["first.rhai", "--set", "feature=first"])
        .run();
    out.expect_status(0);
    let out = out
        .again()
        .args(&["second.rhai", "--set", "feature=second"])
        .run();
    out.expect_status(1);
    let out = out.again().args(&["rollback", "--yes"]).run();
    out.expect_status(3)
        .expect_stdout_exact("▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback\nThe newest run, deployments/<date>-second, left nothing to undo: rolling back deployments/<date>-first, the newest one that did.\nDeployment: deployments/<date>-first\nUndo steps, in the order they will run:\n  ↩ remove the change: rm changed\n\n⚠\u{fe0f} Roll back deployments/<date>-first? (1 step(s)) (y/n):\n  → yes (--yes)\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: manual rollback\n↩ remove the change (rm changed)\n  ✓ remove the change\nRollback complete: 1 step(s) undone.\n↩ Rolled back: manual rollback\n  artifacts in deployments/<date>-rollback: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    assert!(
        !out.dir.join("changed").exists(),
        "the first run's undo ran"
    );
}

/// A plain script-adapter setup whose commands only record their arguments.
fn recorded(extra: &[(&str, &str)], runbook: &str, answers: &str) -> support::Output {
    let prom = Server::start(support::prometheus_at_zero);
    let config = format!(
        "adapter: script\nversion: v2\ncurrent_version: v1\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  smoke: ./rec.sh smoke {{env}}\n  switch: ./rec.sh switch {{to}}\n  weight: ./rec.sh weight {{version}} {{percent}}\n  flag: ./rec.sh flag {{action}} {{percent}}\n  remove: ./rec.sh remove {{env}} {{version}}\nrollout:\n  steps: [100]\nmonitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
        prom.url("")
    );
    let mut t = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config)
        .file("answers.yaml", answers)
        .file("deploy.rhai", runbook);
    for (name, text) in extra {
        t = t.file(name, text);
    }
    t.args(&[
        "deploy.rhai",
        "--answers",
        "answers.yaml",
        "--approve",
        "--yes",
    ])
    .run()
}

const ANSWERS_BLUE_GREEN: &str = "strategy: blue-green\nprerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n";

#[test]
fn workflow_run_replaces_one_step_by_name_and_runs_the_others() {
    let out = recorded(
        &[],
        r#"import "stdlib/workflow" as workflow;
// Named as the step it replaces: the workflow module has a `summary` too, and ours must answer.
fn summary(ctx) { print(`our own summary: ${ctx.strategy} ${ctx.version}`); }
fn notes(ctx) { print(`our notes for ${ctx.version}`); }
workflow::run(workflow::context(), #{
    summary: |ctx| summary(ctx),
    post_deployment: |ctx| { notes(ctx); workflow::post_deployment(ctx); },
    approval: Fn("approval_ours"),
});
fn approval_ours(ctx) { print("our approval"); }
"#,
        ANSWERS_BLUE_GREEN,
    );
    // Our steps ran, in their places, with the context the earlier steps built; the shipped
    // approval and summary did not. The shipped steps around them ran: staging, production,
    // post-deployment.
    out.expect_status(0)
        .expect_stdout_lines(&[
            "our approval",
            "━━ Stage 1: Staging Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
            "━━ Stage 2: Production Deployment (Blue-Green Deployment) ━━━━",
            "our notes for v2",
            "━━ Post-Deployment ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
            "our own summary: blue-green v2",
        ])
        .expect_stdout_lacks(&["Success Criteria", "CRITICAL"])
        .expect_stderr_exact("");

    // A step name that does not exist is refused, with the names that do.
    let out = recorded(
        &[],
        "import \"stdlib/workflow\" as workflow;\nworkflow::run(workflow::context(), #{ post_deploy: |ctx| () });\n",
        ANSWERS_BLUE_GREEN,
    );
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nDeploying deploy v2 (now running: v1) with the script adapter\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("error: workflow::run: no step named \"post_deploy\"; the steps are [\"prerequisites\", \"choose_strategy\", \"automated_checks\", \"manual_verification\", \"approval\", \"staging\", \"production\", \"monitoring\", \"post_deployment\", \"summary\"]\n --> <shipped>/stdlib/workflow.rhai:174:13\n    |\n174 |             throw `workflow::run: no step named \"${name}\"; the steps are ${known}`;\n    |             ^\n  note: called from deploy.rhai:2:11\n  |\n2 | workflow::run(workflow::context(), #{ post_deploy: |ctx| () });\n  |           ^\nwarning: the run ended (failed) before the prompts of 4 answer(s) in `answers.yaml` were reached: pre-deployment-checklist, prerequisites, staging-deployment-successful-proceed-to-production, strategy\n");
    let calls = std::fs::read_to_string(out.dir.join("calls.log")).unwrap_or_default();
    assert!(calls.is_empty(), "nothing may run: {calls}");
}

#[test]
fn a_strategy_module_on_the_old_positional_api_still_runs_with_a_deprecation_warning() {
    // The team's blue_green.rhai beside the runbook shadows the shipped one, written for the
    // API before strategies took the context map.
    let old = r#"
fn deploy(adapter_name, version, current, count) {
    import adapter_name as adapter;
    print(`old deploy ${adapter_name} ${version} ${current} ${count}`);
    adapter::deploy("production", version, count);
    adapter::switch_to(version);
}
fn rollout(adapter_name, version, current) { print(`old rollout ${version}`); }
fn serving_env() { "production" }
"#;
    let out = recorded(
        &[("blue_green.rhai", old)],
        "import \"stdlib/workflow\" as workflow;\nworkflow::run(workflow::context(), #{});\n",
        ANSWERS_BLUE_GREEN,
    );
    // Said once per form (on stderr only), and journaled.
    out.expect_status(0)
        .expect_stdout_lines(&["old deploy script v2 v1 1", "old rollout v2"])
        .expect_stdout_lacks(&["is deprecated"])
        .expect_stderr_exact("warning: `blue_green::deploy(adapter_name, version, current, count)` is deprecated and will be removed: use `blue_green::deploy(ctx)`\nwarning: `blue_green::rollout(adapter_name, version, current)` is deprecated and will be removed: use `blue_green::rollout(ctx)`\n");
    assert_eq!(
        out.records("deprecated").len(),
        2,
        "deploy and rollout, once each"
    );

    // A runbook calling a shipped strategy the old way: works, and is told the new form.
    let out = recorded(
        &[],
        r#"import "stdlib/canary" as canary;
canary::rollout("script", "v2", "v1");
"#,
        "increase-traffic: a\n",
    );
    out.expect_status(0)
        .expect_stdout_lines(&[
            "$ weight: ./rec.sh weight v2 100",
            "→ v2 now gets 100% of traffic",
            "✅ Run completed.",
        ])
        .expect_stderr_exact("warning: `canary::rollout(adapter_name, version, current)` is deprecated and will be removed: use `canary::rollout(ctx), ctx from workflow::context()`\nwarning: answers file `answers.yaml` has an answer for `increase-traffic` that no prompt asked for\n");
}

#[test]
fn runbook_check_refuses_a_team_adapter_missing_a_function_the_workflow_calls() {
    // payments.rhai: the team's adapter, without smoke_checks and with flag's arity wrong.
    let adapter = r#"
fn deploy(env, version, count) {}
fn instances(env, version) { [] }
fn health_checks(env, version) { [] }
fn remove(env, version) {}
fn cleanup(adapter_name, current, version) { "" }
fn switch_to(version) {}
fn deploy_canary(version) {}
fn remove_canary(version) {}
fn set_weight(version, percent, other) {}
fn promote(version, current) {}
fn replace_instance(id, version) {}
fn flag(name, percent) {}
"#;
    let runbook =
        "import \"stdlib/workflow\" as workflow;\nworkflow::run(workflow::context(), #{});\n";
    for args in [
        vec!["check", "deploy.rhai"],
        vec![
            "deploy.rhai",
            "--answers",
            "answers.yaml",
            "--approve",
            "--yes",
        ],
    ] {
        let out = Test::new()
            .file(
                "runbook.yaml",
                "adapter: payments\nversion: v2\ncurrent_version: v1\n",
            )
            .file("payments.rhai", adapter)
            .file("answers.yaml", ANSWERS_BLUE_GREEN)
            .file("deploy.rhai", runbook)
            .args(&args)
            .run();
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_exact("error: invalid config at `adapter`: the adapter `payments` (payments.rhai) does not meet the adapter contract:\n  - it does not define smoke_checks(env, version), which the workflow calls for the staging smoke tests\n  - `flag` takes 2 argument(s); the workflow calls flag(name, version, percent) for the feature flag's shares\nEvery adapter defines deploy(env, version, count), instances(env, version), smoke_checks(env, version), health_checks(env, version), remove(env, version), cleanup(adapter_name, current, version), switch_to(version), deploy_canary(version), remove_canary(version), set_weight(version, percent, other), promote(version, current), replace_instance(id, version), flag(name, version, percent); see docs/architecture.md, \"The workflow, strategies and adapters\".\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n");
        // Refused before a run directory was made.
        assert!(!out.dir.join("deployments").exists(), "{args:?}");
    }
}

/// A Prometheus whose error rate for v2 is 50% and for everything else 0.
fn prometheus_v2_failing(path: &str) -> (u16, String) {
    let value = if path.contains("v2") { "0.5" } else { "0" };
    (
        200,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{value}"]}}]}}}}"#
        ),
    )
}

/// A canary rolled back by its error rate: the artifacts agree with each other and with what
/// happened (found by the new-team trial: the plan said "overridden" and "no channels
/// configured", the post-mortem "3 of 3 carried out" while the terminal said 2 were skipped).
#[test]
fn a_rolled_back_canary_is_reported_as_failed_skipped_and_notified() {
    let prom = Server::start(prometheus_v2_failing);
    // No `script.remove`: the canary's removal has nothing to run, and is skipped.
    let config = format!(
        "adapter: script\nversion: v2\ncurrent_version: v1\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  smoke: ./rec.sh smoke {{env}}\n  weight: ./rec.sh weight {{version}} {{percent}}\n\
         notify:\n  team: {{ type: stdout }}\nrollout:\n  steps: [100]\nmonitoring:\n  interval: 20ms\n  samples: 2\n  prometheus: {}\n  queries:\n    error_rate: 'errors{{version=\"{{{{version}}}}\"}}'\n",
        prom.url("")
    );
    let out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config)
        .file(
            "answers.yaml",
            "strategy: canary\nprerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n",
        )
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    // The people told of releases are told this one is going back.
    out.expect_status(3)
        .expect_stdout_lines(&[
            "📣 [team] ⚠️ deploy v2 is being rolled back: v2 at 5%: error rate 50.0% > 5.0% (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
            "Rolling back: v2 at 5%: error rate 50.0% > 5.0% (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
        ])
        .expect_stderr_exact("");
    let plan = out.artifact("deployment-plan.md");
    assert!(
        plan.contains("❌ No increase in errors: failed: 5%: failure (error rate 50.0% > 5.0%"),
        "{plan}"
    );
    assert!(
        !plan.contains("overridden"),
        "nothing was overridden\n{plan}"
    );
    assert!(
        plan.contains("✅ Users notified: delivered to team"),
        "{plan}"
    );
    let pm = out.artifact("post-mortem.md");
    assert!(
        pm.contains("undo step(s) carried out, 2 skipped (nothing to do)"),
        "{pm}"
    );
    assert!(pm.contains("\"delete canary v2\": skipped:"), "{pm}");
}

/// After a blue-green release went out, green is live: a second deploy whose config still says
/// `script.live_colour: blue` (or leaves it unset) would deploy onto green, the colour everyone is
/// served from. It is stopped before anything changes, naming the run that switched; with the
/// colour set right, it deploys to blue (found by the new-team trial).
#[test]
fn a_deploy_onto_the_colour_the_last_switch_made_live_is_refused() {
    let prom = Server::start(support::prometheus_at_zero);
    let config = |version: &str, current: &str, live: Option<&str>| {
        format!(
            "adapter: script\nversion: {version}\ncurrent_version: {current}\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  switch: ./rec.sh switch {{to}}\n{}monitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
            live.map(|c| format!("  live_colour: {c}\n")).unwrap_or_default(),
            prom.url("")
        )
    };
    let deploy = ["deploy", "--answers", "answers.yaml", "--approve", "--yes"];
    let mut out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config("v2", "v1", Some("blue")))
        .file("answers.yaml", ANSWERS_BLUE_GREEN)
        .args(&deploy)
        .run();
    out.expect_status(0);
    let dir = out.dir.clone();
    std::fs::write(dir.join("calls.log"), "").unwrap();

    for live in [Some("blue"), None] {
        std::fs::write(dir.join("runbook.yaml"), config("v3", "v2", live)).unwrap();
        out = out.again().args(&deploy).run();
        let set = match live {
            Some(colour) => format!("is {colour}"),
            None => "is not set, so it is blue".to_string(),
        };
        // The switch's time varies: the rest is pinned.
        out.expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_like(&format!("error: invalid config at `script.live_colour`: `script.live_colour` {set}, but the last switch recorded made green live (deployments/<date>-deploy, at [..]): this deploy would go onto the colour everyone is served from. Set `script.live_colour: green` (or --set script.live_colour=green) after checking which colour serves now\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n"));
        let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
        assert!(calls.is_empty(), "nothing may run: {calls}");
    }

    std::fs::write(dir.join("runbook.yaml"), config("v3", "v2", Some("green"))).unwrap();
    let out = out.again().args(&deploy).run();
    out.expect_status(0);
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert!(
        calls.contains("CALL [deploy] [production-blue] [v3]"),
        "{calls}"
    );
    assert!(calls.contains("CALL [switch] [blue]"), "{calls}");
}

/// A canary promoted to 100% made its colour live, as a blue-green switch does: the next deploy
/// whose config still says blue is stopped before anything runs, and one that says green deploys
/// to blue (found by the new-team trial: the canary's traffic records had no colour, and the next
/// deploy went onto the live colour).
#[test]
fn a_canary_promoted_to_all_traffic_makes_its_colour_live_for_the_next_deploy() {
    let prom = Server::start(support::prometheus_at_zero);
    let config = |version: &str, current: &str, live: &str| {
        format!(
            "adapter: script\nversion: {version}\ncurrent_version: {current}\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  weight: ./rec.sh weight {{version}} {{percent}}\n  live_colour: {live}\n\
             rollout:\n  steps: [100]\nmonitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
            prom.url("")
        )
    };
    let deploy = ["deploy", "--answers", "answers.yaml", "--approve", "--yes"];
    let out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config("v2", "v1", "blue"))
        .file(
            "answers.yaml",
            "strategy: canary\nprerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n",
        )
        .args(&deploy)
        .run();
    out.expect_status(0);
    let colours: Vec<serde_json::Value> = out
        .records("traffic")
        .iter()
        .map(|r| r["colour"].clone())
        .collect();
    assert_eq!(
        colours.last(),
        Some(&serde_json::json!("green")),
        "the last traffic record names the colour now live: {colours:?}"
    );
    let dir = out.dir.clone();
    std::fs::write(dir.join("calls.log"), "").unwrap();

    std::fs::write(dir.join("runbook.yaml"), config("v3", "v2", "blue")).unwrap();
    let out = out.again().args(&deploy).run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like("error: invalid config at `script.live_colour`: `script.live_colour` is blue, but the last switch recorded made green live (deployments/<date>-deploy, at [..]): this deploy would go onto the colour everyone is served from. Set `script.live_colour: green` (or --set script.live_colour=green) after checking which colour serves now\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n");
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert!(calls.is_empty(), "nothing may run: {calls}");

    std::fs::write(dir.join("runbook.yaml"), config("v3", "v2", "green")).unwrap();
    let out = out.again().args(&deploy).run();
    out.expect_status(0);
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert!(
        calls.contains("CALL [deploy] [production-blue] [v3]"),
        "the canary goes to the idle colour, blue: {calls}"
    );
}

/// The live colour is checked against the runs where this run's deployments are: under
/// `--deployments-dir` when it is given, not under ./deployments.
#[test]
fn the_live_colour_is_checked_under_the_deployments_dir_given() {
    let prom = Server::start(support::prometheus_at_zero);
    let config = |version: &str, current: &str| {
        format!(
            "adapter: script\nversion: {version}\ncurrent_version: {current}\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  switch: ./rec.sh switch {{to}}\n  live_colour: blue\nmonitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
            prom.url("")
        )
    };
    let deploy = [
        "deploy",
        "--answers",
        "answers.yaml",
        "--approve",
        "--yes",
        "--deployments-dir",
        "team-a",
    ];
    let out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config("v2", "v1"))
        .file("answers.yaml", ANSWERS_BLUE_GREEN)
        .args(&deploy)
        .run();
    out.expect_status(0);
    assert!(!out.dir.join("deployments").exists());
    std::fs::write(out.dir.join("runbook.yaml"), config("v3", "v2")).unwrap();
    let out = out.again().args(&deploy).run();
    // Found under team-a/, where the switch was recorded; its time varies.
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like("error: invalid config at `script.live_colour`: `script.live_colour` is blue, but the last switch recorded made green live (team-a/<date>-deploy, at [..]): this deploy would go onto the colour everyone is served from. Set `script.live_colour: green` (or --set script.live_colour=green) after checking which colour serves now\n --> runbook.yaml\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n");
}

/// After `runbook rollback` undid a blue-green release, the REPL attached to the deployment
/// (`--last` finds the deployment, not the rollback run) says the old version is live, as the
/// rollback's traffic change says (found by the new-team trial: it said v2 on green was live).
#[test]
fn after_runbook_rollback_the_repl_says_what_the_rollback_made_live() {
    let prom = Server::start(support::prometheus_at_zero);
    let config = format!(
        "adapter: script\nversion: v2\ncurrent_version: v1\nscript:\n  deploy: ./rec.sh deploy {{env}} {{version}}\n  health: ./rec.sh health {{env}}\n  switch: ./rec.sh switch {{to}}\n  live_colour: blue\nmonitoring:\n  interval: 20ms\n  samples: 1\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n",
        prom.url("")
    );
    let out = Test::new()
        .executable("rec.sh", RECORDER)
        .file("runbook.yaml", &config)
        .file("answers.yaml", ANSWERS_BLUE_GREEN)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    out.expect_status(0);
    let deployment = out.run_dir();
    let out = out.again().args(&["rollback", "--yes"]).run();
    out.expect_status(3);
    let calls = std::fs::read_to_string(out.dir.join("calls.log")).unwrap();
    assert!(calls.contains("CALL [switch] [blue]"), "{calls}");

    let o = out
        .again()
        .args(&["repl", "--last"])
        .stdin("status()\n")
        .run();
    let name = deployment
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let rollback = name.replace("-deploy", "-rollback");
    // --last attaches to the deployment (not the rollback run), and says what is live. The
    // summary's lines end with times: they are pinned up to them.
    o.expect_status(0)
        .expect_stderr_exact("runbook repl\n  journal: deployments/<date>-repl\n  attached to deployments/<date>-deploy: status(), rollback(), metrics()\n  live: v1 on blue, from the deployment's journal\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> status()\n")
        .expect_stdout_contains(&[
            &format!("deployment deployments/{name}: rolled back by deployments/{rollback} at "),
            &format!("\n  live: v1 on blue (v1 100%) (set by the rollback in deployments/{rollback}) since "),
        ]);
}
