//! One deployment at a time per environment. The lock is kept by a backend (`lock.backend`): a
//! file under the deployments directory (file.rs, the default), a key in etcd (etcd.rs), or a
//! Kubernetes Lease through kubectl (kubernetes.rs). Every backend keeps the same holder record
//! (who, which run, since when, the run's stage, traffic and last verdict) and the same lease
//! (`lock.lease`): a live run renews it every third of it, so only a dead or cut-off run's lock
//! runs out. The backends differ in how "create only if absent" is made atomic, and in what
//! happens when a lease runs out: a file lock is then stale (taken over only when asked), an
//! etcd key or a Lease is simply gone, and the next run proceeds and journals whom it followed.

pub mod control;
pub mod etcd;
pub mod file;
pub mod kubernetes;
pub mod status;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{LockBackend, LockCfg};
use crate::error::Error;
use crate::record::Record;

pub use file::{path_for, state};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// The stage the run is in, as it last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The last traffic change the run made (`weights`, `live`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Value>,
    /// The last verdict of its monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Value>,
    /// What live control last did to the run (`paused`, `resumed`, `promoted`, `aborted`), by
    /// whom and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Value>,
}

impl Holder {
    /// `user@host`
    pub fn who(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

/// What the store holds for an environment. (Made a few times per run: its size does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum State {
    Free,
    Held(Holder),
    /// Empty or not whole JSON: its writer died mid-write (locks are written whole, so only an
    /// older runner or a damaged disk leaves one). No run holds it.
    Torn,
}

/// One environment as `runbook status` shows it.
#[derive(Debug, Default)]
pub struct EnvStatus {
    pub environment: String,
    /// The live holder, if any.
    pub holder: Option<Holder>,
    /// The last record written, kept after the lock went (stage, traffic, verdict of the last run).
    pub last: Option<Holder>,
    /// How the last holder ended: `released`, `broken`, or `held` (it never said: its lease ran out).
    pub ended: Option<String>,
}

/// What renewing a lease found.
#[derive(Debug)]
pub enum Renewal {
    Ours,
    /// Someone else holds it now, or nobody: how.
    Lost(String),
    /// The store could not be asked: why (naming the endpoint). The lock may still be ours.
    Unreachable(String),
}

/// A lock held in a backend: what keeps it, and gives it back.
pub trait Tenure: Send {
    /// Extend the lease, and write `holder` when it changed since the last write (its stage).
    fn renew(&mut self, holder: &Holder) -> Renewal;
    /// Give the lock back, only if it is still ours, and leave the holder record as the last
    /// word on the environment (`runbook status`).
    fn release(&mut self, holder: &Holder);
    /// The live-control request waiting in the store for this environment, if any (read often:
    /// the run's next safe point acts on it).
    fn read_control(&mut self, environment: &str) -> Option<ControlRequest>;
    /// Take the request `id` out of the store (only that one: a newer request stays).
    fn clear_control(&mut self, environment: &str, id: &str);
}

pub struct Acquired {
    pub tenure: Box<dyn Tenure>,
    /// The holder this lock took over from (none when the record was torn), and the reason.
    pub took_over: Option<(Option<Holder>, String)>,
    /// A holder whose lease ran out without it giving the lock back (it died, or was cut off).
    pub followed: Option<Holder>,
}

pub trait Backend: Send + Sync {
    /// Where the locks are kept, for messages: a directory, `etcd at URL`, a Lease.
    fn store(&self, environment: &str) -> String;
    fn state(&self, environment: &str) -> Result<State, Error>;
    /// Take the lock for `holder.environment`, or refuse naming its holder (exit 2). The store
    /// unreachable is a refusal too, naming the endpoint: nothing has changed yet.
    fn acquire(
        &self,
        holder: &Holder,
        lease: Duration,
        take_over: Option<&str>,
    ) -> Result<Acquired, Error>;
    /// `runbook unlock`: break the lock and record it in the store. Returns what it held and
    /// where the breaking was recorded.
    fn unlock(&self, environment: &str, reason: &str) -> Result<(State, String), Error>;
    /// Every environment the store knows (or just `only`).
    fn statuses(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, Error>;
    /// `runbook control`: leave a request for the live run beside its lock (a newer request
    /// replaces an older one not yet taken). Returns where it was left.
    fn request_control(&self, request: &ControlRequest) -> Result<String, Error>;
    /// The request waiting for `environment`, if any.
    fn read_control(&self, environment: &str) -> Result<Option<ControlRequest>, Error>;
}

pub use control::{ControlFlag, ControlRequest};

/// The backend `lock.backend` names. `root` is the deployments directory (the file backend's);
/// `rt` runs the etcd backend's HTTP requests.
pub fn open(
    cfg: &crate::config::Config,
    root: &std::path::Path,
    rt: tokio::runtime::Handle,
) -> Result<Box<dyn Backend>, Error> {
    let lock: &LockCfg = &cfg.lock;
    Ok(match lock.backend {
        LockBackend::File => Box::new(file::FileBackend::new(root)),
        LockBackend::Etcd => {
            let lease = lease_of(lock)?;
            Box::new(etcd::EtcdBackend::new(&lock.etcd, lease, rt)?)
        }
        LockBackend::Kubernetes => Box::new(kubernetes::KubeBackend::new(cfg)),
    })
}

/// `lock.lease`, parsed.
pub fn lease_of(lock: &LockCfg) -> Result<Duration, Error> {
    crate::config::parse_duration(&lock.lease)
        .map_err(|e| Error::Usage(format!("config `lock.lease`: {e}")))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When a lease of `lease` taken now ends, in whole seconds rounded up.
pub(crate) fn lease_end(lease: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (now + lease).as_millis().div_ceil(1000) as u64
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
    if h.host == crate::identity::host() && !alive(h.pid) {
        return Some(format!("its process {} is gone", h.pid));
    }
    None
}

pub(crate) fn same_holder(a: &Holder, b: &Holder) -> bool {
    a.pid == b.pid && a.host == b.host && a.started == b.started
}

/// A test hook: pause between finding a stale lock and taking it over, to widen the window two
/// racing take-overs would meet in (`RUNBOOK_FAULT_LOCK_PAUSE=500ms`).
pub(crate) fn fault_pause() {
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

/// What to do about the record found where a lock would go: take it (`Ok(None)`: it is free),
/// take it over (`Ok(Some(..))`: stale, and asked to), or refuse naming the holder.
pub(crate) fn judge(
    environment: &str,
    found: State,
    take_over: Option<&str>,
    torn_where: &str,
) -> Result<Option<(Option<Holder>, String)>, Error> {
    match found {
        State::Free => Ok(None),
        State::Held(current) => match (stale(&current), take_over) {
            (None, _) => Err(Error::Usage(format!(
                "`{environment}` is locked by another deployment: {}\n  help: wait for it, or if it is truly gone, `runbook unlock {environment} --reason \"...\"`",
                describe(&current)
            ))),
            (Some(why), None) => Err(Error::Usage(format!(
                "`{environment}` has a stale lock ({why}): {}\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)",
                describe(&current)
            ))),
            (Some(why), Some(reason)) => {
                fault_pause();
                Ok(Some((Some(current), format!("{reason} (stale: {why})"))))
            }
        },
        State::Torn => {
            let why = format!(
                "the lock file `{torn_where}` is empty or half-written: its writer died before finishing it, so no run holds it"
            );
            match take_over {
                None => Err(Error::Usage(format!(
                    "`{environment}` has a stale lock ({why})\n  help: take it over with `--take-over \"why it is safe\"` (recorded in the journal)"
                ))),
                Some(reason) => {
                    fault_pause();
                    Ok(Some((None, format!("{reason} (stale: {why})"))))
                }
            }
        }
    }
}

/// A held lock; dropping it releases it.
pub struct Lock {
    pub holder: Holder,
    pub took_over: Option<(Option<Holder>, String)>,
    pub followed: Option<Holder>,
    renewer: Option<Renewer>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("holder", &self.holder)
            .finish()
    }
}

/// Take the lock for `environment` in `backend`, or say who holds it.
pub fn acquire(
    backend: &dyn Backend,
    environment: &str,
    lease: Duration,
    reason: &str,
    run_dir: &str,
    take_over: Option<&str>,
) -> Result<Lock, Error> {
    let holder = Holder {
        environment: environment.to_string(),
        user: crate::identity::user(),
        host: crate::identity::host(),
        pid: std::process::id(),
        reason: reason.to_string(),
        started: crate::journal::now_rfc3339(),
        expires: lease_end(lease),
        run_dir: run_dir.to_string(),
        ..Holder::default()
    };
    let got = backend.acquire(&holder, lease, take_over)?;
    let renewer = Renewer::start(got.tenure, holder.clone(), lease);
    Ok(Lock {
        holder,
        took_over: got.took_over,
        followed: got.followed,
        renewer: Some(renewer),
    })
}

enum Msg {
    /// The holder record changed (its run directory, stage, traffic, verdict): write it now.
    Publish,
    Stop,
}

/// How often a live run looks for a control request: well within one monitoring interval, and
/// cheap (a file read, one etcd range request, one kubectl get).
const CONTROL_POLL: Duration = Duration::from_millis(250);

/// The thread that renews a held lock's lease every third of it (and writes the holder record
/// when it changes), until the lock is dropped or found no longer ours.
struct Renewer {
    holder: Arc<Mutex<Holder>>,
    tenure: Arc<Mutex<Box<dyn Tenure>>>,
    lost: LostFlag,
    control: ControlFlag,
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewer {
    fn start(tenure: Box<dyn Tenure>, holder: Holder, lease: Duration) -> Renewer {
        let holder = Arc::new(Mutex::new(holder));
        let tenure = Arc::new(Mutex::new(tenure));
        let (tx, rx) = mpsc::channel::<Msg>();
        let lost = LostFlag::default();
        let control = ControlFlag::default();
        let (h, t, said, asked) = (
            holder.clone(),
            tenure.clone(),
            lost.clone(),
            control.clone(),
        );
        let every = (lease / 3).max(Duration::from_millis(100));
        let thread = std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            let mut wait = every;
            let mut due = Instant::now() + wait;
            loop {
                let left = due.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left.min(CONTROL_POLL)) {
                    Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Ok(Msg::Publish) => {}
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < due => {
                        poll_control(&h, &t, &asked);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => poll_control(&h, &t, &asked),
                }
                let mine = match h.lock() {
                    Ok(m) => m.clone(),
                    Err(_) => return,
                };
                let renewal = match t.lock() {
                    Ok(mut t) => t.renew(&mine),
                    Err(_) => return,
                };
                let renewed_at = Instant::now();
                match renewal {
                    Renewal::Ours => {
                        last_ok = Instant::now();
                        wait = every;
                        said.clear_unreachable();
                    }
                    Renewal::Lost(how) => {
                        said.set(Loss { how, gone: true });
                        return;
                    }
                    Renewal::Unreachable(why) => {
                        // Past one lease without a renewal, the store has let the lock go
                        // (or will, the moment it is reachable again): it is not ours.
                        if last_ok.elapsed() >= lease {
                            said.set(Loss {
                                how: format!(
                                    "the lock store was unreachable for longer than the lease ({}), so the lease has run out: {why}",
                                    crate::ui::format_duration(lease)
                                ),
                                gone: true,
                            });
                            return;
                        }
                        said.set(Loss {
                            how: format!("its lease could not be renewed: {why}"),
                            gone: false,
                        });
                        wait = (every / 2).max(Duration::from_millis(100));
                    }
                }
                due = renewed_at + wait;
            }
        });
        Renewer {
            holder,
            tenure,
            lost,
            control,
            tx,
            thread: Some(thread),
        }
    }
}

/// Read the store's control request: one meant for this run, not seen before, is handed to the
/// run (the flag) and taken out of the store. One for another run (an older one, whose request
/// came too late), or sent before this process took the lock, is left for the next request to
/// replace.
fn poll_control(
    holder: &Arc<Mutex<Holder>>,
    tenure: &Arc<Mutex<Box<dyn Tenure>>>,
    flag: &ControlFlag,
) {
    let Ok(mine) = holder.lock().map(|h| h.clone()) else {
        return;
    };
    let Ok(mut t) = tenure.lock() else {
        return;
    };
    let Some(request) = t.read_control(&mine.environment) else {
        return;
    };
    // Sent before this process took the lock: meant for an earlier process of the run (one
    // that died, now resumed), which never took it.
    let before = match (
        humantime::parse_rfc3339(&request.sent),
        humantime::parse_rfc3339(&mine.started),
    ) {
        (Ok(sent), Ok(started)) => sent < started,
        _ => false,
    };
    if request.run != mine.run_dir || before || flag.seen(&request.id) {
        return;
    }
    t.clear_control(&mine.environment, &request.id);
    flag.put(request);
}

/// How a held lock was lost: `gone` when someone else holds it or nobody does; otherwise the
/// store cannot be reached and the lock may still be ours.
#[derive(Debug, Clone)]
pub struct Loss {
    pub how: String,
    pub gone: bool,
}

/// Whether a held lock was lost, and how: the renewer sets it, the gate reads it before every
/// effect.
#[derive(Debug, Clone, Default)]
pub struct LostFlag(Arc<Mutex<Option<Loss>>>);

impl LostFlag {
    fn set(&self, loss: Loss) {
        if let Ok(mut l) = self.0.lock() {
            // A loss for good stays: an unreachable store later does not soften it.
            if !l.as_ref().is_some_and(|old| old.gone) {
                *l = Some(loss);
            }
        }
    }
    fn clear_unreachable(&self) {
        if let Ok(mut l) = self.0.lock() {
            if l.as_ref().is_some_and(|old| !old.gone) {
                *l = None;
            }
        }
    }
    pub fn get(&self) -> Option<Loss> {
        self.0.lock().ok().and_then(|l| l.clone())
    }
}

/// The run's line to its lock, both ways: what it tells the lock as it goes (its stage,
/// traffic, verdict, and what live control did), written to the store by the renewer at once so
/// `runbook status` on another machine sees it; and the control requests the renewer found for
/// it (`runbook control`).
#[derive(Clone)]
pub struct Progress {
    holder: Arc<Mutex<Holder>>,
    /// The stages the run is in, outermost first.
    stages: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<Msg>,
    control: ControlFlag,
}

impl Progress {
    /// Where the renewer leaves the control requests it finds for this run.
    pub fn control(&self) -> ControlFlag {
        self.control.clone()
    }

