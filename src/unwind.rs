//! Carrying undo steps out: a rollback (last in first out, past failures), an undo that is a
//! command (through the one command runner) or a module function (through the engine), and the
//! question about one a dead run left in flight. The undo steps themselves are data (src/undo.rs).

use serde_json::{json, Value};

use crate::journal::Record;
use crate::session::{GateError, Session};
use crate::undo::{Action, Progress, Report, Step, Undo};

/// A rollback died while undo `id` of `undos` was under way: ask whether to run it again.
/// Returns its label and the answer (`None`: nobody to ask).
pub fn ask_in_flight(session: &Session, undos: &[Undo], id: u64) -> (String, Option<bool>) {
    let label = undos
        .iter()
        .find(|u| u.id == id)
        .map(|u| u.label.clone())
        .unwrap_or_default();
    let question = format!(
        "The last rollback died while undoing `{label}` (it may or may not have happened). Run it again?"
    );
    let answer = crate::primitives::prompt::offer(session, "rollback-in-flight", &question);
    (label, answer)
}

/// How to answer `rollback-in-flight` when nobody is there to ask.
pub const IN_FLIGHT_HELP: &str = "help: answer `rollback-in-flight` (yes: run it again, no: skip it) in the answers file or as RUNBOOK_ANSWER_ROLLBACK_IN_FLIGHT";

/// Carry out the undo stack, last in first out; a failing undo is reported and the rest still run.
pub fn rollback(session: &Session, engine: &rhai::Engine, reason: &str) -> Report {
    carry_out(session, engine, reason, false, &mut |_, _| {})
}

/// `rollback`, telling `watch` as each undo starts and ends (`runbook rollback` records each one
/// in the rolled-back run's own journal as it happens, so a killed rollback is not redone).
pub fn rollback_watched(
    session: &Session,
    engine: &rhai::Engine,
    reason: &str,
    watch: &mut dyn FnMut(&Undo, Progress),
) -> Report {
    carry_out(session, engine, reason, false, watch)
}

/// Like `rollback`, but Ctrl-C stops it: the undo it interrupted and the ones after it are not
/// carried out (an interrupted undo may have half-happened, and the next could remove the version
/// serving all traffic); they stay standing, in `Report::stopped`.
pub fn rollback_until_interrupted(
    session: &Session,
    engine: &rhai::Engine,
    reason: &str,
) -> Report {
    carry_out(session, engine, reason, true, &mut |_, _| {})
}

/// Both: watched as it goes, and stopped by Ctrl-C (another run's undos, from the REPL or
/// `runbook rollback`).
pub fn rollback_watched_until_interrupted(
    session: &Session,
    engine: &rhai::Engine,
    reason: &str,
    watch: &mut dyn FnMut(&Undo, Progress),
) -> Report {
    carry_out(session, engine, reason, true, watch)
}

