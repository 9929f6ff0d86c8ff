//! Wall time of runbooks of 50 and 200 `sh("/bin/true")` steps (journal on) against bash scripts
//! running the same commands, on a quiet machine and with one core kept busy by a spinning
//! process; and the startup time of `runbook check` on a shipped runbook.
//!
//! Runs are interleaved (runbook, bash, runbook, bash, ...) so a change in the machine's load
//! touches both alike. For each case it prints the median and the p10-p90 spread of each, the
//! ratio of the medians, and the p10-p90 spread of the ratios of the interleaved pairs.
//! It also prints the CPU time (user + system, with the commands run) of each, which the load
//! of other processes disturbs less than the wall time; and what one `fdatasync` of an appended
//! line costs on the same file system, measured between the pairs: the journal syncs each
//! intent before its effect acts, so `steps` syncs are a floor under runbook's time that depends
//! on the disk (and on what else writes to it), not on runbook. And, interleaved with the same
//! runs, a minimal durable runner (`minimal_runner`: append an intent, fdatasync it, start the
//! command, wait, append its result; nothing else): the least any runner that keeps the
//! journal's promise can take here, so a target below it is a target for the disk.
//! Run with `cargo bench --bench steps`; `BENCH_RUNS=n` changes the number of runs per case,
//! `BENCH_RUNBOOK=path` measures another build of runbook.

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

fn time(cmd: Command) -> Duration {
    time_cpu(cmd).0
}

/// CPU time (user and system) of the waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Wall time and CPU time (user + system, the command and all it ran) of one run.
fn time_cpu(mut cmd: Command) -> (Duration, f64) {
    let cpu = children_cpu();
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    (took, children_cpu() - cpu)
}

/// The 1-minute load average, to say how quiet "quiet" was.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
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

/// `path` opened to append to, created if need be.
fn open_append(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Append a journal-sized line to a file in `dir` and `fdatasync` it, `n` times: the time of
/// each, in seconds.
fn sync_latency(dir: &std::path::Path, n: usize) -> Vec<f64> {
    use std::io::Write;
    let path = dir.join("sync-probe.jsonl");
    let mut f = open_append(&path);
    let mut line = vec![b'x'; 300];
    line.push(b'\n');
    let took = (0..n)
        .map(|_| {
            let start = Instant::now();
            f.write_all(&line).expect("write the sync probe");
            f.sync_data().expect("sync the sync probe");
            start.elapsed().as_secs_f64()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    took
}

/// The least a runner can do per step and still keep the journal's promise (an effect's intent
/// is on disk before the effect acts): append an intent line and `fdatasync` it, start the
/// command as runbook starts it (its own process group, stdin null, output piped), wait for it,
/// append its result line; one more sync at the end, as `run.end`. In this process: no startup,
/// no script, nothing else. With `sync` off, the same without the syncs. Its time, in seconds.
fn minimal_runner(dir: &std::path::Path, steps: usize, sync: bool) -> f64 {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let path = dir.join("minimal-runner.jsonl");
    let mut journal = open_append(&path);
    let mut intent = vec![b'i'; 300];
    intent.push(b'\n');
    let mut result = vec![b'r'; 200];
    result.push(b'\n');
    let start = Instant::now();
    for _ in 0..steps {
        journal.write_all(&intent).expect("write an intent");
        if sync {
            journal.sync_data().expect("sync an intent");
        }
        let out = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .output()
            .expect("run /bin/true");
        assert!(out.status.success());
        journal.write_all(&result).expect("write a result");
    }
    if sync {
        journal.sync_data().expect("sync the end");
    }
    let took = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    took
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
    let load_before = load();
    let (mut r, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rc, mut bc) = (Vec::new(), Vec::new());
    let mut syncs = Vec::new();
    let (mut floor_synced, mut floor_unsynced) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (tr, cr) = time_cpu(runbook());
        let (tb, cb) = time_cpu(bash());
        floor_synced.push(minimal_runner(dir, steps, true));
        floor_unsynced.push(minimal_runner(dir, steps, false));
        syncs.extend(sync_latency(dir, 5));
        let (tr, tb) = (tr.as_secs_f64(), tb.as_secs_f64());
        r.push(tr);
        b.push(tb);
        rc.push(cr);
        bc.push(cb);
        ratios.push(tr / tb);
    }
    let ratio = quantile(&r, 0.5) / quantile(&b, 0.5);
    let target = if busy { BUSY_TARGET } else { QUIET_TARGET };
    println!(
        "{steps} steps, {}, {runs} interleaved runs each (1-minute load average {load_before} before, {} after{}):",
        if busy { "one core busy" } else { "quiet" },
        load(),
        if busy { ", the spinner included" } else { "" }
    );
    for (name, v, c) in [("runbook (journal on)", &r, &rc), ("bash", &b, &bc)] {
        println!(
            "  {name:<21} median {:>8.2} ms   p10-p90 {:>8.2} - {:>8.2} ms   cpu median {:>8.2} ms",
            ms(v, 0.5),
            ms(v, 0.1),
            ms(v, 0.9),
            ms(c, 0.5)
        );
    }
    println!(
        "  ratio runbook/bash    {ratio:>8.2}x          pairs p10-p90 {:.2}x - {:.2}x   cpu {:.2}x   (target: at most {target}x)",
        quantile(&ratios, 0.1),
        quantile(&ratios, 0.9),
        quantile(&rc, 0.5) / quantile(&bc, 0.5)
    );
    // The disk's part: one fdatasync per intent (and one at the run's end).
    let floor = (steps + 1) as f64 * quantile(&syncs, 0.5);
    println!(
        "  fdatasync (the disk)  median {:>8.3} ms   p10-p90 {:>8.3} - {:>8.3} ms   x{} syncs = {:.2} ms; runbook without them {:.2} ms = {:.2}x bash",
        ms(&syncs, 0.5),
        ms(&syncs, 0.1),
        ms(&syncs, 0.9),
        steps + 1,
        floor * 1e3,
        (quantile(&r, 0.5) - floor) * 1e3,
        (quantile(&r, 0.5) - floor) / quantile(&b, 0.5)
    );
    // What durability alone costs against bash, measured rather than estimated: the least a
    // runner can do that syncs each intent before its command (`minimal_runner`). A target below
    // it cannot be met on this machine without dropping the syncs.
    let bash_median = quantile(&b, 0.5);
    for (name, v) in [
        ("minimal durable runner", &floor_synced),
        ("the same, no syncs", &floor_unsynced),
    ] {
        println!(
            "  {name:<23} median {:>8.2} ms   p10-p90 {:>8.2} - {:>8.2} ms   = {:.2}x bash{}",
            ms(v, 0.5),
            ms(v, 0.1),
            ms(v, 0.9),
            quantile(v, 0.5) / bash_median,
            if name.starts_with("minimal") && quantile(v, 0.5) / bash_median > target {
                format!("   (above the {target}x target: the target is below what durability costs here)")
            } else {
                String::new()
            }
        );
    }
    println!(
        "  runbook / minimal durable runner {:.2}x   (runbook's own part: startup, script, records, output)",
        quantile(&r, 0.5) / quantile(&floor_synced, 0.5)
    );
    ratio
}

fn main() {
    // BENCH_RUNBOOK: another build to measure (an older one, to compare).
    let bin =
        std::env::var("BENCH_RUNBOOK").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runbook").into());
    let bin = bin.as_str();
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
