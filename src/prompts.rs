//! The prompts a runbook and its modules declare with literal text, found before the run starts,
//! so that an answers file is checked up front: a yes/no that is neither, a choice that is not
//! one of the menu's. Prompts built at run time (computed text, computed options) are checked
//! when they are asked, as before. The same walk finds the notification channels named with
//! literal text, so a channel the config does not define is refused before anything changes.

use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Kind {
    Confirm,
    /// The menu's keys and labels; `letters` when it is lettered (a, b, c).
    Choose {
        keys: Vec<String>,
        labels: Vec<String>,
        letters: bool,
    },
    /// The items' ids.
    Checklist(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Declared {
    pub id: String,
    pub kind: Kind,
}

fn literal(e: &rhai::Expr) -> Option<Value> {
    let d = e.get_literal_value(None)?;
    rhai::serde::from_dynamic::<Value>(&d).ok()
}

/// Variables given a literal value exactly once in `ast` (`let strategies = [...]`): a menu's
/// options are often written so. A name assigned more than once is left out.
fn literal_variables(ast: &rhai::AST) -> std::collections::HashMap<String, Value> {
    let mut seen: std::collections::HashMap<String, Option<Value>> = Default::default();
    ast.walk(&mut |path| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Var(x, ..))) = path.last() {
            let name = x.0.name.to_string();
            let value = literal(&x.1);
            seen.entry(name).and_modify(|v| *v = None).or_insert(value);
        }
        true
    });
    seen.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// The prompts `ast` declares with literal question text (and, for menus, literal options).
pub fn declared(ast: &rhai::AST) -> Vec<Declared> {
    let vars = literal_variables(ast);
    let value_of = |e: &rhai::Expr| -> Option<Value> {
        match e {
            rhai::Expr::Variable(x, ..) if x.2.is_empty() => vars.get(x.1.as_str()).cloned(),
            other => literal(other),
        }
    };
    let mut out = Vec::new();
    ast.walk(&mut |path| {
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(x, _)))
            | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(x, _))) => x,
            _ => return true,
        };
        if !call.namespace.is_empty() {
            return true;
        }
        let name = call.name.as_str();
        if !matches!(name, "confirm" | "choose" | "checklist") {
            return true;
        }
        let opts_at = if name == "confirm" { 1 } else { 2 };
        let opts = call
            .args
            .get(opts_at)
            .and_then(literal)
            .unwrap_or(Value::Null);
        // The id is the literal `id`, else the slug of literal question text; a question built
        // at run time with a literal id (`confirm(`${n} unchecked...`, #{ id: "..." })`) counts.
        let question = call.args.first().and_then(literal);
        let id = match (opts.get("id").and_then(Value::as_str), &question) {
            (Some(id), _) => id.to_string(),
            (None, Some(Value::String(q))) => crate::answers::slug(q),
            _ => return true,
        };
        let kind = match name {
            "confirm" => Some(Kind::Confirm),
            "choose" => call.args.get(1).and_then(value_of).and_then(|o| {
                let items = o.as_array()?;
                let mut keys = Vec::new();
                let mut labels = Vec::new();
                for item in items {
                    let (k, l) = match item {
                        Value::String(s) => (s.clone(), s.clone()),
                        Value::Object(m) => {
                            let l = m.get("label")?.as_str()?.to_string();
                            let k = m
                                .get("key")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .unwrap_or_else(|| l.clone());
                            (k, l)
                        }
                        _ => return None,
                    };
                    keys.push(k);
                    labels.push(l);
                }
                Some(Kind::Choose {
                    keys,
                    labels,
                    letters: opts.get("style").and_then(Value::as_str) == Some("letters"),
                })
            }),
            _ => call.args.get(1).and_then(value_of).and_then(|o| {
                let items = o.as_array()?;
                let ids = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Some(crate::answers::slug(s)),
                        Value::Object(m) => m
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| m.get("text")?.as_str().map(crate::answers::slug)),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Kind::Checklist(ids))
            }),
        };
        if let Some(kind) = kind {
            out.push(Declared { id, kind });
        }
        true
    });
    out
}

/// A notification channel named with literal text in a `notify` call.
#[derive(Debug, Clone)]
pub struct ChannelUse {
    pub channel: String,
    pub position: rhai::Position,
}

/// The channels `ast` names literally: `notify("team", ..)`, `notify(["ops", "audit"], ..)`. A
/// channel given by a variable or computed is left to run time (where an unknown one is shown
/// and journaled, never fatal).
pub fn channels(ast: &rhai::AST) -> Vec<ChannelUse> {
    let mut out = Vec::new();
    ast.walk(&mut |path| {
        let (call, position) = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(x, pos)))
            | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(x, pos))) => (x, *pos),
            _ => return true,
        };
        if !call.namespace.is_empty() || call.name.as_str() != "notify" || call.args.len() != 2 {
            return true;
        }
        let names = match call.args.first().and_then(literal) {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        };
        out.extend(
            names
                .into_iter()
                .map(|channel| ChannelUse { channel, position }),
        );
        true
    });
    out
}

fn yes_no(v: &Value) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::String(s) => crate::answers::parse_yes_no(s).is_some(),
        _ => false,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What is wrong with `answer` (one answer, or a list answering a prompt asked again) for the
/// declared prompt, if anything.
pub fn problem(d: &Declared, answer: &Value) -> Option<String> {
    let answers: Vec<&Value> = match answer {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for a in answers {
        let bad = match &d.kind {
            Kind::Confirm => {
                (!yes_no(a)).then(|| "an answer to a yes/no question: yes or no".to_string())
            }
            Kind::Choose {
                keys,
                labels,
                letters,
            } => {
                let t = text(a);
                let t = t.trim();
                let by_position = (0..keys.len()).any(|i| {
                    let key = if *letters {
                        ((b'a' + (i % 26) as u8) as char).to_string()
                    } else {
                        (i + 1).to_string()
                    };
                    key.eq_ignore_ascii_case(t)
                });
                let by_name = keys.iter().chain(labels).any(|k| k.eq_ignore_ascii_case(t));
                (!by_position && !by_name).then(|| {
                    format!(
                        "one of the choices: {} (or {})",
                        keys.join(", "),
                        if *letters { "a letter" } else { "its number" }
                    )
                })
            }
            Kind::Checklist(items) => match a {
                Value::Object(m) => m.iter().find_map(|(k, v)| {
                    if !items.contains(k) {
                        Some(format!(
                            "yes/no per item; `{k}` is not one of its items ({})",
                            items.join(", ")
                        ))
                    } else if !yes_no(v) {
                        Some(format!("yes or no for `{k}`"))
                    } else {
                        None
                    }
                }),
                other => (!yes_no(other)).then(|| {
                    "yes or no (the whole list), or a map of its items to yes/no".to_string()
                }),
            },
        };
        if let Some(want) = bad {
            return Some(format!("`{}` is not {want}", text(a)));
        }
    }
    None
}
