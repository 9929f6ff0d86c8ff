//! The opening of post-mortem.md: what happened, impact, detection, response, and what is still
//! standing.

use std::fmt::Write as _;

use serde_json::Value;

use std::collections::HashMap;

use crate::journal::{Entry, Record};
use crate::record::EffectResult;

use super::read::{header, intents, md_cell, outcome, result_text, results, s, strategy, Intent};

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
pub(super) fn shown(m: &Value) -> String {
    match m.get("shown").and_then(Value::as_str) {
        Some(text) => text.to_string(),
        None => crate::analysis::Observed::from_json(m).describe(),
    }
}

/// The opening of the post-mortem: what happened, impact, detection, response, and what is
/// still standing, each read from the journal.
pub(super) fn story(entries: &[Entry]) -> String {
    let h = header(entries);
    let (outcome, error) = outcome(entries);
    let res = results(entries);
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
        strategy(entries),
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
    let standing = crate::undo::standing(entries);
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
