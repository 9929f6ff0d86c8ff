#![no_main]
// An answers file: an error or answers, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = runbook::answers::Answers::parse(text, "answers.yaml");
    }
});
