//! The Kubernetes backend (`lock.backend: kubernetes`): a `coordination.k8s.io/v1` Lease per
//! environment, through kubectl, for teams that already have a cluster. The Lease is created
//! only if absent (`kubectl create` fails with AlreadyExists), and renewed, released and taken
//! over with `kubectl replace` carrying the `resourceVersion` last read, so two writers cannot
//! both win (the API server answers Conflict to the second). `spec.holderIdentity` says who
//! (`user@host pid N`), `spec.renewTime` + `leaseDurationSeconds` when it runs out; the holder
//! record (run, stage, traffic, verdict) is the annotation `runbook.dev/holder`, and
//! `runbook.dev/ended` says how the last holder ended. A released Lease keeps its annotations
//! (holderIdentity cleared), so `runbook status` still shows the last run; an expired one is
//! free, and the next run journals whom it followed. `runbook.dev/event` keeps the last
//! take-over or unlock.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{judge, Acquired, Backend, EnvStatus, Holder, Renewal, State};
use crate::error::Error;

const HOLDER: &str = "runbook.dev/holder";
const ENDED: &str = "runbook.dev/ended";
const EVENT: &str = "runbook.dev/event";

#[derive(Clone)]
struct Kubectl {
    context: Option<String>,
    namespace: Option<String>,
}

enum Failed {
    NotFound,
    Exists,
    Conflict,
    /// kubectl could not be run, or the API server could not be asked: why.
    Other(String),
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&Value>) -> Result<Value, Failed> {
        let mut cmd = Command::new("kubectl");
        if let Some(c) = &self.context {
            cmd.args(["--context", c]);
        }
        if let Some(n) = &self.namespace {
            cmd.args(["-n", n]);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Failed::Other(format!("cannot run kubectl: {e}")))?;
        if let (Some(body), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(body.to_string().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Failed::Other(format!("kubectl: {e}")))?;
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !out.status.success() {
            return Err(if err.contains("NotFound") || err.contains("not found") {
                Failed::NotFound
            } else if err.contains("AlreadyExists") || err.contains("already exists") {
                Failed::Exists
            } else if err.contains("Conflict") || err.contains("has been modified") {
                Failed::Conflict
            } else {
                Failed::Other(format!("kubectl {}: {err}", args.join(" ")))
            });
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or_default())
    }
}

