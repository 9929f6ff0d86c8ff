//! The measurement loop of `analyze`: read every provider once a round (one `measure` effect),
//! classify, apply each metric's limits and its action on failure, until a verdict.

use std::time::Duration;

use crate::clock::Instant;

use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::{json, Value};

use super::report::{
    draw, explain, promoted, record_measurement, result_map, show_cond, show_value,
};
use super::spec::{metrics_list, Cond, Metric, OPTIONS};
use super::{fail, gate_error, to_json, RhaiResult};
use crate::analysis::provider::{Provider, Rates};
use crate::analysis::spec::Action;
use crate::analysis::{classify, combine, Class, DataPolicy, Observed, Verdict};
use crate::journal::Record;
use crate::session::Session;

pub(super) struct Run<'a> {
    pub(super) session: &'a Session,
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) feature: String,
    pub(super) started: String,
    pub(super) metrics: Vec<Metric>,
    pub(super) business: Vec<Metric>,
    pub(super) unmeasured: Vec<String>,
    pub(super) notify: Vec<String>,
    pub(super) rates: Rates,
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
            .map(|(n, p)| match p.check() {
                // The check itself, so a rehearsal's world can answer it as it answers `check`.
                Some(c) => json!({ "metric": n, "provider": p.describe(), "check": crate::health::spec_json(c) }),
                None => json!({ "metric": n, "provider": p.describe() }),
            })
            .collect();
        let session = self.session;
        let r = session.gate(
            "measure",
            &self.name,
            json!({ "providers": intent, "baseline": only_counters, "version": self.version }),
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

pub(super) fn analyze(session: &Session, ctx: &NativeCallContext, spec: &Map) -> RhaiResult<Map> {
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
                .wait_window(due.saturating_duration_since(now))
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
