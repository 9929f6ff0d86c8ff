#![no_main]
// A metrics endpoint's answer in Prometheus text format: samples or an error, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = runbook::primitives::metrics::parse_text(text);
    }
});
