//! The deployment artifacts, rendered from the journal: what they say is what the journal holds.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use std::collections::HashMap;

use crate::error::Error;
use crate::journal::{Entry, Record};
use crate::record::EffectResult;
use crate::secrets::Redactor;

pub const PLAN: &str = "deployment-plan.md";
pub const CHECKLIST: &str = "pre-deployment-checklist.md";
pub const LOG: &str = "deployment-log.txt";
pub const ROLLBACK_PLAN: &str = "rollback-plan.md";
pub const POST_MORTEM: &str = "post-mortem.md";
pub const SNAPSHOT: &str = "monitoring-snapshot.json";

/// A string field of a record ("" when absent).
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The records, typed.
fn entries(records: &[Value]) -> Vec<Entry> {
    records.iter().map(Entry::from_value).collect()
}

/// The (last) result record of each effect, by effect number.
fn results(entries: &[Entry]) -> HashMap<u64, &EffectResult> {
    entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectResult(r) => Some((r.effect, r)),
            _ => None,
        })
        .collect()
}

struct Header<'a> {
    feature: &'a str,
    script: &'a str,
    started: &'a str,
    dry_run: bool,
    by: &'a str,
    host: &'a str,
}

fn header(entries: &[Entry]) -> Header<'_> {
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

fn outcome(entries: &[Entry]) -> (String, String) {
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

fn strategy(entries: &[Entry]) -> String {
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
struct Intent<'a> {
    effect: u64,
    kind: &'a str,
    name: &'a str,
    intent: &'a Value,
}

fn intents(entries: &[Entry]) -> impl Iterator<Item = Intent<'_>> {
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

fn command_of(i: &Intent) -> String {
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

fn result_text(r: Option<&&EffectResult>, dry: bool) -> String {
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

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn plan(records: &[Value]) -> String {
    let entries = entries(records);
    let h = header(&entries);
    let (outcome, _) = outcome(&entries);
    let res = results(&entries);
    let mut out = String::new();
    let _ = writeln!(out, "# Deployment Plan - {}\n", h.feature);
    let _ = writeln!(out, "- Runbook: `{}`", h.script);
    let _ = writeln!(out, "- Started: {} by {} on {}", h.started, h.by, h.host);
    let _ = writeln!(
        out,
        "- Mode: {}",
        if h.dry_run {
            "dry-run (nothing was executed; every command below is what would run)"
        } else {
            "live"
        }
    );
    let _ = writeln!(out, "- Strategy: {}", strategy(&entries));
    let _ = writeln!(out, "- Outcome: {outcome}\n");

    if !h.dry_run {
        let _ = writeln!(out, "## Success criteria\n");
        for c in crate::criteria::evaluate(records) {
            let _ = writeln!(out, "- {}", c.line());
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Stages\n");
    let mut n = 0;
    let ends: Vec<(u64, &str)> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::StageEnd { stage, ok, ms, .. } => {
                n += 1;
                let status = if *ok { "done" } else { "FAILED" };
                let _ = writeln!(out, "{n}. {stage} ({status}, {ms} ms)");
                Some((e.seq, stage.as_str()))
            }
            _ => None,
        })
        .collect();
    for e in &entries {
        if let Record::StageStart { stage } = &e.record {
            let ended = ends.iter().any(|(seq, s)| s == stage && *seq > e.seq);
            if !ended {
                n += 1;
                let _ = writeln!(out, "{n}. {stage} (not finished)");
            }
        }
    }
    if n == 0 {
        let _ = writeln!(out, "(the runbook declared no stages)");
    }

    let _ = writeln!(out, "\n## Commands, in order\n");
    let _ = writeln!(out, "| Effect | Stage | Command | Result |");
    let _ = writeln!(out, "|---|---|---|---|");
    let mut any = false;
    for i in intents(&entries).filter(|i| matches!(i.kind, "sh" | "undo")) {
        any = true;
        let e = i.effect;
        let _ = writeln!(
            out,
            "| {e} | {} | `{}` | {} |",
            md_cell(s(i.intent, "stage")),
            md_cell(&command_of(&i)),
            md_cell(&result_text(res.get(&e), h.dry_run))
        );
    }
    if !any {
        let _ = writeln!(out, "| | | (no commands) | |");
    }

    let others: Vec<Intent> = intents(&entries)
        .filter(|i| matches!(i.kind, "check" | "check_all" | "notify"))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "\n## Checks and notifications\n");
        for i in others {
            let _ = writeln!(
                out,
                "- {} `{}`: {}",
                i.kind,
                i.name,
                result_text(res.get(&i.effect), h.dry_run)
            );
        }
    }
    out
}

pub fn checklist(records: &[Value]) -> Option<String> {
    let entries = entries(records);
    let answered = |kind: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::EffectResult(r) if r.kind == kind => Some(&r.result),
                _ => None,
            })
            .collect()
    };
    let lists = answered("prompt.checklist");
    let approvals = answered("prompt.approve");
    if lists.is_empty() && approvals.is_empty() {
        return None;
    }
    let h = header(&entries);
    let mut out = format!("# Pre-deployment Checklist - {}\n\n", h.feature);
    for r in lists {
        let _ = writeln!(out, "## {}\n", s(r, "title"));
        let _ = writeln!(out, "| Item | Answer | By | How | When |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for item in r["items"].as_array().into_iter().flatten() {
            let checked = item["checked"].as_bool() == Some(true);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                md_cell(s(item, "text")),
                if checked { "✅ yes" } else { "❌ no" },
                md_cell(s(item, "by")),
                md_cell(s(item, "source")),
                s(item, "at")
            );
        }
        out.push('\n');
    }
    for r in approvals {
        let approved = r["approved"].as_bool() == Some(true);
        let _ = writeln!(out, "## Critical approval\n");
        let _ = writeln!(
            out,
            "- Decision: {}",
            if approved { "approved" } else { "declined" }
        );
        let _ = writeln!(out, "- By: {}", s(r, "by"));
        let _ = writeln!(out, "- How: {}", s(r, "how"));
        let _ = writeln!(out, "- Host: {}", s(r, "host"));
        let _ = writeln!(out, "- When: {}\n", s(r, "at"));
    }
    Some(out)
}

