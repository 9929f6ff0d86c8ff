//! What `analyze` found, shown and kept: a metric's value and conditions as the monitor shows
//! them, the Deployment Monitor frame, the `measurement` record and the script's result map.

use rhai::{Dynamic, Map};
use serde_json::{json, Value};

use super::from_json;
use super::measure::Run;
use super::spec::{Cond, Metric};
use crate::analysis::spec::Format;
use crate::analysis::{Class, Observed, Verdict};
use crate::journal::Record;
use crate::ui::dashboard::Frame;

pub(super) fn show_value(m: &Metric, o: &Observed, note: Option<&str>) -> String {
    match (o, m.spec.format) {
        (Observed::Value(v), Some(Format::Check)) => {
            if *v >= 1.0 {
                "passing".into()
            } else {
                note.map(str::to_string).unwrap_or_else(|| "failing".into())
            }
        }
        (Observed::Value(v), Some(Format::Percent)) => format!("{:.1}%", v * 100.0),
        (Observed::Value(v), Some(Format::Ms)) => format!("{}ms", v.round()),
        (Observed::Value(v), _) => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", *v as i64)
            } else if v.abs() >= 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.3}")
            }
        }
        (o, _) => o.describe(),
    }
}

fn op_symbol(op: crate::analysis::Op) -> &'static str {
    use crate::analysis::Op::*;
    match op {
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Eq => "==",
        Ne => "!=",
    }
}

pub(super) fn show_cond(m: &Metric, c: &Option<Cond>) -> Option<String> {
    match c {
        Some(Cond::Threshold(t)) => Some(format!(
            "{} {}",
            op_symbol(t.op),
            show_value(m, &Observed::Value(t.value), None)
        )),
        Some(Cond::Closure(_)) => Some("(a closure)".into()),
        None => None,
    }
}

/// A verdict's reason with the evidence: "error rate 19.8% > 5.0% (2 failed measurement(s), ...)".
pub(super) fn explain(m: &Metric, v: Verdict, why: &str) -> String {
    let label = m.label.to_lowercase();
    let last = m
        .last
        .as_ref()
        .map(|(o, _, note)| show_value(m, o, note.as_deref()));
    match (v, last) {
        (Verdict::Failure, Some(last)) if m.spec.format == Some(Format::Check) => {
            format!("failed health check: {last} ({why})")
        }
        (Verdict::Failure, Some(last)) => {
            let cond = show_cond(m, &m.failure)
                .or_else(|| show_cond(m, &m.success).map(|c| format!("not {c}")))
                .unwrap_or_default();
            format!("{label} {last} {cond} ({why})")
        }
        (_, Some(last)) => format!("{label}: {why}; last: {last}"),
        (_, None) => format!("{label}: {why}"),
    }
}

fn mark(c: Class) -> Option<bool> {
    match c {
        Class::Success => Some(true),
        Class::Failure => Some(false),
        Class::Inconclusive | Class::Error => None,
    }
}

pub(super) fn draw(run: &Run, status: &str) {
    let mut health: Vec<(String, String, Option<bool>)> = run
        .metrics
        .iter()
        .map(|m| match &m.last {
            None => (m.label.clone(), "waiting".into(), None),
            Some((o, c, note)) => {
                let mut text = show_value(m, o, note.as_deref());
                if m.continued {
                    text.push_str(" (failed, continued)");
                } else if *c == Class::Inconclusive && o.value().is_some() {
                    text.push_str(" (inconclusive)");
                }
                (m.label.clone(), text, mark(*c))
            }
        })
        .collect();
    for u in &run.unmeasured {
        health.push((u.clone(), "no source configured".into(), None));
    }
    let business = run
        .business
        .iter()
        .map(|m| {
            let text = match &m.last {
                None => "waiting".into(),
                Some((o, _, note)) => show_value(m, o, note.as_deref()),
            };
            (m.label.clone(), text)
        })
        .collect();
    super::monitor::draw(
        run.session,
        &Frame {
            feature: run.feature.clone(),
            started: run.started.clone(),
            status: status.into(),
            health,
            business,
        },
    );
}

