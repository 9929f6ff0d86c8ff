//! Small things scripts need: durations, sleep, time, log, environment, config and secrets.

use rhai::Dynamic;

use super::{fail, from_json, to_duration, RhaiResult};
use crate::journal::Record;
use crate::session::{Session, Shared};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    engine.register_fn("duration", |d: Dynamic| -> RhaiResult<i64> {
        to_duration(&d).map(|d| d.as_millis() as i64).map_err(fail)
    });
    let s = session.clone();
    engine.register_fn("sleep", move |d: Dynamic| -> RhaiResult<()> {
        sleep(&s, d)
    });
    engine.register_fn("now", crate::journal::now_rfc3339);
    let s = session.clone();
    engine.register_fn(
        "config_error",
        move |key: &str, message: &str| -> RhaiResult<()> {
            s.record(Record::ConfigError {
                key: key.to_string(),
                message: message.to_string(),
            });
            let file = s.config.file.as_ref().map_or_else(
                || "runbook.yaml (none found; --set)".to_string(),
                |f| f.display().to_string(),
            );
            Err(
                s.stop(crate::session::Stop::Error(crate::error::Error::Config {
                    file,
                    key: key.to_string(),
                    message: message.to_string(),
                    location: None,
                })),
            )
        },
    );
    let s = session.clone();
    engine.register_fn(
        "precondition_failed",
        move |message: &str| -> RhaiResult<()> {
            s.record(Record::PreconditionFailed {
                message: message.to_string(),
            });
            Err(
                s.stop(crate::session::Stop::Error(crate::error::Error::Usage(
                    message.to_string(),
                ))),
            )
        },
    );
    engine.register_fn("shell_quote", |value: Dynamic| -> RhaiResult<String> {
        shell_quote(&value.to_string()).map_err(fail)
    });
    engine.register_fn("timestamp_ms", || -> i64 {
        crate::clock::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    let s = session.clone();
    engine.register_fn("log", move |msg: Dynamic| log(&s, &msg.to_string()));
    let s = session.clone();
    engine.register_fn("env", move |name: &str| -> RhaiResult<String> {
        std::env::var(name).map_err(|_| {
            let _ = &s;
            fail(format!("environment variable `{name}` is not set (use env(\"{name}\", default) for a fallback)"))
        })
    });
    engine.register_fn("env", |name: &str, default: &str| -> String {
        std::env::var(name).unwrap_or_else(|_| default.to_string())
    });
    let s = session.clone();
    engine.register_fn("config", move || -> Dynamic { from_json(&config_view(&s)) });
    let s = session.clone();
    engine.register_fn("config", move |path: &str| -> RhaiResult<Dynamic> {
        lookup(&s, path).ok_or_else(|| {
            fail(format!(
                "config has no `{path}` (set it in runbook.yaml or with --set {path}=...)"
            ))
        })
    });
    let s = session.clone();
    engine.register_fn("config", move |path: &str, default: Dynamic| -> Dynamic {
        lookup(&s, path).unwrap_or(default)
    });
    let s = session.clone();
    engine.register_fn("secret", move |name: &str| -> RhaiResult<String> {
        s.config
            .config
            .secrets
            .values
            .get(name)
            .cloned()
            .ok_or_else(|| {
                let known = s.config.config.secrets.values.keys().map(String::as_str);
                let hint = crate::error::did_you_mean(name, known)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                fail(format!(
                    "no secret `{name}` under `secrets.values` in runbook.yaml{hint}"
                ))
            })
    });
    let s = session.clone();
    engine.register_fn("feature", move || s.feature.clone());
    let s = session.clone();
    engine.register_fn("dry_run", move || s.dry_run());
    let s = session.clone();
    engine.register_fn("run_dir", move || {
        s.run_dir
            .borrow()
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    });
    let s = session.clone();
    engine.register_fn("set_strategy", move |name: &str| {
        *s.strategy.borrow_mut() = Some(name.to_string());
        s.record(Record::Strategy {
            strategy: name.to_string(),
        });
    });
    let s = session.clone();
    engine.register_fn("strategy", move || -> Dynamic {
        s.strategy
            .borrow()
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from)
    });
}

fn sleep(session: &Session, d: Dynamic) -> RhaiResult<()> {
    let d = to_duration(&d).map_err(fail)?;
    session.sleep(d).map_err(|_| session.stop_waiting())
}

pub fn log(session: &Session, msg: &str) {
    session.say(msg);
    session.record(Record::Log {
        message: session.redact(msg),
        stage: session.current_stage(),
    });
}

/// `config()`: the whole config with its defaults, and where this run's directories really go
/// (`--deployments-dir` wins over the file's `deployments_dir`).
fn config_view(session: &Session) -> serde_json::Value {
    let mut v = crate::config::script_view(&session.config, &session.feature);
    if let (Some(root), Some(map)) = (
        session.deployments_root.borrow().as_ref(),
        v.as_object_mut(),
    ) {
        map.insert("deployments_dir".into(), serde_json::json!(root));
    }
    v
}

/// A dotted path into the merged config, e.g. "vars.region".
fn lookup(session: &Session, path: &str) -> Option<Dynamic> {
    let mut v = config_view(session);
    for part in path.split('.') {
        v = match v {
            serde_json::Value::Object(mut m) => m.remove(part)?,
            serde_json::Value::Array(mut a) => {
                let i: usize = part.parse().ok()?;
                if i < a.len() {
                    a.swap_remove(i)
                } else {
                    return None;
                }
            }
            _ => return None,
        };
    }
    if v.is_null() {
        return None;
    }
    Some(from_json(&v))
}

/// A value as one shell word: left as it is when the shell would read it unchanged, else quoted.
pub fn shell_quote(value: &str) -> Result<String, String> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| format!("cannot pass {value:?} to a shell: it contains a NUL byte"))
}
