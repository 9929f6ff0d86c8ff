//! The checks the schema cannot make: the adapter's name, the names one part of the config gives
//! another, and the script adapter's templates.

use std::path::Path;

use crate::error::Error;

use super::{parse_duration, Channel, Config, Loaded, ScriptAdapter};

/// The adapters the binary ships (stdlib/<name>.rhai).
pub const SHIPPED_ADAPTERS: &[&str] = &["local", "script", "kubernetes"];

/// `adapter` names a shipped adapter or a team's `<name>.rhai` beside the runbook (`base`): any
/// other name is a typo the run would only find when it imports it.
pub fn check_adapter(loaded: &Loaded, base: &Path) -> Result<(), Error> {
    let Some(name) = &loaded.config.adapter else {
        return Ok(());
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if SHIPPED_ADAPTERS.contains(&name.as_str())
        || (plain && base.join(format!("{name}.rhai")).is_file())
    {
        return Ok(());
    }
    // The line of a top-level `adapter:` in the file, when it was written there.
    let location = loaded.file.as_ref().and_then(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().enumerate().find_map(|(i, l)| {
            let rest = l.strip_prefix("adapter:")?;
            let value = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
            (value == name).then(|| (i + 1, l.len() - rest.trim_start().len() + 1))
        })
    });
    Err(Error::Config {
        file: loaded
            .file
            .as_ref()
            .map_or_else(|| "--set".into(), |f| f.display().to_string()),
        key: "adapter".into(),
        message: format!(
            "unknown adapter `{name}`, expected one of `local`, `script`, `kubernetes`, or a team's adapter `<name>.rhai` beside the runbook (there is no `{}`)",
            base.join(format!("{name}.rhai")).display()
        ),
        location,
    })
}

