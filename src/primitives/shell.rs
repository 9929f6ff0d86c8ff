//! `sh(cmd)` and `sh(cmd, opts)`: run a command, stream its output, return what it did.

use std::time::Duration;

use rhai::{Dynamic, Map};
use serde_json::json;

use super::{fail, gate_error, Opts, RhaiResult};
use crate::effects::Failure;
use crate::process::{Outcome, Program, Runner, Spec};
use crate::session::{GateError, Gated, Session, Shared, Stop};
use serde_json::Value;

const OPTIONS: &[&str] = &[
    "timeout",
    "env",
    "cwd",
    "retries",
    "backoff",
    "allow_fail",
    "quiet",
    "name",
];

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("sh", move |cmd: Dynamic| sh(&s, cmd, &Map::new()));
    let s = session.clone();
    engine.register_fn("sh", move |cmd: Dynamic, opts: Map| sh(&s, cmd, &opts));
}

pub fn program_of(cmd: &Dynamic) -> RhaiResult<Program> {
    if cmd.is_string() {
        let line = cmd.to_string();
        if line.trim().is_empty() {
            return Err(fail("`sh` was given an empty command"));
        }
        return Ok(Program::Line(line));
    }
    if let Some(items) = cmd.read_lock::<rhai::Array>() {
        let argv: Vec<String> = items
            .iter()
            .map(|a| {
                if a.is_string() {
                    Ok(a.to_string())
                } else {
                    Err(a.type_name())
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|t| fail(format!("`sh` arguments must all be strings; one is {t}")))?;
        if argv.is_empty() {
            return Err(fail("`sh` was given an empty argument list"));
        }
        return Ok(Program::Argv(argv));
    }
    Err(fail(format!(
        "`sh` takes a command line (string) or a program with arguments (array), not {}",
        cmd.type_name()
    )))
}

fn sh(session: &Session, cmd: Dynamic, opts: &Map) -> RhaiResult<Map> {
    let program = program_of(&cmd)?;
    let o = Opts::new(opts, "sh", OPTIONS)?;
    let mut env = Vec::new();
    if let Some(e) = o.get("env") {
        let m = e
            .read_lock::<Map>()
            .ok_or_else(|| fail("option `env` of `sh` must be a map of NAME: value"))?;
        for (k, v) in m.iter() {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let cwd = o.string("cwd")?.map(Into::into);
    let timeout = match o.duration("timeout")? {
        Some(t) => Some(t),
        None => default_timeout(session)?,
    };
    // A command never outlives the run's wall-clock limit.
    let timeout = match (timeout, session.time_left()) {
        (Some(t), Some(left)) => Some(t.min(left)),
        (t, left) => t.or(left),
    };
    let retries = o.int("retries")?.unwrap_or(0).clamp(0, 100) as u32;
    let backoff = o.duration("backoff")?.unwrap_or(Duration::from_secs(1));
    let allow_fail = o.bool("allow_fail")?.unwrap_or(false);
    let quiet = o.bool("quiet")?.unwrap_or(false);
    let shown = o.string("name")?.unwrap_or_else(|| program.display());

    let mut attempt = 0;
    loop {
        attempt += 1;
        let spec = Spec {
            env: env.clone(),
            cwd: cwd.clone(),
            ..runner(session).spec(program.clone(), timeout)
        };
        let intent = json!({
            "command": program.display(),
            "argv": matches!(program, Program::Argv(_)),
            "cwd": spec.cwd,
            "env": env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "timeout_ms": timeout.map(|t| t.as_millis() as u64),
            "attempt": attempt,
        });
        // The lock and live control first: `$ command` is shown only when it is about to run.
        if let Err(e) = session.safe_point() {
            return Err(gate_error(session, e));
        }
        session.say_styled(&format!("$ {shown}"), |ui, s| ui.cyan(s));
        let result = session.gate(
            "sh",
            &shown,
            intent,
            || json!({ "code": 0, "stdout": "", "stderr": "", "planned": true }),
            || {
                let o = run_spec(session, &spec, quiet)?;
                let v = outcome_json(&o);
                if o.success() {
                    Ok(v)
                } else {
                    Err(Failure(failure_message(&shown, &o), v))
                }
            },
        );
        // What the command did, as the journal holds it (so a resumed run sees the same).
        let out = match result {
            Ok(Gated::Planned(_)) => return Ok(planned_map()),
            Ok(g) => outcome_from_json(g.value()),
            Err(GateError::Failed(Failure(msg, Value::Null))) => return Err(fail(msg)),
            Err(GateError::Failed(Failure(_, v))) => outcome_from_json(&v),
            Err(e) => return Err(gate_error(session, e)),
        };
        if let Some(limit) = session.out_of_time() {
            return Err(session.stop(Stop::TimeLimit(limit)));
        }
        if out.interrupted {
            return Err(session.stop(Stop::Interrupted));
        }
        if out.success() {
            session.ui.verbose(&format!(
                "  ✓ {shown} ({})",
                crate::ui::format_duration(out.duration)
            ));
            return Ok(to_map(&out, attempt));
        }
        let msg = failure_message(&shown, &out);
        if attempt <= retries {
            let wait = backoff.saturating_mul(1 << (attempt - 1).min(10));
            session.say_styled(
                &format!(
                    "  ✗ {msg}; retry {attempt} of {retries} in {}",
                    crate::ui::format_duration(wait)
                ),
                |ui, s| ui.yellow(s),
            );
            if session.sleep(wait).is_err() {
                return Err(session.stop_waiting());
            }
            continue;
        }
        if allow_fail {
            session.say_styled(&format!("  ✗ {msg} (allowed)"), |ui, s| ui.yellow(s));
            return Ok(to_map(&out, attempt));
        }
        session.say_styled(&format!("  ✗ {msg}"), |ui, s| ui.red(s));
        return Err(fail(msg));
    }
}

fn default_timeout(session: &Session) -> RhaiResult<Option<Duration>> {
    match &session.config.config.commands.timeout {
        None => Ok(None),
        Some(t) => crate::config::parse_duration(t)
            .map(Some)
            .map_err(|e| fail(format!("config `commands.timeout`: {e}"))),
    }
}

/// The runner of every command of this session: its interrupt and its `commands` settings.
pub fn runner(session: &Session) -> Runner {
    Runner {
        interrupt: session.interrupt.clone(),
        kill_grace: kill_grace(session),
        capture_limit: session.config.config.commands.capture_limit,
    }
}

pub fn kill_grace(session: &Session) -> Duration {
    crate::config::parse_duration(&session.config.config.commands.kill_grace)
        .unwrap_or(Duration::from_secs(3))
}

fn planned_map() -> Map {
    let mut m = Map::new();
    m.insert("code".into(), Dynamic::from(0_i64));
    m.insert("stdout".into(), Dynamic::from(""));
    m.insert("stderr".into(), Dynamic::from(""));
    m.insert("duration".into(), Dynamic::from(0_i64));
    m.insert("ok".into(), Dynamic::from(true));
    m.insert("timed_out".into(), Dynamic::from(false));
    m.insert("truncated".into(), Dynamic::from(false));
    m.insert("planned".into(), Dynamic::from(true));
    m
}

fn to_map(o: &Outcome, attempts: u32) -> Map {
    let mut m = Map::new();
    m.insert(
        "code".into(),
        Dynamic::from(o.code.map(i64::from).unwrap_or(-1)),
    );
    m.insert("stdout".into(), Dynamic::from(o.stdout.clone()));
    m.insert("stderr".into(), Dynamic::from(o.stderr.clone()));
    m.insert(
        "duration".into(),
        Dynamic::from(o.duration.as_millis() as i64),
    );
    m.insert("ok".into(), Dynamic::from(o.success()));
    m.insert("timed_out".into(), Dynamic::from(o.timed_out));
    m.insert("truncated".into(), Dynamic::from(o.truncated));
    m.insert("attempts".into(), Dynamic::from(attempts as i64));
    m
}

/// The outcome back from its journal form.
pub fn outcome_from_json(v: &Value) -> Outcome {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Outcome {
        code: v.get("code").and_then(Value::as_i64).map(|c| c as i32),
        signal: v.get("signal").and_then(Value::as_i64).map(|c| c as i32),
        stdout: text("stdout"),
        stderr: text("stderr"),
        duration: Duration::from_millis(v.get("duration_ms").and_then(Value::as_u64).unwrap_or(0)),
        timed_out: flag("timed_out"),
        interrupted: flag("interrupted"),
        truncated: flag("truncated"),
    }
}

pub fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({
        "code": o.code,
        "signal": o.signal,
        "stdout": o.stdout,
        "stderr": o.stderr,
        "truncated": o.truncated,
        "timed_out": o.timed_out,
        "interrupted": o.interrupted,
        "duration_ms": o.duration.as_millis() as u64,
    })
}

pub fn failure_message(shown: &str, o: &Outcome) -> String {
    let why = if o.timed_out {
        format!("timed out after {}", crate::ui::format_duration(o.duration))
    } else if o.interrupted {
        "was interrupted".to_string()
    } else if let Some(sig) = o.signal {
        format!("was killed by signal {sig}")
    } else {
        format!("failed with exit code {}", o.code.unwrap_or(-1))
    };
    let tail: Vec<&str> = o.stderr.lines().rev().take(3).collect();
    let mut msg = format!("command `{shown}` {why}");
    if !tail.is_empty() && !o.timed_out {
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        msg.push_str(&format!(": {}", tail.join(" / ")));
    }
    msg
}

/// Run one spec with its output streamed to the terminal and the log.
pub fn run_spec(session: &Session, spec: &Spec, quiet: bool) -> Result<Outcome, String> {
    let mut on_line = |is_err: bool, line: &str| {
        let line = session.redact(line);
        if !quiet {
            session.ui.output_line(is_err, &line);
        }
        session
            .effects
            .borrow_mut()
            .log(&format!("  {} {line}", if is_err { "!" } else { "|" }));
    };
    // Which process group the effect under way started: should this run die, a resume finds it
    // still running and waits for it (or stops it) before anything is run again.
    let mut on_spawn = |group: i32, started: Option<crate::process::Started>| {
        let effect = session.effects.borrow().current_effect();
        session.record(crate::journal::Record::EffectChild {
            effect,
            group,
            start: started.map(|s| s.from),
            start_by: started.map(|s| s.to),
        });
    };
    crate::process::run(spec, &session.interrupt, &mut on_line, &mut on_spawn)
        .map_err(|e| format!("cannot run `{}`: {e}", spec.program.display()))
}

/// Run a program with the session's defaults (used by undo): `timeout`, else
/// `commands.timeout`.
pub fn run_program(
    session: &Session,
    program: Program,
    timeout: Option<Duration>,
) -> Result<Outcome, String> {
    let timeout = match timeout {
        Some(t) => Some(t),
        None => default_timeout(session).map_err(|e| e.to_string())?,
    };
    run_spec(session, &runner(session).spec(program, timeout), false)
}
