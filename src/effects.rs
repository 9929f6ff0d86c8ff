//! The gate every side effect passes through.
//!
//! For each effect: a number and a name, an intent record in the journal before anything happens,
//! a planned result instead of the act in dry-run, redaction of everything written, and a result
//! record after. Dry-run, the audit log, the artifacts and the post-mortem timeline are this one
//! mechanism read different ways.

use crate::clock::Instant;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::error::Error;
use crate::journal::{Entry, Journal, Record};
use crate::process::Started;
use crate::secrets::Redactor;

pub struct Effects {
    journal: Journal,
    log: Option<File>,
    redactor: Redactor,
    dry_run: bool,
    next_effect: u64,
    /// Set when the journal could not be written: the run must stop rather than act unrecorded.
    broken: Option<String>,
    /// Resuming: completed effects to hand back, in order.
    replay: std::collections::VecDeque<Recorded>,
    /// Resuming: the effect that was under way when the earlier process died.
    in_flight: Option<InFlight>,
    /// Whether an effect that changes the world was carried out (or replayed): from then on,
    /// "nothing changed" is no longer true of the run.
    acted: bool,
    changed: bool,
}

/// Why an act failed, with what it found (a failed command's exit code and output), so a
/// resumed run can return the same thing without acting again.
#[derive(Debug, Clone)]
pub struct Failure(pub String, pub Value);

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure(message, Value::Null)
    }
}

/// An effect completed in an earlier process, as its journal recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub kind: String,
    pub name: String,
    pub outcome: Result<Value, Failure>,
    /// It was planned (a dry-run), not acted on.
    pub planned: bool,
}

/// What a journal says a resume must replay: the completed effects in order, the one in flight
/// (an intent with no result), and the number the next effect takes. Built in one pass.
#[derive(Debug, Default)]
pub struct ReplayIndex {
    pub recorded: Vec<Recorded>,
    pub in_flight: Option<InFlight>,
    pub next_effect: u64,
}

/// The process group an `effect.child` record names, and the start window of its leader, with
/// the effect that started it.
fn child(record: &Record) -> Option<(u64, (i32, Option<Started>))> {
    match record {
        Record::EffectChild {
            effect,
            group,
            start,
            start_by,
        } => Some((*effect, (*group, Started::recorded(*start, *start_by)))),
        _ => None,
    }
}

/// The process group `effect` started last (and its leader's start window), as `entries` say.
pub fn child_of(entries: &[Entry], effect: u64) -> Option<(i32, Option<Started>)> {
    entries
        .iter()
        .rev()
        .find_map(|e| child(&e.record).filter(|(n, _)| *n == effect))
        .map(|(_, c)| c)
}

impl ReplayIndex {
    pub fn build(entries: &[Entry]) -> ReplayIndex {
        use std::collections::HashMap;
        let mut results: HashMap<u64, &crate::record::EffectResult> = HashMap::new();
        let mut children: HashMap<u64, (i32, Option<Started>)> = HashMap::new();
        // An effect a resume found in flight is answered under a new number (rerun, skip or
        // rollback, recorded by `resume.in_flight`): its old intent stays without a result, but
        // is settled, and a resume of that resume must not meet it again. The choice settles
        // the oldest intent still open when it is recorded.
        let mut open: std::collections::VecDeque<u64> = Default::default();
        let mut settled: std::collections::HashSet<u64> = Default::default();
        for e in entries {
            match &e.record {
                Record::EffectIntent { effect, .. } => open.push_back(*effect),
                Record::ResumeInFlight { .. } => settled.extend(open.pop_front()),
                // The first result of an effect is its result.
                Record::EffectResult(r) => {
                    open.retain(|k| *k != r.effect);
                    results.entry(r.effect).or_insert(r);
                }
                // The last child recorded is the one that ran last.
                r => {
                    if let Some((effect, started)) = child(r) {
                        children.insert(effect, started);
                    }
                }
            }
        }
        let mut index = ReplayIndex::default();
        for e in entries {
            let Record::EffectIntent {
                effect, kind, name, ..
            } = &e.record
            else {
                continue;
            };
            index.next_effect = index.next_effect.max(*effect);
            if settled.contains(effect) {
                continue;
            }
            match results.get(effect) {
                Some(r) => {
                    let outcome = if r.ok {
                        Ok(r.result.clone())
                    } else {
                        Err(Failure(
                            r.error.clone().unwrap_or_default(),
                            r.result.clone(),
                        ))
                    };
                    index.recorded.push(Recorded {
                        kind: kind.clone(),
                        name: name.clone(),
                        outcome,
                        planned: r.dry_run == Some(true),
                    });
                }
                None => {
                    index.in_flight = Some(InFlight {
                        kind: kind.clone(),
                        name: name.clone(),
                        started: e.ts.clone(),
                        child: children.get(effect).copied(),
                    })
                }
            }
        }
        index
    }
}

