//! Wall time of a runbook of 50 `sh("/bin/true")` steps (journal on) against a bash script running
//! the same 50 commands, and the startup time of `runbook check` on a shipped runbook.
//! Run with `cargo bench --bench steps`; it prints medians and the ratio.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 31;
const STEPS: usize = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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

fn main() {
    let bin = env!("CARGO_BIN_EXE_runbook");
    let dir = tempfile::tempdir().expect("temp dir");
    let rhai: String = (0..STEPS).map(|_| "sh(\"/bin/true\");\n").collect();
    let bash: String = std::iter::once("#!/bin/bash\n".to_string())
        .chain((0..STEPS).map(|_| "/bin/true\n".to_string()))
        .collect();
    std::fs::write(dir.path().join("steps.rhai"), rhai).unwrap();
    std::fs::write(dir.path().join("steps.sh"), bash).unwrap();

    let runbook = || {
        let mut c = Command::new(bin);
        c.arg("steps.rhai").current_dir(dir.path());
        c
    };
    let bash = || {
        let mut c = Command::new("bash");
        c.arg("steps.sh").current_dir(dir.path());
        c
    };
    // Warm the page cache for both.
    time(runbook());
    time(bash());
    let (mut r, mut b) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        r.push(time(runbook()));
        b.push(time(bash()));
    }
    let (mr, mb) = (median(r), median(b));
    println!("{STEPS} steps, median of {RUNS} runs:");
    println!("  runbook (journal on): {:>8.2} ms", mr.as_secs_f64() * 1e3);
    println!("  bash:                 {:>8.2} ms", mb.as_secs_f64() * 1e3);
    println!(
        "  ratio runbook/bash:   {:>8.2}x   (target: at most 1.5x)",
        mr.as_secs_f64() / mb.as_secs_f64()
    );

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
    let c: Vec<Duration> = (0..RUNS).map(|_| time(check())).collect();
    println!(
        "`runbook check {name}` (shipped), median of {RUNS}: {:.2} ms   (target: under 20 ms)",
        median(c).as_secs_f64() * 1e3
    );
}
