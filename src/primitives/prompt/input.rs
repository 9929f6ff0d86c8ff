//! `input`: a line of text, with a default `--yes` takes.

use super::*;

pub(super) fn input(
    session: &Session,
    question: &str,
    default: &str,
    opts: &Map,
) -> RhaiResult<String> {
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
