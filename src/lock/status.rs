//! `runbook status [ENV]`: each environment as its lock backend has it: who holds it (or held it
//! last), which run, its stage, traffic and last verdict. Read from the backend, so with etcd or
//! Kubernetes it shows the same from any machine that shares the store.

use std::path::Path;

use serde_json::Value;

use super::{EnvStatus, Holder};
use crate::error::Error;
use crate::options::Common;
use crate::ui::Ui;

/// A small runtime for the commands that talk to a lock store outside a run (`status`, `unlock`).
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", ".", e))
}

fn traffic(v: &Option<Value>) -> String {
    let Some(weights) = v.as_ref().and_then(|t| t["weights"].as_object()) else {
        return "-".into();
    };
    weights
        .iter()
        .map(|(version, share)| format!("{version} {share}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(v) => match (v["verdict"].as_str(), v["reason"].as_str()) {
            (Some(verdict), Some(reason)) if !reason.is_empty() => format!("{verdict} ({reason})"),
            (Some(verdict), _) => verdict.to_string(),
            _ => v.to_string(),
        },
        None => "-".into(),
    }
}

fn progress(h: &Holder) -> String {
    let mut line = format!(
        "  stage: {}; traffic: {}; last verdict: {}",
        h.stage.as_deref().unwrap_or("-"),
        traffic(&h.traffic),
        verdict(&h.verdict)
    );
    // What live control last did (`runbook control`): "paused by who: why".
    if let Some(c) = &h.control {
        let reason = c["reason"].as_str().unwrap_or_default();
        line.push_str(&format!(
            "; {} by {}{}",
            c["state"].as_str().unwrap_or("controlled"),
            c["by"].as_str().unwrap_or("someone"),
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        ));
    }
    line
}

fn render(ui: &Ui, s: &EnvStatus) -> String {
    let mut out = String::new();
    match (&s.holder, &s.last) {
        (Some(h), _) => {
            out.push_str(&format!(
                "{}: {} by {} (pid {}) since {}, run {}{}\n",
                ui.bold(&s.environment),
                ui.yellow("held"),
                h.who(),
                h.pid,
                h.started,
                h.run_dir,
                super::stale(h)
                    .map(|why| format!(" (stale: {why})"))
                    .unwrap_or_default()
            ));
            out.push_str(&progress(h));
        }
        (None, Some(last)) => {
            let ended = match s.ended.as_deref() {
                Some("released") => "released",
                Some("broken") => "broken with `runbook unlock`",
                Some("taken over") => "taken over with `--take-over`",
                // Its record says held, its lock is gone: the lease ran out.
                Some("held") => "its lease ran out (it died, or lost the store)",
                _ => "gone",
            };
            out.push_str(&format!(
                "{}: {} (last: {} (pid {}), run {}, {ended})\n",
                ui.bold(&s.environment),
                ui.green("free"),
                last.who(),
                last.pid,
                last.run_dir
            ));
            out.push_str(&progress(last));
        }
        (None, None) => out.push_str(&format!(
            "{}: {} (no run has held it here)",
            ui.bold(&s.environment),
            ui.green("free")
        )),
    }
    out
}

pub fn show(
    common: &Common,
    ui: &Ui,
    environment: Option<&str>,
    deployments_dir: Option<&Path>,
) -> Result<i32, Error> {
    let loaded = crate::config::load(common.config_file.as_deref(), &common.sets)?;
    let root = crate::options::deployments_root(deployments_dir, &loaded);
    let rt = runtime()?;
    let backend = super::open(&loaded.config, &root, rt.handle().clone())?;
    let all = backend.statuses(environment)?;
    if all.is_empty() {
        crate::outln!(
            "no environment has been locked yet (in {})",
            backend.store(&loaded.config.lock.environment)
        );
    }
    for s in &all {
        crate::outln!("{}", render(ui, s));
    }
    Ok(0)
}
