//! `on_rollback(label, action)` registers an undo; `rollback(reason)` carries the stack out and
//! ends the run (exit 3 when every undo succeeded, 1 otherwise).

use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::json;

use super::{fail, RhaiResult};
use crate::session::{Session, Shared, Stop};
use crate::undo::Action;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("on_rollback", move |label: &str, action: Dynamic| {
        on_rollback(&s, label, action)
    });
    let s = session.clone();
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext, reason: &str| -> RhaiResult<()> {
            let report = crate::undo::rollback(&s, ctx.engine(), reason);
            Err(s.stop(Stop::RolledBack {
                ok: report.ok(),
                reason: reason.to_string(),
            }))
        },
    );
    let s = session.clone();
    engine.register_fn("discard_rollback", move |label: &str| -> i64 {
        let mut undo = s.undo.borrow_mut();
        let before = undo.len();
        let dropped: Vec<u64> = undo
            .iter()
            .filter(|u| u.label == label)
            .map(|u| u.id)
            .collect();
        undo.retain(|u| u.label != label);
        drop(undo);
        if !dropped.is_empty() {
            s.record("undo.discard", json!({ "label": label, "undos": dropped }));
        }
        (before - s.undo.borrow().len()) as i64
    });
    let s = session.clone();
    engine.register_fn("deployments", move || -> Array {
        deployments(&s)
            .into_iter()
            .map(|d| Dynamic::from(d.display().to_string()))
            .collect()
    });
    let s = session.clone();
    engine.register_fn("standing_undos", move |dir: &str| -> RhaiResult<Array> {
        let undos = load_standing(dir)?;
        let _ = &s;
        Ok(undos
            .into_iter()
            .map(|u| {
                let mut m = Map::new();
                m.insert("label".into(), Dynamic::from(u.label));
                m.insert("action".into(), Dynamic::from(u.action.describe()));
                Dynamic::from_map(m)
            })
            .collect())
    });
    let s = session.clone();
    engine.register_fn(
        "rollback_deployment",
        move |ctx: NativeCallContext, dir: &str, reason: &str| -> RhaiResult<()> {
            rollback_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "undo_deployment",
        move |ctx: NativeCallContext, dir: &str, reason: &str| -> RhaiResult<bool> {
            undo_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let s = session.clone();
    engine.register_fn("rollback_stack", move || -> Array {
        s.undo
            .borrow()
            .iter()
            .map(|u| {
                let mut m = Map::new();
                m.insert("label".into(), Dynamic::from(u.label.clone()));
                m.insert("action".into(), Dynamic::from(u.action.describe()));
                Dynamic::from_map(m)
            })
            .collect()
    });
}

/// An action as data: a command line, an argv array, or `#{ function: "module::function", args: [...] }`.
pub fn parse_action(action: &Dynamic) -> RhaiResult<Action> {
    if action.is_string() {
        return Ok(Action::Command {
            line: action.to_string(),
        });
    }
    if let Some(items) = action.read_lock::<Array>() {
        let argv: Vec<String> = items.iter().map(|d| d.to_string()).collect();
        if argv.is_empty() {
            return Err(fail("an undo command array is empty"));
        }
        return Ok(Action::Argv { argv });
    }
    if let Some(m) = action.read_lock::<Map>() {
        let o = super::Opts::new(&m, "on_rollback", &["function", "args"])?;
        let call = o
            .string("function")?
            .ok_or_else(|| fail("an undo map needs `function: \"module::function\"`"))?;
        let Some((module, function)) = call.rsplit_once("::") else {
            return Err(fail(format!(
                "undo `function` names a module function as \"module::function\", not `{call}`"
            )));
        };
        let args = match o.get("args") {
            None => vec![],
            Some(a) => a
                .read_lock::<Array>()
                .ok_or_else(|| fail("undo `args` must be an array"))?
                .iter()
                .map(super::to_json)
                .collect(),
        };
        return Ok(Action::Call {
            module: module.to_string(),
            function: function.to_string(),
            args,
        });
    }
    if action.is_fnptr() {
        return Err(fail(
            "an undo must be data the journal can hold (a command, or #{ function: \"module::function\", args: [...] }), not a closure: \
             a closure dies with the process, and `runbook rollback` must be able to undo what a dead run did",
        ));
    }
    Err(fail(format!(
        "an undo is a command or a call map, not {}",
        action.type_name()
    )))
}

fn on_rollback(session: &Session, label: &str, action: Dynamic) -> RhaiResult<()> {
    let action = parse_action(&action)?;
    let undo = session.push_undo(label.to_string(), action);
    session.record(
        "undo.register",
        json!({ "undo": undo.id, "label": undo.label, "action": undo.action, "stage": session.current_stage() }),
    );
    session.ui.verbose(&format!(
        "  ↩ registered undo: {} ({})",
        undo.label,
        undo.action.describe()
    ));
    Ok(())
}

/// Run directories under the deployments directory, oldest first (dry-runs left out).
pub fn deployments(session: &Session) -> Vec<std::path::PathBuf> {
    let root = crate::runner::deployments_root(None, &session.config);
    let mine = session.run_dir.borrow().clone();
    crate::journal::run_dirs(&root)
        .into_iter()
        .filter(|d| d.is_deployment() && Some(&d.path) != mine.as_ref())
        .map(|d| d.path)
        .collect()
}

fn load_standing(dir: &str) -> RhaiResult<Vec<crate::undo::Undo>> {
    let path = std::path::Path::new(dir).join(crate::journal::FILE_NAME);
    let (records, _) = crate::journal::read(&path).map_err(|e| fail(e.summary()))?;
    let mut out = Vec::new();
    for r in crate::artifacts::standing_undos(&records).into_iter().rev() {
        let action: Action = serde_json::from_value(r["action"].clone()).map_err(|e| {
            fail(format!(
                "{}: an undo record is not readable: {e}",
                path.display()
            ))
        })?;
        out.push(crate::undo::Undo {
            id: r["undo"].as_u64().unwrap_or(0),
            label: r["label"].as_str().unwrap_or("").to_string(),
            action,
        });
    }
    Ok(out)
}

/// Carry out another run's standing undos and end this run: exit 3 when every undo succeeded.
pub fn rollback_deployment(
    session: &Session,
    engine: &rhai::Engine,
    dir: &str,
    reason: &str,
) -> RhaiResult<()> {
    let ok = undo_deployment(session, engine, dir, reason)?;
    Err(session.stop(Stop::RolledBack {
        ok,
        reason: reason.to_string(),
    }))
}

/// Carry out another run's standing undos (last registered first) and record it in both
/// journals; the run goes on (the incident runbook writes its report after). Returns whether
/// every undo succeeded.
pub fn undo_deployment(
    session: &Session,
    engine: &rhai::Engine,
    dir: &str,
    reason: &str,
) -> RhaiResult<bool> {
    let undos = load_standing(dir)?;
    let ids: Vec<u64> = undos.iter().map(|u| u.id).collect();
    session.record(
        "rollback.target",
        json!({ "deployment": dir, "undos": ids }),
    );
    *session.undo.borrow_mut() = undos;
    // Ctrl-C stops it: what was not carried out stays standing in the deployment's journal.
    let report = crate::undo::rollback_until_interrupted(session, engine, reason);
    let path = std::path::Path::new(dir).join(crate::journal::FILE_NAME);
    let redactor = session.effects.borrow().redactor().clone();
    let by_run = session
        .run_dir
        .borrow()
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    match crate::journal::Journal::append_to(&path, redactor.clone()) {
        Ok(mut j) => {
            // Each undo step in the deployment's own journal, as it went.
            for step in &report.steps {
                let _ = j.write(
                    "undo.external",
                    json!({ "undos": [step.undo.id], "label": step.undo.label, "ok": step.error.is_none(),
                            "error": step.error, "reason": reason, "by_run": by_run }),
                );
            }
            log_external(dir, &by_run, &report, &redactor);
            if let Err(e) = crate::artifacts::render(std::path::Path::new(dir), &redactor) {
                session.warn(&e.summary());
            }
        }
        Err(e) => session.warn(&format!(
            "could not record the rollback in {}: {}",
            path.display(),
            e.summary()
        )),
    }
    Ok(report.ok() && report.stopped.is_empty())
}

/// The deployment's own human log says who rolled it back, step by step.
fn log_external(
    dir: &str,
    by_run: &str,
    report: &crate::undo::Report,
    redactor: &crate::secrets::Redactor,
) {
    use std::io::Write;
    let path = std::path::Path::new(dir).join(crate::artifacts::LOG);
    let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) else {
        return;
    };
    let ts = crate::journal::now_rfc3339();
    let clock = ts.get(11..19).unwrap_or(&ts);
    let who = super::prompt::user();
    for step in &report.steps {
        let result = match &step.error {
            None => "ok".to_string(),
            Some(e) => format!("FAILED: {e}"),
        };
        let line = format!(
            "[{clock}] rolled back by {by_run} ({who}): {}: {result}",
            step.undo.label
        );
        let _ = writeln!(f, "{}", redactor.redact(&line));
    }
    for undo in &report.stopped {
        let line = format!(
            "[{clock}] rollback by {by_run} ({who}) stopped by Ctrl-C: {}: not carried out, still standing",
            undo.label
        );
        let _ = writeln!(f, "{}", redactor.redact(&line));
    }
}
