//! `notify(channel, message)`: to a channel from the team config (webhook, Slack-compatible
//! webhook, file, stdout). A failed notification (a channel the config does not define among
//! them) is shown and journaled; it never fails the run. A channel written literally in the
//! runbook is checked before the run starts (runner::prepare).

use std::io::Write;
use std::time::Duration;

use rhai::{Array, Dynamic};
use serde_json::json;

use super::{fail, RhaiResult};
use crate::config::Channel;
use crate::session::{GateError, Gated, Session, Shared};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("notify", move |channel: Dynamic, message: &str| {
        notify(&s, channel, message)
    });
}

pub fn notify(session: &Session, channel: Dynamic, message: &str) -> RhaiResult<bool> {
    let names: Vec<String> = if channel.is_string() {
        vec![channel.to_string()]
    } else if let Some(a) = channel.read_lock::<Array>() {
        a.iter().map(|c| c.to_string()).collect()
    } else {
        return Err(fail(format!(
            "`notify` takes a channel name or an array of them, not {}",
            channel.type_name()
        )));
    };
    let mut all_ok = true;
    for name in names {
        let text = session.redact(message);
        let Some(ch) = session.config.config.notify.get(&name).cloned() else {
            // A channel written literally was checked before the run; this one was computed.
            // Not knowing where to send is a failed notification like any other: never fatal.
            let known: Vec<&str> = session
                .config
                .config
                .notify
                .keys()
                .map(String::as_str)
                .collect();
            let why = unknown_channel(&name, &known);
            let r = session.gate(
                "notify",
                &name,
                json!({ "channel": name, "message": text }),
                || json!({ "planned": true, "unknown_channel": true }),
                || Err(why.clone().into()),
            );
            if let Err(e @ (GateError::Fatal(_) | GateError::Halt)) = r {
                return Err(super::gate_error(session, e));
            }
            all_ok = false;
            session.warn(&format!("notification to `{name}` failed: {why}"));
            continue;
        };
        let r = session.gate(
            "notify",
            &name,
            json!({ "channel": name, "message": text }),
            || json!({ "planned": true }),
            || send(session, &name, &ch, &text).map_err(Into::into),
        );
        match r {
            Ok(Gated::Planned(_)) => session.say(&format!("  (dry-run) notify {name}: {text}")),
            Ok(_) => session.say_styled(&format!("  ✉ {name}: {text}"), |ui, s| ui.green(s)),
            Err(GateError::Failed(crate::effects::Failure(e, _))) => {
                all_ok = false;
                session.warn(&format!("notification to `{name}` failed: {e}"));
            }
            Err(e) => return Err(super::gate_error(session, e)),
        }
    }
    Ok(all_ok)
}

/// Why `name` is not a channel: with a near name, and the channels the config defines.
pub fn unknown_channel(name: &str, known: &[&str]) -> String {
    let hint = crate::error::did_you_mean(name, known.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    if known.is_empty() {
        format!("no notification channel `{name}`{hint}: the config defines none")
    } else {
        format!(
            "no notification channel `{name}`{hint}: the channels defined are {}",
            known.join(", ")
        )
    }
}

fn send(
    session: &Session,
    name: &str,
    ch: &Channel,
    text: &str,
) -> Result<serde_json::Value, String> {
    match ch {
        Channel::Stdout => {
            session.ui.shout(&format!("📣 [{name}] {text}"));
            Ok(json!({ "delivered": "stdout" }))
        }
        Channel::File { path } => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                session.config.base_dir().join(path)
            };
            let line = json!({ "ts": crate::journal::now_rfc3339(), "channel": name, "feature": session.feature, "text": text });
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| writeln!(f, "{line}"))
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            Ok(json!({ "delivered": path }))
        }
        Channel::Webhook { url, headers } => {
            let body = json!({
                "text": text,
                "channel": name,
                "feature": session.feature,
                "run": session.run_dir.borrow().as_ref().map(|d| d.display().to_string()),
            });
            post(session, url, headers.iter().collect(), body)
        }
        Channel::Slack { url } => post(session, url, vec![], json!({ "text": text })),
    }
}

fn post(
    session: &Session,
    url: &str,
    headers: Vec<(&String, &String)>,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let client = session.http();
    let body = session.redact(&body.to_string());
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let resp = session
        .rt
        .block_on(async move {
            let mut req = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(10));
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.send().await
        })
        .map_err(|e| {
            format!(
                "cannot reach the webhook: {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    e.to_string()
                }
            )
        })?;
    let status = resp.status();
    if status.is_success() {
        Ok(json!({ "status": status.as_u16() }))
    } else {
        Err(format!("the webhook answered {status}"))
    }
}
