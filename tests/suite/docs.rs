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

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"))
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
        assert!(
            cells.len() >= 4,
            "a config row with fewer than 4 cells: {line}"
        );
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
const NOT_SERIALIZED: &[(&str, &str)] =
    &[("secrets.values", "secrets:\n  values:\n    token: abcdef\n")];

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
            !["bool", "integer", "list", "map"]
                .iter()
                .any(|w| ty.starts_with(w))
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
        V::Array(_) | V::Object(_) => {
            serde_json::from_str::<V>(lit).ok().as_ref() == Some(value)
            // a map whose missing entries have a default ("`rollback` for each")
            || matches!(value, V::Object(m) if m.is_empty()) && row.default.contains("each")
        }
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
        assert!(
            documented.contains(*key),
            "exception `{key}` is not documented"
        );
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md vs src/config/:\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------ C: prompt ids

/// A prompt a shipped runbook or module writes: its id, and its items or keys when literal.
#[derive(Debug, Default, Clone)]
struct Shipped {
    files: BTreeSet<String>,
    choices: Vec<String>,
}

fn literal_value(e: &rhai::Expr) -> Option<serde_json::Value> {
    let d = e.get_literal_value(None)?;
    rhai::serde::from_dynamic::<serde_json::Value>(&d).ok()
}

/// Every prompt the shipped runbooks and stdlib modules ask whose id can be known before the
/// run: an `id` given literally, or one derived from literal question text (as the runner does).
fn shipped_prompts() -> BTreeMap<String, Shipped> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut engine = rhai::Engine::new();
    engine.set_max_expr_depths(0, 0);
    let mut out: BTreeMap<String, Shipped> = BTreeMap::new();
    for dir in ["runbooks", "stdlib"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
            .collect();
        files.sort();
        for file in files {
            let name = format!("{dir}/{}", file.file_name().unwrap().to_string_lossy());
            let ast = engine
                .compile(std::fs::read_to_string(&file).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for d in runbook::prompts::declared(&ast) {
                let e = out.entry(d.id.clone()).or_default();
                e.files.insert(name.clone());
                match d.kind {
                    runbook::prompts::Kind::Choose { keys, .. } => e.choices.extend(keys),
                    runbook::prompts::Kind::Checklist(items) => e.choices.extend(items),
                    runbook::prompts::Kind::Confirm => {}
                }
            }
            ast.walk(&mut |path| {
                let call = match path.last() {
                    Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(x, _)))
                    | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(x, _))) => x,
                    _ => return true,
                };
                let opts_at = match call.name.as_str() {
                    "confirm" => 1,
                    "choose" | "checklist" | "input" => 2,
                    "approve" => 0,
                    _ => return true,
                };
                let opts = call.args.get(opts_at).and_then(literal_value);
                let id = opts
                    .as_ref()
                    .and_then(|o| o.get("id"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .or_else(|| match call.name.as_str() {
                        "approve" => Some("approve-deployment".to_string()),
                        _ => match call.args.first().and_then(literal_value) {
                            Some(serde_json::Value::String(q)) => Some(runbook::answers::slug(&q)),
                            _ => None,
                        },
                    });
                if let Some(id) = id {
                    out.entry(id).or_default().files.insert(name.clone());
                }
                true
            });
        }
    }
    out
}

/// Prompts the runner asks itself (not a script): the id is written in the Rust source.
fn asked_by_the_runner(id: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, needle)
            } else {
                p.extension().is_some_and(|e| e == "rs")
                    && std::fs::read_to_string(&p).unwrap().contains(needle)
            }
        })
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    match id.strip_suffix("<metric>") {
        Some(prefix) => walk(&src, &format!("\"{prefix}{{}}\"")),
        None => walk(&src, &format!("\"{id}\"")),
    }
}

/// The prompt ids a text names: `id `x``, `ids (`x`, `y`, ...)`, and `RUNBOOK_ANSWER_X`.
fn ids_named_in(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, _) in text.match_indices("id `") {
        let rest = &text[i + 4..];
        ids.push(rest.split('`').next().unwrap().to_string());
    }
    for (i, _) in text.match_indices("ids (") {
        let rest = &text[i + 5..];
        let list = rest.split(')').next().unwrap();
        ids.extend(ticked(list).into_iter().filter(|t| t != "..."));
    }
    ids
}

