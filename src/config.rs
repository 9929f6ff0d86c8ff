//! Team config: `runbook.yaml` merged with `--set key.path=value`. Unknown keys are errors that
//! name the key's path; nothing is silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::error::Error;

pub const FILE_NAME: &str = "runbook.yaml";

/// A duration as written in the config (`30s`, `1h 30m`): checked when the config is loaded, so a
/// value that is not one is an error naming its key and line before anything runs. Scripts see
/// it as written (`config("monitoring.interval")` is `"1s"`); Rust reads it with `get()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

impl Duration {
    /// A default written in this file; it is a duration.
    fn known(text: &str) -> Duration {
        Duration::parse(text).unwrap_or_else(|e| unreachable!("default duration {text}: {e}"))
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        Ok(Duration {
            value: parse_duration(text)?,
            text: text.to_string(),
        })
    }

    pub fn get(&self) -> std::time::Duration {
        self.value
    }
}

/// As text, for the code that still reads the value as written.
impl std::ops::Deref for Duration {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string with a duration, e.g. \"500ms\", \"5s\", \"10m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Values with a fixed set of names: serde refuses any other with the key path, the line and the
/// accepted names (`unknown variant `x`, expected one of ...`); scripts see the same names.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// The strategies the shipped workflow runs.
    Strategy { BlueGreen = "blue-green", Rolling = "rolling", Canary = "canary", FeatureFlag = "feature-flag" } default BlueGreen
}

names! {
    /// A blue-green colour.
    Colour { Blue = "blue", Green = "green" } default Blue
}

names! {
    /// What `runbook resume` does with the effect a dead run was in the middle of.
    InFlight { Rerun = "rerun", Skip = "skip", Rollback = "rollback" } default Rollback
}

names! {
    /// What an inconclusive monitoring window leads to when nobody is there to ask.
    OnInconclusive { Rollback = "rollback", Continue = "continue" } default Rollback
}

/// The triggers the shipped monitor (stdlib/monitor.rhai) judges; with the names of the team's
/// `monitoring.metrics`, the keys `triggers.on_failure` accepts.
pub const SHIPPED_TRIGGERS: &[&str] = &["error_rate", "response_time", "health", "cpu", "memory"];

thread_local! {
    /// The `monitoring.metrics` names of the config being deserialized (see `TriggerName`).
    static METRIC_NAMES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Deserialize `v`'s schema with its own `monitoring.metrics` names known, so that a key of
/// `triggers.on_failure` is checked against them where it is read (with its line).
fn knowing_metrics<T>(v: &Value, f: impl FnOnce() -> T) -> T {
    let names: Vec<String> = v
        .get("monitoring")
        .and_then(|m| m.get("metrics"))
        .and_then(Value::as_sequence)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let before = METRIC_NAMES.with(|n| std::mem::replace(&mut *n.borrow_mut(), names));
    let out = f();
    METRIC_NAMES.with(|n| *n.borrow_mut() = before);
    out
}

/// A key of `triggers.on_failure`: a trigger the monitor judges (the shipped ones, or a
/// `monitoring.metrics` name). Anything else is a typo that would be ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TriggerName(pub String);

impl<'de> Deserialize<'de> for TriggerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TriggerName, D::Error> {
        let name = String::deserialize(d)?;
        let team = METRIC_NAMES.with(|n| n.borrow().clone());
        if SHIPPED_TRIGGERS.contains(&name.as_str()) || team.contains(&name) {
            return Ok(TriggerName(name));
        }
        let known: Vec<String> = SHIPPED_TRIGGERS
            .iter()
            .map(|s| s.to_string())
            .chain(team)
            .map(|s| format!("`{s}`"))
            .collect();
        Err(serde::de::Error::custom(format!(
            "unknown trigger `{name}`, expected one of {} (the shipped triggers and the names in `monitoring.metrics`)",
            known.join(", ")
        )))
    }
}

fn bounded<'de, D, T>(d: D, lo: T, hi: T, what: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display + Copy,
{
    let v = T::deserialize(d)?;
    if v < lo || v > hi {
        return Err(serde::de::Error::custom(format!("`{v}` is not {what}")));
    }
    Ok(v)
}

/// A duration that cannot be 0 (a measurement interval, a lease, a query range).
fn nonzero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Duration::deserialize(d)?;
    if v.get().is_zero() {
        return Err(serde::de::Error::custom(format!(
            "`{}` is too short: it must be longer than 0",
            v.text
        )));
    }
    Ok(v)
}

fn nonzero_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    nonzero(d).map(Some)
}

/// A duration kubectl reads too (Go's `time.ParseDuration`: `5m`, `90s`, `1h30m`, no spaces).
fn go_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Duration::deserialize(d)?;
    let mut rest = v.text.as_str();
    let mut ok = !rest.is_empty();
    while ok && !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let unit = ["ns", "us", "µs", "ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest[digits..].starts_with(u));
        match unit {
            Some(u) if digits > 0 => rest = &rest[digits + u.len()..],
            _ => ok = false,
        }
    }
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "`{}` is not a duration kubectl reads; write it as kubectl does, e.g. \"5m\", \"90s\", \"1h30m\"",
            v.text
        )));
    }
    Ok(v)
}

