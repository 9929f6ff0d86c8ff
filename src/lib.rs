//! `runbook`: run deployment runbooks written in Rhai, with every side effect passing one gate.
//!
//! The layering is described in docs/architecture.md.

/// `println!` for what a command prints: a closed stdout ends printing quietly instead of
/// panicking (`ui::write_out`).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::ui::write_out("\n")
    };
    ($($arg:tt)*) => {
        $crate::ui::write_out(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub mod analysis;
pub mod answers;
pub mod arguments;
pub mod artifacts;
pub mod catalogue;
pub mod charts;
pub mod clock;
pub mod config;
pub mod contract;
pub mod criteria;
pub mod demo;
pub mod effects;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod health;
pub mod identity;
pub mod incident;
pub mod journal;
pub mod live;
pub mod lock;
pub mod modules;
pub mod net;
pub mod options;
pub mod opts;
pub mod primitives;
pub mod process;
pub mod prompts;
pub mod record;
pub mod rehearsal;
pub mod repl;
pub mod runbooks;
pub mod runner;
pub mod scenario;
pub mod secrets;
pub mod session;
pub mod signals;
pub mod subcommand;
pub mod ui;
pub mod undo;
pub mod unwind;

use std::ffi::OsString;

/// Run the program with `args` (the first is the program name). `Err` carries a non-zero exit
/// code; everything the user should see has been printed.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<(), i32> {
    let (common, command) = match arguments::parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let code = if e.use_stderr() {
                error::exit::USAGE
            } else {
                error::exit::OK
            };
            // clap renders its own usage errors, coloured as it decides (and help and version,
            // on stdout); every other error is printed by `Error::print`.
            let _ = e.print();
            return if code == 0 { Ok(()) } else { Err(code) };
        }
    };
    match subcommand::dispatch(&common, &command) {
        0 => Ok(()),
        code => Err(code),
    }
}
