//! One error type for everything the user can see, and the one place that renders it.
//!
//! Variants carry data; `render` turns them into text. Exit codes live here too, because they
//! are part of the interface (see docs/architecture.md).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::ui::Ui;

/// Exit codes: the contract scripts and CI rely on.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const ROLLED_BACK: i32 = 3;
    pub const DECLINED: i32 = 4;
    /// Rolled back cleanly, but because the run itself broke (a runbook or stdlib error, an
    /// answer that did not fit), not because the release was judged or chosen bad.
    pub const ROLLED_BACK_AFTER_ERROR: i32 = 5;
    pub const INTERRUPTED: i32 = 130;
}

/// A place in a source file, with the line's text so the caret can be drawn.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub source_line: Option<String>,
}

#[derive(Debug)]
pub struct ScriptError {
    pub message: String,
    pub location: Option<Location>,
    /// Where the failing function was called from, outermost first.
    pub call_sites: Vec<Location>,
    pub suggestion: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
    /// Found before the run started (syntax, undefined variable, missing module): exit 2.
    pub is_compile: bool,
}

#[derive(Debug)]
pub enum Error {
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    RunbookNotFound {
        name: String,
        searched: Vec<String>,
        suggestion: Option<String>,
    },
    Config {
        file: String,
        key: String,
        message: String,
        location: Option<(usize, usize)>,
    },
    SetOverride {
        arg: String,
        message: String,
    },
    Answers {
        file: String,
        id: Option<String>,
        message: String,
        help: Option<String>,
    },
    /// A script failed to compile or raised an error at run time.
    Script(Box<ScriptError>),
    PromptUnanswered {
        id: String,
        question: String,
        kind: &'static str,
        env_var: String,
        example: String,
        /// There was a terminal, and its input ended (Ctrl-D) before an answer was given.
        input_ended: bool,
    },
    Declined {
        gate: String,
        by: String,
    },
    Interrupted,
    Journal {
        file: String,
        message: String,
    },
    /// The environment lock was lost while the run held it.
    LockLost {
        environment: String,
        how: String,
    },
    Usage(String),
    /// A scenario file of `runbook test` that cannot be run as written.
    Scenario {
        file: String,
        location: Option<(usize, usize)>,
        message: String,
        help: String,
    },
    /// `runbook verify`: the journal is not as it was written.
    NotIntact {
        file: String,
        found: NotIntact,
    },
}

