//! The Success Criteria of a run, read from its journal: each line is measured and passed, not
//! measured (and why), overridden (by whom, when, against what evidence), or failed. Nothing is
//! claimed that the run did not record.

use serde_json::Value;

use crate::artifacts::s;
use crate::journal::{Entry, Record};

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Passed,
    /// Passed, but with failed measurements its limit tolerated.
    Tolerated,
    NotMeasured,
    Overridden,
    Failed,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Passed => "passed",
            State::Tolerated => "passed within tolerance",
            State::NotMeasured => "not measured",
            State::Overridden => "overridden",
            State::Failed => "failed",
        }
    }
    pub fn mark(&self) -> &'static str {
        match self {
            State::Passed => "✅",
            State::Tolerated => "⚠️",
            State::NotMeasured => "➖",
            State::Overridden => "⚠️",
            State::Failed => "❌",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Criterion {
    pub name: &'static str,
    pub state: State,
    pub detail: String,
}

impl Criterion {
    pub fn line(&self) -> String {
        format!("{} {}: {}", self.state.mark(), self.name, self.detail)
    }
}

/// The six criteria of the documented workflow, from `records` (a journal, possibly unfinished).
pub fn evaluate(records: &[Value]) -> Vec<Criterion> {
    let entries: Vec<Entry> = records.iter().map(Entry::from_value).collect();
    evaluate_entries(&entries)
}

/// `evaluate` over records already read typed.
pub fn evaluate_entries(records: &[Entry]) -> Vec<Criterion> {
    let dry = records.iter().find_map(|e| match &e.record {
        Record::RunStart(s) => Some(s.dry_run),
        _ => None,
    }) == Some(true);
    if dry {
        return NAMES
            .iter()
            .map(|name| Criterion {
                name,
                state: State::NotMeasured,
                detail: "dry run: nothing was deployed or measured".into(),
            })
            .collect();
    }
    vec![
        deployed(records),
        metric(
            records,
            "All health checks passing",
            "health",
            "the adapter has no health check for the new version",
        ),
        metric(
            records,
            "No increase in errors",
            "error_rate",
            "no error-rate source (`monitoring.prometheus` with `monitoring.queries.error_rate`, or `monitoring.metrics_url`)",
        ),
        metric(
            records,
            "Performance maintained",
            "response_time",
            "no response-time source (`monitoring.prometheus` with `monitoring.queries.response_time`, or `monitoring.metrics_url`)",
        ),
        notified(records),
        documented(records),
    ]
}

const NAMES: [&str; 6] = [
    "Deployed successfully",
    "All health checks passing",
    "No increase in errors",
    "Performance maintained",
    "Users notified",
    "Documentation updated",
];

fn deployed(records: &[Entry]) -> Criterion {
    let ends: Vec<(&str, bool)> = records
        .iter()
        .filter_map(|e| match &e.record {
            Record::StageEnd { stage, ok, .. } => Some((stage.as_str(), *ok)),
            _ => None,
        })
        .collect();
    let failed: Vec<&str> = ends
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(stage, _)| *stage)
        .collect();
    let (state, detail) = if ends.is_empty() {
        (
            State::NotMeasured,
            "the runbook declared no stages".to_string(),
        )
    } else if failed.is_empty() {
        (
            State::Passed,
            format!("all {} stage(s) completed", ends.len()),
        )
    } else {
        (State::Failed, format!("failed: {}", failed.join(", ")))
    };
    Criterion {
        name: "Deployed successfully",
        state,
        detail,
    }
}

