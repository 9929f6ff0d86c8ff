//! Documented claims about output, notifications and printing (issue #17), each proven by the
//! real binary: what `sh()` captures, what `notify` does with a channel it does not know, a
//! closed stdout, and the primitives' behaviours README states.

use std::process::{Command, Stdio};

use crate::support::{Test, BIN};

/// README.md's Primitives section: the table and the notes after it.
fn readme_primitives() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Primitives")
        .expect("README has a Primitives section");
    let end = readme[start..].find("\n## ").unwrap() + start;
    readme[start..end].to_string()
}

/// The documentation states what the test beside it proves.
#[track_caller]
fn readme_says(text: &str) {
    assert!(
        readme_primitives().contains(text),
        "README's Primitives section does not say: {text}"
    );
}

// ---------------------------------------------------------------- sh(): the bytes written

#[test]
fn sh_stdout_is_the_bytes_written_a_200kb_json_line_parses() {
    // One line of JSON, 200,000 bytes, no trailing newline: longer than any line buffer.
    let filler = "x".repeat(200_000 - r#"{"data":""}"#.len());
    let json = format!(r#"{{"data":"{filler}"}}"#);
    assert_eq!(json.len(), 200_000);
    let out = Test::new()
        .file("answer.json", &json)
        .script(
            r#"
            let r = sh("cat answer.json", #{ quiet: true });
            print(`length ${r.stdout.len()} lines ${r.stdout.split("\n").len()}`);
            let j = parse_json(r.stdout);
            print(`data ${j.data.len()} truncated ${r.truncated}`);
            "#,
        )
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ cat answer.json\nlength 200000 lines 1\ndata 199989 truncated false\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
}

#[test]
fn sh_keeps_carriage_returns_and_adds_no_newline() {
    let out = Test::new()
        .script(
            r#"
            let r = sh(["printf", "a\\r\\nb"]);
            if r.stdout != "a\r\nb" { throw `stdout was ${r.stdout.to_blob()}`; }
            let e = sh("printf 'one\r\ntwo' >&2");
            if e.stderr != "one\r\ntwo" { throw `stderr was ${e.stderr.to_blob()}`; }
            print("exact");
            "#,
        )
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ printf 'a\\r\\nb'\n  │ a\n  │ b\n$ printf 'one\r\ntwo' >&2\n  ! one\n  ! two\nexact\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
}

#[test]
fn capture_limit_keeps_exactly_the_first_n_bytes_and_says_it_cut() {
    let out = Test::new()
        .file("runbook.yaml", "commands:\n  capture_limit: 10\n")
        .script(
            r#"
            let r = sh("printf '0123456789ABCDEF\nxy\n'; printf 'abcdefghijklmnop' >&2");
            print(`stdout [${r.stdout}] stderr [${r.stderr}]`);
            print(`truncated ${r.truncated}`);
            let s = sh("printf 'short'");
            print(`short [${s.stdout}] truncated ${s.truncated}`);
            "#,
        )
        .run();
    // The live echo still shows every line, whole.
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ printf '0123456789ABCDEF\nxy\n'; printf 'abcdefghijklmnop' >&2\n  │ 0123456789ABCDEF\n  │ xy\n  ! abcdefghijklmnop\nstdout [0123456789] stderr [abcdefghij]\ntruncated true\n$ printf 'short'\n  │ short\nshort [short] truncated false\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    readme_says("`stdout` and `stderr` are the bytes the command wrote, read as UTF-8 (`\\r` and a missing last newline as written), the first `commands.capture_limit` bytes of each");
    readme_says("`truncated` is true when either was cut");
}

// ---------------------------------------------------------------- notify: never fatal

const CONSOLE: &str =
    "notify:\n  console: { type: stdout }\n  audit: { type: file, path: audit.jsonl }\n";

#[test]
fn an_unknown_channel_written_in_the_script_is_refused_before_anything_changes() {
    let out = Test::new()
        .file("runbook.yaml", CONSOLE)
        .script("sh(\"touch changed\");\n\nnotify(\"team\", \"deployed\");\n")
        .run();
    out.expect_status(2).expect_stdout_exact("");
    assert!(
        !out.dir.join("changed").exists(),
        "the run changed something"
    );
    out.expect_stderr_exact(
        "error: no notification channel `team`: the channels defined are audit, console\n \
         --> deploy.rhai:3:1\n  |\n3 | notify(\"team\", \"deployed\");\n  | ^\n  help: add \
         `team` under `notify:` in runbook.yaml (docs/configuration.md, \"Notification \
         channels\"), or name a channel that is defined\n",
    );
    // `runbook check` finds it too.
    let check = out.again().args(&["check", "deploy.rhai"]).run();
    check
        .expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: no notification channel `team`: the channels defined are audit, console\n --> deploy.rhai:3:1\n  |\n3 | notify(\"team\", \"deployed\");\n  | ^\n  help: add `team` under `notify:` in runbook.yaml (docs/configuration.md, \"Notification channels\"), or name a channel that is defined\n");
}

#[test]
fn an_unknown_channel_in_an_imported_module_is_found_by_check() {
    let out = Test::new()
        .file(
            "lib/tell.rhai",
            "fn everyone(m) {\n    notify([\"console\", \"pager\"], m);\n}\n",
        )
        .file("runbook.yaml", CONSOLE)
        .file(
            "deploy.rhai",
            "import \"lib/tell\" as tell;\ntell::everyone(\"hi\");\n",
        )
        .args(&["check", "deploy.rhai"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: no notification channel `pager`: the channels defined are audit, console\n --> lib/tell.rhai:2:5\n  |\n2 |     notify([\"console\", \"pager\"], m);\n  |     ^\n  help: add `pager` under `notify:` in runbook.yaml (docs/configuration.md, \"Notification channels\"), or name a channel that is defined\n");
}

#[test]
fn an_unknown_channel_computed_at_run_time_is_shown_and_journaled_never_fatal() {
    let out = Test::new()
        .file("runbook.yaml", CONSOLE)
        .script(
            r#"
            let name = "te" + "am";
            let ok = notify(name, "deployed");
            print(`notify returned ${ok}`);
            sh("touch after");
            "#,
        )
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nnotify returned false\n$ touch after\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("warning: notification to `team` failed: no notification channel `team`: the channels defined are audit, console\n");
    assert!(
        out.dir.join("after").exists(),
        "the run stopped at the notification"
    );
    let results: Vec<_> = out
        .records("effect.result")
        .into_iter()
        .filter(|r| r["kind"] == "notify")
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["ok"], false, "{results:?}");
}

#[test]
fn a_notification_that_cannot_be_delivered_is_not_fatal() {
    let out = Test::new()
        .file(
            "runbook.yaml",
            "notify:\n  audit: { type: file, path: no/such/dir/audit.jsonl }\n",
        )
        .script("notify(\"audit\", \"deployed\");\nsh(\"touch after\");\n")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ touch after\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("warning: notification to `audit` failed: cannot write `./no/such/dir/audit.jsonl`: No such file or directory (os error 2)\n");
    assert!(
        out.dir.join("after").exists(),
        "the run stopped at the notification"
    );
}

/// The first fenced block after `marker` in README.md with the given info string.
fn readme_block(marker: &str, info: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let from = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has no `{marker}`"));
    let fence = format!("```{info}\n");
    let start = readme[from..]
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{info} block after `{marker}` in README"))
        + from
        + fence.len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_string()
}

#[test]
fn the_readme_runbook_checks_with_the_config_shown_beside_it() {
    let script = readme_block("## A runbook", "rhai");
    let config = readme_block("## A runbook", "yaml");
    assert!(config.contains("team:"), "{config}");
    let out = Test::new()
        .file("lib/ops.rhai", "fn noop() {}\n")
        .file("runbook.yaml", &config)
        .file("deploy.rhai", &script)
        .args(&["check", "deploy.rhai"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("ok: deploy.rhai compiles with 1 module(s); config `runbook.yaml` is valid; answers not given\n")
        .expect_stderr_exact("");
    // Without the channel, the mistake is found before anything runs, not by a rollback.
    let out = Test::new()
        .file("lib/ops.rhai", "fn noop() {}\n")
        .file("deploy.rhai", &script)
        .args(&["check", "deploy.rhai"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        // (Where in README's runbook the call is, and so the excerpt, is README's business.)
        .expect_stderr_lines(&[
            "error: no notification channel `team`: the config defines none",
            "  help: add `team` under `notify:` in runbook.yaml (docs/configuration.md, \"Notification channels\"), or name a channel that is defined",
        ]);
}

// ---------------------------------------------------------------- a closed stdout

/// `runbook ARGS | head -1` through a shell: (stderr, runbook's own exit code).
fn into_head(t: &Test, args: &str) -> (String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' {args} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}} > .status"
        ))
        .current_dir(t.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let status = std::fs::read_to_string(t.path().join(".status")).unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        status.trim().to_string(),
    )
}

/// `runbook ARGS` with stdout a pipe whose reader is already gone: every write fails with EPIPE,
/// whatever the timing. (stderr, exit code).
fn into_closed_pipe(t: &Test, args: &[&str]) -> (String, i32) {
    let (reader, writer) = os_pipe::pipe().unwrap();
    drop(reader);
    let out = t
        .command()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[track_caller]
fn readme_exit_codes_say(text: &str) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Exit codes").unwrap();
    let section = readme[start..].replace('\n', " ");
    assert!(
        section.contains(text),
        "README's Exit codes section does not say: {text}"
    );
}

fn shipped_runbooks() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    names
}

#[test]
fn init_into_a_closed_pipe_writes_every_runbook_and_does_not_panic() {
    let t = Test::new();
    let (stderr, status) = into_head(&t, "init sub");
    assert_eq!(stderr, "", "printing did not stop quietly");
    assert_eq!(status, "0", "{stderr}");
    let (stderr, code) = into_closed_pipe(&t, &["init", "other"]);
    assert_eq!(stderr, "", "printing did not stop quietly");
    assert_eq!(code, 0, "{stderr}");
    for dir in ["sub", "other"] {
        assert!(
            t.path().join(dir).join("runbook.yaml").is_file(),
            "{dir}/runbook.yaml was not written"
        );
        for name in shipped_runbooks() {
            assert!(
                t.path().join(dir).join("runbooks").join(&name).is_file(),
                "{dir}/runbooks/{name} was not written"
            );
        }
    }
    readme_exit_codes_say("Output into a closed pipe (`runbook init | head -1`) is not an error, for every command: printing stops quietly, the work goes on (files, the journal, the run and its commands), and the exit code is the work's.");
}

#[test]
fn help_and_list_into_a_closed_pipe_do_not_panic() {
    let t = Test::new();
    let (stderr, status) = into_head(&t, "--help");
    assert_eq!(stderr, "", "printing did not stop quietly");
    assert_eq!(status, "0", "{stderr}");
    for args in [&["--help"][..], &["list"], &["completions", "bash"]] {
        let (stderr, code) = into_closed_pipe(&t, args);
        assert_eq!(stderr, "", "{args:?}: printing did not stop quietly");
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
}

#[test]
fn a_run_into_a_closed_pipe_finishes_its_work() {
    let t = Test::new().file(
        "x.rhai",
        "for i in 0..1000 { print(`line ${i}`); }\nsh(\"echo done > after\");\nsh(\"seq 1 1000\");\nsh(\"touch last\");\n",
    );
    let (stderr, status) = into_head(&t, "x.rhai");
    assert_eq!(stderr, "", "printing did not stop quietly");
    assert_eq!(status, "0", "{stderr}");
    assert!(
        t.path().join("after").is_file() && t.path().join("last").is_file(),
        "the work stopped with the printing: after {}, last {}",
        t.path().join("after").is_file(),
        t.path().join("last").is_file()
    );
    std::fs::remove_file(t.path().join("after")).unwrap();
    std::fs::remove_file(t.path().join("last")).unwrap();
    let (stderr, code) = into_closed_pipe(&t, &["x.rhai"]);
    assert_eq!(stderr, "", "printing did not stop quietly");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        t.path().join("after").is_file() && t.path().join("last").is_file(),
        "the work stopped with the printing: after {}, last {}",
        t.path().join("after").is_file(),
        t.path().join("last").is_file()
    );
}

// ---------------------------------------------------------------- README's primitives notes

#[test]
fn rollback_deployment_ends_the_run() {
    let first = Test::new()
        .script(
            "on_rollback(\"remove the marker\", \"rm -f deployed\");\nsh(\"touch deployed\");\n",
        )
        .run();
    first.expect_status(0);
    let dir = first.run_dir();
    let out = first
        .again()
        .file(
            "undo.rhai",
            "rollback_deployment(env(\"TARGET\"), \"bad release\");\nsh(\"touch after\");\n",
        )
        .args(&["undo.rhai"])
        .env("TARGET", dir.to_str().unwrap())
        .run();
    out.expect_status(3)
        .expect_stdout_exact("▶ undo.rhai — feature `undo`\n  run directory: deployments/<date>-undo\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: bad release\n↩ remove the marker (rm -f deployed)\n  ✓ remove the marker\nRollback complete: 1 step(s) undone.\n↩ Rolled back: bad release\n  artifacts in deployments/<date>-undo: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    assert!(!out.dir.join("deployed").exists(), "the undo did not run");
    assert!(
        !out.dir.join("after").exists(),
        "the run went on after rollback_deployment"
    );
    readme_says("`rollback_deployment` runs that run's standing undos and then ends this run, as `rollback` does (exit 3 when all succeeded, else 1; nothing after it runs)");
}

#[test]
fn sh_reads_no_stdin_and_says_when_it_timed_out() {
    let out = Test::new()
        .script(
            r#"
        let r = sh("cat");
        print(`stdin gave [${r.stdout}]`);
        let slow = sh("sleep 5", #{ timeout: "200ms", allow_fail: true });
        print(`timed_out ${slow.timed_out} ok ${slow.ok}`);
        let quick = sh("true");
        print(`timed_out ${quick.timed_out}`);
        "#,
        )
        .stdin("runbook's own stdin\n")
        .run();
    out.expect_status(0)
        .expect_stdout_like("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ cat\nstdin gave []\n$ sleep 5\n  ✗ command `sleep 5` timed out after [..] (allowed)\ntimed_out true ok false\n$ true\ntimed_out false\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    readme_says("Its stdin is /dev/null.");
    readme_says("returns `#{code, stdout, stderr, duration, ok, timed_out, truncated, attempts}`");
    readme_says("a timeout throws, or with `allow_fail` returns `timed_out: true`");
}

#[test]
fn yes_answers_input_with_its_default() {
    let out = Test::new()
        .script("let v = input(\"Release name?\", \"spring\");\nprint(`name ${v}`);\n")
        .args(&["--yes"])
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n  → spring (default)\nname spring\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let empty = Test::new()
        .script("let v = input(\"Release name?\", \"\");\nprint(`name [${v}]`);\n")
        .args(&["--yes"])
        .run();
    empty
        .expect_status(2)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("error: input `release-name` needs an answer and there is no terminal to ask\n  question: Release name?\n  help: answer it in a file given with `--answers FILE`, as `release-name: some text`\n  help: or set the environment variable RUNBOOK_ANSWER_RELEASE_NAME\n");
    readme_says("`--yes` answers it with `default` (an empty default still needs an answer)");
}

#[test]
fn notify_takes_an_array_of_channels() {
    let out = Test::new()
        .file(
            "runbook.yaml",
            "notify:\n  a: { type: file, path: a.jsonl }\n  b: { type: file, path: b.jsonl }\n",
        )
        .script("let ok = notify([\"a\", \"b\"], \"both\");\nprint(`returned ${ok}`);\n")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n  ✉ a: both\n  ✉ b: both\nreturned true\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    for f in ["a.jsonl", "b.jsonl"] {
        let text = std::fs::read_to_string(out.dir.join(f)).unwrap();
        assert!(text.contains("\"text\":\"both\""), "{f}: {text}");
    }
    readme_says("or to each of an array of them (`notify([\"team\", \"audit\"], msg)`); returns true when every one took it");
}
