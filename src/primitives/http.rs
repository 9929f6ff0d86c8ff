//! `http(method, url)`, `http(method, url, body)`, `http(method, url, body, opts)`: one HTTP
//! request through the gate. A map or array body is sent as JSON; the answer's JSON is parsed.

use std::time::Duration;

use rhai::{Dynamic, Map};
use serde_json::json;

use super::{fail, gate_error, to_json, Opts, RhaiResult};
use crate::session::{Session, Shared};

const OPTIONS: &[&str] = &["timeout", "headers", "allow_fail", "name"];

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("http", move |m: &str, url: &str| {
        request(&s, m, url, Dynamic::UNIT, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("http", move |m: &str, url: &str, body: Dynamic| {
        request(&s, m, url, body, &Map::new())
    });
    let s = session.clone();
    engine.register_fn(
        "http",
        move |m: &str, url: &str, body: Dynamic, opts: Map| request(&s, m, url, body, &opts),
    );
}

struct Answer {
    status: u16,
    body: String,
    ms: u64,
}

fn request(
    session: &Session,
    method: &str,
    url: &str,
    body: Dynamic,
    opts: &Map,
) -> RhaiResult<Map> {
    let o = Opts::new(opts, "http", OPTIONS)?;
    let method_up = method.to_ascii_uppercase();
    let m = reqwest::Method::from_bytes(method_up.as_bytes())
        .map_err(|_| fail(format!("`{method}` is not an HTTP method")))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail(format!(
            "`http` needs a URL starting with http:// or https://, not `{url}`"
        )));
    }
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
    let allow_fail = o.bool("allow_fail")?.unwrap_or(false);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = o.get("headers") {
        let h = h
            .read_lock::<Map>()
            .ok_or_else(|| fail("`headers` of `http` must be a map"))?;
        headers = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    let (payload, json_body) = if body.is_unit() {
        (None, false)
    } else if body.is_string() {
        (Some(body.to_string()), false)
    } else {
        (Some(to_json(&body).to_string()), true)
    };
    let name = o
        .string("name")?
        .unwrap_or_else(|| format!("{method_up} {url}"));
    let intent = json!({ "method": method_up, "url": url, "body": payload });
    let r = session.gate(
        "http",
        &name,
        intent,
        || json!({ "status": 200, "planned": true }),
        || {
            let client = session.http();
            let url = url.to_string();
            let payload = payload.clone();
            let started = std::time::Instant::now();
            let resp = session.rt.block_on(async move {
                let mut req = client.request(m, &url).timeout(timeout);
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                if let Some(p) = payload {
                    if json_body {
                        req = req.header("content-type", "application/json");
                    }
                    req = req.body(p);
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let text = resp.text().await?;
                Ok::<_, reqwest::Error>((status, text))
            });
            let (status, text) = resp.map_err(|e| {
                if e.is_timeout() {
                    format!(
                        "`{name}`: no answer within {}",
                        crate::ui::format_duration(timeout)
                    )
                } else if e.is_connect() {
                    format!("`{name}`: cannot connect")
                } else {
                    format!("`{name}`: {e}")
                }
            })?;
            let a = Answer {
                status,
                body: text,
                ms: started.elapsed().as_millis() as u64,
            };
            let v = json!({ "status": a.status, "body": a.body, "ms": a.ms });
            if (200..300).contains(&a.status) || allow_fail {
                Ok(v)
            } else {
                Err(format!("`{name}` answered {}: {}", a.status, a.body.trim()).into())
            }
        },
    );
    // The answer as the journal holds it (so a resumed run sees the same); none for a plan.
    let got = match r.as_ref().map(|g| (g.planned(), g.value())) {
        Ok((false, v)) => Some(Answer {
            status: v
                .get("status")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as u16,
            body: v
                .get("body")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string(),
            ms: v.get("ms").and_then(serde_json::Value::as_u64).unwrap_or(0),
        }),
        _ => None,
    };
    match (r, got) {
        (Err(e), _) => Err(gate_error(session, e)),
        (Ok(_), Some(a)) => {
            let mut m = Map::new();
            m.insert("status".into(), Dynamic::from(a.status as i64));
            m.insert("ms".into(), Dynamic::from(a.ms as i64));
            let parsed = serde_json::from_str::<serde_json::Value>(&a.body).ok();
            m.insert(
                "json".into(),
                parsed
                    .map(|v| super::from_json(&v))
                    .unwrap_or(Dynamic::UNIT),
            );
            m.insert("body".into(), Dynamic::from(a.body));
            Ok(m)
        }
        (Ok(_), None) => {
            session.say(&format!("  (dry-run) {name}"));
            let mut m = Map::new();
            m.insert("status".into(), Dynamic::from(200_i64));
            m.insert("body".into(), Dynamic::from(""));
            m.insert("json".into(), Dynamic::UNIT);
            m.insert("planned".into(), Dynamic::from(true));
            Ok(m)
        }
    }
}
