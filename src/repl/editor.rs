//! The line editor: completion, parser-driven multi-line input, the per-project history, and
//! prompts' answers read through the same editor.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Engine, Scope};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};

use super::commands::COMMANDS;
use super::watch::Watch;

/// What completion knows: names, and each module's members.
#[derive(Default)]
pub(super) struct Names {
    pub(super) words: Vec<String>,
    pub(super) members: HashMap<String, Vec<String>>,
}

#[derive(Helper, Hinter, Highlighter)]
pub(super) struct ReplHelper {
    pub(super) names: Rc<RefCell<Names>>,
    pub(super) engine_check: Rc<dyn Fn(&str) -> bool>,
    /// A prompt's answer is being read: one line of plain text, no completion.
    pub(super) answering: Rc<std::cell::Cell<bool>>,
}

pub(super) type LineEditor = rustyline::Editor<ReplHelper, rustyline::history::DefaultHistory>;

impl Completer for ReplHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if self.answering.get() {
            return Ok((pos, Vec::new()));
        }
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &before[start..];
        let names = self.names.borrow();
        let mut out: Vec<Pair> = Vec::new();
        if let Some((module, member)) = word.rsplit_once("::") {
            let offset = start + module.len() + 2;
            for m in names.members.get(module).into_iter().flatten() {
                if m.starts_with(member) {
                    out.push(Pair {
                        display: m.clone(),
                        replacement: m.clone(),
                    });
                }
            }
            return Ok((offset, out));
        }
        if word.starts_with(':') && start == 0 {
            for (c, _) in COMMANDS {
                let c = c.split(' ').next().unwrap_or(c);
                if c.starts_with(word) {
                    out.push(Pair {
                        display: c.to_string(),
                        replacement: c.to_string(),
                    });
                }
            }
            return Ok((start, out));
        }
        let mut seen = std::collections::HashSet::new();
        for w in &names.words {
            if w.starts_with(word) && !word.is_empty() && seen.insert(w.clone()) {
                out.push(Pair {
                    display: w.clone(),
                    replacement: w.clone(),
                });
            }
        }
        Ok((start, out))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        // Ask the parser: input that ends before a statement does continues on the next line.
        if !self.answering.get() && (self.engine_check)(ctx.input()) {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

/// Whether `text` is an unfinished statement (the parser ran out of input), not a wrong one.
pub fn is_incomplete(engine: &Engine, scope: &Scope, text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with(':') {
        return false;
    }
    match engine.compile_with_scope(scope, text) {
        Ok(_) => false,
        Err(e) => {
            let at_end = match e.1.line() {
                Some(l) => {
                    let lines = text.lines().count().max(1);
                    l > lines
                        || (l == lines
                            && e.1.position().unwrap_or(0)
                                > text.lines().last().unwrap_or("").len())
                }
                None => true,
            };
            matches!(*e.0, rhai::ParseErrorType::UnexpectedEOF)
                || (at_end && matches!(*e.0, rhai::ParseErrorType::MissingToken(..)))
        }
    }
}

pub(super) fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    let cwd = std::env::current_dir().ok()?;
    // One history per project: the working directory names it.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in cwd.to_string_lossy().bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    Some(base.join("runbook").join(format!("history-{hash:016x}")))
}

/// Read a prompt's answer through the REPL's line editor: Ctrl-C interrupts the question,
/// Ctrl-D is the end of input.
pub(super) fn answer_reader(
    editor: Rc<RefCell<LineEditor>>,
    answering: Rc<std::cell::Cell<bool>>,
    watch: Arc<Watch>,
) -> crate::session::LineEditor {
    Box::new(move |prompt: &str| {
        answering.set(true);
        let read = watch.waiting(|| match editor.try_borrow_mut() {
            Ok(mut editor) => editor.readline(prompt),
            Err(_) => Err(ReadlineError::Eof),
        });
        answering.set(false);
        let Some(read) = read else {
            return Ok(None);
        };
        match read {
            Ok(line) => Ok(Some(line)),
            Err(ReadlineError::Interrupted) => Err(crate::signals::Interrupted),
            Err(_) => Ok(None),
        }
    })
}
