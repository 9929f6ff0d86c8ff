fn main() {
    if let Err(code) = runbook::run(std::env::args_os()) {
        std::process::exit(code);
    }
}
