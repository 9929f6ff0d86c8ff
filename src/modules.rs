//! Module resolution for `import "name"`: a Rhai file beside the importing script (so a team's
//! module shadows a shipped one), else the stdlib embedded in the binary. `import "stdlib/name"`
//! always means the shipped module, so a team's module can extend the one it shadows.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Module, Position, Scope};

type SharedModule = rhai::Shared<Module>;

use crate::embedded;

/// Every source text the run has loaded, by the name errors show for it.
#[derive(Clone, Default)]
pub struct Sources(Rc<RefCell<HashMap<String, String>>>);

impl Sources {
    pub fn insert(&self, name: &str, text: &str) {
        self.0
            .borrow_mut()
            .insert(name.to_string(), text.to_string());
    }
    pub fn line(&self, name: &str, line: usize) -> Option<String> {
        self.0
            .borrow()
            .get(name)
            .and_then(|t| t.lines().nth(line.saturating_sub(1)).map(str::to_string))
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    /// The names of the sources held: the runbook and the modules it imports.
    pub fn names(&self) -> Vec<String> {
        self.0.borrow().keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.borrow().get(name).cloned()
    }
}

pub const STDLIB_PREFIX: &str = "stdlib/";

/// The name errors show for a shipped file.
pub fn shipped_name(dir: &str, file: &str) -> String {
    format!("<shipped>/{dir}/{file}")
}

pub struct Resolver {
    sources: Sources,
    cache: RefCell<HashMap<String, SharedModule>>,
    /// Where a script with no source (the REPL) resolves relative imports.
    base: PathBuf,
}

impl Resolver {
    pub fn new(sources: Sources, base: PathBuf) -> Resolver {
        Resolver {
            sources,
            cache: RefCell::new(HashMap::new()),
            base,
        }
    }
}

/// Where `import "path"` from `importer` leads: (name shown in errors, text).
pub fn locate(importer: Option<&str>, path: &str, base: &Path) -> Result<(String, String), String> {
    if let Some(name) = path.strip_prefix(STDLIB_PREFIX) {
        return stdlib(name).ok_or_else(|| not_found(path));
    }
    let dir = importer
        .filter(|s| !s.starts_with("<shipped>"))
        .and_then(|s| Path::new(s).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| base.to_path_buf());
    let file = if path.ends_with(".rhai") {
        path.to_string()
    } else {
        format!("{path}.rhai")
    };
    let candidate = dir.join(&file);
    let is_self = importer.is_some_and(|i| Path::new(i) == candidate);
    if !is_self && candidate.is_file() {
        let text = std::fs::read_to_string(&candidate)
            .map_err(|e| format!("cannot read `{}`: {e}", candidate.display()))?;
        let shown = candidate
            .strip_prefix("./")
            .unwrap_or(&candidate)
            .display()
            .to_string();
        return Ok((shown, text));
    }
    if path.contains('/') || path.ends_with(".rhai") {
        return Err(format!("no module file `{}`", candidate.display()));
    }
    stdlib(path).ok_or_else(|| not_found(path))
}

fn stdlib(name: &str) -> Option<(String, String)> {
    let file = format!("{name}.rhai");
    embedded::STDLIB
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(f, text)| (shipped_name("stdlib", f), text.to_string()))
}

fn not_found(path: &str) -> String {
    let names: Vec<String> = embedded::STDLIB
        .iter()
        .map(|(f, _)| f.trim_end_matches(".rhai").to_string())
        .collect();
    let hint = crate::error::did_you_mean(
        path.trim_start_matches(STDLIB_PREFIX),
        names.iter().map(String::as_str),
    )
    .map(|s| format!(" (did you mean `{s}`?)"))
    .unwrap_or_default();
    if names.is_empty() {
        format!("no module `{path}`: no file beside the script, and the stdlib is empty{hint}")
    } else {
        format!(
            "no module `{path}`: no file beside the script, and the stdlib has {}{hint}",
            names.join(", ")
        )
    }
}

impl rhai::ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let (name, text) = locate(source, path, &self.base)
            .map_err(|msg| EvalAltResult::ErrorRuntime(msg.into(), pos))?;
        if let Some(m) = self.cache.borrow().get(&name) {
            return Ok(m.clone());
        }
        self.sources.insert(&name, &text);
        let mut ast = engine
            .compile(&text)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.clone(), e.into(), pos)))?;
        ast.set_source(name.clone());
        let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.clone(), e, pos)))?;
        module.set_id(name.clone());
        module.build_index();
        let shared: SharedModule = module.into();
        self.cache.borrow_mut().insert(name, shared.clone());
        Ok(shared)
    }
}

/// What a runbook and the modules it imports by name declare with literal text, found before
/// the run starts.
#[derive(Debug, Default)]
pub struct Literals {
    pub prompts: Vec<crate::prompts::Declared>,
    /// Each notification channel named literally, with the file (runbook or module) naming it.
    pub channels: Vec<(String, crate::prompts::ChannelUse)>,
}