/// One metric across every monitoring window: the verdict records carry each metric's tally.
fn metric(records: &[Entry], name: &'static str, key: &str, unmeasured: &str) -> Criterion {
    let mut measured = 0u64;
    let mut windows = 0usize;
    let mut tolerated = 0u64;
    let mut bad: Vec<String> = Vec::new();
    // Windows whose failure nobody let through: the run stopped there (rolled back).
    let mut stopped: Vec<String> = Vec::new();
    // The last value as the monitor showed it ("10.0%", "170ms").
    let last = records
        .iter()
        .rev()
        .filter_map(|e| match &e.record {
            Record::Measurement { measurement, .. } => Some(measurement),
            _ => None,
        })
        .find_map(|measurement| {
            let m = &measurement["metrics"][key];
            m.get("value")?;
            Some(match m.get("shown").and_then(Value::as_str) {
                Some(shown) => shown.to_string(),
                None => m["value"].to_string(),
            })
        });
    for (i, e) in records.iter().enumerate() {
        let Record::Verdict { verdict: v, .. } = &e.record else {
            continue;
        };
        let Some(m) = v.get("metrics").and_then(|m| m.get(key)) else {
            continue;
        };
        let n = m.get("measured").and_then(Value::as_u64).unwrap_or(0);
        if n == 0 {
            continue;
        }
        windows += 1;
        measured += n;
        let verdict = s(m, "verdict");
        if verdict == "success" {
            tolerated += m.get("failures").and_then(Value::as_u64).unwrap_or(0);
        }
        if verdict != "success" {
            let window = s(v, "window");
            let why = s(m, "reason");
            // Who let the run go on past it: a person or the config (an override record right
            // after the window's verdict), or the metric's own `on_failure: continue`.
            let over = records[i + 1..]
                .iter()
                .take_while(|n| !matches!(n.record, Record::Verdict { .. }))
                .find_map(|n| match &n.record {
                    Record::Override { by, .. } => Some((by, &n.ts)),
                    _ => None,
                });
            let by = match over {
                Some((by, ts)) => format!("by {by} at {ts}"),
                None if m.get("continued").and_then(Value::as_bool) == Some(true) => {
                    "by its own `on_failure: continue`".to_string()
                }
                None if s(v, "verdict") == "success" => {
                    "the window passed on the other metrics".into()
                }
                None => {
                    stopped.push(format!("{window}: {verdict} ({why})"));
                    continue;
                }
            };
            bad.push(format!("{window}: {verdict} ({why}), continued {by}"));
        }
    }
    let (state, detail) = if measured == 0 {
        (State::NotMeasured, format!("not measured: {unmeasured}"))
    } else if !stopped.is_empty() {
        let mut detail = format!("failed: {}", stopped.join("; "));
        if !bad.is_empty() {
            detail.push_str(&format!("; earlier, overridden: {}", bad.join("; ")));
        }
        (State::Failed, detail)
    } else if bad.is_empty() {
        let last = last.map(|l| format!("; last {l}")).unwrap_or_default();
        if tolerated > 0 {
            (
                State::Tolerated,
                format!(
                    "{measured} measurement(s) in {windows} window(s), every window passed, but {tolerated} measurement(s) failed within the tolerated limit (failure_limit){last}"
                ),
            )
        } else {
            (
                State::Passed,
                format!(
                    "{measured} measurement(s) in {windows} window(s), every window passed{last}"
                ),
            )
        }
    } else {
        (State::Overridden, format!("overridden: {}", bad.join("; ")))
    };
    Criterion {
        name,
        state,
        detail,
    }
}

/// The results of the effects of one kind: (name, ok).
fn effects<'a>(records: &'a [Entry], kind: &str) -> Vec<(&'a str, bool, &'a str)> {
    let intents: std::collections::HashMap<u64, &str> = records
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectIntent {
                effect,
                kind: k,
                name,
                ..
            } if k == kind => Some((*effect, name.as_str())),
            _ => None,
        })
        .collect();
    records
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectResult(r) => {
                let name = intents.get(&r.effect)?;
                Some((*name, r.ok, r.error.as_deref().unwrap_or("")))
            }
            _ => None,
        })
        .collect()
}

