//! One run of a runbook, from finding it to the last artifact: compile everything first (errors
//! exit 2 before anything changes), then run, then decide the outcome and its exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{EvalAltResult, AST};
use serde_json::json;

use crate::answers::Answers;
use crate::config::{self, Loaded};
use crate::effects::Effects;
use crate::error::{exit, Error};
use crate::journal::{Journal, Record};
use crate::modules::Sources;
use crate::options::{Common, RunOptions};
use crate::runbooks::{self, Found};
use crate::secrets::Redactor;
use crate::session::{Session, SessionParts, Shared, Stop};
use crate::signals::Interrupt;
use crate::ui::Ui;

/// Everything compiled and checked, nothing run yet.
pub struct Prepared {
    pub session: Shared,
    pub engine: rhai::Engine,
    pub ast: AST,
    pub sources: Sources,
    pub found: Found,
    pub runtime: tokio::runtime::Runtime,
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", PathBuf::from("-"), e))
}

pub fn prepare(
    common: &Common,
    ui: &Ui,
    runbook: &str,
    answers: Option<&Path>,
    mode: crate::options::Mode,
) -> Result<Prepared, Error> {
    let (yes, approve, dry_run) = (mode.yes, mode.approve, mode.plans_only());
    let loaded: Loaded = config::load(common.config_file.as_deref(), &common.sets)?;
    let team_dirs: Vec<PathBuf> = loaded
        .config
        .runbook_dirs
        .iter()
        .map(|d| loaded.base_dir().join(d))
        .collect();
    let found = runbooks::find(runbook, &team_dirs)?;
    let mut answers = Answers::load(answers)?;
    answers.yes = yes;
    answers.approve = approve;

    let feature = loaded.config.feature.clone().unwrap_or_else(|| {
        found
            .shown
            .rsplit('/')
            .next()
            .unwrap_or("run")
            .trim_end_matches(".rhai")
            .to_string()
    });
    let base = found
        .path
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let script = found
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&found.shown));
    config::check_adapter(&loaded, &base)?;
    let Built {
        session,
        engine,
        sources,
        runtime,
    } = build(ui, loaded, answers, feature, script, base.clone(), dry_run)?;
    sources.insert(&found.shown, &found.text);
    let mut ast = engine
        .compile(&found.text)
        .map_err(|e| crate::engine::parse_error(&e, &found.shown, &sources))?;
    ast.set_source(found.shown.clone());
    let literals = crate::modules::precompile_imports(&engine, &sources, &found.shown, &ast, &base)
        .map_err(|e| crate::engine::script_error(&e, &found.shown, &sources, true))?;
    // An answer that cannot fit a prompt the runbook declares is found now, not mid-run.
    session.answers.borrow().check(&literals.prompts)?;
    for (id, near) in session.answers.borrow().likely_typos(&literals.prompts) {
        ui.warn(&format!(
            "{}: `{id}` answers no prompt this runbook asks; did you mean `{near}`?",
            session.answers.borrow().file_name()
        ));
    }
    // So is a notification channel the config does not define: at run time it could only be a
    // warning, and the person would learn of it after the deployment.
    check_channels(&session, &literals.channels, &sources)?;
    // And a team's adapter that lacks a function the shipped workflow calls.
    crate::contract::check_adapter(&session.config, &sources.names(), &base)?;
    // And a live colour that is not the one the last recorded switch made live.
    crate::live::check(&session.config, &sources.names())?;
    Ok(Prepared {
        session,
        engine,
        ast,
        sources,
        found,
        runtime,
    })
}

