#![no_main]
// A metrics endpoint's answer: Prometheus text format, a Prometheus HTTP API answer (with any
// status), or a JSON document read by a path. Samples, an outcome or an error; never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = runbook::analysis::text::parse_text(text);
        for status in [200, 400, 503] {
            if let Ok(series) = runbook::analysis::provider::prometheus_result(status, text) {
                let _ = runbook::analysis::provider::one_value(series, None, runbook::analysis::provider::Reduce::Avg);
            }
        }
        if let Some((path, doc)) = text.split_once('\n') {
            if let (Ok(p), Ok(v)) = (
                runbook::analysis::provider::json_pointer(path),
                serde_json::from_str::<serde_json::Value>(doc),
            ) {
                let _ = runbook::analysis::provider::json_value(&v, &p, path);
            }
        }
    }
});
