//! What a scenario expects of its run, what the run did (read back from its journal), and the
//! difference, said so a person can read it.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The exit code (0 done, 1 failed, 2 usage, 3 rolled back, 4 declined, 5 rolled back after
    /// an error).
    pub exit: i32,
    #[serde(default)]
    pub rolled_back: Option<bool>,
    /// The undos that ran, by label, exactly and in order.
    #[serde(default)]
    pub undos_run: Option<Vec<String>>,
    /// The channels notified (each once, in any order).
    #[serde(default)]
    pub notified: Option<Vec<String>>,
    /// A bound on the virtual time the run took: `< 40m`, `<= 1h`, `> 5m`, `>= 30s`.
    #[serde(default)]
    pub virtual_time: Option<String>,
    /// Text the run's error must contain: why it stopped (a precondition, a failed step).
    #[serde(default)]
    pub error: Option<String>,
}

/// A bound on a duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub op: &'static str,
    pub limit: Duration,
}

impl Bound {
    pub fn parse(text: &str) -> Result<Bound, String> {
        let t = text.trim();
        let (op, rest) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| t.strip_prefix(op).map(|r| (*op, r)))
            .ok_or_else(|| {
                format!("`{text}` is not a bound: write an operator and a duration, e.g. `< 40m`")
            })?;
        let limit = humantime::parse_duration(rest.trim())
            .map_err(|e| format!("`{}` in `{text}` is not a duration ({e})", rest.trim()))?;
        Ok(Bound { op, limit })
    }

    pub fn holds(&self, d: Duration) -> bool {
        match self.op {
            "<" => d < self.limit,
            "<=" => d <= self.limit,
            ">" => d > self.limit,
            _ => d >= self.limit,
        }
    }
}

/// What a simulated run did.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub exit: i32,
    /// The run's outcome, as the journal's `run.end` names it.
    pub outcome: String,
    pub rolled_back: bool,
    pub undos_run: Vec<String>,
    pub notified: Vec<String>,
    pub virtual_time: Duration,
    /// The run's error, as its journal's `run.end` has it (empty when none).
    pub error: String,
    /// Why it ended so: the verdicts and the error, with their virtual times, for the diff.
    pub why: Vec<String>,
    /// The run could not start (its config, the scenario's `set`, answers or runbook refused).
    pub refused: bool,
    /// Answers the scenario gives that no prompt asked for.
    pub unused_answers: Vec<String>,
    /// The run could not go on as the scenario is written (an effect the world does not
    /// describe, a prompt nobody answers).
    pub scenario_error: Option<String>,
}

/// Each way the run differs from what the scenario expects; empty when it matches.
pub fn differences(e: &Expect, o: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(err) = &o.scenario_error {
        out.push(format!("scenario error: {err}"));
        return out;
    }
    // A scenario's answers are its premise: one that nothing asked for in a run that went to
    // its end is a scenario that does not rehearse what it says. (A run that stopped early
    // leaves the later answers unused, as it should.)
    for id in o.unused_answers.iter().filter(|_| o.exit == 0) {
        out.push(format!(
            "answers `{id}`, which no prompt asked (a prompt asked only with a person at the terminal needs `attended: true`)"
        ));
    }
    if e.exit != o.exit {
        out.push(format!(
            "expected exit {}, got {} ({})",
            e.exit, o.exit, o.outcome
        ));
    }
    if let Some(want) = e.rolled_back {
        if want != o.rolled_back {
            out.push(format!(
                "expected {}, but it was {}",
                if want { "a rollback" } else { "no rollback" },
                if o.rolled_back {
                    "rolled back"
                } else {
                    "not rolled back"
                }
            ));
        }
    }
    if let Some(want) = &e.undos_run {
        if *want != o.undos_run {
            out.push(format!(
                "expected the undos {}, in that order; ran {}",
                list(want),
                list(&o.undos_run)
            ));
        }
    }
    if let Some(want) = &e.notified {
        let mut a = want.clone();
        a.sort();
        a.dedup();
        let mut b = o.notified.clone();
        b.sort();
        if a != b {
            out.push(format!(
                "expected notifications to {}; notified {}",
                list(want),
                list(&o.notified)
            ));
        }
    }
    if let Some(want) = &e.error {
        if !o.error.contains(want.as_str()) {
            out.push(if o.error.is_empty() {
                format!("expected an error containing `{want}`; the run ended without one")
            } else {
                format!(
                    "expected an error containing `{want}`; the error was: {}",
                    o.error
                )
            });
        }
    }
    if let Some(text) = &e.virtual_time {
        if let Ok(b) = Bound::parse(text) {
            if !b.holds(o.virtual_time) {
                out.push(format!(
                    "expected a virtual time {text}, took {}",
                    crate::ui::format_duration(o.virtual_time)
                ));
            }
        }
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_as_written() {
        let b = Bound::parse("< 40m").unwrap();
        assert!(b.holds(Duration::from_secs(39 * 60)));
        assert!(!b.holds(Duration::from_secs(40 * 60)));
        assert!(Bound::parse(">= 30s")
            .unwrap()
            .holds(Duration::from_secs(30)));
        assert!(Bound::parse("40m").is_err());
        assert!(Bound::parse("< forty").is_err());
    }

    #[test]
    fn every_difference_is_said() {
        let e: Expect = serde_yaml::from_str(
            "{ exit: 3, rolled_back: true, undos_run: [a, b], notified: [team], virtual_time: '< 10m' }",
        )
        .unwrap();
        let o = Observed {
            exit: 0,
            outcome: "succeeded".into(),
            virtual_time: Duration::from_secs(3600),
            ..Observed::default()
        };
        let d = differences(&e, &o);
        assert_eq!(d.len(), 5, "{d:?}");
        assert_eq!(d[0], "expected exit 3, got 0 (succeeded)");
        let same = Observed {
            exit: 3,
            rolled_back: true,
            undos_run: vec!["a".into(), "b".into()],
            notified: vec!["team".into()],
            virtual_time: Duration::from_secs(60),
            ..Observed::default()
        };
        assert!(differences(&e, &same).is_empty());
    }
}
