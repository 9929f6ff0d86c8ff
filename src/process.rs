//! Running one command: its own process group, output echoed line by line as it comes, the
//! bytes it wrote captured exactly up to a limit, a timeout, and SIGTERM then SIGKILL to the
//! whole group when it must stop.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::signals::{kill_group, Interrupt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A command line: run through `sh -c` when it needs a shell, directly when it does not.
    Line(String),
    /// A program and its arguments, never through a shell.
    Argv(Vec<String>),
}

impl Program {
    pub fn display(&self) -> String {
        match self {
            Program::Line(s) => s.clone(),
            Program::Argv(v) => v
                .iter()
                .map(|a| {
                    if a.is_empty()
                        || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c))
                    {
                        format!("'{}'", a.replace('\'', r"'\''"))
                    } else {
                        a.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub program: Program,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub capture_limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
    pub timed_out: bool,
    pub interrupted: bool,
    pub truncated: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out && !self.interrupted
    }
}

/// Words that mean something only to a shell: a line starting with one goes through `sh -c`.
const SHELL_WORDS: &[&str] = &[
    "cd", "export", "set", "unset", "exit", "source", ".", "alias", "exec", "eval", "if", "for",
    "while", "until", "case", "function", "local", "readonly", "trap", "ulimit", "umask", "wait",
    "shift", "return", "break", "continue", "{", "!", "[[", "time", "select", "type", "command",
    "hash", "read", "getopts", "jobs", "fg", "bg", "kill",
];

/// Like GNU make: a line without shell syntax is split on blanks and executed directly, saving a
/// shell per step; anything else goes through `sh -c`.
pub fn direct_argv(line: &str) -> Option<Vec<String>> {
    if line.contains(|c: char| "#;\"'*?[]&|<>(){}$\\`^~!\n\r%=".contains(c)) {
        return None;
    }
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let first = words.first()?;
    if SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

/// Longest piece of a line shown at once: a longer line is echoed in pieces, so memory stays
/// bounded. Only the echo is cut; the capture keeps the bytes as written.
const MAX_LINE: usize = 64 * 1024;

/// One output stream of the command: the bytes kept for the script (exactly as written, up to
/// the limit) and the unfinished line waiting to be echoed.
#[derive(Default)]
struct Stream {
    kept: Vec<u8>,
    cut: bool,
    line: Vec<u8>,
}

impl Stream {
    fn take(
        &mut self,
        bytes: &[u8],
        limit: usize,
        is_err: bool,
        on_line: &mut dyn FnMut(bool, &str),
    ) {
        let room = limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
        if bytes.len() > room {
            self.cut = true;
        }
        self.line.extend_from_slice(bytes);
        let mut shown = 0;
        while let Some(i) = self.line[shown..].iter().position(|&b| b == b'\n') {
            show(&self.line[shown..shown + i + 1], is_err, on_line);
            shown += i + 1;
        }
        while self.line.len() - shown >= MAX_LINE {
            show(&self.line[shown..shown + MAX_LINE], is_err, on_line);
            shown += MAX_LINE;
        }
        self.line.drain(..shown);
    }

    /// The last line, when the output did not end with a newline.
    fn finish(&mut self, is_err: bool, on_line: &mut dyn FnMut(bool, &str)) {
        if !self.line.is_empty() {
            show(&std::mem::take(&mut self.line), is_err, on_line);
        }
    }

    fn text(&self) -> String {
        let bytes = if self.cut {
            whole_characters(&self.kept)
        } else {
            &self.kept
        };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn show(line: &[u8], is_err: bool, on_line: &mut dyn FnMut(bool, &str)) {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    on_line(is_err, &String::from_utf8_lossy(&line[..end]));
}

/// `bytes` without a UTF-8 character the capture limit cut in two at its end (left out rather
/// than shown as U+FFFD).
fn whole_characters(bytes: &[u8]) -> &[u8] {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 != 0x80 {
            let len = match b {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if len > back {
                &bytes[..n - back]
            } else {
                bytes
            };
        }
    }
    bytes
}

/// (state, process group, start time in clock ticks since boot) of a process, from /proc.
fn stat(pid: i32) -> Option<(char, i32, u64)> {
    // One open and one read into a buffer on the stack: this is read once per command run
    // (`effect.child`), so it skips what `read_to_string` adds (a stat, a growing buffer).
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&buf[..len]).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let group = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, group, start))
}

/// When process `pid` started (clock ticks since boot), as `/proc` says.
#[cfg(test)]
fn start_ticks(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, _, start)| start)
}

