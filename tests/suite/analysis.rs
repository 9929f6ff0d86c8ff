//! The analysis engine against real parts: a real Prometheus (started here, on loopback, with
//! its own config) scraping the embedded demo fleet, and a real HTTP server giving bad answers.

use crate::support;

use std::time::{Duration, Instant};

use crate::support::{fleet, pty, Output, Prometheus, Server, Test};

fn host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

const ERROR_RATE: &str = "(sum(rate(demo_errors_total{version=\"{{version}}\"}[5s])) or vector(0)) / sum(rate(demo_requests_total{version=\"{{version}}\"}[5s]))";
/// The fleet exports no CPU series: a constant PromQL stands in, so the shipped CPU trigger is
/// judged (its memory twin stays "no source configured").
const CPU: &str = "vector(0.25)";
const RESPONSE_MS: &str = "1000 * sum(rate(demo_request_duration_seconds_sum{version=\"{{version}}\"}[5s])) / sum(rate(demo_request_duration_seconds_count{version=\"{{version}}\"}[5s]))";

/// The shipped deploy runbook, canary strategy, judged by PromQL against a real Prometheus.
fn prometheus_canary(bad: bool) -> (Output, std::collections::BTreeMap<String, u32>) {
    prometheus_canary_with(bad, 3, "")
}

fn prometheus_canary_with(
    bad: bool,
    samples: u32,
    extra: &str,
) -> (Output, std::collections::BTreeMap<String, u32>) {
    let (rt, fleet) = fleet(if bad { &["v2"] } else { &[] });
    let prom = Prometheus::start(&[host(&fleet.url())], "500ms");
    // The run checks, before production is touched, that every query has a number for the
    // running version: wait until v1 has a rate, as a fleet that has been serving for a while does.
    prom.wait_for_series("sum(rate(demo_requests_total{version=\"v1\"}[5s]))");
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
         monitoring:\n  interval: 500ms\n  samples: {samples}\n  prometheus: {}\n  queries:\n    error_rate: '{ERROR_RATE}'\n    response_time: '{RESPONSE_MS}'\n    cpu: '{CPU}'\n{extra}",
        fleet.url(),
        prom.url
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", "strategy: canary\n")
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 100));
    (out, split)
}

fn snapshot(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap()
}

