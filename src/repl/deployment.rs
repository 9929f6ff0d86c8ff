//! What the REPL's functions do to the attached deployment: `rollback()`, live control of its
//! run (`abort`, `pause`, `resume`, `promote`), `status()`, and the guards: a damaged journal, a
//! run still alive.

use std::path::Path;

use rhai::{Dynamic, Engine, EvalAltResult};
use serde_json::{json, Value};

use crate::journal::Record;
use crate::session::{Session, Shared};

use super::{State, FORCE_HINT};

/// `rollback()`: the attached deployment's standing undo steps, unless its run is alive, or
/// its journal is damaged and the person did not force it (with a reason, recorded).
pub(super) fn rollback(
    session: &Shared,
    state: &State,
    engine: &Engine,
    force: Option<&str>,
) -> Result<bool, Box<EvalAltResult>> {
    let Some(dir) = state.attached.clone() else {
        return Err(crate::primitives::fail(
            "no deployment attached: start with `runbook repl --last` or `--deployment DIR`",
        ));
    };
    refuse_if_alive(session, Some(&dir), "rollback()")?;
    let mut reason = "rolled back from the REPL".to_string();
    if let Some(damage) = &state.damaged {
        let Some(why) = force else {
            return Err(crate::primitives::fail(format!(
                "`rollback()` refused: the journal `{}` {damage}; {FORCE_HINT}",
                dir.join(crate::journal::FILE_NAME).display()
            )));
        };
        session.record(Record::RollbackForced {
            deployment: dir.display().to_string(),
            damage: damage.to_string(),
            reason: why.to_string(),
            by: crate::identity::user(),
        });
        session.warn(&format!("forced past a damaged journal: {why}"));
        reason = format!("rolled back from the REPL, forced past a damaged journal: {why}");
    }
    if let Some(done) = already_rolled_back(&dir) {
        session.shout(&done);
        return Ok(true);
    }
    crate::primitives::rollback::undo_deployment(
        session,
        engine,
        &dir.display().to_string(),
        &reason,
    )
}

