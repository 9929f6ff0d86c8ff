//! post-mortem.md: the story, then the timeline, the measurements and the verdicts.

use std::fmt::Write as _;

use serde_json::Value;

use crate::journal::{Entry, Record};

use super::read::{
    command_of, header, intents, md_cell, outcome, result_text, results, s, simulated_note,
};
use super::story::{shown, story};

fn measurement_line(m: &Value) -> String {
    let values = |key: &str, with_class: bool| -> Vec<String> {
        m[key]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, v)| {
                if with_class {
                    format!("{name} {} ({})", shown(v), s(v, "class"))
                } else {
                    format!("{name} {}", shown(v))
                }
            })
            .collect()
    };
    let mut line = format!(
        "measurement {} of `{}`: {} → {}",
        m["sample"].as_u64().unwrap_or(0),
        s(m, "window"),
        values("metrics", true).join(", "),
        s(m, "classification")
    );
    let business = values("business", false);
    if !business.is_empty() {
        let _ = write!(line, "; shown: {}", business.join(", "));
    }
    line
}

pub fn post_mortem(entries: &[Entry]) -> String {
    let h = header(entries);
    let (outcome, error) = outcome(entries);
    let res = results(entries);
    let mut out = format!("# Post-mortem - {}\n\n{}", h.feature, simulated_note(&h));
    let _ = writeln!(out, "- Runbook: `{}`", h.script);
    let _ = writeln!(out, "- Started: {} by {} on {}", h.started, h.by, h.host);
    let _ = writeln!(out, "- Outcome: {outcome}");
    if !error.is_empty() {
        let _ = writeln!(out, "- Error: {}", error.trim());
    }
    let _ = writeln!(out, "\n{}", story(entries).trim_end());
    let _ = writeln!(out, "\n## Timeline\n");
    for (e, i) in entries.iter().zip(
        // Each effect's intent, where the record is one.
        entries
            .iter()
            .map(|e| intents(std::slice::from_ref(e)).next()),
    ) {
        let t = e.ts.get(11..23).unwrap_or(&e.ts);
        let line = match (&e.record, i) {
            (Record::RunStart(s), _) => format!("run started: `{}`", s.script),
            (Record::StageStart { stage }, _) => format!("stage \"{stage}\" started"),
            (
                Record::StageEnd {
                    stage, ok: true, ..
                },
                _,
            ) => format!("stage \"{stage}\" done"),
            (Record::StageEnd { stage, error, .. }, _) => format!(
                "stage \"{stage}\" FAILED: {}",
                error.as_deref().unwrap_or("")
            ),
            // The measurement record that follows carries the values.
            (_, Some(i)) if i.kind == "measure" && res.get(&i.effect).is_some_and(|x| x.ok) => {
                continue
            }
            (Record::Measurement { measurement, .. }, _) => measurement_line(measurement),
            (Record::Verdict { verdict, .. }, _) => format!(
                "verdict of `{}`: {}: {}",
                s(verdict, "window"),
                s(verdict, "verdict"),
                s(verdict, "reason")
            ),
            (_, Some(i)) => {
                let what = match i.kind {
                    "sh" => format!("ran `{}`", command_of(&i)),
                    "undo" => format!("undo \"{}\"", s(i.intent, "label")),
                    k if k.starts_with("prompt.") => {
                        let ans = res
                            .get(&i.effect)
                            .map(|x| x.result["answer"].to_string())
                            .unwrap_or_default();
                        format!(
                            "asked `{}`{}",
                            i.name,
                            if ans.is_empty() || ans == "null" {
                                String::new()
                            } else {
                                format!(": {ans}")
                            }
                        )
                    }
                    k => format!("{k} `{}`", i.name),
                };
                format!("{what}: {}", result_text(res.get(&i.effect), h.dry_run))
            }
            (Record::UndoRegister { label, .. }, _) => format!("registered undo \"{label}\""),
            (
                Record::Control {
                    action,
                    by,
                    reason,
                    done,
                    ..
                },
                _,
            ) => format!("{action} requested by {by} ({reason}): {done}"),
            (Record::RollbackStart { reason, .. }, _) => format!("rollback started: {reason}"),
            (Record::RollbackEnd { ok, .. }, _) => {
                format!("rollback {}", if *ok { "complete" } else { "INCOMPLETE" })
            }
            (Record::Log { message, .. }, _) => format!("log: {message}"),
            (Record::Interrupted {}, _) => "interrupted (Ctrl-C or SIGTERM)".to_string(),
            (Record::RunEnd { outcome, .. }, _) => format!("run ended: {outcome}"),
            _ => continue,
        };
        let _ = writeln!(out, "- {t} {}", md_cell(&line));
    }
    let _ = writeln!(out, "\n## Root cause\n\n(to be written by the team)\n");
    let _ = writeln!(out, "## Follow-up actions\n\n(to be written by the team)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(ms: u64) -> String {
        format!("2026-11-28T04:20:{:02}.{:03}Z", ms / 1000, ms % 1000)
    }

    fn measurement(ms: u64, sample: u64, rate: Value, requests: f64, class: &str) -> Value {
        let mut error_rate = json!({ "class": class, "outcome": "value", "value": rate });
        if rate.is_null() {
            error_rate =
                json!({ "class": "inconclusive", "outcome": "no_data", "why": "fewer than 10" });
        }
        json!({ "type": "measurement", "ts": at(ms), "stage": "Monitoring", "measurement": {
            "version": "v2", "window": "5%", "sample": sample, "classification": class,
            "metrics": { "error_rate": error_rate,
                         "health": { "class": "success", "outcome": "value", "value": 1.0 } },
            "business": { "requests": { "class": "success", "outcome": "value", "value": requests } },
        } })
    }

    /// A canary at 5% whose error rate failed twice: rolled back, one undo step left standing.
    fn rolled_back_canary() -> Vec<Value> {
        vec![
            json!({ "type": "run.start", "ts": at(0), "feature": "checkout", "script": "deploy.rhai", "user": "ana", "host": "vm" }),
            json!({ "type": "strategy", "ts": at(10), "strategy": "Canary Release" }),
            json!({ "type": "log", "ts": at(1_000), "message": "→ v2 now gets 5% of traffic" }),
            measurement(2_000, 1, Value::Null, 4.0, "inconclusive"),
            measurement(3_000, 2, json!(0.01), 5.0, "success"),
            measurement(4_000, 3, json!(0.2), 10.0, "failure"),
            measurement(4_500, 4, json!(0.3), 10.0, "failure"),
            json!({ "type": "verdict", "ts": at(4_501), "stage": "Monitoring", "verdict": {
                "version": "v2", "window": "5%", "verdict": "failure", "measurements": 4,
                "reason": "error rate 30.0% > 5.0% (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
                "metrics": {
                    "error_rate": { "verdict": "failure", "label": "Error Rate", "condition": "> 5.0%",
                                    "reason": "error rate 30.0% > 5.0% (...)" },
                    "health": { "verdict": "running", "reason": "" },
                } } }),
            json!({ "type": "undo.register", "ts": at(900), "undo": 1, "label": "all traffic back to v1", "action": { "kind": "command", "run": "w" } }),
            json!({ "type": "undo.register", "ts": at(901), "undo": 2, "label": "delete canary v2", "action": { "kind": "command", "run": "d" } }),
            json!({ "type": "rollback.start", "ts": at(4_502), "reason": "v2 at 5%: error rate 30.0% > 5.0%", "undos": 2 }),
            json!({ "type": "effect.intent", "ts": at(4_503), "effect": 7, "kind": "undo", "name": "undo: all traffic back to v1",
                    "intent": { "label": "all traffic back to v1", "undo": 1 } }),
            json!({ "type": "effect.result", "ts": at(4_510), "effect": 7, "kind": "undo", "ok": true, "ms": 7, "result": {} }),
            json!({ "type": "effect.intent", "ts": at(4_511), "effect": 8, "kind": "undo", "name": "undo: delete canary v2",
                    "intent": { "label": "delete canary v2", "undo": 2 } }),
            json!({ "type": "effect.result", "ts": at(4_520), "effect": 8, "kind": "undo", "ok": false, "ms": 9, "error": "exit 1" }),
            json!({ "type": "rollback.end", "ts": at(4_521), "ok": false }),
            json!({ "type": "run.end", "ts": at(4_522), "outcome": "rollback failed", "error": "v2 at 5%: error rate 30.0% > 5.0%" }),
        ]
    }

    #[test]
    fn the_post_mortem_opens_with_the_story() {
        let pm = post_mortem(&crate::artifacts::read::entries(&rolled_back_canary()));
        let order: Vec<usize> = [
            "## What happened",
            "## Impact",
            "## Detection",
            "## Response",
            "## Still standing",
            "## Timeline",
        ]
        .iter()
        .map(|h| pm.find(h).unwrap_or_else(|| panic!("{h} missing:\n{pm}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{pm}");
        for want in [
            // What happened: the version, the strategy, the verdict, the outcome.
            "checkout v2 went out with the Canary Release strategy",
            "window `5%` ended in failure at 04:20:04.501",
            // Impact: from the traffic change to traffic back, at 5%; failed requests from
            // the measured rates: 0.01*5*1 + 0.2*10*1 + 0.3*10*0.5 = 3.55.
            "v2 served up to 5% of traffic for 3.5 s (04:20:01.000 to 04:20:04.510)",
            "about 4 failed requests (3.55 estimated",
            // Detection: the metric, each value against the threshold, the time to the verdict.
            "Error Rate (`error_rate`), failure condition `> 5.0%`",
            "| 3 | 04:20:04.000 | 0.2 | failure |",
            "| 1 | 04:20:02.000 | no data (fewer than 10) | inconclusive |",
            "3.5 s after the traffic change to 5% (04:20:01.000)",
            // Response: each action with its time and result.
            "04:20:04.502 rollback started: v2 at 5%: error rate 30.0% > 5.0%",
            "04:20:04.503 undo \"all traffic back to v1\": ok, 7 ms",
            "04:20:04.511 undo \"delete canary v2\": FAILED: exit 1",
            "04:20:04.521 rollback INCOMPLETE",
            // Still standing: what the rollback did not undo.
            "delete canary v2",
            // Timeline: millisecond times and each measurement's values.
            "- 04:20:04.500 measurement 4 of `5%`: error_rate 0.3 (failure), health 1 (success) → failure",
        ] {
            assert!(pm.contains(want), "want {want:?} in:\n{pm}");
        }
        let standing = &pm[pm.find("## Still standing").unwrap()..pm.find("## Timeline").unwrap()];
        assert!(!standing.contains("all traffic back to v1"), "{standing}");
    }
}
