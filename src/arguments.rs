//! The command line. The only file that knows clap: it turns arguments into plain values.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::options::{Common, RunOptions};
use crate::subcommand::Command;
use crate::ui::{ColorChoice, LogFormat, Verbosity};

const EXAMPLES: &str = "\
Examples:
  runbook demo --unattended                    a whole canary deploy on a local fleet
  runbook deploy.rhai                          run the deploy runbook (yours, or the shipped one)
  runbook deploy --set feature=checkout        name the feature for this run
  runbook deploy --answers answers.yaml        answer prompts from a file (CI, pipes)
  runbook deploy --dry-run --answers answers.yaml --approve
                                               show every command that would run; change nothing
  runbook check deploy.rhai                    compile a runbook and its imports, validate config
  runbook list                                 the runbooks found and where each comes from
  runbook init                                 a starter runbook.yaml + the shipped runbooks
  runbook test                                 rehearse them: scenarios in tests/, virtual clock

Exit codes:
  0 completed    1 failed (nothing to undo, or the rollback failed or was refused)
  2 usage, config, answers or script error (found before anything changed)
  3 rolled back cleanly: a verdict, a failed step, a person or the script chose it
  4 declined at a gate
  5 rolled back cleanly after the run itself broke (runbook, stdlib or answer error,
    monitoring that could not measure)
  130 interrupted";

#[derive(Parser, Debug)]
#[command(
    name = "runbook",
    version,
    about = "Run deployment runbooks written in Rhai: every command, prompt, check and undo journaled.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    /// The runbook to run: a path, or a name looked up in ./runbooks, the team's `runbook_dirs`,
    /// then the runbooks shipped in the binary.
    #[arg(value_name = "FILE_OR_NAME")]
    runbook: Option<String>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Args, Debug, Clone)]
struct GlobalArgs {
    /// Team config file [default: ./runbook.yaml when it exists]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Override a config value, e.g. `--set feature=checkout` or `--set limits.operations=1000`
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,

    /// When to use colour (NO_COLOR is honoured by `auto`)
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,

    /// Terminal output as text, or as JSON lines (one event per line)
    #[arg(long, global = true, value_enum, default_value_t = FormatArg::Text)]
    log_format: FormatArg,

    /// Show only prompts, failures and the outcome
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Show more: every step's timing and each registered undo
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
struct RunArgs {
    /// Answers to prompts: a YAML map from prompt id to answer
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,

    /// Answer confirmations and checklists yes (never an approval: see --approve)
    #[arg(long)]
    yes: bool,

    /// Approve the critical approval gates (recorded as approved by you, with --approve)
    #[arg(long)]
    approve: bool,

    /// Run nothing and change nothing: prompts still ask, and deployment-plan.md lists every command
    #[arg(long)]
    dry_run: bool,

    /// Where run directories are written [default: ./deployments]
    #[arg(long, value_name = "DIR")]
    deployments_dir: Option<PathBuf>,

