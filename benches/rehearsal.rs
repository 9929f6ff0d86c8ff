//! Wall time of `runbook test` against the virtual time it rehearses: a 30-minute canary
//! (30 s interval, 4 windows of 10 measurements, 3 metrics and the health check) simulated, and
//! the whole shipped scenario suite (tests/scenarios). For each it prints the median and the
//! p10-p90 spread of the wall time, the virtual time covered, and their ratio; and the CPU time
//! (user + system), which the load of other processes disturbs less than the wall time: on a
//! quiet machine a rehearsal's wall time is its CPU time (it never waits: the clock is virtual).
//!
//! Run with `cargo bench --bench rehearsal`; `BENCH_RUNS=n` changes the number of runs of the
//! canary (the suite runs a third as often), `BENCH_RUNBOOK=path` measures another build.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 15;
const CANARY_TARGET: Duration = Duration::from_secs(1);
const SUITE_TARGET: Duration = Duration::from_secs(5);

/// The canary: checks and deploys that take minutes, then 4 windows (5%, 25%, 50%, 100%) of
/// 10 measurements 30 s apart, of error rate, response time and CPU, and the health check.
const CANARY: &str = r#"name: a 30-minute canary of a good release
runbook: deploy
set:
  rollout.initial: 5
  rollout.steps: [25, 50, 100]
  monitoring.interval: 30s
  monitoring.samples: 10
  monitoring.queries.cpu: avg(rate(cpu_seconds_total{version="{{version}}"}[1m]))
answers: { strategy: canary, staging-deployment-successful-proceed-to-production: yes }
yes: true
approve: true
world:
  metrics:
    error_rate: { v1: [0.002], v2: [0.003, 0.004, 0.002, 0.003] }
    response_time: { v1: [120], v2: [130, 125, 140, 128] }
    cpu: { v1: [0.35], v2: [0.4, 0.42, 0.38] }
  commands:
    "npm *": { exit: 0, after: 2m }
    "./deploy.sh *": { exit: 0, after: 2m }
    "./scripts/*": { exit: 0, after: 10s }
  http:
    "GET */health": { status: 200 }
expect:
  exit: 0
  rolled_back: false
  notified: [team]
  virtual_time: ">= 28m"
"#;

/// The value at quantile `q` (0..=1) of `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The 1-minute load average, to say how busy the machine was.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "deployments" {
            continue;
        }
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// CPU time (user and system) of the waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// One `runbook test ARGS` in `dir`: its wall time, CPU time, exit code and output.
fn run(bin: &str, dir: &Path, args: &[&str]) -> (f64, f64, i32, String) {
    let cpu = children_cpu();
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("test")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run runbook test");
    let took = start.elapsed().as_secs_f64();
    (
        took,
        children_cpu() - cpu,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The virtual time of each scenario's result line (`✓ name (exit N, 22m10s virtual, ...)`).
fn virtual_times(stdout: &str) -> Vec<Duration> {
    stdout
        .lines()
        .filter(|l| l.starts_with("✓ ") || l.starts_with("✗ "))
        .filter_map(|l| {
            let (_, tail) = l.rsplit_once(" (exit ")?;
            let v = tail.split(", ").nth(1)?.strip_suffix(" virtual")?;
            humantime::parse_duration(v).ok()
        })
        .collect()
}

fn minutes(d: Duration) -> String {
    format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
}

/// Timed runs after one to warm the caches: wall and CPU times, and the last run's exit and output.
struct Measured {
    walls: Vec<f64>,
    cpus: Vec<f64>,
    code: i32,
    stdout: String,
}

fn measure(bin: &str, dir: &Path, args: &[&str], runs: usize) -> Measured {
    let (_, _, code, stdout) = run(bin, dir, args);
    let mut m = Measured {
        walls: Vec::new(),
        cpus: Vec::new(),
        code,
        stdout,
    };
    for _ in 0..runs {
        let (t, cpu, code, stdout) = run(bin, dir, args);
        m.walls.push(t);
        m.cpus.push(cpu);
        (m.code, m.stdout) = (code, stdout);
    }
    m
}

fn report(m: &Measured, covered: Duration, target: Duration) -> f64 {
    let walls = &m.walls;
    let median = quantile(walls, 0.5);
    let cpu = quantile(&m.cpus, 0.5);
    println!(
        "  wall    median {:>8.1} ms   p10-p90 {:>8.1} - {:>8.1} ms   ({} runs; target: under {} ms)",
        median * 1e3,
        quantile(walls, 0.1) * 1e3,
        quantile(walls, 0.9) * 1e3,
        walls.len(),
        target.as_millis()
    );
    println!(
        "  cpu     median {:>8.1} ms   p10-p90 {:>8.1} - {:>8.1} ms   (user + system; wall/cpu {:.1}x: the machine's load)",
        cpu * 1e3,
        quantile(&m.cpus, 0.1) * 1e3,
        quantile(&m.cpus, 0.9) * 1e3,
        median / cpu
    );
    let verdict = |t: f64| {
        if t < target.as_secs_f64() {
            "under"
        } else {
            "OVER"
        }
    };
    println!(
        "  virtual {}   ratio virtual/wall {:.0}x, virtual/cpu {:.0}x   wall/target {:.2} ({} target), cpu/target {:.2} ({} target)",
        minutes(covered),
        covered.as_secs_f64() / median,
        covered.as_secs_f64() / cpu,
        median / target.as_secs_f64(),
        verdict(median),
        cpu / target.as_secs_f64(),
        verdict(cpu)
    );
    median
}

fn main() {
    let bin =
        std::env::var("BENCH_RUNBOOK").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runbook").into());
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(RUNS);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("project");
    copy_dir(&shipped, &project);
    std::fs::write(project.join("canary-30m.yaml"), CANARY).unwrap();

    let load_before = load();
    let m = measure(&bin, &project, &["canary-30m.yaml"], runs);
    assert_eq!(m.code, 0, "the canary did not pass:\n{}", m.stdout);
    let covered = virtual_times(&m.stdout)[0];
    println!(
        "30-minute canary (4 windows x 10 measurements x 30 s; error rate, response time, cpu and health), 1-minute load average {load_before} before, {} after:",
        load()
    );
    let median = report(&m, covered, CANARY_TARGET);
    println!(
        "  per measurement (40 of 4 metrics, startup included): {:.2} ms",
        median * 1e3 / 40.0
    );

    let suite_runs = runs.div_ceil(3).max(3);
    let load_before = load();
    let m = measure(&bin, &project, &["tests"], suite_runs);
    let each = virtual_times(&m.stdout);
    let covered: Duration = each.iter().sum();
    println!(
        "the shipped suite (tests/scenarios: {} scenarios, exit {}), 1-minute load average {load_before} before, {} after:",
        each.len(),
        m.code,
        load()
    );
    let median = report(&m, covered, SUITE_TARGET);
    println!(
        "  per scenario: {:.1} ms wall, {} virtual",
        median * 1e3 / each.len() as f64,
        minutes(covered / each.len() as u32)
    );
}
