//! monitoring-snapshot.json: every measurement and verdict of the run's monitoring.

use serde_json::Value;

use crate::journal::{Entry, Record};

use super::read::{header, outcome};

/// Every measurement and verdict of the run's monitoring, as the journal holds them.
pub fn snapshot(entries: &[Entry]) -> Option<String> {
    let stamp = |e: &Entry, v: &Value, stage: &Option<String>| {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.insert("ts".into(), Value::String(e.ts.clone()));
            m.insert("stage".into(), serde_json::json!(stage));
        }
        v
    };
    let mut measurements = Vec::new();
    let mut verdicts = Vec::new();
    for e in entries {
        match &e.record {
            Record::Measurement { measurement, stage } => {
                measurements.push(stamp(e, measurement, stage))
            }
            Record::Verdict { verdict, stage } => verdicts.push(stamp(e, verdict, stage)),
            _ => {}
        }
    }
    if measurements.is_empty() && verdicts.is_empty() {
        return None;
    }
    let h = header(entries);
    let mut v = serde_json::json!({
        "feature": h.feature,
        "started": h.started,
        "outcome": outcome(entries).0,
        "measurements": measurements,
        "verdicts": verdicts,
    });
    if h.simulated {
        v["simulated"] = serde_json::json!(true);
    }
    serde_json::to_string_pretty(&v).ok()
}
