//! Undo actions: data, not closures, so the journal can hold them and a later process (the
//! REPL, `runbook rollback`, a resumed run) can carry out what a dead one registered.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::Record;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Undo {
    pub id: u64,
    pub label: String,
    pub action: Action,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A command line (through the shell when it needs one).
    Command { line: String },
    /// A program and its arguments.
    Argv { argv: Vec<String> },
    /// A function of an importable module (a stdlib name or a path), with its arguments.
    Call {
        module: String,
        function: String,
        args: Vec<Value>,
    },
}

impl Action {
    /// The action with `f` applied to every piece of text in it (command, argv, arguments).
    pub fn map_text(
        &self,
        f: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Action, String> {
        fn json(
            v: &Value,
            f: &mut dyn FnMut(&str) -> Result<String, String>,
        ) -> Result<Value, String> {
            Ok(match v {
                Value::String(s) => Value::String(f(s)?),
                Value::Array(a) => {
                    Value::Array(a.iter().map(|x| json(x, f)).collect::<Result<_, _>>()?)
                }
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, x)| Ok((k.clone(), json(x, f)?)))
                        .collect::<Result<_, String>>()?,
                ),
                other => other.clone(),
            })
        }
        Ok(match self {
            Action::Command { line } => Action::Command { line: f(line)? },
            Action::Argv { argv } => Action::Argv {
                argv: argv.iter().map(|a| f(a)).collect::<Result<_, _>>()?,
            },
            Action::Call {
                module,
                function,
                args,
            } => Action::Call {
                module: module.clone(),
                function: function.clone(),
                args: args.iter().map(|a| json(a, f)).collect::<Result<_, _>>()?,
            },
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Action::Command { line } => line.clone(),
            Action::Argv { argv } => crate::process::Program::Argv(argv.clone()).display(),
            Action::Call {
                module,
                function,
                args,
            } => {
                let args: Vec<String> = args.iter().map(Value::to_string).collect();
                format!("{module}::{function}({})", args.join(", "))
            }
        }
    }
}

/// What happened to one undo during a rollback.
#[derive(Debug, Clone)]
pub struct Step {
    pub undo: Undo,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub steps: Vec<Step>,
    /// Stopped by Ctrl-C (see `rollback_until_interrupted`): the undos not carried out, the
    /// interrupted one first; they stay standing.
    pub stopped: Vec<Undo>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.error.is_none())
    }
}

/// Where one undo is, for a watcher that records it elsewhere as it goes.
pub enum Progress<'a> {
    /// About to act.
    Start,
    /// Finished: the error, if it failed.
    Done(Option<&'a str>),
}

/// Describe an action as the journal holds it.
pub fn describe_json(v: &Value) -> String {
    serde_json::from_value::<Action>(v.clone())
        .map(|a| a.describe())
        .unwrap_or_else(|_| v.to_string())
}

/// An undo step a run registered and nothing carried out or discarded since.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub undo: Undo,
    /// The command line it will run, as its adapter shows it.
    pub shows: Option<String>,
    /// The stage it was registered in.
    pub stage: Option<String>,
}

/// The undo steps a journal leaves standing, last registered first (the order they run in).
pub fn standing(entries: &[crate::journal::Entry]) -> Vec<Standing> {
    // The last result of an effect is its result.
    let results: std::collections::HashMap<u64, bool> = entries
        .iter()
        .filter_map(|e| match &e.record {
            Record::EffectResult(r) => Some((r.effect, r.ok)),
            _ => None,
        })
        .collect();
    let mut standing: Vec<Standing> = Vec::new();
    for e in entries {
        match &e.record {
            // A resumed run registers again the undos of the steps it replays: one stands once.
            Record::UndoRegister {
                undo,
                label,
                action,
                shows,
                stage,
            } => {
                standing.retain(|s| s.undo.id != *undo);
                standing.push(Standing {
                    undo: Undo {
                        id: *undo,
                        label: label.clone(),
                        action: action.clone(),
                    },
                    shows: shows.clone(),
                    stage: stage.clone(),
                });
            }
            // Discarded, or carried out by a later process: no longer standing.
            Record::UndoDiscard { undos, .. } => standing.retain(|s| !undos.contains(&s.undo.id)),
            Record::UndoExternal(x) if x.ok => standing.retain(|s| !x.undos.contains(&s.undo.id)),
            Record::EffectIntent {
                effect,
                kind,
                intent,
                dry_run,
                ..
            } if kind == "undo" => {
                let done = results.get(effect) == Some(&true);
                if done && !dry_run {
                    let id = intent["undo"].as_u64();
                    standing.retain(|s| Some(s.undo.id) != id);
                }
            }
            _ => {}
        }
    }
    standing.reverse();
    standing
}
