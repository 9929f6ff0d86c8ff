//! `check(spec)` and `check_all(specs)`: HTTP, TCP and command health checks, with a timeout and
//! retries; `check_all` runs them concurrently and prints one summary table.

use std::time::Duration;

use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};

use super::shell::runner;
use super::{fail, gate_error, RhaiResult};
use crate::effects::Failure;
use crate::session::{GateError, Gated, Session, Shared, Stop};

use crate::health::spec_json;
use crate::health::{parse, run, Outcome, Spec};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("check", move |spec: Map| check(&s, &spec));
    let s = session.clone();
    engine.register_fn("check_all", move |specs: Array| check_all(&s, specs));
}

fn outcome_map(o: &Outcome) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), Dynamic::from(o.name.clone()));
    m.insert("ok".into(), Dynamic::from(o.ok));
    m.insert("detail".into(), Dynamic::from(o.detail.clone()));
    m.insert(
        "duration".into(),
        Dynamic::from(o.elapsed.as_millis() as i64),
    );
    m.insert("attempts".into(), Dynamic::from(o.attempts as i64));
    m
}

fn outcome_from_json(v: &Value) -> Outcome {
    Outcome {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
        detail: v
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        elapsed: Duration::from_millis(v.get("ms").and_then(Value::as_u64).unwrap_or(0)),
        attempts: v.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32,
    }
}

fn outcome_json(o: &Outcome) -> Value {
    json!({ "name": o.name, "ok": o.ok, "detail": o.detail, "ms": o.elapsed.as_millis() as u64, "attempts": o.attempts })
}

fn show(session: &Session, o: &Outcome) {
    let took = crate::ui::format_duration(o.elapsed);
    if o.ok {
        session.say_styled(
            &format!("  ✓ {} ({}, {took})", o.name, o.detail),
            |ui, s| ui.green(s),
        );
    } else {
        session.say_styled(
            &format!("  ✗ {}: {} ({took})", o.name, o.detail),
            |ui, s| ui.red(s),
        );
    }
}

fn check(session: &Session, spec: &Map) -> RhaiResult<Map> {
    let spec = parse(spec)?;
    let allow_fail = spec.allow_fail;
    let quiet = spec.quiet;
    let name = spec.name.clone();
    let r = session.gate(
        "check",
        &name,
        spec_json(&spec),
        || json!({ "ok": true, "planned": true }),
        || {
            let client = session.net(spec.https());
            let o = session
                .rt
                .block_on(run(client, spec.clone(), runner(session)));
            let v = outcome_json(&o);
            if o.ok {
                Ok(v)
            } else {
                Err(Failure(
                    format!("check `{}` failed: {}", o.name, o.detail),
                    v,
                ))
            }
        },
    );
    if session.interrupt.is_set() {
        return Err(session.stop(Stop::Interrupted));
    }
    // The outcome as the journal holds it (so a resumed run sees the same).
    let got = match &r {
        Ok(Gated::Planned(_)) | Err(GateError::Fatal(_) | GateError::Halt) => None,
        Ok(g) => Some(outcome_from_json(g.value())),
        Err(GateError::Failed(Failure(_, v))) => Some(outcome_from_json(v)),
    };
    match (r, got) {
        (Err(e @ (GateError::Fatal(_) | GateError::Halt)), _) => Err(gate_error(session, e)),
        (_, Some(o)) => {
            if !quiet {
                show(session, &o);
            }
            if !o.ok && !allow_fail {
                return Err(fail(format!("check `{}` failed: {}", o.name, o.detail)));
            }
            Ok(outcome_map(&o))
        }
        (_, None) => {
            session.say(&format!("  (dry-run) check {name}"));
            let mut m = Map::new();
            m.insert("name".into(), Dynamic::from(name));
            m.insert("ok".into(), Dynamic::from(true));
            m.insert("planned".into(), Dynamic::from(true));
            Ok(m)
        }
    }
}

fn check_all(session: &Session, specs: Array) -> RhaiResult<Array> {
    let mut parsed = Vec::with_capacity(specs.len());
    for s in &specs {
        let m = s.read_lock::<Map>().ok_or_else(|| {
            fail(format!(
                "`check_all` takes an array of check maps; one is {}",
                s.type_name()
            ))
        })?;
        parsed.push(parse(&m)?);
    }
    let allow_fail = parsed.iter().all(|s| s.allow_fail);
    let intent = json!({ "checks": parsed.iter().map(spec_json).collect::<Vec<_>>() });
    let name = format!("{} checks", parsed.len());
    let r = session.gate(
        "check_all",
        &name,
        intent,
        || json!({ "planned": true }),
        || {
            let client = session.net(parsed.iter().any(Spec::https));
            let runner = runner(session);
            let handles: Vec<_> = parsed
                .iter()
                .map(|s| session.rt.spawn(run(client.clone(), s.clone(), runner.clone())))
                .collect();
            let got: Vec<Outcome> = session.rt.block_on(async {
                let mut out = Vec::with_capacity(handles.len());
                for h in handles {
                    if let Ok(o) = h.await {
                        out.push(o);
                    }
                }
                out
            });
            let failed = got.iter().filter(|o| !o.ok).count();
            let v = json!({ "results": got.iter().map(outcome_json).collect::<Vec<_>>(), "failed": failed });
            if failed == 0 { Ok(v) } else { Err(Failure(format!("{failed} of {} checks failed", got.len()), v)) }
        },
    );
    if session.interrupt.is_set() {
        return Err(session.stop(Stop::Interrupted));
    }
    let (planned, v) = match r {
        Err(e @ (GateError::Fatal(_) | GateError::Halt)) => return Err(gate_error(session, e)),
        Ok(g) => (g.planned(), g.into_value()),
        Err(GateError::Failed(Failure(_, v))) => (false, v),
    };
    let got: Vec<Outcome> = v
        .get("results")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(outcome_from_json).collect())
        .unwrap_or_default();
    if planned {
        session.say(&format!("  (dry-run) {name}"));
        return Ok(parsed
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("name".into(), Dynamic::from(s.name.clone()));
                m.insert("ok".into(), Dynamic::from(true));
                m.insert("planned".into(), Dynamic::from(true));
                Dynamic::from_map(m)
            })
            .collect());
    }
    print_table(session, &got);
    let failed: Vec<&Outcome> = got.iter().filter(|o| !o.ok).collect();
    if !failed.is_empty() && !allow_fail {
        let names: Vec<String> = failed
            .iter()
            .map(|o| format!("`{}` ({})", o.name, o.detail))
            .collect();
        return Err(fail(format!(
            "{} of {} checks failed: {}",
            failed.len(),
            got.len(),
            names.join(", ")
        )));
    }
    Ok(got
        .iter()
        .map(|o| Dynamic::from_map(outcome_map(o)))
        .collect())
}

fn print_table(session: &Session, rows: &[Outcome]) {
    let w = rows
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 60);
    session.say(&format!(
        "  {:<w$}  {:<6}  {:>7}  DETAIL",
        "CHECK", "RESULT", "TIME"
    ));
    for o in rows {
        let name: String = o.name.chars().take(w).collect();
        let res = if o.ok { "✓ ok" } else { "✗ FAIL" };
        let line = format!(
            "  {name:<w$}  {res:<6}  {:>7}  {}",
            crate::ui::format_duration(o.elapsed),
            o.detail
        );
        if o.ok {
            session.say(&line);
        } else {
            session.say_styled(&line, |ui, s| ui.red(s));
        }
    }
    let ok = rows.iter().filter(|o| o.ok).count();
    session.say(&format!("  {ok}/{} passed", rows.len()));
}
