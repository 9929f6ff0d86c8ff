//! Benchmarks of the analysis engine and the checks, against real servers on loopback.
//! Run with `cargo bench --bench analysis` (all three) or `-- latency`, `-- check_all`,
//! `-- memory`. Each prints its figures and the ratio to its target.
//!
//! - latency: detection latency with a 1 s interval, from the moment the fleet starts failing
//!   (`/_fleet/break`) to the moment rollback begins (the runner's "Rolling back" line), over
//!   repeated runs; target: median under interval + 250 ms.
//! - check_all: `check_all` of 200 HTTP endpoints on loopback against a sequential curl loop over
//!   the same endpoints; target: at least 20x faster and under 0.5 s.
//! - memory: resident memory of a monitoring run of 2,000 measurements of 50 series at a 10 ms
//!   interval, after the first 100 measurements and at the end; target: flat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_runbook");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn runbook(dir: &std::path::Path, script: &str) -> Command {
    std::fs::write(dir.join("bench.rhai"), script).unwrap();
    let mut c = Command::new(BIN);
    c.arg("bench.rhai")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// A minimal HTTP server on loopback answering every request with `body()`.
fn serve(body: impl Fn() -> String + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = Arc::new(body);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    // Keep-alive: answer each request on the connection.
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let text = body();
                    // One write per answer: split writes meet Nagle and delayed ACKs.
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn latency() {
    const RUNS: usize = 9;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for run in 0..RUNS {
        let fleet = rt
            .block_on(runbook::demo::fleet::Fleet::start(
                runbook::demo::fleet::Options {
                    bad_versions: vec![],
                    traffic_rps: 200,
                    current_version: "v1".into(),
                    instances: 2,
                },
            ))
            .unwrap();
        let script = format!(
            r#"
on_rollback("nothing to undo", "true");
let r = analyze(#{{ name: "latency", interval: "1s", count: 120, metrics: [
    #{{ name: "error_rate", provider: #{{ scrape: #{{ url: "{url}/metrics", metric: "demo_errors_total",
        labels: #{{ version: "v1" }}, rate: "interval", divide_by: "demo_requests_total", min_count: 5 }} }},
       failure: "> 0.05", inconclusive_limit: 5 }},
] }});
if !r.healthy {{ rollback(r.reason); }}
"#,
            url = fleet.url()
        );
        let mut child = runbook(dir.path(), &script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                if line.starts_with("Rolling back") {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        // A few healthy measurements first, then break at a random phase of the interval.
        std::thread::sleep(Duration::from_millis(2500 + fastrand::u64(0..1000)));
        let broke = Instant::now();
        break_fleet(&fleet.url());
        let detected = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the failure was not detected within 15 s");
        let _ = child.wait();
        assert!(
            detected > broke,
            "the analysis ended before the fleet was broken:\n{}",
            seen.lock().unwrap().join("\n")
        );
        let took = detected - broke;
        println!("  run {:>2}: {:>7.1} ms", run + 1, ms(took));
        results.push(took);
        fleet.stop();
    }
    let m = median(results.clone());
    let target = Duration::from_millis(1250);
    println!(
        "detection latency, interval 1 s, {RUNS} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms; target < {:.0} ms: {} ({:.2}x of target)",
        ms(m),
        ms(*results.iter().min().unwrap()),
        ms(*results.iter().max().unwrap()),
        ms(target),
        if m < target { "met" } else { "NOT met" },
        m.as_secs_f64() / target.as_secs_f64()
    );
}

