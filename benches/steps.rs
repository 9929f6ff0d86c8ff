//! Wall time of runbooks of 50 and 200 `sh("/bin/true")` steps (journal on) against bash scripts
//! running the same commands, on a quiet machine and with one core kept busy by a spinning
//! process; and the startup time of `runbook check` on a shipped runbook.
//!
//! Runs are interleaved (runbook, bash, runbook, bash, ...) so a change in the machine's load
//! touches both alike. For each case it prints the median and the p10-p90 spread of each, the
//! ratio of the medians, and the p10-p90 spread of the ratios of the interleaved pairs.
//! Run with `cargo bench --bench steps`; `BENCH_RUNS=n` changes the number of runs per case.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 21;
const QUIET_TARGET: f64 = 1.15;
const BUSY_TARGET: f64 = 1.5;

/// The value at quantile `q` (0..=1) of `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    took
}

/// A process that keeps one core busy until it is killed.
struct Spinner(Child);

impl Spinner {
    fn start() -> Spinner {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the spinning process");
        // Let it get going before the first measured run.
        std::thread::sleep(Duration::from_millis(200));
        Spinner(child)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(v: &[f64], q: f64) -> f64 {
    quantile(v, q) * 1e3
}

fn case(bin: &str, dir: &std::path::Path, steps: usize, busy: bool, runs: usize) -> f64 {
    let rhai_file = format!("steps{steps}.rhai");
    let bash_file = format!("steps{steps}.sh");
    let rhai: String = (0..steps).map(|_| "sh(\"/bin/true\");\n").collect();
    let bash: String = std::iter::once("#!/bin/bash\n".to_string())
        .chain((0..steps).map(|_| "/bin/true\n".to_string()))
        .collect();
    std::fs::write(dir.join(&rhai_file), rhai).unwrap();
    std::fs::write(dir.join(&bash_file), bash).unwrap();
    let runbook = || {
        let mut c = Command::new(bin);
        c.arg(&rhai_file).current_dir(dir);
        c
    };
    let bash = || {
        let mut c = Command::new("bash");
        c.arg(&bash_file).current_dir(dir);
        c
    };

    let _spinner = busy.then(Spinner::start);
    // Warm the page cache for both.
    time(runbook());
    time(bash());
    let (mut r, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let tr = time(runbook()).as_secs_f64();
        let tb = time(bash()).as_secs_f64();
        r.push(tr);
        b.push(tb);
        ratios.push(tr / tb);
    }
    let ratio = quantile(&r, 0.5) / quantile(&b, 0.5);
    let target = if busy { BUSY_TARGET } else { QUIET_TARGET };
    println!(
        "{steps} steps, {}, {runs} interleaved runs each:",
        if busy { "one core busy" } else { "quiet" }
    );
    for (name, v) in [("runbook (journal on)", &r), ("bash", &b)] {
        println!(
            "  {name:<21} median {:>8.2} ms   p10-p90 {:>8.2} - {:>8.2} ms",
            ms(v, 0.5),
            ms(v, 0.1),
            ms(v, 0.9)
        );
    }
    println!(
        "  ratio runbook/bash    {ratio:>8.2}x          pairs p10-p90 {:.2}x - {:.2}x   (target: at most {target}x)",
        quantile(&ratios, 0.1),
        quantile(&ratios, 0.9)
    );
    ratio
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_runbook");
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(RUNS);

    for busy in [false, true] {
        for steps in [50, 200] {
            case(bin, dir.path(), steps, busy, runs);
        }
    }

    let name = std::env::var("BENCH_CHECK_RUNBOOK").unwrap_or_else(|_| "deploy".into());
    let shipped = runbook::embedded::RUNBOOKS
        .iter()
        .any(|(f, _)| *f == format!("{name}.rhai"));
    let name = if shipped { name } else { "preflight".into() };
    let check = || {
        let mut c = Command::new(bin);
        c.args(["check", &name]).current_dir(dir.path());
        c
    };
    time(check());
    let c: Vec<f64> = (0..runs).map(|_| time(check()).as_secs_f64()).collect();
    println!(
        "`runbook check {name}` (shipped), {runs} runs: median {:.2} ms, p10-p90 {:.2} - {:.2} ms   (target: under 20 ms)",
        ms(&c, 0.5),
        ms(&c, 0.1),
        ms(&c, 0.9)
    );
}
