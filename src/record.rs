//! The journal's records, as a type: every record a run (or the REPL, or a rollback run on
//! another run's journal) writes is one variant of `Record`, and readers (resume, the REPL, the
//! standing undos, the reports) match variants instead of comparing `"type"` strings.
//!
//! On disk a record is one JSON object per line: the envelope (`seq`, `ts`, `type`, `prev`, added
//! by `Journal::append`) and the variant's fields, under the same names and `type` values the
//! journal always had, so old journals read as before. A record whose `type` this version does
//! not know, or whose fields do not fit its variant (a journal from another version), reads as
//! `Record::Other` with its JSON kept: it still verifies and still shows in the timeline.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::undo::Action;

/// `#[serde(skip_serializing_if = "is_false")]`
fn is_false(b: &bool) -> bool {
    !*b
}

/// A field that is either left out (None) or written, null included (Some(Null)): a `null`
/// read back stays a `null` written out.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    // ---------------------------------------------------------------- the run
    /// A run (or a REPL session) began.
    #[serde(rename = "run.start")]
    RunStart(RunStart),
    /// `runbook resume` took a dead run over.
    #[serde(rename = "run.resume")]
    RunResume(RunResume),
    #[serde(rename = "run.end")]
    RunEnd {
        outcome: String,
        #[serde(default)]
        exit_code: i32,
        /// The run's error, null when none (a run; the REPL leaves it out).
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        error: Option<Value>,
        /// The signal that ended a REPL session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
    #[serde(rename = "interrupted")]
    Interrupted {},
    /// The script's strategy (`choose_strategy`, `strategy(name)`).
    #[serde(rename = "strategy")]
    Strategy { strategy: String },
    #[serde(rename = "log")]
    Log {
        message: String,
        #[serde(default)]
        stage: Option<String>,
    },
    #[serde(rename = "stage.start")]
    StageStart { stage: String },
    #[serde(rename = "stage.end")]
    StageEnd {
        stage: String,
        ok: bool,
        #[serde(default)]
        ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    #[serde(rename = "declined")]
    Declined { gate: String },
    #[serde(rename = "deprecated")]
    Deprecated { old: String, new: String },
    #[serde(rename = "config.error")]
    ConfigError { key: String, message: String },
    #[serde(rename = "precondition.failed")]
    PreconditionFailed { message: String },
    #[serde(rename = "answers.unused")]
    AnswersUnused { id: String },

    // ---------------------------------------------------------------- effects (the gate)
    #[serde(rename = "effect.intent")]
    EffectIntent {
        effect: u64,
        kind: String,
        name: String,
        #[serde(default)]
        intent: Value,
        #[serde(default)]
        dry_run: bool,
    },
    #[serde(rename = "effect.result")]
    EffectResult(EffectResult),
    /// The process group (and its leader's start time) the effect under way started.
    /// `start`..=`start_by`: the clock ticks since boot the leader started within (read from the
    /// boot clock around the spawn); a journal without `start_by` recorded the exact tick.
    #[serde(rename = "effect.child")]
    EffectChild {
        effect: u64,
        group: i32,
        #[serde(default)]
        start: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_by: Option<u64>,
    },
    /// Resuming: the command in flight when the run died was still running.
    #[serde(rename = "resume.still_running")]
    ResumeStillRunning { group: i32, choice: String },
    /// Resuming: what was done about the effect in flight when the run died.
    #[serde(rename = "resume.in_flight")]
    ResumeInFlight {
        kind: String,
        name: String,
        choice: String,
    },

    // ---------------------------------------------------------------- monitoring
    /// One round of readings (`analyze`, or the script's own `measurement(#{..})`).
    #[serde(rename = "measurement")]
    Measurement {
        measurement: Value,
        #[serde(default)]
        stage: Option<String>,
    },
    /// A simulated run met an effect or a prompt its scenario does not answer (`runbook test`).
    #[serde(rename = "simulation.miss")]
    SimulationMiss { why: String },
    #[serde(rename = "verdict")]
    Verdict {
        verdict: Value,
        #[serde(default)]
        stage: Option<String>,
    },
    /// A person overrode a verdict (`override_verdict`).
    #[serde(rename = "override")]
    Override {
        #[serde(default)]
        verdict: String,
        #[serde(default)]
        reason: String,
        #[serde(default)]
        by: String,
        #[serde(default)]
        stage: Option<String>,
    },
    /// An adapter's traffic change (`traffic(#{ weights, colour })`): what version serves what.
    #[serde(rename = "traffic")]
    Traffic {
        /// The version with the largest share.
        #[serde(default)]
        live: Option<String>,
        #[serde(default)]
        colour: Option<Value>,
        #[serde(default)]
        weights: Map<String, Value>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        stage: Option<String>,
    },

    // ---------------------------------------------------------------- undo and rollback
    #[serde(rename = "undo.register")]
    UndoRegister {
        undo: u64,
        label: String,
        action: Action,
        /// The command line the undo will run, as the adapter shows it (`undo_command`).
        #[serde(default)]
        shows: Option<String>,
        #[serde(default)]
        stage: Option<String>,
    },
    /// `discard_undos(label)`: undos dropped without running them.
    #[serde(rename = "undo.discard")]
    UndoDiscard { label: String, undos: Vec<u64> },
    #[serde(rename = "rollback.start")]
    RollbackStart {
        reason: String,
        #[serde(default)]
        undos: usize,
    },
    #[serde(rename = "rollback.end")]
    RollbackEnd {
        ok: bool,
        #[serde(default)]
        failed: Vec<String>,
        #[serde(default)]
        stopped: bool,
        #[serde(default)]
        standing: Vec<u64>,
    },
    /// A rollback run (`runbook rollback`, the incident runbook) targets another run.
    #[serde(rename = "rollback.target")]
    RollbackTarget {
        deployment: String,
        #[serde(default)]
        undos: Vec<u64>,
        #[serde(default)]
        in_flight: Option<u64>,
        #[serde(default)]
        skipped: Option<u64>,
    },
    /// The REPL rolled back past a damaged journal.
    #[serde(rename = "rollback.forced")]
    RollbackForced {
        deployment: String,
        damage: String,
        reason: String,
        by: String,
    },
    /// Written into a deployment's journal by the run that undoes one of its undos.
    #[serde(rename = "undo.external.start")]
    UndoExternalStart {
        undos: Vec<u64>,
        label: String,
        reason: String,
        by_run: String,
    },
    #[serde(rename = "undo.external")]
    UndoExternal(UndoExternal),

    // ---------------------------------------------------------------- the environment lock
    #[serde(rename = "lock.acquire")]
    LockAcquire { lock: crate::lock::Holder },
    #[serde(rename = "lock.takeover")]
    LockTakeover {
        /// The holder taken over (null: its lock file was empty or half-written).
        previous: Option<crate::lock::Holder>,
        reason: String,
    },
    #[serde(rename = "lock.release")]
    LockRelease { environment: String },
    /// The lock's last holder let its lease run out without releasing it: this run followed it.
    #[serde(rename = "lock.expired")]
    LockExpired { previous: crate::lock::Holder },
    /// The lock was lost (or cannot be renewed) during the run, and what `lock.on_lost` said.
    #[serde(rename = "lock.lost")]
    LockLost {
        environment: String,
        how: String,
        gone: bool,
        on_lost: String,
        choice: String,
    },
    /// What the person at the terminal chose when the lock was lost.
    #[serde(rename = "lock.lost.answer")]
    LockLostAnswer { environment: String, choice: String },
    /// The store came back with the lock still this run's.
    #[serde(rename = "lock.regained")]
    LockRegained { environment: String },
    /// The run stopped for a lock it could not get back.
    #[serde(rename = "lock.lost.stopped")]
    LockLostStopped { environment: String, how: String },

    // ---------------------------------------------------------------- live control
    /// A live-control request (`runbook control`, the REPL) the run took at a safe point, with
    /// who sent it, and what the run did about it.
    #[serde(rename = "control")]
    Control {
        action: String,
        /// `user@host`
        by: String,
        #[serde(default)]
        reason: String,
        /// When it was sent.
        #[serde(default)]
        sent: String,
        /// What the run did: `paused`, `resumed`, `promoted`, `aborted`, or `ignored: why`.
        done: String,
    },

    // ---------------------------------------------------------------- the REPL and incidents
    #[serde(rename = "repl.input")]
    ReplInput { text: String },
    #[serde(rename = "repl.result")]
    ReplResult { value: Value },
    #[serde(rename = "repl.error")]
    ReplError { error: String },
    #[serde(rename = "repl.load")]
    ReplLoad { file: String },
    #[serde(rename = "repl.maintenance")]
    ReplMaintenance { on: Value },
    #[serde(rename = "repl.journal_damaged")]
    ReplJournalDamaged { deployment: String, damage: String },
    /// An action refused because the deployment's run is alive.
    #[serde(rename = "repl.refused")]
    ReplRefused {
        action: String,
        deployment: Option<String>,
        holder: crate::lock::Holder,
    },
    #[serde(rename = "incident.open")]
    IncidentOpen {
        id: String,
        title: String,
        severity: String,
        dir: String,
    },
    #[serde(rename = "incident.resolve")]
    IncidentResolve(IncidentClose),
    #[serde(rename = "incident.abandon")]
    IncidentAbandon(IncidentClose),

    // ---------------------------------------------------------------- the journal itself
    /// A torn last line (the writer died mid-record), cut off and kept here.
    #[serde(rename = "journal.repaired")]
    JournalRepaired { torn_fragment: String },

    /// A record of a type this version does not know (or whose fields do not fit it), kept as
    /// its JSON (envelope and all) so it still verifies and reads.
    #[serde(skip)]
    Other(Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub feature: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub dry_run: bool,
    /// Rehearsed by `runbook test`: every effect answered by a scenario's world, on a virtual
    /// clock; nothing outside was touched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub run_dir: String,
    /// What a run started with (a REPL session leaves these out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInputs>,
    /// The REPL: the deployment it attached to (null: none).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub attached: Option<Value>,
}

/// What a runbook run was started with, so `runbook resume` can start it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInputs {
    /// Hashes of the script, config and answers (a changed one refuses a resume).
    #[serde(default)]
    pub inputs: Value,
    #[serde(default)]
    pub yes: bool,
    #[serde(default)]
    pub approve: bool,
    #[serde(default)]
    pub presets: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub config_file: Option<String>,
    #[serde(default)]
    pub answers_file: Option<String>,
    #[serde(default)]
    pub sets: Vec<String>,
    /// The secrets' names (never their values), and which came from the environment.
    #[serde(default)]
    pub secrets: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResume {
    pub pid: u32,
    pub user: String,
    pub host: String,
    /// How many recorded effects were replayed.
    pub replaying: usize,
    /// The effect under way when the run died: kind, name, started.
    pub in_flight: Option<Value>,
    pub inputs: Value,
    pub forced: bool,
    pub sets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectResult {
    pub effect: u64,
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// What the act found (a failed one too: a command's exit code and output).
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Planned, not acted on (a dry-run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoExternal {
    pub undos: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub ok: bool,
    /// Done by a killed rollback: its own journal says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skipped: bool,
    /// The undo's error (null when it succeeded); left out when it was not run here.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<Value>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub by_run: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentClose {
    pub id: String,
    pub title: String,
    pub report: String,
    #[serde(default)]
    pub why: Option<String>,
    /// Why the report could not be written (null: it was); left out when closed by `resolve`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<Value>,
}

impl Record {
    /// Read one record from its JSON (the envelope is ignored): a known `type` with fields that
    /// fit becomes its variant, anything else `Other`. Never fails.
    pub fn from_value(v: &Value) -> Record {
        // From the borrowed value: no copy of the record to read it.
        match <Record as Deserialize>::deserialize(v) {
            Ok(Record::RunStart(mut s)) => {
                // A run's start carries its inputs at the top level, beside the common fields.
                if s.run.is_none() && v.get("inputs").is_some() {
                    s.run = Deserialize::deserialize(v).ok();
                }
                Record::RunStart(s)
            }
            Ok(r) => r,
            Err(_) => Record::Other(v.clone()),
        }
    }

    /// The record's `type` and its fields, as they go on the line.
    pub fn to_fields(&self) -> (String, Map<String, Value>) {
        let value = match self {
            Record::Other(v) => v.clone(),
            Record::RunStart(s) => {
                let mut m = match serde_json::to_value(Record::RunStart(RunStart {
                    run: None,
                    ..s.clone()
                })) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                if let Some(Ok(Value::Object(inputs))) = s.run.as_ref().map(serde_json::to_value) {
                    m.extend(inputs);
                }
                Value::Object(m)
            }
            r => serde_json::to_value(r).unwrap_or(Value::Null),
        };
        let mut fields = match value {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for k in ["seq", "ts", "prev"] {
            fields.remove(k);
        }
        let kind = match fields.remove("type") {
            Some(Value::String(s)) => s,
            _ => "unknown".to_string(),
        };
        (kind, fields)
    }

    /// An undo registration (`undo.register`) this version cannot read, and why: its action is
    /// of a kind this version does not know, or its fields do not fit. Such a record reads as
    /// `Other`, and a reader of the standing undos would leave it out silently: a rollback must
    /// refuse instead.
    pub fn unreadable_undo(&self) -> Option<String> {
        let Record::Other(v) = self else {
            return None;
        };
        if v.get("type").and_then(Value::as_str) != Some("undo.register") {
            return None;
        }
        Some(
            serde_json::from_value::<Action>(v["action"].clone())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "its fields do not fit".into()),
        )
    }

    /// The record's `type`.
    pub fn kind(&self) -> String {
        match self {
            Record::Other(v) => v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            r => r.to_fields().0,
        }
    }
}

/// A record as read back, with its place in the journal.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub ts: String,
    pub record: Record,
}

impl Entry {
    pub fn from_value(v: &Value) -> Entry {
        Entry {
            seq: v.get("seq").and_then(Value::as_u64).unwrap_or(0),
            ts: v
                .get("ts")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            record: Record::from_value(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record as its old `json!` writer put it, read and written back: the same fields.
    fn same(kind: &str, fields: Value) {
        let mut line = fields.as_object().unwrap().clone();
        line.insert("type".into(), json!(kind));
        let v = Value::Object(line);
        let r = Record::from_value(&v);
        assert!(!matches!(r, Record::Other(_)), "{kind} read as Other: {v}");
        let (k, f) = r.to_fields();
        assert_eq!(k, kind);
        assert_eq!(Value::Object(f), fields, "{kind}");
    }

    #[test]
    fn every_kind_reads_as_its_variant_and_writes_the_same_fields() {
        same(
            "run.start",
            json!({ "inputs": { "script": "ab" }, "yes": false, "approve": true,
                    "presets": { "a": "b" }, "script": "deploy.rhai", "feature": "f",
                    "version": "0.1.0", "dry_run": true, "user": "u", "host": "h", "pid": 7,
                    "config_file": null, "answers_file": "a.yaml", "sets": ["x=1"],
                    "secrets": [{ "name": "TOKEN" }], "run_dir": "d" }),
        );
        same(
            "run.start",
            json!({ "script": "<repl>", "feature": "f", "version": "0.1.0", "dry_run": false,
                    "user": "u", "host": "h", "attached": null, "run_dir": "d" }),
        );
        same(
            "run.resume",
            json!({ "pid": 1, "user": "u", "host": "h", "replaying": 3,
                    "in_flight": { "kind": "sh", "name": "x", "started": "t" },
                    "inputs": {}, "forced": false, "sets": [] }),
        );
        same(
            "run.end",
            json!({ "outcome": "completed", "exit_code": 0, "error": null }),
        );
        same(
            "run.end",
            json!({ "outcome": "interrupted", "exit_code": 130, "signal": "SIGHUP" }),
        );
        same("interrupted", json!({}));
        same("log", json!({ "message": "m", "stage": null }));
        same(
            "stage.end",
            json!({ "stage": "s", "ok": false, "ms": 3, "error": "e" }),
        );
        same(
            "effect.intent",
            json!({ "effect": 1, "kind": "sh", "name": "ls", "intent": { "command": "ls" }, "dry_run": false }),
        );
        same(
            "effect.result",
            json!({ "effect": 1, "kind": "sh", "name": "ls", "ok": false, "ms": 2,
                    "error": "exit 1", "result": { "code": 1 }, "dry_run": false }),
        );
        same(
            "effect.result",
            json!({ "effect": 1, "kind": "undo", "name": "u", "ok": true, "result": { "skipped": true } }),
        );
        same(
            "effect.child",
            json!({ "effect": 2, "group": 123, "start": null }),
        );
        same(
            "traffic",
            json!({ "live": "v2", "colour": null, "weights": { "v1": 0, "v2": 100 },
                    "dry_run": false, "stage": "Deploy" }),
        );
        same(
            "undo.register",
            json!({ "undo": 1, "label": "l", "action": { "kind": "command", "line": "echo" },
                    "shows": null, "stage": null }),
        );
        same(
            "rollback.end",
            json!({ "ok": true, "failed": [], "stopped": false, "standing": [] }),
        );
        same(
            "rollback.target",
            json!({ "deployment": "d", "undos": [1, 2], "in_flight": null, "skipped": 3 }),
        );
        same(
            "undo.external",
            json!({ "undos": [1], "label": "l", "ok": true, "error": null, "reason": "r", "by_run": "b" }),
        );
        same(
            "undo.external",
            json!({ "undos": [1], "ok": true, "confirmed_by": "k", "reason": "r", "by_run": "b" }),
        );
        same(
            "undo.external",
            json!({ "undos": [1], "label": "l", "ok": true, "skipped": true, "reason": "r", "by_run": "b" }),
        );
        same(
            "incident.abandon",
            json!({ "id": "i", "title": "t", "report": "r", "why": "w", "error": "e" }),
        );
        same(
            "incident.resolve",
            json!({ "id": "i", "title": "t", "report": "r", "why": null }),
        );
    }

    #[test]
    fn an_unknown_or_misshapen_record_is_kept_as_other() {
        let v = json!({ "seq": 4, "type": "from.the.future", "x": 1 });
        let r = Record::from_value(&v);
        assert_eq!(r, Record::Other(v.clone()));
        assert_eq!(r.kind(), "from.the.future");
        let (k, f) = r.to_fields();
        assert_eq!(k, "from.the.future");
        assert_eq!(Value::Object(f), json!({ "x": 1 }));
        // A known type whose fields do not fit still reads, as Other.
        let bad = json!({ "type": "effect.intent", "effect": "one" });
        assert!(matches!(Record::from_value(&bad), Record::Other(_)));
        assert!(matches!(Record::from_value(&json!(3)), Record::Other(_)));
    }

    #[test]
    fn an_undo_registration_that_does_not_fit_says_why() {
        let undo = |action: Value| {
            Record::from_value(&json!({ "seq": 3, "type": "undo.register", "undo": 1,
                                        "label": "l", "action": action }))
        };
        let good = undo(json!({ "kind": "command", "line": "echo" }));
        assert!(matches!(good, Record::UndoRegister { .. }));
        assert_eq!(good.unreadable_undo(), None);
        let future = undo(json!({ "kind": "teleport", "to": "v1" }));
        let why = future.unreadable_undo().unwrap();
        assert!(why.contains("unknown variant `teleport`"), "{why}");
        // The action reads, another field does not.
        let misshapen = Record::from_value(&json!({ "type": "undo.register", "undo": "one",
            "label": "l", "action": { "kind": "command", "line": "echo" } }));
        assert_eq!(
            misshapen.unreadable_undo().as_deref(),
            Some("its fields do not fit")
        );
        // Any other record, readable or not, is no undo.
        let other = Record::from_value(&json!({ "type": "from.the.future", "action": {} }));
        assert_eq!(other.unreadable_undo(), None);
    }
}
