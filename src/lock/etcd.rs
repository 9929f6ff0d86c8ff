//! The etcd backend (`lock.backend: etcd`), on etcd's own primitives: a lease granted with the
//! lock's lease (`lock.lease`) and kept alive while the run lives; the lock key created in a
//! transaction only if absent (`create_revision == 0`), attached to that lease, so a run that
//! dies loses its lock when the lease runs out, without anyone breaking it.
//!
//! It speaks etcd's v3 JSON gateway (`/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/kv/txn`,
//! `/v3/kv/range`, keys and values base64) over plain HTTP with the reqwest client the program
//! already has: no gRPC stack, no protoc at build time, and etcd 3.4 (Debian's) serves it.
//!
//! Keys, under `lock.etcd.prefix` (default `runbook/`):
//! - `locks/<env>`: the holder record, attached to the holder's lease;
//! - `status/<env>`: the same record without a lease, and how it ended (`held` while held,
//!   `released`, `broken`): `runbook status` reads it after the lock is gone, and a `held` one
//!   found by the next run means its holder's lease ran out (it died): the next run says so;
//! - `log/<env>/<time>-<pid>`: take-overs, unlocks and expired holders followed;
//! - `control/<env>`: a live-control request (`runbook control`) for the run holding the lock.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{b64, judge, unb64, Acquired, Backend, EnvStatus, Holder, Renewal, State};
use crate::config::EtcdLockCfg;
use crate::error::Error;

enum CallError {
    /// No endpoint answered: why, naming each.
    Unreachable(String),
    /// An endpoint answered with an error.
    Answer(String),
}

impl CallError {
    fn text(self) -> String {
        match self {
            CallError::Unreachable(t) | CallError::Answer(t) => t,
        }
    }
}

struct Client {
    endpoints: Vec<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
    timeout: Duration,
}

/// An error with its causes, e.g. `error sending request ...: connection refused`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl Client {
    /// POST `body` to `path` at the first endpoint that answers.
    fn call(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let mut failures = Vec::new();
        for ep in &self.endpoints {
            let url = format!("{}{path}", ep.trim_end_matches('/'));
            let request = self.http.post(&url).json(body).timeout(self.timeout);
            let answer = self.rt.block_on(async move {
                let r = request.send().await?;
                let status = r.status();
                let text = r.text().await?;
                Ok::<_, reqwest::Error>((status, text))
            });
            match answer {
                Ok((status, text)) if status.is_success() => {
                    return serde_json::from_str(text.trim()).map_err(|e| {
                        CallError::Answer(format!("etcd at {ep}: an answer that is not JSON ({e})"))
                    })
                }
                Ok((status, text)) => {
                    let v: Value = serde_json::from_str(text.trim()).unwrap_or_default();
                    let why = v["error"]
                        .as_str()
                        .or(v["message"].as_str())
                        .unwrap_or(text.trim())
                        .to_string();
                    // A member that cannot serve (no leader, shutting down): try the next.
                    if status.is_server_error() && v["code"] == 14 {
                        failures.push(format!("etcd at {ep}: {why}"));
                        continue;
                    }
                    return Err(CallError::Answer(format!("etcd at {ep}: {status}: {why}")));
                }
                Err(e) => failures.push(format!("etcd at {ep}: {}", chain(&e))),
            }
        }
        Err(CallError::Unreachable(failures.join("; ")))
    }
}

/// The value of the first key a range (or a txn's range) returned, with its key-value.
fn first_kv(range: &Value) -> Option<(&Value, Option<Vec<u8>>)> {
    let kv = range["kvs"].get(0)?;
    Some((kv, kv["value"].as_str().and_then(unb64)))
}

/// A key's name under its kind's prefix, its key-value, and its value decoded.
type Found = (String, Value, Option<Vec<u8>>);

/// The end of the range of keys that start with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    b64(&bytes)
}

