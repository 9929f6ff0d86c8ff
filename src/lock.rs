//! One deployment at a time per environment: a lock file under the deployments directory with
//! its holder (user, host, pid), reason, start and lease. A lock whose process is gone or whose
//! lease ran out is stale: it is taken over only when asked, with a recorded reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The holder this lock took over from, if it was stale.
    pub took_over: Option<(Holder, String)>,
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
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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

pub fn read(path: &Path) -> Result<Option<Holder>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::Usage(format!(
            "the lock file `{}` is unreadable ({e}); if no deployment is running, remove it with `runbook unlock ENV --reason ...`",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read lock", path, e)),
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

/// Take the lock for `environment`, or say who holds it.
pub fn acquire(
    root: &Path,
    environment: &str,
    lease: Duration,
    reason: &str,
    run_dir: &str,
    take_over: Option<&str>,
) -> Result<Lock, Error> {
    let path = path_for(root, environment);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("create lock directory", parent, e))?;
    }
    let holder = Holder {
        environment: environment.to_string(),
        user: crate::primitives::prompt::user(),
        host: crate::primitives::prompt::host(),
        pid: std::process::id(),
        reason: reason.to_string(),
        started: crate::journal::now_rfc3339(),
        expires: now_secs() + lease.as_secs(),
        run_dir: run_dir.to_string(),
    };
    let text = serde_json::to_string_pretty(&holder).unwrap_or_default();
    let mut took_over = None;
    // create_new: two runs racing for the lock cannot both win.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("write lock", &path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let current = read(&path)?.ok_or_else(|| {
                Error::Usage(format!(
                    "the lock `{}` vanished while being read; run again",
                    path.display()
                ))
            })?;
            match (stale(&current), take_over) {
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
                    std::fs::write(&path, &text).map_err(|e| Error::io("write lock", &path, e))?;
                    took_over = Some((current, format!("{reason} (stale: {why})")));
                }
            }
        }
        Err(e) => return Err(Error::io("create lock", &path, e)),
    }
    Ok(Lock {
        path,
        holder,
        took_over,
    })
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Name the run directory once it exists.
    pub fn set_run_dir(&mut self, dir: &Path) {
        self.holder.run_dir = dir.display().to_string();
        if let Ok(text) = serde_json::to_string_pretty(&self.holder) {
            let _ = std::fs::write(&self.path, text);
        }
    }
}

/// `runbook unlock ENV --reason ...`: break the lock, and say so in the lock log.
pub fn unlock(root: &Path, environment: &str, reason: &str) -> Result<Option<Holder>, Error> {
    let path = path_for(root, environment);
    let holder = read(&path)?;
    if holder.is_some() {
        std::fs::remove_file(&path).map_err(|e| Error::io("remove lock", &path, e))?;
    }
    let log = root.join(".locks").join("unlock-log.jsonl");
    let entry = serde_json::json!({
        "ts": crate::journal::now_rfc3339(),
        "environment": environment,
        "reason": reason,
        "by": crate::primitives::prompt::user(),
        "host": crate::primitives::prompt::host(),
        "holder": holder,
    });
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("create lock directory", parent, e))?;
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{entry}").and_then(|_| f.sync_all()))
        .map_err(|e| Error::io("write lock log", &log, e))?;
    Ok(holder)
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only our own lock: a lock broken and taken by someone else is theirs now.
        if let Ok(Some(h)) = read(&self.path) {
            if h.pid == self.holder.pid
                && h.host == self.holder.host
                && h.started == self.holder.started
            {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
