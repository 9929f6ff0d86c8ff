//! The incident REPL (issue 12): the real binary, at a pseudo-terminal where a person would be,
//! and from a pipe.

use crate::support;

use crate::support::{pty, Test};

/// Wait for the prompt before typing, as a person would (keys typed before the line editor
/// reads the next line are not kept).
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

/// `runbook <args>` with `input` on stdin: (exit code, stdout, stderr).
fn piped(t: &Test, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = t
        .command()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn repl_refuses_to_roll_back_a_deployment_whose_run_is_alive() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"remove live.txt\", \"rm -f live.txt\");\nsh(\"touch live.txt\");\nlog(\"waiting\");\nsleep(\"60s\");\n",
    );
    let mut deploy = t
        .command()
        .arg("deploy.rhai")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = wait_for_run(t.path(), "waiting");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    for call in [
        "rollback()".to_string(),
        format!("undo_deployment(\"{shown}\", \"now\")"),
    ] {
        let (_, stdout, stderr) =
            piped(&t, &["repl", "--deployment", &shown], &format!("{call}\n"));
        let all = format!("{stdout}{stderr}");
        assert!(
            all.contains(&format!(
                "refused: the run of `{shown}` is still alive: tester on "
            )) && all.contains(&format!("(pid {})", deploy.id()))
                && all.contains(&format!(
                    "help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or `kill -INT {}`",
                    deploy.id()
                )),
            "{all}"
        );
        assert!(t.path().join("live.txt").exists(), "{all}");
    }
    // Once the run is gone, its undo steps are the REPL's to run.
    deploy.kill().unwrap();
    deploy.wait().unwrap();
    let (_, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "rollback()\n");
    assert!(!t.path().join("live.txt").exists(), "{stdout}{stderr}");
}

#[test]
fn repl_attaching_to_a_tampered_empty_or_garbage_journal_says_so_and_runs_no_undo_unless_forced() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"restore\", \"echo restored > restored.txt\");\nlog(\"deployed\");\n",
    );
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
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
    let (_, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "rollback()\n");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains(&format!(
            "warning: the journal `{shown}/journal.jsonl` is not intact at line {}: record {} (seq {}) does not follow record {line}",
            line + 1,
            line + 1,
            line + 1
        )),
        "{all}"
    );
    assert!(
        all.contains(
            "its undo steps do not run unless forced: rollback(#{ force: \"why it is safe\" })"
        ),
        "{all}"
    );
    assert!(!t.path().join("tampered.txt").exists(), "{all}");

    // Forced, with a reason: it runs, and the reason is recorded.
    let (_, stdout, stderr) = piped(
        &t,
        &["repl", "--deployment", &shown],
        "rollback(#{ force: \"checked the edit with alice\" })\n",
    );
    let all = format!("{stdout}{stderr}");
    assert!(t.path().join("tampered.txt").exists(), "{all}");
    let forced: Vec<serde_json::Value> = std::fs::read_dir(t.path().join("deployments"))
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
    assert_eq!(forced.len(), 1, "{all}");
    assert_eq!(forced[0]["reason"], "checked the edit with alice");

    // Empty and garbage journals are shown as such too.
    for (content, said) in [
        ("", "is empty"),
        (
            "this is not a journal\n",
            "is not intact at line 1: not a JSON record",
        ),
    ] {
        std::fs::create_dir_all(t.path().join("deployments/odd")).unwrap();
        std::fs::write(t.path().join("deployments/odd/journal.jsonl"), content).unwrap();
        let (_, stdout, stderr) = piped(
            &t,
            &["repl", "--deployment", "deployments/odd"],
            "rollback()\n",
        );
        let all = format!("{stdout}{stderr}");
        assert!(
            all.contains(&format!(
                "warning: the journal `deployments/odd/journal.jsonl` {said}"
            )),
            "{all}"
        );
        assert!(
            all.contains("its undo steps do not run unless forced"),
            "{all}"
        );
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
    let t = Test::new();
    let (code, stdout, stderr) = piped(
        &t,
        &["repl"],
        "incident(\"search 500s\", \"high\")\nresolve(\"bad index\", \"search down\", \"reindexed\", \"alerts\")\n\
         incident(\"checkout slow\")\nresolve(\"db\", \"slow checkouts\", \"failover\", \"capacity\")\n",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let day = today();
    let reports = incident_reports(t.path());
    let names: Vec<&str> = reports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{day}-incident-1").as_str(),
            format!("{day}-incident-2").as_str()
        ],
        "{stdout}{stderr}"
    );
    assert!(
        reports[0].1.starts_with(&format!(
            "# Incident Report - search 500s\n\n- Incident: {day}-incident-1\n- Severity: high\n"
        )),
        "{}",
        reports[0].1
    );
    assert!(reports[0].1.contains("## Root cause\n\nbad index\n"));
    // incident(title) alone: the default severity.
    assert!(
        reports[1].1.contains("- Severity: medium\n"),
        "{}",
        reports[1].1
    );
    let first = reports[0].1.clone();
    // A later session the same day: a third report, the first untouched.
    let (code, stdout, stderr) = piped(
        &t,
        &["repl"],
        "incident(\"search 500s again\", \"critical\")\nresolve(\"x\", \"y\", \"z\", \"w\")\n",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(reports[0].1, first);
    assert_eq!(reports[2].0, format!("{day}-incident-3"));
    assert!(reports[2].1.contains("- Severity: critical\n"));
    assert!(
        stdout.contains(&format!(
            "incident resolved; report: deployments/{day}-incident-3/incident-report.md"
        )),
        "{stdout}"
    );
}

