//! Peak resident memory of `runbook` while a command prints 200 MB, against the same runbook
//! with a command that prints nothing: output streams through, it is not kept.
//! Run with `cargo bench --bench output`.

use std::process::{Command, Stdio};

/// Run and return (exit code, peak RSS in KiB) from wait4's rusage.
// The child is reaped by wait4 (which also reports its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn peak_rss(mut cmd: Command) -> (i32, i64) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by wait4 for the child we just spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::wait4(child.id() as i32, &mut status, 0, &mut usage);
    }
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_runbook");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("quiet.rhai"), "sh(\"true\");\n").unwrap();
    // 200 MB as 2,000,000 lines of 99 characters.
    std::fs::write(
        dir.path().join("loud.rhai"),
        "sh(\"yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -n 2000000\");\n",
    )
    .unwrap();
    let run = |script: &str| {
        let mut c = Command::new(bin);
        c.arg(script).current_dir(dir.path());
        peak_rss(c)
    };
    let (q_code, quiet) = run("quiet.rhai");
    let start = std::time::Instant::now();
    let (l_code, loud) = run("loud.rhai");
    let took = start.elapsed();
    assert_eq!((q_code, l_code), (0, 0), "both runs must succeed");
    println!("peak RSS, command printing nothing: {:>8} KiB", quiet);
    println!(
        "peak RSS, command printing 200 MB:  {:>8} KiB  ({:.1}s, {:.0} MB/s through the runner)",
        loud,
        took.as_secs_f64(),
        200.0 / took.as_secs_f64()
    );
    println!("growth: {} KiB ({:.2}x); the capture keeps at most commands.capture_limit (1 MiB) per stream", loud - quiet, loud as f64 / quiet as f64);
}