/// Every measurement of `metric` in the snapshot: (outcome, class).
fn outcomes(snap: &serde_json::Value, metric: &str) -> Vec<(String, String)> {
    snap["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["metrics"].get(metric))
        .map(|m| {
            (
                m["outcome"].as_str().unwrap_or("").to_string(),
                m["class"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn prometheus_bad_canary_is_rolled_back_automatically() {
    let (out, split) = prometheus_canary(true);
    out.expect_status(3);
    assert_eq!(split.get("v1"), Some(&100), "{split:?}\n{}", out.stdout);
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("error rate") && pm.contains("> 5.0%"), "{pm}");
    // The numbers came from Prometheus: the journal's intents carry the PromQL.
    let intents = out.records("effect.intent");
    assert!(
        intents.iter().any(|r| r["kind"] == "measure"
            && r["intent"]
                .to_string()
                .contains("demo_errors_total{version=\\\"v2\\\"}")),
        "{intents:#?}"
    );
    let snap = snapshot(&out);
    let rates = outcomes(&snap, "error_rate");
    assert!(
        rates.iter().any(|(o, c)| o == "value" && c == "failure"),
        "{rates:?}"
    );
    assert!(
        snap["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["verdict"] == "failure"),
        "{}",
        snap["verdicts"]
    );
}

#[test]
fn prometheus_good_canary_is_promoted() {
    // With the canary judge on too: the same release on both sides passes it.
    let judge = format!(
        "  judge:\n    range: 10s\n    step: 500ms\n    metrics:\n      - name: latency\n        query: '{RESPONSE_MS}'\n        allowed: 0.5\n"
    );
    let (out, split) = prometheus_canary_with(false, 3, &judge);
    out.expect_status(0);
    assert_eq!(split.get("v2"), Some(&100), "{split:?}\n{}", out.stdout);
    let snap = snapshot(&out);
    let verdicts = snap["verdicts"].as_array().unwrap();
    let windows: Vec<&str> = verdicts
        .iter()
        .map(|v| v["window"].as_str().unwrap())
        .collect();
    assert_eq!(
        windows,
        vec![
            "5%",
            "5% (canary vs baseline)",
            "25%",
            "25% (canary vs baseline)",
            "50%",
            "50% (canary vs baseline)",
            "100%"
        ],
        "{snap}"
    );
    assert!(verdicts.iter().all(|v| v["verdict"] == "success"), "{snap}");
    // Real values were judged, and each was a success.
    let rates = outcomes(&snap, "error_rate");
    assert!(
        rates
            .iter()
            .filter(|(o, c)| o == "value" && c == "success")
            .count()
            >= 12,
        "{rates:?}"
    );
    let latency = outcomes(&snap, "response_time");
    assert!(
        latency.iter().any(|(o, c)| o == "value" && c == "success"),
        "{latency:?}"
    );
    // The CPU trigger (0.25 < 0.9) is judged; memory has no query and is shown as such.
    let cpu = outcomes(&snap, "cpu");
    assert!(
        !cpu.is_empty() && cpu.iter().all(|(o, c)| o == "value" && c == "success"),
        "{cpu:?}"
    );
    assert!(outcomes(&snap, "memory").is_empty(), "{snap}");
    out.expect_stdout_lines(&[
        "Canary vs baseline (v1) at 5%: canary vs baseline: pass, score 100.0 at or above pass 95",
        "→ v2 now gets 25% of traffic",
        "Canary vs baseline (v1) at 25%: canary vs baseline: pass, score 100.0 at or above pass 95",
        "→ v2 now gets 50% of traffic",
        "Canary vs baseline (v1) at 50%: canary vs baseline: pass, score 100.0 at or above pass 95",
        "→ v2 now gets 100% of traffic",
        "✅ Run completed.",
    ])
    // The monitor's lines hold measured values (the error rate, milliseconds).
    .expect_stdout_contains(&[
        " · CPU Usage 25.0% ✅ · ",
        " · Memory no source configured ➖\n",
    ])
    .expect_stderr_exact("");
}

#[test]
fn prometheus_no_data_nan_and_several_series_follow_the_configured_outcome() {
    let (_rt, fleet) = fleet(&[]);
    let prom = Prometheus::start(&[host(&fleet.url())], "500ms");
    prom.wait_for_series("demo_requests_total");
    let script = format!(
        r#"
fn one(name, query, extra) {{
    let m = #{{ name: name, provider: #{{ prometheus: #{{ url: "{url}", query: query }} }}, failure: "> 1000" }};
    let r = analyze(#{{ name: name, interval: "100ms", count: 2, metrics: [m + extra] }});
    print(`${{name}}=${{r.verdict}}`);
}}
one("empty-default", "sum(rate(no_such_metric_total[5s]))", #{{}});
one("empty-pass", "sum(rate(no_such_metric_total[5s]))", #{{ on_empty: "pass" }});
one("empty-fail", "sum(rate(no_such_metric_total[5s]))", #{{ on_empty: "fail" }});
one("nan-default", "0/0", #{{}});
one("nan-fail", "0/0", #{{ on_nan: "fail" }});
one("multiple-default", "up or vector(1)", #{{}});
one("multiple-pass", "up or vector(1)", #{{ on_multiple: "pass" }});
one("real-value", "sum(demo_requests_total)", #{{}});
"#,
        url = prom.url
    );
    let out = Test::new().script(&script).run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Inconclusive] empty-default no data (empty result) ➖\nempty-default=inconclusive\nmonitor [In Progress] empty-pass no data (empty result) ✅\nmonitor [Complete] empty-pass no data (empty result) ✅\nempty-pass=success\nmonitor [Rolling back] empty-fail no data (empty result) ❌\nempty-fail=failure\nmonitor [Inconclusive] nan-default NaN ➖\nnan-default=inconclusive\nmonitor [Rolling back] nan-fail NaN ❌\nnan-fail=failure\nmonitor [Inconclusive] multiple-default 2 series where one was expected ➖\nmultiple-default=inconclusive\nmonitor [In Progress] multiple-pass 2 series where one was expected ✅\nmonitor [Complete] multiple-pass 2 series where one was expected ✅\nmultiple-pass=success\nmonitor [In Progress] real-value [..] ✅\nmonitor [Complete] real-value [..] ✅\nreal-value=success\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-empty-default.svg, chart-empty-pass.svg, chart-empty-fail.svg, chart-nan-default.svg, chart-nan-fail.svg, chart-multiple-default.svg, chart-multiple-pass.svg, chart-real-value.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
    let snap = snapshot(&out);
    assert_eq!(
        outcomes(&snap, "empty-fail"),
        vec![("empty".to_string(), "failure".to_string())]
    );
    assert_eq!(outcomes(&snap, "nan-default")[0].0, "nan");
    assert_eq!(
        outcomes(&snap, "multiple-pass")[0],
        ("multiple".to_string(), "success".to_string())
    );
    assert_eq!(outcomes(&snap, "real-value")[0].0, "value");
    // The verdict says why: no data is never a silent pass.
    let v = snap["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["window"] == "empty-default")
        .unwrap();
    assert!(
        v["reason"].as_str().unwrap().contains("inconclusive_limit"),
        "{v}"
    );
}

#[test]
fn a_stopped_prometheus_is_an_error_outcome_that_counts_toward_consecutive_error_limit() {
    let (_rt, fleet) = fleet(&[]);
    let mut prom = Prometheus::start(&[host(&fleet.url())], "500ms");
    prom.wait_for_series("demo_requests_total");
    let script = format!(
        r#"
let r = analyze(#{{ name: "watch", interval: "200ms", count: 100, metrics: [
    #{{ name: "requests", provider: #{{ prometheus: #{{ url: "{}", query: "sum(demo_requests_total)", timeout: "1s" }} }},
       success: "> 0", consecutive_error_limit: 3 }},
] }});
print(`verdict=${{r.verdict}}`);
print(`reason=${{r.reason}}`);
"#,
        prom.url
    );
    let child = Test::new().script(&script).spawn();
    let journal_dir = child.path().join("deployments");
    // Let a few measurements succeed, then stop Prometheus.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let results = std::fs::read_dir(&journal_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).ok())
            .map(|j| j.matches("\"type\":\"measurement\"").count())
            .sum::<usize>();
        if results >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no measurements");
        std::thread::sleep(Duration::from_millis(50));
    }
    prom.kill();
    let out = child.finish();
    out.expect_status(0)
        .expect_stdout_lines(&[
            "verdict=error",
            &format!("reason=requests: 4 provider errors in a row, more than the 3 tolerated (consecutive_error_limit); last: error: {}: cannot connect: tcp connect error: Connection refused (os error 111)", prom.url),
            "✅ Run completed.",
        ])
        .expect_stderr_exact("");
    // Each failed read is journaled with what went wrong.
    let dir = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.jsonl").exists())
        .unwrap();
    let snap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("monitoring-snapshot.json")).unwrap(),
    )
    .unwrap();
    let all = outcomes(&snap, "requests");
    assert!(
        all.iter()
            .take(3)
            .all(|(o, c)| o == "value" && c == "success"),
        "{all:?}"
    );
    let tail: Vec<&(String, String)> = all.iter().rev().take(4).collect();
    assert!(
        tail.iter().all(|(o, c)| o == "error" && c == "error"),
        "{all:?}"
    );
    let last = snap["measurements"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["metrics"]["requests"]["why"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{last}"
    );
}

fn bad_answer(path: &str) -> (u16, String) {
    let p = path.split('?').next().unwrap_or("");
    match p {
        "/ok/api/v1/query" => (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.01"]}]}}"#.into(),
        ),
        "/http500/api/v1/query" => (500, "internal error".into()),
        "/prom-error/api/v1/query" => (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected identifier"}"#.into(),
        ),
        "/garbage/api/v1/query" => (200, "<html>hello</html>".into()),
        "/slow/api/v1/query" => {
            std::thread::sleep(Duration::from_secs(3));
            (200, r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0"]}}"#.into())
        }
        "/huge/api/v1/query" => (200, format!("{{\"status\":\"success\",\"pad\":\"{}\"}}", "x".repeat(9 << 20))),
        "/metrics-garbage" => (200, "this is { not prometheus text\n".into()),
        "/json" => (200, r#"{"data":{"value":"n/a"}}"#.into()),
        _ => (404, "not found".into()),
    }
}

#[test]
fn bad_provider_answers_are_classified_journaled_errors_never_a_pass_or_a_hang() {
    let server = Server::start(bad_answer);
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let prom = |name: &str, base: &str| {
        format!(
            r#"#{{ name: "{name}", provider: #{{ prometheus: #{{ url: "{base}", query: "x", timeout: "500ms" }} }}, failure: "> 1" }}"#
        )
    };
    let metrics = [
        prom("ok", &server.url("/ok")),
        prom("down", &down),
        prom("slow", &server.url("/slow")),
        prom("http500", &server.url("/http500")),
        prom("prom-error", &server.url("/prom-error")),
        prom("garbage", &server.url("/garbage")),
        prom("huge", &server.url("/huge")),
        format!(
            r#"#{{ name: "scrape-garbage", provider: #{{ scrape: #{{ url: "{}", metric: "x" }} }}, failure: "> 1" }}"#,
            server.url("/metrics-garbage")
        ),
        format!(
            r#"#{{ name: "json-text", provider: #{{ http: #{{ url: "{}", path: "data.value" }} }}, failure: "> 1" }}"#,
            server.url("/json")
        ),
        r#"#{ name: "command", provider: #{ command: #{ run: "echo not-a-number" } }, failure: "> 1" }"#.to_string(),
    ];
    let script = format!(
        "let r = analyze(#{{ name: \"bad answers\", interval: \"200ms\", count: 2, metrics: [{}] }});\n\
         print(`verdict=${{r.verdict}}`);\nfor k in r.metrics.keys() {{ print(`${{k}}=${{r.metrics[k].verdict}}`); }}\n",
        metrics.join(",\n")
    );
    let started = Instant::now();
    let out = Test::new().script(&script).run();
    let took = started.elapsed();
    out.expect_status(0);
    // Two measurements; the slow provider is cut at its 500 ms timeout, in parallel with the rest.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    out.expect_stdout_exact(&format!(
        "▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] ok 0.010 ✅ · down error: {down}: cannot connect: tcp connect error: Connection refused (os error 111) ➖ · slow error: {server}/slow: no answer within 500ms (timeout) ➖ · http500 error: {server}/http500: HTTP 500: internal error ➖ · prom-error error: {server}/prom-error: Prometheus answered bad_data (HTTP 400): 1:5: parse error: unexpected identifier ➖ · garbage error: {server}/garbage: not a Prometheus API answer (not JSON: expected value at line 1 column 1): <html>hello</html> ➖ · huge error: {server}/huge: the answer is larger than 8 MiB (max_bytes); refusing to read on ➖ · scrape-garbage error: {server}/metrics-garbage: not Prometheus text: no sample could be read (first line: `this is {{ not prometheus text`) ➖ · json-text error: `data.value` is \"n/a\", not a number ➖ · command error: `echo not-a-number` printed `not-a-number`, not a number ➖\nmonitor [Rolling back] ok 0.010 ✅ · down error: {down}: cannot connect: tcp connect error: Connection refused (os error 111) ➖ · slow error: {server}/slow: no answer within 500ms (timeout) ➖ · http500 error: {server}/http500: HTTP 500: internal error ➖ · prom-error error: {server}/prom-error: Prometheus answered bad_data (HTTP 400): 1:5: parse error: unexpected identifier ➖ · garbage error: {server}/garbage: not a Prometheus API answer (not JSON: expected value at line 1 column 1): <html>hello</html> ➖ · huge error: {server}/huge: the answer is larger than 8 MiB (max_bytes); refusing to read on ➖ · scrape-garbage error: {server}/metrics-garbage: not Prometheus text: no sample could be read (first line: `this is {{ not prometheus text`) ➖ · json-text error: `data.value` is \"n/a\", not a number ➖ · command error: `echo not-a-number` printed `not-a-number`, not a number ➖\nverdict=error\ncommand=error\ndown=error\ngarbage=error\nhttp500=error\nhuge=error\njson-text=error\nok=success\nprom-error=error\nscrape-garbage=error\nslow=error\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-command.svg, chart-down.svg, chart-garbage.svg, chart-http500.svg, chart-huge.svg, chart-json-text.svg, chart-ok.svg, chart-prom-error.svg, chart-scrape-garbage.svg, chart-slow.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n",
        server = server.url("")
    ))
        .expect_stderr_exact("");
    let snap = snapshot(&out);
    let last = snap["measurements"].as_array().unwrap().last().unwrap()["metrics"].clone();
    let expect = [
        ("down", "cannot connect"),
        ("slow", "timeout"),
        ("http500", "HTTP 500"),
        ("prom-error", "bad_data"),
        ("garbage", "not JSON"),
        ("huge", "larger than 8 MiB"),
        ("scrape-garbage", "not Prometheus text"),
        ("json-text", "not a number"),
        ("command", "not a number"),
    ];
    for (name, why) in expect {
        let m = &last[name];
        assert_eq!(m["class"], "error", "{name}: {m}");
        assert!(m["why"].as_str().unwrap_or("").contains(why), "{name}: {m}");
    }
}

#[test]
fn canary_judge_compares_canary_and_baseline_samples_from_prometheus() {
    let (_rt, fleet) = fleet(&["v2"]);
    let prom = Prometheus::start(&[host(&fleet.url())], "500ms");
    prom.wait_for_series("demo_requests_total");
    let latency = |v: &str| {
        format!("sum(rate(demo_request_duration_seconds_sum{{version=\\\"{v}\\\"}}[2s])) / sum(rate(demo_request_duration_seconds_count{{version=\\\"{v}\\\"}}[2s]))")
    };
    let script = format!(
        r#"
import "stdlib/local" as local;
local::deploy_canary("v2");
local::set_weight("v2", 50, "v1");
sleep("9s");
fn points(q) {{ samples(#{{ prometheus: #{{ url: "{url}", query: q, range: "6s", step: "500ms" }} }}) }}
let canary = points("{c}");
let baseline = points("{b}");
print(`points: ${{canary.len()}} ${{baseline.len()}}`);
let j = judge(#{{ metrics: [
    #{{ name: "latency", canary: canary, baseline: baseline, direction: "increase", allowed: 0.2, group: "latency" }},
    #{{ name: "nothing", canary: [], baseline: baseline, on_missing: "ignore", group: "latency" }},
], groups: #{{ latency: 100.0 }} }});
print(`judge=${{j.verdict}} score=${{j.score}}`);
print(`latency=${{j.metrics[0].result}} p=${{j.metrics[0].p_value}}`);
print(j.reason);
"#,
        url = prom.url,
        c = latency("v2"),
        b = latency("v1"),
    );
    let out = Test::new()
        .file("runbook.yaml", &format!("local:\n  url: {}\n", fleet.url()))
        .script(&script)
        .run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\npoints: [..]\njudge=fail score=0.0\nlatency=high p=[..]
score 0.0 below marginal 75; failing: latency\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let pts: Vec<usize> = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("points: "))
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(pts[0] >= 8 && pts[1] >= 8, "{pts:?}");
}

#[test]
fn scrape_rates_label_selection_http_json_command_closures_and_compute() {
    let (_rt, fleet) = fleet(&[]);
    let script = format!(
        r#"
let url = "{url}";
let r = analyze(#{{ name: "providers", interval: "300ms", count: 3, initial_delay: "100ms", metrics: [
    // Requests per second to v1, from counters between scrapes, selected by label.
    #{{ name: "rps", provider: #{{ scrape: #{{ url: url + "/metrics", metric: "demo_requests_total",
        labels: #{{ version: "v1" }}, rate: "interval" }} }}, success: |v| v > 30.0 && v < 300.0 }},
    // Several series of one name (v1 and v9 don't both exist: selecting none is no data).
    #{{ name: "ghost", provider: #{{ scrape: #{{ url: url + "/metrics", metric: "demo_requests_total",
        labels: #{{ version: "v9" }} }} }}, on_no_data: "pass" }},
    #{{ name: "instances", provider: #{{ http: #{{ url: url + "/_fleet/state", path: "instances[1].id" }} }}, success: ">= 0" }},
    #{{ name: "printed", provider: #{{ command: #{{ run: "echo starting; echo 42" }} }}, failure: "!= 42" }},
    #{{ name: "ratio", compute: |m| if m.rps == () {{ () }} else {{ m.printed / m.rps }}, success: "> 0" }},
] }});
print(`verdict=${{r.verdict}}`);
for k in r.metrics.keys() {{ print(`${{k}}=${{r.metrics[k].verdict}} last=${{r.metrics[k].last}}`); }}
"#,
        url = fleet.url()
    );
    let out = Test::new().script(&script).run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] rps [..] ✅ · ghost no data (no series demo_requests_total{version=\"v9\"} at [..]/metrics) ✅ · instances 2 ✅ · printed 42 ✅ · ratio [..] ✅\nmonitor [In Progress] rps [..] ✅ · ghost no data (no series demo_requests_total{version=\"v9\"} at [..]/metrics) ✅ · instances 2 ✅ · printed 42 ✅ · ratio [..] ✅\nmonitor [Complete] rps [..] ✅ · ghost no data (no series demo_requests_total{version=\"v9\"} at [..]/metrics) ✅ · instances 2 ✅ · printed 42 ✅ · ratio [..] ✅\nverdict=success\nghost=success last=\ninstances=success last=2.0\nprinted=success last=42.0\nratio=success last=[..]\nrps=success last=[..]\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-ghost.svg, chart-instances.svg, chart-printed.svg, chart-ratio.svg, chart-rps.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
    let snap = snapshot(&out);
    // The rate is requests per second, measured between scrapes of real counters.
    let rps: Vec<f64> = snap["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metrics"]["rps"]["value"].as_f64().unwrap())
        .collect();
    assert!(rps.iter().all(|v| (30.0..300.0).contains(v)), "{rps:?}");
    assert_eq!(
        outcomes(&snap, "ghost")[0],
        ("no_data".to_string(), "success".to_string())
    );
}

/// A metric that fails every time, with the given action.
fn failing(action: &str) -> String {
    format!(
        r#"
let r = analyze(#{{ name: "actions", interval: "100ms", count: 3, notify: ["oncall"], metrics: [
    #{{ name: "errors", label: "Error Rate", provider: #{{ command: #{{ run: "echo 0.5" }} }}, failure: "> 0.05", format: "percent", on_failure: "{action}" }},
    #{{ name: "health", provider: #{{ command: #{{ run: "echo 1" }} }}, success: "== 1" }},
] }});
print(`verdict=${{r.verdict}}`);
print(`reason=${{r.reason}}`);
print(`measured=${{r.metrics.health.measured}}`);
"#
    )
}

const ONCALL: &str = "notify:\n  oncall: { type: file, path: oncall.jsonl }\n";

#[test]
fn per_trigger_actions_rollback_continue_and_ask() {
    // rollback (the default): the first failure ends the analysis.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .script(&failing("rollback"))
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Rolling back] Error Rate 50.0% ❌ · health 1 ✅\nverdict=failure\nreason=error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\nmeasured=1\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-errors.svg, chart-health.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");

    // continue: notified, and monitoring goes on with the other metrics.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .script(&failing("continue"))
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n  ✉ oncall: ⚠\u{fe0f} deploy (actions): Error Rate failure: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit)); monitoring goes on without it (on_failure: continue)\nmonitor [In Progress] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nmonitor [In Progress] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nmonitor [Complete] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nverdict=success\nreason=every metric within its limits after 3 measurement(s) (failed but continued: Error Rate)\nmeasured=3\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-health.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("warning: ⚠\u{fe0f} deploy (actions): Error Rate failure: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit)); monitoring goes on without it (on_failure: continue)\n");
    let sent = std::fs::read_to_string(out.dir.join("oncall.jsonl")).unwrap();
    assert!(
        sent.contains("Error Rate failure") && sent.contains("monitoring goes on"),
        "{sent}"
    );

    // ask, and the person says go on.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .env("RUNBOOK_ANSWER_ANALYSIS_ERRORS", "no")
        .script(&failing("ask"))
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Paused: asking] Error Rate 50.0% ❌ · health 1 ✅\n⏸ Error Rate failed: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\n  conditions: success none, failure > 5.0%; failure_limit 0\n  measurement 1: 50.0% → failure\nError Rate failed. Roll back? (y/n):\n  → no (environment RUNBOOK_ANSWER_ANALYSIS_ERRORS)\n  ✉ oncall: ⚠\u{fe0f} deploy (actions): Error Rate failure: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit)); monitoring goes on without it (a person chose to go on)\nmonitor [In Progress] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nmonitor [In Progress] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nmonitor [Complete] Error Rate 50.0% (failed, continued) ❌ · health 1 ✅\nverdict=success\nreason=every metric within its limits after 3 measurement(s) (failed but continued: Error Rate)\nmeasured=3\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-health.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("warning: ⚠\u{fe0f} deploy (actions): Error Rate failure: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit)); monitoring goes on without it (a person chose to go on)\n");

    // ask, and the person says roll back.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .env("RUNBOOK_ANSWER_ANALYSIS_ERRORS", "yes")
        .script(&failing("ask"))
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Paused: asking] Error Rate 50.0% ❌ · health 1 ✅\n⏸ Error Rate failed: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\n  conditions: success none, failure > 5.0%; failure_limit 0\n  measurement 1: 50.0% → failure\nError Rate failed. Roll back? (y/n):\n  → yes (environment RUNBOOK_ANSWER_ANALYSIS_ERRORS)\nmonitor [Rolling back] Error Rate 50.0% ❌ · health 1 ✅\nverdict=failure\nreason=error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\nmeasured=1\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-errors.svg, chart-health.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");

    // ask, with nobody there: the safe choice.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .script(&failing("ask"))
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Paused: asking] Error Rate 50.0% ❌ · health 1 ✅\n⏸ Error Rate failed: error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\n  conditions: success none, failure > 5.0%; failure_limit 0\n  measurement 1: 50.0% → failure\nmonitor [Rolling back] Error Rate 50.0% ❌ · health 1 ✅\nverdict=failure\nreason=error rate 50.0% > 5.0% (1 failed measurement(s), more than the 0 tolerated (failure_limit))\nmeasured=1\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-errors.svg, chart-health.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("warning: nobody to ask (analysis-errors): rolling back, the safe choice for on_failure: ask\n");
}

