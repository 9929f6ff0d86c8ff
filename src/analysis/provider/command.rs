//! The `command` provider: the number a command prints on its last line.

use super::*;

/// Run the command once, through the one command runner.
pub(super) async fn read(
    run: &str,
    timeout: Duration,
    runner: crate::process::Runner,
) -> Result<Value, String> {
    // The one runner of every command: own process group, SIGTERM then SIGKILL after
    // `commands.kill_grace` on the timeout, output captured up to `commands.capture_limit`.
    let spec = runner.spec(
        crate::process::Program::Line(run.to_string()),
        Some(timeout),
    );
    let out = runner
        .capture(spec)
        .await
        .map_err(|e| format!("cannot run `{run}`: {e}"))?;
    if out.timed_out {
        return Err(format!(
            "`{run}` did not finish within {} (timeout)",
            crate::ui::format_duration(timeout)
        ));
    }
    if out.interrupted {
        return Err(format!("`{run}` was interrupted"));
    }
    if out.code != Some(0) {
        return Err(format!(
            "`{run}` exited with {}{}",
            out.code.map(|c| c.to_string()).unwrap_or("a signal".into()),
            out.stderr
                .lines()
                .last()
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default()
        ));
    }
    let text = &out.stdout;
    let Some(last) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Ok(Observed::NoData(format!("`{run}` printed nothing")).to_json());
    };
    let v: f64 = last
        .parse()
        .map_err(|_| format!("`{run}` printed `{}`, not a number", snippet(last)))?;
    Ok(Observed::number(v).to_json())
}
