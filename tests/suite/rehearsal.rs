//! `runbook test` as a new team meets it: `runbook init`, then rehearsals that pass, the
//! issue's own example, and what a scenario that does not fit its runbook is told.
//! (The shipped scenario suite and its proofs are in scenarios.rs.)

use crate::support::Test;

/// The team config of the issue's example: the script adapter and Prometheus monitoring.
const CONFIG: &str = r#"feature: checkout
version: v2
current_version: v1
adapter: script
script:
  deploy: ./deploy.sh {env}
  health: http://{env}.internal/health
  weight: ./scripts/set-weight.sh {colour} {percent} {other_colour} {other_percent}
  remove: ./deploy.sh --remove {env}
  live_colour: blue
monitoring:
  interval: 30s
  samples: 10
  prometheus: http://prometheus:9090
  queries:
    error_rate: sum(rate(errors{version="{{version}}"}[1m])) / sum(rate(requests{version="{{version}}"}[1m]))
    response_time: 1000 * avg(latency{version="{{version}}"})
notify:
  team: { type: slack, url: "https://hooks.slack.example/T1" }
"#;

/// The scenario of the issue, as written there.
const ISSUE_EXAMPLE: &str = r#"name: canary with a bad release is rolled back at the first window
runbook: deploy
set: { version: v2, current_version: v1 }
answers: { strategy: canary, staging-deployment-successful-proceed-to-production: yes }
yes: true
approve: true
world:
  metrics:
    error_rate: { v2: [0.01, 0.09, 0.12] }
    response_time: { v2: [0.2] }
  commands:
    "./deploy.sh *": { exit: 0, after: 20s }
    "./scripts/*": { exit: 0 }
  http:
    "GET */health": { status: 200 }
  default: fail
expect:
  exit: 3
  rolled_back: true
  undos_run: ["all traffic back to v1", "delete canary v2", "remove v2 from staging"]
  notified: [team]
  virtual_time: "< 40m"
"#;

/// `runbook test` in a project with CONFIG (or `config`) and one scenario, tests/s.yaml.
fn rehearse_with(config: &str, scenario: &str, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    Test::new()
        .file("runbook.yaml", config)
        .file("tests/s.yaml", scenario)
        .args(&all)
        .run()
}

fn rehearse(scenario: &str) -> crate::support::Output {
    rehearse_with(CONFIG, scenario, &[])
}

#[test]
fn init_writes_two_rehearsals_that_pass_as_written() {
    let out = Test::new().args(&["init"]).run();
    out.code(0);
    assert!(
        out.stdout.contains("tests/good-release-promoted.yaml"),
        "{}",
        out.stdout
    );
    let out = out.again().args(&["test"]).run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0].starts_with("✓ a bad release is rolled back in the first canary window (exit 3, "),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("✓ a good release is promoted through every canary step (exit 0, "),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].starts_with("2 scenario(s): 2 passed, 0 failed ("),
        "{}",
        out.stdout
    );
}

