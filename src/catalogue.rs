//! One catalogue of what a script can call: every primitive with its overloads (in Rhai's
//! definition-file syntax) and a one-line summary, the REPL's own functions, and the stdlib
//! modules' public functions, read with their `///` docs from the shipped sources.
//!
//! Did-you-mean, the REPL's `:help` and Tab completion, the README's table of primitives and
//! `runbook definitions` all come from here. A test holds it against the functions the engine
//! really has registered, in both directions.

use std::path::Path;

use crate::error::Error;
use crate::ui::Ui;

/// Where a function can be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In runbooks and in the REPL.
    Everywhere,
    /// Only at the REPL's prompt.
    Repl,
}

/// A function the binary provides.
#[derive(Debug)]
pub struct Native {
    pub name: &'static str,
    /// Every overload, as in a Rhai definition file: `sh(cmd: ?, opts: map) -> map`.
    pub overloads: &'static [&'static str],
    pub summary: &'static str,
    pub scope: Scope,
}

const fn f(
    name: &'static str,
    overloads: &'static [&'static str],
    summary: &'static str,
) -> Native {
    Native {
        name,
        overloads,
        summary,
        scope: Scope::Everywhere,
    }
}

const fn repl(
    name: &'static str,
    overloads: &'static [&'static str],
    summary: &'static str,
) -> Native {
    Native {
        name,
        overloads,
        summary,
        scope: Scope::Repl,
    }
}

