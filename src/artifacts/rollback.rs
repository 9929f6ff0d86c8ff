//! rollback-plan.md: the undo steps still standing.

use std::fmt::Write as _;

use serde_json::Value;

use super::read::{header, intents, result_text, results, s, simulated_note, Intent};

/// Undo steps still standing (registered, not discarded, not carried out), newest first.
/// The undo steps `records` leave standing, last registered first.
pub fn standing_undos(records: &[Value]) -> Vec<crate::undo::Standing> {
    let entries: Vec<crate::journal::Entry> = records
        .iter()
        .map(crate::journal::Entry::from_value)
        .collect();
    crate::undo::standing(&entries)
}

pub fn rollback_plan(entries: &[crate::journal::Entry]) -> String {
    let h = header(entries);
    let res = results(entries);
    let mut out = format!("# Rollback Plan - {}\n\n{}", h.feature, simulated_note(&h));
    let standing = crate::undo::standing(entries);
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
    let done: Vec<Intent> = intents(entries).filter(|i| i.kind == "undo").collect();
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
