//! What monitoring shows and keeps: `dashboard(frame)` draws the Deployment Monitor block,
//! `measurement(m)` and `verdict(v)` journal what was measured and decided (the source of
//! monitoring-snapshot.json), and `interactive()` tells whether a person is at the terminal.

use rhai::{Array, Dynamic, Map};

use super::{fail, to_json, Opts, RhaiResult};
use crate::journal::Record;
use crate::session::{Session, Shared};
use crate::ui::dashboard::{self, Frame};

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    engine.register_fn("dashboard", move |frame: Map| show(&s, &frame));
    let s = session.clone();
    engine.register_fn("measurement", move |m: Map| {
        let v = to_json(&Dynamic::from_map(m));
        s.record(Record::Measurement {
            measurement: v,
            stage: s.current_stage(),
        });
    });
    let s = session.clone();
    engine.register_fn("verdict", move |m: Map| {
        let v = to_json(&Dynamic::from_map(m));
        s.record(Record::Verdict {
            verdict: v,
            stage: s.current_stage(),
        });
    });
    // An adapter's traffic change, as a record of its own: which version takes what share (and
    // on which colour), so the REPL, status() and the reports read what is live instead of
    // guessing from command text.
    let s = session.clone();
    engine.register_fn("traffic", move |m: Map| -> RhaiResult<()> {
        let v = to_json(&Dynamic::from_map(m));
        let Some(weights) = v.get("weights").and_then(|w| w.as_object()) else {
            return Err(super::fail(
                "`traffic` needs #{ weights: #{ version: percent, ... } }",
            ));
        };
        let live = weights
            .iter()
            .max_by(|a, b| {
                let (x, y) = (a.1.as_f64().unwrap_or(0.0), b.1.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            })
            .map(|(k, _)| k.clone());
        s.record(Record::Traffic {
            live,
            colour: v.get("colour").cloned(),
            weights: weights.clone(),
            // Only planned when the run only plans: the session says so, not the primitive.
            dry_run: s.plan_only(|| ()).is_some(),
            stage: s.current_stage(),
        });
        Ok(())
    });
    let s = session.clone();
    engine.register_fn("override_verdict", move |m: Map| -> RhaiResult<()> {
        let o = Opts::new(&m, "override_verdict", &["verdict", "reason", "by"])?;
        let by = match o.string("by")? {
            Some(b) => b,
            None => crate::identity::user(),
        };
        s.record(Record::Override {
            verdict: o.string("verdict")?.unwrap_or_default(),
            reason: o.string("reason")?.unwrap_or_default(),
            by,
            stage: s.current_stage(),
        });
        Ok(())
    });
    let s = session.clone();
    engine.register_fn("success_criteria", move || -> RhaiResult<Array> {
        let records = match s.run_dir.borrow().as_ref() {
            Some(dir) => crate::journal::read(&dir.join(crate::journal::FILE_NAME))
                .map(|(r, _)| r)
                .map_err(|e| fail(e.summary()))?,
            None => Vec::new(),
        };
        Ok(crate::criteria::evaluate(&records)
            .into_iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("name".into(), c.name.into());
                m.insert("state".into(), c.state.as_str().into());
                m.insert("detail".into(), c.detail.clone().into());
                m.insert("line".into(), c.line().into());
                Dynamic::from_map(m)
            })
            .collect())
    });
    let s = session.clone();
    engine.register_fn("interactive", move || {
        // An attended rehearsal (`attended: true` in its scenario) is asked what a person at
        // the terminal is asked, and answers from its scenario.
        (s.terminal.tty || s.attended.get()) && !s.config.config.unattended
    });
}

fn rows(v: Option<&Dynamic>, what: &str) -> RhaiResult<Vec<Array>> {
    let Some(v) = v else { return Ok(vec![]) };
    let arr = v
        .read_lock::<Array>()
        .ok_or_else(|| fail(format!("dashboard `{what}` must be an array of rows")))?;
    arr.iter()
        .map(|r| {
            r.read_lock::<Array>()
                .map(|a| a.clone())
                .ok_or_else(|| fail(format!("each `{what}` row is an array")))
        })
        .collect()
}

fn show(session: &Session, frame: &Map) -> RhaiResult<()> {
    let o = Opts::new(
        frame,
        "dashboard",
        &["feature", "started", "status", "health", "business"],
    )?;
    let f = Frame {
        feature: o
            .string("feature")?
            .unwrap_or_else(|| session.feature.clone()),
        started: o.string("started")?.unwrap_or_default(),
        status: o.string("status")?.unwrap_or_else(|| "In Progress".into()),
        health: rows(o.get("health"), "health")?
            .into_iter()
            .map(|r| {
                let ok = r.get(2).and_then(|d| d.as_bool().ok());
                (
                    r.first().map(|d| d.to_string()).unwrap_or_default(),
                    r.get(1).map(|d| d.to_string()).unwrap_or_default(),
                    ok,
                )
            })
            .collect(),
        business: rows(o.get("business"), "business")?
            .into_iter()
            .map(|r| {
                (
                    r.first().map(|d| d.to_string()).unwrap_or_default(),
                    r.get(1).map(|d| d.to_string()).unwrap_or_default(),
                )
            })
            .collect(),
    };
    draw(session, &f);
    Ok(())
}

/// Draw the Deployment Monitor: in place on a terminal, one line per measurement elsewhere.
pub fn draw(session: &Session, f: &Frame) {
    let line = dashboard::line(f);
    if session.ui.stdout_tty
        && session.ui.format == crate::ui::LogFormat::Text
        && session.ui.verbosity != crate::ui::Verbosity::Quiet
    {
        // The log has the line; the terminal, the block drawn in place.
        session.effects.borrow_mut().log(&line);
        let block = dashboard::block(&session.ui, f);
        let mut text = String::new();
        if let Some((at, n)) = session.dashboard_end.get() {
            if at == session.lines_said.get() {
                // Nothing was printed since the last block: draw over it.
                text.push_str(&format!("\x1b[{n}A\x1b[J"));
            }
        }
        for l in &block {
            text.push_str(&session.redact(l));
            text.push('\n');
        }
        crate::ui::print_prompt(&text);
        session
            .dashboard_end
            .set(Some((session.lines_said.get(), block.len())));
    } else {
        // One line per measurement, on stdout and (by `say`) once in the log.
        session.say(&line);
    }
}