    /// Take over a stale environment lock (its process is gone or its lease ran out); the reason is journaled
    #[arg(long, value_name = "REASON")]
    take_over: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Run a runbook (the same as `runbook FILE_OR_NAME`)
    #[command(
        after_help = "Examples:\n  runbook run deploy.rhai --answers answers.yaml\n  runbook run ./ops/hotfix.rhai --dry-run --yes"
    )]
    Run {
        #[arg(value_name = "FILE_OR_NAME")]
        runbook: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run the whole deployment workflow against an embedded local fleet: a real canary, a real rollback
    #[command(
        after_help = "Examples:\n  runbook demo                          choose at the prompts\n  runbook demo --unattended             the happy path, no questions\n  runbook demo --strategy blue-green --bad-release --unattended\n\nExit codes: 0 the release went out; 3 it was rolled back (as --bad-release should be)."
    )]
    Demo {
        /// The strategy (otherwise chosen at the menu; canary when unattended)
        #[arg(long, value_parser = ["blue-green", "rolling", "canary", "feature-flag"])]
        strategy: Option<String>,
        /// Make the new version fail about 20% of requests and answer slowly
        #[arg(long)]
        bad_release: bool,
        /// Answer every prompt on the happy path and follow the rollout schedule
        #[arg(long)]
        unattended: bool,
        /// Where run directories are written [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// The runbook primitives at a prompt, for incidents: attach to a deployment, roll it back, keep a record
    #[command(
        after_help = "Examples:\n  runbook repl --last                     attach to the newest deployment\n  runbook repl --deployment deployments/2026-11-27-checkout\n  echo 'status()' | runbook repl --last   commands from a pipe work too (exit 1 if a line failed)\n  runbook repl --last --answers answers.yaml   questions answered from a file\n\nAt the prompt: :help, :vars, :history, :load FILE, :status, :quit.\nincident(title, severity) starts the record; resolve() writes incident-report.md."
    )]
    Repl {
        /// Attach to this run directory
        #[arg(long, value_name = "DIR", conflicts_with = "last")]
        deployment: Option<PathBuf>,
        /// Attach to the newest deployment
        #[arg(long)]
        last: bool,
        /// Answers to the questions asked (input, confirm, resolve()...): a YAML map from prompt id to answer
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
        /// Where the deployments are: --last, locks and incident reports [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// Go on with a run that died (crash, SIGKILL, a lost laptop): what it completed is replayed from its journal, not done again
    #[command(
        after_help = "Examples:\n  runbook resume                                   the newest unfinished run\n  runbook resume deployments/2026-11-27-checkout\n\nThe effect under way when the run died is shown: re-run it, skip it, or roll back\n(answer id `resume-in-flight`; `resume.in_flight` in runbook.yaml when nobody is there).\nA changed script, config or answers file is refused unless --force."
    )]
    Resume {
        /// The run directory [default: the newest unfinished run]
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Go on even though the script, config or answers changed since the run started
        #[arg(long)]
        force: bool,
        /// Where to look for the newest unfinished run [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// Break an environment's lock (break-glass: the holder and your reason are recorded)
    #[command(
        after_help = "Examples:\n  runbook unlock production --reason \"runner host died mid-deploy; checked the cluster by hand\""
    )]
    Unlock {
        #[arg(value_name = "ENV")]
        environment: String,
        /// Why it is safe to break it
        #[arg(long)]
        reason: String,
        /// The deployments directory whose lock to break [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// Who holds each environment (or held it last): the run, its stage, traffic and last verdict, read from the lock backend
    #[command(after_help = "Examples:\n  runbook status\n  runbook status production")]
    Status {
        #[arg(value_name = "ENV")]
        environment: Option<String>,
        /// The deployments directory whose locks to read (the file backend) [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// Ask the live run of an environment to pause, resume, abort (roll back) or promote; it acts at its next safe point and journals who asked
    #[command(
        after_help = "Examples:\n  runbook control production pause --reason \"checking a dashboard\"\n  runbook control production resume\n  runbook control production abort --reason \"support tickets spiking\"\n  runbook control production promote --reason \"verified by hand\"\n\nExit codes: 0 the request was left for the run; 2 no live run holds the environment (or the lock store cannot be reached)."
    )]
    Control {
        #[arg(value_name = "ENV")]
        environment: String,
        #[arg(value_parser = ["pause", "resume", "abort", "promote"])]
        action: String,
        /// Why: journaled by the run, and named in its post-mortem
        #[arg(long)]
        reason: Option<String>,
        /// The deployments directory whose locks to use (the file backend) [default: ./deployments]
        #[arg(long, value_name = "DIR")]
        deployments_dir: Option<PathBuf>,
    },
    /// Check a run's journal: its hash chain, and the hash its artifacts pinned
    #[command(
        after_help = "Examples:\n  runbook verify deployments/2026-11-27-checkout\n\nExit codes: 0 intact; 1 a record was altered, removed or reordered; 2 not a run directory."
    )]
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Render a run's artifacts again from its journal: plan, rollback plan, checklist, snapshot,
    /// post-mortem and the metric charts (chart-<metric>.svg)
    #[command(
        after_help = "Examples:\n  runbook report deployments/2026-11-27-checkout\n\nExit codes: 0 written; 1 the journal cannot be read or a file written; 2 not a run directory."
    )]
    Report {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// List the runbooks found, where each comes from, and what it does
    #[command(after_help = "Examples:\n  runbook list\n  runbook list --config ops/runbook.yaml")]
    List,
    /// Compile a runbook and its imports, and validate config and answers; runs nothing
    #[command(
        after_help = "Examples:\n  runbook check deploy.rhai\n  runbook check deploy --answers answers.yaml --set feature=checkout"
    )]
    Check {
        #[arg(value_name = "FILE_OR_NAME")]
        runbook: String,
        /// An answers file to validate too
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
    },
    /// Write a commented starter runbook.yaml and copy the shipped runbooks for a team to edit
    #[command(after_help = "Examples:\n  runbook init\n  runbook init ops/deploy")]
    Init {
        /// Where to write them
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
    },
    /// Write Rhai definition files (.d.rhai) for an editor: every primitive and stdlib function
    /// with its signature and docs, so a team's editor completes and checks runbooks
    #[command(
        after_help = "Examples:\n  runbook definitions                   write them to ./rhai-definitions\n  runbook definitions ops/defs\n\nPoint the Rhai language server at the directory (see docs/editors.md)."
    )]
    Definitions {
        /// Where to write them
        #[arg(value_name = "DIR", default_value = "rhai-definitions")]
        dir: PathBuf,
    },
    /// Rehearse runbooks: run scenarios (YAML) in scripted worlds on a virtual clock
    #[command(
        long_about = "Rehearse runbooks: each scenario runs the real runbook through the real gate, with every effect (commands, HTTP, metrics, checks, notifications, prompts) answered by the scenario's world instead of acted on, and every wait a step of a virtual clock. Nothing outside is touched. What the run did is checked against the scenario's `expect`.",
        after_help = "Examples:\n  runbook test                          every tests/*.yaml beside runbook.yaml\n  runbook test tests/bad-release-rolled-back.yaml\n                                        one scenario\n  runbook test --filter canary --verbose\n  runbook test --junit reports/runbook.xml\n\nExit codes: 0 all passed, 1 one failed, 2 a scenario file cannot be run as written.\ndocs/testing.md describes the scenario file."
    )]
    Test {
        /// Scenario files, or directories of them [default: tests/ beside runbook.yaml]
        #[arg(value_name = "FILE_OR_DIR")]
        paths: Vec<PathBuf>,
        /// Write a JUnit XML report (the format CI systems read)
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Only the scenarios whose name or file contains TEXT
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Show each run's timeline: its log, stamped with the virtual time
        #[arg(long)]
        verbose: bool,
        /// Where the simulated runs' directories go [default: deployments/rehearsals beside runbook.yaml]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  runbook completions bash > /etc/bash_completion.d/runbook\n  runbook completions zsh > \"${fpath[1]}/_runbook\"\n  runbook completions fish > ~/.config/fish/completions/runbook.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FormatArg {
    Text,
    Json,
}

