//! The deployment artifacts, rendered from the journal: what they say is what the journal holds.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::error::Error;
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

/// The time of day of a record, to the millisecond.
fn clock(v: &Value) -> &str {
    let ts = s(v, "ts");
    ts.get(11..23).unwrap_or(ts)
}

/// Milliseconds since the epoch of a record's RFC 3339 `ts`, for durations between records.
fn millis(v: &Value) -> Option<i64> {
    let t = humantime::parse_rfc3339(s(v, "ts")).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// The records of one type.
pub(crate) fn of_type<'a>(
    records: &'a [Value],
    t: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    records.iter().filter(move |r| s(r, "type") == t)
}

/// The result record of each effect, by effect number.
fn results(records: &[Value]) -> std::collections::HashMap<u64, &Value> {
    of_type(records, "effect.result")
        .filter_map(|r| r.get("effect").and_then(Value::as_u64).map(|n| (n, r)))
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

fn header(records: &[Value]) -> Header<'_> {
    let start = of_type(records, "run.start").next();
    let get = |k: &str| start.map(|r| s(r, k)).unwrap_or("");
    Header {
        feature: get("feature"),
        script: get("script"),
        started: start.map(|r| s(r, "ts")).unwrap_or(""),
        dry_run: start
            .and_then(|r| r.get("dry_run"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        by: get("user"),
        host: get("host"),
    }
}

fn outcome(records: &[Value]) -> (String, String) {
    let (own, error) = match of_type(records, "run.end").last() {
        Some(r) => (s(r, "outcome").to_string(), s(r, "error").to_string()),
        None => (
            "unfinished (the journal has no end record)".into(),
            String::new(),
        ),
    };
    // Rolled back later by another process (the REPL, `runbook rollback`): say so, by whom, when.
    match of_type(records, "undo.external")
        .filter(|r| r["ok"].as_bool() == Some(true))
        .last()
    {
        Some(last) => {
            let what = if standing_undos(records).is_empty() {
                "rolled back"
            } else {
                "partly rolled back"
            };
            (
                format!(
                    "{what} by {} at {} (the run itself: {own})",
                    s(last, "by_run"),
                    s(last, "ts")
                ),
                error,
            )
        }
        None => (own, error),
    }
}

/// The outcome as the artifacts state it, a later rollback by another run included.
pub fn outcome_text(records: &[Value]) -> String {
    outcome(records).0
}

fn strategy(records: &[Value]) -> String {
    of_type(records, "strategy")
        .last()
        .map(|r| s(r, "strategy").to_string())
        .unwrap_or_else(|| "not chosen in this run".into())
}

fn command_of(intent: &Value) -> String {
    let i = intent.get("intent").unwrap_or(&Value::Null);
    match s(intent, "kind") {
        "sh" => s(i, "command").to_string(),
        "undo" => i
            .get("action")
            .map(crate::undo::describe_json)
            .unwrap_or_default(),
        _ => s(intent, "name").to_string(),
    }
}

fn result_text(r: Option<&&Value>, dry: bool) -> String {
    match r {
        None => "no result recorded (in flight when the run stopped)".into(),
        Some(_) if dry => "planned".into(),
        Some(r) if r.get("ok").and_then(Value::as_bool) == Some(true) => {
            let res = r.get("result").unwrap_or(&Value::Null);
            // A module's undo that had nothing to do said so: skipped, not done.
            if let Some(why) = res["returned"]["skipped"].as_str() {
                return format!("skipped: {why}");
            }
            match res.get("code").and_then(Value::as_i64) {
                Some(c) => format!(
                    "exit {c}, {} ms",
                    r.get("ms").and_then(Value::as_u64).unwrap_or(0)
                ),
                None => format!(
                    "ok, {} ms",
                    r.get("ms").and_then(Value::as_u64).unwrap_or(0)
                ),
            }
        }
        Some(r) => format!("FAILED: {}", s(r, "error")),
    }
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn plan(records: &[Value]) -> String {
    let h = header(records);
    let (outcome, _) = outcome(records);
    let res = results(records);
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
    let _ = writeln!(out, "- Strategy: {}", strategy(records));
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
    for r in of_type(records, "stage.end") {
        n += 1;
        let status = if r.get("ok").and_then(Value::as_bool) == Some(true) {
            "done"
        } else {
            "FAILED"
        };
        let _ = writeln!(
            out,
            "{n}. {} ({status}, {} ms)",
            s(r, "stage"),
            r.get("ms").and_then(Value::as_u64).unwrap_or(0)
        );
    }
    for r in of_type(records, "stage.start") {
        let name = s(r, "stage");
        let ended = of_type(records, "stage.end")
            .any(|e| s(e, "stage") == name && e["seq"].as_u64() > r["seq"].as_u64());
        if !ended {
            n += 1;
            let _ = writeln!(out, "{n}. {name} (not finished)");
        }
    }
    if n == 0 {
        let _ = writeln!(out, "(the runbook declared no stages)");
    }

    let _ = writeln!(out, "\n## Commands, in order\n");
    let _ = writeln!(out, "| Effect | Stage | Command | Result |");
    let _ = writeln!(out, "|---|---|---|---|");
    let mut any = false;
    for i in of_type(records, "effect.intent").filter(|r| matches!(s(r, "kind"), "sh" | "undo")) {
        any = true;
        let e = i.get("effect").and_then(Value::as_u64).unwrap_or(0);
        let stage = i.get("intent").map(|x| s(x, "stage")).unwrap_or("");
        let _ = writeln!(
            out,
            "| {e} | {} | `{}` | {} |",
            md_cell(stage),
            md_cell(&command_of(i)),
            md_cell(&result_text(res.get(&e), h.dry_run))
        );
    }
    if !any {
        let _ = writeln!(out, "| | | (no commands) | |");
    }

    let others: Vec<&Value> = of_type(records, "effect.intent")
        .filter(|r| matches!(s(r, "kind"), "check" | "check_all" | "notify"))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "\n## Checks and notifications\n");
        for i in others {
            let e = i.get("effect").and_then(Value::as_u64).unwrap_or(0);
            let _ = writeln!(
                out,
                "- {} `{}`: {}",
                s(i, "kind"),
                s(i, "name"),
                result_text(res.get(&e), h.dry_run)
            );
        }
    }
    out
}

pub fn checklist(records: &[Value]) -> Option<String> {
    let lists: Vec<&Value> = of_type(records, "effect.result")
        .filter(|r| s(r, "kind") == "prompt.checklist")
        .collect();
    let approvals: Vec<&Value> = of_type(records, "effect.result")
        .filter(|r| s(r, "kind") == "prompt.approve")
        .collect();
    if lists.is_empty() && approvals.is_empty() {
        return None;
    }
    let h = header(records);
    let mut out = format!("# Pre-deployment Checklist - {}\n\n", h.feature);
    for l in lists {
        let r = &l["result"];
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
    for a in approvals {
        let r = &a["result"];
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
pub fn standing_undos(records: &[Value]) -> Vec<Value> {
    let mut standing: Vec<Value> = Vec::new();
    let res = results(records);
    for r in records {
        match s(r, "type") {
            // A resumed run registers again the undos of the steps it replays: one stands once.
            "undo.register" => {
                standing.retain(|u| u["undo"] != r["undo"]);
                standing.push(r.clone());
            }
            // Discarded, or carried out by a later process: no longer standing.
            t @ ("undo.discard" | "undo.external")
                if t == "undo.discard" || r["ok"].as_bool() == Some(true) =>
            {
                let ids: Vec<u64> = r["undos"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                standing.retain(|u| !ids.contains(&u["undo"].as_u64().unwrap_or(0)));
            }
            "effect.intent" if s(r, "kind") == "undo" => {
                let done = r["effect"]
                    .as_u64()
                    .and_then(|e| res.get(&e))
                    .is_some_and(|x| x["ok"].as_bool() == Some(true));
                let dry = r["dry_run"].as_bool() == Some(true);
                if done && !dry {
                    let id = r["intent"]["undo"].as_u64();
                    standing.retain(|u| u["undo"].as_u64() != id);
                }
            }
            _ => {}
        }
    }
    standing.reverse();
    standing
}

pub fn rollback_plan(records: &[Value]) -> String {
    let h = header(records);
    let res = results(records);
    let mut out = format!("# Rollback Plan - {}\n\n", h.feature);
    let standing = standing_undos(records);
    let _ = writeln!(out, "## Undo steps standing\n");
    if standing.is_empty() {
        let _ = writeln!(out, "None: nothing this run did is waiting to be undone.\n");
    } else {
        let _ = writeln!(
            out,
            "In the order they would run (last registered first):\n"
        );
        for (i, u) in standing.iter().enumerate() {
            let stage = s(u, "stage");
            let call = crate::undo::describe_json(&u["action"]);
            let _ = writeln!(
                out,
                "{}. {}: {}{}",
                i + 1,
                s(u, "label"),
                match u.get("shows").and_then(Value::as_str) {
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
    let done: Vec<&Value> = of_type(records, "effect.intent")
        .filter(|r| s(r, "kind") == "undo")
        .collect();
    if !done.is_empty() {
        let _ = writeln!(out, "## Rollback carried out\n");
        for i in done {
            let e = i["effect"].as_u64().unwrap_or(0);
            let skipped = res
                .get(&e)
                .and_then(|r| r["result"]["returned"]["skipped"].as_str());
            let _ = writeln!(
                out,
                "- {}: {}",
                s(&i["intent"], "label"),
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
fn traffic_change(r: &Value) -> Option<(&str, f64)> {
    if s(r, "type") != "log" {
        return None;
    }
    let rest = s(r, "message").strip_prefix("→ ")?;
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
    let h = header(records);
    let (outcome, error) = outcome(records);
    let res = results(records);
    let mut out = String::new();
    // The verdict that ended the run: the last window that was not a success.
    let failing_at = records
        .iter()
        .rposition(|r| s(r, "type") == "verdict" && s(&r["verdict"], "verdict") != "success");
    let failing = failing_at.map(|i| &records[i]);
    let measurements: Vec<&Value> = of_type(records, "measurement").collect();
    let version = failing
        .map(|f| s(&f["verdict"], "version"))
        .or_else(|| {
            measurements
                .first()
                .map(|m| s(&m["measurement"], "version"))
        })
        .filter(|v| !v.is_empty())
        .unwrap_or("");
    let rollback_start = of_type(records, "rollback.start").last();
    let rollback_end = of_type(records, "rollback.end").last();
    // The undo steps the (last) rollback carried out, with their results.
    let undos: Vec<(&Value, Option<&&Value>)> = records
        .iter()
        .rposition(|r| s(r, "type") == "rollback.start")
        .map(|at| {
            records[at..]
                .iter()
                .filter(|r| s(r, "type") == "effect.intent" && s(r, "kind") == "undo")
                .map(|r| (r, r["effect"].as_u64().and_then(|e| res.get(&e))))
                .collect()
        })
        .unwrap_or_default();
    let skipped = undos
        .iter()
        .filter(|(_, r)| r.is_some_and(|r| r["result"]["returned"]["skipped"].is_string()))
        .count();
    let undone = undos
        .iter()
        .filter(|(_, r)| r.is_some_and(|r| r["ok"].as_bool() == Some(true)))
        .count()
        - skipped;

    let _ = writeln!(out, "## What happened\n");
    let mut what = format!(
        "{}{} went out with the {} strategy (started {} by {} on {}).",
        h.feature,
        if version.is_empty() {
            String::new()
        } else {
            format!(" {version}")
        },
        strategy(records),
        clock(of_type(records, "run.start").next().unwrap_or(&Value::Null)),
        h.by,
        h.host
    );
    if let Some(f) = failing {
        let v = &f["verdict"];
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
    if let Some(b) = rollback_start {
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
                Some(e) if e["ok"].as_bool() == Some(true) => ", rollback complete".to_string(),
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
    let changes: Vec<(usize, &Value, f64)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| traffic_change(r).map(|(v, share)| (i, r, v, share)))
        .filter(|(_, _, v, _)| version.is_empty() || *v == version)
        .map(|(i, r, _, share)| (i, r, share))
        .collect();
    // The highest share announced; without announcements, the windows' labels ("100% (switched)").
    let max = |m: Option<f64>, x: f64| Some(m.map_or(x, |m: f64| m.max(x)));
    let top = if changes.is_empty() {
        measurements
            .iter()
            .filter_map(|r| {
                let w = s(&r["measurement"], "window");
                w.split_once('%')
                    .and_then(|(n, _)| n.trim().parse::<f64>().ok())
            })
            .fold(None, max)
    } else {
        changes.iter().map(|(_, _, x)| *x).fold(None, max)
    };
    let served_from = changes
        .first()
        .map(|(_, r, _)| *r)
        .or_else(|| measurements.first().copied());
    let back = undos
        .iter()
        .find(|(_, r)| r.is_some_and(|r| r["ok"].as_bool() == Some(true)))
        .and_then(|(_, r)| r.copied())
        .or_else(|| of_type(records, "run.end").last());
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
    let mut previous: Option<&Value> = None;
    for r in &measurements {
        let m = &r["measurement"];
        let same_window =
            previous.is_some_and(|p| s(&p["measurement"], "window") == s(m, "window"));
        let rate = m["metrics"]["error_rate"]["value"].as_f64();
        let requests = m["business"]["requests"]["value"].as_f64();
        if let (true, Some(rate), Some(requests), Some(now), Some(then)) = (
            same_window,
            rate,
            requests,
            millis(r),
            previous.and_then(millis),
        ) {
            failed += rate * requests * (now - then) as f64 / 1000.0;
            intervals += 1;
        }
        previous = Some(r);
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
    match failing {
        None => {
            let _ = writeln!(
                out,
                "No monitoring window failed: the run stopped for another reason.\n"
            );
        }
        Some(f) => {
            let v = &f["verdict"];
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
                for r in measurements.iter().filter(|r| {
                    s(&r["measurement"], "window") == window
                        && s(&r["measurement"], "version") == s(v, "version")
                }) {
                    let m = &r["measurement"];
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
        Some(b) => {
            let _ = writeln!(
                out,
                "- {} rollback started: {}",
                clock(b),
                md_cell(s(b, "reason"))
            );
            for (i, r) in &undos {
                let _ = writeln!(
                    out,
                    "- {} undo \"{}\": {}",
                    clock(i),
                    s(&i["intent"], "label"),
                    result_text(*r, h.dry_run)
                );
            }
            // Who was told.
            let after = records.iter().position(|r| std::ptr::eq(r, b)).unwrap_or(0);
            for n in records[failing_at.unwrap_or(after).min(after)..]
                .iter()
                .filter(|r| s(r, "type") == "effect.intent" && s(r, "kind") == "notify")
            {
                let e = n["effect"].as_u64().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "- {} notified `{}`: {}",
                    clock(n),
                    s(n, "name"),
                    result_text(res.get(&e), h.dry_run)
                );
            }
            if let Some(e) = rollback_end {
                let _ = writeln!(
                    out,
                    "- {} rollback {}",
                    clock(e),
                    if e["ok"].as_bool() == Some(true) {
                        "complete"
                    } else {
                        "INCOMPLETE"
                    }
                );
            }
        }
    }
    out.push('\n');

    let _ = writeln!(out, "## Still standing\n");
    let standing = standing_undos(records);
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
            let _ = writeln!(
                out,
                "- {}: `{}`",
                s(u, "label"),
                crate::undo::describe_json(&u["action"])
            );
        }
    }
    out
}

pub fn post_mortem(records: &[Value]) -> String {
    let h = header(records);
    let (outcome, error) = outcome(records);
    let res = results(records);
    let mut out = format!("# Post-mortem - {}\n\n", h.feature);
    let _ = writeln!(out, "- Runbook: `{}`", h.script);
    let _ = writeln!(out, "- Started: {} by {} on {}", h.started, h.by, h.host);
    let _ = writeln!(out, "- Outcome: {outcome}");
    if !error.is_empty() {
        let _ = writeln!(out, "- Error: {}", error.trim());
    }
    let _ = writeln!(out, "\n{}", story(records).trim_end());
    let _ = writeln!(out, "\n## Timeline\n");
    for r in records {
        let t = clock(r);
        let line = match s(r, "type") {
            "run.start" => format!("run started: `{}`", s(r, "script")),
            "stage.start" => format!("stage \"{}\" started", s(r, "stage")),
            "stage.end" if r["ok"].as_bool() == Some(true) => {
                format!("stage \"{}\" done", s(r, "stage"))
            }
            "stage.end" => format!("stage \"{}\" FAILED: {}", s(r, "stage"), s(r, "error")),
            // The measurement record that follows carries the values.
            "effect.intent"
                if s(r, "kind") == "measure"
                    && r["effect"]
                        .as_u64()
                        .and_then(|e| res.get(&e))
                        .is_some_and(|x| x["ok"].as_bool() == Some(true)) =>
            {
                continue
            }
            "measurement" => measurement_line(&r["measurement"]),
            "verdict" => format!(
                "verdict of `{}`: {}: {}",
                s(&r["verdict"], "window"),
                s(&r["verdict"], "verdict"),
                s(&r["verdict"], "reason")
            ),
            "effect.intent" => {
                let e = r["effect"].as_u64().unwrap_or(0);
                let what = match s(r, "kind") {
                    "sh" => format!("ran `{}`", command_of(r)),
                    "undo" => format!("undo \"{}\"", s(&r["intent"], "label")),
                    k if k.starts_with("prompt.") => {
                        let ans = res
                            .get(&e)
                            .map(|x| x["result"]["answer"].to_string())
                            .unwrap_or_default();
                        format!(
                            "asked `{}`{}",
                            s(r, "name"),
                            if ans.is_empty() || ans == "null" {
                                String::new()
                            } else {
                                format!(": {ans}")
                            }
                        )
                    }
                    k => format!("{k} `{}`", s(r, "name")),
                };
                format!("{what}: {}", result_text(res.get(&e), h.dry_run))
            }
            "undo.register" => format!("registered undo \"{}\"", s(r, "label")),
            "rollback.start" => format!("rollback started: {}", s(r, "reason")),
            "rollback.end" => format!(
                "rollback {}",
                if r["ok"].as_bool() == Some(true) {
                    "complete"
                } else {
                    "INCOMPLETE"
                }
            ),
            "log" => format!("log: {}", s(r, "message")),
            "interrupted" => "interrupted (Ctrl-C or SIGTERM)".to_string(),
            "run.end" => format!("run ended: {}", s(r, "outcome")),
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
    let stamp = |r: &Value, key: &str| {
        let mut v = r.get(key).cloned().unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("ts".into(), r["ts"].clone());
            m.insert("stage".into(), r["stage"].clone());
        }
        v
    };
    let measurements: Vec<Value> = of_type(records, "measurement")
        .map(|r| stamp(r, "measurement"))
        .collect();
    let verdicts: Vec<Value> = of_type(records, "verdict")
        .map(|r| stamp(r, "verdict"))
        .collect();
    if measurements.is_empty() && verdicts.is_empty() {
        return None;
    }
    let h = header(records);
    let v = serde_json::json!({
        "feature": h.feature,
        "started": h.started,
        "outcome": outcome(records).0,
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
    let (outcome, _) = outcome(&records);
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
    let dry = header(&records).dry_run;
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
