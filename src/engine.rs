//! The Rhai engine: strict variables, limits from config, the primitives, module resolution, and
//! the translation of Rhai's errors into ours (file:line:col, call sites, did-you-mean).

use std::path::PathBuf;

use rhai::{Engine, EvalAltResult, ParseErrorType, Position};

use crate::error::{Error, Location};
use crate::modules::{Resolver, Sources};
use crate::session::{Shared, Stop};

pub fn build(session: &Shared, sources: &Sources, base: PathBuf) -> Engine {
    let mut engine = Engine::new();
    let limits = &session.config.config.limits;
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);
    engine.set_max_operations(limits.operations);
    engine.set_max_call_levels(limits.call_depth);
    engine.set_max_expr_depths(limits.expr_depth, limits.expr_depth);
    engine.set_max_string_size(limits.string_size);
    engine.set_max_array_size(limits.array_size);
    engine.set_max_map_size(limits.map_size);
    engine.set_module_resolver(Resolver::new(sources.clone(), base));
    // Rhai checks the size of a map built in one go, but not of one grown key by key
    // (`m[k] = v` checks the item only): check a map's length whenever the script reads it.
    let max_map = limits.map_size;
    #[allow(deprecated)] // Rhai marks on_var "volatile", not deprecated.
    engine.on_var(move |name, _index, ctx| {
        if max_map > 0 {
            if let Some(len) = ctx
                .scope()
                .get(name)
                .and_then(|v| v.read_lock::<rhai::Map>().map(|m| m.len()))
            {
                if len > max_map {
                    return Err(EvalAltResult::ErrorDataTooLarge(
                        "Size of object map".into(),
                        Position::NONE,
                    )
                    .into());
                }
            }
        }
        Ok(None)
    });
    crate::primitives::register(&mut engine, session);

    let s = session.clone();
    engine.on_print(move |text| crate::primitives::helpers::log(&s, text));
    let s = session.clone();
    engine.on_debug(move |text, source, pos| {
        let at = match (source, pos.line()) {
            (Some(src), Some(l)) => format!("{src}:{l}: "),
            (None, Some(l)) => format!("line {l}: "),
            _ => String::new(),
        };
        crate::primitives::helpers::log(&s, &format!("{at}{text}"));
    });
    let s = session.clone();
    engine.on_progress(move |ops| {
        // Checked every few hundred operations: a loop that never calls a primitive still stops.
        if ops % 512 == 0 {
            if s.interrupt.is_set() {
                *s.stop.borrow_mut() = Some(Stop::Interrupted);
                return Some(rhai::Dynamic::UNIT);
            }
            if let Some(limit) = s.out_of_time() {
                *s.stop.borrow_mut() = Some(Stop::TimeLimit(limit));
                return Some(rhai::Dynamic::UNIT);
            }
        }
        None
    });
    engine
}

/// A one-line description of a Rhai error, for the journal and for undo failures.
pub fn describe_runtime_error(err: &EvalAltResult) -> String {
    let (msg, _) = innermost(err);
    msg
}

fn innermost(err: &EvalAltResult) -> (String, Position) {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => (message_of(other), other.position()),
    }
}

fn message_of(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorParsing(p, _) => parse_message(p),
        EvalAltResult::ErrorTooManyOperations(_) => {
            "the script ran past its operation limit (`limits.operations`): is there an endless loop?".into()
        }
        EvalAltResult::ErrorStackOverflow(_) => "the script called functions too deeply (`limits.call_depth`)".into(),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!("{what} grew past its limit (see `limits` in runbook.yaml)"),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            format!("no function `{}`", sig.split([' ', '(']).next().unwrap_or(sig))
        }
        EvalAltResult::ErrorVariableNotFound(name, _) => format!("variable `{name}` is not defined"),
        EvalAltResult::ErrorPropertyNotFound(name, _) => format!("the map has no property `{name}`"),
        other => strip_position(&other.to_string()),
    }
}

/// Rhai appends " (line L, position P)"; we show the place ourselves, with the source line.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" (line ") {
        Some(i) if msg.ends_with(')') => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

fn parse_message(p: &ParseErrorType) -> String {
    match p {
        ParseErrorType::VariableUndefined(name) => format!("variable `{name}` is not defined"),
        other => other.to_string(),
    }
}

/// Turn a Rhai error into ours, following function calls and imports to where it was raised.
pub fn script_error(err: &EvalAltResult, main: &str, sources: &Sources, compile: bool) -> Error {
    let mut sites = Vec::new();
    let mut file = main.to_string();
    let mut cur = err;
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(_, src, inner, pos) => {
                push_site(&mut sites, sources, &file, *pos);
                if !src.is_empty() {
                    file = src.clone();
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                push_site(&mut sites, sources, &file, *pos);
                file = name.clone();
                cur = inner;
            }
            _ => break,
        }
    }
    let message = message_of(cur);
    let location = location(sources, &file, cur.position());
    let suggestion = suggest(cur, sources, &file);
    let is_compile = compile || matches!(cur, EvalAltResult::ErrorParsing(..));
    Error::Script(Box::new(crate::error::ScriptError {
        message,
        location,
        call_sites: sites,
        suggestion,
        help: None,
        is_compile,
    }))
}

/// An error found in the script before it runs (exit 2), at `pos` in `file`, with what to do.
pub fn error_at(
    sources: &Sources,
    file: &str,
    pos: Position,
    message: String,
    help: String,
) -> Error {
    Error::Script(Box::new(crate::error::ScriptError {
        message,
        location: location(sources, file, pos),
        call_sites: Vec::new(),
        suggestion: None,
        help: Some(help),
        is_compile: true,
    }))
}

pub fn parse_error(err: &rhai::ParseError, file: &str, sources: &Sources) -> Error {
    let e: Box<EvalAltResult> = err.clone().into();
    script_error(&e, file, sources, true)
}

fn push_site(sites: &mut Vec<Location>, sources: &Sources, file: &str, pos: Position) {
    if let Some(l) = location(sources, file, pos) {
        sites.push(l);
    }
}

fn location(sources: &Sources, file: &str, pos: Position) -> Option<Location> {
    let line = pos.line()?;
    Some(Location {
        file: file.to_string(),
        line,
        column: pos.position().unwrap_or(1),
        source_line: sources.line(file, line),
    })
}

fn suggest(err: &EvalAltResult, sources: &Sources, file: &str) -> Option<String> {
    match err {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split([' ', '(']).next().unwrap_or(sig);
            let mut names: Vec<String> =
                crate::catalogue::names(crate::catalogue::Scope::Everywhere);
            if let Some(text) = sources.text(file) {
                names.extend(fn_names(&text));
            }
            crate::error::did_you_mean(
                name,
                names.iter().map(String::as_str).filter(|n| *n != name),
            )
        }
        EvalAltResult::ErrorParsing(ParseErrorType::VariableUndefined(name), _)
        | EvalAltResult::ErrorVariableNotFound(name, _) => {
            let text = sources.text(file)?;
            let words = identifiers(&text);
            crate::error::did_you_mean(name, words.iter().map(String::as_str).filter(|w| w != name))
        }
        _ => None,
    }
}

fn identifiers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            w.len() > 1
                && w.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The names of the functions a Rhai source defines (for suggestions and completion).
pub fn fn_names(text: &str) -> Vec<String> {
    text.split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
        .collect()
}