/// Values that name something else in the config, or that the schema keeps as text: the
/// channels `monitoring.notify` tells, and the durations of `monitoring.metrics` providers.
pub(super) fn check_references(config: &Config, file: &str) -> Result<(), Error> {
    let bad = |key: String, message: String| Error::Config {
        file: file.to_string(),
        key,
        message,
        location: None,
    };
    for (i, name) in config.monitoring.notify.iter().enumerate() {
        if !config.notify.contains_key(name) {
            let known: Vec<String> = config.notify.keys().map(|k| format!("`{k}`")).collect();
            return Err(bad(
                format!("monitoring.notify[{i}]"),
                format!(
                    "unknown channel `{name}`, expected one of the channels under `notify:` ({})",
                    if known.is_empty() {
                        "none is configured".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let j = &config.monitoring.judge;
    if j.marginal > j.pass {
        return Err(bad(
            "monitoring.judge.marginal".into(),
            format!(
                "`{}` is above `monitoring.judge.pass` ({}): the marginal score cannot be above the passing one",
                j.marginal, j.pass
            ),
        ));
    }
    for (i, m) in j.metrics.iter().enumerate() {
        if !j.groups.is_empty() && !j.groups.contains_key(&m.group) {
            let known: Vec<String> = j.groups.keys().map(|k| format!("`{k}`")).collect();
            return Err(bad(
                format!("monitoring.judge.metrics[{i}].group"),
                format!(
                    "unknown group `{}`, expected one of the groups weighted in `monitoring.judge.groups` ({})",
                    m.group,
                    known.join(", ")
                ),
            ));
        }
        if m.allowed < 0.0 || m.allowed_absolute < 0.0 {
            return Err(bad(
                format!("monitoring.judge.metrics[{i}]"),
                "`allowed` and `allowed_absolute` cannot be negative".into(),
            ));
        }
    }
    for (group, weight) in &j.groups {
        if !j.metrics.iter().any(|m| &m.group == group) {
            let used: std::collections::BTreeSet<String> =
                j.metrics.iter().map(|m| format!("`{}`", m.group)).collect();
            return Err(bad(
                format!("monitoring.judge.groups.{group}"),
                format!(
                    "no judge metric is in group `{group}` (the metrics' groups: {})",
                    if used.is_empty() {
                        "none".to_string()
                    } else {
                        used.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
            ));
        }
        if weight.is_nan() || *weight < 0.0 {
            return Err(bad(
                format!("monitoring.judge.groups.{group}"),
                format!("`{weight}` is not a weight (a number of at least 0)"),
            ));
        }
    }
    // URLs the program itself requests (a `script.*` URL may be a command instead).
    let mut urls: Vec<(String, &str)> = vec![];
    let mon = &config.monitoring;
    for (key, url) in [
        ("monitoring.prometheus", &mon.prometheus),
        ("monitoring.metrics_url", &mon.metrics_url),
        ("kubernetes.flag_url", &config.kubernetes.flag_url),
    ] {
        if let Some(u) = url {
            urls.push((key.to_string(), u));
        }
    }
    if let Some(l) = &config.local {
        urls.push(("local.url".into(), &l.url));
    }
    for (name, ch) in &config.notify {
        if let Channel::Webhook { url, .. } | Channel::Slack { url } = ch {
            urls.push((format!("notify.{name}.url"), url));
        }
    }
    for (key, url) in urls {
        let scheme = reqwest::Url::parse(url).map(|u| u.scheme().to_string());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err(bad(
                key,
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
    }
    for (i, m) in config.monitoring.metrics.iter().enumerate() {
        let Some(p) = &m.provider else { continue };
        let mut durations: Vec<(&str, &Option<String>)> = Vec::new();
        if let Some(x) = &p.prometheus {
            durations.extend([
                ("prometheus.range", &x.range),
                ("prometheus.step", &x.step),
                ("prometheus.timeout", &x.timeout),
            ]);
        }
        if let Some(x) = &p.scrape {
            durations.push(("scrape.timeout", &x.timeout));
        }
        if let Some(x) = &p.http {
            durations.push(("http.timeout", &x.timeout));
        }
        if let Some(x) = &p.command {
            durations.push(("command.timeout", &x.timeout));
        }
        for (key, text) in durations {
            if let Some(t) = text {
                parse_duration(t).map_err(|message| {
                    bad(format!("monitoring.metrics[{i}].provider.{key}"), message)
                })?;
            }
        }
    }
    Ok(())
}

/// The script adapter quotes every value it puts into a command for the shell; a placeholder the
/// template quotes itself (`'{env}'`) would be quoted twice, and the command would see the quotes.
pub(super) fn check_script_templates(script: &ScriptAdapter, file: &str) -> Result<(), Error> {
    let templates = [
        ("deploy", Some(&script.deploy)),
        ("health", script.health.as_ref()),
        ("smoke", script.smoke.as_ref()),
        ("switch", script.switch.as_ref()),
        ("weight", script.weight.as_ref()),
        ("flag", script.flag.as_ref()),
        ("remove", script.remove.as_ref()),
        ("scale", script.scale.as_ref()),
        ("maintenance", script.maintenance.as_ref()),
        ("replace", script.replace.as_ref()),
        ("instance_health", script.instance_health.as_ref()),
    ];
    for (key, template) in templates {
        let Some(template) = template else { continue };
        let known = script_placeholders(key);
        if let Some(unknown) = placeholders(template)
            .into_iter()
            .find(|p| !known.contains(&p.as_str()))
        {
            let hint = crate::error::did_you_mean(&unknown, known.iter().copied())
                .map(|s| format!(" (did you mean `{{{s}}}`?)"))
                .unwrap_or_default();
            return Err(Error::Config {
                file: file.to_string(),
                key: format!("script.{key}"),
                message: format!(
                    "`{{{unknown}}}` is not a placeholder of `script.{key}`{hint}: it would reach the command as written; its placeholders are {}",
                    known.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                ),
                location: None,
            });
        }
        if let Some(quoted) = quoted_placeholder(template) {
            return Err(Error::Config {
                file: file.to_string(),
                key: format!("script.{key}"),
                message: format!(
                    "the placeholder {quoted} is quoted in the template; runbook quotes every value \
                     it substitutes for the shell, so write the placeholder outside quotes"
                ),
                location: None,
            });
        }
    }
    Ok(())
}

/// The placeholders the script adapter fills in for each `script.*` template (stdlib/script.rhai).
fn script_placeholders(key: &str) -> &'static [&'static str] {
    match key {
        "deploy" | "health" | "smoke" | "remove" => &["env", "version", "colour"],
        "switch" => &["from", "to", "from_version", "to_version", "version"],
        "weight" => &[
            "version",
            "percent",
            "colour",
            "other",
            "other_percent",
            "other_colour",
        ],
        "flag" => &["action", "name", "percent", "version"],
        "scale" => &["env", "count", "version"],
        "maintenance" => &["action"],
        "replace" => &["instance", "version", "env"],
        "instance_health" => &["instance", "version"],
        _ => &[],
    }
}

/// The `{name}` placeholders of a template, in order.
fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find('}') {
            let name = &rest[..j];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The first placeholder written inside shell quotes (`'{env}'`, `"app-{version}"`), if any.
fn quoted_placeholder(template: &str) -> Option<String> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in template.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (None, '\'') | (None, '"') => quote = Some(c),
            (None, '\\') | (Some('"'), '\\') => escaped = true,
            (Some(q), '{') => {
                let rest = &template[i + 1..];
                let name = &rest[..rest.find('}')?];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Some(format!("{{{name}}} (inside {q}...{q})"));
                }
            }
            _ => {}
        }
    }
    None
}
