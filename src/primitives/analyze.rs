//! `analyze(spec)`: measure metrics every `interval`, classify each measurement, and reach a
//! verdict by the limits (src/analysis). `measure(provider)` reads a provider once;
//! `samples(provider)` reads a Prometheus range query as an array of numbers; `judge(spec)`
//! compares canary and baseline samples (src/analysis/judge.rs).
//!
//! Each measurement is one effect through the gate: its intent names every provider, its result
//! holds every provider's reading (so a resumed run reads the same numbers), and the providers
//! are read concurrently, each within its own timeout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use serde_json::{json, Value};

use super::{fail, from_json, gate_error, to_json, RhaiResult};
use crate::analysis::provider::{Provider, ProviderSpec, Rates};
use crate::analysis::{
    classify, combine, Class, DataPolicy, Limits, Observed, Tally, Threshold, Verdict,
};
use crate::journal::Record;
use crate::session::{Gated, Session, Shared};
use crate::ui::dashboard::Frame;

use crate::analysis::spec::{Action, Format, MetricSpec};

enum Cond {
    Threshold(Threshold),
    Closure(FnPtr),
}

struct Metric {
    spec: MetricSpec,
    label: String,
    provider: Option<Provider>,
    compute: Option<FnPtr>,
    success: Option<Cond>,
    failure: Option<Cond>,
    limits: Limits,
    policy: DataPolicy,
    action: Action,
    tally: Tally,
    verdict: Option<(Verdict, String)>,
    /// Failed, but the action said go on (or a person did).
    continued: bool,
    last: Option<(Observed, Class, Option<String>)>,
    /// The last few measurements: the evidence shown when a person is asked.
    recent: VecDeque<(u32, Observed, Class)>,
}

const OPTIONS: &[&str] = &[
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

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("analyze", move |ctx: NativeCallContext, spec: Map| {
        analyze(&s, &ctx, &spec)
    });
    let s = session.clone();
    engine.register_fn("measure", move |provider: Map| measure(&s, &provider));
    let s = session.clone();
    engine.register_fn("probe", move |provider: Map| probe(&s, &provider));
    let s = session.clone();
    engine.register_fn("samples", move |provider: Map| samples(&s, &provider));
    engine.register_fn("judge", |spec: Map| judge(&spec));
}

fn spec_error(what: &str, e: impl std::fmt::Display) -> Box<rhai::EvalAltResult> {
    fail(format!("{what}: {e}"))
}

/// Deserialize a script's map (as JSON) into `T`, naming the key that is wrong.
fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> RhaiResult<T> {
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

fn metrics_list(
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

fn show_value(m: &Metric, o: &Observed, note: Option<&str>) -> String {
    match (o, m.spec.format) {
        (Observed::Value(v), Some(Format::Check)) => {
            if *v >= 1.0 {
                "passing".into()
            } else {
                note.map(str::to_string).unwrap_or_else(|| "failing".into())
            }
        }
        (Observed::Value(v), Some(Format::Percent)) => format!("{:.1}%", v * 100.0),
        (Observed::Value(v), Some(Format::Ms)) => format!("{}ms", v.round()),
        (Observed::Value(v), _) => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", *v as i64)
            } else if v.abs() >= 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.3}")
            }
        }
        (o, _) => o.describe(),
    }
}

fn op_symbol(op: crate::analysis::Op) -> &'static str {
    use crate::analysis::Op::*;
    match op {
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Eq => "==",
        Ne => "!=",
    }
}

fn show_cond(m: &Metric, c: &Option<Cond>) -> Option<String> {
    match c {
        Some(Cond::Threshold(t)) => Some(format!(
            "{} {}",
            op_symbol(t.op),
            show_value(m, &Observed::Value(t.value), None)
        )),
        Some(Cond::Closure(_)) => Some("(a closure)".into()),
        None => None,
    }
}