pub struct EtcdBackend {
    client: Arc<Client>,
    prefix: String,
}

impl EtcdBackend {
    pub fn new(
        cfg: &EtcdLockCfg,
        lease: Duration,
        rt: tokio::runtime::Handle,
    ) -> Result<EtcdBackend, Error> {
        if cfg.endpoints.is_empty() {
            return Err(Error::Usage(
                "config `lock.backend` is `etcd` but `lock.etcd.endpoints` is empty\n  help: list the etcd client URLs, e.g. `endpoints: [\"http://etcd-1:2379\"]`".into(),
            ));
        }
        for ep in &cfg.endpoints {
            if !ep.starts_with("http://") && !ep.starts_with("https://") {
                return Err(Error::Usage(format!(
                    "config `lock.etcd.endpoints`: `{ep}` is not a URL\n  help: write it as `http://host:2379`"
                )));
            }
        }
        // A request waits at most a sixth of the lease: a renewal (a keep-alive and the holder
        // record) is over within a third of it, so a store that stopped answering is found
        // unreachable while the lease still runs, and `lock.on_lost` can wait for it to come
        // back with the lock still ours.
        let timeout = (lease / 6).clamp(Duration::from_millis(250), Duration::from_millis(2500));
        let http = {
            let _in_runtime = rt.enter();
            reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(timeout)
                .build()
                .map_err(|e| Error::Usage(format!("cannot set up the etcd client: {e}")))?
        };
        Ok(EtcdBackend {
            client: Arc::new(Client {
                endpoints: cfg.endpoints.clone(),
                http,
                rt,
                timeout,
            }),
            prefix: cfg.prefix.clone(),
        })
    }

    fn key(&self, kind: &str, environment: &str) -> String {
        format!(
            "{}{kind}/{}",
            self.prefix,
            crate::answers::slug(environment)
        )
    }

    fn endpoints(&self) -> String {
        self.client.endpoints.join(", ")
    }

    fn unreachable(&self, environment: &str, e: CallError) -> Error {
        match e {
            CallError::Unreachable(why) => Error::Usage(format!(
                "cannot reach the lock store of `{environment}`: {why}\n  help: check that etcd is up and `lock.etcd.endpoints` ({}) is right; nothing was changed",
                self.endpoints()
            )),
            CallError::Answer(why) => Error::Usage(format!(
                "the lock store of `{environment}` refused: {why}\n  help: nothing was changed"
            )),
        }
    }

    /// Record an event in the store's log (best effort: the journal has it too).
    fn log(&self, environment: &str, event: Value) {
        let key = format!(
            "{}/{}-{}",
            self.key("log", environment),
            crate::journal::now_rfc3339(),
            std::process::id()
        );
        let _ = self.client.call(
            "/v3/kv/put",
            &json!({ "key": b64(key.as_bytes()), "value": b64(event.to_string().as_bytes()) }),
        );
    }

    /// The holder in a lock key's value, its lease's end read from etcd.
    fn holder_of(&self, kv: &Value, value: Option<Vec<u8>>) -> State {
        let Some(mut h) = value.and_then(|v| serde_json::from_slice::<Holder>(&v).ok()) else {
            return State::Torn;
        };
        let ttl = kv["lease"].as_str().and_then(|id| {
            self.client
                .call("/v3/lease/timetolive", &json!({ "ID": id }))
                .ok()
                .and_then(|v| v["TTL"].as_str().and_then(|t| t.parse::<i64>().ok()))
        });
        // The key exists, so its lease has not run out (etcd deletes it when it does).
        h.expires = super::now_secs() + ttl.unwrap_or(1).max(1) as u64;
        State::Held(h)
    }

    fn status_value(holder: &Holder, ended: &str) -> String {
        b64(json!({ "holder": holder, "ended": ended })
            .to_string()
            .as_bytes())
    }

