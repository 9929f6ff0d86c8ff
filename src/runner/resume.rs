//! `runbook resume`: a run that died goes on; what it completed is replayed from its journal,
//! not done again, and a rollback it died in is finished.

use super::*;

/// `runbook resume [DIR]`: run the same script again against its journal.
pub fn resume(
    common: &Common,
    target: Option<PathBuf>,
    force: bool,
    deployments_dir: Option<&Path>,
    ui: &Ui,
) -> Result<i32, Error> {
    // Finding the run may need the config (where the deployments are); the run itself needs the
    // config it was started with, which only its journal names.
    let (dir, found_with) = locate(common, target, deployments_dir)?;
    let path = dir.join(crate::journal::FILE_NAME);
    let (records, warning) = crate::journal::read(&path)?;
    if let Some(w) = warning {
        ui.warn(&w);
    }
    let entries: Vec<crate::journal::Entry> = records
        .iter()
        .map(crate::journal::Entry::from_value)
        .collect();
    let start = entries
        .iter()
        .find_map(|e| match &e.record {
            Record::RunStart(s) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| Error::Journal {
            file: path.display().to_string(),
            message: "it has no run.start record, so there is no script to resume".into(),
        })?;
    if let Some(outcome) = entries.iter().rev().find_map(|e| match &e.record {
        Record::RunEnd { outcome, .. } => Some(outcome.as_str()),
        _ => None,
    }) {
        return Err(Error::Usage(format!(
            "the run in `{}` already ended ({outcome}): there is nothing to resume",
            dir.display(),
        )));
    }
    let crate::effects::ReplayIndex {
        recorded,
        in_flight,
        next_effect,
    } = crate::effects::ReplayIndex::build(&entries);
    let answers: Vec<_> = recorded
        .iter()
        .filter(|r| r.kind.starts_with("prompt."))
        .flat_map(|r| {
            let result = match &r.outcome {
                Ok(v) | Err(crate::effects::Failure(_, v)) => v,
            };
            replayed_answers(&r.kind, result)
        })
        .collect();
    let finishing = unfinished_rollback(&entries);
    // A run that died rolling back another run (`runbook rollback`, the incident runbook) is
    // finished by rolling that run back again, which runs only what still stands there.
    let target = entries.iter().rev().find_map(|e| match &e.record {
        Record::RollbackTarget { deployment, .. } => Some(deployment.as_str()),
        _ => None,
    });
    if let (Some(_), Some(target)) = (&finishing, target) {
        return Err(Error::Usage(format!(
            "the run in `{}` was rolling back `{target}` when it died: finish that with `runbook rollback --set vars.deployment={target}` (it runs only what still stands)",
            dir.display()
        )));
    }
    let script = start.script.clone();
    let runbook = match script.strip_prefix("<shipped>/runbooks/") {
        Some(name) => name.trim_end_matches(".rhai").to_string(),
        None => script,
    };
    let given = start.run.clone().unwrap_or_default();
    // The run's own `--set`s, then those given now: settings that govern the resume itself
    // (`resume.*`) are the resume's to give; any other change shows as a changed config below.
    // A secret's value is never in the journal (an older journal holds `[REDACTED]`): secrets
    // are given again to the resume.
    let mut sets: Vec<String> = given
        .sets
        .iter()
        .filter(|s| !is_secret_set(s))
        .cloned()
        .collect();
    let resume_sets = common.sets.clone();
    sets.extend(common.sets.iter().cloned());
    let common = Common {
        sets,
        config_file: given
            .config_file
            .clone()
            .map(PathBuf::from)
            .or_else(|| common.config_file.clone()),
        ..common.clone()
    };
    // The config read to find the run serves the run too when it is the same file with the same
    // `--set`s (the common case); otherwise the run's own is read, once.
    let loaded = match found_with {
        Some(l) if l.file == common.config_file && resume_sets == common.sets => l,
        _ => config::load(common.config_file.as_deref(), &common.sets)?,
    };
    let opts = RunOptions {
        runbook,
        answers: given.answers_file.clone().map(PathBuf::from),
        yes: given.yes,
        approve: given.approve,
        // A resumed run keeps its mode: a dry-run that died is resumed as a dry-run.
        dry_run: start.dry_run,
        deployments_dir: dir.parent().map(Path::to_path_buf),
        take_over: None,
        presets: given.presets.clone(),
        simulation: None,
        // `runbook resume`: the process exits when the run returns.
        ends_process: true,
    };
    run_with(
        &common,
        loaded,
        &opts,
        ui,
        Some(Resume {
            dir,
            recorded,
            next_effect,
            in_flight,
            answers,
            start,
            force,
            finishing,
            sets: resume_sets,
        }),
    )
}

/// The run directory to resume: the one named, else the newest unfinished run under the
/// deployments root (`--deployments-dir`, else the config's); and the resume's own config, when
/// it was read to find the root.
fn locate(
    common: &Common,
    target: Option<PathBuf>,
    deployments_dir: Option<&Path>,
) -> Result<(PathBuf, Option<Loaded>), Error> {
    if let Some(dir) = target {
        return Ok((dir, None));
    }
    let loaded = config::load(common.config_file.as_deref(), &common.sets)?;
    let root = deployments_root(deployments_dir, &loaded);
    let dir = unfinished_runs(&root).pop().ok_or_else(|| {
        Error::Usage(format!(
            "nothing to resume: no unfinished run under `{}`",
            root.display()
        ))
    })?;
    Ok((dir, Some(loaded)))
}

/// A rollback the run died in: the undos still standing (in the order they were registered)
/// and the one under way when it died.
pub struct Finishing {
    pub undos: Vec<crate::undo::Undo>,
    /// (effect number, undo id, effect name) of the undo that has an intent and no result.
    pub in_flight: Option<(u64, u64, String)>,
    /// The process group that undo's command started, if it did (and its leader's start time).
    pub child: Option<(i32, Option<crate::process::Started>)>,
}

/// Whether the journal's last rollback started and never ended, and what it left.
pub(crate) fn unfinished_rollback(entries: &[crate::journal::Entry]) -> Option<Finishing> {
    let started = entries
        .iter()
        .rposition(|e| matches!(e.record, Record::RollbackStart { .. }))?;
    if entries[started..]
        .iter()
        .any(|e| matches!(e.record, Record::RollbackEnd { .. }))
    {
        return None;
    }
    let undos = crate::undo::standing(entries)
        .into_iter()
        .rev()
        .map(|s| s.undo)
        .collect();
    let finished = |n: u64| {
        entries
            .iter()
            .any(|e| matches!(&e.record, Record::EffectResult(r) if r.effect == n))
    };
    let in_flight = entries[started..]
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectIntent {
                effect,
                kind,
                name,
                intent,
                ..
            } if kind == "undo" && !finished(*effect) => {
                Some((*effect, intent["undo"].as_u64()?, name.clone()))
            }
            _ => None,
        })
        .next_back();
    let child = in_flight
        .as_ref()
        .and_then(|(effect, _, _)| crate::effects::child_of(entries, *effect));
    Some(Finishing {
        undos,
        in_flight,
        child,
    })
}