#[test]
fn repl_incident_severity_is_checked_and_a_second_incident_is_refused_in_a_pipe() {
    let t = Test::new();
    let (_, stdout, stderr) = piped(
        &t,
        &["repl"],
        "incident(\"x\", \"hgih\")\nincident(\"first\", \"low\")\nincident(\"second\", \"high\")\nresolve(\"a\", \"b\", \"c\", \"d\")\n",
    );
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("error: the severity `hgih` is not one of critical, high, medium, low (did you mean `high`?)"),
        "{all}"
    );
    assert!(
        all.contains(
            "error: the incident `first` is still open: resolve() it before opening another"
        ),
        "{all}"
    );
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 1, "{all}");
    assert!(
        reports[0].1.starts_with("# Incident Report - first\n"),
        "{}",
        reports[0].1
    );
}

#[test]
fn repl_an_incident_open_at_the_end_of_input_is_written_as_abandoned() {
    let t = Test::new();
    let (_, stdout, stderr) = piped(
        &t,
        &["repl"],
        "incident(\"search 500s\", \"high\")\n40 + 2\n",
    );
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 1, "{stdout}{stderr}");
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
    assert!(
        stderr.contains(&format!(
            "the incident `search 500s` was still open: written as abandoned to deployments/{}/incident-report.md",
            reports[0].0
        )),
        "{stderr}"
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
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
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
    let t = Test::new();
    let (code, stdout, stderr) = piped(&t, &["repl"], "1 + 1\nbogus()\n2 + 2\n");
    assert_eq!(code, 1, "{stdout}\n---\n{stderr}");
    assert_eq!(stdout, "=> 2\n=> 4\n", "{stderr}");
    assert!(stderr.starts_with("runbook repl\n"), "{stderr}");
    assert!(stderr.contains("runbook> bogus()\n"), "{stderr}");
    assert!(stderr.contains("error: no function `bogus`"), "{stderr}");
    assert!(
        stderr.ends_with("1 of 3 lines failed: exit 1\n"),
        "{stderr}"
    );
    // Every line went well: 0.
    let (code, stdout, stderr) = piped(&t, &["repl"], "1 + 1\n");
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    assert_eq!(stdout, "=> 2\n");
}

#[test]
fn repl_answers_file_answers_the_questions_of_a_piped_session() {
    let t = Test::new().file(
        "answers.yaml",
        "who: alice\nincident-root-cause: bad index\nincident-impact: search down\n\
         incident-remediation: reindexed\nincident-prevention: alerts\n",
    );
    let (code, stdout, stderr) = piped(
        &t,
        &["repl", "--answers", "answers.yaml"],
        "input(\"Who\", \"\", #{ id: \"who\" })\nincident(\"search 500s\", \"high\")\nresolve()\n",
    );
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    assert!(stdout.contains("=> alice\n"), "{stdout}");
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 1, "{stdout}{stderr}");
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
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let (code, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "status()\n");
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    let summary: Vec<&str> = stdout.lines().take(5).collect();
    assert_eq!(
        summary[0],
        format!("deployment {shown}: completed"),
        "{stdout}"
    );
    assert!(
        // What the adapter recorded (`traffic`), never a guess from the command line.
        summary[1].starts_with("  live: v2 (v2 100%) since 20"),
        "{stdout}"
    );
    assert!(
        summary[2].starts_with("  last verdict: success (v2): error rate 0.1% under 1%, at 20"),
        "{stdout}"
    );
    assert_eq!(
        summary[3], "  undo steps standing: 2 (remove v2, switch back to v1): rollback() runs them",
        "{stdout}"
    );
    assert_eq!(summary[4], "  journal: intact", "{stdout}");
    assert!(
        stdout.lines().nth(5).unwrap_or("").starts_with("=> #{"),
        "{stdout}"
    );
}

