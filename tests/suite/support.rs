//! The test builder: a temp dir with files, the real `runbook` binary, and its output.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook");

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// What the run reads on stdin (a pipe); none: stdin is /dev/null.
    stdin: Option<String>,
    /// Where the run happens when not in `dir`: another test's directory (see `in_dir`).
    cwd: Option<PathBuf>,
}

/// What a run of the binary did. The `expect_*` methods check it and, when a check fails, print
/// the command, its status and both streams, so a failure says everything without a re-run.
pub struct Output {
    /// Kept so the directory lives as long as the output is inspected.
    _temp: tempfile::TempDir,
    /// The command line, as a person would type it (with the environment the test set).
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
        }
    }

    /// Run in `dir` (another test's directory, which outlives this run) instead of this test's
    /// own: a second process beside a live run, or another command in a runner's directory.
    pub fn in_dir(mut self, dir: &Path) -> Test {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Another run of this test's command (its arguments and environment) in its directory,
    /// which this test keeps: a second runner started again, a retry.
    pub fn another(&self) -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: self.args.clone(),
            env: self.env.clone(),
            stdin: self.stdin.clone(),
            cwd: Some(self.path().to_path_buf()),
        }
    }

    pub fn file(self, path: &str, text: &str) -> Test {
        let p = self.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
        self
    }

    /// A file that can be executed (a fake program, a team's script).
    pub fn executable(self, path: &str, text: &str) -> Test {
        let t = self.file(path, text);
        std::fs::set_permissions(
            t.path().join(path),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        t
    }

    /// Files copied from `examples/<example>/`, as a team would have them (scripts executable).
    pub fn example(mut self, example: &str, files: &[&str]) -> Test {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(example);
        for f in files {
            let text = std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("{example}/{f}: {e}"));
            self = if f.ends_with(".sh") {
                self.executable(f, &text)
            } else {
                self.file(f, &text)
            };
        }
        self
    }

    pub fn script(self, text: &str) -> Test {
        self.file("deploy.rhai", text).args(&["deploy.rhai"])
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Feed `text` to the run's stdin through a pipe (not a terminal: see `pty` for one).
    pub fn stdin(mut self, text: &str) -> Test {
        self.stdin = Some(text.to_string());
        self
    }

    pub fn path(&self) -> &Path {
        self.cwd.as_deref().unwrap_or(self.dir.path())
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("USER", "tester")
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("RUNBOOK_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The command line as a person would type it in the test's directory.
    pub fn command_line(&self) -> String {
        let mut words: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        words.push("runbook".into());
        words.extend(self.args.iter().map(|a| shell_quote(a)));
        let stdin = match &self.stdin {
            Some(text) => format!(" <<'EOF'\n{text}EOF"),
            None => String::new(),
        };
        format!(
            "(cd {} && {}){stdin}",
            self.path().display(),
            words.join(" ")
        )
    }

    pub fn run(self) -> Output {
        let out = match &self.stdin {
            None => self.command().output().expect("run runbook"),
            Some(text) => {
                let mut child = self
                    .command()
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run runbook");
                // Written whole, then closed: the run sees the end of its input.
                let mut pipe = child.stdin.take().unwrap();
                pipe.write_all(text.as_bytes()).expect("write stdin");
                drop(pipe);
                child.wait_with_output().expect("run runbook")
            }
        };
        let dir = self.path().to_path_buf();
        Output {
            command: self.command_line(),
            _temp: self.dir,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir,
        }
    }

    /// Start the run in the background (a holder, a live run another process talks to);
    /// `Running::finish` waits for its end and gives its `Output`.
    pub fn spawn(self) -> Running {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("run runbook");
        if let Some(text) = &self.stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        Running {
            test: Some(self),
            child: Background::new(child),
        }
    }
}

/// A run of the binary going on in the background (see `Test::spawn`). Killed when dropped
/// unfinished (a test that failed before `finish`), so that no run is left waiting.
pub struct Running {
    test: Option<Test>,
    child: Background,
}

impl Running {
    /// The directory it runs in.
    pub fn path(&self) -> &Path {
        self.test.as_ref().unwrap().path()
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.get().id()
    }

    /// Whether it has ended (it is not waited for).
    pub fn ended(&mut self) -> bool {
        self.child
            .get_mut()
            .try_wait()
            .expect("wait for runbook")
            .is_some()
    }

    /// SIGKILL it (a runner that dies without a word) and wait for it to be gone.
    pub fn kill(self) {
        drop(self)
    }

    /// Wait for its end: what it did, as `Test::run` gives it.
    pub fn finish(mut self) -> Output {
        let (test, child) = (self.test.take().unwrap(), self.child.take());
        let out = child.wait_with_output().expect("run runbook");
        Output {
            command: format!("{} &", test.command_line()),
            dir: test.path().to_path_buf(),
            _temp: test.dir,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A process left going in the background while a test acts beside it: killed and waited for
/// when dropped before it was taken back, so a test that fails first leaves nothing running.
pub struct Background(Option<std::process::Child>);

impl Background {
    pub fn new(child: std::process::Child) -> Background {
        Background(Some(child))
    }

    pub fn get(&self) -> &std::process::Child {
        self.0.as_ref().expect("still in the background")
    }

    pub fn get_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("still in the background")
    }

    /// Take it back, to wait for its end.
    pub fn take(&mut self) -> std::process::Child {
        self.0.take().expect("still in the background")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `text` with each date (`2026-01-31`) written `<date>`: a run directory is named after the day
/// it ran, and the exact expectations should not change at midnight.
pub fn undated(text: &str) -> String {
    let is_date = |b: &[u8]| {
        b.len() >= 10
            && b[..10].iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let after_digit = i > 0 && bytes[i - 1].is_ascii_digit();
        if !after_digit
            && is_date(&bytes[i..])
            && !bytes.get(i + 10).is_some_and(u8::is_ascii_digit)
        {
            out.push_str("<date>");
            i += 10;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether `text` is `parts` joined by runs of text without a newline.
fn matches_parts(text: &str, parts: &[&str]) -> bool {
    let Some(rest) = text.strip_prefix(parts[0]) else {
        return false;
    };
    let Some((next, later)) = parts[1..].split_first() else {
        return rest.is_empty();
    };
    let line_end = rest.find('\n').unwrap_or(rest.len());
    // The wildcard may stop at any place within this line where the next part begins.
    (0..=rest.len())
        .filter(|&i| rest.is_char_boundary(i))
        .take_while(|&i| i <= line_end)
        .any(|i| {
            let mut tail = vec![*next];
            tail.extend_from_slice(later);
            matches_parts(&rest[i..], &tail)
        })
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

impl Output {
    /// Another run in the same directory.
    pub fn again(self) -> Test {
        Test {
            dir: self._temp,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            // The run's directory: its own, or the one it ran in (`in_dir`).
            cwd: Some(self.dir),
        }
    }

    /// Everything about the run, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "--- command\n{}\n--- status\n{}\n--- stdout\n{}\n--- stderr\n{}--- end",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    fn fail(&self, what: String) -> ! {
        panic!("{what}\n{}", self.describe())
    }

    /// The exit status.
    #[track_caller]
    pub fn expect_status(&self, want: i32) -> &Output {
        if self.code != want {
            self.fail(format!(
                "exit status {} where {want} was expected",
                self.code
            ));
        }
        self
    }

    /// The exit status (the older name of `expect_status`).
    #[track_caller]
    pub fn code(&self, want: i32) -> &Output {
        self.expect_status(want)
    }

    /// Stdout, exactly, but for dates (see `undated`).
    #[track_caller]
    pub fn expect_stdout_exact(&self, want: &str) -> &Output {
        self.exact("stdout", &self.stdout, want)
    }

    /// Stderr, exactly, but for dates (see `undated`).
    #[track_caller]
    pub fn expect_stderr_exact(&self, want: &str) -> &Output {
        self.exact("stderr", &self.stderr, want)
    }

    /// Stdout, exactly but for dates, where each `[..]` in `pattern` stands for any text within
    /// one line (a duration, a hash, a port).
    #[track_caller]
    pub fn expect_stdout_like(&self, pattern: &str) -> &Output {
        self.like("stdout", &self.stdout, pattern)
    }

    /// Stderr, as `expect_stdout_like` reads stdout.
    #[track_caller]
    pub fn expect_stderr_like(&self, pattern: &str) -> &Output {
        self.like("stderr", &self.stderr, pattern)
    }

    /// Each of these is a whole line of stdout (dates read `<date>`), in this order (other lines may come between).
    #[track_caller]
    pub fn expect_stdout_lines(&self, want: &[&str]) -> &Output {
        self.lines_in_order("stdout", &self.stdout, want)
    }

    /// Each of these is a whole line of stderr (dates read `<date>`), in this order (other lines may come between).
    #[track_caller]
    pub fn expect_stderr_lines(&self, want: &[&str]) -> &Output {
        self.lines_in_order("stderr", &self.stderr, want)
    }

    /// Each of these appears somewhere in stdout. Only for output that holds a path, a time or a
    /// port; pin the rest with `expect_stdout_exact` or `expect_stdout_lines`.
    #[track_caller]
    pub fn expect_stdout_contains(&self, parts: &[&str]) -> &Output {
        self.contains("stdout", &self.stdout, parts, true)
    }

    /// Each of these appears somewhere in stderr (see `expect_stdout_contains`).
    #[track_caller]
    pub fn expect_stderr_contains(&self, parts: &[&str]) -> &Output {
        self.contains("stderr", &self.stderr, parts, true)
    }

    /// None of these appears anywhere in stdout.
    #[track_caller]
    pub fn expect_stdout_lacks(&self, parts: &[&str]) -> &Output {
        self.contains("stdout", &self.stdout, parts, false)
    }

    /// None of these appears anywhere in stderr.
    #[track_caller]
    pub fn expect_stderr_lacks(&self, parts: &[&str]) -> &Output {
        self.contains("stderr", &self.stderr, parts, false)
    }

    #[track_caller]
    fn exact(&self, stream: &str, got: &str, want: &str) -> &Output {
        // Both sides: a test may build its expectation from a real path with a date in it.
        let (got, want) = (&undated(got), &undated(want));
        if got != want {
            let line = got
                .split_inclusive('\n')
                .zip(want.split_inclusive('\n'))
                .position(|(g, w)| g != w)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            self.fail(format!(
                "{stream} is not as expected; the first difference is on line {}\n\
                 --- expected {stream}\n{want}--- expected, as a string\n{want:?}\n\
                 --- actual, as a string\n{got:?}",
                line + 1
            ));
        }
        self
    }

    #[track_caller]
    fn like(&self, stream: &str, got: &str, pattern: &str) -> &Output {
        let (got, pattern) = (undated(got), undated(pattern));
        let parts: Vec<&str> = pattern.split("[..]").collect();
        if !matches_parts(&got, &parts) {
            self.fail(format!(
                "{stream} does not match the pattern (each [..] is any text within a line)\n\
                 --- pattern\n{pattern}--- pattern, as a string\n{pattern:?}\n\
                 --- actual, as a string\n{got:?}"
            ));
        }
        self
    }

    #[track_caller]
    fn lines_in_order(&self, stream: &str, got: &str, want: &[&str]) -> &Output {
        let got = undated(got);
        let mut lines = got.lines();
        for w in want {
            let w = &undated(w);
            if !lines.any(|l| l == w) {
                self.fail(format!(
                    "{stream} has no line {w:?} (after the lines before it in {want:#?})"
                ));
            }
        }
        self
    }

    #[track_caller]
    fn contains(&self, stream: &str, got: &str, parts: &[&str], present: bool) -> &Output {
        let wrong: Vec<&&str> = parts
            .iter()
            .filter(|p| got.contains(**p) != present)
            .collect();
        if !wrong.is_empty() {
            let verb = if present { "lacks" } else { "has" };
            self.fail(format!("{stream} {verb} {wrong:#?}"));
        }
        self
    }

    /// The single run directory under deployments/.
    pub fn run_dir(&self) -> PathBuf {
        let root = self.dir.join("deployments");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap_or_else(|_| panic!("no deployments dir\n{}\n{}", self.stdout, self.stderr))
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        dirs.sort();
        assert_eq!(dirs.len(), 1, "expected one run dir, found {dirs:?}");
        dirs.pop().unwrap()
    }

    pub fn artifact(&self, name: &str) -> String {
        let p = self.run_dir().join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    pub fn journal(&self) -> Vec<serde_json::Value> {
        self.artifact("journal.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
            .collect()
    }

    pub fn records(&self, kind: &str) -> Vec<serde_json::Value> {
        self.journal()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }
}

/// A real HTTP server on loopback that records each request and answers from a table.
pub struct Server {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Server {
    /// `answer(path) -> (status, body)`.
    pub fn start(answer: fn(&str) -> (u16, String)) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = reader.read_exact(&mut body);
                    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                    seen.lock()
                        .unwrap()
                        .push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
                    let (status, text) = answer(&path);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                });
            }
        });
        Server { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn bodies(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

/// A stand-in application instance on loopback: `/health` answers "ok", anything else answers
/// with the contents of `<dir>/version` (what a deploy script last wrote there).
pub fn start_app(dir: PathBuf) -> u16 {
    std::fs::create_dir_all(&dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let body = if path == "/health" {
                    "ok\n".to_string()
                } else {
                    std::fs::read_to_string(dir.join("version"))
                        .unwrap_or_else(|_| "nothing deployed\n".into())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a URL with a minimal client (the tests check what answers, not how).
pub fn http_get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// `runbook <args>` in a pseudo-terminal (rexpect), as a person at a terminal runs it.
pub fn pty(t: &Test, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = t.command();
    cmd.args(args).stdin(std::process::Stdio::inherit());
    cmd.env("XDG_STATE_HOME", t.path().join("state"));
    cmd.env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(10_000)).expect("spawn in a pty")
}

/// The embedded demo fleet on loopback (2 instances of v1, 100 requests/s), with `bad` versions
/// misbehaving, and the runtime that serves it.
pub fn fleet(bad: &[&str]) -> (tokio::runtime::Runtime, runbook::demo::fleet::Fleet) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fleet = rt
        .block_on(runbook::demo::fleet::Fleet::start(
            runbook::demo::fleet::Options {
                bad_versions: bad.iter().map(|s| s.to_string()).collect(),
                traffic_rps: 100,
                current_version: "v1".into(),
                instances: 2,
            },
        ))
        .unwrap();
    (rt, fleet)
}

/// A real Prometheus server on a loopback port, with its own config and data directory,
/// scraping `targets` (host:port) every `scrape` (e.g. "500ms"). Killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(targets: &[String], scrape: &str) -> Prometheus {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("prometheus is not installed: .ci/run installs it with apt-get (package prometheus)")
            });
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {scrape}\n  scrape_timeout: {scrape}\n  evaluation_interval: {scrape}\n\
             scrape_configs:\n  - job_name: fleet\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while http_get(&format!("{}/-/ready", p.url)).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus did not become ready at {}",
                p.url
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        p
    }

    /// Wait until an instant query returns at least one series.
    pub fn wait_for_series(&self, query: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let q: String = query
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            let body =
                http_get(&format!("{}/api/v1/query?query={q}", self.url)).unwrap_or_default();
            if body.contains("\"value\"") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus never had `{query}`: {body}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Stop it now (a provider that goes down mid-analysis).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where nginx is installed.
pub fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("nginx is not installed: .ci/run installs it with apt-get (package nginx-light)")
        })
        .to_string()
}

/// A real nginx on a loopback port, its config, pid and temp files in `dir`, proxying to the
/// upstream named `name` that `dir/upstream.conf` defines (scripts rewrite that file and reload).
/// Stopped when dropped (SIGTERM: nginx's fast shutdown stops its workers first).
pub struct Nginx {
    child: std::process::Child,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, name: &str, upstream: &str) -> Nginx {
        let bin = nginx_binary();
        let port = free_port();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("upstream.conf"), upstream).unwrap();
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
                 include {d}/upstream.conf;\n  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{name}; proxy_next_upstream off; }} }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &format!("{d}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The example team's shop in `dir`: blue, green and staging instances (each serving its
/// `version` file), blue at v1, and a real nginx in front sending everything to blue, checked
/// serving v1 before anything is deployed.
pub struct Shop {
    pub blue: u16,
    pub green: u16,
    pub staging: u16,
    pub nginx: Nginx,
    /// nginx's address: `http://127.0.0.1:<port>/`.
    pub front: String,
}

impl Shop {
    pub fn start(dir: &Path) -> Shop {
        let blue = start_app(dir.join("blue"));
        let green = start_app(dir.join("green"));
        let staging = start_app(dir.join("staging"));
        std::fs::write(dir.join("blue/version"), "v1\n").unwrap();
        let nginx = Nginx::start(
            dir,
            "shop",
            &format!("upstream shop {{ server 127.0.0.1:{blue}; }}\n"),
        );
        let front = format!("http://127.0.0.1:{}/", nginx.port);
        assert_eq!(
            wait_for(&front, "v1"),
            "v1",
            "nginx serves blue before the deploy"
        );
        Shop {
            blue,
            green,
            staging,
            nginx,
            front,
        }
    }
}

/// Fetch `url` until it answers `want` (trimmed) or 5 s pass; what it answered last.
pub fn wait_for(url: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = http_get(url).unwrap_or_default();
        if got.trim() == want || std::time::Instant::now() > deadline {
            return got.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The keys a commented config documents (`# key: value` lines), uncommented, as a team would
/// start from it.
pub fn documented_keys(text: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            let t = l.trim_start();
            let key: String = t
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            !key.is_empty()
                && t[key.len()..].starts_with(':')
                && (t[key.len() + 1..].is_empty() || t[key.len() + 1..].starts_with(' '))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// For `Server::start`: a Prometheus API that answers every query with one series at 0.
pub fn prometheus_at_zero(_path: &str) -> (u16, String) {
    (
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0"]}]}}"#
            .to_string(),
    )
}

/// The builder's own matching: a loose matcher would let every test that uses it pass.
mod matching {
    use super::{matches_parts, undated};

    #[test]
    fn undated_writes_dates_only() {
        assert_eq!(
            undated("deployments/2026-11-28-deploy at 2026-11-28T09:48:42Z"),
            "deployments/<date>-deploy at <date>T09:48:42Z"
        );
        for not_a_date in [
            "12026-11-28",
            "2026-11-281",
            "2026-1-28",
            "v1.2.3-4",
            "é2026-11-2",
        ] {
            assert_eq!(undated(not_a_date), not_a_date);
        }
    }

    #[test]
    fn a_wildcard_stands_for_text_within_one_line_only() {
        let like = |text: &str, pattern: &str| {
            matches_parts(text, &pattern.split("[..]").collect::<Vec<_>>())
        };
        assert!(like("took 38ms\n", "took [..]\n"));
        assert!(like("took \n", "took [..]\n"));
        assert!(like("a (1) b (2)\n", "a ([..]) b ([..])\n"));
        assert!(
            !like("took 38ms\nmore\n", "took [..]\n"),
            "past the line's end"
        );
        assert!(!like("took 38ms\n", "took [..]\nmore\n"));
        assert!(
            !like("x took 38ms\n", "took [..]\n"),
            "anchored at the start"
        );
        assert!(!like("took 38ms\n\n", "took [..]\n"), "anchored at the end");
        assert!(like("exact\n", "exact\n"));
        assert!(!like("exact\n", "exakt\n"));
    }
}