/// Turn v1 bad (every request fails): a plain POST to the fleet's control API.
fn break_fleet(base: &str) {
    let host = base.trim_start_matches("http://");
    let body = r#"{"version":"v1","percent":100}"#;
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /_fleet/break HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

fn check_all() {
    const N: usize = 200;
    const RUNS: usize = 5;
    let addrs: Vec<String> = (0..N).map(|_| serve(|| "ok\n".to_string())).collect();
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<String> = addrs
        .iter()
        .map(|a| format!("#{{ http: \"http://{a}/health\", quiet: true }}"))
        .collect();
    let script = format!(
        "let r = check_all([{}]);\nif r.len() != {N} || r.filter(|o| o.ok).len() != {N} {{ throw \"not all checks passed\"; }}\n",
        specs.join(",\n")
    );
    std::fs::write(dir.path().join("bench.rhai"), &script).unwrap();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}/health")).collect();
    std::fs::write(dir.path().join("urls.txt"), urls.join("\n") + "\n").unwrap();
    let curl_loop = "while read -r u; do curl -sf -o /dev/null \"$u\" || exit 1; done < urls.txt";
    let time = |mut c: Command| {
        let start = Instant::now();
        let out = c
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let rb = || runbook(dir.path(), &script);
    let curl = || {
        let mut c = Command::new("bash");
        c.arg("-c").arg(curl_loop).current_dir(dir.path());
        c
    };
    time(rb());
    time(curl());
    let (mut r, mut c) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        r.push(time(rb()));
        c.push(time(curl()));
    }
    let (mr, mc) = (median(r), median(c));
    let ratio = mc.as_secs_f64() / mr.as_secs_f64();
    // The check_all effect's own time, as the last run's journal recorded it.
    let inner: Vec<u64> = std::fs::read_dir(dir.path().join("deployments"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("journal.jsonl")).ok())
        .flat_map(|j| {
            j.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["type"] == "effect.result" && r["kind"] == "check_all")
                .filter_map(|r| r["ms"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect();
    println!("check_all of {N} HTTP endpoints on loopback, median of {RUNS} runs:");
    println!(
        "  runbook check_all (whole process, journal on): {:>8.1} ms",
        ms(mr)
    );
    println!(
        "  sequential curl loop:                          {:>8.1} ms",
        ms(mc)
    );
    println!(
        "  (the check_all effect itself, from the journal: {:?} ms)",
        inner
    );
    println!(
        "  {ratio:.1}x faster (target >= 20x: {}); {:.1} ms in total (target < 500 ms: {})",
        if ratio >= 20.0 { "met" } else { "NOT met" },
        ms(mr),
        if mr < Duration::from_millis(500) {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn memory() {
    const SERIES: usize = 50;
    const MEASUREMENTS: usize = 2000;
    let scrapes = Arc::new(AtomicU64::new(0));
    let s = scrapes.clone();
    let addr = serve(move || {
        let n = s.fetch_add(1, Ordering::SeqCst) + 1;
        let mut text = String::from("# TYPE bench_requests_total counter\n");
        for i in 0..SERIES {
            text.push_str(&format!(
                "bench_requests_total{{series=\"{i}\"}} {}\n",
                n * 10
            ));
        }
        text.push_str("# TYPE bench_errors_total counter\n");
        for i in 0..SERIES {
            text.push_str(&format!(
                "bench_errors_total{{series=\"{i}\"}} {}\n",
                n / 10
            ));
        }
        text
    });
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
let r = analyze(#{{ name: "long", interval: "10ms", count: {MEASUREMENTS}, metrics: [
    #{{ name: "error_ratio", provider: #{{ scrape: #{{ url: "http://{addr}/metrics", metric: "bench_errors_total",
        rate: "interval", divide_by: "bench_requests_total", aggregate: "sum", min_count: 1 }} }},
       failure: "> 0.5", inconclusive_limit: {MEASUREMENTS} }},
] }});
print(`DONE ${{r.verdict}} ${{r.metrics.error_ratio.measured}}`);
sleep("2s");
"#
    );
    let start = Instant::now();
    let mut child = runbook(dir.path(), &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (mut after_100, mut at_end, mut measured, mut done_line) = (0, 0, 0usize, String::new());
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("monitor [") {
            measured += 1;
            if measured == 100 {
                after_100 = rss_kib(pid);
            }
        }
        if line.starts_with("DONE") {
            at_end = rss_kib(pid);
            done_line = line;
            break;
        }
    }
    let took = start.elapsed();
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    assert!(
        done_line.starts_with("DONE"),
        "the run did not finish: {err}"
    );
    println!(
        "monitoring run: {measured} measurements of {SERIES} series (x2 names) at a 10 ms interval in {:.1} s ({done_line})",
        took.as_secs_f64()
    );
    println!(
        "  resident memory after 100 measurements: {:.1} MiB; at the end: {:.1} MiB; growth {:+.1}% ({})",
        after_100 as f64 / 1024.0,
        at_end as f64 / 1024.0,
        (at_end as f64 / after_100 as f64 - 1.0) * 100.0,
        if (at_end as f64) < after_100 as f64 * 1.10 { "flat: within 10%" } else { "NOT flat" }
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| name.contains(w.as_str()));
    if want("latency") {
        latency();
    }
    if want("check_all") {
        check_all();
    }
    if want("memory") {
        memory();
    }
}