#[test]
fn repl_did_you_mean_knows_every_callable_name() {
    let t = Test::new();
    let (_, _, stderr) = piped(
        &t,
        &["repl"],
        "stauts()\nmetrcs()\nscael(2)\npage_oncal(\"x\")\nrollbak()\nfn drain_all() { 1 }\ndrian_all()\n\
         import \"blue_green\" as bg;\nbg::deplyo(\"local\")\n",
    );
    for (typed, meant) in [
        ("stauts", "status"),
        ("metrcs", "metrics"),
        ("scael", "scale"),
        ("page_oncal", "page_oncall"),
        ("rollbak", "rollback"),
        ("drian_all", "drain_all"),
        ("bg::deplyo", "bg::deploy"),
    ] {
        let at = stderr
            .find(&format!("error: no function `{typed}`"))
            .unwrap_or_else(|| panic!("{typed}: {stderr}"));
        let rest = &stderr[at..];
        let next = rest[1..]
            .find("runbook> ")
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        assert!(
            rest[..next].contains(&format!("help: did you mean `{meant}`?")),
            "{typed}: {}",
            &rest[..next]
        );
    }
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
    let t = Test::new();
    let (code, stdout, stderr) = piped(&t, &["repl"], "1 + 1\n:help\nlet x = now();\nbogus()\n");
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(repl_dirs(t.path()), Vec::<String>::new(), "{stderr}");
    // One that acts keeps its journal.
    let (code, stdout, stderr) = piped(&t, &["repl"], "sh(\"true\")\n");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(repl_dirs(t.path()).len(), 1, "{stderr}");
}

