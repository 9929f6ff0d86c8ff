//! The incident REPL (issue 12): the real binary, at a pseudo-terminal where a person would be,
//! and from a pipe.

use crate::support;

use crate::support::{pty, Output, Test};

/// Wait for the prompt before typing, as a person would.
fn prompt(p: &mut rexpect::session::PtySession) {
    p.exp_string("runbook> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
}

/// Wait for a question's text, then a moment, then answer it.
fn answer(p: &mut rexpect::session::PtySession, question: &str, text: &str) {
    p.exp_string(question).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    p.send_line(text).unwrap();
}

#[test]
fn repl_after_a_prompt_every_command_typed_runs() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line("input(\"x\", \"d\")").unwrap();
    answer(&mut p, "x [d]:", "alice");
    p.exp_string("=> alice").unwrap();
    prompt(&mut p);
    p.send_line("1+1").unwrap();
    p.exp_string("=> 2").unwrap();
    prompt(&mut p);
    p.send_line("2+2").unwrap();
    p.exp_string("=> 4").unwrap();
    prompt(&mut p);
    p.send_line("3+3").unwrap();
    p.exp_string("=> 6").unwrap();
    prompt(&mut p);
    // And a second prompt still gets exactly what is typed at it.
    p.send_line("confirm(\"sure?\")").unwrap();
    answer(&mut p, "sure? (y/n):", "y");
    p.exp_string("=> true").unwrap();
    prompt(&mut p);
    p.send_line("4+4").unwrap();
    p.exp_string("=> 8").unwrap();
    prompt(&mut p);
    // Ctrl-C at a question stops the line; the next command still runs.
    p.send_line("input(\"why\", \"\")").unwrap();
    p.exp_string("why:").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    p.send_control('c').unwrap();
    p.exp_string("interrupted").unwrap();
    prompt(&mut p);
    p.send_line("5+5").unwrap();
    p.exp_string("=> 10").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

/// Keys typed ahead of a question (a fast typist, `tmux send-keys`) answer it in order, and the
/// lines after run in turn: none is lost (found by the new-team trial: the answer and the lines
/// after it were dropped, the session left waiting at the question).
#[test]
fn repl_keys_typed_ahead_answer_the_question_in_order_and_none_is_lost() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send("let b = confirm(\"Again?\")\rn\rprint(`b=${b}`)\rsh(\"echo third\")\r")
        .unwrap();
    p.flush().unwrap();
    p.exp_string("b=false").unwrap();
    p.exp_string("third").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let journal = repl_journal(t.path());
    let inputs: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["type"] == "repl.input")
        .map(|r| r["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        inputs,
        [
            "let b = confirm(\"Again?\")",
            "print(`b=${b}`)",
            "sh(\"echo third\")",
        ],
        "{journal}"
    );
}

/// Lines pasted at once (a bracketed paste) run one statement at a time, and a question one of
/// them asks is answered at the terminal, never by a later line of the paste: the pasted `n`
/// runs as a command after the person's `y`.
#[test]
fn repl_a_pasted_line_is_a_command_never_an_answer() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send("\x1b[200~let b = confirm(\"Again?\")\rn\rprint(`b=${b}`)\x1b[201~\r")
        .unwrap();
    p.flush().unwrap();
    answer(&mut p, "Again? (y/n):", "y");
    p.exp_string("variable `n` is not defined").unwrap();
    p.exp_string("b=true").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn repl_text_typed_as_an_answer_is_never_run_as_a_command() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line("incident(\"checkout errors\", \"high\")")
        .unwrap();
    prompt(&mut p);
    p.send_line("let n = input(\"first\", \"\");").unwrap();
    answer(&mut p, "first:", "one");
    prompt(&mut p);
    p.send_line("n").unwrap();
    p.exp_string("=> one").unwrap();
    prompt(&mut p);
    p.send_line("resolve()").unwrap();
    answer(&mut p, "Root cause:", "bad release");
    answer(&mut p, "Impact assessment:", "5% of checkouts");
    // Text that would be a command, typed as an answer, stays an answer.
    answer(&mut p, "Remediation steps:", "40 + 2");
    answer(&mut p, "Prevention measures:", "canary");
    p.exp_string("incident resolved; report:").unwrap();
    prompt(&mut p);
    p.send_line("7*6").unwrap();
    p.exp_string("=> 42").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(!rest.contains("=> 42"), "{rest}");
    let report = find_reports(t.path());
    assert_eq!(report.len(), 1, "{report:?}");
    let text = std::fs::read_to_string(&report[0]).unwrap();
    assert!(text.contains("## Remediation steps\n\n40 + 2\n"), "{text}");
    assert!(text.contains("## Root cause\n\nbad release\n"), "{text}");
    // The answers journaled are exactly what was typed.
    let journal = repl_journal(t.path());
    let answers: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["type"] == "effect.result" && r["kind"] == "prompt.input")
        .map(|r| r["result"]["answer"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        answers,
        ["one", "bad release", "5% of checkouts", "40 + 2", "canary"],
        "{journal}"
    );
}

