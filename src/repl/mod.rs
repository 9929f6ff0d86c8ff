//! `runbook repl`: the runbook primitives at a prompt, for incidents. Same engine, stdlib,
//! adapters and team config as runbooks; every line and every effect is journaled in the REPL's
//! own run directory, and an open incident collects them into its report.
//!
//! This file starts a session (attach, build, the banner) and ends it; lines.rs reads and
//! evaluates its lines, editor.rs is the line editor (completion, multi-line, history),
//! commands.rs the `:` commands, functions.rs the REPL's own functions, deployment.rs what they
//! do to the attached deployment (rollback, live control, the guards), incident.rs incidents,
//! watch.rs the SIGTERM/SIGHUP watcher.

mod commands;
mod deployment;
mod editor;
mod functions;
mod incident;
mod lines;
mod watch;

pub use editor::is_incomplete;
pub use functions::register_detached;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use rhai::{Scope, AST};
use serde_json::json;

use crate::answers::Answers;
use crate::error::Error;
use crate::incident::Incident;
use crate::journal::Record;
use crate::options::Common;
use crate::runner::Built;
use crate::ui::Ui;

use crate::options::ReplOptions;

use deployment::journal_damage;
use editor::Names;
use functions::register;
use lines::Repl;
use watch::{spawn_watcher, Watch};

pub(super) const SOURCE: &str = "<repl>";

pub(super) const FORCE_HINT: &str =
    "its undo steps do not run unless forced: rollback(#{ force: \"why it is safe\" })";

#[derive(Default)]
pub(super) struct State {
    pub(super) attached: Option<PathBuf>,
    /// What is wrong with the attached deployment's journal (its hash chain, checked on attach).
    pub(super) damaged: Option<String>,
    /// The versions in play for metrics(): configured, and those the deployment sent traffic to.
    pub(super) versions: Vec<String>,
    /// The maintenance mode this session last set.
    pub(super) maintenance: std::cell::Cell<Option<bool>>,
    /// Shared with the watcher that writes it as abandoned when a signal ends the session.
    pub(super) incident: Arc<Mutex<Option<Incident>>>,
}

