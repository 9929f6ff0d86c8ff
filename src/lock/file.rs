//! The file backend (`lock.backend: file`, the default): a lock file under the deployments
//! directory with its holder. A lock whose process is gone or whose lease ran out is stale: it is
//! taken over only when asked, with a recorded reason. The file is always written whole
//! (temporary file, then rename), under an flock of the lock directory so that checking a lock
//! and taking it over is one step. It serves one machine (or a shared filesystem that honours
//! flock): two laptops each have their own, which is what the etcd and Kubernetes backends are for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{judge, lease_end, same_holder, Acquired, Backend, EnvStatus, Holder, Renewal, State};
use crate::error::Error;

pub fn path_for(root: &Path, environment: &str) -> PathBuf {
    root.join(".locks")
        .join(format!("{}.lock", crate::answers::slug(environment)))
}

/// The live-control request for an environment's run, beside its lock.
fn control_path(root: &Path, environment: &str) -> PathBuf {
    root.join(".locks").join(format!(
        "{}.control.json",
        crate::answers::slug(environment)
    ))
}

fn read_control(path: &Path) -> Option<super::ControlRequest> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Remove the request `id` (under the directory's flock: a newer one written meanwhile stays).
fn clear_control(path: &Path, id: &str) {
    let Some(dir) = path.parent() else {
        return;
    };
    let _guard = Guard::take(dir);
    if read_control(path).is_some_and(|r| r.id == id) {
        let _ = std::fs::remove_file(path);
    }
}

/// The last holder record of an environment, kept when the lock goes (for `runbook status`).
fn status_path(root: &Path, environment: &str) -> PathBuf {
    root.join(".status")
        .join(format!("{}.json", crate::answers::slug(environment)))
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

/// How durable a write of a lock-directory file must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// On disk before this returns (a control request: its sender exits next).
    Now,
    /// On disk before this run's next effect acts: the lock just taken. Synced on threads of
    /// their own while the run starts; the journal's next intent waits for them.
    BeforeNextEffect,
    /// Not synced: a renewal or the holder record rewritten (any version of it says "held";
    /// one a crash left empty reads as stale, which is what a crashed holder's lock is anyway),
    /// the last-holder record for `runbook status`.
    No,
}

/// Write `text` whole: to a temporary file beside `path`, then renamed over it, so a reader
/// never sees a part of one; synced as `durable` says. A crash leaves the old file, the new
/// one, or (when it was not synced) an empty one, which reads as stale, never a live holder.
fn write_whole(path: &Path, text: &str, durable: Durable) -> Result<(), Error> {
    use std::io::Write;
    let tmp = path.with_extension(format!("lock.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            if durable == Durable::Now {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write lock", path, e));
    }
    let dir = path.parent().map(Path::to_path_buf);
    match durable {
        Durable::Now => {
            if let Some(dir) = dir {
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
        }
        Durable::BeforeNextEffect => crate::journal::sync_before_next_effect(
            std::iter::once(path.to_path_buf()).chain(dir).collect(),
        ),
        Durable::No => {}
    }
    Ok(())
}

fn write_holder(path: &Path, holder: &Holder, durable: Durable) -> Result<(), Error> {
    write_whole(
        path,
        &serde_json::to_string_pretty(holder).unwrap_or_default(),
        durable,
    )
}

/// Keep the holder record as the environment's last word (best effort: it only feeds `status`,
/// and is not synced).
fn write_status(root: &Path, holder: &Holder, ended: &str) {
    let path = status_path(root, &holder.environment);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::json!({ "holder": holder, "ended": ended }).to_string();
    let _ = write_whole(&path, &text, Durable::No);
}

/// The lock directory's log of locks broken (`runbook unlock`) and taken over.
fn append_log(dir: &Path, entry: serde_json::Value) -> Result<PathBuf, Error> {
    use std::io::Write;
    let log = dir.join("unlock-log.jsonl");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{entry}").and_then(|_| f.sync_all()))
        .map_err(|e| Error::io("write lock log", &log, e))?;
    Ok(log)
}

pub struct FileBackend {
    root: PathBuf,
}

impl FileBackend {
    pub fn new(root: &Path) -> FileBackend {
        FileBackend {
            root: root.to_path_buf(),
        }
    }

    fn dir(&self) -> Result<PathBuf, Error> {
        let dir = self.root.join(".locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create lock directory", &dir, e))?;
        Ok(dir)
    }
}

impl Backend for FileBackend {
    fn store(&self, environment: &str) -> String {
        format!("`{}`", path_for(&self.root, environment).display())
    }

    fn state(&self, environment: &str) -> Result<State, Error> {
        state(&path_for(&self.root, environment))
    }

