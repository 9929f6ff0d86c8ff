//! Exit codes, runbook lookup, and the small commands (check, init, help, the JSON log).

use super::{only_run_dir, wait_for_journal};
use crate::support;
use crate::support::Test;

#[test]
fn exit_code_0_on_completion_and_a_summary() {
    let out = Test::new().script("sh(\"true\");").run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ true\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
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
    local.expect_status(0)
        .expect_stdout_exact("▶ runbooks/preflight.rhai — feature `preflight`\n  run directory: deployments/<date>-preflight\nlocal preflight\n✅ Run completed.\n  artifacts in deployments/<date>-preflight: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let list = Test::new()
        .file(
            "runbooks/preflight.rhai",
            "// Our own preflight.\nprint(1);\n",
        )
        .args(&["list"])
        .run();
    // The shipped runbooks' descriptions are theirs to change: the local one's line is pinned.
    list.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "NAME       SOURCE                                    DESCRIPTION",
            "preflight  runbooks/preflight.rhai (shadows shipped)  Our own preflight.",
        ]);
}

#[test]
fn an_unknown_runbook_name_lists_where_it_looked() {
    let out = Test::new().args(&["deplyo"]).run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: no runbook named `deplyo`\n  searched: runbooks/\n  searched: the runbooks shipped in this binary\n  help: did you mean `deploy`?\n  help: `runbook list` shows the runbooks found\n");
}

#[test]
fn check_compiles_without_running_and_reports_errors_with_exit_2() {
    let t = Test::new().file("helpers.rhai", "fn f() { 1 }").file(
        "deploy.rhai",
        "import \"helpers\" as h;\nsh(\"touch marker\");\n",
    );
    let out = t.args(&["check", "deploy.rhai"]).run();
    out.expect_status(0)
        .expect_stdout_exact("ok: deploy.rhai compiles with 1 module(s); config defaults (no runbook.yaml); answers not given\n")
        .expect_stderr_exact("");
    assert!(!out.dir.join("marker").exists());
    assert!(!out.dir.join("deployments").exists());
    let bad = Test::new()
        .file("deploy.rhai", "let x = ;\n")
        .args(&["check", "deploy.rhai"])
        .run();
    bad.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact(
            "error: Unexpected ';'\n --> deploy.rhai:1:9\n  |\n1 | let x = ;\n  |         ^\n",
        );
}

#[test]
fn init_writes_a_starter_config_that_loads() {
    let out = Test::new().args(&["init"]).run();
    out.expect_status(0)
        .expect_stdout_exact("wrote ./runbook.yaml\nwrote ./runbooks/deploy.rhai\nwrote ./runbooks/incident.rhai\nwrote ./runbooks/preflight.rhai\nwrote ./runbooks/rollback.rhai\nwrote ./tests/good-release-promoted.yaml\nwrote ./tests/bad-release-rolled-back.yaml\nNext: edit ./runbook.yaml, then `runbook list`; `runbook test` rehearses the deploy runbook (tests/).\n")
        .expect_stderr_exact("");
    let cfg = std::fs::read_to_string(out.dir.join("runbook.yaml")).unwrap();
    assert!(cfg.contains("# notify:"));
    let check = Test::new().file("runbook.yaml", &cfg).args(&["list"]).run();
    check.expect_status(0).expect_stderr_exact("");
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
    full.expect_status(0)
        .expect_stdout_exact("ok: <shipped>/runbooks/preflight.rhai compiles with 1 module(s); config `full.yaml` is valid; answers not given\n")
        .expect_stderr_exact("warning: the secret `registry_password` is shorter than 4 characters, so it is not redacted (it would mask ordinary text everywhere): use a longer one\n");
    let second = Test::new()
        .file("runbook.yaml", "feature: x\n")
        .args(&["init"])
        .run();
    second.expect_status(0)
        .expect_stdout_exact("skip ./runbook.yaml (exists; --force overwrites)\nwrote ./runbooks/deploy.rhai\nwrote ./runbooks/incident.rhai\nwrote ./runbooks/preflight.rhai\nwrote ./runbooks/rollback.rhai\nwrote ./tests/good-release-promoted.yaml\nwrote ./tests/bad-release-rolled-back.yaml\n")
        .expect_stderr_exact("");
}

#[test]
fn help_has_examples_and_completions_print() {
    let out = Test::new().args(&["--help"]).run();
    // The options are clap's to lay out: the examples and the exit codes are ours, pinned.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "Usage: runbook [OPTIONS] [FILE_OR_NAME]",
            "Examples:",
            "  runbook demo --unattended                    a whole canary deploy on a local fleet",
            "  runbook deploy.rhai                          run the deploy runbook (yours, or the shipped one)",
            "  runbook deploy --set feature=checkout        name the feature for this run",
            "  runbook deploy --answers answers.yaml        answer prompts from a file (CI, pipes)",
            "  runbook deploy --dry-run --answers answers.yaml --approve",
            "                                               show every command that would run; change nothing",
            "  runbook check deploy.rhai                    compile a runbook and its imports, validate config",
            "  runbook list                                 the runbooks found and where each comes from",
            "  runbook init                                 a starter runbook.yaml + the shipped runbooks",
            "",
            "Exit codes:",
            "  0 completed    1 failed (nothing to undo, or the rollback failed or was refused)",
            "  2 usage, config, answers or script error (found before anything changed)",
            "  3 rolled back cleanly: a verdict, a failed step, a person or the script chose it",
            "  4 declined at a gate",
            "  5 rolled back cleanly after the run itself broke (runbook, stdlib or answer error,",
            "    monitoring that could not measure)",
            "  130 interrupted",
        ]);
    let check = Test::new().args(&["check", "--help"]).run();
    check
        .expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "Usage: runbook check [OPTIONS] <FILE_OR_NAME>",
            "Examples:",
            "  runbook check deploy.rhai",
            "  runbook check deploy --answers answers.yaml --set feature=checkout",
        ]);
    for (shell, first) in [
        ("bash", "_runbook() {"),
        ("zsh", "#compdef runbook"),
        ("fish", "function __fish_runbook_global_optspecs"),
    ] {
        let c = Test::new().args(&["completions", shell]).run();
        c.expect_status(0)
            .expect_stderr_exact("")
            .expect_stdout_lines(&[first]);
    }
    let bad = Test::new().args(&["--colour", "x"]).run();
    bad.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: unexpected argument '--colour' found\n\n  tip: a similar argument exists: '--color'\n\nUsage: runbook --color <COLOR> [FILE_OR_NAME]\n\nFor more information, try '--help'.\n");
}

#[test]
fn json_log_format_prints_events() {
    let out = Test::new()
        .script("sh(\"true\");")
        .args(&["--log-format", "json"])
        .run();
    out.expect_status(0).expect_stderr_exact("");
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