#[test]
fn bad_analysis_specs_are_clear_errors() {
    let cases = [
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ prometheus: #{ url: "http://h", query: "q", rnage: "1m" } } }] })"#,
            "metric `x`, at `provider.prometheus.rnage`: unknown field `rnage`, expected one of `url`, `query`, `range`, `step`, `aggregate`, `reduce`, `timeout`, `max_bytes`",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", failure: "> 1" }] })"#,
            "metric `x` needs a `provider` (prometheus, scrape, http, command or check) or a `compute` closure",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ command: #{ run: "echo 1" } }, failure: "over 5" }] })"#,
            "metric `x` failure: `over 5` is not a condition: write an operator and a number, e.g. \"< 0.05\" or \">= 2000\"",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ command: #{ run: "echo 1" } }, on_nan: "maybe" }] })"#,
            "metric `x`, at `on_nan`: unknown variant `maybe`, expected one of `pass`, `fail`, `inconclusive`",
        ),
        (r#"analyze(#{ metrics: [] })"#, "`analyze` needs at least one metric in `metrics`"),
        (
            r#"analyze(#{ count: 0, metrics: [] })"#,
            "`analyze` count must be at least 1, not 0",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ scrape: #{ url: "localhost:9090", metric: "m" } } }] })"#,
            "metric `x` provider: `localhost:9090` is not an http:// or https:// URL",
        ),
        (
            r#"judge(#{ metrics: [#{ name: "x", canary: [1.0], baseline: [1.0] }], pass: 50.0, marginal: 80.0 })"#,
            "judge: thresholds must satisfy 0 <= marginal <= pass <= 100 (marginal 80, pass 50)",
        ),
    ];
    for (script, want) in cases {
        let out = Test::new().script(script).run();
        out.expect_status(1)
            .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
            .expect_stderr_exact(&format!(
                "error: {want}\n --> deploy.rhai:1:1\n  |\n1 | {script}\n  | ^\n"
            ));
    }
}

