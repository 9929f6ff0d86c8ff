//! The seed's "Deployment Monitor" block: redrawn in place on a terminal, one line per
//! measurement elsewhere.

use super::Ui;

pub struct Frame {
    pub feature: String,
    pub started: String,
    pub status: String,
    /// (label, value, healthy?) — `None` when the metric has no source.
    pub health: Vec<(String, String, Option<bool>)>,
    pub business: Vec<(String, String)>,
}

fn mark(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "➖",
    }
}

pub fn block(ui: &Ui, f: &Frame) -> Vec<String> {
    let mut out = vec![
        ui.bold(&format!("## Deployment Monitor - {}", f.feature)),
        format!("Started: {}", f.started),
        format!("Status: {}", f.status),
        String::new(),
        ui.bold("### Health Metrics"),
    ];
    for (label, value, ok) in &f.health {
        out.push(format!("- {label}: {value} {}", mark(*ok)));
    }
    if !f.business.is_empty() {
        out.push(String::new());
        out.push(ui.bold("### Business Metrics"));
        for (label, value) in &f.business {
            out.push(format!("- {label}: {value}"));
        }
    }
    out
}

pub fn line(f: &Frame) -> String {
    let mut parts: Vec<String> = f
        .health
        .iter()
        .map(|(l, v, ok)| format!("{l} {v} {}", mark(*ok)))
        .collect();
    parts.extend(f.business.iter().map(|(l, v)| format!("{l} {v}")));
    format!("monitor [{}] {}", f.status, parts.join(" · "))
}