    /// Take what the holder record shows from a journal record.
    pub fn note(&self, record: &Record) {
        let Ok(mut h) = self.holder.lock() else {
            return;
        };
        let before = h.clone();
        match record {
            Record::StageStart { .. } | Record::StageEnd { .. } => {
                let Ok(mut stages) = self.stages.lock() else {
                    return;
                };
                if let Record::StageStart { stage } = record {
                    stages.push(stage.clone());
                } else {
                    stages.pop();
                }
                h.stage = stages.last().cloned();
            }
            Record::Traffic { weights, live, .. } => {
                h.traffic = Some(serde_json::json!({ "weights": weights, "live": live }))
            }
            Record::Verdict { verdict, .. } => h.verdict = Some(verdict.clone()),
            Record::Control {
                done, by, reason, ..
            } if !done.starts_with("ignored") => {
                h.control = Some(serde_json::json!({
                    "state": done, "by": by, "reason": reason
                }))
            }
            _ => return,
        }
        if *h != before {
            let _ = self.tx.send(Msg::Publish);
        }
    }
}

impl Lock {
    /// The flag that says this lock was lost while the run held it.
    pub fn lost(&self) -> LostFlag {
        self.renewer
            .as_ref()
            .map(|r| r.lost.clone())
            .unwrap_or_default()
    }