/// A verdict's reason with the evidence: "error rate 19.8% > 5.0% (2 failed measurement(s), ...)".
fn explain(m: &Metric, v: Verdict, why: &str) -> String {
    let label = m.label.to_lowercase();
    let last = m
        .last
        .as_ref()
        .map(|(o, _, note)| show_value(m, o, note.as_deref()));
    match (v, last) {
        (Verdict::Failure, Some(last)) if m.spec.format == Some(Format::Check) => {
            format!("failed health check: {last} ({why})")
        }
        (Verdict::Failure, Some(last)) => {
            let cond = show_cond(m, &m.failure)
                .or_else(|| show_cond(m, &m.success).map(|c| format!("not {c}")))
                .unwrap_or_default();
            format!("{label} {last} {cond} ({why})")
        }
        (_, Some(last)) => format!("{label}: {why}; last: {last}"),
        (_, None) => format!("{label}: {why}"),
    }
}

fn mark(c: Class) -> Option<bool> {
    match c {
        Class::Success => Some(true),
        Class::Failure => Some(false),
        Class::Inconclusive | Class::Error => None,
    }
}

struct Run<'a> {
    session: &'a Session,
    name: String,
    version: Option<String>,
    feature: String,
    started: String,
    metrics: Vec<Metric>,
    business: Vec<Metric>,
    unmeasured: Vec<String>,
    notify: Vec<String>,
    rates: Rates,
}

impl Run<'_> {
    fn providers(&self) -> Vec<(String, Provider)> {
        self.metrics
            .iter()
            .chain(&self.business)
            .filter(|m| !m.continued)
            .filter_map(|m| m.provider.clone().map(|p| (m.spec.name.clone(), p)))
            .collect()
    }

    /// Read every provider once, concurrently, as one effect. Returns name -> reading.
    fn read_all(&self, only_counters: bool) -> RhaiResult<Vec<(String, Value)>> {
        let providers: Vec<(String, Provider)> = self
            .providers()
            .into_iter()
            .filter(|(_, p)| !only_counters || p.needs_baseline())
            .collect();
        if providers.is_empty() {
            return Ok(vec![]);
        }
        let intent: Vec<Value> = providers
            .iter()
            .map(|(n, p)| json!({ "metric": n, "provider": p.describe() }))
            .collect();
        let session = self.session;
        let r = session.gate(
            "measure",
            &self.name,
            json!({ "providers": intent, "baseline": only_counters }),
            || json!({ "planned": true }),
            || {
                let client = session.net(providers.iter().any(|(_, p)| p.https()));
                let runner = crate::primitives::shell::runner(session);
                let list = providers.clone();
                let readings = session.rt.block_on(async move {
                    let handles: Vec<_> = list
                        .into_iter()
                        .map(|(_, p)| {
                            tokio::spawn(crate::analysis::provider::read(
                                client.clone(),
                                p,
                                runner.clone(),
                            ))
                        })
                        .collect();
                    let mut out = Vec::new();
                    for h in handles {
                        out.push(h.await.unwrap_or_else(|e| {
                            Observed::Error(format!("the read stopped: {e}")).to_json()
                        }));
                    }
                    out
                });
                let map: serde_json::Map<String, Value> = providers
                    .iter()
                    .map(|(n, _)| n.clone())
                    .zip(readings)
                    .collect();
                Ok(json!({ "readings": map }))
            },
        );
        let v = r.map_err(|e| gate_error(session, e))?.into_value();
        Ok(providers
            .iter()
            .map(|(n, _)| {
                let reading = v["readings"]
                    .get(n)
                    .cloned()
                    .unwrap_or_else(|| Observed::Error("no reading was recorded".into()).to_json());
                (n.clone(), reading)
            })
            .collect())
    }

    fn check(
        &self,
        ctx: &NativeCallContext,
        c: &Option<Cond>,
        v: f64,
        metric: &str,
    ) -> RhaiResult<Option<bool>> {
        match c {
            None => Ok(None),
            Some(Cond::Threshold(t)) => Ok(Some(t.holds(v))),
            Some(Cond::Closure(f)) => {
                let r: Dynamic = f.call_within_context(ctx, (v,))?;
                r.as_bool().map(Some).map_err(|_| {
                    fail(format!(
                        "metric `{metric}`: a condition closure must return true or false, not {}",
                        r.type_name()
                    ))
                })
            }
        }
    }
}

