//! Prometheus text exposition, read into flat samples (`#{name, labels, value}`): for `scrape()`
//! and the scrape provider.

use serde_json::{json, Value};

/// Parse Prometheus text into flat samples.
pub fn parse_text(text: &str) -> Result<Vec<Value>, String> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| format!("not Prometheus text: {e}"))?;
    let mut out = Vec::new();
    for s in scrape.samples {
        let labels: serde_json::Map<String, Value> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                out.push(json!({ "name": s.metric, "labels": labels, "value": finite(v) }));
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = labels.clone();
                    l.insert(
                        "le".into(),
                        json!(if b.less_than.is_infinite() {
                            "+Inf".to_string()
                        } else {
                            b.less_than.to_string()
                        }),
                    );
                    out.push(json!({ "name": format!("{}_bucket", s.metric), "labels": l, "value": finite(b.count) }));
                }
            }
            prometheus_parse::Value::Summary(qs) => {
                for q in qs {
                    let mut l = labels.clone();
                    l.insert("quantile".into(), json!(q.quantile.to_string()));
                    out.push(json!({ "name": s.metric, "labels": l, "value": finite(q.count) }));
                }
            }
        }
    }
    Ok(out)
}

fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}
