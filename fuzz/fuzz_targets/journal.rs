#![no_main]
// A journal: records, a torn-line warning or an error naming the line, never a panic; and the
// artifacts render from whatever records it holds.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((records, _)) = runbook::journal::parse(&text, std::path::Path::new("journal.jsonl")) {
        let _ = runbook::artifacts::plan(&records);
        let _ = runbook::artifacts::rollback_plan(&records);
        let _ = runbook::artifacts::post_mortem(&records);
        let _ = runbook::artifacts::checklist(&records);
        let _ = runbook::artifacts::snapshot(&records);
    }
});