/// An effect whose intent is recorded and whose result is not yet.
#[derive(Debug)]
pub struct Pending {
    pub effect: u64,
    kind: String,
    name: String,
    started: Instant,
    /// Resuming: the result this effect had, returned instead of acting (and whether it was
    /// only planned).
    pub replayed: Option<(Result<Value, Failure>, bool)>,
    /// Resuming: this is the effect that was under way when the earlier process died.
    pub in_flight: bool,
    /// Resuming: the process group that effect started (and its leader's start time).
    pub in_flight_child: Option<(i32, Option<Started>)>,
    /// Whether it changes anything outside (see `changes`).
    changes: bool,
}

/// Whether an effect changes anything outside the run. Reads do not: a measurement, a probe, a
/// health check, a scrape, an HTTP GET or HEAD; nor does a notification or a prompt's answer.
/// A command (`sh`) may do anything, so it counts as a change.
pub fn changes(kind: &str, intent: &Value) -> bool {
    let read = matches!(
        kind,
        "measure" | "probe" | "samples" | "check" | "check_all" | "scrape" | "notify"
    ) || kind.starts_with("prompt.")
        || (kind == "http" && matches!(intent["method"].as_str(), Some("GET" | "HEAD")));
    !read
}

/// The effect an earlier process announced and never finished.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub kind: String,
    pub name: String,
    pub started: String,
    /// The process group it started, if it was a command (and its leader's start time).
    pub child: Option<(i32, Option<Started>)>,
}

/// Why the journal could not be written, in words.
fn cause(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => source.to_string(),
        other => other.summary(),
    }
}

