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
    out.code(3);
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
    assert!(snap["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["verdict"] == "failure"));
}

#[test]
fn prometheus_good_canary_is_promoted() {
    // With the canary judge on too: the same release on both sides passes it.
    let judge = format!(
        "  judge:\n    range: 10s\n    step: 500ms\n    metrics:\n      - name: latency\n        query: '{RESPONSE_MS}'\n        allowed: 0.5\n"
    );
    let (out, split) = prometheus_canary_with(false, 3, &judge);
    out.code(0);
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
    assert!(outcomes(&snap, "memory").is_empty());
    assert!(
        out.stdout.contains("Memory no source configured"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("CPU Usage 25.0%"), "{}", out.stdout);
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
    out.code(0);
    for want in [
        "empty-default=inconclusive",
        "empty-pass=success",
        "empty-fail=failure",
        "nan-default=inconclusive",
        "nan-fail=failure",
        "multiple-default=inconclusive",
        "multiple-pass=success",
        "real-value=success",
    ] {
        assert!(out.stdout.contains(want), "{want} missing:\n{}", out.stdout);
    }
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
    let t = Test::new().script(&script);
    let journal_dir = t.path().join("deployments");
    let child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("verdict=error"), "{stdout}");
    assert!(stdout.contains("4 provider errors in a row"), "{stdout}");
    assert!(stdout.contains("consecutive_error_limit"), "{stdout}");
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
    out.code(0);
    // Two measurements; the slow provider is cut at its 500 ms timeout, in parallel with the rest.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(out.stdout.contains("verdict=error"), "{}", out.stdout);
    assert!(out.stdout.contains("ok=success"), "{}", out.stdout);
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
        assert!(
            out.stdout.contains(&format!("{name}=error")),
            "{name}\n{}",
            out.stdout
        );
    }
    // The errors are on screen, one line per measurement when not on a terminal.
    assert!(out.stdout.contains("/http500: HTTP 500"), "{}", out.stdout);
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
    out.code(0);
    assert!(out.stdout.contains("judge=fail"), "{}", out.stdout);
    assert!(out.stdout.contains("latency=high"), "{}", out.stdout);
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
    out.code(0);
    for want in [
        "verdict=success",
        "rps=success",
        "ghost=success",
        "instances=success",
        "printed=success last=42.0",
        "ratio=success",
    ] {
        assert!(out.stdout.contains(want), "{want}\n{}", out.stdout);
    }
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
    out.code(0);
    assert!(out.stdout.contains("verdict=failure"), "{}", out.stdout);
    assert!(
        out.stdout.contains("reason=error rate 50.0% > 5.0%"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("measured=1"), "{}", out.stdout);

    // continue: notified, and monitoring goes on with the other metrics.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .script(&failing("continue"))
        .run();
    out.code(0);
    assert!(out.stdout.contains("verdict=success"), "{}", out.stdout);
    assert!(
        out.stdout.contains("failed but continued: Error Rate"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("measured=3"), "{}", out.stdout);
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
    out.code(0);
    assert!(out.stdout.contains("⏸ Error Rate failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("measurement 1: 50.0% → failure"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("verdict=success"), "{}", out.stdout);
    assert!(
        out.stdout.contains("a person chose to go on"),
        "{}",
        out.stdout
    );

    // ask, and the person says roll back.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .env("RUNBOOK_ANSWER_ANALYSIS_ERRORS", "yes")
        .script(&failing("ask"))
        .run();
    assert!(out.stdout.contains("verdict=failure"), "{}", out.stdout);

    // ask, with nobody there: the safe choice.
    let out = Test::new()
        .file("runbook.yaml", ONCALL)
        .script(&failing("ask"))
        .run();
    assert!(out.stdout.contains("verdict=failure"), "{}", out.stdout);
    assert!(out.stderr.contains("nobody to ask"), "{}", out.stderr);
}

#[test]
fn bad_analysis_specs_are_clear_errors() {
    let cases = [
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ prometheus: #{ url: "http://h", query: "q", rnage: "1m" } } }] })"#,
            "unknown field `rnage`",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", failure: "> 1" }] })"#,
            "needs a `provider`",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ command: #{ run: "echo 1" } }, failure: "over 5" }] })"#,
            "is not a condition",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ command: #{ run: "echo 1" } }, on_nan: "maybe" }] })"#,
            "unknown variant `maybe`",
        ),
        (r#"analyze(#{ metrics: [] })"#, "at least one metric"),
        (
            r#"analyze(#{ count: 0, metrics: [] })"#,
            "count must be at least 1",
        ),
        (
            r#"analyze(#{ metrics: [#{ name: "x", provider: #{ scrape: #{ url: "localhost:9090", metric: "m" } } }] })"#,
            "not an http:// or https:// URL",
        ),
        (
            r#"judge(#{ metrics: [#{ name: "x", canary: [1.0], baseline: [1.0] }], pass: 50.0, marginal: 80.0 })"#,
            "marginal <= pass",
        ),
    ];
    for (script, want) in cases {
        let out = Test::new().script(script).run();
        assert_eq!(out.code, 1, "{script}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(want),
            "{script}: want {want}\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("deploy.rhai:1:"), "{}", out.stderr);
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
    out.code(3);
    assert!(out.stdout.contains("Queue depth 500 ❌"), "{}", out.stdout);
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
    out.code(3);
    assert_eq!(split.get("v1"), Some(&100), "{split:?}\n{}", out.stdout);
    assert!(out.stdout.contains("latency: high"), "{}", out.stdout);
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
    assert_eq!(first.code, -1, "killed: {}", first.stderr);
    assert!(
        first.stdout.contains("verdict=success last=3.0"),
        "{}",
        first.stdout
    );
    let dir = first.dir.clone();
    let resumed = first
        .again()
        .env("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", "rerun")
        .args(&["resume"])
        .run();
    resumed.code(0);
    assert!(dir.join("finished").exists(), "{}", resumed.stdout);
    // The provider was not read again: the recorded readings were replayed, same verdict.
    let reads = std::fs::read_to_string(dir.join("reads")).unwrap();
    assert_eq!(reads.lines().count(), 4, "{}", resumed.stdout);
    assert!(
        resumed.stdout.contains("verdict=success last=3.0"),
        "{}",
        resumed.stdout
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
    out.code(0);
    // 3 errors in 10 requests: 30% > 5%, on the team's own series; latency 50 ms.
    assert!(
        out.stdout.contains("verdict=failure rate=0.3 ms=50"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("no health check for v2 in production: health is not judged"),
        "{}",
        out.stdout
    );
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
    out.code(0);
    assert!(out.stdout.contains("series=1"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("caught: scrape of {down} failed: cannot connect")),
        "{}",
        out.stdout
    );
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
    out.code(0);
    assert!(out.stdout.contains("measured=5 "), "{}", out.stdout);
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
    out.code(0);
    assert!(
        out.stdout.contains("verdict=inconclusive"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("roll_back=true"), "{}", out.stdout);
    let out = Test::new()
        .script(script)
        .args(&["--set", "monitoring.on_inconclusive=continue"])
        .run();
    out.code(0);
    assert!(out.stdout.contains("roll_back=false"), "{}", out.stdout);
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
        out.code(0);
        assert!(out.stdout.contains(want), "want {want}\n{}", out.stdout);
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
    out.code(3);
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
        out.code(0);
        assert!(
            out.stdout.contains(&format!("measured={want}\n")),
            "{duration}: want {want}\n{}",
            out.stdout
        );
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
    out.code(0);
    assert!(
        out.stdout.contains("verdict=failure measured=1 "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("reason=every metric failed and was continued past"),
        "{}",
        out.stdout
    );
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
    out.code(0);
    assert!(
        out.stdout.contains("verdict=failure measured=4"),
        "{}",
        out.stdout
    );
    // A failure followed by a success ends the window as usual: success, within the limit.
    let script = r#"
let r = analyze(#{ name: "w", interval: "20ms", count: 3, max_count: 9, metrics: [
    #{ name: "error_rate", failure: "> 0.05", failure_limit: 1, provider: #{ command: #{
        run: "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; if [ $n -eq 3 ]; then echo 0.2; else echo 0.01; fi" } } },
] });
print(`verdict=${r.verdict} measured=${r.metrics.error_rate.measured}`);
"#;
    let out = Test::new().script(script).run();
    out.code(0);
    assert!(
        out.stdout.contains("verdict=success measured=4"),
        "{}",
        out.stdout
    );
}