/// When nothing is standing because the deployment was rolled back already: when, by whom.
fn already_rolled_back(dir: &Path) -> Option<String> {
    use crate::journal::Entry;
    let (entries, _) = crate::journal::read_entries(&dir.join(crate::journal::FILE_NAME)).ok()?;
    if !crate::undo::standing(&entries).is_empty() {
        return None;
    }
    let user_of = |entries: &[Entry]| {
        entries
            .iter()
            .find_map(|e| match &e.record {
                Record::RunStart(s) => Some(s.user.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "someone unknown".into())
    };
    let by = |ts: &str, who: String, run: String| {
        format!(
            "`{}` was already rolled back at {} by {who} (run {run}): no undo step is standing",
            dir.display(),
            if ts.is_empty() { "an unknown time" } else { ts }
        )
    };
    if let Some((ts, run)) = entries.iter().rev().find_map(|e| match &e.record {
        Record::UndoExternal(x) if x.ok => Some((e.ts.as_str(), x.by_run.clone())),
        _ => None,
    }) {
        let who = crate::journal::read_entries(&Path::new(&run).join(crate::journal::FILE_NAME))
            .map(|(rs, _)| user_of(&rs))
            .unwrap_or_else(|_| "someone unknown".into());
        return Some(by(ts, who, run));
    }
    let own = entries.iter().rev().find_map(|e| match &e.record {
        Record::EffectResult(r) if r.kind == "undo" && r.ok => Some(e.ts.as_str()),
        _ => None,
    })?;
    Some(by(
        own,
        user_of(&entries),
        format!("{}, its own", dir.display()),
    ))
}

/// What is wrong with a run directory's journal, if anything: a broken hash chain, no records,
/// not a journal at all. A torn last record (the process died while writing it) is not damage.
pub(super) fn journal_damage(dir: &Path) -> Option<String> {
    match crate::journal::verify(&dir.join(crate::journal::FILE_NAME)) {
        Err(e) => Some(format!("cannot be read: {}", e.summary())),
        Ok(v) => match v.problem {
            Some((_, why)) if why.starts_with("the last record is incomplete") && v.records > 0 => {
                None
            }
            Some((line, why)) => Some(format!("is not intact at line {line}: {why}")),
            None if v.records == 0 => Some("is empty".into()),
            None => None,
        },
    }
}

pub(super) fn refuse_if_damaged(dir: &Path, action: &str) -> Result<(), Box<EvalAltResult>> {
    match journal_damage(dir) {
        None => Ok(()),
        Some(damage) => Err(crate::primitives::fail(format!(
            "`{action}` refused: the journal `{}` {damage}; attach to it (`runbook repl --deployment {}`) and {}",
            dir.join(crate::journal::FILE_NAME).display(),
            dir.display(),
            FORCE_HINT.trim_start_matches("its undo steps do not run unless forced: ")
        ))),
    }
}

/// The live process holding the lock of the environment `dir` deployed to, if there is one
/// and it is not this process.
/// Without a deployment (`dir` None): the configured environment's lock.
fn live_holder(session: &Session, dir: Option<&Path>) -> Option<crate::lock::Holder> {
    live_lock(session, dir).map(|(_, h)| h)
}

/// `live_holder`, with the backend that holds its lock (to leave it a control request).
fn live_lock(
    session: &Session,
    dir: Option<&Path>,
) -> Option<(Box<dyn crate::lock::Backend>, crate::lock::Holder)> {
    let environment = dir
        .and_then(|d| crate::journal::read(&d.join(crate::journal::FILE_NAME)).ok())
        .and_then(|(records, _)| {
            records.iter().find_map(|r| match Record::from_value(r) {
                Record::LockAcquire { lock } => Some(lock.environment),
                _ => None,
            })
        })
        .unwrap_or_else(|| session.config.config.lock.environment.clone());
    let root = match dir {
        Some(d) => d.parent().unwrap_or(Path::new(".")).to_path_buf(),
        None => session.deployments_root(),
    };
    // The team's lock backend: with etcd or Kubernetes, a run on another machine counts too.
    let backend = crate::lock::open(&session.config.config, &root, session.rt.clone()).ok()?;
    let crate::lock::State::Held(holder) = backend.state(&environment).ok()? else {
        return None;
    };
    let ours = holder.pid == std::process::id() && holder.host == crate::identity::host();
    (!ours && crate::lock::stale(&holder).is_none()).then_some((backend, holder))
}

/// Whether the attached run directory and the lock holder's are the same run. The holder names
/// its run directory as it was given (relative to the holder's working directory, which another
/// operator's REPL does not share): the same path, or the same run directory name.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) if x == y => true,
        _ => a == b || (a.file_name().is_some() && a.file_name() == b.file_name()),
    }
}

/// `abort(reason)`, `pause()`, `resume()`, `promote()`: ask the attached deployment's live run,
/// through its lock backend, as `runbook control` does; the run acts on it itself and journals
/// who asked. A run that is not alive has nobody to ask.
pub(super) fn control(
    session: &Session,
    state: &State,
    action: crate::lock::control::Action,
    reason: &str,
) -> Result<String, Box<EvalAltResult>> {
    let call = format!("{}()", action.as_str());
    let Some(dir) = &state.attached else {
        return Err(crate::primitives::fail(format!(
            "`{call}`: no deployment attached: start with `runbook repl --last` or `--deployment DIR`"
        )));
    };
    let Some((backend, holder)) = live_lock(session, Some(dir)) else {
        return Err(crate::primitives::fail(format!(
            "`{call}`: the run of `{}` is not alive: there is nobody to ask\n  help: `rollback()` here undoes what it left standing (or `runbook rollback`)",
            dir.display()
        )));
    };
    if !same_dir(Path::new(&holder.run_dir), dir) {
        return Err(crate::primitives::fail(format!(
            "`{call}`: the run of `{}` is not alive; another run holds `{}`: {}",
            dir.display(),
            holder.environment,
            crate::lock::describe(&holder)
        )));
    }
    let request =
        crate::lock::ControlRequest::new(&holder.environment, action, reason, &holder.run_dir);
    backend
        .request_control(&request)
        .map_err(|e| crate::primitives::fail(e.summary()))?;
    let said = format!(
        "asked the run of `{}` to {} ({}); it acts at its next safe point and journals it",
        dir.display(),
        action.as_str(),
        request.by_whom()
    );
    session.say(&said);
    Ok(said)
}

