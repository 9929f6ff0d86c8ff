//! The analysis engine: "is this release healthy?".
//!
//! A metric is measured every `interval`; each measurement is classified (success, failure,
//! inconclusive, error); per-metric limits turn the tally into a verdict. The semantics follow
//! Argo Rollouts' analysis (failure_limit, inconclusive_limit, consecutive_error_limit; a failure
//! condition wins over a success condition), with the cases where users got hurt made explicit:
//! no data, NaN, an empty vector and several series are each an outcome the team chooses
//! (pass, fail, inconclusive), never a silent pass; a metric that never once succeeded is not a
//! success.
//!
//! This module is pure: providers (provider.rs) produce [`Observed`] values, the primitive
//! (primitives/analyze/) runs the clock, the gate and the screen. judge.rs is the second judge,
//! canary against baseline.

pub mod judge;
pub mod provider;
pub mod spec;
pub mod text;

use serde::{Deserialize, Serialize};

/// What one provider read produced, before any condition is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// One number (a scalar, or the single series that was expected).
    Value(f64),
    /// The provider answered, but nothing was there to measure (why).
    NoData(String),
    /// An empty result vector.
    Empty,
    /// Not a number (0/0 rates, for one).
    NaN,
    /// Several series where one was expected.
    Multiple(usize),
    /// The provider failed: down, too slow, an HTTP error, an error answer, garbage.
    Error(String),
}

impl Observed {
    /// A number becomes `NaN` when it is one: a NaN value is its own outcome.
    pub fn number(v: f64) -> Observed {
        if v.is_nan() {
            Observed::NaN
        } else {
            Observed::Value(v)
        }
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Observed::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// A short description for the screen and the journal.
    pub fn describe(&self) -> String {
        match self {
            Observed::Value(v) => format!("{v}"),
            Observed::NoData(why) => format!("no data ({why})"),
            Observed::Empty => "no data (empty result)".into(),
            Observed::NaN => "NaN".into(),
            Observed::Multiple(n) => format!("{n} series where one was expected"),
            Observed::Error(why) => format!("error: {why}"),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Observed::Value(v) if v.is_finite() => json!({ "outcome": "value", "value": v }),
            Observed::Value(v) => json!({ "outcome": "value", "value": v.to_string() }),
            Observed::NoData(why) => json!({ "outcome": "no_data", "why": why }),
            Observed::Empty => json!({ "outcome": "empty" }),
            Observed::NaN => json!({ "outcome": "nan" }),
            Observed::Multiple(n) => json!({ "outcome": "multiple", "series": n }),
            Observed::Error(why) => json!({ "outcome": "error", "why": why }),
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Observed {
        let why = || {
            v.get("why")
                .and_then(|w| w.as_str())
                .unwrap_or("")
                .to_string()
        };
        match v.get("outcome").and_then(|o| o.as_str()) {
            Some("value") => match v.get("value") {
                Some(serde_json::Value::Number(n)) => {
                    Observed::number(n.as_f64().unwrap_or(f64::NAN))
                }
                Some(serde_json::Value::String(s)) => {
                    Observed::number(s.parse().unwrap_or(f64::NAN))
                }
                _ => Observed::Error("a recorded value is missing".into()),
            },
            Some("no_data") => Observed::NoData(why()),
            Some("empty") => Observed::Empty,
            Some("nan") => Observed::NaN,
            Some("multiple") => {
                Observed::Multiple(v.get("series").and_then(|n| n.as_u64()).unwrap_or(2) as usize)
            }
            Some("error") => Observed::Error(why()),
            _ => Observed::Error(format!("unreadable recorded outcome: {v}")),
        }
    }
}

/// The class of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Success,
    Failure,
    Inconclusive,
    Error,
}

impl Class {
    /// The worse of two: failure, then error, then inconclusive, then success (the order
    /// `combine` gives verdicts).
    pub fn worse(self, other: Class) -> Class {
        let rank = |c: Class| match c {
            Class::Failure => 3,
            Class::Error => 2,
            Class::Inconclusive => 1,
            Class::Success => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Failure => "failure",
            Class::Inconclusive => "inconclusive",
            Class::Error => "error",
        }
    }
}

/// What a data outcome (no data, empty, NaN, several series) counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataOutcome {
    Pass,
    Fail,
    #[default]
    Inconclusive,
}

impl DataOutcome {
    fn class(self) -> Class {
        match self {
            DataOutcome::Pass => Class::Success,
            DataOutcome::Fail => Class::Failure,
            DataOutcome::Inconclusive => Class::Inconclusive,
        }
    }
}

/// The team's choice for each data outcome. Every default is `inconclusive`: no data is never a
/// pass unless someone wrote that down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataPolicy {
    pub no_data: DataOutcome,
    pub empty: DataOutcome,
    pub nan: DataOutcome,
    pub multiple: DataOutcome,
}

