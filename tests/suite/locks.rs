//! Shared locks (issue #15): the etcd backend against a real etcd (Debian's etcd-server, started
//! here on loopback ports picked at run time, its data in a temp dir), and the Kubernetes Lease
//! backend against a recording kubectl. Runners that contend are separate processes with their
//! own working and deployments directories, as two machines would have; what they did is
//! counted outside them, in marks they leave in a shared file.

use crate::support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{Output, Test};

fn etcd_binary() -> &'static str {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("etcd is not installed: .ci/run installs it with apt-get (package etcd-server)")
}

fn etcd_args(dir: &Path, client: u16, peer: u16) -> Vec<String> {
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    [
        "--name",
        "test",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-client-urls",
        &c,
        "--advertise-client-urls",
        &c,
        "--listen-peer-urls",
        &p,
        "--initial-advertise-peer-urls",
        &p,
        "--initial-cluster",
        &format!("test={p}"),
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !support::http_get(&format!("{url}/health")).is_some_and(|b| b.contains("true")) {
        assert!(
            Instant::now() < deadline,
            "etcd at {url} did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The file's etcd: one for every test here, keyed apart by `lock.etcd.prefix`. A shell keeps
/// it and stops it (and removes its data) when the test process's pipe to it closes.
static SHARED: OnceLock<String> = OnceLock::new();
static KEEPER: OnceLock<Mutex<std::process::ChildStdin>> = OnceLock::new();

fn shared_etcd() -> &'static str {
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let (client, peer) = (support::free_port(), support::free_port());
        let args: Vec<String> = etcd_args(&dir, client, peer)
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        let script = format!(
            "{} {} >/dev/null 2>&1 & p=$!; cat >/dev/null; kill $p; wait $p; rm -rf '{}'",
            etcd_binary(),
            args.join(" "),
            dir.display()
        );
        #[allow(clippy::zombie_processes)]
        let mut keeper = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start etcd");
        KEEPER.get_or_init(|| Mutex::new(keeper.stdin.take().unwrap()));
        // The keeper ends with the test process (its stdin closes); nobody waits for it here.
        std::mem::forget(keeper);
        let url = format!("http://127.0.0.1:{client}");
        wait_healthy(&url);
        url
    })
}

/// An etcd of one test's own, for a test that stops it. Stopped when dropped.
struct OwnEtcd {
    url: String,
    args: Vec<String>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnEtcd {
    fn start() -> OwnEtcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (support::free_port(), support::free_port());
        let args = etcd_args(dir.path(), client, peer);
        let child = Self::spawn(&args);
        let url = format!("http://127.0.0.1:{client}");
        wait_healthy(&url);
        OwnEtcd {
            url,
            args,
            child,
            _dir: dir,
        }
    }

    fn spawn(args: &[String]) -> Child {
        Command::new(etcd_binary())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again, on the same ports and data.
    fn restart(&mut self) {
        self.child = Self::spawn(&self.args);
        wait_healthy(&self.url);
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// POST a JSON body to etcd's gateway (what the tests read back from the store).
fn etcd_post(url: &str, path: &str, body: &str) -> serde_json::Value {
    let host = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    // A chunked answer: the JSON is the line that starts with `{`.
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or(body);
    serde_json::from_str(json).unwrap()
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn unb64(s: &str) -> String {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Every key under `prefix`, with its value.
fn etcd_keys(url: &str, prefix: &str) -> Vec<(String, String)> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let r = etcd_post(
        url,
        "/v3/kv/range",
        &format!(
            r#"{{"key":"{}","range_end":"{}"}}"#,
            b64(prefix),
            b64(std::str::from_utf8(&end).unwrap())
        ),
    );
    r["kvs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            (
                unb64(kv["key"].as_str().unwrap()),
                unb64(kv["value"].as_str().unwrap_or("")),
            )
        })
        .collect()
}

fn config(url: &str, prefix: &str, lease: &str, extra: &str) -> String {
    format!(
        "lock:\n  backend: etcd\n  lease: {lease}\n  etcd:\n    endpoints: [\"{url}\"]\n    prefix: {prefix}/\n{extra}"
    )
}

/// A runner: its own working directory (and so its own deployments directory), with `script`.
fn runner(config: &str, script: &str) -> Test {
    Test::new()
        .file("runbook.yaml", config)
        .file("deploy.rhai", script)
        .args(&["deploy.rhai"])
}

/// `runbook ARGS` in a runner's directory (another command than its run).
fn in_dir(t: &Test, args: &[&str]) -> Output {
    Test::new().in_dir(t.path()).args(args).run()
}

fn wait_for_file(p: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let root = dir.join("deployments");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    runs.sort();
    let text = std::fs::read_to_string(runs.last().unwrap().join("journal.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn records(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    journal(dir)
        .into_iter()
        .filter(|r| r["type"] == kind)
        .collect()
}

fn host() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn two_runners_contend_fifty_times_and_exactly_one_proceeds_each_time() {
    let url = shared_etcd();
    let shared = tempfile::tempdir().unwrap();
    let marks = shared.path().join("marks");
    let cfg = config(url, "contention", "2s", "");
    // The holder stays in until the test has seen the other one refused (the `go` file), so the
    // two always meet: neither can finish before the other has tried.
    let script = |name: &str| {
        format!(
            "sh(\"echo start {name} >> {m}; sleep 0.05; while [ ! -e {s}/go-$(cat {s}/try) ]; do sleep 0.01; done; echo end {name} >> {m}\");\n",
            m = marks.display(),
            s = shared.path().display()
        )
    };
    let a = runner(&cfg, &script("a"));
    let b = runner(&cfg, &script("b"));
    let host = host();
    let (tries, mut refusals, mut proceeded) = (50, 0, 0);
    for i in 0..tries {
        std::fs::write(shared.path().join("try"), i.to_string()).unwrap();
        let mut ca = a.another().spawn();
        let mut cb = b.another().spawn();
        let (pa, pb) = (ca.id(), cb.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        // The first to end is the one refused: the holder waits for `go`.
        let first = loop {
            if ca.ended() {
                break 'a';
            }
            if cb.ended() {
                break 'b';
            }
            if Instant::now() > deadline {
                break '-';
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        std::fs::write(shared.path().join(format!("go-{i}")), "").unwrap();
        let (da, db) = (ca.finish(), cb.finish());
        let (refused, won, winner_pid) = match first {
            'a' => (&da, &db, pb),
            'b' => (&db, &da, pa),
            _ => panic!("try {i}: neither runner ended: both proceeded?"),
        };
        // (The runner that ended first was refused, naming the one that proceeded.)
        refused
            .expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_like(&format!("error: `production` is locked by another deployment: tester on {host} (pid {winner_pid}) has held it for [..] (reason: deploy.rhai), run [..]\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`\n"));
        refusals += 1;
        won.expect_status(0);
        proceeded += 1;
    }
    // Overlaps, counted outside the runners: a start while another run is between its marks.
    let text = std::fs::read_to_string(&marks).unwrap();
    let (mut inside, mut overlaps, mut starts) = (0, 0, 0);
    for line in text.lines() {
        if line.starts_with("start") {
            starts += 1;
            if inside > 0 {
                overlaps += 1;
            }
            inside += 1;
        } else {
            inside -= 1;
        }
    }
    println!(
        "contention: {tries} tries, {proceeded} proceeded, {refusals} refused naming the holder, {overlaps} double runs"
    );
    assert_eq!(
        (starts, proceeded, refusals, overlaps),
        (tries, tries, tries, 0)
    );
}

#[test]
fn a_sigkilled_holder_is_followed_after_the_ttl_and_not_before() {
    let url = shared_etcd();
    let cfg = config(url, "sigkill", "3s", "");
    let a = runner(&cfg, "sh(\"touch started; sleep 8\");\n");
    let b = runner(&cfg, "sh(\"touch done\");\n");
    let ca = a.another().spawn();
    let (host, pid) = (host(), ca.id());
    wait_for_file(&a.path().join("started"), "the holder's start");
    // Let a renewal (every second) go by, then kill it: nothing is given back.
    std::thread::sleep(Duration::from_millis(1200));
    ca.kill();
    let killed = Instant::now();
    let killed_at = std::time::SystemTime::now();
    // Tried at once: the lock is still held (stale by its pid here, but taken only when asked).
    let early = b.another().run();
    let early_at = killed.elapsed();
    early
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!("error: `production` has a stale lock (its process {pid} is gone): tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"));
    assert!(!b.path().join("done").exists(), "the refused run ran");
    // Then again until it proceeds.
    let proceeded_at = loop {
        let r = b.another().run();
        if r.code == 0 {
            break killed.elapsed();
        }
        r.expect_status(2);
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "never proceeded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // When it took the lock (its holder record's start, taken just before it asked etcd): not
    // before the lease ran out (3 s from the last renewal, which was at most a second before the
    // kill), and soon after it did (etcd looks for expired leases every half second).
    let acquire = records(b.path(), "lock.acquire");
    let started =
        humantime::parse_rfc3339(acquire[0]["lock"]["started"].as_str().unwrap()).unwrap();
    let took_at = started.duration_since(killed_at).unwrap_or_default();
    println!(
        "ttl 3s: refused at {early_at:?} after the kill; took the lock {took_at:?} after it (exited {proceeded_at:?})"
    );
    assert!(took_at >= Duration::from_millis(1950), "{took_at:?}");
    assert!(took_at <= Duration::from_millis(5500), "{took_at:?}");
    assert!(
        b.path().join("done").exists(),
        "the run that proceeded did not run"
    );
    let followed = records(b.path(), "lock.expired");
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert_eq!(followed[0]["previous"]["pid"], pid);
    assert_eq!(followed[0]["previous"]["user"], "tester");
    // The store says so too.
    let log = etcd_keys(url, "sigkill/log/production/");
    assert!(
        log.iter()
            .any(|(_, v)| v.contains("\"event\":\"expired\"")
                && v.contains(&format!("\"pid\":{pid}"))),
        "{log:?}"
    );
}

#[test]
fn a_run_longer_than_the_ttl_keeps_its_lock() {
    let url = shared_etcd();
    let cfg = config(url, "long", "2s", "");
    let a = runner(
        &cfg,
        "sh(\"touch started; sleep 6\");\nsh(\"touch second\");\n",
    );
    let b = runner(&cfg, "sh(\"touch done\");\n");
    let ca = a.another().spawn();
    let (host, pid) = (host(), ca.id());
    wait_for_file(&a.path().join("started"), "the holder's start");
    let mut refused = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4000) {
        b.another()
            .run()
            .expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_like(&format!("error: `production` is locked by another deployment: tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`\n"));
        refused += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    ca.finish()
        .expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch started; sleep 6\n$ touch second\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    assert!(a.path().join("second").exists(), "the holder did not go on");
    assert!(refused >= 3, "{refused}");
    let lost = records(a.path(), "lock.lost");
    assert!(lost.is_empty(), "{lost:?}");
    assert!(!b.path().join("done").exists(), "a refused run ran");
    // Given back: the next run proceeds at once.
    b.another().run().expect_status(0);
}

#[test]
fn the_store_unreachable_at_start_is_exit_2_naming_the_endpoint_before_anything_changes() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let t = runner(&config(&url, "gone", "2s", ""), "sh(\"touch done\");\n");
    t.another()
        .run()
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!("error: cannot reach the lock store of `production`: etcd at {url}: error sending request for url ({url}/v3/lease/grant): client error (Connect): tcp connect error: Connection refused (os error 111)\n  help: check that etcd is up and `lock.etcd.endpoints` ({url}) is right; nothing was changed\n"));
    assert!(!t.path().join("done").exists(), "the run ran");
    assert!(
        !t.path().join("deployments").exists(),
        "the run left a run directory"
    );
    // `runbook status` says the same.
    in_dir(&t, &["status"])
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!("error: cannot reach the lock store of `all environments`: etcd at {url}: error sending request for url ({url}/v3/kv/range): client error (Connect): tcp connect error: Connection refused (os error 111)\n  help: check that etcd is up and `lock.etcd.endpoints` ({url}) is right; nothing was changed\n"));
}

const STOPPED_MID_RUN: &str = "sh(\"touch first\");\non_rollback(\"undo first\", \"rm first\");\nsh(\"touch ready; while [ ! -e go ]; do sleep 0.05; done\");\nsh(\"touch second\");\n";

/// Run STOPPED_MID_RUN with `on_lost`, stop etcd while its second step runs, and return what
/// the run did.
fn etcd_stopped_mid_run(on_lost: Option<&str>) -> Output {
    let mut etcd = OwnEtcd::start();
    let extra = on_lost
        .map(|o| format!("  on_lost: {o}\n"))
        .unwrap_or_default();
    let t = runner(
        &format!(
            "lock:\n  backend: etcd\n  lease: 2s\n{extra}  etcd:\n    endpoints: [\"{}\"]\n",
            etcd.url
        ),
        STOPPED_MID_RUN,
    );
    let c = t.spawn();
    wait_for_file(&c.path().join("ready"), "the second step");
    etcd.stop();
    // A renewal (every 667 ms) finds the store gone.
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(c.path().join("go"), "").unwrap();
    c.finish()
}

#[test]
fn etcd_stopped_mid_run_with_on_lost_rollback_rolls_back_journaled() {
    let r = etcd_stopped_mid_run(Some("rollback"));
    r.expect_status(3)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch first\n$ touch ready; while [ ! -e go ]; do sleep 0.05; done\n⚠ the lock on `production` cannot be renewed: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: the lock on `production` was lost: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n↩ undo first (rm first)\n  ✓ undo first\nRollback complete: 1 step(s) undone.\n↩ Rolled back: the lock on `production` was lost: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    assert!(!r.dir.join("second").exists(), "a step ran blind");
    assert!(!r.dir.join("first").exists(), "not rolled back");
    let lost = records(&r.dir, "lock.lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["choice"], "rollback");
    assert!(
        lost[0]["how"]
            .as_str()
            .unwrap()
            .contains("etcd at http://127.0.0.1:"),
        "{lost:?}"
    );
}

#[test]
fn etcd_stopped_mid_run_with_on_lost_continue_goes_on_journaled() {
    let r = etcd_stopped_mid_run(Some("continue"));
    r.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch first\n$ touch ready; while [ ! -e go ]; do sleep 0.05; done\n⚠ the lock on `production` cannot be renewed: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n$ touch second\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("warning: going on without the lock on `production` (`lock.on_lost: continue`): another run may act on it too\n");
    assert!(r.dir.join("second").exists(), "the run did not go on");
    let lost = records(&r.dir, "lock.lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["choice"], "continue");
}

#[test]
fn etcd_stopped_mid_run_pauses_and_with_nobody_there_stops_after_one_lease() {
    let r = etcd_stopped_mid_run(None);
    r.expect_status(1)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch first\n$ touch ready; while [ ! -e go ]; do sleep 0.05; done\n⚠ the lock on `production` cannot be renewed: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n  waiting for the lock store (up to 2.0s) …\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_like("error: the lock on `production` was lost while this run held it: the lock store was unreachable for longer than the lease (2.0s), so the lease has run out: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n  this run stopped before its next step and rolled nothing back (another run may own `production` now); its undo steps stand in rollback-plan.md: run them with `runbook rollback` once you know what the other run did\n");
    assert!(!r.dir.join("second").exists(), "a step ran blind");
    assert!(r.dir.join("first").exists(), "rolled back without the lock");
    let lost = records(&r.dir, "lock.lost");
    assert_eq!(lost[0]["choice"], "pause", "{lost:?}");
    let stopped = records(&r.dir, "lock.lost.stopped");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
}

#[test]
fn etcd_stopped_mid_run_pauses_and_asks_the_person_at_the_terminal() {
    let mut etcd = OwnEtcd::start();
    let t = runner(
        &format!(
            "lock:\n  backend: etcd\n  lease: 2s\n  etcd:\n    endpoints: [\"{}\"]\n",
            etcd.url
        ),
        STOPPED_MID_RUN,
    );
    let mut p = support::pty(&t, &[]);
    wait_for_file(&t.path().join("ready"), "the second step");
    etcd.stop();
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(t.path().join("go"), "").unwrap();
    p.exp_string("this run has paused before its next step")
        .unwrap();
    p.exp_string("Type wait, rollback or continue:").unwrap();
    p.send_line("rollback").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 3)"), "{status:?}");
    assert!(!t.path().join("second").exists(), "a step ran blind");
    assert!(!t.path().join("first").exists(), "not rolled back");
    let answered = records(t.path(), "lock.lost.answer");
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["choice"], "rollback");
}

#[test]
fn etcd_back_within_the_lease_while_paused_gives_the_lock_back_and_the_run_goes_on() {
    let mut etcd = OwnEtcd::start();
    let t = runner(
        &format!(
            "lock:\n  backend: etcd\n  lease: 8s\n  etcd:\n    endpoints: [\"{}\"]\n",
            etcd.url
        ),
        STOPPED_MID_RUN,
    );
    let c = t.spawn();
    let dir = c.path().to_path_buf();
    wait_for_file(&dir.join("ready"), "the second step");
    etcd.stop();
    // A renewal (every 2.7 s) finds the store gone; the next step pauses.
    std::thread::sleep(Duration::from_millis(3000));
    std::fs::write(dir.join("go"), "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dir.join("second").exists(), "a step ran blind");
    etcd.restart();
    let r = c.finish();
    r.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch first\n$ touch ready; while [ ! -e go ]; do sleep 0.05; done\n⚠ the lock on `production` cannot be renewed: its lease could not be renewed: etcd at http://127.0.0.1:[..]: error sending request for url (http://127.0.0.1:[..]/v3/lease/keepalive): client error (Connect): tcp connect error: Connection refused (os error 111)\n  waiting for the lock store (up to 8.0s) …\n✓ the lock on `production` is this run's again: going on\n$ touch second\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    assert!(dir.join("second").exists(), "the run did not go on");
    let lost = records(&dir, "lock.lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["choice"], "pause", "{lost:?}");
    assert_eq!(lost[0]["gone"], false, "{lost:?}");
    let regained = records(&dir, "lock.regained");
    assert_eq!(regained.len(), 1, "{regained:?}");
}

#[test]
fn status_shows_the_holder_its_stage_traffic_and_verdict_from_another_machine() {
    let url = shared_etcd();
    let cfg = config(url, "status", "2s", "");
    let a = runner(
        &cfg,
        "stage(\"canary\", || {\n  traffic(#{ weights: #{ v2: 10, v1: 90 } });\n  verdict(#{ verdict: \"success\", reason: \"error rate 0.1%\" });\n  sh(\"touch started; while [ ! -e go ]; do sleep 0.05; done\");\n});\n",
    );
    let other = runner(&cfg, "");
    let c = a.another().spawn();
    let (host, pid) = (host(), c.id());
    wait_for_file(&a.path().join("started"), "the holder's start");
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let s = in_dir(&other, &["status", "production"]);
        s.expect_status(0);
        if s.stdout.contains("stage: canary") || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run_dir = records(a.path(), "lock.acquire")[0]["lock"]["run_dir"]
        .as_str()
        .unwrap()
        .to_string();
    shown
        .expect_stdout_like(&format!("production: held by tester@{host} (pid {pid}) since [..], run {run_dir}\n  stage: canary; traffic: v1 90%, v2 10%; last verdict: success (error rate 0.1%)\n"))
        .expect_stderr_exact("");
    std::fs::write(a.path().join("go"), "").unwrap();
    c.finish().expect_status(0);
    in_dir(&other, &["status"])
        .expect_status(0)
        .expect_stdout_like(&format!("production: free (last: tester@{host} (pid {pid}), run {run_dir}, released)\n  stage: -; traffic: v1 90%, v2 10%; last verdict: success (error rate 0.1%)\n"))
        .expect_stderr_exact("");
}

#[test]
fn unlock_and_take_over_work_on_etcd_and_are_recorded_in_the_store_and_the_journal() {
    let url = shared_etcd();
    let cfg = config(url, "breakglass", "2s", "");
    let a = runner(
        &cfg,
        "sh(\"touch started; while [ ! -e go ]; do sleep 0.05; done\");\nsh(\"touch second\");\n",
    );
    let b = runner(&cfg, "sh(\"touch done\");\n");
    // Broken by `runbook unlock` from another machine: the holder stops before its next step.
    let c = a.another().spawn();
    let (host, pid) = (host(), c.id());
    wait_for_file(&a.path().join("started"), "the holder's start");
    in_dir(
        &b,
        &[
            "unlock",
            "production",
            "--reason",
            "checked the cluster by hand",
        ],
    )
    .expect_status(0)
    .expect_stdout_like(&format!("ok: `production` unlocked (was: tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy); recorded in etcd at {url}, under `breakglass/log/production/`\n"))
    .expect_stderr_exact("");
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(a.path().join("go"), "").unwrap();
    c.finish()
        .expect_status(1)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch started; while [ ! -e go ]; do sleep 0.05; done\n⚠ the lock on `production` was lost: its lease [..] ran out in etcd (or was revoked): the lock key went with it\n  waiting for the lock store (up to 2.0s) …\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_like("error: the lock on `production` was lost while this run held it: its lease [..] ran out in etcd (or was revoked): the lock key went with it\n  this run stopped before its next step and rolled nothing back (another run may own `production` now); its undo steps stand in rollback-plan.md: run them with `runbook rollback` once you know what the other run did\n");
    assert!(
        !a.path().join("second").exists(),
        "a step ran without the lock"
    );
    let log = etcd_keys(url, "breakglass/log/production/");
    assert!(
        log.iter().any(|(_, v)| v.contains("\"event\":\"unlock\"")
            && v.contains("checked the cluster by hand")),
        "{log:?}"
    );
    // A holder killed on this host: its lock is stale at once, and taken over only when asked.
    std::fs::remove_file(a.path().join("go")).unwrap();
    let c = a.another().spawn();
    let pid = c.id();
    let _ = std::fs::remove_file(a.path().join("started"));
    wait_for_file(&a.path().join("started"), "the holder's start");
    c.kill();
    b.another()
        .run()
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!("error: `production` has a stale lock (its process {pid} is gone): tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy-2\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"));
    in_dir(&b, &["deploy.rhai", "--take-over", "its runner was killed"])
        .expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch done\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like(&format!("warning: took over the stale lock of `production`: tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy-2\n"));
    let t = records(b.path(), "lock.takeover");
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["previous"]["pid"], pid, "{t:?}");
    assert!(
        t[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("its runner was killed (stale: its process"),
        "{t:?}"
    );
    let log = etcd_keys(url, "breakglass/log/production/");
    assert!(
        log.iter()
            .any(|(_, v)| v.contains("\"event\":\"takeover\"")
                && v.contains("its runner was killed")),
        "{log:?}"
    );
}

const KUBECTL: &str = r#"#!/bin/sh
# A recording kubectl: each call's arguments (and the manifest it was given) go to the log; the
# Lease lives in a file.
dir=$(dirname "$0")
echo "kubectl $*" >> "$dir/kubectl.log"
case "$*" in
  *" get lease "*)
    if [ -s "$dir/lease.json" ]; then cat "$dir/lease.json"; else
      echo 'Error from server (NotFound): leases.coordination.k8s.io "runbook-lock-production" not found' >&2; exit 1; fi ;;
  *" create -f - -o json")
    cat > "$dir/lease.json"; cat "$dir/lease.json" >> "$dir/manifests.log"; echo >> "$dir/manifests.log"
    echo '{"metadata":{"resourceVersion":"1"}}' ;;
  *" replace -f - -o json")
    cat > "$dir/lease.json"; cat "$dir/lease.json" >> "$dir/manifests.log"; echo >> "$dir/manifests.log"
    n=$(wc -l < "$dir/manifests.log")
    echo "{\"metadata\":{\"resourceVersion\":\"$n\"}}" ;;
  *" apply -f - -o json")
    cat > "$dir/control.json"; echo '{}' ;;
  *" get configmap "*)
    if [ -s "$dir/control.json" ]; then cat "$dir/control.json"; else
      echo 'Error from server (NotFound): configmaps "runbook-lock-production-control" not found' >&2; exit 1; fi ;;
  *" delete configmap "*)
    rm -f "$dir/control.json"; echo '{}' ;;
  *) echo "unexpected: $*" >&2; exit 3 ;;
