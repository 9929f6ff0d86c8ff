//! The `scrape` provider: a Prometheus text endpoint, label selection, a ratio of two series,
//! and counters for rates computed between scrapes.

use super::*;

/// Read the endpoint once.
pub(super) async fn read(
    client: &crate::net::Client,
    spec: &ScrapeSpec,
    timeout: Duration,
) -> Result<Value, String> {
    let max = spec.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    let (status, body) = get_text(client, &spec.url, &[], timeout, max).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    let at = now_secs();
    let samples = crate::analysis::text::parse_text(&body)?;
    // The parser skips lines it cannot read: a body with text but no sample is garbage.
    if samples.is_empty() {
        if let Some(line) = body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            return Err(format!(
                "not Prometheus text: no sample could be read (first line: `{}`)",
                snippet(line)
            ));
        }
    }
    let pick = |name: &str| -> Result<Option<f64>, Observed> {
        let values: Vec<f64> = samples
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| {
                spec.labels
                    .iter()
                    .all(|(k, v)| s["labels"].get(k).and_then(Value::as_str) == Some(v))
            })
            .map(|s| s["value"].as_f64().unwrap_or(f64::NAN))
            .collect();
        match (values.len(), spec.aggregate) {
            (0, _) => Ok(None),
            (1, _) => Ok(Some(values[0])),
            (_, Some(r)) => Ok(Some(r.apply(&values))),
            (n, None) => Err(Observed::Multiple(n)),
        }
    };
    let selector = || {
        let l: Vec<String> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{{{}}}", l.join(","))
    };
    let num = match pick(&spec.metric) {
        Err(o) => return Ok(o.to_json()),
        Ok(None) => {
            return Ok(Observed::NoData(format!(
                "no series {}{} at {}",
                spec.metric,
                selector(),
                spec.url
            ))
            .to_json())
        }
        Ok(Some(v)) => v,
    };
    let den = match &spec.divide_by {
        None => None,
        Some(d) => match pick(d) {
            Err(o) => return Ok(o.to_json()),
            Ok(None) => {
                return Ok(
                    Observed::NoData(format!("no series {d}{} at {}", selector(), spec.url))
                        .to_json(),
                )
            }
            Ok(Some(v)) => Some(v),
        },
    };
    if spec.rate.is_some() {
        return Ok(counters(num, den, at));
    }
    let scale = spec.scale.unwrap_or(1.0);
    Ok(match den {
        None => Observed::number(num * scale),
        Some(d) => Observed::number(num / d * scale),
    }
    .to_json())
}