/// A threshold condition such as `< 0.05` or `>= 2000`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Threshold {
    /// Parse `< 0.05`, `<=2000`, `> 0`, `== 1`, `!= 0`.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        for (sym, op) in ops {
            if let Some(rest) = t.strip_prefix(sym) {
                let value: f64 = rest.trim().parse().map_err(|_| {
                    format!(
                        "`{text}`: `{}` is not a number (write e.g. \"< 0.05\")",
                        rest.trim()
                    )
                })?;
                if value.is_nan() {
                    return Err(format!("`{text}`: a threshold cannot be NaN"));
                }
                return Ok(Threshold { op, value });
            }
        }
        Err(format!(
            "`{text}` is not a condition: write an operator and a number, e.g. \"< 0.05\" or \">= 2000\""
        ))
    }

    pub fn holds(&self, v: f64) -> bool {
        match self.op {
            Op::Lt => v < self.value,
            Op::Le => v <= self.value,
            Op::Gt => v > self.value,
            Op::Ge => v >= self.value,
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
        }
    }
}

/// Classify one observation, given what its conditions said about the value (`None`: the
/// condition is not set). As in Argo: a failure condition that holds is a failure; a success
/// condition that holds is a success; with both set and neither holding the measurement is
/// inconclusive; with only one set, the other outcome is its negation; with none, a value is a
/// success (the metric is only observed).
pub fn classify(
    observed: &Observed,
    success: Option<bool>,
    failure: Option<bool>,
    policy: &DataPolicy,
) -> Class {
    match observed {
        Observed::Error(_) => Class::Error,
        Observed::NoData(_) => policy.no_data.class(),
        Observed::Empty => policy.empty.class(),
        Observed::NaN => policy.nan.class(),
        Observed::Multiple(_) => policy.multiple.class(),
        Observed::Value(_) => match (success, failure) {
            (_, Some(true)) => Class::Failure,
            (Some(true), _) => Class::Success,
            (Some(false), Some(false)) => Class::Inconclusive,
            (Some(false), None) => Class::Failure,
            (None, Some(false)) => Class::Success,
            (None, None) => Class::Success,
        },
    }
}

/// Per-metric limits. Defaults as in Argo: no failure tolerated, no inconclusive measurement
/// tolerated, and more than 4 provider errors in a row end the metric in error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed measurements tolerated; one more and the metric has failed.
    pub failure: u32,
    /// Inconclusive measurements tolerated; one more and the metric is inconclusive.
    pub inconclusive: u32,
    /// Provider errors in a row tolerated; one more and the metric is in error.
    pub consecutive_error: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failure: 0,
            inconclusive: 0,
            consecutive_error: 4,
        }
    }
}

/// A metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Success,
    Failure,
    Inconclusive,
    Error,
}

impl Verdict {
    /// How bad a verdict is: failed, then error, then inconclusive, then successful (Argo's
    /// order for an AnalysisRun of several metrics).
    fn rank(self) -> u8 {
        match self {
            Verdict::Failure => 3,
            Verdict::Error => 2,
            Verdict::Inconclusive => 1,
            Verdict::Success => 0,
        }
    }