fn notified(records: &[Entry]) -> Criterion {
    let sent = effects(records, "notify");
    let failed: Vec<String> = sent
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(n, _, e)| format!("{n} ({e})"))
        .collect();
    let ended = records
        .iter()
        .rev()
        .find_map(|e| match &e.record {
            Record::RunEnd { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .filter(|o| o != "completed");
    let (state, detail) = if sent.is_empty() {
        (
            State::NotMeasured,
            match ended {
                // The notification step never came: the run ended before it.
                Some(outcome) => {
                    format!("no notification was sent: the run ended ({outcome}) before it")
                }
                None => {
                    "no notification was sent (no channels configured under `notify:`)".to_string()
                }
            },
        )
    } else if failed.is_empty() {
        let names: Vec<&str> = sent.iter().map(|(n, _, _)| *n).collect();
        (State::Passed, format!("delivered to {}", names.join(", ")))
    } else {
        (
            State::Failed,
            format!("not delivered: {}", failed.join(", ")),
        )
    };
    Criterion {
        name: "Users notified",
        state,
        detail,
    }
}

fn documented(records: &[Entry]) -> Criterion {
    let appended = effects(records, "append_file");
    let failed: Vec<&str> = appended
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(n, _, _)| *n)
        .collect();
    let mut files = vec![crate::artifacts::LOG.to_string()];
    files.extend(
        appended
            .iter()
            .filter(|(_, ok, _)| *ok)
            .map(|(n, _, _)| n.to_string()),
    );
    let (state, detail) = if failed.is_empty() {
        let note = if appended.is_empty() {
            " (no changelog or release notes configured: `documentation.*`)"
        } else {
            ""
        };
        (
            State::Passed,
            format!("written: {}{note}", files.join(", ")),
        )
    } else {
        (
            State::Failed,
            format!("could not append to {}", failed.join(", ")),
        )
    };
    Criterion {
        name: "Documentation updated",
        state,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdict(metric: &str, v: &str, measured: u64, continued: bool) -> Value {
        json!({ "type": "verdict", "ts": "t", "verdict": { "window": "canary 5%", "verdict": v,
            "metrics": { metric: { "verdict": v, "reason": format!("{metric} says {v}"),
                                   "measured": measured, "last": 0.01, "continued": continued } } } })
    }

    #[test]
    fn a_metric_never_measured_is_not_claimed() {
        let c = evaluate(&[verdict("health", "success", 3, false)]);
        assert_eq!(c[1].state, State::Passed, "{c:?}");
        assert_eq!(c[2].state, State::NotMeasured, "{c:?}");
        assert!(c[2]
            .line()
            .starts_with("➖ No increase in errors: not measured"));
    }

    #[test]
    fn an_inconclusive_window_a_person_let_through_is_overridden_not_passed() {
        let records = vec![
            verdict("error_rate", "inconclusive", 2, false),
            json!({ "type": "override", "by": "alice", "ts": "2026-11-28T10:00:00Z" }),
            verdict("error_rate", "success", 3, false),
        ];
        let c = evaluate(&records);
        assert_eq!(c[2].state, State::Overridden, "{c:?}");
        assert!(
            c[2].detail
                .contains("continued by alice at 2026-11-28T10:00:00Z"),
            "{}",
            c[2].detail
        );
    }

    #[test]
    fn a_failed_metric_continued_by_its_action_is_overridden() {
        let c = evaluate(&[verdict("response_time", "failure", 4, true)]);
        assert_eq!(c[3].state, State::Overridden, "{c:?}");
        assert!(
            c[3].detail.contains("on_failure: continue"),
            "{}",
            c[3].detail
        );
    }

    #[test]
    fn failures_within_the_limit_are_said_not_hidden() {
        let mut v = verdict("error_rate", "success", 3, false);
        v["verdict"]["metrics"]["error_rate"]["failures"] = json!(1);
        let c = evaluate(&[v]);
        assert_eq!(c[2].state, State::Tolerated, "{c:?}");
        assert!(
            c[2].line().starts_with("⚠️ No increase in errors: "),
            "{}",
            c[2].line()
        );
        assert!(c[2]
            .detail
            .contains("1 measurement(s) failed within the tolerated limit"));
    }

    #[test]
    fn a_dry_run_measured_nothing() {
        let c = evaluate(&[
            json!({ "type": "run.start", "dry_run": true }),
            verdict("error_rate", "success", 3, false),
        ]);
        assert!(c.iter().all(|c| c.state == State::NotMeasured), "{c:?}");
        assert!(c[2].detail.starts_with("dry run"));
    }

    #[test]
    fn every_window_passing_is_passed_with_the_count() {
        let c = evaluate(&[
            verdict("error_rate", "success", 3, false),
            verdict("error_rate", "success", 2, false),
        ]);
        assert_eq!(c[2].state, State::Passed);
        assert!(
            c[2].detail.starts_with("5 measurement(s) in 2 window(s)"),
            "{}",
            c[2].detail
        );
    }
}