#[test]
fn repl_a_second_rollback_says_when_and_by_whom_it_was_rolled_back() {
    let t = Test::new().file(
        "deploy.rhai",
        "on_rollback(\"restore v1\", \"touch restored\");\nlog(\"deployed\");\n",
    );
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let (_, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "rollback()\n");
    assert!(t.path().join("restored").exists(), "{stdout}{stderr}");
    let first = repl_dirs(t.path());
    assert_eq!(first.len(), 1);
    let (_, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "rollback()\n");
    let all = format!("{stdout}{stderr}");
    let at = all
        .find(&format!("`{shown}` was already rolled back at 20"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        all[at..].contains(&format!(
            " by tester (run deployments/{}): no undo step is standing",
            first[0]
        )),
        "{all}"
    );
    assert!(!all.contains("Nothing to undo"), "{all}");
}

#[test]
fn repl_leaving_with_maintenance_mode_on_gets_a_reminder() {
    let t = Test::new()
        .file(
            "runbook.yaml",
            "adapter: script\nscript:\n  deploy: ./deploy.sh {env}\n  maintenance: ./maint.sh {action}\n",
        )
        .executable("maint.sh", "#!/bin/sh\necho \"$1\" > maintenance-state\n");
    let (code, stdout, stderr) = piped(&t, &["repl"], "maintenance(true)\n");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(t.path().join("maintenance-state")).unwrap(),
        "on\n"
    );
    assert!(
        stderr.contains(
            "reminder: maintenance mode is still on (this session turned it on): maintenance(false) turns it off"
        ),
        "{stderr}"
    );
    // Turned off again: no reminder.
    let (code, stdout, stderr) = piped(&t, &["repl"], "maintenance(true)\nmaintenance(false)\n");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("reminder"), "{stderr}");
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
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let plan = std::fs::read_to_string(dir.join("deployment-plan.md")).unwrap();
    assert!(plan.contains("- Outcome: completed\n"), "{plan}");
    let (_, stdout, stderr) = piped(&t, &["repl", "--deployment", &shown], "rollback()\n");
    let repl = repl_dirs(t.path());
    assert_eq!(repl.len(), 1, "{stdout}{stderr}");
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
    let (_, stdout, _) = piped(&t, &["repl", "--deployment", &shown], "status().outcome\n");
    let first = stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!("deployment {shown}: rolled back by {by} at 20")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("=> rolled back by {by} at 20")),
        "{stdout}"
    );
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
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = wait_for_run(t.path(), "deployed");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let (_, stdout, stderr) = piped(
        &t,
        &["repl", "--deployment", &shown],
        "1 + 1\nincident(\"checkout errors\", \"high\")\n\
         try { sh(\"./check-lb\"); } catch { }\ntry { sh(\"./check-lb\"); } catch { }\n\
         try { sh(\"./check-lb\"); } catch { }\ntry { sh(\"./check-lb\"); } catch { }\n\
         sh(\"false\")\nrollback()\n\
         resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back\", \"canary analysis\")\n",
    );
    let reports = incident_reports(t.path());
    assert_eq!(reports.len(), 1, "{stdout}{stderr}");
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
    let (code, stdout, stderr) = piped(&t, &["repl"], "let m = metrics();\nm.v2.errors\n");
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    assert!(
        stdout.contains("  v1: requests 1000, errors 10, error rate 1% (trigger 5%: ok)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  v2: requests 200, errors 20, error rate 10% (trigger 5%: OVER)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("=> 20\n"), "{stdout}");
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
    let (code, stdout, stderr) = piped(&t, &["repl"], "metrics()\n");
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    assert!(
        stdout.contains("  v1: error_rate 0.01 (trigger 0.05: ok)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  v2: error_rate 0.1 (trigger 0.05: OVER)\n"),
        "{stdout}"
    );
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
    let out = t.command().arg("deploy.rhai").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
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

    let (code, stdout, stderr) = piped(&t, &["repl", "--last"], "status()\nscale(3)\n");
    assert_eq!(code, 0, "{stdout}\n---\n{stderr}");
    // Green is live: the scale goes there, for the live version.
    let commands = std::fs::read_to_string(t.path().join("commands.txt")).unwrap();
    assert_eq!(
        commands, "switch blue-to-green\nscale production-green 3\n",
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("  live: v2 on green (v2 100%) since 20"),
        "{stdout}"
    );
    assert!(
        stderr.contains("  live: v2 on green, from the deployment's journal"),
        "{stderr}"
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
    let t = Test::new();
    let (_, stdout, stderr) = piped(&t, &["repl"], &input);
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| stdout.contains(&format!("no help for `{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "no :help for {missing:?}\n{stdout}{stderr}"
    );
}

#[test]
fn repl_a_stdlib_module_not_imported_says_the_import_it_needs() {
    let t = Test::new();
    let (_, _, stderr) = piped(&t, &["repl"], "blue_green::deploy()\n");
    assert!(
        stderr.contains(
            "error: the module `blue_green` is not imported here: `import \"blue_green\" as blue_green;` first"
        ),
        "{stderr}"
    );
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
    let blue = support::start_app(dir.join("blue"));
    let green = support::start_app(dir.join("green"));
    let staging = support::start_app(dir.join("staging"));
    std::fs::write(dir.join("blue/version"), "v1\n").unwrap();
    let _nginx = support::Nginx::start(
        &dir,
        "shop",
        &format!("upstream shop {{ server 127.0.0.1:{blue}; }}\n"),
    );
    let port = _nginx.port;
    let front = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        support::wait_for(&front, "v1"),
        "v1",
        "nginx serves blue before the deploy"
    );

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
    let mut deploy = t
        .command()
        .arg("deploy.rhai")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = wait_for_run(t.path(), "waiting");
    let shown = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let (_, stdout, stderr) = piped(
        &t,
        &["repl", "--deployment", &shown],
        "scale(3)\nmaintenance(true)\n",
    );
    // Not attached: the environment's lock still names the live run.
    let (_, out2, err2) = piped(&t, &["repl"], "scale(3)\n");
    let _ = deploy.kill();
    let _ = deploy.wait();
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains(&format!(
            "`scale()` refused: the run of `{shown}` is still alive"
        )) && all.contains(&format!(
            "`maintenance()` refused: the run of `{shown}` is still alive"
        )),
        "{all}"
    );
    assert!(
        err2.contains("`scale()` refused: another run holds the lock of `production`: tester on ")
            && err2.contains(&format!("run {shown}")),
        "{out2}{err2}"
    );
    assert!(!t.path().join("commands.txt").exists(), "{all}");
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
    let again = out.again();
    let mut cmd = again.command();
    let child = cmd
        .args(["repl", "--last", "--deployments-dir", "team-b"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "status().deployment").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("team-b/"), "{stdout}\n{stderr}");
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
    let (code, stdout, stderr) = piped(
        &t,
        &["repl", "--color", "always"],
        ":bogus\n:load hunter2-secret/x.rhai\nbogus()\n",
    );
    assert_eq!(code, 1, "{stdout}\n---\n{stderr}");
    for said in [
        "no command `:bogus`; :help lists them\n",
        "cannot read `[REDACTED]/x.rhai`\n  caused by: ",
        "no function `bogus`",
    ] {
        assert!(
            stderr.contains(&format!("{head}: {said}")),
            "{said}\n{stderr}"
        );
    }
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
    // The session went on after each error.
    assert!(
        stderr.ends_with("1 of 1 lines failed: exit 1\n"),
        "{stderr}"
    );
}
