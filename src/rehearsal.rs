//! `runbook test`: rehearse runbooks in scripted worlds on a virtual clock. Each scenario runs
//! the real runbook with the real stdlib through the real gate, in the simulated mode: every
//! effect is answered by the scenario's world, a wait is a step of the clock, and nothing
//! outside is touched. What the run did is read back from its journal and held against the
//! scenario's `expect`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{exit, Error};
use crate::journal::Record;
use crate::options::{Common, RunOptions, Simulation, TestOptions};
use crate::scenario::{Observed, Scenario};
use crate::ui::Ui;

/// The file that marks a directory as a rehearsal's, which a later rehearsal may replace.
const MARK: &str = ".runbook-rehearsal";

/// One scenario's result.
pub struct Rehearsed {
    pub scenario: Scenario,
    pub observed: Observed,
    pub differences: Vec<String>,
    pub wall: Duration,
    pub run_dir: Option<PathBuf>,
}

pub fn test(common: &Common, opts: &TestOptions, ui: &Ui) -> Result<i32, Error> {
    let paths = if opts.paths.is_empty() {
        vec![default_dir(common)]
    } else {
        opts.paths.clone()
    };
    let files = crate::scenario::find(&paths)?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no scenario files (*.yaml) in {}\n  help: `runbook init` writes two starter scenarios to tests/; docs/testing.md describes them",
            paths
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Every file is read before any runs: a bad one is reported with the others, exit 2.
    let mut scenarios = Vec::new();
    let mut bad = Vec::new();
    for f in &files {
        match Scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        for e in &bad {
            ui.error_text(&e.render(ui));
        }
        ui.error_text(&format!(
            "{} of {} scenario file(s) cannot be run as written: nothing was rehearsed\n",
            bad.len(),
            files.len()
        ));
        return Ok(exit::USAGE);
    }
    if let Some(f) = &opts.filter {
        scenarios.retain(|s| {
            s.name.contains(f.as_str()) || s.file.to_string_lossy().contains(f.as_str())
        });
        if scenarios.is_empty() {
            return Err(Error::Usage(format!(
                "no scenario's name or file contains `{f}` (of {} found)",
                files.len()
            )));
        }
    }
    let started = Instant::now();
    let mut results = Vec::new();
    // Each scenario's directory is named after its file; two files of one name (in different
    // directories) get -2, -3, ... so neither replaces the other's.
    let mut taken: std::collections::BTreeMap<String, usize> = Default::default();
    for s in scenarios {
        let stem = s
            .file
            .file_stem()
            .map(|x| x.to_string_lossy().to_string())
            .unwrap_or_else(|| crate::answers::slug(&s.name));
        let n = taken.entry(stem.clone()).or_default();
        *n += 1;
        let name = if *n == 1 { stem } else { format!("{stem}-{n}") };
        let r = rehearse(common, opts, s, &name, ui)?;
        print_result(ui, &r, opts.verbose);
        results.push(r);
    }
    let failed = results.iter().filter(|r| !r.differences.is_empty()).count();
    let refused = results.iter().filter(|r| r.observed.refused).count();
    let total = results.len();
    let summary = format!(
        "{total} scenario(s): {} passed, {failed} failed{} ({} wall)",
        total - failed,
        if refused > 0 {
            format!(", {refused} could not start")
        } else {
            String::new()
        },
        crate::ui::format_duration(started.elapsed())
    );
    if failed == 0 {
        crate::outln!("{}", ui.green(&summary));
    } else {
        crate::outln!("{}", ui.red(&summary));
    }
    if let Some(path) = &opts.junit {
        write_junit(path, &results)?;
    }
    Ok(if refused > 0 {
        exit::USAGE
    } else if failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// tests/ beside the config file (`--config`, else the nearest runbook.yaml here or above, as
/// from a project's subdirectory), else ./tests.
fn default_dir(common: &Common) -> PathBuf {
    if let Some(config) = &common.config_file {
        return match config.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.join("tests"),
            _ => PathBuf::from("tests"),
        };
    }
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    here.ancestors()
        .find(|d| d.join(crate::config::FILE_NAME).is_file())
        .map(|d| {
            let tests = d.join("tests");
            // Shown from here when it is here.
            tests
                .strip_prefix(&here)
                .map(Path::to_path_buf)
                .unwrap_or(tests)
        })
        .unwrap_or_else(|| PathBuf::from("tests"))
}

/// Run one scenario in its world and read back what it did.
pub fn rehearse(
    common: &Common,
    opts: &TestOptions,
    scenario: Scenario,
    dir_name: &str,
    ui: &Ui,
) -> Result<Rehearsed, Error> {
    let started = Instant::now();
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    // The scenario's own `config`, else `--config`, else the nearest runbook.yaml.
    let config = match (&scenario.config, &common.config_file) {
        (None, Some(given)) => Some(given.clone()),
        _ => scenario.config_file(),
    }
    .map(|c| abs(&c));
    if let Some(c) = config.as_ref().filter(|c| !c.is_file()) {
        return Err(Error::Scenario {
            file: scenario.file.display().to_string(),
            location: None,
            message: format!("its config `{}` does not exist", c.display()),
            help: "`config` is relative to the scenario file".into(),
        });
    }
    // The project: where the config is (runbooks/ and the commands are found from there).
    let project = match &config {
        Some(c) => c.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => {
            let dir = abs(scenario.file.parent().unwrap_or(Path::new(".")));
            if dir.file_name().is_some_and(|n| n == "tests") {
                dir.parent().map(Path::to_path_buf).unwrap_or(dir)
            } else {
                dir
            }
        }
    };
    let root = match &opts.out {
        Some(o) => abs(o),
        None => project.join("deployments").join("rehearsals"),
    };
    let dir = root.join(dir_name);
    fresh_dir(&dir)?;
    // Paths as the run records them: from the project, so a rehearsal's journal is the same
    // wherever the project is checked out.
    let rel = |p: &Path| -> PathBuf {
        p.strip_prefix(&project)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut sets = scenario.sets();
    sets.extend(common.sets.iter().cloned());
    let run_common = Common {
        config_file: config.as_deref().map(rel),
        sets,
        ..common.clone()
    };
    let run = RunOptions {
        runbook: scenario.runbook.clone(),
        yes: scenario.yes,
        approve: scenario.approve,
        simulation: Some(Box::new(Simulation {
            world: scenario.world.clone(),
            answers: (
                format!("{} answers", shown_name(&rel(&abs(&scenario.file)))),
                scenario.answers_text(),
            ),
            dir: rel(&dir),
            attended: scenario.attended,
        })),
        ..RunOptions::default()
    };
    let here =
        std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
    std::env::set_current_dir(&project)
        .map_err(|e| Error::io("enter the project directory", &project, e))?;
    crate::clock::start_virtual();
    crate::ui::mute(true);
    crate::process::refuse_spawning(true);
    let result = crate::config::load(run_common.config_file.as_deref(), &run_common.sets)
        .and_then(|loaded| crate::runner::run_with(&run_common, loaded, &run, ui, None));
    crate::process::refuse_spawning(false);
    crate::ui::mute(false);
    let virtual_time = crate::clock::virtual_elapsed();
    crate::clock::real();
    let _ = std::env::set_current_dir(&here);
    let run_dir = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join(crate::journal::FILE_NAME).is_file());
    let mut observed = match (&result, &run_dir) {
        (_, Some(d)) => observe(&d.join(crate::journal::FILE_NAME))?,
        // It could not start (runbook.yaml or the scenario's `set` invalid, no such runbook,
        // an answer that fits no prompt, a script that does not compile): not an outcome to
        // compare with `expect` (a scenario expecting exit 2 would pass for the wrong reason),
        // but a rehearsal that cannot run as written.
        (Err(e), None) => Observed {
            exit: e.exit_code(),
            outcome: "could not start".into(),
            scenario_error: Some(format!(
                "the run could not start:\n{}",
                e.render(&Ui::plain()).trim_end()
            )),
            refused: true,
            ..Observed::default()
        },
        (Ok(code), None) => Observed {
            exit: *code,
            outcome: "no run directory".into(),
            ..Observed::default()
        },
    };
    if let Ok(code) = result {
        observed.exit = code;
    }
    observed.virtual_time = virtual_time;
    let differences = crate::scenario::expect::differences(&scenario.expect, &observed);
    Ok(Rehearsed {
        scenario,
        observed,
        differences,
        wall: started.elapsed(),
        run_dir,
    })
}

/// A scenario's file as its journal names it: from the project, else its file name alone (a
/// path outside the project would make the journal differ from one checkout to another).
fn shown_name(p: &Path) -> String {
    if p.is_relative() {
        p.display().to_string()
    } else {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }
}

/// A directory for this scenario's run: made new, replacing an earlier rehearsal's (and only a
/// rehearsal's: a directory without the mark is never removed).
fn fresh_dir(dir: &Path) -> Result<(), Error> {
    if dir.exists() {
        if !dir.join(MARK).is_file() {
            return Err(Error::Usage(format!(
                "`{}` exists and is not a rehearsal's directory: it is left alone\n  help: give another `--out`, or move it away",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("clear rehearsal directory", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create rehearsal directory", dir, e))?;
    std::fs::write(
        dir.join(MARK),
        "A directory of `runbook test`: replaced by the next rehearsal of its scenario.\n",
    )
    .map_err(|e| Error::io("write", dir.join(MARK), e))?;
    Ok(())
}

/// What the run did, from its journal.
pub fn observe(journal: &Path) -> Result<Observed, Error> {
    let (entries, _) = crate::journal::read_entries(journal)?;
    let mut o = Observed::default();
    for e in &entries {
        let at = e.ts.get(11..19).unwrap_or(&e.ts).to_string();
        match &e.record {
            Record::RunEnd {
                outcome,
                exit_code,
                error,
                ..
            } => {
                o.exit = *exit_code;
                o.outcome = outcome.clone();
                if let Some(text) = error.as_ref().and_then(|v| v.as_str()) {
                    o.error = text.to_string();
                    if !text.is_empty() {
                        o.why.push(format!("{at} (virtual) error: {text}"));
                    }
                }
            }
            Record::RollbackStart { .. } => o.rolled_back = true,
            Record::EffectIntent { kind, intent, .. } if kind == "undo" => {
                if let Some(label) = intent["label"].as_str() {
                    o.undos_run.push(label.to_string());
                }
            }
            Record::EffectIntent { kind, intent, .. } if kind == "notify" => {
                if let Some(c) = intent["channel"].as_str() {
                    if !o.notified.iter().any(|n| n == c) {
                        o.notified.push(c.to_string());
                    }
                }
            }
            Record::Verdict { verdict, .. } => {
                o.why.push(format!(
                    "{at} (virtual) {} {}: {}{}",
                    verdict["window"].as_str().unwrap_or("analysis"),
                    verdict["verdict"].as_str().unwrap_or("?"),
                    verdict["reason"].as_str().unwrap_or(""),
                    verdict["version"]
                        .as_str()
                        .map(|v| format!(" (version {v})"))
                        .unwrap_or_default()
                ));
                // What did not pass and was let through (tolerated failures, no data), so a
                // verdict that surprises can be read back to its limits.
                for (name, m) in verdict["metrics"].as_object().into_iter().flatten() {
                    let n = |k: &str| m[k].as_u64().unwrap_or(0);
                    if n("failures") + n("inconclusives") + n("errors") == 0 {
                        continue;
                    }
                    o.why.push(format!(
                        "    {name}: {} of {} measurement(s) failed `{}`, {} inconclusive, {} error(s); last {}; metric verdict {}",
                        n("failures"),
                        n("measured"),
                        m["condition"].as_str().unwrap_or("?"),
                        n("inconclusives"),
                        n("errors"),
                        m["last"],
                        m["verdict"].as_str().unwrap_or("?"),
                    ));
                }
            }
            Record::AnswersUnused { id } => o.unused_answers.push(id.clone()),
            Record::SimulationMiss { why } if o.scenario_error.is_none() => {
                o.scenario_error = Some(why.clone());
            }
            _ => {}
        }
    }
    Ok(o)
}

fn print_result(ui: &Ui, r: &Rehearsed, verbose: bool) {
    let o = &r.observed;
    let took = format!(
        "exit {}, {} virtual, {} wall",
        o.exit,
        crate::ui::format_duration(o.virtual_time),
        crate::ui::format_duration(r.wall)
    );
    if r.differences.is_empty() {
        crate::outln!("{} {} ({took})", ui.green("✓"), r.scenario.name);
    } else {
        crate::outln!(
            "{} {} ({took})\n  {}",
            ui.red("✗"),
            r.scenario.name,
            r.scenario.file.display()
        );
        for d in &r.differences {
            let mut lines = d.lines();
            if let Some(first) = lines.next() {
                crate::outln!("  {}", ui.red(first));
            }
            for l in lines {
                crate::outln!("    {l}");
            }
        }
        for w in &o.why {
            crate::outln!("    {w}");
        }
    }
    if let Some(d) = &r.run_dir {
        if verbose || !r.differences.is_empty() {
            crate::outln!("  run directory: {}", d.display());
        }
        if verbose {
            if let Ok(log) = std::fs::read_to_string(d.join(crate::artifacts::LOG)) {
                for line in log.lines() {
                    crate::outln!("  {}", ui.dim(line));
                }
            }
        }
    }
}

/// The JUnit XML report CI systems read: one test case per scenario.
fn write_junit(path: &Path, results: &[Rehearsed]) -> Result<(), Error> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("runbook test");
    for r in results {
        let status = if r.differences.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(r.differences.join("; "));
            let mut detail = r.differences.join("\n");
            for w in &r.observed.why {
                detail.push('\n');
                detail.push_str(w);
            }
            s.set_description(detail);
            s
        };
        let mut case = TestCase::new(r.scenario.name.clone(), status);
        case.set_classname(r.scenario.file.display().to_string());
        case.set_time(r.wall);
        suite.add_test_case(case);
    }
    let mut report = Report::new("runbook");
    report.add_test_suite(suite);
    let xml = report
        .to_string()
        .map_err(|e| Error::Usage(format!("cannot write the JUnit report: {e}")))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    std::fs::write(path, xml).map_err(|e| Error::io("write JUnit report", path, e))
}
