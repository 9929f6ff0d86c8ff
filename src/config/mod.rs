//! Team config: `runbook.yaml` merged with `--set key.path=value`. Unknown keys are errors that
//! name the key's path; nothing is silently ignored.
//!
//! schema.rs is `Config` and its small sections, with lock.rs, adapters.rs and monitoring.rs the
//! larger ones; values.rs the checked values they are made of; load.rs reads the file and the
//! `--set`s; validate.rs the checks across keys. This file is what scripts see of it.

mod adapters;
mod load;
mod lock;
mod monitoring;
mod schema;
mod validate;
mod values;

pub use adapters::*;
pub use load::{load, parse, too_deep, Loaded, MAX_NESTING};
pub use lock::*;
pub use monitoring::*;
pub use schema::*;
pub use validate::{check_adapter, SHIPPED_ADAPTERS};
pub use values::*;

use std::path::PathBuf;

use crate::error::Error;

pub const FILE_NAME: &str = "runbook.yaml";

/// The value scripts see as `config()`: every key, the merged file's value or its default (a key
/// with no default is there as `()`), `feature` the run's (by default the runbook's file name),
/// and the secrets' names without their values.
pub fn script_view(loaded: &Loaded, feature: &str) -> serde_json::Value {
    use serde_json::{json, Value as J};
    let c = &loaded.config;
    let mut v = serde_json::to_value(c).unwrap_or(J::Null);
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    map.insert("feature".into(), json!(feature));
    map.insert(
        "deployments_dir".into(),
        json!(c
            .deployments_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("deployments"))),
    );
    // The adapters' sections are there with their defaults when the file leaves them out.
    if c.local.is_none() {
        map.insert("local".into(), json!({ "url": null }));
    }
    if c.script.is_none() {
        let mut script = serde_json::to_value(ScriptAdapter::default()).unwrap_or(J::Null);
        script["deploy"] = J::Null;
        map.insert("script".into(), script);
    }
    let k = &c.kubernetes;
    map["kubernetes"]["host"] = json!(k.host.as_ref().unwrap_or(&k.service));
    map["kubernetes"]["container"] = json!(k.container.as_ref().unwrap_or(&k.deployment));
    if c.triggers.inconclusive_limit.is_none() {
        map["triggers"]["inconclusive_limit"] = json!(c.monitoring.samples.saturating_mul(2));
    }
    let names: serde_json::Map<String, J> = c
        .secrets
        .values
        .keys()
        .map(|k| (k.clone(), J::Null))
        .collect();
    map["secrets"]["values"] = J::Object(names);
    v
}

/// A duration from the config at `key`; a bad one is a config error naming the key.
pub fn duration_at(loaded: &Loaded, key: &str, text: &str) -> Result<std::time::Duration, Error> {
    parse_duration(text).map_err(|message| Error::Config {
        file: loaded
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "--set".into()),
        key: key.into(),
        message,
        location: None,
    })
}