/// Compile the script's imports (and theirs) without running them, so a syntax error in a module
/// is reported before the run changes anything.
pub fn precompile_imports(
    engine: &Engine,
    sources: &Sources,
    importer: &str,
    ast: &rhai::AST,
    base: &Path,
) -> Result<Literals, Box<EvalAltResult>> {
    // The prompts and channels named with literal text, in the runbook and every module it imports.
    let mut prompts = crate::prompts::declared(ast);
    let mut channels: Vec<(String, crate::prompts::ChannelUse)> = crate::prompts::channels(ast)
        .into_iter()
        .map(|c| (importer.to_string(), c))
        .collect();
    // Each queued module carries the chain of imports that led to it, to wrap its errors in.
    type Chain = Vec<(String, Position)>;
    let mut seen = std::collections::HashSet::new();
    let mut queue: Vec<(String, rhai::AST, Chain)> =
        vec![(importer.to_string(), ast.clone(), vec![])];
    let wrap = |chain: &Chain, err: Box<EvalAltResult>| {
        chain.iter().rev().fold(err, |inner, (name, pos)| {
            Box::new(EvalAltResult::ErrorInModule(name.clone(), inner, *pos))
        })
    };
    while let Some((from, ast, chain)) = queue.pop() {
        let mut imports = Vec::new();
        ast.walk(&mut |path| {
            if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, pos))) = path.last() {
                if let rhai::Expr::StringConstant(s, _) = &x.0 {
                    imports.push((s.to_string(), *pos));
                }
            }
            true
        });
        for (path, pos) in imports {
            let (name, text) = locate(Some(&from), &path, base)
                .map_err(|msg| wrap(&chain, EvalAltResult::ErrorRuntime(msg.into(), pos).into()))?;
            if !seen.insert(name.clone()) {
                continue;
            }
            sources.insert(&name, &text);
            let mut next = chain.clone();
            next.push((name.clone(), pos));
            let module_ast = engine.compile(&text).map_err(|e| wrap(&next, e.into()))?;
            if let Some((call, pos)) = foreign_calls(engine, &module_ast).into_iter().next() {
                return Err(wrap(&next, foreign_call_error(&call, pos)));
            }
            prompts.extend(crate::prompts::declared(&module_ast));
            channels.extend(
                crate::prompts::channels(&module_ast)
                    .into_iter()
                    .map(|c| (name.clone(), c)),
            );
            queue.push((name, module_ast, next));
        }
    }
    Ok(Literals { prompts, channels })
}

/// Names the evaluator itself answers, with no registered function behind them.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_fn",
    "is_def_var",
    "eval",
];

/// The unqualified calls in a module to names it neither defines nor gets from the engine
/// (primitives, Rhai's packages). A module function resolves such a name in the *caller's*
/// functions: whatever the importing runbook happens to define would answer for it, so a module
/// must define what it calls, or call it qualified (`other::name`).
pub fn foreign_calls(engine: &Engine, ast: &rhai::AST) -> Vec<(String, Position)> {
    let mut known: std::collections::HashSet<String> = engine
        .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
        .into_iter()
        .collect();
    known.extend(ast.iter_functions().map(|f| f.name.to_string()));
    known.extend(KEYWORD_FUNCTIONS.iter().map(|s| s.to_string()));
    let mut found = Vec::new();
    ast.walk(&mut |path| {
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(x, pos)))
            | Some(rhai::ASTNode::Expr(rhai::Expr::MethodCall(x, pos)))
            | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(x, pos))) => Some((x, *pos)),
            _ => None,
        };
        if let Some((x, pos)) = call {
            let name = x.name.as_str();
            let is_identifier = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            if x.namespace.is_empty() && is_identifier && !known.contains(name) {
                found.push((name.to_string(), pos));
            }
        }
        true
    });
    found
}

fn foreign_call_error(name: &str, pos: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        format!(
            "this module calls `{name}`, which it does not define and no primitive provides: \
             the call would reach whatever function of that name the importing runbook has; \
             define `{name}` in this module, or import the module that has it and call it \
             qualified (`module::{name}`)"
        )
        .into(),
        pos,
    )
    .into()
}

#[cfg(test)]
mod tests {
    /// Shipped modules are imported by computed names at run time, so `runbook check` cannot
    /// reach all of them: compile every one here.
    #[test]
    fn every_shipped_runbook_and_module_compiles() {
        let mut engine = rhai::Engine::new();
        let limits = crate::config::Limits::default();
        engine.set_max_expr_depths(limits.expr_depth, limits.expr_depth);
        for (name, text) in crate::embedded::STDLIB
            .iter()
            .chain(crate::embedded::RUNBOOKS.iter())
        {
            if let Err(e) = engine.compile(text) {
                panic!("{name}: {e}");
            }
        }
    }
}