    pub fn progress(&self) -> Option<Progress> {
        self.renewer.as_ref().map(|r| Progress {
            holder: r.holder.clone(),
            stages: Arc::default(),
            tx: r.tx.clone(),
            control: r.control.clone(),
        })
    }

    /// Give the lock back at once (an abort: the process exits next). Safe to call from any
    /// thread, a runtime's included: the store is talked to from a thread of its own.
    pub fn release_now(&self) -> Option<ReleaseNow> {
        let r = self.renewer.as_ref()?;
        let (holder, tenure) = (r.holder.clone(), r.tenure.clone());
        Some(ReleaseNow(Arc::new(move || {
            let (holder, tenure) = (holder.clone(), tenure.clone());
            let (done, wait) = mpsc::channel();
            std::thread::spawn(move || {
                if let (Ok(h), Ok(mut t)) = (holder.lock(), tenure.lock()) {
                    t.release(&h);
                }
                let _ = done.send(());
            });
            let _ = wait.recv_timeout(Duration::from_secs(2));
        })))
    }

    /// Name the run directory once it exists.
    pub fn set_run_dir(&mut self, dir: &std::path::Path) {
        self.holder.run_dir = dir.display().to_string();
        if let Some(r) = &self.renewer {
            if let Ok(mut h) = r.holder.lock() {
                h.run_dir = self.holder.run_dir.clone();
            }
            // Written now, not at the next renewal: whoever is refused is told which run.
            let mine = r.holder.lock().map(|h| h.clone());
            if let (Ok(mine), Ok(mut t)) = (mine, r.tenure.lock()) {
                let _ = t.renew(&mine);
            }
        }
    }
}

/// Releases the lock from a signal handler.
#[derive(Clone)]
pub struct ReleaseNow(Arc<dyn Fn() + Send + Sync>);

impl ReleaseNow {
    pub fn call(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for ReleaseNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReleaseNow")
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(mut r) = self.renewer.take() {
            let _ = r.tx.send(Msg::Stop);
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
            if let (Ok(h), Ok(mut t)) = (r.holder.lock(), r.tenure.lock()) {
                t.release(&h);
            }
        }
    }
}

/// Standard base64 (the etcd gateway's encoding of keys and values).
pub(crate) fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "runbook/locks/production",
        ] {
            assert_eq!(unb64(&b64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64(b"fo"), "Zm8=");
    }

    #[test]
    fn the_holder_record_shows_the_stage_traffic_verdict_and_control_from_the_records() {
        use serde_json::json;
        let holder = Holder {
            environment: "production".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            ..Holder::default()
        };
        let (tx, rx) = mpsc::channel();
        let p = Progress {
            holder: Arc::new(Mutex::new(holder)),
            stages: Arc::default(),
            tx,
            control: ControlFlag::default(),
        };
        let shown = || p.holder.lock().unwrap().clone();
        let stage = |name: &str| Record::StageStart { stage: name.into() };
        p.note(&stage("deploy"));
        p.note(&stage("canary"));
        assert_eq!(shown().stage.as_deref(), Some("canary"));
        p.note(&Record::StageEnd {
            stage: "canary".into(),
            ok: true,
            ms: 1,
            error: None,
        });
        assert_eq!(shown().stage.as_deref(), Some("deploy"));
        let mut weights = serde_json::Map::new();
        weights.insert("v2".into(), json!(10));
        p.note(&Record::Traffic {
            live: Some("v1".into()),
            colour: None,
            weights,
            dry_run: false,
            stage: None,
        });
        assert_eq!(
            shown().traffic,
            Some(json!({ "weights": { "v2": 10 }, "live": "v1" }))
        );
        p.note(&Record::Verdict {
            verdict: json!({ "verdict": "success" }),
            stage: None,
        });
        assert_eq!(shown().verdict, Some(json!({ "verdict": "success" })));
        let control = |done: &str| Record::Control {
            action: "pause".into(),
            by: "a@b".into(),
            reason: "r".into(),
            sent: String::new(),
            done: done.into(),
        };
        p.note(&control("paused"));
        p.note(&control("ignored: already paused"));
        assert_eq!(
            shown().control,
            Some(json!({ "state": "paused", "by": "a@b", "reason": "r" }))
        );
        // Each change published once; a record that changes nothing is not.
        let before = rx.try_iter().count();
        assert_eq!(before, 6);
        p.note(&Record::Log {
            message: "m".into(),
            stage: None,
        });
        p.note(&stage("deploy"));
        p.note(&Record::StageEnd {
            stage: "deploy".into(),
            ok: true,
            ms: 1,
            error: None,
        });
        assert_eq!(rx.try_iter().count(), 0);
    }
}
