//! `lock:`: one run at a time per environment, and the backend that holds the lock.

use serde::{Deserialize, Serialize};

use super::values::{nonzero, Duration};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockCfg {
    /// The environment a run holds the lock of.
    pub environment: String,
    /// How long a lock holds without being renewed (every backend): a live run renews it every
    /// third of it.
    #[serde(deserialize_with = "nonzero")]
    pub lease: Duration,
    /// Where the lock is kept: `file` (under the deployments directory), `etcd`, `kubernetes`.
    pub backend: LockBackend,
    /// What a run does when its lock is lost, or its store unreachable, while it runs.
    pub on_lost: OnLost,
    pub etcd: EtcdLockCfg,
    pub kubernetes: KubeLockCfg,
}

impl Default for LockCfg {
    fn default() -> Self {
        LockCfg {
            environment: "production".into(),
            lease: Duration::known("30s"),
            backend: LockBackend::File,
            on_lost: OnLost::Pause,
            etcd: EtcdLockCfg::default(),
            kubernetes: KubeLockCfg::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    #[default]
    File,
    Etcd,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// Stop before the next step and ask (nobody there: wait up to one lease for the store).
    #[default]
    Pause,
    Rollback,
    Continue,
}

impl OnLost {
    pub fn as_str(self) -> &'static str {
        match self {
            OnLost::Pause => "pause",
            OnLost::Rollback => "rollback",
            OnLost::Continue => "continue",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdLockCfg {
    /// Client URLs of the etcd cluster, tried in order.
    pub endpoints: Vec<String>,
    /// Prefix of every key the locks use.
    pub prefix: String,
}

impl Default for EtcdLockCfg {
    fn default() -> Self {
        EtcdLockCfg {
            endpoints: Vec::new(),
            prefix: "runbook/".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeLockCfg {
    /// The Leases' namespace [default: `kubernetes.namespace`, else kubectl's].
    pub namespace: Option<String>,
    /// The kubectl context [default: `kubernetes.context`, else kubectl's].
    pub context: Option<String>,
    /// A Lease is named `<name_prefix>-<environment>`.
    pub name_prefix: String,
}

impl Default for KubeLockCfg {
    fn default() -> Self {
        KubeLockCfg {
            namespace: None,
            context: None,
            name_prefix: "runbook-lock".into(),
        }
    }
}
