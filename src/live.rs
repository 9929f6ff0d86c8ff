//! Which colour is live, as the runs recorded it: the newest traffic switch (a `traffic` record
//! with a colour, not planned in a dry run) in any run under the deployments directory. A
//! blue-green release that went out leaves the new colour live, and a rollback the old one. A
//! deploy whose `<adapter>.live_colour` says otherwise would deploy onto the colour everyone is
//! served from: it is stopped before anything changes.

use std::path::{Path, PathBuf};

/// A recorded switch of traffic to a colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub colour: String,
    /// The run directory whose journal recorded it.
    pub run: PathBuf,
    /// When (RFC 3339, from the record).
    pub ts: String,
}

/// How many of the newest run directories are read (a journal per run; older switches are
/// superseded by a newer one in practice).
const RUNS_READ: usize = 200;

/// The newest recorded switch under `root`, if any run recorded one.
pub fn last_switch(root: &Path) -> Option<Switch> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(crate::journal::FILE_NAME).is_file())
        .collect();
    dirs.sort();
    let newest = &dirs[dirs.len().saturating_sub(RUNS_READ)..];
    let mut best: Option<Switch> = None;
    // Oldest first, and a later record wins a tie: within a run, the journal's order decides.
    for dir in newest {
        let Ok((records, _)) = crate::journal::read(&dir.join(crate::journal::FILE_NAME)) else {
            continue;
        };
        for r in &records {
            if r["type"] != "traffic" || r["dry_run"].as_bool() == Some(true) {
                continue;
            }
            let (Some(colour), Some(ts)) = (r["colour"].as_str(), r["ts"].as_str()) else {
                continue;
            };
            if best.as_ref().is_none_or(|b| ts >= b.ts.as_str()) {
                best = Some(Switch {
                    colour: colour.to_string(),
                    run: dir.clone(),
                    ts: ts.to_string(),
                });
            }
        }
    }
    best
}

/// Before a run of a runbook that deploys through the shipped workflow: the blue-green adapters'
/// `live_colour` (set, or its default) must be the colour the last recorded switch made live, as
/// the runs under `root` (the deployments directory) recorded it.
pub fn check(
    loaded: &crate::config::Loaded,
    modules: &[String],
    root: &std::path::Path,
) -> Result<(), crate::error::Error> {
    let workflow = crate::modules::shipped_name("stdlib", "workflow.rhai");
    if !modules.contains(&workflow) {
        return Ok(());
    }
    let (section, colour) = match (loaded.config.adapter.as_deref(), &loaded.config.script) {
        (Some("script"), Some(script)) => ("script", script.live_colour.to_string()),
        (Some("kubernetes"), _) => (
            "kubernetes",
            loaded.config.kubernetes.live_colour.to_string(),
        ),
        _ => return Ok(()),
    };
    let Some(switch) = last_switch(root) else {
        return Ok(());
    };
    if switch.colour == colour {
        return Ok(());
    }
    let key = format!("{section}.live_colour");
    let said = if loaded
        .value
        .get(section)
        .and_then(|m| m.get("live_colour"))
        .is_some()
    {
        format!("`{key}` is {colour}")
    } else {
        format!("`{key}` is not set, so it is {colour}")
    };
    Err(crate::error::Error::Config {
        file: loaded
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "--set".into()),
        key: key.clone(),
        message: format!(
            "{said}, but the last switch recorded made {} live ({}, at {}): this deploy would go \
             onto the colour everyone is served from. Set `{key}: {}` (or --set {key}={}) after \
             checking which colour serves now",
            switch.colour,
            switch.run.display(),
            switch.ts,
            switch.colour,
            switch.colour
        ),
        location: None,
    })
}