    /// The worse of two; on a tie, `self` (the one met first).
    pub fn worse(self, other: Verdict) -> Verdict {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::Failure => "failure",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
    }
}

/// The running count of one metric's measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub measured: u32,
    pub successes: u32,
    pub failures: u32,
    pub inconclusives: u32,
    pub errors: u32,
    pub consecutive_errors: u32,
}

impl Tally {
    pub fn add(&mut self, c: Class) {
        self.measured += 1;
        match c {
            Class::Success => self.successes += 1,
            Class::Failure => self.failures += 1,
            Class::Inconclusive => self.inconclusives += 1,
            Class::Error => {
                self.errors += 1;
                self.consecutive_errors += 1;
            }
        }
        if c != Class::Error {
            self.consecutive_errors = 0;
        }
    }

    /// The verdict the tally has reached, if any. `done`: the measurements are over. A limit
    /// crossed ends the metric at once (failure first, then errors, then inconclusive).
    pub fn verdict(&self, limits: &Limits, done: bool) -> Option<(Verdict, String)> {
        if self.failures > limits.failure {
            return Some((
                Verdict::Failure,
                format!(
                    "{} failed measurement(s), more than the {} tolerated (failure_limit)",
                    self.failures, limits.failure
                ),
            ));
        }
        if self.consecutive_errors > limits.consecutive_error {
            return Some((
                Verdict::Error,
                format!(
                    "{} provider errors in a row, more than the {} tolerated (consecutive_error_limit)",
                    self.consecutive_errors, limits.consecutive_error
                ),
            ));
        }
        if self.inconclusives > limits.inconclusive {
            return Some((
                Verdict::Inconclusive,
                format!(
                    "{} inconclusive measurement(s), more than the {} tolerated (inconclusive_limit)",
                    self.inconclusives, limits.inconclusive
                ),
            ));
        }
        if done {
            if self.successes == 0 && self.errors > 0 {
                return Some((
                    Verdict::Error,
                    format!(
                        "no successful measurement in {}: {} provider error(s)",
                        self.measured, self.errors
                    ),
                ));
            }
            if self.successes == 0 && self.failures > 0 {
                return Some((
                    Verdict::Inconclusive,
                    format!(
                        "no successful measurement in {}: {} failed (within failure_limit), {} inconclusive; a metric that never succeeded is not a success",
                        self.measured, self.failures, self.inconclusives
                    ),
                ));
            }
            if self.successes == 0 {
                return Some((
                    Verdict::Inconclusive,
                    format!(
                        "no successful measurement in {}: {} inconclusive (no data, or neither condition held), never a pass",
                        self.measured, self.inconclusives
                    ),
                ));
            }
            return Some((
                Verdict::Success,
                format!(
                    "{} of {} measurement(s) successful",
                    self.successes, self.measured
                ),
            ));
        }
        None
    }

    /// Measurements that settled something: successes and failures.
    pub fn conclusive(&self) -> u32 {
        self.successes + self.failures
    }
}