/// Every incident-report.md under deployments/.
fn find_reports(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("deployments"))
        .map(|d| {
            d.map(|e| e.unwrap().path().join("incident-report.md"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The journal of the (single) REPL run directory.
fn repl_journal(root: &std::path::Path) -> String {
    let dir = std::fs::read_dir(root.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("repl"))
        .expect("a repl run directory");
    std::fs::read_to_string(dir.join("journal.jsonl")).unwrap()
}

/// A run directory under deployments/ whose journal has `needle`, waited for.
fn wait_for_run(root: &std::path::Path, needle: &str) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for e in std::fs::read_dir(root.join("deployments"))
            .into_iter()
            .flatten()
        {
            let dir = e.unwrap().path();
            let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
            if journal.contains(needle) {
                return dir;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no run with {needle}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `runbook <args>` in `t`'s directory with `input` on stdin (a pipe, not a terminal).
fn piped(t: Test, args: &[&str], input: &str) -> Output {
    t.args(args).stdin(input).run()
}

/// The REPL's greeting on stderr, attached to `deployment` (or to none), with the `live` line it
/// shows when the deployment's journal records one.
fn greeting(journal: &str, deployment: Option<&str>, live: Option<&str>) -> String {
    let attached = deployment
        .map(|d| format!("  attached to {d}: status(), rollback(), metrics()\n"))
        .unwrap_or_default();
    let live = live
        .map(|l| format!("  live: {l}, from the deployment's journal\n"))
        .unwrap_or_default();
    format!("runbook repl\n  journal: deployments/<date>-{journal}\n{attached}{live}  :help for the primitives, :quit or Ctrl-D to leave\n")
}

const RULE: &str = "━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━";

/// `runbook deploy.rhai` in `t`'s directory, run to its end before the REPL attaches.
fn deployed(t: Test) -> Output {
    let out = t.args(&["deploy.rhai"]).run();
    out.expect_status(0);
    out
}

#[test]
fn repl_refuses_to_roll_back_a_deployment_whose_run_is_alive() {
    let mut t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
    );
    // The deployment stays alive while the REPL tries: spawned, not the builder's run.
    let deploy = t.another().args(&["deploy.rhai"]).spawn();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "waiting");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    let pid = deploy.id();
    for (call, journal) in [
        ("rollback()".to_string(), "repl"),
        (format!("undo_deployment(\"{shown}\", \"now\")"), "repl-2"),
    ] {
        let out = piped(t, &["repl", "--deployment", &shown], &format!("{call}\n"));
        let name = call.split('(').next().unwrap();
        out.expect_status(1)
            .expect_stdout_exact("")
            .expect_stderr_like(&format!(
                "{}runbook> {call}\n\
                 error: `{name}()` refused: the run of `{shown}` is still alive: tester on [..] (pid {pid}) has held it for [..] (reason: deploy.rhai), run {shown}\n\
                 \x20 help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or `kill -INT {pid}`; it offers its own rollback), then try again here\n\
                 \x20 help: or ask the run from here: `abort(\"why\")` and it rolls back itself; `pause()`, `resume()`, `promote()`\n\
                 \x20--> <repl>:1:1\n  |\n1 | {call}\n  | ^\n1 of 1 lines failed: exit 1\n",
                greeting(journal, Some(&shown), None)
            ));
        assert!(root.join("live.txt").exists(), "{}", out.describe());
        t = out.again();
    }
    // Once the run is gone, its undo steps are the REPL's to run.
    deploy.kill();
    let out = piped(t, &["repl", "--deployment", &shown], "rollback()\n");
    out.expect_status(0)
        .expect_stdout_exact(&format!("\n{RULE}\nRolling back: rolled back from the REPL\n↩ remove live.txt (rm -f live.txt)\n  ✓ remove live.txt\nRollback complete: 1 step(s) undone.\n=> true\n"))
        .expect_stderr_exact(&format!(
            "{}runbook> rollback()\n",
            greeting("repl-3", Some(&shown), None)
        ));
    assert!(!root.join("live.txt").exists(), "{}", out.describe());
}

#[test]
fn repl_attaching_to_a_tampered_empty_or_garbage_journal_says_so_and_runs_no_undo_unless_forced() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"restore\", \"echo restored > restored.txt\");\nlog(\"deployed\");\n",
    );
    let t = deployed(t).again();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "deployed");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    // An undo edited by hand: the chain no longer holds.
    let journal = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("echo restored"))
        .unwrap()
        + 1;
    std::fs::write(
        &journal,
        text.replace(
            "echo restored > restored.txt",
            "echo tampered > tampered.txt",
        ),
    )
    .unwrap();
    let broken = format!(
        "the journal `{shown}/journal.jsonl` is not intact at line {next}: record {next} (seq {next}) does not follow record {line}: record {line} was altered, or records between them were removed or reordered; its undo steps do not run unless forced: rollback(#{{ force: \"why it is safe\" }})",
        next = line + 1
    );
    let out = piped(t, &["repl", "--deployment", &shown], "rollback()\n");
    out.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!(
            "{}warning: {broken}\nrunbook> rollback()\nerror: `rollback()` refused: {broken}\n --> <repl>:1:1\n  |\n1 | rollback()\n  | ^\n1 of 1 lines failed: exit 1\n",
            greeting("repl", Some(&shown), None)
        ));
    assert!(!root.join("tampered.txt").exists(), "{}", out.describe());

    // Forced, with a reason: it runs, and the reason is recorded.
    let out = piped(
        out.again(),
        &["repl", "--deployment", &shown],
        "rollback(#{ force: \"checked the edit with alice\" })\n",
    );
    out.expect_status(0)
        .expect_stdout_exact(&format!("\n{RULE}\nRolling back: rolled back from the REPL, forced past a damaged journal: checked the edit with alice\n↩ restore (echo tampered > tampered.txt)\n  ✓ restore\nRollback complete: 1 step(s) undone.\n=> true\n"))
        .expect_stderr_exact(&format!(
            "{}warning: {broken}\nrunbook> rollback(#{{ force: \"checked the edit with alice\" }})\nwarning: forced past a damaged journal: checked the edit with alice\n",
            greeting("repl", Some(&shown), None)
        ));
    assert!(root.join("tampered.txt").exists(), "{}", out.describe());
    let forced: Vec<serde_json::Value> = std::fs::read_dir(root.join("deployments"))
        .unwrap()
        .flat_map(|e| {
            std::fs::read_to_string(e.unwrap().path().join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["type"] == "rollback.forced")
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(forced.len(), 1, "{forced:?}");
    assert_eq!(
        forced[0]["reason"], "checked the edit with alice",
        "{forced:?}"
    );

    // Empty and garbage journals are shown as such too.
    let mut t = out.again();
    for (content, said) in [
        ("", "is empty"),
        (
            "this is not a journal\n",
            "is not intact at line 1: not a JSON record: expected ident at line 1 column 2",
        ),
    ] {
        std::fs::create_dir_all(root.join("deployments/odd")).unwrap();
        std::fs::write(root.join("deployments/odd/journal.jsonl"), content).unwrap();
        let out = piped(
            t,
            &["repl", "--deployment", "deployments/odd"],
            "rollback()\n",
        );
        let broken = format!("the journal `deployments/odd/journal.jsonl` {said}; its undo steps do not run unless forced: rollback(#{{ force: \"why it is safe\" }})");
        out.expect_status(1)
            .expect_stdout_exact("")
            .expect_stderr_exact(&format!(
                "{}warning: {broken}\nrunbook> rollback()\nerror: `rollback()` refused: {broken}\n --> <repl>:1:1\n  |\n1 | rollback()\n  | ^\n1 of 1 lines failed: exit 1\n",
                greeting("repl-2", Some("deployments/odd"), None)
            ));
        t = out.again();
    }
}

/// The incident directories under deployments/, sorted, as (name, report text).
fn incident_reports(root: &std::path::Path) -> Vec<(String, String)> {
    find_reports(root)
        .into_iter()
        .map(|p| {
            let name = p
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn today() -> String {
    // The date the binary uses: UTC, as in the run directory names.
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn repl_each_incident_gets_its_own_report_never_overwritten() {
    let out = piped(
        Test::new(),
        &["repl"],
        "incident(\"search 500s\", \"high\")\nresolve(\"bad index\", \"search down\", \"reindexed\", \"alerts\")\n\
         incident(\"checkout slow\")\nresolve(\"db\", \"slow checkouts\", \"failover\", \"capacity\")\n",
    );
    out.expect_status(0)
        .expect_stdout_exact("=> incident <date>-incident-1 open: search 500s (high); the session's commands and effects go into its timeline; resolve() writes the report\n=> incident resolved; report: deployments/<date>-incident-1/incident-report.md\n=> incident <date>-incident-2 open: checkout slow (medium); the session's commands and effects go into its timeline; resolve() writes the report\n=> incident resolved; report: deployments/<date>-incident-2/incident-report.md\n")
        .expect_stderr_exact(&format!("{}runbook> incident(\"search 500s\", \"high\")\nrunbook> resolve(\"bad index\", \"search down\", \"reindexed\", \"alerts\")\nrunbook> incident(\"checkout slow\")\nrunbook> resolve(\"db\", \"slow checkouts\", \"failover\", \"capacity\")\n", greeting("repl", None, None)));
    let root = out.dir.clone();
    let day = today();
    let reports = incident_reports(&root);
    let names: Vec<&str> = reports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{day}-incident-1").as_str(),
            format!("{day}-incident-2").as_str()
        ],
        "{}",
        out.describe()
    );
    assert!(
        reports[0].1.starts_with(&format!(
            "# Incident Report - search 500s\n\n- Incident: {day}-incident-1\n- Severity: high\n"
        )),
        "{}",
        reports[0].1
    );
    assert!(
        reports[0].1.contains("## Root cause\n\nbad index\n"),
        "{}",
        reports[0].1
    );
    // incident(title) alone: the default severity.
    assert!(
        reports[1].1.contains("- Severity: medium\n"),
        "{}",
        reports[1].1
    );
    let first = reports[0].1.clone();
    // A later session the same day: a third report, the first untouched.
    let out = piped(
        out.again(),
        &["repl"],
        "incident(\"search 500s again\", \"critical\")\nresolve(\"x\", \"y\", \"z\", \"w\")\n",
    );
    out.expect_status(0)
        .expect_stdout_exact("=> incident <date>-incident-3 open: search 500s again (critical); the session's commands and effects go into its timeline; resolve() writes the report\n=> incident resolved; report: deployments/<date>-incident-3/incident-report.md\n")
        .expect_stderr_exact(&format!("{}runbook> incident(\"search 500s again\", \"critical\")\nrunbook> resolve(\"x\", \"y\", \"z\", \"w\")\n", greeting("repl-2", None, None)));
    let reports = incident_reports(&root);
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(reports[0].1, first);
    assert_eq!(reports[2].0, format!("{day}-incident-3"));
    assert!(
        reports[2].1.contains("- Severity: critical\n"),
        "{}",
        reports[2].1
    );
}

#[test]
fn repl_incident_severity_is_checked_and_a_second_incident_is_refused_in_a_pipe() {
    let out = piped(
        Test::new(),
        &["repl"],
        "incident(\"x\", \"hgih\")\nincident(\"first\", \"low\")\nincident(\"second\", \"high\")\nresolve(\"a\", \"b\", \"c\", \"d\")\n",
    );
    out.expect_status(1)
        .expect_stdout_exact("=> incident <date>-incident-1 open: first (low); the session's commands and effects go into its timeline; resolve() writes the report\n=> incident resolved; report: deployments/<date>-incident-1/incident-report.md\n")
        .expect_stderr_exact(&format!(
            "{}runbook> incident(\"x\", \"hgih\")\n\
             error: the severity `hgih` is not one of critical, high, medium, low (did you mean `high`?)\n --> <repl>:1:1\n  |\n1 | incident(\"x\", \"hgih\")\n  | ^\n\
             runbook> incident(\"first\", \"low\")\nrunbook> incident(\"second\", \"high\")\n\
             error: the incident `first` is still open: resolve() it before opening another\n --> <repl>:1:1\n  |\n1 | incident(\"second\", \"high\")\n  | ^\n\
             runbook> resolve(\"a\", \"b\", \"c\", \"d\")\n2 of 4 lines failed: exit 1\n",
            greeting("repl", None, None)
        ));
    let reports = incident_reports(&out.dir);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].1.starts_with("# Incident Report - first\n"),
        "{}",
        reports[0].1
    );
}

#[test]
fn repl_an_incident_open_at_the_end_of_input_is_written_as_abandoned() {
    let out = piped(
        Test::new(),
        &["repl"],
        "incident(\"search 500s\", \"high\")\n40 + 2\n",
    );
    out.expect_status(0)
        .expect_stdout_exact("=> incident <date>-incident-1 open: search 500s (high); the session's commands and effects go into its timeline; resolve() writes the report\n=> 42\n")
        .expect_stderr_exact(&format!(
            "{}runbook> incident(\"search 500s\", \"high\")\nrunbook> 40 + 2\n\
             the incident `search 500s` was still open: written as abandoned to deployments/<date>-incident-1/incident-report.md\n",
            greeting("repl", None, None)
        ));
    let reports = incident_reports(&out.dir);
    assert_eq!(reports.len(), 1, "{}", out.describe());
    let report = &reports[0].1;
    assert!(
        report.contains("- Status: abandoned (the session ended: end of input)\n"),
        "{report}"
    );
    assert!(report.contains("> 40 + 2"), "{report}");
    assert!(report.contains("= 42"), "{report}");
    assert!(
        report.contains("## Root cause\n\n(not given: the incident was abandoned)\n"),
        "{report}"
    );
}

#[test]
fn repl_an_incident_open_when_the_terminal_session_ends_is_written_as_abandoned() {
    // Ctrl-D, declining to resolve; then SIGTERM and SIGHUP at the prompt.
    for end in ["ctrl-d", "SIGTERM", "SIGHUP"] {
        let t = Test::new();
        let mut p = pty(&t, &["repl"]);
        prompt(&mut p);
        p.send_line("incident(\"search 500s\", \"high\")").unwrap();
        prompt(&mut p);
        p.send_line("6 * 7").unwrap();
        p.exp_string("=> 42").unwrap();
        prompt(&mut p);
        let why = match end {
            "ctrl-d" => {
                p.send_control('d').unwrap();
                answer(&mut p, "before leaving? (y/n):", "n");
                "the session ended: end of input"
            }
            "SIGTERM" => {
                p.process_mut()
                    .signal(rexpect::process::Signal::SIGTERM)
                    .unwrap();
                "the session ended: SIGTERM"
            }
            _ => {
                p.process_mut()
                    .signal(rexpect::process::Signal::SIGHUP)
                    .unwrap();
                "the session ended: SIGHUP"
            }
        };
        let _ = p.exp_eof();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while incident_reports(t.path()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let reports = incident_reports(t.path());
        assert_eq!(reports.len(), 1, "{end}");
        let report = &reports[0].1;
        assert!(
            report.contains(&format!("- Status: abandoned ({why})\n")),
            "{end}: {report}"
        );
        assert!(report.contains("> 6 * 7"), "{end}: {report}");
    }
}

#[test]
fn repl_a_second_incident_at_a_terminal_asks_before_replacing_the_open_one() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line("incident(\"search 500s\", \"high\")").unwrap();
    prompt(&mut p);
    p.send_line("incident(\"checkout slow\")").unwrap();
    answer(
        &mut p,
        "The incident `search 500s` is still open. Write it as abandoned and open `checkout slow`? (y/n):",
        "n",
    );
    p.exp_string("kept the incident `search 500s` open")
        .unwrap();
    prompt(&mut p);
    p.send_line("incident(\"checkout slow\")").unwrap();
    answer(&mut p, "open `checkout slow`? (y/n):", "y");
    p.exp_string("-incident-2 open: checkout slow (medium)")
        .unwrap();
    prompt(&mut p);
    p.send_line("resolve(\"a\", \"b\", \"c\", \"d\")").unwrap();
    p.exp_string("incident resolved").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports[0]
            .1
            .contains("- Status: abandoned (replaced by the incident `checkout slow`)\n"),
        "{}",
        reports[0].1
    );
    assert!(
        reports[1].1.contains("- Status: resolved\n"),
        "{}",
        reports[1].1
    );
}

