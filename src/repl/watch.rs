//! SIGTERM and SIGHUP: who may touch the session's state while the main thread waits for input,
//! and the watcher that writes an open incident as abandoned and exits.

use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU8};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::incident::{Closed, Incident};
use crate::journal::Record;
use crate::session::Session;

use super::acted;

/// Who may touch the session's state: the main thread, except while it waits for input; then
/// a SIGTERM or SIGHUP (a dropped SSH session) is handled by the watcher, which writes the open
/// incident as abandoned and ends the process.
#[derive(Default)]
pub(super) struct Watch {
    pub(super) owner: AtomicU8,
    /// The signal that ends the session (0: none yet).
    pub(super) ending: AtomicI32,
}

const BUSY: u8 = 0;
const WAITING: u8 = 1;
const TAKEN: u8 = 2;

impl Watch {
    /// Run `read` (a wait for input) with the watcher allowed to take over; `None` when a
    /// signal ended the session and the main thread must wind it down.
    pub(super) fn waiting<T>(&self, read: impl FnOnce() -> T) -> Option<T> {
        if self.ending.load(SeqCst) != 0 {
            return None;
        }
        self.owner.store(WAITING, SeqCst);
        if self.ending.load(SeqCst) != 0 {
            self.reclaim();
            return None;
        }
        let r = read();
        self.reclaim();
        Some(r)
    }

    pub(super) fn reclaim(&self) {
        if self
            .owner
            .compare_exchange(WAITING, BUSY, SeqCst, SeqCst)
            .is_err()
        {
            // The watcher is writing the report and ending the process.
            loop {
                std::thread::park();
            }
        }
    }

    pub(super) fn why(&self) -> Option<&'static str> {
        match self.ending.load(SeqCst) {
            0 => None,
            libc::SIGHUP => Some("SIGHUP"),
            _ => Some("SIGTERM"),
        }
    }
}

/// SIGTERM and SIGHUP end the session. While the main thread waits for input the watcher
/// writes the open incident as abandoned itself (nothing else would wake the line editor);
/// otherwise the main thread does once the current line is over.
pub(super) fn spawn_watcher(
    session: &Session,
    watch: Arc<Watch>,
    incident: Arc<Mutex<Option<Incident>>>,
    tty: bool,
) {
    let journal = session.effects.borrow().journal_path().to_path_buf();
    let redactor = session.effects.borrow().redactor().clone();
    // The line editor puts the terminal in raw mode; leaving from under it puts it back.
    let termios = tty
        .then(|| {
            // SAFETY: tcgetattr fills the struct it is given; zeroed is a valid termios.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            (unsafe { libc::tcgetattr(0, &mut t) } == 0).then_some(t)
        })
        .flatten();
    session.rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            let sig = tokio::select! {
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            };
            watch.ending.store(sig, SeqCst);
            if watch
                .owner
                .compare_exchange(WAITING, TAKEN, SeqCst, SeqCst)
                .is_ok()
            {
                abandon_and_exit(
                    watch.why().unwrap_or("SIGTERM"),
                    &incident,
                    &journal,
                    &redactor,
                    termios,
                );
            }
        }
    });
}

fn abandon_and_exit(
    why: &str,
    incident: &Mutex<Option<Incident>>,
    journal: &Path,
    redactor: &crate::secrets::Redactor,
    termios: Option<libc::termios>,
) -> ! {
    use std::io::Write;
    if let Some(t) = termios {
        // SAFETY: t came from tcgetattr on the same descriptor.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
    let open = incident.lock().unwrap_or_else(|e| e.into_inner()).take();
    let code = crate::error::exit::INTERRUPTED;
    let mut j = crate::journal::Journal::append_to(journal, redactor.clone()).ok();
    if let Some(i) = open {
        let closed = Closed::Abandoned(format!("the session ended: {why}"));
        let md = redactor.redact(&i.render(journal, &closed));
        let path = i.report_path();
        let written = crate::incident::write_new(&path, &md);
        if let Some(j) = j.as_mut() {
            let _ = j.append(&Record::IncidentAbandon(crate::record::IncidentClose {
                id: i.id.clone(),
                title: i.title.clone(),
                report: path.display().to_string(),
                why: Some(format!("the session ended: {why}")),
                error: Some(json!(written.as_ref().err())),
            }));
        }
        // After a hangup there may be no terminal to tell: the report is written first.
        let _ = writeln!(
            std::io::stderr(),
            "\n{why}: the incident `{}` was still open: {}",
            i.title,
            match &written {
                Ok(()) => format!("written as abandoned to {}", path.display()),
                Err(e) => format!("its report could not be written: {e}"),
            }
        );
    }
    if let Some(j) = j.as_mut() {
        let _ = j.append(&Record::RunEnd {
            outcome: "interrupted".into(),
            exit_code: code,
            error: None,
            signal: Some(why.to_string()),
        });
    }
    drop(j);
    if !acted(journal) {
        if let Some(dir) = journal.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    std::process::exit(code)
}
