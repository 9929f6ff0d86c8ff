//! The functions scripts call. Each family has a file; each function parses its arguments and
//! passes its effect through the session's gate.

pub mod analyze;
pub mod check;
pub mod contract;
pub mod files;
pub mod helpers;
pub mod http;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod prompt;
pub mod rollback;
pub mod shell;
pub mod stage;

use rhai::{Dynamic, EvalAltResult, Position};

use crate::session::{GateError, Session, Stop};

pub use crate::opts::{fail, from_json, to_duration, to_json, Opts, RhaiResult};

/// Turn a gate error into what the script sees: a catchable error, or a stop.
pub fn gate_error(session: &Session, e: GateError) -> Box<EvalAltResult> {
    match e {
        GateError::Failed(f) => fail(f.0),
        GateError::Fatal(err) => session.stop(Stop::Error(err)),
        GateError::Halt => EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into(),
    }
}

/// Register every primitive on `engine`.
pub fn register(engine: &mut rhai::Engine, session: &crate::session::Shared) {
    shell::register(engine, session);
    prompt::register(engine, session);
    check::register(engine, session);
    files::register(engine, session);
    stage::register(engine, session);
    rollback::register(engine, session);
    notify::register(engine, session);
    helpers::register(engine, session);
    http::register(engine, session);
    metrics::register(engine, session);
    analyze::register(engine, session);
    monitor::register(engine, session);
    contract::register(engine, session);
}