/// The answers a recorded prompt gave, keyed as the prompts will ask for them again.
pub(crate) fn replayed_answers(
    kind: &str,
    result: &serde_json::Value,
) -> Vec<(String, serde_yaml::Value)> {
    let id = result["id"].as_str().unwrap_or("").to_string();
    let yaml = |v: &serde_json::Value| serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null);
    match kind {
        "prompt.checklist" => result["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    format!("{id}.{}", i["id"].as_str().unwrap_or("")),
                    serde_yaml::Value::Bool(i["checked"] == true),
                )
            })
            .collect(),
        "prompt.approve" => vec![(
            id,
            yaml(&json!({ "approved": result["approved"], "by": result["by"] })),
        )],
        _ => vec![(id, yaml(&result["answer"]))],
    }
}

/// Run directories whose journal has no end, oldest first.
pub(crate) fn unfinished_runs(root: &Path) -> Vec<PathBuf> {
    crate::journal::run_dirs(root)
        .into_iter()
        .filter(|d| d.is_deployment() && !d.ended())
        .map(|d| d.path)
        .collect()
}

/// Run a runbook; returns the exit code.
/// What a resumed run carries over from its journal.
pub struct Resume {
    pub dir: PathBuf,
    pub recorded: Vec<crate::effects::Recorded>,
    pub next_effect: u64,
    pub in_flight: Option<crate::effects::InFlight>,
    pub answers: Vec<(String, serde_yaml::Value)>,
    pub start: crate::record::RunStart,
    pub force: bool,
    /// The run died while rolling back: finish that rollback rather than run the script again.
    pub finishing: Option<Finishing>,
    /// The `--set`s given to the resume itself.
    pub sets: Vec<String>,
}

/// Resuming a run that died while rolling back: carry out the undos still standing, asking
/// about the one under way (it may or may not have happened); the script is not run again.
pub(crate) fn finish_rollback(
    session: &Session,
    p: &Prepared,
    f: Finishing,
) -> Result<(Outcome, String), Error> {
    let reason = "finishing the rollback the run died in".to_string();
    session.say(
        "↻ the run died while rolling back: finishing its rollback (the script is not run again)",
    );
    let mut undos = f.undos;
    if let Some((group, start)) = f.child {
        if session.settle_in_flight_child(group, start).is_err() {
            return Ok(interrupted(session, p));
        }
    }
    if let Some((effect, id, name)) = f.in_flight {
        let (label, answer) = crate::unwind::ask_in_flight(session, &undos, id);
        match answer {
            Some(true) => {}
            Some(false) => {
                undos.retain(|u| u.id != id);
                // Closed as skipped, so it no longer stands.
                session.record(Record::EffectResult(crate::record::EffectResult {
                    effect,
                    kind: "undo".into(),
                    name: name.clone(),
                    ok: true,
                    ms: None,
                    result: json!({ "skipped": true }),
                    error: None,
                    dry_run: None,
                }));
            }
            None => {
                return Err(Error::Usage(format!(
                    "the run died while undoing `{label}`, and there is nobody to ask whether to run it again\n  {}",
                    crate::unwind::IN_FLIGHT_HELP
                )))
            }
        }
    }
    *session.undo.borrow_mut() = undos;
    let report = crate::unwind::rollback(session, &p.engine, &reason);
    Ok(if report.ok() {
        (Outcome::RolledBack, reason)
    } else {
        (Outcome::RollbackFailed, reason)
    })
}
