//! What the artifacts read from the journal, shared by them: the run's header and outcome, the
//! strategy, the effects announced and their results, a Markdown table cell.

use serde_json::Value;

use std::collections::HashMap;

use crate::journal::{Entry, Record};
use crate::record::EffectResult;

/// A string field of a record ("" when absent).
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The records, typed.
pub(super) fn entries(records: &[Value]) -> Vec<Entry> {
    records.iter().map(Entry::from_value).collect()
}

/// The (last) result record of each effect, by effect number.
pub(super) fn results(entries: &[Entry]) -> HashMap<u64, &EffectResult> {
    entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectResult(r) => Some((r.effect, r)),
            _ => None,
        })
        .collect()
}

pub(super) struct Header<'a> {
    pub(super) feature: &'a str,
    pub(super) script: &'a str,
    pub(super) started: &'a str,
    pub(super) dry_run: bool,
    pub(super) by: &'a str,
    pub(super) host: &'a str,
}

pub(super) fn header(entries: &[Entry]) -> Header<'_> {
    let start = entries.iter().find_map(|e| match &e.record {
        Record::RunStart(s) => Some((e.ts.as_str(), s)),
        _ => None,
    });
    Header {
        feature: start.map_or("", |(_, s)| &s.feature),
        script: start.map_or("", |(_, s)| &s.script),
        started: start.map_or("", |(ts, _)| ts),
        dry_run: start.is_some_and(|(_, s)| s.dry_run),
        by: start.map_or("", |(_, s)| &s.user),
        host: start.map_or("", |(_, s)| &s.host),
    }
}

pub(super) fn outcome(entries: &[Entry]) -> (String, String) {
    let end = entries.iter().rev().find_map(|e| match &e.record {
        Record::RunEnd { outcome, error, .. } => Some((outcome, error)),
        _ => None,
    });
    let (own, error) = match end {
        Some((outcome, error)) => (
            outcome.clone(),
            error
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        None => (
            "unfinished (the journal has no end record)".into(),
            String::new(),
        ),
    };
    // Rolled back later by another process (the REPL, `runbook rollback`): say so, by whom, when.
    let last = entries.iter().rev().find_map(|e| match &e.record {
        Record::UndoExternal(x) if x.ok => Some((e.ts.as_str(), x.by_run.as_str())),
        _ => None,
    });
    match last {
        Some((ts, by_run)) => {
            let what = if crate::undo::standing(entries).is_empty() {
                "rolled back"
            } else {
                "partly rolled back"
            };
            (
                format!("{what} by {by_run} at {ts} (the run itself: {own})"),
                error,
            )
        }
        None => (own, error),
    }
}

/// The outcome as the artifacts state it, a later rollback by another run included.
pub fn outcome_text(records: &[Value]) -> String {
    outcome(&entries(records)).0
}

pub(super) fn strategy(entries: &[Entry]) -> String {
    entries
        .iter()
        .rev()
        .find_map(|e| match &e.record {
            Record::Strategy { strategy } => Some(strategy.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "not chosen in this run".into())
}

/// An effect announced (`effect.intent`): its number, kind, name and intent.
pub(super) struct Intent<'a> {
    pub(super) effect: u64,
    pub(super) kind: &'a str,
    pub(super) name: &'a str,
    pub(super) intent: &'a Value,
}

pub(super) fn intents(entries: &[Entry]) -> impl Iterator<Item = Intent<'_>> {
    entries.iter().filter_map(|e| match &e.record {
        Record::EffectIntent {
            effect,
            kind,
            name,
            intent,
            ..
        } => Some(Intent {
            effect: *effect,
            kind,
            name,
            intent,
        }),
        _ => None,
    })
}

pub(super) fn command_of(i: &Intent) -> String {
    match i.kind {
        "sh" => s(i.intent, "command").to_string(),
        "undo" => i
            .intent
            .get("action")
            .map(crate::undo::describe_json)
            .unwrap_or_default(),
        _ => i.name.to_string(),
    }
}

pub(super) fn result_text(r: Option<&&EffectResult>, dry: bool) -> String {
    match r {
        None => "no result recorded (in flight when the run stopped)".into(),
        Some(_) if dry => "planned".into(),
        Some(r) if r.ok => {
            // A module's undo that had nothing to do said so: skipped, not done.
            if let Some(why) = r.result["returned"]["skipped"].as_str() {
                return format!("skipped: {why}");
            }
            let ms = r.ms.unwrap_or(0);
            match r.result.get("code").and_then(Value::as_i64) {
                Some(c) => format!("exit {c}, {ms} ms"),
                None => format!("ok, {ms} ms"),
            }
        }
        Some(r) => format!("FAILED: {}", r.error.as_deref().unwrap_or("")),
    }
}

pub(super) fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
