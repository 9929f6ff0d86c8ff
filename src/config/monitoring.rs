//! `monitoring:` (providers, the judge, the scraped series, the queries) and `triggers:`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::values::{
    alpha, at_least_one, fraction, nonzero, nonzero_opt, score, Duration, OnInconclusive,
    TriggerName,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Monitoring {
    /// Time between measurements.
    #[serde(deserialize_with = "nonzero")]
    pub interval: Duration,
    /// Conclusive measurements per monitoring window (after each traffic change).
    #[serde(deserialize_with = "at_least_one")]
    pub samples: u32,
    /// Prometheus text endpoint with per-version request, error and latency series (scraped
    /// directly when `prometheus` is not set).
    pub metrics_url: Option<String>,
    /// A Prometheus server's base URL: the triggers are then PromQL queries (`queries`).
    pub prometheus: Option<String>,
    /// PromQL for each trigger; `{{version}}` is replaced by the version being watched.
    pub queries: Queries,
    /// The series names of the scraped endpoint (`metrics_url`), and the label naming a version.
    pub series: Series,
    /// Business metrics shown in the monitor: label -> metric name in the scrape.
    pub business: BTreeMap<String, String>,
    /// Fewer new requests than this in a measurement leave it without data (scrape source).
    pub min_requests: u32,
    /// What an inconclusive window leads to when nobody is there to ask: rollback or continue.
    pub on_inconclusive: OnInconclusive,
    /// What each data outcome counts as: pass, fail or inconclusive.
    pub on_no_data: crate::analysis::DataOutcome,
    pub on_empty: crate::analysis::DataOutcome,
    pub on_nan: crate::analysis::DataOutcome,
    pub on_multiple: crate::analysis::DataOutcome,
    /// Channels told when a metric fails and its action is `continue`.
    pub notify: Vec<String>,
    /// The team's own metrics, judged beside the shipped triggers.
    pub metrics: Vec<crate::analysis::spec::MetricSpec>,
    /// Canary against baseline (with `prometheus`): after each canary window below 100%.
    pub judge: JudgeCfg,
}

/// The second judge: each metric's PromQL (with `{{version}}`) read over `range` for the canary
/// and for the baseline (the current version), compared by `judge`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeCfg {
    #[serde(deserialize_with = "nonzero")]
    pub range: Duration,
    #[serde(deserialize_with = "nonzero_opt")]
    pub step: Option<Duration>,
    #[serde(deserialize_with = "score")]
    pub pass: f64,
    #[serde(deserialize_with = "score")]
    pub marginal: f64,
    #[serde(deserialize_with = "alpha")]
    pub alpha: f64,
    pub groups: BTreeMap<String, f64>,
    pub metrics: Vec<JudgeMetricCfg>,
}

impl Default for JudgeCfg {
    fn default() -> Self {
        JudgeCfg {
            range: Duration::known("1m"),
            step: None,
            pass: 95.0,
            marginal: 75.0,
            alpha: 0.05,
            groups: BTreeMap::new(),
            metrics: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeMetricCfg {
    pub name: String,
    pub query: String,
    #[serde(default)]
    pub direction: crate::analysis::judge::Direction,
    #[serde(default = "crate::analysis::judge::default_allowed")]
    pub allowed: f64,
    #[serde(default)]
    pub allowed_absolute: f64,
    #[serde(default = "crate::analysis::judge::default_group")]
    pub group: String,
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub on_missing: crate::analysis::judge::OnMissing,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            interval: Duration::known("1s"),
            samples: 5,
            metrics_url: None,
            prometheus: None,
            queries: Queries::default(),
            series: Series::default(),
            business: BTreeMap::new(),
            min_requests: 10,
            on_inconclusive: OnInconclusive::Rollback,
            on_no_data: Default::default(),
            on_empty: Default::default(),
            on_nan: Default::default(),
            on_multiple: Default::default(),
            notify: Vec::new(),
            metrics: Vec::new(),
            judge: JudgeCfg::default(),
        }
    }
}

/// The series a scraped endpoint exports per version (defaults: the demo fleet's names).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Series {
    /// Requests counter.
    pub requests: String,
    /// Failed requests counter (5xx).
    pub errors: String,
    /// A latency histogram's (or summary's) `_sum` and `_count`, in seconds.
    pub latency_sum: String,
    pub latency_count: String,
    /// The label whose value is the version.
    pub version_label: String,
    /// A CPU-seconds counter (no version label), rated between scrapes: the fraction of a core
    /// in use, judged by `triggers.cpu`.
    pub cpu_seconds: Option<String>,
    /// Resident memory in bytes, over `memory_total` (bytes): judged by `triggers.memory`.
    pub memory_bytes: Option<String>,
    pub memory_total: Option<String>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            requests: "demo_requests_total".into(),
            errors: "demo_errors_total".into(),
            latency_sum: "demo_request_duration_seconds_sum".into(),
            latency_count: "demo_request_duration_seconds_count".into(),
            version_label: "version".into(),
            cpu_seconds: None,
            memory_bytes: None,
            memory_total: None,
        }
    }
}

/// PromQL for the shipped triggers. `{{version}}` is the version being watched.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queries {
    /// Errors over requests (0.05 = 5%).
    pub error_rate: Option<String>,
    /// Average response time in milliseconds.
    pub response_time: Option<String>,
    /// CPU and memory use as a fraction (0..1).
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// Requests per second to the version (shown, not judged): with it the post-mortem
    /// estimates the failed requests from the error rate.
    pub requests: Option<String>,
}

/// The seed's automatic rollback triggers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Triggers {
    /// Error rate above which the release is rolled back (0.05 = 5%).
    #[serde(deserialize_with = "fraction")]
    pub error_rate: f64,
    /// Average response time above which the release is rolled back.
    pub response_time: Duration,
    /// Consecutive failed health checks before rollback.
    #[serde(deserialize_with = "at_least_one")]
    pub health_failures: u32,
    /// CPU and memory use (0..1) counted as critical, when a source reports them.
    #[serde(deserialize_with = "fraction")]
    pub cpu: f64,
    #[serde(deserialize_with = "fraction")]
    pub memory: f64,
    /// Failed measurements tolerated per trigger in a window; one more fires it.
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated per trigger in a window (default: twice `samples`).
    pub inconclusive_limit: Option<u32>,
    /// Provider errors in a row tolerated per trigger; one more ends the window in error.
    pub consecutive_error_limit: u32,
    /// Per trigger (error_rate, response_time, health, cpu, memory): rollback, ask or continue.
    pub on_failure: BTreeMap<TriggerName, crate::analysis::spec::Action>,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            error_rate: 0.05,
            response_time: Duration::known("2s"),
            health_failures: 1,
            cpu: 0.9,
            memory: 0.9,
            failure_limit: 1,
            inconclusive_limit: None,
            consecutive_error_limit: 4,
            on_failure: BTreeMap::new(),
        }
    }
}
