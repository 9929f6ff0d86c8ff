//! Loading: the file read and checked against the schema (its nesting bounded, `${NAME}` from
//! the environment, scalars given the type their key expects), `--set` applied, errors placed.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::Error;

use super::validate::{check_references, check_script_templates};
use super::values::knowing_metrics;
use super::{Config, FILE_NAME};

/// Where the config came from, for error messages and relative paths.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    /// The merged YAML, as scripts see it through `config()`.
    pub value: Value,
}

impl Loaded {
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .as_ref()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// This config with more `--set` overrides, checked as `load` checks them, without reading
    /// the file again.
    pub fn with_sets(self, sets: &[String]) -> Result<Loaded, Error> {
        with_sets(self.file, self.value, sets)
    }
}

/// Load `explicit` (or ./runbook.yaml when it exists) and apply `--set` overrides.
pub fn load(explicit: Option<&Path>, sets: &[String]) -> Result<Loaded, Error> {
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = PathBuf::from(FILE_NAME);
            p.is_file().then_some(p)
        }
    };
    let value = match &file {
        Some(path) => {
            let text = crate::error::read_text("config", path)?;
            parse(&text, &path.display().to_string())?
        }
        None => Value::Mapping(Default::default()),
    };
    with_sets(file, value, sets)
}

/// The merged YAML `value` (of `file`) with `sets` applied, checked against the schema and
/// across keys.
fn with_sets(file: Option<PathBuf>, mut value: Value, sets: &[String]) -> Result<Loaded, Error> {
    for set in sets {
        apply_set(&mut value, set)?;
    }
    let config = match coerced(&mut value) {
        Ok(c) => c,
        Err(err) => {
            let key = err.path().to_string();
            let message = strip_location(&err.inner().to_string());
            return Err(
                match sets
                    .iter()
                    .find(|s| s.split('=').next() == Some(key.as_str()))
                {
                    Some(arg) => Error::SetOverride {
                        arg: arg.clone(),
                        message,
                    },
                    None => Error::SetOverride {
                        arg: sets.join(" "),
                        message: format!("at `{key}`: {message}"),
                    },
                },
            );
        }
    };
    let shown = file
        .as_ref()
        .map_or_else(|| "--set".to_string(), |f| f.display().to_string());
    if let Some(script) = &config.script {
        check_script_templates(script, &shown)?;
    }
    check_references(&config, &shown)?;
    Ok(Loaded {
        config,
        file,
        value,
    })
}

/// How deep brackets and braces may nest in a YAML input. The YAML parser's cost grows with the
/// square of the nesting (100k levels took a minute), and no config or answers file nests deeper
/// than a handful of levels.
pub const MAX_NESTING: usize = 64;

/// Where a YAML text's flow collections (`[`, `{`) first nest deeper than `MAX_NESTING`, as
/// (line, column), both from 1. Quoted text and comments are skipped.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            prev = c;
            continue;
        }
        match quote {
            _ if comment => {}
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':') => {
                    quote = Some(c)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

/// Check a runbook.yaml text against the schema and return it as YAML (`shown` names it in errors).
pub fn parse(text: &str, shown: &str) -> Result<Value, Error> {
    if let Some(at) = too_deep(text) {
        return Err(Error::Config {
            file: shown.to_string(),
            key: String::new(),
            message: format!("it nests more than {MAX_NESTING} levels deep"),
            location: Some(at),
        });
    }
    let uses_env = text.contains("${");
    // Deserialize straight from the text first: that way errors carry line and column. A file
    // that takes values from the environment is checked once they are filled in (below).
    if !uses_env {
        let names = serde_yaml::from_str(text).unwrap_or(Value::Null);
        let de = serde_yaml::Deserializer::from_str(text);
        if let Err(err) =
            knowing_metrics(&names, || serde_path_to_error::deserialize::<_, Config>(de))
        {
            return Err(config_error(shown, err));
        }
    }
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| Error::Config {
        file: shown.to_string(),
        key: String::new(),
        message: e.to_string(),
        location: e.location().map(|l| (l.line(), l.column())),
    })?;
    if uses_env {
        expand_env(&mut v, "", shown, &|name| std::env::var(name).ok())?;
        if let Err(err) = coerced(&mut v) {
            return Err(Error::Config {
                file: shown.to_string(),
                key: err.path().to_string(),
                message: strip_location(&err.inner().to_string()),
                location: None,
            });
        }
    }
    Ok(if v.is_null() {
        Value::Mapping(Default::default())
    } else {
        v
    })
}

