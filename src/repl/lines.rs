//! A session's lines: read from the line editor or a pipe, evaluated against the persistent
//! scope and the functions defined so far, their errors reported; the end of a session.

use std::cell::RefCell;
use std::io::BufRead;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};
use rustyline::error::ReadlineError;
use serde_json::{json, Value};

use crate::error::Error;
use crate::incident::Closed;
use crate::journal::Record;
use crate::modules::Sources;
use crate::session::{Shared, Stop};

use super::editor::{answer_reader, history_path, is_incomplete, LineEditor, Names, ReplHelper};
use super::incident::close;
use super::watch::Watch;
use super::{show_error, to_stderr, Ended, State, SOURCE};

pub(super) struct Repl {
    pub(super) session: Shared,
    pub(super) state: Rc<State>,
    pub(super) watch: Arc<Watch>,
    pub(super) engine: Engine,
    pub(super) sources: Sources,
    pub(super) scope: Scope<'static>,
    /// The functions defined so far: they live on in every later line.
    pub(super) functions: AST,
    pub(super) names: Rc<RefCell<Names>>,
    pub(super) history: Vec<String>,
    /// Lines handled, and how many of them failed (from a pipe, any failure makes exit 1).
    pub(super) lines: usize,
    pub(super) failed: usize,
}

pub(super) enum Flow {
    Go,
    Quit,
}

impl Repl {
    pub(super) fn interactive(&mut self, names: Rc<RefCell<Names>>) -> Result<Ended, Error> {
        let checker_engine = Rc::new(Engine::new());
        let check = {
            let e = checker_engine.clone();
            move |text: &str| is_incomplete(&e, &Scope::new(), text)
        };
        let config = rustyline::Config::builder().auto_add_history(false).build();
        let mut editor: LineEditor = rustyline::Editor::with_config(config)
            .map_err(|e| Error::Usage(format!("cannot start the line editor: {e}")))?;
        let answering = Rc::new(std::cell::Cell::new(false));
        editor.set_helper(Some(ReplHelper {
            names,
            engine_check: Rc::new(check),
            answering: answering.clone(),
        }));
        let hist = history_path();
        if let Some(h) = &hist {
            let _ = editor.load_history(h);
            self.history = editor.history().iter().map(|s| s.to_string()).collect();
        }
        // Prompts asked while a line runs (input(), resolve()'s questions, "resolve before
        // leaving?") read through this same editor: a second reader on stdin would take the
        // keys typed at the next `runbook>` prompt.
        let editor = Rc::new(RefCell::new(editor));
        self.session.terminal.set_editor(Some(answer_reader(
            editor.clone(),
            answering,
            self.watch.clone(),
        )));
        let outcome = self.read_loop(&editor, hist.as_deref());
        self.session.terminal.set_editor(None);
        outcome
    }

