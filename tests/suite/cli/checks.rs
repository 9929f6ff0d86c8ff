//! Checks: http, tcp and command checks, alone and together.

use crate::support::{Server, Test};

#[test]
fn http_tcp_and_command_checks() {
    let server = Server::start(|path| match path {
        "/health" => (200, "status: ok".into()),
        _ => (503, "down".into()),
    });
    let script = format!(
        r#"
        let a = check(#{{ name: "api", http: "{0}", status: 200, contains: "ok", latency: "2s" }});
        print(`api ${{a.ok}}`);
        let t = check(#{{ tcp: "{1}" }});
        print(`tcp ${{t.ok}}`);
        let c = check(#{{ name: "cmd", cmd: "test -d ." }});
        print(`cmd ${{c.ok}}`);
        let bad = check(#{{ name: "down", http: "{2}", allow_fail: true, retries: 1, interval: "10ms" }});
        print(`down ${{bad.ok}} ${{bad.detail}} after ${{bad.attempts}}`);
        try {{ check(#{{ name: "closed", tcp: "127.0.0.1:1", timeout: "500ms" }}); }} catch (e) {{ print(`caught ${{e}}`); }}
        "#,
        server.url("/health"),
        server.addr,
        server.url("/down"),
    );
    let out = Test::new().script(&script).run();
    // Each check's line says how long it took, and the tcp one names a port: the lines the
    // script printed are pinned whole.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "api true",
            "tcp true",
            "cmd true",
            "down false status 503, expected 2xx after 2",
            "caught check `closed` failed: cannot connect: Connection refused (os error 111)",
            "✅ Run completed.",
        ]);
}

#[test]
fn check_all_runs_concurrently_and_prints_one_table() {
    let server = Server::start(|path| {
        if path == "/slow" {
            std::thread::sleep(std::time::Duration::from_millis(400));
            (200, "ok".into())
        } else {
            (200, "ok".into())
        }
    });
    let checks: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "#{{ name: \"slow{i}\", http: \"{}\" }}",
                server.url("/slow")
            )
        })
        .collect();
    let script = format!(
        "let started = timestamp_ms(); let r = check_all([{}]); print(`took ${{timestamp_ms() - started}}`); print(`n ${{r.len()}}`);",
        checks.join(", ")
    );
    let out = Test::new().script(&script).run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "  CHECK  RESULT     TIME  DETAIL",
            "  5/5 passed",
            "n 5",
            "✅ Run completed.",
        ]);
    let took: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("took "))
        .unwrap()
        .parse()
        .unwrap();
    // Five 400 ms checks one after another would take 2 s.
    assert!(took < 1500, "check_all took {took} ms: not concurrent");
}