#[test]
fn every_prompt_id_the_docs_name_is_one_the_shipped_runbooks_or_the_runner_ask() {
    let shipped = shipped_prompts();
    let config = read("docs/configuration.md");
    let readme = read("README.md");
    let mut named: Vec<(String, String)> = Vec::new();

    // The "Answers files" table: every id, and the items or choices it lists.
    let answers = config
        .split("## Answers files")
        .nth(1)
        .expect("an Answers files section");
    let mut problems = Vec::new();
    for line in answers.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        for id in ticked(cells[0]) {
            named.push((
                id.clone(),
                "docs/configuration.md Answers files table".into(),
            ));
            if let Some(s) = shipped.get(&id) {
                for choice in ticked(cells[1]) {
                    if !s.choices.is_empty() && !s.choices.contains(&choice) {
                        problems.push(format!(
                            "`{id}`: the docs list `{choice}`, which is not one of its items or choices {:?}",
                            s.choices
                        ));
                    }
                }
                if !s.choices.is_empty() {
                    for c in &s.choices {
                        if !cells[1].contains(&format!("`{c}`")) {
                            problems.push(format!(
                                "`{id}`: the docs leave out its item or choice `{c}`"
                            ));
                        }
                    }
                }
            }
        }
    }
    // The answers-file example: its keys are prompt ids.
    let example = answers
        .split("```yaml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    for line in example.lines() {
        if let Some((key, _)) = line.trim_start_matches("# ").split_once(':') {
            if !key.contains(' ') && !key.is_empty() {
                named.push((
                    key.to_string(),
                    "docs/configuration.md answers example".into(),
                ));
            }
        }
    }
    for (file, text) in [("README.md", &readme), ("docs/configuration.md", &config)] {
        for id in ids_named_in(text) {
            named.push((id, format!("{file} prose")));
        }
        for (i, _) in text.match_indices("RUNBOOK_ANSWER_") {
            let var: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if var.len() > "RUNBOOK_ANSWER_".len() {
                let known = shipped
                    .keys()
                    .any(|id| runbook::answers::env_var_for(id) == var)
                    || asked_by_the_runner(
                        &var["RUNBOOK_ANSWER_".len()..]
                            .to_lowercase()
                            .replace('_', "-"),
                    );
                if !known {
                    problems.push(format!("{file}: `{var}` answers no shipped prompt"));
                }
            }
        }
    }
    for (id, whence) in &named {
        if !shipped.contains_key(id) && !asked_by_the_runner(id) {
            problems.push(format!(
                "{whence}: `{id}` is not a prompt id of the shipped runbooks (nor one the runner asks)"
            ));
        }
    }
    // The other way: every prompt the shipped runbooks ask is in the table.
    for (id, s) in &shipped {
        let in_table = answers
            .lines()
            .filter(|l| l.starts_with("| `"))
            .any(|l| ticked(l.split(" | ").next().unwrap()).contains(id));
        if !in_table {
            problems.push(format!(
                "`{id}` (asked in {:?}) is missing from docs/configuration.md's Answers files table",
                s.files
            ));
        }
    }
    // The example answers file fits the shipped deploy runbook.
    let p = Place::example("blue-green-nginx");
    p.file("example.yaml", example);
    p.run("runbook check deploy --answers example.yaml")
        .expect_code(0, "the answers example")
        .expect("the answers example", "answers `example.yaml` is valid");
    assert_eq!(
        runbook::answers::slug("Proceed to production?"),
        "proceed-to-production"
    );
    assert!(
        readme.contains("\"Proceed to production?\" is\n`proceed-to-production`")
            || readme.contains("\"Proceed to production?\" is `proceed-to-production`")
    );
    assert!(
        problems.is_empty(),
        "prompt ids in the docs:\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------ running documented commands

/// What a command did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A directory to run documented commands in, with what they need there.
struct Place {
    dir: tempfile::TempDir,
    /// The fleet the team's runbook.yaml points at, kept alive with its runtime.
    fleet: Option<(tokio::runtime::Runtime, runbook::demo::fleet::Fleet)>,
    /// A placeholder in an example and what it stands for here (a run directory's real name).
    replace: Vec<(String, String)>,
}

impl Place {
    fn empty() -> Place {
        Place {
            dir: tempfile::tempdir().unwrap(),
            fleet: None,
            replace: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, path: &str, text: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A team on the embedded fleet (adapter `local`), with an answers file for the shipped
    /// deploy runbook that answers every prompt an unattended run reaches, and a runbook of its
    /// own, deploy.rhai.
    fn team() -> Place {
        let mut p = Place::empty();
        let (rt, fleet) = support::fleet(&[]);
        p.file(
            "runbook.yaml",
            &format!(
                "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
                 monitoring:\n  interval: 300ms\n  samples: 2\n  min_requests: 5\nrollout:\n  steps: [100]\n\
                 # A loaded test machine answers slowly: these examples are not about latency.\n\
                 triggers:\n  response_time: 60s\n",
                fleet.url()
            ),
        );
        p.file(
            "answers.yaml",
            "strategy: blue-green\nprerequisites: yes\npre-deployment-checklist: yes\nstaging-deployment-successful-proceed-to-production: yes\n\
             approve-deployment: { approved: yes, by: docs-test }\n",
        );
        p.file(
            "deploy.rhai",
            "// The team's own deploy runbook.\nsh(\"echo deployed by the team runbook\");\n",
        );
        p.fleet = Some((rt, fleet));
        p
    }

    /// A copy of `examples/<name>/`, as the team has it (scripts executable).
    fn example(name: &str) -> Place {
        let p = Place::empty();
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(p.path())
            .status()
            .unwrap();
        assert!(status.success());
        p
    }

    /// A team that has deployed once: `deployments/2026-11-27-checkout` in an example is that run.
    fn deployed() -> Place {
        let mut p = Place::team();
        p.run("runbook deploy --answers answers.yaml")
            .expect_code(0, "deploy");
        let dir = only_run_dir(p.path());
        p.replace.push((
            "deployments/2026-11-27-checkout".into(),
            format!("deployments/{dir}"),
        ));
        p
    }

    /// A run that died (SIGKILL) in its second step, leaving its lock.
    fn dead_run() -> Place {
        let mut p = Place::empty();
        p.file(
            "hotfix.rhai",
            "sh(\"echo x >> ran-1\");\nsh(\"[ -f killed ] || { touch killed; kill -9 $PPID; }\");\nsh(\"echo x >> ran-3\");\n",
        );
        let r = p.run("runbook hotfix.rhai");
        assert_eq!(r.code, -1, "killed by SIGKILL\n{}", r.all());
        let dir = only_run_dir(p.path());
        p.replace.push((
            "deployments/2026-11-27-checkout".into(),
            format!("deployments/{dir}"),
        ));
        p
    }

    fn fleet_split(&self) -> BTreeMap<String, u32> {
        let (rt, fleet) = self.fleet.as_ref().expect("a team with a fleet");
        rt.block_on(runbook::demo::measure_split(&fleet.url(), 40))
    }

    /// Run a documented command line here: `runbook ...` (or `cargo run -- ...`, or
    /// `cargo run --release -- ...`: the same arguments to the binary the tests built), with
    /// `echo '...' |` before it as its input and `> FILE` after it captured rather than written.
    fn run(&self, line: &str) -> Ran {
        let mut line = line.to_string();
        for (from, to) in &self.replace {
            line = line.replace(from, to);
        }
        let (stdin, line) = match line.split_once(" | ") {
            Some((echo, rest)) => {
                let words = shlex::split(echo).expect("a shell word list");
                assert_eq!(words[0], "echo", "{line}");
                (
                    Some(format!("{}\n", words[1..].join(" "))),
                    rest.to_string(),
                )
            }
            None => (None, line.clone()),
        };
        let line = line.split(" > ").next().unwrap();
        let mut words = shlex::split(line).unwrap_or_else(|| panic!("not shell words: {line}"));
        let mut env = Vec::new();
        while words[0].contains('=') {
            let w = words.remove(0);
            let (k, v) = w.split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
        }
        let args: Vec<String> = match words[0].as_str() {
            "runbook" => words[1..].to_vec(),
            "cargo" => {
                let at = words
                    .iter()
                    .position(|w| w == "--")
                    .expect("cargo run -- ARGS");
                words[at + 1..].to_vec()
            }
            other => panic!("not a runbook command: {other} ({line})"),
        };
        let mut cmd = std::process::Command::new(support::BIN);
        cmd.args(&args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("USER", "tester")
            .env("XDG_STATE_HOME", self.path().join(".state"));
        for (k, _) in std::env::vars() {
            if k.starts_with("RUNBOOK_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env);
        let out = match stdin {
            None => cmd.stdin(std::process::Stdio::null()).output().unwrap(),
            Some(text) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
        };
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

thread_local! {
    /// The exit code an example's own check verified (its `what` is the example, in backticks).
    static VERIFIED: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

fn code_of(line: &str) -> i32 {
    VERIFIED
        .with(|v| v.get())
        .unwrap_or_else(|| panic!("`{line}`: its check verified no exit code"))
}

impl Ran {
    #[track_caller]
    fn expect_code(&self, code: i32, what: &str) -> &Ran {
        if what.starts_with('`') {
            VERIFIED.with(|v| v.set(Some(code)));
        }
        assert_eq!(
            self.code, code,
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn expect(&self, what: &str, text: &str) -> &Ran {
        assert!(
            self.all().contains(text),
            "{what}: expected `{text}` in the output\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The one run directory under deployments/ (dot-directories aside).
fn only_run_dir(dir: &Path) -> String {
    let mut dirs: Vec<String> = std::fs::read_dir(dir.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 1, "one run directory: {dirs:?}");
    dirs.pop().unwrap()
}

/// Run a documented example and check that it does what the docs (or the help) say it does.
/// `None`: this file does not know the example (the caller fails, naming it).
fn check_example(line: &str) -> Option<i32> {
    let what = format!("`{line}`");
    let w = what.as_str();
    match line {
        // Demos: the whole workflow on the embedded fleet. Without a terminal a demo runs
        // unattended, so `runbook demo` is `--unattended` here.
        "runbook demo" | "runbook demo --unattended" | "cargo run --release -- demo" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w)
                .expect(w, "✅ Run completed.")
                .expect(w, "Stage 2: Production Deployment (Canary Release)")
                .expect(w, "Traffic now (measured through the router): v2 100%");
        }
        "runbook demo --strategy blue-green --bad-release --unattended"
        | "runbook demo --bad-release --unattended" => {
            let p = Place::empty();
            let r = p.run(line);
            r.expect_code(3, w)
                .expect(w, "Rolled back")
                .expect(w, "Traffic now (measured through the router): v1 100%");
            let dir = p.path().join("deployments").join(only_run_dir(p.path()));
            assert!(dir.join("post-mortem.md").exists(), "{w}: post-mortem.md");
        }
        "runbook demo --strategy blue-green --unattended" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w)
                .expect(w, "Blue-Green")
                .expect(w, "Traffic now (measured through the router): v2 100%");
        }
        // The team's own deploy.rhai, a path: it runs.
        "runbook deploy.rhai" | "runbook run deploy.rhai --answers answers.yaml" => {
            let r = Place::team().run(line);
            r.expect_code(0, w)
                .expect(w, "▶ deploy.rhai")
                .expect(w, "deployed by the team runbook");
        }
        // The shipped deploy runbook, named: the feature comes from --set; with no answers and
        // no terminal it stops at the first prompt, before anything changes (exit 2).
        "runbook deploy --set feature=checkout" => {
            let p = Place::team();
            std::fs::write(p.path().join("runbook.yaml"), std::fs::read_to_string(p.path().join("runbook.yaml")).unwrap().replace("feature: checkout\n", "")).unwrap();
            let r = p.run(line);
            r.expect_code(2, w)
                .expect(w, "<shipped>/runbooks/deploy.rhai — feature `checkout`")
                .expect(w, "needs an answer and there is no terminal to ask");
            assert!(only_run_dir(p.path()).ends_with("-checkout"), "{w}");
        }
        "runbook deploy --answers answers.yaml" | "runbook deploy --answers answers.yaml --approve" => {
            let p = Place::team();
            p.run(line).expect_code(0, w).expect(w, "✅ Run completed.");
            assert_eq!(p.fleet_split().get("v2"), Some(&40), "{w}: v2 takes all traffic");
        }
        // A team with its own scripts (examples/blue-green-nginx): the plan lists its commands,
        // none of which runs.
        "runbook deploy --dry-run --answers answers.yaml --approve" => {
            let p = Place::example("blue-green-nginx");
            p.run(line)
                .expect_code(0, w)
                .expect(w, "dry-run: nothing will be executed")
                .expect(w, "✅ Run completed.");
            let plan = std::fs::read_to_string(
                p.path().join("deployments").join(only_run_dir(p.path())).join("deployment-plan.md"),
            )
            .unwrap();
            for cmd in ["`./deploy.sh staging`", "`./deploy.sh production-green`", "`./scripts/switch-traffic.sh blue-to-green`"] {
                assert!(plan.contains(cmd), "{w}: the plan lists {cmd}\n{plan}");
            }
            assert!(!plan.contains("| done |"), "{w}: nothing ran\n{plan}");
        }
        "runbook run ./ops/hotfix.rhai --dry-run --yes" => {
            let p = Place::empty();
            p.file(
                "ops/hotfix.rhai",
                "sh(\"touch hotfixed\");\nif !confirm(\"Restart the workers?\") { decline(\"no\"); }\nsh(\"touch restarted\");\n",
            );
            p.run(line).expect_code(0, w).expect(w, "✅ Run completed.");
            assert!(!p.path().join("hotfixed").exists(), "{w}: a dry-run runs nothing");
            let plan = std::fs::read_to_string(
                p.path().join("deployments").join(only_run_dir(p.path())).join("deployment-plan.md"),
            )
            .unwrap();
            assert!(plan.contains("touch restarted"), "{w}: {plan}");
        }
        "runbook check deploy.rhai" => {
            Place::team()
                .run(line)
                .expect_code(0, w)
                .expect(w, "ok: deploy.rhai compiles");
            Place::empty()
                .run(line)
                .expect_code(0, w)
                .expect(w, "ok: <shipped>/runbooks/deploy.rhai compiles");
        }
        "runbook check deploy --answers answers.yaml"
        | "runbook check deploy --answers answers.yaml --set feature=checkout" => {
            Place::team()
                .run(line)
                .expect_code(0, w)
                .expect(w, "answers `answers.yaml` is valid");
        }
        "runbook list" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w);
            for name in ["deploy", "incident", "preflight", "rollback"] {
                r.expect(w, &format!("{name:<10} shipped"));
            }
        }
        "runbook list --config ops/runbook.yaml" => {
            let p = Place::empty();
            p.file("ops/runbook.yaml", "runbook_dirs: [playbooks]\n");
            p.file("ops/playbooks/hotfix.rhai", "// Restart the workers.\nsh(\"true\");\n");
            p.run(line).expect_code(0, w).expect(w, "hotfix");
        }
        "runbook init" | "runbook init ops/deploy" => {
            let p = Place::empty();
            p.run(line).expect_code(0, w);
            let at = p.path().join(line.strip_prefix("runbook init").unwrap().trim());
            assert!(at.join("runbook.yaml").exists(), "{w}");
            assert!(at.join("runbooks/deploy.rhai").exists(), "{w}");
        }
        // Definition files for an editor: every primitive, and a file per stdlib module.
        "runbook definitions" | "runbook definitions ops/defs" => {
            let p = Place::empty();
            p.run(line).expect_code(0, w).expect(w, "definition files in");
            let dir = line.strip_prefix("runbook definitions").unwrap().trim();
            let at = p.path().join(if dir.is_empty() { "rhai-definitions" } else { dir });
            let primitives = std::fs::read_to_string(at.join("runbook.d.rhai"))
                .unwrap_or_else(|e| panic!("{w}: runbook.d.rhai: {e}"));
            assert!(primitives.contains("fn sh(cmd: ?, opts: map) -> map;"), "{w}");
            assert!(at.join("workflow.d.rhai").is_file(), "{w}");
        }
        // Rehearsals: the two starters `runbook init` writes, run as the docs show.
        "runbook test"
        | "runbook test tests/bad-release-rolled-back.yaml"
        | "runbook test --filter canary --verbose"
        | "runbook test --junit reports/runbook.xml" => {
            let p = Place::empty();
            p.run("runbook init").expect_code(0, w);
            let r = p.run(line);
            r.expect_code(0, w)
                .expect(w, "✓ a bad release is rolled back in the first canary window (exit 3, ");
            if line.contains("tests/") {
                r.expect(w, "1 scenario(s): 1 passed, 0 failed");
            } else {
                r.expect(w, "2 scenario(s): 2 passed, 0 failed")
                    .expect(w, "✓ a good release is promoted through every canary step (exit 0, ");
            }
            if line.contains("--verbose") {
                // `runbook init` copied the deploy runbook: the team's copy is the one run.
                r.expect(w, "[00:00:00] ▶ runbooks/deploy.rhai");
            }
            if line.contains("--junit") {
                let xml = std::fs::read_to_string(p.path().join("reports/runbook.xml"))
                    .unwrap_or_else(|e| panic!("{w}: {e}"));
                assert!(xml.contains("<testsuites") && xml.matches("<testcase").count() == 2, "{w}: {xml}");
            }
        }
        "runbook init --force" => {
            let p = Place::empty();
            p.file("runbook.yaml", "feature: mine\n");
            p.run(line).expect_code(0, w);
            let text = std::fs::read_to_string(p.path().join("runbook.yaml")).unwrap();
            assert!(!text.contains("feature: mine"), "{w}: overwritten");
        }
        "runbook repl --last" | "runbook repl --deployment deployments/2026-11-27-checkout" => {
            let p = Place::deployed();
            p.run(line)
                .expect_code(0, w)
                .expect(w, &format!("attached to {}", p.replace[0].1));
        }
        "echo 'status()' | runbook repl --last" => {
            let p = Place::deployed();
            let r = p.run(line);
            r.expect_code(0, w);
            assert!(r.stdout.contains("=> "), "{w}: results on stdout\n{}", r.stdout);
            assert!(r.stdout.contains("Blue-Green Deployment"), "{w}: {}", r.stdout);
        }
        "runbook repl --last --answers answers.yaml" => {
            let p = Place::deployed();
            p.file("answers.yaml", "incident-root-cause: a bad release\n");
            p.run(line).expect_code(0, w).expect(w, "attached to");
        }
        "runbook resume" | "runbook resume deployments/2026-11-27-checkout" => {
            let p = Place::dead_run();
            // Nobody to ask about the command the run died in: `resume.in_flight` (rollback).
            p.run(line)
                .expect_code(3, w)
                .expect(w, "resuming: 1 completed effect(s) replayed")
                .expect(w, "Rolling back: the run died during");
            assert_eq!(std::fs::read_to_string(p.path().join("ran-1")).unwrap(), "x\n", "{w}: not run again");
        }
        "runbook resume --set resume.in_flight=rerun" => {
            let p = Place::dead_run();
            p.run(line).expect_code(0, w).expect(w, "✅ Run completed.");
            assert!(p.path().join("ran-3").exists(), "{w}: went on");
        }
        "runbook unlock production --reason \"runner host died mid-deploy; checked the cluster by hand\"" => {
            let p = Place::dead_run();
            p.run(line)
                .expect_code(0, w)
                .expect(w, "ok: `production` unlocked");
            assert!(!p.path().join("deployments/.locks/production.lock").exists(), "{w}");
        }
        // Live control: a demo canary runs in the background, and the request reaches it; the
        // run acts on it itself (a pause is resumed here, so the demo ends).
        "runbook control production pause --reason \"checking a dashboard\""
        | "runbook control production resume"
        | "runbook control production promote --reason \"verified by hand\""
        | "runbook control production abort --reason \"support tickets spiking\"" => {
            let p = Place::empty();
            let mut demo = support::Background::new(std::process::Command::new(support::BIN)
                .args([
                    "demo", "--unattended", "--set", "monitoring.interval=500ms", "--set",
                    "monitoring.samples=3", "--set", "monitoring.min_requests=1", "--set",
                    "triggers.response_time=30s",
                ])
                .current_dir(p.path())
                .env("NO_COLOR", "1")
                .env("USER", "tester")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap());
            let records = |p: &Place| -> Vec<serde_json::Value> {
                let Ok(entries) = std::fs::read_dir(p.path().join("deployments")) else {
                    return vec![];
                };
                entries
                    .flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .filter_map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).ok())
                    .flat_map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<_>>())
                    .collect()
            };
            let wait = |p: &Place, what: &str, want: &dyn Fn(&serde_json::Value) -> bool| {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !records(p).iter().any(want) {
                    assert!(std::time::Instant::now() < until, "{w}: the run never got to {what}");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            };
            wait(&p, "a measurement", &|r| r["type"] == "measurement");
            p.run(line)
                .expect_code(0, w)
                .expect(w, "ok: asked the run of `production` to ");
            let action = line.split_whitespace().nth(3).unwrap();
            if action == "pause" {
                wait(&p, "the pause", &|r| r["done"] == "paused");
                p.run("runbook control production resume").expect_code(0, "resume");
            }
            let out = demo.take().wait_with_output().unwrap();
            let (code, done) = match action {
                "pause" => (0, "paused"),
                "resume" => (0, "ignored: the run was not paused"),
                "promote" => (0, "promoted"),
                _ => (3, "aborted"),
            };
            assert_eq!(out.status.code(), Some(code), "{w}: {}", String::from_utf8_lossy(&out.stdout));
            assert!(
                records(&p).iter().any(|r| r["type"] == "control" && r["done"] == done && r["by"].as_str().is_some_and(|b| b.starts_with("tester@"))),
                "{w}: the run journaled `{done}`"
            );
        }
        // Who holds each environment, from the lock backend: a dead run's lock names its run
        // and says it is stale.
        "runbook status" | "runbook status production" => {
            let p = Place::dead_run();
            p.run(line)
                .expect_code(0, w)
                .expect(w, "production: held by ")
                .expect(w, ", run deployments/")
                .expect(w, "(stale: its process ");
        }
        // The shipped rollback runbook: the last deployment's undo steps, from its journal.
        "runbook rollback --yes" => {
            let p = Place::deployed();
            assert_eq!(p.fleet_split().get("v2"), Some(&40), "{w}: deployed first");
            // Rolled back cleanly, as a person chose: exit 3.
            p.run(line)
                .expect_code(3, w)
                .expect(w, "<shipped>/runbooks/rollback.rhai")
                .expect(w, "Rollback complete: 1 step(s) undone.");
            assert_eq!(p.fleet_split().get("v1"), Some(&40), "{w}: v1 takes all traffic again");
        }
        "runbook verify deployments/2026-11-27-checkout" => {
            Place::deployed().run(line).expect_code(0, w).expect(w, "ok");
        }
        "runbook report deployments/2026-11-27-checkout" => {
            Place::deployed().run(line).expect_code(0, w);
        }
        "runbook completions bash > /etc/bash_completion.d/runbook" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w).expect(w, "complete -F _runbook");
        }
        "runbook completions zsh > \"${fpath[1]}/_runbook\"" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w);
            assert!(r.stdout.starts_with("#compdef runbook"), "{w}");
        }
        "runbook completions fish > ~/.config/fish/completions/runbook.fish" => {
            let r = Place::empty().run(line);
            r.expect_code(0, w).expect(w, "complete -c runbook");
        }
        _ => return None,
    }
    Some(code_of(line))
}

// ------------------------------------------------------------------ E: the help's examples

/// The examples a help text shows: the command of each line of its "Examples:" section.
fn help_examples(help: &str) -> Vec<String> {
    let Some(section) = help.split("Examples:\n").nth(1) else {
        return Vec::new();
    };
    section
        .lines()
        .take_while(|l| l.starts_with("  ") || l.is_empty())
        .map(str::trim)
        .filter(|l| l.starts_with("runbook ") || l.starts_with("echo "))
        .map(|l| l.split("  ").next().unwrap().to_string())
        .collect()
}

/// Run each example in its own thread (a demo takes a while; they wait mostly on the network).
fn check_all_examples(examples: Vec<(String, String)>) {
    let failed = run_at_most_4_at_once(
        examples
            .into_iter()
            .map(|(whence, line)| -> Job {
                Box::new(move || {
                    if check_example(&line).is_none() {
                        panic!("{whence}: `{line}` is an example tests/suite/docs.rs does not know: add what it must do to check_example");
                    }
                })
            })
            .collect(),
    );
    assert_eq!(failed, 0, "{failed} example(s) failed (see above)");
}

type Job = Box<dyn FnOnce() + Send>;

/// Run the jobs on 4 threads (a demo takes a while, mostly waiting on its fleet; more at once
/// only slows each on a 2-core machine); returns how many panicked.
fn run_at_most_4_at_once(jobs: Vec<Job>) -> usize {
    let queue = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut failed = 0;
                loop {
                    let Some(job) = queue.lock().unwrap().pop() else {
                        return failed;
                    };
                    // Each job asserts with its own message; count it and go on with the rest.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        failed += 1;
                    }
                }
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).sum()
}

