//! Docs that cannot drift: the command examples of README.md and docs/*.md run, the README's
//! runbooks pass `runbook check` (and run), the configuration table matches what the config
//! accepts and defaults to, every prompt id the docs name is one the shipped runbooks ask, and
//! every example `runbook --help` shows does what it says.
//!
//! Why an extraction here rather than trycmd or snapbox: those compare a console block's output
//! verbatim, so the README would have to show whole transcripts (a deployment prints pages, with
//! dates, ports and timings), and every example would need its fixtures in a directory beside a
//! `.toml` case. Our examples need a live fleet on a port chosen at run time, a finished or a dead
//! run to point at, and answers files. So the docs keep short ```sh blocks that read as prose, and
//! this file says, for each command it finds there, what it needs and what it must do (exit code
//! and the key lines of output). A command found in the docs that this file does not know fails
//! the test, and so does a command written in an indented block, where it would escape it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

// ------------------------------------------------------------------ B: the configuration table

/// One row of a `| key | type | default | meaning |` table: the keys it documents, with the
/// default each is given (a cell of several defaults, one per key, is split).
struct Row {
    key: String,
    ty: String,
    default: String,
}

/// The backticked words of a cell, in order.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn config_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| key | type | default | meaning |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("| ---") {
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        assert!(cells.len() >= 4, "a config row with fewer than 4 cells: {line}");
        let keys_cell = cells[0].trim_start_matches("| ");
        let names = ticked(keys_cell);
        assert!(!names.is_empty(), "a config row without a key: {line}");
        let first = names[0].clone();
        let parent = first.rsplit_once('.').map(|(p, _)| p.to_string());
        let keys: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if i == 0 || n.contains('.') && !n.starts_with('.') {
                    n.clone()
                } else {
                    let p = parent.clone().unwrap_or_default();
                    format!("{p}.{}", n.trim_start_matches('.'))
                }
            })
            .collect();
        let defaults: Vec<String> = cells[2].split(", ").map(str::to_string).collect();
        for (i, key) in keys.iter().enumerate() {
            let default = if defaults.len() == keys.len() {
                defaults[i].clone()
            } else {
                cells[2].to_string()
            };
            // `notify.<name>`: one entry of the map; its default "none" is an empty map.
            let (key, default) = match key.split_once(".<") {
                Some((map, _)) if default == "none" => (map.to_string(), "`{}`".to_string()),
                Some((map, _)) => (map.to_string(), default),
                None => (key.clone(), default),
            };
            rows.push(Row {
                key,
                ty: cells[1].to_string(),
                default,
            });
        }
    }
    rows
}

