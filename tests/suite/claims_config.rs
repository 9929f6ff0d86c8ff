//! Issue #17, the config's claims: `runbook check` validates every value it can (durations,
//! enumerated values, numbers, answers), a typo in a value is an error naming the key path, the
//! line and the accepted values, and `config()` is the whole map with the defaults filled in.

use crate::support;

use crate::support::Test;

/// `runbook check` of the shipped deploy runbook with `config` as runbook.yaml (and `args`).
fn check(config: &str, args: &[&str]) -> support::Output {
    Test::new()
        .file("runbook.yaml", config)
        .args(&["check", "deploy"])
        .args(args)
        .run()
}

#[track_caller]
fn refused(out: &support::Output, wants: &[&str]) {
    out.expect_status(2).expect_stderr_contains(wants);
}

// ------------------------------------------------ 3. check validates every value it can

#[test]
fn check_refuses_every_duration_that_is_not_one() {
    let cases = [
        ("lock:\n  lease: forever\n", "lock.lease", "forever"),
        (
            "commands:\n  timeout: 10 minutes please\n",
            "commands.timeout",
            "10 minutes please",
        ),
        (
            "commands:\n  kill_grace: soon\n",
            "commands.kill_grace",
            "soon",
        ),
        (
            "limits:\n  wall_clock: 4 hours-ish\n",
            "limits.wall_clock",
            "4 hours-ish",
        ),
        (
            "monitoring:\n  interval: often\n",
            "monitoring.interval",
            "often",
        ),
        (
            "triggers:\n  response_time: 2\n",
            "triggers.response_time",
            "2",
        ),
        (
            "kubernetes:\n  rollout_timeout: soon\n",
            "kubernetes.rollout_timeout",
            "soon",
        ),
        (
            "monitoring:\n  judge:\n    range: a while\n",
            "monitoring.judge.range",
            "a while",
        ),
    ];
    for (config, key, value) in cases {
        let out = check(config, &[]);
        refused(
            &out,
            &[
                &format!("`{key}`"),
                &format!("`{value}`"),
                "is not a duration",
                "runbook.yaml:",
            ],
        );
    }
    // A duration that cannot be 0.
    for (config, key) in [
        ("monitoring:\n  interval: 0s\n", "monitoring.interval"),
        ("lock:\n  lease: 0ms\n", "lock.lease"),
        (
            "monitoring:\n  judge:\n    step: 0s\n",
            "monitoring.judge.step",
        ),
    ] {
        let out = check(config, &[]);
        refused(
            &out,
            &[
                &format!("`{key}`"),
                "is too short: it must be longer than 0",
            ],
        );
    }
    // kubectl is given the rollout timeout as written: a duration only humantime reads is refused.
    let out = check(
        "kubernetes:
  rollout_timeout: 5 mins
",
        &[],
    );
    refused(
        &out,
        &[
            "`kubernetes.rollout_timeout`",
            "`5 mins` is not a duration kubectl reads",
        ],
    );
    check(
        "kubernetes:
  rollout_timeout: 1h30m
",
        &[],
    )
    .code(0);
    // The same through --set, and in a team metric's provider.
    let out = Test::new()
        .args(&["check", "deploy", "--set", "lock.lease=forever"])
        .run();
    refused(&out, &["lock.lease", "`forever` is not a duration"]);
    let out = check(
        "monitoring:\n  metrics:\n    - name: p99\n      failure: \"> 800\"\n      provider: { prometheus: { url: \"http://p:9090\", query: up, range: ages } }\n",
        &[],
    );
    refused(
        &out,
        &[
            "monitoring.metrics[0].provider.prometheus.range",
            "`ages` is not a duration",
        ],
    );
}