#[test]
fn repl_ctrl_c_during_rollback_stops_it_and_the_rest_stay_standing() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"remove the old version\", \"touch first-undone\");\n\
         on_rollback(\"drain slowly\", \"sleep 30; touch slow-undone\");\n\
         on_rollback(\"switch back\", \"touch last-undone\");\nlog(\"deployed\");\n",
    );
    let t = deployed(t).again();
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let mut p = pty(&t, &["repl", "--deployment", &shown]);
    prompt(&mut p);
    p.send_line("rollback()").unwrap();
    // (rexpect reads the output byte by byte: match ASCII text only.)
    p.exp_string("drain slowly (sleep 30").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.send_control('c').unwrap();
    let (before, _) = p
        .exp_regex("Rollback stopped by Ctrl-C: 2 undo step\\(s\\) still standing: drain slowly, remove the old version")
        .unwrap();
    assert!(
        !before.contains("remove the old version (touch"),
        "{before}"
    );
    assert!(!before.contains("drain slowly: command"), "{before}");
    prompt(&mut p);
    p.send_line(&format!("standing_undos(\"{shown}\").len()"))
        .unwrap();
    p.exp_string("=> 2").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    assert!(t.path().join("last-undone").exists());
    assert!(!t.path().join("first-undone").exists());
    assert!(!t.path().join("slow-undone").exists());
}