#[test]
fn every_example_in_runbook_help_and_each_subcommand_help_does_what_it_says() {
    let mut examples = Vec::new();
    let top = Place::empty().run("runbook --help");
    top.expect_code(0, "runbook --help");
    for e in help_examples(&top.stdout) {
        examples.push(("runbook --help".to_string(), e));
    }
    let cli = runbook::arguments::command();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let help = Place::empty().run(&format!("runbook {name} --help"));
        help.expect_code(0, name);
        let found = help_examples(&help.stdout);
        assert!(
            !found.is_empty(),
            "`runbook {name} --help` shows no example"
        );
        for e in found {
            examples.push((format!("runbook {name} --help"), e));
        }
    }
    examples.sort();
    examples.dedup_by(|a, b| a.1 == b.1);
    check_all_examples(examples);
}

#[test]
fn init_help_shows_its_default_once() {
    let r = Place::empty().run("runbook init --help");
    r.expect_code(0, "init --help");
    assert_eq!(r.stdout.matches("[default: .]").count(), 1, "{}", r.stdout);
}

// ------------------------------------------------------------------ A: the docs' commands

/// Documented commands that cannot run here, each with why. Keep this rare: a reason must not
/// hide a false claim.
const CANNOT_RUN_HERE: &[(&str, &str)] = &[];