/// Every native function, in the order `:help` lists them.
pub const NATIVE: &[Native] = &[
    f("sh", &["sh(cmd: ?) -> map", "sh(cmd: ?, opts: map) -> map"],
      "run a command (a string through sh -c, an array without a shell; stdin is /dev/null); returns #{code, stdout, stderr, duration, ok, timed_out, truncated, attempts}"),
    f("check", &["check(spec: map) -> map"], "one health check (#{http|tcp|cmd, ...}) with timeout and retries"),
    f("check_all", &["check_all(specs: array) -> array"], "health checks, concurrently, with a summary table"),
    f("http", &["http(method: string, url: string) -> map", "http(method: string, url: string, body: ?) -> map", "http(method: string, url: string, body: ?, opts: map) -> map"],
      "one HTTP request; returns #{status, body, json, ms}"),
    f("scrape", &["scrape(url: string) -> array", "scrape(url: string, opts: map) -> array"], "read a Prometheus text endpoint as samples"),
    f("measure", &["measure(provider: map) -> ?", "measure(provider: map, labels: map) -> ?"], "read one metric provider (#{prometheus|scrape|http|command|check: #{...}}) once: a number, or () for no data; labels #{metric, version} name the reading"),
    f("probe", &["probe(provider: map) -> map", "probe(provider: map, labels: map) -> map"], "read a metric provider once and say what came back: #{outcome, value, why, source}; labels #{metric, version} name the reading"),
    f("analyze", &["analyze(spec: map) -> map"], "measure metrics every interval and judge them: #{verdict, healthy, reason, metrics}"),
    f("samples", &["samples(spec: map) -> array"], "a Prometheus range query's points (#{prometheus: #{url, query, range}}), for judge"),
    f("judge", &["judge(spec: map) -> map"], "canary against baseline (#{metrics: [#{name, canary, baseline, ...}]}): Mann-Whitney U per metric, weighted score"),
    f("success_criteria", &["success_criteria() -> array"], "the Success Criteria from what this run recorded: passed, not measured, overridden or failed"),
    f("override_verdict", &["override_verdict(o: map)"], "record that a person (or the config) let an unhealthy window through (#{verdict, reason[, by]})"),
    f("notify", &["notify(channel: ?, message: string) -> bool"], "send to a channel (or an array of channels) configured in runbook.yaml"),
    f("confirm", &["confirm(question: string) -> bool", "confirm(question: string, opts: map) -> bool"], "ask yes or no"),
    f("choose", &["choose(question: string, options: array) -> string", "choose(question: string, options: array, opts: map) -> string"], "a numbered menu; returns the option chosen"),
    f("input", &["input(question: string, default: string) -> string", "input(question: string, default: string, opts: map) -> string"], "ask for text (--yes takes the default)"),
    f("checklist", &["checklist(title: string, items: array) -> array", "checklist(title: string, items: array, opts: map) -> array"], "ask each item yes or no; returns the unchecked ones"),
    f("approve", &["approve(request: map) -> bool"], "a critical approval gate (#{feature, changes, risk, rollback_time}): a person, --approve, or an answer"),
    f("decline", &["decline(reason: string)"], "end the run at a gate, exit 4"),
    f("config_error", &["config_error(key: string, message: string)"], "end the run as a configuration error (exit 2 before anything changed)"),
    f("precondition_failed", &["precondition_failed(message: string)"], "end the run: something it needs is not there (exit 2 before anything changed)"),
    f("stage", &["stage(name: string, body: Fn) -> ?"], "a named, timed section in the output, the journal and the artifacts"),
    f("on_rollback", &["on_rollback(label: string, action: ?)"], "register an undo (a command, or #{function, args})"),
    f("rollback", &["rollback(reason: string)", "rollback(reason: string, opts: map)"], "undo this run's steps, last in first out, and end it (exit 3; #{broken: true}: exit 5)"),
    f("discard_rollback", &["discard_rollback(label: string) -> int"], "drop an undo that no longer applies"),
    f("rollback_stack", &["rollback_stack() -> array"], "the undo steps this session registered"),
    f("rollback_deployment", &["rollback_deployment(dir: string, reason: string)"], "roll a past run back from its journal, then end this run"),
    f("undo_deployment", &["undo_deployment(dir: string, reason: string) -> bool"], "carry out a past run's standing undo steps; returns whether all succeeded"),
    f("deployments", &["deployments() -> array"], "past run directories, oldest first"),
    f("standing_undos", &["standing_undos(dir: string) -> array"], "the undo steps a past run left standing"),
    f("dashboard", &["dashboard(frame: map)"], "draw the Deployment Monitor"),
    f("measurement", &["measurement(m: map)"], "record a measurement (monitoring-snapshot.json)"),
    f("verdict", &["verdict(v: map)"], "record a verdict (monitoring-snapshot.json)"),
    f("traffic", &["traffic(change: map)"], "record an adapter's traffic change (#{weights, colour}): which version takes what share"),
    f("set_strategy", &["set_strategy(label: string)"], "record the strategy chosen (the artifacts show it)"),
    f("strategy", &["strategy() -> ?"], "the strategy chosen at the menu (its label), or ()"),
    f("shell_quote", &["shell_quote(value: ?) -> string"], "the value as one shell word (quoted only when it must be)"),
    f("write_file", &["write_file(path: string, text: string)"], "write a file (a planned effect in a dry run)"),
    f("append_file", &["append_file(path: string, text: string)"], "append to a file (a planned effect in a dry run)"),
    f("deprecated", &["deprecated(old: string, new: string)"], "warn, once per run, that a form still works but has a successor (journaled)"),
    f("defines", &["defines(module: string, name: string, arity: int) -> bool"], "whether a module, found as `import` finds it, defines a public function of that name and arity"),
    f("call_home", &["call_home(f: Fn, args: array) -> ?"], "call a function pointer with the functions of the file that made it first in line (how workflow::run calls a team's step)"),
    f("interactive", &["interactive() -> bool"], "whether a person is at the terminal"),
    f("secret", &["secret(name: string) -> string"], "a secret from the config's secrets (redacted everywhere)"),
    f("feature", &["feature() -> string"], "the feature being deployed"),
    f("config", &["config() -> ?", "config(path: string) -> ?", "config(path: string, default: ?) -> ?"], "the team config: the whole map, or the value at a dotted path"),
    f("env", &["env(name: string) -> string", "env(name: string, default: string) -> string"], "an environment variable"),
    f("dry_run", &["dry_run() -> bool"], "whether this is a dry run"),
    f("run_dir", &["run_dir() -> string"], "this run's directory"),
    f("duration", &["duration(value: ?) -> int"], "a duration (\"5s\", \"2m\") in milliseconds"),
    f("sleep", &["sleep(duration: ?)"], "wait (\"5s\"); Ctrl-C stops it"),
    f("now", &["now() -> string"], "the time, RFC 3339"),
    f("timestamp_ms", &["timestamp_ms() -> int"], "milliseconds since the epoch"),
    f("log", &["log(message: ?)"], "a line in the log and the journal"),
    repl("status", &["status() -> ?"], "the attached deployment: strategy, stages, traffic, verdicts, undo steps standing"),
    repl("abort", &["abort(reason: string) -> string"], "ask the attached deployment's live run to roll back (it acts itself, journaling who asked and why)"),
    repl("pause", &["pause() -> string", "pause(reason: string) -> string"], "ask the attached deployment's live run to hold at its current traffic"),
    repl("resume", &["resume() -> string", "resume(reason: string) -> string"], "ask the attached deployment's paused run to go on"),
    repl("promote", &["promote() -> string", "promote(reason: string) -> string"], "ask the attached deployment's live run to skip its remaining windows and complete the rollout"),
    repl("rollback", &["rollback() -> bool", "rollback(opts: map) -> bool"], "roll the attached deployment back: its undo steps, last in first out (#{force: why} when its run is alive)"),
    repl("incident", &["incident(title: string) -> string", "incident(title: string, severity: string) -> string"], "open an incident (severity critical, high, medium or low; default medium): the session's commands and effects go into its timeline"),
    repl("resolve", &["resolve() -> string", "resolve(cause: string, impact: string, remediation: string, prevention: string) -> string"], "close the incident and write incident-report.md"),
    repl("scale", &["scale(count: ?) -> ?"], "emergency: add serving instances through the adapter"),
    repl("maintenance", &["maintenance(on: ?) -> ?"], "emergency: maintenance mode on or off"),
    repl("attached_versions", &["attached_versions() -> array"], "the versions in play: configured, and those the deployment sent traffic to"),
];