    fn revoke(&self, lease: &str) {
        let _ = self
            .client
            .call("/v3/lease/revoke", &json!({ "ID": lease }));
    }
}

impl Backend for EtcdBackend {
    fn store(&self, environment: &str) -> String {
        format!(
            "etcd at {}, key `{}`",
            self.endpoints(),
            self.key("locks", environment)
        )
    }

    fn state(&self, environment: &str) -> Result<State, Error> {
        let lock = self.key("locks", environment);
        let r = self
            .client
            .call("/v3/kv/range", &json!({ "key": b64(lock.as_bytes()) }))
            .map_err(|e| self.unreachable(environment, e))?;
        Ok(match first_kv(&r) {
            None => State::Free,
            Some((kv, value)) => self.holder_of(kv, value),
        })
    }

    fn acquire(
        &self,
        holder: &Holder,
        lease: Duration,
        take_over: Option<&str>,
    ) -> Result<Acquired, Error> {
        let env = &holder.environment;
        let lock = b64(self.key("locks", env).as_bytes());
        let status = b64(self.key("status", env).as_bytes());
        let ttl = lease.as_secs_f64().ceil().max(1.0) as i64;
        let granted = self
            .client
            .call("/v3/lease/grant", &json!({ "TTL": ttl }))
            .map_err(|e| self.unreachable(env, e))?;
        let Some(id) = granted["ID"].as_str().map(str::to_string) else {
            return Err(Error::Usage(format!(
                "the lock store of `{env}` granted no lease: {granted}"
            )));
        };
        let record = b64(serde_json::to_string(holder).unwrap_or_default().as_bytes());
        let puts = json!([
            { "request_put": { "key": lock, "value": record, "lease": id } },
            { "request_put": { "key": status, "value": Self::status_value(holder, "held") } },
        ]);
        let mut success = vec![json!({ "request_range": { "key": status } })];
        success.extend(puts.as_array().cloned().unwrap_or_default());
        let create = json!({
            "compare": [{ "key": lock, "target": "CREATE", "create_revision": "0", "result": "EQUAL" }],
            "success": success,
            "failure": [{ "request_range": { "key": lock } }],
        });
        let r = match self.client.call("/v3/kv/txn", &create) {
            Ok(r) => r,
            Err(e) => {
                self.revoke(&id);
                return Err(self.unreachable(env, e));
            }
        };
        let tenure = |r: &Value| EtcdTenure {
            client: self.client.clone(),
            lease: id.clone(),
            lock: lock.clone(),
            status: status.clone(),
            prefix: self.prefix.clone(),
            created: r["header"]["revision"].as_str().unwrap_or("0").to_string(),
            written: Some(holder.clone()),
        };
        if r["succeeded"] == true {
            // A `held` status with no lock key: its holder's lease ran out without it giving
            // the lock back.
            let followed = first_kv(&r["responses"][0]["response_range"])
                .and_then(|(_, v)| serde_json::from_slice::<Value>(&v?).ok())
                .filter(|s| s["ended"] == "held")
                .and_then(|s| serde_json::from_value::<Holder>(s["holder"].clone()).ok());
            if let Some(f) = &followed {
                self.log(
                    env,
                    json!({ "event": "expired", "holder": f, "followed_by": holder }),
                );
            }
            return Ok(Acquired {
                tenure: Box::new(tenure(&r)),
                took_over: None,
                followed,
            });
        }
        let found = first_kv(&r["responses"][0]["response_range"]);
        let (seen, old_lease, current) = match found {
            Some((kv, value)) => (
                kv["create_revision"].as_str().unwrap_or("0").to_string(),
                kv["lease"].as_str().map(str::to_string),
                self.holder_of(kv, value),
            ),
            // Gone between the two reads: its lease ran out just now. Try once more.
            None => {
                self.revoke(&id);
                return self.acquire(holder, lease, take_over);
            }
        };
        let (previous, reason) = match judge(env, current, take_over, &self.store(env)) {
            Ok(Some(t)) => t,
            Ok(None) => (None, String::new()),
            Err(refused) => {
                self.revoke(&id);
                return Err(refused);
            }
        };
        // Taken over in two steps (etcd allows one operation per key in a transaction): the
        // stale key goes, only if it is still the one judged; then this run creates its own as
        // any run would. A run that creates it in between wins, and is named.
        let mut gone = vec![json!({ "request_delete_range": { "key": lock } })];
        if let Some(p) = &previous {
            gone.push(json!({ "request_put": { "key": status, "value": Self::status_value(p, "taken over") } }));
        }
        let txn = json!({
            "compare": [{ "key": lock, "target": "CREATE", "create_revision": seen, "result": "EQUAL" }],
            "success": gone,
        });
        let r = match self
            .client
            .call("/v3/kv/txn", &txn)
            .and_then(|_| self.client.call("/v3/kv/txn", &create))
        {
            Ok(r) => r,
            Err(e) => {
                self.revoke(&id);
                return Err(self.unreachable(env, e));
            }
        };
        if r["succeeded"] != true {
            // Someone else took it first: say who.
            self.revoke(&id);
            let now = match first_kv(&r["responses"][0]["response_range"]) {
                Some((kv, value)) => self.holder_of(kv, value),
                None => State::Free,
            };
            return Err(match now {
                State::Held(h) => Error::Usage(format!(
                    "`{env}` is locked by another deployment: {}\n  help: wait for it, or if it is truly gone, `runbook unlock {env} --reason \"...\"`",
                    super::describe(&h)
                )),
                _ => Error::Usage(format!(
                    "`{env}` changed hands while this run took it over\n  help: try again"
                )),
            });
        }
        if let Some(old) = old_lease {
            self.revoke(&old);
        }
        self.log(
            env,
            json!({ "event": "takeover", "previous": previous, "reason": reason, "by": holder }),
        );
        Ok(Acquired {
            tenure: Box::new(tenure(&r)),
            took_over: Some((previous, reason)),
            followed: None,
        })
    }

