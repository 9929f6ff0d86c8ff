//! One command runner for every command the program runs: `sh`, a `cmd` health check, a
//! `command` metric provider and an undo all stop the same way on a timeout (SIGTERM to the
//! whole process group, SIGKILL after `commands.kill_grace`), so none leaves an orphan behind and
//! each gets its grace.

use std::time::{Duration, Instant};

use crate::support::Test;

/// The scripts that run `cmd` with a 300 ms timeout through a health check and through a metric
/// provider, catching the error, so the run itself ends well.
fn through(kind: &str, cmd: &str) -> String {
    let cmd = cmd.replace('\\', "\\\\").replace('"', "\\\"");
    match kind {
        "check" => format!(
            "try {{ check(#{{ cmd: \"{cmd}\", timeout: \"300ms\" }}); }} catch (e) {{ print(`caught: ${{e}}`); }}\n"
        ),
        "provider" => format!(
            "try {{ measure(#{{ command: #{{ run: \"{cmd}\", timeout: \"300ms\" }} }}); }} catch (e) {{ print(`caught: ${{e}}`); }}\n"
        ),
        _ => unreachable!(),
    }
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet), waiting up to 2 s.
fn gone(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let after = &s[s.rfind(')')? + 1..];
                after.split_whitespace().next().map(str::to_string)
            });
        match state.as_deref() {
            None | Some("Z") | Some("X") => return true,
            _ if Instant::now() >= until => return false,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What the script prints when `cmd`, run as a `kind`, times out.
fn timed_out(kind: &str, cmd: &str) -> String {
    match kind {
        "check" => format!("caught: check `{cmd}` failed: did not finish within 300ms"),
        _ => format!("caught: `{cmd}` did not finish within 300ms (timeout)"),
    }
}

fn orphan_is_gone(kind: &str) {
    // The command's own child records its pid, then sleeps on: it is in the command's process
    // group, so the timeout must take it too.
    let started = Instant::now();
    let cmd = "sh -c 'echo $$ > grandchild.pid; exec sleep 30' & sleep 30";
    let out = Test::new()
        .script(&through(kind, cmd))
        .args(&["--set", "commands.kill_grace=200ms"])
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[&timed_out(kind, cmd), "✅ Run completed."]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{kind}: took {:?}",
        started.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(out.dir.join("grandchild.pid"))
        .unwrap_or_else(|e| panic!("{kind}: the grandchild did not start: {e}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        gone(pid),
        "{kind}: the grandchild {pid} survived the timeout"
    );
}

#[test]
fn a_cmd_health_check_that_times_out_takes_its_whole_process_group_with_it() {
    orphan_is_gone("check");
}

#[test]
fn a_command_metric_provider_that_times_out_takes_its_whole_process_group_with_it() {
    orphan_is_gone("provider");
}

/// A command that traps SIGTERM and needs 500 ms to write down that it got it: with a grace of
/// 3 s it does; with a grace of 100 ms it is killed before it can.
fn term_then_grace(kind: &str) {
    let cmd = "trap 'echo term > got-term; sleep 0.5; echo done > cleaned-up; exit 1' TERM; sleep 30 & wait";
    let started = Instant::now();
    let out = Test::new()
        .script(&through(kind, cmd))
        .args(&["--set", "commands.kill_grace=3s"])
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[&timed_out(kind, cmd), "✅ Run completed."]);
    let took = started.elapsed();
    assert!(
        out.dir.join("got-term").exists(),
        "{kind}: SIGTERM came first"
    );
    assert!(
        out.dir.join("cleaned-up").exists(),
        "{kind}: the grace let the trap finish"
    );
    // It ended when the trap did, not at the end of the grace.
    assert!(took < Duration::from_millis(2800), "{kind}: took {took:?}");

    let out = Test::new()
        .script(&through(kind, cmd))
        .args(&["--set", "commands.kill_grace=100ms"])
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[&timed_out(kind, cmd), "✅ Run completed."]);
    assert!(
        out.dir.join("got-term").exists(),
        "{kind}: SIGTERM came first"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !out.dir.join("cleaned-up").exists(),
        "{kind}: SIGKILL came after 100 ms, before the trap could finish"
    );
}

#[test]
fn a_cmd_health_check_that_times_out_gets_sigterm_and_the_kill_grace() {
    term_then_grace("check");
}

#[test]
fn a_command_metric_provider_that_times_out_gets_sigterm_and_the_kill_grace() {
    term_then_grace("provider");
}

#[test]
fn a_command_metric_provider_reads_the_last_line_of_a_direct_command_and_its_error_text() {
    let out = Test::new()
        .script(
            r#"
            print(`value: ${measure(#{ command: #{ run: "printf '1\\n2.5\\n'" } })}`);
            print(`direct: ${measure(#{ command: #{ run: "echo 7" } })}`);
            try { measure(#{ command: #{ run: "sh -c 'echo bad >&2; exit 3'" } }); } catch (e) { print(`caught: ${e}`); }
            print(check(#{ cmd: "true" }).detail);
            try { check(#{ cmd: "echo nope >&2; exit 4" }); } catch (e) { print(`caught: ${e}`); }
            "#,
        )
        .run();
    // The checks' own lines say how long they took: what the script printed is pinned.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "value: 2.5",
            "direct: 7.0",
            "caught: `sh -c 'echo bad >&2; exit 3'` exited with 3: bad",
            "exit 0",
            "caught: check `echo nope >&2; exit 4` failed: exit 4: nope",
            "✅ Run completed.",
        ]);
}

#[test]
fn an_undo_command_runs_under_commands_timeout_and_takes_its_group_with_it() {
    let out = Test::new()
        .script(
            "on_rollback(\"slow\", \"sh -c 'echo $$ > grandchild.pid; exec sleep 30' & sleep 30\");\nsh(\"false\");\n",
        )
        .args(&[
            "--set",
            "commands.timeout=300ms",
            "--set",
            "commands.kill_grace=200ms",
        ])
        .run();
    let pid: i32 = std::fs::read_to_string(out.dir.join("grandchild.pid"))
        .unwrap_or_else(|e| panic!("the undo did not start: {e}\n{}", out.stdout))
        .trim()
        .parse()
        .unwrap();
    assert!(gone(pid), "the undo's grandchild {pid} survived");
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
