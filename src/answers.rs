//! Where answers to prompts come from: an answers file (`--answers FILE`, YAML keyed by prompt
//! id), `RUNBOOK_ANSWER_<ID>` environment variables, `--yes` / `--approve`, or a person.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::Error;

/// How an answer was given; recorded in the journal and the checklist artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Terminal,
    File(String),
    Env(String),
    YesFlag,
    ApproveFlag,
    Default,
    Preset,
    /// Given in the earlier process of a resumed run.
    Replayed,
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Terminal => "at the terminal".into(),
            Source::File(f) => format!("answers file {f}"),
            Source::Env(v) => format!("environment {v}"),
            Source::YesFlag => "--yes".into(),
            Source::ApproveFlag => "--approve".into(),
            Source::Default => "default".into(),
            Source::Preset => "given on the command line".into(),
            Source::Replayed => "replayed from the journal".into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Answers {
    file: Option<PathBuf>,
    map: BTreeMap<String, Value>,
    /// How many times each id was asked, so a list answers repeated prompts in order.
    asked: BTreeMap<String, usize>,
    used: BTreeSet<String>,
    pub yes: bool,
    pub approve: bool,
    /// Answers the program gives itself (the demo's --strategy).
    pub presets: BTreeMap<String, String>,
    /// Resuming: the answers given before the crash, per prompt id, in order.
    pub replayed: BTreeMap<String, std::collections::VecDeque<Value>>,
    /// Not from `RUNBOOK_ANSWER_<ID>` (a rehearsal is the same on every machine).
    pub ignore_env: bool,
}

pub fn env_var_for(id: &str) -> String {
    let mut s = String::from("RUNBOOK_ANSWER_");
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_uppercase());
        } else {
            s.push('_');
        }
    }
    s
}

/// A stable id from a prompt's text: "How would you like to deploy?" -> "how-would-you-like-to-deploy".
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if out.len() > 64 {
        let cut = out[..64].rfind('-').unwrap_or(64);
        out.truncate(cut);
    }
    if out.is_empty() {
        "prompt".into()
    } else {
        out
    }
}

impl Answers {
    pub fn load(file: Option<&Path>) -> Result<Answers, Error> {
        let Some(path) = file else {
            return Ok(Answers::default());
        };
        let text = crate::error::read_text("answers", path)?;
        let mut a = Answers::parse(&text, &path.display().to_string())?;
        a.file = Some(path.to_path_buf());
        Ok(a)
    }

