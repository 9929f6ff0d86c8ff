//! How a run ended: the outcome, its exit code, and the rollback a failure leads to.

use super::*;

/// Decide how the run ended: (exit code, outcome word, error text).
/// How a run ended, and the exit code each way has (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// A verdict, a failed step, a person or the script chose it; every undo succeeded.
    RolledBack,
    /// The run itself broke (a runbook error, monitoring that could not measure); every undo
    /// succeeded.
    RolledBackAfterError,
    /// An undo failed, or a rollback was refused.
    RollbackFailed,
    Declined,
    /// Failed with nothing to undo.
    Failed,
    /// Failed with an error's own exit code.
    FailedWith(i32),
    /// Stopped before anything changed: usage, config, answers or script (exit 2).
    Stopped(i32),
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Completed => exit::OK,
            Outcome::RolledBack => exit::ROLLED_BACK,
            Outcome::RolledBackAfterError => exit::ROLLED_BACK_AFTER_ERROR,
            Outcome::RollbackFailed | Outcome::Failed => exit::FAILED,
            Outcome::Declined => exit::DECLINED,
            Outcome::FailedWith(code) | Outcome::Stopped(code) => code,
            Outcome::Interrupted => exit::INTERRUPTED,
        }
    }

    /// As the journal's `run.end` and the artifacts say it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::RolledBack => "rolled back",
            Outcome::RolledBackAfterError => "rolled back after an error",
            Outcome::RollbackFailed => "rollback failed",
            Outcome::Declined => "declined",
            Outcome::Failed | Outcome::FailedWith(_) => "failed",
            Outcome::Stopped(_) => "stopped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

pub(crate) fn conclude(
    session: &Session,
    p: &Prepared,
    result: Result<(), Box<EvalAltResult>>,
) -> (Outcome, String) {
    let ui = &session.ui;
    let err = match result {
        Ok(()) => {
            session.shout(&ui.green(&ui.bold("✅ Run completed.")));
            return (Outcome::Completed, String::new());
        }
        Err(e) => e,
    };
    if let EvalAltResult::Exit(..) = *err {
        session.shout(&ui.green(&ui.bold("✅ Run completed (the script called exit).")));
        return (Outcome::Completed, String::new());
    }
    let stop = session.stop.borrow_mut().take();
    match stop {
        Some(Stop::Declined { gate, by }) => {
            let e = Error::Declined { gate, by };
            let text = show_error(session, &e);
            (Outcome::Declined, text)
        }
        Some(Stop::RolledBack {
            ok: true,
            reason,
            broken: false,
        }) => {
            say_rolled_back(session, &reason);
            (Outcome::RolledBack, reason)
        }
        Some(Stop::RolledBack {
            ok: true,
            reason,
            broken: true,
        }) => {
            session.shout(&ui.yellow(&ui.bold(&format!(
                "↩ Rolled back because the run could not judge the release (exit 5): {reason}"
            ))));
            (Outcome::RolledBackAfterError, reason)
        }
        Some(Stop::RolledBack {
            ok: false, reason, ..
        }) => {
            say_rollback_failed(session);
            (Outcome::RollbackFailed, reason)
        }
        Some(Stop::Interrupted) => interrupted(session, p),
        // Rolled back by the runner itself (an abort, a resume's choice, a lost lock): it ends
        // with the same last line as a rollback the script asked for.
        Some(Stop::ResumeRollback(reason)) => {
            let report = crate::unwind::rollback(session, &p.engine, &reason);
            if report.ok() {
                say_rolled_back(session, &reason);
                (Outcome::RolledBack, reason)
            } else {
                say_rollback_failed(session);
                (Outcome::RollbackFailed, reason)
            }
        }
        Some(Stop::TimeLimit(limit)) => {
            let e = Error::Script(Box::new(crate::error::ScriptError {
                message: format!(
                    "the run passed its wall-clock limit of {} (`limits.wall_clock`)",
                    crate::ui::format_duration(limit)
                ),
                location: None,
                call_sites: vec![],
                suggestion: None,
                help: None,
                is_compile: false,
            }));
            let text = show_error(session, &e);
            // Time is up for the script, not for putting things back.
            session.deadline.set(None);
            failed(session, p, text, Cause::StepFailed)
        }
        // An answer found bad (or missing) only when its prompt came, after the run changed
        // things: not "nothing changed" but a failure, which offers rollback.
        Some(Stop::Error(e))
            if e.exit_code() == exit::USAGE
                && matches!(e, Error::Answers { .. } | Error::PromptUnanswered { .. })
                && session.effects.borrow().changed()
                && !session.dry_run() =>
        {
            let text = show_error(session, &e);
            failed(session, p, text, Cause::RunError)
        }
        Some(Stop::Error(e)) => {
            let text = show_error(session, &e);
            // An input error (an answer that does not fit, a prompt nobody can answer) found
            // after changes began is a broken run: what it changed is offered for rollback.
            if e.exit_code() == exit::USAGE
                && !session.undo.borrow().is_empty()
                && !session.dry_run()
            {
                return failed(session, p, text, Cause::RunError);
            }
            let outcome = if e.exit_code() == exit::USAGE {
                Outcome::Stopped(e.exit_code())
            } else {
                Outcome::FailedWith(e.exit_code())
            };
            (outcome, text)
        }
        None => {
            let cause = if is_script_bug(&err) {
                Cause::RunError
            } else {
                Cause::StepFailed
            };
            let e = crate::engine::script_error(&err, &p.found.shown, &p.sources, false);
            let text = show_error(session, &e);
            failed(session, p, text, cause)
        }
    }
}

