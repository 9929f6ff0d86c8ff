//! The run's journal: append-only JSON lines, one record per event, flushed as it is written.
//! Everything else (the log, the artifacts, the post-mortem) is read from it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::secrets::Redactor;

pub const FILE_NAME: &str = "journal.jsonl";

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    seq: u64,
    redactor: Redactor,
    /// `--log-format json`: every record is also printed on stdout as it is written.
    echo: bool,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Journal {
    pub fn create(path: &Path, redactor: Redactor) -> Result<Journal, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("create journal", path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Some(file),
            seq: 0,
            redactor,
            echo: false,
        })
    }

    /// Open an existing journal to append to it, numbering on from its last record.
    pub fn append_to(path: &Path, redactor: Redactor) -> Result<Journal, Error> {
        let (records, _) = read(path)?;
        let last = records
            .iter()
            .filter_map(|r| r.get("seq").and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        let mut j = Journal::create(path, redactor)?;
        j.seq = last;
        Ok(j)
    }

    /// A journal that writes nowhere (used by `runbook check`).
    pub fn none() -> Journal {
        Journal {
            path: PathBuf::new(),
            file: None,
            seq: 0,
            redactor: Redactor::default(),
            echo: false,
        }
    }

    pub fn echo(mut self, on: bool) -> Journal {
        self.echo = on;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record of `kind` with `fields`; returns its sequence number.
    pub fn write(&mut self, kind: &str, fields: Value) -> Result<u64, Error> {
        self.seq += 1;
        let mut rec = Map::new();
        rec.insert("seq".into(), json!(self.seq));
        rec.insert("ts".into(), json!(now_rfc3339()));
        rec.insert("type".into(), json!(kind));
        if let Value::Object(f) = fields {
            rec.extend(f);
        }
        if let Some(file) = &mut self.file {
            let line = self.redactor.redact(&Value::Object(rec).to_string());
            if self.echo {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            file.write_all(line.as_bytes())
                .and_then(|_| file.write_all(b"\n"))
                .and_then(|_| file.flush())
                .map_err(|e| Error::io("write journal", &self.path, e))?;
        }
        Ok(self.seq)
    }
}

/// Read every record of a journal. A torn last line (the process died mid-write) is skipped with
/// a warning; a bad line anywhere else is an error that names it.
pub fn read(path: &Path) -> Result<(Vec<Value>, Option<String>), Error> {
    let file = File::open(path).map_err(|e| Error::io("read journal", path, e))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("read journal", path, e))?;
    let mut records = Vec::with_capacity(lines.len());
    let mut warning = None;
    let last = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => records.push(v),
            Ok(_) | Err(_) if i + 1 == last => {
                warning = Some(format!(
                    "{}:{}: the last record is incomplete (the run was cut off while writing it); it was ignored",
                    path.display(),
                    i + 1
                ));
            }
            Ok(_) => {
                return Err(Error::Journal {
                    file: path.display().to_string(),
                    message: format!("line {} is not a JSON object", i + 1),
                })
            }
            Err(e) => {
                return Err(Error::Journal {
                    file: path.display().to_string(),
                    message: format!("line {} is not valid JSON: {e}", i + 1),
                })
            }
        }
    }
    Ok((records, warning))
}
