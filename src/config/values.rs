//! The config's checked values: durations as written, the fixed sets of names, trigger names,
//! and the bounds a number must keep (serde's `deserialize_with`).

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// A duration as written in the config (`30s`, `1h 30m`): checked when the config is loaded, so a
/// value that is not one is an error naming its key and line before anything runs. Scripts see
/// it as written (`config("monitoring.interval")` is `"1s"`); Rust reads it with `get()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

impl Duration {
    /// A default written in this file; it is a duration.
    pub(super) fn known(text: &str) -> Duration {
        Duration::parse(text).unwrap_or_else(|e| unreachable!("default duration {text}: {e}"))
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        Ok(Duration {
            value: parse_duration(text)?,
            text: text.to_string(),
        })
    }

    pub fn get(&self) -> std::time::Duration {
        self.value
    }
}

/// As text, for the code that still reads the value as written.
impl std::ops::Deref for Duration {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string with a duration, e.g. \"500ms\", \"5s\", \"10m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Values with a fixed set of names: serde refuses any other with the key path, the line and the
/// accepted names (`unknown variant `x`, expected one of ...`); scripts see the same names.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// The strategies the shipped workflow runs.
    Strategy { BlueGreen = "blue-green", Rolling = "rolling", Canary = "canary", FeatureFlag = "feature-flag" } default BlueGreen
}

names! {
    /// A blue-green colour.
    Colour { Blue = "blue", Green = "green" } default Blue
}

names! {
    /// What `runbook resume` does with the effect a dead run was in the middle of.
    InFlight { Rerun = "rerun", Skip = "skip", Rollback = "rollback" } default Rollback
}

names! {
    /// What an inconclusive monitoring window leads to when nobody is there to ask.
    OnInconclusive { Rollback = "rollback", Continue = "continue" } default Rollback
}

/// The triggers the shipped monitor (stdlib/monitor.rhai) judges; with the names of the team's
/// `monitoring.metrics`, the keys `triggers.on_failure` accepts.
pub const SHIPPED_TRIGGERS: &[&str] = &["error_rate", "response_time", "health", "cpu", "memory"];

thread_local! {
    /// The `monitoring.metrics` names of the config being deserialized (see `TriggerName`).
    static METRIC_NAMES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Deserialize `v`'s schema with its own `monitoring.metrics` names known, so that a key of
/// `triggers.on_failure` is checked against them where it is read (with its line).
pub(super) fn knowing_metrics<T>(v: &Value, f: impl FnOnce() -> T) -> T {
    let names: Vec<String> = v
        .get("monitoring")
        .and_then(|m| m.get("metrics"))
        .and_then(Value::as_sequence)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let before = METRIC_NAMES.with(|n| std::mem::replace(&mut *n.borrow_mut(), names));
    let out = f();
    METRIC_NAMES.with(|n| *n.borrow_mut() = before);
    out
}

/// A key of `triggers.on_failure`: a trigger the monitor judges (the shipped ones, or a
/// `monitoring.metrics` name). Anything else is a typo that would be ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TriggerName(pub String);

impl<'de> Deserialize<'de> for TriggerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TriggerName, D::Error> {
        let name = String::deserialize(d)?;
        let team = METRIC_NAMES.with(|n| n.borrow().clone());
        if SHIPPED_TRIGGERS.contains(&name.as_str()) || team.contains(&name) {
            return Ok(TriggerName(name));
        }
        let known: Vec<String> = SHIPPED_TRIGGERS
            .iter()
            .map(|s| s.to_string())
            .chain(team)
            .map(|s| format!("`{s}`"))
            .collect();
        Err(serde::de::Error::custom(format!(
            "unknown trigger `{name}`, expected one of {} (the shipped triggers and the names in `monitoring.metrics`)",
            known.join(", ")
        )))
    }
}

fn bounded<'de, D, T>(d: D, lo: T, hi: T, what: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display + Copy,
{
    let v = T::deserialize(d)?;
    if v < lo || v > hi {
        return Err(serde::de::Error::custom(format!("`{v}` is not {what}")));
    }
    Ok(v)
}

/// A duration that cannot be 0 (a measurement interval, a lease, a query range).
pub(super) fn nonzero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Duration::deserialize(d)?;
    if v.get().is_zero() {
        return Err(serde::de::Error::custom(format!(
            "`{}` is too short: it must be longer than 0",
            v.text
        )));
    }
    Ok(v)
}

pub(super) fn nonzero_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    nonzero(d).map(Some)
}

/// A duration kubectl reads too (Go's `time.ParseDuration`: `5m`, `90s`, `1h30m`, no spaces).
pub(super) fn go_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Duration::deserialize(d)?;
    let mut rest = v.text.as_str();
    let mut ok = !rest.is_empty();
    while ok && !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let unit = ["ns", "us", "µs", "ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest[digits..].starts_with(u));
        match unit {
            Some(u) if digits > 0 => rest = &rest[digits + u.len()..],
            _ => ok = false,
        }
    }
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "`{}` is not a duration kubectl reads; write it as kubectl does, e.g. \"5m\", \"90s\", \"1h30m\"",
            v.text
        )));
    }
    Ok(v)
}

/// A share of traffic or of instances: 1 to 100.
pub(super) fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 1, 100, "a percent from 1 to 100")
}

pub(super) fn percent_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    percent(d).map(Some)
}

pub(super) fn percents<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    struct P(#[serde(deserialize_with = "percent")] u32);
    Ok(Vec::<P>::deserialize(d)?.into_iter().map(|p| p.0).collect())
}

/// A count that must be at least 1.
pub(super) fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 1, u32::MAX, "a whole number of at least 1")
}

/// A fraction: 0 to 1 (0.05 is 5%).
pub(super) fn fraction<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    bounded(d, 0.0, 1.0, "a fraction from 0 to 1 (0.05 is 5%)")
}

/// A score: 0 to 100.
pub(super) fn score<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    bounded(d, 0.0, 100.0, "a score from 0 to 100")
}

/// A significance level: above 0, below 1.
pub(super) fn alpha<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v > 0.0 && v < 1.0) {
        return Err(serde::de::Error::custom(format!(
            "`{v}` is not a significance level (above 0, below 1, e.g. 0.05)"
        )));
    }
    Ok(v)
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"500ms\", \"5s\", \"10m\"")
    })
}
