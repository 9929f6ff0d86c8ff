//! The run's journal: append-only JSON lines, one record per event, each written whole with one
//! `write`, and synced to disk (`fdatasync`) before the effect it announces proceeds. Each record
//! carries `prev`, the SHA-256 of the line before it, so `runbook verify` finds an altered,
//! removed or reordered record. Everything else (the log, the artifacts, the post-mortem) is read
//! from it.
//!
//! What is synced when (docs/reliability.md, "Durability"): an effect's intent, and everything
//! before it, is on disk before the effect acts; a result is only written (it survives the
//! process being killed, in the page cache) and becomes durable with the next intent or the
//! run's end. Directory entries a run creates (its journal's name, the lock it takes) are synced
//! on threads of their own while the run starts, and the first record that must be durable
//! waits for them (`sync_before_next_effect`).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde_json::{json, Map, Value};

use crate::error::Error;
pub use crate::record::{Entry, Record};
use crate::secrets::Redactor;

pub const FILE_NAME: &str = "journal.jsonl";

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    seq: u64,
    redactor: Redactor,
    /// `--log-format json`: every record is also printed on stdout as it is written.
    echo: bool,
    /// SHA-256 (hex) of the last line written: the next record's `prev`.
    last_hash: String,
    /// The journal's length after the last whole record: a failed append is cut back to it.
    len: u64,
    /// A failed append could not be cut back: repair before writing anything else.
    torn: bool,
    /// A test hook: die by SIGKILL right after writing the record with this number
    /// (`RUNBOOK_FAULT_KILL_AFTER_RECORD`), so a crash can be placed between any two records.
    kill_after: Option<u64>,
}

fn kill_after() -> Option<u64> {
    std::env::var("RUNBOOK_FAULT_KILL_AFTER_RECORD")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn line_hash(line: &str) -> String {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(line.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 15)] as char);
    }
    hex
}

/// Syncs running in the background whose durability the next effect must wait for.
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Sync each of `paths` (files or directories) on a thread of its own, now, while the caller
/// goes on; the next record that must be durable (an effect's intent, the end of the run) waits
/// for them, so nothing acts before they are on disk. Concurrent syncs share the file system's
/// journal commits, where one after the other each waits for its own. Best effort, as a
/// directory sync always was here: some file systems cannot sync a directory.
pub fn sync_before_next_effect(paths: Vec<PathBuf>) {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    for path in paths {
        let spawned = std::thread::Builder::new().name("sync".into()).spawn({
            let path = path.clone();
            move || {
                let _ = File::open(&path).and_then(|f| f.sync_all());
            }
        });
        match spawned {
            Ok(handle) => pending.push(handle),
            // No thread to be had: sync it here and now.
            Err(_) => {
                let _ = File::open(&path).and_then(|f| f.sync_all());
            }
        }
    }
}

/// Wait for the syncs `sync_before_next_effect` began.
fn settle_pending() {
    let handles = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for handle in handles {
        let _ = handle.join();
    }
}

/// Records after which the journal is synced to disk: an effect must not proceed before its
/// intent (and all before it) is durable; the end of a run is the last word.
fn must_sync(kind: &str) -> bool {
    // A rehearsal (`runbook test`, on the virtual clock) acts on nothing: its journal is a
    // record to read, with no effect to be durable before.
    !crate::clock::is_virtual()
        && matches!(
            kind,
            "effect.intent" | "run.end" | "undo.external" | "undo.external.start"
        )
}

pub fn now_rfc3339() -> String {
    crate::clock::rfc3339()
}

