//! `analyze(spec)`: measure metrics every `interval`, classify each measurement, and reach a
//! verdict by the limits (src/analysis). `measure(provider)` reads a provider once;
//! `samples(provider)` reads a Prometheus range query as an array of numbers; `judge(spec)`
//! compares canary and baseline samples (src/analysis/judge.rs).
//!
//! Each measurement is one effect through the gate: its intent names every provider, its result
//! holds every provider's reading (so a resumed run reads the same numbers), and the providers
//! are read concurrently, each within its own timeout.
//!
//! This file is the binding (what scripts call) and the one-shot reads; spec.rs reads a metric's
//! spec, measure.rs is the measurement loop of `analyze`, report.rs shows and journals what it
//! found.

mod measure;
mod report;
mod spec;

use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::{json, Value};

// The siblings' bodies reach these as `super::...`, as when they were one file.
use super::{fail, from_json, gate_error, to_json, RhaiResult};
use super::{monitor, notify, prompt, Opts};
use crate::analysis::provider::{Provider, ProviderSpec};
use crate::analysis::Observed;
use crate::session::{Gated, Session, Shared};

use measure::analyze;
use spec::typed;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("analyze", move |ctx: NativeCallContext, spec: Map| {
        analyze(&s, &ctx, &spec)
    });
    let s = session.clone();
    engine.register_fn("measure", move |provider: Map| {
        measure(&s, &provider, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("measure", move |provider: Map, opts: Map| {
        measure(&s, &provider, &opts)
    });
    let s = session.clone();
    engine.register_fn("probe", move |provider: Map| {
        probe(&s, &provider, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("probe", move |provider: Map, opts: Map| {
        probe(&s, &provider, &opts)
    });
    let s = session.clone();
    engine.register_fn("samples", move |provider: Map| samples(&s, &provider));
    engine.register_fn("judge", |spec: Map| judge(&spec));
}

/// `measure(provider)`: one reading, through the gate. A number, or () for no data; a provider
/// error is a catchable error.
fn measure(session: &Session, provider: &Map, opts: &Map) -> RhaiResult<Dynamic> {
    let spec: ProviderSpec = typed(&to_json(&Dynamic::from_map(provider.clone())), "measure")?;
    let p = Provider::new(&spec).map_err(|e| fail(format!("measure: {e}")))?;
    if p.needs_baseline() {
        return Err(fail(
            "measure reads once: a counter `rate` needs two readings (use analyze, or leave out `rate`)",
        ));
    }
    let reading = read_one(session, "measure", &p, &Labels::of(opts, "measure")?)?;
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
fn probe(session: &Session, provider: &Map, opts: &Map) -> RhaiResult<Map> {
    let spec: ProviderSpec = typed(&to_json(&Dynamic::from_map(provider.clone())), "probe")?;
    let p = Provider::new(&spec).map_err(|e| fail(format!("probe: {e}")))?;
    let reading = read_one(session, "probe", &p, &Labels::of(opts, "probe")?)?;
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

/// What a single reading is of (`measure(provider, #{ metric, version })`): named in the
/// journal, and how a rehearsal's world finds its value.
struct Labels {
    metric: Option<String>,
    version: Option<String>,
}

impl Labels {
    fn of(opts: &Map, what: &'static str) -> RhaiResult<Labels> {
        let o = super::Opts::new(opts, what, &["metric", "version"])?;
        Ok(Labels {
            metric: o.string("metric")?,
            version: o.string("version")?,
        })
    }
}

fn read_one(session: &Session, kind: &str, p: &Provider, labels: &Labels) -> RhaiResult<Value> {
    let name = p.describe().to_string();
    let mut intent = json!({ "provider": p.describe() });
    if let Some(m) = &labels.metric {
        intent["metric"] = json!(m);
    }
    if let Some(v) = &labels.version {
        intent["version"] = json!(v);
    }
    let r = session.gate(
        kind,
        &name,
        intent,
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