    /// Read an answers file's text (`shown` names it in errors).
    pub fn parse(text: &str, shown: &str) -> Result<Answers, Error> {
        let mut a = Answers {
            file: Some(PathBuf::from(shown)),
            ..Answers::default()
        };
        let shown = shown.to_string();
        if let Some((line, col)) = crate::config::too_deep(text) {
            return Err(Error::Answers {
                file: format!("{shown}:{line}:{col}"),
                id: None,
                message: format!(
                    "it nests more than {} levels deep",
                    crate::config::MAX_NESTING
                ),
                help: Some(
                    "an answers file is a YAML map from prompt id to answer, e.g. `strategy: canary`"
                        .into(),
                ),
            });
        }
        let v: Value = serde_yaml::from_str(text).map_err(|e| Error::Answers {
            file: match e.location() {
                Some(l) => format!("{shown}:{}:{}", l.line(), l.column()),
                None => shown.clone(),
            },
            id: None,
            message: {
                let m = e.to_string();
                m.split(" at line ").next().unwrap_or(&m).to_string()
            },
            help: Some(
                "an answers file is a YAML map from prompt id to answer, e.g. `strategy: canary`"
                    .into(),
            ),
        })?;
        match v {
            Value::Null => {}
            Value::Mapping(m) => {
                for (k, v) in m {
                    let key = match k {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(Error::Answers {
                                file: shown,
                                id: None,
                                message: format!(
                                    "a key must be a prompt id, not {}",
                                    kind_of(&other)
                                ),
                                help: None,
                            })
                        }
                    };
                    a.map.insert(key, v);
                }
            }
            other => {
                return Err(Error::Answers {
                    file: shown,
                    id: None,
                    message: format!(
                        "expected a map from prompt id to answer, found {}",
                        kind_of(&other)
                    ),
                    help: Some("write one `id: answer` per line".into()),
                })
            }
        }
        Ok(a)
    }

    /// Check the file's answers to the prompts the runbook declares with literal text, before the
    /// run: the first answer that cannot fit is an error naming the file, the id and what fits.
    pub fn check(&self, declared: &[crate::prompts::Declared]) -> Result<(), Error> {
        for (id, value) in &self.map {
            let Ok(v) = serde_json::to_value(value) else {
                continue;
            };
            let problem = match declared.iter().find(|d| &d.id == id) {
                Some(d) => crate::prompts::problem(d, &v),
                None => runner_problem(id, &v),
            };
            if let Some(problem) = problem {
                return Err(Error::Answers {
                    file: self.file_name(),
                    id: Some(id.clone()),
                    message: problem,
                    help: Some(
                        "found before the run started, so nothing was changed; fix the answer and run again"
                            .into(),
                    ),
                });
            }
        }
        Ok(())
    }

    /// Answers whose id no prompt is known to ask but is close to one that is: most likely a
    /// typo, found before the run rather than as "never asked" at its end. Known: the prompts
    /// `declared` (the runbook and the modules it imports by name), every literal prompt of the
    /// shipped stdlib (imported by computed names), and the runner's own. Ids far from all of
    /// them are left alone: a prompt built at run time may ask them.
    pub fn likely_typos(&self, declared: &[crate::prompts::Declared]) -> Vec<(String, String)> {
        let mut known: Vec<String> = declared.iter().map(|d| d.id.clone()).collect();
        known.extend(RUNNER_PROMPTS.iter().map(|s| s.to_string()));
        // The common case, every id known: no start-up spent compiling the stdlib.
        if self
            .map
            .keys()
            .all(|id| known.contains(id) || id.starts_with("analysis-"))
        {
            return Vec::new();
        }
        let engine = rhai::Engine::new_raw();
        for (_, text) in crate::embedded::STDLIB {
            if let Ok(ast) = engine.compile(text) {
                known.extend(crate::prompts::declared(&ast).into_iter().map(|d| d.id));
            }
        }
        let mut out = Vec::new();
        for id in self.map.keys() {
            if known.contains(id) || id.starts_with("analysis-") {
                continue;
            }
            if let Some(near) = crate::error::did_you_mean(id, known.iter().map(String::as_str)) {
                out.push((id.clone(), near));
            }
        }
        out
    }

    pub fn file_name(&self) -> String {
        self.file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The explicit answer for `id`, from the environment or the answers file.
    /// A list in the file answers the same prompt asked again, in order.
    pub fn explicit(&mut self, id: &str) -> Option<(Value, Source)> {
        let n = {
            let c = self.asked.entry(id.to_string()).or_default();
            *c += 1;
            *c - 1
        };
        if let Some(v) = self.replayed.get_mut(id).and_then(|q| q.pop_front()) {
            return Some((v, Source::Replayed));
        }
        let var = env_var_for(id);
        if let Some(v) = std::env::var(&var).ok().filter(|_| !self.ignore_env) {
            return Some((Value::String(v), Source::Env(var)));
        }
        if let Some(p) = self.presets.get(id) {
            return Some((Value::String(p.clone()), Source::Preset));
        }
        let v = self.map.get(id)?.clone();
        self.used.insert(id.to_string());
        let src = Source::File(self.file_name());
        match v {
            Value::Sequence(items) => items.get(n).cloned().map(|v| (v, src)),
            v => Some((v, src)),
        }
    }

    /// An explicit answer for a checklist item: the checklist's entry may be one yes/no for all
    /// items or a map of item id to yes/no.
    pub fn checklist_item(&mut self, list_id: &str, item_id: &str) -> Option<(Value, Source)> {
        if let Some(v) = self
            .replayed
            .get_mut(&format!("{list_id}.{item_id}"))
            .and_then(|q| q.pop_front())
        {
            return Some((v, Source::Replayed));
        }
        let item_var = env_var_for(&format!("{list_id}.{item_id}"));
        if let Some(v) = std::env::var(&item_var).ok().filter(|_| !self.ignore_env) {
            return Some((Value::String(v), Source::Env(item_var)));
        }
        let list_var = env_var_for(list_id);
        if let Some(v) = std::env::var(&list_var).ok().filter(|_| !self.ignore_env) {
            return Some((Value::String(v), Source::Env(list_var)));
        }
        let v = self.map.get(list_id)?.clone();
        self.used.insert(list_id.to_string());
        let src = Source::File(self.file_name());
        match v {
            Value::Mapping(m) => m
                .get(Value::String(item_id.into()))
                .or_else(|| m.get(Value::String("all".into())))
                .cloned()
                .map(|v| (v, src)),
            v => Some((v, src)),
        }
    }

    /// Ids in the answers file that no prompt asked for.
    pub fn unused(&self) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect()
    }

    pub fn asked_ids(&self) -> impl Iterator<Item = &str> {
        self.asked.keys().map(String::as_str)
    }

    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    pub fn error(&self, id: &str, message: String, help: Option<String>) -> Error {
        Error::Answers {
            file: self.file_name(),
            id: Some(id.to_string()),
            message,
            help,
        }
    }
}