#[test]
fn repl_from_a_pipe_exits_1_when_a_line_failed_and_keeps_stdout_for_results() {
    let out = piped(Test::new(), &["repl"], "1 + 1\nbogus()\n2 + 2\n");
    out.expect_status(1)
        .expect_stdout_exact("=> 2\n=> 4\n")
        .expect_stderr_exact(&format!(
            "{}runbook> 1 + 1\nrunbook> bogus()\nerror: no function `bogus`\n --> <repl>:1:1\n  |\n1 | bogus()\n  | ^\nrunbook> 2 + 2\n1 of 3 lines failed: exit 1\n",
            greeting("repl", None, None)
        ));
    // Every line went well: 0.
    let out = piped(out.again(), &["repl"], "1 + 1\n");
    out.expect_status(0)
        .expect_stdout_exact("=> 2\n")
        .expect_stderr_exact(&format!("{}runbook> 1 + 1\n", greeting("repl", None, None)));
}

#[test]
fn repl_answers_file_answers_the_questions_of_a_piped_session() {
    let t = Test::new().file(
        "answers.yaml",
        "who: alice\nincident-root-cause: bad index\nincident-impact: search down\n\
         incident-remediation: reindexed\nincident-prevention: alerts\n",
    );
    let out = piped(
        t,
        &["repl", "--answers", "answers.yaml"],
        "input(\"Who\", \"\", #{ id: \"who\" })\nincident(\"search 500s\", \"high\")\nresolve()\n",
    );
    out.expect_status(0)
        .expect_stdout_exact("  → alice (answers file answers.yaml)\n=> alice\n=> incident <date>-incident-1 open: search 500s (high); the session's commands and effects go into its timeline; resolve() writes the report\n  → bad index (answers file answers.yaml)\n  → search down (answers file answers.yaml)\n  → reindexed (answers file answers.yaml)\n  → alerts (answers file answers.yaml)\n=> incident resolved; report: deployments/<date>-incident-1/incident-report.md\n")
        .expect_stderr_exact(&format!(
            "{}runbook> input(\"Who\", \"\", #{{ id: \"who\" }})\nrunbook> incident(\"search 500s\", \"high\")\nrunbook> resolve()\n",
            greeting("repl", None, None)
        ));
    let reports = incident_reports(&out.dir);
    assert_eq!(reports.len(), 1, "{}", out.describe());
    assert!(
        reports[0]
            .1
            .contains("## Root cause\n\nbad index\n\n## Impact assessment\n\nsearch down\n"),
        "{}",
        reports[0].1
    );
}

#[test]
fn repl_status_prints_a_short_summary_before_the_map() {
    let t = Test::new()
        .executable("switch-traffic", "#!/bin/sh\necho \"traffic on $1\"\n")
        .file(
            "deploy.rhai",
            "on_rollback(\"switch back to v1\", \"./switch-traffic v1\");\n\
             on_rollback(\"remove v2\", \"true\");\n\
             sh(\"./switch-traffic v2\");\n\
             traffic(#{ weights: #{ v2: 100 } });\n\
             verdict(#{ version: \"v2\", verdict: \"success\", reason: \"error rate 0.1% under 1%\" });\n\
             log(\"deployed\");\n",
        );
    let t = deployed(t).again();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "deployed");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    let out = piped(t, &["repl", "--deployment", &shown], "status()\n");
    // The summary, then the map. Live is what the adapter recorded (`traffic`), never a guess
    // from the command line; the times vary.
    out.expect_status(0)
        .expect_stdout_like(&format!(
            "deployment {shown}: completed\n\
             \x20 live: v2 (v2 100%) since [..]\n\
             \x20 last verdict: success (v2): error rate 0.1% under 1%, at [..]\n\
             \x20 undo steps standing: 2 (remove v2, switch back to v1): rollback() runs them\n\
             \x20 journal: intact\n\
             => #{{\"deployment\": \"{shown}\", \"journal\": \"intact\", \"outcome\": \"completed\", \"stage\": (), \"strategy\": (), \"traffic\": #{{\"colour\": (), \"live\": \"v2\", \"stage\": (), \"ts\": \"[..]\", \"weights\": #{{\"v2\": 100}}}}, \"undo_standing\": [#{{\"action\": \"true\", \"label\": \"remove v2\"}}, #{{\"action\": \"./switch-traffic v1\", \"label\": \"switch back to v1\"}}], \"verdicts\": [#{{\"reason\": \"error rate 0.1% under 1%\", \"verdict\": \"success\", \"version\": \"v2\"}}]}}\n"
        ))
        .expect_stderr_exact(&format!(
            "{}runbook> status()\n",
            greeting("repl", Some(&shown), Some("v2"))
        ));
}

#[test]
fn repl_did_you_mean_knows_every_callable_name() {
    let out = piped(
        Test::new(),
        &["repl"],
        "stauts()\nmetrcs()\nscael(2)\npage_oncal(\"x\")\nrollbak()\nfn drain_all() { 1 }\ndrian_all()\n\
         import \"blue_green\" as bg;\nbg::deplyo(\"local\")\n",
    );
    // Each mistyped name, the line it was typed on, and the name it meant.
    let error = |typed: &str, line: &str, at: usize, meant: &str| {
        format!(
            "runbook> {line}\nerror: no function `{typed}`\n --> <repl>:1:{}\n  |\n1 | {line}\n  | {}^\n  help: did you mean `{meant}`?\n",
            at + 1,
            " ".repeat(at)
        )
    };
    out.expect_status(1).expect_stdout_exact("").expect_stderr_exact(&format!(
        "{}{}{}{}{}{}runbook> fn drain_all() {{ 1 }}\n{}runbook> import \"blue_green\" as bg;\n{}7 of 9 lines failed: exit 1\n",
        greeting("repl", None, None),
        error("stauts", "stauts()", 0, "status"),
        error("metrcs", "metrcs()", 0, "metrics"),
        error("scael", "scael(2)", 0, "scale"),
        error("page_oncal", "page_oncal(\"x\")", 0, "page_oncall"),
        error("rollbak", "rollbak()", 0, "rollback"),
        error("drian_all", "drian_all()", 0, "drain_all"),
        error("bg::deplyo", "bg::deplyo(\"local\")", 4, "bg::deploy"),
    ));
}

