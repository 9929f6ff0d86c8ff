//! Config: unknown keys, --set overrides.

use crate::support::Test;

#[test]
fn an_unknown_config_key_is_an_error_with_its_path_and_place() {
    let out = Test::new()
        .file("runbook.yaml", "limits:\n  operatons: 5\n")
        .script("print(1);")
        .run();
    out.expect_status(2).expect_stdout_exact("").expect_stderr_exact(
        "error: invalid config at `limits.operatons`: unknown field `operatons`, expected one of `operations`, `wall_clock`, `call_depth`, `expr_depth`, `string_size`, `array_size`, `map_size`\n --> runbook.yaml:2:3\n  help: docs/configuration.md lists every key; `runbook init` writes a commented starter\n",
    );
}

#[test]
fn set_overrides_merge_into_config_and_are_checked() {
    let out = Test::new()
        .file("runbook.yaml", "feature: from-file\nvars:\n  region: eu\n")
        .script("print(`${feature()} ${config(\"vars.region\")} ${config(\"version\")}`);")
        .args(&["--set", "feature=from-set", "--set", "version=1.10"])
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_exact("▶ deploy.rhai — feature `from-set`\n  run directory: deployments/<date>-from-set\nfrom-set eu 1.10\n✅ Run completed.\n  artifacts in deployments/<date>-from-set: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
    assert!(out.run_dir().ends_with(format!(
        "{}-from-set",
        &out.run_dir().file_name().unwrap().to_string_lossy()[..10]
    )));

    let bad = Test::new()
        .script("print(1);")
        .args(&["--set", "limits.operations=lots"])
        .run();
    bad.expect_status(2).expect_stdout_exact("").expect_stderr_exact(
        "error: invalid `--set limits.operations=lots`: invalid type: string \"lots\", expected u64\n  help: write it as `--set key.path=value`, e.g. `--set feature=checkout`\n",
    );
}
