//! Exit codes, runbook lookup, and the small commands (check, init, help, the JSON log).

use super::{only_run_dir, wait_for_journal};
use crate::support;
use crate::support::Test;

#[test]
fn exit_code_0_on_completion_and_a_summary() {
    let out = Test::new().script("sh(\"true\");").run();
    out.code(0);
    assert!(out.stdout.contains("✅ Run completed."), "{}", out.stdout);
    let end = &out.records("run.end")[0];
    assert_eq!(end["outcome"], "completed");
    assert_eq!(end["exit_code"], 0);
}

#[test]
fn exit_code_130_on_sigterm_with_the_journal_complete() {
    let t = Test::new()
        .script("on_rollback(\"u\", \"true\");\nsh(\"(sleep 30; touch orphan-130) & sleep 30\");\nsh(\"touch after\");\n");
    let mut child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the command is running (its intent is journaled).
    wait_for_journal(t.path(), "sleep 30");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!t.path().join("after").exists());
    let dir = only_run_dir(t.path());
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "interrupted");
    assert!(
        journal.contains("command `(sleep 30; touch orphan-130) & sleep 30` was interrupted"),
        "the command's result records the interrupt:\n{journal}"
    );
    // The command's background child went with it: no orphan is left to act later.
    let p = std::process::Command::new("pgrep")
        .args(["-f", "touch orphan-130"])
        .output()
        .expect("pgrep (procps)");
    assert!(
        p.stdout.is_empty(),
        "an orphan survived: {}",
        String::from_utf8_lossy(&p.stdout)
    );
    assert!(std::fs::read_to_string(dir.join("post-mortem.md"))
        .unwrap()
        .contains("- Outcome: interrupted"));
}

#[test]
fn the_shipped_runbooks_are_found_by_name_and_a_local_file_shadows_them() {
    let local = Test::new()
        .file(
            "runbooks/preflight.rhai",
            "// Our own preflight.\nprint(\"local preflight\");\n",
        )
        .args(&["preflight"])
        .run();
    local.code(0);
    assert!(local.stdout.contains("local preflight"), "{}", local.stdout);
    let list = Test::new()
        .file(
            "runbooks/preflight.rhai",
            "// Our own preflight.\nprint(1);\n",
        )
        .args(&["list"])
        .run();
    list.code(0);
    assert!(
        list.stdout
            .contains("preflight  runbooks/preflight.rhai (shadows shipped)  Our own preflight."),
        "{}",
        list.stdout
    );
}

#[test]
fn an_unknown_runbook_name_lists_where_it_looked() {
    let out = Test::new().args(&["deplyo"]).run();
    out.code(2);
    assert!(out.stderr.starts_with("error: no runbook named `deplyo`\n  searched: runbooks/\n  searched: the runbooks shipped in this binary\n"), "{}", out.stderr);
}

#[test]
fn check_compiles_without_running_and_reports_errors_with_exit_2() {
    let t = Test::new().file("helpers.rhai", "fn f() { 1 }").file(
        "deploy.rhai",
        "import \"helpers\" as h;\nsh(\"touch marker\");\n",
    );
    let out = t.args(&["check", "deploy.rhai"]).run();
    out.code(0);
    assert_eq!(out.stdout, "ok: deploy.rhai compiles with 1 module(s); config defaults (no runbook.yaml); answers not given\n");
    assert!(!out.dir.join("marker").exists());
    assert!(!out.dir.join("deployments").exists());
    let bad = Test::new()
        .file("deploy.rhai", "let x = ;\n")
        .args(&["check", "deploy.rhai"])
        .run();
    bad.code(2);
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);
    assert!(
        bad.stderr.contains(" --> deploy.rhai:1:9\n"),
        "{}",
        bad.stderr
    );
}

#[test]
fn init_writes_a_starter_config_that_loads() {
    let out = Test::new().args(&["init"]).run();
    out.code(0);
    let cfg = std::fs::read_to_string(out.dir.join("runbook.yaml")).unwrap();
    assert!(cfg.contains("# notify:"));
    let check = Test::new().file("runbook.yaml", &cfg).args(&["list"]).run();
    check.code(0);
    // Every key the starter shows, uncommented, is a valid config: the starter tells the truth.
    let keys = support::documented_keys(&cfg);
    assert!(
        keys.contains("script:\n") && keys.contains("  deploy: ./deploy.sh {env}\n"),
        "{keys}"
    );
    let full = Test::new()
        .file("full.yaml", &keys)
        .args(&["check", "preflight", "--config", "full.yaml"])
        .run();
    full.code(0);
    let second = Test::new()
        .file("runbook.yaml", "feature: x\n")
        .args(&["init"])
        .run();
    second.code(0);
    assert!(
        second
            .stdout
            .contains("skip ./runbook.yaml (exists; --force overwrites)"),
        "{}",
        second.stdout
    );
}

#[test]
fn help_has_examples_and_completions_print() {
    let out = Test::new().args(&["--help"]).run();
    out.code(0);
    assert!(
        out.stdout
            .contains("Examples:\n  runbook demo --unattended "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Exit codes:"), "{}", out.stdout);
    let check = Test::new().args(&["check", "--help"]).run();
    check.code(0);
    assert!(
        check
            .stdout
            .contains("Examples:\n  runbook check deploy.rhai"),
        "{}",
        check.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = Test::new().args(&["completions", shell]).run();
        c.code(0);
        assert!(c.stdout.contains("runbook"), "{shell}");
    }
    let bad = Test::new().args(&["--colour", "x"]).run();
    bad.code(2);
}

#[test]
fn json_log_format_prints_events() {
    let out = Test::new()
        .script("sh(\"true\");")
        .args(&["--log-format", "json"])
        .run();
    out.code(0);
    // Every line is a journal record, as it was written.
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.first().unwrap()["type"], "run.start");
    assert!(records
        .iter()
        .any(|r| r["type"] == "effect.result" && r["kind"] == "sh" && r["ok"] == true));
    let last = records.last().unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "completed");
}
