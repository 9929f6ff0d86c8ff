//! A scenario of `runbook test`: a runbook rehearsed in a scripted world on a virtual clock, and
//! what its run is expected to do. docs/testing.md describes the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

pub mod expect;
pub mod world;

pub use expect::{Expect, Observed};
pub use world::World;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// A runbook name or path, as for `runbook run`.
    pub runbook: String,
    /// The team's runbook.yaml, relative to the scenario file (default: the nearest runbook.yaml
    /// in the scenario's directory or above it).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Config overrides, like `--set`.
    #[serde(default)]
    pub set: serde_yaml::Mapping,
    /// Answers by prompt id, as in an answers file.
    #[serde(default)]
    pub answers: serde_yaml::Mapping,
    /// Like `--yes`: confirmations and checklists not answered above are answered yes.
    #[serde(default)]
    pub yes: bool,
    /// Like `--approve`: the critical approval is given.
    #[serde(default)]
    pub approve: bool,
    /// Rehearse a run with a person at the terminal: the menus and questions asked only then
    /// (the progressive rollout's "Increase traffic?") are asked, and answered from `answers`.
    #[serde(default)]
    pub attended: bool,
    #[serde(default)]
    pub world: world::Spec,
    pub expect: Expect,
    #[serde(skip)]
    pub file: PathBuf,
    #[serde(skip)]
    pub text: String,
}

/// Scenario files: each FILE given, and the `*.yaml` / `*.yml` files of each DIR given (sorted).
pub fn find(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        // A project (a directory with runbook.yaml): its tests/.
        let p = &if p.join(crate::config::FILE_NAME).is_file() && p.join("tests").is_dir() {
            p.join("tests")
        } else {
            p.clone()
        };
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io("read scenario directory", p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension().is_some_and(|x| x == "yaml" || x == "yml")
                        // A config beside the scenarios is not one of them.
                        && !f
                            .file_stem()
                            .is_some_and(|s| s == "runbook" || s == "answers")
                })
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Usage(format!(
                "no scenario file or directory `{}`\n  help: give scenario files (YAML) or directories of them; by default `runbook test` reads tests/*.yaml",
                p.display()
            )));
        }
    }
    Ok(out)
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, Error> {
        let text = crate::error::read_text("scenario", path)?;
        let shown = path.display().to_string();
        let err = |location: Option<(usize, usize)>, message: String, help: &str| Error::Scenario {
            file: shown.clone(),
            location,
            message,
            help: help.to_string(),
        };
        let mut s: Scenario = match serde_yaml::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                let at = e.location().map(|l| (l.line(), l.column()));
                let mut msg = e.to_string();
                // serde's word for a value that fits none of the forms a key takes.
                if msg.contains("did not match any variant of untagged enum") {
                    msg = "this value has none of the forms this key takes: a command is `{ exit: 0, after: 20s }` (a duration needs its unit) or a list of such; a request `{ status: 200, body: \"...\" }` or a list; a metric a list of readings (numbers, or no_data, empty, nan, multiple, down) or a map from version to such a list".to_string();
                }
                // serde_yaml ends its message with the place, which the error shows apart.
                let msg = msg
                    .split(" at line ")
                    .next()
                    .unwrap_or(&msg)
                    .trim_end_matches(':')
                    .to_string();
                return Err(err(
                    at,
                    msg,
                    "a scenario has `name`, `runbook`, `expect` (with `exit`), and may have `config`, `set`, `answers`, `yes`, `approve`, `attended`, `world` (docs/testing.md)",
                ));
            }
        };
        if s.name.trim().is_empty() {
            return Err(err(
                line_of(&text, "name:"),
                "`name` is empty".into(),
                "name the scenario: it is how its result is shown",
            ));
        }
        if let Some((key, problem)) = world::validate(&s.world).into_iter().next() {
            return Err(err(
                line_of(&text, &key),
                format!("world `{key}`: {problem}"),
                "docs/testing.md describes the world",
            ));
        }
        if let Some(v) = &s.expect.virtual_time {
            if let Err(why) = expect::Bound::parse(v) {
                return Err(err(
                    line_of(&text, "virtual_time"),
                    format!("expect.virtual_time: {why}"),
                    "write e.g. `virtual_time: \"< 40m\"`",
                ));
            }
        }
        for (k, _) in &s.set {
            if !k.is_string() {
                return Err(err(
                    line_of(&text, "set:"),
                    "`set` keys are config keys (text), like `version` or `monitoring.interval`"
                        .into(),
                    "write e.g. `set: { version: v2, monitoring.interval: 30s }`",
                ));
            }
        }
        s.file = path.to_path_buf();
        s.text = text;
        Ok(s)
    }

    /// The scenario's `set`, as `--set key=value` arguments (values as YAML flow text).
    pub fn sets(&self) -> Vec<String> {
        self.set
            .iter()
            .map(|(k, v)| {
                let key = k.as_str().unwrap_or_default();
                let value = match v {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                format!("{key}={value}")
            })
            .collect()
    }

    /// The answers, as the text of an answers file.
    pub fn answers_text(&self) -> String {
        if self.answers.is_empty() {
            return String::new();
        }
        serde_yaml::to_string(&self.answers).unwrap_or_default()
    }

    /// The config file: `config` (relative to the scenario), else the nearest runbook.yaml in
    /// the scenario's directory or above it.
    pub fn config_file(&self) -> Option<PathBuf> {
        let dir = self
            .file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Some(c) = &self.config {
            return Some(dir.join(c));
        }
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        dir.ancestors()
            .map(|d| d.join(crate::config::FILE_NAME))
            .find(|f| f.is_file())
    }
}

/// The line and column where `needle` first appears in `text`, if it does.
fn line_of(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Scenario, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        std::fs::write(&p, text).unwrap();
        Scenario::load(&p).map_err(|e| e.render(&crate::ui::Ui::plain()))
    }

    #[test]
    fn a_scenario_with_an_unknown_key_is_refused_at_its_line() {
        let e = load("name: x\nrunbook: deploy\nexpekt: { exit: 0 }\n").unwrap_err();
        assert!(e.contains("unknown field `expekt`"), "{e}");
        assert!(e.contains("s.yaml:3:1"), "{e}");
    }

    #[test]
    fn a_bad_duration_in_the_world_names_its_key() {
        let e = load(
            "name: x\nrunbook: deploy\nworld:\n  commands:\n    \"./deploy.sh *\": { after: soon }\nexpect: { exit: 0 }\n",
        )
        .unwrap_err();
        assert!(e.contains("`after: soon` is not a duration"), "{e}");
        assert!(e.contains("s.yaml:5:"), "{e}");
    }

    #[test]
    fn sets_become_set_arguments() {
        let s = load(
            "name: x\nrunbook: deploy\nset: { version: v2, rollout.steps: [25, 100], monitoring.samples: 3 }\nexpect: { exit: 0 }\n",
        )
        .unwrap();
        assert_eq!(
            s.sets(),
            [
                "version=v2",
                "rollout.steps=[25,100]",
                "monitoring.samples=3"
            ]
        );
    }
}