/// What is wrong with an answer to a prompt the runner asks itself, in any runbook (or the
/// approval under its default id), if anything; `None` for an id it does not ask.
fn runner_problem(id: &str, answer: &serde_json::Value) -> Option<String> {
    use serde_json::Value as J;
    let confirm = crate::prompts::Declared {
        id: id.to_string(),
        kind: crate::prompts::Kind::Confirm,
    };
    let words = |accepted: &[&str]| {
        let answers: Vec<&J> = match answer {
            J::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        answers.into_iter().find_map(|a| {
            let t = a.as_str().map(str::trim).unwrap_or_default();
            (!accepted.contains(&t)).then(|| {
                let shown = a.as_str().map_or_else(|| a.to_string(), str::to_string);
                format!("`{shown}` is not one of: {}", accepted.join(", "))
            })
        })
    };
    match id {
        "initiate-rollback" | "rollback-after-interrupt" | "rollback-in-flight" => {
            crate::prompts::problem(&confirm, answer)
        }
        "resume-in-flight" => words(&["rerun", "skip", "rollback"]),
        "resume-still-running" => words(&["stop", "wait"]),
        "approve-deployment" => match answer {
            J::Object(m) => {
                let approved = m.get("approved").unwrap_or(&J::Null);
                let unknown = m.keys().find(|k| !matches!(k.as_str(), "approved" | "by"));
                if let Some(k) = unknown {
                    Some(format!(
                        "`{k}` is not part of an approval; write `{{approved: yes, by: alice}}`"
                    ))
                } else if crate::prompts::problem(&confirm, approved).is_some() {
                    Some("an approval map needs `approved: yes` or `approved: no`".into())
                } else {
                    None
                }
            }
            other => crate::prompts::problem(&confirm, other),
        },
        _ => None,
    }
}

/// The prompts the runner itself asks (not the runbook), by id.
const RUNNER_PROMPTS: &[&str] = &[
    "initiate-rollback",
    "rollback-after-interrupt",
    "rollback-in-flight",
    "resume-in-flight",
    "resume-still-running",
    "approve-deployment",
];

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Read yes/no from an answer: y, yes, true, n, no, false (any case).
pub fn yes_no(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_yes_no(s),
        _ => None,
    }
}

pub fn parse_yes_no(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" => Some(true),
        "n" | "no" | "false" => Some(false),
        _ => None,
    }
}

pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stable_and_short() {
        assert_eq!(
            slug("How would you like to deploy this feature?"),
            "how-would-you-like-to-deploy-this-feature"
        );
        assert_eq!(
            slug("⚠️ Issue detected! Initiate rollback?"),
            "issue-detected-initiate-rollback"
        );
        assert!(slug(&"word ".repeat(30)).len() <= 64);
        assert_eq!(slug("!!!"), "prompt");
        assert_eq!(
            env_var_for("pre-deployment.all-tests"),
            "RUNBOOK_ANSWER_PRE_DEPLOYMENT_ALL_TESTS"
        );
    }
}
