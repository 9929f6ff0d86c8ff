//! The state one run shares among its primitives: config, the gate, answers, the undo stack,
//! the interrupt flag and the async runtime. Runbooks and the REPL both run on a `Session`.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, Position};
use serde_json::Value;

use crate::answers::Answers;
use crate::config::Loaded;
use crate::effects::{Effects, Failure, Pending};
use crate::error::Error;
use crate::journal::Record;
use crate::signals::{Interrupt, Interrupted};
use crate::ui::Ui;
use crate::undo::Undo;

/// Why a script was stopped from inside a primitive (these are not catchable by `try`).
#[derive(Debug)]
pub enum Stop {
    Declined {
        gate: String,
        by: String,
    },
    RolledBack {
        ok: bool,
        reason: String,
        /// The run itself broke (its monitoring could not measure), not a verdict on the release.
        broken: bool,
    },
    Interrupted,
    /// The run passed `limits.wall_clock`.
    TimeLimit(Duration),
    /// Resuming: a person (or the config) chose to roll back rather than redo the effect the
    /// earlier process died in.
    ResumeRollback(String),
    Error(Error),
}

pub struct Session {
    pub ui: Ui,
    pub config: Loaded,
    pub rt: tokio::runtime::Handle,
    pub interrupt: Arc<Interrupt>,
    pub effects: RefCell<Effects>,
    pub answers: RefCell<Answers>,
    pub undo: RefCell<Vec<Undo>>,
    pub stop: RefCell<Option<Stop>>,
    pub terminal: Terminal,
    pub feature: String,
    pub script: PathBuf,
    pub run_dir: RefCell<Option<PathBuf>>,
    /// Where this run's deployments are (`--deployments-dir`), once the run has started.
    pub deployments_root: RefCell<Option<PathBuf>>,
    pub stages: RefCell<Vec<String>>,
    pub strategy: RefCell<Option<String>>,
    next_undo: Cell<u64>,
    /// Lines said so far, and where the last monitor block ended: it is redrawn in place only
    /// when nothing was printed after it.
    pub lines_said: Cell<u64>,
    pub dashboard_end: Cell<Option<(u64, usize)>>,
    /// When the run must end (`limits.wall_clock`), and the limit itself.
    pub deadline: Cell<Option<(crate::clock::Instant, Duration)>>,
    http: RefCell<Option<reqwest::Client>>,
    plain: RefCell<Option<crate::net::Client>>,
    /// A simulated run (`runbook test`): the world that answers its effects.
    pub world: RefCell<Option<crate::scenario::World>>,
    /// What stopped a simulated run that the world could not answer.
    pub world_miss: RefCell<Option<String>>,
    /// A rehearsal of a run with a person at the terminal: `interactive()` is true, and the
    /// scenario's answers stand for the person.
    pub attended: Cell<bool>,
}

pub type Shared = Rc<Session>;

pub struct SessionParts {
    pub ui: Ui,
    pub config: Loaded,
    pub rt: tokio::runtime::Handle,
    pub interrupt: Arc<Interrupt>,
    pub effects: Effects,
    pub answers: Answers,
    pub feature: String,
    pub script: PathBuf,
}

impl Session {
    pub fn new(p: SessionParts) -> Shared {
        Rc::new(Session {
            ui: p.ui,
            config: p.config,
            rt: p.rt,
            interrupt: p.interrupt,
            effects: RefCell::new(p.effects),
            answers: RefCell::new(p.answers),
            undo: RefCell::new(Vec::new()),
            stop: RefCell::new(None),
            terminal: Terminal::new(),
            feature: p.feature,
            script: p.script,
            run_dir: RefCell::new(None),
            deployments_root: RefCell::new(None),
            stages: RefCell::new(Vec::new()),
            strategy: RefCell::new(None),
            next_undo: Cell::new(1),
            lines_said: Cell::new(0),
            dashboard_end: Cell::new(None),
            deadline: Cell::new(None),
            http: RefCell::new(None),
            plain: RefCell::new(None),
            world: RefCell::new(None),
            world_miss: RefCell::new(None),
            attended: Cell::new(false),
        })
    }

    pub fn dry_run(&self) -> bool {
        self.effects.borrow().dry_run()
    }

    /// Whether the run is simulated: its effects are answered by a scenario's world.
    pub fn simulated(&self) -> bool {
        self.world.borrow().is_some()
    }

    pub fn redact(&self, text: &str) -> String {
        self.effects.borrow().redactor().redact(text)
    }

    /// Show a line (redacted) and put it in the human log.
    pub fn say(&self, text: &str) {
        if self.effects.borrow().replaying() {
            return;
        }
        self.lines_said.set(self.lines_said.get() + 1);
        let text = self.redact(text);
        self.ui.say(&text);
        self.effects.borrow_mut().log(&text);
    }

    /// Like `say`, with a style applied on the terminal only.
    pub fn say_styled(&self, text: &str, style: impl Fn(&Ui, &str) -> String) {
        if self.effects.borrow().replaying() {
            return;
        }
        self.lines_said.set(self.lines_said.get() + 1);
        let text = self.redact(text);
        self.ui.say(&style(&self.ui, &text));
        self.effects.borrow_mut().log(&text);
    }

    /// Shown even with -q.
    pub fn shout(&self, text: &str) {
        self.lines_said.set(self.lines_said.get() + 1);
        let text = self.redact(text);
        self.ui.shout(&text);
        self.effects.borrow_mut().log(&text);
    }

    pub fn warn(&self, text: &str) {
        let text = self.redact(text);
        self.ui.warn(&text);
        self.effects.borrow_mut().log(&format!("warning: {text}"));
    }

    pub fn record(&self, record: Record) {
        // The lock's holder record shows the run's stage, traffic and verdict to other machines.
        self.interrupt.note_record(&record);
        let _ = self.effects.borrow_mut().record(&record);
    }

    pub fn current_stage(&self) -> Option<String> {
        self.stages.borrow().last().cloned()
    }

    /// Where this run's deployments are: as the command was told (`--deployments-dir`), else
    /// the config's `deployments_dir`.
    pub fn deployments_root(&self) -> PathBuf {
        self.deployments_root
            .borrow()
            .clone()
            .unwrap_or_else(|| crate::options::deployments_root(None, &self.config))
    }

    /// Before an effect: a run whose environment lock was lost does not act blind (another run
    /// may own it now), and a live-control request (`runbook control`) is taken here. The gate
    /// passes it first; a primitive that shows its effect before the gate (`sh`'s `$ command`)
    /// passes it before showing, so nothing is shown that the run then does not do.
    pub fn safe_point(&self) -> Result<(), GateError> {
        if let Some((environment, loss)) = self.interrupt.lock_lost() {
            self.lock_lost(environment, loss)?;
        }
        self.control_point()
    }