impl Journal {
    pub fn create(path: &Path, redactor: Redactor) -> Result<Journal, Error> {
        let new = !path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("create journal", path, e))?;
        if new {
            // The journal's name is durable only once its directory (and that directory's own
            // entry in the deployments directory) is synced: begun now, waited for before the
            // first effect acts.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dirs = dir.into_iter().chain(dir.and_then(Path::parent)).map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_path_buf()
                }
            });
            sync_before_next_effect(dirs.collect());
        }
        let len = file
            .metadata()
            .map_err(|e| Error::io("create journal", path, e))?
            .len();
        Ok(Journal {
            path: path.to_path_buf(),
            file: Some(file),
            seq: 0,
            redactor,
            echo: false,
            last_hash: GENESIS.to_string(),
            len,
            torn: false,
            kill_after: kill_after(),
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
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read journal", path, e))?;
        // A torn last line (the writer died mid-record) would swallow the next record: cut it
        // off, and keep its text in a record of its own so nothing is lost.
        let torn = if text.is_empty() || text.ends_with('\n') {
            None
        } else {
            let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io("repair journal", path, e))?;
            f.set_len(keep as u64)
                .map_err(|e| Error::io("repair journal", path, e))?;
            Some((text[keep..].to_string(), &text[..keep]))
        };
        let complete = torn.as_ref().map(|(_, c)| *c).unwrap_or(&text);
        let mut j = Journal::create(path, redactor)?;
        j.seq = last;
        if let Some(line) = complete.lines().rev().find(|l| !l.trim().is_empty()) {
            j.last_hash = line_hash(line);
        }
        if let Some((torn_fragment, _)) = torn {
            j.append(&Record::JournalRepaired { torn_fragment })?;
        }
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
            last_hash: GENESIS.to_string(),
            len: 0,
            torn: false,
            kill_after: None,
        }
    }

    /// The hash of the last record written.
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    pub fn echo(mut self, on: bool) -> Journal {
        self.echo = on;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record; returns its sequence number. The line is the envelope (`seq`, `ts`,
    /// `type`, `prev`) and the record's fields, redacted.
    pub fn append(&mut self, record: &Record) -> Result<u64, Error> {
        let (kind, fields) = record.to_fields();
        self.write(&kind, fields)
    }

    fn write(&mut self, kind: &str, fields: Map<String, Value>) -> Result<u64, Error> {
        if self.torn {
            self.cut_back()?;
        }
        self.seq += 1;
        // The envelope joins the record's own fields (a sorted map: the line is the same
        // whichever goes in first).
        let mut rec = fields;
        rec.insert("seq".into(), json!(self.seq));
        rec.insert("ts".into(), json!(now_rfc3339()));
        rec.insert("type".into(), json!(kind));
        rec.insert("prev".into(), json!(self.last_hash));
        if let Some(file) = &mut self.file {
            let line = self.redactor.redact(&Value::Object(rec).to_string());
            if self.echo {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            // One write per record: a crash leaves at most a torn last line, never a mixed one.
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            let written = file.write_all(&bytes).and_then(|_| {
                if must_sync(kind) {
                    // fdatasync: the data and the size that reaches it, not the times. The
                    // results written since the last sync become durable with it.
                    let synced = file.sync_data();
                    settle_pending();
                    synced
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                // A full disk or a size limit writes part of a record: cut it back off, so the
                // record is absent rather than torn (and nothing is appended to its half).
                self.seq -= 1;
                self.torn = true;
                let _ = self.cut_back();
                return Err(Error::io("write journal", &self.path, e));
            }
            self.len += bytes.len() as u64;
            self.last_hash = line_hash(&line);
            if self.kill_after == Some(self.seq) {
                // SAFETY: the test hook above: this process ends here.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
        }
        Ok(self.seq)
    }

    /// Cut the journal back to its last whole record.
    fn cut_back(&mut self) -> Result<(), Error> {
        if let Some(file) = &self.file {
            file.set_len(self.len)
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io("repair journal", &self.path, e))?;
        }
        self.torn = false;
        Ok(())
    }
}

/// Read every record of a journal. A torn last line (the process died mid-write) is skipped with
/// a warning; a bad line anywhere else is an error that names it.
pub fn read(path: &Path) -> Result<(Vec<Value>, Option<String>), Error> {
    parse(&read_text(path)?, path)
}

/// A journal's text as it stands (bytes that are not UTF-8 replaced), for `parse`.
pub fn read_text(path: &Path) -> Result<String, Error> {
    let file = File::open(path).map_err(|e| Error::io("read journal", path, e))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut BufReader::new(file), &mut bytes)
        .map_err(|e| Error::io("read journal", path, e))?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Every record of a journal, typed (see `read` for the torn last line).
pub fn read_entries(path: &Path) -> Result<(Vec<Entry>, Option<String>), Error> {
    let (values, warning) = read(path)?;
    Ok((values.iter().map(Entry::from_value).collect(), warning))
}

/// The records of a journal's text (`path` names it in errors and warnings).
pub fn parse(text: &str, path: &Path) -> Result<(Vec<Value>, Option<String>), Error> {
    let lines: Vec<&str> = text.lines().collect();
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

/// What `runbook verify` found.
#[derive(Debug)]
pub struct Verification {
    pub records: usize,
    pub final_hash: String,
    /// The first problem, by line number (1-based).
    pub problem: Option<(usize, String)>,
}

/// Walk the hash chain of a journal.
pub fn verify(path: &Path) -> Result<Verification, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read journal", path, e))?;
    let mut prev = GENESIS.to_string();
    let mut records = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let expected_seq = n as u64;
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if n == lines.len() && !text.ends_with('\n') => {
                return Ok(Verification {
                    records,
                    final_hash: prev,
                    problem: Some((
                        n,
                        "the last record is incomplete (the run was cut off while writing it)"
                            .into(),
                    )),
                });
            }
            Err(e) => {
                return Ok(Verification {
                    records,
                    final_hash: prev,
                    problem: Some((n, format!("not a JSON record: {e}"))),
                })
            }
        };
        let link = v.get("prev").and_then(Value::as_str).unwrap_or("");
        let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if link != prev {
            let why = if n == 1 {
                "the first record does not start the chain: records before it were removed"
                    .to_string()
            } else {
                format!("record {n} (seq {seq}) does not follow record {}: record {} was altered, or records between them were removed or reordered", n - 1, n - 1)
            };
            return Ok(Verification {
                records,
                final_hash: prev,
                problem: Some((n, why)),
            });
        }
        if seq != expected_seq {
            return Ok(Verification {
                records,
                final_hash: prev,
                problem: Some((
                    n,
                    format!("record {n} has seq {seq}, expected {expected_seq}"),
                )),
            });
        }
        prev = line_hash(line);
        records += 1;
    }
    Ok(Verification {
        records,
        final_hash: prev,
        problem: None,
    })
}

/// A run directory and its journal, read as typed records when asked about.
pub struct RunDir {
    pub path: PathBuf,
    /// The journal's text. (The REPL still asks it for `rollback.target` by string:
    /// `rolls_back_another` is the typed question.)
    pub journal: String,
    entries: std::cell::OnceCell<Vec<Entry>>,
}

/// One journal line as a record (None: not JSON, such as a torn last line).
fn entry(line: &str) -> Option<Entry> {
    serde_json::from_str::<Value>(line)
        .ok()
        .map(|v| Entry::from_value(&v))
}

impl RunDir {
    /// Every record of the journal, read once.
    fn entries(&self) -> &[Entry] {
        self.entries
            .get_or_init(|| self.journal.lines().filter_map(entry).collect())
    }

    /// The journal's first record, when it starts a run (or a REPL session): read alone, since
    /// most questions need no more.
    fn start(&self) -> Option<crate::record::RunStart> {
        match self.journal.lines().next().and_then(entry)?.record {
            Record::RunStart(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the journal recorded the end of its run.
    pub fn ended(&self) -> bool {
        self.entries()
            .iter()
            .any(|e| matches!(e.record, Record::RunEnd { .. }))
    }

    /// Whether this run rolled another back (it names its target: `runbook rollback`, the
    /// incident runbook, even one killed before it finished).
    pub fn rolls_back_another(&self) -> bool {
        self.entries()
            .iter()
            .any(|e| matches!(e.record, Record::RollbackTarget { .. }))
    }

    /// Whether this is a run of the rollback or incident runbook (shipped, or a team's copy named
    /// the same): a tool that rolls deployments back, not a deployment.
    pub fn is_rollback_tool(&self) -> bool {
        self.start().is_some_and(|s| {
            matches!(
                s.script.rsplit('/').next(),
                Some("rollback.rhai" | "incident.rhai")
            )
        })
    }

    /// Whether this is a deployment (a runbook run), not a REPL session.
    pub fn is_deployment(&self) -> bool {
        self.start().is_some_and(|s| s.script != "<repl>")
    }
}

/// The run directories under `root` (dry-runs left out), oldest journal first.
pub fn run_dirs(root: &Path) -> Vec<RunDir> {
    let mut dirs: Vec<(std::time::SystemTime, RunDir)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with("-dry-run"))
        .filter_map(|path| {
            let j = path.join(FILE_NAME);
            let journal = std::fs::read_to_string(&j).ok()?;
            let t = std::fs::metadata(&j)
                .and_then(|m| m.created().or_else(|_| m.modified()))
                .unwrap_or(std::time::UNIX_EPOCH);
            Some((
                t,
                RunDir {
                    path,
                    journal,
                    entries: Default::default(),
                },
            ))
        })
        .collect();
    dirs.sort_by_key(|d| d.0);
    dirs.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod run_dir_tests {
    use super::*;

    fn run_dir(lines: &[Value]) -> RunDir {
        let mut journal: String = lines.iter().map(|l| format!("{l}\n")).collect();
        journal.push_str("{\"seq\":9,\"type\":\"lo"); // a torn last line
        RunDir {
            path: PathBuf::from("d"),
            journal,
            entries: Default::default(),
        }
    }

    #[test]
    fn a_run_dir_is_read_as_typed_records() {
        let start = |script: &str| json!({ "seq": 1, "type": "run.start", "script": script });
        let deploy = run_dir(&[start("runbooks/deploy.rhai")]);
        assert!(deploy.is_deployment() && !deploy.ended());
        assert!(!deploy.is_rollback_tool() && !deploy.rolls_back_another());

        let ended = run_dir(&[
            start("deploy.rhai"),
            json!({ "seq": 2, "type": "run.end", "outcome": "completed", "exit_code": 0 }),
        ]);
        assert!(ended.ended());

        let repl = run_dir(&[start("<repl>")]);
        assert!(!repl.is_deployment());

        let rollback = run_dir(&[
            start("<shipped>/runbooks/rollback.rhai"),
            json!({ "seq": 2, "type": "rollback.target", "deployment": "deployments/x" }),
        ]);
        assert!(rollback.is_deployment() && rollback.is_rollback_tool());
        assert!(rollback.rolls_back_another() && !rollback.ended());

        // A journal that does not start with a run is no deployment; a record that only
        // mentions a type in its text is not that record.
        let odd = run_dir(&[json!({ "seq": 1, "type": "log", "message": "\"type\":\"run.end\"" })]);
        assert!(!odd.is_deployment() && !odd.ended());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &Path) -> (PathBuf, Journal) {
        let path = dir.join(FILE_NAME);
        let j = Journal::create(&path, Redactor::default()).unwrap();
        (path, j)
    }

    fn some_records(j: &mut Journal) {
        j.append(&Record::StageStart {
            stage: "Deploy".into(),
        })
        .unwrap();
        j.append(&Record::Log {
            message: "hello".into(),
            stage: Some("Deploy".into()),
        })
        .unwrap();
        j.append(&Record::Interrupted {}).unwrap();
    }

    #[test]
    fn each_record_links_to_the_hash_of_the_line_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut j) = journal(dir.path());
        some_records(&mut j);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let mut prev = GENESIS.to_string();
        for (i, line) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["prev"], json!(prev), "line {}", i + 1);
            assert_eq!(v["seq"], json!(i + 1));
            prev = line_hash(line);
        }
        assert_eq!(j.last_hash(), prev);
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (3, None));
        assert_eq!(v.final_hash, prev);

        // An altered record breaks the link of the next one; a removed one too.
        let altered = text.replacen("hello", "hullo", 1);
        std::fs::write(&path, &altered).unwrap();
        assert_eq!(verify(&path).unwrap().problem.map(|p| p.0), Some(3));
        let removed: String = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        std::fs::write(&path, removed).unwrap();
        assert_eq!(verify(&path).unwrap().problem.map(|p| p.0), Some(2));
    }

    #[test]
    fn records_read_back_typed_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut j) = journal(dir.path());
        some_records(&mut j);
        let (entries, warning) = read_entries(&path).unwrap();
        assert!(warning.is_none());
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            entries[1].record,
            Record::Log {
                message: "hello".into(),
                stage: Some("Deploy".into())
            }
        );
        assert!(!entries[0].ts.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped_by_readers_and_cut_off_into_a_repaired_record() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut j) = journal(dir.path());
        some_records(&mut j);
        drop(j);
        let whole = std::fs::read_to_string(&path).unwrap();
        let fragment = r#"{"seq":4,"ts":"2026-01-01T00:00:00Z","type":"log","mess"#;
        std::fs::write(&path, format!("{whole}{fragment}")).unwrap();

        // Readers skip it with a warning; verify names it.
        let (entries, warning) = read_entries(&path).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(warning
            .unwrap()
            .contains(":4: the last record is incomplete"));
        let v = verify(&path).unwrap();
        assert_eq!(v.problem.map(|p| p.0), Some(4));

        // The next writer cuts it off, keeps its text, and the chain holds again.
        let mut j = Journal::append_to(&path, Redactor::default()).unwrap();
        j.append(&Record::Interrupted {}).unwrap();
        let (entries, warning) = read_entries(&path).unwrap();
        assert!(warning.is_none());
        assert_eq!(
            entries[3].record,
            Record::JournalRepaired {
                torn_fragment: fragment.into()
            }
        );
        assert_eq!(entries[3].seq, 4);
        assert_eq!(entries[4].seq, 5);
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (5, None));
    }
}