fn check_channels(
    session: &Session,
    used: &[(String, crate::prompts::ChannelUse)],
    sources: &Sources,
) -> Result<(), Error> {
    let config = &session.config;
    let Some((file, unknown)) = used
        .iter()
        .find(|(_, u)| !config.config.notify.contains_key(&u.channel))
    else {
        return Ok(());
    };
    let known: Vec<&str> = config.config.notify.keys().map(String::as_str).collect();
    let config_file = config
        .file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| crate::config::FILE_NAME.to_string());
    Err(crate::engine::error_at(
        sources,
        file,
        unknown.position,
        crate::primitives::notify::unknown_channel(&unknown.channel, &known),
        format!(
            "add `{}` under `notify:` in {config_file} (docs/configuration.md, \"Notification channels\"), or name a channel that is defined",
            unknown.channel
        ),
    ))
}

/// A session and its engine, before any script is compiled.
pub struct Built {
    pub session: Shared,
    pub engine: rhai::Engine,
    pub sources: Sources,
    pub runtime: tokio::runtime::Runtime,
}

/// The runtime, the interrupt handler, a session journaling nowhere yet, and its engine.
pub fn build(
    ui: &Ui,
    loaded: Loaded,
    answers: Answers,
    feature: String,
    script: PathBuf,
    base: PathBuf,
    dry_run: bool,
) -> Result<Built, Error> {
    let runtime = runtime()?;
    let interrupt: Arc<Interrupt> = Interrupt::install(&runtime);
    let redactor = Redactor::from_config(&loaded.config);
    for name in redactor.too_short() {
        ui.warn(&format!(
            "the secret `{name}` is shorter than 4 characters, so it is not redacted (it would mask ordinary text everywhere): use a longer one"
        ));
    }
    let effects = Effects::new(Journal::none(), None, redactor, dry_run)?;
    let session = Session::new(SessionParts {
        ui: ui.clone(),
        config: loaded,
        rt: runtime.handle().clone(),
        interrupt,
        effects,
        answers,
        feature,
        script,
    });
    let sources = Sources::default();
    let engine = crate::engine::build(&session, &sources, base);
    Ok(Built {
        session,
        engine,
        sources,
        runtime,
    })
}

/// Point the session's gate at a fresh run directory under the deployments directory.
pub fn start_journal(session: &Shared, root: &Path, dry_run: bool) -> Result<PathBuf, Error> {
    let dir = make_run_dir(root, &session.feature, dry_run)?;
    let redactor = session.effects.borrow().redactor().clone();
    let journal = Journal::create(&dir.join(crate::journal::FILE_NAME), redactor.clone())?
        .echo(session.ui.format == crate::ui::LogFormat::Json);
    *session.effects.borrow_mut() = Effects::new(
        journal,
        Some(&dir.join(crate::artifacts::LOG)),
        redactor,
        dry_run,
    )?;
    *session.run_dir.borrow_mut() = Some(dir.clone());
    Ok(dir)
}

/// Point the session's gate at an existing run directory, to go on with its journal in the mode
/// it was started in (a dry-run stays a dry-run).
pub fn continue_journal(session: &Shared, dir: &Path, dry_run: bool) -> Result<PathBuf, Error> {
    let redactor = session.effects.borrow().redactor().clone();
    let journal = Journal::append_to(&dir.join(crate::journal::FILE_NAME), redactor.clone())?
        .echo(session.ui.format == crate::ui::LogFormat::Json);
    *session.effects.borrow_mut() = Effects::new(
        journal,
        Some(&dir.join(crate::artifacts::LOG)),
        redactor,
        dry_run,
    )?;
    *session.run_dir.borrow_mut() = Some(dir.to_path_buf());
    Ok(dir.to_path_buf())
}

