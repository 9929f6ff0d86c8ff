//! Functions of the same name in different modules (and in the runbook) each stay their own: a
//! call inside a module always reaches that module's function, however often and in whatever
//! order the others were called. Rhai 1.27 cached a resolution by name and arity across modules;
//! vendor/rhai carries the fix (see docs/rhai-function-resolution.md).

use crate::support;

use crate::support::Test;

const ALPHA: &str = r#"
fn helper(x) { `alpha:${x}` }
private fn secret(x) { `alpha-private:${x}` }
fn get(x) { helper(x) }
fn get_private(x) { secret(x) }
"#;

const BETA: &str = r#"
fn helper(x) { `beta:${x}` }
private fn secret(x) { `beta-private:${x}` }
fn get(x) { helper(x) }
fn get_private(x) { secret(x) }
"#;

#[test]
fn same_named_helpers_in_two_modules_each_call_their_own() {
    let out = Test::new()
        .file("alpha.rhai", ALPHA)
        .file("beta.rhai", BETA)
        .script(
            r#"
            import "alpha" as a;
            import "beta" as b;
            let wrong = [];
            for i in 0..300 {
                let x = a::get(i);
                if x != `alpha:${i}` { wrong.push(`a::get(${i}) = ${x}`); }
                let y = b::get(i);
                if y != `beta:${i}` { wrong.push(`b::get(${i}) = ${y}`); }
                let p = a::get_private(i);
                if p != `alpha-private:${i}` { wrong.push(`a::get_private(${i}) = ${p}`); }
                let q = b::get_private(i);
                if q != `beta-private:${i}` { wrong.push(`b::get_private(${i}) = ${q}`); }
            }
            stage("inside a closure", || {
                for i in 0..100 {
                    if b::get(i) != `beta:${i}` { wrong.push(`stage b::get(${i})`); }
                    if a::get(i) != `alpha:${i}` { wrong.push(`stage a::get(${i})`); }
                }
            });
            print(`wrong: ${wrong.len()}`);
            if wrong.len() > 0 { throw `${wrong.len()} wrong, first: ${wrong[0]}`; }
            "#,
        )
        .run();
    // The stage's line says how long it took: the lines around it are pinned.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_lines(&[
            "━━ inside a closure ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━",
            "wrong: 0",
            "✅ Run completed.",
        ]);
}

#[test]
fn a_runbook_helper_does_not_replace_a_module_helper_of_the_same_name() {
    let out = Test::new()
        .file("alpha.rhai", ALPHA)
        .script(
            r#"
            import "alpha" as a;
            fn helper(x) { `runbook:${x}` }
            let wrong = [];
            for i in 0..200 {
                let r = helper(i);
                if r != `runbook:${i}` { wrong.push(`helper(${i}) = ${r}`); }
                let m = a::get(i);
                if m != `alpha:${i}` { wrong.push(`a::get(${i}) = ${m}`); }
            }
            print(`wrong: ${wrong.len()}`);
            if wrong.len() > 0 { throw `${wrong.len()} wrong, first: ${wrong[0]}`; }
            "#,
        )
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nwrong: 0\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
}

#[test]
fn a_module_private_function_does_not_shadow_a_primitive_for_the_runbook() {
    // The module defines a private `duration`; the runbook's own `duration(...)` calls must keep
    // reaching the primitive.
    let out = Test::new()
        .file(
            "gamma.rhai",
            r#"
            private fn duration(x) { -1 }
            fn get() { duration("5s") }
            "#,
        )
        .script(
            r#"
            import "gamma" as g;
            let wrong = 0;
            for i in 0..100 {
                if g::get() != -1 { wrong += 1; }
                if duration("2s") != 2000 { wrong += 1; }
            }
            print(`wrong: ${wrong}`);
            if wrong > 0 { throw `${wrong} wrong`; }
            "#,
        )
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_exact("▶ deploy.rhai — feature `deploy`\n  run directory: deployments/<date>-deploy\nwrong: 0\n✅ Run completed.\n  artifacts in deployments/<date>-deploy: deployment-log.txt, journal.jsonl, deployment-plan.md, rollback-plan.md\n");
}

/// The shipped workflow with the script adapter and PromQL monitoring (two queries): the stdlib's
/// `monitor` and `script` modules both have a `fill(a, b)`. A healthy release is promoted.
fn shipped_workflow_with_script_adapter_and_prometheus(strategy: &str) {
    let prom = support::Server::start(support::prometheus_at_zero);
    let config = format!(
        "adapter: script\nfeature: payments\nversion: v2\ncurrent_version: v1\n\
         script:\n  deploy: \"true\"\n  health: \"true\"\n  switch: \"true\"\n  weight: \"true\"\n  flag: \"true\"\n\
         monitoring:\n  interval: 20ms\n  samples: 2\n  prometheus: {}\n  queries:\n    error_rate: 'vector(0)'\n    response_time: 'vector(1)'\n\
         rollout:\n  steps: [50, 100]\n",
        prom.url("")
    );
    let answers = format!(
        "strategy: {strategy}\nprerequisites: yes\npre-deployment-checklist: yes\n\
         staging-deployment-successful-proceed-to-production: yes\n"
    );
    let out = Test::new()
        .file("runbook.yaml", &config)
        .file("answers.yaml", &answers)
        .args(&["deploy", "--answers", "answers.yaml", "--approve", "--yes"])
        .run();
    assert_eq!(
        out.code, 0,
        "{strategy}: a healthy release must be promoted\n{}\n{}",
        out.stdout, out.stderr
    );
    out.expect_stderr_exact("")
        .expect_stdout_lacks(&["no function"])
        .expect_stdout_lines(&["✅ Run completed."]);
    assert!(
        !prom.bodies().is_empty(),
        "{strategy}: Prometheus was never asked"
    );
}