#[test]
fn a_team_metric_in_runbook_yaml_is_judged_beside_the_shipped_triggers() {
    let (rt, fleet) = fleet(&[]);
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
         monitoring:\n  interval: 200ms\n  samples: 2\n  min_requests: 3\n  metrics:\n\
         \x20   - name: queue_depth\n      label: Queue depth\n      provider: {{ command: {{ run: 'echo 500' }} }}\n      failure: '> 100'\n",
        fleet.url()
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", "strategy: canary\n")
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    out.expect_status(3)
        .expect_stdout_lines(&[
            "Monitoring 5%: failure: queue depth 500 > 100 (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
            "Rolling back: v2 at 5%: queue depth 500 > 100 (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
            "Rollback complete: 3 step(s) undone.",
            "↩ Rolled back: v2 at 5%: queue depth 500 > 100 (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
        ])
        // The monitor's lines hold measured values (requests per second).
        .expect_stdout_contains(&[" · Queue depth 500 ❌ · "])
        .expect_stderr_exact("");
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("queue depth 500 > 100"), "{pm}");
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v1"), Some(&50), "{split:?}");
}

#[test]
fn prometheus_canary_judge_catches_what_the_thresholds_let_through() {
    // The bad release answers in 150-450 ms against a few ms for v1, and fails about 20% of
    // requests. The triggers are loosened out of reach (a busy machine, a handful of requests per
    // window: the measured error rate has been seen above 50%), so only canary against baseline
    // can catch it.
    let judge = format!(
        "  judge:\n    range: 10s\n    step: 500ms\n    metrics:\n      - name: latency\n        query: '{RESPONSE_MS}'\n        allowed: 0.5\n\
         triggers:\n  error_rate: 0.99\n  response_time: 30s\n"
    );
    // Five measurements: enough canary points in the judge's range for a significant test.
    let (out, split) = prometheus_canary_with(true, 5, &judge);
    out.expect_status(3);
    assert_eq!(split.get("v1"), Some(&100), "{split:?}\n{}", out.stdout);
    out.expect_stdout_lines(&["Rollback complete: 3 step(s) undone."])
        // The judge's line holds a p-value and the measured shift; the window it fails in depends
        // on how many canary points there are by then.
        .expect_stdout_contains(&[
            "\n  latency: high (canary higher (p=",
            ": canary vs baseline: fail, score 0.0 below marginal 75; failing: latency\n",
        ])
        .expect_stderr_exact("");
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("canary vs baseline: fail"), "{pm}");
    let snap = snapshot(&out);
    let judged = snap["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["window"]
                .as_str()
                .unwrap()
                .ends_with("(canary vs baseline)")
        })
        .cloned()
        .unwrap();
    assert_eq!(judged["verdict"], "failure", "{judged}");
}