/// What `runbook verify` found wrong with a journal.
#[derive(Debug)]
pub enum NotIntact {
    /// The hash chain breaks at `line`; the `intact` records before it check out.
    Broken {
        line: usize,
        why: String,
        intact: usize,
    },
    Empty,
    /// The record `artifact` pins (by its hash) is not in the journal.
    Unpinned {
        artifact: String,
        hash: String,
    },
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Declined { .. } => exit::DECLINED,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Io { .. }
            | Error::Journal { .. }
            | Error::LockLost { .. }
            | Error::NotIntact { .. } => exit::FAILED,
            Error::Script(e) => {
                if e.is_compile {
                    exit::USAGE
                } else {
                    exit::FAILED
                }
            }
            Error::RunbookNotFound { .. }
            | Error::Config { .. }
            | Error::SetOverride { .. }
            | Error::Answers { .. }
            | Error::PromptUnanswered { .. }
            | Error::Scenario { .. }
            | Error::Usage(_) => exit::USAGE,
        }
    }

    /// One line: the message and, for script errors, where.
    pub fn summary(&self) -> String {
        match self {
            Error::Script(e) if e.location.is_some() => {
                let l = e.location.as_ref().expect("checked by the guard");
                format!("{} ({}:{}:{})", e.message, l.file, l.line, l.column)
            }
            other => {
                let text = other.render(&Ui::plain());
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string()
            }
        }
    }

    /// Show it to the person at the terminal, `redact`ed (a run's secrets): the one place an
    /// error is printed.
    pub fn print(&self, ui: &Ui, redact: impl Fn(&str) -> String) {
        ui.error_text(&redact(&self.render(ui)));
    }

    /// The text shown to a person: `error: ...` and what follows.
    pub fn render(&self, ui: &Ui) -> String {
        let mut out = String::new();
        let head = |out: &mut String, msg: &str| {
            let _ = writeln!(out, "{}: {msg}", ui.red_bold("error"));
        };
        match self {
            Error::Io {
                action,
                path,
                source,
            } => {
                head(&mut out, &format!("cannot {action} `{}`", path.display()));
                let _ = writeln!(out, "  caused by: {source}");
            }
            Error::RunbookNotFound {
                name,
                searched,
                suggestion,
            } => {
                head(&mut out, &format!("no runbook named `{name}`"));
                for s in searched {
                    let _ = writeln!(out, "  searched: {s}");
                }
                if let Some(s) = suggestion {
                    let _ = writeln!(out, "  help: did you mean `{s}`?");
                }
                let _ = writeln!(out, "  help: `runbook list` shows the runbooks found");
            }
            Error::Config {
                file,
                key,
                message,
                location,
            } => {
                let at = match location {
                    Some((l, c)) => format!("{file}:{l}:{c}"),
                    None => file.clone(),
                };
                if key.is_empty() {
                    head(&mut out, &format!("invalid config: {message}"));
                } else {
                    head(&mut out, &format!("invalid config at `{key}`: {message}"));
                }
                let _ = writeln!(out, " --> {at}");
                let _ = writeln!(
                    out,
                    "  help: docs/configuration.md lists every key; `runbook init` writes a commented starter"
                );
            }
            Error::Scenario {
                file,
                location,
                message,
                help,
            } => {
                let at = match location {
                    Some((l, c)) => format!("{file}:{l}:{c}"),
                    None => file.clone(),
                };
                head(&mut out, &format!("scenario `{file}`: {message}"));
                let _ = writeln!(out, " --> {at}");
                let _ = writeln!(out, "  help: {help}");
            }
            Error::SetOverride { arg, message } => {
                head(&mut out, &format!("invalid `--set {arg}`: {message}"));
                let _ = writeln!(
                    out,
                    "  help: write it as `--set key.path=value`, e.g. `--set feature=checkout`"
                );
            }
            Error::Answers {
                file,
                id,
                message,
                help,
            } => {
                match id {
                    Some(id) => head(&mut out, &format!("answer `{id}` in `{file}`: {message}")),
                    None => head(&mut out, &format!("answers file `{file}`: {message}")),
                }
                if let Some(h) = help {
                    let _ = writeln!(out, "  help: {h}");
                }
            }
            Error::Script(e) => {
                let ScriptError {
                    message,
                    location,
                    call_sites,
                    suggestion,
                    help,
                    ..
                } = &**e;
                head(&mut out, message);
                if let Some(loc) = location {
                    render_location(&mut out, ui, loc);
                }
                for site in call_sites.iter().rev() {
                    let _ = writeln!(
                        out,
                        "  note: called from {}:{}:{}",
                        site.file, site.line, site.column
                    );
                    render_snippet(&mut out, ui, site);
                }
                if let Some(s) = suggestion {
                    let _ = writeln!(out, "  help: did you mean `{s}`?");
                }
                if let Some(h) = help {
                    let _ = writeln!(out, "  help: {h}");
                }
            }
            Error::PromptUnanswered {
                id,
                question,
                kind,
                env_var,
                example,
                input_ended,
            } => {
                let why = if *input_ended {
                    "the terminal's input ended (Ctrl-D) before one was given"
                } else {
                    "there is no terminal to ask"
                };
                head(&mut out, &format!("{kind} `{id}` needs an answer and {why}"));
                let _ = writeln!(out, "  question: {question}");
                // A checklist item's id is `<list>.<item>`: in the answers file it is nested
                // under its list (or the whole list answered at once).
                match id.split_once('.') {
                    Some((list, item)) => {
                        let _ = writeln!(
                            out,
                            "  help: answer it in a file given with `--answers FILE`, nested under its list:\n          {list}:\n            {item}: {example}\n        or the whole list at once: `{list}: yes`"
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "  help: answer it in a file given with `--answers FILE`, as `{id}: {example}`"
                        );
                    }
                }
                let _ = writeln!(out, "  help: or set the environment variable {env_var}");
                // The approval gate has a flag of its own; --yes answers confirmations and
                // checklists (never an approval).
                if *kind == "approval" {
                    let _ = writeln!(out, "  help: or pass --approve on the command line");
                } else if matches!(*kind, "confirmation" | "checklist item") {
                    let _ = writeln!(
                        out,
                        "  help: or pass --yes to answer confirmations and checklists with yes"
                    );
                }
            }
            Error::Declined { gate, by } => {
                head(
                    &mut out,
                    &format!("`{gate}` was declined by {by}; nothing further was changed"),
                );
            }
            Error::Interrupted => head(&mut out, "interrupted"),
            Error::Journal { file, message } => {
                head(&mut out, &format!("journal `{file}`: {message}"));
            }
            Error::Usage(msg) => head(&mut out, msg),
            Error::NotIntact { file, found } => match found {
                NotIntact::Broken { line, why, intact } => {
                    head(
                        &mut out,
                        &format!("journal `{file}` is not intact at line {line}: {why}"),
                    );
                    let _ = writeln!(out, "  ({intact} records before it check out)");
                }
                NotIntact::Empty => head(
                    &mut out,
                    &format!("journal `{file}` is empty: it holds no record to check"),
                ),
                NotIntact::Unpinned { artifact, hash } => head(
                    &mut out,
                    &format!("journal `{file}` does not contain the record {artifact} pins (hash {hash}): its end was altered or removed after the artifacts were written"),
                ),
            },
            Error::LockLost { environment, how } => {
                head(
                    &mut out,
                    &format!("the lock on `{environment}` was lost while this run held it: {how}"),
                );
                let _ = writeln!(
                    out,
                    "  this run stopped before its next step and rolled nothing back (another run may own `{environment}` now); its undo steps stand in rollback-plan.md: run them with `runbook rollback` once you know what the other run did"
                );
            }
        }
        out
    }
}

