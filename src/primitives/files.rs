//! `write_file(path, text)` and `append_file(path, text)`: files the runbook produces (release
//! notes, the incident report) go through the gate like any other effect.

use std::io::Write;

use serde_json::json;

use super::{fail, gate_error, RhaiResult};
use crate::session::{Session, Shared};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("write_file", move |path: &str, text: &str| {
        write(&s, path, text, false)
    });
    let s = session.clone();
    engine.register_fn("append_file", move |path: &str, text: &str| {
        write(&s, path, text, true)
    });
}

/// Write (or append to) a file through the gate.
pub fn write(session: &Session, path: &str, text: &str, append: bool) -> RhaiResult<()> {
    if path.trim().is_empty() {
        return Err(fail("a file path is empty"));
    }
    let text = session.redact(text);
    let kind = if append { "append_file" } else { "write_file" };
    let r = session.gate(
        kind,
        path,
        json!({ "path": path, "bytes": text.len() }),
        || json!({ "planned": true }),
        || {
            let p = std::path::Path::new(path);
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(p)
                .map_err(|e| format!("cannot open `{path}`: {e}"))?;
            f.write_all(text.as_bytes())
                .map_err(|e| format!("cannot write `{path}`: {e}"))?;
            Ok(json!({ "written": text.len() }))
        },
    );
    let done = if r.map_err(|e| gate_error(session, e))?.planned() {
        "(dry-run) would write"
    } else {
        "wrote"
    };
    session.say(&format!("  {done} {path}"));
    Ok(())
}