fn micro_time(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

pub struct KubeBackend {
    kubectl: Kubectl,
    prefix: String,
}

impl KubeBackend {
    pub fn new(cfg: &crate::config::Config) -> KubeBackend {
        let k = &cfg.lock.kubernetes;
        KubeBackend {
            kubectl: Kubectl {
                context: k.context.clone().or(cfg.kubernetes.context.clone()),
                namespace: k.namespace.clone().or(cfg.kubernetes.namespace.clone()),
            },
            prefix: k.name_prefix.clone(),
        }
    }

    fn name(&self, environment: &str) -> String {
        format!("{}-{}", self.prefix, crate::answers::slug(environment))
    }

    fn failed(&self, environment: &str, f: Failed) -> Error {
        let why = match f {
            Failed::Other(why) => why,
            Failed::NotFound => "not found".into(),
            Failed::Exists => "it exists already".into(),
            Failed::Conflict => "it changed while this run wrote it".into(),
        };
        Error::Usage(format!(
            "cannot use the lock of `{environment}` ({}): {why}\n  help: check kubectl's access to the cluster; nothing was changed",
            self.store(environment)
        ))
    }

    fn get(&self, environment: &str) -> Result<Option<Value>, Failed> {
        match self.kubectl.run(
            &["get", "lease", &self.name(environment), "-o", "json"],
            None,
        ) {
            Ok(v) => Ok(Some(v)),
            Err(Failed::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The Lease as this run writes it: held by `holder` (None: given back, `ended` says how).
    fn manifest(
        &self,
        holder: &Holder,
        held: bool,
        ended: &str,
        lease: Duration,
        version: Option<&str>,
        event: Option<&Value>,
    ) -> Value {
        let mut metadata = json!({
            "name": self.name(&holder.environment),
            "annotations": {
                HOLDER: serde_json::to_string(holder).unwrap_or_default(),
                ENDED: ended,
            },
        });
        if let Some(ns) = &self.kubectl.namespace {
            metadata["namespace"] = json!(ns);
        }
        if let Some(v) = version {
            metadata["resourceVersion"] = json!(v);
        }
        if let Some(e) = event {
            metadata["annotations"][EVENT] = json!(e.to_string());
        }
        let now = micro_time(SystemTime::now());
        let mut spec = json!({
            "leaseDurationSeconds": lease.as_secs_f64().ceil().max(1.0) as i64,
            "renewTime": now,
        });
        if held {
            spec["holderIdentity"] = json!(format!("{} pid {}", holder.who(), holder.pid));
            spec["acquireTime"] = json!(humantime::parse_rfc3339(&holder.started)
                .map(micro_time)
                .unwrap_or(now));
        }
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        })
    }
}

/// What a Lease says: its holder (held or not) with when its lease ends, and how it last ended.
fn read(lease: &Value) -> (State, Option<Holder>, Option<String>) {
    let notes = &lease["metadata"]["annotations"];
    let record = notes[HOLDER]
        .as_str()
        .and_then(|t| serde_json::from_str::<Holder>(t).ok());
    let ended = notes[ENDED].as_str().map(str::to_string);
    let held = lease["spec"]["holderIdentity"]
        .as_str()
        .is_some_and(|h| !h.is_empty());
    if !held {
        return (State::Free, record, ended);
    }
    let Some(mut h) = record.clone() else {
        return (State::Torn, None, ended);
    };
    let renewed = lease["spec"]["renewTime"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    h.expires = renewed + lease["spec"]["leaseDurationSeconds"].as_u64().unwrap_or(0);
    (State::Held(h), record, ended)
}

fn version_of(v: &Value) -> Option<String> {
    v["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string)
}

impl Backend for KubeBackend {
    fn store(&self, environment: &str) -> String {
        format!(
            "the Lease `{}`{}{}",
            self.name(environment),
            self.kubectl
                .namespace
                .as_ref()
                .map(|n| format!(" in namespace `{n}`"))
                .unwrap_or_default(),
            self.kubectl
                .context
                .as_ref()
                .map(|c| format!(" (context `{c}`)"))
                .unwrap_or_default()
        )
    }

    fn state(&self, environment: &str) -> Result<State, Error> {
        match self.get(environment) {
            Ok(Some(l)) => Ok(read(&l).0),
            Ok(None) => Ok(State::Free),
            Err(f) => Err(self.failed(environment, f)),
        }
    }

    fn acquire(
        &self,
        holder: &Holder,
        lease: Duration,
        take_over: Option<&str>,
    ) -> Result<Acquired, Error> {
        let env = &holder.environment;
        let found = self.get(env).map_err(|f| self.failed(env, f))?;
        let tenure = |version: Option<String>| KubeTenure {
            backend: KubeBackend {
                kubectl: self.kubectl.clone(),
                prefix: self.prefix.clone(),
            },
            lease,
            version,
            pending: None,
        };
        let Some(existing) = found else {
            let m = self.manifest(holder, true, "held", lease, None, None);
            return match self
                .kubectl
                .run(&["create", "-f", "-", "-o", "json"], Some(&m))
            {
                Ok(v) => Ok(Acquired {
                    tenure: Box::new(tenure(version_of(&v))),
                    took_over: None,
                    followed: None,
                }),
                // Someone created it first: say who.
                Err(Failed::Exists) => {
                    let now = self.state(env)?;
                    judge(env, now, None, &self.store(env))?;
                    Err(Error::Usage(format!(
                        "`{env}` changed hands while this run took it\n  help: try again"
                    )))
                }
                Err(f) => Err(self.failed(env, f)),
            };
        };
        let (state, _, _) = read(&existing);
        let mut followed = None;
        let mut took_over = None;
        match state {
            State::Free => {}
            State::Held(h) if h.expires <= super::now_secs() => followed = Some(h),
            other => took_over = judge(env, other, take_over, &self.store(env))?,
        }
        let event = match (&followed, &took_over) {
            (Some(f), _) => Some(json!({ "event": "expired", "holder": f, "followed_by": holder })),
            (_, Some((previous, reason))) => Some(
                json!({ "event": "takeover", "previous": previous, "reason": reason, "by": holder }),
            ),
            _ => None,
        };
        let m = self.manifest(
            holder,
            true,
            "held",
            lease,
            version_of(&existing).as_deref(),
            event.as_ref(),
        );
        match self
            .kubectl
            .run(&["replace", "-f", "-", "-o", "json"], Some(&m))
        {
            Ok(v) => Ok(Acquired {
                tenure: Box::new(tenure(version_of(&v))),
                took_over,
                followed,
            }),
            Err(Failed::Conflict) => {
                let now = self.state(env)?;
                judge(env, now, None, &self.store(env))?;
                Err(Error::Usage(format!(
                    "`{env}` changed hands while this run took it\n  help: try again"
                )))
            }
            Err(f) => Err(self.failed(env, f)),
        }
    }

    fn unlock(&self, environment: &str, reason: &str) -> Result<(State, String), Error> {
        let found = self
            .get(environment)
            .map_err(|f| self.failed(environment, f))?;
        let Some(existing) = found else {
            return Ok((State::Free, self.store(environment)));
        };
        let (was, record, _) = read(&existing);
        let event = json!({
            "event": "unlock",
            "ts": crate::journal::now_rfc3339(),
            "reason": reason,
            "by": crate::identity::user(),
            "host": crate::identity::host(),
            "holder": match &was { State::Held(h) => json!(h), _ => Value::Null },
        });
        let holder = record.unwrap_or_else(|| Holder {
            environment: environment.to_string(),
            started: crate::journal::now_rfc3339(),
            ..Holder::default()
        });
        let m = self.manifest(
            &holder,
            false,
            "broken",
            Duration::from_secs(
                existing["spec"]["leaseDurationSeconds"]
                    .as_u64()
                    .unwrap_or(1),
            ),
            version_of(&existing).as_deref(),
            Some(&event),
        );
        self.kubectl
            .run(&["replace", "-f", "-", "-o", "json"], Some(&m))
            .map_err(|f| self.failed(environment, f))?;
        Ok((
            was,
            format!("the annotation `{EVENT}` of {}", self.store(environment)),
        ))
    }

    fn statuses(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, Error> {
        let leases: Vec<Value> = match only {
            Some(env) => self
                .get(env)
                .map_err(|f| self.failed(env, f))?
                .into_iter()
                .collect(),
            None => self
                .kubectl
                .run(&["get", "leases", "-o", "json"], None)
                .map_err(|f| self.failed("all environments", f))?["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|l| {
                    l["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{}-", self.prefix)))
                })
                .collect(),
        };
        let mut out: Vec<EnvStatus> = leases
            .iter()
            .map(|l| {
                let (state, last, ended) = read(l);
                let holder = match state {
                    State::Held(h) if h.expires > super::now_secs() => Some(h),
                    _ => None,
                };
                EnvStatus {
                    environment: last
                        .as_ref()
                        .map(|h| h.environment.clone())
                        .unwrap_or_else(|| l["metadata"]["name"].as_str().unwrap_or("").into()),
                    holder,
                    last,
                    ended,
                }
            })
            .collect();
        if let (Some(o), true) = (only, out.is_empty()) {
            out.push(EnvStatus {
                environment: o.to_string(),
                ..Default::default()
            });
        }
        Ok(out)
    }

    // Live control: the request is a ConfigMap of its own beside the Lease (`<lease>-control`),
    // so writing it never changes the Lease the holder replaces (a Conflict there would read as
    // a lost lock). The run reads it when it renews its lease (every third of `lock.lease`),
    // not four times a second: one kubectl process per renewal.
    fn request_control(&self, request: &super::ControlRequest) -> Result<String, Error> {
        let env = &request.environment;
        let m = self.control_manifest(request);
        self.kubectl
            .run(&["apply", "-f", "-", "-o", "json"], Some(&m))
            .map_err(|f| self.failed(env, f))?;
        Ok(format!("the ConfigMap `{}`", self.control_name(env)))
    }

    fn read_control(&self, environment: &str) -> Result<Option<super::ControlRequest>, Error> {
        self.get_control(environment)
            .map_err(|f| self.failed(environment, f))
    }
}

impl KubeBackend {
    fn control_name(&self, environment: &str) -> String {
        format!("{}-control", self.name(environment))
    }

    fn control_manifest(&self, request: &super::ControlRequest) -> Value {
        let mut metadata = json!({ "name": self.control_name(&request.environment) });
        if let Some(n) = &self.kubectl.namespace {
            metadata["namespace"] = json!(n);
        }
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": { "request": serde_json::to_string(request).unwrap_or_default() },
        })
    }

    fn get_control(&self, environment: &str) -> Result<Option<super::ControlRequest>, Failed> {
        match self.kubectl.run(
            &[
                "get",
                "configmap",
                &self.control_name(environment),
                "-o",
                "json",
            ],
            None,
        ) {
            Ok(v) => Ok(v["data"]["request"]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())),
            Err(Failed::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

struct KubeTenure {
    backend: KubeBackend,
    lease: Duration,
    /// The Lease's resourceVersion as this run last wrote it.
    version: Option<String>,
    /// The control request read at the last renewal (see `request_control`).
    pending: Option<super::ControlRequest>,
}

impl super::Tenure for KubeTenure {
    fn renew(&mut self, holder: &Holder) -> Renewal {
        let m = self.backend.manifest(
            holder,
            true,
            "held",
            self.lease,
            self.version.as_deref(),
            None,
        );
        match self
            .backend
            .kubectl
            .run(&["replace", "-f", "-", "-o", "json"], Some(&m))
        {
            Ok(v) => {
                self.version = version_of(&v);
                // A control request for this run, read with each renewal.
                self.pending = self.backend.get_control(&holder.environment).ok().flatten();
                Renewal::Ours
            }
            Err(Failed::Conflict) | Err(Failed::NotFound) => {
                match self.backend.get(&holder.environment) {
                    Ok(Some(l)) => match read(&l).0 {
                        State::Held(h) => {
                            Renewal::Lost(format!("it is held now by {}", super::describe(&h)))
                        }
                        _ => Renewal::Lost(
                            "it was broken (`runbook unlock`) and nobody holds it".into(),
                        ),
                    },
                    Ok(None) => Renewal::Lost("its Lease was deleted".into()),
                    Err(_) => Renewal::Unreachable(format!(
                        "{} changed and cannot be read",
                        self.backend.store(&holder.environment)
                    )),
                }
            }
            Err(Failed::Other(why)) => Renewal::Unreachable(why),
            Err(Failed::Exists) => Renewal::Unreachable("unexpected AlreadyExists".into()),
        }
    }

    fn read_control(&mut self, _environment: &str) -> Option<super::ControlRequest> {
        self.pending.clone()
    }

    fn clear_control(&mut self, environment: &str, id: &str) {
        if self.pending.as_ref().is_some_and(|r| r.id == id) {
            self.pending = None;
            let name = self.backend.control_name(environment);
            let _ = self.backend.kubectl.run(
                &[
                    "delete",
                    "configmap",
                    &name,
                    "--ignore-not-found",
                    "-o",
                    "name",
                ],
                None,
            );
        }
    }

    fn release(&mut self, holder: &Holder) {
        let m = self.backend.manifest(
            holder,
            false,
            "released",
            self.lease,
            self.version.as_deref(),
            None,
        );
        let _ = self
            .backend
            .kubectl
            .run(&["replace", "-f", "-", "-o", "json"], Some(&m));
    }
}