/// `runbook resume [DIR]`: run the same script again against its journal.
pub fn resume(
    common: &Common,
    target: Option<PathBuf>,
    force: bool,
    deployments_dir: Option<&Path>,
    ui: &Ui,
) -> Result<i32, Error> {
    let loaded = config::load(common.config_file.as_deref(), &common.sets)?;
    let root = deployments_root(deployments_dir, &loaded);
    let dir = match target {
        Some(d) => d,
        None => unfinished_runs(&root).pop().ok_or_else(|| {
            Error::Usage(format!(
                "nothing to resume: no unfinished run under `{}`",
                root.display()
            ))
        })?,
    };
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
    };
    run_with(
        &common,
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

/// A rollback the run died in: the undos still standing (in the order they were registered)
/// and the one under way when it died.
pub struct Finishing {
    pub undos: Vec<crate::undo::Undo>,
    /// (effect number, undo id, effect name) of the undo that has an intent and no result.
    pub in_flight: Option<(u64, u64, String)>,
    /// The process group that undo's command started, if it did (and its leader's start time).
    pub child: Option<(i32, Option<u64>)>,
}

/// Whether the journal's last rollback started and never ended, and what it left.
fn unfinished_rollback(entries: &[crate::journal::Entry]) -> Option<Finishing> {
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
    let child = in_flight.as_ref().and_then(|(effect, _, _)| {
        entries.iter().rev().find_map(|e| match &e.record {
            Record::EffectChild {
                effect: n,
                group,
                start,
            } if n == effect => Some((*group, *start)),
            _ => None,
        })
    });
    Some(Finishing {
        undos,
        in_flight,
        child,
    })
}

/// The answers a recorded prompt gave, keyed as the prompts will ask for them again.
fn replayed_answers(kind: &str, result: &serde_json::Value) -> Vec<(String, serde_yaml::Value)> {
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
fn unfinished_runs(root: &Path) -> Vec<PathBuf> {
    crate::journal::run_dirs(root)
        .into_iter()
        .filter(|d| d.is_deployment() && !d.ended())
        .map(|d| d.path)
        .collect()
}

use crate::options::deployments_root;

/// A fresh directory `<deployments>/<date>-<feature>[-N]`.
fn make_run_dir(root: &Path, feature: &str, dry_run: bool) -> Result<PathBuf, Error> {
    let date = &crate::journal::now_rfc3339()[..10];
    let mut base = format!("{date}-{}", crate::answers::slug(feature));
    if dry_run {
        base.push_str("-dry-run");
    }
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io("create deployments directory", root, e))?;
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create run directory", &dir, e)),
        }
    }
    unreachable!("an unbounded counter always finds a free name")
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

/// Config sections that may be given anew when a run is resumed, and are left out of the
/// changed-input check.
/// Secrets are given again to a resume (the journal never holds them, nor a hash of them).
const RESUME_TIME_KEYS: &[&str] = &["resume", "secrets"];

/// The secrets a run was given, by name (a resume must be given them again).
fn secret_names(cfg: &crate::config::Config) -> serde_json::Value {
    let values = cfg.secrets.values.keys().map(|n| json!({ "name": n }));
    let env = cfg
        .secrets
        .env
        .iter()
        .filter(|n| std::env::var(n).is_ok())
        .map(|n| json!({ "name": n, "env": true }));
    values.chain(env).collect()
}

/// `--set secrets.values.NAME=VALUE`: a secret, never journaled.
fn is_secret_set(set: &str) -> bool {
    set.trim_start().starts_with("secrets.values.")
}

/// Hashes of what a run started from: the script, the merged config, the answers file.
fn input_hashes(p: &Prepared, answers: Option<&Path>) -> serde_json::Value {
    let h = crate::journal::line_hash;
    // What governs only a resume (`resume.*`) may differ at resume time: it is not an input.
    let mut value = p.session.config.value.clone();
    if let serde_yaml::Value::Mapping(m) = &mut value {
        for key in RESUME_TIME_KEYS {
            m.remove(*key);
        }
    }
    let config = serde_json::to_string(&value).unwrap_or_default();
    let answers = answers
        .and_then(|a| std::fs::read_to_string(a).ok())
        .map(|t| h(&t));
    json!({ "script": h(&p.found.text), "config": h(&config), "answers": answers })
}

