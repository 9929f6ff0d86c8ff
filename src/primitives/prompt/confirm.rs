//! `confirm`: yes or no, and the yes/no question the runner itself asks.

use super::*;

pub(super) fn yes_no_parse(text: &str) -> Result<bool, String> {
    parse_yes_no(text).ok_or_else(|| format!("`{}` is not an answer; type y or n", text.trim()))
}

pub(super) fn confirm(session: &Session, question: &str, opts: &Map) -> RhaiResult<bool> {
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
pub(super) fn yes_no_question(
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
