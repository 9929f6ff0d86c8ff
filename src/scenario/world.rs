//! The world of a scenario: what each effect of a simulated run answers, instead of acting.
//! Commands and HTTP by pattern (`*` matches any text; the first pattern that matches wins),
//! metrics by name and version, one value per measurement (the last repeats). Notifications and
//! file writes are always answered as done (and remembered), so a scenario can expect them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Value};
use wildmatch::WildMatch;

use crate::effects::Failure;

/// The world as a scenario file writes it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSpec>,
    #[serde(default)]
    pub commands: IndexMap<String, OneOrMany<CommandResult>>,
    #[serde(default)]
    pub http: IndexMap<String, OneOrMany<HttpResult>>,
    /// What an effect the world does not describe does: `fail` (the scenario stops with an error
    /// naming it) or `ok` (a command exits 0, a request answers 200, a metric has no data).
    #[serde(default)]
    pub default: DefaultRule,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultRule {
    #[default]
    Fail,
    Ok,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn nth(&self, n: usize) -> T {
        match self {
            OneOrMany::One(t) => t.clone(),
            OneOrMany::Many(v) => v[n.min(v.len() - 1)].clone(),
        }
    }
    fn is_empty(&self) -> bool {
        matches!(self, OneOrMany::Many(v) if v.is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    #[serde(default)]
    pub exit: i32,
    /// How long it takes, on the virtual clock (e.g. `20s`).
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpResult {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub after: Option<String>,
}

fn ok_status() -> u16 {
    200
}

/// A metric: one series for every version, or a series per version.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MetricSpec {
    Series(OneOrMany<Reading>),
    ByVersion(BTreeMap<String, OneOrMany<Reading>>),
}

/// One measurement: a number, or what came back instead of one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Reading {
    Number(f64),
    /// `no_data`, `empty`, `nan`, `multiple`, or `down` (the provider cannot be read).
    Word(String),
    /// `~` / null: no data.
    Nothing(()),
}

pub const READING_WORDS: &[&str] = &["no_data", "empty", "nan", "multiple", "down"];

impl Reading {
    fn observed(&self) -> Value {
        match self {
            Reading::Number(v) => json!({ "outcome": "value", "value": v }),
            Reading::Nothing(()) => {
                json!({ "outcome": "no_data", "why": "no data (simulated)" })
            }
            Reading::Word(w) => match w.as_str() {
                "empty" => json!({ "outcome": "empty" }),
                "nan" => json!({ "outcome": "nan" }),
                "multiple" => json!({ "outcome": "multiple", "series": 2 }),
                "down" => {
                    json!({ "outcome": "error", "why": "cannot connect (simulated: the provider is down)" })
                }
                _ => json!({ "outcome": "no_data", "why": "no data (simulated)" }),
            },
        }
    }
}

/// Problems in a world as written, each with the key it is at (for the scenario's error).
pub fn validate(spec: &Spec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (pattern, r) in &spec.commands {
        if r.is_empty() {
            out.push((
                pattern.clone(),
                "an empty list: give at least one result".into(),
            ));
        }
        for c in all(r) {
            if let Some(a) = &c.after {
                if let Err(e) = humantime::parse_duration(a) {
                    out.push((
                        pattern.clone(),
                        format!("`after: {a}` is not a duration ({e}); write e.g. `20s` or `2m`"),
                    ));
                }
            }
        }
    }
    for (pattern, r) in &spec.http {
        if r.is_empty() {
            out.push((
                pattern.clone(),
                "an empty list: give at least one answer".into(),
            ));
        }
        for h in all(r) {
            if let Some(a) = &h.after {
                if let Err(e) = humantime::parse_duration(a) {
                    out.push((
                        pattern.clone(),
                        format!("`after: {a}` is not a duration ({e}); write e.g. `200ms`"),
                    ));
                }
            }
        }
    }
    for (name, m) in &spec.metrics {
        let series: Vec<&OneOrMany<Reading>> = match m {
            MetricSpec::Series(s) => vec![s],
            MetricSpec::ByVersion(v) => v.values().collect(),
        };
        for s in series {
            if s.is_empty() {
                out.push((
                    name.clone(),
                    "an empty list: give at least one value".into(),
                ));
            }
            for r in all(s) {
                if let Reading::Word(w) = r {
                    if !READING_WORDS.contains(&w.as_str()) {
                        out.push((
                            name.clone(),
                            format!(
                                "`{w}` is not a reading: write a number, or one of {}",
                                READING_WORDS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn all<T>(r: &OneOrMany<T>) -> Vec<&T> {
    match r {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(v) => v.iter().collect(),
    }
}

fn duration(text: &Option<String>) -> Duration {
    text.as_deref()
        .and_then(|a| humantime::parse_duration(a).ok())
        .unwrap_or_default()
}

/// How the world answers one effect.
#[derive(Debug)]
pub enum Answer {
    /// Not an effect on the outside (an undo that calls the runbook's own function): carry it
    /// out; its own effects pass the gate, and the world answers them.
    Act,
    /// The result, and how long it took on the virtual clock.
    Done(Result<Value, Failure>, Duration),
    /// The world does not describe it and its default is `fail`: the scenario stops, naming it.
    Miss(String),
}

/// A world in use: the spec, and what has been asked of it so far.
#[derive(Debug)]
pub struct World {
    spec: Spec,
    commands: Vec<(WildMatch, String)>,
    http: Vec<(WildMatch, String)>,
    /// Calls per pattern, so a list answers successive calls in order.
    calls: HashMap<String, usize>,
    /// Measurements per metric and version.
    cursors: HashMap<String, usize>,
    /// Channels notified, in order (a channel once).
    pub notified: Vec<String>,
}

impl World {
    pub fn new(spec: Spec) -> World {
        let commands = spec
            .commands
            .keys()
            .map(|k| (WildMatch::new(k), k.clone()))
            .collect();
        let http = spec
            .http
            .keys()
            .map(|k| (WildMatch::new(k), k.clone()))
            .collect();
        World {
            spec,
            commands,
            http,
            calls: HashMap::new(),
            cursors: HashMap::new(),
            notified: Vec::new(),
        }
    }

    pub fn answer(&mut self, kind: &str, name: &str, intent: &Value) -> Answer {
        match kind {
            "sh" => {
                let command = intent["command"].as_str().unwrap_or(name);
                let timeout = intent["timeout_ms"].as_u64().map(Duration::from_millis);
                match self.command(command, name) {
                    // Longer than its timeout: stopped at the timeout, as the runner would.
                    Answer::Done(_, after) if timeout.is_some_and(|t| after > t) => {
                        let t = timeout.unwrap_or_default();
                        let v = json!({
                            "code": null, "signal": 9, "stdout": "", "stderr": "",
                            "truncated": false, "timed_out": true, "interrupted": false,
                            "duration_ms": t.as_millis() as u64,
                        });
                        Answer::Done(
                            Err(Failure(
                                format!(
                                    "command `{name}` timed out after {}",
                                    crate::ui::format_duration(t)
                                ),
                                v,
                            )),
                            t,
                        )
                    }
                    other => other,
                }
            }
            "undo" => match intent["action"]["kind"].as_str() {
                Some("command") => {
                    let line = intent["action"]["line"].as_str().unwrap_or("");
                    self.command(line, name)
                }
                Some("argv") => {
                    let argv: Vec<&str> = intent["action"]["argv"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    self.command(&argv.join(" "), name)
                }
                _ => Answer::Act,
            },
            "http" => {
                let method = intent["method"].as_str().unwrap_or("GET");
                let url = intent["url"].as_str().unwrap_or("");
                let allow_fail = intent["allow_fail"].as_bool().unwrap_or(false);
                match self.request(method, url) {
                    Err(miss) => Answer::Miss(miss),
                    Ok((status, body, after)) => {
                        let v = json!({ "status": status, "body": body, "ms": after.as_millis() as u64 });
                        let r = if (200..300).contains(&status) || allow_fail {
                            Ok(v)
                        } else {
                            Err(Failure(
                                format!("`{name}` answered {status}: {}", body.trim()),
                                Value::Null,
                            ))
                        };
                        Answer::Done(r, after)
                    }
                }
            }
            "scrape" => {
                let url = intent["url"].as_str().unwrap_or("");
                match self.request("GET", url) {
                    Err(miss) => Answer::Miss(miss),
                    Ok((status, body, after)) if (200..300).contains(&status) => {
                        Answer::Done(Ok(json!({ "status": status, "body": body })), after)
                    }
                    Ok((status, _, after)) => Answer::Done(
                        Err(format!("scrape of {url} failed: it answered {status}").into()),
                        after,
                    ),
                }
            }
            "check" => match self.check(intent) {
                Err(miss) => Answer::Miss(miss),
                Ok((v, after)) => {
                    let r = if v["ok"] == true {
                        Ok(v)
                    } else {
                        Err(Failure(
                            format!(
                                "check `{}` failed: {}",
                                v["name"].as_str().unwrap_or(name),
                                v["detail"].as_str().unwrap_or("")
                            ),
                            v,
                        ))
                    };
                    Answer::Done(r, after)
                }
            },
            "check_all" => {
                let mut results = Vec::new();
                let mut longest = Duration::ZERO;
                for c in intent["checks"].as_array().into_iter().flatten() {
                    match self.check(c) {
                        Err(miss) => return Answer::Miss(miss),
                        Ok((v, after)) => {
                            longest = longest.max(after);
                            results.push(v);
                        }
                    }
                }
                let failed = results.iter().filter(|r| r["ok"] != true).count();
                let n = results.len();
                let v = json!({ "results": results, "failed": failed });
                let r = if failed == 0 {
                    Ok(v)
                } else {
                    Err(Failure(format!("{failed} of {n} checks failed"), v))
                };
                // They run at the same time: as long as the slowest.
                Answer::Done(r, longest)
            }
            "measure" if intent.get("providers").is_some() => {
                let version = intent["version"].as_str().unwrap_or("").to_string();
                let baseline = intent["baseline"].as_bool().unwrap_or(false);
                let mut readings = serde_json::Map::new();
                let mut longest = Duration::ZERO;
                for p in intent["providers"].as_array().into_iter().flatten() {
                    let metric = p["metric"].as_str().unwrap_or("").to_string();
                    // A health check read as a metric: answered as the check is, 1 or 0.
                    if p["check"].is_object() && !self.spec.metrics.contains_key(&metric) {
                        match self.check(&p["check"]) {
                            Ok((v, after)) => {
                                longest = longest.max(after);
                                let ok = if v["ok"] == true { 1.0 } else { 0.0 };
                                readings.insert(
                                    metric,
                                    json!({ "outcome": "value", "value": ok, "note": v["detail"] }),
                                );
                                continue;
                            }
                            Err(miss) => return Answer::Miss(miss),
                        }
                    }
                    // The first read of counters only sets their base: it takes no value.
                    match self.reading(&metric, &version, !baseline) {
                        Ok(r) => {
                            readings.insert(metric, r);
                        }
                        Err(miss) => return Answer::Miss(miss),
                    }
                }
                Answer::Done(Ok(json!({ "readings": readings })), longest)
            }
            // One reading (`measure(provider)`, `probe(provider)`): it looks, and takes no value
            // from the series (the analysis's measurements do).
            "measure" | "probe" => {
                let metric = intent["metric"].as_str().unwrap_or("").to_string();
                let version = intent["version"].as_str().unwrap_or("").to_string();
                if metric.is_empty() {
                    return self.undescribed(
                        format!(
                            "{kind} of {} (the runbook gave it no metric name, so the world cannot describe it)",
                            intent["provider"]
                        ),
                        json!({ "outcome": "no_data", "why": "no data (simulated)" }),
                    );
                }
                match self.reading(&metric, &version, false) {
                    Ok(r) => Answer::Done(Ok(r), Duration::ZERO),
                    Err(miss) => Answer::Miss(miss),
                }
            }
            "samples" => self.undescribed(
                format!("the range query `{name}` (samples)"),
                json!({ "points": [] }),
            ),
            "notify" => {
                let channel = intent["channel"].as_str().unwrap_or(name).to_string();
                if !self.notified.contains(&channel) {
                    self.notified.push(channel);
                }
                Answer::Done(Ok(json!({ "simulated": true })), Duration::ZERO)
            }
            "write_file" | "append_file" => Answer::Done(
                Ok(json!({ "written": intent["bytes"], "simulated": true })),
                Duration::ZERO,
            ),
            _ => self.undescribed(
                format!("the effect {kind} `{name}`"),
                json!({ "simulated": true }),
            ),
        }
    }

    fn undescribed(&self, what: String, ok: Value) -> Answer {
        match self.spec.default {
            DefaultRule::Ok => Answer::Done(Ok(ok), Duration::ZERO),
            DefaultRule::Fail => Answer::Miss(format!(
                "the world does not describe {what}, and its `default` is `fail`"
            )),
        }
    }

    fn command(&mut self, command: &str, name: &str) -> Answer {
        let found = self
            .commands
            .iter()
            .find(|(m, _)| m.matches(command))
            .map(|(_, k)| k.clone());
        let result = match found {
            Some(k) => {
                let n = self.calls.entry(format!("sh {k}")).or_default();
                let r = self.spec.commands[&k].nth(*n);
                *n += 1;
                r
            }
            None if self.spec.default == DefaultRule::Ok => CommandResult::default(),
            None => {
                return Answer::Miss(format!(
                    "the world does not describe the command `{command}`: add a pattern for it under `world.commands` (e.g. `\"{}\": {{ exit: 0 }}`), or set `world.default: ok`",
                    pattern_hint(command)
                ))
            }
        };
        let after = duration(&result.after);
        let v = json!({
            "code": result.exit,
            "signal": null,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "truncated": false,
            "timed_out": false,
            "interrupted": false,
            "duration_ms": after.as_millis() as u64,
        });
        let r = if result.exit == 0 {
            Ok(v)
        } else {
            let tail = result.stderr.trim();
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            Err(Failure(
                format!(
                    "command `{name}` failed with exit code {}{tail}",
                    result.exit
                ),
                v,
            ))
        };
        Answer::Done(r, after)
    }

    /// The answer to `METHOD url`: (status, body, after), or what is missing.
    fn request(&mut self, method: &str, url: &str) -> Result<(u16, String, Duration), String> {
        let with_method = format!("{method} {url}");
        let found = self
            .http
            .iter()
            .find(|(m, k)| {
                // A pattern is `METHOD url-pattern`, or a URL pattern alone (any method).
                if k.split_once(' ')
                    .is_some_and(|(m, _)| m.chars().all(|c| c.is_ascii_uppercase()))
                {
                    m.matches(&with_method)
                } else {
                    m.matches(url)
                }
            })
            .map(|(_, k)| k.clone());
        match found {
            Some(k) => {
                let n = self.calls.entry(format!("http {k}")).or_default();
                let r = self.spec.http[&k].nth(*n);
                *n += 1;
                Ok((r.status, r.body, duration(&r.after)))
            }
            None if self.spec.default == DefaultRule::Ok => Ok((200, String::new(), Duration::ZERO)),
            None => Err(format!(
                "the world does not describe `{with_method}`: add a pattern for it under `world.http` (e.g. `\"{method} {}\": {{ status: 200 }}`), or set `world.default: ok`",
                pattern_hint(url)
            )),
        }
    }

    /// A health check's outcome (as `check` journals it), from the command or request it makes.
    fn check(&mut self, spec: &Value) -> Result<(Value, Duration), String> {
        let name = spec["name"].as_str().unwrap_or("check").to_string();
        let target = &spec["target"];
        let (ok, detail, after) = if let Some(url) = target["http"].as_str() {
            let method = target["method"].as_str().unwrap_or("GET");
            let (status, body, after) = self.request(method, url)?;
            let want = target["status"].as_u64();
            let status_ok = match want {
                Some(w) => u64::from(status) == w,
                None => (200..300).contains(&status),
            };
            let contains_ok = target["contains"].as_str().is_none_or(|c| body.contains(c));
            let detail = if !status_ok {
                format!("HTTP {status}")
            } else if !contains_ok {
                format!(
                    "HTTP {status}, but the body lacks `{}`",
                    target["contains"].as_str().unwrap_or("")
                )
            } else {
                format!("HTTP {status}")
            };
            (status_ok && contains_ok, detail, after)
        } else if let Some(cmd) = target["cmd"].as_str() {
            match self.command(cmd, &name) {
                Answer::Miss(m) => return Err(m),
                Answer::Done(Ok(v), after) => (true, format!("exit {}", v["code"]), after),
                Answer::Done(Err(Failure(_, v)), after) => {
                    (false, format!("exit {}", v["code"]), after)
                }
                Answer::Act => (true, String::new(), Duration::ZERO),
            }
        } else if let Some(addr) = target["tcp"].as_str() {
            let (status, _, after) = self.request("TCP", addr)?;
            let ok = (200..300).contains(&status);
            (
                ok,
                if ok { "connected" } else { "refused" }.to_string(),
                after,
            )
        } else {
            return Err(format!(
                "the check `{name}` has no target the world can answer"
            ));
        };
        Ok((
            json!({ "name": name, "ok": ok, "detail": format!("{detail} (simulated)"), "ms": after.as_millis() as u64, "attempts": 1 }),
            after,
        ))
    }

    /// The next reading of `metric` for `version`; `take`: a measurement, which moves the
    /// series on (a look does not).
    fn reading(&mut self, metric: &str, version: &str, take: bool) -> Result<Value, String> {
        let Some(m) = self.spec.metrics.get(metric) else {
            return match self.spec.default {
                DefaultRule::Ok => {
                    Ok(json!({ "outcome": "no_data", "why": "no data (simulated: the world does not describe it)" }))
                }
                DefaultRule::Fail => Err(format!(
                    "the world does not describe the metric `{metric}`: add it under `world.metrics` (e.g. `{metric}: {{ {}: [0.01] }}`), or set `world.default: ok` (no data)",
                    if version.is_empty() { "v2" } else { version }
                )),
            };
        };
        let (series, key) = match m {
            MetricSpec::Series(s) => (s, metric.to_string()),
            MetricSpec::ByVersion(by) => match by.get(version) {
                Some(s) => (s, format!("{metric}@{version}")),
                // One version described: it stands for the metric whatever version is read.
                None if by.len() == 1 => {
                    let (v, s) = by.iter().next().expect("one entry");
                    (s, format!("{metric}@{v}"))
                }
                None => {
                    return Err(format!(
                        "the world describes the metric `{metric}` for {} but not for `{version}`, which the run reads: add `{version}: [...]` under `world.metrics.{metric}`",
                        by.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ))
                }
            },
        };
        let n = self.cursors.entry(key).or_default();
        let r = series.nth(*n);
        if take {
            *n += 1;
        }
        Ok(r.observed())
    }
}

/// A pattern that would match `text`: its first word and a `*`.
fn pattern_hint(text: &str) -> String {
    match text.split_once(' ') {
        Some((first, _)) => format!("{first} *"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(yaml: &str) -> World {
        World::new(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn a_metric_series_gives_one_value_per_measurement_and_the_last_repeats() {
        let mut w = world("metrics: { error_rate: { v2: [0.01, 0.09] } }");
        let read = |w: &mut World| match w.answer(
            "measure",
            "w",
            &json!({ "version": "v2", "providers": [{ "metric": "error_rate" }] }),
        ) {
            Answer::Done(Ok(v), _) => v["readings"]["error_rate"]["value"].as_f64().unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(read(&mut w), 0.01);
        assert_eq!(read(&mut w), 0.09);
        assert_eq!(read(&mut w), 0.09);
    }

    #[test]
    fn commands_match_by_pattern_and_a_list_answers_calls_in_order() {
        let mut w = world(
            "commands: { \"./deploy.sh *\": [{ exit: 1, stderr: boom }, { exit: 0, after: 20s }] }",
        );
        let run = |w: &mut World| match w.answer(
            "sh",
            "d",
            &json!({ "command": "./deploy.sh 'staging'" }),
        ) {
            Answer::Done(r, after) => (r.is_ok(), after),
            other => panic!("{other:?}"),
        };
        assert_eq!(run(&mut w), (false, Duration::ZERO));
        assert_eq!(run(&mut w), (true, Duration::from_secs(20)));
        match w.answer("sh", "x", &json!({ "command": "rm -rf /" })) {
            Answer::Miss(m) => assert!(m.contains("`rm -rf /`"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_patterns_name_a_method_or_match_any() {
        let mut w = world("http: { \"GET */health\": { status: 503 }, \"*/weights\": {} }");
        match w.answer(
            "http",
            "h",
            &json!({ "method": "GET", "url": "http://a/health" }),
        ) {
            Answer::Done(Err(_), _) => {}
            other => panic!("{other:?}"),
        }
        match w.answer(
            "http",
            "h",
            &json!({ "method": "POST", "url": "http://a/weights" }),
        ) {
            Answer::Done(Ok(v), _) => assert_eq!(v["status"], 200),
            other => panic!("{other:?}"),
        }
        match w.answer(
            "http",
            "h",
            &json!({ "method": "POST", "url": "http://a/health" }),
        ) {
            Answer::Miss(_) => {}
            other => panic!("{other:?}"),
        }
    }
}