pub fn run(common: &Common, opts: &RunOptions, ui: &Ui) -> Result<i32, Error> {
    run_with(common, opts, ui, None)
}

pub fn run_with(
    common: &Common,
    opts: &RunOptions,
    ui: &Ui,
    resume: Option<Resume>,
) -> Result<i32, Error> {
    let p = prepare(
        common,
        ui,
        &opts.runbook,
        opts.answers.as_deref(),
        opts.mode(),
    )?;
    p.session.answers.borrow_mut().presets = opts.presets.clone();
    let hashes = input_hashes(&p, opts.answers.as_deref());
    if let Some(r) = &resume {
        let have: Vec<String> = p
            .session
            .effects
            .borrow()
            .redactor()
            .names()
            .map(str::to_string)
            .collect();
        let given = r.start.run.clone().unwrap_or_default();
        for s in given.secrets.as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("");
            if name.is_empty() || have.iter().any(|h| h == name) {
                continue;
            }
            let help = if s["env"] == true {
                format!("set the environment variable `{name}`")
            } else {
                format!("`--set secrets.values.{name}=...`, or in runbook.yaml")
            };
            return Err(Error::Usage(format!(
                "the run was started with the secret `{name}`, which this resume was not given\n  help: give it again: {help}"
            )));
        }
        let before = &given.inputs;
        let changed: Vec<&str> = ["script", "config", "answers"]
            .into_iter()
            .filter(|k| before.get(*k).is_some_and(|v| *v != hashes[*k]))
            .collect();
        if !changed.is_empty() && !r.force {
            return Err(Error::Usage(format!(
                "the {} changed since the run in `{}` started: replaying it against different inputs could repeat or skip real effects\n  help: put them back as they were, or run `runbook resume --force` to go on anyway",
                changed.join(" and "),
                r.dir.display()
            )));
        }
    }
    let take_over = match (&resume, &opts.take_over) {
        (_, Some(t)) => Some(t.clone()),
        (Some(r), None) => Some(format!("resume of {}", r.dir.display())),
        (None, None) => None,
    };
    let root = deployments_root(opts.deployments_dir.as_deref(), &p.session.config);
    *p.session.deployments_root.borrow_mut() = Some(root.clone());
    // One run at a time per environment (a dry-run changes nothing and takes no lock).
    let mut lock = if opts.dry_run {
        None
    } else {
        let cfg = &p.session.config.config;
        let lease = config::duration_at(&p.session.config, "lock.lease", &cfg.lock.lease)?;
        let mut reason = format!(
            "{} {}",
            p.found.shown,
            cfg.version.clone().unwrap_or_default()
        )
        .trim()
        .to_string();
        if let Some(r) = &resume {
            // Whoever finds this lock is told it is a resume, and of which run.
            reason = format!("resume of {}: {reason}", r.dir.display());
        }
        let backend = crate::lock::open(cfg, &root, p.session.rt.clone())?;
        let l = crate::lock::acquire(
            backend.as_ref(),
            &cfg.lock.environment,
            lease,
            &reason,
            "(starting)",
            take_over.as_deref(),
        )?;
        p.session.interrupt.hold_lock(l.release_now());
        p.session
            .interrupt
            .watch_lock(&l.holder.environment, l.lost(), l.progress());
        Some(l)
    };
    let wall_clock = match &p.session.config.config.limits.wall_clock {
        Some(w) => Some(config::duration_at(
            &p.session.config,
            "limits.wall_clock",
            w,
        )?),
        None => None,
    };
    let dir = match &resume {
        Some(r) => continue_journal(&p.session, &r.dir, opts.dry_run)?,
        None => start_journal(&p.session, &root, opts.dry_run)?,
    };
    if let Some(limit) = wall_clock {
        p.session
            .deadline
            .set(Some((std::time::Instant::now() + limit, limit)));
    }
    let redactor = p.session.effects.borrow().redactor().clone();
    let session = p.session.clone();

    match &resume {
        Some(r) => {
            session.record(Record::RunResume(crate::record::RunResume {
                pid: std::process::id(),
                user: crate::identity::user(),
                host: crate::identity::host(),
                replaying: r.recorded.len(),
                in_flight: r
                    .in_flight
                    .as_ref()
                    .map(|f| json!({ "kind": f.kind, "name": f.name, "started": f.started })),
                inputs: hashes.clone(),
                forced: r.force,
                sets: r
                    .sets
                    .iter()
                    .filter(|s| !is_secret_set(s))
                    .cloned()
                    .collect(),
            }));
        }
        None => session.record(Record::RunStart(crate::record::RunStart {
            script: p.found.shown.clone(),
            feature: session.feature.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            dry_run: opts.dry_run,
            user: crate::identity::user(),
            host: crate::identity::host(),
            run_dir: dir.display().to_string(),
            run: Some(crate::record::RunInputs {
                inputs: hashes.clone(),
                yes: opts.yes,
                approve: opts.approve,
                presets: opts.presets.clone(),
                pid: std::process::id(),
                config_file: session
                    .config
                    .file
                    .as_ref()
                    .map(|f| f.display().to_string()),
                answers_file: opts.answers.as_ref().map(|f| f.display().to_string()),
                sets: common
                    .sets
                    .iter()
                    .filter(|s| !is_secret_set(s))
                    .cloned()
                    .collect(),
                secrets: secret_names(&session.config.config),
            }),
            attached: None,
        })),
    }
    if let Some(l) = &mut lock {
        l.set_run_dir(&dir);
        session.record(Record::LockAcquire {
            lock: l.holder.clone(),
        });
        if let Some(previous) = &l.followed {
            // Its lease ran out without it giving the lock back: it died, or was cut off.
            session.record(Record::LockExpired {
                previous: previous.clone(),
            });
            session.warn(&format!(
                "the last holder of `{}` let its lease run out without releasing it (it died, or lost the lock store): {}",
                l.holder.environment,
                crate::lock::describe(previous)
            ));
        }
        if let Some((previous, reason)) = &l.took_over {
            session.record(Record::LockTakeover {
                previous: previous.clone(),
                reason: reason.clone(),
            });
            session.warn(&format!(
                "took over the stale lock of `{}`: {}",
                l.holder.environment,
                match previous {
                    Some(h) => crate::lock::describe(h),
                    None => "its lock file was empty or half-written".into(),
                }
            ));
        }
    }
    let mode = if opts.dry_run {
        " (dry-run: nothing will be executed)"
    } else {
        ""
    };
    session.say_styled(
        &format!("▶ {} — feature `{}`{mode}", p.found.shown, session.feature),
        |ui, s| ui.bold(s),
    );
    session.say(&format!("  run directory: {}", dir.display()));
    let mut finishing = None;
    if let Some(mut r) = resume {
        finishing = r.finishing.take();
        if finishing.is_some() {
            // Effects are numbered on from the journal's; nothing is replayed.
            session
                .effects
                .borrow_mut()
                .start_replay(vec![], r.next_effect, None);
        } else {
            session.say(&format!(
                "↻ resuming: {} completed effect(s) replayed from the journal, without acting again",
                r.recorded.len()
            ));
            let mut answers = session.answers.borrow_mut();
            for (id, v) in r.answers {
                answers.replayed.entry(id).or_default().push_back(v);
            }
            drop(answers);
            session
                .effects
                .borrow_mut()
                .start_replay(r.recorded, r.next_effect, r.in_flight);
        }
    }

    let (outcome, error_text) = match finishing {
        Some(f) => finish_rollback(&session, &p, f)?,
        None => {
            let result = p.engine.run_ast(&p.ast);
            conclude(&session, &p, result)
        }
    };
    let code = outcome.exit_code();

    // A run that did not complete never reached some of its prompts: their answers are not
    // wrong, only unused; say so once rather than once per answer.
    let unused = session.answers.borrow().unused();
    if code != exit::OK && !unused.is_empty() {
        session.warn(&format!(
            "the run ended ({}) before the prompts of {} answer(s) in `{}` were reached: {}",
            outcome.label(),
            unused.len(),
            session.answers.borrow().file_name(),
            unused.join(", ")
        ));
        for id in &unused {
            session.record(Record::AnswersUnused { id: id.clone() });
        }
    }
    for id in unused.into_iter().filter(|_| code == exit::OK) {
        let asked: Vec<String> = session
            .answers
            .borrow()
            .asked_ids()
            .map(str::to_string)
            .collect();
        let hint = crate::error::did_you_mean(&id, asked.iter().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        session.warn(&format!(
            "answers file `{}` has an answer for `{id}` that no prompt asked for{hint}",
            session.answers.borrow().file_name()
        ));
        session.record(Record::AnswersUnused { id: id.clone() });
    }
    if let Some(l) = lock.take() {
        session.record(Record::LockRelease {
            environment: l.holder.environment.clone(),
        });
        drop(l);
        session.interrupt.hold_lock(None);
    }
    session.record(Record::RunEnd {
        outcome: outcome.label().to_string(),
        exit_code: code,
        error: Some(json!(error_text)),
        signal: None,
    });
    match crate::artifacts::render(&dir, &redactor) {
        Ok(files) => {
            session.say(&format!(
                "  artifacts in {}: {}, {}, {}",
                dir.display(),
                crate::artifacts::LOG,
                crate::journal::FILE_NAME,
                files.join(", ")
            ));
        }
        Err(e) => ui.error_text(&redactor.redact(&e.render(ui))),
    }
    Ok(code)
}