    /// Pass one effect through the gate: intent, then the act (or the plan), then the result.
    /// The gate decides the mode (the run's dry-run, a resume's journal) and says which it took;
    /// a primitive never asks. A failure (acted now, or recorded) is `GateError::Failed`.
    pub fn gate(
        &self,
        kind: &str,
        name: &str,
        intent: Value,
        planned: impl FnOnce() -> Value,
        act: impl FnOnce() -> Result<Value, Failure>,
    ) -> Result<Gated, GateError> {
        self.safe_point()?;
        let mut intent = intent;
        if let (Value::Object(m), Some(stage)) = (&mut intent, self.current_stage()) {
            m.insert("stage".into(), Value::String(stage));
        }
        // A simulated effect is answered by the world, from its intent (the borrow ends here:
        // an undo the world lets act passes the gate again with its own effects).
        let simulated = self
            .world
            .borrow_mut()
            .as_mut()
            .map(|w| w.answer(kind, name, &intent));
        let pending: Pending = self
            .effects
            .borrow_mut()
            .begin(kind, name, intent)
            .map_err(GateError::Fatal)?;
        if let Some((recorded, was_planned)) = pending.replayed {
            // A plan replayed is still a plan: a resumed dry-run stays a dry-run.
            return match recorded {
                Ok(v) if was_planned => Ok(Gated::Planned(v)),
                Ok(v) => Ok(Gated::Replayed(v)),
                Err(f) => Err(GateError::Failed(f)),
            };
        }
        if pending.in_flight {
            if let Some((group, start)) = pending.in_flight_child {
                self.settle_in_flight_child(group, start)?;
            }
            match self.in_flight_choice(kind, name) {
                InFlightChoice::Rerun => {}
                InFlightChoice::Skip => {
                    let v = serde_json::json!({ "skipped": true, "code": 0, "ok": true, "status": 200 });
                    self.effects.borrow_mut().finish(pending, &Ok(v.clone()));
                    // Nothing was acted on: a dry-run's skip is still only a plan.
                    return Ok(if self.dry_run() {
                        Gated::Planned(v)
                    } else {
                        Gated::Acted(v)
                    });
                }
                InFlightChoice::Rollback => {
                    // Closed, so a resume of this resume does not meet it again.
                    let not_done = Failure(
                        "not carried out again: the resume rolled back instead".into(),
                        Value::Null,
                    );
                    self.effects.borrow_mut().finish(pending, &Err(not_done));
                    *self.stop.borrow_mut() = Some(Stop::ResumeRollback(format!(
                        "the run died during {kind} `{name}`"
                    )));
                    return Err(GateError::Halt);
                }
            }
        }
        if self.dry_run() {
            let v = planned();
            self.effects.borrow_mut().finish(pending, &Ok(v.clone()));
            return Ok(Gated::Planned(v));
        }
        match simulated {
            Some(crate::scenario::world::Answer::Done(outcome, took)) => {
                crate::clock::advance(took);
                self.effects.borrow_mut().finish(pending, &outcome);
                return outcome.map(Gated::Simulated).map_err(GateError::Failed);
            }
            Some(crate::scenario::world::Answer::Miss(why)) => {
                self.effects
                    .borrow_mut()
                    .finish(pending, &Err(Failure(why.clone(), Value::Null)));
                *self.world_miss.borrow_mut() = Some(why.clone());
                self.record(Record::SimulationMiss { why: why.clone() });
                *self.stop.borrow_mut() = Some(Stop::Error(Error::Usage(why)));
                return Err(GateError::Halt);
            }
            Some(crate::scenario::world::Answer::Act) | None => {}
        }
        let outcome = act();
        self.effects.borrow_mut().finish(pending, &outcome);
        outcome.map(Gated::Acted).map_err(GateError::Failed)
    }

    /// Work that is no effect of its own but only plans in a dry-run (an analysis, which in a
    /// dry-run measures nothing and journals no `measure` effect): the plan when the run only
    /// plans, else None and the caller goes on to act through the gate. The session, not the
    /// primitive, knows the mode.
    pub fn plan_only<T>(&self, plan: impl FnOnce() -> T) -> Option<T> {
        self.dry_run().then(plan)
    }

    /// An input effect (a prompt's answer): recorded like any effect, and taken in dry-run too.
    pub fn gate_input(
        &self,
        kind: &str,
        name: &str,
        intent: Value,
        result: Value,
    ) -> Result<(), GateError> {
        let pending = self
            .effects
            .borrow_mut()
            .begin(kind, name, intent)
            .map_err(GateError::Fatal)?;
        self.effects.borrow_mut().finish(pending, &Ok(result));
        Ok(())
    }

    pub fn push_undo(&self, label: String, action: crate::undo::Action) -> Undo {
        let id = self.next_undo.get();
        self.next_undo.set(id + 1);
        let undo = Undo { id, label, action };
        self.undo.borrow_mut().push(undo.clone());
        undo
    }

    pub fn http(&self) -> reqwest::Client {
        // reqwest's client registers with the runtime's reactor as it is built.
        let _in_runtime = self.rt.enter();
        self.http
            .borrow_mut()
            .get_or_insert_with(|| {
                reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap_or_else(|_| reqwest::Client::new())
            })
            .clone()
    }

    /// The client of checks and metric providers; `https`: the batch has an https:// URL, so
    /// the TLS client is set up too (it is costly: see net.rs).
    pub fn net(&self, https: bool) -> crate::net::Client {
        let plain = {
            let _in_runtime = self.rt.enter();
            self.plain
                .borrow_mut()
                .get_or_insert_with(|| crate::net::Client::new(None))
                .clone()
        };
        if https {
            plain.with_tls(self.http())
        } else {
            plain
        }
    }

