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

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn clock(v: &Value) -> &str {
    let ts = s(v, "ts");
    ts.get(11..19).unwrap_or(ts)
}

fn of_type<'a>(records: &'a [Value], t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
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
            "undo.register" => standing.push(r.clone()),
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
            let _ = writeln!(
                out,
                "{}. {}: `{}`{}",
                i + 1,
                s(u, "label"),
                crate::undo::describe_json(&u["action"]),
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
            let _ = writeln!(
                out,
                "- {}: {}",
                s(&i["intent"], "label"),
                result_text(res.get(&e), h.dry_run)
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
            "failed" | "rolled back" | "rollback failed" | "interrupted"
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
    let mut written = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, redactor.redact(&text))
            .map_err(|e| Error::io("write artifact", &p, e))?;
        written.push(name.to_string());
    }
    Ok(written)
}
