//! `choose`: a numbered (or lettered) menu; an answer is a key, a label or a number.

use super::*;

pub(super) fn parse_options(options: &Array) -> RhaiResult<Vec<MenuOption>> {
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

pub(super) fn choose(
    session: &Session,
    question: &str,
    options: Array,
    opts: &Map,
) -> RhaiResult<String> {
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
