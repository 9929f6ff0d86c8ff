//! The `:` commands (`:help`, `:load`, `:vars`, `:history`, `:status`, `:quit`) and `:help NAME`.

use crate::error::Error;
use crate::journal::Record;

use super::lines::{Flow, Repl};
use super::show_error;

pub(super) const COMMANDS: &[(&str, &str)] = &[
    (
        ":help",
        "primitives and stdlib with signatures; :help NAME for one",
    ),
    (
        ":load FILE",
        "run a Rhai file here (its functions stay defined)",
    ),
    (":vars", "the variables in scope"),
    (":history", "the lines entered, this session and before"),
    (":status", "the attached deployment (same as status())"),
    (":quit", "leave (Ctrl-D too)"),
];

impl Repl {
    pub(super) fn command(&mut self, cmd: &str) -> Flow {
        let (name, arg) = cmd
            .split_once(' ')
            .map(|(a, b)| (a, b.trim()))
            .unwrap_or((cmd, ""));
        match name {
            "quit" | "q" | "exit" => return Flow::Quit,
            "help" if arg.is_empty() => {
                crate::outln!("Commands:");
                for (c, d) in COMMANDS {
                    crate::outln!("  {c:<12} {d}");
                }
                crate::outln!("Functions:");
                for n in crate::catalogue::natives(crate::catalogue::Scope::Repl) {
                    crate::outln!(
                        "  {:<48} {}",
                        crate::catalogue::short_signature(n),
                        n.summary
                    );
                }
                // The emergency actions are globals here.
                for m in crate::catalogue::stdlib()
                    .into_iter()
                    .filter(|m| m.module == "emergency" && !helps_natively(&m.name))
                {
                    crate::outln!(
                        "  {:<48} {}",
                        format!("{}({})", m.name, m.params.join(", ")),
                        m.summary()
                    );
                }
                crate::outln!(
                    "Modules: {}",
                    crate::embedded::STDLIB
                        .iter()
                        .map(|(f, _)| f.trim_end_matches(".rhai"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            "help" => help_for(arg),
            "vars" => {
                for (name, constant, value) in self.scope.iter_raw() {
                    let v = self.session.redact(&value.to_string());
                    crate::outln!("{}{name} = {v}", if constant { "const " } else { "" });
                }
            }
            "history" => {
                for (i, h) in self.history.iter().enumerate() {
                    crate::outln!("{:>4}  {h}", i + 1);
                }
            }
            "status" => {
                self.handle("status()");
            }
            "load" => match std::fs::read_to_string(arg) {
                Ok(text) => {
                    self.session.record(Record::ReplLoad {
                        file: arg.to_string(),
                    });
                    if let Err(e) = self.eval(&text) {
                        self.failed += 1;
                        self.session.record(Record::ReplError { error: e });
                    }
                }
                Err(e) => show_error(&self.session, &Error::io("read", arg, e)),
            },
            other => {
                let names: Vec<&str> = COMMANDS
                    .iter()
                    .map(|(c, _)| c.trim_start_matches(':').split(' ').next().unwrap_or(""))
                    .collect();
                let hint = crate::error::did_you_mean(other, names.iter().copied())
                    .map(|s| format!(" (did you mean `:{s}`?)"))
                    .unwrap_or_default();
                show_error(
                    &self.session,
                    &Error::Usage(format!("no command `:{other}`{hint}; :help lists them")),
                );
            }
        }
        Flow::Go
    }
}

/// Whether the catalogue has a native entry for `name` at the REPL.
fn helps_natively(name: &str) -> bool {
    crate::catalogue::natives(crate::catalogue::Scope::Repl).any(|n| n.name == name)
}

/// `:help NAME`: a primitive's overloads, or a stdlib function (`workflow::run`, or an emergency
/// action by its bare name).
fn help_for(arg: &str) {
    let natives: Vec<_> = crate::catalogue::natives(crate::catalogue::Scope::Repl)
        .filter(|n| n.name == arg)
        .collect();
    if !natives.is_empty() {
        for n in natives {
            for o in n.overloads {
                crate::outln!("{o}");
            }
            crate::outln!("  {}", n.summary);
        }
        return;
    }
    if let Some((_, sig, doc)) = crate::catalogue::LANGUAGE_DOCS
        .iter()
        .find(|(n, _, _)| *n == arg)
    {
        crate::outln!("{sig}");
        crate::outln!("  {doc}");
        return;
    }
    let stdlib = crate::catalogue::stdlib();
    let found = stdlib.iter().find(|m| {
        format!("{}::{}", m.module, m.name) == arg || (m.module == "emergency" && m.name == arg)
    });
    match found {
        Some(m) => {
            crate::outln!("{}", m.signature());
            if !m.doc.is_empty() {
                crate::outln!("  {}", m.doc);
            }
        }
        None => {
            let mut names: Vec<String> = crate::catalogue::names(crate::catalogue::Scope::Repl);
            names.extend(stdlib.iter().map(|m| format!("{}::{}", m.module, m.name)));
            let hint = crate::error::did_you_mean(arg, names.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            crate::outln!("no help for `{arg}`{hint}");
        }
    }
}