/// A fenced block: the file, its language, the line it starts on and its text.
struct Block {
    file: String,
    lang: String,
    line: usize,
    text: String,
}

fn fenced_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(fence) = line.strip_prefix("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    open = Some(Block {
                        file: file.to_string(),
                        lang: fence.trim().to_string(),
                        line: n + 1,
                        text: String::new(),
                    })
                }
            }
        } else if let Some(b) = open.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is not closed");
    out
}

/// A shell line that invokes runbook: `runbook ...`, `cargo run ... -- ...`, with environment
/// assignments before it or `echo ... |` feeding it.
fn invokes_runbook(line: &str) -> bool {
    let after_pipe = line.rsplit(" | ").next().unwrap();
    let first = after_pipe
        .split_whitespace()
        .find(|w| !w.contains('='))
        .unwrap_or("");
    first == "runbook" || after_pipe.trim_start().starts_with("cargo run")
}

/// Every runbook command in the fenced shell blocks of README.md and docs/*.md, with where it
/// is and the exit code the text gives it (`# exit N` after it; none said: 0).
fn documented_commands() -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for file in doc_files() {
        let text = read(&file);
        // A command in an indented block would escape this test: commands go in fenced blocks.
        let mut fenced = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                fenced = !fenced;
            }
            let t = line.trim_start();
            if !fenced && line.starts_with("    ") && invokes_runbook(t) {
                panic!(
                    "{file}:{}: a command in an indented block; put it in a ```sh block: {t}",
                    n + 1
                );
            }
        }
        for b in fenced_blocks(&file, &text) {
            if !matches!(b.lang.as_str(), "sh" | "console" | "bash" | "shell") {
                continue;
            }
            for (i, line) in b.text.lines().enumerate() {
                let line = line.trim().trim_start_matches("$ ");
                let (cmd, comment) = match line.split_once(" # ") {
                    Some((c, k)) => (c.trim(), k),
                    None => (line, ""),
                };
                if cmd.is_empty() || cmd.starts_with('#') || !invokes_runbook(cmd) {
                    continue;
                }
                let code = comment
                    .split("exit ")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                out.push((
                    format!("{}:{}", b.file, b.line + 1 + i),
                    cmd.to_string(),
                    code,
                ));
            }
        }
    }
    out
}

