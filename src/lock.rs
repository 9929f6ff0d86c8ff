//! One deployment at a time per environment: a lock file under the deployments directory with
//! its holder (user, host, pid), reason, start and lease. A lock whose process is gone or whose
//! lease ran out is stale: it is taken over only when asked, with a recorded reason. The file is
//! always written whole (temporary file, then rename), under an flock of the lock directory so
//! that checking a lock and taking it over is one step; a live run renews its lease.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub environment: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub reason: String,
    pub started: String,
    /// Seconds since the epoch when the lease ends.
    pub expires: u64,
    pub run_dir: String,
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    pub holder: Holder,
    /// The holder this lock took over from (none when the file was torn), if it was stale.
    pub took_over: Option<(Option<Holder>, String)>,
    renewer: Option<Renewer>,
}

pub fn path_for(root: &Path, environment: &str) -> PathBuf {
    root.join(".locks")
        .join(format!("{}.lock", crate::answers::slug(environment)))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A process killed but not yet reaped by its parent (a zombie) still exists, and holds
    // nothing: it is gone.
    exists && !zombie(pid)
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Why a held lock is stale, if it is.
pub fn stale(h: &Holder) -> Option<String> {
    if h.expires <= now_secs() {
        return Some("its lease ran out".into());
    }
    if h.host == crate::primitives::prompt::host() && !alive(h.pid) {
        return Some(format!("its process {} is gone", h.pid));
    }
    None
}

/// What a lock file holds.
#[derive(Debug)]
pub enum State {
    Free,
    Held(Holder),
    /// Empty or not whole JSON: its writer died mid-write (locks are written whole, by rename,
    /// so only an older runner or a damaged disk leaves one). No run holds it.
    Torn,
}

pub fn state(path: &Path) -> Result<State, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text)
            .map(State::Held)
            .unwrap_or(State::Torn)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::Free),
        Err(e) => Err(Error::io("read lock", path, e)),
    }
}

/// Exclusive use of the lock directory while a lock is read and written (flock(2): the kernel
/// lets it go when its holder dies, so it is never left behind). Two runs that both find the
/// same stale lock take it over one after the other: the second finds the first's live lock.
struct Guard {
    _file: std::fs::File,
}

impl Guard {
    fn take(dir: &Path) -> Result<Guard, Error> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(dir).map_err(|e| Error::io("open lock directory", dir, e))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Guard { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("lock the lock directory", dir, e));
            }
        }
    }
}

/// Write the holder whole: to a temporary file beside the lock, synced, then renamed over it. A
/// crash leaves the old lock or the new one, never a part of one.
fn write_whole(path: &Path, holder: &Holder) -> Result<(), Error> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(holder).unwrap_or_default();
    let tmp = path.with_extension(format!("lock.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write lock", path, e));
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// When a lease of `lease` taken now ends, in whole seconds rounded up.
fn lease_end(lease: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (now + lease).as_millis().div_ceil(1000) as u64
}

fn same_holder(a: &Holder, b: &Holder) -> bool {
    a.pid == b.pid && a.host == b.host && a.started == b.started
}

/// A test hook: pause between finding a stale lock and taking it over, to widen the window two
/// racing take-overs would meet in (`RUNBOOK_FAULT_LOCK_PAUSE=500ms`).
fn fault_pause() {
    if let Some(d) = std::env::var("RUNBOOK_FAULT_LOCK_PAUSE")
        .ok()
        .and_then(|v| crate::config::parse_duration(&v).ok())
    {
        std::thread::sleep(d);
    }
}

fn held_for(h: &Holder) -> String {
    let started = humantime::parse_rfc3339(&h.started).ok();
    match started.and_then(|s| SystemTime::now().duration_since(s).ok()) {
        Some(d) => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        None => "an unknown time".into(),
    }
}

pub fn describe(h: &Holder) -> String {
    format!(
        "{} on {} (pid {}) has held it for {} ({}), run {}",
        h.user,
        h.host,
        h.pid,
        held_for(h),
        if h.reason.is_empty() {
            "no reason given".into()
        } else {
            format!("reason: {}", h.reason)
        },
        h.run_dir
    )
}

/// Take the lock for `environment`, or say who holds it. A live run renews its lease every
/// third of it, so only a dead (or cut-off) run's lease runs out.
pub fn acquire(
    root: &Path,
    environment: &str,
    lease: Duration,
    reason: &str,
    run_dir: &str,
    take_over: Option<&str>,
) -> Result<Lock, Error> {
    let path = path_for(root, environment);
    let dir = path.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create lock directory", &dir, e))?;
    let holder = Holder {
        environment: environment.to_string(),
        user: crate::primitives::prompt::user(),
        host: crate::primitives::prompt::host(),
        pid: std::process::id(),
        reason: reason.to_string(),
        started: crate::journal::now_rfc3339(),
        expires: lease_end(lease),
        run_dir: run_dir.to_string(),
    };
    let guard = Guard::take(&dir)?;
    let took_over = match state(&path)? {
        State::Free => None,
        State::Held(current) => match (stale(&current), take_over) {
            (None, _) => {
                return Err(Error::Usage(format!(
                    "`{environment}` is locked by another deployment: {}\n  help: wait for it, or if it is truly gone, `runbook unlock {environment} --reason \"...\"`",
                    describe(&current)
                )))
            }
            (Some(why), None) => {
                return Err(Error::Usage(format!(
                    "`{environment}` has a stale lock ({why}): {}\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)",
                    describe(&current)
                )))
            }
            (Some(why), Some(reason)) => {
                fault_pause();
                Some((Some(current), format!("{reason} (stale: {why})")))
            }
        },
        State::Torn => {
            let why = format!(
                "the lock file `{}` is empty or half-written: its writer died before finishing it, so no run holds it",
                path.display()
            );
            match take_over {
                None => {
                    return Err(Error::Usage(format!(
                        "`{environment}` has a stale lock ({why})\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)"
                    )))
                }
                Some(reason) => {
                    fault_pause();
                    Some((None, format!("{reason} (stale: {why})")))
                }
            }
        }
    };
    write_whole(&path, &holder)?;
    drop(guard);
    let renewer = Renewer::start(path.clone(), holder.clone(), lease);
    Ok(Lock {
        path,
        holder,
        took_over,
        renewer: Some(renewer),
    })
}