/// Undo steps still standing (registered, not discarded, not carried out), newest first.
/// The undo steps `records` leave standing, last registered first.
pub fn standing_undos(records: &[Value]) -> Vec<crate::undo::Standing> {
    let entries: Vec<crate::journal::Entry> = records
        .iter()
        .map(crate::journal::Entry::from_value)
        .collect();
    crate::undo::standing(&entries)
}

pub fn rollback_plan(records: &[Value]) -> String {
    let entries = entries(records);
    let h = header(&entries);
    let res = results(&entries);
    let mut out = format!("# Rollback Plan - {}\n\n", h.feature);
    let standing = crate::undo::standing(&entries);
    let _ = writeln!(out, "## Undo steps standing\n");
    if standing.is_empty() {
        let _ = writeln!(out, "None: nothing this run did is waiting to be undone.\n");
    } else {
        let _ = writeln!(
            out,
            "In the order they would run (last registered first):\n"
        );
        for (i, u) in standing.iter().enumerate() {
            let stage = u.stage.as_deref().unwrap_or("");
            let call = u.undo.action.describe();
            let _ = writeln!(
                out,
                "{}. {}: {}{}",
                i + 1,
                u.undo.label,
                match &u.shows {
                    Some(cmd) => format!("`{cmd}` (through `{call}`)"),
                    None => format!("`{call}`"),
                },
                if stage.is_empty() {
                    String::new()
                } else {
                    format!(" (registered in stage \"{stage}\")")
                }
            );
        }
        out.push('\n');
    }
    let done: Vec<Intent> = intents(&entries).filter(|i| i.kind == "undo").collect();
    if !done.is_empty() {
        let _ = writeln!(out, "## Rollback carried out\n");
        for i in done {
            let e = i.effect;
            let skipped = res
                .get(&e)
                .and_then(|r| r.result["returned"]["skipped"].as_str());
            let _ = writeln!(
                out,
                "- {}: {}",
                s(i.intent, "label"),
                match skipped {
                    Some(why) => format!("skipped: {why}"),
                    None => result_text(res.get(&e), h.dry_run),
                }
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "The undo steps are recorded as data in `journal.jsonl` (`undo.register` records)."
    );
    out
}

/// A duration for a person: "850 ms", "3.5 s", "2 min 5 s".
fn span(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// A traffic change the shipped strategies announce: "→ v2 now gets 25% of traffic".
fn traffic_change(e: &Entry) -> Option<(&str, f64)> {
    let Record::Log { message, .. } = &e.record else {
        return None;
    };
    let rest = message.strip_prefix("→ ")?;
    let (version, rest) = rest.split_once(" now gets ")?;
    let share = rest.strip_suffix("% of traffic")?.trim().parse().ok()?;
    Some((version, share))
}

/// One measured value as the journal holds it: what the monitor showed, else the reading.
fn shown(m: &Value) -> String {
    match m.get("shown").and_then(Value::as_str) {
        Some(text) => text.to_string(),
        None => crate::analysis::Observed::from_json(m).describe(),
    }
}

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

/// The opening of the post-mortem: what happened, impact, detection, response, and what is
/// still standing, each read from the journal.
fn story(records: &[Value]) -> String {
    let entries = entries(records);
    let h = header(&entries);
    let (outcome, error) = outcome(&entries);
    let res = results(&entries);
    // Each effect's (last) result record, for its time.
    let res_at: HashMap<u64, &Entry> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectResult(r) => Some((r.effect, e)),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    // The verdict that ended the run: the last window that was not a success.
    let failing_at = entries.iter().rposition(
        |e| matches!(&e.record, Record::Verdict { verdict, .. } if s(verdict, "verdict") != "success"),
    );
    let failing: Option<(&Entry, &Value)> = failing_at.and_then(|i| match &entries[i].record {
        Record::Verdict { verdict, .. } => Some((&entries[i], verdict)),
        _ => None,
    });
    let measurements: Vec<(&Entry, &Value)> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::Measurement { measurement, .. } => Some((e, measurement)),
            _ => None,
        })
        .collect();
    let version = failing
        .map(|(_, v)| s(v, "version"))
        .or_else(|| measurements.first().map(|(_, m)| s(m, "version")))
        .filter(|v| !v.is_empty())
        .unwrap_or("");
    let rollback_at = entries
        .iter()
        .rposition(|e| matches!(e.record, Record::RollbackStart { .. }));
    let rollback_start: Option<(&Entry, &str)> =
        rollback_at.and_then(|i| match &entries[i].record {
            Record::RollbackStart { reason, .. } => Some((&entries[i], reason.as_str())),
            _ => None,
        });
    let rollback_end: Option<(&Entry, bool)> = entries.iter().rev().find_map(|e| match &e.record {
        Record::RollbackEnd { ok, .. } => Some((e, *ok)),
        _ => None,
    });
    // The undo steps the (last) rollback carried out (their intents), with their results.
    let undos: Vec<(&Entry, Intent, Option<&&EffectResult>)> = rollback_at
        .map(|at| {
            entries[at..]
                .iter()
                .filter_map(|e| intents(std::slice::from_ref(e)).next().map(|i| (e, i)))
                .filter(|(_, i)| i.kind == "undo")
                .map(|(e, i)| {
                    let r = res.get(&i.effect);
                    (e, i, r)
                })
                .collect()
        })
        .unwrap_or_default();
    let skipped = undos
        .iter()
        .filter(|(_, _, r)| r.is_some_and(|r| r.result["returned"]["skipped"].is_string()))
        .count();
    let undone = undos
        .iter()
        .filter(|(_, _, r)| r.is_some_and(|r| r.ok))
        .count()
        - skipped;
    let clock = |e: &Entry| -> String { e.ts.get(11..23).unwrap_or(&e.ts).to_string() };
    let millis = |e: &Entry| -> Option<i64> {
        let t = humantime::parse_rfc3339(&e.ts).ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(d.as_millis()).ok()
    };

    let _ = writeln!(out, "## What happened\n");
    let started = entries
        .iter()
        .find(|e| matches!(e.record, Record::RunStart(_)))
        .map(clock)
        .unwrap_or_default();
    let mut what = format!(
        "{}{} went out with the {} strategy (started {started} by {} on {}).",
        h.feature,
        if version.is_empty() {
            String::new()
        } else {
            format!(" {version}")
        },
        strategy(&entries),
        h.by,
        h.host
    );
    if let Some((f, v)) = failing {
        let _ = write!(
            what,
            " Monitoring window `{}` ended in {} at {}: {}.",
            s(v, "window"),
            s(v, "verdict"),
            clock(f),
            s(v, "reason")
        );
    } else if !error.is_empty() {
        let _ = write!(what, " It stopped: {}.", error.trim());
    }
    if let Some((b, _)) = rollback_start {
        let _ = write!(
            what,
            " The run rolled back at {}: {} of {} undo step(s) carried out{}{}.",
            clock(b),
            undone,
            undos.len(),
            if skipped > 0 {
                format!(", {skipped} skipped (nothing to do)")
            } else {
                String::new()
            },
            match rollback_end {
                Some((_, true)) => ", rollback complete".to_string(),
                Some(_) => ", rollback INCOMPLETE".to_string(),
                None => ", the rollback did not finish".to_string(),
            }
        );
    }
    let _ = write!(what, " Outcome: {outcome}.");
    let _ = writeln!(out, "{what}\n");

    // Impact: from the first traffic change for the version to the rollback's first step
    // (traffic back, in the shipped strategies), else the end of the run.
    let _ = writeln!(out, "## Impact\n");
    let changes: Vec<(usize, &Entry, f64)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| traffic_change(e).map(|(v, share)| (i, e, v, share)))
        .filter(|(_, _, v, _)| version.is_empty() || *v == version)
        .map(|(i, e, _, share)| (i, e, share))
        .collect();
    // The highest share announced; without announcements, the windows' labels ("100% (switched)").
    let max = |m: Option<f64>, x: f64| Some(m.map_or(x, |m: f64| m.max(x)));
    let top = if changes.is_empty() {
        measurements
            .iter()
            .filter_map(|(_, m)| {
                let w = s(m, "window");
                w.split_once('%')
                    .and_then(|(n, _)| n.trim().parse::<f64>().ok())
            })
            .fold(None, max)
    } else {
        changes.iter().map(|(_, _, x)| *x).fold(None, max)
    };
    let served_from = changes
        .first()
        .map(|(_, e, _)| *e)
        .or_else(|| measurements.first().map(|(e, _)| *e));
    let back = undos
        .iter()
        .find(|(_, _, r)| r.is_some_and(|r| r.ok))
        .and_then(|(_, i, _)| res_at.get(&i.effect).copied())
        .or_else(|| {
            entries
                .iter()
                .rev()
                .find(|e| matches!(e.record, Record::RunEnd { .. }))
        });
    match (served_from, back) {
        (Some(from), Some(to)) => {
            let _ = writeln!(
                out,
                "- {} served up to {} of traffic for {}{} ({} to {}).",
                if version.is_empty() {
                    "The new version"
                } else {
                    version
                },
                top.map(|x| format!("{x}%"))
                    .unwrap_or_else(|| "an unrecorded share".into()),
                // Without a recorded traffic change, from the first measurement on.
                if changes.is_empty() { "at least " } else { "" },
                span(millis(to).unwrap_or(0) - millis(from).unwrap_or(0)),
                clock(from),
                clock(to)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "- The journal records no traffic sent to the new version."
            );
        }
    }
    // Failed requests: error rate × request rate × the time each measurement covers.
    let (mut failed, mut intervals) = (0.0, 0);
    let mut previous: Option<(&Entry, &Value)> = None;
    for (e, m) in &measurements {
        let same_window = previous.is_some_and(|(_, p)| s(p, "window") == s(m, "window"));
        let rate = m["metrics"]["error_rate"]["value"].as_f64();
        let requests = m["business"]["requests"]["value"].as_f64();
        if let (true, Some(rate), Some(requests), Some(now), Some(then)) = (
            same_window,
            rate,
            requests,
            millis(e),
            previous.and_then(|(p, _)| millis(p)),
        ) {
            failed += rate * requests * (now - then) as f64 / 1000.0;
            intervals += 1;
        }
        previous = Some((e, m));
    }
    if intervals > 0 {
        let _ = writeln!(
            out,
            "- about {} failed requests ({failed:.2} estimated from the measured error rate × request rate over {intervals} measurement interval(s)).",
            failed.round()
        );
    } else {
        let _ = writeln!(
            out,
            "- Failed requests: not estimated (no interval with both an error rate and a request rate measured)."
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## Detection\n");
    // Live control (`runbook control ENV abort`): who stopped the run, and why.
    let aborted = entries.iter().find_map(|e| match &e.record {
        Record::Control {
            action,
            by,
            reason,
            done,
            ..
        } if action == "abort" && done == "aborted" => Some((e, by, reason)),
        _ => None,
    });
    match failing {
        None if aborted.is_some() => {
            let (e, by, reason) = aborted.expect("just checked");
            let _ = writeln!(
                out,
                "No monitoring window failed: {by} aborted the run at {} (`runbook control`){}.\n",
                clock(e),
                if reason.is_empty() {
                    ", giving no reason".to_string()
                } else {
                    format!(": {reason}")
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "No monitoring window failed: the run stopped for another reason.\n"
            );
        }
        Some((f, v)) => {
            let window = s(v, "window");
            let change = changes.iter().rev().find(|(i, _, _)| Some(*i) < failing_at);
            if let Some((_, c, share)) = change {
                let _ = writeln!(
                    out,
                    "Window `{window}` ended in {} at {}, {} after the traffic change to {share}% ({}).\n",
                    s(v, "verdict"),
                    clock(f),
                    span(millis(f).unwrap_or(0) - millis(c).unwrap_or(0)),
                    clock(c)
                );
            } else {
                let _ = writeln!(
                    out,
                    "Window `{window}` ended in {} at {}.\n",
                    s(v, "verdict"),
                    clock(f)
                );
            }
            for (name, mv) in v["metrics"].as_object().into_iter().flatten() {
                if !matches!(s(mv, "verdict"), "failure" | "error" | "inconclusive") {
                    continue;
                }
                let label = mv.get("label").and_then(Value::as_str).unwrap_or(name);
                let condition = match mv.get("condition").and_then(Value::as_str) {
                    Some(c) => format!(", failure condition `{c}`"),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{label} (`{name}`){condition}: {} — {}\n",
                    s(mv, "verdict"),
                    s(mv, "reason")
                );
                let _ = writeln!(out, "| # | Time | Value | Class |");
                let _ = writeln!(out, "|---|---|---|---|");
                for (r, m) in measurements
                    .iter()
                    .filter(|(_, m)| s(m, "window") == window && s(m, "version") == s(v, "version"))
                {
                    if let Some(x) = m["metrics"].get(name) {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} |",
                            m["sample"].as_u64().unwrap_or(0),
                            clock(r),
                            md_cell(&shown(x)),
                            s(x, "class")
                        );
                    }
                }
                out.push('\n');
            }
        }
    }

    let _ = writeln!(out, "## Response\n");
    match rollback_start {
        None => {
            let _ = writeln!(out, "No rollback was started.");
        }
        Some((b, reason)) => {
            let _ = writeln!(out, "- {} rollback started: {}", clock(b), md_cell(reason));
            for (e, i, r) in &undos {
                let _ = writeln!(
                    out,
                    "- {} undo \"{}\": {}",
                    clock(e),
                    s(i.intent, "label"),
                    result_text(*r, h.dry_run)
                );
            }
            // Who was told.
            let after = rollback_at.unwrap_or(0);
            for e in &entries[failing_at.unwrap_or(after).min(after)..] {
                let Some(n) = intents(std::slice::from_ref(e)).next() else {
                    continue;
                };
                if n.kind != "notify" {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "- {} notified `{}`: {}",
                    clock(e),
                    n.name,
                    result_text(res.get(&n.effect), h.dry_run)
                );
            }
            if let Some((e, ok)) = rollback_end {
                let _ = writeln!(
                    out,
                    "- {} rollback {}",
                    clock(e),
                    if ok { "complete" } else { "INCOMPLETE" }
                );
            }
        }
    }
    out.push('\n');

    let _ = writeln!(out, "## Still standing\n");
    let standing = crate::undo::standing(&entries);
    if standing.is_empty() {
        let _ = writeln!(
            out,
            "Nothing this run did is waiting to be undone: every undo step was carried out or discarded."
        );
    } else {
        let _ = writeln!(
            out,
            "Not undone (see rollback-plan.md; `runbook rollback` can carry them out):\n"
        );
        for u in &standing {
            let _ = writeln!(out, "- {}: `{}`", u.undo.label, u.undo.action.describe());
        }
    }
    out
}

pub fn post_mortem(records: &[Value]) -> String {
    let entries = entries(records);
    let h = header(&entries);
    let (outcome, error) = outcome(&entries);
    let res = results(&entries);
    let mut out = format!("# Post-mortem - {}\n\n", h.feature);
    let _ = writeln!(out, "- Runbook: `{}`", h.script);
    let _ = writeln!(out, "- Started: {} by {} on {}", h.started, h.by, h.host);
    let _ = writeln!(out, "- Outcome: {outcome}");
    if !error.is_empty() {
        let _ = writeln!(out, "- Error: {}", error.trim());
    }
    let _ = writeln!(out, "\n{}", story(records).trim_end());
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

/// Every measurement and verdict of the run's monitoring, as the journal holds them.
pub fn snapshot(records: &[Value]) -> Option<String> {
    let entries = entries(records);
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
    for e in &entries {
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
    let h = header(&entries);
    let v = serde_json::json!({
        "feature": h.feature,
        "started": h.started,
        "outcome": outcome(&entries).0,
        "measurements": measurements,
        "verdicts": verdicts,
    });
    serde_json::to_string_pretty(&v).ok()
}

pub const HASH_LINE: &str = "- Journal: ";

/// The line that pins the journal as it stood: its record count and the hash of its last record.
fn evidence(journal: &Path) -> String {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines
        .last()
        .map(|l| crate::journal::line_hash(l))
        .unwrap_or_else(|| crate::journal::GENESIS.to_string());
    format!(
        "{HASH_LINE}{} records, final hash `{last}` (`runbook verify` checks the chain)\n",
        lines.len()
    )
}

/// Render every artifact the journal supports into `dir`.
pub fn render(dir: &Path, redactor: &Redactor) -> Result<Vec<String>, Error> {
    let journal_path = dir.join(crate::journal::FILE_NAME);
    let (records, _) = crate::journal::read(&journal_path)?;
    let pin = evidence(&journal_path);
    let typed = entries(&records);
    let (outcome, _) = outcome(&typed);
    let mut files: Vec<(&str, String)> = vec![
        (
            PLAN,
            format!("{}\n\n## Evidence\n\n{pin}", plan(&records).trim_end()),
        ),
        (ROLLBACK_PLAN, rollback_plan(&records)),
    ];
    if let Some(c) = checklist(&records) {
        files.push((CHECKLIST, c));
    }
    if let Some(m) = snapshot(&records) {
        files.push((SNAPSHOT, m));
    }
    let dry = header(&typed).dry_run;
    if !dry
        && matches!(
            outcome.as_str(),
            "failed"
                | "rolled back"
                | "rolled back after an error"
                | "rollback failed"
                | "interrupted"
        )
    {
        files.push((
            POST_MORTEM,
            format!(
                "{}\n\n## Evidence\n\n{pin}",
                post_mortem(&records).trim_end()
            ),
        ));
    }
    // A chart per judged metric, embedded in the plan and the post-mortem.
    let mut charts: Vec<(String, String, String)> = Vec::new();
    if !dry {
        for series in crate::charts::series(&records) {
            match crate::charts::svg(&series) {
                Ok(svg) => charts.push((crate::charts::file_name(&series.name), series.label, svg)),
                Err(e) => eprintln!(
                    "warning: the chart of `{}` could not be drawn: {e}",
                    series.name
                ),
            }
        }
    }
    if !charts.is_empty() {
        let embeds: String = charts
            .iter()
            .map(|(file, label, _)| format!("![{label}]({file})\n"))
            .collect();
        for (name, text) in files.iter_mut() {
            if *name == PLAN || *name == POST_MORTEM {
                let (body, evidence) = text
                    .split_once("\n\n## Evidence")
                    .map(|(b, e)| (b.to_string(), format!("\n\n## Evidence{e}")))
                    .unwrap_or_else(|| (text.clone(), String::new()));
                *text = format!("{body}\n\n## Charts\n\n{embeds}{evidence}");
            }
        }
    }
    let mut written = Vec::new();
    for (file, _, svg) in &charts {
        let p = dir.join(file);
        std::fs::write(&p, redactor.redact(svg)).map_err(|e| Error::io("write chart", &p, e))?;
        written.push(file.clone());
    }
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, redactor.redact(&text))
            .map_err(|e| Error::io("write artifact", &p, e))?;
        written.push(name.to_string());
    }
    Ok(written)
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
        let pm = post_mortem(&rolled_back_canary());
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
