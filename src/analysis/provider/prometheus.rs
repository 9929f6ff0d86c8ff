//! The `prometheus` provider: the Prometheus HTTP API, instant or range PromQL queries; vectors,
//! scalars and matrices, and one value out of several series.

use super::*;

/// Ask Prometheus (`provider` is a `prometheus` one): an instant query, or a range query over
/// the `range` before now. The series it answered, or why not.
pub async fn series(
    client: &crate::net::Client,
    provider: &Provider,
) -> Result<Vec<(Value, Vec<f64>)>, String> {
    let Provider::Prometheus {
        spec,
        range,
        step,
        timeout,
    } = provider
    else {
        return Err("not a Prometheus provider".into());
    };
    let base = spec.url.trim_end_matches('/');
    let (path, query) = match range {
        None => ("/api/v1/query", vec![("query", spec.query.clone())]),
        Some(r) => {
            let end = now_secs();
            (
                "/api/v1/query_range",
                vec![
                    ("query", spec.query.clone()),
                    ("start", format!("{:.3}", end - r.as_secs_f64())),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{}", step.as_secs_f64())),
                ],
            )
        }
    };
    let max = spec.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    let (status, body) = get_text(client, &format!("{base}{path}"), &query, *timeout, max).await?;
    result(status, &body)
}

/// The series of a Prometheus API answer: (labels, points). An error answer, an HTTP error or
/// garbage is an error.
pub fn result(status: u16, body: &str) -> Result<Vec<(Value, Vec<f64>)>, String> {
    let doc: Value = match serde_json::from_str(body) {
        Ok(d) => d,
        Err(_) if !(200..300).contains(&status) => {
            return Err(format!("HTTP {status}: {}", snippet(body)))
        }
        Err(e) => {
            return Err(format!(
                "not a Prometheus API answer (not JSON: {e}): {}",
                snippet(body)
            ))
        }
    };
    if doc.get("status").and_then(Value::as_str) == Some("error") {
        return Err(format!(
            "Prometheus answered {}{}: {}",
            doc.get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("an error"),
            if (200..300).contains(&status) {
                String::new()
            } else {
                format!(" (HTTP {status})")
            },
            doc.get("error")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
        ));
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", snippet(body)));
    }
    if doc.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!("not a Prometheus API answer: {}", snippet(body)));
    }
    let data = &doc["data"];
    let point = |p: &Value| -> Result<f64, String> {
        p.get(1)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| {
                format!(
                    "a sample is not [time, \"value\"]: {}",
                    snippet(&p.to_string())
                )
            })
    };
    let result = &data["result"];
    match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => Ok(vec![(json!({}), vec![point(result)?])]),
        Some("vector") => result
            .as_array()
            .ok_or("a vector result is not an array")?
            .iter()
            .map(|s| Ok((s["metric"].clone(), vec![point(&s["value"])?])))
            .collect(),
        Some("matrix") => result
            .as_array()
            .ok_or("a matrix result is not an array")?
            .iter()
            .map(|s| {
                let pts = s["values"]
                    .as_array()
                    .ok_or("a matrix series has no values")?
                    .iter()
                    .map(point)
                    .collect::<Result<Vec<f64>, String>>()?;
                Ok((s["metric"].clone(), pts))
            })
            .collect(),
        Some(other) => Err(format!("a `{other}` result is not a number")),
        None => Err(format!("not a Prometheus API answer: {}", snippet(body))),
    }
}

/// One number from series: no series is `Empty`; several are `Multiple` unless aggregated.
pub fn one_value(
    series: Vec<(Value, Vec<f64>)>,
    aggregate: Option<Reduce>,
    reduce: Reduce,
) -> Observed {
    let per_series: Vec<f64> = series
        .iter()
        .filter(|(_, pts)| !pts.is_empty())
        .map(|(_, pts)| reduce.apply(pts))
        .collect();
    match (per_series.len(), aggregate) {
        (0, _) => Observed::Empty,
        (1, _) => Observed::number(per_series[0]),
        (_, Some(a)) => Observed::number(a.apply(&per_series)),
        (n, None) => Observed::Multiple(n),
    }
}