#[test]
fn a_resumed_run_replays_the_recorded_measurements_instead_of_reading_again() {
    // Each read appends a line to `reads` and prints how many there were before.
    let script = r#"
let r = analyze(#{ name: "replayed", interval: "100ms", count: 4, metrics: [
    #{ name: "reads", provider: #{ command: #{ run: "n=$(cat reads 2>/dev/null | wc -l); echo x >> reads; echo $n" } }, success: ">= 0" },
] });
print(`verdict=${r.verdict} last=${r.metrics.reads.last}`);
sh("[ -f killed ] || { touch killed; kill -9 $PPID; }");
sh("touch finished");
"#;
    let first = Test::new().script(script).run();
    // Killed (by its own script): no exit status.
    first
        .expect_status(-1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] reads 0 ✅\nmonitor [In Progress] reads 1 ✅\nmonitor [In Progress] reads 2 ✅\nmonitor [Complete] reads 3 ✅\nverdict=success last=3.0\n$ [ -f killed ] || { touch killed; kill -9 $PPID; }\n")
        .expect_stderr_exact("");
    let dir = first.dir.clone();
    let resumed = first
        .again()
        .env("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun")
        .args(&["resume"])
        .run();
    resumed
        .expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n↻ resuming: 4 completed effect(s) replayed from the journal, without acting again\nmonitor [Complete] reads 3 ✅\nverdict=success last=3.0\n$ [ -f killed ] || { touch killed; kill -9 $PPID; }\n↻ in flight when the run died: sh `[ -f killed ] || { touch killed; kill -9 $PPID; }`: rerun\n$ touch finished\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-reads.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_like("warning: took over the stale lock of `production`: tester on [..] (pid [..]) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n");
    assert!(
        dir.join("finished").exists(),
        "the resumed run did not finish"
    );
    // The provider was not read again: the recorded readings were replayed, same verdict.
    let reads = std::fs::read_to_string(dir.join("reads")).unwrap();
    assert_eq!(
        reads.lines().count(),
        4,
        "the provider was read again: {reads:?}"
    );
}