esac
"#;

fn kube_runner(script: &str) -> Test {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "lock:\n  backend: kubernetes\n  kubernetes:\n    namespace: deploys\n",
        )
        .file("deploy.rhai", script)
        .executable("bin/kubectl", KUBECTL)
        .args(&["deploy.rhai"]);
    let path = format!(
        "{}:{}",
        t.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    t.env("PATH", &path)
}

fn manifests(t: &Test) -> Vec<serde_json::Value> {
    std::fs::read_to_string(t.path().join("bin/manifests.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_kubernetes_lease_backend_runs_the_exact_kubectl_commands() {
    // A recording kubectl proves the commands and manifests, not contention (the API server's
    // AlreadyExists and Conflict answers are what make it safe; see docs/configuration.md).
    let t = kube_runner("sh(\"touch done\");\n");
    t.another()
        .run()
        .expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch done\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let log = std::fs::read_to_string(t.path().join("bin/kubectl.log")).unwrap();
    assert_eq!(
        log,
        "kubectl -n deploys get lease runbook-lock-production -o json\n\
         kubectl -n deploys create -f - -o json\n\
         kubectl -n deploys replace -f - -o json\n\
         kubectl -n deploys get configmap runbook-lock-production-control -o json\n\
         kubectl -n deploys replace -f - -o json\n"
    );
    let m = manifests(&t);
    assert_eq!(m.len(), 3);
    let who = format!("tester@{} pid ", host());
    assert_eq!(m[0]["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(m[0]["kind"], "Lease");
    assert_eq!(m[0]["metadata"]["name"], "runbook-lock-production");
    assert_eq!(m[0]["metadata"]["namespace"], "deploys");
    assert!(
        m[0]["metadata"].get("resourceVersion").is_none(),
        "{}",
        m[0]
    );
    assert!(
        m[0]["spec"]["holderIdentity"]
            .as_str()
            .unwrap()
            .starts_with(&who),
        "{}",
        m[0]
    );
    assert_eq!(m[0]["spec"]["leaseDurationSeconds"], 30);
    assert_eq!(m[0]["metadata"]["annotations"]["runbook.dev/ended"], "held");
    // The run directory, written as soon as it exists, over the version created.
    assert_eq!(m[1]["metadata"]["resourceVersion"], "1");
    let holder: serde_json::Value = serde_json::from_str(
        m[1]["metadata"]["annotations"]["runbook.dev/holder"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        holder["run_dir"]
            .as_str()
            .unwrap()
            .starts_with("deployments/"),
        "{holder}"
    );
    // Given back: no holder, the record kept, over the version last written.
    assert_eq!(m[2]["metadata"]["resourceVersion"], "2");
    assert!(m[2]["spec"].get("holderIdentity").is_none(), "{}", m[2]);
    assert_eq!(
        m[2]["metadata"]["annotations"]["runbook.dev/ended"],
        "released"
    );

    // Held by a live run elsewhere: refused, naming it, with one `get` and nothing written.
    let live = |renewed: &str| {
        serde_json::json!({
            "metadata": { "name": "runbook-lock-production", "resourceVersion": "77",
              "annotations": { "runbook.dev/ended": "held", "runbook.dev/holder": serde_json::json!({
                "environment": "production", "user": "ci", "host": "ci-runner-7", "pid": 4242,
                "reason": "deploy.rhai 2.0", "started": "2026-11-28T06:00:00Z", "expires": 0,
                "run_dir": "deployments/2026-11-28-checkout" }).to_string() } },
            "spec": { "holderIdentity": "ci@ci-runner-7 pid 4242", "leaseDurationSeconds": 30,
                      "renewTime": renewed }
        })
        .to_string()
    };
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    std::fs::write(t.path().join("bin/lease.json"), live(&now)).unwrap();
    std::fs::write(t.path().join("bin/kubectl.log"), "").unwrap();
    std::fs::write(t.path().join("bin/manifests.log"), "").unwrap();
    t.another()
        .run()
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_like("error: `production` is locked by another deployment: ci on ci-runner-7 (pid 4242) has held it for [..] (reason: deploy.rhai 2.0), run deployments/<date>-checkout\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`\n");
    assert_eq!(
        std::fs::read_to_string(t.path().join("bin/kubectl.log")).unwrap(),
        "kubectl -n deploys get lease runbook-lock-production -o json\n"
    );

    // Its lease ran out an hour ago: the run takes it (over the version read) and says whom it
    // followed.
    std::fs::write(
        t.path().join("bin/lease.json"),
        live("2026-11-28T05:00:00.000000Z"),
    )
    .unwrap();
    std::fs::write(t.path().join("bin/kubectl.log"), "").unwrap();
    t.another()
        .run()
        .expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy-2\n$ touch done\n✅ Run completed.\n  artifacts in deployments/<date>-deploy-2: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like("warning: the last holder of `production` let its lease run out without releasing it (it died, or lost the lock store): ci on ci-runner-7 (pid 4242) has held it for [..] (reason: deploy.rhai 2.0), run deployments/<date>-checkout\n");
    let m = manifests(&t);
    assert_eq!(m[0]["metadata"]["resourceVersion"], "77");
    assert!(
        m[0]["metadata"]["annotations"]["runbook.dev/event"]
            .as_str()
            .unwrap()
            .contains("\"event\":\"expired\""),
        "{}",
        m[0]
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("bin/kubectl.log")).unwrap(),
        "kubectl -n deploys get lease runbook-lock-production -o json\n\
         kubectl -n deploys replace -f - -o json\n\
         kubectl -n deploys replace -f - -o json\n\
         kubectl -n deploys get configmap runbook-lock-production-control -o json\n\
         kubectl -n deploys replace -f - -o json\n"
    );
    let root = t.path().join("deployments");
    let mut runs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    runs.sort();
    let text = std::fs::read_to_string(runs.last().unwrap().join("journal.jsonl")).unwrap();
    assert!(text.contains("\"type\":\"lock.expired\""), "{text}");
    assert!(text.contains("ci-runner-7"), "{text}");
}

/// Live control with the Kubernetes backend: `runbook control` leaves the request in a ConfigMap
/// of its own beside the Lease (writing it never touches the Lease the holder replaces), and the
/// run reads it when it renews its lease. Against the recording kubectl: the commands, not a
/// cluster.
#[test]
fn the_kubernetes_backend_carries_a_control_request_in_a_configmap() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "lock:\n  backend: kubernetes\n  lease: 1s\n  kubernetes:\n    namespace: deploys\n",
        )
        .file(
            "deploy.rhai",
            "sh(\"touch changed\");\non_rollback(\"undo\", \"touch undone\");\nsh(\"touch started\");\nsleep(\"20s\");\nsh(\"touch finished\");\n",
        )
        .executable("bin/kubectl", KUBECTL)
        .args(&["deploy.rhai"]);
    let path = format!(
        "{}:{}",
        t.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let t = t.env("PATH", &path);
    let running = t.another().spawn();
    let host = host();
    wait_for_file(&t.path().join("started"), "the run's start");
    Test::new()
        .in_dir(t.path())
        .env("USER", "oncall")
        .env("PATH", &path)
        .args(&[
            "control",
            "production",
            "abort",
            "--reason",
            "seen in the dashboards",
        ])
        .run()
        .expect_status(0)
        .expect_stdout_exact(&format!("ok: asked the run of `production` to abort (by oncall@{host}: seen in the dashboards; run deployments/<date>-deploy); it acts at its next safe point and journals it\n"))
        .expect_stderr_exact("");
    running
        .finish()
        .expect_status(3)
        .expect_stdout_exact(&format!("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch changed\n$ touch started\n⏹ aborted by oncall@{host}: seen in the dashboards: rolling back\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: aborted by oncall@{host}: seen in the dashboards\n↩ undo (touch undone)\n  ✓ undo\nRollback complete: 1 step(s) undone.\n↩ Rolled back: aborted by oncall@{host}: seen in the dashboards\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n"))
        .expect_stderr_exact("");
    assert!(t.path().join("undone").exists(), "rolled back");
    assert!(
        !t.path().join("finished").exists(),
        "stopped before its next step"
    );
    let asked = records(t.path(), "control");
    assert!(
        asked
            .iter()
            .any(|r| r.to_string().contains("seen in the dashboards")),
        "{asked:?}"
    );
    let log = std::fs::read_to_string(t.path().join("bin/kubectl.log")).unwrap();
    for want in [
        "kubectl -n deploys apply -f - -o json",
        "kubectl -n deploys get configmap runbook-lock-production-control -o json",
        "kubectl -n deploys delete configmap runbook-lock-production-control --ignore-not-found -o name",
    ] {
        assert!(log.contains(want), "missing {want}\n{log}");
    }
    // The request never went into the Lease: every Lease written names no control request.
    for m in manifests(&t) {
        assert_eq!(m["kind"], "Lease", "{m}");
    }
}

/// The file backend follows an expired holder too: a holder SIGKILLed stops renewing; before its
/// lease runs out the next run is refused (its process is gone: stale, `--take-over` or
/// `runbook resume`), after it the next run proceeds and journals whom it followed.
#[test]
fn the_file_backend_follows_a_sigkilled_holder_after_its_lease() {
    let t = Test::new()
        .file("runbook.yaml", "lock:\n  lease: 2s\n")
        .file("deploy.rhai", "sh(\"touch started\");\nsleep(\"30s\");\n")
        .args(&["deploy.rhai"]);
    let holder = t.another().spawn();
    let (host, pid) = (host(), holder.id());
    wait_for_file(&t.path().join("started"), "the holder's start");
    holder.kill();
    let killed = Instant::now();
    std::fs::write(t.path().join("next.rhai"), "sh(\"touch next\");\n").unwrap();
    let early = in_dir(&t, &["next.rhai"]);
    if killed.elapsed() < Duration::from_millis(1500) {
        early
            .expect_status(2)
            .expect_stdout_exact("")
            .expect_stderr_like(&format!("error: `production` has a stale lock (its process {pid} is gone): tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)\n"));
    }
    // The lease is kept in whole seconds: up to one more than its length after the last renewal.
    std::thread::sleep(Duration::from_millis(3600).saturating_sub(killed.elapsed()));
    in_dir(&t, &["next.rhai"])
        .expect_status(0)
        .expect_stdout_exact("▶ next.rhai — feature `next`\n  run directory: deployments/<date>-next\n$ touch next\n✅ Run completed.\n  artifacts in deployments/<date>-next: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_like(&format!("warning: the last holder of `production` let its lease run out without releasing it (it died, or lost the lock store): tester on {host} (pid {pid}) has held it for [..] (reason: deploy.rhai), run deployments/<date>-deploy\n"));
    assert!(t.path().join("next").exists(), "the next run did not run");
    let expired = records(t.path(), "lock.expired");
    assert_eq!(expired.len(), 1, "{expired:?}");
}