fn render_location(out: &mut String, ui: &Ui, loc: &Location) {
    let _ = writeln!(
        out,
        " {} {}:{}:{}",
        ui.blue("-->"),
        loc.file,
        loc.line,
        loc.column
    );
    render_snippet(out, ui, loc);
}

fn render_snippet(out: &mut String, ui: &Ui, loc: &Location) {
    let Some(src) = &loc.source_line else { return };
    let num = loc.line.to_string();
    let pad = " ".repeat(num.len());
    let bar = ui.blue("|");
    let _ = writeln!(out, "{pad} {bar}");
    let _ = writeln!(out, "{} {bar} {}", ui.blue(&num), src);
    // Tabs keep their width so the caret lines up under them.
    let lead: String = src
        .chars()
        .take(loc.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} {bar} {lead}{}", ui.red_bold("^"));
}

/// The closest of `candidates` to `name`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Read an input file (config, answers, runbook) as text. Bytes that are not text are the
/// user's input being wrong (exit 2), not the machine failing.
pub fn read_text(what: &'static str, path: &std::path::Path) -> Result<String, Error> {
    let action = match what {
        "config" => "read config",
        "answers" => "read answers",
        _ => "read runbook",
    };
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::Usage(format!(
                "cannot read {what} `{}`: it is not text (not valid UTF-8)",
                path.display()
            ))
        } else {
            Error::io(action, path, e)
        }
    })
}
