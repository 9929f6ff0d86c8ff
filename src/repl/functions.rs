//! The REPL's own functions, registered on its engine: the emergency actions made global,
//! `status`, `rollback`, live control, `incident` and `resolve`.

use std::path::Path;
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Scope};
use serde_json::json;

use crate::journal::Record;
use crate::modules::Sources;
use crate::session::Shared;

use super::deployment::{control, refuse_if_alive, refuse_if_damaged, rollback, status};
use super::incident::{open_incident, resolve};
use super::State;

/// The REPL's own functions on an engine with no deployment attached: for the catalogue's test
/// of what is really registered.
pub fn register_detached(engine: &mut Engine, session: &Shared, sources: &Sources) {
    register(engine, session, &Rc::new(State::default()), sources);
}

pub(super) fn register(
    engine: &mut Engine,
    session: &Shared,
    state: &Rc<State>,
    sources: &Sources,
) {
    // The emergency actions are global here: one call each.
    if let Some((_, text)) = crate::embedded::STDLIB
        .iter()
        .find(|(f, _)| *f == "emergency.rhai")
    {
        let name = crate::modules::shipped_name("stdlib", "emergency.rhai");
        // maintenance(on) is the stdlib's, wrapped (below) so that this session remembers it.
        let text = text
            .replacen("fn maintenance(on)", "fn stdlib_maintenance(on)", 1)
            .replacen("fn scale(count)", "fn stdlib_scale(count)", 1);
        sources.insert(&name, &text);
        let compiled = engine.compile(&text);
        if let Err(e) = &compiled {
            // A shipped module that does not compile is our bug: say it rather than lose the
            // emergency actions without a word.
            session.warn(&format!("the emergency actions are not available: {e}"));
        }
        if let Ok(mut ast) = compiled {
            ast.set_source(name.clone());
            if let Ok(mut m) = rhai::Module::eval_ast_as_new(Scope::new(), &ast, engine) {
                m.set_id(name);
                m.build_index();
                engine.register_global_module(m.into());
            }
            // Leaving with maintenance mode on gets a reminder.
            let ast = Rc::new(ast);
            let ast_for_scale = ast.clone();
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                "maintenance",
                move |ctx: NativeCallContext, on: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
                    refuse_if_alive(&s, st.attached.as_deref(), "maintenance()")?;
                    let flag = on.as_bool().ok();
                    let r = ctx.engine().call_fn::<Dynamic>(
                        &mut Scope::new(),
                        &ast,
                        "stdlib_maintenance",
                        (on,),
                    )?;
                    if let Some(flag) = flag {
                        st.maintenance.set(Some(flag));
                        s.record(Record::ReplMaintenance { on: json!(flag) });
                    }
                    Ok(r)
                },
            );
            // scale(n) changes the deployment too: not while its run is alive.
            let (s, st, ast) = (session.clone(), state.clone(), ast_for_scale);
            engine.register_fn(
                "scale",
                move |ctx: NativeCallContext,
                      count: Dynamic|
                      -> Result<Dynamic, Box<EvalAltResult>> {
                    refuse_if_alive(&s, st.attached.as_deref(), "scale()")?;
                    ctx.engine().call_fn::<Dynamic>(
                        &mut Scope::new(),
                        &ast,
                        "stdlib_scale",
                        (count,),
                    )
                },
            );
        }
    }

    // The versions in play, for metrics().
    let st = state.clone();
    engine.register_fn("attached_versions", move || -> rhai::Array {
        st.versions.iter().cloned().map(Dynamic::from).collect()
    });
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn("status", move || -> Result<Dynamic, Box<EvalAltResult>> {
        status(&s, &st)
    });
    // Live control of the attached deployment's run, while it is alive.
    {
        use crate::lock::control::Action;
        let (s, st) = (session.clone(), state.clone());
        engine.register_fn(
            "abort",
            move |reason: &str| -> Result<String, Box<EvalAltResult>> {
                control(&s, &st, Action::Abort, reason)
            },
        );
        for action in [Action::Pause, Action::Resume, Action::Promote] {
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                action.as_str(),
                move || -> Result<String, Box<EvalAltResult>> { control(&s, &st, action, "") },
            );
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                action.as_str(),
                move |reason: &str| -> Result<String, Box<EvalAltResult>> {
                    control(&s, &st, action, reason)
                },
            );
        }
    }
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext| -> Result<bool, Box<EvalAltResult>> {
            rollback(&s, &st, ctx.engine(), None)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext, opts: rhai::Map| -> Result<bool, Box<EvalAltResult>> {
            let o = crate::primitives::Opts::new(&opts, "rollback", &["force"])?;
            let force = o
                .string("force")?
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| {
                    crate::primitives::fail(
                        "`rollback(#{ force: ... })` needs the reason it is safe, as text",
                    )
                })?;
            rollback(&s, &st, ctx.engine(), Some(&force))
        },
    );
    // The same guard on the primitives that undo a named deployment.
    let s = session.clone();
    engine.register_fn(
        "undo_deployment",
        move |ctx: NativeCallContext,
              dir: &str,
              reason: &str|
              -> Result<bool, Box<EvalAltResult>> {
            refuse_if_alive(&s, Some(Path::new(dir)), "undo_deployment()")?;
            refuse_if_damaged(Path::new(dir), "undo_deployment()")?;
            crate::primitives::rollback::undo_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "rollback_deployment",
        move |ctx: NativeCallContext, dir: &str, reason: &str| -> Result<(), Box<EvalAltResult>> {
            refuse_if_alive(&s, Some(Path::new(dir)), "rollback_deployment()")?;
            refuse_if_damaged(Path::new(dir), "rollback_deployment()")?;
            crate::primitives::rollback::rollback_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "incident",
        move |title: &str, severity: &str| -> Result<String, Box<EvalAltResult>> {
            open_incident(&s, &st, title, severity)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "incident",
        move |title: &str| -> Result<String, Box<EvalAltResult>> {
            open_incident(&s, &st, title, crate::incident::DEFAULT_SEVERITY)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn("resolve", move || -> Result<String, Box<EvalAltResult>> {
        resolve(&s, &st, None)
    });
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "resolve",
        move |cause: &str,
              impact: &str,
              remediation: &str,
              prevention: &str|
              -> Result<String, Box<EvalAltResult>> {
            resolve(
                &s,
                &st,
                Some([cause, impact, remediation, prevention].map(str::to_string)),
            )
        },
    );
}
