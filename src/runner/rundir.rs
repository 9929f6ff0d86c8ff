//! Run directories: a fresh one under the deployments directory for a run, or the one a resume
//! goes on in; the session's gate pointed at its journal.

use std::path::{Path, PathBuf};

use crate::effects::Effects;
use crate::error::Error;
use crate::journal::Journal;
use crate::session::Shared;

/// Point the session's gate at a fresh run directory under the deployments directory.
pub fn start_journal(session: &Shared, root: &Path, dry_run: bool) -> Result<PathBuf, Error> {
    let dir = make_run_dir(root, &session.feature, dry_run)?;
    let redactor = session.effects.borrow().redactor().clone();
    let journal = Journal::create(&dir.join(crate::journal::FILE_NAME), redactor)?;
    gate_at(session, journal, &dir, dry_run)
}

/// Point the session's gate at an existing run directory, to go on with its journal in the mode
/// it was started in (a dry-run stays a dry-run).
pub fn continue_journal(session: &Shared, dir: &Path, dry_run: bool) -> Result<PathBuf, Error> {
    let redactor = session.effects.borrow().redactor().clone();
    let journal = Journal::append_to(&dir.join(crate::journal::FILE_NAME), redactor)?;
    gate_at(session, journal, dir, dry_run)
}

/// The session's gate writes `journal`, in run directory `dir`, and its log beside it.
fn gate_at(
    session: &Shared,
    journal: Journal,
    dir: &Path,
    dry_run: bool,
) -> Result<PathBuf, Error> {
    let redactor = session.effects.borrow().redactor().clone();
    let journal = journal.echo(session.ui.format == crate::ui::LogFormat::Json);
    *session.effects.borrow_mut() = Effects::new(
        journal,
        Some(&dir.join(crate::artifacts::LOG)),
        redactor,
        dry_run,
    )?;
    *session.run_dir.borrow_mut() = Some(dir.to_path_buf());
    Ok(dir.to_path_buf())
}

/// A fresh directory `<deployments>/<date>-<feature>[-N]`.
fn make_run_dir(root: &Path, feature: &str, dry_run: bool) -> Result<PathBuf, Error> {
    let date = &crate::journal::now_rfc3339()[..10];
    let mut base = format!("{date}-{}", crate::answers::slug(feature));
    if dry_run {
        base.push_str("-dry-run");
    }
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io("create deployments directory", root, e))?;
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create run directory", &dir, e)),
        }
    }
    unreachable!("an unbounded counter always finds a free name")
}
