//! `incident(title, severity)` and `resolve(...)`: an incident opened, and its report written
//! (through the gate, never over an existing file) when it is resolved or abandoned.

use std::path::PathBuf;

use rhai::EvalAltResult;
use serde_json::json;

use crate::incident::{Closed, Incident};
use crate::journal::Record;
use crate::session::{Session, Shared};

use super::State;

pub(super) fn open_incident(
    session: &Shared,
    state: &State,
    title: &str,
    severity: &str,
) -> Result<String, Box<EvalAltResult>> {
    let severity = crate::incident::severity(severity).map_err(crate::primitives::fail)?;
    let open = state.incident().as_ref().map(|i| i.title.clone());
    if let Some(open) = open {
        let question = format!(
            "The incident `{open}` is still open. Write it as abandoned and open `{title}`?"
        );
        match crate::primitives::prompt::offer(session, "incident-replace", &question) {
            Some(true) => {
                close(
                    session,
                    state,
                    Closed::Abandoned(format!("replaced by the incident `{title}`")),
                )?;
            }
            Some(false) => {
                return Err(crate::primitives::fail(format!(
                    "kept the incident `{open}` open"
                )))
            }
            None => {
                return Err(crate::primitives::fail(format!(
                    "the incident `{open}` is still open: resolve() it before opening another"
                )))
            }
        }
    }
    let root = session.deployments_root();
    let (id, dir) = crate::incident::claim(&root).map_err(crate::primitives::fail)?;
    let opened = crate::journal::now_rfc3339();
    session.record(Record::IncidentOpen {
        id: id.clone(),
        title: title.to_string(),
        severity: severity.to_string(),
        dir: dir.display().to_string(),
    });
    *state.incident() = Some(Incident {
        id: id.clone(),
        dir,
        title: title.to_string(),
        severity: severity.clone(),
        opened,
        attached: state.attached.clone(),
    });
    Ok(format!("incident {id} open: {title} ({severity}); the session's commands and effects go into its timeline; resolve() writes the report"))
}

pub(super) fn resolve(
    session: &Shared,
    state: &State,
    given: Option<[String; 4]>,
) -> Result<String, Box<EvalAltResult>> {
    if state.incident().is_none() {
        return Err(crate::primitives::fail(
            "no incident is open: incident(title, severity) opens one",
        ));
    }
    let answers = match given {
        Some(a) => a,
        None => {
            let ask = |q: &str, id: &str| -> Result<String, Box<EvalAltResult>> {
                crate::primitives::prompt::ask_input(session, q, "", id)
            };
            [
                ask("Root cause", "incident-root-cause")?,
                ask("Impact assessment", "incident-impact")?,
                ask("Remediation steps", "incident-remediation")?,
                ask("Prevention measures", "incident-prevention")?,
            ]
        }
    };
    let path = close(session, state, Closed::Resolved(answers))?;
    Ok(format!("incident resolved; report: {}", path.display()))
}

/// Write the open incident's report (through the gate; never over an existing file) and close
/// it. On failure it stays open.
pub(super) fn close(
    session: &Session,
    state: &State,
    closed: Closed,
) -> Result<PathBuf, Box<EvalAltResult>> {
    let Some(incident) = state.incident().take() else {
        return Err(crate::primitives::fail("no incident is open"));
    };
    let journal = session.effects.borrow().journal_path().to_path_buf();
    let md = session.redact(&incident.render(&journal, &closed));
    let path = incident.report_path();
    let shown = path.display().to_string();
    let written = session.gate(
        "write_file",
        &shown,
        json!({ "path": shown, "bytes": md.len() }),
        || json!({ "planned": true }),
        || {
            crate::incident::write_new(&path, &md)?;
            Ok(json!({ "written": md.len() }))
        },
    );
    if let Err(e) = written {
        *state.incident() = Some(incident);
        return Err(crate::primitives::gate_error(session, e));
    }
    let close = |why| crate::record::IncidentClose {
        id: incident.id.clone(),
        title: incident.title.clone(),
        report: shown.clone(),
        why,
        error: None,
    };
    session.record(match &closed {
        Closed::Resolved(_) => Record::IncidentResolve(close(None)),
        Closed::Abandoned(why) => Record::IncidentAbandon(close(Some(why.clone()))),
    });
    Ok(path)
}
