//! The option maps scripts pass (`sh(cmd, #{timeout: "5s"})`, a check's spec, a metric's
//! provider): read with their names checked (a typo is an error, never ignored), durations and
//! JSON both ways. Below the bindings: the domain types that take such maps use it too.

use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, Map, Position};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A catchable runtime error with `message`.
pub fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE).into()
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