#[test]
fn check_refuses_numbers_out_of_range() {
    let cases = [
        (
            "rollout:\n  steps: [25, 150]\n",
            "rollout.steps[1]",
            "a percent from 1 to 100",
        ),
        (
            "rollout:\n  initial: 0\n",
            "rollout.initial",
            "a percent from 1 to 100",
        ),
        (
            "rolling:\n  batch_percent: 120\n",
            "rolling.batch_percent",
            "a percent",
        ),
        (
            "rolling:\n  batch_size: 0\n",
            "rolling.batch_size",
            "at least 1",
        ),
        (
            "monitoring:\n  samples: 0\n",
            "monitoring.samples",
            "at least 1",
        ),
        (
            "triggers:\n  health_failures: 0\n",
            "triggers.health_failures",
            "at least 1",
        ),
        (
            "triggers:\n  error_rate: 5\n",
            "triggers.error_rate",
            "a fraction from 0 to 1",
        ),
        (
            "triggers:\n  cpu: 90\n",
            "triggers.cpu",
            "a fraction from 0 to 1",
        ),
        (
            "monitoring:\n  judge:\n    alpha: 5\n",
            "monitoring.judge.alpha",
            "significance level",
        ),
        (
            "monitoring:\n  judge:\n    pass: 950\n",
            "monitoring.judge.pass",
            "a score from 0 to 100",
        ),
    ];
    for (config, key, want) in cases {
        let out = check(config, &[]);
        refused(&out, &[&format!("`{key}`"), want, "runbook.yaml:"]);
    }
}

#[test]
fn check_answers_refuses_what_the_shipped_workflow_would_refuse() {
    // Each answer the shipped deploy runbook (or the runner under it) cannot take, refused by
    // `runbook check --answers` with what it accepts, before anything runs.
    let cases = [
        (
            "strategy: 9\n",
            "`9` is not one of the choices: blue-green, rolling, canary, feature-flag",
        ),
        (
            "continue-with-unchecked-items: maybe\n",
            "`maybe` is not an answer to a yes/no question",
        ),
        (
            "inconclusive-roll-back: perhaps\n",
            "`perhaps` is not an answer to a yes/no question",
        ),
        (
            "approve-deployment: maybe\n",
            "`maybe` is not an answer to a yes/no question",
        ),
        (
            "approve-deployment: { approved: sure, by: alice }\n",
            "an approval map needs `approved: yes` or `approved: no`",
        ),
        (
            "initiate-rollback: later\n",
            "`later` is not an answer to a yes/no question",
        ),
        (
            "rollback-after-interrupt: later\n",
            "`later` is not an answer to a yes/no question",
        ),
        (
            "resume-in-flight: rerunn\n",
            "`rerunn` is not one of: rerun, skip, rollback",
        ),
    ];
    for (answers, want) in cases {
        let id = answers.split(':').next().unwrap();
        let out = Test::new()
            .file("answers.yaml", answers)
            .args(&["check", "deploy", "--answers", "answers.yaml"])
            .run();
        refused(&out, &[&format!("answer `{id}` in `answers.yaml`"), want]);
    }
    // And good answers pass.
    let out = Test::new()
        .file(
            "answers.yaml",
            "strategy: 2\ncontinue-with-unchecked-items: no\napprove-deployment: { approved: yes, by: alice }\n\
             initiate-rollback: yes\nresume-in-flight: skip\n",
        )
        .args(&["check", "deploy", "--answers", "answers.yaml"])
        .run();
    out.code(0);
}

// ------------------------------------------------ 4. typos in values are errors

#[test]
fn a_typo_in_a_trigger_on_failure_key_names_the_known_triggers() {
    let out = check("triggers:\n  on_failure: {error_rte: continue}\n", &[]);
    refused(
        &out,
        &[
            "`triggers.on_failure.error_rte`",
            "unknown trigger `error_rte`",
            "`error_rate`, `response_time`, `health`, `cpu`, `memory`",
            "runbook.yaml:2:",
        ],
    );
    // The team's own metrics are triggers too, and named among the known ones.
    let metrics = "monitoring:\n  metrics: [{ name: p99, failure: \"> 800\" }]\n";
    check(
        &format!("{metrics}triggers:\n  on_failure: {{ p99: ask, cpu: continue }}\n"),
        &[],
    )
    .code(0);
    let out = check(
        &format!("{metrics}triggers:\n  on_failure: {{ p90: ask }}\n"),
        &[],
    );
    refused(&out, &["unknown trigger `p90`", "`memory`, `p99`"]);
    // And through --set.
    let out = Test::new()
        .args(&[
            "check",
            "deploy",
            "--set",
            "triggers.on_failure.eror_rate=ask",
        ])
        .run();
    refused(&out, &["unknown trigger `eror_rate`"]);
}