/// The REPL run directories under deployments/.
fn repl_dirs(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root.join("deployments"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("repl"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn repl_that_never_acts_leaves_no_run_directory() {
    let out = piped(
        Test::new(),
        &["repl"],
        "1 + 1\n:help\nlet x = now();\nbogus()\n",
    );
    // (:help's text is pinned by the tests of :help; here only the session around it.)
    out.expect_status(1)
        .expect_stdout_lines(&["=> 2", "Commands:"])
        .expect_stderr_exact(&format!(
            "{}runbook> 1 + 1\nrunbook> :help\nrunbook> let x = now();\nrunbook> bogus()\nerror: no function `bogus`\n --> <repl>:1:1\n  |\n1 | bogus()\n  | ^\n1 of 3 lines failed: exit 1\n",
            greeting("repl", None, None)
        ));
    assert_eq!(
        repl_dirs(&out.dir),
        Vec::<String>::new(),
        "{}",
        out.describe()
    );
    // One that acts keeps its journal.
    let out = piped(out.again(), &["repl"], "sh(\"true\")\n");
    out.expect_status(0)
        .expect_stdout_like("$ true\n=> #{\"attempts\": 1, \"code\": 0, \"duration\": [..], \"ok\": true, \"stderr\": \"\", \"stdout\": \"\", \"timed_out\": false, \"truncated\": false}\n")
        .expect_stderr_exact(&format!(
            "{}runbook> sh(\"true\")\n",
            greeting("repl", None, None)
        ));
    assert_eq!(repl_dirs(&out.dir).len(), 1, "{}", out.describe());
}

#[test]
fn repl_a_second_rollback_says_when_and_by_whom_it_was_rolled_back() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"restore v1\", \"touch restored\");\nlog(\"deployed\");\n",
    );
    let t = deployed(t).again();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "deployed");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    let out = piped(t, &["repl", "--deployment", &shown], "rollback()\n");
    out.expect_status(0)
        .expect_stdout_exact(&format!("\n{RULE}\nRolling back: rolled back from the REPL\n↩ restore v1 (touch restored)\n  ✓ restore v1\nRollback complete: 1 step(s) undone.\n=> true\n"))
        .expect_stderr_exact(&format!(
            "{}runbook> rollback()\n",
            greeting("repl", Some(&shown), None)
        ));
    assert!(root.join("restored").exists(), "{}", out.describe());
    let first = repl_dirs(&root);
    assert_eq!(first.len(), 1, "{first:?}");
    // Not "Nothing to undo": when, by whom, from which run (the time varies).
    let out = piped(
        out.again(),
        &["repl", "--deployment", &shown],
        "rollback()\n",
    );
    out.expect_status(0)
        .expect_stdout_like(&format!(
            "`{shown}` was already rolled back at [..] by tester (run deployments/{}): no undo step is standing\n=> true\n",
            first[0]
        ))
        .expect_stderr_exact(&format!(
            "{}runbook> rollback()\n",
            greeting("repl-2", Some(&shown), None)
        ));
}

#[test]
fn repl_leaving_with_maintenance_mode_on_gets_a_reminder() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "adapter: script\nscript:\n  deploy: ./deploy.sh {env}\n  maintenance: ./maint.sh {action}\n",
        )
        .executable("maint.sh", "#!/bin/sh\necho \"$1\" > maintenance-state\n");
    let out = piped(t, &["repl"], "maintenance(true)\n");
    out.expect_status(0)
        .expect_stdout_exact("$ maintenance: ./maint.sh on\n=> maintenance mode on\n")
        .expect_stderr_exact(&format!(
            "{}runbook> maintenance(true)\n\
             reminder: maintenance mode is still on (this session turned it on): maintenance(false) turns it off\n",
            greeting("repl", None, None)
        ));
    assert_eq!(
        std::fs::read_to_string(out.dir.join("maintenance-state")).unwrap(),
        "on\n"
    );
    // Turned off again: no reminder.
    let out = piped(
        out.again(),
        &["repl"],
        "maintenance(true)\nmaintenance(false)\n",
    );
    out.expect_status(0)
        .expect_stdout_exact("$ maintenance: ./maint.sh on\n=> maintenance mode on\n$ maintenance: ./maint.sh off\n=> maintenance mode off\n")
        .expect_stderr_exact(&format!(
            "{}runbook> maintenance(true)\nrunbook> maintenance(false)\n",
            greeting("repl-2", None, None)
        ));
}

#[test]
fn repl_sigterm_at_the_prompt_ends_the_session_with_130() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line("sh(\"true\")").unwrap();
    prompt(&mut p);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .unwrap();
    p.exp_eof().unwrap();
    let status = p.process_mut().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 130)),
        "{status:?}"
    );
    // The journal says how the session ended.
    let journal = repl_journal(t.path());
    assert!(
        journal.contains("\"type\":\"run.end\"") && journal.contains("\"signal\":\"SIGTERM\""),
        "{journal}"
    );
}

#[test]
fn repl_after_a_rollback_the_deployments_own_record_says_rolled_back() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"restore v1\", \"touch restored\");\nlog(\"deployed\");\n",
    );
    let t = deployed(t).again();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "deployed");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    let plan = std::fs::read_to_string(dir.join("deployment-plan.md")).unwrap();
    assert!(plan.contains("- Outcome: completed\n"), "{plan}");
    let out = piped(t, &["repl", "--deployment", &shown], "rollback()\n");
    out.expect_status(0)
        .expect_stdout_exact(&format!("\n{RULE}\nRolling back: rolled back from the REPL\n↩ restore v1 (touch restored)\n  ✓ restore v1\nRollback complete: 1 step(s) undone.\n=> true\n"))
        .expect_stderr_exact(&format!(
            "{}runbook> rollback()\n",
            greeting("repl", Some(&shown), None)
        ));
    let repl = repl_dirs(&root);
    assert_eq!(repl.len(), 1, "{}", out.describe());
    let by = format!("deployments/{}", repl[0]);
    let plan = std::fs::read_to_string(dir.join("deployment-plan.md")).unwrap();
    assert!(
        plan.contains(&format!("- Outcome: rolled back by {by} at 20")),
        "{plan}"
    );
    let log = std::fs::read_to_string(dir.join("deployment-log.txt")).unwrap();
    assert!(
        log.contains(&format!("rolled back by {by} (tester): restore v1: ok")),
        "{log}"
    );
    // The times vary.
    let out = piped(
        out.again(),
        &["repl", "--deployment", &shown],
        "status().outcome\n",
    );
    out.expect_status(0)
        .expect_stdout_like(&format!(
            "deployment {shown}: rolled back by {by} at [..] (the run itself: completed)\n\
             \x20 live: no traffic change recorded\n  last verdict: none\n\
             \x20 rolled back: 1 undo step(s) by {by}, last at [..]\n\
             \x20 undo steps standing: none\n  journal: intact\n\
             => rolled back by {by} at [..] (the run itself: completed)\n"
        ))
        .expect_stderr_exact(&format!(
            "{}runbook> status().outcome\n",
            greeting("repl-2", Some(&shown), None)
        ));
}

