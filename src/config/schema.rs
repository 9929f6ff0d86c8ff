//! The schema of runbook.yaml: `Config` and its smaller sections (checks, resume, rolling,
//! limits, commands, secrets, notify channels, rollback, documentation).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::values::{at_least_one, percent_opt, Duration, InFlight, Strategy};
use super::{KubernetesAdapter, LockCfg, Monitoring, Rollout, ScriptAdapter, Triggers};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The feature being deployed: names the run's directory `deployments/<date>-<feature>/`.
    pub feature: Option<String>,
    /// The version being deployed, shown in the plan and the approval box.
    pub version: Option<String>,
    /// The version running now, which a rollback returns to.
    pub current_version: Option<String>,
    /// Where run directories go (default `deployments`, relative to the current directory).
    pub deployments_dir: Option<PathBuf>,
    /// Extra directories searched for runbooks, after ./runbooks and before the shipped ones.
    pub runbook_dirs: Vec<PathBuf>,
    /// The automated pre-deployment checks (Step 2): each a command line, or absent.
    pub checks: Checks,
    /// Which adapter the strategies drive: `local` (the embedded demo fleet), `script`, `kubernetes`.
    pub adapter: Option<String>,
    /// The strategy to use when nobody chooses one: blue-green, rolling, canary, feature-flag.
    pub strategy: Option<Strategy>,
    /// Settings of the `local` adapter (written by `runbook demo`).
    pub local: Option<LocalAdapter>,
    /// Settings of the `script` adapter: the team's own commands, templated.
    pub script: Option<ScriptAdapter>,
    /// Settings of the `kubernetes` adapter.
    pub kubernetes: KubernetesAdapter,
    pub rollout: Rollout,
    pub monitoring: Monitoring,
    pub triggers: Triggers,
    pub rolling: RollingCfg,
    /// Run without asking: the rollout schedule replaces the Stage 4 menu.
    pub unattended: bool,
    /// Files the post-deployment step appends an entry to.
    pub documentation: Documentation,
    /// One run at a time per environment.
    pub lock: LockCfg,
    /// How `runbook resume` treats the effect a dead run was in the middle of.
    pub resume: ResumeCfg,
    pub limits: Limits,
    pub commands: Commands,
    pub secrets: Secrets,
    pub notify: BTreeMap<String, Channel>,
    pub rollback: Rollback,
    /// Free-form values for the team's own scripts.
    pub vars: serde_yaml::Mapping,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    pub tests: Option<String>,
    pub integration: Option<String>,
    pub e2e: Option<String>,
    pub security: Option<String>,
    pub performance: Option<String>,
    pub build: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAdapter {
    /// The fleet's router, e.g. http://127.0.0.1:40123
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeCfg {
    /// When nobody can be asked: rerun, skip or rollback.
    pub in_flight: InFlight,
}

impl Default for ResumeCfg {
    fn default() -> Self {
        ResumeCfg {
            in_flight: InFlight::Rollback,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Documentation {
    /// e.g. CHANGELOG.md: one line per deployment is appended.
    pub changelog: Option<String>,
    /// e.g. RELEASE_NOTES.md: one line per deployment is appended.
    pub release_notes: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollingCfg {
    /// Instances replaced per batch.
    #[serde(deserialize_with = "at_least_one")]
    pub batch_size: u32,
    /// Or a share of the instances per batch (percent); wins over `batch_size` when set.
    #[serde(deserialize_with = "percent_opt")]
    pub batch_percent: Option<u32>,
    /// Failed batches tolerated before the rollout stops and is undone.
    pub failure_budget: u32,
}

impl Default for RollingCfg {
    fn default() -> Self {
        RollingCfg {
            batch_size: 1,
            batch_percent: None,
            failure_budget: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Script operations before the run is stopped (an endless loop ends here).
    pub operations: u64,
    /// Wall-clock time a run may take, e.g. "4h" (none when absent).
    pub wall_clock: Option<Duration>,
    pub call_depth: usize,
    pub expr_depth: usize,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            operations: 100_000_000,
            wall_clock: None,
            call_depth: 64,
            expr_depth: 64,
            string_size: 16 * 1024 * 1024,
            array_size: 1_000_000,
            map_size: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Commands {
    /// Default timeout for `sh` (e.g. "10m"); none when absent.
    pub timeout: Option<Duration>,
    /// How long a stopped command gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Bytes of each stream kept for the script and the journal; the rest streams through.
    pub capture_limit: usize,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            timeout: None,
            kill_grace: Duration::known("3s"),
            capture_limit: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// Environment variables whose values are secret (redacted everywhere).
    pub env: Vec<String>,
    /// Named secret values, readable by scripts with `secret(name)`; never shown.
    #[serde(skip_serializing)]
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Channel {
    /// POST a JSON object `{text, feature, run, channel}` to `url`.
    Webhook {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A Slack-compatible incoming webhook: POST `{"text": ...}`.
    Slack { url: String },
    /// Append one line per notification to a file.
    File { path: PathBuf },
    /// Print the notification on the terminal.
    Stdout,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Ask a person; roll back on its own when nobody is there to ask.
    #[default]
    Ask,
    /// Roll back without asking.
    Auto,
    /// Leave things as they are (the undo stack stays in rollback-plan.md).
    Never,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollback {
    pub on_failure: OnFailure,
}