impl RunArgs {
    fn into_options(self, runbook: String) -> RunOptions {
        RunOptions {
            runbook,
            answers: self.answers,
            yes: self.yes,
            approve: self.approve,
            dry_run: self.dry_run,
            deployments_dir: self.deployments_dir,
            take_over: self.take_over,
            presets: Default::default(),
            simulation: None,
            // `runbook run`: the process exits when the run returns.
            ends_process: true,
        }
    }
}

/// The command-line interface as clap sees it: its help, subcommands and flags (for tests and
/// completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// `runbook --color never repl` as `runbook repl --color never`: global options written before
/// a subcommand are moved after it, where the parser takes them (a runbook's own arguments
/// would otherwise shut the subcommands out, and `repl` be looked for as a runbook). The global
/// options and the subcommands are the parser's own.
fn globals_after_subcommand(args: Vec<OsString>) -> Vec<OsString> {
    let cli = Cli::command();
    let subcommands: Vec<&str> = cli
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .collect();
    // Each global option's spellings (`--color`, `-q`), and whether it takes a value.
    let globals: Vec<(String, bool)> = cli
        .get_arguments()
        .filter(|a| a.is_global_set())
        .flat_map(|a| {
            let takes_value = a.get_action().takes_values();
            a.get_long()
                .map(|l| format!("--{l}"))
                .into_iter()
                .chain(a.get_short().map(|c| format!("-{c}")))
                .map(move |o| (o, takes_value))
        })
        .collect();
    let mut i = 1;
    while i < args.len() {
        let Some(a) = args[i].to_str() else {
            return args;
        };
        let name = a.split('=').next().unwrap_or(a);
        match globals.iter().find(|(o, _)| o == name) {
            Some((_, takes_value)) => {
                i += if *takes_value && !a.contains('=') {
                    2
                } else {
                    1
                }
            }
            None if i > 1 && subcommands.contains(&a) => {
                let mut moved = vec![args[0].clone(), args[i].clone()];
                moved.extend_from_slice(&args[1..i]);
                moved.extend_from_slice(&args[i + 1..]);
                return moved;
            }
            None => return args,
        }
    }
    args
}

