//! `scrape(url)`: read a Prometheus text-format endpoint through the gate, parsed by the
//! prometheus-parse crate, as an array of `#{name, labels, value}` samples (histogram buckets
//! expanded into `<name>_bucket` samples with an `le` label).

use std::time::Duration;

use rhai::{Array, Map};
use serde_json::{json, Value};

use super::{from_json, gate_error, Opts, RhaiResult};
use crate::session::{Session, Shared};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("scrape", move |url: &str| scrape(&s, url, &Map::new()));
    let s = session.clone();
    engine.register_fn("scrape", move |url: &str, opts: Map| scrape(&s, url, &opts));
}

use crate::analysis::text::parse_text;

fn scrape(session: &Session, url: &str, opts: &Map) -> RhaiResult<Array> {
    let o = Opts::new(opts, "scrape", &["timeout"])?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(5));
    let r = session.gate(
        "scrape",
        url,
        json!({ "url": url }),
        || json!({ "planned": true }),
        || {
            // The same reader as the metric providers: plain HTTP without TLS set-up, a cap on
            // the answer's size, one timeout for all of it.
            let client = session.net(url.starts_with("https://"));
            let (status, body) = session
                .rt
                .block_on(crate::analysis::provider::get_text(
                    &client,
                    url,
                    &[],
                    timeout,
                    8 << 20,
                ))
                .map_err(|e| {
                    if e.ends_with("(timeout)") {
                        format!("scrape of {url} timed out")
                    } else {
                        format!("scrape of {url} failed: {e}")
                    }
                })?;
            if !(200..300).contains(&status) {
                return Err(format!("scrape of {url} answered {status}").into());
            }
            // The samples themselves are the result: a resumed run reads the same numbers.
            Ok(json!({ "samples": parse_text(&body)? }))
        },
    );
    match r {
        Err(e) => Err(gate_error(session, e)),
        Ok(v) => Ok(v
            .value()
            .get("samples")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(from_json).collect())
            .unwrap_or_default()),
    }
}