    fn unlock(&self, environment: &str, reason: &str) -> Result<(State, String), Error> {
        let lock = b64(self.key("locks", environment).as_bytes());
        let status = b64(self.key("status", environment).as_bytes());
        let r = self
            .client
            .call("/v3/kv/range", &json!({ "key": lock }))
            .map_err(|e| self.unreachable(environment, e))?;
        let was = match first_kv(&r) {
            None => State::Free,
            Some((kv, value)) => {
                let held = self.holder_of(kv, value);
                let mut success = vec![json!({ "request_delete_range": { "key": lock } })];
                if let State::Held(h) = &held {
                    success.push(json!({ "request_put": { "key": status, "value": Self::status_value(h, "broken") } }));
                }
                let txn = json!({
                    "compare": [{ "key": lock, "target": "CREATE", "create_revision": kv["create_revision"], "result": "EQUAL" }],
                    "success": success,
                });
                self.client
                    .call("/v3/kv/txn", &txn)
                    .map_err(|e| self.unreachable(environment, e))?;
                if let Some(l) = kv["lease"].as_str() {
                    self.revoke(l);
                }
                held
            }
        };
        let holder = match &was {
            State::Held(h) => json!(h),
            State::Torn => json!("(a lock record that is not whole JSON)"),
            State::Free => Value::Null,
        };
        self.log(
            environment,
            json!({
                "event": "unlock",
                "ts": crate::journal::now_rfc3339(),
                "environment": environment,
                "reason": reason,
                "by": crate::identity::user(),
                "host": crate::identity::host(),
                "holder": holder,
            }),
        );
        Ok((
            was,
            format!(
                "etcd at {}, under `{}/`",
                self.endpoints(),
                self.key("log", environment)
            ),
        ))
    }