/// The clock ticks since boot (`/proc/<pid>/stat`'s unit) a process started within: `from`..=`to`.
/// A command's is read from the boot clock just before and just after it is spawned (the kernel
/// stamps the child in between), rather than from its `/proc` entry, which is read only once the
/// child has finished its `exec` (the read waits for it). An older journal's exact tick is a
/// window of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub from: u64,
    pub to: u64,
}

impl Started {
    /// From an `effect.child` record's `start` and `start_by`.
    pub fn recorded(start: Option<u64>, start_by: Option<u64>) -> Option<Started> {
        start.map(|from| Started {
            from,
            to: start_by.unwrap_or(from).max(from),
        })
    }

    fn holds(&self, ticks: u64) -> bool {
        (self.from..=self.to).contains(&ticks)
    }
}

/// The boot clock (`CLOCK_BOOTTIME`, the clock a process's start time is stamped with) in clock
/// ticks, rounded down as `/proc` rounds.
fn boot_ticks() -> Option<u64> {
    // SAFETY: clock_gettime fills the timespec it is given; sysconf reads a constant.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    if hz == 0 {
        return None;
    }
    let ns = u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?;
    Some(ns / (1_000_000_000 / hz))
}

/// Whether the process group `group`, whose leader started within `start`, still has a live
/// member. A group id is not handed out again while the group has members; a leader pid reused
/// by a newer process shows a start time outside the window.
pub fn group_alive(group: i32, start: Option<Started>) -> bool {
    if group <= 0 {
        return false;
    }
    if let (Some(want), Some((_, _, now))) = (start, stat(group)) {
        if !want.holds(now) {
            return false;
        }
    }
    match std::fs::read_dir("/proc") {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(stat)
            .any(|(state, g, _)| g == group && state != 'Z' && state != 'X'),
        // SAFETY: signal 0 only checks that the group exists.
        Err(_) => unsafe { libc::kill(-group, 0) == 0 },
    }
}

/// What every command the program runs shares, whoever runs it (`sh`, an undo, a `cmd` health
/// check, a `command` metric provider): the interrupt that stops it and the `commands` settings.
#[derive(Debug, Clone)]
pub struct Runner {
    pub interrupt: Arc<Interrupt>,
    pub kill_grace: Duration,
    pub capture_limit: usize,
}

impl Runner {
    pub fn spec(&self, program: Program, timeout: Option<Duration>) -> Spec {
        Spec {
            program,
            env: Vec::new(),
            cwd: None,
            timeout,
            kill_grace: self.kill_grace,
            capture_limit: self.capture_limit,
        }
    }

    /// Run `spec` in the background of an async task (a health check, a metric read): on a
    /// blocking thread of the runtime, output captured and not shown. The interrupt still stops
    /// it (SIGTERM, then SIGKILL after the grace), but it is not the command Ctrl-C signals at
    /// once: several may run together.
    pub async fn capture(&self, spec: Spec) -> std::io::Result<Outcome> {
        let interrupt = self.interrupt.clone();
        tokio::task::spawn_blocking(move || {
            run_as(
                &spec,
                &interrupt,
                false,
                &mut |_: bool, _: &str| {},
                &mut |_: i32, _: Option<Started>| {},
            )
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Run `spec`, calling `on_line(is_stderr, line)` for each line of output as it arrives and
/// `on_spawn(group, started)` once it started, with its process group and when its leader
/// started. It is the command in the foreground: Ctrl-C signals its group at once.
pub fn run(
    spec: &Spec,
    interrupt: &Interrupt,
    on_line: &mut dyn FnMut(bool, &str),
    on_spawn: &mut dyn FnMut(i32, Option<Started>),
) -> std::io::Result<Outcome> {
    run_as(spec, interrupt, true, on_line, on_spawn)
}

/// Clears the interrupt's foreground group however the run ends.
struct Foreground<'a>(Option<&'a Interrupt>);

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            i.clear_child_group();
        }
    }
}