/// The team then configures its monitoring as the docs recommend, a `requests` query among
/// them: the starter rehearsals still pass, their worlds describing the traffic too (found by
/// the new-team trial: they failed, "the world does not describe the metric `requests`").
#[test]
fn the_starter_rehearsals_pass_with_a_requests_query_configured() {
    let out = Test::new().args(&["init"]).run();
    out.expect_status(0);
    let config = out.dir.join("runbook.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("monitoring:\n  queries:\n    requests: sum(rate(http_requests_total[1m]))\n");
    std::fs::write(&config, text).unwrap();
    out.again()
        .args(&["test"])
        .run()
        .expect_status(0)
        .expect_stdout_like(
            "✓ a bad release is rolled back in the first canary window (exit 3, [..])\n\
             ✓ a good release is promoted through every canary step (exit 0, [..])\n\
             2 scenario(s): 2 passed, 0 failed ([..])\n",
        );
}

#[test]
fn the_issue_example_is_rolled_back_and_its_artifacts_are_marked_simulated() {
    let out = Test::new()
        .file("runbook.yaml", CONFIG)
        .file("tests/canary-bad.yaml", ISSUE_EXAMPLE)
        .args(&["test"])
        .run();
    out.code(0);
    assert!(
        out.stdout.starts_with("✓ canary with a bad release is rolled back at the first window (exit 3, 2m20s virtual, "),
        "{}",
        out.stdout
    );
    let run = out
        .dir
        .join("deployments/rehearsals/canary-bad/2030-01-01-checkout");
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
    let start: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(start["simulated"], true);
    assert_eq!(start["user"], "rehearsal");
    assert_eq!(start["ts"], "2030-01-01T00:00:00.000Z");
    let plan = std::fs::read_to_string(run.join("deployment-plan.md")).unwrap();
    assert!(plan.contains("Simulated"), "{plan}");
    let pm = std::fs::read_to_string(run.join("post-mortem.md")).unwrap();
    assert!(pm.contains("Simulated"), "{pm}");
    // Three measurements, each once in the log (it was written twice when stdout is no terminal).
    let log = std::fs::read_to_string(run.join("deployment-log.txt")).unwrap();
    assert_eq!(log.matches("monitor [").count(), 3, "{log}");
}

#[test]
fn a_command_the_world_does_not_describe_stops_the_scenario_naming_it() {
    let scenario = ISSUE_EXAMPLE.replace("    \"./scripts/*\": { exit: 0 }\n", "");
    let out = rehearse(&scenario);
    out.code(1);
    assert!(
        out.stdout.contains("  scenario error: the world does not describe the command `./scripts/set-weight.sh green 5 blue 95`: add a pattern for it under `world.commands` (e.g. `\"./scripts/set-weight.sh *\": { exit: 0 }`), or set `world.default: ok`"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_prompt_nobody_answers_is_a_scenario_error_naming_its_id() {
    // `yes: true` answers confirmations and checklists; a menu it does not choose.
    let scenario = ISSUE_EXAMPLE.replace("strategy: canary, ", "");
    let out = rehearse(&scenario);
    out.code(1);
    assert!(
        out.stdout.contains("scenario error: the choice `strategy` (\"How would you like to deploy this feature?\") is not answered: add `strategy: 1` under `answers:`"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_command_slower_than_its_timeout_times_out_on_the_virtual_clock() {
    // The staging deploy takes two hours in this world; `commands.timeout` stops it at ten
    // minutes of virtual time, and the run fails there, with nothing left to undo.
    let scenario = ISSUE_EXAMPLE
        .replace("{ exit: 0, after: 20s }", "{ exit: 0, after: 2h }")
        .replace("  exit: 3\n  rolled_back: true\n  undos_run: [\"all traffic back to v1\", \"delete canary v2\", \"remove v2 from staging\"]\n  notified: [team]\n  virtual_time: \"< 40m\"\n", "  exit: 1\n  rolled_back: false\n  virtual_time: \"<= 10m\"\n");
    let out = Test::new()
        .file(
            "runbook.yaml",
            &format!("{CONFIG}commands:\n  timeout: 10m\n"),
        )
        .file("tests/slow.yaml", &scenario)
        .args(&["test", "--verbose"])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("(exit 1, 10m00s virtual, "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("timed out after 10m"), "{}", out.stdout);
}

#[test]
fn a_scenario_file_that_cannot_run_exits_2_and_nothing_is_rehearsed() {
    let out = Test::new()
        .file("runbook.yaml", CONFIG)
        .file("tests/a.yaml", ISSUE_EXAMPLE)
        .file(
            "tests/b.yaml",
            "name: b\nrunbook: deploy\nexpect: { exit: 0, virtual_time: soon }\n",
        )
        .args(&["test"])
        .run();
    out.code(2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .contains("error: scenario `tests/b.yaml`: expect.virtual_time: `soon` is not a bound"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" --> tests/b.yaml:3:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("1 of 2 scenario file(s) cannot be run as written: nothing was rehearsed"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_that_cannot_start_never_passes_even_a_scenario_expecting_exit_2() {
    // A typo in runbook.yaml: the run is refused before it starts, with exit 2, which is what
    // the scenario expects of a precondition. It must not pass for that wrong reason.
    let scenario = ISSUE_EXAMPLE.replace("  exit: 3\n  rolled_back: true\n  undos_run: [\"all traffic back to v1\", \"delete canary v2\", \"remove v2 from staging\"]\n  notified: [team]\n  virtual_time: \"< 40m\"\n", "  exit: 2\n");
    let out = rehearse_with(&CONFIG.replace("  weight:", "  wieght:"), &scenario, &[]);
    out.code(2);
    assert!(
        out.stdout
            .contains("✗ canary with a bad release is rolled back at the first window (exit 2, "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("  scenario error: the run could not start:\n    error: invalid config at `script.wieght`: unknown field `wieght`"), "{}", out.stdout);
    assert!(
        out.stdout.contains("     --> runbook.yaml:8:3\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("1 scenario(s): 0 passed, 1 failed, 1 could not start ("),
        "{}",
        out.stdout
    );
}

#[test]
fn expect_error_pins_why_a_run_stopped() {
    let scenario = ISSUE_EXAMPLE.replace(
        "  virtual_time: \"< 40m\"\n",
        "  virtual_time: \"< 40m\"\n  error: \"error rate 12.0% > 5.0%\"\n",
    );
    rehearse(&scenario).code(0);
    let wrong = ISSUE_EXAMPLE.replace(
        "  virtual_time: \"< 40m\"\n",
        "  virtual_time: \"< 40m\"\n  error: \"response time\"\n",
    );
    let out = rehearse(&wrong);
    out.code(1);
    assert!(out.stdout.contains("  expected an error containing `response time`; the error was: v2 at 5%: error rate 12.0% > 5.0%"), "{}", out.stdout);
}

#[test]
fn an_unanswered_checklist_item_is_told_the_form_that_answers_it() {
    let scenario = ISSUE_EXAMPLE.replace("yes: true\n", "");
    let out = rehearse(&scenario);
    out.code(1);
    assert!(out.stdout.contains("add `prerequisites: { feature-development-complete: yes }` (or `prerequisites: yes` for every item) under `answers:`, or `yes: true`"), "{}", out.stdout);
    // Doing what it says gets past that item.
    let answered = scenario.replace(
        "answers: { ",
        "answers: { prerequisites: { feature-development-complete: yes }, ",
    );
    let out = rehearse(&answered);
    assert!(
        out.stdout
            .contains("the checklist item `prerequisites.all-tests-passing`"),
        "{}",
        out.stdout
    );
}

#[test]
fn from_a_subdirectory_the_projects_tests_are_found_and_same_named_files_keep_their_own_runs() {
    let t = Test::new()
        .file("runbook.yaml", CONFIG)
        .file("tests/canary.yaml", ISSUE_EXAMPLE)
        .file("runbooks/.keep", "")
        .args(&["test"]);
    let sub = t.path().join("runbooks");
    let got = t.command().current_dir(&sub).output().unwrap();
    let out = t.run();
    out.code(0);
    let stdout = String::from_utf8_lossy(&got.stdout);
    assert_eq!(
        got.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(stdout.contains("1 scenario(s): 1 passed"), "{stdout}");
    let out = out
        .again()
        .file("more/canary.yaml", ISSUE_EXAMPLE)
        .args(&["test", "tests", "more"])
        .run();
    out.code(0);
    assert!(out
        .dir
        .join("deployments/rehearsals/canary/2030-01-01-checkout/journal.jsonl")
        .is_file());
    assert!(out
        .dir
        .join("deployments/rehearsals/canary-2/2030-01-01-checkout/journal.jsonl")
        .is_file());
}

#[test]
fn a_duration_without_its_unit_is_told_the_forms_a_key_takes() {
    let scenario = ISSUE_EXAMPLE.replace("after: 20s", "after: 40");
    let out = rehearse(&scenario);
    out.code(2);
    assert!(out.stderr.contains("this value has none of the forms this key takes: a command is `{ exit: 0, after: 20s }` (a duration needs its unit)"), "{}", out.stderr);
    assert!(out.stderr.contains(" --> tests/s.yaml:"), "{}", out.stderr);
}
