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

mod outcome;
mod resume;
mod rundir;

pub use outcome::Outcome;
use outcome::*;
use resume::*;
pub use resume::{resume, Resume};
pub use rundir::{continue_journal, start_journal};

/// Everything compiled and checked, nothing run yet.
pub struct Prepared {
    pub session: Shared,
    pub engine: rhai::Engine,
    pub ast: AST,
    pub sources: Sources,
    pub found: Found,
    pub runtime: tokio::runtime::Runtime,
    /// The deployments directory (the session has it too, for `rollback_deployment`).
    pub deployments: PathBuf,
}

/// The async runtime of a run: one worker serves what runs in the background (the signal
/// listener, health checks in parallel, a watch); the script's own waits run on the main thread
/// (`block_on`). One worker rather than two: a thread less to start, schedule and join in every
/// run, which a machine with a busy core feels.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    runtime_with(1)
}

/// A runtime with `workers` worker threads (the demo's fleet serves on two).
pub fn runtime_with(workers: usize) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", PathBuf::from("-"), e))
}

/// Compile and check `runbook` against the command's config (loaded once, by the command), with
/// the deployments under `deployments_dir` (`--deployments-dir`), else where the config says.
pub fn prepare(
    loaded: Loaded,
    deployments_dir: Option<&Path>,
    ui: &Ui,
    runbook: &str,
    answers: Option<&Path>,
    mode: crate::options::Mode,
) -> Result<Prepared, Error> {
    prepare_answers(
        loaded,
        deployments_dir,
        ui,
        runbook,
        Answers::load(answers)?,
        mode,
    )
}

/// `prepare`, with the answers already read (a scenario's are written in it).
pub fn prepare_answers(
    loaded: Loaded,
    deployments_dir: Option<&Path>,
    ui: &Ui,
    runbook: &str,
    mut answers: Answers,
    mode: crate::options::Mode,
) -> Result<Prepared, Error> {
    let (yes, approve, dry_run) = (mode.yes, mode.approve, mode.plans_only());
    let root = deployments_root(deployments_dir, &loaded);
    let team_dirs: Vec<PathBuf> = loaded
        .config
        .runbook_dirs
        .iter()
        .map(|d| loaded.base_dir().join(d))
        .collect();
    let found = runbooks::find(runbook, &team_dirs)?;
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
    crate::contract::check_adapter(
        &session.config,
        &sources.names(),
        &base,
        mode.run != crate::options::RunMode::Check,
    )?;
    // And a live colour that is not the one the last recorded switch made live.
    crate::live::check(&session.config, &sources.names(), &root)?;
    *session.deployments_root.borrow_mut() = Some(root.clone());
    Ok(Prepared {
        deployments: root,
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

use crate::options::deployments_root;

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
    let loaded = config::load(common.config_file.as_deref(), &common.sets)?;
    run_with(common, loaded, opts, ui, None)
}

/// A run (or a resumed one) with the config its command loaded; `common` is what the run
/// records of how it was asked (its `--set`s).
pub fn run_with(
    common: &Common,
    loaded: Loaded,
    opts: &RunOptions,
    ui: &Ui,
    resume: Option<Resume>,
) -> Result<i32, Error> {
    let p = match &opts.simulation {
        Some(sim) => {
            let mut answers = Answers::parse(&sim.answers.1, &sim.answers.0)?;
            // A rehearsal is the same on every machine: no answer from the environment.
            answers.ignore_env = true;
            let p = prepare_answers(
                loaded,
                Some(&sim.dir),
                ui,
                &opts.runbook,
                answers,
                opts.mode(),
            )?;
            *p.session.world.borrow_mut() = Some(crate::scenario::World::new(sim.world.clone()));
            p.session.attended.set(sim.attended);
            p
        }
        None => prepare(
            loaded,
            opts.deployments_dir.as_deref(),
            ui,
            &opts.runbook,
            opts.answers.as_deref(),
            opts.mode(),
        )?,
    };
    let simulated = opts.simulation.is_some();
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
    let root = p.deployments.clone();
    // One run at a time per environment (a dry-run or a rehearsal changes nothing and takes
    // no lock).
    let mut lock = if opts.dry_run || simulated {
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
        // A resume knows its run directory already: whoever finds the lock is told which.
        let run = match &resume {
            Some(r) => r.dir.display().to_string(),
            None => "(starting)".to_string(),
        };
        let l = crate::lock::acquire(
            backend.as_ref(),
            &cfg.lock.environment,
            lease,
            &reason,
            &run,
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
            .set(Some((crate::clock::Instant::now() + limit, limit)));
    }
    let redactor = p.session.effects.borrow().redactor().clone();
    let session = p.session.clone();

    match &resume {
        Some(r) => {
            session.record(Record::RunResume(crate::record::RunResume {
                pid: crate::identity::pid(),
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
            simulated,
            user: crate::identity::user(),
            host: crate::identity::host(),
            run_dir: dir.display().to_string(),
            run: Some(crate::record::RunInputs {
                inputs: hashes.clone(),
                yes: opts.yes,
                approve: opts.approve,
                presets: opts.presets.clone(),
                pid: crate::identity::pid(),
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
    } else if simulated {
        " (simulated: every effect answered by the scenario's world, on a virtual clock)"
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
        Err(e) => e.print(ui, |t| redactor.redact(t)),
    }
    if opts.ends_process {
        leave(p, session);
    }
    Ok(code)
}

/// Done with a run whose journal is closed to new records, whose lock is released and whose
/// artifacts are written, in a process that exits next (`RunOptions::ends_process`): its engine,
/// session and runtime are not taken apart piece by piece, nor the runtime's worker waited for
/// (1.5-3.4 ms a run, 200 steps); the exit reclaims them at once. The journal and the log are
/// written unbuffered, one `write` a record or line: nothing is held back to lose.
fn leave(p: Prepared, session: Shared) {
    std::mem::forget(session);
    std::mem::forget(p);
}

impl Prepared {
    /// How many source files were compiled: the runbook and its imports.
    pub fn sources_count(&self) -> usize {
        self.sources.len()
    }
}
