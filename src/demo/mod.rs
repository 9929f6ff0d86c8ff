//! `runbook demo`: the shipped deploy runbook, with the `local` adapter, against an embedded
//! fleet on loopback ports the OS picks (so runs and tests can overlap).

pub mod fleet;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;
use crate::options::{Common, RunOptions};
use crate::ui::Ui;

pub const CURRENT: &str = "v1";
pub const NEW: &str = "v2";

use crate::options::DemoOptions;

pub const STRATEGIES: &[&str] = &["blue-green", "rolling", "canary", "feature-flag"];

pub fn run(common: &Common, opts: &DemoOptions, ui: &Ui) -> Result<i32, Error> {
    // The fleet gets its own runtime: it serves while the script runs on the main thread.
    let rt = crate::runner::runtime_with(2)?;
    let fleet = rt
        .block_on(fleet::Fleet::start(fleet::Options {
            bad_versions: if opts.bad_release {
                vec![NEW.to_string()]
            } else {
                vec![]
            },
            traffic_rps: 100,
            current_version: CURRENT.into(),
            instances: 4,
        }))
        .map_err(|e| {
            Error::io(
                "start the demo fleet",
                std::path::PathBuf::from("127.0.0.1"),
                e,
            )
        })?;

    let unattended = opts.unattended || !std::io::IsTerminal::is_terminal(&std::io::stdin());
    ui.say(&ui.bold("runbook demo"));
    ui.say(&format!(
        "  fleet: router {} in front of 4 instances of {CURRENT}, 100 requests/s of steady traffic",
        fleet.url()
    ));
    ui.say(&format!(
        "  release: {NEW}{}",
        if opts.bad_release {
            " (bad: fails about 20% of requests and answers slowly)"
        } else {
            ""
        }
    ));
    if unattended && !opts.unattended {
        ui.say("  no terminal: running unattended (the rollout schedule replaces the menus)");
    }

    let mut sets = vec![
        "adapter=local".to_string(),
        format!("local.url={}", fleet.url()),
        "feature=checkout".into(),
        format!("version={NEW}"),
        format!("current_version={CURRENT}"),
        "notify.team.type=stdout".into(),
        "monitoring.business.Orders (all versions)=demo_orders_total".into(),
        // CPU and memory: the demo fleet's own process (its instances are tasks in it), as its
        // /metrics exports them; the shipped CPU and memory triggers judge them.
        "monitoring.series.cpu_seconds=demo_fleet_process_cpu_seconds_total".into(),
        "monitoring.series.memory_bytes=demo_fleet_process_resident_memory_bytes".into(),
        "monitoring.series.memory_total=demo_fleet_machine_memory_bytes".into(),
        // Automated checks that really run: the binary compiles the shipped runbooks and
        // answers, and the fleet answers through its router.
        format!(
            "checks.tests={} check deploy --set adapter=local",
            exe_quoted()
        ),
        format!("checks.build={} --version", exe_quoted()),
        format!("checks.integration={}/health", fleet.url()),
        format!("checks.e2e={}/", fleet.url()),
    ];
    if unattended {
        sets.push("unattended=true".into());
    }
    // The team's own settings (thresholds, intervals) still apply; the demo's come last.
    sets.splice(0..0, common.sets.iter().cloned());
    let demo_common = Common {
        sets,
        ..common.clone()
    };
    let mut presets = BTreeMap::new();
    if let Some(s) = &opts.strategy {
        presets.insert("strategy".to_string(), s.clone());
    } else if unattended {
        presets.insert("strategy".to_string(), "canary".to_string());
    }
    let run = RunOptions {
        runbook: "deploy".into(),
        answers: None,
        yes: unattended,
        approve: unattended,
        dry_run: false,
        deployments_dir: opts.deployments_dir.clone(),
        take_over: None,
        presets,
        simulation: None,
        // The demo measures the traffic after the run: the process goes on.
        ends_process: false,
    };
    let code = crate::runner::run(&demo_common, &run, ui)?;

    // Measure where traffic goes now, by sending requests through the router.
    let split = rt.block_on(measure_split(&fleet.url(), 200));
    let total: u32 = split.values().sum();
    let shown: Vec<String> = split
        .iter()
        .map(|(v, n)| {
            format!(
                "{v} {:.0}% ({n}/{total})",
                f64::from(*n) * 100.0 / f64::from(total.max(1))
            )
        })
        .collect();
    ui.shout(&format!(
        "Traffic now (measured through the router): {}",
        shown.join(", ")
    ));
    fleet.stop();
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(code)
}

/// Send `n` requests through the router and count the answering versions.
pub async fn measure_split(url: &str, n: usize) -> BTreeMap<String, u32> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let version = match client
            .get(format!("{url}/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r
                .headers()
                .get("x-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {}", r.status().as_u16())),
            Err(_) => "no answer".into(),
        };
        *out.entry(version).or_insert(0) += 1;
    }
    out
}

/// This program's path, quoted for the shell (the demo's automated checks run it).
fn exe_quoted() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "runbook".into());
    shlex::try_quote(&exe)
        .map(|q| q.into_owned())
        .unwrap_or(exe)
}