    fn read_loop(
        &mut self,
        editor: &RefCell<LineEditor>,
        hist: Option<&Path>,
    ) -> Result<Ended, Error> {
        loop {
            if let Some(sig) = self.watch.why() {
                return Ok(Ended::Signal(sig));
            }
            let Some(read) = self
                .watch
                .waiting(|| editor.borrow_mut().readline("runbook> "))
            else {
                continue;
            };
            match read {
                Ok(line) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let redacted = self.session.redact(&line);
                    {
                        let mut editor = editor.borrow_mut();
                        let _ = editor.add_history_entry(redacted.as_str());
                        if let Some(h) = hist {
                            if let Some(parent) = h.parent() {
                                let _ = std::fs::create_dir_all(parent);
                            }
                            let _ = editor.save_history(h);
                        }
                    }
                    self.history.push(redacted);
                    // Several lines pasted at once run one statement at a time, as if typed.
                    for statement in self.statements(&line) {
                        if let Flow::Quit = self.handle(&statement) {
                            if self.confirm_quit() {
                                return Ok(Ended::Quit);
                            }
                        }
                    }
                }
                // Ctrl-C clears the line.
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => {
                    if self.confirm_quit() {
                        return Ok(Ended::Input);
                    }
                }
                // The terminal went away (a hangup): end in order, the incident written.
                Err(_) => return Ok(Ended::TerminalLost),
            }
        }
    }

    /// The session is over: an incident still open is written as abandoned; maintenance mode
    /// left on gets a reminder.
    pub(super) fn finish(&mut self, why: String) {
        if self.state.maintenance.get() == Some(true) {
            let said = "reminder: maintenance mode is still on (this session turned it on): maintenance(false) turns it off";
            to_stderr(said);
            self.session.effects.borrow_mut().log(said);
        }
        if self.state.incident().is_none() {
            return;
        }
        let title = self
            .state
            .incident()
            .as_ref()
            .map(|i| i.title.clone())
            .unwrap_or_default();
        let closed = Closed::Abandoned(format!("the session ended: {why}"));
        let said = match close(&self.session, &self.state, closed) {
            Ok(path) => format!(
                "the incident `{title}` was still open: written as abandoned to {}",
                path.display()
            ),
            Err(e) => format!(
                "the incident `{title}` was still open; its report could not be written: {e}"
            ),
        };
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{said}");
        self.session.effects.borrow_mut().log(&said);
    }

    /// The statements in `text`, line by line: a line joins the next while the parser says the
    /// statement is unfinished.
    fn statements(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buffer = String::new();
        for line in text.lines() {
            buffer.push_str(line);
            buffer.push('\n');
            if buffer.trim().is_empty() {
                buffer.clear();
                continue;
            }
            if !is_incomplete(&self.engine, &self.scope, &buffer) {
                out.push(std::mem::take(&mut buffer));
            }
        }
        if !buffer.trim().is_empty() {
            out.push(buffer);
        }
        out
    }

    /// Leaving with an incident open: offer to resolve it first.
    fn confirm_quit(&mut self) -> bool {
        if self.state.incident().is_none() {
            return true;
        }
        match crate::primitives::prompt::offer(
            &self.session,
            "resolve-before-leaving",
            "An incident is open. Resolve it and write its report before leaving?",
        ) {
            Some(true) => {
                self.handle("resolve()");
                true
            }
            Some(false) => true,
            None => true,
        }
    }

    pub(super) fn piped(&mut self) -> Result<Ended, Error> {
        let stdin = std::io::stdin();
        let mut buffer = String::new();
        let mut lines = stdin.lock().lines();
        loop {
            if let Some(sig) = self.watch.why() {
                return Ok(Ended::Signal(sig));
            }
            let Some(next) = self.watch.waiting(|| lines.next()) else {
                continue;
            };
            let Some(line) = next else { break };
            let line = line.map_err(|e| Error::io("read", "<stdin>", e))?;
            buffer.push_str(&line);
            buffer.push('\n');
            if is_incomplete(&self.engine, &self.scope, &buffer) {
                continue;
            }
            let input = std::mem::take(&mut buffer);
            if input.trim().is_empty() {
                continue;
            }
            self.history.push(self.session.redact(input.trim_end()));
            to_stderr(&format!(
                "runbook> {}",
                self.session.redact(input.trim_end())
            ));
            if let Flow::Quit = self.handle(&input) {
                return Ok(Ended::Quit);
            }
        }
        if !buffer.trim().is_empty() {
            self.handle(&buffer);
        }
        Ok(Ended::Input)
    }

    pub(super) fn handle(&mut self, input: &str) -> Flow {
        let text = input.trim();
        if let Some(cmd) = text.strip_prefix(':') {
            return self.command(cmd.trim());
        }
        let shown = self.session.redact(text);
        self.lines += 1;
        self.session.record(Record::ReplInput { text: shown });
        match self.eval(input) {
            Ok(v) => {
                if !v.is_unit() {
                    let out = self.session.redact(&v.to_string());
                    self.session.shout(&format!("=> {out}"));
                    self.session
                        .record(Record::ReplResult { value: json!(out) });
                } else {
                    self.session
                        .record(Record::ReplResult { value: Value::Null });
                }
            }
            Err(text) => {
                self.failed += 1;
                self.session.record(Record::ReplError { error: text });
            }
        }
        self.session.interrupt.forgive();
        Flow::Go
    }

    /// Evaluate one input; an error is shown and returned as text, and the session goes on.
    pub(super) fn eval(&mut self, input: &str) -> Result<Dynamic, String> {
        self.sources.insert(SOURCE, input);
        let mut ast = match self.engine.compile_with_scope(&self.scope, input) {
            Ok(a) => a,
            Err(e) => {
                let mut err = crate::engine::parse_error(&e, SOURCE, &self.sources);
                // Completion offers the stdlib modules' members: a call to one not imported
                // says the import it needs.
                if let (rhai::ParseErrorType::ModuleUndefined(module), Error::Script(script)) =
                    (&*e.0, &mut err)
                {
                    let shipped = crate::embedded::STDLIB
                        .iter()
                        .any(|(f, _)| f.trim_end_matches(".rhai") == module);
                    if shipped {
                        script.message = format!(
                            "the module `{module}` is not imported here: `import \"{module}\" as {module};` first"
                        );
                    }
                }
                show_error(&self.session, &err);
                return Err(err.summary());
            }
        };
        ast.set_source(SOURCE);
        let imports = top_level_imports(&ast);
        let merged = self.functions.merge(&ast);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &merged);
        self.functions = merged.clone_functions_only();
        self.refresh_names();
        self.keep_imports(&imports);
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.report(&e)),
        }
    }

    /// Modules imported on a line stay imported on the next ones.
    fn keep_imports(&mut self, imports: &[(String, String)]) {
        for (path, alias) in imports {
            let resolved = self.engine.module_resolver().resolve(
                &self.engine,
                Some(SOURCE),
                path,
                rhai::Position::NONE,
            );
            if let Ok(m) = resolved {
                let members = crate::modules::locate(Some(SOURCE), path, Path::new("."))
                    .map(|(_, text)| crate::engine::fn_names(&text))
                    .unwrap_or_default();
                self.names
                    .borrow_mut()
                    .members
                    .insert(alias.clone(), members);
                self.names.borrow_mut().words.push(format!("{alias}::"));
                self.engine.register_static_module(alias.as_str(), m);
            }
        }
    }

    fn refresh_names(&self) {
        let mut n = self.names.borrow_mut();
        for (name, _, _) in self.scope.iter_raw() {
            if !n.words.iter().any(|w| w == name) {
                n.words.push(name.to_string());
            }
        }
        for f in self.functions.iter_functions() {
            if !n.words.iter().any(|w| w == f.name) {
                n.words.push(f.name.to_string());
            }
        }
    }

    fn report(&self, e: &EvalAltResult) -> String {
        let stop = self.session.stop.borrow_mut().take();
        let err = match stop {
            Some(Stop::RolledBack { ok, reason, .. }) => {
                return if ok {
                    format!("rolled back: {reason}")
                } else {
                    format!("rollback incomplete: {reason}")
                };
            }
            Some(Stop::Interrupted) | Some(Stop::TimeLimit(_)) | Some(Stop::ResumeRollback(_)) => {
                self.session.shout("interrupted");
                return "interrupted".into();
            }
            Some(Stop::Declined { gate, by }) => Error::Declined { gate, by },
            Some(Stop::Error(err)) => err,
            None => {
                let mut err = crate::engine::script_error(e, SOURCE, &self.sources, false);
                if let (EvalAltResult::ErrorFunctionNotFound(sig, _), Error::Script(script)) =
                    (e, &mut err)
                {
                    // Every name callable here: primitives, the REPL's own and the emergency
                    // actions, and the functions defined in this session.
                    let name = sig.split([' ', '(']).next().unwrap_or(sig);
                    let mut names: Vec<String> =
                        crate::catalogue::names(crate::catalogue::Scope::Repl);
                    names.extend(self.functions.iter_functions().map(|f| f.name.to_string()));
                    // A module's members, by the alias it was imported as.
                    if let Some((module, _)) = name.rsplit_once("::") {
                        let known = self.names.borrow().members.get(module).cloned();
                        names.extend(
                            known
                                .into_iter()
                                .flatten()
                                .map(|m| format!("{module}::{m}")),
                        );
                    }
                    if let Some(hint) = crate::error::did_you_mean(
                        name,
                        names.iter().map(String::as_str).filter(|n| *n != name),
                    ) {
                        script.suggestion = Some(hint);
                    }
                }
                err
            }
        };
        show_error(&self.session, &err);
        self.session.redact(&err.summary())
    }
}

fn top_level_imports(ast: &AST) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in ast.statements() {
        if let rhai::Stmt::Import(x, _) = stmt {
            if let (rhai::Expr::StringConstant(path, _), alias) = (&x.0, &x.1) {
                if !alias.name.is_empty() {
                    out.push((path.to_string(), alias.name.to_string()));
                }
            }
        }
    }
    out
}