/// A descriptor that tells when the process `pid` has exited (Linux 5.3 and later).
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Set while a rehearsal (`runbook test`) runs: no command is started, whatever asks. The gate
/// answers every effect from the scenario's world first; this is the last guard.
static REFUSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuse (or allow again) starting any command in this process.
pub fn refuse_spawning(on: bool) {
    REFUSE.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// The whole life of one command on the calling thread: no reader threads, no runtime. One
/// `poll` waits on both output pipes and on the child's exit (a pidfd), with a timeout that is
/// the next thing the clock must do (the deadline, the end of the kill grace, the end of the
/// drain) and at most 50 ms, so an interrupt is seen promptly.
fn run_as(
    spec: &Spec,
    interrupt: &Interrupt,
    foreground: bool,
    on_line: &mut dyn FnMut(bool, &str),
    on_spawn: &mut dyn FnMut(i32, Option<Started>),
) -> std::io::Result<Outcome> {
    if REFUSE.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refused to run `{}`: a rehearsal (runbook test) never starts a command",
                spec.program.display()
            ),
        ));
    }
    let argv: Vec<String> = match &spec.program {
        Program::Argv(v) if v.is_empty() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            ))
        }
        Program::Argv(v) => v.clone(),
        Program::Line(l) => match direct_argv(l) {
            Some(v) if program_exists(&v[0]) => v,
            _ => vec!["/bin/sh".into(), "-c".into(), l.clone()],
        },
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout or Ctrl-C stops the command and all it started.
        .process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let started = Instant::now();
    // The kernel stamps the child's start between these two reads of its clock; one tick of
    // margin each side for the coarser clock it may stamp with.
    let before = boot_ticks();
    let mut child = cmd.spawn()?;
    let after = boot_ticks();
    let leader_started = before.zip(after).map(|(b, a)| Started {
        from: b.saturating_sub(1),
        to: a + 1,
    });
    let group = child.id() as i32;
    let _foreground = Foreground(foreground.then_some(interrupt));
    if foreground {
        interrupt.set_child_group(group);
    }
    on_spawn(group, leader_started);

    let mut pipes: [Option<std::fs::File>; 2] = [
        child.stdout.take().map(|p| OwnedFd::from(p).into()),
        child.stderr.take().map(|p| OwnedFd::from(p).into()),
    ];
    for fd in pipes.iter().flatten() {
        set_nonblocking(fd.as_raw_fd());
    }
    let pidfd = pidfd_open(group);

    let mut out = Outcome::default();
    let mut status: Option<std::process::ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut term_sent: Option<Instant> = None;
    let mut killed = false;
    let deadline = spec.timeout.map(|t| started + t);
    // After the command exits, a background grandchild may hold the pipes open: stop waiting
    // for its output after this long.
    let drain = Duration::from_millis(250);
    let limit = spec.capture_limit;
    let mut streams = [Stream::default(), Stream::default()];
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        if status.is_none() {
            // Without a pidfd, ask each time round; with one, only when it says so (below).
            if pidfd.is_none() || pipes.iter().all(Option::is_none) {
                if let Some(s) = child.try_wait()? {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
            }
        }
        if let Some(t) = exited_at {
            if pipes.iter().all(Option::is_none) || t.elapsed() >= drain {
                break;
            }
        }
        let now = Instant::now();
        // The clock and the interrupt, while the command runs.
        if status.is_none() {
            if interrupt.is_set() {
                out.interrupted = true;
            } else if deadline.is_some_and(|d| now >= d) {
                out.timed_out = true;
            }
            if out.interrupted || out.timed_out {
                match term_sent {
                    None => {
                        kill_group(group, libc::SIGTERM);
                        term_sent = Some(now);
                    }
                    Some(t) if !killed && now >= t + spec.kill_grace => {
                        kill_group(group, libc::SIGKILL);
                        killed = true;
                    }
                    _ => {}
                }
            }
        }
        // How long poll may sleep: until the next thing the clock must do.
        let mut wake = now + Duration::from_millis(50);
        if status.is_none() {
            if let (Some(d), None) = (deadline, term_sent) {
                wake = wake.min(d);
            }
            if let (Some(t), false) = (term_sent, killed) {
                wake = wake.min(t + spec.kill_grace);
            }
            if pidfd.is_none() && pipes.iter().all(Option::is_none) {
                // Nothing to wait on but the exit itself: look again soon.
                wake = wake.min(now + Duration::from_millis(1));
            }
        }
        if let Some(t) = exited_at {
            wake = wake.min(t + drain);
        }
        let wait_ms = wake
            .saturating_duration_since(now)
            .as_millis()
            .min(i32::MAX as u128) as i32;

        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        let mut which: Vec<usize> = Vec::with_capacity(3);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(fd) = p {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if let (Some(fd), None) = (&pidfd, status) {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(2);
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            kill_group(group, libc::SIGKILL);
            let _ = child.wait();
            return Err(e);
        }
        for (p, &i) in fds.iter().zip(&which) {
            if p.revents == 0 {
                continue;
            }
            if i == 2 {
                if let Some(s) = child.try_wait()? {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
                continue;
            }
            let is_err = i == 1;
            let Some(mut file) = pipes[i].as_ref() else {
                continue;
            };
            // Read what is there now (bounded, so one busy stream does not starve the other).
            let mut closed = false;
            for _ in 0..16 {
                match file.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(k) => streams[usize::from(is_err)].take(&buf[..k], limit, is_err, on_line),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                pipes[i] = None;
            }
        }
    }
    if interrupt.is_set() {
        out.interrupted = true;
    }
    if out.timed_out || out.interrupted {
        // No orphans: whatever the command started goes with it.
        kill_group(group, libc::SIGKILL);
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        stream.finish(i == 1, on_line);
    }
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    out.stdout = streams[0].text();
    out.stderr = streams[1].text();
    out.truncated = streams[0].cut || streams[1].cut;
    out.code = status.code();
    out.signal = status.signal();
    out.duration = started.elapsed();
    Ok(out)
}

fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let p = dir.join(program);
        p.is_file()
            && std::fs::metadata(&p)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn while_a_rehearsal_runs_no_command_is_started() {
        let marker = std::env::temp_dir().join(format!("runbook-refused-{}", std::process::id()));
        let spec = Spec {
            program: Program::Argv(vec!["/bin/touch".into(), marker.display().to_string()]),
            env: vec![],
            cwd: None,
            timeout: None,
            kill_grace: Duration::from_secs(1),
            capture_limit: 1024,
        };
        let interrupt = Interrupt::default();
        refuse_spawning(true);
        let got = run(&spec, &interrupt, &mut |_, _| {}, &mut |_, _| {});
        refuse_spawning(false);
        let e = got.expect_err("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .contains("a rehearsal (runbook test) never starts a command"),
            "{e}"
        );
        assert!(!marker.exists(), "the command ran");
    }

    fn sleeper(seconds: &str) -> Spec {
        Spec {
            program: Program::Argv(vec!["/bin/sleep".into(), seconds.into()]),
            env: vec![],
            cwd: None,
            timeout: Some(Duration::from_secs(10)),
            kill_grace: Duration::from_secs(1),
            capture_limit: 1024,
        }
    }

    /// The window read from the boot clock around a spawn holds the start time the kernel gives
    /// the child in `/proc`, and a resume finds the group alive by it; a window that misses it
    /// (a reused pid, started at another time) is not taken for the group.
    #[test]
    fn a_commands_start_is_within_the_window_read_around_its_spawn() {
        let interrupt = Interrupt::default();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let mut on_spawn = |group: i32, started: Option<Started>| {
                let window = started.expect("the boot clock is readable here");
                let kernel = start_ticks(group).expect("the child is in /proc");
                assert!(
                    window.from <= kernel && kernel <= window.to,
                    "the kernel's start {kernel} is outside {window:?}"
                );
                assert!(window.to - window.from <= 3, "a wide window: {window:?}");
                assert!(group_alive(group, Some(window)), "alive, by its window");
                let before = Started {
                    from: 0,
                    to: kernel - 1,
                };
                let after = Started {
                    from: kernel + 1,
                    to: kernel + 100,
                };
                assert!(!group_alive(group, Some(before)), "another start: not it");
                assert!(!group_alive(group, Some(after)), "another start: not it");
                seen.push(group);
            };
            run(&sleeper("0.02"), &interrupt, &mut |_, _| {}, &mut on_spawn).unwrap();
        }
        assert_eq!(seen.len(), 20);
    }

    /// A journal written before the window recorded the exact tick: a window of one.
    #[test]
    fn an_exact_start_from_an_older_journal_is_a_window_of_one() {
        assert_eq!(
            Started::recorded(Some(7), None),
            Some(Started { from: 7, to: 7 })
        );
        assert_eq!(
            Started::recorded(Some(7), Some(9)),
            Some(Started { from: 7, to: 9 })
        );
        assert_eq!(Started::recorded(None, Some(9)), None);
    }

    #[test]
    fn a_character_cut_by_the_limit_is_left_out() {
        assert_eq!(whole_characters(b"ab"), b"ab");
        assert_eq!(whole_characters("aé".as_bytes()), "aé".as_bytes());
        assert_eq!(whole_characters(&"aé".as_bytes()[..2]), b"a");
        assert_eq!(whole_characters(&"a€".as_bytes()[..3]), b"a");
        assert_eq!(whole_characters(&"a😀".as_bytes()[..4]), b"a");
        assert_eq!(whole_characters("a😀".as_bytes()), "a😀".as_bytes());
    }

    #[test]
    fn plain_lines_run_directly_and_shell_syntax_does_not() {
        assert_eq!(
            direct_argv("/bin/true"),
            Some(vec!["/bin/true".to_string()])
        );
        assert_eq!(
            direct_argv("kubectl apply -f k8s/staging/"),
            Some(vec![
                "kubectl".into(),
                "apply".into(),
                "-f".into(),
                "k8s/staging/".into()
            ])
        );
        for line in [
            "echo $HOME",
            "a | b",
            "a && b",
            "FOO=1 cmd",
            "cd /tmp",
            "echo 'x'",
            "ls *.rs",
            "a > f",
        ] {
            assert_eq!(direct_argv(line), None, "{line}");
        }
    }
}