impl State {
    pub(super) fn incident(&self) -> std::sync::MutexGuard<'_, Option<Incident>> {
        self.incident.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn latest_deployment(root: &Path) -> Option<PathBuf> {
    crate::journal::run_dirs(root)
        .into_iter()
        // A run that rolled another back (`runbook rollback`) is not the deployment meant.
        .rfind(|d| d.is_deployment() && !d.journal.contains("\"type\":\"rollback.target\""))
        .map(|d| d.path)
}

pub fn run(common: &Common, opts: &ReplOptions, ui: &Ui) -> Result<i32, Error> {
    let mut loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    // Everything the session finds or writes (the newest deployment, locks, incident reports)
    // is under it.
    let root = crate::options::deployments_root(opts.deployments_dir.as_deref(), &loaded);
    let attached = match (&opts.deployment, opts.last) {
        (Some(d), _) => {
            if !d.join(crate::journal::FILE_NAME).is_file() {
                return Err(Error::Usage(format!(
                    "`{}` is not a run directory (it has no {})",
                    d.display(),
                    crate::journal::FILE_NAME
                )));
            }
            Some(d.clone())
        }
        (None, true) => Some(latest_deployment(&root).ok_or_else(|| {
            Error::Usage(format!("--last: no deployment under `{}`", root.display()))
        })?),
        (None, false) => None,
    };
    // The emergency actions act on the side that is live: the deployment's journal says which,
    // not the static config.
    let entries: Vec<crate::journal::Entry> = attached
        .as_deref()
        .and_then(|d| crate::journal::read_entries(&d.join(crate::journal::FILE_NAME)).ok())
        .map(|(entries, _)| entries)
        .unwrap_or_default();
    let live = attached
        .as_deref()
        .and_then(|d| crate::incident::live_of(d, &entries));
    // The versions in play: as configured (before the live side below replaces
    // `current_version`), and every one the deployment sent traffic to.
    let mut versions: Vec<String> = [&loaded.config.current_version, &loaded.config.version]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for e in &entries {
        if let Record::Traffic { weights, .. } = &e.record {
            versions.extend(weights.keys().cloned());
        }
    }
    let mut seen = std::collections::HashSet::new();
    versions.retain(|v| seen.insert(v.clone()));
    if let Some(l) = &live {
        let mut sets = Vec::new();
        if let Some(v) = &l.version {
            sets.push(format!("current_version={v}"));
        }
        if let Some(c) = &l.colour {
            if loaded.config.script.is_some() {
                sets.push(format!("script.live_colour={c}"));
            }
            sets.push(format!("kubernetes.live_colour={c}"));
        }
        // Applied to the config loaded above (the file is read once).
        loaded = loaded.with_sets(&sets)?;
    }
    let Built {
        session,
        mut engine,
        sources,
        runtime: _runtime,
    } = crate::runner::build(
        ui,
        loaded,
        Answers::load(opts.answers.as_deref())?,
        "repl".into(),
        PathBuf::from(SOURCE),
        PathBuf::from("."),
        false,
    )?;
    *session.deployments_root.borrow_mut() = Some(root.clone());
    let dir = crate::runner::start_journal(&session, &root, false)?;
    session.record(Record::RunStart(crate::record::RunStart {
        script: SOURCE.to_string(),
        feature: session.feature.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        dry_run: false,
        simulated: false,
        user: crate::identity::user(),
        host: crate::identity::host(),
        run_dir: dir.display().to_string(),
        run: None,
        attached: Some(json!(attached.as_ref().map(|d| d.display().to_string()))),
    }));
    let damaged = attached.as_deref().and_then(journal_damage);
    let state = Rc::new(State {
        attached,
        versions,
        damaged,
        maintenance: std::cell::Cell::new(None),
        incident: Arc::new(Mutex::new(None)),
    });
    register(&mut engine, &session, &state, &sources);

    let names = Rc::new(RefCell::new(Names::default()));
    {
        let mut n = names.borrow_mut();
        n.words
            .extend(crate::catalogue::names(crate::catalogue::Scope::Repl));
        for (file, text) in crate::embedded::STDLIB {
            let module = file.trim_end_matches(".rhai").to_string();
            n.words.push(format!("{module}::"));
            n.members.insert(module, crate::engine::fn_names(text));
        }
    }

    let tty = std::io::stdin().is_terminal();
    // From a pipe, stdout carries only results: the banner and the echoed lines go to stderr.
    let banner = |line: &str| {
        if tty {
            ui.say(line);
        } else {
            to_stderr(line);
        }
    };
    banner(&ui.bold("runbook repl"));
    banner(&format!("  journal: {}", dir.display()));
    if let Some(a) = &state.attached {
        banner(&format!(
            "  attached to {}: status(), rollback(), metrics()",
            a.display()
        ));
    }
    if let Some(l) = live.as_ref().filter(|l| l.version.is_some()) {
        banner(&format!(
            "  live: {}, from the deployment's journal",
            l.what.split(" (").next().unwrap_or(&l.what)
        ));
    }
    banner("  :help for the primitives, :quit or Ctrl-D to leave");
    if let (Some(a), Some(damage)) = (&state.attached, &state.damaged) {
        session.warn(&format!(
            "the journal `{}` {damage}; {FORCE_HINT}",
            a.join(crate::journal::FILE_NAME).display()
        ));
        session.record(Record::ReplJournalDamaged {
            deployment: a.display().to_string(),
            damage: damage.to_string(),
        });
    }

    let watch = Arc::new(Watch::default());
    spawn_watcher(&session, watch.clone(), state.incident.clone(), tty);
    let mut repl = Repl {
        session: session.clone(),
        state: state.clone(),
        watch,
        engine,
        sources,
        scope: Scope::new(),
        functions: AST::empty(),
        names: names.clone(),
        history: Vec::new(),
        lines: 0,
        failed: 0,
    };
    let ended = if tty {
        repl.interactive(names)?
    } else {
        repl.piped()?
    };
    repl.finish(ended.why());
    let code = match ended {
        Ended::Signal(_) => crate::error::exit::INTERRUPTED,
        _ if !tty && repl.failed > 0 => {
            to_stderr(&format!(
                "{} of {} lines failed: exit {}",
                repl.failed,
                repl.lines,
                crate::error::exit::FAILED
            ));
            crate::error::exit::FAILED
        }
        _ => 0,
    };
    let outcome = if code == crate::error::exit::INTERRUPTED {
        "interrupted"
    } else {
        "completed"
    };
    session.record(Record::RunEnd {
        outcome: outcome.to_string(),
        exit_code: code,
        error: None,
        signal: None,
    });
    let journal = session.effects.borrow().journal_path().to_path_buf();
    if !acted(&journal) {
        // Looking around changed nothing: no run directory to leave behind.
        let _ = std::fs::remove_dir_all(&dir);
    } else if let Err(e) = crate::artifacts::render(&dir, session.effects.borrow().redactor()) {
        show_error(&session, &e);
    }
    Ok(code)
}

/// Whether the session did anything worth its own record: an effect (a command, a request, a
/// prompt's answer, an undo...), an incident, a refusal or a forced rollback. Lines typed and
/// their results alone are not.
pub(super) fn acted(journal: &Path) -> bool {
    let Ok((records, _)) = crate::journal::read(journal) else {
        return true;
    };
    records.iter().any(|r| {
        !matches!(
            Record::from_value(r),
            Record::RunStart(_)
                | Record::RunEnd { .. }
                | Record::ReplInput { .. }
                | Record::ReplResult { .. }
                | Record::ReplError { .. }
                | Record::ReplLoad { .. }
                | Record::ReplJournalDamaged { .. }
        )
    })
}

/// A line on stderr; a closed stderr is no reason to stop.
/// Show an error the way the command line shows it (`Error::print`, the session's secrets
/// redacted): the one way the REPL reports an error. The session goes on after it.
pub(super) fn show_error(session: &crate::session::Session, err: &Error) {
    err.print(&session.ui, |text| session.redact(text));
}

pub(super) fn to_stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How the session ended.
pub(super) enum Ended {
    Input,
    Quit,
    TerminalLost,
    Signal(&'static str),
}

impl Ended {
    pub(super) fn why(&self) -> String {
        match self {
            Ended::Input => "end of input".into(),
            Ended::Quit => ":quit".into(),
            Ended::TerminalLost => "the terminal was lost".into(),
            Ended::Signal(s) => s.to_string(),
        }
    }
}
