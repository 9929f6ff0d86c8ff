//! `check(spec)` and `check_all(specs)`: HTTP, TCP and command health checks, with a timeout and
//! retries; `check_all` runs them concurrently and prints one summary table.

use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Map};
use serde_json::{json, Value};

use super::shell::runner;
use super::{fail, gate_error, Opts, RhaiResult};
use crate::effects::Failure;
use crate::process::{Program, Runner};
use crate::session::{GateError, Gated, Session, Shared, Stop};

const OPTIONS: &[&str] = &[
    "name",
    "http",
    "tcp",
    "cmd",
    "status",
    "contains",
    "latency",
    "timeout",
    "retries",
    "interval",
    "method",
    "allow_fail",
    "quiet",
];

#[derive(Debug, Clone)]
enum Target {
    Http {
        url: String,
        method: String,
        status: Vec<u16>,
        contains: Option<String>,
    },
    Tcp(String),
    Cmd(String),
}

#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    target: Target,
    latency: Option<Duration>,
    timeout: Duration,
    retries: u32,
    interval: Duration,
    allow_fail: bool,
    quiet: bool,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    name: String,
    ok: bool,
    detail: String,
    elapsed: Duration,
    attempts: u32,
}

impl Spec {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the check needs the TLS client.
    pub fn https(&self) -> bool {
        matches!(&self.target, Target::Http { url, .. } if url.starts_with("https://"))
    }
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.ok
    }
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("check", move |spec: Map| check(&s, &spec));
    let s = session.clone();
    engine.register_fn("check_all", move |specs: Array| check_all(&s, specs));
}

pub fn parse(spec: &Map) -> RhaiResult<Spec> {
    let o = Opts::new(spec, "check", OPTIONS)?;
    let http = o.string("http")?;
    let tcp = o.string("tcp")?;
    let cmd = o.string("cmd")?;
    let target = match (http, tcp, cmd) {
        (Some(url), None, None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(fail(format!(
                    "check `http` needs a URL starting with http:// or https://, not `{url}`"
                )));
            }
            let status = match o.get("status") {
                None => vec![],
                Some(v) if v.is_int() => vec![v.as_int().unwrap_or(200) as u16],
                Some(v) => v
                    .read_lock::<Array>()
                    .ok_or_else(|| fail("check `status` is a status code or an array of them"))?
                    .iter()
                    .map(|s| {
                        s.as_int()
                            .map(|i| i as u16)
                            .map_err(|_| fail("check `status` codes are numbers"))
                    })
                    .collect::<RhaiResult<_>>()?,
            };
            Target::Http {
                url,
                method: o
                    .string("method")?
                    .unwrap_or_else(|| "GET".into())
                    .to_uppercase(),
                status,
                contains: o.string("contains")?,
            }
        }
        (None, Some(addr), None) => Target::Tcp(addr),
        (None, None, Some(c)) => Target::Cmd(c),
        _ => return Err(fail("a check needs exactly one of `http`, `tcp` or `cmd`")),
    };
    let name = match o.string("name")? {
        Some(n) => n,
        None => match &target {
            Target::Http { url, .. } => url.clone(),
            Target::Tcp(a) => format!("tcp {a}"),
            Target::Cmd(c) => c.clone(),
        },
    };
    Ok(Spec {
        name,
        target,
        latency: o.duration("latency")?,
        timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(5)),
        retries: o.int("retries")?.unwrap_or(0).clamp(0, 1000) as u32,
        interval: o.duration("interval")?.unwrap_or(Duration::from_secs(1)),
        allow_fail: o.bool("allow_fail")?.unwrap_or(false),
        quiet: o.bool("quiet")?.unwrap_or(false),
    })
}

fn spec_json(s: &Spec) -> Value {
    let target = match &s.target {
        Target::Http {
            url,
            method,
            status,
            contains,
        } => json!({ "http": url, "method": method, "status": status, "contains": contains }),
        Target::Tcp(a) => json!({ "tcp": a }),
        Target::Cmd(c) => json!({ "cmd": c }),
    };
    json!({ "name": s.name, "target": target, "timeout_ms": s.timeout.as_millis() as u64, "retries": s.retries,
            "latency_ms": s.latency.map(|l| l.as_millis() as u64) })
}

