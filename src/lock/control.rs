//! Live control (`runbook control ENV pause|resume|abort|promote`): a request left in the lock
//! backend beside the environment's lock, for the run that holds it. The run is the only writer
//! of its journal, so it is not acted upon from outside: it reads the request at its next safe
//! point (before an effect, and within a fraction of a second during a sleep or an analysis
//! window), journals it with who sent it, and acts on it itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pause,
    Resume,
    Abort,
    Promote,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::Promote => "promote",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "abort" => Some(Action::Abort),
            "promote" => Some(Action::Promote),
            _ => None,
        }
    }
}

/// One request, as the store keeps it (JSON, written whole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// Unique per request: the run takes each one once.
    pub id: String,
    pub environment: String,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
    /// `user@host`
    pub by: String,
    /// When it was sent (RFC 3339).
    pub sent: String,
    /// The run it is for (the holder's run directory): a request left for an older run is not
    /// taken by the next one.
    pub run: String,
}

impl ControlRequest {
    pub fn new(environment: &str, action: Action, reason: &str, run: &str) -> ControlRequest {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        ControlRequest {
            id: format!("{nanos:x}-{}", std::process::id()),
            environment: environment.to_string(),
            action,
            reason: reason.to_string(),
            by: format!("{}@{}", crate::identity::user(), crate::identity::host()),
            sent: crate::journal::now_rfc3339(),
            run: run.to_string(),
        }
    }

    /// "by who: reason", or "by who" without one.
    pub fn by_whom(&self) -> String {
        if self.reason.trim().is_empty() {
            format!("by {}", self.by)
        } else {
            format!("by {}: {}", self.by, self.reason)
        }
    }
}

/// The requests found for a run and not yet acted on: the lock's renewer puts them, the run's
/// safe points take them, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct ControlFlag(Arc<Mutex<Pending>>);

#[derive(Debug, Default)]
struct Pending {
    queue: Vec<ControlRequest>,
    seen: HashSet<String>,
}

impl ControlFlag {
    pub(crate) fn put(&self, request: ControlRequest) {
        if let Ok(mut p) = self.0.lock() {
            if p.seen.insert(request.id.clone()) {
                p.queue.push(request);
            }
        }
    }

    pub(crate) fn seen(&self, id: &str) -> bool {
        self.0.lock().map(|p| p.seen.contains(id)).unwrap_or(true)
    }

    /// Whether a request waits (cheap: checked every few milliseconds while sleeping).
    pub fn pending(&self) -> bool {
        self.0.lock().map(|p| !p.queue.is_empty()).unwrap_or(false)
    }

    /// The oldest request waiting.
    pub fn take(&self) -> Option<ControlRequest> {
        let mut p = self.0.lock().ok()?;
        (!p.queue.is_empty()).then(|| p.queue.remove(0))
    }
}

/// `runbook control ENV ACTION [--reason R]`: leave the request for the run that holds the
/// environment's lock. A request to no live run is refused (exit 2), pointing to what undoes a
/// run that is gone.
pub fn send(
    common: &crate::options::Common,
    ui: &crate::ui::Ui,
    environment: &str,
    action: &str,
    reason: &str,
    deployments_dir: Option<&std::path::Path>,
) -> Result<i32, crate::error::Error> {
    let Some(action) = Action::parse(action) else {
        return Err(crate::error::Error::Usage(format!(
            "`runbook control`: no action `{action}` (pause, resume, abort or promote)"
        )));
    };
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let root = crate::options::deployments_root(deployments_dir, &loaded);
    let rt = super::status::runtime()?;
    let backend = super::open(&loaded.config, &root, rt.handle().clone())?;
    let request = to_live_run(backend.as_ref(), environment, action, reason)?;
    let left = backend.request_control(&request)?;
    crate::outln!(
        "{} asked the run of `{environment}` to {} ({}; run {}); it acts at its next safe point and journals it",
        ui.green("ok:"),
        action.as_str(),
        request.by_whom(),
        request.run,
    );
    crate::ui::Ui::verbose(ui, &format!("  left in {left}"));
    Ok(0)
}

/// The request for the live run holding `environment`, or why there is none (exit 2).
pub fn to_live_run(
    backend: &dyn super::Backend,
    environment: &str,
    action: Action,
    reason: &str,
) -> Result<ControlRequest, crate::error::Error> {
    let not_alive = |why: String| {
        crate::error::Error::Usage(format!(
            "`runbook control {environment} {}`: no live run holds `{environment}` ({why}), so there is nobody to ask\n  help: to undo a run that ended or died, `runbook rollback` (or `runbook repl --last`, then `rollback()`)",
            action.as_str()
        ))
    };
    match backend.state(environment)? {
        super::State::Held(h) => match super::stale(&h) {
            None => Ok(ControlRequest::new(environment, action, reason, &h.run_dir)),
            Some(why) => Err(not_alive(format!(
                "its lock is stale: {why}: {}",
                super::describe(&h)
            ))),
        },
        super::State::Free => Err(not_alive(format!(
            "nothing is locked in {}",
            backend.store(environment)
        ))),
        super::State::Torn => Err(not_alive(format!(
            "the lock in {} is empty or half-written",
            backend.store(environment)
        ))),
    }
}
