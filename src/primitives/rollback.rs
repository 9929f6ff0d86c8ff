//! `on_rollback(label, action)` registers an undo; `rollback(reason)` carries the stack out and
//! ends the run (exit 3 when every undo succeeded, 1 otherwise).

use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::json;

use super::{fail, RhaiResult};
use crate::journal::Record;
use crate::record::UndoExternal;
use crate::session::{Session, Shared, Stop};
use crate::undo::Action;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn(
        "on_rollback",
        move |ctx: NativeCallContext, label: &str, action: Dynamic| {
            on_rollback(&s, ctx.engine(), label, action)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext, reason: &str| -> RhaiResult<()> {
            let report = crate::unwind::rollback(&s, ctx.engine(), reason);
            Err(s.stop(Stop::RolledBack {
                ok: report.ok(),
                reason: reason.to_string(),
                broken: false,
            }))
        },
    );
    // `rollback(reason, #{ broken: true })`: the run itself broke (its monitoring could not
    // measure), so a clean rollback is exit 5, not 3 (the release was not judged bad).
    let s = session.clone();
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext, reason: &str, opts: Map| -> RhaiResult<()> {
            let o = super::Opts::new(&opts, "rollback", &["broken"])?;
            let broken = o
                .get("broken")
                .and_then(|b| b.as_bool().ok())
                .unwrap_or(false);
            let report = crate::unwind::rollback(&s, ctx.engine(), reason);
            Err(s.stop(Stop::RolledBack {
                ok: report.ok(),
                reason: reason.to_string(),
                broken,
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
            s.record(crate::journal::Record::UndoDiscard {
                label: label.to_string(),
                undos: dropped,
            });
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
        let (undos, _) = load_standing(dir)?;
        let _ = &s;
        // In the order they will run: last registered first.
        Ok(undos
            .into_iter()
            .rev()
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

fn on_rollback(
    session: &Session,
    engine: &rhai::Engine,
    label: &str,
    action: Dynamic,
) -> RhaiResult<()> {
    // A secret in an undo is kept by its name, so the undo can run from the journal (which never
    // holds the value) in another process that is given the secret.
    let redactor = session.effects.borrow().redactor().clone();
    let action = parse_action(&action)?;
    // What a module's undo will run, when the module can say (`undo_command(function, args)`,
    // as the script adapter does): rollback-plan.md shows the command, not only the call.
    let shows = match &action {
        Action::Call {
            module,
            function,
            args,
        } => crate::unwind::call(
            session,
            engine,
            module,
            "undo_command",
            &[json!(function), json!(args)],
        )
        .ok()
        .and_then(|v| v.as_str().map(|c| redactor.redact(c))),
        _ => None,
    };
    let action = action
        .map_text(&mut |t| Ok(redactor.refer(t)))
        .map_err(fail)?;
    let undo = session.push_undo(label.to_string(), action);
    session.record(Record::UndoRegister {
        undo: undo.id,
        label: undo.label.clone(),
        action: undo.action.clone(),
        shows,
        stage: session.current_stage(),
    });
    session.ui.verbose(&format!(
        "  ↩ registered undo: {} ({})",
        undo.label,
        undo.action.describe()
    ));
    Ok(())
}

/// Run directories under the deployments directory, oldest first (dry-runs left out).
pub fn deployments(session: &Session) -> Vec<std::path::PathBuf> {
    let root = session.deployments_root();
    let mine = session.run_dir.borrow().clone();
    // A run that rolled another back (`runbook rollback`, the incident runbook, even one killed
    // before it got to its target) is not itself a deployment to roll back: after a killed
    // rollback, the next one finds the deployment.
    crate::journal::run_dirs(&root)
        .into_iter()
        .filter(|d| d.is_deployment() && !d.rolls_back_another())
        .filter(|d| !d.is_rollback_tool())
        .filter(|d| Some(&d.path) != mine.as_ref())
        .map(|d| d.path)
        .collect()
}

/// An undo a killed `runbook rollback` recorded as started and never as finished, and what that
/// rollback's own journal says of it.
#[derive(Debug)]
struct Unfinished {
    id: u64,
    by_run: String,
    state: Seen,
}

#[derive(Debug, PartialEq)]
enum Seen {
    /// Its result is in the rollback's journal: it happened, and succeeded.
    Done,
    /// It failed there: it still stands, and is simply run again.
    Failed,
    /// Announced and never finished (or that journal is gone): it may or may not have happened;
    /// the process group its command started, if it did.
    Unknown(Option<(i32, Option<crate::process::Started>)>),
    /// Never announced there: it did not happen.
    NotStarted,
}

/// What the rollback run in `by_run` recorded of undo `id`.
fn seen_in(by_run: &str, id: u64) -> Seen {
    let path = std::path::Path::new(by_run).join(crate::journal::FILE_NAME);
    let Ok((entries, _)) = crate::journal::read_entries(&path) else {
        return Seen::Unknown(None);
    };
    let Some(effect) = entries.iter().rev().find_map(|e| match &e.record {
        Record::EffectIntent {
            effect,
            kind,
            intent,
            ..
        } if kind == "undo" && intent["undo"].as_u64() == Some(id) => Some(*effect),
        _ => None,
    }) else {
        return Seen::NotStarted;
    };
    let result = entries.iter().find_map(|e| match &e.record {
        Record::EffectResult(r) if r.effect == effect => Some(r),
        _ => None,
    });
    match result {
        Some(r) if r.ok && r.dry_run != Some(true) => Seen::Done,
        Some(_) => Seen::Failed,
        None => Seen::Unknown(crate::effects::child_of(&entries, effect)),
    }
}

/// The undo steps a run left standing, last registered first, and the one a killed
/// `runbook rollback` was carrying out (recorded as started, never as finished), if any.
fn load_standing(dir: &str) -> RhaiResult<(Vec<crate::undo::Undo>, Option<Unfinished>)> {
    let path = std::path::Path::new(dir).join(crate::journal::FILE_NAME);
    let (entries, _) = crate::journal::read_entries(&path).map_err(|e| fail(e.summary()))?;
    // An undo record whose action this version cannot read would be left out silently.
    if let Some(why) = entries.iter().find_map(|e| e.record.unreadable_undo()) {
        return Err(fail(format!(
            "{}: an undo record is not readable: {why}",
            path.display()
        )));
    }
    let out: Vec<crate::undo::Undo> = crate::undo::standing(&entries)
        .into_iter()
        .rev()
        .map(|s| s.undo)
        .collect();
    let mut started: Vec<(u64, String)> = Vec::new();
    for e in &entries {
        match &e.record {
            Record::UndoExternalStart { undos, by_run, .. } => {
                started.extend(undos.iter().map(|id| (*id, by_run.clone())));
            }
            Record::UndoExternal(x) => started.retain(|(id, _)| !x.undos.contains(id)),
            _ => {}
        }
    }
    let in_flight = started
        .into_iter()
        .rev()
        .find(|(id, _)| out.iter().any(|u| u.id == *id))
        .map(|(id, by_run)| Unfinished {
            id,
            state: seen_in(&by_run, id),
            by_run,
        });
    Ok((out, in_flight))
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
        broken: false,
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
    let (mut undos, in_flight) = load_standing(dir)?;
    let path = std::path::Path::new(dir).join(crate::journal::FILE_NAME);
    let redactor = session.effects.borrow().redactor().clone();
    let by_run = session
        .run_dir
        .borrow()
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    // The deployment's own journal hears of each undo as it starts and as it ends, so a rollback
    // killed halfway is finished by the next one without redoing what it did. A dry-run changes
    // nothing there: a run that only plans (the session decides) does not open that journal. A
    // journal that cannot be written stops the rollback before it acts.
    let mut target = session
        .plan_only(|| Ok(None))
        .unwrap_or_else(|| crate::journal::Journal::append_to(&path, redactor.clone()).map(Some))
        .map_err(|e| {
            fail(format!(
                "cannot record the rollback in {}, so it was not started: {}",
                path.display(),
                e.summary()
            ))
        })?;
    let mut skipped = None;
    let in_flight = match in_flight {
        // The killed rollback's own journal has the undo's result: it happened.
        Some(u) if u.state == Seen::Done => {
            undos.retain(|x| x.id != u.id);
            if let Some(j) = &mut target {
                let _ = j.append(&Record::UndoExternal(UndoExternal {
                    undos: vec![u.id],
                    label: None,
                    ok: true,
                    confirmed_by: Some(u.by_run.clone()),
                    skipped: false,
                    error: None,
                    reason: reason.to_string(),
                    by_run: by_run.clone(),
                }));
            }
            None
        }
        Some(Unfinished {
            id,
            state: Seen::Unknown(child),
            ..
        }) => {
            // Its command may still be running: never two copies at once.
            if let Some((group, start)) = child {
                session
                    .settle_in_flight_child(group, start)
                    .map_err(|e| super::gate_error(session, e))?;
            }
            Some(id)
        }
        _ => None,
    };
    if let Some(id) = in_flight {
        let (label, answer) = crate::unwind::ask_in_flight(session, &undos, id);
        match answer {
            Some(true) => {}
            Some(false) => {
                undos.retain(|u| u.id != id);
                skipped = Some((id, label));
            }
            None => {
                return Err(session.stop(Stop::Error(crate::error::Error::Usage(format!(
                    "the last rollback of `{dir}` died while undoing `{label}`, and there is nobody to ask whether to run it again\n  {}",
                    crate::unwind::IN_FLIGHT_HELP
                )))))
            }
        }
    }
    let ids: Vec<u64> = undos.iter().map(|u| u.id).collect();
    session.record(Record::RollbackTarget {
        deployment: dir.to_string(),
        undos: ids,
        in_flight,
        skipped: skipped.as_ref().map(|s| s.0),
    });
    if let (Some(j), Some((id, label))) = (&mut target, &skipped) {
        let _ = j.append(&Record::UndoExternal(UndoExternal {
            undos: vec![*id],
            label: Some(label.clone()),
            ok: true,
            confirmed_by: None,
            skipped: true,
            error: None,
            reason: reason.to_string(),
            by_run: by_run.clone(),
        }));
    }
    *session.undo.borrow_mut() = undos;
    // Ctrl-C stops it: what was not carried out stays standing in the deployment's journal.
    let report = crate::unwind::rollback_watched_until_interrupted(
        session,
        engine,
        reason,
        &mut |undo, progress| {
            let Some(j) = &mut target else { return };
            let written = match progress {
                crate::undo::Progress::Start => j.append(&Record::UndoExternalStart {
                    undos: vec![undo.id],
                    label: undo.label.clone(),
                    reason: reason.to_string(),
                    by_run: by_run.clone(),
                }),
                crate::undo::Progress::Done(error) => {
                    j.append(&Record::UndoExternal(UndoExternal {
                        undos: vec![undo.id],
                        label: Some(undo.label.clone()),
                        ok: error.is_none(),
                        confirmed_by: None,
                        skipped: false,
                        error: Some(json!(error)),
                        reason: reason.to_string(),
                        by_run: by_run.clone(),
                    }))
                }
            };
            if let Err(e) = written {
                session.warn(&format!(
                    "could not record the undo in {}: {}",
                    path.display(),
                    e.summary()
                ));
            }
        },
    );
    if target.is_some() {
        log_external(dir, &by_run, &report, &redactor);
        if let Err(e) = crate::artifacts::render(std::path::Path::new(dir), &redactor) {
            session.warn(&e.summary());
        }
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
    let who = crate::identity::user();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_record_this_version_cannot_read_stops_the_rollback_naming_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::journal::FILE_NAME);
        let mut j = crate::journal::Journal::create(&path, Default::default()).unwrap();
        j.append(&Record::UndoRegister {
            undo: 1,
            label: "scale back".into(),
            action: Action::Command {
                line: "echo undo".into(),
            },
            shows: None,
            stage: None,
        })
        .unwrap();
        drop(j);
        let shown = dir.path().display().to_string();
        let (undos, in_flight) = load_standing(&shown).unwrap();
        assert_eq!(
            undos.iter().map(|u| u.label.as_str()).collect::<Vec<_>>(),
            ["scale back"]
        );
        assert!(in_flight.is_none());

        // A later version's undo, of a kind this one does not know.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(
            "{\"seq\":2,\"ts\":\"t\",\"type\":\"undo.register\",\"undo\":2,\"label\":\"l\",\"action\":{\"kind\":\"teleport\"}}\n",
        );
        std::fs::write(&path, text).unwrap();
        let err = load_standing(&shown).unwrap_err().to_string();
        assert!(
            err.contains("an undo record is not readable: unknown variant `teleport`"),
            "{err}"
        );
    }
}
