//! The real `runbook` binary, run in temp dirs. Error text and exit codes are the interface, so
//! they are asserted exactly.

use crate::support;

use crate::support::{pty, Server, Test};

// ---------------------------------------------------------------- sh

#[test]
fn sh_streams_output_and_returns_a_map() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("echo out; echo err >&2");
            if r.code != 0 || r.stdout != "out\n" || r.stderr != "err\n" { throw "bad result " + r; }
            let a = sh(["printf", "%s|%s", "a b", "c"]);
            if a.stdout != "a b|c\n" && a.stdout != "a b|c" { throw "argv: " + a.stdout; }
            print("duration is int: " + type_of(r.duration));
            "#,
        )
        .run();
    out.code(0);
    // The two streams are read concurrently: their relative order is not fixed.
    assert!(
        out.stdout.contains("$ echo out; echo err >&2\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  │ out\n") && out.stdout.contains("  ! err\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("duration is int: i64"),
        "{}",
        out.stdout
    );
    let log = out.artifact("deployment-log.txt");
    assert!(log.contains("| out") && log.contains("! err"), "{log}");
}

#[test]
fn a_failing_command_is_a_catchable_error_unless_allowed() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("exit 3", #{ allow_fail: true });
            print(`allowed code ${r.code}`);
            try { sh("echo bad >&2; exit 7"); } catch (e) { print(`caught: ${e}`); }
            "#,
        )
        .run();
    out.code(0);
    assert!(out.stdout.contains("allowed code 3"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("caught: command `echo bad >&2; exit 7` failed with exit code 7: bad"),
        "{}",
        out.stdout
    );
}