    fn statuses(&self, only: Option<&str>) -> Result<Vec<EnvStatus>, Error> {
        let env = only.unwrap_or("all environments");
        let range = |kind: &str| -> Result<Vec<Found>, Error> {
            let start = format!("{}{kind}/", self.prefix);
            let body = match only {
                Some(e) => json!({ "key": b64(self.key(kind, e).as_bytes()) }),
                None => json!({ "key": b64(start.as_bytes()), "range_end": prefix_end(&start) }),
            };
            let r = self
                .client
                .call("/v3/kv/range", &body)
                .map_err(|e| self.unreachable(env, e))?;
            Ok(r["kvs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|kv| {
                    let key = String::from_utf8(unb64(kv["key"].as_str()?)?).ok()?;
                    let name = key.strip_prefix(&start)?.to_string();
                    let value = kv["value"].as_str().and_then(unb64);
                    Some((name, kv, value))
                })
                .collect())
        };
        let mut out: std::collections::BTreeMap<String, EnvStatus> = Default::default();
        for (name, kv, value) in range("locks")? {
            let e = out.entry(name.clone()).or_default();
            e.environment = name;
            if let State::Held(h) = self.holder_of(&kv, value) {
                e.environment = h.environment.clone();
                e.holder = Some(h);
            }
        }
        for (name, _, value) in range("status")? {
            let e = out.entry(name.clone()).or_default();
            if e.environment.is_empty() {
                e.environment = name;
            }
            let v: Value = value
                .and_then(|v| serde_json::from_slice(&v).ok())
                .unwrap_or_default();
            if let Ok(h) = serde_json::from_value::<Holder>(v["holder"].clone()) {
                if e.holder.is_none() {
                    e.environment = h.environment.clone();
                }
                e.last = Some(h);
            }
            e.ended = v["ended"].as_str().map(str::to_string);
        }
        if let (Some(o), true) = (only, out.is_empty()) {
            out.insert(
                o.to_string(),
                EnvStatus {
                    environment: o.to_string(),
                    ..Default::default()
                },
            );
        }
        Ok(out.into_values().collect())
    }

    fn request_control(&self, request: &super::ControlRequest) -> Result<String, Error> {
        let env = &request.environment;
        let key = self.key("control", env);
        let value = serde_json::to_string(request).unwrap_or_default();
        self.client
            .call(
                "/v3/kv/put",
                &json!({ "key": b64(key.as_bytes()), "value": b64(value.as_bytes()) }),
            )
            .map_err(|e| self.unreachable(env, e))?;
        Ok(format!("`{key}` in etcd at {}", self.endpoints()))
    }

    fn read_control(&self, environment: &str) -> Result<Option<super::ControlRequest>, Error> {
        let key = self.key("control", environment);
        read_control(&self.client, &key).map_err(|e| self.unreachable(environment, e))
    }
}

fn control_key(prefix: &str, environment: &str) -> String {
    format!("{prefix}control/{}", crate::answers::slug(environment))
}