pub(crate) fn show_error(session: &Session, e: &Error) -> String {
    e.print(&session.ui, |t| session.redact(t));
    let plain = session.redact(&e.render(&Ui::plain()));
    session.effects.borrow_mut().log(&plain);
    session.redact(&e.summary())
}

/// Why an uncaught error ended the run, which decides the exit code after a clean rollback.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Cause {
    /// An effect failed (a command exited non-zero, a check failed) or the script threw: the
    /// release, or a step of it, did not work. Rolled back cleanly: exit 3.
    StepFailed,
    /// The run itself broke: a runbook or stdlib error (a function or variable that does not
    /// exist, a wrong type, an index out of range, a limit), or an answer found bad mid-run.
    /// Rolled back cleanly: exit 5, so CI and people can tell it from a caught bad release.
    RunError,
}

/// An error Rhai raised on its own while evaluating (a bug in the runbook or a module), as
/// against one thrown: by a primitive whose effect failed, or by the script's `throw`.
pub(crate) fn is_script_bug(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => is_script_bug(inner),
        EvalAltResult::ErrorRuntime(..) | EvalAltResult::Exit(..) => false,
        _ => true,
    }
}

/// A step failed and the script did not catch it: offer rollback, or roll back on our own.
pub(crate) fn failed(
    session: &Session,
    p: &Prepared,
    error: String,
    cause: Cause,
) -> (Outcome, String) {
    use crate::config::OnFailure;
    let standing = session.undo.borrow().len();
    if standing == 0 {
        session.shout(
            &session.ui.red(
                &session
                    .ui
                    .bold("✗ Run failed (nothing was registered to undo)."),
            ),
        );
        return (Outcome::Failed, error);
    }
    let go = match session.config.config.rollback.on_failure {
        OnFailure::Never => false,
        OnFailure::Auto => true,
        OnFailure::Ask => match crate::primitives::prompt::offer(
            session,
            "initiate-rollback",
            "⚠️ Issue detected! Initiate rollback?",
        ) {
            Some(answer) => answer,
            None => {
                session.say("Nobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).");
                true
            }
        },
    };
    if !go {
        session.shout(&session.ui.red(&format!(
            "✗ Run failed; {standing} undo step(s) still stand: see rollback-plan.md"
        )));
        return (Outcome::Failed, error);
    }
    let reason = match cause {
        Cause::StepFailed => "a step failed",
        Cause::RunError => "the run broke (a runbook, stdlib or answer error)",
    };
    let report = crate::unwind::rollback(session, &p.engine, reason);
    match (report.ok(), cause) {
        (false, _) => (Outcome::RollbackFailed, error),
        (true, Cause::StepFailed) => (Outcome::RolledBack, error),
        (true, Cause::RunError) => {
            session.shout(&session.ui.yellow(&session.ui.bold(
                "↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above.",
            )));
            (Outcome::RolledBackAfterError, error)
        }
    }
}

pub(crate) fn interrupted(session: &Session, p: &Prepared) -> (Outcome, String) {
    session.interrupt.acknowledge();
    session.record(Record::Interrupted {});
    session.shout(&session.ui.yellow("\n⚠️ Interrupted."));
    let standing = session.undo.borrow().len();
    if standing > 0 && session.terminal.tty {
        session.shout("(Ctrl-C again to abort now)");
        if crate::primitives::prompt::offer(
            session,
            "rollback-after-interrupt",
            "Roll back what this run changed?",
        ) == Some(true)
        {
            let report = crate::unwind::rollback(session, &p.engine, "interrupted");
            return if report.ok() {
                (Outcome::RolledBack, "interrupted".into())
            } else {
                (Outcome::RollbackFailed, "interrupted".into())
            };
        }
    }
    if standing > 0 {
        session.shout(&format!(
            "{standing} undo step(s) still stand: see rollback-plan.md"
        ));
    }
    (Outcome::Interrupted, "interrupted".into())
}

/// The last line of a run that rolled back cleanly, whoever asked for the rollback.
fn say_rolled_back(session: &Session, reason: &str) {
    let ui = &session.ui;
    session.shout(&ui.yellow(&ui.bold(&format!("↩ Rolled back: {reason}"))));
}

/// The last line of a run whose rollback left something standing.
fn say_rollback_failed(session: &Session) {
    let ui = &session.ui;
    session
        .shout(&ui.red(&ui.bold("✗ Rollback failed: see rollback-plan.md for what still stands")));
}