/// Resuming a run that died while rolling back: carry out the undos still standing, asking
/// about the one under way (it may or may not have happened); the script is not run again.
fn finish_rollback(
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

/// Decide how the run ended: (exit code, outcome word, error text).
/// How a run ended, and the exit code each way has (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// A verdict, a failed step, a person or the script chose it; every undo succeeded.
    RolledBack,
    /// The run itself broke (a runbook error, monitoring that could not measure); every undo
    /// succeeded.
    RolledBackAfterError,
    /// An undo failed, or a rollback was refused.
    RollbackFailed,
    Declined,
    /// Failed with nothing to undo.
    Failed,
    /// Failed with an error's own exit code.
    FailedWith(i32),
    /// Stopped before anything changed: usage, config, answers or script (exit 2).
    Stopped(i32),
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Completed => exit::OK,
            Outcome::RolledBack => exit::ROLLED_BACK,
            Outcome::RolledBackAfterError => exit::ROLLED_BACK_AFTER_ERROR,
            Outcome::RollbackFailed | Outcome::Failed => exit::FAILED,
            Outcome::Declined => exit::DECLINED,
            Outcome::FailedWith(code) | Outcome::Stopped(code) => code,
            Outcome::Interrupted => exit::INTERRUPTED,
        }
    }

    /// As the journal's `run.end` and the artifacts say it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::RolledBack => "rolled back",
            Outcome::RolledBackAfterError => "rolled back after an error",
            Outcome::RollbackFailed => "rollback failed",
            Outcome::Declined => "declined",
            Outcome::Failed | Outcome::FailedWith(_) => "failed",
            Outcome::Stopped(_) => "stopped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

