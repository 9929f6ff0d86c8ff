//! The journal as evidence: `verify`, torn records.

use crate::support;
use crate::support::Test;

#[test]
fn verify_finds_an_altered_removed_or_reordered_record_and_an_altered_end() {
    let out = Test::new()
        .script("sh(\"echo one\");\nsh(\"echo two\");\nsh(\"echo three\");\n")
        .run();
    out.code(0);
    let dir = out.run_dir();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let lines: Vec<String> = journal.lines().map(str::to_string).collect();
    assert!(out
        .artifact("deployment-plan.md")
        .contains(&format!("- Journal: {} records, final hash `", lines.len())));
    let d = dir.display().to_string();
    let ok = out.again().args(&["verify", &d]).run();
    ok.code(0);
    assert!(
        ok.stdout
            .contains("ok: deployment-plan.md pins the last record\n"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout
            .contains(&format!("{} records, hash chain intact", lines.len())),
        "{}",
        ok.stdout
    );
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
    assert!(err.contains("is not intact at line 4: record 4 (seq 4) does not follow record 3: record 3 was altered"), "{err}");
    // A record removed.
    let (code, err) = tamper(&|l| {
        l.remove(5);
    });
    assert_eq!(code, 1);
    assert!(err.contains("is not intact at line 6"), "{err}");
    // Two records swapped.
    let (code, err) = tamper(&|l| l.swap(3, 4));
    assert_eq!(code, 1);
    assert!(err.contains("is not intact at line 4"), "{err}");
    // The last record altered: the chain alone cannot tell, the pinned hash can.
    let (code, err) = tamper(&|l| {
        let last = l.len() - 1;
        l[last] = l[last].replace("completed", "rolled back");
    });
    assert_eq!(code, 1);
    assert!(
        err.contains("does not contain the record deployment-plan.md pins"),
        "{err}"
    );
}

#[test]
fn a_torn_last_record_is_reported_by_verify_and_skipped_by_readers() {
    let out = Test::new()
        .script("on_rollback(\"u\", \"true\");\nsh(\"true\");\n")
        .run();
    out.code(0);
    let d = out.run_dir().display().to_string();
    let path = out.run_dir().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":99,\"type\":\"effect.int");
    std::fs::write(&path, text).unwrap();
    let v = out.again().args(&["verify", &d]).run();
    v.code(1);
    assert!(
        v.stderr
            .contains("the last record is incomplete (the run was cut off while writing it)"),
        "{}",
        v.stderr
    );
    // The rollback runbook still reads it (the torn line is ignored) and undoes what stands.
    let rb = v.again().args(&["rollback", "--yes"]).run();
    rb.code(3);
    assert!(rb.stdout.contains("↩ u (true)"), "{}", rb.stdout);
    // Appending to it cut the torn fragment off into a record of its own: the chain holds again.
    let v = rb.again().args(&["verify", &d]).run();
    v.code(0);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert!(
        journal.contains(r#""torn_fragment":"{\"seq\":99,\"type\":\"effect.int""#),
        "{journal}"
    );
}
