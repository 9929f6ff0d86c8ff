//! An incident opened in the REPL: its own id and directory
//! (`deployments/<date>-incident-<n>/`), its timeline, and its report, written once, when it is
//! resolved or when the session ends with it still open (then marked abandoned).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The severities `incident(title, severity)` takes, most severe first.
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low"];

/// `incident(title)` alone.
pub const DEFAULT_SEVERITY: &str = "medium";

pub const REPORT: &str = "incident-report.md";

#[derive(Debug, Clone)]
pub struct Incident {
    /// `<date>-incident-<n>`: also its directory's name.
    pub id: String,
    pub dir: PathBuf,
    pub title: String,
    pub severity: String,
    pub opened: String,
    /// What was typed and answered, with when.
    pub timeline: Vec<(String, String)>,
}

/// How an incident was closed.
pub enum Closed {
    Resolved([String; 4]),
    /// The session ended (or another incident replaced it) with this one open.
    Abandoned(String),
}

/// The severity as written, or why it is not one.
pub fn severity(given: &str) -> Result<String, String> {
    let s = given.trim().to_ascii_lowercase();
    if SEVERITIES.contains(&s.as_str()) {
        return Ok(s);
    }
    let hint = crate::error::did_you_mean(&s, SEVERITIES.iter().copied())
        .map(|h| format!(" (did you mean `{h}`?)"))
        .unwrap_or_default();
    Err(format!(
        "the severity `{given}` is not one of {}{hint}",
        SEVERITIES.join(", ")
    ))
}

/// Claim the next free `<date>-incident-<n>` directory under `root`: creating it is the claim,
/// so two sessions on the same day never share one.
pub fn claim(root: &Path) -> Result<(String, PathBuf), String> {
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
    let date = &crate::journal::now_rfc3339()[..10];
    for n in 1..=100_000 {
        let id = format!("{date}-incident-{n}");
        let dir = root.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create `{}`: {e}", dir.display())),
        }
    }
    Err(format!(
        "no free incident directory under `{}`",
        root.display()
    ))
}

impl Incident {
    pub fn report_path(&self) -> PathBuf {
        self.dir.join(REPORT)
    }

    /// The report: the incident, its timeline (with the effects the REPL's journal recorded
    /// since it opened), and the four sections.
    pub fn render(&self, journal: &Path, closed: &Closed) -> String {
        let mut timeline = self.timeline.clone();
        if let Ok((records, _)) = crate::journal::read(journal) {
            for r in records.iter().filter(|r| r["type"] == "effect.result") {
                let ts = r["ts"].as_str().unwrap_or("").to_string();
                if ts < self.opened {
                    continue;
                }
                timeline.push((ts, effect_line(r)));
            }
        }
        // Stable: a result typed in the same instant as its effect stays after it.
        timeline.sort_by(|a, b| a.0.cmp(&b.0));
        let status = match closed {
            Closed::Resolved(_) => "resolved".to_string(),
            Closed::Abandoned(why) => format!("abandoned ({why})"),
        };
        let mut md = format!(
            "# Incident Report - {}\n\n- Incident: {}\n- Severity: {}\n- Opened: {}\n- Status: {status}\n- Closed: {}\n- By: {}\n\n## Timeline\n\n",
            self.title,
            self.id,
            self.severity,
            self.opened,
            crate::journal::now_rfc3339(),
            crate::primitives::prompt::user()
        );
        for (ts, what) in &timeline {
            md.push_str(&format!("- {ts} {}\n", what.replace('\n', " ")));
        }
        let sections = match closed {
            Closed::Resolved(s) => s.clone(),
            Closed::Abandoned(_) => {
                std::array::from_fn(|_| "(not given: the incident was abandoned)".to_string())
            }
        };
        let [cause, impact, remediation, prevention] = sections;
        md.push_str(&format!("\n## Root cause\n\n{cause}\n\n## Impact assessment\n\n{impact}\n\n## Remediation steps\n\n{remediation}\n\n## Prevention measures\n\n{prevention}\n"));
        md
    }
}

fn effect_line(r: &Value) -> String {
    format!(
        "effect {} `{}`: {}",
        r["kind"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or(""),
        if r["ok"] == true {
            "ok".to_string()
        } else {
            format!("FAILED: {}", r["error"].as_str().unwrap_or(""))
        }
    )
}

/// Write a report that must not exist yet: an incident's report is never overwritten.
pub fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