/// The hash chain against each way a journal can be changed after the fact, the repair of a torn
/// last line, and two writers one after the other (a run, then its resume).
#[cfg(test)]
mod chain_tests {
    use super::*;

    fn log(message: &str) -> Record {
        Record::Log {
            message: message.into(),
            stage: None,
        }
    }

    /// A journal of `n` log records, and its lines.
    fn written(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
        let path = dir.join(FILE_NAME);
        let mut j = Journal::create(&path, Redactor::default()).unwrap();
        for i in 1..=n {
            assert_eq!(j.append(&log(&format!("record {i}"))).unwrap(), i as u64);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text.lines().map(str::to_string).collect())
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    fn problem(path: &Path) -> Option<(usize, String)> {
        verify(path).unwrap().problem
    }

    #[test]
    fn two_records_swapped_break_the_chain_where_the_first_moved_one_stands() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut lines) = written(dir.path(), 5);
        lines.swap(2, 3);
        rewrite(&path, &lines);
        assert_eq!(
            problem(&path),
            Some((
                3,
                "record 3 (seq 4) does not follow record 2: record 2 was altered, or records between them were removed or reordered".into()
            ))
        );
        let v = verify(&path).unwrap();
        assert_eq!(v.records, 2, "the records before the break check out");
        assert_eq!(v.final_hash, line_hash(&lines[1]));
    }

    #[test]
    fn the_first_record_removed_is_found_though_the_rest_link_up() {
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = written(dir.path(), 3);
        rewrite(&path, &lines[1..]);
        assert_eq!(
            problem(&path),
            Some((
                1,
                "the first record does not start the chain: records before it were removed".into()
            ))
        );
    }

    #[test]
    fn the_last_record_removed_leaves_a_whole_chain_that_only_a_pinned_hash_can_tell() {
        // Why the artifacts pin the final hash (`runbook verify` compares it).
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = written(dir.path(), 4);
        let full = verify(&path).unwrap().final_hash;
        rewrite(&path, &lines[..3]);
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (3, None));
        assert_ne!(v.final_hash, full);
    }

    #[test]
    fn a_record_renumbered_with_its_link_kept_is_found_by_its_seq() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut lines) = written(dir.path(), 3);
        // Record 2 keeps its `prev` but claims another number; record 3 is relinked to it, so
        // only the numbering can tell.
        let mut v: Value = serde_json::from_str(&lines[1]).unwrap();
        v["seq"] = json!(7);
        lines[1] = v.to_string();
        let mut third: Value = serde_json::from_str(&lines[2]).unwrap();
        third["prev"] = json!(line_hash(&lines[1]));
        lines[2] = third.to_string();
        rewrite(&path, &lines);
        assert_eq!(
            problem(&path),
            Some((2, "record 2 has seq 7, expected 2".into()))
        );
    }

    #[test]
    fn a_line_that_is_not_json_is_named_by_verify_and_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut lines) = written(dir.path(), 3);
        lines[1] = "not json".into();
        rewrite(&path, &lines);
        let (line, message) = problem(&path).unwrap();
        assert_eq!(line, 2);
        assert!(message.starts_with("not a JSON record: "), "{message}");
        // Not the last line, so not a torn write: readers refuse it, naming it.
        match read(&path) {
            Err(Error::Journal { file, message }) => {
                assert_eq!(file, path.display().to_string());
                assert!(
                    message.starts_with("line 2 is not valid JSON: "),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A JSON value that is not a record, in the middle: refused too.
        lines[1] = "[1, 2]".into();
        rewrite(&path, &lines);
        match read(&path) {
            Err(Error::Journal { message, .. }) => {
                assert_eq!(message, "line 2 is not a JSON object")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_whole_last_line_that_is_not_a_record_is_skipped_by_readers_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut lines) = written(dir.path(), 2);
        lines.push("42".into());
        rewrite(&path, &lines);
        let (records, warning) = read(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            warning.unwrap(),
            format!(
                "{}:3: the last record is incomplete (the run was cut off while writing it); it was ignored",
                path.display()
            )
        );
        // It ends with a newline, so it was written whole: to verify it is a record that does
        // not link to the one before it.
        assert_eq!(
            problem(&path),
            Some((
                3,
                "record 3 (seq 0) does not follow record 2: record 2 was altered, or records between them were removed or reordered".into()
            ))
        );
    }

    #[test]
    fn blank_lines_are_not_records() {
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = written(dir.path(), 2);
        std::fs::write(&path, format!("{}\n\n{}\n\n", lines[0], lines[1])).unwrap();
        let (records, warning) = read(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert!(warning.is_none());
    }

    #[test]
    fn a_second_writer_numbers_on_and_links_to_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let (path, lines) = written(dir.path(), 3);
        let mut j = Journal::append_to(&path, Redactor::default()).unwrap();
        assert_eq!(j.last_hash(), line_hash(&lines[2]));
        assert_eq!(j.append(&log("resumed")).unwrap(), 4);
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        let fourth: Value = serde_json::from_str(text.lines().nth(3).unwrap()).unwrap();
        assert_eq!(fourth["prev"], json!(line_hash(&lines[2])));
        assert_eq!(fourth["seq"], json!(4));
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (4, None));
        // Nothing was added on opening: a whole journal needs no repair.
        assert!(!text.contains("journal.repaired"));
    }

    #[test]
    fn a_journal_that_is_only_a_torn_line_starts_the_chain_again_with_the_fragment_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let fragment = r#"{"seq":1,"ts":"2026-01-01T00:00:00Z","type":"run.st"#;
        std::fs::write(&path, fragment).unwrap();
        assert_eq!(
            problem(&path).map(|p| p.1),
            Some("the last record is incomplete (the run was cut off while writing it)".into())
        );
        let mut j = Journal::append_to(&path, Redactor::default()).unwrap();
        assert_eq!(j.append(&log("after")).unwrap(), 2);
        drop(j);
        let (entries, warning) = read_entries(&path).unwrap();
        assert!(warning.is_none());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].seq, 1);
        assert_eq!(
            entries[0].record,
            Record::JournalRepaired {
                torn_fragment: fragment.into()
            }
        );
        let first: Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["prev"], json!(GENESIS));
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (2, None));
    }

    #[test]
    fn a_torn_line_after_a_second_writer_is_repaired_again_by_a_third() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = written(dir.path(), 2);
        for round in 0..2 {
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(&format!("{{\"seq\":99,\"round\":{round}"));
            std::fs::write(&path, text).unwrap();
            let mut j = Journal::append_to(&path, Redactor::default()).unwrap();
            j.append(&log("on")).unwrap();
        }
        let (entries, _) = read_entries(&path).unwrap();
        let repaired = entries
            .iter()
            .filter(|e| matches!(e.record, Record::JournalRepaired { .. }))
            .count();
        assert_eq!(repaired, 2);
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (6, None));
    }

    #[test]
    fn the_chain_is_over_the_redacted_lines_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut redactor = Redactor::default();
        redactor.add("hunter2-secret");
        let mut j = Journal::create(&path, redactor).unwrap();
        j.append(&log("password is hunter2-secret")).unwrap();
        j.append(&log("next")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(text.contains("password is [REDACTED]"), "{text}");
        assert_eq!(j.last_hash(), line_hash(text.lines().nth(1).unwrap()));
        let v = verify(&path).unwrap();
        assert_eq!((v.records, v.problem), (2, None));
    }

    #[test]
    fn a_journal_that_writes_nowhere_still_numbers_its_records() {
        let mut j = Journal::none();
        assert_eq!(j.append(&log("a")).unwrap(), 1);
        assert_eq!(j.append(&log("b")).unwrap(), 2);
        assert_eq!(
            j.last_hash(),
            GENESIS,
            "nothing was written, so nothing was hashed"
        );
    }
}