fn conclude(
    session: &Session,
    p: &Prepared,
    result: Result<(), Box<EvalAltResult>>,
) -> (Outcome, String) {
    let ui = &session.ui;
    let err = match result {
        Ok(()) => {
            session.shout(&ui.green(&ui.bold("✅ Run completed.")));
            return (Outcome::Completed, String::new());
        }
        Err(e) => e,
    };
    if let EvalAltResult::Exit(..) = *err {
        session.shout(&ui.green(&ui.bold("✅ Run completed (the script called exit).")));
        return (Outcome::Completed, String::new());
    }
    let stop = session.stop.borrow_mut().take();
    match stop {
        Some(Stop::Declined { gate, by }) => {
            let e = Error::Declined { gate, by };
            let text = show_error(session, &e);
            (Outcome::Declined, text)
        }
        Some(Stop::RolledBack {
            ok: true,
            reason,
            broken: false,
        }) => {
            session.shout(&ui.yellow(&ui.bold(&format!("↩ Rolled back: {reason}"))));
            (Outcome::RolledBack, reason)
        }
        Some(Stop::RolledBack {
            ok: true,
            reason,
            broken: true,
        }) => {
            session.shout(&ui.yellow(&ui.bold(&format!(
                "↩ Rolled back because the run could not judge the release (exit 5): {reason}"
            ))));
            (Outcome::RolledBackAfterError, reason)
        }
        Some(Stop::RolledBack {
            ok: false, reason, ..
        }) => {
            session.shout(
                &ui.red(&ui.bold("✗ Rollback failed: see rollback-plan.md for what still stands")),
            );
            (Outcome::RollbackFailed, reason)
        }
        Some(Stop::Interrupted) => interrupted(session, p),
        Some(Stop::ResumeRollback(reason)) => {
            let report = crate::unwind::rollback(session, &p.engine, &reason);
            if report.ok() {
                (Outcome::RolledBack, reason)
            } else {
                (Outcome::RollbackFailed, reason)
            }
        }
        Some(Stop::TimeLimit(limit)) => {
            let e = Error::Script(Box::new(crate::error::ScriptError {
                message: format!(
                    "the run passed its wall-clock limit of {} (`limits.wall_clock`)",
                    crate::ui::format_duration(limit)
                ),
                location: None,
                call_sites: vec![],
                suggestion: None,
                help: None,
                is_compile: false,
            }));
            let text = show_error(session, &e);
            // Time is up for the script, not for putting things back.
            session.deadline.set(None);
            failed(session, p, text, Cause::StepFailed)
        }
        // An answer found bad (or missing) only when its prompt came, after the run changed
        // things: not "nothing changed" but a failure, which offers rollback.
        Some(Stop::Error(e))
            if e.exit_code() == exit::USAGE
                && matches!(e, Error::Answers { .. } | Error::PromptUnanswered { .. })
                && session.effects.borrow().changed()
                && !session.dry_run() =>
        {
            let text = show_error(session, &e);
            failed(session, p, text, Cause::RunError)
        }
        Some(Stop::Error(e)) => {
            let text = show_error(session, &e);
            // An input error (an answer that does not fit, a prompt nobody can answer) found
            // after changes began is a broken run: what it changed is offered for rollback.
            if e.exit_code() == exit::USAGE
                && !session.undo.borrow().is_empty()
                && !session.dry_run()
            {
                return failed(session, p, text, Cause::RunError);
            }
            let outcome = if e.exit_code() == exit::USAGE {
                Outcome::Stopped(e.exit_code())
            } else {
                Outcome::FailedWith(e.exit_code())
            };
            (outcome, text)
        }
        None => {
            let cause = if is_script_bug(&err) {
                Cause::RunError
            } else {
                Cause::StepFailed
            };
            let e = crate::engine::script_error(&err, &p.found.shown, &p.sources, false);
            let text = show_error(session, &e);
            failed(session, p, text, cause)
        }
    }
}

