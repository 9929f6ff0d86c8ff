//! A metric as runbook.yaml (`monitoring.metrics`) or a script describes it, and the action a
//! failed verdict of it leads to: data, below the `analyze` binding that runs it.

use serde::{Deserialize, Serialize};

use super::provider::ProviderSpec;
use super::DataOutcome;

/// A metric as runbook.yaml (`monitoring.metrics`) or a script writes it. In a script,
/// `success`, `failure` and `compute` may also be closures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    /// What the monitor shows (default: the name).
    pub label: Option<String>,
    /// How the value is shown: number, percent, ms, check.
    pub format: Option<Format>,
    pub provider: Option<ProviderSpec>,
    /// Conditions such as "< 0.05".
    pub success: Option<String>,
    pub failure: Option<String>,
    pub failure_limit: Option<u32>,
    pub inconclusive_limit: Option<u32>,
    pub consecutive_error_limit: Option<u32>,
    pub on_no_data: Option<DataOutcome>,
    pub on_empty: Option<DataOutcome>,
    pub on_nan: Option<DataOutcome>,
    pub on_multiple: Option<DataOutcome>,
    /// What a failed (or errored) verdict of this metric leads to.
    pub on_failure: Option<Action>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Number,
    Percent,
    Ms,
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop the analysis with a failure: the strategy rolls back.
    #[default]
    Rollback,
    /// Pause, show the evidence, and ask a person (nobody there: roll back).
    Ask,
    /// Notify and go on without this metric.
    Continue,
}
