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
    /// The deployment the REPL is attached to.
    pub attached: Option<PathBuf>,
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

    /// The report: the incident and the deployment it is about, its milestones (detected,
    /// mitigated, resolved), the deployment's verdicts, and the session's timeline from the
    /// REPL's journal (every line typed since attaching, each followed by the effects it caused
    /// and its result, repeated identical lines folded); then the four sections.
    pub fn render(&self, journal: &Path, closed: &Closed) -> String {
        let records = crate::journal::read(journal)
            .map(|(r, _)| r)
            .unwrap_or_default();
        let deployment = self.attached.as_ref().map(|d| {
            let records = crate::journal::read(&d.join(crate::journal::FILE_NAME))
                .map(|(r, _)| r)
                .unwrap_or_default();
            (d, records)
        });
        let now = crate::journal::now_rfc3339();
        let status = match closed {
            Closed::Resolved(_) => "resolved".to_string(),
            Closed::Abandoned(why) => format!("abandoned ({why})"),
        };
        let mut md = format!(
            "# Incident Report - {}\n\n- Incident: {}\n- Severity: {}\n- Opened: {}\n- Status: {status}\n- Closed: {now}\n- By: {}\n",
            self.title,
            self.id,
            self.severity,
            self.opened,
            crate::primitives::prompt::user()
        );
        md.push_str(&match &deployment {
            None => "- Deployment: none attached\n".to_string(),
            Some((dir, records)) => match live(records) {
                Some(l) => format!(
                    "- Deployment: {}, live since {} ({})\n",
                    dir.display(),
                    l.since,
                    l.what
                ),
                None => format!(
                    "- Deployment: {} (no traffic change recorded)\n",
                    dir.display()
                ),
            },
        });

        md.push_str(&format!(
            "\n## Milestones\n\n- Detected: {} (incident opened by {})\n",
            self.opened,
            crate::primitives::prompt::user()
        ));
        md.push_str(&match mitigated(&records) {
            Some(m) => format!("- Mitigated: {m}\n"),
            None => "- Mitigated: no rollback in this session\n".into(),
        });
        md.push_str(&match closed {
            Closed::Resolved(_) => format!("- Resolved: {now}\n"),
            Closed::Abandoned(why) => format!("- Abandoned: {now} ({why})\n"),
        });

        if let Some((_, records)) = &deployment {
            md.push_str("\n## Deployment verdicts\n\n");
            let verdicts: Vec<&Value> = records.iter().filter(|r| r["type"] == "verdict").collect();
            if verdicts.is_empty() {
                md.push_str("(none recorded)\n");
            }
            for r in verdicts {
                let v = &r["verdict"];
                let version = text(&v["version"]);
                md.push_str(&format!(
                    "- {} {}{}: {}\n",
                    text(&r["ts"]),
                    text(&v["verdict"]),
                    if version.is_empty() {
                        String::new()
                    } else {
                        format!(" ({version})")
                    },
                    text(&v["reason"])
                ));
            }
        }

        md.push_str("\n## Timeline\n\n");
        for line in timeline(&records) {
            md.push_str(&format!("- {}\n", line.replace('\n', " ")));
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What is live according to a run's journal.
pub struct Live {
    pub since: String,
    /// For a person: "v2 on green (v2 100%)".
    pub what: String,
    pub version: Option<String>,
    pub colour: Option<String>,
    /// The record it was read from (a `traffic` record, or a traffic effect's intent).
    pub record: Value,
}

/// The last traffic change of a run: the adapter's own `traffic` record (what is live, at what
/// weight); for journals from before adapters wrote one, the last effect that looks like a
/// traffic change.
pub fn live(records: &[Value]) -> Option<Live> {
    if let Some(r) = records
        .iter()
        .rfind(|r| r["type"] == "traffic" && r["dry_run"] != true)
    {
        let version = r["live"].as_str().map(str::to_string);
        let colour = r["colour"].as_str().map(str::to_string);
        let weights: Vec<String> = r["weights"]
            .as_object()
            .map(|w| w.iter().map(|(k, v)| format!("{k} {}%", text(v))).collect())
            .unwrap_or_default();
        let mut what = version.clone().unwrap_or_else(|| "nothing".into());
        if let Some(c) = &colour {
            what.push_str(&format!(" on {c}"));
        }
        what.push_str(&format!(" ({})", weights.join(", ")));
        let mut record = r.clone();
        if let Value::Object(m) = &mut record {
            // The journal's own bookkeeping is no part of what is live.
            for k in ["prev", "seq", "type", "dry_run"] {
                m.remove(k);
            }
        }
        return Some(Live {
            since: text(&r["ts"]),
            what,
            version,
            colour,
            record,
        });
    }
    last_traffic(records).map(|r| Live {
        since: text(&r["ts"]),
        what: describe_traffic(&r["intent"]),
        version: None,
        colour: None,
        record: r["intent"].clone(),
    })
}

/// The last effect that looks like a traffic change (an adapter's weights, flag or switch).
fn last_traffic(records: &[Value]) -> Option<&Value> {
    records.iter().rfind(|r| {
        let t = r.to_string();
        r["type"] == "effect.intent"
            && (t.contains("/_fleet/weights")
                || t.contains("/_fleet/flag")
                || t.contains("switch-traffic")
                || t.contains("virtualservice")
                || t.contains("\"switch: "))
    })
}

fn describe_traffic(intent: &Value) -> String {
    match (intent["command"].as_str(), intent["url"].as_str()) {
        (Some(c), _) => format!("`{c}`"),
        (None, Some(u)) => format!("{} {u}", intent["method"].as_str().unwrap_or(""))
            .trim()
            .to_string(),
        _ => intent.to_string(),
    }
}

/// The first rollback of the session that completed: when, of what, how many undo steps.
fn mitigated(records: &[Value]) -> Option<String> {
    let mut target = String::new();
    let mut undone = 0;
    for r in records {
        match r["type"].as_str().unwrap_or("") {
            "rollback.target" => {
                target = text(&r["deployment"]);
                undone = 0;
            }
            "rollback.start" => undone = 0,
            "effect.result" if r["kind"] == "undo" && r["ok"] == true => undone += 1,
            "rollback.end" if r["ok"] == true => {
                let of = if target.is_empty() {
                    String::new()
                } else {
                    format!(" of {target}")
                };
                return Some(format!(
                    "{} (rollback{of}: {undone} undo step(s) done)",
                    text(&r["ts"])
                ));
            }
            _ => {}
        }
    }
    None
}

/// A long value (a whole status map) cut to a line; the journal keeps all of it.
fn shortened(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}… (in full in the journal)")
}

/// One line typed and what followed it, until the next.
struct Block {
    ts: String,
    input: Option<String>,
    lines: Vec<(String, String)>,
    failed: bool,
}

/// The session's timeline from its journal, in journal order: each line typed, the effects it
/// caused, its result. Consecutive identical lines are folded into one, with how many went well.
fn timeline(records: &[Value]) -> Vec<String> {
    let mut blocks: Vec<Block> = Vec::new();
    for r in records {
        let ts = text(&r["ts"]);
        let line = match r["type"].as_str().unwrap_or("") {
            "repl.input" => {
                blocks.push(Block {
                    ts,
                    input: Some(text(&r["text"])),
                    lines: Vec::new(),
                    failed: false,
                });
                continue;
            }
            "repl.result" => match &r["value"] {
                Value::Null => "= ok".to_string(),
                v => format!("= {}", shortened(&text(v))),
            },
            "repl.error" => format!("! {}", text(&r["error"])),
            "effect.result" => effect_line(r),
            "incident.open" => format!(
                "incident opened: {} ({})",
                text(&r["title"]),
                text(&r["severity"])
            ),
            "rollback.start" => format!("rollback started: {}", text(&r["reason"])),
            "rollback.end" => format!(
                "rollback {}",
                if r["stopped"] == true {
                    "stopped by Ctrl-C"
                } else if r["ok"] == true {
                    "complete"
                } else {
                    "INCOMPLETE"
                }
            ),
            "rollback.forced" => format!(
                "rollback forced past a damaged journal: {}",
                text(&r["reason"])
            ),
            "repl.refused" => format!("refused: {}", text(&r["action"])),
            _ => continue,
        };
        let failed =
            (r["type"] == "repl.error") || (r["type"] == "effect.result" && r["ok"] == false);
        match blocks.last_mut() {
            Some(b) => {
                b.failed |= failed;
                b.lines.push((ts, line));
            }
            None => blocks.push(Block {
                ts: ts.clone(),
                input: None,
                lines: vec![(ts, line)],
                failed,
            }),
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let same = blocks[i..]
            .iter()
            .take_while(|b| b.input.is_some() && b.input == blocks[i].input)
            .count();
        if same > 1 {
            let failed = blocks[i..i + same].iter().filter(|b| b.failed).count();
            let ok = same - failed;
            let tally = if failed == 0 {
                format!("{ok} ok")
            } else {
                format!("{ok} ok, {failed} failed")
            };
            out.push(format!(
                "{} > {} ×{same}: {tally} (until {})",
                blocks[i].ts,
                blocks[i].input.as_deref().unwrap_or(""),
                blocks[i + same - 1].ts
            ));
            i += same;
            continue;
        }
        let b = &blocks[i];
        if let Some(input) = &b.input {
            out.push(format!("{} > {input}", b.ts));
        }
        for (ts, line) in &b.lines {
            out.push(format!("{ts} {line}"));
        }
        i += 1;
    }
    out
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

fn effect_line(r: &Value) -> String {
    format!(
        "effect {} `{}`: {}",
        text(&r["kind"]),
        text(&r["name"]),
        if r["ok"] == true {
            "ok".to_string()
        } else {
            format!("FAILED: {}", text(&r["error"]))
        }
    )
}
