//! The Rhai API as a contract: the functions an adapter module must define for the shipped
//! workflow, checked before a run starts (and by `runbook check`), so that a team's adapter
//! missing `smoke_checks` is told so before anything is deployed, not after the staging deploy.

use std::path::Path;

use crate::error::Error;

/// A function the shipped workflow and strategies call on the adapter.
pub struct Required {
    pub name: &'static str,
    pub params: &'static [&'static str],
    /// What calls it, for the message.
    pub used_by: &'static str,
}

const fn req(
    name: &'static str,
    params: &'static [&'static str],
    used_by: &'static str,
) -> Required {
    Required {
        name,
        params,
        used_by,
    }
}

/// Every adapter defines these (one that cannot run a strategy says so with `supports`, and
/// its functions for that strategy throw).
pub const ADAPTER: &[Required] = &[
    req(
        "deploy",
        &["env", "version", "count"],
        "the staging and production deploys",
    ),
    req(
        "instances",
        &["env", "version"],
        "counting and replacing instances",
    ),
    req(
        "smoke_checks",
        &["env", "version"],
        "the staging smoke tests",
    ),
    req(
        "health_checks",
        &["env", "version"],
        "the health checks after each deploy",
    ),
    req("remove", &["env", "version"], "undoing a deploy"),
    req(
        "cleanup",
        &["adapter_name", "current", "version"],
        "the post-deployment cleanup",
    ),
    req("switch_to", &["version"], "blue-green's traffic switch"),
    req("deploy_canary", &["version"], "canary's deploy"),
    req("remove_canary", &["version"], "undoing a canary"),
    req(
        "set_weight",
        &["version", "percent", "other"],
        "canary's traffic shares",
    ),
    req("promote", &["version", "current"], "canary's promotion"),
    req(
        "replace_instance",
        &["id", "version"],
        "the rolling batches",
    ),
    req(
        "flag",
        &["name", "version", "percent"],
        "the feature flag's shares",
    ),
];

/// Called when defined: `supports(strategy)` (why it cannot run one, or ()),
/// `undo_command(function, args)` (the command an undo will run, for the rollback plan),
/// `maintenance(on)`, `scale(version, count)` (the REPL's emergency actions), `metrics_url()`.
pub const ADAPTER_OPTIONAL: &[Required] = &[
    req("supports", &["strategy"], "the strategy menu"),
    req("undo_command", &["function", "args"], "the rollback plan"),
    req("maintenance", &["on"], "the REPL's maintenance()"),
    req("scale", &["version", "count"], "the REPL's scale()"),
    req("metrics_url", &[], "monitoring without a configured source"),
];

/// What is wrong with an adapter module's text against the contract, one line each.
pub fn adapter_problems(text: &str) -> Result<Vec<String>, String> {
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(0, 0);
    let ast = engine.compile(text).map_err(|e| e.to_string())?;
    let defined: Vec<(String, usize, bool)> = ast
        .iter_functions()
        .map(|f| {
            (
                f.name.to_string(),
                f.params.len(),
                f.access == rhai::FnAccess::Public,
            )
        })
        .collect();
    let mut problems = Vec::new();
    for r in ADAPTER.iter().chain(ADAPTER_OPTIONAL) {
        let required = ADAPTER.iter().any(|a| a.name == r.name);
        let same_name: Vec<&(String, usize, bool)> =
            defined.iter().filter(|(n, _, _)| n == r.name).collect();
        let want = format!("{}({})", r.name, r.params.join(", "));
        if same_name
            .iter()
            .any(|(_, arity, public)| *arity == r.params.len() && *public)
        {
            continue;
        }
        if let Some((_, arity, public)) = same_name.first() {
            if !public {
                problems.push(format!(
                    "`{}` is private: the workflow calls {want} for {} (remove `private`)",
                    r.name, r.used_by
                ));
            } else {
                problems.push(format!(
                    "`{}` takes {arity} argument(s); the workflow calls {want} for {}",
                    r.name, r.used_by
                ));
            }
        } else if required {
            problems.push(format!(
                "it does not define {want}, which the workflow calls for {}",
                r.used_by
            ));
        }
    }
    Ok(problems)
}

/// Before a run of a runbook that uses the shipped workflow: the configured adapter, when it is
/// the team's own module, defines the contract. `modules` are the names of the modules the
/// runbook imports (as `Sources` holds them).
pub fn check_adapter(
    loaded: &crate::config::Loaded,
    modules: &[String],
    base: &Path,
    running: bool,
) -> Result<(), Error> {
    let workflow = crate::modules::shipped_name("stdlib", "workflow.rhai");
    if !modules.contains(&workflow) {
        return Ok(());
    }
    let Some(adapter) = loaded.config.adapter.as_deref() else {
        // `runbook check` validates what is written (a config may leave the adapter to --set);
        // a run finds it now, before the lock is taken or anything runs: exit 2.
        if !running {
            return Ok(());
        }
        return Err(Error::Config {
            file: loaded
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "runbook.yaml".into()),
            key: "adapter".into(),
            message: "no adapter configured: the shipped workflow needs one; set `adapter` to local, script or kubernetes (or a team's `<name>.rhai` beside the runbook); `runbook demo` runs the local one".into(),
            location: None,
        });
    };
    let Ok((shown, text)) = crate::modules::locate(None, adapter, base) else {
        return Ok(()); // the import at run time says which files it looked for
    };
    if shown.starts_with("<shipped>") {
        return Ok(()); // the shipped adapters are held to it by the test suite
    }
    let problems = adapter_problems(&text).map_err(|e| Error::Config {
        file: shown.clone(),
        key: "adapter".into(),
        message: format!("the adapter module does not compile: {e}"),
        location: None,
    })?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Config {
        file: loaded
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "--set".into()),
        key: "adapter".into(),
        message: format!(
            "the adapter `{adapter}` ({shown}) does not meet the adapter contract:\n  - {}\n\
             Every adapter defines {}; see docs/architecture.md, \"The workflow, strategies and adapters\".",
            problems.join("\n  - "),
            ADAPTER
                .iter()
                .map(|r| format!("{}({})", r.name, r.params.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_adapter_meets_the_contract() {
        for name in ["local", "script", "kubernetes"] {
            let (_, text) = crate::modules::locate(None, name, Path::new(".")).unwrap();
            assert_eq!(
                adapter_problems(&text).unwrap(),
                Vec::<String>::new(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_missing_a_private_and_a_wrong_arity_function_are_each_named() {
        let (_, local) = crate::modules::locate(None, "local", Path::new(".")).unwrap();
        let text = local
            .replace(
                "fn smoke_checks(env, version)",
                "fn smoke_check(env, version)",
            )
            .replace("fn switch_to(version)", "private fn switch_to(version)")
            .replace("fn flag(name, version, percent)", "fn flag(name, percent)");
        let p = adapter_problems(&text).unwrap();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("does not define smoke_checks(env, version), which the workflow calls for the staging smoke tests"), "{p:?}");
        assert!(p[1].contains("`switch_to` is private"), "{p:?}");
        assert!(
            p[2].contains(
                "`flag` takes 2 argument(s); the workflow calls flag(name, version, percent)"
            ),
            "{p:?}"
        );
    }
}
