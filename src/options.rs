//! What a command was asked to do, as plain values: the options every command shares, a run's,
//! the demo's and the REPL's, and where the deployments are. Below the commands that use them
//! (and below clap: src/arguments.rs fills them in).

use std::path::{Path, PathBuf};

use crate::config::Loaded;
use crate::ui::{ColorChoice, LogFormat, Verbosity};

#[derive(Debug, Clone, Default)]
pub struct Common {
    pub config_file: Option<PathBuf>,
    pub sets: Vec<String>,
    pub color: ColorChoice,
    pub log_format: LogFormat,
    pub verbosity: Verbosity,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub runbook: String,
    pub answers: Option<PathBuf>,
    pub yes: bool,
    pub approve: bool,
    pub dry_run: bool,
    pub deployments_dir: Option<PathBuf>,
    /// Take over a stale environment lock, with this reason.
    pub take_over: Option<String>,
    /// Answers given by the program itself (the demo's `--strategy`), by prompt id.
    pub presets: std::collections::BTreeMap<String, String>,
    /// Rehearsed (`runbook test`): effects answered by a world, on the virtual clock.
    pub simulation: Option<Box<Simulation>>,
    /// The process exits once this run returns (`runbook run` and `runbook resume` from the
    /// command line, not the demo or a rehearsal, which go on): what the run built (engine,
    /// session, runtime) is left for the exit to reclaim instead of taken apart piece by piece.
    pub ends_process: bool,
}

/// What a rehearsed run is given instead of the outside: the world that answers its effects,
/// the scenario's answers, and the directory its run goes in.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub world: crate::scenario::world::Spec,
    /// The answers file's text, and the name it is shown by.
    pub answers: (String, String),
    pub dir: PathBuf,
    /// Rehearse a run with a person at the terminal (the menus asked only then are asked).
    pub attended: bool,
}

/// What a run does with its effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Act on them (journaled, intent before each).
    #[default]
    Act,
    /// Plan them: every effect is recorded as planned, nothing acts (`--dry-run`).
    DryRun,
    /// Compile and validate only: the script is not run (`runbook check`).
    Check,
    /// Rehearse: every effect is answered by a scenario's world, on a virtual clock
    /// (`runbook test`); nothing outside is touched.
    Simulate,
}

/// How a run goes: its mode, and which gates are answered without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mode {
    pub run: RunMode,
    /// `--yes`: confirmations and checklists answered yes.
    pub yes: bool,
    /// `--approve`: the critical approval given.
    pub approve: bool,
}

impl Mode {
    /// Whether effects are only planned (a dry run, or a check).
    pub fn plans_only(self) -> bool {
        matches!(self.run, RunMode::DryRun | RunMode::Check)
    }
}

impl RunOptions {
    pub fn mode(&self) -> Mode {
        Mode {
            run: if self.dry_run {
                RunMode::DryRun
            } else if self.simulation.is_some() {
                RunMode::Simulate
            } else {
                RunMode::Act
            },
            yes: self.yes,
            approve: self.approve,
        }
    }
}

/// `runbook test`.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Scenario files or directories (default: tests/ beside runbook.yaml).
    pub paths: Vec<PathBuf>,
    /// Write a JUnit XML report here.
    pub junit: Option<PathBuf>,
    /// Only the scenarios whose name or file contains this.
    pub filter: Option<String>,
    /// Show each run's timeline (its log, stamped with the virtual time).
    pub verbose: bool,
    /// Where the runs' directories go (default: deployments/rehearsals beside runbook.yaml).
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub strategy: Option<String>,
    pub bad_release: bool,
    pub unattended: bool,
    pub deployments_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct ReplOptions {
    pub deployment: Option<PathBuf>,
    pub last: bool,
    /// Answers to the questions asked in the session (prompt id -> answer).
    pub answers: Option<PathBuf>,
    /// Where the deployments are (`--deployments-dir`), instead of the config's or ./deployments.
    pub deployments_dir: Option<PathBuf>,
}

/// The deployments directory: the flag, else the config's, else ./deployments.
pub fn deployments_root(flag: Option<&Path>, cfg: &Loaded) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            cfg.config.deployments_dir.as_ref().map(|d| {
                // Beside a runbook.yaml in the working directory (or with none), the path as
                // written: `team-b/...`, not `./team-b/...`.
                let base = cfg.base_dir();
                if base == Path::new(".") {
                    d.clone()
                } else {
                    base.join(d)
                }
            })
        })
        .unwrap_or_else(|| PathBuf::from("deployments"))
}
