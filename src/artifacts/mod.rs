//! The deployment artifacts, rendered from the journal: what they say is what the journal holds.
//!
//! A file each: plan.rs the plan and the checklist, rollback.rs the rollback plan, story.rs and
//! postmortem.rs the post-mortem, snapshot.rs the monitoring snapshot, status.rs the REPL's
//! `status()`; read.rs what they read from the journal. This file renders them into a run
//! directory.

mod plan;
mod postmortem;
mod read;
mod rollback;
mod snapshot;
mod status;
mod story;

pub use plan::{checklist, plan};
pub use postmortem::post_mortem;
pub use read::outcome_text;
pub(crate) use read::s;
pub use rollback::{rollback_plan, standing_undos};
pub use snapshot::snapshot;
pub use status::status;

use std::path::Path;

use crate::error::Error;
use crate::secrets::Redactor;

use read::{entries, header, outcome};

pub const PLAN: &str = "deployment-plan.md";
pub const CHECKLIST: &str = "pre-deployment-checklist.md";
pub const LOG: &str = "deployment-log.txt";
pub const ROLLBACK_PLAN: &str = "rollback-plan.md";
pub const POST_MORTEM: &str = "post-mortem.md";
pub const SNAPSHOT: &str = "monitoring-snapshot.json";

pub const HASH_LINE: &str = "- Journal: ";

/// The line that pins the journal as it stood: its record count and the hash of its last record.
fn evidence(text: &str) -> String {
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
    // Read once, typed once: every artifact is a view of the same records.
    let text = crate::journal::read_text(&journal_path)?;
    let (records, _) = crate::journal::parse(&text, &journal_path)?;
    let pin = evidence(&text);
    let typed = entries(&records);
    let (outcome, _) = outcome(&typed);
    let mut files: Vec<(&str, String)> = vec![
        (
            PLAN,
            format!("{}\n\n## Evidence\n\n{pin}", plan(&typed).trim_end()),
        ),
        (ROLLBACK_PLAN, rollback_plan(&typed)),
    ];
    if let Some(c) = checklist(&typed) {
        files.push((CHECKLIST, c));
    }
    if let Some(m) = snapshot(&typed) {
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
            format!("{}\n\n## Evidence\n\n{pin}", post_mortem(&typed).trim_end()),
        ));
    }
    // A chart per judged metric, embedded in the plan and the post-mortem.
    let mut charts: Vec<(String, String, String)> = Vec::new();
    if !dry {
        for series in crate::charts::series_of(&typed) {
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
