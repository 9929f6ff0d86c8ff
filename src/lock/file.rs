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

/// Acquire, refuse, stale, expired and torn locks, renewal and release, against a lock directory
/// in a temp dir (no run, no binary).
#[cfg(test)]
mod tests {
    use super::super::now_secs;
    use super::*;

    /// A holder of `environment` on this host: `pid` is whose (a live or a gone process).
    fn holder(environment: &str, pid: u32, expires: u64) -> Holder {
        Holder {
            environment: environment.into(),
            user: "tester".into(),
            host: crate::identity::host(),
            pid,
            reason: "deploy.rhai".into(),
            started: crate::journal::now_rfc3339(),
            expires,
            run_dir: "deployments/run".into(),
            ..Holder::default()
        }
    }

    fn live(environment: &str) -> Holder {
        holder(environment, std::process::id(), now_secs() + 60)
    }

    /// The pid of a process that has ended and been reaped.
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A lock file left by `holder` (another run, dead or alive).
    fn plant(root: &Path, holder: &Holder) {
        let path = path_for(root, &holder.environment);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_holder(&path, holder, Durable::Now).unwrap();
    }

    fn held(root: &Path, environment: &str) -> Holder {
        match state(&path_for(root, environment)).unwrap() {
            State::Held(h) => h,
            other => panic!("{other:?}"),
        }
    }

    fn log(root: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(root.join(".locks/unlock-log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn refusal(result: Result<Acquired, Error>) -> String {
        match result {
            Err(Error::Usage(message)) => message,
            Err(e) => panic!("not a refusal: {e:?}"),
            Ok(_) => panic!("acquired"),
        }
    }

    const LEASE: Duration = Duration::from_secs(30);

    #[test]
    fn a_free_environment_is_taken_and_its_holder_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        assert!(matches!(backend.state("production").unwrap(), State::Free));
        let me = live("production");
        let got = backend.acquire(&me, LEASE, None).unwrap();
        assert!(got.took_over.is_none() && got.followed.is_none());
        assert_eq!(held(dir.path(), "production"), me);
        // Written whole through a temporary file: none is left beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path().join(".locks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["production.lock"]);
        assert!(log(dir.path()).is_empty());
    }

    #[test]
    fn a_live_holder_is_refused_by_name_even_when_asked_to_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let first = live("production");
        let _first = backend.acquire(&first, LEASE, None).unwrap();
        let second = live("production");
        for take_over in [None, Some("I am sure")] {
            let message = refusal(backend.acquire(&second, LEASE, take_over));
            assert!(
                message.starts_with(&format!(
                    "`production` is locked by another deployment: tester on {} (pid {}) has held it for ",
                    first.host, first.pid
                )),
                "{message}"
            );
            assert!(message.ends_with("\n  help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`"), "{message}");
        }
        assert_eq!(held(dir.path(), "production"), first);
        // Another environment is another lock.
        backend.acquire(&live("staging"), LEASE, None).unwrap();
    }

    #[test]
    fn a_holder_whose_process_is_gone_is_stale_and_taken_over_only_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let pid = gone_pid();
        let dead = holder("production", pid, now_secs() + 600);
        plant(dir.path(), &dead);

        let me = live("production");
        let message = refusal(backend.acquire(&me, LEASE, None));
        assert!(
            message.starts_with(&format!(
                "`production` has a stale lock (its process {pid} is gone): tester on "
            )),
            "{message}"
        );
        assert!(message.ends_with("\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)"), "{message}");
        assert_eq!(held(dir.path(), "production"), dead, "refused: unchanged");