/// The live state of the attached deployment's run, for `status()`: its holder record (stage,
/// traffic, verdict, what live control did) and a control request not yet taken.
fn live_state(session: &Session, dir: &Path) -> Option<(Value, String)> {
    let (backend, holder) = live_lock(session, Some(dir))?;
    if !same_dir(Path::new(&holder.run_dir), dir) {
        return None;
    }
    let pending = backend
        .read_control(&holder.environment)
        .ok()
        .flatten()
        .filter(|r| r.run == holder.run_dir);
    let mut line = format!(
        "live: the run is alive ({} pid {}), stage {}",
        holder.who(),
        holder.pid,
        holder.stage.as_deref().unwrap_or("-")
    );
    if let Some(c) = &holder.control {
        line.push_str(&format!(
            "; {} by {}",
            c["state"].as_str().unwrap_or("controlled"),
            c["by"].as_str().unwrap_or("someone")
        ));
        if let Some(r) = c["reason"].as_str().filter(|r| !r.is_empty()) {
            line.push_str(&format!(": {r}"));
        }
    }
    if let Some(r) = &pending {
        line.push_str(&format!(
            "; {} asked {}, not yet taken",
            r.action.as_str(),
            r.by_whom()
        ));
    }
    let v = json!({
        "alive": true,
        "pid": holder.pid,
        "by": holder.who(),
        "stage": holder.stage,
        "traffic": holder.traffic,
        "verdict": holder.verdict,
        "control": holder.control,
        "pending": pending.map(|r| json!({ "action": r.action.as_str(), "by": r.by, "reason": r.reason })),
    });
    Some((v, line))
}

/// A journal has one writer at a time: an action that would change a deployment whose run (or
/// another run in its environment) is alive is refused, naming the holder and how to stop it.
pub(super) fn refuse_if_alive(
    session: &Session,
    dir: Option<&Path>,
    action: &str,
) -> Result<(), Box<EvalAltResult>> {
    let Some(holder) = live_holder(session, dir) else {
        return Ok(());
    };
    let same = same_dir;
    let ask = matches!(dir, Some(d) if same(Path::new(&holder.run_dir), d));
    let whose = match dir {
        Some(d) if same(Path::new(&holder.run_dir), d) => {
            format!("the run of `{}` is still alive", d.display())
        }
        Some(d) => format!(
            "another run holds the lock of `{}`, the environment `{}` deployed to",
            holder.environment,
            d.display()
        ),
        None => format!("another run holds the lock of `{}`", holder.environment),
    };
    let stop = if holder.host == crate::identity::host() {
        format!("`kill -INT {}`", holder.pid)
    } else {
        format!("`kill -INT {}` on {}", holder.pid, holder.host)
    };
    session.record(Record::ReplRefused {
        action: action.to_string(),
        deployment: dir.map(|d| d.display().to_string()),
        holder: holder.clone(),
    });
    Err(crate::primitives::fail(format!(
        "`{action}` refused: {whose}: {}\n  help: a journal has one writer at a time: stop that run first (Ctrl-C in its terminal, or {stop}; it offers its own rollback), then try again here{}",
        crate::lock::describe(&holder),
        if ask {
            "\n  help: or ask the run from here: `abort(\"why\")` and it rolls back itself; `pause()`, `resume()`, `promote()`"
        } else {
            ""
        }
    )))
}

pub(super) fn status(session: &Shared, state: &State) -> Result<Dynamic, Box<EvalAltResult>> {
    let Some(dir) = &state.attached else {
        return Err(crate::primitives::fail(
            "no deployment attached: start with `runbook repl --last` or `--deployment DIR`",
        ));
    };
    let (records, _) = crate::journal::read(&dir.join(crate::journal::FILE_NAME))
        .map_err(|e| crate::primitives::fail(e.summary()))?;
    let (mut v, lines) = crate::artifacts::status(dir, &records, state.damaged.as_deref());
    for line in lines {
        session.shout(&line);
    }
    // A run still alive: what it says now, from its lock (its journal is its own to write).
    if let Some((live, line)) = live_state(session, dir) {
        session.shout(&line);
        v["live"] = live;
    }
    Ok(crate::opts::from_json(&v))
}