/// Rhai's own functions a runbook uses most, with how runbook shows them: for `:help`, and for
/// "did you mean" on a mistyped name.
pub const LANGUAGE_DOCS: &[(&str, &str, &str)] = &[
    (
        "print",
        "print(message)",
        "a line on the terminal and in the log (not with -q)",
    ),
    (
        "debug",
        "debug(value)",
        "the value as Rhai shows it, with the file and line, in the log",
    ),
];

/// The names of `LANGUAGE_DOCS`.
pub const LANGUAGE: &[&str] = &["print", "debug"];

/// A stdlib module's public function, read from the shipped source.
#[derive(Debug, Clone)]
pub struct ModuleFn {
    pub module: String,
    pub name: String,
    pub params: Vec<String>,
    /// Its `///` doc comment, without the slashes.
    pub doc: String,
}

impl ModuleFn {
    /// The doc's first sentence, for one-line lists.
    pub fn summary(&self) -> &str {
        match self.doc.find(". ") {
            Some(i) => &self.doc[..=i],
            None => &self.doc,
        }
    }

    pub fn signature(&self) -> String {
        format!("{}::{}({})", self.module, self.name, self.params.join(", "))
    }
}

/// The stdlib modules' public functions (the emergency module's are globals in the REPL).
pub fn stdlib() -> Vec<ModuleFn> {
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(0, 0);
    let mut out = Vec::new();
    for (file, text) in crate::embedded::STDLIB {
        let module = file.trim_end_matches(".rhai");
        let ast = match engine.compile(text) {
            Ok(ast) => ast,
            Err(_) => continue, // a shipped module that does not compile fails its own tests
        };
        let mut fns: Vec<_> = ast.iter_functions().collect();
        fns.sort_by_key(|f| f.name);
        for f in fns {
            // Private helpers and closures (`anon$...`) are not the module's interface.
            if f.access == rhai::FnAccess::Private || f.name.starts_with("anon$") {
                continue;
            }
            let doc = f
                .comments
                .iter()
                .flat_map(|c| c.lines())
                .map(|l| {
                    l.trim()
                        .trim_start_matches("///")
                        .trim_start_matches("/**")
                        .trim_end_matches("*/")
                        .trim()
                })
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            out.push(ModuleFn {
                module: module.to_string(),
                name: f.name.to_string(),
                params: f.params.iter().map(|p| p.to_string()).collect(),
                doc,
            });
        }
    }
    out
}

/// The native functions callable in `scope` (the REPL has both kinds).
pub fn natives(scope: Scope) -> impl Iterator<Item = &'static Native> {
    NATIVE
        .iter()
        .filter(move |n| scope == Scope::Repl || n.scope == Scope::Everywhere)
}