#[test]
fn repl_incident_report_tells_the_story() {
    let t = Test::new()
        .executable("switch-traffic", "#!/bin/sh\necho \"traffic on $1\"\n")
        // Fails every other call, as a flapping load balancer check would.
        .executable(
            "check-lb",
            "#!/bin/sh\nif [ -e flip ]; then rm flip; exit 1; else touch flip; fi\n",
        )
        .file(
            "deploy.rhai",
            "on_rollback(\"restore v1\", \"./switch-traffic v1\");\n\
             sh(\"./switch-traffic v2\");\n\
             traffic(#{ weights: #{ v2: 100 } });\n\
             verdict(#{ version: \"v2\", verdict: \"success\", reason: \"error rate 0.1% under 1%\" });\n\
             log(\"deployed\");\n",
        );
    let t = deployed(t).again();
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let out = piped(
        t,
        &["repl", "--deployment", &shown],
        "1 + 1\nincident(\"checkout errors\", \"high\")\n\
         try { sh(\"./check-lb\"); } catch { }\ntry { sh(\"./check-lb\"); } catch { }\n\
         try { sh(\"./check-lb\"); } catch { }\ntry { sh(\"./check-lb\"); } catch { }\n\
         sh(\"false\")\nrollback()\n\
         resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back\", \"canary analysis\")\n",
    );
    // The session itself (the commands' durations vary: the story is in the report).
    out.expect_status(1)
        .expect_stdout_lines(&[
            "=> 2",
            "=> incident <date>-incident-1 open: checkout errors (high); the session's commands and effects go into its timeline; resolve() writes the report",
            "  ✗ command `./check-lb` failed with exit code 1",
            "  ✗ command `false` failed with exit code 1",
            "Rollback complete: 1 step(s) undone.",
            "=> true",
            "=> incident resolved; report: deployments/<date>-incident-1/incident-report.md",
        ])
        .expect_stderr_exact(&format!(
            "{}runbook> 1 + 1\nrunbook> incident(\"checkout errors\", \"high\")\n{}runbook> sh(\"false\")\nerror: command `false` failed with exit code 1\n --> <repl>:1:1\n  |\n1 | sh(\"false\")\n  | ^\nrunbook> rollback()\nrunbook> resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back\", \"canary analysis\")\n1 of 9 lines failed: exit 1\n",
            greeting("repl", Some(&shown), Some("v2")),
            "runbook> try { sh(\"./check-lb\"); } catch { }\n".repeat(4)
        ));
    let reports = incident_reports(&out.dir);
    assert_eq!(reports.len(), 1, "{}", out.describe());
    let report = &reports[0].1;
    let in_order = [
        format!("- Deployment: {shown}, live since 20"),
        "## Milestones\n\n- Detected: 20".to_string(),
        "- Mitigated: 20".to_string(),
        format!("(rollback of {shown}: 1 undo step(s) done)"),
        "- Resolved: 20".to_string(),
        "## Deployment verdicts\n\n- 20".to_string(),
        "success (v2): error rate 0.1% under 1%".to_string(),
        "## Timeline".to_string(),
        "> 1 + 1".to_string(),
        "= 2".to_string(),
        "incident opened: checkout errors (high)".to_string(),
        "> try { sh(\"./check-lb\"); } catch { } ×4: 2 ok, 2 failed".to_string(),
        "> sh(\"false\")".to_string(),
        "effect sh `false`: FAILED".to_string(),
        "! command `false` failed".to_string(),
        "> rollback()".to_string(),
        "effect undo `undo: restore v1`: ok".to_string(),
        "= true".to_string(),
        "## Root cause\n\nbad release".to_string(),
    ];
    let mut at = 0;
    for item in &in_order {
        let found = report[at..]
            .find(item.as_str())
            .unwrap_or_else(|| panic!("{item:?} missing or out of order in\n{report}"));
        at += found + item.len();
    }
}

fn team_metrics(path: &str) -> (u16, String) {
    match path {
        "/metrics" => (
            200,
            "# TYPE app_requests_total counter\napp_requests_total{release=\"v1\"} 1000\napp_requests_total{release=\"v2\"} 200\n\
             app_errors_total{release=\"v1\"} 10\napp_errors_total{release=\"v2\"} 20\n"
                .to_string(),
        ),
        _ => (404, String::new()),
    }
}

#[test]
fn repl_metrics_reads_the_teams_configured_series_and_shows_them_against_the_triggers() {
    let server = support::Server::start(team_metrics);
    let t = Test::new().file(
        "runbook.yaml",
        &format!(
            "adapter: script\nscript:\n  deploy: ./deploy.sh {{env}}\nversion: v2\ncurrent_version: v1\n\
             monitoring:\n  metrics_url: {}\n  series:\n    requests: app_requests_total\n    errors: app_errors_total\n    version_label: release\n\
             triggers:\n  error_rate: 0.05\n",
            server.url("/metrics")
        ),
    );
    let out = piped(t, &["repl"], "let m = metrics();\nm.v2.errors\n");
    out.expect_status(0)
        .expect_stdout_exact("  v1: requests 1000, errors 10, error rate 1% (trigger 5%: ok)\n  v2: requests 200, errors 20, error rate 10% (trigger 5%: OVER)\n=> 20\n")
        .expect_stderr_exact(&format!(
            "{}runbook> let m = metrics();\nrunbook> m.v2.errors\n",
            greeting("repl", None, None)
        ));
}

#[test]
fn repl_metrics_reads_the_configured_prometheus_queries() {
    let server = support::Server::start(team_metrics);
    let prom = support::Prometheus::start(std::slice::from_ref(&server.addr), "500ms");
    prom.wait_for_series("app_errors_total");
    let t = Test::new().file(
        "runbook.yaml",
        &format!(
            "adapter: script\nscript:\n  deploy: ./deploy.sh {{env}}\nversion: v2\ncurrent_version: v1\n\
             monitoring:\n  prometheus: {}\n  queries:\n    error_rate: 'sum(app_errors_total{{release=\"{{{{version}}}}\"}}) / sum(app_requests_total{{release=\"{{{{version}}}}\"}})'\n\
             triggers:\n  error_rate: 0.05\n",
            prom.url
        ),
    );
    let out = piped(t, &["repl"], "metrics()\n");
    out.expect_status(0)
        .expect_stdout_exact("  v1: error_rate 0.01 (trigger 0.05: ok)\n  v2: error_rate 0.1 (trigger 0.05: OVER)\n=> #{\"v1\": #{\"error_rate\": 0.01}, \"v2\": #{\"error_rate\": 0.1}}\n")
        .expect_stderr_exact(&format!(
            "{}runbook> metrics()\n",
            greeting("repl", None, None)
        ));
}

#[test]
fn repl_emergency_actions_act_on_the_live_side_the_deployments_journal_records() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "adapter: script\nversion: v2\ncurrent_version: v1\nscript:\n  deploy: ./record deploy {env}\n  switch: ./record switch {from}-to-{to}\n  scale: ./record scale {env} {count}\n  live_colour: blue\n",
        )
        .executable("record", "#!/bin/sh\necho \"$*\" >> commands.txt\n")
        .file(
            "deploy.rhai",
            "import \"script\" as adapter;\nadapter::switch_to(\"v2\");\nlog(\"deployed\");\n",
        );
    let t = deployed(t).again();
    // The adapter journaled the traffic change as a record of its own.
    let dir = wait_for_run(t.path(), "deployed");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let traffic: Vec<serde_json::Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["type"] == "traffic")
        .collect();
    assert_eq!(traffic.len(), 1, "{journal}");
    assert_eq!(traffic[0]["live"], "v2");
    assert_eq!(traffic[0]["colour"], "green");
    assert_eq!(traffic[0]["weights"]["v2"], 100);

    let out = piped(t, &["repl", "--last"], "status()\nscale(3)\n");
    // Green is live: the scale goes there, for the live version. (The times vary.)
    out.expect_status(0)
        .expect_stdout_like("deployment deployments/<date>-deploy: completed\n  live: v2 on green (v2 100%) since [..]\n  last verdict: none\n  undo steps standing: none\n  journal: intact\n=> #{\"deployment\": \"deployments/<date>-deploy\", \"journal\": \"intact\", \"outcome\": \"completed\", \"stage\": (), \"strategy\": (), \"traffic\": #{\"colour\": \"green\", \"live\": \"v2\", \"stage\": (), \"ts\": \"[..]\", \"weights\": #{\"v2\": 100}}, \"undo_standing\": [], \"verdicts\": []}\n$ scale: ./record scale production-green 3\n=> scaled: +3 instances\n")
        .expect_stderr_exact(&format!(
            "{}runbook> status()\nrunbook> scale(3)\n",
            greeting("repl", Some("deployments/<date>-deploy"), Some("v2 on green"))
        ));
    let commands = std::fs::read_to_string(out.dir.join("commands.txt")).unwrap();
    assert_eq!(
        commands,
        "switch blue-to-green\nscale production-green 3\n",
        "{}",
        out.describe()
    );
}

