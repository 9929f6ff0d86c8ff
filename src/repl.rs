//! `runbook repl`: the runbook primitives at a prompt, for incidents. Same engine, stdlib,
//! adapters and team config as runbooks; every line and every effect is journaled in the REPL's
//! own run directory, and an open incident collects them into its report.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicU8};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Scope, AST};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};
use serde_json::{json, Value};

use crate::answers::Answers;
use crate::error::Error;
use crate::incident::{Closed, Incident};
use crate::journal::Record;
use crate::modules::Sources;
use crate::options::Common;
use crate::runner::Built;
use crate::session::{Session, Shared, Stop};
use crate::ui::Ui;

use crate::options::ReplOptions;

const SOURCE: &str = "<repl>";

const FORCE_HINT: &str =
    "its undo steps do not run unless forced: rollback(#{ force: \"why it is safe\" })";

const COMMANDS: &[(&str, &str)] = &[
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

#[derive(Default)]
struct State {
    attached: Option<PathBuf>,
    /// What is wrong with the attached deployment's journal (its hash chain, checked on attach).
    damaged: Option<String>,
    /// The versions in play for metrics(): configured, and those the deployment sent traffic to.
    versions: Vec<String>,
    /// The maintenance mode this session last set.
    maintenance: std::cell::Cell<Option<bool>>,
    /// Shared with the watcher that writes it as abandoned when a signal ends the session.
    incident: Arc<Mutex<Option<Incident>>>,
}

impl State {
    fn incident(&self) -> std::sync::MutexGuard<'_, Option<Incident>> {
        self.incident.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Who may touch the session's state: the main thread, except while it waits for input; then
/// a SIGTERM or SIGHUP (a dropped SSH session) is handled by the watcher, which writes the open
/// incident as abandoned and ends the process.
#[derive(Default)]
struct Watch {
    owner: AtomicU8,
    /// The signal that ends the session (0: none yet).
    ending: AtomicI32,
}

const BUSY: u8 = 0;
const WAITING: u8 = 1;
const TAKEN: u8 = 2;

impl Watch {
    /// Run `read` (a wait for input) with the watcher allowed to take over; `None` when a
    /// signal ended the session and the main thread must wind it down.
    fn waiting<T>(&self, read: impl FnOnce() -> T) -> Option<T> {
        if self.ending.load(SeqCst) != 0 {
            return None;
        }
        self.owner.store(WAITING, SeqCst);
        if self.ending.load(SeqCst) != 0 {
            self.reclaim();
            return None;
        }
        let r = read();
        self.reclaim();
        Some(r)
    }

    fn reclaim(&self) {
        if self
            .owner
            .compare_exchange(WAITING, BUSY, SeqCst, SeqCst)
            .is_err()
        {
            // The watcher is writing the report and ending the process.
            loop {
                std::thread::park();
            }
        }
    }

    fn why(&self) -> Option<&'static str> {
        match self.ending.load(SeqCst) {
            0 => None,
            libc::SIGHUP => Some("SIGHUP"),
            _ => Some("SIGTERM"),
        }
    }
}

/// What completion knows: names, and each module's members.
#[derive(Default)]
struct Names {
    words: Vec<String>,
    members: HashMap<String, Vec<String>>,
}

#[derive(Helper, Hinter, Highlighter)]
struct ReplHelper {
    names: Rc<RefCell<Names>>,
    engine_check: Rc<dyn Fn(&str) -> bool>,
    /// A prompt's answer is being read: one line of plain text, no completion.
    answering: Rc<std::cell::Cell<bool>>,
}

type LineEditor = rustyline::Editor<ReplHelper, rustyline::history::DefaultHistory>;

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

fn history_path() -> Option<PathBuf> {
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

fn latest_deployment(root: &Path) -> Option<PathBuf> {
    crate::journal::run_dirs(root)
        .into_iter()
        // A run that rolled another back (`runbook rollback`) is not the deployment meant.
        .rfind(|d| d.is_deployment() && !d.journal.contains("\"type\":\"rollback.target\""))
        .map(|d| d.path)
}

pub fn run(common: &Common, opts: &ReplOptions, ui: &Ui) -> Result<i32, Error> {
    let mut loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    if let Some(dir) = &opts.deployments_dir {
        // Everything the session finds or writes (the newest deployment, locks, incident
        // reports) is under it.
        let absolute = std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.clone());
        loaded.config.deployments_dir = Some(absolute);
    }
    let root = crate::options::deployments_root(None, &loaded);
    let attached = match (&opts.deployment, opts.last) {
        (Some(d), _) => {
            if !d.join(crate::journal::FILE_NAME).is_file() {
                return Err(Error::Usage(format!(
                    "`{}` is not a run directory (it has no {})",
                    d.display(),
                    crate::journal::FILE_NAME
                )));
            }
            Some(d.clone())
        }
        (None, true) => Some(latest_deployment(&root).ok_or_else(|| {
            Error::Usage(format!("--last: no deployment under `{}`", root.display()))
        })?),
        (None, false) => None,
    };
    // The emergency actions act on the side that is live: the deployment's journal says which,
    // not the static config.
    let entries: Vec<crate::journal::Entry> = attached
        .as_deref()
        .and_then(|d| crate::journal::read_entries(&d.join(crate::journal::FILE_NAME)).ok())
        .map(|(entries, _)| entries)
        .unwrap_or_default();
    let live = attached
        .as_deref()
        .and_then(|d| crate::incident::live_of(d, &entries));
    // The versions in play: as configured (before the live side below replaces
    // `current_version`), and every one the deployment sent traffic to.
    let mut versions: Vec<String> = [&loaded.config.current_version, &loaded.config.version]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for e in &entries {
        if let Record::Traffic { weights, .. } = &e.record {
            versions.extend(weights.keys().cloned());
        }
    }
    let mut seen = std::collections::HashSet::new();
    versions.retain(|v| seen.insert(v.clone()));
    if let Some(l) = &live {
        let mut sets = common.sets.clone();
        if let Some(v) = &l.version {
            sets.push(format!("current_version={v}"));
        }
        if let Some(c) = &l.colour {
            if loaded.config.script.is_some() {
                sets.push(format!("script.live_colour={c}"));
            }
            sets.push(format!("kubernetes.live_colour={c}"));
        }
        loaded = crate::config::load(common.config_file.as_deref(), &sets)?;
    }
    let Built {
        session,
        mut engine,
        sources,
        runtime: _runtime,
    } = crate::runner::build(
        ui,
        loaded,
        Answers::load(opts.answers.as_deref())?,
        "repl".into(),
        PathBuf::from(SOURCE),
        PathBuf::from("."),
        false,
    )?;
    let dir = crate::runner::start_journal(&session, &root, false)?;
    session.record(Record::RunStart(crate::record::RunStart {
        script: SOURCE.to_string(),
        feature: session.feature.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        dry_run: false,
        simulated: false,
        user: crate::identity::user(),
        host: crate::identity::host(),
        run_dir: dir.display().to_string(),
        run: None,
        attached: Some(json!(attached.as_ref().map(|d| d.display().to_string()))),
    }));
    let damaged = attached.as_deref().and_then(journal_damage);
    let state = Rc::new(State {
        attached,
        versions,
        damaged,
        maintenance: std::cell::Cell::new(None),
        incident: Arc::new(Mutex::new(None)),
    });
    register(&mut engine, &session, &state, &sources);

    let names = Rc::new(RefCell::new(Names::default()));
    {
        let mut n = names.borrow_mut();
        n.words
            .extend(crate::catalogue::names(crate::catalogue::Scope::Repl));
        for (file, text) in crate::embedded::STDLIB {
            let module = file.trim_end_matches(".rhai").to_string();
            n.words.push(format!("{module}::"));
            n.members.insert(module, crate::engine::fn_names(text));
        }
    }

    let tty = std::io::stdin().is_terminal();
    // From a pipe, stdout carries only results: the banner and the echoed lines go to stderr.
    let banner = |line: &str| {
        if tty {
            ui.say(line);
        } else {
            to_stderr(line);
        }
    };
    banner(&ui.bold("runbook repl"));
    banner(&format!("  journal: {}", dir.display()));
    if let Some(a) = &state.attached {
        banner(&format!(
            "  attached to {}: status(), rollback(), metrics()",
            a.display()
        ));
    }
    if let Some(l) = live.as_ref().filter(|l| l.version.is_some()) {
        banner(&format!(
            "  live: {}, from the deployment's journal",
            l.what.split(" (").next().unwrap_or(&l.what)
        ));
    }
    banner("  :help for the primitives, :quit or Ctrl-D to leave");
    if let (Some(a), Some(damage)) = (&state.attached, &state.damaged) {
        session.warn(&format!(
            "the journal `{}` {damage}; {FORCE_HINT}",
            a.join(crate::journal::FILE_NAME).display()
        ));
        session.record(Record::ReplJournalDamaged {
            deployment: a.display().to_string(),
            damage: damage.to_string(),
        });
    }

    let watch = Arc::new(Watch::default());
    spawn_watcher(&session, watch.clone(), state.incident.clone(), tty);
    let mut repl = Repl {
        session: session.clone(),
        state: state.clone(),
        watch,
        engine,
        sources,
        scope: Scope::new(),
        functions: AST::empty(),
        names: names.clone(),
        history: Vec::new(),
        lines: 0,
        failed: 0,
    };
    let ended = if tty {
        repl.interactive(names)?
    } else {
        repl.piped()?
    };
    repl.finish(ended.why());
    let code = match ended {
        Ended::Signal(_) => crate::error::exit::INTERRUPTED,
        _ if !tty && repl.failed > 0 => {
            to_stderr(&format!(
                "{} of {} lines failed: exit {}",
                repl.failed,
                repl.lines,
                crate::error::exit::FAILED
            ));
            crate::error::exit::FAILED
        }
        _ => 0,
    };
    let outcome = if code == crate::error::exit::INTERRUPTED {
        "interrupted"
    } else {
        "completed"
    };
    session.record(Record::RunEnd {
        outcome: outcome.to_string(),
        exit_code: code,
        error: None,
        signal: None,
    });
    let journal = session.effects.borrow().journal_path().to_path_buf();
    if !acted(&journal) {
        // Looking around changed nothing: no run directory to leave behind.
        let _ = std::fs::remove_dir_all(&dir);
    } else if let Err(e) = crate::artifacts::render(&dir, session.effects.borrow().redactor()) {
        ui.error_text(&e.render(ui));
    }
    Ok(code)
}

/// Whether the session did anything worth its own record: an effect (a command, a request, a
/// prompt's answer, an undo...), an incident, a refusal or a forced rollback. Lines typed and
/// their results alone are not.
fn acted(journal: &Path) -> bool {
    let Ok((records, _)) = crate::journal::read(journal) else {
        return true;
    };
    records.iter().any(|r| {
        !matches!(
            Record::from_value(r),
            Record::RunStart(_)
                | Record::RunEnd { .. }
                | Record::ReplInput { .. }
                | Record::ReplResult { .. }
                | Record::ReplError { .. }
                | Record::ReplLoad { .. }
                | Record::ReplJournalDamaged { .. }
        )
    })
}

/// A line on stderr; a closed stderr is no reason to stop.
fn to_stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How the session ended.
enum Ended {
    Input,
    Quit,
    TerminalLost,
    Signal(&'static str),
}

impl Ended {
    fn why(&self) -> String {
        match self {
            Ended::Input => "end of input".into(),
            Ended::Quit => ":quit".into(),
            Ended::TerminalLost => "the terminal was lost".into(),
            Ended::Signal(s) => s.to_string(),
        }
    }
}

/// SIGTERM and SIGHUP end the session. While the main thread waits for input the watcher
/// writes the open incident as abandoned itself (nothing else would wake the line editor);
/// otherwise the main thread does once the current line is over.
fn spawn_watcher(
    session: &Session,
    watch: Arc<Watch>,
    incident: Arc<Mutex<Option<Incident>>>,
    tty: bool,
) {
    let journal = session.effects.borrow().journal_path().to_path_buf();
    let redactor = session.effects.borrow().redactor().clone();
    // The line editor puts the terminal in raw mode; leaving from under it puts it back.
    let termios = tty
        .then(|| {
            // SAFETY: tcgetattr fills the struct it is given; zeroed is a valid termios.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            (unsafe { libc::tcgetattr(0, &mut t) } == 0).then_some(t)
        })
        .flatten();
    session.rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            let sig = tokio::select! {
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            };
            watch.ending.store(sig, SeqCst);
            if watch
                .owner
                .compare_exchange(WAITING, TAKEN, SeqCst, SeqCst)
                .is_ok()
            {
                abandon_and_exit(
                    watch.why().unwrap_or("SIGTERM"),
                    &incident,
                    &journal,
                    &redactor,
                    termios,
                );
            }
        }
    });
}

