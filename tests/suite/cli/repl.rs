//! `runbook repl`: at a terminal and from a pipe.

use crate::support;
use crate::support::{pty, Test};

/// Wait for the prompt before typing, as a person would. The prompt also shows while the line
/// editor redraws a finished multi-line entry, and keys typed before it reads the next line are
/// not kept: so wait a moment after it too.
fn prompt(p: &mut rexpect::session::PtySession) {
    p.exp_string("runbook> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
}

#[test]
fn repl_at_a_terminal_multiline_completion_ctrl_c_errors_and_history() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    // A function over several lines: the parser says when it is complete.
    p.send_line("fn double(x) {").unwrap();
    p.send_line("  x * 2").unwrap();
    p.send_line("}").unwrap();
    prompt(&mut p);
    p.send_line("double(21)").unwrap();
    p.exp_string("=> 42").unwrap();
    prompt(&mut p);
    // An error is shown and the session goes on.
    p.send_line("double(").unwrap();
    p.send_line(")").unwrap();
    p.exp_string("error:").unwrap();
    prompt(&mut p);
    p.send_line("let y = double(5);").unwrap();
    prompt(&mut p);
    p.send_line("y").unwrap();
    p.exp_string("=> 10").unwrap();
    prompt(&mut p);
    // Tab completes a primitive.
    p.send("check_al").unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string("check_all").unwrap();
    // Ctrl-C clears the line, and does not leave.
    p.send_control('c').unwrap();
    prompt(&mut p);
    p.send_line("1 + 1").unwrap();
    p.exp_string("=> 2").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();

    // The history survives a restart (and is per project, under XDG_STATE_HOME).
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line(":history").unwrap();
    p.exp_string("double(21)").unwrap();
    p.exp_string("let y = double(5);").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn repl_history_is_redacted() {
    let t = Test::new().file(
        "runbook.yaml",
        "secrets:\n  values:\n    token: sup3r-secret-value\n",
    );
    let mut p = pty(&t, &["repl"]);
    p.exp_string("runbook> ").unwrap();
    p.send_line("let t = \"sup3r-secret-value\";").unwrap();
    p.exp_string("runbook> ").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let dir = t.path().join("state/runbook");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let history = std::fs::read_to_string(file).unwrap();
    assert!(history.contains("let t = \"[REDACTED]\";"), "{history}");
    assert!(!history.contains("sup3r"), "{history}");
}

#[test]
fn repl_from_a_pipe_attaches_to_a_deployment_rolls_it_back_and_writes_the_incident_report() {
    let (rt, fleet) = support::fleet(&[]);
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
         monitoring:\n  interval: 300ms\n  samples: 2\n  min_requests: 5\nnotify:\n  oncall: {{ type: file, path: oncall.jsonl }}\n",
        fleet.url()
    );
    let deploy = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", "strategy: blue-green\n")
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    deploy.code(0);
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v2"), Some(&50), "{split:?}");

    // `bogus()` fails: from a pipe, any failed line makes exit 1.
    let out = deploy
        .again()
        .args(&["repl", "--last"])
        .stdin(
            "incident(\"checkout errors\", \"high\")\nlet s = status();\ns.strategy\nbogus()\nrollback()\npage_oncall(\"rolled back checkout\")\n\
             resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back from the REPL\", \"canary analysis on error rate\")\n:quit\n",
        )
        .run();
    // The times of the deployment's last traffic change and verdict vary: the rest is pinned.
    out.expect_status(1)
        .expect_stdout_like(
            "=> incident <date>-incident-1 open: checkout errors (high); the session's commands and effects go into its timeline; resolve() writes the report\n\
             deployment deployments/<date>-checkout: completed (Blue-Green Deployment)\n  \
             live: v2 (v2 100%) since [..]\n  \
             last verdict: success (v2): every metric within its limits after [..] measurement(s), at [..]\n  \
             undo steps standing: 1 (restore v1): rollback() runs them\n  \
             journal: intact\n\
             => Blue-Green Deployment\n\n\
             ━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\n\
             Rolling back: rolled back from the REPL\n\
             ↩ restore v1 (local::restore(\"v1\", 2))\n  \
             ✓ restore v1\n\
             Rollback complete: 1 step(s) undone.\n\
             => true\n  \
             ✉ oncall: rolled back checkout\n\
             => true\n\
             => incident resolved; report: deployments/<date>-incident-1/incident-report.md\n",
        )
        .expect_stderr_exact(
            "runbook repl\n  \
             journal: deployments/<date>-repl\n  \
             attached to deployments/<date>-checkout: status(), rollback(), metrics()\n  \
             live: v2, from the deployment's journal\n  \
             :help for the primitives, :quit or Ctrl-D to leave\n\
             runbook> incident(\"checkout errors\", \"high\")\n\
             runbook> let s = status();\n\
             runbook> s.strategy\n\
             runbook> bogus()\n\
             error: no function `bogus`\n --> <repl>:1:1\n  |\n1 | bogus()\n  | ^\n\
             runbook> rollback()\n\
             runbook> page_oncall(\"rolled back checkout\")\n\
             runbook> resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back from the REPL\", \"canary analysis on error rate\")\n\
             runbook> :quit\n\
             1 of 7 lines failed: exit 1\n",
        );

    // The traffic really moved back.
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v1"), Some(&50), "{split:?}");

    let reports: Vec<std::path::PathBuf> = std::fs::read_dir(out.dir.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path().join("incident-report.md"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(reports.len(), 1, "{}", out.describe());
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    let order = [
        "> let s = status();",
        "> s.strategy",
        "= Blue-Green Deployment",
        "> bogus()",
        "! no function `bogus`",
        "> rollback()",
        "= true",
        "> page_oncall(",
    ];
    let mut at = 0;
    for item in order {
        let found = report[at..]
            .find(item)
            .unwrap_or_else(|| panic!("{item:?} missing or out of order in\n{report}"));
        at += found + item.len();
    }
    assert!(
        report.contains("effect undo `undo: restore v1`: ok"),
        "{report}"
    );
    assert!(report.contains("## Root cause\n\nbad release"), "{report}");
    assert!(
        report.contains("## Prevention measures\n\ncanary analysis on error rate"),
        "{report}"
    );
    // The deployment's own journal records the rollback too.
    let dep = deploy_dir(&out.dir);
    let journal = std::fs::read_to_string(dep.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"type\":\"undo.external\""), "{journal}");
    fleet.stop();
}

fn deploy_dir(root: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(root.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("-checkout")
        })
        .unwrap()
}