/// Deserialize, giving a scalar the type its key expects where it was written as another: a
/// number or a bool where text is expected becomes its text (`--set version=2`), and text where
/// a number or a bool is expected is read as one (`samples: ${SAMPLES}`). Anything else is the
/// schema's error, with its key path.
fn coerced(v: &mut Value) -> Result<Config, serde_path_to_error::Error<serde_yaml::Error>> {
    for _ in 0..64 {
        let err = match knowing_metrics(v, || serde_path_to_error::deserialize(v.clone())) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let msg = err.inner().to_string();
        let fixed = msg.starts_with("invalid type: ")
            && at_path(v, err.path()).is_some_and(|node| {
                let wants_text = msg.contains("expected a string");
                let next = match &*node {
                    Value::Number(n) if wants_text => Some(Value::String(n.to_string())),
                    Value::Bool(b) if wants_text => Some(Value::String(b.to_string())),
                    Value::String(t) if !wants_text => match serde_yaml::from_str::<Value>(t) {
                        Ok(x @ (Value::Number(_) | Value::Bool(_))) => Some(x),
                        _ => None,
                    },
                    _ => None,
                };
                match next {
                    Some(x) => {
                        *node = x;
                        true
                    }
                    None => false,
                }
            });
        if !fixed {
            return Err(err);
        }
    }
    knowing_metrics(v, || serde_path_to_error::deserialize(v.clone()))
}

/// The value at a deserializer's error path.
fn at_path<'a>(v: &'a mut Value, path: &serde_path_to_error::Path) -> Option<&'a mut Value> {
    use serde_path_to_error::Segment;
    let mut node = v;
    for seg in path.iter() {
        node = match seg {
            Segment::Map { key } => node.get_mut(key.as_str())?,
            Segment::Seq { index } => node.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// `${NAME}` in a string value is the environment variable NAME (unset is an error naming the key
/// and the variable); `$${` is a literal `${`. The result is text; `coerced` gives it the type its
/// key expects (`samples: ${SAMPLES}` is a number).
fn expand_env(
    v: &mut Value,
    key: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Error> {
    let child = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let name = k.as_str().map(str::to_string).unwrap_or_default();
                expand_env(item, &child(&name), file, lookup)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{key}[{i}]"), file, lookup)?;
            }
        }
        Value::String(text) if text.contains('$') => {
            let bad = |message: String| Error::Config {
                file: file.to_string(),
                key: key.to_string(),
                message,
                location: None,
            };
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let after = &rest[i..];
                if let Some(r) = after.strip_prefix("$${") {
                    out.push_str("${");
                    rest = r;
                } else if let Some(r) = after.strip_prefix("${") {
                    let end = r.find('}').ok_or_else(|| {
                        bad(format!("`${{` without a closing `}}` in {text:?} (write `$${{` for a literal `${{`)"))
                    })?;
                    let name = &r[..end];
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit());
                    if !valid {
                        return Err(bad(format!(
                            "`${{{name}}}` is not an environment variable name (letters, digits and `_`); write `$${{` for a literal `${{`"
                        )));
                    }
                    let value = lookup(name).ok_or_else(|| {
                        bad(format!(
                            "the environment variable `{name}` is not set (the value is {text:?}); set it, or write `$${{` for a literal `${{`"
                        ))
                    })?;
                    out.push_str(&value);
                    rest = &r[end + 1..];
                } else {
                    out.push('$');
                    rest = &after[1..];
                }
            }
            out.push_str(rest);
            // Typed by the key it lands in (`samples: ${SAMPLES}` is a number): see `coerced`.
            *v = Value::String(out);
        }
        _ => {}
    }
    Ok(())
}

