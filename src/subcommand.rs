//! What the command line asked for, as plain values, and the dispatch to each command.

use std::path::{Path, PathBuf};

use crate::error::{Error, NotIntact};
use crate::ui::Ui;

use crate::options::{Common, RunOptions};

#[derive(Debug, Clone)]
pub enum Command {
    Run(RunOptions),
    List,
    Check {
        runbook: String,
        answers: Option<PathBuf>,
    },
    Init {
        dir: PathBuf,
        force: bool,
    },
    Completions(String),
    Demo(crate::options::DemoOptions),
    Repl(crate::options::ReplOptions),
    Verify(PathBuf),
    Report(PathBuf),
    Definitions(PathBuf),
    Test(crate::options::TestOptions),
    Resume {
        dir: Option<PathBuf>,
        force: bool,
        deployments_dir: Option<PathBuf>,
    },
    Unlock {
        environment: String,
        reason: String,
        deployments_dir: Option<PathBuf>,
    },
    Status {
        environment: Option<String>,
        deployments_dir: Option<PathBuf>,
    },
    Control {
        environment: String,
        action: String,
        reason: String,
        deployments_dir: Option<PathBuf>,
    },
}

/// Run the command and return its exit code; its error, if it ends in one, is printed here.
pub fn dispatch(common: &Common, command: &Command) -> i32 {
    let ui = Ui::new(common.color, common.log_format, common.verbosity);
    let result = match command {
        Command::Run(opts) => crate::runner::run(common, opts, &ui),
        Command::List => list(common, &ui),
        Command::Check { runbook, answers } => check(common, &ui, runbook, answers.as_deref()),
        Command::Init { dir, force } => init(&ui, dir, *force),
        Command::Demo(opts) => crate::demo::run(common, opts, &ui),
        Command::Repl(opts) => crate::repl::run(common, opts, &ui),
        Command::Verify(dir) => verify(&ui, dir),
        Command::Report(dir) => report(common, &ui, dir),
        Command::Definitions(dir) => crate::catalogue::write_definitions(&ui, dir),
        Command::Test(opts) => crate::rehearsal::test(common, opts, &ui),
        Command::Resume {
            dir,
            force,
            deployments_dir,
        } => crate::runner::resume(common, dir.clone(), *force, deployments_dir.as_deref(), &ui),
        Command::Unlock {
            environment,
            reason,
            deployments_dir,
        } => unlock(common, &ui, environment, reason, deployments_dir.as_deref()),
        Command::Status {
            environment,
            deployments_dir,
        } => crate::lock::status::show(
            common,
            &ui,
            environment.as_deref(),
            deployments_dir.as_deref(),
        ),
        Command::Control {
            environment,
            action,
            reason,
            deployments_dir,
        } => crate::lock::control::send(
            common,
            &ui,
            environment,
            action,
            reason,
            deployments_dir.as_deref(),
        ),
        Command::Completions(script) => {
            crate::ui::write_out(script);
            Ok(0)
        }
    };
    result.unwrap_or_else(|e| {
        e.print(&ui, str::to_string);
        e.exit_code()
    })
}

fn list(common: &Common, ui: &Ui) -> Result<i32, Error> {
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let dirs: Vec<PathBuf> = loaded
        .config
        .runbook_dirs
        .iter()
        .map(|d| loaded.base_dir().join(d))
        .collect();
    let entries = crate::runbooks::list(&dirs);
    if entries.is_empty() {
        crate::outln!("No runbooks found (looked in ./runbooks, the team's runbook_dirs, and the shipped runbooks).");
        return Ok(0);
    }
    let w = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let sw = entries
        .iter()
        .map(|e| e.source.len() + if e.shadows { 17 } else { 0 })
        .max()
        .unwrap_or(6)
        .max(6);
    crate::outln!(
        "{}",
        ui.bold(&format!("{:<w$}  {:<sw$}  DESCRIPTION", "NAME", "SOURCE"))
    );
    for e in entries {
        let source = if e.shadows {
            format!("{} (shadows shipped)", e.source)
        } else {
            e.source
        };
        crate::outln!("{:<w$}  {:<sw$}  {}", e.name, source, e.description);
    }
    Ok(0)
}