fn read_control(client: &Client, key: &str) -> Result<Option<super::ControlRequest>, CallError> {
    let r = client.call("/v3/kv/range", &json!({ "key": b64(key.as_bytes()) }))?;
    Ok(first_kv(&r)
        .and_then(|(_, v)| v)
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

struct EtcdTenure {
    client: Arc<Client>,
    lease: String,
    lock: String,
    status: String,
    /// `lock.etcd.prefix`, for the control key.
    prefix: String,
    /// The lock key's create revision: it is ours while it has this one.
    created: String,
    /// The holder record as last written.
    written: Option<Holder>,
}

impl EtcdTenure {
    fn lost_to(&self, range: &Value) -> Renewal {
        match first_kv(range) {
            Some((_, value)) => match value.and_then(|v| serde_json::from_slice::<Holder>(&v).ok()) {
                Some(h) => Renewal::Lost(format!("it is held now by {}", super::describe(&h))),
                None => Renewal::Lost("its key holds something else now".into()),
            },
            None => Renewal::Lost(
                "its key is gone from etcd (broken with `runbook unlock`, or its lease ran out) and nobody holds it".into(),
            ),
        }
    }
}

impl super::Tenure for EtcdTenure {
    fn renew(&mut self, holder: &Holder) -> Renewal {
        let alive = match self
            .client
            .call("/v3/lease/keepalive", &json!({ "ID": self.lease }))
        {
            Ok(v) => v,
            Err(CallError::Unreachable(why)) => return Renewal::Unreachable(why),
            Err(e) => {
                return Renewal::Lost(format!("etcd refused to renew its lease: {}", e.text()))
            }
        };
        let ttl = alive["result"]["TTL"]
            .as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        if ttl <= 0 {
            return Renewal::Lost(format!(
                "its lease {} ran out in etcd (or was revoked): the lock key went with it",
                self.lease
            ));
        }
        if self.written.as_ref() != Some(holder) {
            let record = b64(serde_json::to_string(holder).unwrap_or_default().as_bytes());
            let txn = json!({
                "compare": [{ "key": self.lock, "target": "CREATE", "create_revision": self.created, "result": "EQUAL" }],
                "success": [
                    { "request_put": { "key": self.lock, "value": record, "lease": self.lease } },
                    { "request_put": { "key": self.status, "value": EtcdBackend::status_value(holder, "held") } },
                ],
                "failure": [{ "request_range": { "key": self.lock } }],
            });
            return match self.client.call("/v3/kv/txn", &txn) {
                Ok(r) if r["succeeded"] == true => {
                    self.written = Some(holder.clone());
                    Renewal::Ours
                }
                Ok(r) => self.lost_to(&r["responses"][0]["response_range"]),
                Err(CallError::Unreachable(why)) => Renewal::Unreachable(why),
                Err(e) => Renewal::Unreachable(e.text()),
            };
        }
        match self
            .client
            .call("/v3/kv/range", &json!({ "key": self.lock }))
        {
            Ok(r) => match first_kv(&r) {
                Some((kv, _)) if kv["create_revision"].as_str() == Some(&self.created) => {
                    Renewal::Ours
                }
                _ => self.lost_to(&r),
            },
            Err(CallError::Unreachable(why)) => Renewal::Unreachable(why),
            Err(e) => Renewal::Unreachable(e.text()),
        }
    }

    fn read_control(&mut self, environment: &str) -> Option<super::ControlRequest> {
        read_control(&self.client, &control_key(&self.prefix, environment))
            .ok()
            .flatten()
    }

    fn clear_control(&mut self, environment: &str, id: &str) {
        let key = control_key(&self.prefix, environment);
        // Delete only the request read: compare its value, so a newer one written meanwhile stays.
        let Ok(Some(request)) = read_control(&self.client, &key) else {
            return;
        };
        if request.id != id {
            return;
        }
        let value = serde_json::to_string(&request).unwrap_or_default();
        let k = b64(key.as_bytes());
        let txn = json!({
            "compare": [{ "key": k, "target": "VALUE", "value": b64(value.as_bytes()), "result": "EQUAL" }],
            "success": [{ "request_delete_range": { "key": k } }],
        });
        let _ = self.client.call("/v3/kv/txn", &txn);
    }

    fn release(&mut self, holder: &Holder) {
        let txn = json!({
            "compare": [{ "key": self.lock, "target": "CREATE", "create_revision": self.created, "result": "EQUAL" }],
            "success": [
                { "request_delete_range": { "key": self.lock } },
                { "request_put": { "key": self.status, "value": EtcdBackend::status_value(holder, "released") } },
            ],
        });
        let _ = self.client.call("/v3/kv/txn", &txn);
        let _ = self
            .client
            .call("/v3/lease/revoke", &json!({ "ID": self.lease }));
    }
}
