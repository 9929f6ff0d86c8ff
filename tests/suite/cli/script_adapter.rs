//! The script adapter, with a real nginx.

use crate::support;
use crate::support::Test;

#[test]
fn script_adapter_blue_green_behind_a_real_nginx_then_rolled_back_from_the_journal() {
    let nginx = support::nginx_binary();
    let t = Test::new();
    let dir = t.path().to_path_buf();
    let shop = support::Shop::start(&dir);
    let (blue, green, staging) = (shop.blue, shop.green, shop.staging);
    let front = shop.front.clone();

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
    // Times and ports vary: the lines that say what ran are pinned whole, in order.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "▶ runbooks/deploy.rhai — feature `shop`",
            "⚠\u{fe0f} No metrics source (monitoring.prometheus or monitoring.metrics_url): judging by health checks only; error rate and response time are not measured.",
            "$ switch: ./scripts/switch-traffic.sh blue-to-green",
            "v1 stays in place for an instant switch-back (no `script.remove` command is configured).",
            "✅ Run completed.",
        ]);
    assert_eq!(
        support::wait_for(&front, "v2"),
        "v2",
        "nginx serves green after the deploy"
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
    again
        .expect_status(3)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "  ↩ switch traffic back to v1: script::switch_to(\"v1\")",
            "↩ switch traffic back to v1 (script::switch_to(\"v1\"))",
            "$ switch: ./scripts/switch-traffic.sh green-to-blue",
            "  ✓ switch traffic back to v1",
        ]);
    assert_eq!(
        support::wait_for(&front, "v1"),
        "v1",
        "nginx serves blue after the rollback"
    );
}