/// The thread that renews a held lock's lease every third of it, until the lock is dropped or
/// someone else holds it (broken with `runbook unlock` and taken).
#[derive(Debug)]
struct Renewer {
    holder: std::sync::Arc<std::sync::Mutex<Holder>>,
    /// Set when the lock is found no longer ours: who holds it now (or that nobody does).
    lost: LostFlag,
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Renewer {
    fn start(path: PathBuf, holder: Holder, lease: Duration) -> Renewer {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(holder));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let h = shared.clone();
        let lost = LostFlag::default();
        let said = lost.clone();
        let every = (lease / 3).max(Duration::from_millis(100));
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                let Some(dir) = path.parent() else { return };
                let Ok(_guard) = Guard::take(dir) else {
                    continue;
                };
                let Ok(mut mine) = h.lock() else { return };
                match state(&path) {
                    Ok(State::Held(current)) if same_holder(&current, &mine) => {
                        mine.expires = lease_end(lease);
                        let _ = write_whole(&path, &mine);
                    }
                    Ok(State::Held(other)) => {
                        said.set(format!("it is held now by {}", describe(&other)));
                        return;
                    }
                    Ok(_) => {
                        said.set("it was broken (`runbook unlock`) and nobody holds it".into());
                        return;
                    }
                    Err(_) => continue,
                }
            }
        });
        Renewer {
            holder: shared,
            lost,
            stop,
            thread,
        }
    }
}

/// Whether a held lock was lost (taken over, or broken), and how: the renewer sets it, the gate
/// reads it before every effect.
#[derive(Debug, Clone, Default)]
pub struct LostFlag(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl LostFlag {
    fn set(&self, how: String) {
        if let Ok(mut l) = self.0.lock() {
            *l = Some(how);
        }
    }
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|l| l.clone())
    }
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The flag that says this lock was lost while the run held it.
    pub fn lost(&self) -> LostFlag {
        self.renewer
            .as_ref()
            .map(|r| r.lost.clone())
            .unwrap_or_default()
    }

    /// Name the run directory once it exists.
    pub fn set_run_dir(&mut self, dir: &Path) {
        self.holder.run_dir = dir.display().to_string();
        let Some(parent) = self.path.parent() else {
            return;
        };
        let Ok(_guard) = Guard::take(parent) else {
            return;
        };
        let mut holder = self.holder.clone();
        if let Some(r) = &self.renewer {
            if let Ok(mut h) = r.holder.lock() {
                h.run_dir = self.holder.run_dir.clone();
                holder = h.clone();
            }
        }
        if let Ok(State::Held(current)) = state(&self.path) {
            if same_holder(&current, &holder) {
                let _ = write_whole(&self.path, &holder);
            }
        }
    }
}

/// `runbook unlock ENV --reason ...`: break the lock, and say so in the lock log. Returns what
/// the lock file held.
pub fn unlock(root: &Path, environment: &str, reason: &str) -> Result<State, Error> {
    let path = path_for(root, environment);
    let dir = path.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create lock directory", &dir, e))?;
    let guard = Guard::take(&dir)?;
    let was = state(&path)?;
    if !matches!(was, State::Free) {
        std::fs::remove_file(&path).map_err(|e| Error::io("remove lock", &path, e))?;
    }
    drop(guard);
    let holder = match &was {
        State::Held(h) => serde_json::json!(h),
        State::Torn => serde_json::json!("(an empty or half-written lock file)"),
        State::Free => serde_json::Value::Null,
    };
    let log = dir.join("unlock-log.jsonl");
    let entry = serde_json::json!({
        "ts": crate::journal::now_rfc3339(),
        "environment": environment,
        "reason": reason,
        "by": crate::primitives::prompt::user(),
        "host": crate::primitives::prompt::host(),
        "holder": holder,
    });
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{entry}").and_then(|_| f.sync_all()))
        .map_err(|e| Error::io("write lock log", &log, e))?;
    Ok(was)
}

/// Remove this process's lock at once (an abort: the process exits next), under the guard so
/// that a lease renewal under way cannot write it back.
pub fn release_now(path: &Path) {
    let _guard = path.parent().map(Guard::take);
    if let Ok(State::Held(h)) = state(path) {
        if h.pid == std::process::id() && h.host == crate::primitives::prompt::host() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            drop(r.stop);
            let _ = r.thread.join();
        }
        // Only our own lock: a lock broken and taken by someone else is theirs now.
        let Some(parent) = self.path.parent() else {
            return;
        };
        let _guard = Guard::take(parent);
        if let Ok(State::Held(h)) = state(&self.path) {
            if same_holder(&h, &self.holder) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