impl Effects {
    pub fn new(
        journal: Journal,
        log_path: Option<&Path>,
        redactor: Redactor,
        dry_run: bool,
    ) -> Result<Effects, Error> {
        let log = match log_path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::io("create log", p, e))?,
            ),
            None => None,
        };
        Ok(Effects {
            journal,
            log,
            redactor,
            dry_run,
            next_effect: 0,
            broken: None,
            replay: Default::default(),
            in_flight: None,
            acted: false,
            changed: false,
        })
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Whether anything that changes the world was done (not planned, not only a prompt's answer).
    pub fn acted(&self) -> bool {
        self.acted
    }

    /// Whether anything was done that changes the world outside: not a read, a notification or
    /// an answer (`changes`). A missing answer before that is exit 2, "nothing changed".
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The number of the effect begun last.
    pub fn current_effect(&self) -> u64 {
        self.next_effect
    }

    /// Resume: hand these back, in order, instead of acting; effects are numbered on from them.
    pub fn start_replay(
        &mut self,
        recorded: Vec<Recorded>,
        next_effect: u64,
        in_flight: Option<InFlight>,
    ) {
        self.replay = recorded.into();
        self.next_effect = next_effect;
        self.in_flight = in_flight;
    }

    /// Still handing back recorded effects: records already in the journal are not written again.
    pub fn replaying(&self) -> bool {
        !self.replay.is_empty()
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// A record that is not an effect (stage boundaries, registrations, the run's start and end).
    pub fn record(&mut self, record: &Record) -> Result<u64, Error> {
        if self.replaying() {
            return Ok(0);
        }
        self.journal.append(record).inspect_err(|e| {
            self.broken = Some(cause(e));
        })
    }

    /// A line of the human log (deployment-log.txt), time-stamped and redacted.
    pub fn log(&mut self, line: &str) {
        if self.replaying() {
            return;
        }
        if let Some(f) = &mut self.log {
            let ts = crate::journal::now_rfc3339();
            let clock = ts.get(11..19).unwrap_or(&ts);
            let line = self.redactor.redact(line);
            // One write per line (`writeln!` on a file makes one per piece).
            let _ = f.write_all(format!("[{clock}] {line}\n").as_bytes());
        }
    }

    /// Record the intent. Nothing has happened yet when this returns.
    pub fn begin(&mut self, kind: &str, name: &str, intent: Value) -> Result<Pending, Error> {
        if let Some(why) = &self.broken {
            return Err(Error::Journal {
                file: self.journal.path().display().to_string(),
                message: format!(
                    "cannot record {kind} `{}`: the journal could not be written earlier ({why}), so it was not carried out: the run stops rather than act unrecorded",
                    self.redactor.redact(name)
                ),
            });
        }
        // The journal holds names redacted: compare them so.
        let shown = self.redactor.redact(name);
        if let Some(rec) = self.replay.pop_front() {
            if rec.kind != kind || rec.name != shown {
                return Err(Error::Journal {
                    file: self.journal.path().display().to_string(),
                    message: format!(
                        "the script no longer does what its journal recorded: the journal's next effect is {} `{}`, the script now does {kind} `{name}`; resume cannot replay a changed script",
                        rec.kind, rec.name
                    ),
                });
            }
            if !kind.starts_with("prompt.") && !rec.planned {
                self.acted = true;
            }
            if changes(kind, &intent) {
                self.changed = true;
            }
            return Ok(Pending {
                effect: 0,
                kind: kind.to_string(),
                name: name.to_string(),
                started: Instant::now(),
                replayed: Some((rec.outcome, rec.planned)),
                in_flight: false,
                in_flight_child: None,
                changes: false,
            });
        }
        let mut in_flight_child = None;
        let in_flight = match self.in_flight.take() {
            Some(f) if f.kind == kind && f.name == shown => {
                in_flight_child = f.child;
                true
            }
            Some(f) => {
                return Err(Error::Journal {
                    file: self.journal.path().display().to_string(),
                    message: format!(
                        "the script no longer does what its journal recorded: the effect under way when the run died was {} `{}`, the script now does {kind} `{name}`",
                        f.kind, f.name
                    ),
                })
            }
            None => false,
        };
        self.next_effect += 1;
        let effect = self.next_effect;
        let changes = changes(kind, &intent);
        self.journal
            .append(&Record::EffectIntent {
                effect,
                kind: kind.to_string(),
                name: name.to_string(),
                intent,
                dry_run: self.dry_run,
            })
            .map_err(|e| {
                let why = cause(&e);
                self.broken = Some(why.clone());
                Error::Journal {
                    file: self.journal.path().display().to_string(),
                    message: format!(
                        "cannot record {kind} `{shown}` ({why}), so it was not carried out: the run stops rather than act unrecorded"
                    ),
                }
            })?;
        Ok(Pending {
            effect,
            kind: kind.to_string(),
            name: name.to_string(),
            started: Instant::now(),
            replayed: None,
            in_flight,
            in_flight_child,
            changes,
        })
    }

    /// Record the result of an effect that was acted on (or planned, in dry-run).
    pub fn finish(&mut self, p: Pending, outcome: &Result<Value, Failure>) {
        if p.replayed.is_some() {
            return;
        }
        if !self.dry_run && !p.kind.starts_with("prompt.") {
            self.acted = true;
        }
        if !self.dry_run && p.changes {
            self.changed = true;
        }
        let ms = p.started.elapsed().as_millis() as u64;
        let (ok, result, error) = match outcome {
            Ok(v) => (true, v.clone(), None),
            Err(Failure(e, data)) => (false, data.clone(), Some(e.clone())),
        };
        let _ = self.record(&Record::EffectResult(crate::record::EffectResult {
            effect: p.effect,
            kind: p.kind,
            name: p.name,
            ok,
            ms: Some(ms),
            result,
            error,
            dry_run: Some(self.dry_run),
        }));
    }
}