fn carry_out(
    session: &Session,
    engine: &rhai::Engine,
    reason: &str,
    stoppable: bool,
    watch: &mut dyn FnMut(&Undo, Progress),
) -> Report {
    let undos: Vec<Undo> = std::mem::take(&mut *session.undo.borrow_mut());
    session.record(Record::RollbackStart {
        reason: reason.to_string(),
        undos: undos.len(),
    });
    session.ui.banner("Rollback");
    session.shout(&format!("Rolling back: {reason}"));
    if undos.is_empty() {
        session.say("Nothing to undo: no step registered an undo.");
    }
    let mut report = Report::default();
    let mut skipped = 0;
    let mut pending = undos.into_iter().rev();
    while let Some(undo) = pending.next() {
        if stoppable && session.interrupt.is_set() {
            report.stopped.push(undo);
            report.stopped.extend(pending.by_ref());
            break;
        }
        let name = format!("undo: {}", undo.label);
        let intent = json!({ "undo": undo.id, "label": undo.label, "action": undo.action });
        session.say(&format!("↩ {} ({})", undo.label, undo.action.describe()));
        watch(&undo, Progress::Start);
        let result = session.gate(
            "undo",
            &name,
            intent,
            || json!({ "planned": true }),
            || -> Result<Value, crate::effects::Failure> {
                // Secrets are kept by name; their values are given only now, to the act.
                let redactor = session.effects.borrow().redactor().clone();
                let action = undo.action.map_text(&mut |t| redactor.resolve(t)).map_err(|name| {
                    format!(
                        "the undo needs the secret `{name}`, which this process does not have (give it in runbook.yaml `secrets`, with `--set secrets.values.{name}=...`, or in the environment)"
                    )
                })?;
                let r = match &action {
                    Action::Command { line } => crate::primitives::shell::run_program(
                        session,
                        crate::process::Program::Line(line.clone()),
                        None,
                    )
                    .and_then(|o| check_exit(&o, &undo.action)),
                    Action::Argv { argv } => crate::primitives::shell::run_program(
                        session,
                        crate::process::Program::Argv(argv.clone()),
                        None,
                    )
                    .and_then(|o| check_exit(&o, &undo.action)),
                    Action::Call {
                        module,
                        function,
                        args,
                    } => call(session, engine, module, function, args)
                        .map(|v| json!({ "returned": v })),
                };
                r.map_err(Into::into)
            },
        );
        let error = match result {
            // A module's undo that had nothing to do says so (`#{ skipped: "why" }`): it is not
            // reported as done.
            Ok(v) if v.value()["returned"]["skipped"].is_string() => {
                let why = v.value()["returned"]["skipped"]
                    .as_str()
                    .unwrap_or_default();
                session.say(&format!("  – {}: skipped: {why}", undo.label));
                skipped += 1;
                None
            }
            Ok(_) => {
                session.say_styled(&format!("  ✓ {}", undo.label), |ui, s| ui.green(s));
                None
            }
            Err(_) if stoppable && session.interrupt.is_set() => {
                session.say_styled(
                    &format!("  ⏸ {}: interrupted, still standing", undo.label),
                    |ui, s| ui.yellow(s),
                );
                report.stopped.push(undo);
                report.stopped.extend(pending.by_ref());
                break;
            }
            Err(e) => {
                let e = match e {
                    GateError::Failed(f) => f.0,
                    GateError::Halt => "stopped".to_string(),
                    GateError::Fatal(err) => err.render(&crate::ui::Ui::plain()).trim().to_string(),
                };
                session.say_styled(&format!("  ✗ {}: {e}", undo.label), |ui, s| ui.red(s));
                Some(e)
            }
        };
        watch(&undo, Progress::Done(error.as_deref()));
        report.steps.push(Step { undo, error });
    }
    let failed: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.undo.label.as_str())
        .collect();
    let standing: Vec<&str> = report.stopped.iter().map(|u| u.label.as_str()).collect();
    session.record(Record::RollbackEnd {
        ok: report.ok() && standing.is_empty(),
        failed: failed.iter().map(|s| s.to_string()).collect(),
        stopped: !standing.is_empty(),
        standing: report.stopped.iter().map(|u| u.id).collect(),
    });
    let note = if skipped > 0 {
        format!(", {skipped} skipped (nothing to do)")
    } else {
        String::new()
    };
    if !standing.is_empty() {
        session.shout(&session.ui.yellow(&format!(
            "Rollback stopped by Ctrl-C: {} undo step(s) still standing: {}; {} done, {} failed",
            standing.len(),
            standing.join(", "),
            report.steps.len() - failed.len(),
            failed.len()
        )));
    } else if report.ok() {
        session.shout(&session.ui.green(&format!(
            "Rollback complete: {} step(s) undone{note}.",
            report.steps.len() - skipped
        )));
    } else {
        session.shout(&session.ui.red(&format!(
            "Rollback incomplete: {} of {} undo step(s) failed: {}",
            failed.len(),
            report.steps.len(),
            failed.join(", ")
        )));
    }
    report
}

fn check_exit(o: &crate::process::Outcome, action: &Action) -> Result<Value, String> {
    if o.success() {
        Ok(json!({ "code": o.code }))
    } else {
        Err(crate::primitives::shell::failure_message(
            &action.describe(),
            o,
        ))
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `module::function(args...)`, evaluated with the same engine, imports resolved from the script.
pub fn call(
    session: &Session,
    engine: &rhai::Engine,
    module: &str,
    function: &str,
    args: &[Value],
) -> Result<Value, String> {
    if !is_ident(function) {
        return Err(format!("`{function}` is not a function name"));
    }
    if module.contains('"') || module.contains('\n') {
        return Err(format!("`{module}` is not a module name"));
    }
    let mut scope = rhai::Scope::new();
    let mut names = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let name = format!("__undo_arg{i}");
        let v: rhai::Dynamic = rhai::serde::to_dynamic(a).map_err(|e| e.to_string())?;
        scope.push(name.clone(), v);
        names.push(name);
    }
    let src = format!(
        "import \"{module}\" as __undo_module; __undo_module::{function}({})",
        names.join(", ")
    );
    let mut ast = engine
        .compile_with_scope(&scope, &src)
        .map_err(|e| e.to_string())?;
    ast.set_source(session.script.display().to_string());
    let v: rhai::Dynamic = engine
        .eval_ast_with_scope(&mut scope, &ast)
        .map_err(|e| crate::engine::describe_runtime_error(&e))?;
    rhai::serde::from_dynamic::<Value>(&v).or(Ok(Value::Null))
}