async fn attempt(
    client: &crate::net::Client,
    spec: &Spec,
    runner: &Runner,
) -> Result<String, String> {
    let started = Instant::now();
    let detail = match &spec.target {
        Target::Http {
            url,
            method,
            status,
            contains,
        } => {
            // Read at most 1 MiB of the body, and only when it is looked at: a health endpoint
            // that streams forever must not hang the run.
            let answer = tokio::time::timeout(
                spec.timeout,
                client.request(method, url, contains.is_some(), 1 << 20),
            )
            .await
            .map_err(|_| {
                format!(
                    "no answer within {}",
                    crate::ui::format_duration(spec.timeout)
                )
            })?
            .map_err(|e| {
                if e.starts_with("the answer is larger") {
                    "the body is larger than 1 MiB".to_string()
                } else {
                    e
                }
            })?;
            let code = answer.status;
            let ok_status = if status.is_empty() {
                (200..300).contains(&code)
            } else {
                status.contains(&code)
            };
            let body = String::from_utf8_lossy(&answer.body);
            if !ok_status {
                let want = if status.is_empty() {
                    "2xx".to_string()
                } else {
                    format!("{status:?}")
                };
                return Err(format!("status {code}, expected {want}"));
            }
            if let Some(needle) = contains {
                if !body.contains(needle.as_str()) {
                    return Err(format!(
                        "status {code}, but the body does not contain `{needle}`"
                    ));
                }
            }
            format!("status {code}")
        }
        Target::Tcp(addr) => {
            tokio::time::timeout(spec.timeout, tokio::net::TcpStream::connect(addr.as_str()))
                .await
                .map_err(|_| {
                    format!(
                        "no connection within {}",
                        crate::ui::format_duration(spec.timeout)
                    )
                })?
                .map_err(|e| format!("cannot connect: {e}"))?;
            "connected".to_string()
        }
        Target::Cmd(line) => {
            // The one runner of every command: own process group, SIGTERM then SIGKILL after
            // `commands.kill_grace` on the timeout, output captured up to `commands.capture_limit`.
            let out = runner
                .capture(runner.spec(Program::Line(line.clone()), Some(spec.timeout)))
                .await
                .map_err(|e| format!("cannot run: {e}"))?;
            if out.timed_out {
                return Err(format!(
                    "did not finish within {}",
                    crate::ui::format_duration(spec.timeout)
                ));
            }
            if out.interrupted {
                return Err("interrupted".to_string());
            }
            if out.code == Some(0) {
                "exit 0".to_string()
            } else {
                let last = out.stderr.lines().last().unwrap_or("").trim().to_string();
                return Err(match out.code {
                    Some(c) if last.is_empty() => format!("exit {c}"),
                    Some(c) => format!("exit {c}: {last}"),
                    None => "killed by a signal".to_string(),
                });
            }
        }
    };
    let took = started.elapsed();
    if let Some(budget) = spec.latency {
        if took > budget {
            return Err(format!(
                "{detail} in {}, over the {} budget",
                crate::ui::format_duration(took),
                crate::ui::format_duration(budget)
            ));
        }
    }
    Ok(detail)
}

/// Run one check with its retries.
pub async fn run(client: crate::net::Client, spec: Spec, runner: Runner) -> Outcome {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let r = attempt(&client, &spec, &runner).await;
        let last = attempts > spec.retries;
        match r {
            Ok(detail) => {
                return Outcome {
                    name: spec.name,
                    ok: true,
                    detail,
                    elapsed: started.elapsed(),
                    attempts,
                }
            }
            Err(detail) if last || runner.interrupt.is_set() => {
                return Outcome {
                    name: spec.name,
                    ok: false,
                    detail,
                    elapsed: started.elapsed(),
                    attempts,
                }
            }
            Err(_) => tokio::time::sleep(spec.interval).await,
        }
    }
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
