#![no_main]
// A journal: records, a torn-line warning or an error naming the line, never a panic; every
// record reads as a typed Record (Other when it fits no variant) and writes back; resume's replay
// index, the standing undos and the REPL's status read from whatever records it holds; and the
// artifacts render from them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((records, _)) = runbook::journal::parse(&text, std::path::Path::new("journal.jsonl")) {
        let entries: Vec<runbook::journal::Entry> =
            records.iter().map(runbook::journal::Entry::from_value).collect();
        for e in &entries {
            let _ = e.record.to_fields();
        }
        let _ = runbook::effects::ReplayIndex::build(&entries);
        let _ = runbook::undo::standing(&entries);
        let _ = runbook::incident::live(&entries);
        let _ = runbook::artifacts::status(std::path::Path::new("d"), &records, None);
        let _ = runbook::artifacts::plan(&entries);
        let _ = runbook::artifacts::rollback_plan(&entries);
        let _ = runbook::artifacts::post_mortem(&entries);
        let _ = runbook::artifacts::checklist(&entries);
        let _ = runbook::artifacts::snapshot(&entries);
    }
});