fn config_error(file: &str, err: serde_path_to_error::Error<serde_yaml::Error>) -> Error {
    let key = err.path().to_string();
    let inner = err.inner();
    let message = strip_location(&inner.to_string());
    // serde_yaml starts nested messages with the parent's path ("limits: unknown field ...").
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if key.starts_with(prefix) && !prefix.contains(' ') => {
            rest.to_string()
        }
        _ => message,
    };
    Error::Config {
        file: file.to_string(),
        key: if key == "." { String::new() } else { key },
        message,
        location: inner.location().map(|l| (l.line(), l.column())),
    }
}

/// serde_yaml appends " at line L column C"; we show the place ourselves.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `key.path=value`: the value is read as a YAML scalar (so numbers and booleans keep their type),
/// and kept as text when the key expects text.
fn apply_set(root: &mut Value, arg: &str) -> Result<(), Error> {
    let bad = |message: &str| Error::SetOverride {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = arg.split_once('=').ok_or_else(|| bad("there is no `=`"))?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("the key is empty or has an empty part"));
    }
    if too_deep(raw).is_some() {
        return Err(bad(&format!(
            "the value nests more than {MAX_NESTING} levels deep"
        )));
    }
    let parsed: Value = serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let parsed = match parsed {
        Value::Null if !raw.trim().is_empty() && raw.trim() != "null" && raw.trim() != "~" => {
            Value::String(raw.into())
        }
        // A number that does not print back as written (1.10, 007) is text, e.g. a version.
        Value::Number(n) if n.to_string() != raw.trim() => Value::String(raw.into()),
        v => v,
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            other => {
                *other = Value::Mapping(Default::default());
                match other {
                    Value::Mapping(m) => m,
                    _ => unreachable!("just assigned a mapping"),
                }
            }
        };
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, parsed);
            return Ok(());
        }
        node = map
            .entry(k)
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_is_measured_outside_quotes_and_comments() {
        let deep = "[".repeat(65);
        assert_eq!(too_deep(&format!("a: {deep}")), Some((1, 68)));
        assert_eq!(
            too_deep(&format!("a: \"{deep}\"\nb: '{deep}' # {deep}\n")),
            None
        );
        assert_eq!(too_deep(&format!("a: [{}]", "[1], ".repeat(500))), None);
        assert_eq!(too_deep("a: [[1]]\nb: {c: [2]}\n"), None);
    }

    use super::*;

    #[test]
    fn set_keeps_versions_as_text_and_numbers_as_numbers() {
        let mut v = Value::Mapping(Default::default());
        apply_set(&mut v, "version=1.10").unwrap();
        apply_set(&mut v, "limits.operations=500").unwrap();
        apply_set(&mut v, "vars.region=eu-west-1").unwrap();
        let c: Config = serde_yaml::from_value(v).unwrap();
        assert_eq!(c.version.as_deref(), Some("1.10"));
        assert_eq!(c.limits.operations, 500);
        assert_eq!(
            c.vars.get("region").and_then(Value::as_str),
            Some("eu-west-1")
        );
    }

    #[test]
    fn more_sets_apply_to_the_loaded_config_and_keep_what_it_had() {
        let sets = ["version=2".to_string(), "vars.region=eu-west-1".to_string()];
        let loaded = with_sets(None, Value::Mapping(Default::default()), &sets).unwrap();
        let more = loaded
            .with_sets(&["current_version=1.10".to_string()])
            .unwrap();
        assert_eq!(more.config.version.as_deref(), Some("2"));
        assert_eq!(more.config.current_version.as_deref(), Some("1.10"));
        assert_eq!(
            more.config.vars.get("region").and_then(Value::as_str),
            Some("eu-west-1")
        );
        let bad = more.with_sets(&["kubernetes.live_colour=purple".to_string()]);
        assert!(
            matches!(bad, Err(Error::SetOverride { arg, .. }) if arg == "kubernetes.live_colour=purple")
        );
    }

    #[test]
    fn set_without_equals_is_an_error() {
        let mut v = Value::Mapping(Default::default());
        assert!(apply_set(&mut v, "feature").is_err());
        assert!(apply_set(&mut v, "a..b=1").is_err());
    }
}