fn show_error(session: &Session, e: &Error) -> String {
    let text = session.redact(&e.render(&session.ui));
    session.ui.error_text(&text);
    let plain = session.redact(&e.render(&Ui::plain()));
    session.effects.borrow_mut().log(&plain);
    session.redact(&e.summary())
}

/// Why an uncaught error ended the run, which decides the exit code after a clean rollback.
#[derive(Clone, Copy, PartialEq)]
enum Cause {
    /// An effect failed (a command exited non-zero, a check failed) or the script threw: the
    /// release, or a step of it, did not work. Rolled back cleanly: exit 3.
    StepFailed,
    /// The run itself broke: a runbook or stdlib error (a function or variable that does not
    /// exist, a wrong type, an index out of range, a limit), or an answer found bad mid-run.
    /// Rolled back cleanly: exit 5, so CI and people can tell it from a caught bad release.
    RunError,
}

/// An error Rhai raised on its own while evaluating (a bug in the runbook or a module), as
/// against one thrown: by a primitive whose effect failed, or by the script's `throw`.
fn is_script_bug(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => is_script_bug(inner),
        EvalAltResult::ErrorRuntime(..) | EvalAltResult::Exit(..) => false,
        _ => true,
    }
}

/// A step failed and the script did not catch it: offer rollback, or roll back on our own.
fn failed(session: &Session, p: &Prepared, error: String, cause: Cause) -> (Outcome, String) {
    use crate::config::OnFailure;
    let standing = session.undo.borrow().len();
    if standing == 0 {
        session.shout(
            &session.ui.red(
                &session
                    .ui
                    .bold("✗ Run failed (nothing was registered to undo)."),
            ),
        );
        return (Outcome::Failed, error);
    }
    let go = match session.config.config.rollback.on_failure {
        OnFailure::Never => false,
        OnFailure::Auto => true,
        OnFailure::Ask => match crate::primitives::prompt::offer(
            session,
            "initiate-rollback",
            "⚠️ Issue detected! Initiate rollback?",
        ) {
            Some(answer) => answer,
            None => {
                session.say("Nobody to ask (no terminal, no answer): rolling back on its own (rollback.on_failure: ask).");
                true
            }
        },
    };
    if !go {
        session.shout(&session.ui.red(&format!(
            "✗ Run failed; {standing} undo step(s) still stand: see rollback-plan.md"
        )));
        return (Outcome::Failed, error);
    }
    let reason = match cause {
        Cause::StepFailed => "a step failed",
        Cause::RunError => "the run broke (a runbook, stdlib or answer error)",
    };
    let report = crate::unwind::rollback(session, &p.engine, reason);
    match (report.ok(), cause) {
        (false, _) => (Outcome::RollbackFailed, error),
        (true, Cause::StepFailed) => (Outcome::RolledBack, error),
        (true, Cause::RunError) => {
            session.shout(&session.ui.yellow(&session.ui.bold(
                "↩ Rolled back after an error in the run itself, not a verdict on the release (exit 5): fix the runbook, config or answers named above.",
            )));
            (Outcome::RolledBackAfterError, error)
        }
    }
}

fn interrupted(session: &Session, p: &Prepared) -> (Outcome, String) {
    session.interrupt.acknowledge();
    session.record(Record::Interrupted {});
    session.shout(&session.ui.yellow("\n⚠️ Interrupted."));
    let standing = session.undo.borrow().len();
    if standing > 0 && session.terminal.tty {
        session.shout("(Ctrl-C again to abort now)");
        if crate::primitives::prompt::offer(
            session,
            "rollback-after-interrupt",
            "Roll back what this run changed?",
        ) == Some(true)
        {
            let report = crate::unwind::rollback(session, &p.engine, "interrupted");
            return if report.ok() {
                (Outcome::RolledBack, "interrupted".into())
            } else {
                (Outcome::RollbackFailed, "interrupted".into())
            };
        }
    }
    if standing > 0 {
        session.shout(&format!(
            "{standing} undo step(s) still stand: see rollback-plan.md"
        ));
    }
    (Outcome::Interrupted, "interrupted".into())
}

impl Prepared {
    /// How many source files were compiled: the runbook and its imports.
    pub fn sources_count(&self) -> usize {
        self.sources.len()
    }
}