        let got = backend
            .acquire(&me, LEASE, Some("the runner was rebooted"))
            .unwrap();
        assert_eq!(
            got.took_over,
            Some((
                Some(dead.clone()),
                format!("the runner was rebooted (stale: its process {pid} is gone)")
            ))
        );
        assert!(got.followed.is_none());
        assert_eq!(held(dir.path(), "production"), me);
        let log = log(dir.path());
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["event"], "takeover");
        assert_eq!(log[0]["reason"], got.took_over.unwrap().1);
        assert_eq!(log[0]["holder"]["pid"], pid);
    }

    #[test]
    fn a_holder_whose_lease_ran_out_is_followed_without_asking_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let mut expired = holder("production", 4_000_000, now_secs() - 1);
        expired.host = "elsewhere".into();
        plant(dir.path(), &expired);

        let me = live("production");
        let got = backend.acquire(&me, LEASE, None).unwrap();
        assert_eq!(got.followed, Some(expired.clone()));
        assert!(got.took_over.is_none());
        assert_eq!(held(dir.path(), "production"), me);
        let log = log(dir.path());
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["event"], "expired");
        assert_eq!(log[0]["holder"]["host"], "elsewhere");
        // `runbook status` keeps it as the environment's last word.
        let status = backend.statuses(Some("production")).unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].holder.as_ref(), Some(&me));
        assert_eq!(status[0].last.as_ref(), Some(&expired));
        assert_eq!(status[0].ended.as_deref(), Some("expired"));
    }

    #[test]
    fn an_expired_holder_taken_over_with_a_reason_is_a_take_over() {
        // Asked to take over, the run says why it was safe, whatever made the lock stale.
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let mut expired = holder("production", 4_000_000, now_secs() - 1);
        expired.host = "elsewhere".into();
        plant(dir.path(), &expired);
        let got = backend
            .acquire(&live("production"), LEASE, Some("checked"))
            .unwrap();
        assert!(got.followed.is_none());
        assert_eq!(
            got.took_over,
            Some((
                Some(expired),
                "checked (stale: its lease ran out)".to_string()
            ))
        );
    }

    #[test]
    fn a_torn_lock_file_holds_nothing_and_is_taken_over_only_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let path = path_for(dir.path(), "production");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        for torn in ["", "{\"environment\":\"produ"] {
            std::fs::write(&path, torn).unwrap();
            assert!(matches!(backend.state("production").unwrap(), State::Torn));
            let message = refusal(backend.acquire(&live("production"), LEASE, None));
            assert_eq!(
                message,
                format!(
                    "`production` has a stale lock (the lock file `{}` is empty or half-written: its writer died before finishing it, so no run holds it)\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)",
                    path.display()
                )
            );
        }
        let me = live("production");
        let got = backend.acquire(&me, LEASE, Some("fsck")).unwrap();
        let (previous, reason) = got.took_over.unwrap();
        assert!(previous.is_none());
        assert!(
            reason.starts_with("fsck (stale: the lock file `"),
            "{reason}"
        );
        assert_eq!(held(dir.path(), "production"), me);
    }

    #[test]
    fn racing_take_overs_of_one_stale_lock_let_exactly_one_through() {
        // The flock makes finding the stale lock and writing the new one a single step: the
        // others then find a live holder (this process) and are refused.
        let dir = tempfile::tempdir().unwrap();
        let dead = holder("production", gone_pid(), now_secs() + 600);
        plant(dir.path(), &dead);
        let root = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut me = live("production");
                    me.reason = format!("racer {i}");
                    FileBackend::new(&root)
                        .acquire(&me, LEASE, Some("race"))
                        .map(|_| me)
                })
            })
            .collect();
        let won: Vec<Holder> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap().ok())
            .collect();
        assert_eq!(won.len(), 1, "{won:?}");
        assert_eq!(held(&root, "production"), won[0]);
        assert_eq!(log(&root).len(), 1);
    }

    #[test]
    fn renewal_extends_the_lease_until_the_lock_is_broken_or_taken() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let mut me = live("production");
        me.expires = now_secs() + 1;
        let mut tenure = backend
            .acquire(&me, Duration::from_secs(3600), None)
            .unwrap()
            .tenure;
        me.stage = Some("Canary".into());
        assert!(matches!(tenure.renew(&me), Renewal::Ours));
        let renewed = held(dir.path(), "production");
        assert!(renewed.expires >= now_secs() + 3599, "{renewed:?}");
        assert_eq!(renewed.stage.as_deref(), Some("Canary"));

        // Broken by `runbook unlock`: lost, and said how.
        let (was, logged) = backend.unlock("production", "stuck").unwrap();
        assert!(matches!(was, State::Held(h) if h.pid == me.pid));
        assert!(logged.ends_with("unlock-log.jsonl"), "{logged}");
        match tenure.renew(&me) {
            Renewal::Lost(why) => {
                assert_eq!(why, "it was broken (`runbook unlock`) and nobody holds it")
            }
            other => panic!("{other:?}"),
        }
        // Taken by another run: lost, naming it; and releasing leaves its lock alone.
        let mut other = live("production");
        other.pid = std::process::id() + 1;
        plant(dir.path(), &other);
        match tenure.renew(&me) {
            Renewal::Lost(why) => assert!(
                why.starts_with(&format!(
                    "it is held now by tester on {} (pid {})",
                    other.host, other.pid
                )),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        tenure.release(&me);
        assert_eq!(held(dir.path(), "production"), other);
    }

    #[test]
    fn release_gives_back_only_its_own_lock_and_leaves_the_holder_as_the_last_word() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let me = live("production");
        let mut tenure = backend.acquire(&me, LEASE, None).unwrap().tenure;
        tenure.release(&me);
        assert!(matches!(backend.state("production").unwrap(), State::Free));
        let status = backend.statuses(None).unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].environment, "production");
        assert!(status[0].holder.is_none());
        assert_eq!(status[0].last.as_ref(), Some(&me));
        assert_eq!(status[0].ended.as_deref(), Some("released"));
        // Free again: the next run takes it without a word.
        let next = backend.acquire(&live("production"), LEASE, None).unwrap();
        assert!(next.took_over.is_none() && next.followed.is_none());
    }

    #[test]
    fn a_control_request_is_cleared_only_by_its_own_id() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path());
        let me = live("production");
        let mut tenure = backend.acquire(&me, LEASE, None).unwrap().tenure;
        assert!(tenure.read_control("production").is_none());
        let request: super::super::ControlRequest = serde_json::from_value(serde_json::json!({
            "id": "r1", "environment": "production", "action": "pause", "reason": "look",
            "by": "alice@h", "sent": "2026-01-01T00:00:00Z", "run": "deployments/run"
        }))
        .unwrap();
        backend.request_control(&request).unwrap();
        assert_eq!(tenure.read_control("production").unwrap().id, "r1");
        tenure.clear_control("production", "r0");
        assert_eq!(tenure.read_control("production").unwrap().id, "r1");
        tenure.clear_control("production", "r1");
        assert!(tenure.read_control("production").is_none());
    }
}