fn metric_json(m: &Metric) -> Value {
    match &m.last {
        None => json!({ "outcome": "not measured" }),
        Some((o, c, note)) => {
            let mut v = o.to_json();
            v["class"] = json!(c.as_str());
            // As the monitor showed it ("20.0%", "305ms"), for the post-mortem.
            v["shown"] = json!(show_value(m, o, note.as_deref()));
            // How it is shown (a fraction shown as a percent, ms...), for the charts' axis.
            if let Some(f) = m.spec.format {
                v["format"] = json!(f);
            }
            if let Some(n) = note {
                v["note"] = json!(n);
            }
            v
        }
    }
}

pub(super) fn record_measurement(run: &Run, round: u32) {
    let mut metrics = serde_json::Map::new();
    let mut worst = Class::Success;
    for m in run.metrics.iter().filter(|m| !m.continued) {
        if let Some((_, c, _)) = &m.last {
            worst = worst.worse(*c);
        }
        metrics.insert(m.spec.name.clone(), metric_json(m));
    }
    let business: serde_json::Map<String, Value> = run
        .business
        .iter()
        .map(|m| (m.spec.name.clone(), metric_json(m)))
        .collect();
    run.session.record(Record::Measurement {
        measurement: json!({
            "version": run.version, "window": run.name, "sample": round,
            "classification": worst.as_str(), "metrics": metrics, "business": business,
        }),
        stage: run.session.current_stage(),
    });
}

pub(super) fn result_map(run: &Run, v: Verdict, why: &str) -> Map {
    let mut metrics = Map::new();
    for m in &run.metrics {
        let t = &m.tally;
        let (mv, mwhy) = m
            .verdict
            .clone()
            .map(|(v, w)| (v.as_str().to_string(), w))
            .unwrap_or_else(|| ("running".into(), String::new()));
        let last = m.last.as_ref().and_then(|(o, _, _)| o.value());
        let condition = show_cond(m, &m.failure)
            .or_else(|| show_cond(m, &m.success).map(|c| format!("not {c}")));
        // The number a condition compares with, for the charts.
        let threshold = [&m.failure, &m.success].into_iter().find_map(|c| match c {
            Some(Cond::Threshold(t)) => Some(t.value),
            _ => None,
        });
        metrics.insert(
            m.spec.name.as_str().into(),
            from_json(&json!({
                "label": m.label, "condition": condition, "threshold": threshold,
                "verdict": mv, "reason": mwhy, "continued": m.continued, "last": last,
                "measured": t.measured, "successes": t.successes, "failures": t.failures,
                "inconclusives": t.inconclusives, "errors": t.errors,
            })),
        );
    }
    let mut out = Map::new();
    out.insert("verdict".into(), Dynamic::from(v.as_str().to_string()));
    out.insert("healthy".into(), Dynamic::from(v == Verdict::Success));
    out.insert("reason".into(), Dynamic::from(why.to_string()));
    out.insert("metrics".into(), Dynamic::from_map(metrics));
    out.insert("promoted".into(), Dynamic::from(false));
    out
}

/// A window cut short by a live-control `promote`: not a verdict on the release (none is
/// journaled; the `control` record says who promoted it), so `verdict` is `promoted`.
pub(super) fn promoted(run: &Run, by: &str, measured: u32) -> Map {
    let why = format!("promoted {by}: the window was skipped after {measured} measurement(s)");
    if measured > 0 {
        draw(run, "Promoted");
    }
    let mut out = result_map(run, Verdict::Success, &why);
    out.insert("verdict".into(), Dynamic::from("promoted".to_string()));
    out.insert("promoted".into(), Dynamic::from(true));
    out
}
