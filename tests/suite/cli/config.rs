//! Config: unknown keys, --set overrides.

use crate::support::Test;

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
