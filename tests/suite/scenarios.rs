//! The deploy runbook's shipped scenario suite (tests/scenarios: a project's runbook.yaml and its
//! tests/*.yaml) and `runbook test` around it: the suite passes; every scenario fails in the
//! opposite world, so no expectation is one that cannot fail; a rehearsal's journal is the same
//! on every run and in every checkout; a rehearsal runs no program, connects nowhere and writes
//! nothing outside its own directory; the JUnit report; bad scenario files, an unanswered prompt,
//! and `--filter`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use crate::support::BIN;

/// The shipped project: tests/scenarios/runbook.yaml and its scenarios in tests/scenarios/tests/.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// The shipped scenario files, sorted.
fn shipped_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shipped().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the shipped suite has {files:?}");
    files
}

/// `from` copied into `to`, without rehearsals an earlier `runbook test` left in the source tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "deployments" {
            continue;
        }
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the shipped project in `dir/rel`.
fn project_in(dir: &Path, rel: &str) -> PathBuf {
    let p = dir.join(rel);
    copy_dir(&shipped(), &p);
    p
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `runbook test ARGS` run in `dir`, with `env` on top of a clean environment.
fn runbook_test(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Ran {
    let mut cmd = Command::new(BIN);
    cmd.arg("test")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("RUNBOOK_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run runbook test");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Each scenario's result line, `✓ <name> (exit N, ...)` or `✗ ...`: name → (passed, run exit).
fn results(stdout: &str) -> BTreeMap<String, (bool, i32)> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let (passed, rest) = if let Some(r) = line.strip_prefix("✓ ") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("✗ ") {
            (false, r)
        } else {
            continue;
        };
        let (name, tail) = rest
            .rsplit_once(" (exit ")
            .unwrap_or_else(|| panic!("a result line without its exit: {line}"));
        let code = tail
            .split(',')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("a result line without its exit: {line}"));
        let earlier = out.insert(name.to_string(), (passed, code));
        assert!(earlier.is_none(), "two scenarios named `{name}`");
    }
    out
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(k: &str) -> Value {
    Value::String(k.into())
}

/// The mapping at `path` (made when missing).
fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Mapping {
    let mut v = v;
    for k in path {
        if !v.is_mapping() {
            *v = Value::Mapping(Mapping::new());
        }
        let m = v.as_mapping_mut().unwrap();
        v = m.entry(key(k)).or_insert(Value::Null);
    }
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    v.as_mapping_mut().unwrap()
}

fn series(values: &str) -> Value {
    serde_yaml::from_str(values).unwrap()
}

fn name_of(s: &Value) -> String {
    s["name"].as_str().unwrap().to_string()
}

fn exit_of(s: &Value) -> i32 {
    s["expect"]["exit"].as_i64().unwrap() as i32
}

/// A good scenario's world and answers for `strategy`: what a run needs to go all the way.
fn full(strategy: &str) -> Value {
    load(&shipped().join(format!("tests/{strategy}-good.yaml")))
}

/// The opposite worlds of a shipped scenario (its `expect` kept as it is), each with the run exit
/// it must then have: good and bad metrics swapped, the provider up instead of down (or down
/// instead of up), an approval instead of a decline. A scenario the table does not know fails
/// the test: every shipped scenario needs a way to fail.
fn opposites(file: &Path) -> Vec<(String, Value, i32)> {
    let stem = file.file_stem().unwrap().to_string_lossy().to_string();
    let s = load(file);
    let strategy = s["answers"]["strategy"]
        .as_str()
        .unwrap_or("canary")
        .to_string();
    let with_metrics = |error_rate: &str, response_time: &str| {
        let mut o = s.clone();
        at(&mut o, &["world", "metrics", "error_rate"]).insert(key("v2"), series(error_rate));
        at(&mut o, &["world", "metrics", "response_time"]).insert(key("v2"), series(response_time));
        o
    };
    // A decline flipped: the good world of its strategy, and the gate's answer a yes.
    let approved = |answer: &str, value: Value| {
        let mut o = s.clone();
        let good = full(&strategy);
        o["world"] = good["world"].clone();
        let answers = at(&mut o, &["answers"]);
        for (k, v) in good["answers"].as_mapping().unwrap() {
            answers.entry(k.clone()).or_insert(v.clone());
        }
        answers.insert(key(answer), value);
        o["approve"] = Value::Bool(true);
        o
    };
    let yes = Value::Bool(true);
    let out = if stem.ends_with("-good") || stem.ends_with("-provider-blip") {
        vec![
            ("bad metrics", with_metrics("[0.09]", "[130]"), 3),
            ("provider down", with_metrics("[down]", "[down]"), 5),
        ]
    } else if stem.contains("-bad")
        || stem.ends_with("-slow")
        || stem.ends_with("-no-data")
        || stem.ends_with("-provider-down")
    {
        vec![("good metrics", with_metrics("[0.003]", "[130]"), 0)]
    } else if stem.ends_with("-health-fails") {
        let mut o = s.clone();
        let failing = at(&mut o, &["world", "http"]).remove(key("GET *production-green*/health"));
        assert!(
            failing.is_some(),
            "{}: which health check fails?",
            file.display()
        );
        vec![("health passing", o, 0)]
    } else if stem == "provider-down-at-preflight" {
        vec![(
            "provider up",
            approved("strategy", Value::String(strategy.clone())),
            0,
        )]
    } else if stem == "decline-prerequisites" {
        let mut o = approved("strategy", Value::String(strategy.clone()));
        at(&mut o, &["answers"]).remove(key("prerequisites"));
        vec![("prerequisites met", o, 0)]
    } else if stem.ends_with("-decline-checklist") {
        let mut o = approved("pre-deployment-checklist", yes.clone());
        at(&mut o, &["answers"]).remove(key("continue-with-unchecked-items"));
        vec![("checklist complete", o, 0)]
    } else if stem.ends_with("-decline-approval") {
        vec![("approved", approved("approve-deployment", yes.clone()), 0)]
    } else if stem.ends_with("-decline-staging") {
        vec![(
            "staging signed off",
            approved(
                "staging-deployment-successful-proceed-to-production",
                yes.clone(),
            ),
            0,
        )]
    } else if stem.ends_with("-rollback-at-increase-traffic") {
        let mut o = s.clone();
        at(&mut o, &["answers"]).insert(key("increase-traffic"), Value::String("100".into()));
        vec![("complete rollout chosen", o, 0)]
    } else {
        panic!(
            "{}: no opposite world for this scenario: add one to `opposites` in tests/suite/scenarios.rs",
            file.display()
        )
    };
    out.into_iter()
        .map(|(what, mut o, exit)| {
            let name = format!("{} [opposite: {what}]", name_of(&s));
            o["name"] = Value::String(name.clone());
            if exit == 0 {
                // It only has to get through: shorter windows keep the module fast.
                at(&mut o, &["set"]).insert(key("monitoring.samples"), Value::Number(3.into()));
            }
            (format!("{stem}--{}", what.replace(' ', "-")), o, exit)
        })
        .collect()
}

/// A project fenced in: programs the runbook might run are sentinels that leave a mark (first on
/// PATH, and the project's own ./deploy.sh and ./scripts/*), every URL of its config points at a
/// loopback listener that counts connections, HOME and the XDG and temp directories are inside
/// the fence, and every file in it is compared before and after a rehearsal.
struct Fence {
    _dir: tempfile::TempDir,
    root: PathBuf,
    project: PathBuf,
    mark: PathBuf,
    connections: Arc<AtomicUsize>,
    env: Vec<(&'static str, String)>,
}

const SENTINELS: &[&str] = &[
    "npm", "curl", "wget", "kubectl", "helm", "docker", "git", "ssh", "sh", "bash", "node",
];

impl Fence {
    fn new() -> Fence {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let project = project_in(&root, "project");
        let mark = root.join("ran");
        let sentinel = |path: PathBuf| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"$0 $*\" >> '{}'\n", mark.display()),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        for p in SENTINELS {
            sentinel(root.join("bin").join(p));
        }
        for p in [
            "deploy.sh",
            "scripts/switch-traffic.sh",
            "scripts/set-weight.sh",
            "scripts/feature-flag.sh",
            "scripts/remove.sh",
            "scripts/health-check.sh",
        ] {
            sentinel(project.join(p));
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at_port = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for _ in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        let config_file = project.join("runbook.yaml");
        let mut config = load(&config_file);
        at(&mut config, &["monitoring"]).insert(key("prometheus"), Value::String(at_port.clone()));
        at(&mut config, &["script"]).insert(
            key("health"),
            Value::String(format!("{at_port}/{{env}}/health")),
        );
        at(&mut config, &["notify", "team"])
            .insert(key("url"), Value::String(format!("{at_port}/hook")));
        std::fs::write(&config_file, serde_yaml::to_string(&config).unwrap()).unwrap();
        for d in ["home", "tmp", "state", "config", "cache"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let env = vec![
            (
                "PATH",
                format!(
                    "{}:{}",
                    root.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("HOME", root.join("home").display().to_string()),
            ("TMPDIR", root.join("tmp").display().to_string()),
            ("XDG_STATE_HOME", root.join("state").display().to_string()),
            ("XDG_CONFIG_HOME", root.join("config").display().to_string()),
            ("XDG_CACHE_HOME", root.join("cache").display().to_string()),
        ];
        Fence {
            _dir: dir,
            root,
            project,
            mark,
            connections,
            env,
        }
    }

    /// Every file and directory in the fence but the rehearsals' own, with its contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let rehearsals = self.project.join("deployments").join("rehearsals");
        let mut out = BTreeMap::new();
        let mut todo = vec![self.root.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.starts_with(&rehearsals) {
                    continue;
                }
                let rel = p.strip_prefix(&self.root).unwrap().to_path_buf();
                if p.is_dir() {
                    // The directories on the way to the rehearsals are made by the first one.
                    if !rehearsals.starts_with(&p) {
                        out.insert(rel, None);
                    }
                    todo.push(p);
                } else {
                    out.insert(rel, Some(std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    /// `runbook test ARGS` in `cwd`; fails the test if the rehearsal ran a program, connected
    /// to a URL of the config, or changed anything outside its directory.
    fn run(&self, cwd: &Path, args: &[&str]) -> Ran {
        let before = self.snapshot();
        for seen in [
            "project/runbook.yaml",
            "project/deploy.sh",
            "bin/npm",
            "home",
        ] {
            assert!(
                before.contains_key(Path::new(seen)),
                "the snapshot misses {seen}"
            );
        }
        let ran = runbook_test(cwd, args, &self.env);
        assert!(
            !self.mark.exists(),
            "a rehearsal ran a program:\n{}\n{ran}",
            std::fs::read_to_string(&self.mark).unwrap_or_default()
        );
        assert_eq!(
            self.connections.load(Ordering::SeqCst),
            0,
            "a rehearsal connected to a URL of its config\n{ran}"
        );
        let after = self.snapshot();
        let changed: Vec<&PathBuf> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        assert!(
            changed.is_empty(),
            "a rehearsal wrote outside deployments/rehearsals/: {changed:?}\n{ran}"
        );
        let rehearsed = std::fs::read_dir(self.project.join("deployments/rehearsals"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(rehearsed > 0, "no rehearsal directory was written\n{ran}");
        ran
    }
}

#[test]
fn the_shipped_suite_passes_and_touches_nothing_outside_its_rehearsals() {
    let fence = Fence::new();
    // As `runbook test tests/scenarios` from the repository: a project directory is its tests/.
    let ran = fence.run(&fence.root, &["project"]);
    let names: Vec<String> = shipped_files().iter().map(|f| name_of(&load(f))).collect();
    let got = results(&ran.stdout);
    let failed: Vec<&String> = got.iter().filter(|(_, r)| !r.0).map(|(n, _)| n).collect();
    assert!(failed.is_empty(), "failed: {failed:?}\n{ran}");
    for (f, n) in shipped_files().iter().zip(&names) {
        let (_, code) = got
            .get(n)
            .unwrap_or_else(|| panic!("{} was not rehearsed\n{ran}", f.display()));
        assert_eq!(*code, exit_of(&load(f)), "{n}");
    }
    assert_eq!(got.len(), names.len(), "{ran}");
    assert!(
        ran.stdout.contains(&format!(
            "{0} scenario(s): {0} passed, 0 failed",
            names.len()
        )),
        "{ran}"
    );
    assert_eq!(ran.code, 0, "{ran}");
}

#[test]
fn every_shipped_scenario_fails_in_its_opposite_world() {
    let fence = Fence::new();
    let tests = fence.project.join("tests");
    let mut want = BTreeMap::new();
    for f in shipped_files() {
        let original = load(&f);
        std::fs::remove_file(tests.join(f.file_name().unwrap())).unwrap();
        for (stem, o, exit) in opposites(&f) {
            assert_ne!(
                exit,
                exit_of(&original),
                "{}: the opposite world must end otherwise",
                f.display()
            );
            std::fs::write(
                tests.join(format!("{stem}.yaml")),
                serde_yaml::to_string(&o).unwrap(),
            )
            .unwrap();
            want.insert(name_of(&o), (exit_of(&original), exit));
        }
    }
    let ran = fence.run(&fence.project, &["tests"]);
    assert_eq!(ran.code, 1, "{ran}");
    let got = results(&ran.stdout);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{ran}"
    );
    for (name, (expected, opposite_exit)) in &want {
        let (passed, code) = got[name];
        assert!(!passed, "`{name}` passed in its opposite world\n{ran}");
        assert_ne!(code, *expected, "{name}\n{ran}");
        assert_eq!(
            code, *opposite_exit,
            "`{name}`: the run in the opposite world\n{ran}"
        );
    }
    assert!(
        !ran.stdout.contains("scenario error"),
        "an opposite world the run could not go through:\n{ran}"
    );
}

/// Every journal.jsonl under `project`'s rehearsals: path from there → contents.
fn journals(project: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = project.join("deployments/rehearsals");
    let mut out = BTreeMap::new();
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n == "journal.jsonl") {
                out.insert(
                    p.strip_prefix(&root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn a_rehearsal_journals_the_same_bytes_every_time_and_in_every_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let a = project_in(dir.path(), "a");
    let b = project_in(dir.path(), "elsewhere/deeper/b");
    let args = [
        "tests/canary-bad-at-25-percent.yaml",
        "tests/rolling-bad-at-batch-2.yaml",
    ];
    let first = runbook_test(&a, &args, &[]);
    assert_eq!(first.code, 0, "{first}");
    let once = journals(&a);
    assert_eq!(once.len(), 2, "{once:?}");
    let second = runbook_test(&a, &args, &[]);
    assert_eq!(second.code, 0, "{second}");
    let other = runbook_test(&b, &args, &[]);
    assert_eq!(other.code, 0, "{other}");
    for (path, bytes) in &once {
        assert!(bytes.len() > 1000, "{}: a short journal", path.display());
        assert!(
            journals(&a)[path] == *bytes,
            "{}: another run wrote another journal",
            path.display()
        );
        assert!(
            journals(&b)[path] == *bytes,
            "{}: a rehearsal in another directory wrote another journal",
            path.display()
        );
    }
}

/// A project with the shipped runbook.yaml and `scenarios` (file name → text) in tests/.
fn project_with(scenarios: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    std::fs::copy(
        shipped().join("runbook.yaml"),
        dir.path().join("runbook.yaml"),
    )
    .unwrap();
    for (name, text) in scenarios {
        std::fs::write(dir.path().join("tests").join(name), text).unwrap();
    }
    dir
}

fn shipped_text(name: &str) -> String {
    std::fs::read_to_string(shipped().join("tests").join(name)).unwrap()
}

#[test]
fn junit_has_a_testcase_per_scenario_and_a_failure_for_the_failing_one() {
    let passing = shipped_text("canary-decline-approval.yaml");
    let failing = shipped_text("rolling-decline-approval.yaml").replace("exit: 4", "exit: 0");
    assert_ne!(failing, shipped_text("rolling-decline-approval.yaml"));
    let dir = project_with(&[("a.yaml", passing.clone()), ("b.yaml", failing.clone())]);
    let ran = runbook_test(dir.path(), &["--junit", "reports/junit.xml"], &[]);
    assert_eq!(ran.code, 1, "{ran}");
    let xml = std::fs::read_to_string(dir.path().join("reports/junit.xml")).unwrap();

    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(&xml);
    reader.config_mut().trim_text(true);
    let mut cases: Vec<(String, bool)> = Vec::new();
    let mut suite_counts = None;
    let attr = |e: &quick_xml::events::BytesStart, k: &str| -> Option<String> {
        e.try_get_attribute(k)
            .unwrap()
            .map(|a| a.unescape_value().unwrap().into_owned())
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.name().as_ref() {
                b"testsuite" => {
                    suite_counts = Some((attr(&e, "tests"), attr(&e, "failures")));
                }
                b"testcase" => cases.push((attr(&e, "name").unwrap(), false)),
                b"failure" => cases.last_mut().expect("a failure in a testcase").1 = true,
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("the JUnit report is not XML: {e}\n{xml}"),
        }
    }
    let name = |text: &str| name_of(&serde_yaml::from_str(text).unwrap());
    cases.sort();
    let mut want = vec![(name(&passing), false), (name(&failing), true)];
    want.sort();
    assert_eq!(cases, want, "{xml}");
    assert_eq!(
        suite_counts,
        Some((Some("2".into()), Some("1".into()))),
        "{xml}"
    );
}

#[test]
fn a_bad_scenario_file_is_refused_at_its_line_and_nothing_runs() {
    let good = shipped_text("canary-decline-approval.yaml");
    let dir = project_with(&[
        ("good.yaml", good),
        (
            "unknown.yaml",
            "name: x\nrunbook: deploy\nexpekt: { exit: 0 }\n".into(),
        ),
        (
            "after.yaml",
            "name: y\nrunbook: deploy\nworld:\n  commands:\n    \"./deploy.sh *\": { exit: 0, after: soon }\nexpect: { exit: 0 }\n"
                .into(),
        ),
    ]);
    let ran = runbook_test(dir.path(), &[], &[]);
    assert_eq!(ran.code, 2, "{ran}");
    for want in [
        "error: scenario `tests/unknown.yaml`: unknown field `expekt`",
        " --> tests/unknown.yaml:3:1",
        "error: scenario `tests/after.yaml`: world `./deploy.sh *`: `after: soon` is not a duration",
        " --> tests/after.yaml:5:",
        "2 of 3 scenario file(s) cannot be run as written: nothing was rehearsed",
    ] {
        assert!(ran.stderr.contains(want), "missing `{want}`\n{ran}");
    }
    assert!(results(&ran.stdout).is_empty(), "{ran}");
    assert!(!dir.path().join("deployments").exists(), "{ran}");
}

#[test]
fn a_prompt_nobody_answers_is_a_scenario_error_naming_it() {
    let text = shipped_text("canary-decline-approval.yaml").replace("  strategy: canary\n", "");
    let dir = project_with(&[("unanswered.yaml", text.clone())]);
    let ran = runbook_test(dir.path(), &[], &[]);
    assert_eq!(ran.code, 1, "{ran}");
    let name = name_of(&serde_yaml::from_str(&text).unwrap());
    assert!(!results(&ran.stdout)[&name].0, "{ran}");
    assert!(
        ran.stdout.contains(
            "scenario error: the choice `strategy` (\"How would you like to deploy this feature?\") is not answered: add `strategy: "
        ),
        "{ran}"
    );
}

#[test]
fn filter_selects_scenarios_by_name_or_file() {
    let files = [
        "blue-green-decline-approval.yaml",
        "canary-decline-approval.yaml",
        "rolling-decline-checklist.yaml",
    ];
    let dir = project_with(&files.map(|f| (f, shipped_text(f))));
    let names: Vec<String> = files
        .iter()
        .map(|f| name_of(&serde_yaml::from_str(&shipped_text(f)).unwrap()))
        .collect();

    // By name: only "rolling, declining at the pre-deployment checklist ..." says "checklist".
    let ran = runbook_test(dir.path(), &["--filter", "pre-deployment checklist"], &[]);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        results(&ran.stdout).keys().collect::<Vec<_>>(),
        [&names[2]],
        "{ran}"
    );
    assert!(
        ran.stdout.contains("1 scenario(s): 1 passed, 0 failed"),
        "{ran}"
    );

    // By file: two files say "decline-approval".
    let ran = runbook_test(dir.path(), &["--filter", "decline-approval"], &[]);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        results(&ran.stdout).keys().collect::<Vec<_>>(),
        [&names[0], &names[1]],
        "{ran}"
    );

    let ran = runbook_test(dir.path(), &["--filter", "no-such-scenario"], &[]);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(
        ran.stderr
            .contains("no scenario's name or file contains `no-such-scenario` (of 3 found)"),
        "{ran}"
    );
}
