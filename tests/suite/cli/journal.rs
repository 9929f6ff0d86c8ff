//! The journal as evidence: `verify`, torn records.

use crate::support;
use crate::support::Test;

#[test]
fn verify_finds_an_altered_removed_or_reordered_record_and_an_altered_end() {
    let out = Test::new()
        .script("sh(\"echo one\");\nsh(\"echo two\");\nsh(\"echo three\");\n")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo one\n  │ one\n$ echo two\n  │ two\n$ echo three\n  │ three\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let dir = out.run_dir();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let lines: Vec<String> = journal.lines().map(str::to_string).collect();
    assert!(out
        .artifact("deployment-plan.md")
        .contains(&format!("- Journal: {} records, final hash `", lines.len())));
    let d = dir.display().to_string();
    let ok = out.again().args(&["verify", &d]).run();
    // The final hash covers times and process ids: the text before it is pinned.
    ok.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&["ok: deployment-plan.md pins the last record"])
        .expect_stdout_contains(&[&format!(
            "\nok: {d}/journal.jsonl: {} records, hash chain intact; final hash ",
            lines.len()
        )]);
    let dir = ok.dir.clone();
    let run_dir = std::path::PathBuf::from(&d);
    let tamper = |edit: &dyn Fn(&mut Vec<String>)| -> (i32, String) {
        let mut l = lines.clone();
        edit(&mut l);
        std::fs::write(
            dir.join(&run_dir).join("journal.jsonl"),
            l.join("\n") + "\n",
        )
        .unwrap();
        let out = std::process::Command::new(support::BIN)
            .args(["verify", &d])
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A value changed in the third record.
    let (code, err) = tamper(&|l| {
        let mut v: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
        v["ts"] = serde_json::json!("2020-01-01T00:00:00.000Z");
        l[2] = v.to_string();
    });
    assert_eq!(code, 1);
    assert_eq!(err, format!("error: journal `{d}/journal.jsonl` is not intact at line 4: record 4 (seq 4) does not follow record 3: record 3 was altered, or records between them were removed or reordered\n  (3 records before it check out)\n"));
    // A record removed.
    let (code, err) = tamper(&|l| {
        l.remove(5);
    });
    assert_eq!(code, 1);
    assert_eq!(err, format!("error: journal `{d}/journal.jsonl` is not intact at line 6: record 6 (seq 7) does not follow record 5: record 5 was altered, or records between them were removed or reordered\n  (5 records before it check out)\n"));
    // Two records swapped.
    let (code, err) = tamper(&|l| l.swap(3, 4));
    assert_eq!(code, 1);
    assert_eq!(err, format!("error: journal `{d}/journal.jsonl` is not intact at line 4: record 4 (seq 5) does not follow record 3: record 3 was altered, or records between them were removed or reordered\n  (3 records before it check out)\n"));
    // The last record altered: the chain alone cannot tell, the pinned hash can.
    let (code, err) = tamper(&|l| {
        let last = l.len() - 1;
        l[last] = l[last].replace("completed", "rolled back");
    });
    assert_eq!(code, 1);
    // The pinned hash covers times and process ids: the text around it is pinned.
    let (before, after) = err.split_once("(hash ").unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        before,
        format!("error: journal `{d}/journal.jsonl` does not contain the record deployment-plan.md pins ")
    );
    assert!(
        after.ends_with("): its end was altered or removed after the artifacts were written\n"),
        "{err}"
    );
}

#[test]
fn a_torn_last_record_is_reported_by_verify_and_skipped_by_readers() {
    let out = Test::new()
        .script("on_rollback(\"u\", \"true\");\nsh(\"true\");\n")
        .run();
    out.expect_status(0)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ true\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n")
        .expect_stderr_exact("");
    let d = out.run_dir().display().to_string();
    let path = out.run_dir().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":99,\"type\":\"effect.int");
    std::fs::write(&path, text).unwrap();
    let v = out.again().args(&["verify", &d]).run();
    v.expect_status(1).expect_stdout_exact("").expect_stderr_exact(&format!(
        "error: journal `{d}/journal.jsonl` is not intact at line 9: the last record is incomplete (the run was cut off while writing it)\n  (8 records before it check out)\n"
    ));
    // The rollback runbook still reads it (the torn line is ignored) and undoes what stands.
    let rb = v.again().args(&["rollback", "--yes"]).run();
    rb.expect_status(3)
        .expect_stdout_exact("▶ <shipped>/runbooks/rollback.rhai — feature `rollback`\n  run directory: deployments/<date>-rollback\nDeployment: deployments/<date>-deploy\nUndo steps, in the order they will run:\n  ↩ u: true\n\n⚠\u{fe0f} Roll back deployments/<date>-deploy? (1 step(s)) (y/n):\n  → yes (--yes)\n\n━━ Rollback ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nRolling back: manual rollback\n↩ u (true)\n  ✓ u\nRollback complete: 1 step(s) undone.\n↩ Rolled back: manual rollback\n  artifacts in deployments/<date>-rollback: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact("");
    // Appending to it cut the torn fragment off into a record of its own: the chain holds again.
    let v = rb.again().args(&["verify", &d]).run();
    v.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "note: record 9 is a `journal.repaired` record: the record after record 8 was cut off mid-write (its fragment is kept in it)",
            "ok: deployment-plan.md pins the last record",
        ])
        .expect_stdout_contains(&[&format!(
            "\nok: {d}/journal.jsonl: 11 records, hash chain intact; final hash "
        )]);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert!(
        journal.contains(r#""torn_fragment":"{\"seq\":99,\"type\":\"effect.int""#),
        "{journal}"
    );
}

/// A run's process leaves its state to the exit (it is not taken apart): everything it wrote is
/// whole when the process has ended. The journal ends with `run.end` and verifies, the log ends
/// with the artifacts line, and the artifacts pin the journal's last record.
#[test]
fn everything_a_run_wrote_is_whole_when_its_process_has_ended() {
    let out = Test::new()
        .script("sh(\"echo one\");\nsh(\"echo two\");\n")
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n$ echo one\n  │ one\n$ echo two\n  │ two\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
    let dir = out.run_dir();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.end", "{journal}");
    assert_eq!(last["outcome"], "completed", "{journal}");
    let log = std::fs::read_to_string(dir.join("deployment-log.txt")).unwrap();
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .take(2)
        .map(|l| &l[l.find("] ").unwrap() + 2..])
        .collect();
    assert_eq!(
        tail,
        [
            "  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md"
                .replace("<date>-deploy", &dir.file_name().unwrap().to_string_lossy()),
            "✅ Run completed.".to_string(),
        ],
        "{log}"
    );
    assert!(log.ends_with('\n'));
    assert!(out
        .artifact("rollback-plan.md")
        .starts_with("# Rollback Plan - deploy"));
    let d = dir.display().to_string();
    out.again()
        .args(&["verify", &d])
        .run()
        .expect_status(0)
        .expect_stdout_lines(&["ok: deployment-plan.md pins the last record"]);
}
