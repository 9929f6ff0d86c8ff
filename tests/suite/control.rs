//! Live control (`runbook control ENV pause|resume|abort|promote`): a real demo canary runs in
//! the background, and a second process asks it through the environment's lock backend (the
//! file backend: the same machine). The run acts on the request itself, so its journal keeps
//! one writer and still verifies.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Output, Running, Test};
use serde_json::Value;

/// The demo canary, unattended, in the background: windows of `samples` measurements every
/// 500ms (slow enough for a request to land inside one).
fn start_demo(samples: &str) -> Running {
    Test::new()
        .args(&[
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
        .spawn()
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

/// Wait (up to a minute) until the run's journal (the run in `root`) has a record that `want`
/// accepts.
fn wait_for(root: &Path, what: &str, want: impl Fn(&Value) -> bool) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dir) = run_dir(root) {
            if journal(&dir).iter().any(&want) {
                return dir;
            }
        }
        assert!(Instant::now() < until, "the run never got to {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `runbook control ARGS` in `dir`, by another person (`operator`).
fn control(dir: &Path, args: &[&str]) -> Output {
    Test::new()
        .in_dir(dir)
        .env("USER", "operator")
        .args(&["control"])
        .args(args)
        .run()
}

fn position(records: &[Value], want: impl Fn(&Value) -> bool) -> usize {
    records
        .iter()
        .position(want)
        .unwrap_or_else(|| panic!("no such record in {records:#?}"))
}

/// This machine's name, as a run names who asked it (`operator@HOST`).
fn host() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn measuring(r: &Value) -> bool {
    r["type"] == "measurement"
}

#[test]
fn abort_from_another_process_makes_the_run_roll_back_itself() {
    let host = host();
    let demo = start_demo("3");
    wait_for(demo.path(), "a measurement", measuring);
    control(
        demo.path(),
        &["production", "abort", "--reason", "support tickets spiking"],
    )
    .expect_status(0)
    .expect_stdout_exact(&format!("ok: asked the run of `production` to abort (by operator@{host}: support tickets spiking; run deployments/<date>-checkout); it acts at its next safe point and journals it\n"))
    .expect_stderr_exact("");
    let out = demo.finish();
    out.expect_status(3)
        .expect_stdout_lines(&[
            &format!("⏹ aborted by operator@{host}: support tickets spiking: rolling back"),
            &format!("Rolling back: aborted by operator@{host}: support tickets spiking"),
            "Rollback complete: 3 step(s) undone.",
            "Traffic now (measured through the router): v1 100% (200/200)",
        ])
        .expect_stderr_exact("");
    let dir = out.run_dir();
    let records = journal(&dir);
    let asked = position(&records, |r| r["type"] == "control");
    let rollback = position(&records, |r| r["type"] == "rollback.start");
    let end = position(&records, |r| r["type"] == "run.end");
    assert!(asked < rollback && rollback < end, "{records:#?}");
    let c = &records[asked];
    assert_eq!(c["action"], "abort", "{c}");
    assert_eq!(c["done"], "aborted", "{c}");
    assert_eq!(c["reason"], "support tickets spiking", "{c}");
    assert!(c["by"].as_str().unwrap().starts_with("operator@"), "{c}");
    assert!(
        records[rollback]["reason"]
            .as_str()
            .unwrap()
            .starts_with("aborted by operator@"),
        "{}",
        records[rollback]
    );
    assert_eq!(records[end]["exit_code"], 3, "{}", records[end]);
    // The journal still has one writer: it verifies.
    let verify = out.again().args(&["verify", dir.to_str().unwrap()]).run();
    verify
        .expect_status(0)
        .expect_stdout_like(&format!(
            "ok: deployment-plan.md pins the last record\nok: {}/journal.jsonl: [..] records, hash chain intact; final hash [..]\n",
            dir.display()
        ))
        .expect_stderr_exact("");
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
    let host = host();
    let demo = start_demo("2");
    let pid = demo.id();
    wait_for(demo.path(), "a measurement", measuring);
    control(
        demo.path(),
        &["production", "pause", "--reason", "checking a dashboard"],
    )
    .expect_status(0)
    .expect_stdout_exact(&format!("ok: asked the run of `production` to pause (by operator@{host}: checking a dashboard; run deployments/<date>-checkout); it acts at its next safe point and journals it\n"))
    .expect_stderr_exact("");
    let dir = wait_for(demo.path(), "the pause", |r| r["done"] == "paused");
    // Two windows of 2 measurements every 500ms.
    std::thread::sleep(Duration::from_millis(2500));
    Test::new()
        .in_dir(demo.path())
        .args(&["status", "production"])
        .run()
        .expect_status(0)
        .expect_stdout_like(&format!("production: held by tester@{host} (pid {pid}) since [..], run deployments/<date>-checkout\n  stage: [..]; paused by operator@{host}: checking a dashboard\n"))
        .expect_stderr_exact("");
    let held = journal(&dir);
    let paused = position(&held, |r| r["done"] == "paused");
    assert!(
        held[paused..].iter().all(|r| r["type"] != "traffic"
            && r["type"] != "effect.intent"
            && r["type"] != "measurement"),
        "the run acted while paused: {:#?}",
        &held[paused..]
    );
    control(demo.path(), &["production", "resume"])
        .expect_status(0)
        .expect_stdout_exact("ok: asked the run of `production` to resume (by operator@vm; run deployments/<date>-checkout); it acts at its next safe point and journals it\n")
        .expect_stderr_exact("");
    let out = demo.finish();
    out.expect_status(0)
        .expect_stdout_lines(&[
            &format!("⏸ paused by operator@{host}: checking a dashboard: holding at the current traffic"),
            "  go on with `runbook control production resume`, or `promote`, or `abort --reason \"...\"`",
            "→ v2 now gets 100% of traffic",
            "✅ Run completed.",
            "Traffic now (measured through the router): v2 100% (200/200)",
        ])
        // How long it was paused is a duration.
        .expect_stdout_contains(&[&format!("\n▶ resumed by operator@{host} (paused for ")])
        .expect_stderr_exact("");
    let records = journal(&dir);
    let paused = position(&records, |r| r["done"] == "paused");
    let resumed = position(&records, |r| r["done"] == "resumed");
    assert!(paused < resumed, "{records:#?}");
    assert!(
        records[paused..resumed]
            .iter()
            .all(|r| r["type"] != "traffic"),
        "traffic changed while paused"
    );
    assert!(
        records[resumed]["by"]
            .as_str()
            .unwrap()
            .starts_with("operator@"),
        "{}",
        records[resumed]
    );
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
    let host = host();
    let demo = start_demo("3");
    wait_for(demo.path(), "a measurement", measuring);
    control(
        demo.path(),
        &["production", "promote", "--reason", "verified by hand"],
    )
    .expect_status(0)
    .expect_stdout_exact(&format!("ok: asked the run of `production` to promote (by operator@{host}: verified by hand; run deployments/<date>-checkout); it acts at its next safe point and journals it\n"))
    .expect_stderr_exact("");
    let out = demo.finish();
    out.expect_status(0)
        .expect_stdout_lines(&[
            &format!("⏩ promoted by operator@{host}: verified by hand: the remaining monitoring windows are skipped"),
            "→ v2 now gets 100% of traffic",
            "✅ Run completed.",
            "Traffic now (measured through the router): v2 100% (200/200)",
        ])
        .expect_stderr_exact("");
    let records = journal(&out.run_dir());
    let promoted = position(&records, |r| r["done"] == "promoted");
    assert_eq!(
        records[promoted]["reason"], "verified by hand",
        "{}",
        records[promoted]
    );
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
    control(t.path(), &["production", "abort", "--reason", "x"])
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(
        "error: `runbook control production abort`: no live run holds `production` (nothing is locked in `deployments/.locks/production.lock`), so there is nobody to ask\n  help: to undo a run that ended or died, `runbook rollback` (or `runbook repl --last`, then `rollback()`)\n"
    );
}

/// `runbook repl --deployment RUN` in `dir`, with `input` on stdin.
fn repl(dir: &Path, run: &str, input: &str) -> Output {
    Test::new()
        .in_dir(dir)
        .args(&["repl", "--deployment", run])
        .stdin(input)
        .run()
}

#[test]
fn the_repl_attached_to_a_live_run_asks_it_instead_of_acting_and_status_shows_it_live() {
    let deploy = Test::new()
        .script(
            "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
        )
        .spawn();
    let (host, pid) = (host(), deploy.id());
    let root = deploy.path().to_path_buf();
    let dir = wait_for(&root, "its sleep", |r| r["message"] == "waiting");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    repl(&root, &shown, "pause(\"looking at it\")\n")
        .expect_status(0)
        .expect_stdout_exact(&format!("asked the run of `{shown}` to pause (by tester@{host}: looking at it); it acts at its next safe point and journals it\n=> asked the run of `{shown}` to pause (by tester@{host}: looking at it); it acts at its next safe point and journals it\n"))
        .expect_stderr_exact(&format!("runbook repl\n  journal: deployments/<date>-repl\n  attached to {shown}: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> pause(\"looking at it\")\n"));
    wait_for(&root, "the pause", |r| r["done"] == "paused");
    repl(&root, &shown, "status()\n")
        .expect_status(0)
        .expect_stdout_exact(&format!("deployment {shown}: unfinished (the journal has no end record)\n  live: no traffic change recorded\n  last verdict: none\n  undo steps standing: 1 (remove live.txt): rollback() runs them\n  journal: intact\nlive: the run is alive (tester@{host} pid {pid}), stage -; paused by tester@{host}: looking at it\n=> #{{\"deployment\": \"{shown}\", \"journal\": \"intact\", \"live\": #{{\"alive\": true, \"by\": \"tester@{host}\", \"control\": #{{\"by\": \"tester@{host}\", \"reason\": \"looking at it\", \"state\": \"paused\"}}, \"pending\": (), \"pid\": {pid}, \"stage\": (), \"traffic\": (), \"verdict\": ()}}, \"outcome\": \"unfinished (the journal has no end record)\", \"stage\": (), \"strategy\": (), \"traffic\": (), \"undo_standing\": [#{{\"action\": \"rm -f live.txt\", \"label\": \"remove live.txt\"}}], \"verdicts\": []}}\n"))
        .expect_stderr_exact("runbook repl\n  journal: deployments/<date>-repl\n  attached to deployments/<date>-deploy: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> status()\n");
    // rollback() is still refused, and points to asking the run.
    let said = repl(&root, &shown, "rollback()\n");
    said.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!("runbook repl\n  journal: deployments/<date>-repl\n  attached to {shown}: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> rollback()\nerror: `rollback()` refused: the run of `{shown}` is still alive: tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run {shown}\n  help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or `kill -INT {pid}`; it offers its own rollback), then try again here\n  help: or ask the run from here: `abort(\"why\")` and it rolls back itself; `pause()`, `resume()`, `promote()`\n --> <repl>:1:1\n  |\n1 | rollback()\n  | ^\n1 of 1 lines failed: exit 1\n"));
    assert!(
        root.join("live.txt").exists(),
        "rollback() undid the live run's work"
    );
    // Another operator's REPL, in another directory, attached by the absolute path: the holder
    // names its run directory relative to its own, and it is the same run (found by the
    // multi-operator trial: "the run ... is not alive; another run holds `production`").
    let elsewhere = Test::new();
    let absolute = dir.canonicalize().unwrap().display().to_string();
    repl(elsewhere.path(), &absolute, "resume()\n")
        .expect_status(0)
        .expect_stdout_exact(&format!("asked the run of `{absolute}` to resume (by tester@{host}); it acts at its next safe point and journals it\n=> asked the run of `{absolute}` to resume (by tester@{host}); it acts at its next safe point and journals it\n"))
        .expect_stderr_exact(&format!("runbook repl\n  journal: deployments/<date>-repl\n  attached to {absolute}: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> resume()\n"))
        .expect_stdout_lacks(&["is not alive"])
        .expect_stderr_lacks(&["is not alive"]);
    wait_for(&root, "the resume", |r| r["done"] == "resumed");
    repl(&root, &shown, "abort(\"from the repl\")\n")
        .expect_status(0)
        .expect_stdout_exact(&format!("asked the run of `{shown}` to abort (by tester@{host}: from the repl); it acts at its next safe point and journals it\n=> asked the run of `{shown}` to abort (by tester@{host}: from the repl); it acts at its next safe point and journals it\n"))
        .expect_stderr_exact("runbook repl\n  journal: deployments/<date>-repl-2\n  attached to deployments/<date>-deploy: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> abort(\"from the repl\")\n");
    let out = deploy.finish();
    out.expect_status(3)
        .expect_stdout_like(&format!("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch live.txt\nwaiting\n⏸ paused by tester@{host}: looking at it: holding at the current traffic\n  go on with `runbook control production resume`, or `promote`, or `abort --reason \"...\"`\n▶ resumed by tester@{host} (paused for [..])\n⏹ aborted by tester@{host}: from the repl: rolling back\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: aborted by tester@{host}: from the repl\n↩ remove live.txt (rm -f live.txt)\n  ✓ remove live.txt\nRollback complete: 1 step(s) undone.\n↩ Rolled back: aborted by tester@{host}: from the repl\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"))
        .expect_stderr_exact("");
    assert!(!root.join("live.txt").exists(), "not rolled back");
    let records = journal(&dir);
    let asked = position(&records, |r| r["done"] == "aborted");
    let rollback = position(&records, |r| r["type"] == "rollback.start");
    assert!(asked < rollback, "{records:#?}");
    assert_eq!(
        records[asked]["reason"], "from the repl",
        "{}",
        records[asked]
    );
    // Once the run is gone, there is nobody to ask.
    out.again()
        .args(&["repl", "--deployment", &shown])
        .stdin("pause()\n")
        .run()
        .expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_exact("runbook repl\n  journal: deployments/<date>-repl-2\n  attached to deployments/<date>-deploy: status(), rollback(), metrics()\n  :help for the primitives, :quit or Ctrl-D to leave\nrunbook> pause()\nerror: `pause()`: the run of `deployments/<date>-deploy` is not alive: there is nobody to ask\n  help: `rollback()` here undoes what it left standing (or `runbook rollback`)\n --> <repl>:1:1\n  |\n1 | pause()\n  | ^\n1 of 1 lines failed: exit 1\n");
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
    let deploy = Test::new()
        .file("runbook.yaml", &config)
        .script(
            "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
        )
        .spawn();
    let host = host();
    let dir = wait_for(deploy.path(), "its sleep", |r| r["message"] == "waiting");
    // Another machine: its own working and deployments directory, the same store.
    let other = Test::new().file("runbook.yaml", &config);
    control(
        other.path(),
        &["production", "abort", "--reason", "from another machine"],
    )
    .expect_status(0)
    .expect_stdout_exact(&format!("ok: asked the run of `production` to abort (by operator@{host}: from another machine; run deployments/<date>-deploy); it acts at its next safe point and journals it\n"))
    .expect_stderr_exact("");
    let out = deploy.finish();
    out.expect_status(3)
        .expect_stdout_exact(&format!("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch live.txt\nwaiting\n⏹ aborted by operator@{host}: from another machine: rolling back\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: aborted by operator@{host}: from another machine\n↩ remove live.txt (rm -f live.txt)\n  ✓ remove live.txt\nRollback complete: 1 step(s) undone.\n↩ Rolled back: aborted by operator@{host}: from another machine\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"))
        .expect_stderr_exact("");
    assert!(!out.dir.join("live.txt").exists(), "not rolled back");
    let records = journal(&dir);
    let asked = position(&records, |r| r["done"] == "aborted");
    assert_eq!(
        records[asked]["reason"], "from another machine",
        "{}",
        records[asked]
    );
    assert!(
        asked < position(&records, |r| r["type"] == "rollback.start"),
        "{records:#?}"
    );
    // The run took the request out of the store; with nobody holding the lock, another request
    // is refused.
    control(other.path(), &["production", "pause"])
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!("error: `runbook control production pause`: no live run holds `production` (nothing is locked in etcd at {}, key `runbook/locks/production`), so there is nobody to ask\n  help: to undo a run that ended or died, `runbook rollback` (or `runbook repl --last`, then `rollback()`)\n", etcd.url));
}
