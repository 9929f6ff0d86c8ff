//! Asking people: `choose`, `confirm`, `checklist`, `input`, `approve`, and `decline`.
//!
//! Every prompt has a stable id (given, or derived from its text). Answers come, in order, from
//! `RUNBOOK_ANSWER_<ID>`, the answers file, `--yes` / `--approve` where they apply, and a person
//! at the terminal. With none of those the run stops before the prompt with exit 2.

use rhai::{Array, Dynamic, Map};
use serde_json::json;
use serde_yaml::Value as Yaml;

use super::{fail, gate_error, Opts, RhaiResult};
use crate::answers::{self, parse_yes_no, scalar_text, yes_no, Source};
use crate::error::Error;
use crate::session::{Session, Shared, Stop};
use crate::ui::menu::{self, MenuOption, MenuStyle};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("choose", move |q: &str, options: Array| {
        choose(&s, q, options, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("choose", move |q: &str, options: Array, opts: Map| {
        choose(&s, q, options, &opts)
    });
    let s = session.clone();
    engine.register_fn("confirm", move |q: &str| confirm(&s, q, &Map::new()));
    let s = session.clone();
    engine.register_fn("confirm", move |q: &str, opts: Map| confirm(&s, q, &opts));
    let s = session.clone();
    engine.register_fn("checklist", move |title: &str, items: Array| {
        checklist(&s, title, items, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("checklist", move |title: &str, items: Array, opts: Map| {
        checklist(&s, title, items, &opts)
    });
    let s = session.clone();
    engine.register_fn("input", move |q: &str, default: &str| {
        input(&s, q, default, &Map::new())
    });
    let s = session.clone();
    engine.register_fn("input", move |q: &str, default: &str, opts: Map| {
        input(&s, q, default, &opts)
    });
    let s = session.clone();
    engine.register_fn("approve", move |details: Map| approve(&s, &details));
    let s = session.clone();
    engine.register_fn("decline", move |reason: &str| -> RhaiResult<()> {
        s.record(crate::journal::Record::Declined {
            gate: reason.to_string(),
        });
        Err(s.stop(Stop::Declined {
            gate: reason.to_string(),
            by: "the runbook".into(),
        }))
    });
}

use crate::identity::{host, user};

/// What came back from asking: the answer's text, and how it was given.
struct Answered<T> {
    value: T,
    source: Source,
}

/// The common path of every prompt: explicit answer, then flags, then the terminal.
#[allow(clippy::too_many_arguments)]
fn ask<T: Clone>(
    session: &Session,
    kind: &'static str,
    id: &str,
    question: &str,
    shown: &str,
    example: &str,
    explicit: Option<(Yaml, Source)>,
    flag: Option<(T, Source)>,
    parse: &dyn Fn(&str) -> Result<T, String>,
) -> RhaiResult<Answered<T>> {
    if let Some((v, source)) = explicit {
        let text = match scalar_text(&v) {
            Some(t) => t,
            None => {
                let err = session.answers.borrow().error(
                    id,
                    format!("expected {example}, found {}", answers::kind_of(&v)),
                    None,
                );
                return Err(session.stop(Stop::Error(err)));
            }
        };
        return match parse(&text) {
            Ok(value) => Ok(Answered { value, source }),
            Err(why) => {
                let err = match &source {
                    Source::Env(var) => Error::Answers {
                        file: format!("environment {var}"),
                        id: Some(id.to_string()),
                        message: why,
                        help: Some(format!("for example {var}={example}")),
                    },
                    _ => session.answers.borrow().error(
                        id,
                        why,
                        Some(format!("for example `{id}: {example}`")),
                    ),
                };
                Err(session.stop(Stop::Error(err)))
            }
        };
    }
    if let Some((value, source)) = flag {
        return Ok(Answered { value, source });
    }
    if !session.terminal.tty {
        return Err(session.stop(Stop::Error(Error::PromptUnanswered {
            id: id.to_string(),
            question: question.to_string(),
            kind,
            env_var: answers::env_var_for(id),
            example: example.to_string(),
        })));
    }
    loop {
        match session
            .terminal
            .ask(&format!("{shown} "), &session.interrupt)
        {
            Err(_) => return Err(session.stop(Stop::Interrupted)),
            Ok(None) => {
                return Err(session.stop(Stop::Error(Error::PromptUnanswered {
                    id: id.to_string(),
                    question: question.to_string(),
                    kind,
                    env_var: answers::env_var_for(id),
                    example: example.to_string(),
                })))
            }
            Ok(Some(line)) => match parse(&line) {
                Ok(value) => {
                    return Ok(Answered {
                        value,
                        source: Source::Terminal,
                    })
                }
                Err(why) => session.ui.shout(&session.ui.yellow(&format!("  {why}"))),
            },
        }
    }
}

fn prompt_id(opts: &Opts, text: &str) -> RhaiResult<String> {
    Ok(opts.string("id")?.unwrap_or_else(|| answers::slug(text)))
}

/// Journal a prompt and its answer as one effect (prompts act in dry-run too).
fn journal_answer(
    session: &Session,
    kind: &str,
    id: &str,
    question: &str,
    answer: serde_json::Value,
    source: &Source,
) -> RhaiResult<()> {
    let intent = json!({ "id": id, "question": question });
    let result = json!({
        "id": id,
        "answer": answer,
        "source": source.describe(),
        "by": user(),
        "host": host(),
    });
    session
        .gate_input(&format!("prompt.{kind}"), id, intent, result)
        .map_err(|e| gate_error(session, e))
}

fn echo_answer(session: &Session, text: &str, source: &Source) {
    if *source != Source::Terminal {
        session.say(&format!("  → {text} ({})", source.describe()));
    } else {
        session
            .effects
            .borrow_mut()
            .log(&format!("  → {text} (typed by {})", user()));
    }
}

fn parse_options(options: &Array) -> RhaiResult<Vec<MenuOption>> {
    if options.is_empty() {
        return Err(fail("`choose` needs at least one option"));
    }
    options
        .iter()
        .map(|o| {
            if o.is_string() {
                let label = o.to_string();
                return Ok(MenuOption {
                    key: label.clone(),
                    label,
                    notes: vec![],
                    unavailable: None,
                });
            }
            let m = o.read_lock::<Map>().ok_or_else(|| {
                fail(format!(
                    "a `choose` option is a string or a map, not {}",
                    o.type_name()
                ))
            })?;
            let opts = Opts::new(
                &m,
                "choose option",
                &["key", "label", "notes", "unavailable"],
            )?;
            let label = opts
                .string("label")?
                .ok_or_else(|| fail("a `choose` option map needs a `label`"))?;
            let key = opts.string("key")?.unwrap_or_else(|| label.clone());
            let notes = match opts.get("notes") {
                None => vec![],
                Some(n) => n
                    .read_lock::<Array>()
                    .ok_or_else(|| {
                        fail("`notes` of a `choose` option must be an array of strings")
                    })?
                    .iter()
                    .map(|d| d.to_string())
                    .collect(),
            };
            // `unavailable: "why"` (or `()`, or false: available).
            let unavailable = match opts.get("unavailable") {
                None => None,
                Some(v) if v.is_unit() => None,
                Some(v) if v.as_bool() == Ok(false) => None,
                Some(v) => Some(v.to_string()),
            };
            Ok(MenuOption {
                key,
                label,
                notes,
                unavailable,
            })
        })
        .collect()
}

fn choose(session: &Session, question: &str, options: Array, opts: &Map) -> RhaiResult<String> {
    let o = Opts::new(opts, "choose", &["id", "style"])?;
    let id = prompt_id(&o, question)?;
    let style = match o.string("style")?.as_deref() {
        None | Some("numbers") => MenuStyle::Numbers,
        Some("letters") => MenuStyle::Letters,
        Some(other) => {
            return Err(fail(format!(
                "`choose` style is \"numbers\" or \"letters\", not \"{other}\""
            )))
        }
    };
    let options = parse_options(&options)?;
    session.say("");
    for line in menu::render_menu(&session.ui, question, &options, style).lines() {
        session.ui.shout(line);
    }
    session.effects.borrow_mut().log(&format!("? {question}"));
    if options.iter().all(|o| o.unavailable.is_some()) {
        return Err(fail(format!(
            "`choose`: every option of \"{question}\" is unavailable"
        )));
    }
    let press = menu::press_line(style, &options);
    let parse = |text: &str| -> Result<usize, String> {
        let t = text.trim();
        let by_key = (0..options.len()).find(|&i| style.key(i).eq_ignore_ascii_case(t));
        let by_name = options
            .iter()
            .position(|opt| opt.key.eq_ignore_ascii_case(t) || opt.label.eq_ignore_ascii_case(t));
        let i = by_key.or(by_name).ok_or_else(|| {
            format!(
                "`{t}` is not one of the choices; {}",
                press.trim_end_matches(':').replace("Press", "press")
            )
        })?;
        match &options[i].unavailable {
            Some(why) => Err(format!(
                "`{t}` ({}) is not available: {why}; {}",
                options[i].label,
                press.trim_end_matches(':').replace("Press", "press")
            )),
            None => Ok(i),
        }
    };
    let explicit = session.answers.borrow_mut().explicit(&id);
    let example = style.key(
        options
            .iter()
            .position(|o| o.unavailable.is_none())
            .unwrap_or(0),
    );
    let a = ask(
        session, "choice", &id, question, &press, &example, explicit, None, &parse,
    )?;
    let chosen = &options[a.value];
    echo_answer(session, &chosen.label, &a.source);
    journal_answer(
        session,
        "choose",
        &id,
        question,
        json!(chosen.key),
        &a.source,
    )?;
    if id == "strategy" || id.contains("deploy-this-feature") {
        *session.strategy.borrow_mut() = Some(chosen.label.clone());
        session.record(crate::journal::Record::Strategy {
            strategy: chosen.label.clone(),
        });
    }
    Ok(chosen.key.clone())
}

fn yes_no_parse(text: &str) -> Result<bool, String> {
    parse_yes_no(text).ok_or_else(|| format!("`{}` is not an answer; type y or n", text.trim()))
}

fn confirm(session: &Session, question: &str, opts: &Map) -> RhaiResult<bool> {
    let o = Opts::new(opts, "confirm", &["id"])?;
    let id = prompt_id(&o, question)?;
    session.say("");
    let shown = format!("{} (y/n):", session.ui.bold(question));
    session.effects.borrow_mut().log(&format!("? {question}"));
    let explicit = session.answers.borrow_mut().explicit(&id);
    let flag = session
        .answers
        .borrow()
        .yes
        .then_some((true, Source::YesFlag));
    let a = yes_no_question(session, &id, question, &shown, explicit, flag, false)?;
    journal_answer(session, "confirm", &id, question, json!(a.value), &a.source)?;
    Ok(a.value)
}

/// A y/n question: shown (with its answer when it came without a person), asked, echoed.
fn yes_no_question(
    session: &Session,
    id: &str,
    question: &str,
    shown: &str,
    explicit: Option<(Yaml, Source)>,
    flag: Option<(bool, Source)>,
    loud: bool,
) -> RhaiResult<Answered<bool>> {
    if explicit.is_some() || flag.is_some() {
        if loud {
            session.ui.shout(shown);
        } else {
            session.ui.say(shown);
        }
    }
    let a = ask(
        session,
        "confirmation",
        id,
        question,
        shown,
        "yes",
        explicit,
        flag,
        &yes_no_parse,
    )?;
    echo_answer(session, if a.value { "yes" } else { "no" }, &a.source);
    Ok(a)
}

fn input(session: &Session, question: &str, default: &str, opts: &Map) -> RhaiResult<String> {
    let o = Opts::new(opts, "input", &["id"])?;
    let id = prompt_id(&o, question)?;
    let shown = if default.is_empty() {
        format!("{}:", session.ui.bold(question))
    } else {
        format!("{} [{default}]:", session.ui.bold(question))
    };
    session.effects.borrow_mut().log(&format!("? {question}"));
    let explicit = session.answers.borrow_mut().explicit(&id);
    let flag = (session.answers.borrow().yes && !default.is_empty())
        .then(|| (default.to_string(), Source::Default));
    let parse = |t: &str| -> Result<String, String> {
        let t = t.trim();
        if t.is_empty() {
            if default.is_empty() {
                Err("an answer is needed".into())
            } else {
                Ok(default.to_string())
            }
        } else {
            Ok(t.to_string())
        }
    };
    let a = ask(
        session,
        "input",
        &id,
        question,
        &shown,
        "some text",
        explicit,
        flag,
        &parse,
    )?;
    echo_answer(session, &a.value, &a.source);
    journal_answer(session, "input", &id, question, json!(a.value), &a.source)?;
    Ok(a.value)
}

fn checklist(session: &Session, title: &str, items: Array, opts: &Map) -> RhaiResult<Array> {
    let o = Opts::new(opts, "checklist", &["id"])?;
    let list_id = prompt_id(&o, title)?;
    let items: Vec<(String, String)> = items
        .iter()
        .map(|it| {
            if it.is_string() {
                let text = it.to_string();
                Ok((answers::slug(&text), text))
            } else if let Some(m) = it.read_lock::<Map>() {
                let io = Opts::new(&m, "checklist item", &["id", "text"])?;
                let text = io
                    .string("text")?
                    .ok_or_else(|| fail("a checklist item map needs `text`"))?;
                Ok((
                    io.string("id")?.unwrap_or_else(|| answers::slug(&text)),
                    text,
                ))
            } else {
                Err(fail(format!(
                    "a checklist item is a string or a map, not {}",
                    it.type_name()
                )))
            }
        })
        .collect::<RhaiResult<_>>()?;
    session.say("");
    session.ui.shout(&session.ui.bold(title));
    session.effects.borrow_mut().log(&format!("? {title}"));
    let mut unchecked = Array::new();
    let mut records = Vec::new();
    for (item_id, text) in &items {
        let explicit = session
            .answers
            .borrow_mut()
            .checklist_item(&list_id, item_id);
        let flag = session
            .answers
            .borrow()
            .yes
            .then_some((true, Source::YesFlag));
        let full_id = format!("{list_id}.{item_id}");
        let shown = format!("- [ ] {text} (y/n):");
        let a = ask(
            session,
            "checklist item",
            &full_id,
            text,
            &shown,
            "yes",
            explicit,
            flag,
            &yes_no_parse,
        )?;
        let mark = if a.value { "x" } else { " " };
        let line = format!("- [{mark}] {text}");
        if a.source == Source::Terminal {
            session.effects.borrow_mut().log(&line);
        } else {
            let styled = if a.value {
                session.ui.green(&line)
            } else {
                session.ui.red(&line)
            };
            session
                .ui
                .say(&format!("{styled} ({})", a.source.describe()));
            session
                .effects
                .borrow_mut()
                .log(&format!("{line} ({})", a.source.describe()));
        }
        if !a.value {
            unchecked.push(Dynamic::from(text.clone()));
        }
        records.push(json!({
            "id": item_id,
            "text": text,
            "checked": a.value,
            "source": a.source.describe(),
            "by": user(),
            "at": crate::journal::now_rfc3339(),
        }));
    }
    let intent = json!({ "id": list_id, "title": title, "items": items.iter().map(|(_, t)| t).collect::<Vec<_>>() });
    let result = json!({ "id": list_id, "title": title, "items": records, "host": host() });
    session
        .gate_input("prompt.checklist", &list_id, intent, result)
        .map_err(|e| gate_error(session, e))?;
    Ok(unchecked)
}

fn approve(session: &Session, details: &Map) -> RhaiResult<bool> {
    let o = Opts::new(
        details,
        "approve",
        &[
            "id",
            "title",
            "feature",
            "changes",
            "risk",
            "rollback_time",
            "question",
        ],
    )?;
    let id = o
        .string("id")?
        .unwrap_or_else(|| "approve-deployment".into());
    let title = o
        .string("title")?
        .unwrap_or_else(|| menu::APPROVAL_TITLE.into());
    let question = o
        .string("question")?
        .unwrap_or_else(|| menu::APPROVAL_QUESTION.into());
    let field = |k: &str, default: &str| -> RhaiResult<String> {
        Ok(o.string(k)?.unwrap_or_else(|| default.to_string()))
    };
    let fields = vec![
        ("Feature".to_string(), field("feature", &session.feature)?),
        ("Changes".to_string(), field("changes", "(not stated)")?),
        ("Risk Level".to_string(), field("risk", "(not stated)")?),
        (
            "Rollback Time".to_string(),
            field("rollback_time", "(not stated)")?,
        ),
    ];
    session.say("");
    for line in menu::render_approval(&session.ui, &title, &fields).lines() {
        session.ui.shout(line);
    }
    session.effects.borrow_mut().log(&format!("? {title}"));
    session.ui.shout("");
    let explicit = session.answers.borrow_mut().explicit(&id);
    // `--yes` never approves: that needs a person, `--approve`, or an explicit answer.
    let flag = session
        .answers
        .borrow()
        .approve
        .then_some((true, Source::ApproveFlag));
    let mut approver: Option<String> = None;
    let explicit = match explicit {
        Some((Yaml::Mapping(m), src)) => {
            approver = m.get(Yaml::String("by".into())).and_then(scalar_text);
            let v = m
                .get(Yaml::String("approved".into()))
                .cloned()
                .unwrap_or(Yaml::Null);
            if yes_no(&v).is_none() {
                let err = session.answers.borrow().error(
                    &id,
                    "an approval map needs `approved: yes` or `approved: no`".into(),
                    Some(format!("for example `{id}: {{approved: yes, by: alice}}`")),
                );
                return Err(session.stop(Stop::Error(err)));
            }
            Some((v, src))
        }
        other => other,
    };
    let shown = session.ui.bold(&question);
    if explicit.is_some() || flag.is_some() {
        session.ui.say(&shown);
    }
    let a = ask(
        session,
        "approval",
        &id,
        &title,
        &shown,
        "yes",
        explicit,
        flag,
        &yes_no_parse,
    )?;
    let by = approver.unwrap_or_else(user);
    let how = a.source.describe();
    echo_answer(
        session,
        &format!("{} by {by}", if a.value { "approved" } else { "declined" }),
        &a.source,
    );
    let intent = json!({ "id": id, "title": title, "fields": fields.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect::<Vec<_>>() });
    let result = json!({
        "id": id,
        "approved": a.value,
        "by": by,
        "how": how,
        "host": host(),
        "at": crate::journal::now_rfc3339(),
    });
    session
        .gate_input("prompt.approve", &id, intent, result)
        .map_err(|e| gate_error(session, e))?;
    if !a.value {
        return Err(session.stop(Stop::Declined {
            gate: title.trim_start_matches("⚠️ ").to_string(),
            by,
        }));
    }
    Ok(true)
}

/// Ask a yes/no question on the runner's own behalf (roll back after a failure or an interrupt).
/// `None` when nobody can answer: no explicit answer, no `--yes`, no terminal.
pub fn offer(session: &Session, id: &str, question: &str) -> Option<bool> {
    let explicit = session.answers.borrow_mut().explicit(id);
    let flag = session
        .answers
        .borrow()
        .yes
        .then_some((true, Source::YesFlag));
    if explicit.is_none() && flag.is_none() && !session.terminal.tty {
        return None;
    }
    let shown = format!("{} (y/n):", session.ui.bold(question));
    let a = yes_no_question(session, id, question, &shown, explicit, flag, true).ok()?;
    let _ = journal_answer(session, "confirm", id, question, json!(a.value), &a.source);
    Some(a.value)
}

/// `input(question, default)` for the runner's own questions (the REPL's `resolve()`).
pub fn ask_input(session: &Session, question: &str, default: &str, id: &str) -> RhaiResult<String> {
    let mut opts = Map::new();
    opts.insert("id".into(), Dynamic::from(id.to_string()));
    input(session, question, default, &opts)
}
