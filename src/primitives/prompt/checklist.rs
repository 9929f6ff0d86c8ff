//! `checklist`: each item yes or no, answered item by item or the whole list at once.

use super::*;

pub(super) fn checklist(
    session: &Session,
    title: &str,
    items: Array,
    opts: &Map,
) -> RhaiResult<Array> {
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