    fn acquire(
        &self,
        holder: &Holder,
        lease: Duration,
        take_over: Option<&str>,
    ) -> Result<Acquired, Error> {
        let path = path_for(&self.root, &holder.environment);
        let dir = self.dir()?;
        let guard = Guard::take(&dir)?;
        let torn = path.display().to_string();
        let found = state(&path)?;
        // A holder whose lease ran out stopped renewing it (it died, or its host did): the lock
        // is free, and this run journals whom it followed. One whose process is gone but whose
        // lease still runs is stale: taken over with a reason (or by `runbook resume`).
        let (found, followed) = match found {
            State::Held(current) if current.expires <= super::now_secs() && take_over.is_none() => {
                (State::Free, Some(current))
            }
            other => (other, None),
        };
        let took_over = judge(&holder.environment, found, take_over, &torn)?;
        write_holder(&path, holder, Durable::BeforeNextEffect)?;
        drop(guard);
        if let Some(previous) = &followed {
            write_status(&self.root, previous, "expired");
            append_log(
                &dir,
                serde_json::json!({
                    "event": "expired",
                    "ts": crate::journal::now_rfc3339(),
                    "environment": holder.environment,
                    "by": holder.user,
                    "host": holder.host,
                    "holder": previous,
                }),
            )?;
        }
        if let Some((previous, reason)) = &took_over {
            append_log(
                &dir,
                serde_json::json!({
                    "event": "takeover",
                    "ts": crate::journal::now_rfc3339(),
                    "environment": holder.environment,
                    "reason": reason,
                    "by": holder.user,
                    "host": holder.host,
                    "holder": previous,
                }),
            )?;
        }
        Ok(Acquired {
            tenure: Box::new(FileTenure {
                root: self.root.clone(),
                path,
                lease,
            }),
            took_over,
            followed,
        })
    }

    fn unlock(&self, environment: &str, reason: &str) -> Result<(State, String), Error> {
        let path = path_for(&self.root, environment);
        let dir = self.dir()?;
        let guard = Guard::take(&dir)?;
        let was = state(&path)?;
        if !matches!(was, State::Free) {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove lock", &path, e))?;
        }
        drop(guard);
        let holder = match &was {
            State::Held(h) => {
                write_status(&self.root, h, "broken");
                serde_json::json!(h)
            }
            State::Torn => serde_json::json!("(an empty or half-written lock file)"),
            State::Free => serde_json::Value::Null,
        };
        let log = append_log(
            &dir,
            serde_json::json!({
                "event": "unlock",
                "ts": crate::journal::now_rfc3339(),
                "environment": environment,
                "reason": reason,
                "by": crate::identity::user(),
                "host": crate::identity::host(),
                "holder": holder,
            }),
        )?;
        Ok((was, log.display().to_string()))
    }

    fn statuses(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, Error> {
        let mut names = std::collections::BTreeSet::new();
        for (dir, ext) in [(".locks", "lock"), (".status", "json")] {
            if let Ok(entries) = std::fs::read_dir(self.root.join(dir)) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.extension().and_then(|x| x.to_str()) == Some(ext) {
                        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                            names.insert(stem.to_string());
                        }
                    }
                }
            }
        }
        if let Some(env) = only {
            names = [crate::answers::slug(env)].into();
        }
        let mut out = Vec::new();
        for name in names {
            let holder = match state(&path_for(&self.root, &name))? {
                State::Held(h) => Some(h),
                _ => None,
            };
            let last: Option<serde_json::Value> =
                std::fs::read_to_string(status_path(&self.root, &name))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            out.push(EnvStatus {
                environment: holder
                    .as_ref()
                    .map(|h| h.environment.clone())
                    .or_else(|| only.map(str::to_string))
                    .unwrap_or(name),
                holder,
                last: last
                    .as_ref()
                    .and_then(|l| serde_json::from_value(l["holder"].clone()).ok()),
                ended: last.and_then(|l| l["ended"].as_str().map(str::to_string)),
            });
        }
        Ok(out)
    }

    fn request_control(&self, request: &super::ControlRequest) -> Result<String, Error> {
        let path = control_path(&self.root, &request.environment);
        let dir = self.dir()?;
        let _guard = Guard::take(&dir)?;
        write_whole(
            &path,
            &serde_json::to_string_pretty(request).unwrap_or_default(),
            Durable::Now,
        )?;
        Ok(format!("`{}`", path.display()))
    }

    fn read_control(&self, environment: &str) -> Result<Option<super::ControlRequest>, Error> {
        Ok(read_control(&control_path(&self.root, environment)))
    }
}

struct FileTenure {
    root: PathBuf,
    path: PathBuf,
    lease: Duration,
}

impl super::Tenure for FileTenure {
    fn renew(&mut self, holder: &Holder) -> Renewal {
        let Some(dir) = self.path.parent() else {
            return Renewal::Lost("its lock directory is gone".into());
        };
        let Ok(_guard) = Guard::take(dir) else {
            return Renewal::Unreachable(format!("cannot lock `{}`", dir.display()));
        };
        match state(&self.path) {
            Ok(State::Held(current)) if same_holder(&current, holder) => {
                let mut mine = holder.clone();
                mine.expires = lease_end(self.lease);
                match write_holder(&self.path, &mine, Durable::No) {
                    Ok(()) => Renewal::Ours,
                    Err(e) => Renewal::Unreachable(e.summary()),
                }
            }
            Ok(State::Held(other)) => {
                Renewal::Lost(format!("it is held now by {}", super::describe(&other)))
            }
            Ok(_) => Renewal::Lost("it was broken (`runbook unlock`) and nobody holds it".into()),
            Err(e) => Renewal::Unreachable(e.summary()),
        }
    }

    fn read_control(&mut self, environment: &str) -> Option<super::ControlRequest> {
        read_control(&control_path(&self.root, environment))
    }

    fn clear_control(&mut self, environment: &str, id: &str) {
        clear_control(&control_path(&self.root, environment), id)
    }

    fn release(&mut self, holder: &Holder) {
        // Only our own lock: a lock broken and taken by someone else is theirs now.
        let Some(parent) = self.path.parent() else {
            return;
        };
        let _guard = Guard::take(parent);
        if let Ok(State::Held(h)) = state(&self.path) {
            if same_holder(&h, holder) {
                let _ = std::fs::remove_file(&self.path);
                write_status(&self.root, holder, "released");
            }
        }
    }
}
