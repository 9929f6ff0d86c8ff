//! `approve`: the critical decision box; `--approve`, an answer (with who), or a person.

use super::*;

pub(super) fn approve(session: &Session, details: &Map) -> RhaiResult<bool> {
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