fn analyze(session: &Session, ctx: &NativeCallContext, spec: &Map) -> RhaiResult<Map> {
    let o = super::Opts::new(spec, "analyze", OPTIONS)?;
    let mon = &session.config.config.monitoring;
    let defaults = DataPolicy {
        no_data: mon.on_no_data,
        empty: mon.on_empty,
        nan: mon.on_nan,
        multiple: mon.on_multiple,
    };
    let name = o.string("name")?.unwrap_or_else(|| "analysis".into());
    let interval = o.duration("interval")?.unwrap_or(Duration::from_secs(1));
    if interval.is_zero() {
        return Err(fail("`analyze` interval cannot be 0"));
    }
    let count = o.int("count")?;
    let by_time = o.duration("duration")?;
    let count: u32 = match (count, by_time) {
        (Some(c), None) if c >= 1 => c.min(1_000_000) as u32,
        (Some(c), None) => {
            return Err(fail(format!("`analyze` count must be at least 1, not {c}")))
        }
        // Whole milliseconds: in floating point 300 ms / 100 ms is 2.999...
        (None, Some(d)) => (d.as_millis() / interval.as_millis().max(1)).clamp(1, 1_000_000) as u32,
        (None, None) => 5,
        (Some(_), Some(_)) => return Err(fail("`analyze` takes `count` or `duration`, not both")),
    };
    let max_count = match o.int("max_count")? {
        Some(m) if m >= count as i64 => m.min(3_000_000) as u32,
        Some(m) => {
            return Err(fail(format!(
                "`analyze` max_count ({m}) cannot be below count ({count})"
            )))
        }
        None => count,
    };
    let initial_delay = o.duration("initial_delay")?.unwrap_or_default();
    let metrics = metrics_list(o.get("metrics"), "metrics", true, &defaults)?;
    let business = metrics_list(o.get("business"), "business", false, &defaults)?;
    if metrics.is_empty() {
        return Err(fail("`analyze` needs at least one metric in `metrics`"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for m in metrics.iter().chain(&business) {
        if !seen.insert(m.spec.name.clone()) {
            return Err(fail(format!("two metrics are named `{}`", m.spec.name)));
        }
    }
    let strings = |key: &str| -> RhaiResult<Vec<String>> {
        match o.get(key) {
            None => Ok(vec![]),
            Some(v) => v
                .read_lock::<Array>()
                .map(|a| a.iter().map(|x| x.to_string()).collect())
                .ok_or_else(|| fail(format!("`analyze` option `{key}` is an array of strings"))),
        }
    };
    let mut notify = strings("notify")?;
    if notify.is_empty() {
        notify = mon.notify.clone();
    }
    let mut run = Run {
        session,
        version: o.string("version")?,
        feature: o
            .string("feature")?
            .unwrap_or_else(|| format!("{} ({name})", session.feature)),
        // The clock time, for the monitor's "Started:".
        started: crate::journal::now_rfc3339()
            .get(11..19)
            .unwrap_or_default()
            .to_string(),
        name,
        metrics,
        business,
        unmeasured: strings("unmeasured")?,
        notify,
        rates: Rates::default(),
    };

    if let Some(planned) = session.plan_only(|| {
        let names: Vec<&str> = run.metrics.iter().map(|m| m.spec.name.as_str()).collect();
        session.say(&format!(
            "  (dry-run) analyze {}: {} measurement(s) every {} of {}",
            run.name,
            count,
            crate::ui::format_duration(interval),
            names.join(", ")
        ));
        result_map(&run, Verdict::Success, "dry run: nothing was measured")
    }) {
        return Ok(planned);
    }

    // Promoted (`runbook control ENV promote`): this window and the ones after it are skipped.
    if let Some(by) = session.interrupt.promoted() {
        return Ok(promoted(&run, &by, 0));
    }
    if !initial_delay.is_zero() {
        session
            .wait_window(initial_delay)
            .map_err(|_| session.stop_waiting())?;
    }
    // Counters need a first reading to rate against.
    for (n, reading) in run.read_all(true)? {
        if let Some(m) = run
            .metrics
            .iter()
            .chain(&run.business)
            .find(|m| m.spec.name == n)
        {
            let p = m.provider.clone().expect("counters come from a provider");
            run.rates.observe(&n, &p, &reading);
        }
    }
    let start = Instant::now();
    // Time held by a live-control pause moves the schedule on, rather than being caught up with
    // measurements back to back.
    let paused_before = session.interrupt.paused_total();
    // As Argo does, the first measurement is taken when the window starts (after
    // `initial_delay`); counters rated between scrapes have only their base then, so with any
    // of those the first measurement is one interval in.
    let first = if run
        .metrics
        .iter()
        .chain(&run.business)
        .any(|m| m.provider.as_ref().is_some_and(Provider::needs_baseline))
    {
        1
    } else {
        0
    };
    let mut conclusive_rounds = 0;
    let mut round = 0u32;
    let mut status = "In Progress";
    let verdict = loop {
        round += 1;
        let held = session
            .interrupt
            .paused_total()
            .saturating_sub(paused_before);
        let due = start + held + interval * (round - 1 + first);
        let now = Instant::now();
        if due > now {
            session
                .wait_window(due - now)
                .map_err(|_| session.stop_waiting())?;
        }
        if let Some(by) = session.interrupt.promoted() {
            return Ok(promoted(&run, &by, round - 1));
        }
        let readings = run.read_all(false)?;
        let mut round_failed = false;
        let mut values = Map::new();
        let mut round_conclusive = true;
        // Providers first, then computed metrics in the order written.
        for i in 0..run.metrics.len() + run.business.len() {
            let (judged, m) = if i < run.metrics.len() {
                (true, &run.metrics[i])
            } else {
                (false, &run.business[i - run.metrics.len()])
            };
            if m.continued {
                continue;
            }
            let name = m.spec.name.clone();
            let (observed, note) = match (&m.provider, &m.compute) {
                (Some(p), _) => {
                    let reading = readings
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(Value::Null);
                    let note = reading
                        .get("note")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let p = p.clone();
                    let obs = run.rates.observe(&name, &p, &reading).unwrap_or_else(|| {
                        Observed::NoData("the first scrape only sets the base of the rate".into())
                    });
                    (obs, note)
                }
                (None, Some(f)) => {
                    let r: Dynamic =
                        f.call_within_context(ctx, (Dynamic::from_map(values.clone()),))?;
                    let obs = if r.is_unit() {
                        Observed::NoData("compute returned ()".into())
                    } else if let Ok(x) = r.as_float() {
                        Observed::number(x)
                    } else if let Ok(x) = r.as_int() {
                        Observed::Value(x as f64)
                    } else {
                        return Err(fail(format!(
                            "metric `{name}`: compute must return a number or (), not {}",
                            r.type_name()
                        )));
                    };
                    (obs, None)
                }
                (None, None) => unreachable!("checked when the metric was read"),
            };
            values.insert(
                name.as_str().into(),
                observed
                    .value()
                    .map(Dynamic::from_float)
                    .unwrap_or(Dynamic::UNIT),
            );
            let class = if let Some(v) = observed.value() {
                let s = run.check(ctx, &m.success, v, &name)?;
                let f = run.check(ctx, &m.failure, v, &name)?;
                classify(&observed, s, f, &m.policy)
            } else {
                classify(&observed, None, None, &m.policy)
            };
            let m = if judged {
                &mut run.metrics[i]
            } else {
                &mut run.business[i - run.metrics.len()]
            };
            if judged {
                m.tally.add(class);
                if matches!(class, Class::Inconclusive | Class::Error) {
                    round_conclusive = false;
                }
                if class == Class::Failure {
                    round_failed = true;
                }
                m.recent.push_back((round, observed.clone(), class));
                if m.recent.len() > 5 {
                    m.recent.pop_front();
                }
            }
            m.last = Some((observed, class, note));
        }
        if round_conclusive {
            conclusive_rounds += 1;
        }
        // A window does not end on a failed measurement (one within its limit): it measures
        // again, up to `max_count`, so a release whose latest reading fails is never passed.
        let done = (conclusive_rounds >= count && !round_failed) || round >= max_count;
        // Verdicts reached this round.
        let mut stop: Option<(Verdict, String)> = None;
        for i in 0..run.metrics.len() {
            let m = &run.metrics[i];
            if m.continued || m.verdict.is_some() {
                continue;
            }
            let Some((v, why)) = m.tally.verdict(&m.limits, done) else {
                continue;
            };
            let why = explain(m, v, &why);
            match v {
                Verdict::Failure | Verdict::Error => match m.action {
                    Action::Rollback => {
                        run.metrics[i].verdict = Some((v, why.clone()));
                        stop = worst(stop, v, why);
                    }
                    Action::Continue => {
                        continue_metric(&mut run, i, v, &why, "on_failure: continue");
                    }
                    Action::Ask => {
                        draw(&run, "Paused: asking");
                        if ask(&run, i, &why) {
                            run.metrics[i].verdict = Some((v, why.clone()));
                            stop = worst(stop, v, why);
                        } else {
                            continue_metric(&mut run, i, v, &why, "a person chose to go on");
                        }
                    }
                },
                Verdict::Inconclusive => {
                    run.metrics[i].verdict = Some((v, why.clone()));
                    stop = worst(stop, v, why);
                }
                Verdict::Success => {
                    run.metrics[i].verdict = Some((v, why));
                }
            }
        }
        // Every metric continued past (or ended): nothing is left to wait for.
        let measuring = run
            .metrics
            .iter()
            .any(|m| !m.continued && m.verdict.is_none());
        status = match &stop {
            Some((Verdict::Inconclusive, _)) => "Inconclusive",
            Some(_) => "Rolling back",
            None if done || !measuring => "Complete",
            None => status,
        };
        draw(&run, status);
        record_measurement(&run, round);
        if let Some(s) = stop {
            break s;
        }
        if done || !measuring {
            let vs: Vec<Verdict> = run
                .metrics
                .iter()
                .filter(|m| !m.continued)
                .filter_map(|m| m.verdict.as_ref().map(|v| v.0))
                .collect();
            let v = combine(&vs);
            let continued: Vec<&str> = run
                .metrics
                .iter()
                .filter(|m| m.continued)
                .map(|m| m.label.as_str())
                .collect();
            let mut why = if vs.is_empty() {
                "every metric failed and was continued past".to_string()
            } else {
                format!("every metric within its limits after {round} measurement(s)")
            };
            if !continued.is_empty() {
                why.push_str(&format!(
                    " (failed but continued: {})",
                    continued.join(", ")
                ));
            }
            break (if vs.is_empty() { Verdict::Failure } else { v }, why);
        }
    };
    let (v, why) = verdict;
    let result = result_map(&run, v, &why);
    session.record(Record::Verdict {
        verdict: json!({
            "version": run.version, "window": run.name, "verdict": v.as_str(), "reason": why,
            "measurements": round, "metrics": to_json(&result["metrics"]),
        }),
        stage: session.current_stage(),
    });
    Ok(result)
}

/// Of the verdicts that ended the analysis this round, keep the worst (the first listed of
/// equals): a metric that failed is never hidden behind one listed before it that was only
/// inconclusive.
fn worst(stop: Option<(Verdict, String)>, v: Verdict, why: String) -> Option<(Verdict, String)> {
    match stop {
        Some((s, w)) if s.worse(v) == s => Some((s, w)),
        _ => Some((v, why)),
    }
}

fn continue_metric(run: &mut Run, i: usize, v: Verdict, why: &str, because: &str) {
    run.metrics[i].continued = true;
    run.metrics[i].verdict = Some((v, format!("{why} ({because})")));
    let message = format!(
        "⚠️ {}: {} {}: {why}; monitoring goes on without it ({because})",
        run.feature,
        run.metrics[i].label,
        v.as_str()
    );
    run.session.warn(&message);
    for ch in run.notify.clone() {
        // A channel that fails is reported by notify itself; monitoring goes on.
        let _ = super::notify::notify(run.session, Dynamic::from(ch), &message);
    }
}

/// Pause and ask whether to roll back, with the evidence on screen. Nobody there: roll back.
fn ask(run: &Run, i: usize, why: &str) -> bool {
    let m = &run.metrics[i];
    let s = run.session;
    s.shout(&s.ui.yellow(&format!("⏸ {} failed: {why}", m.label)));
    let cond = |c: &Option<Cond>| show_cond(m, c).unwrap_or_else(|| "none".into());
    s.shout(&format!(
        "  conditions: success {}, failure {}; failure_limit {}",
        cond(&m.success),
        cond(&m.failure),
        m.limits.failure
    ));
    for (n, o, c) in &m.recent {
        s.shout(&format!(
            "  measurement {n}: {} → {}",
            show_value(m, o, None),
            c.as_str()
        ));
    }
    let id = format!("analysis-{}", crate::answers::slug(&m.spec.name));
    match super::prompt::offer(s, &id, &format!("{} failed. Roll back?", m.label)) {
        Some(answer) => answer,
        None => {
            s.warn(&format!(
                "nobody to ask ({id}): rolling back, the safe choice for on_failure: ask"
            ));
            true
        }
    }
}

fn draw(run: &Run, status: &str) {
    let mut health: Vec<(String, String, Option<bool>)> = run
        .metrics
        .iter()
        .map(|m| match &m.last {
            None => (m.label.clone(), "waiting".into(), None),
            Some((o, c, note)) => {
                let mut text = show_value(m, o, note.as_deref());
                if m.continued {
                    text.push_str(" (failed, continued)");
                } else if *c == Class::Inconclusive && o.value().is_some() {
                    text.push_str(" (inconclusive)");
                }
                (m.label.clone(), text, mark(*c))
            }
        })
        .collect();
    for u in &run.unmeasured {
        health.push((u.clone(), "no source configured".into(), None));
    }
    let business = run
        .business
        .iter()
        .map(|m| {
            let text = match &m.last {
                None => "waiting".into(),
                Some((o, _, note)) => show_value(m, o, note.as_deref()),
            };
            (m.label.clone(), text)
        })
        .collect();
    super::monitor::draw(
        run.session,
        &Frame {
            feature: run.feature.clone(),
            started: run.started.clone(),
            status: status.into(),
            health,
            business,
        },
    );
}

fn metric_json(m: &Metric) -> Value {
    match &m.last {
        None => json!({ "outcome": "not measured" }),
        Some((o, c, note)) => {
            let mut v = o.to_json();
            v["class"] = json!(c.as_str());
            // As the monitor showed it ("20.0%", "305ms"), for the post-mortem.
            v["shown"] = json!(show_value(m, o, note.as_deref()));
            // How it is shown (a fraction shown as a percent, ms...), for the charts' axis.
            if let Some(f) = m.spec.format {
                v["format"] = json!(f);
            }
            if let Some(n) = note {
                v["note"] = json!(n);
            }
            v
        }
    }
}

fn record_measurement(run: &Run, round: u32) {
    let mut metrics = serde_json::Map::new();
    let mut worst = Class::Success;
    for m in run.metrics.iter().filter(|m| !m.continued) {
        if let Some((_, c, _)) = &m.last {
            worst = worst.worse(*c);
        }
        metrics.insert(m.spec.name.clone(), metric_json(m));
    }
    let business: serde_json::Map<String, Value> = run
        .business
        .iter()
        .map(|m| (m.spec.name.clone(), metric_json(m)))
        .collect();
    run.session.record(Record::Measurement {
        measurement: json!({
            "version": run.version, "window": run.name, "sample": round,
            "classification": worst.as_str(), "metrics": metrics, "business": business,
        }),
        stage: run.session.current_stage(),
    });
}

fn result_map(run: &Run, v: Verdict, why: &str) -> Map {
    let mut metrics = Map::new();
    for m in &run.metrics {
        let t = &m.tally;
        let (mv, mwhy) = m
            .verdict
            .clone()
            .map(|(v, w)| (v.as_str().to_string(), w))
            .unwrap_or_else(|| ("running".into(), String::new()));
        let last = m.last.as_ref().and_then(|(o, _, _)| o.value());
        let condition = show_cond(m, &m.failure)
            .or_else(|| show_cond(m, &m.success).map(|c| format!("not {c}")));
        // The number a condition compares with, for the charts.
        let threshold = [&m.failure, &m.success].into_iter().find_map(|c| match c {
            Some(Cond::Threshold(t)) => Some(t.value),
            _ => None,
        });
        metrics.insert(
            m.spec.name.as_str().into(),
            from_json(&json!({
                "label": m.label, "condition": condition, "threshold": threshold,
                "verdict": mv, "reason": mwhy, "continued": m.continued, "last": last,
                "measured": t.measured, "successes": t.successes, "failures": t.failures,
                "inconclusives": t.inconclusives, "errors": t.errors,
            })),
        );
    }
    let mut out = Map::new();
    out.insert("verdict".into(), Dynamic::from(v.as_str().to_string()));
    out.insert("healthy".into(), Dynamic::from(v == Verdict::Success));
    out.insert("reason".into(), Dynamic::from(why.to_string()));
    out.insert("metrics".into(), Dynamic::from_map(metrics));
    out.insert("promoted".into(), Dynamic::from(false));
    out
}

/// A window cut short by a live-control `promote`: not a verdict on the release (none is
/// journaled; the `control` record says who promoted it), so `verdict` is `promoted`.
fn promoted(run: &Run, by: &str, measured: u32) -> Map {
    let why = format!("promoted {by}: the window was skipped after {measured} measurement(s)");
    if measured > 0 {
        draw(run, "Promoted");
    }
    let mut out = result_map(run, Verdict::Success, &why);
    out.insert("verdict".into(), Dynamic::from("promoted".to_string()));
    out.insert("promoted".into(), Dynamic::from(true));
    out
}

/// `measure(provider)`: one reading, through the gate. A number, or () for no data; a provider
/// error is a catchable error.
fn measure(session: &Session, provider: &Map) -> RhaiResult<Dynamic> {
    let spec: ProviderSpec = typed(&to_json(&Dynamic::from_map(provider.clone())), "measure")?;
    let p = Provider::new(&spec).map_err(|e| fail(format!("measure: {e}")))?;
    if p.needs_baseline() {
        return Err(fail(
            "measure reads once: a counter `rate` needs two readings (use analyze, or leave out `rate`)",
        ));
    }
    let reading = read_one(session, "measure", &p)?;
    Ok(match Observed::from_json(&reading) {
        Observed::Value(v) => Dynamic::from_float(v),
        Observed::Error(e) => return Err(fail(e)),
        _ => Dynamic::UNIT,
    })
}

/// `probe(provider)`: read once and say what came back, without judging it: `#{ outcome:
/// "value" | "no_data" | "empty" | "nan" | "multiple" | "error" | "planned", value, why, source }`.
/// A counter read for a rate counts as a value (the series is there). For checking, before a
/// release, that every metric's source answers.
fn probe(session: &Session, provider: &Map) -> RhaiResult<Map> {
    let spec: ProviderSpec = typed(&to_json(&Dynamic::from_map(provider.clone())), "probe")?;
    let p = Provider::new(&spec).map_err(|e| fail(format!("probe: {e}")))?;
    let reading = read_one(session, "probe", &p)?;
    let mut out = Map::new();
    let source = p.describe();
    out.insert("source".into(), from_json(&source));
    let (outcome, value, why) = if reading.get("why").and_then(Value::as_str) == Some("dry run") {
        ("planned", Dynamic::UNIT, String::new())
    } else if reading.get("outcome").and_then(Value::as_str) == Some("counters") {
        ("value", from_json(&reading["num"]), String::new())
    } else {
        match Observed::from_json(&reading) {
            Observed::Value(v) => ("value", Dynamic::from_float(v), String::new()),
            Observed::NoData(why) => ("no_data", Dynamic::UNIT, why),
            Observed::Empty => ("empty", Dynamic::UNIT, "an empty vector".to_string()),
            Observed::NaN => ("nan", Dynamic::UNIT, "NaN".to_string()),
            Observed::Multiple(n) => ("multiple", Dynamic::UNIT, format!("{n} series")),
            Observed::Error(e) => ("error", Dynamic::UNIT, e),
        }
    };
    out.insert("outcome".into(), outcome.into());
    out.insert("value".into(), value);
    out.insert("why".into(), why.into());
    Ok(out)
}

fn read_one(session: &Session, kind: &str, p: &Provider) -> RhaiResult<Value> {
    let name = p.describe().to_string();
    let r = session.gate(
        kind,
        &name,
        json!({ "provider": p.describe() }),
        || json!({ "outcome": "no_data", "why": "dry run" }),
        || {
            let client = session.net(p.https());
            let runner = crate::primitives::shell::runner(session);
            let p = p.clone();
            Ok(session
                .rt
                .block_on(async move { crate::analysis::provider::read(client, p, runner).await }))
        },
    );
    r.map(Gated::into_value).map_err(|e| gate_error(session, e))
}

/// `samples(#{ prometheus: #{ url, query, range, step } })`: a range query's points, for the judge.
fn samples(session: &Session, provider: &Map) -> RhaiResult<Array> {
    let spec: ProviderSpec = typed(&to_json(&Dynamic::from_map(provider.clone())), "samples")?;
    let (Some(ps), None, None, None, None) = (
        &spec.prometheus,
        &spec.scrape,
        &spec.http,
        &spec.command,
        &spec.check,
    ) else {
        return Err(fail(
            "samples reads a Prometheus range query: #{ prometheus: #{ url, query, range } }",
        ));
    };
    if ps.range.is_none() {
        return Err(fail(
            "samples needs a `range` (e.g. \"2m\") to read a series of points",
        ));
    }
    let p = Provider::new(&spec).map_err(|e| fail(format!("samples: {e}")))?;
    let query = ps.query.clone();
    let r = session.gate(
        "samples",
        &query,
        json!({ "prometheus": ps.url, "query": query, "range": ps.range }),
        || json!({ "points": [] }),
        || {
            let client = session.net(p.https());
            let p = p.clone();
            session.rt.block_on(async move {
                let series = crate::analysis::provider::prometheus_series(&client, &p).await?;
                match series.len() {
                    0 => Ok(json!({ "points": [] })),
                    1 => Ok(json!({ "points": series[0].1.iter().map(|x| if x.is_finite() { json!(x) } else { Value::Null }).collect::<Vec<_>>() })),
                    n => Err(format!("the query returned {n} series; samples needs one (aggregate it, e.g. sum(...))").into()),
                }
            })
        },
    );
    let v = r.map_err(|e| gate_error(session, e))?.into_value();
    Ok(v["points"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(Dynamic::from_float)
                .collect()
        })
        .unwrap_or_default())
}

fn judge(spec: &Map) -> RhaiResult<Map> {
    let s: crate::analysis::judge::JudgeSpec =
        typed(&to_json(&Dynamic::from_map(spec.clone())), "judge")?;
    let out = crate::analysis::judge::judge(&s).map_err(|e| fail(format!("judge: {e}")))?;
    let v = serde_json::to_value(&out).map_err(|e| fail(e.to_string()))?;
    from_json(&v)
        .try_cast::<Map>()
        .ok_or_else(|| fail("judge: internal error"))
}
