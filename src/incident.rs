//! An incident opened in the REPL: its own id and directory
//! (`deployments/<date>-incident-<n>/`), its timeline, and its report, written once, when it is
//! resolved or when the session ends with it still open (then marked abandoned).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::journal::{Entry, Record};

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
        let records = crate::journal::read_entries(journal)
            .map(|(r, _)| r)
            .unwrap_or_default();
        let deployment = self.attached.as_ref().map(|d| {
            let records = crate::journal::read(&d.join(crate::journal::FILE_NAME))
                .map(|(r, _)| r)
                .unwrap_or_default();
            let entries: Vec<crate::journal::Entry> = records
                .iter()
                .map(crate::journal::Entry::from_value)
                .collect();
            (d, entries)
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
            crate::identity::user()
        );
        md.push_str(&match &deployment {
            None => "- Deployment: none attached\n".to_string(),
            Some((dir, entries)) => match live(entries) {
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
            crate::identity::user()
        ));
        md.push_str(&match mitigated(&records) {
            Some(m) => format!("- Mitigated: {m}\n"),
            None => "- Mitigated: no rollback in this session\n".into(),
        });
        md.push_str(&match closed {
            Closed::Resolved(_) => format!("- Resolved: {now}\n"),
            Closed::Abandoned(why) => format!("- Abandoned: {now} ({why})\n"),
        });

        if let Some((_, entries)) = &deployment {
            md.push_str("\n## Deployment verdicts\n\n");
            let verdicts: Vec<(&str, &Value)> = entries
                .iter()
                .filter_map(|e| match &e.record {
                    crate::journal::Record::Verdict { verdict, .. } => {
                        Some((e.ts.as_str(), verdict))
                    }
                    _ => None,
                })
                .collect();
            if verdicts.is_empty() {
                md.push_str("(none recorded)\n");
            }
            for (ts, v) in verdicts {
                let version = text(&v["version"]);
                md.push_str(&format!(
                    "- {} {}{}: {}\n",
                    ts,
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
    /// The `traffic` record it was read from (its time and fields, not the journal's bookkeeping).
    pub record: Value,
}

/// The last traffic change of a run, as the adapter recorded it (`traffic(#{ weights, colour })`,
/// a `traffic` record): what is live, at what weight. Planned changes (a dry-run's) are not live.
/// A journal with no such record (an adapter that does not call `traffic`) has none: nothing is
/// guessed from command lines or URLs.
pub fn live(entries: &[crate::journal::Entry]) -> Option<Live> {
    use crate::journal::Record;
    entries.iter().rev().find_map(|e| match &e.record {
        Record::Traffic {
            live,
            colour,
            weights,
            dry_run: false,
            stage,
        } => {
            let version = live.clone();
            let colour_name = colour.as_ref().and_then(Value::as_str).map(str::to_string);
            let shares: Vec<String> = weights
                .iter()
                .map(|(k, v)| format!("{k} {}%", text(v)))
                .collect();
            let mut what = version.clone().unwrap_or_else(|| "nothing".into());
            if let Some(c) = &colour_name {
                what.push_str(&format!(" on {c}"));
            }
            what.push_str(&format!(" ({})", shares.join(", ")));
            Some(Live {
                since: e.ts.clone(),
                what,
                version,
                colour: colour_name,
                record: serde_json::json!({
                    "ts": e.ts, "live": live, "colour": colour, "weights": weights, "stage": stage,
                }),
            })
        }
        _ => None,
    })
}

/// What is live for a deployment: its own last traffic change, unless another run rolled it back
/// since (`runbook rollback`, the REPL's `rollback()`): that run's journal has the traffic change
/// the rollback made, and it is the one that holds now.
pub fn live_of(dir: &std::path::Path, entries: &[crate::journal::Entry]) -> Option<Live> {
    use crate::journal::Record;
    let own = live(entries);
    let external = entries.iter().rev().find_map(|e| match &e.record {
        Record::UndoExternal(x) if x.ok && !x.by_run.is_empty() => {
            Some((e.ts.clone(), x.by_run.clone()))
        }
        _ => None,
    });
    let Some((ts, by_run)) = external else {
        return own;
    };
    if own.as_ref().is_some_and(|l| l.since > ts) {
        return own;
    }
    // The rolling-back run's directory, as it named itself, or beside this one.
    let named = std::path::PathBuf::from(&by_run);
    let theirs = if named.join(crate::journal::FILE_NAME).is_file() {
        Some(named)
    } else {
        named
            .file_name()
            .and_then(|n| dir.parent().map(|p| p.join(n)))
    };
    let from_rollback = theirs.and_then(|d| {
        let (entries, _) = crate::journal::read_entries(&d.join(crate::journal::FILE_NAME)).ok()?;
        let mut l = live(&entries)?;
        l.what = format!("{} (set by the rollback in {})", l.what, d.display());
        Some(l)
    });
    from_rollback.or(own)
}

/// The first rollback of the session that completed: when, of what, how many undo steps.
fn mitigated(entries: &[Entry]) -> Option<String> {
    let mut target = String::new();
    let mut undone = 0;
    for e in entries {
        match &e.record {
            Record::RollbackTarget { deployment, .. } => {
                target = deployment.clone();
                undone = 0;
            }
            Record::RollbackStart { .. } => undone = 0,
            Record::EffectResult(r) if r.kind == "undo" && r.ok => undone += 1,
            Record::RollbackEnd { ok: true, .. } => {
                let of = if target.is_empty() {
                    String::new()
                } else {
                    format!(" of {target}")
                };
                return Some(format!(
                    "{} (rollback{of}: {undone} undo step(s) done)",
                    e.ts
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
fn timeline(entries: &[Entry]) -> Vec<String> {
    let mut blocks: Vec<Block> = Vec::new();
    for e in entries {
        let ts = e.ts.clone();
        let (line, failed) = match &e.record {
            Record::ReplInput { text } => {
                blocks.push(Block {
                    ts,
                    input: Some(text.clone()),
                    lines: Vec::new(),
                    failed: false,
                });
                continue;
            }
            Record::ReplResult { value } => match value {
                Value::Null => ("= ok".to_string(), false),
                v => (format!("= {}", shortened(&text(v))), false),
            },
            Record::ReplError { error } => (format!("! {error}"), true),
            Record::EffectResult(r) => (effect_line(r), !r.ok),
            Record::IncidentOpen {
                title, severity, ..
            } => (format!("incident opened: {title} ({severity})"), false),
            Record::RollbackStart { reason, .. } => (format!("rollback started: {reason}"), false),
            Record::RollbackEnd { ok, stopped, .. } => (
                format!(
                    "rollback {}",
                    if *stopped {
                        "stopped by Ctrl-C"
                    } else if *ok {
                        "complete"
                    } else {
                        "INCOMPLETE"
                    }
                ),
                false,
            ),
            Record::RollbackForced { reason, .. } => (
                format!("rollback forced past a damaged journal: {reason}"),
                false,
            ),
            Record::ReplRefused { action, .. } => (format!("refused: {action}"), false),
            _ => continue,
        };
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

fn effect_line(r: &crate::record::EffectResult) -> String {
    format!(
        "effect {} `{}`: {}",
        r.kind,
        r.name,
        if r.ok {
            "ok".to_string()
        } else {
            format!("FAILED: {}", r.error.as_deref().unwrap_or(""))
        }
    )
}

#[cfg(test)]
mod live_tests {
    use super::*;
    use serde_json::json;

    fn entries(values: &[Value]) -> Vec<Entry> {
        values.iter().map(Entry::from_value).collect()
    }

    #[test]
    fn live_is_what_the_adapter_recorded_never_a_guess_from_a_url() {
        let guessable = json!({ "type": "effect.intent", "ts": "t1", "effect": 1, "kind": "http",
            "name": "POST http://fleet/_fleet/weights", "intent": { "url": "http://fleet/_fleet/weights" } });
        assert!(live(&entries(std::slice::from_ref(&guessable))).is_none());
        let recorded = json!({ "type": "traffic", "ts": "t2", "live": "v2", "colour": "green",
            "weights": { "v2": 100 }, "dry_run": false, "stage": "Deploy" });
        let planned = json!({ "type": "traffic", "ts": "t3", "live": "v3", "colour": null,
            "weights": { "v3": 100 }, "dry_run": true, "stage": null });
        let l = live(&entries(&[guessable, recorded, planned])).unwrap();
        assert_eq!(l.what, "v2 on green (v2 100%)");
        assert_eq!(l.since, "t2");
        assert_eq!(
            (l.version.as_deref(), l.colour.as_deref()),
            (Some("v2"), Some("green"))
        );
        assert_eq!(
            l.record,
            json!({ "ts": "t2", "live": "v2", "colour": "green", "weights": { "v2": 100 }, "stage": "Deploy" })
        );
    }
}