/// A share of traffic or of instances: 1 to 100.
fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 1, 100, "a percent from 1 to 100")
}

fn percent_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    percent(d).map(Some)
}

fn percents<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    struct P(#[serde(deserialize_with = "percent")] u32);
    Ok(Vec::<P>::deserialize(d)?.into_iter().map(|p| p.0).collect())
}

/// A count that must be at least 1.
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    bounded(d, 1, u32::MAX, "a whole number of at least 1")
}

/// A fraction: 0 to 1 (0.05 is 5%).
fn fraction<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    bounded(d, 0.0, 1.0, "a fraction from 0 to 1 (0.05 is 5%)")
}

/// A score: 0 to 100.
fn score<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    bounded(d, 0.0, 100.0, "a score from 0 to 100")
}

/// A significance level: above 0, below 1.
fn alpha<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(v > 0.0 && v < 1.0) {
        return Err(serde::de::Error::custom(format!(
            "`{v}` is not a significance level (above 0, below 1, e.g. 0.05)"
        )));
    }
    Ok(v)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The feature being deployed: names the run's directory `deployments/<date>-<feature>/`.
    pub feature: Option<String>,
    /// The version being deployed, shown in the plan and the approval box.
    pub version: Option<String>,
    /// The version running now, which a rollback returns to.
    pub current_version: Option<String>,
    /// Where run directories go (default `deployments`, relative to the current directory).
    pub deployments_dir: Option<PathBuf>,
    /// Extra directories searched for runbooks, after ./runbooks and before the shipped ones.
    pub runbook_dirs: Vec<PathBuf>,
    /// The automated pre-deployment checks (Step 2): each a command line, or absent.
    pub checks: Checks,
    /// Which adapter the strategies drive: `local` (the embedded demo fleet), `script`, `kubernetes`.
    pub adapter: Option<String>,
    /// The strategy to use when nobody chooses one: blue-green, rolling, canary, feature-flag.
    pub strategy: Option<Strategy>,
    /// Settings of the `local` adapter (written by `runbook demo`).
    pub local: Option<LocalAdapter>,
    /// Settings of the `script` adapter: the team's own commands, templated.
    pub script: Option<ScriptAdapter>,
    /// Settings of the `kubernetes` adapter.
    pub kubernetes: KubernetesAdapter,
    pub rollout: Rollout,
    pub monitoring: Monitoring,
    pub triggers: Triggers,
    pub rolling: RollingCfg,
    /// Run without asking: the rollout schedule replaces the Stage 4 menu.
    pub unattended: bool,
    /// Files the post-deployment step appends an entry to.
    pub documentation: Documentation,
    /// One run at a time per environment.
    pub lock: LockCfg,
    /// How `runbook resume` treats the effect a dead run was in the middle of.
    pub resume: ResumeCfg,
    pub limits: Limits,
    pub commands: Commands,
    pub secrets: Secrets,
    pub notify: BTreeMap<String, Channel>,
    pub rollback: Rollback,
    /// Free-form values for the team's own scripts.
    pub vars: serde_yaml::Mapping,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    pub tests: Option<String>,
    pub integration: Option<String>,
    pub e2e: Option<String>,
    pub security: Option<String>,
    pub performance: Option<String>,
    pub build: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAdapter {
    /// The fleet's router, e.g. http://127.0.0.1:40123
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeCfg {
    /// When nobody can be asked: rerun, skip or rollback.
    pub in_flight: InFlight,
}

impl Default for ResumeCfg {
    fn default() -> Self {
        ResumeCfg {
            in_flight: InFlight::Rollback,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockCfg {
    /// The environment a run holds the lock of.
    pub environment: String,
    /// How long a lock holds without being renewed (every backend): a live run renews it every
    /// third of it.
    #[serde(deserialize_with = "nonzero")]
    pub lease: Duration,
    /// Where the lock is kept: `file` (under the deployments directory), `etcd`, `kubernetes`.
    pub backend: LockBackend,
    /// What a run does when its lock is lost, or its store unreachable, while it runs.
    pub on_lost: OnLost,
    pub etcd: EtcdLockCfg,
    pub kubernetes: KubeLockCfg,
}

impl Default for LockCfg {
    fn default() -> Self {
        LockCfg {
            environment: "production".into(),
            lease: Duration::known("30s"),
            backend: LockBackend::File,
            on_lost: OnLost::Pause,
            etcd: EtcdLockCfg::default(),
            kubernetes: KubeLockCfg::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    #[default]
    File,
    Etcd,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// Stop before the next step and ask (nobody there: wait up to one lease for the store).
    #[default]
    Pause,
    Rollback,
    Continue,
}

impl OnLost {
    pub fn as_str(self) -> &'static str {
        match self {
            OnLost::Pause => "pause",
            OnLost::Rollback => "rollback",
            OnLost::Continue => "continue",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdLockCfg {
    /// Client URLs of the etcd cluster, tried in order.
    pub endpoints: Vec<String>,
    /// Prefix of every key the locks use.
    pub prefix: String,
}

impl Default for EtcdLockCfg {
    fn default() -> Self {
        EtcdLockCfg {
            endpoints: Vec::new(),
            prefix: "runbook/".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeLockCfg {
    /// The Leases' namespace [default: `kubernetes.namespace`, else kubectl's].
    pub namespace: Option<String>,
    /// The kubectl context [default: `kubernetes.context`, else kubectl's].
    pub context: Option<String>,
    /// A Lease is named `<name_prefix>-<environment>`.
    pub name_prefix: String,
}

impl Default for KubeLockCfg {
    fn default() -> Self {
        KubeLockCfg {
            namespace: None,
            context: None,
            name_prefix: "runbook-lock".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Documentation {
    /// e.g. CHANGELOG.md: one line per deployment is appended.
    pub changelog: Option<String>,
    /// e.g. RELEASE_NOTES.md: one line per deployment is appended.
    pub release_notes: Option<String>,
}

/// Commands of the `script` adapter. Placeholders: {env} (staging, production-blue, ...),
/// {version}, {colour}, {from}, {to}, {name}, {percent}, {action} (enable/disable).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptAdapter {
    /// Deploy a version to an environment, e.g. "./deploy.sh {env}".
    pub deploy: String,
    /// A health URL (http...) or a health command, e.g. "./scripts/health-check.sh {env}".
    pub health: Option<String>,
    /// Smoke tests run after the staging deploy, e.g. "npm run test:smoke -- {env}".
    pub smoke: Option<String>,
    /// Switch traffic between colours, e.g. "./scripts/switch-traffic.sh {from}-to-{to}".
    pub switch: Option<String>,
    /// Send a share of traffic to a version, e.g. "./scripts/weight.sh {version} {percent}".
    pub weight: Option<String>,
    /// Turn a feature flag on/off or to a percentage, e.g. "./scripts/feature-flag.sh {action} {name} {percent}".
    pub flag: Option<String>,
    /// Remove a version from an environment; without it the old colour is kept.
    pub remove: Option<String>,
    /// Scale the live environment, e.g. "./scripts/scale.sh {env} {count}".
    pub scale: Option<String>,
    /// Maintenance mode on/off, e.g. "./scripts/maintenance.sh {action}" ({action}: on/off).
    pub maintenance: Option<String>,
    /// Rolling: replace one instance with a version, e.g. "./deploy.sh --instance {instance} {version}".
    pub replace: Option<String>,
    /// Rolling: the production instances, replaced in batches of `rolling.batch_size`.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Rolling: one instance's health, a URL or a command, e.g. "http://{instance}:8080/health".
    pub instance_health: Option<String>,
    /// The colour live now; the new version goes to the other one.
    #[serde(default)]
    pub live_colour: Colour,
}

/// The `kubernetes` adapter: kubectl apply of a manifest directory per environment, rollout
/// status, Istio VirtualService weights for canary, a Service selector switch for blue-green.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesAdapter {
    /// Directory with one manifest directory per environment: staging/, canary/, production/,
    /// production-blue/, production-green/.
    pub manifests: String,
    pub namespace: Option<String>,
    pub context: Option<String>,
    /// The Deployment's base name: staging is <name>-staging, the canary <name>-canary, the
    /// colours <name>-blue and <name>-green, stable <name>.
    pub deployment: String,
    /// The Service whose selector blue-green switches (selector key `color`).
    pub service: String,
    /// The Istio VirtualService whose route weights canary sets (subsets `stable` and `canary`).
    pub virtualservice: String,
    /// The destination host in the VirtualService routes [default: the service].
    pub host: Option<String>,
    /// Passed to `kubectl rollout status --timeout` as written, so written as kubectl reads it.
    #[serde(deserialize_with = "go_duration")]
    pub rollout_timeout: Duration,
    pub live_colour: Colour,
    /// Rolling: the image repository; the version is its tag (`kubectl set image`).
    pub image: Option<String>,
    /// Rolling: the container to set the image of [default: the deployment's name].
    pub container: Option<String>,
    /// Feature flags: a command, e.g. "./scripts/feature-flag.sh {action} {name} {percent}".
    pub flag: Option<String>,
    /// Feature flags: an HTTP flag API, sent `PUT {name, enabled, percent, version}` as JSON.
    pub flag_url: Option<String>,
}

impl Default for KubernetesAdapter {
    fn default() -> Self {
        KubernetesAdapter {
            manifests: "k8s".into(),
            namespace: None,
            context: None,
            deployment: "app".into(),
            service: "app".into(),
            virtualservice: "app".into(),
            host: None,
            rollout_timeout: Duration::known("5m"),
            live_colour: Colour::Blue,
            image: None,
            container: None,
            flag: None,
            flag_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollout {
    /// Initial canary weight, percent.
    #[serde(deserialize_with = "percent")]
    pub initial: u32,
    /// The schedule of weights that replaces the Stage 4 menu in unattended runs.
    #[serde(deserialize_with = "percents")]
    pub steps: Vec<u32>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            initial: 5,
            steps: vec![25, 50, 100],
        }
    }
}

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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollingCfg {
    /// Instances replaced per batch.
    #[serde(deserialize_with = "at_least_one")]
    pub batch_size: u32,
    /// Or a share of the instances per batch (percent); wins over `batch_size` when set.
    #[serde(deserialize_with = "percent_opt")]
    pub batch_percent: Option<u32>,
    /// Failed batches tolerated before the rollout stops and is undone.
    pub failure_budget: u32,
}

impl Default for RollingCfg {
    fn default() -> Self {
        RollingCfg {
            batch_size: 1,
            batch_percent: None,
            failure_budget: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Script operations before the run is stopped (an endless loop ends here).
    pub operations: u64,
    /// Wall-clock time a run may take, e.g. "4h" (none when absent).
    pub wall_clock: Option<Duration>,
    pub call_depth: usize,
    pub expr_depth: usize,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            operations: 100_000_000,
            wall_clock: None,
            call_depth: 64,
            expr_depth: 64,
            string_size: 16 * 1024 * 1024,
            array_size: 1_000_000,
            map_size: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commands {
    /// Default timeout for `sh` (e.g. "10m"); none when absent.
    pub timeout: Option<Duration>,
    /// How long a stopped command gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Bytes of each stream kept for the script and the journal; the rest streams through.
    pub capture_limit: usize,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            timeout: None,
            kill_grace: Duration::known("3s"),
            capture_limit: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// Environment variables whose values are secret (redacted everywhere).
    pub env: Vec<String>,
    /// Named secret values, readable by scripts with `secret(name)`; never shown.
    #[serde(skip_serializing)]
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Channel {
    /// POST a JSON object `{text, feature, run, channel}` to `url`.
    Webhook {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A Slack-compatible incoming webhook: POST `{"text": ...}`.
    Slack { url: String },
    /// Append one line per notification to a file.
    File { path: PathBuf },
    /// Print the notification on the terminal.
    Stdout,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Ask a person; roll back on its own when nobody is there to ask.
    #[default]
    Ask,
    /// Roll back without asking.
    Auto,
    /// Leave things as they are (the undo stack stays in rollback-plan.md).
    Never,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollback {
    pub on_failure: OnFailure,
}

/// Where the config came from, for error messages and relative paths.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    /// The merged YAML, as scripts see it through `config()`.
    pub value: Value,
}

impl Loaded {
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .as_ref()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// Load `explicit` (or ./runbook.yaml when it exists) and apply `--set` overrides.
pub fn load(explicit: Option<&Path>, sets: &[String]) -> Result<Loaded, Error> {
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = PathBuf::from(FILE_NAME);
            p.is_file().then_some(p)
        }
    };
    let mut value = match &file {
        Some(path) => {
            let text = crate::error::read_text("config", path)?;
            parse(&text, &path.display().to_string())?
        }
        None => Value::Mapping(Default::default()),
    };

    for set in sets {
        apply_set(&mut value, set)?;
    }
    let config = match coerced(&mut value) {
        Ok(c) => c,
        Err(err) => {
            let key = err.path().to_string();
            let message = strip_location(&err.inner().to_string());
            return Err(
                match sets
                    .iter()
                    .find(|s| s.split('=').next() == Some(key.as_str()))
                {
                    Some(arg) => Error::SetOverride {
                        arg: arg.clone(),
                        message,
                    },
                    None => Error::SetOverride {
                        arg: sets.join(" "),
                        message: format!("at `{key}`: {message}"),
                    },
                },
            );
        }
    };
    let shown = file
        .as_ref()
        .map_or_else(|| "--set".to_string(), |f| f.display().to_string());
    if let Some(script) = &config.script {
        check_script_templates(script, &shown)?;
    }
    check_references(&config, &shown)?;
    Ok(Loaded {
        config,
        file,
        value,
    })
}

/// The adapters the binary ships (stdlib/<name>.rhai).
pub const SHIPPED_ADAPTERS: &[&str] = &["local", "script", "kubernetes"];

/// `adapter` names a shipped adapter or a team's `<name>.rhai` beside the runbook (`base`): any
/// other name is a typo the run would only find when it imports it.
pub fn check_adapter(loaded: &Loaded, base: &Path) -> Result<(), Error> {
    let Some(name) = &loaded.config.adapter else {
        return Ok(());
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if SHIPPED_ADAPTERS.contains(&name.as_str())
        || (plain && base.join(format!("{name}.rhai")).is_file())
    {
        return Ok(());
    }
    // The line of a top-level `adapter:` in the file, when it was written there.
    let location = loaded.file.as_ref().and_then(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().enumerate().find_map(|(i, l)| {
            let rest = l.strip_prefix("adapter:")?;
            let value = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
            (value == name).then(|| (i + 1, l.len() - rest.trim_start().len() + 1))
        })
    });
    Err(Error::Config {
        file: loaded
            .file
            .as_ref()
            .map_or_else(|| "--set".into(), |f| f.display().to_string()),
        key: "adapter".into(),
        message: format!(
            "unknown adapter `{name}`, expected one of `local`, `script`, `kubernetes`, or a team's adapter `<name>.rhai` beside the runbook (there is no `{}`)",
            base.join(format!("{name}.rhai")).display()
        ),
        location,
    })
}

/// Values that name something else in the config, or that the schema keeps as text: the
/// channels `monitoring.notify` tells, and the durations of `monitoring.metrics` providers.
fn check_references(config: &Config, file: &str) -> Result<(), Error> {
    let bad = |key: String, message: String| Error::Config {
        file: file.to_string(),
        key,
        message,
        location: None,
    };
    for (i, name) in config.monitoring.notify.iter().enumerate() {
        if !config.notify.contains_key(name) {
            let known: Vec<String> = config.notify.keys().map(|k| format!("`{k}`")).collect();
            return Err(bad(
                format!("monitoring.notify[{i}]"),
                format!(
                    "unknown channel `{name}`, expected one of the channels under `notify:` ({})",
                    if known.is_empty() {
                        "none is configured".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let j = &config.monitoring.judge;
    if j.marginal > j.pass {
        return Err(bad(
            "monitoring.judge.marginal".into(),
            format!(
                "`{}` is above `monitoring.judge.pass` ({}): the marginal score cannot be above the passing one",
                j.marginal, j.pass
            ),
        ));
    }
    for (i, m) in j.metrics.iter().enumerate() {
        if !j.groups.is_empty() && !j.groups.contains_key(&m.group) {
            let known: Vec<String> = j.groups.keys().map(|k| format!("`{k}`")).collect();
            return Err(bad(
                format!("monitoring.judge.metrics[{i}].group"),
                format!(
                    "unknown group `{}`, expected one of the groups weighted in `monitoring.judge.groups` ({})",
                    m.group,
                    known.join(", ")
                ),
            ));
        }
        if m.allowed < 0.0 || m.allowed_absolute < 0.0 {
            return Err(bad(
                format!("monitoring.judge.metrics[{i}]"),
                "`allowed` and `allowed_absolute` cannot be negative".into(),
            ));
        }
    }
    for (group, weight) in &j.groups {
        if !j.metrics.iter().any(|m| &m.group == group) {
            let used: std::collections::BTreeSet<String> =
                j.metrics.iter().map(|m| format!("`{}`", m.group)).collect();
            return Err(bad(
                format!("monitoring.judge.groups.{group}"),
                format!(
                    "no judge metric is in group `{group}` (the metrics' groups: {})",
                    if used.is_empty() {
                        "none".to_string()
                    } else {
                        used.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        if weight.is_nan() || *weight < 0.0 {
            return Err(bad(
                format!("monitoring.judge.groups.{group}"),
                format!("`{weight}` is not a weight (a number of at least 0)"),
            ));
        }
    }
    // URLs the program itself requests (a `script.*` URL may be a command instead).
    let mut urls: Vec<(String, &str)> = vec![];
    let mon = &config.monitoring;
    for (key, url) in [
        ("monitoring.prometheus", &mon.prometheus),
        ("monitoring.metrics_url", &mon.metrics_url),
        ("kubernetes.flag_url", &config.kubernetes.flag_url),
    ] {
        if let Some(u) = url {
            urls.push((key.to_string(), u));
        }
    }
    if let Some(l) = &config.local {
        urls.push(("local.url".into(), &l.url));
    }
    for (name, ch) in &config.notify {
        if let Channel::Webhook { url, .. } | Channel::Slack { url } = ch {
            urls.push((format!("notify.{name}.url"), url));
        }
    }
    for (key, url) in urls {
        let scheme = reqwest::Url::parse(url).map(|u| u.scheme().to_string());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err(bad(
                key,
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
    }
    for (i, m) in config.monitoring.metrics.iter().enumerate() {
        let Some(p) = &m.provider else { continue };
        let mut durations: Vec<(&str, &Option<String>)> = Vec::new();
        if let Some(x) = &p.prometheus {
            durations.extend([
                ("prometheus.range", &x.range),
                ("prometheus.step", &x.step),
                ("prometheus.timeout", &x.timeout),
            ]);
        }
        if let Some(x) = &p.scrape {
            durations.push(("scrape.timeout", &x.timeout));
        }
        if let Some(x) = &p.http {
            durations.push(("http.timeout", &x.timeout));
        }
        if let Some(x) = &p.command {
            durations.push(("command.timeout", &x.timeout));
        }
        for (key, text) in durations {
            if let Some(t) = text {
                parse_duration(t).map_err(|message| {
                    bad(format!("monitoring.metrics[{i}].provider.{key}"), message)
                })?;
            }
        }
    }
    Ok(())
}

/// The script adapter quotes every value it puts into a command for the shell; a placeholder the
/// template quotes itself (`'{env}'`) would be quoted twice, and the command would see the quotes.
fn check_script_templates(script: &ScriptAdapter, file: &str) -> Result<(), Error> {
    let templates = [
        ("deploy", Some(&script.deploy)),
        ("health", script.health.as_ref()),
        ("smoke", script.smoke.as_ref()),
        ("switch", script.switch.as_ref()),
        ("weight", script.weight.as_ref()),
        ("flag", script.flag.as_ref()),
        ("remove", script.remove.as_ref()),
        ("scale", script.scale.as_ref()),
        ("maintenance", script.maintenance.as_ref()),
        ("replace", script.replace.as_ref()),
        ("instance_health", script.instance_health.as_ref()),
    ];
    for (key, template) in templates {
        let Some(template) = template else { continue };
        let known = script_placeholders(key);
        if let Some(unknown) = placeholders(template)
            .into_iter()
            .find(|p| !known.contains(&p.as_str()))
        {
            let hint = crate::error::did_you_mean(&unknown, known.iter().copied())
                .map(|s| format!(" (did you mean `{{{s}}}`?)"))
                .unwrap_or_default();
            return Err(Error::Config {
                file: file.to_string(),
                key: format!("script.{key}"),
                message: format!(
                    "`{{{unknown}}}` is not a placeholder of `script.{key}`{hint}: it would reach the command as written; its placeholders are {}",
                    known.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                ),
                location: None,
            });
        }
        if let Some(quoted) = quoted_placeholder(template) {
            return Err(Error::Config {
                file: file.to_string(),
                key: format!("script.{key}"),
                message: format!(
                    "the placeholder {quoted} is quoted in the template; runbook quotes every value \
                     it substitutes for the shell, so write the placeholder outside quotes"
                ),
                location: None,
            });
        }
    }
    Ok(())
}

/// The placeholders the script adapter fills in for each `script.*` template (stdlib/script.rhai).
fn script_placeholders(key: &str) -> &'static [&'static str] {
    match key {
        "deploy" | "health" | "smoke" | "remove" => &["env", "version", "colour"],
        "switch" => &["from", "to", "from_version", "to_version", "version"],
        "weight" => &[
            "version",
            "percent",
            "colour",
            "other",
            "other_percent",
            "other_colour",
        ],
        "flag" => &["action", "name", "percent", "version"],
        "scale" => &["env", "count", "version"],
        "maintenance" => &["action"],
        "replace" => &["instance", "version", "env"],
        "instance_health" => &["instance", "version"],
        _ => &[],
    }
}

/// The `{name}` placeholders of a template, in order.
fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find('}') {
            let name = &rest[..j];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The first placeholder written inside shell quotes (`'{env}'`, `"app-{version}"`), if any.
fn quoted_placeholder(template: &str) -> Option<String> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in template.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (None, '\'') | (None, '"') => quote = Some(c),
            (None, '\\') | (Some('"'), '\\') => escaped = true,
            (Some(q), '{') => {
                let rest = &template[i + 1..];
                let name = &rest[..rest.find('}')?];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Some(format!("{{{name}}} (inside {q}...{q})"));
                }
            }
            _ => {}
        }
    }
    None
}

/// How deep brackets and braces may nest in a YAML input. The YAML parser's cost grows with the
/// square of the nesting (100k levels took a minute), and no config or answers file nests deeper
/// than a handful of levels.
pub const MAX_NESTING: usize = 64;

/// Where a YAML text's flow collections (`[`, `{`) first nest deeper than `MAX_NESTING`, as
/// (line, column), both from 1. Quoted text and comments are skipped.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            prev = c;
            continue;
        }
        match quote {
            _ if comment => {}
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':') => {
                    quote = Some(c)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

/// Check a runbook.yaml text against the schema and return it as YAML (`shown` names it in errors).
pub fn parse(text: &str, shown: &str) -> Result<Value, Error> {
    if let Some(at) = too_deep(text) {
        return Err(Error::Config {
            file: shown.to_string(),
            key: String::new(),
            message: format!("it nests more than {MAX_NESTING} levels deep"),
            location: Some(at),
        });
    }
    let uses_env = text.contains("${");
    // Deserialize straight from the text first: that way errors carry line and column. A file
    // that takes values from the environment is checked once they are filled in (below).
    if !uses_env {
        let names = serde_yaml::from_str(text).unwrap_or(Value::Null);
        let de = serde_yaml::Deserializer::from_str(text);
        if let Err(err) =
            knowing_metrics(&names, || serde_path_to_error::deserialize::<_, Config>(de))
        {
            return Err(config_error(shown, err));
        }
    }
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| Error::Config {
        file: shown.to_string(),
        key: String::new(),
        message: e.to_string(),
        location: e.location().map(|l| (l.line(), l.column())),
    })?;
    if uses_env {
        expand_env(&mut v, "", shown, &|name| std::env::var(name).ok())?;
        if let Err(err) = coerced(&mut v) {
            return Err(Error::Config {
                file: shown.to_string(),
                key: err.path().to_string(),
                message: strip_location(&err.inner().to_string()),
                location: None,
            });
        }
    }
    Ok(if v.is_null() {
        Value::Mapping(Default::default())
    } else {
        v
    })
}

/// Deserialize, giving a scalar the type its key expects where it was written as another: a
/// number or a bool where text is expected becomes its text (`--set version=2`), and text where
/// a number or a bool is expected is read as one (`samples: ${SAMPLES}`). Anything else is the
/// schema's error, with its key path.
fn coerced(v: &mut Value) -> Result<Config, serde_path_to_error::Error<serde_yaml::Error>> {
    for _ in 0..64 {
        let err = match knowing_metrics(v, || serde_path_to_error::deserialize(v.clone())) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let msg = err.inner().to_string();
        let fixed = msg.starts_with("invalid type: ")
            && at_path(v, err.path()).is_some_and(|node| {
                let wants_text = msg.contains("expected a string");
                let next = match &*node {
                    Value::Number(n) if wants_text => Some(Value::String(n.to_string())),
                    Value::Bool(b) if wants_text => Some(Value::String(b.to_string())),
                    Value::String(t) if !wants_text => match serde_yaml::from_str::<Value>(t) {
                        Ok(x @ (Value::Number(_) | Value::Bool(_))) => Some(x),
                        _ => None,
                    },
                    _ => None,
                };
                match next {
                    Some(x) => {
                        *node = x;
                        true
                    }
                    None => false,
                }
            });
        if !fixed {
            return Err(err);
        }
    }
    knowing_metrics(v, || serde_path_to_error::deserialize(v.clone()))
}

/// The value at a deserializer's error path.
fn at_path<'a>(v: &'a mut Value, path: &serde_path_to_error::Path) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    let mut node = v;
    for seg in path.iter() {
        node = match seg {
            Segment::Map { key } => node.get_mut(key.as_str())?,
            Segment::Seq { index } => node.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// `${NAME}` in a string value is the environment variable NAME (unset is an error naming the key
/// and the variable); `$${` is a literal `${`. The result is text; `coerced` gives it the type its
/// key expects (`samples: ${SAMPLES}` is a number).
fn expand_env(
    v: &mut Value,
    key: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Error> {
    let child = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let name = k.as_str().map(str::to_string).unwrap_or_default();
                expand_env(item, &child(&name), file, lookup)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{key}[{i}]"), file, lookup)?;
            }
        }
        Value::String(text) if text.contains('$') => {
            let bad = |message: String| Error::Config {
                file: file.to_string(),
                key: key.to_string(),
                message,
                location: None,
            };
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i..];
                if let Some(r) = after.strip_prefix("$${") {
                    out.push_str("${");
                    rest = r;
                } else if let Some(r) = after.strip_prefix("${") {
                    let end = r.find('}').ok_or_else(|| {
                        bad(format!("`${{` without a closing `}}` in {text:?} (write `$${{` for a literal `${{`)"))
                    })?;
                    let name = &r[..end];
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit());
                    if !valid {
                        return Err(bad(format!(
                            "`${{{name}}}` is not an environment variable name (letters, digits and `_`); write `$${{` for a literal `${{`"
                        )));
                    }
                    let value = lookup(name).ok_or_else(|| {
                        bad(format!(
                            "the environment variable `{name}` is not set (the value is {text:?}); set it, or write `$${{` for a literal `${{`"
                        ))
                    })?;
                    out.push_str(&value);
                    rest = &r[end + 1..];
                } else {
                    out.push('$');
                    rest = &after[1..];
                }
            }
            out.push_str(rest);
            // Typed by the key it lands in (`samples: ${SAMPLES}` is a number): see `coerced`.
            *v = Value::String(out);
        }
        _ => {}
    }
    Ok(())
}

fn config_error(file: &str, err: serde_path_to_error::Error<serde_yaml::Error>) -> Error {
    let key = err.path().to_string();
    let inner = err.inner();
    let message = strip_location(&inner.to_string());
    // serde_yaml starts nested messages with the parent's path ("limits: unknown field ...").
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if key.starts_with(prefix) && !prefix.contains(' ') => {
            rest.to_string()
        }
        _ => message,
    };
    Error::Config {
        file: file.to_string(),
        key: if key == "." { String::new() } else { key },
        message,
        location: inner.location().map(|l| (l.line(), l.column())),
    }
}

/// serde_yaml appends " at line L column C"; we show the place ourselves.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `key.path=value`: the value is read as a YAML scalar (so numbers and booleans keep their type),
/// and kept as text when the key expects text.
fn apply_set(root: &mut Value, arg: &str) -> Result<(), Error> {
    let bad = |message: &str| Error::SetOverride {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = arg.split_once('=').ok_or_else(|| bad("there is no `=`"))?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("the key is empty or has an empty part"));
    }
    if too_deep(raw).is_some() {
        return Err(bad(&format!(
            "the value nests more than {MAX_NESTING} levels deep"
        )));
    }
    let parsed: Value = serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let parsed = match parsed {
        Value::Null if !raw.trim().is_empty() && raw.trim() != "null" && raw.trim() != "~" => {
            Value::String(raw.into())
        }
        // A number that does not print back as written (1.10, 007) is text, e.g. a version.
        Value::Number(n) if n.to_string() != raw.trim() => Value::String(raw.into()),
        v => v,
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            other => {
                *other = Value::Mapping(Default::default());
                match other {
                    Value::Mapping(m) => m,
                    _ => unreachable!("just assigned a mapping"),
                }
            }
        };
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, parsed);
            return Ok(());
        }
        node = map
            .entry(k)
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    Ok(())
}

/// The value scripts see as `config()`: every key, the merged file's value or its default (a key
/// with no default is there as `()`), `feature` the run's (by default the runbook's file name),
/// and the secrets' names without their values.
pub fn script_view(loaded: &Loaded, feature: &str) -> serde_json::Value {
    use serde_json::{json, Value as J};
    let c = &loaded.config;
    let mut v = serde_json::to_value(c).unwrap_or(J::Null);
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    map.insert("feature".into(), json!(feature));
    map.insert(
        "deployments_dir".into(),
        json!(c
            .deployments_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("deployments"))),
    );
    // The adapters' sections are there with their defaults when the file leaves them out.
    if c.local.is_none() {
        map.insert("local".into(), json!({ "url": null }));
    }
    if c.script.is_none() {
        let mut script = serde_json::to_value(ScriptAdapter::default()).unwrap_or(J::Null);
        script["deploy"] = J::Null;
        map.insert("script".into(), script);
    }
    let k = &c.kubernetes;
    map["kubernetes"]["host"] = json!(k.host.as_ref().unwrap_or(&k.service));
    map["kubernetes"]["container"] = json!(k.container.as_ref().unwrap_or(&k.deployment));
    if c.triggers.inconclusive_limit.is_none() {
        map["triggers"]["inconclusive_limit"] = json!(c.monitoring.samples.saturating_mul(2));
    }
    let names: serde_json::Map<String, J> = c
        .secrets
        .values
        .keys()
        .map(|k| (k.clone(), J::Null))
        .collect();
    map["secrets"]["values"] = J::Object(names);
    v
}

/// A duration from the config at `key`; a bad one is a config error naming the key.
pub fn duration_at(loaded: &Loaded, key: &str, text: &str) -> Result<std::time::Duration, Error> {
    parse_duration(text).map_err(|message| Error::Config {
        file: loaded
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "--set".into()),
        key: key.into(),
        message,
        location: None,
    })
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"500ms\", \"5s\", \"10m\"")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_is_measured_outside_quotes_and_comments() {
        let deep = "[".repeat(65);
        assert_eq!(too_deep(&format!("a: {deep}")), Some((1, 68)));
        assert_eq!(
            too_deep(&format!("a: \"{deep}\"\nb: '{deep}' # {deep}\n")),
            None
        );
        assert_eq!(too_deep(&format!("a: [{}]", "[1], ".repeat(500))), None);
        assert_eq!(too_deep("a: [[1]]\nb: {c: [2]}\n"), None);
    }

    use super::*;

    #[test]
    fn set_keeps_versions_as_text_and_numbers_as_numbers() {
        let mut v = Value::Mapping(Default::default());
        apply_set(&mut v, "version=1.10").unwrap();
        apply_set(&mut v, "limits.operations=500").unwrap();
        apply_set(&mut v, "vars.region=eu-west-1").unwrap();
        let c: Config = serde_yaml::from_value(v).unwrap();
        assert_eq!(c.version.as_deref(), Some("1.10"));
        assert_eq!(c.limits.operations, 500);
        assert_eq!(
            c.vars.get("region").and_then(Value::as_str),
            Some("eu-west-1")
        );
    }

    #[test]
    fn set_without_equals_is_an_error() {
        let mut v = Value::Mapping(Default::default());
        assert!(apply_set(&mut v, "feature").is_err());
        assert!(apply_set(&mut v, "a..b=1").is_err());
    }
}