    /// Resuming at a command the earlier process died in, which outlived it: wait for it to end
    /// (or stop it, when answered so) before anything is run again, so two copies never run.
    pub fn settle_in_flight_child(
        &self,
        group: i32,
        start: Option<crate::process::Started>,
    ) -> Result<(), GateError> {
        if !crate::process::group_alive(group, start) {
            return Ok(());
        }
        let explicit = self.answers.borrow_mut().explicit("resume-still-running");
        let stop = explicit
            .is_some_and(|(v, _)| crate::answers::scalar_text(&v).as_deref() == Some("stop"));
        self.record(Record::ResumeStillRunning {
            group,
            choice: if stop { "stop" } else { "wait" }.to_string(),
        });
        self.shout(&format!(
            "↻ the command in flight when the run died is still running (process group {group}): {}",
            if stop {
                "stopping it (answer `resume-still-running`)"
            } else {
                "waiting for it to end (answer `resume-still-running: stop` to stop it)"
            }
        ));
        let grace = crate::config::duration_at(
            &self.config,
            "commands.kill_grace",
            &self.config.config.commands.kill_grace,
        )
        .unwrap_or(Duration::from_secs(5));
        let signal = |sig| {
            // SAFETY: a signal to the dead run's command group, checked alive just above.
            unsafe {
                libc::kill(-group, sig);
            }
        };
        if stop {
            signal(libc::SIGTERM);
        }
        let killed_at = std::time::Instant::now() + grace;
        let mut killed = false;
        while crate::process::group_alive(group, start) {
            if self.interrupt.is_set() {
                *self.stop.borrow_mut() = Some(Stop::Interrupted);
                return Err(GateError::Halt);
            }
            if stop && !killed && std::time::Instant::now() >= killed_at {
                signal(libc::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The run's lock was lost, or its store cannot be reached, and the run is at a safe point
    /// (before its next effect): follow `lock.on_lost`, journaled. `pause` asks a person (answer
    /// id `lock-lost`: wait, rollback, continue); with nobody to ask it waits up to one lease for
    /// the store to come back with the lock still ours, then stops (exit 1, nothing rolled back:
    /// rolling back is acting too, and another run may own the environment now).
    fn lock_lost(&self, environment: String, loss: crate::lock::Loss) -> Result<(), GateError> {
        let on_lost = self.config.config.lock.on_lost;
        let explicit = self.answers.borrow_mut().explicit("lock-lost");
        let mut choice = match explicit {
            Some((v, _)) => crate::answers::scalar_text(&v).unwrap_or_default(),
            None => on_lost.as_str().to_string(),
        };
        self.record(Record::LockLost {
            environment: environment.clone(),
            how: loss.how.clone(),
            gone: loss.gone,
            on_lost: on_lost.as_str().to_string(),
            choice: choice.clone(),
        });
        self.shout(&self.ui.yellow(&format!(
            "⚠ the lock on `{environment}` {}: {}",
            if loss.gone {
                "was lost"
            } else {
                "cannot be renewed"
            },
            loss.how
        )));
        if choice == "pause" && self.terminal.tty {
            self.shout(&self.ui.yellow(
                "  this run has paused before its next step: wait (for the lock store, with the lock still ours), roll back, or continue without the lock?",
            ));
            loop {
                match self
                    .terminal
                    .ask("Type wait, rollback or continue: ", &self.interrupt)
                {
                    Ok(Some(l)) if matches!(l.trim(), "wait" | "rollback" | "continue") => {
                        choice = l.trim().to_string();
                        break;
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => {
                        *self.stop.borrow_mut() = Some(Stop::Interrupted);
                        return Err(GateError::Halt);
                    }
                }
            }
            self.record(Record::LockLostAnswer {
                environment: environment.clone(),
                choice: choice.clone(),
            });
        }
        match choice.as_str() {
            "continue" => {
                self.interrupt.settle_lock_loss();
                self.warn(&format!(
                    "going on without the lock on `{environment}` (`lock.on_lost: continue`): another run may act on it too"
                ));
                Ok(())
            }
            "rollback" => {
                self.interrupt.settle_lock_loss();
                *self.stop.borrow_mut() = Some(Stop::ResumeRollback(format!(
                    "the lock on `{environment}` was lost: {}",
                    loss.how
                )));
                Err(GateError::Halt)
            }
            _ => {
                // Wait: for as long as a person asked, else one lease.
                let person = choice == "wait";
                let lease = crate::lock::lease_of(&self.config.config.lock)
                    .unwrap_or(Duration::from_secs(30));
                let until = std::time::Instant::now() + lease;
                self.shout(&format!(
                    "  waiting for the lock store{} …",
                    if person {
                        String::new()
                    } else {
                        format!(" (up to {})", crate::ui::format_duration(lease))
                    }
                ));
                let mut how: String;
                let how = loop {
                    match self.interrupt.lock_lost() {
                        None => {
                            self.record(Record::LockRegained {
                                environment: environment.clone(),
                            });
                            self.shout(&self.ui.green(&format!(
                                "✓ the lock on `{environment}` is this run's again: going on"
                            )));
                            return Ok(());
                        }
                        Some((_, now)) if now.gone => break now.how,
                        Some((_, now)) => how = now.how,
                    }
                    if self.interrupt.is_set() {
                        *self.stop.borrow_mut() = Some(Stop::Interrupted);
                        return Err(GateError::Halt);
                    }
                    if !person && std::time::Instant::now() >= until {
                        break how;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                self.record(Record::LockLostStopped {
                    environment: environment.clone(),
                    how: how.clone(),
                });
                Err(GateError::Fatal(crate::error::Error::LockLost {
                    environment,
                    how,
                }))
            }
        }
    }

    /// Act on the live-control requests waiting (`runbook control`, the REPL of another
    /// process), each journaled with who sent it: the run acts on them itself, so its journal
    /// keeps one writer. `abort` stops the script and rolls back (exit 3); `pause` holds here,
    /// at the current traffic, until resume, promote or abort; `promote` skips the remaining
    /// monitoring windows.
    pub fn control_point(&self) -> Result<(), GateError> {
        while let Some(request) = self.interrupt.take_control() {
            if self.interrupt.rolling_back() {
                self.control_record(&request, "ignored: the run is rolling back");
                continue;
            }
            self.take_control(request)?;
        }
        Ok(())
    }

    fn control_record(&self, r: &crate::lock::ControlRequest, done: &str) {
        self.record(Record::Control {
            action: r.action.as_str().to_string(),
            by: r.by.clone(),
            reason: r.reason.clone(),
            sent: r.sent.clone(),
            done: done.to_string(),
        });
    }

    fn take_control(&self, r: crate::lock::ControlRequest) -> Result<(), GateError> {
        use crate::lock::control::Action;
        match r.action {
            Action::Abort => {
                self.control_record(&r, "aborted");
                self.shout(
                    &self.ui.yellow(
                        &self
                            .ui
                            .bold(&format!("⏹ aborted {}: rolling back", r.by_whom())),
                    ),
                );
                *self.stop.borrow_mut() =
                    Some(Stop::ResumeRollback(format!("aborted {}", r.by_whom())));
                Err(GateError::Halt)
            }
            Action::Promote => {
                self.control_record(&r, "promoted");
                self.shout(&self.ui.green(&format!(
                    "⏩ promoted {}: the remaining monitoring windows are skipped",
                    r.by_whom()
                )));
                self.interrupt.set_promoted(r.by_whom());
                Ok(())
            }
            Action::Resume => {
                self.control_record(&r, "ignored: the run was not paused");
                self.say(&format!("  resume {}: the run was not paused", r.by_whom()));
                Ok(())
            }
            Action::Pause => {
                self.control_record(&r, "paused");
                self.hold(&r)
            }
        }
    }

    /// Paused: hold here, at the current traffic, until a resume, promote or abort (or an
    /// interrupt, or the wall-clock limit).
    fn hold(&self, paused: &crate::lock::ControlRequest) -> Result<(), GateError> {
        use crate::lock::control::Action;
        let env = &self.config.config.lock.environment;
        self.shout(&self.ui.yellow(&self.ui.bold(&format!(
            "⏸ paused {}: holding at the current traffic",
            paused.by_whom()
        ))));
        self.say(&format!(
            "  go on with `runbook control {env} resume`, or `promote`, or `abort --reason \"...\"`"
        ));
        let since = std::time::Instant::now();
        let held = || self.interrupt.add_paused(since.elapsed());
        loop {
            if self.interrupt.is_set() {
                held();
                *self.stop.borrow_mut() = Some(Stop::Interrupted);
                return Err(GateError::Halt);
            }
            if let Some(limit) = self.out_of_time() {
                held();
                *self.stop.borrow_mut() = Some(Stop::TimeLimit(limit));
                return Err(GateError::Halt);
            }
            if let Some(next) = self.interrupt.take_control() {
                match next.action {
                    Action::Pause => self.control_record(&next, "ignored: already paused"),
                    Action::Resume => {
                        held();
                        self.control_record(&next, "resumed");
                        self.shout(&self.ui.green(&format!(
                            "▶ resumed {} (paused for {})",
                            next.by_whom(),
                            crate::ui::format_duration(since.elapsed())
                        )));
                        return Ok(());
                    }
                    Action::Promote | Action::Abort => {
                        held();
                        return self.take_control(next);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Resuming at the effect the earlier process died in: redo it, skip it, or roll back.
    fn in_flight_choice(&self, kind: &str, name: &str) -> InFlightChoice {
        let question = format!("The run died during {kind} `{name}` (it may or may not have happened). Re-run it, skip it, or roll back?");
        let explicit = self.answers.borrow_mut().explicit("resume-in-flight");
        let answer = match explicit {
            Some((v, _)) => crate::answers::scalar_text(&v),
            None if self.terminal.tty => {
                self.ui.shout(&self.ui.yellow(&question));
                loop {
                    match self
                        .terminal
                        .ask("Type rerun, skip or rollback: ", &self.interrupt)
                    {
                        Ok(Some(l)) if matches!(l.trim(), "rerun" | "skip" | "rollback") => {
                            break Some(l.trim().to_string())
                        }
                        Ok(Some(_)) => continue,
                        _ => break None,
                    }
                }
            }
            None => None,
        };
        let choice = answer.unwrap_or_else(|| self.config.config.resume.in_flight.to_string());
        self.record(Record::ResumeInFlight {
            kind: kind.to_string(),
            name: name.to_string(),
            choice: choice.clone(),
        });
        self.shout(&format!(
            "↻ in flight when the run died: {kind} `{name}`: {choice}"
        ));
        match choice.as_str() {
            "rerun" => InFlightChoice::Rerun,
            "skip" => InFlightChoice::Skip,
            _ => InFlightChoice::Rollback,
        }
    }

    /// Stop the script with `why`: raised as Rhai's (uncatchable) termination.
    pub fn stop(&self, why: Stop) -> Box<EvalAltResult> {
        *self.stop.borrow_mut() = Some(why);
        EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into()
    }

    /// The stop for a wait that ended early: the wall-clock limit, or an interrupt.
    pub fn stop_waiting(&self) -> Box<EvalAltResult> {
        // Already stopped (live control aborted the run during the wait): keep why.
        if self.stop.borrow().is_some() {
            return EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into();
        }
        match self.out_of_time() {
            Some(limit) => self.stop(Stop::TimeLimit(limit)),
            None => self.stop(Stop::Interrupted),
        }
    }

    /// Whether the run has passed its wall-clock limit.
    pub fn out_of_time(&self) -> Option<Duration> {
        self.deadline
            .get()
            .filter(|(at, _)| crate::clock::Instant::now() >= *at)
            .map(|(_, limit)| limit)
    }

    /// Time left before the wall-clock limit, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .get()
            .map(|(at, _)| at.saturating_duration_since(crate::clock::Instant::now()))
    }

    /// Sleep that wakes for an interrupt or the wall-clock limit (both end it early). Replaying
    /// a resumed run does not wait again, and a dry-run does not wait at all: the session, not
    /// the primitive, knows the mode.
    pub fn sleep(&self, d: Duration) -> Result<(), Interrupted> {
        self.wait(d, false)
    }

    /// An analysis window's wait: like `sleep`, and it ends early once the run is promoted
    /// (`runbook control ENV promote`): the window is skipped.
    pub fn wait_window(&self, d: Duration) -> Result<(), Interrupted> {
        self.wait(d, true)
    }

    /// A sleep is a safe point for live control: a request is taken within a few milliseconds
    /// of the lock's renewer finding it; a pause extends the sleep by as long as it held.
    fn wait(&self, d: Duration, wake_on_promote: bool) -> Result<(), Interrupted> {
        if self.effects.borrow().replaying() {
            return Ok(());
        }
        if self.dry_run() {
            self.ui.verbose(&format!(
                "  (dry-run) sleep {}",
                crate::ui::format_duration(d)
            ));
            return Ok(());
        }
        // On a virtual clock a wait is a step of the clock (up to the wall-clock limit).
        if crate::clock::is_virtual() {
            let d = self.time_left().map_or(d, |left| d.min(left));
            crate::clock::advance(d);
            return match self.out_of_time() {
                Some(_) => Err(Interrupted),
                None => Ok(()),
            };
        }
        let mut end = std::time::Instant::now() + d;
        loop {
            if self.interrupt.is_set() || self.out_of_time().is_some() {
                return Err(Interrupted);
            }
            if self.interrupt.control_pending() {
                let held = self.interrupt.paused_total();
                if self.control_point().is_err() {
                    return Err(Interrupted);
                }
                end += self.interrupt.paused_total().saturating_sub(held);
            }
            if wake_on_promote && self.interrupt.promoted().is_some() {
                return Ok(());
            }
            let now = std::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

enum InFlightChoice {
    Rerun,
    Skip,
    Rollback,
}

/// Which way an effect passed the gate, with its result.
#[derive(Debug, Clone, PartialEq)]
pub enum Gated {
    /// Carried out now.
    Acted(Value),
    /// Not carried out: a dry-run's plan (also one replayed from a dry-run's journal).
    Planned(Value),
    /// Carried out by an earlier process: its recorded result, handed back on resume.
    Replayed(Value),
    /// Answered by a scenario's world (`runbook test`): nothing outside was touched.
    Simulated(Value),
}

impl Gated {
    pub fn value(&self) -> &Value {
        match self {
            Gated::Acted(v) | Gated::Planned(v) | Gated::Replayed(v) | Gated::Simulated(v) => v,
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Gated::Acted(v) | Gated::Planned(v) | Gated::Replayed(v) | Gated::Simulated(v) => v,
        }
    }

    pub fn planned(&self) -> bool {
        matches!(self, Gated::Planned(_))
    }
}

#[derive(Debug)]
pub enum GateError {
    /// The act failed: the script may catch this.
    Failed(Failure),
    /// The gate itself failed (the journal cannot be written): the run must stop.
    Fatal(Error),
    /// The run must stop; the reason is already in `Session::stop`.
    Halt,
}

/// Reads one answer with its prompt shown: the REPL's line editor, so nothing else reads stdin
/// behind it.
pub type LineEditor = Box<dyn FnMut(&str) -> Result<Option<String>, Interrupted>>;

/// Lines typed at the terminal, read on a thread so a prompt can still notice Ctrl-C; or, when
/// a line editor owns the terminal (the REPL), read through it.
pub struct Terminal {
    pub tty: bool,
    rx: RefCell<Option<mpsc::Receiver<Option<String>>>>,
    editor: RefCell<Option<LineEditor>>,
}

impl Terminal {
    fn new() -> Terminal {
        Terminal {
            // A rehearsed run (on the virtual clock) has nobody to ask.
            tty: std::io::stdin().is_terminal() && !crate::clock::is_virtual(),
            rx: RefCell::new(None),
            editor: RefCell::new(None),
        }
    }

    /// From now on prompts read through `editor` (None: through the reader thread again).
    pub fn set_editor(&self, editor: Option<LineEditor>) {
        *self.editor.borrow_mut() = editor;
    }

    /// Show `prompt` and read one line; `Ok(None)` at end of input.
    pub fn ask(&self, prompt: &str, interrupt: &Interrupt) -> Result<Option<String>, Interrupted> {
        if let Some(editor) = self.editor.borrow_mut().as_mut() {
            return editor(prompt);
        }
        crate::ui::print_prompt(prompt);
        self.read_line(interrupt)
    }

    /// One line from the terminal; `Ok(None)` at end of input. Never used while a line editor
    /// owns the terminal: the thread it starts would read stdin behind the editor.
    fn read_line(&self, interrupt: &Interrupt) -> Result<Option<String>, Interrupted> {
        let mut rx = self.rx.borrow_mut();
        let rx = rx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let stdin = std::io::stdin();
                loop {
                    let mut line = String::new();
                    match stdin.read_line(&mut line) {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(None);
                            return;
                        }
                        Ok(_) => {
                            if tx.send(Some(line)).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            rx
        });
        loop {
            if interrupt.is_set() {
                return Err(Interrupted);
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => return Ok(line.map(|l| l.trim_end_matches(['\n', '\r']).to_string())),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::{Recorded, ReplayIndex};
    use crate::journal::Journal;
    use serde_json::json;

    /// A session whose gate writes to `dir`'s journal, in dry-run or not.
    fn session(dir: &std::path::Path, dry_run: bool, rt: &tokio::runtime::Runtime) -> Shared {
        session_with(dir, dry_run, rt, crate::secrets::Redactor::default())
    }

    /// `session`, with the secrets `redactor` knows; nobody at the terminal, whatever runs the
    /// tests (a prompt is answered from the answers or the config, never read).
    fn session_with(
        dir: &std::path::Path,
        dry_run: bool,
        rt: &tokio::runtime::Runtime,
        redactor: crate::secrets::Redactor,
    ) -> Shared {
        let journal = Journal::append_to(&dir.join(crate::journal::FILE_NAME), redactor.clone())
            .or_else(|_| Journal::create(&dir.join(crate::journal::FILE_NAME), redactor.clone()))
            .unwrap();
        let s = Session::new(SessionParts {
            ui: Ui::plain(),
            config: crate::config::Loaded {
                config: Default::default(),
                file: None,
                value: serde_yaml::Value::Null,
            },
            rt: rt.handle().clone(),
            interrupt: Arc::new(Interrupt::default()),
            effects: Effects::new(journal, None, redactor, dry_run).unwrap(),
            answers: Answers::default(),
            feature: "f".into(),
            script: PathBuf::from("deploy.rhai"),
        });
        let mut s = s;
        Rc::get_mut(&mut s).unwrap().terminal.tty = false;
        s
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Pass `sh name` through the gate, counting acts.
    fn sh(s: &Session, name: &str, acts: &Cell<u32>) -> Result<Gated, GateError> {
        s.gate(
            "sh",
            name,
            json!({ "command": name }),
            || json!({ "code": 0, "planned": true }),
            || {
                acts.set(acts.get() + 1);
                Ok(json!({ "code": 0, "stdout": name }))
            },
        )
    }

    fn replay_from(dir: &std::path::Path) -> ReplayIndex {
        let (entries, _) =
            crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME)).unwrap();
        ReplayIndex::build(&entries)
    }

    #[test]
    fn the_gate_acts_plans_or_replays_and_says_which() {
        let rt = runtime();
        let acts = Cell::new(0);

        // A live run acts.
        let live = tempfile::tempdir().unwrap();
        let s = session(live.path(), false, &rt);
        let got = sh(&s, "a", &acts).unwrap();
        assert_eq!(got, Gated::Acted(json!({ "code": 0, "stdout": "a" })));
        assert_eq!(acts.get(), 1);
        assert!(s.effects.borrow().acted());

        // A dry-run plans, and never calls the act.
        let dry = tempfile::tempdir().unwrap();
        let d = session(dry.path(), true, &rt);
        let got = sh(&d, "a", &acts).unwrap();
        assert_eq!(got, Gated::Planned(json!({ "code": 0, "planned": true })));
        assert_eq!(acts.get(), 1);
        assert!(!d.effects.borrow().acted());

        // A resume of the live run replays what it recorded without acting, then acts anew.
        let index = replay_from(live.path());
        assert_eq!(index.recorded.len(), 1);
        assert_eq!(index.next_effect, 1);
        let r = session(live.path(), false, &rt);
        r.effects
            .borrow_mut()
            .start_replay(index.recorded, index.next_effect, index.in_flight);
        let got = sh(&r, "a", &acts).unwrap();
        assert_eq!(got, Gated::Replayed(json!({ "code": 0, "stdout": "a" })));
        assert_eq!(acts.get(), 1);
        let got = sh(&r, "b", &acts).unwrap();
        assert_eq!(got, Gated::Acted(json!({ "code": 0, "stdout": "b" })));
        assert_eq!(acts.get(), 2);

        // A resume of the dry-run hands its plans back as plans: it stays a dry-run.
        let index = replay_from(dry.path());
        assert!(index.recorded.iter().all(|r| r.planned));
        let r = session(dry.path(), true, &rt);
        r.effects
            .borrow_mut()
            .start_replay(index.recorded, index.next_effect, index.in_flight);
        let got = sh(&r, "a", &acts).unwrap();
        assert!(got.planned(), "{got:?}");
        assert_eq!(acts.get(), 2);
        assert!(!r.effects.borrow().acted());
    }

    #[test]
    fn a_recorded_failure_is_replayed_as_the_same_failure() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), false, &rt);
        let failed = s.gate(
            "sh",
            "false",
            json!({}),
            || json!({ "planned": true }),
            || Err(Failure("exit 1".into(), json!({ "code": 1 }))),
        );
        assert!(matches!(failed, Err(GateError::Failed(Failure(ref m, _))) if m == "exit 1"));
        let index = replay_from(dir.path());
        let r = session(dir.path(), false, &rt);
        r.effects
            .borrow_mut()
            .start_replay(index.recorded, index.next_effect, index.in_flight);
        let again = r.gate(
            "sh",
            "false",
            json!({}),
            || json!({ "planned": true }),
            || panic!("a recorded effect must not act again"),
        );
        match again {
            Err(GateError::Failed(Failure(m, v))) => {
                assert_eq!(m, "exit 1");
                assert_eq!(v, json!({ "code": 1 }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_replay_index_finds_the_effect_in_flight_and_its_child() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let mut j = Journal::create(&path, Default::default()).unwrap();
        j.append(&intent_record(1, "a")).unwrap();
        j.append(&ok_result(1, "a")).unwrap();
        j.append(&intent_record(2, "b")).unwrap();
        j.append(&Record::EffectChild {
            effect: 2,
            group: 4242,
            start: Some(7),
            start_by: None,
        })
        .unwrap();
        let index = replay_from(dir.path());
        assert_eq!(index.next_effect, 2);
        assert_eq!(
            index
                .recorded
                .iter()
                .map(|r: &Recorded| r.name.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        let f = index.in_flight.unwrap();
        assert_eq!(
            (f.name.as_str(), f.child),
            (
                "b",
                Some((4242, Some(crate::process::Started { from: 7, to: 7 })))
            )
        );
    }

    /// A resume of the run in `dir`: its journal's completed effects queued, as `runbook resume`
    /// queues them.
    fn resumed(
        dir: &std::path::Path,
        rt: &tokio::runtime::Runtime,
        redactor: crate::secrets::Redactor,
    ) -> Shared {
        let index = replay_from(dir);
        let r = session_with(dir, false, rt, redactor);
        r.effects
            .borrow_mut()
            .start_replay(index.recorded, index.next_effect, index.in_flight);
        r
    }

    /// The journal's effect records: (number, name) of each intent, and of each result.
    #[allow(clippy::type_complexity)]
    fn numbered(dir: &std::path::Path) -> (Vec<(u64, String)>, Vec<(u64, String)>) {
        let (entries, _) =
            crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME)).unwrap();
        let mut intents = Vec::new();
        let mut results = Vec::new();
        for e in entries {
            match e.record {
                Record::EffectIntent { effect, name, .. } => intents.push((effect, name)),
                Record::EffectResult(r) => results.push((r.effect, r.name)),
                _ => {}
            }
        }
        (intents, results)
    }

    fn pairs(list: &[(u64, &str)]) -> Vec<(u64, String)> {
        list.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    /// An `sh` effect's intent, as the journal holds it.
    fn intent_record(effect: u64, name: &str) -> Record {
        Record::EffectIntent {
            effect,
            kind: "sh".into(),
            name: name.into(),
            intent: json!({}),
            dry_run: false,
        }
    }

    /// Its result: done, exit code 0.
    fn ok_result(effect: u64, name: &str) -> Record {
        Record::EffectResult(crate::record::EffectResult {
            effect,
            kind: "sh".into(),
            name: name.into(),
            ok: true,
            ms: Some(1),
            result: json!({ "code": 0 }),
            error: None,
            dry_run: Some(false),
        })
    }

    /// Announce `sh name` and die before its result: the effect in flight.
    fn die_during(s: &Session, name: &str) {
        let pending = s
            .effects
            .borrow_mut()
            .begin("sh", name, json!({ "command": name }))
            .unwrap();
        drop(pending);
    }

    #[test]
    fn effects_are_numbered_in_order_and_a_resume_numbers_on_from_the_journal() {
        let rt = runtime();
        let acts = Cell::new(0);
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), false, &rt);
        for name in ["a", "b", "c"] {
            sh(&s, name, &acts).unwrap();
        }
        assert_eq!(s.effects.borrow().current_effect(), 3);
        let (intents, results) = numbered(dir.path());
        assert_eq!(intents, pairs(&[(1, "a"), (2, "b"), (3, "c")]));
        assert_eq!(results, intents, "each result carries its intent's number");

        // The index numbers on from the journal's last effect.
        assert_eq!(replay_from(dir.path()).next_effect, 3);

        // A resume replays a, b and c under their recorded numbers (nothing is written for
        // them: the journal's numbers stand) and numbers the first new effect on from 3.
        let r = resumed(dir.path(), &rt, Default::default());
        for name in ["a", "b", "c"] {
            assert!(matches!(sh(&r, name, &acts).unwrap(), Gated::Replayed(_)));
        }
        assert_eq!(r.effects.borrow().current_effect(), 3);
        assert_eq!(numbered(dir.path()).0.len(), 3, "a replay writes no intent");
        sh(&r, "d", &acts).unwrap();
        assert_eq!(acts.get(), 4);
        let (intents, results) = numbered(dir.path());
        assert_eq!(intents, pairs(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]));
        assert_eq!(results, intents);

        // The next number is the journal's largest, not a count of its effects: an effect in
        // flight (announced, never finished) counts, and a gap in the numbers is kept.
        let gap = tempfile::tempdir().unwrap();
        let path = gap.path().join(crate::journal::FILE_NAME);
        let mut j = Journal::create(&path, Default::default()).unwrap();
        for (effect, name) in [(2, "a"), (7, "b")] {
            j.append(&intent_record(effect, name)).unwrap();
            j.append(&ok_result(effect, name)).unwrap();
        }
        drop(j);
        let r = resumed(gap.path(), &rt, Default::default());
        sh(&r, "a", &acts).unwrap();
        sh(&r, "b", &acts).unwrap();
        die_during(&r, "c");
        assert_eq!(replay_from(gap.path()).next_effect, 8);
        assert_eq!(numbered(gap.path()).0.last(), Some(&(8, "c".to_string())));
    }

    #[test]
    fn a_changed_script_stops_the_resume_naming_both_effects() {
        let rt = runtime();
        let acts = Cell::new(0);
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), false, &rt);
        sh(&s, "a", &acts).unwrap();
        sh(&s, "b", &acts).unwrap();
        let before = numbered(dir.path());

        let changed = |r: &Session, kind: &str, name: &str| -> String {
            let got = r.gate(
                kind,
                name,
                json!({}),
                || json!({ "planned": true }),
                || panic!("a changed script must not act"),
            );
            match got {
                Err(GateError::Fatal(Error::Journal { message, .. })) => message,
                other => panic!("{other:?}"),
            }
        };

        // Another name at the recorded position.
        let r = resumed(dir.path(), &rt, Default::default());
        sh(&r, "a", &acts).unwrap();
        assert_eq!(
            changed(&r, "sh", "x"),
            "the script no longer does what its journal recorded: the journal's next effect is sh `b`, the script now does sh `x`; resume cannot replay a changed script"
        );
        // Another kind, same name.
        let r = resumed(dir.path(), &rt, Default::default());
        assert_eq!(
            changed(&r, "http", "a"),
            "the script no longer does what its journal recorded: the journal's next effect is sh `a`, the script now does http `a`; resume cannot replay a changed script"
        );
        assert_eq!(acts.get(), 2);
        assert_eq!(numbered(dir.path()), before, "nothing is written");

        // The effect in flight, changed, is refused the same way.
        die_during(&s, "c");
        let r = resumed(dir.path(), &rt, Default::default());
        sh(&r, "a", &acts).unwrap();
        sh(&r, "b", &acts).unwrap();
        assert_eq!(
            changed(&r, "sh", "y"),
            "the script no longer does what its journal recorded: the effect under way when the run died was sh `c`, the script now does sh `y`"
        );
    }

    #[test]
    fn an_effect_named_with_a_secret_is_recorded_redacted_and_replays_by_its_real_name() {
        let rt = runtime();
        let acts = Cell::new(0);
        let secret = "s3cr3t-t0ken";
        let mut redactor = crate::secrets::Redactor::default();
        redactor.add(secret);
        let name = format!("curl -H 'Authorization: {secret}' https://x");
        let dir = tempfile::tempdir().unwrap();
        let s = session_with(dir.path(), false, &rt, redactor.clone());
        sh(&s, &name, &acts).unwrap();
        die_during(&s, &format!("deploy {secret}"));

        let text = std::fs::read_to_string(dir.path().join(crate::journal::FILE_NAME)).unwrap();
        assert!(!text.contains(secret), "{text}");
        let index = replay_from(dir.path());
        assert_eq!(
            index.recorded[0].name,
            "curl -H 'Authorization: [REDACTED]' https://x"
        );
        assert_eq!(
            index.in_flight.as_ref().map(|f| f.name.as_str()),
            Some("deploy [REDACTED]")
        );

        // Asked again with the real secret, the recorded effect matches (the name is compared
        // redacted), and so does the effect in flight.
        let r = resumed(dir.path(), &rt, redactor.clone());
        *r.answers.borrow_mut() = Answers::parse("resume-in-flight: skip\n", "a.yaml").unwrap();
        // Its result comes back as the journal holds it: redacted too.
        let got = sh(&r, &name, &acts).unwrap();
        assert_eq!(
            got,
            Gated::Replayed(json!({ "code": 0, "stdout": index.recorded[0].name }))
        );
        let got = sh(&r, &format!("deploy {secret}"), &acts).unwrap();
        assert_eq!(got.value()["skipped"], json!(true));
        assert_eq!(acts.get(), 1);

        // A resume that does not know the secret sees another name: the script "changed".
        let r = resumed(dir.path(), &rt, Default::default());
        assert!(matches!(
            sh(&r, &name, &acts),
            Err(GateError::Fatal(Error::Journal { .. }))
        ));
    }

    /// The run in `dir` completed `a` and died during `b`: resume it answering `choice`.
    fn resume_in_flight(
        rt: &tokio::runtime::Runtime,
        choice: Option<&str>,
        config: crate::config::InFlight,
    ) -> (tempfile::TempDir, Shared) {
        let acts = Cell::new(0);
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), false, rt);
        sh(&s, "a", &acts).unwrap();
        die_during(&s, "b");
        let mut r = resumed(dir.path(), rt, Default::default());
        Rc::get_mut(&mut r).unwrap().config.config.resume.in_flight = config;
        if let Some(choice) = choice {
            *r.answers.borrow_mut() =
                Answers::parse(&format!("resume-in-flight: {choice}\n"), "a.yaml").unwrap();
        }
        assert!(matches!(sh(&r, "a", &acts).unwrap(), Gated::Replayed(_)));
        (dir, r)
    }

    fn choice_recorded(dir: &std::path::Path) -> Vec<String> {
        let (entries, _) =
            crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME)).unwrap();
        entries
            .into_iter()
            .filter_map(|e| match e.record {
                Record::ResumeInFlight { kind, name, choice } => {
                    Some(format!("{kind} {name}: {choice}"))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_effect_in_flight_is_rerun_skipped_or_rolled_back_as_answered() {
        use crate::config::InFlight;
        let rt = runtime();

        // rerun: acted again, as a new effect numbered on from the journal.
        let (dir, r) = resume_in_flight(&rt, Some("rerun"), InFlight::Rollback);
        let acts = Cell::new(0);
        let got = sh(&r, "b", &acts).unwrap();
        assert_eq!(got, Gated::Acted(json!({ "code": 0, "stdout": "b" })));
        assert_eq!(acts.get(), 1);
        assert_eq!(choice_recorded(dir.path()), ["sh b: rerun"]);
        let (intents, results) = numbered(dir.path());
        assert_eq!(intents, pairs(&[(1, "a"), (2, "b"), (3, "b")]));
        assert_eq!(results, pairs(&[(1, "a"), (3, "b")]));

        // skip: not acted; the gate says acted, with a result that reads as a success.
        let (dir, r) = resume_in_flight(&rt, Some("skip"), InFlight::Rollback);
        let got = sh(&r, "b", &acts).unwrap();
        assert_eq!(
            got,
            Gated::Acted(json!({ "skipped": true, "code": 0, "ok": true, "status": 200 }))
        );
        assert_eq!(acts.get(), 1);
        assert_eq!(choice_recorded(dir.path()), ["sh b: skip"]);
        assert!(r.stop.borrow().is_none());

        // rollback: not acted; the gate halts the run with the rollback as the reason, and the
        // effect is closed as not carried out.
        let (dir, r) = resume_in_flight(&rt, Some("rollback"), InFlight::Skip);
        assert!(matches!(sh(&r, "b", &acts), Err(GateError::Halt)));
        assert_eq!(acts.get(), 1);
        assert!(matches!(
            r.stop.borrow().as_ref(),
            Some(Stop::ResumeRollback(why)) if why == "the run died during sh `b`"
        ));
        assert_eq!(choice_recorded(dir.path()), ["sh b: rollback"]);
        let (entries, _) =
            crate::journal::read_entries(&dir.path().join(crate::journal::FILE_NAME)).unwrap();
        let last = entries.iter().rev().find_map(|e| match &e.record {
            Record::EffectResult(r) => Some(r.clone()),
            _ => None,
        });
        let last = last.unwrap();
        assert_eq!((last.effect, last.ok), (3, false));
        assert_eq!(
            last.error.as_deref(),
            Some("not carried out again: the resume rolled back instead")
        );

        // Nobody to ask and no answer: `resume.in_flight` decides (rollback by default).
        let (dir, r) = resume_in_flight(&rt, None, InFlight::Skip);
        assert!(sh(&r, "b", &acts).unwrap().value()["skipped"] == json!(true));
        assert_eq!(choice_recorded(dir.path()), ["sh b: skip"]);
        let (dir, r) = resume_in_flight(&rt, None, InFlight::default());
        assert!(matches!(sh(&r, "b", &acts), Err(GateError::Halt)));
        assert_eq!(choice_recorded(dir.path()), ["sh b: rollback"]);
        // An answer that is none of the three rolls back, and is journaled as given.
        let (dir, r) = resume_in_flight(&rt, Some("maybe"), InFlight::Rerun);
        assert!(matches!(sh(&r, "b", &acts), Err(GateError::Halt)));
        assert_eq!(choice_recorded(dir.path()), ["sh b: maybe"]);
        assert_eq!(acts.get(), 1);
    }

    #[test]
    fn a_resume_of_a_resume_replays_the_effect_the_first_one_settled() {
        use crate::config::InFlight;
        let rt = runtime();
        for (choice, dies_during_d) in [
            ("rerun", false),
            ("skip", false),
            ("rerun", true),
            ("skip", true),
        ] {
            let at = format!("{choice}, d in flight: {dies_during_d}");
            // The first resume settles `b` (under a new number) and does `c`; then it dies too,
            // between two effects (at a prompt, say) or during `d`.
            let (dir, r) = resume_in_flight(&rt, Some(choice), InFlight::Rollback);
            let acts = Cell::new(0);
            sh(&r, "b", &acts).unwrap();
            sh(&r, "c", &acts).unwrap();
            if dies_during_d {
                die_during(&r, "d");
            }
            let index = replay_from(dir.path());
            let names: Vec<&str> = index.recorded.iter().map(|x| x.name.as_str()).collect();
            assert_eq!(names, ["a", "b", "c"], "{at}");
            assert_eq!(
                index.in_flight.as_ref().map(|f| f.name.as_str()),
                dies_during_d.then_some("d"),
                "{at}: the old b is not in flight"
            );
            // The second resume replays a, b and c, and goes on with d.
            let r2 = resumed(dir.path(), &rt, Default::default());
            *r2.answers.borrow_mut() =
                Answers::parse("resume-in-flight: rerun\n", "a.yaml").unwrap();
            let acts = Cell::new(0);
            for name in ["a", "b", "c"] {
                assert!(
                    matches!(sh(&r2, name, &acts), Ok(Gated::Replayed(_))),
                    "{at}: {name}"
                );
            }
            assert_eq!(sh(&r2, "d", &acts).unwrap().value()["stdout"], json!("d"));
            assert_eq!(acts.get(), 1, "{at}: only d acted");
        }

        // The rerun itself died, its child started: the old intent is settled, and the rerun's
        // (the one with the child) is the one in flight.
        let (dir, r) = resume_in_flight(&rt, Some("rerun"), InFlight::Rollback);
        die_during(&r, "b");
        r.record(Record::ResumeInFlight {
            kind: "sh".into(),
            name: "b".into(),
            choice: "rerun".into(),
        });
        let rerun = r.effects.borrow().current_effect();
        r.record(Record::EffectChild {
            effect: rerun,
            group: 4242,
            start: Some(7),
            start_by: None,
        });
        let index = replay_from(dir.path());
        assert_eq!(index.recorded.len(), 1);
        let f = index.in_flight.expect("the rerun is in flight");
        assert_eq!(
            (f.name.as_str(), f.child),
            (
                "b",
                Some((4242, Some(crate::process::Started { from: 7, to: 7 })))
            )
        );
    }

    #[test]
    fn a_dry_run_resumed_skips_the_effect_in_flight_as_a_plan() {
        let rt = runtime();
        let acts = Cell::new(0);
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path(), true, &rt);
        sh(&s, "a", &acts).unwrap();
        die_during(&s, "b");
        let index = replay_from(dir.path());
        let r = session(dir.path(), true, &rt);
        r.effects
            .borrow_mut()
            .start_replay(index.recorded, index.next_effect, index.in_flight);
        *r.answers.borrow_mut() = Answers::parse("resume-in-flight: skip\n", "a.yaml").unwrap();
        assert!(sh(&r, "a", &acts).unwrap().planned());
        let got = sh(&r, "b", &acts).unwrap();
        assert_eq!(
            got,
            Gated::Planned(json!({ "skipped": true, "code": 0, "ok": true, "status": 200 }))
        );
        assert_eq!(acts.get(), 0);
    }
}