#[test]
fn a_typo_in_an_enumerated_value_is_an_error_with_the_accepted_values() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "monitoring:\n  on_inconclusive: continu\n",
            "monitoring.on_inconclusive",
            &["`continu`", "`rollback`", "`continue`"],
        ),
        (
            "resume:\n  in_flight: rerunn\n",
            "resume.in_flight",
            &["`rerunn`", "`rerun`", "`skip`", "`rollback`"],
        ),
        (
            "triggers:\n  on_failure: { cpu: contine }\n",
            "triggers.on_failure.cpu",
            &["`contine`", "`rollback`", "`ask`", "`continue`"],
        ),
        (
            "strategy: canry\n",
            "strategy",
            &[
                "`canry`",
                "`blue-green`",
                "`rolling`",
                "`canary`",
                "`feature-flag`",
            ],
        ),
        (
            "script:\n  deploy: ./deploy.sh {env}\n  live_colour: gren\n",
            "script.live_colour",
            &["`gren`", "`blue`", "`green`"],
        ),
        (
            "kubernetes:\n  live_colour: Blue\n",
            "kubernetes.live_colour",
            &["`Blue`", "`blue`", "`green`"],
        ),
        (
            "monitoring:\n  on_no_data: pas\n",
            "monitoring.on_no_data",
            &["`pas`", "`pass`", "`fail`", "`inconclusive`"],
        ),
        (
            "notify:\n  team: { type: slak, url: \"http://x\" }\n",
            "notify.team.type",
            &["`slak`", "`webhook`", "`slack`", "`file`", "`stdout`"],
        ),
        (
            "rollback:\n  on_failure: nevr\n",
            "rollback.on_failure",
            &["`nevr`", "`ask`", "`auto`", "`never`"],
        ),
    ];
    for (config, key, wants) in cases {
        let out = check(config, &[]);
        let mut all = vec![format!("`{key}`"), "runbook.yaml:".to_string()];
        all.extend(wants.iter().map(|w| w.to_string()));
        refused(&out, &all.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

#[test]
fn an_unknown_adapter_or_notify_channel_is_an_error() {
    let out = check("adapter: kubernets\n", &[]);
    refused(
        &out,
        &[
            "`adapter`",
            "unknown adapter `kubernets`",
            "`local`, `script`, `kubernetes`",
            "runbook.yaml:1:",
        ],
    );
    // A team's adapter beside the runbook is one (a runbook that does not use the shipped
    // workflow: with it, the adapter must also meet the contract, tests/suite/teams.rs).
    Test::new()
        .file("runbook.yaml", "adapter: mine\n")
        .file("mine.rhai", "fn deploy(env, version) { }\n")
        .file(
            "mine-deploy.rhai",
            "import \"mine\" as mine;\nprint(\"ours\");\n",
        )
        .args(&["check", "mine-deploy.rhai"])
        .run()
        .code(0);
    let out = check(
        "notify:\n  team: { type: stdout }\nmonitoring:\n  notify: [oncall]\n",
        &[],
    );
    refused(
        &out,
        &[
            "`monitoring.notify[0]`",
            "unknown channel `oncall`",
            "`team`",
        ],
    );
}

#[test]
fn judge_groups_thresholds_and_urls_are_checked() {
    let judge =
        "monitoring:\n  judge:\n    metrics: [{ name: latency, query: up, group: latency }]\n";
    // A weight for a group no metric is in (a typo) would be ignored; a metric in a group with
    // no weight, or marginal above pass, failed only when the judge ran.
    let out = check(&format!("{judge}    groups: {{ latncy: 1 }}\n"), &[]);
    refused(
        &out,
        &[
            "`monitoring.judge.metrics[0].group`",
            "unknown group `latency`",
            "`latncy`",
        ],
    );
    let out = check(
        &format!("{judge}    groups: {{ latency: 1, erors: 1 }}\n"),
        &[],
    );
    refused(
        &out,
        &[
            "`monitoring.judge.groups.erors`",
            "no judge metric is in group `erors`",
            "`latency`",
        ],
    );
    let out = check(
        "monitoring:\n  judge:\n    pass: 50\n    marginal: 80\n",
        &[],
    );
    refused(
        &out,
        &[
            "`monitoring.judge.marginal`",
            "`80` is above `monitoring.judge.pass` (50)",
        ],
    );
    check(&format!("{judge}    groups: {{ latency: 1 }}\n"), &[]).code(0);
    for (config, key) in [
        (
            "monitoring:\n  prometheus: prometheus:9090\n",
            "monitoring.prometheus",
        ),
        (
            "monitoring:\n  metrics_url: /metrics\n",
            "monitoring.metrics_url",
        ),
        (
            "notify:\n  team: { type: slack, url: hooks.slack.com/x }\n",
            "notify.team.url",
        ),
    ] {
        let out = check(config, &[]);
        refused(
            &out,
            &[&format!("`{key}`"), "is not an http:// or https:// URL"],
        );
    }
}

#[test]
fn scripts_see_enumerated_values_and_durations_as_written() {
    let out = Test::new()
        .file(
            "runbook.yaml",
            "monitoring:\n  on_inconclusive: continue\n  interval: 250ms\nresume:\n  in_flight: skip\n\
             lock:\n  lease: 45s\nkubernetes:\n  live_colour: green\nstrategy: feature-flag\n\
             triggers:\n  on_failure: { cpu: ask }\n",
        )
        .script(
            r#"print(`seen: ${config("monitoring.on_inconclusive")} ${config("monitoring.interval")} ${config("resume.in_flight")} ${config("lock.lease")} ${config("kubernetes.live_colour")} ${config("strategy")} ${config("triggers.on_failure").cpu} ${config("rollback.on_failure")}`);"#,
        )
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&["seen: continue 250ms skip 45s green feature-flag ask ask"]);
}

// ------------------------------------------------ 11. config() is the whole map, defaults filled in

/// The keys docs/configuration.md's tables document, as dotted paths (`.errors` after
/// `monitoring.series.requests` is `monitoring.series.errors`); placeholders (`notify.<name>`)
/// are left out.
fn documented_table_keys() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let mut keys = Vec::new();
    // The config's tables come before the answers files' (whose ids are not config keys).
    let text = text.split("\n## Answers files").next().unwrap();
    for line in text.lines() {
        let Some(first) = line.strip_prefix("| ").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        let names: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        let Some(head) = names.first() else { continue };
        let parent = head.rsplit_once('.').map(|(p, _)| p);
        for n in &names {
            let key = match (n.strip_prefix('.'), parent) {
                (Some(rest), Some(p)) => format!("{p}.{rest}"),
                (None, Some(p)) if !n.contains('.') => format!("{p}.{n}"),
                _ => n.to_string(),
            };
            if !key.contains('<') {
                keys.push(key);
            }
        }
    }
    assert!(keys.len() > 80, "parsed too few keys: {keys:?}");
    keys
}

