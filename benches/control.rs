//! Live control's latency: how long after `runbook control production abort` returns the
//! running deployment starts rolling back (its `rollback.start` record's time). A demo canary
//! (the embedded fleet, 500ms monitoring interval) is started, and aborted from a second process
//! once it is monitoring, at a random moment of its window; each round prints the latency, and the end the median and p10-p90
//! spread. The run polls the lock backend (the file backend here) every 250ms and takes a
//! request within a few milliseconds of finding it, at its next safe point.
//! Run with `cargo bench --bench control`; `BENCH_RUNS=n` changes the number of rounds,
//! `BENCH_RUNBOOK=path` measures another build of runbook.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const RUNS: usize = 9;

/// The value at quantile `q` (0..=1) of `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

fn run_dir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("deployments"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn epoch_ms(ts: &str) -> f64 {
    humantime::parse_rfc3339(ts)
        .expect("an RFC 3339 time")
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// One round: the latency in milliseconds from the abort command returning to the run's
/// `rollback.start`.
fn round(bin: &str) -> f64 {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut demo = Command::new(bin)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args([
            "demo",
            "--unattended",
            "--strategy",
            "canary",
            "--set",
            "monitoring.interval=500ms",
            "--set",
            "monitoring.samples=3",
            "--set",
            "monitoring.min_requests=1",
            "--set",
            "triggers.response_time=30s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let until = Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = run_dir(dir) {
            if records(&run).iter().any(|r| r["type"] == "measurement") {
                break run;
            }
        }
        assert!(Instant::now() < until, "the demo never started monitoring");
        std::thread::sleep(Duration::from_millis(20));
    };
    // At a random moment of the run's poll cycle and monitoring window: otherwise each round
    // sends at the same phase (right after a measurement) and measures one point of the cycle.
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 500_000_000;
    std::thread::sleep(Duration::from_nanos(jitter as u64));
    let sent = Command::new(bin)
        .current_dir(dir)
        .args(["control", "production", "abort", "--reason", "bench"])
        .output()
        .expect("runbook control");
    let returned = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0;
    assert!(sent.status.success(), "{sent:?}");
    let status = demo.wait().expect("the demo ends");
    assert_eq!(status.code(), Some(3), "the demo was not rolled back");
    let started = records(&run)
        .iter()
        .find(|r| r["type"] == "rollback.start")
        .map(|r| epoch_ms(r["ts"].as_str().unwrap()))
        .expect("a rollback.start record");
    started - returned
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RUNS);
    let bin =
        std::env::var("BENCH_RUNBOOK").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runbook").into());
    let mut ms = Vec::new();
    for i in 0..runs {
        let l = round(&bin);
        println!("round {:>2}: abort to rollback.start {l:>6.1} ms", i + 1);
        ms.push(l);
    }
    println!(
        "abort-to-rollback latency over {runs} runs: median {:.0} ms, p10-p90 {:.0}-{:.0} ms, min {:.0} ms, max {:.0} ms (file backend, control poll 250ms)",
        quantile(&ms, 0.5),
        quantile(&ms, 0.1),
        quantile(&ms, 0.9),
        quantile(&ms, 0.0),
        quantile(&ms, 1.0),
    );
}
