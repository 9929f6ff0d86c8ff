//! The real `runbook` binary, run in temp dirs. Error text and exit codes are the interface, so
//! they are asserted exactly.
//!
//! One module per area of the command line; helpers two areas share are here.

mod answers;
mod checks;
mod commands;
mod config;
mod demo;
mod dry_run;
mod journal;
mod kubernetes;
mod limits;
mod locks;
mod notify;
mod repl;
mod resume;
mod rollback;
mod script_adapter;
mod script_errors;
mod secrets;
mod sh;
mod terminal;

fn wait_for_journal(root: &std::path::Path, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(root.join("deployments"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| {
                std::fs::read_to_string(e.path().join("journal.jsonl"))
                    .is_ok_and(|j| j.contains(needle))
            });
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no journal mentions {needle:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The one run directory under `root`/deployments (the lock directory is not one).
fn only_run_dir(root: &std::path::Path) -> std::path::PathBuf {
    let dirs: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}