#[test]
fn at_a_terminal_the_monitor_is_redrawn_in_place_and_a_failed_ask_trigger_waits_for_a_person() {
    let script = r#"
let r = analyze(#{ name: "at a terminal", interval: "200ms", count: 4, metrics: [
    #{ name: "errors", label: "Error Rate", format: "percent", provider: #{ command: #{ run: "echo 0.2" } },
       failure: "> 0.05", on_failure: "ask" },
    #{ name: "health", label: "Health Checks", provider: #{ command: #{ run: "echo 1" } }, success: "== 1" },
] });
print(`verdict=${r.verdict}`);
"#;
    let t = Test::new().file("watch.rhai", script);
    let mut p = pty(&t, &["watch.rhai"]);
    // The seed's block, with its marks.
    p.exp_string("## Deployment Monitor - watch (at a terminal)")
        .unwrap();
    // (rexpect reads bytes as Latin-1: the emoji marks are left out of what is matched.)
    p.exp_string("Status: Paused: asking").unwrap();
    p.exp_string("- Error Rate: 20.0% ").unwrap();
    // Paused: the evidence, then the question.
    p.exp_string("Error Rate failed: error rate 20.0% > 5.0%")
        .unwrap();
    p.exp_string("measurement 1: 20.0% ").unwrap();
    p.exp_string("Error Rate failed. Roll back?").unwrap();
    p.send_line("n").unwrap();
    // Going on: the block is drawn over (cursor up, clear) on each measurement.
    let between = p.exp_string("verdict=success").unwrap();
    assert!(between.contains("\u{1b}[J"), "{between:?}");
    assert!(between.contains("(failed, continued)"), "{between:?}");
    p.exp_eof().unwrap();
}

static SCRAPES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An endpoint with a team's own names: 10 requests and 3 errors more per scrape for v2 (which
/// the fleet does not run: the adapter has no health check for it, and says so).
fn team_metrics(_path: &str) -> (u16, String) {
    let n = SCRAPES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    (
        200,
        format!(
            "# TYPE http_requests_total counter\nhttp_requests_total{{app_version=\"v2\"}} {}\n\
             # TYPE http_failures_total counter\nhttp_failures_total{{app_version=\"v2\"}} {}\n\
             http_seconds_sum{{app_version=\"v2\"}} {}\nhttp_seconds_count{{app_version=\"v2\"}} {}\n",
            n * 10,
            n * 3,
            n as f64 * 0.5,
            n * 10
        ),
    )
}