fn abandon_and_exit(
    why: &str,
    incident: &Mutex<Option<Incident>>,
    journal: &Path,
    redactor: &crate::secrets::Redactor,
    termios: Option<libc::termios>,
) -> ! {
    use std::io::Write;
    if let Some(t) = termios {
        // SAFETY: t came from tcgetattr on the same descriptor.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
    let open = incident.lock().unwrap_or_else(|e| e.into_inner()).take();
    let code = crate::error::exit::INTERRUPTED;
    let mut j = crate::journal::Journal::append_to(journal, redactor.clone()).ok();
    if let Some(i) = open {
        let closed = Closed::Abandoned(format!("the session ended: {why}"));
        let md = redactor.redact(&i.render(journal, &closed));
        let path = i.report_path();
        let written = crate::incident::write_new(&path, &md);
        if let Some(j) = j.as_mut() {
            let _ = j.append(&Record::IncidentAbandon(crate::record::IncidentClose {
                id: i.id.clone(),
                title: i.title.clone(),
                report: path.display().to_string(),
                why: Some(format!("the session ended: {why}")),
                error: Some(json!(written.as_ref().err())),
            }));
        }
        // After a hangup there may be no terminal to tell: the report is written first.
        let _ = writeln!(
            std::io::stderr(),
            "\n{why}: the incident `{}` was still open: {}",
            i.title,
            match &written {
                Ok(()) => format!("written as abandoned to {}", path.display()),
                Err(e) => format!("its report could not be written: {e}"),
            }
        );
    }
    if let Some(j) = j.as_mut() {
        let _ = j.append(&Record::RunEnd {
            outcome: "interrupted".into(),
            exit_code: code,
            error: None,
            signal: Some(why.to_string()),
        });
    }
    drop(j);
    if !acted(journal) {
        if let Some(dir) = journal.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    std::process::exit(code)
}

/// Read a prompt's answer through the REPL's line editor: Ctrl-C interrupts the question,
/// Ctrl-D is the end of input.
fn answer_reader(
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

struct Repl {
    session: Shared,
    state: Rc<State>,
    watch: Arc<Watch>,
    engine: Engine,
    sources: Sources,
    scope: Scope<'static>,
    /// The functions defined so far: they live on in every later line.
    functions: AST,
    names: Rc<RefCell<Names>>,
    history: Vec<String>,
    /// Lines handled, and how many of them failed (from a pipe, any failure makes exit 1).
    lines: usize,
    failed: usize,
}

enum Flow {
    Go,
    Quit,
}

impl Repl {
    fn interactive(&mut self, names: Rc<RefCell<Names>>) -> Result<Ended, Error> {
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
    fn finish(&mut self, why: String) {
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

    fn piped(&mut self) -> Result<Ended, Error> {
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

    fn handle(&mut self, input: &str) -> Flow {
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
    fn eval(&mut self, input: &str) -> Result<Dynamic, String> {
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
                self.session
                    .ui
                    .error_text(&self.session.redact(&err.render(&self.session.ui)));
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
        self.session
            .ui
            .error_text(&self.session.redact(&err.render(&self.session.ui)));
        self.session.redact(&err.summary())
    }

    fn command(&mut self, cmd: &str) -> Flow {
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
                Err(e) => self
                    .session
                    .ui
                    .error_text(&Error::io("read", arg, e).render(&self.session.ui)),
            },
            other => {
                let names: Vec<&str> = COMMANDS
                    .iter()
                    .map(|(c, _)| c.trim_start_matches(':').split(' ').next().unwrap_or(""))
                    .collect();
                let hint = crate::error::did_you_mean(other, names.iter().copied())
                    .map(|s| format!(" (did you mean `:{s}`?)"))
                    .unwrap_or_default();
                self.session.ui.error_text(&format!(
                    "error: no command `:{other}`{hint}; :help lists them\n"
                ));
            }
        }
        Flow::Go
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

/// The REPL's own functions on an engine with no deployment attached: for the catalogue's test
/// of what is really registered.
pub fn register_detached(engine: &mut Engine, session: &Shared, sources: &Sources) {
    register(engine, session, &Rc::new(State::default()), sources);
}

fn register(engine: &mut Engine, session: &Shared, state: &Rc<State>, sources: &Sources) {
    // The emergency actions are global here: one call each.
    if let Some((_, text)) = crate::embedded::STDLIB
        .iter()
        .find(|(f, _)| *f == "emergency.rhai")
    {
        let name = crate::modules::shipped_name("stdlib", "emergency.rhai");
        // maintenance(on) is the stdlib's, wrapped (below) so that this session remembers it.
        let text = text
            .replacen("fn maintenance(on)", "fn stdlib_maintenance(on)", 1)
            .replacen("fn scale(count)", "fn stdlib_scale(count)", 1);
        sources.insert(&name, &text);
        let compiled = engine.compile(&text);
        if let Err(e) = &compiled {
            // A shipped module that does not compile is our bug: say it rather than lose the
            // emergency actions without a word.
            session.warn(&format!("the emergency actions are not available: {e}"));
        }
        if let Ok(mut ast) = compiled {
            ast.set_source(name.clone());
            if let Ok(mut m) = rhai::Module::eval_ast_as_new(Scope::new(), &ast, engine) {
                m.set_id(name);
                m.build_index();
                engine.register_global_module(m.into());
            }
            // Leaving with maintenance mode on gets a reminder.
            let ast = Rc::new(ast);
            let ast_for_scale = ast.clone();
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                "maintenance",
                move |ctx: NativeCallContext, on: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
                    refuse_if_alive(&s, st.attached.as_deref(), "maintenance()")?;
                    let flag = on.as_bool().ok();
                    let r = ctx.engine().call_fn::<Dynamic>(
                        &mut Scope::new(),
                        &ast,
                        "stdlib_maintenance",
                        (on,),
                    )?;
                    if let Some(flag) = flag {
                        st.maintenance.set(Some(flag));
                        s.record(Record::ReplMaintenance { on: json!(flag) });
                    }
                    Ok(r)
                },
            );
            // scale(n) changes the deployment too: not while its run is alive.
            let (s, st, ast) = (session.clone(), state.clone(), ast_for_scale);
            engine.register_fn(
                "scale",
                move |ctx: NativeCallContext,
                      count: Dynamic|
                      -> Result<Dynamic, Box<EvalAltResult>> {
                    refuse_if_alive(&s, st.attached.as_deref(), "scale()")?;
                    ctx.engine().call_fn::<Dynamic>(
                        &mut Scope::new(),
                        &ast,
                        "stdlib_scale",
                        (count,),
                    )
                },
            );
        }
    }

    // The versions in play, for metrics().
    let st = state.clone();
    engine.register_fn("attached_versions", move || -> rhai::Array {
        st.versions.iter().cloned().map(Dynamic::from).collect()
    });
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn("status", move || -> Result<Dynamic, Box<EvalAltResult>> {
        status(&s, &st)
    });
    // Live control of the attached deployment's run, while it is alive.
    {
        use crate::lock::control::Action;
        let (s, st) = (session.clone(), state.clone());
        engine.register_fn(
            "abort",
            move |reason: &str| -> Result<String, Box<EvalAltResult>> {
                control(&s, &st, Action::Abort, reason)
            },
        );
        for action in [Action::Pause, Action::Resume, Action::Promote] {
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                action.as_str(),
                move || -> Result<String, Box<EvalAltResult>> { control(&s, &st, action, "") },
            );
            let (s, st) = (session.clone(), state.clone());
            engine.register_fn(
                action.as_str(),
                move |reason: &str| -> Result<String, Box<EvalAltResult>> {
                    control(&s, &st, action, reason)
                },
            );
        }
    }
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext| -> Result<bool, Box<EvalAltResult>> {
            rollback(&s, &st, ctx.engine(), None)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "rollback",
        move |ctx: NativeCallContext, opts: rhai::Map| -> Result<bool, Box<EvalAltResult>> {
            let o = crate::primitives::Opts::new(&opts, "rollback", &["force"])?;
            let force = o
                .string("force")?
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| {
                    crate::primitives::fail(
                        "`rollback(#{ force: ... })` needs the reason it is safe, as text",
                    )
                })?;
            rollback(&s, &st, ctx.engine(), Some(&force))
        },
    );
    // The same guard on the primitives that undo a named deployment.
    let s = session.clone();
    engine.register_fn(
        "undo_deployment",
        move |ctx: NativeCallContext,
              dir: &str,
              reason: &str|
              -> Result<bool, Box<EvalAltResult>> {
            refuse_if_alive(&s, Some(Path::new(dir)), "undo_deployment()")?;
            refuse_if_damaged(Path::new(dir), "undo_deployment()")?;
            crate::primitives::rollback::undo_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "rollback_deployment",
        move |ctx: NativeCallContext, dir: &str, reason: &str| -> Result<(), Box<EvalAltResult>> {
            refuse_if_alive(&s, Some(Path::new(dir)), "rollback_deployment()")?;
            refuse_if_damaged(Path::new(dir), "rollback_deployment()")?;
            crate::primitives::rollback::rollback_deployment(&s, ctx.engine(), dir, reason)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "incident",
        move |title: &str, severity: &str| -> Result<String, Box<EvalAltResult>> {
            open_incident(&s, &st, title, severity)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "incident",
        move |title: &str| -> Result<String, Box<EvalAltResult>> {
            open_incident(&s, &st, title, crate::incident::DEFAULT_SEVERITY)
        },
    );
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn("resolve", move || -> Result<String, Box<EvalAltResult>> {
        resolve(&s, &st, None)
    });
    let (s, st) = (session.clone(), state.clone());
    engine.register_fn(
        "resolve",
        move |cause: &str,
              impact: &str,
              remediation: &str,
              prevention: &str|
              -> Result<String, Box<EvalAltResult>> {
            resolve(
                &s,
                &st,
                Some([cause, impact, remediation, prevention].map(str::to_string)),
            )
        },
    );
}

/// `rollback()`: the attached deployment's standing undo steps, unless its run is alive, or
/// its journal is damaged and the person did not force it (with a reason, recorded).
fn rollback(
    session: &Shared,
    state: &State,
    engine: &Engine,
    force: Option<&str>,
) -> Result<bool, Box<EvalAltResult>> {
    let Some(dir) = state.attached.clone() else {
        return Err(crate::primitives::fail(
            "no deployment attached: start with `runbook repl --last` or `--deployment DIR`",
        ));
    };
    refuse_if_alive(session, Some(&dir), "rollback()")?;
    let mut reason = "rolled back from the REPL".to_string();
    if let Some(damage) = &state.damaged {
        let Some(why) = force else {
            return Err(crate::primitives::fail(format!(
                "`rollback()` refused: the journal `{}` {damage}; {FORCE_HINT}",
                dir.join(crate::journal::FILE_NAME).display()
            )));
        };
        session.record(Record::RollbackForced {
            deployment: dir.display().to_string(),
            damage: damage.to_string(),
            reason: why.to_string(),
            by: crate::identity::user(),
        });
        session.warn(&format!("forced past a damaged journal: {why}"));
        reason = format!("rolled back from the REPL, forced past a damaged journal: {why}");
    }
    if let Some(done) = already_rolled_back(&dir) {
        session.shout(&done);
        return Ok(true);
    }
    crate::primitives::rollback::undo_deployment(
        session,
        engine,
        &dir.display().to_string(),
        &reason,
    )
}

/// When nothing is standing because the deployment was rolled back already: when, by whom.
fn already_rolled_back(dir: &Path) -> Option<String> {
    use crate::journal::Entry;
    let (entries, _) = crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME)).ok()?;
    if !crate::undo::standing(&entries).is_empty() {
        return None;
    }
    let user_of = |entries: &[Entry]| {
        entries
            .iter()
            .find_map(|e| match &e.record {
                Record::RunStart(s) => Some(s.user.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "someone unknown".into())
    };
    let by = |ts: &str, who: String, run: String| {
        format!(
            "`{}` was already rolled back at {} by {who} (run {run}): no undo step is standing",
            dir.display(),
            if ts.is_empty() { "an unknown time" } else { ts }
        )
    };
    if let Some((ts, run)) = entries.iter().rev().find_map(|e| match &e.record {
        Record::UndoExternal(x) if x.ok => Some((e.ts.as_str(), x.by_run.clone())),
        _ => None,
    }) {
        let who = crate::journal::read_entries(&Path::new(&run).join(crate::journal::FILE_NAME))
            .map(|(rs, _)| user_of(&rs))
            .unwrap_or_else(|_| "someone unknown".into());
        return Some(by(ts, who, run));
    }
    let own = entries.iter().rev().find_map(|e| match &e.record {
        Record::EffectResult(r) if r.kind == "undo" && r.ok => Some(e.ts.as_str()),
        _ => None,
    })?;
    Some(by(
        own,
        user_of(&entries),
        format!("{}, its own", dir.display()),
    ))
}

/// What is wrong with a run directory's journal, if anything: a broken hash chain, no records,
/// not a journal at all. A torn last record (the process died while writing it) is not damage.
fn journal_damage(dir: &Path) -> Option<String> {
    match crate::journal::verify(&dir.join(crate::journal::FILE_NAME)) {
        Err(e) => Some(format!("cannot be read: {}", e.summary())),
        Ok(v) => match v.problem {
            Some((_, why)) if why.starts_with("the last record is incomplete") && v.records > 0 => {
                None
            }
            Some((line, why)) => Some(format!("is not intact at line {line}: {why}")),
            None if v.records == 0 => Some("is empty".into()),
            None => None,
        },
    }
}

fn refuse_if_damaged(dir: &Path, action: &str) -> Result<(), Box<EvalAltResult>> {
    match journal_damage(dir) {
        None => Ok(()),
        Some(damage) => Err(crate::primitives::fail(format!(
            "`{action}` refused: the journal `{}` {damage}; attach to it (`runbook repl --deployment {}`) and {}",
            dir.join(crate::journal::FILE_NAME).display(),
            dir.display(),
            FORCE_HINT.trim_start_matches("its undo steps do not run unless forced: ")
        ))),
    }
}

/// The live process holding the lock of the environment `dir` deployed to, if there is one
/// and it is not this process.
/// Without a deployment (`dir` None): the configured environment's lock.
fn live_holder(session: &Session, dir: Option<&Path>) -> Option<crate::lock::Holder> {
    live_lock(session, dir).map(|(_, h)| h)
}

/// `live_holder`, with the backend that holds its lock (to leave it a control request).
fn live_lock(
    session: &Session,
    dir: Option<&Path>,
) -> Option<(Box<dyn crate::lock::Backend>, crate::lock::Holder)> {
    let environment = dir
        .and_then(|d| crate::journal::read(&d.join(crate::journal::FILE_NAME)).ok())
        .and_then(|(records, _)| {
            records.iter().find_map(|r| match Record::from_value(r) {
                Record::LockAcquire { lock } => Some(lock.environment),
                _ => None,
            })
        })
        .unwrap_or_else(|| session.config.config.lock.environment.clone());
    let root = match dir {
        Some(d) => d.parent().unwrap_or(Path::new(".")).to_path_buf(),
        None => crate::options::deployments_root(None, &session.config),
    };
    // The team's lock backend: with etcd or Kubernetes, a run on another machine counts too.
    let backend = crate::lock::open(&session.config.config, &root, session.rt.clone()).ok()?;
    let crate::lock::State::Held(holder) = backend.state(&environment).ok()? else {
        return None;
    };
    let ours = holder.pid == std::process::id() && holder.host == crate::identity::host();
    (!ours && crate::lock::stale(&holder).is_none()).then_some((backend, holder))
}

/// Whether the attached run directory and the lock holder's are the same run. The holder names
/// its run directory as it was given (relative to the holder's working directory, which another
/// operator's REPL does not share): the same path, or the same run directory name.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) if x == y => true,
        _ => a == b || (a.file_name().is_some() && a.file_name() == b.file_name()),
    }
}

/// `abort(reason)`, `pause()`, `resume()`, `promote()`: ask the attached deployment's live run,
/// through its lock backend, as `runbook control` does; the run acts on it itself and journals
/// who asked. A run that is not alive has nobody to ask.
fn control(
    session: &Session,
    state: &State,
    action: crate::lock::control::Action,
    reason: &str,
) -> Result<String, Box<EvalAltResult>> {
    let call = format!("{}()", action.as_str());
    let Some(dir) = &state.attached else {
        return Err(crate::primitives::fail(format!(
            "`{call}`: no deployment attached: start with `runbook repl --last` or `--deployment DIR`"
        )));
    };
    let Some((backend, holder)) = live_lock(session, Some(dir)) else {
        return Err(crate::primitives::fail(format!(
            "`{call}`: the run of `{}` is not alive: there is nobody to ask\n  help: `rollback()` here undoes what it left standing (or `runbook rollback`)",
            dir.display()
        )));
    };
    if !same_dir(Path::new(&holder.run_dir), dir) {
        return Err(crate::primitives::fail(format!(
            "`{call}`: the run of `{}` is not alive; another run holds `{}`: {}",
            dir.display(),
            holder.environment,
            crate::lock::describe(&holder)
        )));
    }
    let request =
        crate::lock::ControlRequest::new(&holder.environment, action, reason, &holder.run_dir);
    backend
        .request_control(&request)
        .map_err(|e| crate::primitives::fail(e.summary()))?;
    let said = format!(
        "asked the run of `{}` to {} ({}); it acts at its next safe point and journals it",
        dir.display(),
        action.as_str(),
        request.by_whom()
    );
    session.say(&said);
    Ok(said)
}

/// The live state of the attached deployment's run, for `status()`: its holder record (stage,
/// traffic, verdict, what live control did) and a control request not yet taken.
fn live_state(session: &Session, dir: &Path) -> Option<(Value, String)> {
    let (backend, holder) = live_lock(session, Some(dir))?;
    if !same_dir(Path::new(&holder.run_dir), dir) {
        return None;
    }
    let pending = backend
        .read_control(&holder.environment)
        .ok()
        .flatten()
        .filter(|r| r.run == holder.run_dir);
    let mut line = format!(
        "live: the run is alive ({} pid {}), stage {}",
        holder.who(),
        holder.pid,
        holder.stage.as_deref().unwrap_or("-")
    );
    if let Some(c) = &holder.control {
        line.push_str(&format!(
            "; {} by {}",
            c["state"].as_str().unwrap_or("controlled"),
            c["by"].as_str().unwrap_or("someone")
        ));
        if let Some(r) = c["reason"].as_str().filter(|r| !r.is_empty()) {
            line.push_str(&format!(": {r}"));
        }
    }
    if let Some(r) = &pending {
        line.push_str(&format!(
            "; {} asked {}, not yet taken",
            r.action.as_str(),
            r.by_whom()
        ));
    }
    let v = json!({
        "alive": true,
        "pid": holder.pid,
        "by": holder.who(),
        "stage": holder.stage,
        "traffic": holder.traffic,
        "verdict": holder.verdict,
        "control": holder.control,
        "pending": pending.map(|r| json!({ "action": r.action.as_str(), "by": r.by, "reason": r.reason })),
    });
    Some((v, line))
}

/// A journal has one writer at a time: an action that would change a deployment whose run (or
/// another run in its environment) is alive is refused, naming the holder and how to stop it.
fn refuse_if_alive(
    session: &Session,
    dir: Option<&Path>,
    action: &str,
) -> Result<(), Box<EvalAltResult>> {
    let Some(holder) = live_holder(session, dir) else {
        return Ok(());
    };
    let same = same_dir;
    let ask = matches!(dir, Some(d) if same(Path::new(&holder.run_dir), d));
    let whose = match dir {
        Some(d) if same(Path::new(&holder.run_dir), d) => {
            format!("the run of `{}` is still alive", d.display())
        }
        Some(d) => format!(
            "another run holds the lock of `{}`, the environment `{}` deployed to",
            holder.environment,
            d.display()
        ),
        None => format!("another run holds the lock of `{}`", holder.environment),
    };
    let stop = if holder.host == crate::identity::host() {
        format!("`kill -INT {}`", holder.pid)
    } else {
        format!("`kill -INT {}` on {}", holder.pid, holder.host)
    };
    session.record(Record::ReplRefused {
        action: action.to_string(),
        deployment: dir.map(|d| d.display().to_string()),
        holder: holder.clone(),
    });
    Err(crate::primitives::fail(format!(
        "`{action}` refused: {whose}: {}\n  help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or {stop}; it offers its own rollback), then try again here{}",
        crate::lock::describe(&holder),
        if ask {
            "\n  help: or ask the run from here: `abort(\"why\")` and it rolls back itself; `pause()`, `resume()`, `promote()`"
        } else {
            ""
        }
    )))
}

fn status(session: &Shared, state: &State) -> Result<Dynamic, Box<EvalAltResult>> {
    let Some(dir) = &state.attached else {
        return Err(crate::primitives::fail(
            "no deployment attached: start with `runbook repl --last` or `--deployment DIR`",
        ));
    };
    let (records, _) = crate::journal::read(&dir.join(crate::journal::FILE_NAME))
        .map_err(|e| crate::primitives::fail(e.summary()))?;
    let (mut v, lines) = crate::artifacts::status(dir, &records, state.damaged.as_deref());
    for line in lines {
        session.shout(&line);
    }
    // A run still alive: what it says now, from its lock (its journal is its own to write).
    if let Some((live, line)) = live_state(session, dir) {
        session.shout(&line);
        v["live"] = live;
    }
    Ok(crate::opts::from_json(&v))
}

fn open_incident(
    session: &Shared,
    state: &State,
    title: &str,
    severity: &str,
) -> Result<String, Box<EvalAltResult>> {
    let severity = crate::incident::severity(severity).map_err(crate::primitives::fail)?;
    let open = state.incident().as_ref().map(|i| i.title.clone());
    if let Some(open) = open {
        let question = format!(
            "The incident `{open}` is still open. Write it as abandoned and open `{title}`?"
        );
        match crate::primitives::prompt::offer(session, "incident-replace", &question) {
            Some(true) => {
                close(
                    session,
                    state,
                    Closed::Abandoned(format!("replaced by the incident `{title}`")),
                )?;
            }
            Some(false) => {
                return Err(crate::primitives::fail(format!(
                    "kept the incident `{open}` open"
                )))
            }
            None => {
                return Err(crate::primitives::fail(format!(
                    "the incident `{open}` is still open: resolve() it before opening another"
                )))
            }
        }
    }
    let root = crate::options::deployments_root(None, &session.config);
    let (id, dir) = crate::incident::claim(&root).map_err(crate::primitives::fail)?;
    let opened = crate::journal::now_rfc3339();
    session.record(Record::IncidentOpen {
        id: id.clone(),
        title: title.to_string(),
        severity: severity.to_string(),
        dir: dir.display().to_string(),
    });
    *state.incident() = Some(Incident {
        id: id.clone(),
        dir,
        title: title.to_string(),
        severity: severity.clone(),
        opened,
        attached: state.attached.clone(),
    });
    Ok(format!("incident {id} open: {title} ({severity}); the session's commands and effects go into its timeline; resolve() writes the report"))
}

fn resolve(
    session: &Shared,
    state: &State,
    given: Option<[String; 4]>,
) -> Result<String, Box<EvalAltResult>> {
    if state.incident().is_none() {
        return Err(crate::primitives::fail(
            "no incident is open: incident(title, severity) opens one",
        ));
    }
    let answers = match given {
        Some(a) => a,
        None => {
            let ask = |q: &str, id: &str| -> Result<String, Box<EvalAltResult>> {
                crate::primitives::prompt::ask_input(session, q, "", id)
            };
            [
                ask("Root cause", "incident-root-cause")?,
                ask("Impact assessment", "incident-impact")?,
                ask("Remediation steps", "incident-remediation")?,
                ask("Prevention measures", "incident-prevention")?,
            ]
        }
    };
    let path = close(session, state, Closed::Resolved(answers))?;
    Ok(format!("incident resolved; report: {}", path.display()))
}

/// Write the open incident's report (through the gate; never over an existing file) and close
/// it. On failure it stays open.
fn close(session: &Session, state: &State, closed: Closed) -> Result<PathBuf, Box<EvalAltResult>> {
    let Some(incident) = state.incident().take() else {
        return Err(crate::primitives::fail("no incident is open"));
    };
    let journal = session.effects.borrow().journal_path().to_path_buf();
    let md = session.redact(&incident.render(&journal, &closed));
    let path = incident.report_path();
    let shown = path.display().to_string();
    let written = session.gate(
        "write_file",
        &shown,
        json!({ "path": shown, "bytes": md.len() }),
        || json!({ "planned": true }),
        || {
            crate::incident::write_new(&path, &md)?;
            Ok(json!({ "written": md.len() }))
        },
    );
    if let Err(e) = written {
        *state.incident() = Some(incident);
        return Err(crate::primitives::gate_error(session, e));
    }
    let close = |why| crate::record::IncidentClose {
        id: incident.id.clone(),
        title: incident.title.clone(),
        report: shown.clone(),
        why,
        error: None,
    };
    session.record(match &closed {
        Closed::Resolved(_) => Record::IncidentResolve(close(None)),
        Closed::Abandoned(why) => Record::IncidentAbandon(close(Some(why.clone()))),
    });
    Ok(path)
}