/// The verdict of several metrics together: the worst of them (failure, error, inconclusive,
/// success), whichever was listed first.
pub fn combine(verdicts: &[Verdict]) -> Verdict {
    verdicts
        .iter()
        .fold(Verdict::Success, |worst, v| worst.worse(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f64) -> Observed {
        Observed::Value(x)
    }

    fn run(classes: &[Class], limits: Limits, total: u32) -> Option<(Verdict, String)> {
        let mut t = Tally::default();
        for (i, c) in classes.iter().enumerate() {
            t.add(*c);
            let done = i as u32 + 1 == total;
            if let Some(r) = t.verdict(&limits, done) {
                return Some(r);
            }
        }
        None
    }

    #[test]
    fn thresholds_parse_and_hold() {
        let t = Threshold::parse("< 0.05").unwrap();
        assert!(t.holds(0.04) && !t.holds(0.05));
        assert!(Threshold::parse(">=2000").unwrap().holds(2000.0));
        assert!(Threshold::parse("== 1").unwrap().holds(1.0));
        assert!(Threshold::parse("!= 0").unwrap().holds(3.0));
        assert!(Threshold::parse("> 1e3").unwrap().holds(1001.0));
        assert!(Threshold::parse("0.05")
            .unwrap_err()
            .contains("not a condition"));
        assert!(Threshold::parse("< five")
            .unwrap_err()
            .contains("not a number"));
        assert!(Threshold::parse("< NaN").is_err());
    }

    #[test]
    fn classification_follows_the_conditions() {
        let p = DataPolicy::default();
        // Failure wins when both hold.
        assert_eq!(
            classify(&v(1.0), Some(true), Some(true), &p),
            Class::Failure
        );
        assert_eq!(
            classify(&v(1.0), Some(true), Some(false), &p),
            Class::Success
        );
        // Both set, neither holds: inconclusive.
        assert_eq!(
            classify(&v(1.0), Some(false), Some(false), &p),
            Class::Inconclusive
        );
        // Only success set: not success is failure.
        assert_eq!(classify(&v(1.0), Some(false), None, &p), Class::Failure);
        // Only failure set: not failure is success.
        assert_eq!(classify(&v(1.0), None, Some(false), &p), Class::Success);
        assert_eq!(classify(&v(1.0), None, None, &p), Class::Success);
        // A provider error is an error whatever the conditions.
        assert_eq!(
            classify(&Observed::Error("down".into()), None, None, &p),
            Class::Error
        );
    }

    #[test]
    fn data_outcomes_are_never_a_silent_pass() {
        let p = DataPolicy::default();
        for o in [
            Observed::NoData("x".into()),
            Observed::Empty,
            Observed::NaN,
            Observed::Multiple(3),
        ] {
            assert_eq!(classify(&o, None, None, &p), Class::Inconclusive, "{o:?}");
        }
        let p = DataPolicy {
            no_data: DataOutcome::Pass,
            empty: DataOutcome::Fail,
            nan: DataOutcome::Fail,
            multiple: DataOutcome::Pass,
        };
        assert_eq!(
            classify(&Observed::NoData("x".into()), None, None, &p),
            Class::Success
        );
        assert_eq!(classify(&Observed::Empty, None, None, &p), Class::Failure);
        assert_eq!(classify(&Observed::NaN, None, None, &p), Class::Failure);
        assert_eq!(
            classify(&Observed::Multiple(2), None, None, &p),
            Class::Success
        );
        assert_eq!(Observed::number(f64::NAN), Observed::NaN);
    }

    #[test]
    fn failure_limit() {
        use Class::*;
        let l = Limits {
            failure: 1,
            ..Limits::default()
        };
        // One failure is tolerated, the second fails the metric at once.
        assert_eq!(
            run(&[Success, Failure, Success], l, 3).unwrap().0,
            Verdict::Success
        );
        let r = run(&[Failure, Success, Failure, Success], l, 4).unwrap();
        assert_eq!(r.0, Verdict::Failure);
        assert!(r.1.contains("2 failed"), "{}", r.1);
        // Default limit 0: the first failure.
        assert_eq!(
            run(&[Failure], Limits::default(), 5).unwrap().0,
            Verdict::Failure
        );
    }

    #[test]
    fn consecutive_errors_reset_on_a_measurement() {
        use Class::*;
        let l = Limits {
            consecutive_error: 2,
            ..Limits::default()
        };
        // Two errors, a success, two errors: never three in a row.
        let r = run(&[Error, Error, Success, Error, Error, Success], l, 6).unwrap();
        assert_eq!(r.0, Verdict::Success);
        let r = run(&[Success, Error, Error, Error], l, 10).unwrap();
        assert_eq!(r.0, Verdict::Error);
        assert!(r.1.contains("consecutive_error_limit"));
    }

    #[test]
    fn errors_under_the_limit_do_not_spoil_a_success() {
        use Class::*;
        let r = run(&[Error, Success, Error, Success], Limits::default(), 4).unwrap();
        assert_eq!(r.0, Verdict::Success);
        assert!(r.1.contains("2 of 4"), "{}", r.1);
        // The metric is still running until the last measurement.
        let mut t = Tally::default();
        t.add(Success);
        assert_eq!(t.verdict(&Limits::default(), false), None);
        assert_eq!(t.conclusive(), 1);
    }

    #[test]
    fn inconclusive_limit_and_no_success() {
        use Class::*;
        let l = Limits {
            inconclusive: 2,
            ..Limits::default()
        };
        assert_eq!(
            run(&[Inconclusive, Inconclusive, Success], l, 3).unwrap().0,
            Verdict::Success
        );
        assert_eq!(
            run(&[Inconclusive, Inconclusive, Inconclusive], l, 5)
                .unwrap()
                .0,
            Verdict::Inconclusive
        );
        // All within limits but not one success: inconclusive, not success.
        let l = Limits {
            inconclusive: 10,
            consecutive_error: 10,
            ..Limits::default()
        };
        let r = run(&[Inconclusive, Inconclusive, Inconclusive], l, 3).unwrap();
        assert_eq!(r.0, Verdict::Inconclusive);
        assert!(r.1.contains("no successful measurement"));
        // Errors within the limit but no success: the verdict is an error, not a pass.
        let r = run(&[Inconclusive, Error, Inconclusive], l, 3).unwrap();
        assert_eq!(r.0, Verdict::Error);
        assert!(r.1.contains("1 provider error"), "{}", r.1);
    }

    #[test]
    fn a_metric_that_had_data_is_not_said_to_have_had_none() {
        use Class::*;
        let l = Limits {
            failure: 5,
            inconclusive: 5,
            ..Limits::default()
        };
        // Failures within the limit, no success: not a pass, but there was data.
        let r = run(&[Failure, Failure, Inconclusive], l, 3).unwrap();
        assert_eq!(r.0, Verdict::Inconclusive);
        assert!(!r.1.contains("no data"), "{}", r.1);
        assert!(r.1.contains("2 failed"), "{}", r.1);
        // Only inconclusive measurements: no data (or neither condition held).
        let r = run(&[Inconclusive, Inconclusive], l, 2).unwrap();
        assert!(r.1.contains("2 inconclusive"), "{}", r.1);
    }

    #[test]
    fn failure_wins_over_other_limits_in_the_same_measurement() {
        let mut t = Tally {
            inconclusives: 5,
            consecutive_errors: 9,
            ..Tally::default()
        };
        t.add(Class::Failure);
        assert_eq!(
            t.verdict(&Limits::default(), false).unwrap().0,
            Verdict::Failure
        );
        assert_eq!(
            combine(&[Verdict::Success, Verdict::Inconclusive, Verdict::Error]),
            Verdict::Error
        );
        assert_eq!(
            combine(&[Verdict::Success, Verdict::Failure, Verdict::Error]),
            Verdict::Failure
        );
        assert_eq!(
            combine(&[Verdict::Success, Verdict::Success]),
            Verdict::Success
        );
        // The order does not matter: the worst wins.
        assert_eq!(
            combine(&[Verdict::Inconclusive, Verdict::Failure]),
            Verdict::Failure
        );
        assert_eq!(
            combine(&[Verdict::Inconclusive, Verdict::Error]),
            Verdict::Error
        );
        assert_eq!(Verdict::Error.worse(Verdict::Failure), Verdict::Failure);
        assert_eq!(Verdict::Error.worse(Verdict::Inconclusive), Verdict::Error);
    }

    #[test]
    fn observed_round_trips_through_the_journal() {
        for o in [
            v(0.5),
            v(f64::INFINITY),
            Observed::NoData("why".into()),
            Observed::Empty,
            Observed::NaN,
            Observed::Multiple(4),
            Observed::Error("down".into()),
        ] {
            assert_eq!(Observed::from_json(&o.to_json()), o);
        }
    }
}