/// Every leaf of the config as the program has it: `key -> default`. A struct is walked; a map
/// with no entries (a `BTreeMap`: `notify`, `vars`, `secrets.values`...) is a leaf.
fn code_leaves(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                code_leaves(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Config defaults the program fills in where the value is used, not in `Config::default()`:
/// the docs may state them as literals. Each names where it is filled in.
const FILLED_IN_AT_USE: &[(&str, &str)] = &[(
    "deployments_dir",
    "runner::deployments_root falls back to ./deployments",
)];

/// Keys the program accepts but does not serialize (so they are not in the walk): each is
/// checked by loading a config that sets it.
const NOT_SERIALIZED: &[(&str, &str)] = &[("secrets.values", "secrets:\n  values:\n    token: abcdef\n")];

/// The literal a default cell states, if it states one: a backticked first word, or a bare number.
fn literal(cell: &str) -> Option<String> {
    let c = cell.trim();
    if let Some(rest) = c.strip_prefix('`') {
        return rest.split('`').next().map(str::to_string);
    }
    if c.parse::<f64>().is_ok() {
        return Some(c.to_string());
    }
    None
}

fn problems_with_row(row: &Row, value: &serde_json::Value) -> Vec<String> {
    use serde_json::Value as V;
    let mut out = Vec::new();
    let ty = row.ty.as_str();
    let kind_ok = match value {
        V::Bool(_) => ty == "bool",
        V::Number(n) if n.is_f64() => ["fraction", "number", "percent"]
            .iter()
            .any(|w| ty.contains(w)),
        V::Number(_) => ["integer", "percent"].iter().any(|w| ty.contains(w)),
        V::Array(_) => ty.contains("list"),
        V::Object(_) => ty.contains("map") || ty.contains("channel"),
        V::String(s) => {
            let choices = ticked(ty);
            !["bool", "integer", "list", "map"].iter().any(|w| ty.starts_with(w))
                && (choices.is_empty() || choices.contains(s))
        }
        V::Null => true,
    };
    if !kind_ok {
        out.push(format!(
            "`{}`: documented as type `{ty}`, but the program's default is {value}",
            row.key
        ));
    }
    let stated = literal(&row.default);
    let matches = |lit: &str| match value {
        V::String(s) => s == lit,
        V::Number(n) => lit.parse::<f64>().ok() == n.as_f64(),
        V::Bool(b) => lit == b.to_string(),
        V::Array(_) | V::Object(_) => serde_json::from_str::<V>(lit).ok().as_ref() == Some(value)
            // a map whose missing entries have a default ("`rollback` for each")
            || matches!(value, V::Object(m) if m.is_empty()) && row.default.contains("each"),
        V::Null => false,
    };
    match (&stated, value) {
        (None, V::Null) => {}
        (None, _) => {
            if row.default.trim() == "none" {
                out.push(format!(
                    "`{}`: documented default none, but the program's default is {value}",
                    row.key
                ));
            }
            // Otherwise a description ("the runbook's file name"): not checkable here.
        }
        (Some(lit), V::Null) => {
            if !FILLED_IN_AT_USE.iter().any(|(k, _)| *k == row.key) {
                out.push(format!(
                    "`{}`: documented default `{lit}`, but the program has none (null)",
                    row.key
                ));
            }
        }
        (Some(lit), _) => {
            if !matches(lit) {
                out.push(format!(
                    "`{}`: documented default `{lit}`, but the program's default is {value}",
                    row.key
                ));
            }
        }
    }
    out
}

#[test]
fn the_configuration_table_matches_the_config_keys_types_and_defaults_both_ways() {
    // `script` and `local` are absent by default: set the one key each requires to see the rest.
    let config: runbook::config::Config =
        serde_yaml::from_str("script: { deploy: x }\nlocal: { url: x }\n").unwrap();
    let mut script = serde_json::to_value(&config).unwrap();
    script["script"]["deploy"] = serde_json::Value::Null;
    script["local"]["url"] = serde_json::Value::Null;
    let mut leaves = BTreeMap::new();
    code_leaves("", &script, &mut leaves);

    let rows = config_rows(&read("docs/configuration.md"));
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &rows {
        if !documented.insert(row.key.clone()) {
            problems.push(format!("`{}` is documented twice", row.key));
        }
        match leaves.get(&row.key) {
            Some(v) => problems.extend(problems_with_row(row, v)),
            None => match NOT_SERIALIZED.iter().find(|(k, _)| *k == row.key) {
                Some((_, yaml)) => {
                    if let Err(e) = serde_yaml::from_str::<runbook::config::Config>(yaml) {
                        problems.push(format!("`{}` is documented but refused: {e}", row.key));
                    }
                }
                None => problems.push(format!(
                    "`{}` is documented, but the program has no such key",
                    row.key
                )),
            },
        }
    }
    for key in leaves.keys() {
        if !documented.contains(key) {
            problems.push(format!(
                "`{key}` is a config key (default {}) that docs/configuration.md leaves out of its tables",
                leaves[key]
            ));
        }
    }
    for (key, _) in FILLED_IN_AT_USE.iter().chain(NOT_SERIALIZED) {
        assert!(documented.contains(*key), "exception `{key}` is not documented");
    }
    assert!(problems.is_empty(), "docs/configuration.md vs src/config.rs:\n{}", problems.join("\n"));
}
