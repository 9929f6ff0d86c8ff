//! Asking people: `choose`, `confirm`, `checklist`, `input`, `approve`, and `decline`.
//!
//! Every prompt has a stable id (given, or derived from its text). Answers come, in order, from
//! `RUNBOOK_ANSWER_<ID>`, the answers file, `--yes` / `--approve` where they apply, and a person
//! at the terminal. With none of those the run stops before the prompt with exit 2.

use rhai::{Array, Dynamic, Map};
use serde_json::json;
use serde_yaml::Value as Yaml;

use super::{fail, gate_error, Opts, RhaiResult};
use crate::answers::{self, parse_yes_no, scalar_text, yes_no, Source};
use crate::error::Error;
use crate::session::{Session, Shared, Stop};
use crate::ui::menu::{self, MenuOption, MenuStyle};

mod approve;
mod checklist;
mod choose;
mod confirm;
mod input;

use approve::*;
use checklist::*;
use choose::*;
use confirm::*;
use input::*;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("choose", move |q: &str, options: Array| {
        choose(&s, q, options, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("choose", move |q: &str, options: Array, opts: Map| {
        choose(&s, q, options, &opts)
    });
    let s = session.clone();
    engine.register_fn("confirm", move |q: &str| confirm(&s, q, &Map::new()));
    let s = session.clone();
    engine.register_fn("confirm", move |q: &str, opts: Map| confirm(&s, q, &opts));
    let s = session.clone();
    engine.register_fn("checklist", move |title: &str, items: Array| {
        checklist(&s, title, items, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("checklist", move |title: &str, items: Array, opts: Map| {
        checklist(&s, title, items, &opts)
    });
    let s = session.clone();
    engine.register_fn("input", move |q: &str, default: &str| {
        input(&s, q, default, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("input", move |q: &str, default: &str, opts: Map| {
        input(&s, q, default, &opts)
    });
    let s = session.clone();
    engine.register_fn("approve", move |details: Map| approve(&s, &details));
    let s = session.clone();
    engine.register_fn("decline", move |reason: &str| -> RhaiResult<()> {
        s.record(crate::journal::Record::Declined {
            gate: reason.to_string(),
        });
        Err(s.stop(Stop::Declined {
            gate: reason.to_string(),
            by: "the runbook".into(),
        }))
    });
}

use crate::identity::{host, user};

/// What came back from asking: the answer's text, and how it was given.
struct Answered<T> {
    value: T,
    source: Source,
}

/// The common path of every prompt: explicit answer, then flags, then the terminal.
#[allow(clippy::too_many_arguments)]
fn ask<T: Clone>(
    session: &Session,
    kind: &'static str,
    id: &str,
    question: &str,
    shown: &str,
    example: &str,
    explicit: Option<(Yaml, Source)>,
    flag: Option<(T, Source)>,
    parse: &dyn Fn(&str) -> Result<T, String>,
) -> RhaiResult<Answered<T>> {
    if let Some((v, source)) = explicit {
        let text = match scalar_text(&v) {
            Some(t) => t,
            None => {
                let err = session.answers.borrow().error(
                    id,
                    format!("expected {example}, found {}", answers::kind_of(&v)),
                    None,
                );
                return Err(session.stop(Stop::Error(err)));
            }
        };
        return match parse(&text) {
            Ok(value) => Ok(Answered { value, source }),
            Err(why) => {
                let err = match &source {
                    Source::Env(var) => Error::Answers {
                        file: format!("environment {var}"),
                        id: Some(id.to_string()),
                        message: why,
                        help: Some(format!("for example {var}={example}")),
                    },
                    _ => session.answers.borrow().error(
                        id,
                        why,
                        Some(format!("for example `{id}: {example}`")),
                    ),
                };
                Err(session.stop(Stop::Error(err)))
            }
        };
    }
    if let Some((value, source)) = flag {
        return Ok(Answered { value, source });
    }
    let unanswered = |input_ended| Error::PromptUnanswered {
        id: id.to_string(),
        question: question.to_string(),
        kind,
        env_var: answers::env_var_for(id),
        example: example.to_string(),
        input_ended,
    };
    if !session.terminal.tty {
        if session.simulated() {
            // A checklist's items are answered under the checklist's id.
            let add = match (kind, id.split_once('.')) {
                ("checklist item", Some((list, item))) => {
                    format!("`{list}: {{ {item}: {example} }}` (or `{list}: yes` for every item)")
                }
                _ => format!("`{id}: {example}`"),
            };
            let why = format!(
                "the {kind} `{id}` (\"{question}\") is not answered: add {add} under `answers:`{}",
                match kind {
                    "approve" => ", or `approve: true`",
                    "confirm" | "checklist" | "checklist item" => ", or `yes: true`",
                    _ => "",
                }
            );
            session.record(crate::journal::Record::SimulationMiss { why: why.clone() });
            *session.world_miss.borrow_mut() = Some(why);
        }
        return Err(session.stop(Stop::Error(unanswered(false))));
    }
    loop {
        match session
            .terminal
            .ask(&format!("{shown} "), &session.interrupt)
        {
            Err(_) => return Err(session.stop(Stop::Interrupted)),
            // Ctrl-D: the terminal's input ended.
            Ok(None) => return Err(session.stop(Stop::Error(unanswered(true)))),
            Ok(Some(line)) => match parse(&line) {
                Ok(value) => {
                    return Ok(Answered {
                        value,
                        source: Source::Terminal,
                    })
                }
                Err(why) => session.ui.shout(&session.ui.yellow(&format!("  {why}"))),
            },
        }
    }
}

fn prompt_id(opts: &Opts, text: &str) -> RhaiResult<String> {
    Ok(opts.string("id")?.unwrap_or_else(|| answers::slug(text)))
}

/// Journal a prompt and its answer as one effect (prompts act in dry-run too).
fn journal_answer(
    session: &Session,
    kind: &str,
    id: &str,
    question: &str,
    answer: serde_json::Value,
    source: &Source,
) -> RhaiResult<()> {
    let intent = json!({ "id": id, "question": question });
    let result = json!({
        "id": id,
        "answer": answer,
        "source": source.describe(),
        "by": user(),
        "host": host(),
    });
    session
        .gate_input(&format!("prompt.{kind}"), id, intent, result)
        .map_err(|e| gate_error(session, e))
}

fn echo_answer(session: &Session, text: &str, source: &Source) {
    if *source != Source::Terminal {
        session.say(&format!("  → {text} ({})", source.describe()));
    } else {
        session
            .effects
            .borrow_mut()
            .log(&format!("  → {text} (typed by {})", user()));
    }
}

/// Ask a yes/no question on the runner's own behalf (roll back after a failure or an interrupt).
/// `None` when nobody can answer: no explicit answer, no `--yes`, no terminal.
pub fn offer(session: &Session, id: &str, question: &str) -> Option<bool> {
    let explicit = session.answers.borrow_mut().explicit(id);
    let flag = session
        .answers
        .borrow()
        .yes
        .then_some((true, Source::YesFlag));
    if explicit.is_none() && flag.is_none() && !session.terminal.tty {
        return None;
    }
    let shown = format!("{} (y/n):", session.ui.bold(question));
    let a = yes_no_question(session, id, question, &shown, explicit, flag, true).ok()?;
    let _ = journal_answer(session, "confirm", id, question, json!(a.value), &a.source);
    Some(a.value)
}

/// `input(question, default)` for the runner's own questions (the REPL's `resolve()`).
pub fn ask_input(session: &Session, question: &str, default: &str, id: &str) -> RhaiResult<String> {
    let mut opts = Map::new();
    opts.insert("id".into(), Dynamic::from(id.to_string()));
    input(session, question, default, &opts)
}