#[test]
fn the_scraped_series_names_are_the_teams_to_set() {
    let (_rt, fleet) = fleet(&[]);
    let server = Server::start(team_metrics);
    let config = format!(
        "local:\n  url: {}\nmonitoring:\n  interval: 100ms\n  samples: 2\n  min_requests: 5\n  metrics_url: {}\n  series:\n    requests: http_requests_total\n    errors: http_failures_total\n    latency_sum: http_seconds_sum\n    latency_count: http_seconds_count\n    version_label: app_version\n",
        fleet.url(),
        server.url("/metrics")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .script("import \"stdlib/monitor\" as monitor;\nlet r = monitor::watch(\"local\", \"v2\", \"team names\", \"production\");\nprint(`verdict=${r.verdict} rate=${r.metrics.error_rate.last} ms=${r.metrics.response_time.last}`);\n")
        .run();
    // 3 errors in 10 requests: 30% > 5%, on the team's own series; latency 50 ms.
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n⚠\u{fe0f} The adapter has no health check for v2 in production: health is not judged.\nmonitor [In Progress] Error Rate 30.0% ❌ · Avg Response 50ms ✅ · CPU Usage no source configured ➖ · Memory no source configured ➖ · Health Checks no source configured ➖ · Requests/s to v2 [..]\nmonitor [Rolling back] Error Rate 30.0% ❌ · Avg Response 50ms ✅ · CPU Usage no source configured ➖ · Memory no source configured ➖ · Health Checks no source configured ➖ · Requests/s to v2 [..]\nMonitoring team names: failure: error rate 30.0% > 5.0% (2 failed measurement(s), more than the 1 tolerated (failure_limit))\nverdict=failure rate=0.3 ms=50.0\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-error_rate.svg, chart-response_time.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
}

#[test]
fn scrape_reads_the_fleets_samples_and_a_down_endpoint_is_a_clear_error() {
    let (_rt, fleet) = fleet(&[]);
    // The fleet's counters appear with its first requests: wait for them, not for luck.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !support::http_get(&format!("{}/metrics", fleet.url()))
        .unwrap_or_default()
        .contains("demo_requests_total{version=\"v1\"}")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet never served v1"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let down = format!("http://127.0.0.1:{}/metrics", support::free_port());
    let script = format!(
        r#"
let s = scrape("{}/metrics");
let v1 = s.filter(|x| x.name == "demo_requests_total" && x.labels.version == "v1");
print(`series=${{v1.len()}}`);
try {{ scrape("{down}", #{{ timeout: "1s" }}); }} catch (e) {{ print(`caught: ${{e}}`); }}
"#,
        fleet.url()
    );
    let out = Test::new().script(&script).run();
    out.expect_status(0)
        .expect_stdout_exact(&format!("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nseries=1\ncaught: scrape of {down} failed: cannot connect: tcp connect error: Connection refused (os error 111)\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n"))
        .expect_stderr_exact("");
}

#[test]
fn a_duration_and_an_initial_delay_set_when_and_how_often_to_measure() {
    let script = r#"
let started = timestamp_ms();
let r = analyze(#{ name: "timed", interval: "100ms", duration: "500ms", initial_delay: "300ms", metrics: [
    #{ name: "one", provider: #{ command: #{ run: "echo 1" } }, success: "== 1" },
] });
print(`measured=${r.metrics.one.measured} took=${timestamp_ms() - started}`);
"#;
    let out = Test::new().script(script).run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] one 1 ✅\nmonitor [In Progress] one 1 ✅\nmonitor [In Progress] one 1 ✅\nmonitor [In Progress] one 1 ✅\nmonitor [Complete] one 1 ✅\nmeasured=5 took=[..]\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-one.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
    let took: i64 = out
        .stdout
        .lines()
        .find_map(|l| l.split("took=").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The delay, a measurement at once (as Argo does), then four more one interval apart.
    assert!(took >= 700, "took {took} ms");
}

#[test]
fn an_inconclusive_window_follows_the_config_when_nobody_is_there() {
    let script = r#"
import "stdlib/monitor" as monitor;
let r = analyze(#{ name: "no data", interval: "50ms", count: 2, metrics: [
    #{ name: "ghost", provider: #{ command: #{ run: "true" } }, success: "> 0" },
] });
print(`verdict=${r.verdict}`);
print(`roll_back=${monitor::must_roll_back(r)}`);
"#;
    let out = Test::new().script(script).run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Inconclusive] ghost no data (`true` printed nothing) ➖\nverdict=inconclusive\nroll_back=true\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-ghost.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
    let out = Test::new()
        .script(script)
        .args(&["--set", "monitoring.on_inconclusive=continue"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Inconclusive] ghost no data (`true` printed nothing) ➖\nverdict=inconclusive\nroll_back=false\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-ghost.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
}

/// Two metrics that end in the same round (or both at the end): `a` listed first, `b` second.
fn two_metrics(a: &str, b: &str, count: u32) -> String {
    format!(
        r#"
let r = analyze(#{{ name: "together", interval: "50ms", count: {count}, metrics: [
    #{{ name: "a", provider: #{{ command: #{{ run: "{a}" }} }}, success: "> 0", inconclusive_limit: {lim}, consecutive_error_limit: {lim} }},
    #{{ name: "b", provider: #{{ command: #{{ run: "{b}" }} }}, failure: "> 0.05", consecutive_error_limit: {lim} }},
] }});
print(`verdict=${{r.verdict}} a=${{r.metrics.a.verdict}} b=${{r.metrics.b.verdict}}`);
"#,
        lim = if count == 1 { 0 } else { 10 }
    )
}

#[test]
fn metrics_ending_together_give_the_worst_verdict_not_the_first_listed() {
    // (a, b, count, the verdict): failed > error > inconclusive > successful, as Argo.
    let cases = [
        // a inconclusive (no data, no tolerance) + b failed in round 1.
        (
            "true",
            "echo 0.5",
            1,
            "verdict=failure a=inconclusive b=failure",
        ),
        // a in error (no error tolerated) + b failed in round 1.
        ("exit 7", "echo 0.5", 1, "verdict=failure a=error b=failure"),
        // At the end: a never succeeded (no data) + b never succeeded (errors).
        ("true", "exit 7", 2, "verdict=error a=inconclusive b=error"),
    ];
    for (a, b, count, want) in cases {
        let out = Test::new().script(&two_metrics(a, b, count)).run();
        out.expect_status(0).expect_stdout_lines(&[want]);
        // The snapshot agrees: the last measurement's classification and the verdict.
        let snap = snapshot(&out);
        let verdict = want
            .split(' ')
            .next()
            .unwrap()
            .trim_start_matches("verdict=");
        assert_eq!(snap["verdicts"][0]["verdict"], verdict, "{snap}");
        let last = snap["measurements"].as_array().unwrap().last().unwrap();
        let class = if verdict == "failure" {
            "failure"
        } else {
            "error"
        };
        assert_eq!(last["classification"], class, "{snap}");
    }
}