#[test]
fn config_has_every_documented_key() {
    let keys = documented_table_keys();
    let list = keys
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let out = Test::new()
        .script(&format!(
            r#"
            let c = config();
            let missing = [];
            for k in [{list}] {{
                let node = c;
                for part in k.split(".") {{
                    if type_of(node) == "map" && part in node {{ node = node[part]; }} else {{ missing.push(k); break; }}
                }}
            }}
            print(`missing: ${{missing}}`);
            "#
        ))
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&["missing: []"]);
}

#[test]
fn config_fills_in_the_documented_defaults() {
    let out = Test::new()
        .file("runbook.yaml", "secrets:\n  values:\n    token: s3cr3t-value\n")
        .file(
            "ship-it.rhai",
            r#"
            print(`feature: ${config("feature")} ${config().feature}`);
            print(`deployments_dir: ${config("deployments_dir")}`);
            print(`live_colour: ${config("script.live_colour")} ${config("kubernetes.live_colour")}`);
            print(`host: ${config("kubernetes.host")} container: ${config("kubernetes.container")}`);
            print(`inconclusive_limit: ${config("triggers.inconclusive_limit")}`);
            print(`secrets: ${config("secrets.values").keys()}`);
            print(`whole: ${config()}`);
            print(`absent: ${config("version", "none")}`);
            "#,
        )
        .args(&["ship-it.rhai"])
        .run();
    // (`whole:` prints the whole config, with its defaults: its line is left out.)
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "feature: ship-it ship-it",
            "deployments_dir: deployments",
            "live_colour: blue blue",
            "host: app container: app",
            "inconclusive_limit: 10",
            "secrets: [\"token\"]",
            "absent: none",
        ])
        .expect_stdout_lacks(&["s3cr3t-value"]);
    // Where this run's directories go: the file's `deployments_dir`, or --deployments-dir.
    let show = r#"print(`deployments_dir: ${config("deployments_dir")}`);"#;
    let out = Test::new()
        .file(
            "runbook.yaml",
            "deployments_dir: runs
",
        )
        .script(show)
        .run();
    out.expect_status(0)
        .expect_stdout_lines(&["deployments_dir: runs"]);
    let out = Test::new()
        .script(show)
        .args(&["--deployments-dir", "elsewhere"])
        .run();
    out.expect_status(0)
        .expect_stdout_lines(&["deployments_dir: elsewhere"]);
}