/// The names a mistyped function may have meant, in runbooks (`Everywhere`) or at the REPL
/// (where the emergency module's functions are globals too).
pub fn names(scope: Scope) -> Vec<String> {
    let mut out: Vec<String> = natives(scope).map(|n| n.name.to_string()).collect();
    out.extend(LANGUAGE.iter().map(|s| s.to_string()));
    if scope == Scope::Repl {
        out.extend(
            stdlib()
                .into_iter()
                .filter(|m| m.module == "emergency")
                .map(|m| m.name),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// One line for `:help`: the overloads folded into one (`sh(cmd[, opts])`).
pub fn short_signature(n: &Native) -> String {
    let params = |o: &str| -> Vec<String> {
        let inner = o
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(p, _)| p)
            .unwrap_or("");
        inner
            .split(',')
            .map(|p| p.split(':').next().unwrap_or("").trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let all: Vec<Vec<String>> = n.overloads.iter().map(|o| params(o)).collect();
    let fewest = all.iter().map(Vec::len).min().unwrap_or(0);
    let longest = all
        .iter()
        .max_by_key(|p| p.len())
        .cloned()
        .unwrap_or_default();
    let mut s = format!("{}(", n.name);
    for (i, p) in longest.iter().enumerate() {
        if i == fewest && i > 0 {
            s.push('[');
            s.push_str(", ");
        } else if i == fewest {
            s.push('[');
        } else if i > 0 {
            s.push_str(", ");
        }
        s.push_str(p);
    }
    if longest.len() > fewest {
        s.push(']');
    }
    s.push(')');
    s
}

/// The definition files, (file name, text): Rhai's built-in functions and operators and its
/// standard packages, then runbook's primitives (REPL-only ones marked) and one file per stdlib
/// module.
pub fn definition_files() -> Vec<(String, String)> {
    let plain = rhai::Engine::new();
    let defs = plain.definitions().with_headers(true);
    let mut files = vec![
        ("__builtin__.d.rhai".to_string(), defs.builtin_functions()),
        (
            "__builtin-operators__.d.rhai".to_string(),
            defs.builtin_functions_operators(),
        ),
        ("__static__.d.rhai".to_string(), defs.static_module()),
    ];
    let mut text = String::from(
        "module static;\n\n// runbook's primitives: generated by `runbook definitions` from its catalogue.\n",
    );
    for n in NATIVE {
        let only = if n.scope == Scope::Repl {
            " (at the REPL only)"
        } else {
            ""
        };
        for o in n.overloads {
            text.push_str(&format!("\n/// {}{only}\nfn {o};\n", n.summary));
        }
    }
    files.push(("runbook.d.rhai".to_string(), text));
    let mut by_module: std::collections::BTreeMap<String, Vec<ModuleFn>> = Default::default();
    for m in stdlib() {
        by_module.entry(m.module.clone()).or_default().push(m);
    }
    for (module, fns) in by_module {
        let mut text = format!(
            "module {module};\n\n// stdlib/{module}.rhai: `import \"stdlib/{module}\" as {module};`\n"
        );
        for f in fns {
            text.push('\n');
            for line in f.doc.lines().filter(|l| !l.is_empty()) {
                text.push_str(&format!("/// {line}\n"));
            }
            text.push_str(&format!(
                "fn {}({});\n",
                f.name,
                f.params
                    .iter()
                    .map(|p| format!("{p}: ?"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        files.push((format!("{module}.d.rhai"), text));
    }
    files
}

/// `runbook definitions DIR`.
pub fn write_definitions(ui: &Ui, dir: &Path) -> Result<i32, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let files = definition_files();
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    }
    println!(
        "{} {} definition files in {} (primitives: runbook.d.rhai; stdlib modules: one file each)",
        ui.green("wrote"),
        files.len(),
        dir.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// (name, parameter types) of every function the engine has registered beyond Rhai's own,
    /// in the catalogue's type names.
    fn registered(engine: &rhai::Engine) -> BTreeSet<(String, Vec<String>)> {
        engine
            .gen_fn_signatures(false)
            .into_iter()
            .filter_map(|sig| {
                let (name, rest) = sig.split_once('(')?;
                if name.starts_with("anon$") {
                    return None; // a closure the emergency module defines
                }
                let params = rest.split_once(')')?.0;
                let types = params
                    .split(", ")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let t = p.rsplit_once(": ").map(|(_, t)| t).unwrap_or("?");
                        match t {
                            "types::dynamic::Dynamic" | "Dynamic" => "?".to_string(),
                            "i64" => "int".to_string(),
                            other => other.to_string(),
                        }
                    })
                    .collect();
                Some((name.to_string(), types))
            })
            .collect()
    }

    /// (name, parameter types) of every `fn` line of a definition file's text.
    fn defined(text: &str) -> BTreeSet<(String, Vec<String>)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("fn "))
            .map(|o| {
                let (name, rest) = o.split_once('(').unwrap();
                let params = rest.rsplit_once(')').unwrap().0;
                let types = params
                    .split(", ")
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split_once(": ").unwrap().1.to_string())
                    .collect();
                (name.to_string(), types)
            })
            .collect()
    }

    /// What `runbook definitions` writes for the primitives, split at the REPL-only ones.
    fn definitions() -> (String, String) {
        let files = definition_files();
        let text = &files.iter().find(|(n, _)| n == "runbook.d.rhai").unwrap().1;
        let mut everywhere = String::new();
        let mut repl_only = String::new();
        let mut last_doc = "";
        for line in text.lines() {
            if line.starts_with("///") {
                last_doc = line;
            } else if line.starts_with("fn ") {
                let to = if last_doc.ends_with("(at the REPL only)") {
                    &mut repl_only
                } else {
                    &mut everywhere
                };
                to.push_str(line);
                to.push('\n');
            }
        }
        (everywhere, repl_only)
    }

    fn catalogued(scope: Scope) -> BTreeSet<(String, Vec<String>)> {
        let (everywhere, repl_only) = definitions();
        let mut out = defined(&everywhere);
        if scope == Scope::Repl {
            out.extend(defined(&repl_only));
        }
        out
    }

    fn engines() -> (rhai::Engine, rhai::Engine, tokio::runtime::Runtime) {
        let ui = Ui::new(
            crate::ui::ColorChoice::Never,
            crate::ui::LogFormat::Text,
            crate::ui::Verbosity::Normal,
        );
        let build = || {
            crate::runner::build(
                &ui,
                crate::config::Loaded::default(),
                crate::answers::Answers::load(None).unwrap(),
                "catalogue".into(),
                "catalogue.rhai".into(),
                ".".into(),
                true,
            )
            .unwrap()
        };
        let runbook = build();
        let mut repl = build();
        crate::repl::register_detached(&mut repl.engine, &repl.session, &repl.sources);
        (runbook.engine, repl.engine, runbook.runtime)
    }

    #[test]
    fn the_definitions_and_the_registered_functions_agree_both_ways() {
        let (runbook, repl, _rt) = engines();
        let in_runbooks = registered(&runbook);
        let want = catalogued(Scope::Everywhere);
        let missing: Vec<_> = in_runbooks.difference(&want).collect();
        let stale: Vec<_> = want.difference(&in_runbooks).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "registered but not in the catalogue: {missing:?}\nin the catalogue but not registered: {stale:?}"
        );

        // At the REPL: the same, its own, and the emergency module's functions as globals.
        let mut want = catalogued(Scope::Repl);
        for m in stdlib().into_iter().filter(|m| m.module == "emergency") {
            want.insert((m.name.clone(), vec!["?".to_string(); m.params.len()]));
        }
        let mut at_repl = registered(&repl);
        // The stdlib's scale and maintenance, wrapped by the REPL's own (catalogued) ones.
        at_repl.retain(|(n, _)| !n.starts_with("stdlib_"));
        let missing: Vec<_> = at_repl.difference(&want).collect();
        let stale: Vec<_> = want.difference(&at_repl).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "REPL: registered but not in the catalogue: {missing:?}\nin the catalogue but not registered: {stale:?}"
        );
    }

    #[test]
    fn every_public_stdlib_function_has_its_definition() {
        let files = definition_files();
        for m in stdlib() {
            let text = &files
                .iter()
                .find(|(n, _)| *n == format!("{}.d.rhai", m.module))
                .unwrap_or_else(|| panic!("no definition file for {}", m.module))
                .1;
            let want = (m.name.clone(), vec!["?".to_string(); m.params.len()]);
            assert!(
                defined(text).contains(&want),
                "{}: {want:?}\n{text}",
                m.module
            );
        }
        // and the module's interface only: no private helper, no closure.
        let monitor = &files.iter().find(|(n, _)| n == "monitor.d.rhai").unwrap().1;
        assert!(monitor.contains("fn watch(adapter_name: ?, version: ?, label: ?, env: ?);"));
        assert!(
            !monitor.contains("fill_version") && !monitor.contains("anon$"),
            "{monitor}"
        );
    }

    #[test]
    fn language_names_match_their_docs() {
        let documented: Vec<&str> = LANGUAGE_DOCS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(documented, LANGUAGE);
    }

    #[test]
    fn short_signatures_fold_the_overloads() {
        let by = |n: &str| NATIVE.iter().find(|x| x.name == n).unwrap();
        assert_eq!(short_signature(by("sh")), "sh(cmd[, opts])");
        assert_eq!(short_signature(by("config")), "config([path, default])");
        assert_eq!(short_signature(by("now")), "now()");
        assert_eq!(
            short_signature(by("http")),
            "http(method, url[, body, opts])"
        );
    }
}
