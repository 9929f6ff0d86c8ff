#![no_main]
// runbook.yaml text: an error or a value, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = runbook::config::parse(text, "runbook.yaml");
    }
});
