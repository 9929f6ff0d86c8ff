//! Script errors: where they point, suggestions, the operation limit, modules.

use crate::support::Test;

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
    out.expect_status(1)
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\n✗ Run failed (nothing was registered to undo).\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md, post-mortem.md\n")
        .expect_stderr_exact(
        "error: boom 2\n --> lib/helpers.rhai:3:5\n  |\n3 |     throw `boom ${y}`;\n  |     ^\n  note: called from deploy.rhai:3:10\n  |\n3 | helpers::explode(1);\n  |          ^\n",
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
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: Expecting ')' to close the parameters list of function 'broken'\n --> helpers.rhai:2:12\n  |\n2 | fn broken( { }\n  |            ^\n  note: called from deploy.rhai:2:1\n  |\n2 | import \"helpers\" as h;\n  | ^\n");
    assert!(!out.dir.join("marker").exists());
    assert!(!out.dir.join("deployments").exists());
}

#[test]
fn an_undefined_variable_is_a_compile_error_with_a_suggestion() {
    let out = Test::new()
        .script("let version = 1;\nprint(verison);\n")
        .run();
    out.expect_status(2).expect_stdout_exact("").expect_stderr_exact(
        "error: variable `verison` is not defined\n --> deploy.rhai:2:7\n  |\n2 | print(verison);\n  |       ^\n  help: did you mean `version`?\n",
    );
}

#[test]
fn a_mistyped_primitive_gets_a_did_you_mean() {
    let out = Test::new().script("shh(\"true\");\n").run();
    out.expect_status(1).expect_stderr_exact("error: no function `shh`\n --> deploy.rhai:1:1\n  |\n1 | shh(\"true\");\n  | ^\n  help: did you mean `sh`?\n");
}

#[test]
fn an_endless_loop_is_stopped_by_the_operation_limit() {
    let out = Test::new()
        .script("let i = 0;\nloop { i += 1; }\n")
        .args(&["--set", "limits.operations=100000"])
        .run();
    out.expect_status(1)
        .expect_stderr_exact("error: the script ran past its operation limit (`limits.operations`): is there an endless loop?\n --> deploy.rhai:2:13\n  |\n2 | loop { i += 1; }\n  |             ^\n");
}

#[test]
fn an_imported_stdlib_name_that_does_not_exist_is_named() {
    let out = Test::new()
        .script("import \"no_such_module\" as m;\n")
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: no module `no_such_module`: no file beside the script, and the stdlib has blue_green, canary, emergency, feature_flag, kubernetes, local, monitor, preflight, progressive, rolling, script, workflow\n --> deploy.rhai:1:1\n  |\n1 | import \"no_such_module\" as m;\n  | ^\n");
}
