//! Which colour is live, as the runs recorded it: the newest traffic switch (a `traffic` record
//! with a colour, not planned in a dry run) in any run under the deployments directory. A
//! blue-green release that went out leaves the new colour live, and a rollback the old one. A
//! deploy whose `<adapter>.live_colour` says otherwise would deploy onto the colour everyone is
//! served from: it is stopped before anything changes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::journal::Record;

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
        let Ok((entries, _)) = crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME))
        else {
            continue;
        };
        for e in &entries {
            // A switch to a colour that went out (a dry-run's is only planned), with its time.
            let Record::Traffic {
                colour: Some(Value::String(colour)),
                dry_run: false,
                ..
            } = &e.record
            else {
                continue;
            };
            let ts = e.ts.as_str();
            if ts.is_empty() {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use serde_json::json;

    /// A run directory under `root` whose journal holds these traffic switches (colour, planned),
    /// written by the journal's own (typed) writer.
    fn run(root: &Path, name: &str, switches: &[(&str, bool)]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut j =
            Journal::create(&dir.join(crate::journal::FILE_NAME), Default::default()).unwrap();
        j.append(&Record::StageStart {
            stage: "Deploy".into(),
        })
        .unwrap();
        for (colour, planned) in switches {
            let mut weights = serde_json::Map::new();
            weights.insert("v2".into(), json!(100));
            j.append(&Record::Traffic {
                live: Some("v2".into()),
                colour: Some(json!(colour)),
                weights,
                dry_run: *planned,
                stage: Some("Deploy".into()),
            })
            .unwrap();
        }
        dir
    }

    /// Long enough that the next record's time stamp (milliseconds) is later.
    fn tick() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    #[test]
    fn the_last_switch_is_the_newest_one_that_went_out() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(last_switch(root.path()), None);

        // Within a run the later switch wins; a dry-run's switch was only planned.
        let first = run(root.path(), "b-first", &[("blue", false), ("green", false)]);
        tick();
        run(root.path(), "c-planned", &[("blue", true)]);
        let got = last_switch(root.path()).unwrap();
        assert_eq!((got.colour.as_str(), &got.run), ("green", &first));

        // Across runs the newest record wins, whatever the directories' names sort as.
        tick();
        let newest = run(root.path(), "a-newest", &[("blue", false)]);
        let got = last_switch(root.path()).unwrap();
        assert_eq!((got.colour.as_str(), &got.run), ("blue", &newest));

        // A journal with only planned switches, or none, says nothing.
        let alone = tempfile::tempdir().unwrap();
        run(alone.path(), "r", &[("green", true)]);
        run(alone.path(), "s", &[]);
        assert_eq!(last_switch(alone.path()), None);
    }

    #[test]
    fn a_switch_in_an_older_journal_still_reads() {
        // A line as an earlier version wrote it: no stage, no live, no dry_run.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("old");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(crate::journal::FILE_NAME),
            "{\"seq\":1,\"ts\":\"2025-01-01T00:00:00.000Z\",\"type\":\"traffic\",\"colour\":\"green\",\"weights\":{\"v1\":100}}\n",
        )
        .unwrap();
        let got = last_switch(root.path()).unwrap();
        assert_eq!(
            (got.colour.as_str(), got.ts.as_str()),
            ("green", "2025-01-01T00:00:00.000Z")
        );
    }
}