#[test]
fn script_adapter_with_prometheus_promotes_a_healthy_blue_green_release() {
    shipped_workflow_with_script_adapter_and_prometheus("blue-green");
}

#[test]
fn script_adapter_with_prometheus_promotes_a_healthy_canary_release() {
    shipped_workflow_with_script_adapter_and_prometheus("canary");
}

#[test]
fn every_shipped_module_calls_only_what_it_defines_or_the_engine_provides() {
    let modules: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rhai").map(str::to_string)
        })
        .collect();
    assert!(modules.len() >= 8, "{modules:?}");
    let script: String = modules
        .iter()
        .map(|m| format!("import \"stdlib/{m}\" as {m};\n"))
        .collect();
    let out = Test::new()
        .file("all.rhai", &script)
        .args(&["check", "all.rhai"])
        .run();
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_like("ok: all.rhai compiles with [..] module(s); config defaults (no runbook.yaml); answers not given\n");
}

#[test]
fn check_rejects_a_module_that_calls_a_function_it_does_not_define() {
    let out = Test::new()
        .file(
            "helpers.rhai",
            "fn ok() { duration(\"1s\") }\nfn leaky(x) {\n    fill(x, 1)\n}\n",
        )
        .file(
            "deploy.rhai",
            "import \"helpers\" as h;\nfn fill(a, b) { a + b }\nprint(h::leaky(1));\n",
        )
        .args(&["check", "deploy.rhai"])
        .run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: this module calls `fill`, which it does not define and no primitive provides: the call would reach whatever function of that name the importing runbook has; define `fill` in this module, or import the module that has it and call it qualified (`module::fill`)\n --> helpers.rhai:3:5\n  |\n3 |     fill(x, 1)\n  |     ^\n  note: called from deploy.rhai:1:1\n  |\n1 | import \"helpers\" as h;\n  | ^\n");
    // The run refuses it too, before anything runs.
    let out = out.again().args(&["deploy.rhai"]).run();
    out.expect_status(2)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: this module calls `fill`, which it does not define and no primitive provides: the call would reach whatever function of that name the importing runbook has; define `fill` in this module, or import the module that has it and call it qualified (`module::fill`)\n --> helpers.rhai:3:5\n  |\n3 |     fill(x, 1)\n  |     ^\n  note: called from deploy.rhai:1:1\n  |\n1 | import \"helpers\" as h;\n  | ^\n");
}

/// `runbook definitions`: an editor's Rhai language server gets every primitive with its
/// overloads and docs, and each stdlib module's public functions.
#[test]
fn definitions_are_written_for_every_primitive_and_stdlib_module() {
    let out = Test::new().args(&["definitions", "defs"]).run();
    // How many files: one per stdlib module, which come and go.
    out.expect_status(0)
        .expect_stderr_exact("")
        .expect_stdout_like("wrote [..] definition files in defs (primitives: runbook.d.rhai; stdlib modules: one file each)\n");
    let read = |f: &str| {
        std::fs::read_to_string(out.dir.join("defs").join(f))
            .unwrap_or_else(|e| panic!("defs/{f}: {e}"))
    };
    let primitives = read("runbook.d.rhai");
    assert!(primitives.starts_with("module static;"), "{primitives}");
    for line in [
        "fn sh(cmd: ?) -> map;",
        "fn sh(cmd: ?, opts: map) -> map;",
        "fn analyze(spec: map) -> map;",
        "fn confirm(question: string, opts: map) -> bool;",
    ] {
        assert!(primitives.contains(line), "missing {line}\n{primitives}");
    }
    // Every fn line is a well-formed declaration with a doc line above it.
    let lines: Vec<&str> = primitives.lines().collect();
    for (i, l) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("fn "))
    {
        assert!(
            l.ends_with(';') && l.contains('(') && l.contains(')'),
            "{l}"
        );
        assert!(lines[i - 1].starts_with("/// "), "no doc above {l}");
    }
    let workflow = read("workflow.d.rhai");
    assert!(workflow.starts_with("module workflow;"), "{workflow}");
    assert!(workflow.contains("fn staging(ctx: ?);"), "{workflow}");
    assert!(
        workflow.contains("/// Stage 1: deploy to staging, smoke tests, sign-off."),
        "{workflow}"
    );
    // Rhai's own functions come too, so the editor knows the whole language.
    assert!(read("__static__.d.rhai").contains("fn len("));
    assert!(out.dir.join("defs/__builtin__.d.rhai").is_file());

    // A directory that cannot be written: a clear error, exit 1.
    let out2 = Test::new()
        .file("blocker", "")
        .args(&["definitions", "blocker/defs"])
        .run();
    out2.expect_status(1)
        .expect_stdout_exact("")
        .expect_stderr_exact("error: cannot create directory `blocker/defs`\n  caused by: Not a directory (os error 20)\n");
}