fn check(common: &Common, ui: &Ui, runbook: &str, answers: Option<&Path>) -> Result<i32, Error> {
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let p = crate::runner::prepare(
        loaded,
        None,
        ui,
        runbook,
        answers,
        crate::options::Mode {
            run: crate::options::RunMode::Check,
            ..Default::default()
        },
    )?;
    let modules = p.sources_count();
    crate::outln!(
        "{} {} compiles{}; config {}; answers {}",
        ui.green("ok:"),
        p.found.shown,
        if modules > 1 {
            format!(" with {} module(s)", modules - 1)
        } else {
            String::new()
        },
        match &p.session.config.file {
            Some(f) => format!("`{}` is valid", f.display()),
            None => "defaults (no runbook.yaml)".into(),
        },
        match answers {
            Some(f) => format!("`{}` is valid", f.display()),
            None => "not given".into(),
        }
    );
    Ok(0)
}

const STARTER_CONFIG: &str = include_str!("../docs/runbook.example.yaml");

const STARTER_TESTS: &[(&str, &str)] = &[
    (
        "good-release-promoted.yaml",
        include_str!("../docs/starter-tests/good-release-promoted.yaml"),
    ),
    (
        "bad-release-rolled-back.yaml",
        include_str!("../docs/starter-tests/bad-release-rolled-back.yaml"),
    ),
];

fn init(ui: &Ui, dir: &Path, force: bool) -> Result<i32, Error> {
    std::fs::create_dir_all(dir.join("runbooks"))
        .map_err(|e| Error::io("create directory", dir.join("runbooks"), e))?;
    let mut files: Vec<(PathBuf, &str)> =
        vec![(dir.join(crate::config::FILE_NAME), STARTER_CONFIG)];
    for (name, text) in crate::embedded::RUNBOOKS {
        files.push((dir.join("runbooks").join(name), text));
    }
    // Two rehearsals to start from (`runbook test`): a good release, and a bad one caught.
    std::fs::create_dir_all(dir.join("tests"))
        .map_err(|e| Error::io("create directory", dir.join("tests"), e))?;
    for (name, text) in STARTER_TESTS {
        files.push((dir.join("tests").join(name), text));
    }
    let mut skipped = 0;
    for (path, text) in files {
        if path.exists() && !force {
            crate::outln!(
                "{} {} (exists; --force overwrites)",
                ui.yellow("skip"),
                path.display()
            );
            skipped += 1;
            continue;
        }
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        crate::outln!("{} {}", ui.green("wrote"), path.display());
    }
    if crate::embedded::RUNBOOKS.is_empty() {
        crate::outln!("(this build ships no runbooks to copy)");
    }
    if skipped == 0 {
        crate::outln!(
            "Next: edit {}, then `runbook list`; `runbook test` rehearses the deploy runbook (tests/).",
            dir.join(crate::config::FILE_NAME).display()
        );
    }
    Ok(0)
}

/// `runbook verify DIR`: walk the journal's hash chain, and check that the artifacts' pinned
/// hash is in it.
/// The artifacts of a past run, rendered again from its journal (secrets from the config redacted).
fn report(common: &Common, ui: &Ui, dir: &Path) -> Result<i32, Error> {
    if !dir.join(crate::journal::FILE_NAME).is_file() {
        return Err(Error::Usage(format!(
            "`{}` is not a run directory (it has no {})",
            dir.display(),
            crate::journal::FILE_NAME
        )));
    }
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let redactor = crate::secrets::Redactor::from_config(&loaded.config);
    let files = crate::artifacts::render(dir, &redactor)?;
    ui.say(&format!("{}: {}", dir.display(), files.join(", ")));
    Ok(crate::error::exit::OK)
}