#[test]
fn every_command_in_the_readme_and_docs_runs_with_its_documented_exit_code() {
    let commands = documented_commands();
    assert!(commands.len() >= 8, "found too few commands: {commands:?}");
    let failed = run_at_most_4_at_once(
        commands
            .into_iter()
            .filter(|(_, line, _)| {
                if let Some((_, why)) = CANNOT_RUN_HERE.iter().find(|(c, _)| c == line) {
                    eprintln!("not run here: `{line}`: {why}");
                    false
                } else {
                    true
                }
            })
            .map(|(whence, line, documented)| -> Job {
                Box::new(move || match check_example(&line) {
                    None => panic!("{whence}: `{line}` is a documented command tests/suite/docs.rs does not know: add what it must do to check_example (or, rarely, to CANNOT_RUN_HERE with why)"),
                    Some(code) => assert_eq!(code, documented, "{whence}: `{line}` exits {code}, the text says {documented}"),
                })
            })
            .collect(),
    );
    assert_eq!(
        failed, 0,
        "{failed} documented command(s) failed (see above)"
    );
}

/// The long flags of a subcommand (its own and the global ones), with `-q`/`-v` style shorts.
fn flags_of(cli: &clap::Command, sub: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |c: &clap::Command| {
        for a in c.get_arguments() {
            if let Some(l) = a.get_long() {
                out.insert(format!("--{l}"));
            }
            if let Some(s) = a.get_short() {
                out.insert(format!("-{s}"));
            }
        }
    };
    add(cli);
    if let Some(name) = sub {
        add(cli.find_subcommand(name).unwrap());
    }
    out.insert("--help".into());
    // clap's own version flag, on the program (not its subcommands).
    if sub.is_none() && cli.get_version().is_some() {
        out.insert("--version".into());
        out.insert("-V".into());
    }
    out
}

