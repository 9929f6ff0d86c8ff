//! Metric providers: where a number comes from.
//!
//! - `prometheus`: the Prometheus HTTP API, instant (`/api/v1/query`) or range
//!   (`/api/v1/query_range`) PromQL queries; vectors, scalars and matrices.
//! - `scrape`: a Prometheus text-format endpoint (parsed by the prometheus-parse crate), with
//!   label selection and counter rates computed between scrapes.
//! - `http`: a number selected from a JSON answer by a path (`data.items[0].value` or a JSON
//!   pointer `/data/items/0/value`).
//! - `command`: the number a command prints (its last line).
//! - `check`: a health check (as `check`): 1 when it passes, 0 when it fails.
//!
//! A provider read returns a [`Reading`] (what the journal keeps, so a resumed run reads the same
//! numbers); [`Rates`] turns counter readings into rates. Every read has a timeout and a cap on
//! the answer's size: down, slow, HTTP errors, Prometheus error JSON, garbage and huge answers are
//! all [`Observed::Error`], never a panic, a hang or a pass.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Observed;

mod command;
mod http;
mod prometheus;
mod scrape;

pub use http::{json_pointer, json_value};
pub use prometheus::{one_value, result as prometheus_result, series as prometheus_series};

/// How a provider is written in runbook.yaml or a script: `{ prometheus: {...} }` etc., exactly
/// one of the five. (A struct, not an enum: YAML writes it as a plain map.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PromSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// A health check's options, as `check` takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromSpec {
    /// Prometheus' base URL, e.g. http://127.0.0.1:9090. In `monitoring.metrics` it may be left
    /// out: the shipped monitor fills in `monitoring.prometheus`.
    #[serde(default)]
    pub url: String,
    pub query: String,
    /// A range query over this much time before now (e.g. "1m"); absent: an instant query.
    pub range: Option<String>,
    /// The range query's resolution (default: range / 30, at least 1s).
    pub step: Option<String>,
    /// How several series combine into one number; absent: several series are an outcome.
    pub aggregate: Option<Reduce>,
    /// How a range query's points combine into one number (default avg).
    pub reduce: Option<Reduce>,
    pub timeout: Option<String>,
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSpec {
    pub url: String,
    /// The sample name (a histogram's `_sum` and `_count` are names too).
    pub metric: String,
    /// Labels a series must have (exact values).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Counter rates: `interval` (since the previous scrape) or `cumulative` (since the analysis
    /// began); absent: the value as it is.
    pub rate: Option<RateMode>,
    /// Divide by another sample of the same labels (with `rate`: by its increase), e.g. errors
    /// by requests, or a latency sum by its count.
    pub divide_by: Option<String>,
    /// With `divide_by` and `rate`: fewer new denominator events than this is no data.
    pub min_count: Option<f64>,
    /// Multiply the result (1000 turns seconds into milliseconds).
    pub scale: Option<f64>,
    pub aggregate: Option<Reduce>,
    pub timeout: Option<String>,
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    pub path: String,
    pub timeout: Option<String>,
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The command line, run by `/bin/sh -c` (named `cmd` as `check`'s is; `run` is its older
    /// name, still accepted).
    #[serde(alias = "run")]
    pub cmd: String,
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    Sum,
    Avg,
    Min,
    Max,
    Last,
}

impl Reduce {
    pub fn apply(self, xs: &[f64]) -> f64 {
        match self {
            Reduce::Sum => xs.iter().sum(),
            Reduce::Avg => xs.iter().sum::<f64>() / xs.len() as f64,
            Reduce::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
            Reduce::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Reduce::Last => *xs.last().unwrap_or(&f64::NAN),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateMode {
    Interval,
    Cumulative,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_BYTES: usize = 8 << 20;

/// A provider ready to read: durations parsed, a check parsed.
#[derive(Debug, Clone)]
pub enum Provider {
    Prometheus {
        spec: PromSpec,
        range: Option<Duration>,
        step: Duration,
        timeout: Duration,
    },
    Scrape {
        spec: ScrapeSpec,
        timeout: Duration,
    },
    Http {
        spec: HttpSpec,
        pointer: String,
        timeout: Duration,
    },
    Command {
        run: String,
        timeout: Duration,
    },
    Check(Box<crate::health::Spec>),
}

fn duration(v: &Option<String>, what: &str) -> Result<Option<Duration>, String> {
    v.as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(|e| format!("`{what}`: {e}"))
}

fn http_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        Err("no `url` (in `monitoring.metrics`, set `monitoring.prometheus` or the metric's own `url`)".into())
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http:// or https:// URL"))
    }
}

impl Provider {
    pub fn new(spec: &ProviderSpec) -> Result<Provider, String> {
        let s = spec;
        Ok(
            match (&s.prometheus, &s.scrape, &s.http, &s.command, &s.check) {
                (Some(p), None, None, None, None) => {
                    http_url(&p.url)?;
                    if p.query.trim().is_empty() {
                        return Err("`query` is empty".into());
                    }
                    let range = duration(&p.range, "range")?;
                    let step = match duration(&p.step, "step")? {
                        Some(s) if s.is_zero() => return Err("`step` cannot be 0".into()),
                        Some(s) => s,
                        None => range
                            .map(|r| (r / 30).max(Duration::from_secs(1)))
                            .unwrap_or(Duration::from_secs(1)),
                    };
                    Provider::Prometheus {
                        spec: p.clone(),
                        range,
                        step,
                        timeout: duration(&p.timeout, "timeout")?.unwrap_or(DEFAULT_TIMEOUT),
                    }
                }
                (None, Some(sc), None, None, None) => {
                    http_url(&sc.url)?;
                    Provider::Scrape {
                        spec: sc.clone(),
                        timeout: duration(&sc.timeout, "timeout")?.unwrap_or(DEFAULT_TIMEOUT),
                    }
                }
                (None, None, Some(h), None, None) => {
                    http_url(&h.url)?;
                    Provider::Http {
                        pointer: json_pointer(&h.path)?,
                        spec: h.clone(),
                        timeout: duration(&h.timeout, "timeout")?.unwrap_or(DEFAULT_TIMEOUT),
                    }
                }
                (None, None, None, Some(c), None) => Provider::Command {
                    run: c.cmd.clone(),
                    timeout: duration(&c.timeout, "timeout")?.unwrap_or(DEFAULT_TIMEOUT),
                },
                (None, None, None, None, Some(v)) => {
                    let map = crate::opts::from_json(v)
                        .try_cast::<rhai::Map>()
                        .ok_or("`check` takes a check's options, e.g. { http: \"http://...\" }")?;
                    Provider::Check(Box::new(
                        crate::health::parse(&map).map_err(|e| e.to_string())?,
                    ))
                }
                _ => {
                    let given = [
                        s.prometheus.is_some(),
                        s.scrape.is_some(),
                        s.http.is_some(),
                        s.command.is_some(),
                        s.check.is_some(),
                    ]
                    .iter()
                    .filter(|g| **g)
                    .count();
                    return Err(format!(
                    "a provider is exactly one of prometheus, scrape, http, command or check ({given} given)"
                ));
                }
            },
        )
    }

    /// What the journal's intent says about this provider.
    pub fn describe(&self) -> Value {
        match self {
            Provider::Prometheus { spec, .. } => {
                json!({ "prometheus": spec.url, "query": spec.query, "range": spec.range })
            }
            Provider::Scrape { spec, .. } => {
                json!({ "scrape": spec.url, "metric": spec.metric, "labels": spec.labels })
            }
            Provider::Http { spec, .. } => json!({ "http": spec.url, "path": spec.path }),
            Provider::Command { run, .. } => json!({ "command": run }),
            Provider::Check(c) => json!({ "check": c.name() }),
        }
    }

    /// The URL it reads, where it reads one.
    pub fn url(&self) -> Option<&str> {
        match self {
            Provider::Prometheus { spec, .. } => Some(&spec.url),
            Provider::Scrape { spec, .. } => Some(&spec.url),
            Provider::Http { spec, .. } => Some(&spec.url),
            Provider::Command { .. } | Provider::Check(_) => None,
        }
    }

    /// Whether reading it needs the TLS client.
    pub fn https(&self) -> bool {
        match self {
            Provider::Prometheus { spec, .. } => spec.url.starts_with("https://"),
            Provider::Scrape { spec, .. } => spec.url.starts_with("https://"),
            Provider::Http { spec, .. } => spec.url.starts_with("https://"),
            Provider::Command { .. } => false,
            Provider::Check(c) => c.https(),
        }
    }

    /// The health check it reads, when it reads one.
    pub fn check(&self) -> Option<&crate::health::Spec> {
        match self {
            Provider::Check(c) => Some(c),
            _ => None,
        }
    }

    /// Whether readings are counters that need a first scrape to rate against.
    pub fn needs_baseline(&self) -> bool {
        matches!(self, Provider::Scrape { spec, .. } if spec.rate.is_some())
    }
}

fn counters(num: f64, den: Option<f64>, at: f64) -> Value {
    json!({ "outcome": "counters", "num": num, "den": den, "at": at })
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// GET `url` (with `query` parameters), within `timeout` for the whole answer, reading at most
/// `max` bytes.
pub async fn get_text(
    client: &crate::net::Client,
    url: &str,
    query: &[(&str, String)],
    timeout: Duration,
    max: usize,
) -> Result<(u16, String), String> {
    let full = if query.is_empty() {
        reqwest::Url::parse(url)
    } else {
        reqwest::Url::parse_with_params(url, query)
    }
    .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match tokio::time::timeout(timeout, client.request("GET", full.as_str(), true, max)).await {
        Err(_) => Err(format!(
            "no answer within {} (timeout)",
            crate::ui::format_duration(timeout)
        )),
        Ok(r) => r.map(|a| (a.status, String::from_utf8_lossy(&a.body).into_owned())),
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.trim().chars().take(80).collect();
    if text.trim().chars().count() > 80 {
        format!("{t}…")
    } else {
        t
    }
}

/// Read the provider once. Never panics; every failure is an `error` observation.
pub async fn read(
    client: crate::net::Client,
    provider: Provider,
    runner: crate::process::Runner,
) -> Value {
    match read_inner(&client, &provider, runner).await {
        Ok(v) => v,
        // Every provider error names where it read, so a dead server is found by its address.
        Err(e) => match provider.url() {
            Some(url) if !e.contains(url) => Observed::Error(format!("{url}: {e}")).to_json(),
            _ => Observed::Error(e).to_json(),
        },
    }
}

async fn read_inner(
    client: &crate::net::Client,
    provider: &Provider,
    runner: crate::process::Runner,
) -> Result<Value, String> {
    match provider {
        Provider::Prometheus { spec, .. } => {
            let series = prometheus::series(client, provider).await?;
            Ok(
                prometheus::one_value(series, spec.aggregate, spec.reduce.unwrap_or(Reduce::Avg))
                    .to_json(),
            )
        }
        Provider::Scrape { spec, timeout } => scrape::read(client, spec, *timeout).await,
        Provider::Http {
            spec,
            pointer,
            timeout,
        } => http::read(client, spec, pointer, *timeout).await,
        Provider::Command { run, timeout } => command::read(run, *timeout, runner).await,
        Provider::Check(spec) => {
            let o = crate::health::run(client.clone(), (**spec).clone(), runner).await;
            Ok(
                json!({ "outcome": "value", "value": if o.ok() { 1.0 } else { 0.0 }, "note": o.detail() }),
            )
        }
    }
}

/// Counter state between scrapes, one slot per metric.
#[derive(Debug, Default)]
pub struct Rates {
    prev: BTreeMap<String, (f64, Option<f64>, f64)>,
}

impl Rates {
    /// Turn a reading into an observation. Counter readings become rates against the previous
    /// reading of the same metric (or the first one, for `cumulative`); the first reading of a
    /// metric only sets the base.
    pub fn observe(&mut self, key: &str, provider: &Provider, reading: &Value) -> Option<Observed> {
        if reading.get("outcome").and_then(Value::as_str) != Some("counters") {
            return Some(Observed::from_json(reading));
        }
        let Provider::Scrape { spec, .. } = provider else {
            return Some(Observed::Error(
                "counters from a provider that has none".into(),
            ));
        };
        let num = reading["num"].as_f64().unwrap_or(f64::NAN);
        let den = reading["den"].as_f64();
        let at = reading["at"].as_f64().unwrap_or(0.0);
        let Some(&(pn, pd, pat)) = self.prev.get(key) else {
            self.prev.insert(key.to_string(), (num, den, at));
            return None;
        };
        if spec.rate == Some(RateMode::Interval) {
            self.prev.insert(key.to_string(), (num, den, at));
        }
        // A counter that went down was reset: its increase is its new value.
        let inc = |cur: f64, prev: f64| if cur < prev { cur } else { cur - prev };
        let dn = inc(num, pn);
        let scale = spec.scale.unwrap_or(1.0);
        Some(match (den, pd) {
            (Some(d), Some(p)) => {
                let dd = inc(d, p);
                let min = spec.min_count.unwrap_or(1.0);
                if dd < min || dd == 0.0 {
                    Observed::NoData(format!(
                        "{} new {} (fewer than {min})",
                        dd,
                        spec.divide_by.as_deref().unwrap_or("events")
                    ))
                } else {
                    Observed::number(dn / dd * scale)
                }
            }
            _ => {
                let dt = at - pat;
                if dt <= 0.0 {
                    Observed::NoData("two scrapes at the same instant".into())
                } else {
                    Observed::number(dn / dt * scale)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(rate: RateMode, divide: bool, min: Option<f64>) -> Provider {
        Provider::Scrape {
            spec: ScrapeSpec {
                url: "http://x/metrics".into(),
                metric: "errors".into(),
                labels: BTreeMap::new(),
                rate: Some(rate),
                divide_by: divide.then(|| "requests".to_string()),
                min_count: min,
                scale: None,
                aggregate: None,
                timeout: None,
                max_bytes: None,
            },
            timeout: DEFAULT_TIMEOUT,
        }
    }

    #[test]
    fn counter_rates_between_scrapes() {
        // Per second, since the previous scrape.
        let p = scrape(RateMode::Interval, false, None);
        let mut r = Rates::default();
        assert_eq!(r.observe("m", &p, &counters(100.0, None, 10.0)), None);
        assert_eq!(
            r.observe("m", &p, &counters(150.0, None, 12.0)),
            Some(Observed::Value(25.0))
        );
        assert_eq!(
            r.observe("m", &p, &counters(160.0, None, 13.0)),
            Some(Observed::Value(10.0))
        );
        // A counter that went down was reset: its increase is its new value.
        assert_eq!(
            r.observe("m", &p, &counters(4.0, None, 14.0)),
            Some(Observed::Value(4.0))
        );
        // Two readings at the same instant: no data, not a division by zero.
        assert!(matches!(
            r.observe("m", &p, &counters(5.0, None, 14.0)),
            Some(Observed::NoData(_))
        ));
    }

    #[test]
    fn ratios_of_increases_with_a_minimum_count() {
        // Cumulative: against the first reading, whatever came between.
        let p = scrape(RateMode::Cumulative, true, Some(10.0));
        let mut r = Rates::default();
        assert_eq!(r.observe("e", &p, &counters(0.0, Some(100.0), 0.0)), None);
        // 5 new requests: fewer than 10, no data.
        let o = r
            .observe("e", &p, &counters(1.0, Some(105.0), 1.0))
            .unwrap();
        assert!(
            matches!(&o, Observed::NoData(w) if w.contains("fewer than 10")),
            "{o:?}"
        );
        assert_eq!(
            r.observe("e", &p, &counters(2.0, Some(120.0), 2.0)),
            Some(Observed::Value(0.1))
        );
        assert_eq!(
            r.observe("e", &p, &counters(8.0, Some(140.0), 3.0)),
            Some(Observed::Value(0.2))
        );
        // Not counters (an error reading) pass through as they are, and keep the base.
        let err = Observed::Error("down".into()).to_json();
        assert_eq!(
            r.observe("e", &p, &err),
            Some(Observed::Error("down".into()))
        );
        assert_eq!(
            r.observe("e", &p, &counters(8.0, Some(140.0), 4.0)),
            Some(Observed::Value(0.2))
        );
    }

    #[test]
    fn paths_become_json_pointers() {
        assert_eq!(
            json_pointer("data.items[0].value").unwrap(),
            "/data/items/0/value"
        );
        assert_eq!(json_pointer("/a/b").unwrap(), "/a/b");
        assert_eq!(json_pointer("a[1][2]").unwrap(), "/a/1/2");
        assert!(json_pointer("a[x]").is_err());
        assert!(json_pointer("a..b").is_err());
        let doc = json!({ "data": { "items": [{ "value": "0.5" }], "none": null, "obj": {} } });
        assert_eq!(
            json_value(&doc, &json_pointer("data.items[0].value").unwrap(), "p"),
            Observed::Value(0.5)
        );
        assert!(matches!(
            json_value(&doc, "/data/none", "p"),
            Observed::NoData(_)
        ));
        assert!(matches!(
            json_value(&doc, "/data/missing", "p"),
            Observed::NoData(_)
        ));
        assert!(matches!(
            json_value(&doc, "/data/obj", "p"),
            Observed::Error(_)
        ));
        assert_eq!(json_value(&json!([1, 2]), "", "p"), Observed::Multiple(2));
    }

    #[test]
    fn prometheus_answers_are_read_or_refused() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"v":"1"},"value":[1,"0.25"]}]}}"#;
        let s = prometheus_result(200, vector).unwrap();
        assert_eq!(one_value(s, None, Reduce::Avg), Observed::Value(0.25));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            one_value(prometheus_result(200, empty).unwrap(), None, Reduce::Avg),
            Observed::Empty
        );
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert_eq!(
            one_value(prometheus_result(200, nan).unwrap(), None, Reduce::Avg),
            Observed::NaN
        );
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},{"metric":{},"value":[1,"3"]}]}}"#;
        assert_eq!(
            one_value(prometheus_result(200, two).unwrap(), None, Reduce::Avg),
            Observed::Multiple(2)
        );
        assert_eq!(
            one_value(
                prometheus_result(200, two).unwrap(),
                Some(Reduce::Sum),
                Reduce::Avg
            ),
            Observed::Value(4.0)
        );
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"3"]]}]}}"#;
        assert_eq!(
            one_value(prometheus_result(200, matrix).unwrap(), None, Reduce::Max),
            Observed::Value(3.0)
        );
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = prometheus_result(400, err).unwrap_err();
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
        assert!(prometheus_result(200, "<html>oops</html>")
            .unwrap_err()
            .contains("not JSON"));
        assert!(prometheus_result(502, "Bad Gateway")
            .unwrap_err()
            .contains("HTTP 502"));
        assert!(prometheus_result(
            200,
            r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#
        )
        .is_err());
        assert!(prometheus_result(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"x"]}]}}"#
        )
        .is_err());
    }
}
