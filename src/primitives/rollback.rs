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