fn flags_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "[]|=".contains(c))
        .filter(|w| w.starts_with('-') && w.len() > 1 && !w.starts_with("---"))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .collect()
}

#[test]
fn the_readme_command_list_matches_the_command_line_both_ways() {
    let cli = runbook::arguments::command();
    let readme = read("README.md");
    let commands = readme.split("## Commands").nth(1).unwrap();
    let block = fenced_blocks("README.md", commands)
        .into_iter()
        .find(|b| b.lang == "text")
        .expect("the command list, a ```text block under ## Commands");
    // Each entry: its first line starts with `runbook`, continuation lines are indented.
    let mut entries: Vec<String> = Vec::new();
    for line in block.text.lines() {
        if line.starts_with("runbook ") {
            entries.push(line.to_string());
        } else if let Some(last) = entries.last_mut() {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for entry in &entries {
        let word = entry.split_whitespace().nth(1).unwrap();
        let sub = cli.find_subcommand(word).map(|_| word);
        listed.insert(sub.unwrap_or("FILE_OR_NAME").to_string());
        // Only the synopsis (before the description's two spaces) names flags.
        let synopsis = entry.split("  ").next().unwrap();
        let known = flags_of(&cli, sub);
        for f in flags_in(synopsis) {
            if !known.contains(&f) {
                problems.push(format!("`{synopsis}`: `{f}` is not a flag of this command"));
            }
        }
        let shown: BTreeSet<String> = flags_in(synopsis).into_iter().collect();
        if sub.is_some() && sub != Some("run") {
            let own = cli.find_subcommand(word).unwrap();
            for a in own.get_arguments() {
                if let Some(l) = a.get_long() {
                    if !shown.contains(&format!("--{l}")) {
                        problems.push(format!(
                            "`runbook {word}`: its flag `--{l}` is left out of the README's list"
                        ));
                    }
                }
            }
        }
    }
    for sub in cli.get_subcommands().map(|s| s.get_name()) {
        if sub != "help" && !listed.contains(sub) {
            problems.push(format!(
                "`runbook {sub}` is left out of the README's command list"
            ));
        }
    }
    // Inline commands in the prose of every doc: each flag exists where it is used.
    for file in doc_files() {
        for span in ticked(&read(&file)) {
            let Some(rest) = span.strip_prefix("runbook ") else {
                continue;
            };
            // What follows a pipe is another program's.
            let rest = rest.split(" | ").next().unwrap_or(rest);
            let word = rest.split_whitespace().next().unwrap_or("");
            let sub = cli.find_subcommand(word).map(|_| word);
            let known = flags_of(&cli, sub);
            for f in flags_in(rest) {
                if !known.contains(&f) {
                    problems.push(format!(
                        "{file}: `{span}`: `{f}` is not a flag of this command"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_runbooks_pass_check_and_run() {
    let readme = read("README.md");
    let blocks: Vec<Block> = fenced_blocks("README.md", &readme)
        .into_iter()
        .filter(|b| b.lang == "rhai")
        .collect();
    assert!(blocks.len() >= 2, "the README's runbooks");
    for b in blocks {
        let whence = format!("README.md:{}", b.line);
        let p = Place::empty();
        p.file("example.rhai", &b.text);
        // What the examples lean on: a module of the team's own beside the runbook, and the
        // channel `notify("team", ...)` writes to, in runbook.yaml.
        p.file("lib/ops.rhai", "// The team's helpers.\nfn noop() {}\n");
        p.file("runbook.yaml", "notify:\n  team: { type: stdout }\n");
        if b.text.contains("workflow::run") {
            // The shipped workflow needs an adapter: the script one, with commands that succeed.
            p.file(
                "runbook.yaml",
                "adapter: script\nversion: v2\ncurrent_version: v1\nscript:\n  deploy: \"true {env}\"\n  health: \"true {env}\"\n  switch: \"true {to}\"\n  weight: \"true {percent}\"\n  remove: \"true {env}\"\n",
            );
        }
        p.run("runbook check example.rhai")
            .expect_code(0, &whence)
            .expect(&whence, "ok: example.rhai compiles");
        // The hosts it names (staging.internal, prometheus:9090) are not here: a dry-run runs it
        // through, every prompt answered, every effect planned.
        p.run("RUNBOOK_ANSWER_STRATEGY=canary runbook example.rhai --dry-run --yes --approve")
            .expect_code(0, &whence)
            .expect(&whence, "✅ Run completed.");
    }
}

#[test]
fn the_command_provider_takes_cmd_as_check_does_and_still_takes_run() {
    for field in ["cmd", "run"] {
        let p = Place::empty();
        p.file(
            "m.rhai",
            &format!(
                "let r = analyze(#{{ interval: \"10ms\", count: 2, metrics: [\n\
                 #{{ name: \"seven\", provider: #{{ command: #{{ {field}: \"echo 7\" }} }}, success: \"== 7\" }},\n\
                 #{{ name: \"healthy\", provider: #{{ check: #{{ cmd: \"true\" }} }}, success: \"== 1\" }},\n\
                 #{{ name: \"shown\", provider: #{{ command: #{{ {field}: \"echo 99\" }} }} }},\n\
                 ] }});\nprint(`verdict ${{r.verdict}} healthy ${{r.healthy}}`);\n"
            ),
        );
        // `shown` has neither `success` nor `failure`: every value it reads is a success.
        p.run("runbook m.rhai")
            .expect_code(0, field)
            .expect(field, "verdict success healthy true");
    }
}

// ------------------------------------------------------------------ the table, as a run sees it

/// The documented keys whose type is a list of values (`ask`, `auto`, `never`).
fn enum_rows() -> Vec<(String, Vec<String>)> {
    config_rows(&read("docs/configuration.md"))
        .into_iter()
        .filter_map(|r| {
            let choices = ticked(&r.ty);
            let plain = r.ty.replace(|c: char| c != '`' && c != ',' && c != ' ', "");
            // Only a cell that is nothing but backticked words: `a`, `b`, `c`.
            (choices.len() >= 2
                && r.ty.matches('`').count() == 2 * choices.len()
                && plain.len() == r.ty.len() - choices.iter().map(String::len).sum::<usize>())
            .then_some((r.key, choices))
        })
        .collect()
}

#[test]
fn every_key_documented_with_a_list_of_values_takes_each_and_refuses_others() {
    let rows = enum_rows();
    assert!(
        rows.iter().any(|(k, _)| k == "rollback.on_failure"),
        "{:?}",
        rows.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let p = Place::empty();
    p.file("one.rhai", "print(1);\n");
    // `script.*` keys need the script adapter's one required key beside them.
    p.file("script.yaml", "script:\n  deploy: ./deploy.sh {env}\n");
    let mut problems = Vec::new();
    for (key, choices) in rows {
        let config = if key.starts_with("script.") {
            " --config script.yaml"
        } else {
            ""
        };
        for c in &choices {
            let r = p.run(&format!("runbook check one.rhai{config} --set {key}={c}"));
            if r.code != 0 {
                problems.push(format!(
                    "`{key}={c}` (documented) is refused: {}",
                    r.stderr.trim()
                ));
            }
        }
        let r = p.run(&format!(
            "runbook check one.rhai{config} --set {key}=not-a-choice"
        ));
        if r.code != 2 || !r.stderr.contains(key.as_str()) {
            problems.push(format!(
                "`{key}=not-a-choice` (the docs list {choices:?}) exits {}, not 2 naming the key: {}{}",
                r.code,
                r.stdout.trim(),
                r.stderr.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn config_in_a_script_has_every_documented_key_with_its_default() {
    let mut leaves = BTreeMap::new();
    code_leaves(
        "",
        &serde_json::to_value(runbook::config::Config::default()).unwrap(),
        &mut leaves,
    );
    let rows = config_rows(&read("docs/configuration.md"));
    let mut script = String::new();
    for r in &rows {
        script.push_str(&format!(
            "print(`{0}\t${{config(\"{0}\", \"ABSENT\")}}`);\n",
            r.key
        ));
    }
    let p = Place::empty();
    p.file("show.rhai", &script);
    let r = p.run("runbook show.rhai");
    r.expect_code(0, "show.rhai");
    let shown: BTreeMap<&str, &str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let mut problems = Vec::new();
    for row in &rows {
        let Some(got) = shown.get(row.key.as_str()) else {
            problems.push(format!("`{}`: not printed", row.key));
            continue;
        };
        // A secret's values are never shown by config().
        if row.key == "secrets.values" {
            continue;
        }
        // Defaults the docs state in words, derived from other keys or the run.
        let leaf = |k: &str| match leaves.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => panic!("{k} has no default"),
        };
        let derived = match row.key.as_str() {
            "feature" => Some("show".to_string()), // the runbook's file name
            "kubernetes.host" => Some(leaf("kubernetes.service")), // "the service"
            "kubernetes.container" => Some(leaf("kubernetes.deployment")), // "the deployment's name"
            "triggers.inconclusive_limit" => Some(
                // "twice `monitoring.samples`"
                (2 * leaf("monitoring.samples").parse::<u64>().unwrap()).to_string(),
            ),
            "deployments_dir" => Some("deployments".to_string()),
            _ => None,
        };
        let literal = ticked(&row.default);
        let want = match leaves.get(&row.key) {
            _ if derived.is_some() => derived.unwrap(),
            // `script` and `local` are absent until configured: config() fills in the documented
            // defaults of their keys, and has () where there is none.
            None if row.key.starts_with("script.") || row.key.starts_with("local.") => {
                match literal.as_slice() {
                    [one] if row.default.trim() == format!("`{one}`") => one.clone(),
                    _ => "ABSENT".to_string(),
                }
            }
            None => {
                problems.push(format!("`{}`: not in Config::default()", row.key));
                continue;
            }
            Some(serde_json::Value::Null) => "ABSENT".to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Object(m)) if m.is_empty() => "#{}".to_string(),
            Some(v) => v.to_string(),
        };
        let same = *got == want
            || got.replace(' ', "") == want
            || got
                .parse::<f64>()
                .ok()
                .is_some_and(|g| want.parse::<f64>().ok() == Some(g));
        if !same {
            problems.push(format!(
                "config(\"{}\") is `{got}`, its default is `{want}`",
                row.key
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------ D: who acts on inconclusive

/// README, Analysis: `analyze` only returns an inconclusive verdict (unhealthy); it neither asks
/// nor rolls back, whatever `monitoring.on_inconclusive` says: the script (the shipped monitor,
/// here the runbook itself) decides.
#[test]
fn analyze_returns_an_inconclusive_window_and_leaves_the_decision_to_the_script() {
    let p = Place::empty();
    p.file("runbook.yaml", "monitoring:\n  on_inconclusive: rollback\n");
    p.file(
        "w.rhai",
        "on_rollback(\"undo\", \"touch undone\");\n\
         let r = analyze(#{ interval: \"10ms\", count: 2, metrics: [\n\
         #{ name: \"silent\", provider: #{ command: #{ cmd: \"true\" } }, success: \"== 1\" },\n\
         ] });\n\
         print(`verdict ${r.verdict} healthy ${r.healthy}`);\n\
         sh(\"touch went-on\");\n",
    );
    let r = p.run("runbook w.rhai");
    r.expect_code(0, "w.rhai")
        .expect("w.rhai", "verdict inconclusive healthy false");
    assert!(p.path().join("went-on").exists());
    assert!(
        !p.path().join("undone").exists(),
        "analyze rolled back on its own"
    );
    assert!(
        !r.all().contains("Roll back?"),
        "analyze asked: {}",
        r.all()
    );
}

/// The README's table of primitives and the catalogue (src/catalogue.rs, which the engine is held
/// to) name the same functions, both ways; and each call form the table shows has an arity the
/// catalogue lists for that function.
#[test]
fn the_readme_primitives_table_and_the_catalogue_name_the_same_functions() {
    let readme = read("README.md");
    let section = readme
        .split("## Primitives")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Primitives section");
    // `name(args)` forms in the first column of each table row.
    let mut documented: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row[1..].split(" | ").next().unwrap();
        for form in first.split('`').skip(1).step_by(2) {
            let Some((name, rest)) = form.split_once('(') else {
                continue;
            };
            let args = rest.rsplit_once(')').map(|(a, _)| a).unwrap_or("");
            // `[, opts]` and `[, #{id}]` are optional: both arities are shown.
            let required = args.split('[').next().unwrap();
            let count = |s: &str| {
                let s = s.trim().trim_start_matches(',').trim();
                if s.is_empty() {
                    0
                } else {
                    // Commas inside #{...} or `\|` alternatives are one argument.
                    let mut depth = 0;
                    let mut n = 1;
                    for c in s.chars() {
                        match c {
                            '{' | '(' | '[' => depth += 1,
                            '}' | ')' | ']' => depth -= 1,
                            ',' if depth == 0 => n += 1,
                            _ => {}
                        }
                    }
                    n
                }
            };
            let arities = documented.entry(name.trim().to_string()).or_default();
            arities.insert(count(required));
            if args.contains('[') {
                arities.insert(count(&args.replace(['[', ']'], "")));
            }
        }
    }
    let catalogue: BTreeMap<&str, BTreeSet<usize>> =
        runbook::catalogue::natives(runbook::catalogue::Scope::Everywhere)
            .map(|n| {
                let arities = n
                    .overloads
                    .iter()
                    .map(|o| {
                        let inner = o.split_once('(').unwrap().1.rsplit_once(')').unwrap().0;
                        inner.split(", ").filter(|p| !p.is_empty()).count()
                    })
                    .collect();
                (n.name, arities)
            })
            .collect();
    let mut problems = Vec::new();
    for name in catalogue.keys() {
        if !documented.contains_key(*name) {
            problems.push(format!(
                "`{name}` is a primitive the README's table leaves out"
            ));
        }
    }
    for (name, arities) in &documented {
        match catalogue.get(name.as_str()) {
            None if runbook::catalogue::LANGUAGE.contains(&name.as_str()) => {}
            None => problems.push(format!(
                "the README's table shows `{name}`, which is not a primitive"
            )),
            Some(known) => {
                for a in arities.difference(known) {
                    problems.push(format!(
                        "the README's table calls `{name}` with {a} argument(s); it takes {known:?}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's list of examples names every directory under examples/, and no other.
#[test]
fn the_readme_names_every_example_and_only_those() {
    let readme = read("README.md");
    let line = readme
        .lines()
        .position(|l| l.starts_with("- `examples/`:"))
        .expect("README lists the examples");
    let text: String = readme
        .lines()
        .skip(line)
        .take_while(|l| !l.is_empty())
        .collect();
    let named: BTreeSet<String> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.contains('/') && !w.contains('.'))
        .map(str::to_string)
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let present: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(named, present, "the README's examples against examples/");
}