#[test]
fn repl_help_covers_every_documented_function() {
    // Every function in the README's table of primitives, and the REPL's own.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut names: Vec<String> = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or("");
        for part in first.split('`').skip(1).step_by(2) {
            if let Some((name, _)) = part.split_once('(') {
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 20, "{names:?}");
    let input: String = names.iter().map(|n| format!(":help {n}\n")).collect();
    let out = piped(Test::new(), &["repl"], &input);
    out.expect_status(0);
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| out.stdout.contains(&format!("no help for `{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "no :help for {missing:?}\n{}",
        out.describe()
    );
}

#[test]
fn repl_a_stdlib_module_not_imported_says_the_import_it_needs() {
    let t = Test::new();
    let out = piped(t, &["repl"], "blue_green::deploy()\n");
    out.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_exact(&format!(
            "{}runbook> blue_green::deploy()\nerror: the module `blue_green` is not imported here: `import \"blue_green\" as blue_green;` first\n --> <repl>:1:1\n  |\n1 | blue_green::deploy()\n  | ^\n1 of 1 lines failed: exit 1\n",
            greeting("repl", None, None)
        ));
}

#[test]
fn repl_several_lines_pasted_run_each_line() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    // A bracketed paste of three lines, then Enter.
    p.send("\x1b[200~1 + 1\r2 + 2\r3 + 3\x1b[201~").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("=> 2").unwrap();
    p.exp_string("=> 4").unwrap();
    p.exp_string("=> 6").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

// ---------------------------------------------------------------- a whole incident, as a person plays it

static V2_BAD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The shop's request and error counters, as its exporter would serve them: v2 goes bad on cue.
fn shop_metrics(path: &str) -> (u16, String) {
    if path != "/metrics" {
        return (404, String::new());
    }
    let v2_errors = if V2_BAD.load(std::sync::atomic::Ordering::SeqCst) {
        300
    } else {
        5
    };
    (
        200,
        format!(
            "app_requests_total{{release=\"v1\"}} 1000\napp_requests_total{{release=\"v2\"}} 1000\n\
             app_errors_total{{release=\"v1\"}} 5\napp_errors_total{{release=\"v2\"}} {v2_errors}\n"
        ),
    )
}

#[test]
fn repl_a_whole_incident_against_a_real_nginx_and_prometheus() {
    let nginx = support::nginx_binary();
    let t = Test::new();
    let dir = t.path().to_path_buf();
    let shop = support::Shop::start(&dir);
    let (blue, green, staging) = (shop.blue, shop.green, shop.staging);
    let front = shop.front.clone();

    let exporter = support::Server::start(shop_metrics);
    let prometheus = support::Prometheus::start(std::slice::from_ref(&exporter.addr), "300ms");
    prometheus.wait_for_series("app_errors_total");

    // The example team's scripts with the shipped workflow: deploy writes the version an
    // instance serves, switch rewrites nginx's upstream and reloads it.
    let t = t.example(
        "blue-green-nginx",
        &[
            "runbook.yaml",
            "answers.yaml",
            "deploy.sh",
            "scripts/switch-traffic.sh",
            "scripts/health-check.sh",
        ],
    );
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    for c in ["blue", "green", "staging"] {
        std::os::unix::fs::symlink(dir.join(c), dir.join("apps").join(c)).unwrap();
    }
    let path = format!(
        "{}:/usr/sbin:/sbin:{}",
        std::path::Path::new(&nginx).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let query = "sum(app_errors_total{release=\"{{version}}\"}) / sum(app_requests_total{release=\"{{version}}\"})";
    let t = t
        .env("PATH", &path)
        .env("BLUE_PORT", &blue.to_string())
        .env("GREEN_PORT", &green.to_string())
        .env("STAGING_PORT", &staging.to_string())
        .env("NGINX_DIR", &dir.display().to_string())
        .env("RELEASE", "v2");
    let sets = [
        "--set".to_string(),
        "monitoring.interval=200ms".to_string(),
        "--set".to_string(),
        "monitoring.samples=2".to_string(),
        "--set".to_string(),
        format!("monitoring.prometheus={}", prometheus.url),
        "--set".to_string(),
        format!("monitoring.queries.error_rate={query}"),
    ];
    let mut deploy = t.command();
    deploy
        .args(["deploy", "--answers", "answers.yaml", "--approve"])
        .args(&sets);
    let out = deploy.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        support::wait_for(&front, "v2"),
        "v2",
        "nginx serves green after the deploy"
    );

    // v2 goes bad after going live.
    V2_BAD.store(true, std::sync::atomic::Ordering::SeqCst);
    prometheus.wait_for_series("app_errors_total{release=\"v2\"} > 100");

    let mut args: Vec<&str> = vec!["repl", "--last"];
    args.extend(sets.iter().map(String::as_str));
    let mut p = pty(&t, &args);
    p.exp_string("live: v2 on green, from the deployment's journal")
        .unwrap();
    prompt(&mut p);
    p.send_line("status()").unwrap();
    p.exp_string("live: v2 on green (v2 100%) since").unwrap();
    p.exp_string("undo steps standing: ").unwrap();
    prompt(&mut p);
    p.send_line("metrics()").unwrap();
    // The live version first, then the one to roll back to.
    p.exp_string("v2: error_rate 0.3 (trigger 0.05: OVER)")
        .unwrap();
    p.exp_string("v1: error_rate 0.005 (trigger 0.05: ok)")
        .unwrap();
    prompt(&mut p);
    p.send_line("incident(\"shop errors after v2\", \"high\")")
        .unwrap();
    p.exp_string("open: shop errors after v2 (high)").unwrap();
    prompt(&mut p);
    p.send_line("let lead = input(\"Incident lead\", \"\");")
        .unwrap();
    answer(&mut p, "Incident lead:", "alice");
    prompt(&mut p);
    p.send_line("lead").unwrap();
    p.exp_string("=> alice").unwrap();
    prompt(&mut p);
    p.send_line("rollback()").unwrap();
    p.exp_string("Rollback complete").unwrap();
    p.exp_string("=> true").unwrap();
    prompt(&mut p);
    // Traffic measured back on v1 by real requests through nginx.
    assert_eq!(
        support::wait_for(&front, "v1"),
        "v1",
        "nginx serves blue after the rollback"
    );
    p.send_line("resolve()").unwrap();
    answer(&mut p, "Root cause:", "v2 failed 30% of requests");
    answer(&mut p, "Impact assessment:", "shop errors for some minutes");
    answer(
        &mut p,
        "Remediation steps:",
        "rolled back to v1 from the REPL",
    );
    answer(
        &mut p,
        "Prevention measures:",
        "canary with the error-rate query",
    );
    p.exp_string("incident resolved; report:").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();

    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0].1;
    let deployment = std::fs::read_dir(t.path().join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with("-shop"))
        .unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0], "# Incident Report - shop errors after v2",
        "{report}"
    );
    assert_eq!(
        lines[2],
        format!("- Incident: {}", reports[0].0),
        "{report}"
    );
    assert_eq!(lines[3], "- Severity: high", "{report}");
    assert!(lines[4].starts_with("- Opened: 20"), "{report}");
    assert_eq!(lines[5], "- Status: resolved", "{report}");
    assert!(lines[6].starts_with("- Closed: 20"), "{report}");
    assert_eq!(lines[7], "- By: tester", "{report}");
    assert!(
        lines[8].starts_with(&format!(
            "- Deployment: deployments/{deployment}, live since 20"
        )) && lines[8].ends_with(" (v2 on green (v2 100%))"),
        "{report}"
    );
    assert_eq!(lines[10], "## Milestones", "{report}");
    assert!(lines[12].starts_with("- Detected: 20"), "{report}");
    // The three undo steps the deploy left standing: the switch back, and the removal of v2 from
    // the idle colour and from staging.
    assert!(
        lines[13].starts_with("- Mitigated: 20")
            && lines[13].ends_with(&format!(
                "(rollback of deployments/{deployment}: 3 undo step(s) done)"
            )),
        "{report}"
    );
    assert!(lines[14].starts_with("- Resolved: 20"), "{report}");
    assert_eq!(lines[16], "## Deployment verdicts", "{report}");
    assert!(lines[18].contains(" success (v2)"), "{report}");
    let in_order = [
        "## Timeline",
        "> status()",
        "> metrics()",
        "effect measure `{\"prometheus\"",
        "= #{\"v1\": #{\"error_rate\": 0.005}, \"v2\": #{\"error_rate\": 0.3}}",
        "> incident(\"shop errors after v2\", \"high\")",
        "incident opened: shop errors after v2 (high)",
        "> let lead = input(\"Incident lead\", \"\");",
        "effect prompt.input `incident-lead`: ok",
        "> rollback()",
        "rollback started: rolled back from the REPL",
        "effect undo `undo: switch traffic back to v1`: ok",
        "rollback complete",
        "= true",
        "> resolve()",
        "## Root cause\n\nv2 failed 30% of requests\n",
        "## Impact assessment\n\nshop errors for some minutes\n",
        "## Remediation steps\n\nrolled back to v1 from the REPL\n",
        "## Prevention measures\n\ncanary with the error-rate query\n",
    ];
    let mut at = 0;
    for item in in_order {
        let found = report[at..]
            .find(item)
            .unwrap_or_else(|| panic!("{item:?} missing or out of order in\n{report}"));
        at += found + item.len();
    }
}

