//! `stage(name, || { ... })`: a named, timed section of the run, in the output, the journal and
//! the artifacts.

use rhai::{Dynamic, FnPtr, NativeCallContext};

use super::RhaiResult;
use crate::journal::Record;
use crate::session::Shared;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn(
        "stage",
        move |ctx: NativeCallContext, name: &str, body: FnPtr| -> RhaiResult<Dynamic> {
            s.ui.banner(name);
            s.effects.borrow_mut().log(&format!("== {name}"));
            s.record(Record::StageStart {
                stage: name.to_string(),
            });
            s.stages.borrow_mut().push(name.to_string());
            let started = crate::clock::Instant::now();
            let result = body.call_within_context::<Dynamic>(&ctx, ());
            s.stages.borrow_mut().pop();
            let ms = started.elapsed().as_millis() as u64;
            let took = crate::ui::format_duration(started.elapsed());
            match &result {
                Ok(_) => {
                    s.record(Record::StageEnd {
                        stage: name.to_string(),
                        ok: true,
                        ms,
                        error: None,
                    });
                    s.say_styled(&format!("✓ {name} ({took})"), |ui, t| ui.green(t));
                }
                Err(e) => {
                    let error = crate::engine::describe_runtime_error(e);
                    s.record(Record::StageEnd {
                        stage: name.to_string(),
                        ok: false,
                        ms,
                        error: Some(error),
                    });
                    s.say_styled(&format!("✗ {name} ({took})"), |ui, t| ui.red(t));
                }
            }
            result
        },
    );
}
