//! `runbook demo`: each strategy against the embedded fleet, good and bad releases.

use crate::support;
use crate::support::Test;

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
    let label = match strategy {
        "canary" => "Canary Release",
        "blue-green" => "Blue-Green Deployment",
        "rolling" => "Rolling Deployment",
        _ => "Feature Flag",
    };
    // Measurements, times and the router's port vary: the outcome's lines are pinned.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            &format!("📣 [team] checkout v2 deployed with {label}; all traffic on v2"),
            "- ✅ Deployed successfully: all 7 stage(s) completed",
            "✅ Run completed.",
            "Traffic now (measured through the router): v2 100% (200/200)",
        ]);
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
    // The old version was cleaned up; what stands is the undo that brings it back.
    let rollback_plan = out.artifact("rollback-plan.md");
    assert!(
        rollback_plan.contains("1. restore v1: `local::restore(\"v1\", 4)`"),
        "{rollback_plan}"
    );
}

fn demo_bad(strategy: &str) {
    let out = demo(strategy, true);
    // Which measurement failed, and by how much, varies: the error-rate trigger and the outcome
    // are pinned.
    out.expect_status(3)
        .expect_stderr_exact("")
        .expect_stdout_contains(&[
            "\n📣 [team] ⚠\u{fe0f} checkout v2 is being rolled back: ",
            "% > 5.0% (2 failed measurement(s), more than the 1 tolerated (failure_limit))",
        ])
        .expect_stdout_lines(&["Traffic now (measured through the router): v1 100% (200/200)"]);
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
    out.expect_status(0).expect_stderr_exact("");
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
    out.expect_status(0).expect_stderr_exact("");
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