#[test]
fn repl_refuses_emergency_changes_to_a_deployment_whose_run_is_alive() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "adapter: script\nscript:\n  deploy: ./record deploy {env}\n  scale: ./record scale {env} {count}\n  maintenance: ./record maintenance {action}\n",
        )
        .executable("record", "#!/bin/sh\necho \"$*\" >> commands.txt\n")
        .file(
            "deploy.rhai",
            "on_rollback(\"nothing\", \"true\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
        );
    let deploy = t.another().args(&["deploy.rhai"]).spawn();
    let root = t.path().to_path_buf();
    let dir = wait_for_run(&root, "waiting");
    let shown = dir.strip_prefix(&root).unwrap().display().to_string();
    let pid = deploy.id();
    let holder = format!(
        "tester on [..] (pid {pid}) has held it for [..] (reason: deploy.rhai), run {shown}"
    );
    let stop_it = format!("\x20 help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or `kill -INT {pid}`; it offers its own rollback), then try again here\n");
    let refused = |call: &str| {
        let name = call.split('(').next().unwrap();
        format!(
            "runbook> {call}\nerror: `{name}()` refused: the run of `{shown}` is still alive: {holder}\n{stop_it}\
             \x20 help: or ask the run from here: `abort(\"why\")` and it rolls back itself; `pause()`, `resume()`, `promote()`\n\
             \x20--> <repl>:1:1\n  |\n1 | {call}\n  | ^\n"
        )
    };
    let out = piped(
        t,
        &["repl", "--deployment", &shown],
        "scale(3)\nmaintenance(true)\n",
    );
    out.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!(
            "{}{}{}2 of 2 lines failed: exit 1\n",
            greeting("repl", Some(&shown), None),
            refused("scale(3)"),
            refused("maintenance(true)")
        ));
    // Not attached: the environment's lock still names the live run.
    let out = piped(out.again(), &["repl"], "scale(3)\n");
    out.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_like(&format!(
            "{}runbook> scale(3)\nerror: `scale()` refused: another run holds the lock of `production`: {holder}\n{stop_it}\
             \x20--> <repl>:1:1\n  |\n1 | scale(3)\n  | ^\n1 of 1 lines failed: exit 1\n",
            greeting("repl-2", None, None)
        ));
    drop(deploy);
    assert!(!root.join("commands.txt").exists(), "{}", out.describe());
}

#[test]
fn repl_that_never_acts_leaves_no_run_directory_after_sigterm_either() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line("1 + 1").unwrap();
    p.exp_string("=> 2").unwrap();
    prompt(&mut p);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .unwrap();
    p.exp_eof().unwrap();
    let _ = p.process_mut().wait();
    assert_eq!(repl_dirs(t.path()), Vec::<String>::new());
}

#[test]
fn repl_last_honours_deployments_dir() {
    // A deployment under team-b/, none under ./deployments: `--last` with `--deployments-dir`
    // attaches to it.
    let t = Test::new().script("sh(\"true\");\non_rollback(\"undo\", \"true\");\n");
    let out = t.args(&["--deployments-dir", "team-b"]).run();
    out.expect_status(0);
    let out = piped(
        out.again(),
        &["repl", "--last", "--deployments-dir", "team-b"],
        "status().deployment\n",
    );
    // Named as the run named it (`team-b/...`), as a run under ./deployments is
    // (`deployments/...`), not by its full path.
    out.expect_status(0)
        .expect_stdout_like(
            "deployment team-b/<date>-deploy: completed\n  live: no traffic change recorded\n  last verdict: none\n\
             \x20 undo steps standing: 1 (undo): rollback() runs them\n  journal: intact\n=> team-b/<date>-deploy\n",
        )
        .expect_stderr_like(
            "runbook repl\n  journal: team-b/<date>-repl\n  attached to team-b/<date>-deploy: status(), rollback(), metrics()\n\
             \x20 :help for the primitives, :quit or Ctrl-D to leave\nrunbook> status().deployment\n",
        );
}

#[test]
fn repl_errors_look_as_on_the_command_line_and_hide_the_secrets() {
    let t = Test::new().file(
        "runbook.yaml",
        "secrets:\n  values:\n    TOKEN: hunter2-secret\n",
    );
    // The command line's error, in colour: its head is the coloured `error`.
    let out = t
        .command()
        .args(["--color", "always", "no-such-runbook"])
        .output()
        .unwrap();
    let cli = String::from_utf8_lossy(&out.stderr).into_owned();
    let head = cli.split(": ").next().unwrap().to_string();
    assert!(head.contains("error") && head != "error", "{cli}");
    let out = piped(
        t,
        &["repl", "--color", "always"],
        ":bogus\n:load hunter2-secret/x.rhai\nbogus()\n",
    );
    let said: Vec<String> = [
        "no command `:bogus`; :help lists them\n",
        "cannot read `[REDACTED]/x.rhai`\n  caused by: ",
        "no function `bogus`",
    ]
    .iter()
    .map(|said| format!("{head}: {said}"))
    .collect();
    let said: Vec<&str> = said.iter().map(String::as_str).collect();
    out.expect_status(1)
        .expect_stderr_contains(&said)
        .expect_stderr_lacks(&["hunter2-secret"]);
    // The session went on after each error.
    assert!(
        out.stderr.ends_with("1 of 1 lines failed: exit 1\n"),
        "{}",
        out.describe()
    );
}