#[test]
fn the_shipped_monitor_rolls_back_a_failed_metric_even_when_another_is_inconclusive() {
    // on_inconclusive: continue lets an inconclusive window go on; a failed metric in the same
    // round must still roll the release back. (`ghost` answers once, for the check of the sources
    // before production is touched, and never again.)
    let (rt, fleet) = fleet(&[]);
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
         monitoring:\n  interval: 200ms\n  samples: 2\n  min_requests: 3\n  on_inconclusive: continue\n  metrics:\n\
         \x20   - name: ghost\n      provider: {{ command: {{ run: '[ -f seen ] || {{ touch seen; echo 1; }}' }} }}\n      success: '> 0'\n\
         \x20   - name: queue_depth\n      label: Queue depth\n      provider: {{ command: {{ run: 'echo 500' }} }}\n      failure: '> 100'\n",
        fleet.url()
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", "strategy: canary\n")
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    out.expect_status(3);
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("queue depth 500 > 100"), "{pm}");
    // The post-mortem tells it: the failed metric against its threshold, not the inconclusive
    // one listed before it; times to the millisecond.
    assert!(
        pm.contains("Monitoring window `5%` ended in failure at "),
        "{pm}"
    );
    assert!(
        pm.contains("Queue depth (`queue_depth`), failure condition `> 100`: failure"),
        "{pm}"
    );
    assert!(pm.contains("| 1 | "), "{pm}");
    assert!(pm.contains(" | 500 | failure |"), "{pm}");
    let timeline = &pm[pm.find("## Timeline").unwrap()..];
    assert!(
        timeline.lines().nth(2).is_some_and(|l| l.len() > 15
            && l.as_bytes()[2..14]
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b':' || *b == b'.')
            && &l[10..11] == "."),
        "{timeline}"
    );
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v1"), Some(&50), "{split:?}");
}

#[test]
fn a_duration_is_counted_in_whole_milliseconds() {
    // 300/100 and 700/100 in floating point are 2.999... and 6.999...: still 3 and 7.
    for (duration, want) in [("300ms", 3), ("700ms", 7), ("250ms", 2)] {
        let script = format!(
            r#"
let r = analyze(#{{ name: "timed", interval: "100ms", duration: "{duration}", metrics: [
    #{{ name: "one", provider: #{{ command: #{{ run: "echo 1" }} }}, success: "== 1" }},
] }});
print(`measured=${{r.metrics.one.measured}}`);
"#
        );
        let out = Test::new().script(&script).run();
        out.expect_status(0)
            .expect_stdout_lines(&[&format!("measured={want}")]);
    }
}

#[test]
fn analyze_answers_as_soon_as_no_metric_is_still_measuring() {
    // The only metric fails in round 1 and is continued past: nothing is left to measure, so
    // the answer comes then, not after the 40 × 50 ms window.
    let script = r#"
let started = timestamp_ms();
let r = analyze(#{ name: "nothing left", interval: "50ms", count: 40, metrics: [
    #{ name: "errors", provider: #{ command: #{ run: "echo 0.5" } }, failure: "> 0.05", on_failure: "continue" },
] });
print(`verdict=${r.verdict} measured=${r.metrics.errors.measured} took=${timestamp_ms() - started}`);
print(`reason=${r.reason}`);
"#;
    let out = Test::new().script(script).run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [Complete] errors 0.500 (failed, continued) ❌\nverdict=failure measured=1 took=[..]\nreason=every metric failed and was continued past (failed but continued: errors)\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("warning: ⚠\u{fe0f} deploy (nothing left): errors failure: errors 0.500 > 0.050 (1 failed measurement(s), more than the 0 tolerated (failure_limit)); monitoring goes on without it (on_failure: continue)\n");
    let took: i64 = out
        .stdout
        .lines()
        .find_map(|l| l.split("took=").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(took < 1000, "took {took} ms:\n{}", out.stdout);
}

#[test]
fn a_window_does_not_end_on_a_failed_measurement() {
    // Three rounds wanted; the third fails within failure_limit 1. Before, the window ended
    // there and passed a release whose latest reading failed; now it measures again, and the
    // second failure fails it.
    let script = r#"
let r = analyze(#{ name: "w", interval: "20ms", count: 3, max_count: 9, metrics: [
    #{ name: "error_rate", failure: "> 0.05", failure_limit: 1, provider: #{ command: #{
        run: "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -ge 3 ]; then echo 0.2; else echo 0.01; fi" } } },
] });
print(`verdict=${r.verdict} measured=${r.metrics.error_rate.measured}`);
"#;
    let out = Test::new().script(script).run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] error_rate 0.010 ✅\nmonitor [In Progress] error_rate 0.010 ✅\nmonitor [In Progress] error_rate 0.200 ❌\nmonitor [Rolling back] error_rate 0.200 ❌\nverdict=failure measured=4\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-error_rate.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
    // A failure followed by a success ends the window as usual: success, within the limit.
    let script = r#"
let r = analyze(#{ name: "w", interval: "20ms", count: 3, max_count: 9, metrics: [
    #{ name: "error_rate", failure: "> 0.05", failure_limit: 1, provider: #{ command: #{
        run: "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -eq 3 ]; then echo 0.2; else echo 0.01; fi" } } },
] });
print(`verdict=${r.verdict} measured=${r.metrics.error_rate.measured}`);
"#;
    let out = Test::new().script(script).run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nmonitor [In Progress] error_rate 0.010 ✅\nmonitor [In Progress] error_rate 0.010 ✅\nmonitor [In Progress] error_rate 0.200 ❌\nmonitor [Complete] error_rate 0.010 ✅\nverdict=success measured=4\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, chart-error_rate.svg, deployment-plan.md, rollback-plan.md, monitoring-snapshot.json\n")
        .expect_stderr_exact("");
}
