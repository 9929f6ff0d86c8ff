//! `stage(name, || { ... })`: a named, timed section of the run, in the output, the journal and
//! the artifacts.

use std::time::Instant;

use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde_json::json;

use super::RhaiResult;
use crate::session::Shared;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn(
        "stage",
        move |ctx: NativeCallContext, name: &str, body: FnPtr| -> RhaiResult<Dynamic> {
            s.ui.banner(name);
            s.effects.borrow_mut().log(&format!("== {name}"));
            s.record("stage.start", json!({ "stage": name }));
            s.stages.borrow_mut().push(name.to_string());
            let started = Instant::now();
            let result = body.call_within_context::<Dynamic>(&ctx, ());
            s.stages.borrow_mut().pop();
            let ms = started.elapsed().as_millis() as u64;
            let took = crate::ui::format_duration(started.elapsed());
            match &result {
                Ok(_) => {
                    s.record("stage.end", json!({ "stage": name, "ok": true, "ms": ms }));
                    s.say_styled(&format!("✓ {name} ({took})"), |ui, t| ui.green(t));
                }
                Err(e) => {
                    let error = crate::engine::describe_runtime_error(e);
                    s.record(
                        "stage.end",
                        json!({ "stage": name, "ok": false, "ms": ms, "error": error }),
                    );
                    s.say_styled(&format!("✗ {name} ({took})"), |ui, t| ui.red(t));
                }
            }
            result
        },
    );
}
