//! The module rule of docs/architecture.md, checked over the source tree: a module imports only
//! from its own layer or the layers below it, by `use` or by an inline `crate::` path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of src/ (and each primitives/ file) and its layer, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "error",
            "ui",
            "secrets",
            "config",
            "journal",
            "record",
            "analysis",
            "lock",
            "process",
            "signals",
            "answers",
            "prompts",
            "net",
            "effects",
            "artifacts",
            "charts",
            "criteria",
            "incident",
            "contract",
            "modules",
            "embedded",
            "runbooks",
            "identity",
            "options",
            "opts",
            "health",
            "live",
            "undo",
            "catalogue",
            "clock",
            "scenario",
        ],
    ),
    ("engine", &["session", "unwind", "engine", "primitives"]),
    ("orchestration", &["runner", "repl", "demo", "rehearsal"]),
    ("command line", &["subcommand", "arguments", "lib", "main"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel.split(['/', '.']).next().unwrap().to_string();
        let Some(mine) = layer_of(&top) else {
            unknown.push(rel.clone());
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        // Only the code: tests may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let after = &code[i + 7..];
            // `crate::{a, b::c}`: each top-level name in the braces.
            let targets: Vec<String> = if let Some(group) = after.strip_prefix('{') {
                group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|t| t.trim().split("::").next().unwrap_or("").to_string())
                    .filter(|t| !t.is_empty())
                    .collect()
            } else {
                vec![after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()]
            };
            let line = code[..i].lines().count();
            for target in targets {
                match layer_of(&target) {
                    Some(theirs) if theirs > mine => {
                        wrong.entry(rel.clone()).or_default().push(format!(
                            "line {line}: crate::{target} ({} layer, above {})",
                            LAYERS[theirs].0, LAYERS[mine].0
                        ))
                    }
                    Some(_) => {}
                    None if target == "outln" => {} // a macro exported at the crate root
                    None => unknown.push(format!("{rel}: crate::{target}")),
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules with no layer in LAYERS: {unknown:#?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that point up a layer (see docs/architecture.md, \"Layers\"):\n{}",
        wrong
            .iter()
            .map(|(f, v)| format!("{f}:\n  {}", v.join("\n  ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