/// A placeholder a `script.*` template does not have (`{envv}`) would reach the command as
/// written: `runbook check` refuses it, naming the ones it has (found by the new-team trial).
#[test]
fn an_unknown_placeholder_in_a_script_template_is_refused() {
    let out = check(
        "adapter: script\nscript:\n  deploy: ./deploy.sh {envv} {version}\n",
        &[],
    );
    refused(
        &out,
        &[
            "`script.deploy`",
            "`{envv}` is not a placeholder of `script.deploy` (did you mean `{env}`?)",
            "{env}, {version}, {colour}",
        ],
    );
    // Every documented placeholder is accepted.
    let out = check(
        "adapter: script\nscript:\n  deploy: ./d.sh {env} {version} {colour}\n  switch: ./s.sh {from} {to} {from_version} {to_version} {version}\n  weight: ./w.sh {version} {percent} {colour} {other} {other_percent} {other_colour}\n  flag: ./f.sh {action} {name} {percent} {version}\n  replace: ./r.sh {instance} {version} {env}\n  scale: ./sc.sh {env} {count} {version}\n  maintenance: ./m.sh {action}\n",
        &[],
    );
    out.expect_status(0);
}

/// A misspelled prompt id is said by `runbook check --answers` (and at the start of a run),
/// with the id it is close to (found by the new-team trial: it was only said at the end of a
/// run that had deployed to staging and then stopped at the unanswered prompt).
#[test]
fn check_says_a_misspelled_prompt_id_with_the_one_it_is_close_to() {
    let out = Test::new()
        .file("runbook.yaml", "adapter: local\n")
        .file(
            "answers.yaml",
            "strategy: canary\nstaging-deployment-successfull-proceed-to-production: yes\n",
        )
        .args(&["check", "deploy", "--answers", "answers.yaml"])
        .run();
    out.expect_status(0).expect_stderr_lines(&[
        "warning: answers.yaml: `staging-deployment-successfull-proceed-to-production` answers no prompt this runbook asks; did you mean `staging-deployment-successful-proceed-to-production`?",
    ]);
}

/// The shipped workflow run with no `adapter`: found before the run takes its lock, exit 2
/// (found by the multi-operator trial: the run took the lock, then exited 1).
#[test]
fn no_adapter_for_the_shipped_workflow_is_a_config_error_before_anything() {
    let out = Test::new()
        .file("runbook.yaml", "version: v2\ncurrent_version: v1\n")
        .args(&["deploy", "--yes", "--approve"])
        .run();
    out.expect_status(2).expect_stdout_exact("").expect_stderr_lines(&[
        "error: invalid config at `adapter`: no adapter configured: the shipped workflow needs one; set `adapter` to local, script or kubernetes (or a team's `<name>.rhai` beside the runbook); `runbook demo` runs the local one",
    ]);
    assert!(
        !out.dir.join("deployments").exists(),
        "no run directory, no lock"
    );
}
