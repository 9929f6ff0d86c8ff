//! Health checks: a spec (`#{http|tcp|cmd, ...}` with timeout, retries, interval, latency
//! budget) and its runner (HTTP through the shared client, TCP connect, a command through the one
//! command runner). Below the bindings: `check()`/`check_all()` (src/primitives/check.rs) and the
//! `check` metric provider (src/analysis/provider.rs) both use it.

use std::time::{Duration, Instant};

use rhai::{Array, Map};
use serde_json::{json, Value};

use crate::opts::{fail, Opts, RhaiResult};
use crate::process::{Program, Runner};

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
    pub name: String,
    target: Target,
    pub latency: Option<Duration>,
    pub timeout: Duration,
    pub retries: u32,
    pub interval: Duration,
    pub allow_fail: bool,
    pub quiet: bool,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub elapsed: Duration,
    pub attempts: u32,
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

/// The spec as the journal records it (the effect's intent).
pub fn spec_json(s: &Spec) -> Value {
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
