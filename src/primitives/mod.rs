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

use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, Map, Position};

use crate::session::{GateError, Session, Stop};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A catchable runtime error with `message`.
pub fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE).into()
}

/// Turn a gate error into what the script sees: a catchable error, or a stop.
pub fn gate_error(session: &Session, e: GateError) -> Box<EvalAltResult> {
    match e {
        GateError::Failed(f) => fail(f.0),
        GateError::Fatal(err) => session.stop(Stop::Error(err)),
        GateError::Halt => EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into(),
    }
}

/// Options given to a primitive as a map; unknown keys are errors (a typo must not pass).
pub struct Opts<'a> {
    map: &'a Map,
    what: &'static str,
}

impl<'a> Opts<'a> {
    pub fn new(map: &'a Map, what: &'static str, allowed: &[&str]) -> RhaiResult<Opts<'a>> {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = crate::error::did_you_mean(k, allowed.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(fail(format!(
                    "`{what}` has no option `{k}`{hint}; its options are: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Opts { map, what })
    }

    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, expected: &str, v: &Dynamic) -> Box<EvalAltResult> {
        fail(format!(
            "option `{key}` of `{}` must be {expected}, not {}",
            self.what,
            v.type_name()
        ))
    }

    pub fn string(&self, key: &str) -> RhaiResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn bool(&self, key: &str) -> RhaiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|_| self.wrong(key, "true or false", v)),
        }
    }

    pub fn int(&self, key: &str) -> RhaiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|_| self.wrong(key, "a whole number", v)),
        }
    }

    pub fn duration(&self, key: &str) -> RhaiResult<Option<Duration>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => to_duration(v)
                .map(Some)
                .map_err(|e| fail(format!("option `{key}` of `{}`: {e}", self.what))),
        }
    }
}

/// "5s", "500ms", "10m", or a number of milliseconds.
pub fn to_duration(v: &Dynamic) -> Result<Duration, String> {
    if let Ok(ms) = v.as_int() {
        return u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| format!("a duration cannot be negative ({ms})"));
    }
    if v.is_string() {
        return crate::config::parse_duration(&v.to_string());
    }
    Err(format!(
        "expected a duration such as \"5s\", not {}",
        v.type_name()
    ))
}

pub fn to_json(v: &Dynamic) -> serde_json::Value {
    rhai::serde::from_dynamic(v).unwrap_or(serde_json::Value::Null)
}

pub fn from_json(v: &serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
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
