//! The adapters' sections: `script:` (the team's own commands, templated), `kubernetes:`, and
//! `rollout:`.

use serde::{Deserialize, Serialize};

use super::values::{go_duration, percent, percents, Colour, Duration};

/// Commands of the `script` adapter. Placeholders: {env} (staging, production-blue, ...),
/// {version}, {colour}, {from}, {to}, {name}, {percent}, {action} (enable/disable).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptAdapter {
    /// Deploy a version to an environment, e.g. "./deploy.sh {env}".
    pub deploy: String,
    /// A health URL (http...) or a health command, e.g. "./scripts/health-check.sh {env}".
    pub health: Option<String>,
    /// Smoke tests run after the staging deploy, e.g. "npm run test:smoke -- {env}".
    pub smoke: Option<String>,
    /// Switch traffic between colours, e.g. "./scripts/switch-traffic.sh {from}-to-{to}".
    pub switch: Option<String>,
    /// Send a share of traffic to a version, e.g. "./scripts/weight.sh {version} {percent}".
    pub weight: Option<String>,
    /// Turn a feature flag on/off or to a percentage, e.g. "./scripts/feature-flag.sh {action} {name} {percent}".
    pub flag: Option<String>,
    /// Remove a version from an environment; without it the old colour is kept.
    pub remove: Option<String>,
    /// Scale the live environment, e.g. "./scripts/scale.sh {env} {count}".
    pub scale: Option<String>,
    /// Maintenance mode on/off, e.g. "./scripts/maintenance.sh {action}" ({action}: on/off).
    pub maintenance: Option<String>,
    /// Rolling: replace one instance with a version, e.g. "./deploy.sh --instance {instance} {version}".
    pub replace: Option<String>,
    /// Rolling: the production instances, replaced in batches of `rolling.batch_size`.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Rolling: one instance's health, a URL or a command, e.g. "http://{instance}:8080/health".
    pub instance_health: Option<String>,
    /// The colour live now; the new version goes to the other one.
    #[serde(default)]
    pub live_colour: Colour,
}

/// The `kubernetes` adapter: kubectl apply of a manifest directory per environment, rollout
/// status, Istio VirtualService weights for canary, a Service selector switch for blue-green.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesAdapter {
    /// Directory with one manifest directory per environment: staging/, canary/, production/,
    /// production-blue/, production-green/.
    pub manifests: String,
    pub namespace: Option<String>,
    pub context: Option<String>,
    /// The Deployment's base name: staging is <name>-staging, the canary <name>-canary, the
    /// colours <name>-blue and <name>-green, stable <name>.
    pub deployment: String,
    /// The Service whose selector blue-green switches (selector key `color`).
    pub service: String,
    /// The Istio VirtualService whose route weights canary sets (subsets `stable` and `canary`).
    pub virtualservice: String,
    /// The destination host in the VirtualService routes [default: the service].
    pub host: Option<String>,
    /// Passed to `kubectl rollout status --timeout` as written, so written as kubectl reads it.
    #[serde(deserialize_with = "go_duration")]
    pub rollout_timeout: Duration,
    pub live_colour: Colour,
    /// Rolling: the image repository; the version is its tag (`kubectl set image`).
    pub image: Option<String>,
    /// Rolling: the container to set the image of [default: the deployment's name].
    pub container: Option<String>,
    /// Feature flags: a command, e.g. "./scripts/feature-flag.sh {action} {name} {percent}".
    pub flag: Option<String>,
    /// Feature flags: an HTTP flag API, sent `PUT {name, enabled, percent, version}` as JSON.
    pub flag_url: Option<String>,
}

impl Default for KubernetesAdapter {
    fn default() -> Self {
        KubernetesAdapter {
            manifests: "k8s".into(),
            namespace: None,
            context: None,
            deployment: "app".into(),
            service: "app".into(),
            virtualservice: "app".into(),
            host: None,
            rollout_timeout: Duration::known("5m"),
            live_colour: Colour::Blue,
            image: None,
            container: None,
            flag: None,
            flag_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollout {
    /// Initial canary weight, percent.
    #[serde(deserialize_with = "percent")]
    pub initial: u32,
    /// The schedule of weights that replaces the Stage 4 menu in unattended runs.
    #[serde(deserialize_with = "percents")]
    pub steps: Vec<u32>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            initial: 5,
            steps: vec![25, 50, 100],
        }
    }
}