#[test]
fn retries_with_backoff_until_the_command_succeeds() {
    let out = Test::new()
        .script(
            r#"
            let r = sh("n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]",
                       #{ retries: 3, backoff: "10ms" });
            print(`attempts ${r.attempts}`);
            "#,
        )
        .run();
    out.code(0);
    assert!(out.stdout.contains("attempts 3"), "{}", out.stdout);
    assert_eq!(
        out.records("effect.intent")
            .iter()
            .filter(|r| r["kind"] == "sh")
            .count(),
        3
    );
}

#[test]
fn env_and_cwd_options_reach_the_command() {
    let out = Test::new()
        .file("sub/x.txt", "")
        .script(r#"let r = sh("echo $GREETING; ls", #{ env: #{ GREETING: "hi" }, cwd: "sub" }); print(r.stdout);"#)
        .run();
    out.code(0);
    assert!(out.stdout.contains("hi\nx.txt"), "{}", out.stdout);
}

#[test]
fn an_unknown_option_is_named_with_a_suggestion() {
    let out = Test::new()
        .script(r#"sh("true", #{ timout: "1s" });"#)
        .run();
    out.code(1);
    assert_eq!(
        out.stderr,
        "error: `sh` has no option `timout` (did you mean `timeout`?); its options are: timeout, env, cwd, retries, backoff, allow_fail, quiet, name\n --> deploy.rhai:1:1\n  |\n1 | sh(\"true\", #{ timout: \"1s\" });\n  | ^\n"
    );
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_the_grace_period_with_its_children() {
    let start = std::time::Instant::now();
    let out = Test::new()
        .script(
            r#"
            try {
                sh("trap '' TERM; (trap '' TERM; sleep 30; touch orphan-survived) & sleep 30", #{ timeout: "300ms" });
            } catch (e) { print(`caught: ${e}`); }
            "#,
        )
        .args(&["--set", "commands.kill_grace=200ms"])
        .run();
    out.code(0);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        out.stdout.contains("caught: command `trap '' TERM;"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("timed out after"), "{}", out.stdout);
    // The background grandchild was in the same process group: it must be gone too.
    let pgrep = std::process::Command::new("pgrep")
        .args(["-f", "touch orphan-survived"])
        .output();
    if let Ok(p) = pgrep {
        assert!(
            p.stdout.is_empty(),
            "a grandchild survived: {}",
            String::from_utf8_lossy(&p.stdout)
        );
    }
}

// ---------------------------------------------------------------- prompts and answers

const PROMPTS: &str = r#"
let s = choose("How would you like to deploy this feature?", [
    #{ key: "blue-green", label: "Blue-Green Deployment", notes: ["Zero downtime", "Easy rollback", "Resource intensive"] },
    #{ key: "rolling", label: "Rolling Deployment", notes: ["Gradual update"] },
    #{ key: "canary", label: "Canary Release", notes: ["Test with small traffic %"] },
    #{ key: "feature-flag", label: "Feature Flag", notes: ["Deploy dark"] },
], #{ id: "strategy" });
print(`strategy=${s}`);
let name = input("Release name", "r1");
print(`name=${name}`);
let unchecked = checklist("Pre-deployment checklist:", ["All tests passing?", "Security scan clean?"]);
print(`unchecked=${unchecked}`);
if confirm("Proceed to production?") { print("proceeding"); }
"#;

#[test]
fn answers_come_from_a_file_keyed_by_prompt_id() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 3\nrelease-name: spring\npre-deployment-checklist:\n  all-tests-passing: yes\n  security-scan-clean: no\nproceed-to-production: y\n",
        )
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(0);
    assert!(out.stdout.contains("1️⃣ Blue-Green Deployment\n   - Zero downtime\n   - Easy rollback\n   - Resource intensive\n"), "{}", out.stdout);
    assert!(out.stdout.contains("strategy=canary"), "{}", out.stdout);
    assert!(out.stdout.contains("name=spring"), "{}", out.stdout);
    assert!(
        out.stdout.contains("unchecked=[\"Security scan clean?\"]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("proceeding"), "{}", out.stdout);
    let checklist = out.artifact("pre-deployment-checklist.md");
    assert!(
        checklist.contains("| All tests passing? | ✅ yes | tester | answers file answers.yaml |"),
        "{checklist}"
    );
    assert!(
        checklist.contains("| Security scan clean? | ❌ no | tester | answers file answers.yaml |"),
        "{checklist}"
    );
    let plan = out.artifact("deployment-plan.md");
    assert!(plan.contains("- Strategy: Canary Release"), "{plan}");
}

#[test]
fn answers_come_from_the_environment_too() {
    let out = Test::new()
        .script(PROMPTS)
        .env("RUNBOOK_ANSWER_STRATEGY", "Feature Flag")
        .env("RUNBOOK_ANSWER_RELEASE_NAME", "env-name")
        .env("RUNBOOK_ANSWER_PRE_DEPLOYMENT_CHECKLIST", "yes")
        .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "no")
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("strategy=feature-flag"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("name=env-name"), "{}", out.stdout);
    assert!(out.stdout.contains("unchecked=[]"), "{}", out.stdout);
    assert!(!out.stdout.contains("proceeding"), "{}", out.stdout);
}

#[test]
fn a_missing_answer_without_a_terminal_stops_before_the_prompt_with_exit_2() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 1\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(2);
    assert_eq!(
        out.stderr,
        "error: input `release-name` needs an answer and there is no terminal to ask\n  \
         question: Release name\n  \
         help: answer it in a file given with `--answers FILE`, as `release-name: some text`\n  \
         help: or set the environment variable RUNBOOK_ANSWER_RELEASE_NAME\n"
    );
    assert!(!out.stdout.contains("name="));
}

#[test]
fn an_answer_no_prompt_asked_for_is_reported_as_unused() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 1\nrelease-name: x\npre-deployment-checklist: yes\nproceed-to-production: yes\nproced-to-production: no\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(0);
    assert_eq!(
        out.stderr,
        "warning: answers.yaml: `proced-to-production` answers no prompt this runbook asks; did you mean `proceed-to-production`?\n\
         warning: answers file `answers.yaml` has an answer for `proced-to-production` that no prompt asked for (did you mean `proceed-to-production`?)\n"
    );
}

/// A run that stopped early never reached some prompts: their answers are said to be unreached,
/// not wrong (found by the new-team trial: every later answer was reported "no prompt asked for").
#[test]
fn answers_a_run_never_reached_are_not_called_wrong() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 1
release-name: x
pre-deployment-checklist: yes
proceed-to-production: yes
",
        )
        .script("sh(\"false\");\n")
        .args(&["--answers", "answers.yaml"])
        .run();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("the run ended (")
            && out
                .stderr
                .contains("before the prompts of 4 answer(s) in `answers.yaml` were reached"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("no prompt asked for"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_answer_names_the_file_the_id_and_the_fix() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 9\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(2);
    assert_eq!(
        out.stderr,
        "error: answer `strategy` in `answers.yaml`: `9` is not one of the choices: blue-green, rolling, canary, feature-flag (or its number)\n  help: found before the run started, so nothing was changed; fix the answer and run again\n"
    );
}

#[test]
fn an_answers_file_that_is_not_yaml_is_an_error_with_its_place() {
    let out = Test::new()
        .file("answers.yaml", "strategy: [1\n")
        .script(PROMPTS)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .starts_with("error: answers file `answers.yaml:2:1`:"),
        "{}",
        out.stderr
    );
    assert!(
        !out.dir.join("deployments").exists(),
        "nothing should be created before the run"
    );
}

#[test]
fn a_list_answers_the_same_prompt_asked_again_in_order() {
    let out = Test::new()
        .file("answers.yaml", "canary-looks-healthy-increase-traffic: [a, b, c]\n")
        .script(
            r#"
            for i in 0..3 {
                let c = choose("Canary looks healthy. Increase traffic?", [
                    #{ key: "25", label: "Yes, increase to 25%" }, #{ key: "50", label: "Yes, increase to 50%" },
                    #{ key: "100", label: "Complete rollout (100%)" }, #{ key: "hold", label: "Hold at current %" },
                    #{ key: "rollback", label: "Rollback" }], #{ style: "letters" });
                print(`step ${c}`);
            }
            "#,
        )
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains("a) Yes, increase to 25%\nb) Yes, increase to 50%\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("step 25")
            && out.stdout.contains("step 50")
            && out.stdout.contains("step 100"),
        "{}",
        out.stdout
    );
}

const APPROVE: &str = r#"
approve(#{ feature: "checkout", changes: "new payment flow", risk: "Medium", rollback_time: "5 minutes" });
sh("touch approved-marker");
"#;

#[test]
fn yes_never_approves() {
    let out = Test::new().script(APPROVE).args(&["--yes"]).run();
    out.code(2);
    assert!(out.stderr.starts_with("error: approval `approve-deployment` needs an answer and there is no terminal to ask\n"), "{}", out.stderr);
    assert!(!out.dir.join("approved-marker").exists());
}

#[test]
fn the_approval_box_and_the_record_of_who_approved() {
    let out = Test::new()
        .file(
            "answers.yaml",
            "approve-deployment: { approved: yes, by: alice }\n",
        )
        .script(APPROVE)
        .args(&["--answers", "answers.yaml"])
        .run();
    out.code(0);
    assert!(out.stdout.contains(
        "⚠️ CRITICAL DECISION: Deploy to Production\n━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━\nFeature: checkout\nChanges: new payment flow\nRisk Level: Medium\nRollback Time: 5 minutes\n\nDo you approve deployment? (y/n):\n"
    ), "{}", out.stdout);
    let rec = out
        .records("effect.result")
        .into_iter()
        .find(|r| r["kind"] == "prompt.approve")
        .unwrap();
    assert_eq!(rec["result"]["approved"], true);
    assert_eq!(rec["result"]["by"], "alice");
    assert_eq!(rec["result"]["how"], "answers file answers.yaml");
    assert!(rec["result"]["host"]
        .as_str()
        .is_some_and(|h| !h.is_empty()));
    assert!(rec["result"]["at"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));
    assert!(out
        .artifact("pre-deployment-checklist.md")
        .contains("- Decision: approved\n- By: alice\n- How: answers file answers.yaml\n"));
}

#[test]
fn approve_flag_approves_and_is_recorded_as_such() {
    let out = Test::new().script(APPROVE).args(&["--approve"]).run();
    out.code(0);
    let rec = out
        .records("effect.result")
        .into_iter()
        .find(|r| r["kind"] == "prompt.approve")
        .unwrap();
    assert_eq!(rec["result"]["by"], "tester");
    assert_eq!(rec["result"]["how"], "--approve");
}

#[test]
fn a_declined_approval_exits_4_and_changes_nothing_further() {
    let out = Test::new()
        .script(APPROVE)
        .env("RUNBOOK_ANSWER_APPROVE_DEPLOYMENT", "n")
        .run();
    out.code(4);
    assert_eq!(out.stderr, "error: `CRITICAL DECISION: Deploy to Production` was declined by tester; nothing further was changed\n");
    assert!(!out.dir.join("approved-marker").exists());
    assert!(!out.run_dir().join("post-mortem.md").exists());
}

// ---------------------------------------------------------------- checks

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
    out.code(0);
    for want in [
        "api true",
        "tcp true",
        "cmd true",
        "down false status 503, expected 2xx after 2",
        "caught check `closed` failed: cannot connect",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in\n{}",
            out.stdout
        );
    }
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
    out.code(0);
    assert!(
        out.stdout.contains("  CHECK  RESULT     TIME  DETAIL\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  5/5 passed"), "{}", out.stdout);
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

// ---------------------------------------------------------------- stages, rollback

#[test]
fn rollback_runs_undos_last_in_first_out_and_exits_3() {
    let out = Test::new()
        .script(
            r#"
            stage("Deploy", || {
                on_rollback("first", "echo undo-first >> order");
                on_rollback("second", ["sh", "-c", "echo undo-second >> order"]);
                on_rollback("third", "echo undo-third >> order");
            });
            rollback("error rate above 5%");
            sh("touch never");
            "#,
        )
        .run();
    out.code(3);
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "undo-third\nundo-second\nundo-first\n"
    );
    assert!(!out.dir.join("never").exists());
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("- Outcome: rolled back"), "{pm}");
    assert!(pm.contains("rollback started: error rate above 5%"), "{pm}");
    let rp = out.artifact("rollback-plan.md");
    assert!(
        rp.contains("None: nothing this run did is waiting to be undone."),
        "{rp}"
    );
    assert!(rp.contains("- third: exit 0"), "{rp}");
}

#[test]
fn a_failing_undo_is_reported_the_rest_still_run_and_the_exit_is_1() {
    let out = Test::new()
        .script(
            r#"
            on_rollback("first", "echo first >> order");
            on_rollback("broken", "echo broken >&2; exit 9");
            on_rollback("last", "echo last >> order");
            rollback("manual");
            "#,
        )
        .run();
    out.code(1);
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "last\nfirst\n"
    );
    assert!(
        out.stdout.contains(
            "  ✗ broken: command `echo broken >&2; exit 9` failed with exit code 9: broken"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Rollback incomplete: 1 of 3 undo step(s) failed: broken"),
        "{}",
        out.stdout
    );
    assert!(out
        .artifact("post-mortem.md")
        .contains("- Outcome: rollback failed"));
}

#[test]
fn an_uncaught_failure_rolls_back_on_its_own_when_nobody_can_be_asked() {
    let out = Test::new()
        .script(
            r#"
            stage("Deploy", || {
                sh("touch deployed");
                on_rollback("remove deployed", "rm deployed");
                sh("echo boom >&2; exit 1");
            });
            "#,
        )
        .run();
    out.code(3);
    assert!(!out.dir.join("deployed").exists());
    assert!(
        out.stdout
            .contains("Nobody to ask (no terminal, no answer): rolling back on its own"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.starts_with("error: command `echo boom >&2; exit 1` failed with exit code 1: boom\n --> deploy.rhai:5:17\n"), "{}", out.stderr);
}

#[test]
fn on_failure_never_leaves_the_undo_stack_standing_with_exit_1() {
    let out = Test::new()
        .script("on_rollback(\"undo it\", \"rm deployed\"); sh(\"touch deployed\"); sh(\"false\");")
        .args(&["--set", "rollback.on_failure=never"])
        .run();
    out.code(1);
    assert!(out.dir.join("deployed").exists());
    let rp = out.artifact("rollback-plan.md");
    assert!(rp.contains("1. undo it: `rm deployed`"), "{rp}");
}

#[test]
fn a_stdlib_function_undo_is_data_and_runs_from_its_module() {
    let out = Test::new()
        .file("ops.rhai", "fn restore(name, n) { sh(`echo restored ${name} ${n} >> order`); }\n")
        .script(r#"on_rollback("restore", #{ function: "ops::restore", args: ["blue", 2] }); rollback("test");"#)
        .run();
    out.code(3);
    assert_eq!(
        std::fs::read_to_string(out.dir.join("order")).unwrap(),
        "restored blue 2\n"
    );
    let reg = &out.records("undo.register")[0];
    assert_eq!(
        reg["action"],
        serde_json::json!({ "kind": "call", "module": "ops", "function": "restore", "args": ["blue", 2] })
    );
}

#[test]
fn a_closure_cannot_be_an_undo() {
    let out = Test::new()
        .script("on_rollback(\"x\", || sh(\"true\"));")
        .run();
    out.code(1);
    assert!(
        out.stderr
            .starts_with("error: an undo must be data the journal can hold"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- notify

#[test]
fn notifications_reach_webhook_slack_file_and_stdout_and_a_failure_never_fails_the_run() {
    let server = Server::start(|path| {
        if path == "/broken" {
            (500, "no".into())
        } else {
            (200, "ok".into())
        }
    });
    let config = format!(
        "notify:\n  ops: {{ type: webhook, url: \"{}\", headers: {{ X-Token: abc }} }}\n  team: {{ type: slack, url: \"{}\" }}\n  audit: {{ type: file, path: audit.jsonl }}\n  console: {{ type: stdout }}\n  broken: {{ type: webhook, url: \"{}\" }}\n",
        server.url("/ops"),
        server.url("/slack"),
        server.url("/broken")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .args(&["--set", "feature=checkout"])
        .script(r#"notify(["ops", "team", "audit", "console"], "deployed v2"); let ok = notify("broken", "x"); print(`broken ok=${ok}`);"#)
        .run();
    out.code(0);
    let bodies = server.bodies();
    let ops = bodies.iter().find(|(p, _)| p == "/ops").unwrap();
    let v: serde_json::Value = serde_json::from_str(&ops.1).unwrap();
    assert_eq!(v["text"], "deployed v2");
    assert_eq!(v["feature"], "checkout");
    let slack = bodies.iter().find(|(p, _)| p == "/slack").unwrap();
    assert_eq!(slack.1, r#"{"text":"deployed v2"}"#);
    assert!(std::fs::read_to_string(out.dir.join("audit.jsonl"))
        .unwrap()
        .contains("\"text\":\"deployed v2\""));
    assert!(
        out.stdout.contains("📣 [console] deployed v2"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("broken ok=false"), "{}", out.stdout);
    assert_eq!(out.stderr, "warning: notification to `broken` failed: the webhook answered 500 Internal Server Error\n");
}

#[test]
fn an_unknown_channel_is_an_error_with_a_suggestion() {
    let out = Test::new()
        .file("runbook.yaml", "notify:\n  team: { type: stdout }\n")
        .script(r#"notify("tema", "x");"#)
        .run();
    // Written literally in the script: found before the run starts (tests/suite/claims_output.rs).
    out.code(2);
    assert!(out.stderr.starts_with("error: no notification channel `tema` (did you mean `team`?): the channels defined are team\n"), "{}", out.stderr);
}

// ---------------------------------------------------------------- secrets

#[test]
fn secrets_never_appear_in_any_output() {
    let server = Server::start(|_| (200, "ok".into()));
    let config = format!(
        "secrets:\n  env: [DEPLOY_TOKEN]\n  values:\n    db_password: hunter2-secret\nnotify:\n  ops: {{ type: webhook, url: \"{}\" }}\n  console: {{ type: stdout }}\n",
        server.url("/ops")
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .env("DEPLOY_TOKEN", "tok-12345-abcdef")
        .script(
            r#"
            let token = env("DEPLOY_TOKEN");
            sh(`echo using ${token}; echo ${secret("db_password")} >&2`);
            print(`token is ${token}`);
            on_rollback("revoke", `echo revoke ${token}`);
            notify(["ops", "console"], `deployed with ${token}`);
            sh(`echo ${token}; exit 1`);
            "#,
        )
        .run();
    out.code(3);
    let mut everything = format!("{}{}", out.stdout, out.stderr);
    for entry in std::fs::read_dir(out.run_dir()).unwrap() {
        everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for (_, body) in server.bodies() {
        everything.push_str(&body);
    }
    assert!(everything.contains("[REDACTED]"));
    assert!(
        !everything.contains("tok-12345-abcdef"),
        "token leaked:\n{everything}"
    );
    assert!(
        !everything.contains("hunter2-secret"),
        "password leaked:\n{everything}"
    );
}

// ---------------------------------------------------------------- dry-run

#[test]
fn dry_run_executes_nothing_and_writes_the_plan() {
    let out = Test::new()
        .file("answers.yaml", "strategy: 3\n")
        .script(
            r#"
            let s = choose("How would you like to deploy this feature?", ["Blue-Green Deployment", "Rolling Deployment", "Canary Release", "Feature Flag"], #{ id: "strategy" });
            stage("Stage 1: Staging Deployment", || {
                sh("touch marker");
                on_rollback("remove marker", "rm marker");
                check(#{ http: "http://127.0.0.1:1/health" });
            });
            stage("Stage 2: Production Deployment", || { sh(["kubectl", "apply", "-f", "k8s/canary/"]); sleep("1h"); });
            "#,
        )
        .args(&["--dry-run", "--answers", "answers.yaml"])
        .run();
    out.code(0);
    assert!(!out.dir.join("marker").exists(), "dry-run ran a command");
    let plan = out.artifact("deployment-plan.md");
    assert!(
        plan.contains(
            "- Mode: dry-run (nothing was executed; every command below is what would run)"
        ),
        "{plan}"
    );
    assert!(plan.contains("- Strategy: Canary Release"), "{plan}");
    assert!(
        plan.contains("1. Stage 1: Staging Deployment (done"),
        "{plan}"
    );
    assert!(
        plan.contains("| Stage 1: Staging Deployment | `touch marker` | planned |"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "| Stage 2: Production Deployment | `kubectl apply -f k8s/canary/` | planned |"
        ),
        "{plan}"
    );
    assert!(out
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with("-dry-run"));
    assert!(out
        .artifact("rollback-plan.md")
        .contains("1. remove marker: `rm marker`"));
}

// ---------------------------------------------------------------- errors, limits, modules

#[test]
fn a_script_error_in_a_module_points_at_the_module_line_and_the_call_site() {
    let out = Test::new()
        .file(
            "lib/helpers.rhai",
            "fn explode(x) {\n    let y = x + 1;\n    throw `boom ${y}`;\n}\n",
        )
        .file(
            "deploy.rhai",
            "import \"lib/helpers\" as helpers;\n\nhelpers::explode(1);\n",
        )
        .args(&["deploy.rhai"])
        .run();
    out.code(1);
    assert_eq!(
        out.stderr,
        "error: boom 2\n --> lib/helpers.rhai:3:5\n  |\n3 |     throw `boom ${y}`;\n  |     ^\n  note: called from deploy.rhai:3:10\n  |\n3 | helpers::explode(1);\n  |          ^\n"
    );
}

#[test]
fn a_syntax_error_in_a_module_is_found_before_anything_runs() {
    let out = Test::new()
        .file("helpers.rhai", "fn ok() { 1 }\nfn broken( { }\n")
        .file(
            "deploy.rhai",
            "sh(\"touch marker\");\nimport \"helpers\" as h;\n",
        )
        .args(&["deploy.rhai"])
        .run();
    out.code(2);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains(" --> helpers.rhai:2:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("  note: called from deploy.rhai:2:1\n"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("marker").exists());
    assert!(!out.dir.join("deployments").exists());
}

#[test]
fn an_undefined_variable_is_a_compile_error_with_a_suggestion() {
    let out = Test::new()
        .script("let version = 1;\nprint(verison);\n")
        .run();
    out.code(2);
    assert_eq!(
        out.stderr,
        "error: variable `verison` is not defined\n --> deploy.rhai:2:7\n  |\n2 | print(verison);\n  |       ^\n  help: did you mean `version`?\n"
    );
}

#[test]
fn a_mistyped_primitive_gets_a_did_you_mean() {
    let out = Test::new().script("shh(\"true\");\n").run();
    out.code(1);
    assert_eq!(out.stderr, "error: no function `shh`\n --> deploy.rhai:1:1\n  |\n1 | shh(\"true\");\n  | ^\n  help: did you mean `sh`?\n");
}

#[test]
fn an_endless_loop_is_stopped_by_the_operation_limit() {
    let out = Test::new()
        .script("let i = 0;\nloop { i += 1; }\n")
        .args(&["--set", "limits.operations=100000"])
        .run();
    out.code(1);
    assert!(out.stderr.starts_with("error: the script ran past its operation limit (`limits.operations`): is there an endless loop?\n --> deploy.rhai:2:"), "{}", out.stderr);
}

#[test]
fn an_imported_stdlib_name_that_does_not_exist_is_named() {
    let out = Test::new()
        .script("import \"no_such_module\" as m;\n")
        .run();
    out.code(2);
    assert!(
        out.stderr
            .starts_with("error: no module `no_such_module`: no file beside the script"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- config

#[test]
fn an_unknown_config_key_is_an_error_with_its_path_and_place() {
    let out = Test::new()
        .file("runbook.yaml", "limits:\n  operatons: 5\n")
        .script("print(1);")
        .run();
    out.code(2);
    assert_eq!(
        out.stderr,
        "error: invalid config at `limits.operatons`: unknown field `operatons`, expected one of `operations`, `wall_clock`, `call_depth`, `expr_depth`, `string_size`, `array_size`, `map_size`\n --> runbook.yaml:2:3\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n"
    );
}

#[test]
fn set_overrides_merge_into_config_and_are_checked() {
    let out = Test::new()
        .file("runbook.yaml", "feature: from-file\nvars:\n  region: eu\n")
        .script("print(`${feature()} ${config(\"vars.region\")} ${config(\"version\")}`);")
        .args(&["--set", "feature=from-set", "--set", "version=1.10"])
        .run();
    out.code(0);
    assert!(out.stdout.contains("from-set eu 1.10"), "{}", out.stdout);
    assert!(out.run_dir().ends_with(format!(
        "{}-from-set",
        &out.run_dir().file_name().unwrap().to_string_lossy()[..10]
    )));

    let bad = Test::new()
        .script("print(1);")
        .args(&["--set", "limits.operations=lots"])
        .run();
    bad.code(2);
    assert_eq!(
        bad.stderr,
        "error: invalid `--set limits.operations=lots`: invalid type: string \"lots\", expected u64\n  help: write it as `--set key.path=value`, e.g. `--set feature=checkout`\n"
    );
}

// ---------------------------------------------------------------- exit codes, runbook lookup

#[test]
fn exit_code_0_on_completion_and_a_summary() {
    let out = Test::new().script("sh(\"true\");").run();
    out.code(0);
    assert!(out.stdout.contains("✅ Run completed."), "{}", out.stdout);
    let end = &out.records("run.end")[0];
    assert_eq!(end["outcome"], "completed");
    assert_eq!(end["exit_code"], 0);
}

#[test]
fn exit_code_130_on_sigterm_with_the_journal_complete() {
    let t = Test::new()
        .script("on_rollback(\"u\", \"true\");\nsh(\"(sleep 30; touch orphan-130) & sleep 30\");\nsh(\"touch after\");\n");
    let mut child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the command is running (its intent is journaled).
    wait_for_journal(t.path(), "sleep 30");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!t.path().join("after").exists());
    let dir = only_run_dir(t.path());
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "interrupted");
    assert!(
        journal.contains("command `(sleep 30; touch orphan-130) & sleep 30` was interrupted"),
        "the command's result records the interrupt:\n{journal}"
    );
    // The command's background child went with it: no orphan is left to act later.
    let p = std::process::Command::new("pgrep")
        .args(["-f", "touch orphan-130"])
        .output()
        .expect("pgrep (procps)");
    assert!(
        p.stdout.is_empty(),
        "an orphan survived: {}",
        String::from_utf8_lossy(&p.stdout)
    );
    assert!(std::fs::read_to_string(dir.join("post-mortem.md"))
        .unwrap()
        .contains("- Outcome: interrupted"));
}

#[test]
fn the_shipped_runbooks_are_found_by_name_and_a_local_file_shadows_them() {
    let local = Test::new()
        .file(
            "runbooks/preflight.rhai",
            "// Our own preflight.\nprint(\"local preflight\");\n",
        )
        .args(&["preflight"])
        .run();
    local.code(0);
    assert!(local.stdout.contains("local preflight"), "{}", local.stdout);
    let list = Test::new()
        .file(
            "runbooks/preflight.rhai",
            "// Our own preflight.\nprint(1);\n",
        )
        .args(&["list"])
        .run();
    list.code(0);
    assert!(
        list.stdout
            .contains("preflight  runbooks/preflight.rhai (shadows shipped)  Our own preflight."),
        "{}",
        list.stdout
    );
}

#[test]
fn an_unknown_runbook_name_lists_where_it_looked() {
    let out = Test::new().args(&["deplyo"]).run();
    out.code(2);
    assert!(out.stderr.starts_with("error: no runbook named `deplyo`\n  searched: runbooks/\n  searched: the runbooks shipped in this binary\n"), "{}", out.stderr);
}

#[test]
fn check_compiles_without_running_and_reports_errors_with_exit_2() {
    let t = Test::new().file("helpers.rhai", "fn f() { 1 }").file(
        "deploy.rhai",
        "import \"helpers\" as h;\nsh(\"touch marker\");\n",
    );
    let out = t.args(&["check", "deploy.rhai"]).run();
    out.code(0);
    assert_eq!(out.stdout, "ok: deploy.rhai compiles with 1 module(s); config defaults (no runbook.yaml); answers not given\n");
    assert!(!out.dir.join("marker").exists());
    assert!(!out.dir.join("deployments").exists());
    let bad = Test::new()
        .file("deploy.rhai", "let x = ;\n")
        .args(&["check", "deploy.rhai"])
        .run();
    bad.code(2);
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);
    assert!(
        bad.stderr.contains(" --> deploy.rhai:1:9\n"),
        "{}",
        bad.stderr
    );
}

#[test]
fn init_writes_a_starter_config_that_loads() {
    let out = Test::new().args(&["init"]).run();
    out.code(0);
    let cfg = std::fs::read_to_string(out.dir.join("runbook.yaml")).unwrap();
    assert!(cfg.contains("# notify:"));
    let check = Test::new().file("runbook.yaml", &cfg).args(&["list"]).run();
    check.code(0);
    // Every key the starter shows, uncommented, is a valid config: the starter tells the truth.
    let keys = support::documented_keys(&cfg);
    assert!(
        keys.contains("script:\n") && keys.contains("  deploy: ./deploy.sh {env}\n"),
        "{keys}"
    );
    let full = Test::new()
        .file("full.yaml", &keys)
        .args(&["check", "preflight", "--config", "full.yaml"])
        .run();
    full.code(0);
    let second = Test::new()
        .file("runbook.yaml", "feature: x\n")
        .args(&["init"])
        .run();
    second.code(0);
    assert!(
        second
            .stdout
            .contains("skip ./runbook.yaml (exists; --force overwrites)"),
        "{}",
        second.stdout
    );
}

#[test]
fn help_has_examples_and_completions_print() {
    let out = Test::new().args(&["--help"]).run();
    out.code(0);
    assert!(
        out.stdout
            .contains("Examples:\n  runbook demo --unattended "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Exit codes:"), "{}", out.stdout);
    let check = Test::new().args(&["check", "--help"]).run();
    check.code(0);
    assert!(
        check
            .stdout
            .contains("Examples:\n  runbook check deploy.rhai"),
        "{}",
        check.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = Test::new().args(&["completions", shell]).run();
        c.code(0);
        assert!(c.stdout.contains("runbook"), "{shell}");
    }
    let bad = Test::new().args(&["--colour", "x"]).run();
    bad.code(2);
}

#[test]
fn json_log_format_prints_events() {
    let out = Test::new()
        .script("sh(\"true\");")
        .args(&["--log-format", "json"])
        .run();
    out.code(0);
    // Every line is a journal record, as it was written.
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.first().unwrap()["type"], "run.start");
    assert!(records
        .iter()
        .any(|r| r["type"] == "effect.result" && r["kind"] == "sh" && r["ok"] == true));
    let last = records.last().unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "completed");
}

// ---------------------------------------------------------------- a person at a real terminal

#[test]
fn prompts_at_a_real_terminal_re_ask_on_a_bad_answer_and_record_the_person() {
    let t = Test::new().script(
        r#"
        let s = choose("How would you like to deploy this feature?", ["Blue-Green Deployment", "Rolling Deployment", "Canary Release", "Feature Flag"], #{ id: "strategy" });
        print(`strategy=${s}`);
        let missing = checklist("Pre-deployment checklist:", ["All tests passing?", "Team notified?"]);
        print(`missing=${missing}`);
        approve(#{ feature: "checkout", changes: "payments", risk: "High", rollback_time: "1m" });
        sh("touch approved-marker");
        "#,
    );
    let mut p = pty(&t, &[]);
    p.exp_string("Press 1, 2, 3, or 4:").unwrap();
    p.send_line("7").unwrap();
    p.exp_string("`7` is not one of the choices; press 1, 2, 3, or 4")
        .unwrap();
    p.send_line("3").unwrap();
    p.exp_string("strategy=Canary Release").unwrap();
    p.exp_string("- [ ] All tests passing? (y/n):").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("- [ ] Team notified? (y/n):").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("missing=[\"Team notified?\"]").unwrap();
    p.exp_string("Do you approve deployment? (y/n):").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Run completed.").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 0)"), "{status:?}");
    assert!(t.path().join("approved-marker").exists());
    let dir = only_run_dir(t.path());
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let approval: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "effect.result" && r["kind"] == "prompt.approve")
        .expect("an approval record");
    assert_eq!(approval["result"]["approved"], true);
    assert_eq!(approval["result"]["by"], "tester");
    assert!(journal.contains(r#""how":"at the terminal""#), "{journal}");
}

#[test]
fn ctrl_c_at_a_terminal_stops_the_command_and_offers_rollback() {
    let t = Test::new().script(
        r#"
        on_rollback("undo deploy", "touch rolled-back");
        sh("echo deploying; sleep 30");
        sh("touch never");
        "#,
    );
    let mut p = pty(&t, &[]);
    p.exp_string("deploying").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Roll back what this run changed? (y/n):")
        .unwrap();
    p.send_line("y").unwrap();
    p.exp_string("Rollback complete").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 3)"), "{status:?}");
    assert!(t.path().join("rolled-back").exists());
    assert!(!t.path().join("never").exists());
}

#[test]
fn a_second_ctrl_c_aborts_at_once_with_130() {
    let t = Test::new().script(
        "on_rollback(\"undo\", \"touch rolled-back\");\nsh(\"echo deploying; sleep 30\");\n",
    );
    let mut p = pty(&t, &[]);
    p.exp_string("deploying").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("(Ctrl-C again to abort now)").unwrap();
    p.exp_string("(y/n):").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("interrupted twice: aborting now").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 130)"), "{status:?}");
    assert!(!t.path().join("rolled-back").exists());
}

#[test]
fn the_quickstart_example_runs_and_its_module_undo_rolls_back() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let t = Test::new().example(
        "quickstart",
        &[
            "runbook.yaml",
            "deploy.rhai",
            "answers.yaml",
            "lib/app.rhai",
        ],
    );
    let out = t.args(&["deploy.rhai", "--answers", "answers.yaml"]).run();
    out.code(0);
    assert_eq!(
        std::fs::read_to_string(out.dir.join("releases/production")).unwrap(),
        "1.0.0\n"
    );
    assert!(
        out.stdout.contains(
            "○ Integration tests: not configured (set checks.integration in runbook.yaml)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("2 of 6 automated checks configured and passing"),
        "{}",
        out.stdout
    );

    // The same deploy with a failing production step: the module-function undos restore both.
    let t = Test::new().example(
        "quickstart",
        &["runbook.yaml", "answers.yaml", "lib/app.rhai"],
    );
    let script = std::fs::read_to_string(example.join("deploy.rhai"))
        .unwrap()
        .replace(
            "app::deploy(\"production\", config(\"version\"));",
            "app::deploy(\"production\", config(\"version\")); sh(\"exit 1\");",
        );
    let out = t
        .file("deploy.rhai", &script)
        .args(&["deploy.rhai", "--answers", "answers.yaml"])
        .run();
    out.code(3);
    assert!(!out.dir.join("releases/production").exists());
    assert!(!out.dir.join("releases/staging").exists());
}

// ---------------------------------------------------------------- runbook demo: the embedded fleet

fn demo(strategy: &str, bad: bool) -> support::Output {
    demo_in(Test::new(), strategy, bad)
}

fn demo_in(t: Test, strategy: &str, bad: bool) -> support::Output {
    // Short windows keep the suite fast; fewer requests per window keep them conclusive when the
    // machine is busy running the other demos at the same time.
    let mut args = vec![
        "demo",
        "--unattended",
        "--strategy",
        strategy,
        "--set",
        "monitoring.interval=500ms",
        "--set",
        "monitoring.samples=3",
        // At a 5% share the canary sees a few requests a second, fewer on a busy machine: one
        // request is enough for a reading (the good release fails none, the bad one 20%).
        "--set",
        "monitoring.min_requests=1",
        // A machine busy with the rest of the suite answers slowly: the response-time trigger
        // would roll a good release back. The bad release is caught by its error rate.
        "--set",
        "triggers.response_time=30s",
    ];
    if bad {
        args.push("--bad-release");
    }
    t.args(&args).run()
}

fn demo_good(strategy: &str) {
    let out = demo(strategy, false);
    out.code(0);
    assert!(
        out.stdout
            .contains("Traffic now (measured through the router): v2 100% (200/200)"),
        "{}",
        out.stdout
    );
    let plan = out.artifact("deployment-plan.md");
    assert!(plan.contains("- Outcome: completed"), "{plan}");
    assert!(!out.run_dir().join("post-mortem.md").exists());
    let snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    let verdicts = snapshot["verdicts"].as_array().unwrap();
    assert!(
        !verdicts.is_empty() && verdicts.iter().all(|v| v["verdict"] == "success"),
        "{snapshot}"
    );
    assert!(
        out.stdout.contains("- ✅ Deployed successfully"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("📣 [team] checkout v2 deployed"),
        "{}",
        out.stdout
    );
    // The old version was cleaned up; what stands is the undo that brings it back.
    let rollback_plan = out.artifact("rollback-plan.md");
    assert!(
        rollback_plan.contains("1. restore v1: `local::restore(\"v1\", 4)`"),
        "{rollback_plan}"
    );
}

fn demo_bad(strategy: &str) {
    let out = demo(strategy, true);
    out.code(3);
    assert!(
        out.stdout
            .contains("Traffic now (measured through the router): v1 100% (200/200)"),
        "{}",
        out.stdout
    );
    let pm = out.artifact("post-mortem.md");
    assert!(pm.contains("- Outcome: rolled back"), "{pm}");
    assert!(pm.contains("rollback started: "), "{pm}");
    assert!(pm.contains("error rate") && pm.contains("> 5.0%"), "{pm}");
    let snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    assert!(
        snapshot["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["verdict"] == "failure"),
        "{snapshot}"
    );
    assert!(out
        .artifact("rollback-plan.md")
        .contains("None: nothing this run did is waiting to be undone."));
}

#[test]
fn demo_canary_good_release_ends_on_the_new_version() {
    demo_good("canary");
}

#[test]
fn demo_appends_to_the_changelog_the_team_names() {
    let t = Test::new().file(
        "runbook.yaml",
        "documentation:\n  changelog: CHANGELOG.md\n",
    );
    let out = demo_in(t, "blue-green", false);
    out.code(0);
    let log = std::fs::read_to_string(out.dir.join("CHANGELOG.md")).unwrap();
    assert!(
        log.ends_with(": checkout v2 deployed (Blue-Green Deployment)\n"),
        "{log}"
    );
}
#[test]
fn demo_canary_bad_release_is_detected_and_rolled_back() {
    demo_bad("canary");
}
#[test]
fn demo_blue_green_good_release_ends_on_the_new_version() {
    demo_good("blue-green");
}
#[test]
fn demo_blue_green_bad_release_switches_back() {
    demo_bad("blue-green");
}
#[test]
fn demo_rolling_good_release_replaces_every_instance() {
    demo_good("rolling");
}
#[test]
fn demo_rolling_by_percentage_replaces_half_the_fleet_per_batch() {
    let t = Test::new().file("runbook.yaml", "rolling:\n  batch_percent: 50\n");
    let out = demo_in(t, "rolling", false);
    out.code(0);
    let snapshot: serde_json::Value =
        serde_json::from_str(&out.artifact("monitoring-snapshot.json")).unwrap();
    let windows: Vec<&str> = snapshot["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["window"].as_str().unwrap())
        .collect();
    assert_eq!(windows, vec!["batch 1/2", "batch 2/2"], "{snapshot}");
}

#[test]
fn demo_rolling_bad_release_undoes_the_batches() {
    demo_bad("rolling");
}
#[test]
fn demo_feature_flag_good_release_ends_with_the_flag_at_100() {
    demo_good("feature-flag");
}
#[test]
fn demo_feature_flag_bad_release_turns_the_flag_off() {
    demo_bad("feature-flag");
}

// ---------------------------------------------------------------- the script adapter, with a real nginx

#[test]
fn script_adapter_blue_green_behind_a_real_nginx_then_rolled_back_from_the_journal() {
    let nginx = support::nginx_binary();
    let t = Test::new();
    let dir = t.path().to_path_buf();
    let blue = support::start_app(dir.join("blue"));
    let green = support::start_app(dir.join("green"));
    let staging = support::start_app(dir.join("staging"));
    std::fs::write(dir.join("blue/version"), "v1\n").unwrap();
    let _server = support::Nginx::start(
        &dir,
        "shop",
        &format!("upstream shop {{ server 127.0.0.1:{blue}; }}\n"),
    );
    let port = _server.port;
    let front = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        support::wait_for(&front, "v1"),
        "v1",
        "nginx serves blue before the deploy"
    );

    // The example team's own scripts and runbook (examples/blue-green-nginx): deploy writes the
    // version an instance serves, switch rewrites nginx's upstream and reloads it, the health
    // check asks the colour's instance.
    let t = t.example(
        "blue-green-nginx",
        &[
            "runbook.yaml",
            "answers.yaml",
            "deploy.sh",
            "scripts/switch-traffic.sh",
            "scripts/health-check.sh",
            "runbooks/deploy.rhai",
        ],
    );
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    for c in ["blue", "green", "staging"] {
        std::os::unix::fs::symlink(dir.join(c), dir.join("apps").join(c)).unwrap();
    }
    let nginx_dir = dir.clone();
    let path = format!(
        "{}:/usr/sbin:/sbin:{}",
        std::path::Path::new(&nginx).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t = t
        .env("PATH", &path)
        .env("BLUE_PORT", &blue.to_string())
        .env("GREEN_PORT", &green.to_string())
        .env("STAGING_PORT", &staging.to_string())
        .env("NGINX_DIR", &nginx_dir.display().to_string())
        .env("RELEASE", "v2");
    let out = t
        .args(&[
            "deploy",
            "--answers",
            "answers.yaml",
            "--approve",
            "--set",
            "monitoring.interval=200ms",
            "--set",
            "monitoring.samples=2",
        ])
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains("$ switch: ./scripts/switch-traffic.sh blue-to-green"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("No metrics source (monitoring.prometheus or monitoring.metrics_url): judging by health checks only"),
        "{}",
        out.stdout
    );
    assert_eq!(
        support::wait_for(&front, "v2"),
        "v2",
        "nginx serves green after the deploy"
    );
    assert!(
        out.stdout
            .contains("v1 stays in place for an instant switch-back"),
        "{}",
        out.stdout
    );
    // The team's override of one step ran: its release notes entry.
    let notes = std::fs::read_to_string(dir.join("RELEASE_NOTES.md")).unwrap();
    assert!(
        notes.contains(": shop v2 (Blue-Green Deployment)"),
        "{notes}"
    );

    // Later, another process rolls the deployment back from its journal.
    let again = out
        .again()
        .env("PATH", &path)
        .env("BLUE_PORT", &blue.to_string())
        .env("GREEN_PORT", &green.to_string())
        .env("NGINX_DIR", &nginx_dir.display().to_string())
        .args(&["rollback", "--yes"])
        .run();
    again.code(3);
    assert!(
        again.stdout.contains("↩ switch traffic back to v1"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("$ switch: ./scripts/switch-traffic.sh green-to-blue"),
        "{}",
        again.stdout
    );
    assert_eq!(
        support::wait_for(&front, "v1"),
        "v1",
        "nginx serves blue after the rollback"
    );
}

// ---------------------------------------------------------------- the kubernetes adapter, with a recording kubectl

const FAKE_KUBECTL: &str = r#"#!/bin/sh
# No cluster runs here: this kubectl records its arguments and answers like a healthy cluster,
# except that the canary's rollout status fails after FAIL_CANARY_AFTER successes.
echo "$*" >> "$KUBECTL_LOG"
case "$*" in
  *"rollout status deployment/app-canary "*)
    n=$(cat "$KUBECTL_LOG.canary" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$KUBECTL_LOG.canary"
    if [ -n "$FAIL_CANARY_AFTER" ] && [ "$n" -gt "$FAIL_CANARY_AFTER" ]; then
      echo 'error: deployment "app-canary" exceeded its progress deadline' >&2; exit 1
    fi
    echo 'deployment "app-canary" successfully rolled out' ;;
  *"rollout status"*) echo "successfully rolled out" ;;
  *) echo "ok" ;;
esac
"#;

fn kube_test(fail_after: Option<u32>) -> (support::Output, Vec<String>) {
    let t = Test::new().executable("bin/kubectl", FAKE_KUBECTL);
    let dir = t.path().to_path_buf();
    let path = format!(
        "{}/bin:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut t = t
        .file(
            "runbook.yaml",
            "adapter: kubernetes\nfeature: checkout\nversion: v2\ncurrent_version: v1\nmonitoring:\n  interval: 50ms\n  samples: 2\n",
        )
        .file("answers.yaml", "strategy: canary\n")
        .env("PATH", &path)
        .env("KUBECTL_LOG", &format!("{}/kubectl.log", dir.display()));
    if let Some(n) = fail_after {
        t = t.env("FAIL_CANARY_AFTER", &n.to_string());
    }
    let out = t
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    let log = std::fs::read_to_string(dir.join("kubectl.log")).unwrap_or_default();
    (out, log.lines().map(str::to_string).collect())
}

fn weights(stable: u32, canary: u32) -> String {
    format!(
        r#"patch virtualservice app --type merge -p {{"spec":{{"http":[{{"route":[{{"destination":{{"host":"app","subset":"stable"}},"weight":{stable}}},{{"destination":{{"host":"app","subset":"canary"}},"weight":{canary}}}]}}]}}}}"#
    )
}

#[test]
fn kubernetes_canary_applies_steps_weights_and_promotes_with_exact_commands() {
    let (out, log) = kube_test(None);
    out.code(0);
    let status = |d: &str| format!("rollout status deployment/{d} --timeout=60s");
    let mut want: Vec<String> = vec![
        "apply -f k8s/staging/".into(),
        "rollout status deployment/app-staging --timeout=5m".into(),
        status("app-staging"),
        "apply -f k8s/canary/".into(),
        "rollout status deployment/app-canary --timeout=5m".into(),
        weights(95, 5),
    ];
    for (s, c) in [(75, 25), (50, 50), (0, 100)] {
        want.extend([status("app-canary"), status("app-canary")]);
        want.push(weights(s, c));
    }
    want.extend([status("app-canary"), status("app-canary")]);
    want.extend([
        "apply -f k8s/production/".into(),
        "rollout status deployment/app --timeout=5m".into(),
        weights(100, 0),
        "delete -f k8s/canary/".into(),
        status("app"),
        "delete -f k8s/staging/".into(),
    ]);
    assert_eq!(log, want, "\n{}", out.stdout);
    let plan = out.artifact("rollback-plan.md");
    assert!(
        plan.contains("1. undo the rollout of app: `stdlib/kubernetes::undo_rollout()`"),
        "{plan}"
    );
}

#[test]
fn kubernetes_canary_failing_its_rollout_is_rolled_back_with_the_seed_commands() {
    // The canary's rollout fails after the third status check (during the 25% window).
    let (out, log) = kube_test(Some(3));
    out.code(3);
    let tail: Vec<&str> = log.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        vec![
            weights(100, 0).as_str(),
            "delete -f k8s/canary/",
            "delete -f k8s/staging/"
        ],
        "{log:#?}"
    );
    assert!(log.contains(&weights(75, 25)), "{log:#?}");
    assert!(!log.contains(&weights(50, 50)), "{log:#?}");
    assert!(
        out.artifact("post-mortem.md")
            .contains("failed health check"),
        "{}",
        out.artifact("post-mortem.md")
    );
}

#[test]
fn a_team_runbook_shadows_the_shipped_one_and_overrides_one_stage() {
    // examples/canary-kubernetes, copied as a team would have it, with the recording kubectl.
    let t = Test::new()
        .example(
            "canary-kubernetes",
            &[
                "runbook.yaml",
                "answers.yaml",
                "runbooks/deploy.rhai",
                "scripts/smoke.sh",
                "scripts/unit-tests.sh",
                "scripts/build.sh",
                "k8s/staging/deployment.yaml",
                "k8s/canary/deployment.yaml",
                "k8s/production/deployment.yaml",
            ],
        )
        .executable("bin/kubectl", FAKE_KUBECTL);
    let dir = t.path().to_path_buf();
    let path = format!(
        "{}/bin:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let list = Test::new()
        .file("runbooks/deploy.rhai", "// x\n")
        .args(&["list"])
        .run();
    assert!(
        list.stdout
            .contains("deploy     runbooks/deploy.rhai (shadows shipped)"),
        "{}",
        list.stdout
    );
    let out = t
        .env("PATH", &path)
        .env("KUBECTL_LOG", &format!("{}/kubectl.log", dir.display()))
        .args(&[
            "deploy",
            "--answers",
            "answers.yaml",
            "--approve",
            "--set",
            "monitoring.interval=50ms",
            "--set",
            "monitoring.samples=2",
        ])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("▶ runbooks/deploy.rhai"),
        "the team's runbook runs, not the shipped one:\n{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("━━ Stage 1: Staging Deployment (checkout smoke suite)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("smoke suite: staging 2.4.0: cart, checkout, payment paths"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("unit tests: 412 passed"),
        "{}",
        out.stdout
    );
    let log = std::fs::read_to_string(dir.join("kubectl.log")).unwrap();
    assert!(log.starts_with("-n shop apply -f k8s/staging/\n-n shop rollout status deployment/checkout-staging --timeout=5m\n-n shop apply -f k8s/canary/\n"), "{log}");
    assert!(
        log.contains("-n shop patch virtualservice checkout --type merge -p"),
        "{log}"
    );
    assert!(
        std::fs::read_to_string(dir.join("deployments/notifications.jsonl"))
            .unwrap()
            .contains("checkout 2.4.0 deployed with Canary Release")
    );
}

#[test]
fn the_incident_runbook_rolls_back_the_last_deployment_and_writes_the_report() {
    let first = Test::new()
        .file(
            "runbook.yaml",
            "feature: search\nnotify:\n  oncall: { type: file, path: oncall.jsonl }\n",
        )
        .script("sh(\"touch released\");\non_rollback(\"unrelease\", \"rm released\");\n")
        .run();
    first.code(0);
    assert!(first.dir.join("released").exists());
    let out = first
        .again()
        .file(
            "answers.yaml",
            "incident-title: search returns 500s\nuser-impact: 30\nrollback-last-deployment: yes\nroot-cause: a bad index\nremediation: rolled back\nprevention: canary the index build\n",
        )
        .args(&["incident", "--answers", "answers.yaml", "--yes"])
        .run();
    out.code(0);
    assert!(
        !out.dir.join("released").exists(),
        "the last deployment was rolled back:\n{}",
        out.stdout
    );
    let reports: Vec<std::path::PathBuf> = std::fs::read_dir(out.dir.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path().join("incident-report.md"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(reports.len(), 1);
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    for section in [
        "# Incident Report - search returns 500s",
        "## Timeline",
        "## Root cause\n\na bad index",
        "## Impact assessment\n\n- User impact: 30%",
        "## Remediation steps\n\nrolled back",
        "## Prevention measures\n\ncanary the index build",
    ] {
        assert!(report.contains(section), "missing {section:?} in\n{report}");
    }
    let opened = report.find("incident opened").unwrap();
    let rolled = report.find("rolled back deployments/").unwrap();
    let notified = report.find("notified oncall").unwrap();
    assert!(opened < rolled && rolled < notified, "{report}");
    assert!(
        report.contains("status_page: no channel configured"),
        "{report}"
    );
    assert!(std::fs::read_to_string(out.dir.join("oncall.jsonl"))
        .unwrap()
        .contains("[incident] search returns 500s"));
}

// ---------------------------------------------------------------- runbook repl

/// Wait for the prompt before typing, as a person would. The prompt also shows while the line
/// editor redraws a finished multi-line entry, and keys typed before it reads the next line are
/// not kept: so wait a moment after it too.
fn prompt(p: &mut rexpect::session::PtySession) {
    p.exp_string("runbook> ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
}

#[test]
fn repl_at_a_terminal_multiline_completion_ctrl_c_errors_and_history() {
    let t = Test::new();
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    // A function over several lines: the parser says when it is complete.
    p.send_line("fn double(x) {").unwrap();
    p.send_line("  x * 2").unwrap();
    p.send_line("}").unwrap();
    prompt(&mut p);
    p.send_line("double(21)").unwrap();
    p.exp_string("=> 42").unwrap();
    prompt(&mut p);
    // An error is shown and the session goes on.
    p.send_line("double(").unwrap();
    p.send_line(")").unwrap();
    p.exp_string("error:").unwrap();
    prompt(&mut p);
    p.send_line("let y = double(5);").unwrap();
    prompt(&mut p);
    p.send_line("y").unwrap();
    p.exp_string("=> 10").unwrap();
    prompt(&mut p);
    // Tab completes a primitive.
    p.send("check_al").unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string("check_all").unwrap();
    // Ctrl-C clears the line, and does not leave.
    p.send_control('c').unwrap();
    prompt(&mut p);
    p.send_line("1 + 1").unwrap();
    p.exp_string("=> 2").unwrap();
    prompt(&mut p);
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();

    // The history survives a restart (and is per project, under XDG_STATE_HOME).
    let mut p = pty(&t, &["repl"]);
    prompt(&mut p);
    p.send_line(":history").unwrap();
    p.exp_string("double(21)").unwrap();
    p.exp_string("let y = double(5);").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn repl_history_is_redacted() {
    let t = Test::new().file(
        "runbook.yaml",
        "secrets:\n  values:\n    token: sup3r-secret-value\n",
    );
    let mut p = pty(&t, &["repl"]);
    p.exp_string("runbook> ").unwrap();
    p.send_line("let t = \"sup3r-secret-value\";").unwrap();
    p.exp_string("runbook> ").unwrap();
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
    let dir = t.path().join("state/runbook");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let history = std::fs::read_to_string(file).unwrap();
    assert!(history.contains("let t = \"[REDACTED]\";"), "{history}");
    assert!(!history.contains("sup3r"), "{history}");
}

#[test]
fn repl_from_a_pipe_attaches_to_a_deployment_rolls_it_back_and_writes_the_incident_report() {
    let (rt, fleet) = support::fleet(&[]);
    let config = format!(
        "adapter: local\nlocal:\n  url: {}\nfeature: checkout\nversion: v2\ncurrent_version: v1\nunattended: true\n\
         monitoring:\n  interval: 300ms\n  samples: 2\n  min_requests: 5\nnotify:\n  oncall: {{ type: file, path: oncall.jsonl }}\n",
        fleet.url()
    );
    let deploy = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", "strategy: blue-green\n")
        .args(&["deploy", "--answers", "answers.yaml", "--yes", "--approve"])
        .run();
    deploy.code(0);
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v2"), Some(&50), "{split:?}");

    let t = deploy.again();
    let mut child = t
        .command()
        .args(["repl", "--last"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "incident(\"checkout errors\", \"high\")\nlet s = status();\ns.strategy\nbogus()\nrollback()\npage_oncall(\"rolled back checkout\")\n\
             resolve(\"bad release\", \"5% of checkouts failed\", \"rolled back from the REPL\", \"canary analysis on error rate\")\n:quit\n"
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `bogus()` failed: from a pipe, any failed line makes exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("=> Blue-Green Deployment"), "{stdout}");
    assert!(stdout.contains("↩ restore v1"), "{stdout}");

    // The traffic really moved back.
    let split = rt.block_on(runbook::demo::measure_split(&fleet.url(), 50));
    assert_eq!(split.get("v1"), Some(&50), "{split:?}");

    let reports: Vec<std::path::PathBuf> = std::fs::read_dir(t.path().join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path().join("incident-report.md"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(reports.len(), 1, "{stdout}");
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    let order = [
        "> let s = status();",
        "> s.strategy",
        "= Blue-Green Deployment",
        "> bogus()",
        "! no function `bogus`",
        "> rollback()",
        "= true",
        "> page_oncall(",
    ];
    let mut at = 0;
    for item in order {
        let found = report[at..]
            .find(item)
            .unwrap_or_else(|| panic!("{item:?} missing or out of order in\n{report}"));
        at += found + item.len();
    }
    assert!(
        report.contains("effect undo `undo: restore v1`: ok"),
        "{report}"
    );
    assert!(report.contains("## Root cause\n\nbad release"), "{report}");
    assert!(
        report.contains("## Prevention measures\n\ncanary analysis on error rate"),
        "{report}"
    );
    // The deployment's own journal records the rollback too.
    let dep = deploy_dir(t.path());
    let journal = std::fs::read_to_string(dep.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"type\":\"undo.external\""), "{journal}");
    fleet.stop();
}

fn deploy_dir(root: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(root.join("deployments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("-checkout")
        })
        .unwrap()
}

// ---------------------------------------------------------------- the journal as evidence

#[test]
fn verify_finds_an_altered_removed_or_reordered_record_and_an_altered_end() {
    let out = Test::new()
        .script("sh(\"echo one\");\nsh(\"echo two\");\nsh(\"echo three\");\n")
        .run();
    out.code(0);
    let dir = out.run_dir();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let lines: Vec<String> = journal.lines().map(str::to_string).collect();
    assert!(out
        .artifact("deployment-plan.md")
        .contains(&format!("- Journal: {} records, final hash `", lines.len())));
    let d = dir.display().to_string();
    let ok = out.again().args(&["verify", &d]).run();
    ok.code(0);
    assert!(
        ok.stdout
            .contains("ok: deployment-plan.md pins the last record\n"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout
            .contains(&format!("{} records, hash chain intact", lines.len())),
        "{}",
        ok.stdout
    );
    let dir = ok.dir.clone();
    let run_dir = std::path::PathBuf::from(&d);
    let tamper = |edit: &dyn Fn(&mut Vec<String>)| -> (i32, String) {
        let mut l = lines.clone();
        edit(&mut l);
        std::fs::write(
            dir.join(&run_dir).join("journal.jsonl"),
            l.join("\n") + "\n",
        )
        .unwrap();
        let out = std::process::Command::new(support::BIN)
            .args(["verify", &d])
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A value changed in the third record.
    let (code, err) = tamper(&|l| {
        let mut v: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
        v["ts"] = serde_json::json!("2020-01-01T00:00:00.000Z");
        l[2] = v.to_string();
    });
    assert_eq!(code, 1);
    assert!(err.contains("is not intact at line 4: record 4 (seq 4) does not follow record 3: record 3 was altered"), "{err}");
    // A record removed.
    let (code, err) = tamper(&|l| {
        l.remove(5);
    });
    assert_eq!(code, 1);
    assert!(err.contains("is not intact at line 6"), "{err}");
    // Two records swapped.
    let (code, err) = tamper(&|l| l.swap(3, 4));
    assert_eq!(code, 1);
    assert!(err.contains("is not intact at line 4"), "{err}");
    // The last record altered: the chain alone cannot tell, the pinned hash can.
    let (code, err) = tamper(&|l| {
        let last = l.len() - 1;
        l[last] = l[last].replace("completed", "rolled back");
    });
    assert_eq!(code, 1);
    assert!(
        err.contains("does not contain the record deployment-plan.md pins"),
        "{err}"
    );
}

#[test]
fn a_torn_last_record_is_reported_by_verify_and_skipped_by_readers() {
    let out = Test::new()
        .script("on_rollback(\"u\", \"true\");\nsh(\"true\");\n")
        .run();
    out.code(0);
    let d = out.run_dir().display().to_string();
    let path = out.run_dir().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":99,\"type\":\"effect.int");
    std::fs::write(&path, text).unwrap();
    let v = out.again().args(&["verify", &d]).run();
    v.code(1);
    assert!(
        v.stderr
            .contains("the last record is incomplete (the run was cut off while writing it)"),
        "{}",
        v.stderr
    );
    // The rollback runbook still reads it (the torn line is ignored) and undoes what stands.
    let rb = v.again().args(&["rollback", "--yes"]).run();
    rb.code(3);
    assert!(rb.stdout.contains("↩ u (true)"), "{}", rb.stdout);
    // Appending to it cut the torn fragment off into a record of its own: the chain holds again.
    let v = rb.again().args(&["verify", &d]).run();
    v.code(0);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert!(
        journal.contains(r#""torn_fragment":"{\"seq\":99,\"type\":\"effect.int""#),
        "{journal}"
    );
}

// ---------------------------------------------------------------- locks

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

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock_and_the_lock_goes_with_it() {
    let t = Test::new()
        .file("first.rhai", "sh(\"sleep 30\");\n")
        .file("second.rhai", "sh(\"touch second-ran\");\n");
    let mut first = t.command();
    first.arg("first.rhai").stdout(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    wait_for_journal(t.path(), "sleep 30");
    let lock = t.path().join("deployments/.locks/production.lock");
    let holder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(holder["pid"], first.id());
    assert_eq!(holder["user"], "tester");
    let second = t.command().arg("second.rhai").output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.starts_with(&format!("error: `production` is locked by another deployment: tester on {} (pid {}) has held it for ", holder["host"].as_str().unwrap(), first.id())),
        "{err}"
    );
    assert!(err.contains("help: wait for it, or if it is truly gone, `runbook unlock production --reason \"...\"`"), "{err}");
    assert!(!t.path().join("second-ran").exists());
    unsafe {
        libc::kill(first.id() as i32, libc::SIGTERM);
    }
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert!(!lock.exists(), "the lock is released on interrupt");
}

#[test]
fn the_lock_is_released_on_every_exit_path() {
    for (script, code) in [
        ("sh(\"true\");", 0),
        ("sh(\"false\");", 1),
        ("on_rollback(\"u\", \"true\"); rollback(\"r\");", 3),
        ("decline(\"no\");", 4),
        ("on_rollback(\"u\", \"true\"); sh(\"false\");", 3),
    ] {
        let out = Test::new().script(script).run();
        out.code(code);
        assert!(
            !out.dir.join("deployments/.locks/production.lock").exists(),
            "{script}"
        );
        let journal = out.artifact("journal.jsonl");
        assert!(
            journal.contains("\"type\":\"lock.acquire\"")
                && journal.contains("\"type\":\"lock.release\""),
            "{script}"
        );
    }
}

#[test]
fn a_stale_lock_is_reported_and_taken_over_only_with_a_reason_and_unlock_is_recorded() {
    // A holder whose lease ran out (it stopped renewing: it died, or its host did) is followed
    // at once, and the run journals whom it followed (#15: every backend, the file one included).
    let expired = r#"{"environment":"production","user":"ghost","host":"elsewhere","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":1,"run_dir":"deployments/old"}"#;
    let out = Test::new()
        .file("deployments/.locks/production.lock", expired)
        .script("sh(\"touch ran\");")
        .run();
    out.code(0);
    assert!(out.dir.join("ran").exists());
    assert!(
        out.stderr
            .contains("the last holder of `production` let its lease run out without releasing it"),
        "{}",
        out.stderr
    );
    assert_eq!(out.records("lock.expired")[0]["previous"]["user"], "ghost");

    // One whose process is gone on this host while its lease still runs is stale: reported,
    // and taken over only with a reason.
    let stale = format!(
        r#"{{"environment":"production","user":"ghost","host":"{}","pid":4000000,"reason":"old run","started":"2026-01-01T00:00:00.000Z","expires":99999999999,"run_dir":"deployments/old"}}"#,
        runbook::identity::host()
    );
    let t = Test::new()
        .file("deployments/.locks/production.lock", &stale)
        .script("sh(\"touch ran\");");
    let out = t.run();
    out.code(2);
    assert!(
        out.stderr.starts_with(
            "error: `production` has a stale lock (its process 4000000 is gone): ghost on "
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("help: take it over with `--take-over \"why it is safe\"`"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("ran").exists());
    let out = out
        .again()
        .args(&[
            "deploy.rhai",
            "--take-over",
            "the old runner host was decommissioned",
        ])
        .run();
    out.code(0);
    assert!(out.dir.join("ran").exists());
    let takeover = out.records("lock.takeover");
    assert_eq!(takeover[0]["previous"]["user"], "ghost");
    assert_eq!(
        takeover[0]["reason"],
        "the old runner host was decommissioned (stale: its process 4000000 is gone)"
    );
    // Break-glass: unlock records who broke which lock and why.
    let t = out
        .again()
        .file("deployments/.locks/production.lock", &stale)
        .args(&["unlock", "production", "--reason", "checked by hand"]);
    let u = t.run();
    u.code(0);
    assert!(
        u.stdout.starts_with(&format!(
            "ok: `production` unlocked (was: ghost on {} (pid 4000000)",
            runbook::identity::host()
        )),
        "{}",
        u.stdout
    );
    assert!(!u.dir.join("deployments/.locks/production.lock").exists());
    let log = std::fs::read_to_string(u.dir.join("deployments/.locks/unlock-log.jsonl")).unwrap();
    assert!(
        log.contains("\"reason\":\"checked by hand\"") && log.contains("\"user\":\"ghost\""),
        "{log}"
    );
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

// ---------------------------------------------------------------- limits

#[test]
fn the_wall_clock_limit_stops_a_long_command_a_sleep_and_a_busy_loop_then_rolls_back() {
    for body in [
        "sh(\"sleep 30\");",
        "sleep(\"30s\");",
        "let i = 0; loop { i += 1; }",
    ] {
        let started = std::time::Instant::now();
        let out = Test::new()
            .script(&format!(
                "on_rollback(\"undo\", \"touch undone\");\n{body}\nsh(\"touch after\");\n"
            ))
            .args(&[
                "--set",
                "limits.wall_clock=1s",
                "--set",
                "commands.kill_grace=200ms",
            ])
            .run();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{body}: took {:?}",
            started.elapsed()
        );
        out.code(3);
        assert!(
            out.stderr.starts_with(
                "error: the run passed its wall-clock limit of 1.0s (`limits.wall_clock`)"
            ),
            "{body}: {}",
            out.stderr
        );
        assert!(out.dir.join("undone").exists(), "{body}: rolled back");
        assert!(!out.dir.join("after").exists(), "{body}");
    }
}

#[test]
fn call_depth_string_array_and_map_limits_each_stop_the_script() {
    for (body, set, want) in [
        (
            "fn f(n) { f(n + 1) } f(0);",
            "limits.call_depth=20",
            "the script called functions too deeply (`limits.call_depth`)",
        ),
        (
            "let s = \"x\"; loop { s += s; }",
            "limits.string_size=1000",
            "grew past its limit (see `limits` in runbook.yaml)",
        ),
        (
            "let a = []; loop { a.push(1); }",
            "limits.array_size=1000",
            "grew past its limit (see `limits` in runbook.yaml)",
        ),
        (
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
            "limits.map_size=1000",
            "Size of object map grew past its limit (see `limits` in runbook.yaml)",
        ),
    ] {
        // The operation limit is a backstop here: the limit under test must come first.
        let out = Test::new()
            .script(body)
            .args(&["--set", set, "--set", "limits.operations=2000000"])
            .run();
        out.code(1);
        assert!(out.stderr.contains(want), "{body}: {}", out.stderr);
    }
}

#[test]
fn sigterm_during_a_sleep_or_a_prompt_exits_130_with_the_lock_released() {
    // A sleep, without a terminal.
    let t = Test::new().script("on_rollback(\"u\", \"true\");\nlog(\"sleeping\");\nsleep(\"30s\");\nsh(\"touch after\");\n");
    let mut child = t
        .command()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_journal(t.path(), "sleeping");
    std::thread::sleep(std::time::Duration::from_millis(100));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!t.path().join("after").exists());
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
    let journal = std::fs::read_to_string(only_run_dir(t.path()).join("journal.jsonl")).unwrap();
    assert!(
        journal.trim_end().ends_with("}") && journal.contains("\"outcome\":\"interrupted\""),
        "{journal}"
    );

    // A prompt, at a terminal: the first Ctrl-C stops it and offers rollback; "n" leaves it.
    let t = Test::new().script("on_rollback(\"u\", \"touch undone\");\nconfirm(\"Proceed to production?\");\nsh(\"touch after\");\n");
    let mut p = pty(&t, &[]);
    p.exp_string("Proceed to production? (y/n):").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Roll back what this run changed? (y/n):")
        .unwrap();
    p.send_line("n").unwrap();
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(format!("{status:?}").ends_with(", 130)"), "{status:?}");
    assert!(!t.path().join("after").exists() && !t.path().join("undone").exists());
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
}

// ---------------------------------------------------------------- resume after a crash

/// A deployment of three steps; step `kill_at` kills the runner (SIGKILL) the first time it runs.
fn crash_script(kill_at: usize) -> String {
    let mut s = String::from(
        "if !confirm(\"Proceed to production?\") { decline(\"no\"); }\nstage(\"Deploy\", || {\n",
    );
    for k in 1..=3 {
        let kill = if k == kill_at {
            format!("; [ -f killed-{k} ] || {{ touch killed-{k}; kill -9 $PPID; }}")
        } else {
            String::new()
        };
        s.push_str(&format!("    sh(\"echo x >> ran-{k}{kill}\");\n    on_rollback(\"undo {k}\", \"echo u >> undone-{k}\");\n"));
    }
    s.push_str("});\nsh(\"touch finished\");\n");
    s
}

fn lines(dir: &std::path::Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join(file))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn resume_after_sigkill_at_each_effect_replays_what_completed_exactly_once() {
    for kill_at in 1..=3 {
        for choice in ["rerun", "skip"] {
            let first = Test::new()
                .script(&crash_script(kill_at))
                .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "yes")
                .run();
            assert_eq!(
                first.code, -1,
                "killed by SIGKILL at step {kill_at}: {}",
                first.stderr
            );
            let dir = first.dir.clone();
            let resumed = first
                .again()
                .env("RUNBOOK_ANSWER_RESUME_IN_FLIGHT", choice)
                .args(&["resume"])
                .run();
            resumed.code(0);
            assert!(
                dir.join("finished").exists(),
                "{kill_at}/{choice}: {}",
                resumed.stdout
            );
            for k in 1..=3 {
                let want = if k == kill_at && choice == "rerun" {
                    2
                } else {
                    1
                };
                assert_eq!(
                    lines(&dir, &format!("ran-{k}")),
                    want,
                    "step {k}, killed at {kill_at}, {choice}\n{}",
                    resumed.stdout
                );
            }
            // The answer given before the crash came from the environment, which the resumed run
            // does not have: it completed (exit 0, not 2) because the answer was replayed.
            assert!(
                resumed.stdout.contains(&format!(
                    "in flight when the run died: sh `echo x >> ran-{kill_at}"
                )),
                "{}",
                resumed.stdout
            );
            let v = resumed
                .again()
                .args(&["verify", &only_run_dir(&dir).display().to_string()])
                .run();
            v.code(0);
        }
    }
}

#[test]
fn resume_with_nobody_to_ask_rolls_back_by_default_and_refuses_a_changed_script() {
    let first = Test::new()
        .script(&crash_script(2))
        .env("RUNBOOK_ANSWER_PROCEED_TO_PRODUCTION", "yes")
        .run();
    assert_eq!(first.code, -1);
    let dir = first.dir.clone();
    // The script changed: refused.
    std::fs::write(
        dir.join("deploy.rhai"),
        crash_script(2) + "sh(\"echo new step\");\n",
    )
    .unwrap();
    let refused = first.again().args(&["resume"]).run();
    refused.code(2);
    assert!(
        refused
            .stderr
            .starts_with("error: the script changed since the run in `deployments/"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("run `runbook resume --force` to go on anyway"),
        "{}",
        refused.stderr
    );
    std::fs::write(dir.join("deploy.rhai"), crash_script(2)).unwrap();
    // Nobody to ask about the step in flight: `resume.in_flight` (rollback) decides.
    let out = refused.again().args(&["resume"]).run();
    out.code(3);
    assert_eq!(lines(&dir, "ran-1"), 1);
    assert_eq!(lines(&dir, "ran-2"), 1);
    assert_eq!(
        lines(&dir, "undone-1"),
        1,
        "the undo registered before the crash ran"
    );
    assert!(!dir.join("finished").exists());
    assert!(out.stdout.contains("in flight when the run died: sh `echo x >> ran-2; [ -f killed-2 ] || { touch killed-2; kill -9 $PPID; }`: rollback"), "{}", out.stdout);
    // Finished now: nothing more to resume.
    let again = out.again().args(&["resume"]).run();
    again.code(2);
    assert!(
        again
            .stderr
            .starts_with("error: nothing to resume: no unfinished run under `deployments`"),
        "{}",
        again.stderr
    );
}

#[test]
fn sigterm_during_monitoring_exits_130_with_the_journal_complete_and_the_lock_released() {
    let t = Test::new();
    let mut cmd = t.command();
    cmd.args([
        "demo",
        "--unattended",
        "--strategy",
        "canary",
        "--set",
        "monitoring.interval=1s",
    ])
    .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_for_journal(t.path(), "\"kind\":\"measure\"");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!t.path().join("deployments/.locks/production.lock").exists());
    let journal = std::fs::read_to_string(only_run_dir(t.path()).join("journal.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.end");
    assert_eq!(last["outcome"], "interrupted");
}
