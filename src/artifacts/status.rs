//! A deployment's state for the REPL's `status()`.

use std::path::Path;

use serde_json::Value;

use super::read::outcome_text;

/// A deployment's state, for the REPL's `status()`: a map for scripts (strategy, stage, outcome,
/// the live traffic, the verdicts, the undo steps standing, the journal's health) and the short
/// summary a person reads before it. Read from the typed records.
pub fn status(dir: &Path, records: &[Value], damaged: Option<&str>) -> (Value, Vec<String>) {
    use crate::journal::{Entry, Record};
    use serde_json::json;
    let entries: Vec<Entry> = records.iter().map(Entry::from_value).collect();
    let strategy = entries.iter().rev().find_map(|e| match &e.record {
        Record::Strategy { strategy } => Some(strategy.clone()),
        _ => None,
    });
    let stage = entries.iter().rev().find_map(|e| match &e.record {
        Record::StageStart { stage } => Some(stage.clone()),
        _ => None,
    });
    let verdicts: Vec<(&str, &Value)> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Verdict { verdict, .. } => Some((e.ts.as_str(), verdict)),
            _ => None,
        })
        .collect();
    let undone: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::UndoExternal(x) if x.ok => Some((e.ts.as_str(), x.by_run.as_str())),
            _ => None,
        })
        .collect();
    // The last traffic change the run made, as it was asked for.
    let live = crate::incident::live_of(dir, &entries);
    let standing = crate::undo::standing(&entries);
    let outcome = outcome_text(records);
    let v = json!({
        "deployment": dir.display().to_string(),
        "strategy": strategy,
        "stage": stage,
        "outcome": outcome,
        "traffic": live.as_ref().map(|l| l.record.clone()),
        "verdicts": verdicts.iter().map(|(_, v)| (*v).clone()).collect::<Vec<_>>(),
        "undo_standing": standing
            .iter()
            .map(|u| json!({ "label": u.undo.label, "action": u.undo.action.describe() }))
            .collect::<Vec<_>>(),
        "journal": damaged.unwrap_or("intact"),
    });

    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    out.push(format!(
        "deployment {}: {outcome}{}",
        dir.display(),
        match &strategy {
            Some(s) if !s.is_empty() => format!(" ({s})"),
            _ => String::new(),
        }
    ));
    out.push(match &live {
        None => "  live: no traffic change recorded".to_string(),
        Some(l) => format!("  live: {} since {}", l.what, l.since),
    });
    match verdicts.last() {
        Some((ts, verdict)) => {
            let version = text(&verdict["version"]);
            out.push(format!(
                "  last verdict: {}{}: {}, at {ts}",
                text(&verdict["verdict"]),
                if version.is_empty() {
                    String::new()
                } else {
                    format!(" ({version})")
                },
                text(&verdict["reason"]),
            ));
        }
        None => out.push("  last verdict: none".into()),
    }
    if let Some((ts, by_run)) = undone.last() {
        out.push(format!(
            "  rolled back: {} undo step(s) by {by_run}, last at {ts}",
            undone.len(),
        ));
    }
    out.push(if standing.is_empty() {
        "  undo steps standing: none".into()
    } else {
        format!(
            "  undo steps standing: {} ({}): rollback() runs them",
            standing.len(),
            standing
                .iter()
                .map(|u| u.undo.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    out.push(match damaged {
        None => "  journal: intact".into(),
        Some(d) => format!("  journal: {d}"),
    });
    (v, out)
}
