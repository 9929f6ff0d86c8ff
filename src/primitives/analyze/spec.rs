//! A metric of `analyze` as the script wrote it: its spec read and checked, its conditions, its
//! limits and what to do on failure.

use std::collections::VecDeque;

use rhai::{Array, Dynamic, FnPtr, Map};
use serde_json::Value;

use super::{fail, to_json, RhaiResult};
use crate::analysis::provider::Provider;
use crate::analysis::spec::{Action, MetricSpec};
use crate::analysis::{Class, DataPolicy, Limits, Observed, Tally, Threshold, Verdict};

pub(super) enum Cond {
    Threshold(Threshold),
    Closure(FnPtr),
}

pub(super) struct Metric {
    pub(super) spec: MetricSpec,
    pub(super) label: String,
    pub(super) provider: Option<Provider>,
    pub(super) compute: Option<FnPtr>,
    pub(super) success: Option<Cond>,
    pub(super) failure: Option<Cond>,
    pub(super) limits: Limits,
    pub(super) policy: DataPolicy,
    pub(super) action: Action,
    pub(super) tally: Tally,
    pub(super) verdict: Option<(Verdict, String)>,
    /// Failed, but the action said go on (or a person did).
    pub(super) continued: bool,
    pub(super) last: Option<(Observed, Class, Option<String>)>,
    /// The last few measurements: the evidence shown when a person is asked.
    pub(super) recent: VecDeque<(u32, Observed, Class)>,
}

pub(super) const OPTIONS: &[&str] = &[
    "name",
    "version",
    "interval",
    "count",
    "max_count",
    "duration",
    "initial_delay",
    "metrics",
    "business",
    "unmeasured",
    "feature",
    "notify",
];

fn spec_error(what: &str, e: impl std::fmt::Display) -> Box<rhai::EvalAltResult> {
    fail(format!("{what}: {e}"))
}

/// Deserialize a script's map (as JSON) into `T`, naming the key that is wrong.
pub(super) fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> RhaiResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        spec_error(
            &if path == "." {
                what.to_string()
            } else {
                format!("{what}, at `{path}`")
            },
            e.into_inner(),
        )
    })
}

fn take_fn(map: &mut Map, key: &str) -> Option<FnPtr> {
    if map.get(key).is_some_and(|v| v.is::<FnPtr>()) {
        map.remove(key).and_then(|v| v.try_cast::<FnPtr>())
    } else {
        None
    }
}

fn cond(
    text: &Option<String>,
    f: Option<FnPtr>,
    metric: &str,
    which: &str,
) -> RhaiResult<Option<Cond>> {
    if let Some(f) = f {
        return Ok(Some(Cond::Closure(f)));
    }
    text.as_deref()
        .map(|t| {
            Threshold::parse(t)
                .map(Cond::Threshold)
                .map_err(|e| fail(format!("metric `{metric}` {which}: {e}")))
        })
        .transpose()
}

fn metric_from(v: &Dynamic, judged: bool, defaults: &DataPolicy) -> RhaiResult<Metric> {
    let mut map = v
        .read_lock::<Map>()
        .map(|m| m.clone())
        .ok_or_else(|| fail(format!("each metric is a map, not {}", v.type_name())))?;
    let success_fn = take_fn(&mut map, "success");
    let failure_fn = take_fn(&mut map, "failure");
    let compute = take_fn(&mut map, "compute");
    let name = map
        .get("name")
        .map(|n| n.to_string())
        .unwrap_or_else(|| "(unnamed)".into());
    let spec: MetricSpec = typed(
        &to_json(&Dynamic::from_map(map)),
        &format!("metric `{name}`"),
    )?;
    metric_of(spec, compute, success_fn, failure_fn, judged, defaults)
}

fn metric_of(
    spec: MetricSpec,
    compute: Option<FnPtr>,
    success_fn: Option<FnPtr>,
    failure_fn: Option<FnPtr>,
    judged: bool,
    defaults: &DataPolicy,
) -> RhaiResult<Metric> {
    let name = spec.name.clone();
    if name.trim().is_empty() {
        return Err(fail("a metric needs a `name`"));
    }
    let provider = match (&spec.provider, &compute) {
        (Some(p), None) => Some(
            Provider::new(p).map_err(|e| fail(format!("metric `{name}` provider: {e}")))?,
        ),
        (None, Some(_)) => None,
        (Some(_), Some(_)) => {
            return Err(fail(format!(
                "metric `{name}` has both a `provider` and `compute`: give one"
            )))
        }
        (None, None) => {
            return Err(fail(format!(
                "metric `{name}` needs a `provider` (prometheus, scrape, http, command or check) or a `compute` closure"
            )))
        }
    };
    let success = cond(&spec.success, success_fn, &name, "success")?;
    let failure = cond(&spec.failure, failure_fn, &name, "failure")?;
    if !judged && (success.is_some() || failure.is_some()) {
        return Err(fail(format!(
            "business metric `{name}` is only shown: move it to `metrics` to judge it"
        )));
    }
    let d = Limits::default();
    let limits = Limits {
        failure: spec.failure_limit.unwrap_or(d.failure),
        inconclusive: spec.inconclusive_limit.unwrap_or(d.inconclusive),
        consecutive_error: spec.consecutive_error_limit.unwrap_or(d.consecutive_error),
    };
    let p = *defaults;
    let policy = DataPolicy {
        no_data: spec.on_no_data.unwrap_or(p.no_data),
        empty: spec.on_empty.unwrap_or(p.empty),
        nan: spec.on_nan.unwrap_or(p.nan),
        multiple: spec.on_multiple.unwrap_or(p.multiple),
    };
    Ok(Metric {
        label: spec.label.clone().unwrap_or_else(|| name.clone()),
        action: spec.on_failure.unwrap_or_default(),
        spec,
        provider,
        compute,
        success,
        failure,
        limits,
        policy,
        tally: Tally::default(),
        verdict: None,
        continued: false,
        last: None,
        recent: VecDeque::new(),
    })
}

pub(super) fn metrics_list(
    v: Option<&Dynamic>,
    what: &str,
    judged: bool,
    defaults: &DataPolicy,
) -> RhaiResult<Vec<Metric>> {
    let Some(v) = v.filter(|v| !v.is_unit()) else {
        return Ok(vec![]);
    };
    let arr = v
        .read_lock::<Array>()
        .ok_or_else(|| fail(format!("`analyze` option `{what}` is an array of metrics")))?;
    arr.iter()
        .map(|m| metric_from(m, judged, defaults))
        .collect()
}
