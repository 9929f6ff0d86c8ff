//! Live control (`runbook control ENV pause|resume|abort|promote`): a real demo canary runs in
//! the background, and a second process asks it through the environment's lock backend (the
//! file backend: the same machine). The run acts on the request itself, so its journal keeps
//! one writer and still verifies.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Test, BIN};
use serde_json::Value;

/// The demo canary, unattended, in the background: windows of `samples` measurements every
/// 500ms (slow enough for a request to land inside one).
fn start_demo(t: &Test, samples: &str) -> Child {
    let mut cmd = Test::new().command();
    cmd.current_dir(t.path())
        .args([
            "demo",
            "--unattended",
            "--strategy",
            "canary",
            "--set",
            "monitoring.interval=500ms",
            "--set",
            &format!("monitoring.samples={samples}"),
            "--set",
            "monitoring.min_requests=1",
            "--set",
            "triggers.response_time=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("start the demo")
}

fn run_dir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("deployments"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
}

fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait (up to a minute) until the run's journal has a record that `want` accepts.
fn wait_for(t: &Test, what: &str, want: impl Fn(&Value) -> bool) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dir) = run_dir(t.path()) {
            if journal(&dir).iter().any(&want) {
                return dir;
            }
        }
        assert!(Instant::now() < until, "the run never got to {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn control(t: &Test, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(t.path())
        .env("NO_COLOR", "1")
        .env("USER", "operator")
        .arg("control")
        .args(args);
    cmd.output().expect("run runbook control")
}

/// The demo's end: exit code and stdout, within two minutes.
fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("the demo ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn position(records: &[Value], want: impl Fn(&Value) -> bool) -> usize {
    records
        .iter()
        .position(want)
        .unwrap_or_else(|| panic!("no such record in {records:#?}"))
}

fn measuring(r: &Value) -> bool {
    r["type"] == "measurement"
}

#[test]
fn abort_from_another_process_makes_the_run_roll_back_itself() {
    let t = Test::new();
    let child = start_demo(&t, "3");
    wait_for(&t, "a measurement", measuring);
    let sent = control(
        &t,
        &["production", "abort", "--reason", "support tickets spiking"],
    );
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(
        said.starts_with("ok: asked the run of `production` to abort (by operator@"),
        "{said}"
    );
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("⏹ aborted by operator@"), "{stdout}");
    assert!(
        stdout.contains("Traffic now (measured through the router): v1 100% (200/200)"),
        "{stdout}"
    );
    let dir = run_dir(t.path()).unwrap();
    let records = journal(&dir);
    let asked = position(&records, |r| r["type"] == "control");
    let rollback = position(&records, |r| r["type"] == "rollback.start");
    let end = position(&records, |r| r["type"] == "run.end");
    assert!(asked < rollback && rollback < end, "{records:#?}");
    let c = &records[asked];
    assert_eq!(c["action"], "abort");
    assert_eq!(c["done"], "aborted");
    assert_eq!(c["reason"], "support tickets spiking");
    assert!(c["by"].as_str().unwrap().starts_with("operator@"), "{c}");
    assert!(records[rollback]["reason"]
        .as_str()
        .unwrap()
        .starts_with("aborted by operator@"));
    assert_eq!(records[end]["exit_code"], 3);
    // The journal still has one writer: it verifies.
    let verify = Command::new(BIN)
        .current_dir(t.path())
        .args(["verify", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // The post-mortem names who aborted, and why.
    let pm = std::fs::read_to_string(dir.join("post-mortem.md")).unwrap();
    assert!(pm.contains("aborted the run at "), "{pm}");
    assert!(
        pm.contains("(`runbook control`): support tickets spiking"),
        "{pm}"
    );
}

#[test]
fn pause_holds_the_weight_across_two_windows_and_resume_completes() {
    let t = Test::new();
    let child = start_demo(&t, "2");
    wait_for(&t, "a measurement", measuring);
    let sent = control(
        &t,
        &["production", "pause", "--reason", "checking a dashboard"],
    );
    assert_eq!(sent.status.code(), Some(0));
    let dir = wait_for(&t, "the pause", |r| r["done"] == "paused");
    // Two windows of 2 measurements every 500ms.
    std::thread::sleep(Duration::from_millis(2500));
    let status = Command::new(BIN)
        .current_dir(t.path())
        .env("NO_COLOR", "1")
        .args(["status", "production"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("; paused by operator@") && status.contains(": checking a dashboard"),
        "{status}"
    );
    let held = journal(&dir);
    let paused = position(&held, |r| r["done"] == "paused");
    assert!(
        held[paused..].iter().all(|r| r["type"] != "traffic"
            && r["type"] != "effect.intent"
            && r["type"] != "measurement"),
        "the run acted while paused: {:#?}",
        &held[paused..]
    );
    let sent = control(&t, &["production", "resume"]);
    assert_eq!(sent.status.code(), Some(0));
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("⏸ paused by operator@"), "{stdout}");
    assert!(stdout.contains("▶ resumed by operator@"), "{stdout}");
    assert!(
        stdout.contains("Traffic now (measured through the router): v2 100% (200/200)"),
        "{stdout}"
    );
    let records = journal(&dir);
    let paused = position(&records, |r| r["done"] == "paused");
    let resumed = position(&records, |r| r["done"] == "resumed");
    assert!(paused < resumed);
    assert!(
        records[paused..resumed]
            .iter()
            .all(|r| r["type"] != "traffic"),
        "traffic changed while paused"
    );
    assert!(records[resumed]["by"]
        .as_str()
        .unwrap()
        .starts_with("operator@"));
    // The pause held the schedule too: after it the window went on, not a burst of catch-up
    // measurements (each at least most of an interval after the one before).
    let after: Vec<&Value> = records[resumed..]
        .iter()
        .filter(|r| measuring(r))
        .take(2)
        .collect();
    if let [a, b] = after[..] {
        let ms = |r: &Value| {
            humantime::parse_rfc3339(r["ts"].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert!(ms(b) - ms(a) >= 300, "{a}\n{b}");
    }
}

#[test]
fn promote_skips_the_remaining_windows_and_completes_the_rollout() {
    let t = Test::new();
    let child = start_demo(&t, "3");
    wait_for(&t, "a measurement", measuring);
    let sent = control(
        &t,
        &["production", "promote", "--reason", "verified by hand"],
    );
    assert_eq!(sent.status.code(), Some(0));
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("⏩ promoted by operator@"), "{stdout}");
    assert!(
        stdout.contains("Traffic now (measured through the router): v2 100% (200/200)"),
        "{stdout}"
    );
    let dir = run_dir(t.path()).unwrap();
    let records = journal(&dir);
    let promoted = position(&records, |r| r["done"] == "promoted");
    assert_eq!(records[promoted]["reason"], "verified by hand");
    // Straight from the first share to all of it: the 25% and 50% windows were skipped.
    let shares: Vec<String> = records
        .iter()
        .filter(|r| r["type"] == "traffic")
        .map(|r| r["weights"]["v2"].to_string())
        .collect();
    assert!(!shares.iter().any(|s| s == "25" || s == "50"), "{shares:?}");
    assert!(
        records[promoted..]
            .iter()
            .all(|r| r["type"] != "measurement"),
        "measured after the promote"
    );
}

#[test]
fn a_request_to_an_environment_with_no_live_run_says_so_and_points_to_rollback() {
    let t = Test::new();
    let out = control(&t, &["production", "abort", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: `runbook control production abort`: no live run holds `production` (nothing is locked in `deployments/.locks/production.lock`), so there is nobody to ask\n  help: to undo a run that ended or died, `runbook rollback` (or `runbook repl --last`, then `rollback()`)\n"
    );
}

/// `runbook repl --deployment DIR` with `input` on stdin: stdout and stderr together.
fn repl(t: &Test, dir: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Test::new()
        .command()
        .current_dir(t.path())
        .args(["repl", "--deployment", dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_repl_attached_to_a_live_run_asks_it_instead_of_acting_and_status_shows_it_live() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
    );
    let mut cmd = Test::new().command();
    let deploy = cmd
        .current_dir(t.path())
        .arg("deploy.rhai")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = wait_for(&t, "its sleep", |r| r["message"] == "waiting");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let said = repl(&t, &shown, "pause(\"looking at it\")\n");
    assert!(
        said.contains(&format!("asked the run of `{shown}` to pause (by tester@")),
        "{said}"
    );
    wait_for(&t, "the pause", |r| r["done"] == "paused");
    let said = repl(&t, &shown, "status()\n");
    assert!(
        said.contains("live: the run is alive (tester@")
            && said.contains("; paused by tester@")
            && said.contains(": looking at it"),
        "{said}"
    );
    // rollback() is still refused, and points to asking the run.
    let said = repl(&t, &shown, "rollback()\n");
    assert!(
        said.contains("help: or ask the run from here: `abort(\"why\")` and it rolls back itself"),
        "{said}"
    );
    assert!(t.path().join("live.txt").exists(), "{said}");
    // Another operator's REPL, in another directory, attached by the absolute path: the holder
    // names its run directory relative to its own, and it is the same run (found by the
    // multi-operator trial: "the run ... is not alive; another run holds `production`").
    let elsewhere = Test::new();
    let absolute = dir.canonicalize().unwrap().display().to_string();
    let said = repl(&elsewhere, &absolute, "resume()\n");
    assert!(!said.contains("is not alive"), "{said}");
    assert!(said.contains("to resume (by tester@"), "{said}");
    wait_for(&t, "the resume", |r| r["done"] == "resumed");
    let said = repl(&t, &shown, "abort(\"from the repl\")\n");
    assert!(said.contains("to abort (by tester@"), "{said}");
    let (code, stdout, stderr) = finish(deploy);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(!t.path().join("live.txt").exists(), "{stdout}");
    let records = journal(&dir);
    let asked = position(&records, |r| r["done"] == "aborted");
    let rollback = position(&records, |r| r["type"] == "rollback.start");
    assert!(asked < rollback);
    assert_eq!(records[asked]["reason"], "from the repl");
    // Once the run is gone, there is nobody to ask.
    let said = repl(&t, &shown, "pause()\n");
    assert!(
        said.contains(&format!(
            "`pause()`: the run of `{shown}` is not alive: there is nobody to ask"
        )) && said.contains("help: `rollback()` here undoes what it left standing"),
        "{said}"
    );
}

/// An etcd of this test's own (Debian's etcd-server), on loopback ports picked now, its data in
/// a temp dir; stopped when dropped.
struct Etcd {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "etcd is not installed: .ci/run installs it with apt-get (package etcd-server)",
            );
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (support::free_port(), support::free_port());
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("test={p}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let until = Instant::now() + Duration::from_secs(30);
        while !support::http_get(&format!("{c}/health")).is_some_and(|b| b.contains("true")) {
            assert!(Instant::now() < until, "etcd at {c} did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        Etcd {
            url: c,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn with_etcd_a_request_from_another_machines_directory_reaches_the_run() {
    let etcd = Etcd::start();
    let config = format!(
        "lock:\n  backend: etcd\n  lease: 6s\n  etcd:\n    endpoints: [\"{}\"]\n",
        etcd.url
    );
    let t = Test::new().file("runbook.yaml", &config).file(
        "deploy.rhai",
        "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
    );
    let mut cmd = Test::new().command();
    let deploy = cmd
        .current_dir(t.path())
        .arg("deploy.rhai")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = wait_for(&t, "its sleep", |r| r["message"] == "waiting");
    // Another machine: its own working and deployments directory, the same store.
    let other = Test::new().file("runbook.yaml", &config);
    let sent = control(
        &other,
        &["production", "abort", "--reason", "from another machine"],
    );
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let (code, stdout, stderr) = finish(deploy);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(!t.path().join("live.txt").exists(), "{stdout}");
    let records = journal(&dir);
    let asked = position(&records, |r| r["done"] == "aborted");
    assert_eq!(records[asked]["reason"], "from another machine");
    assert!(asked < position(&records, |r| r["type"] == "rollback.start"));
    // The run took the request out of the store; with nobody holding the lock, another request
    // is refused.
    let again = control(&other, &["production", "pause"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no live run holds `production`"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