/// Parse the command line. Help and version are returned as `Err` too: clap prints them.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(Common, Command), clap::Error> {
    let args = globals_after_subcommand(args.into_iter().collect());
    let cli = Cli::try_parse_from(args)?;
    let g = cli.global;
    let common = Common {
        config_file: g.config,
        sets: g.sets,
        color: match g.color {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        },
        log_format: match g.log_format {
            FormatArg::Text => LogFormat::Text,
            FormatArg::Json => LogFormat::Json,
        },
        verbosity: if g.quiet {
            Verbosity::Quiet
        } else if g.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
    };
    let command = match (cli.command, cli.runbook) {
        (Some(Sub::Run { runbook, run }), _) => Command::Run(run.into_options(runbook)),
        (Some(Sub::List), _) => Command::List,
        (Some(Sub::Verify { dir }), _) => Command::Verify(dir),
        (Some(Sub::Report { dir }), _) => Command::Report(dir),
        (
            Some(Sub::Resume {
                dir,
                force,
                deployments_dir,
            }),
            _,
        ) => Command::Resume {
            dir,
            force,
            deployments_dir,
        },
        (
            Some(Sub::Unlock {
                environment,
                reason,
                deployments_dir,
            }),
            _,
        ) => Command::Unlock {
            environment,
            reason,
            deployments_dir,
        },
        (
            Some(Sub::Control {
                environment,
                action,
                reason,
                deployments_dir,
            }),
            _,
        ) => Command::Control {
            environment,
            action,
            reason: reason.unwrap_or_default(),
            deployments_dir,
        },
        (
            Some(Sub::Status {
                environment,
                deployments_dir,
            }),
            _,
        ) => Command::Status {
            environment,
            deployments_dir,
        },
        (
            Some(Sub::Repl {
                deployment,
                last,
                answers,
                deployments_dir,
            }),
            _,
        ) => Command::Repl(crate::options::ReplOptions {
            deployment,
            last,
            answers,
            deployments_dir,
        }),
        (
            Some(Sub::Demo {
                strategy,
                bad_release,
                unattended,
                deployments_dir,
            }),
            _,
        ) => Command::Demo(crate::options::DemoOptions {
            strategy,
            bad_release,
            unattended,
            deployments_dir,
        }),
        (Some(Sub::Check { runbook, answers }), _) => Command::Check { runbook, answers },
        (Some(Sub::Init { dir, force }), _) => Command::Init { dir, force },
        (Some(Sub::Definitions { dir }), _) => Command::Definitions(dir),
        (
            Some(Sub::Test {
                paths,
                junit,
                filter,
                verbose,
                out,
            }),
            _,
        ) => Command::Test(crate::options::TestOptions {
            paths,
            junit,
            filter,
            verbose,
            out,
        }),
        (Some(Sub::Completions { shell }), _) => {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "runbook", &mut out);
            Command::Completions(String::from_utf8_lossy(&out).into_owned())
        }
        (None, Some(runbook)) => Command::Run(cli.run.into_options(runbook)),
        (None, None) => {
            return Err(Cli::command().error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "a runbook to run, or a command",
            ))
        }
    };
    Ok((common, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<String> {
        globals_after_subcommand(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn global_options_before_a_subcommand_move_after_it() {
        assert_eq!(
            words(&["runbook", "--color", "never", "-q", "repl", "--last"]),
            ["runbook", "repl", "--color", "never", "-q", "--last"]
        );
        assert_eq!(
            words(&["runbook", "--config=team.yaml", "list"]),
            ["runbook", "list", "--config=team.yaml"]
        );
        // A runbook, or a value that happens to be a subcommand's name, stays where it is.
        for args in [
            &["runbook", "--color", "never", "deploy.rhai"][..],
            &["runbook", "--set", "list", "deploy"],
            &["runbook", "list", "--color", "never"],
            &["runbook", "--dry-run", "list"],
        ] {
            assert_eq!(words(args), args, "{args:?}");
        }
        let (_, command) =
            parse(["runbook", "--color", "never", "list"].map(OsString::from)).expect("parses");
        assert!(matches!(command, Command::List), "{command:?}");
    }
}
