//! deployment-plan.md and pre-deployment-checklist.md.

use std::fmt::Write as _;

use serde_json::Value;

use crate::journal::{Entry, Record};

use super::read::{
    command_of, header, intents, md_cell, outcome, result_text, results, s, simulated_note,
    strategy, Intent,
};

pub fn plan(entries: &[Entry]) -> String {
    let h = header(entries);
    let (outcome, _) = outcome(entries);
    let res = results(entries);
    let mut out = String::new();
    let _ = writeln!(out, "# Deployment Plan - {}\n", h.feature);
    out.push_str(simulated_note(&h));
    let _ = writeln!(out, "- Runbook: `{}`", h.script);
    let _ = writeln!(out, "- Started: {} by {} on {}", h.started, h.by, h.host);
    let _ = writeln!(
        out,
        "- Mode: {}",
        if h.dry_run {
            "dry-run (nothing was executed; every command below is what would run)"
        } else if h.simulated {
            "simulated (a rehearsal: the scenario's world answered every effect)"
        } else {
            "live"
        }
    );
    let _ = writeln!(out, "- Strategy: {}", strategy(entries));
    let _ = writeln!(out, "- Outcome: {outcome}\n");

    if !h.dry_run {
        let _ = writeln!(out, "## Success criteria\n");
        for c in crate::criteria::evaluate_entries(entries) {
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
    for e in entries {
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
    for i in intents(entries).filter(|i| matches!(i.kind, "sh" | "undo")) {
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

    let others: Vec<Intent> = intents(entries)
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

pub fn checklist(entries: &[Entry]) -> Option<String> {
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
    let h = header(entries);
    let mut out = format!(
        "# Pre-deployment Checklist - {}\n\n{}",
        h.feature,
        simulated_note(&h)
    );
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
