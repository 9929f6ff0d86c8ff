fn main() {
    // This process ends when the command returns: what a run built is left to the exit.
    runbook::runner::process_exits_after_command();
    if let Err(code) = runbook::run(std::env::args_os()) {
        std::process::exit(code);
    }
}