fn verify(ui: &Ui, dir: &Path) -> Result<i32, Error> {
    let path = dir.join(crate::journal::FILE_NAME);
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "`{}` is not a run directory (it has no {})",
            dir.display(),
            crate::journal::FILE_NAME
        )));
    }
    let v = crate::journal::verify(&path)?;
    let not_intact = |found| Error::NotIntact {
        file: path.display().to_string(),
        found,
    };
    if let Some((line, why)) = v.problem {
        return Err(not_intact(NotIntact::Broken {
            line,
            why,
            intact: v.records,
        }));
    }
    if v.records == 0 {
        return Err(not_intact(NotIntact::Empty));
    }
    // A repair keeps the chain whole; still, a record was lost there, and that is said.
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read journal", &path, e))?;
    for (i, line) in text.lines().enumerate() {
        let record = serde_json::from_str(line).map(|v| crate::record::Record::from_value(&v));
        if matches!(record, Ok(crate::record::Record::JournalRepaired { .. })) {
            crate::outln!(
                "{} record {} is a `journal.repaired` record: the record after record {i} was cut off mid-write (its fragment is kept in it)",
                ui.yellow("note:"),
                i + 1
            );
        }
    }
    let plan = dir.join(crate::artifacts::PLAN);
    let pinned = std::fs::read_to_string(&plan).ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with(crate::artifacts::HASH_LINE))
            .and_then(|l| l.split('`').nth(1).map(str::to_string))
    });
    if let Some(pin) = pinned {
        let hashes: Vec<String> = text.lines().map(crate::journal::line_hash).collect();
        match hashes.iter().position(|h| *h == pin) {
            Some(i) if i + 1 == hashes.len() => crate::outln!("{} {} pins the last record", ui.green("ok:"), crate::artifacts::PLAN),
            Some(i) => crate::outln!(
                "{} {} pins record {} of {}: {} record(s) were appended since (e.g. a later rollback)",
                ui.green("ok:"),
                crate::artifacts::PLAN,
                i + 1,
                hashes.len(),
                hashes.len() - i - 1
            ),
            None => {
                return Err(not_intact(NotIntact::Unpinned {
                    artifact: crate::artifacts::PLAN.to_string(),
                    hash: pin,
                }))
            }
        }
    }
    crate::outln!(
        "{} {}: {} records, hash chain intact; final hash {}",
        ui.green("ok:"),
        path.display(),
        v.records,
        v.final_hash
    );
    Ok(0)
}

fn unlock(
    common: &Common,
    ui: &Ui,
    environment: &str,
    reason: &str,
    deployments_dir: Option<&Path>,
) -> Result<i32, Error> {
    if reason.trim().is_empty() {
        return Err(Error::Usage(
            "`runbook unlock` needs `--reason \"...\"`: breaking a lock is recorded".into(),
        ));
    }
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let root = crate::options::deployments_root(deployments_dir, &loaded);
    let rt = crate::lock::status::runtime()?;
    let backend = crate::lock::open(&loaded.config, &root, rt.handle().clone())?;
    let (was, log) = backend.unlock(environment, reason)?;
    match was {
        crate::lock::State::Held(h) => crate::outln!(
            "{} `{environment}` unlocked (was: {}); recorded in {log}",
            ui.green("ok:"),
            crate::lock::describe(&h),
        ),
        crate::lock::State::Torn => crate::outln!(
            "{} `{environment}` unlocked (was: an empty or half-written lock file); recorded in {log}",
            ui.green("ok:"),
        ),
        crate::lock::State::Free if loaded.config.lock.backend == crate::config::LockBackend::File => {
            crate::outln!(
                "`{environment}` was not locked (no lock under `{}`: see --deployments-dir); recorded in {log}",
                root.display(),
            )
        }
        crate::lock::State::Free => crate::outln!(
            "`{environment}` was not locked (no lock in {}); recorded in {log}",
            backend.store(environment),
        ),
    }
    Ok(0)
}
