//! Ctrl-C and SIGTERM. The first stops the running command (its whole process group) and lets the
//! run end in order; the second aborts at once with exit 130. The journal is flushed per record,
//! so it is complete up to the moment of the abort either way.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

/// A wait ended because of Ctrl-C or SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

#[derive(Debug, Default)]
pub struct Interrupt {
    count: AtomicUsize,
    /// Interrupts already dealt with: only a newer one stops what runs now.
    handled: AtomicUsize,
    /// Interrupts forgiven (the REPL, after each line): only newer ones count toward aborting.
    forgiven: AtomicUsize,
    /// Process group of the command running now (0: none).
    child_group: AtomicI32,
    /// Gives back the environment lock this run holds: an abort must not leave it behind.
    lock: std::sync::Mutex<Option<crate::lock::ReleaseNow>>,
    /// Set when that lock is lost while the run holds it (the gate then acts no more).
    lock_lost: std::sync::Mutex<Option<(String, crate::lock::LostFlag)>>,
    /// The run chose what to do about the lost lock (rollback or continue): the gate acts again.
    lock_loss_settled: std::sync::atomic::AtomicBool,
    /// Tells the lock the run's stage, traffic and verdict, for `runbook status`.
    lock_progress: std::sync::Mutex<Option<crate::lock::Progress>>,
    /// Live-control requests the lock's renewer found for this run (`runbook control`).
    control: std::sync::Mutex<Option<crate::lock::ControlFlag>>,
    /// Set once a `promote` was taken: who and why (the remaining windows are skipped).
    promoted: std::sync::Mutex<Option<String>>,
    /// How long the run has held for `pause`, in all (an analysis window's schedule moves on
    /// by it, rather than catching up with measurements back to back).
    paused_ms: std::sync::atomic::AtomicU64,
    /// Between `rollback.start` and `rollback.end`: live control waits (a rollback is not paused
    /// or aborted halfway).
    rolling_back: std::sync::atomic::AtomicBool,
}

impl Interrupt {
    /// Listen for SIGINT and SIGTERM on the runtime.
    pub fn install(rt: &tokio::runtime::Runtime) -> Arc<Interrupt> {
        // A file grown past its size limit (`ulimit -f`) is a write error the journal deals with
        // (the record is cut back off, the run stops saying why), not a kill with nothing said.
        // SAFETY: setting a signal's disposition to ignore.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let me = Arc::new(Interrupt::default());
        let it = me.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => it.fire(),
                    _ = term.recv() => it.fire(),
                }
            }
        });
        me
    }

    fn fire(&self) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        // Interrupts the REPL forgave do not count toward "twice: abort now".
        let n = n.saturating_sub(self.forgiven.load(Ordering::SeqCst));
        let group = self.child_group.load(Ordering::SeqCst);
        if group > 0 {
            kill_group(group, libc::SIGTERM);
        }
        if n >= 2 {
            if group > 0 {
                kill_group(group, libc::SIGKILL);
            }
            if let Ok(Some(release)) = self.lock.lock().map(|l| l.clone()) {
                release.call();
            }
            eprintln!("\ninterrupted twice: aborting now (the journal is complete up to here)");
            std::process::exit(crate::error::exit::INTERRUPTED);
        }
    }

    pub fn is_set(&self) -> bool {
        self.count.load(Ordering::SeqCst) > self.handled.load(Ordering::SeqCst)
    }

    /// The run has stopped for the interrupt and is now asking what to do: a prompt may read
    /// again, and a second interrupt still aborts at once.
    pub fn acknowledge(&self) {
        self.handled
            .store(self.count.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// The REPL dealt with the interrupt and goes on: the next one is a first one again.
    pub fn forgive(&self) {
        let n = self.count.load(Ordering::SeqCst);
        self.handled.store(n, Ordering::SeqCst);
        self.forgiven.store(n, Ordering::SeqCst);
    }

    pub fn hold_lock(&self, release: Option<crate::lock::ReleaseNow>) {
        if let Ok(mut l) = self.lock.lock() {
            *l = release;
        }
    }

    /// Watch the lock of `environment` for loss, and tell it the run's progress.
    pub fn watch_lock(
        &self,
        environment: &str,
        flag: crate::lock::LostFlag,
        progress: Option<crate::lock::Progress>,
    ) {
        if let Ok(mut l) = self.lock_lost.lock() {
            *l = Some((environment.to_string(), flag));
        }
        if let Ok(mut c) = self.control.lock() {
            *c = progress.as_ref().map(|p| p.control());
        }
        if let Ok(mut p) = self.lock_progress.lock() {
            *p = progress;
        }
        self.lock_loss_settled.store(false, Ordering::SeqCst);
    }

    /// (environment, how) when the lock this run holds was lost (or cannot be renewed), and the
    /// run has not yet chosen what to do about it.
    pub fn lock_lost(&self) -> Option<(String, crate::lock::Loss)> {
        if self.lock_loss_settled.load(Ordering::SeqCst) {
            return None;
        }
        let l = self.lock_lost.lock().ok()?;
        let (env, flag) = l.as_ref()?;
        flag.get().map(|how| (env.clone(), how))
    }

    /// The run chose to go on (or roll back) without its lock: the gate acts again.
    pub fn settle_lock_loss(&self) {
        self.lock_loss_settled.store(true, Ordering::SeqCst);
    }

    /// A journal record, for the lock's holder record (stage, traffic, verdict).
    pub fn note_record(&self, record: &crate::record::Record) {
        use crate::record::Record;
        match record {
            Record::RollbackStart { .. } => self.rolling_back.store(true, Ordering::SeqCst),
            Record::RollbackEnd { .. } => self.rolling_back.store(false, Ordering::SeqCst),
            _ => {}
        }
        if let Ok(Some(p)) = self.lock_progress.lock().map(|p| p.clone()) {
            p.note(record);
        }
    }

    pub fn rolling_back(&self) -> bool {
        self.rolling_back.load(Ordering::SeqCst)
    }

    /// Whether a live-control request waits (checked every few milliseconds while waiting).
    pub fn control_pending(&self) -> bool {
        self.control
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.pending()))
            .unwrap_or(false)
    }

    /// The oldest live-control request waiting.
    pub fn take_control(&self) -> Option<crate::lock::ControlRequest> {
        self.control.lock().ok()?.as_ref()?.take()
    }

    pub fn set_promoted(&self, by: String) {
        if let Ok(mut p) = self.promoted.lock() {
            *p = Some(by);
        }
    }

    /// Who promoted the run, and why ("by who: reason"), once it was.
    pub fn promoted(&self) -> Option<String> {
        self.promoted.lock().ok()?.clone()
    }

    pub fn add_paused(&self, d: std::time::Duration) {
        self.paused_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// How long the run has been held by `pause`, in all.
    pub fn paused_total(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.paused_ms.load(Ordering::SeqCst))
    }

    pub fn set_child_group(&self, group: i32) {
        self.child_group.store(group, Ordering::SeqCst);
    }

    pub fn clear_child_group(&self) {
        self.child_group.store(0, Ordering::SeqCst);
    }
}

pub fn kill_group(group: i32, signal: i32) {
    if group > 0 {
        // SAFETY: killpg has no memory-safety preconditions; ESRCH (already gone) is fine.
        unsafe {
            libc::killpg(group, signal);
        }
    }
}
