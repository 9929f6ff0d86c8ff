//! One chart per judged metric of a run that monitored, drawn as SVG from the journal (plotters,
//! without system fonts: text goes into the SVG as text): the measured values over time, the
//! threshold, the traffic changes, each verdict, and the moment of rollback or promotion.

use plotters::prelude::*;
use serde_json::Value;

use crate::record::{Entry, Record};

/// A string field of a JSON value ("" when absent).
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Seconds since midnight of a journal timestamp ("2026-11-28T10:00:00.123Z").
fn secs(e: &Entry) -> Option<f64> {
    let t = &e.ts;
    let h: f64 = t.get(11..13)?.parse().ok()?;
    let m: f64 = t.get(14..16)?.parse().ok()?;
    let sec: f64 = t.get(17..t.len().checked_sub(1)?)?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + sec)
}

/// What one chart shows, read from the records.
#[derive(Debug, Default)]
pub struct Series {
    pub name: String,
    pub label: String,
    /// (seconds since the first traffic change, value, class)
    pub points: Vec<(f64, f64, String)>,
    /// Measurements with no value (no data, an error): (seconds, what came back).
    pub gaps: Vec<(f64, String)>,
    pub threshold: Option<f64>,
    pub condition: Option<String>,
    /// (seconds, text): traffic changes, verdicts, the rollback or promotion.
    pub marks: Vec<(f64, String, Mark)>,
    /// A fraction shown as a percent: values and threshold are drawn ×100, in %.
    pub percent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Traffic,
    Verdict,
    Rollback,
    Promoted,
}

/// The series of every judged metric that has at least one measured value, in the order first
/// measured.
pub fn series_of(entries: &[Entry]) -> Vec<Series> {
    // Time 0 is the first traffic change or the first measurement, whichever came first.
    let first = |is: fn(&Record) -> bool| entries.iter().find(|e| is(&e.record)).and_then(secs);
    let Some(measured) = first(|r| matches!(r, Record::Measurement { .. })) else {
        return vec![];
    };
    let start =
        first(|r| matches!(r, Record::Traffic { .. })).map_or(measured, |t| t.min(measured));
    let at = |e: &Entry| secs(e).map(|t| t - start);
    let mut out: Vec<Series> = Vec::new();
    for e in entries {
        let Record::Measurement { measurement, .. } = &e.record else {
            continue;
        };
        let Some(t) = at(e) else { continue };
        let Some(metrics) = measurement["metrics"].as_object() else {
            continue;
        };
        for (name, m) in metrics {
            let i = match out.iter().position(|x| &x.name == name) {
                Some(i) => i,
                None => {
                    out.push(Series {
                        name: name.clone(),
                        label: name.clone(),
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            if s(m, "format") == "percent" {
                out[i].percent = true;
            }
            match m.get("value").and_then(Value::as_f64) {
                Some(v) => out[i].points.push((t, v, s(m, "class").to_string())),
                None => out[i].gaps.push((t, s(m, "outcome").to_string())),
            }
        }
    }
    out.retain(|x| !x.points.is_empty() || !x.gaps.is_empty());
    let mut marks = Vec::new();
    for e in entries {
        let Some(t) = at(e) else { continue };
        match &e.record {
            Record::Traffic { weights, .. } => {
                let w = weights
                    .iter()
                    .map(|(v, p)| format!("{v} {p}%"))
                    .collect::<Vec<_>>()
                    .join(", ");
                marks.push((t, w, Mark::Traffic));
            }
            Record::Verdict { verdict: v, .. } => {
                marks.push((
                    t,
                    format!("{}: {}", s(v, "window"), s(v, "verdict")),
                    Mark::Verdict,
                ));
                for x in out.iter_mut() {
                    let m = &v["metrics"][x.name.as_str()];
                    if let Some(th) = m.get("threshold").and_then(Value::as_f64) {
                        x.threshold = Some(th);
                    }
                    if !s(m, "condition").is_empty() {
                        x.condition = Some(s(m, "condition").to_string());
                    }
                    if !s(m, "label").is_empty() {
                        x.label = s(m, "label").to_string();
                    }
                }
            }
            Record::RollbackStart { .. } => marks.push((t, "rollback".into(), Mark::Rollback)),
            Record::RunEnd { outcome, .. } if outcome == "completed" => {
                marks.push((t, "promoted".into(), Mark::Promoted))
            }
            _ => {}
        }
    }
    for x in out.iter_mut() {
        x.marks = marks.clone();
        if x.percent {
            for p in x.points.iter_mut() {
                p.1 *= 100.0;
            }
            x.threshold = x.threshold.map(|t| t * 100.0);
        }
    }
    out
}

/// The chart of one series, as SVG text.
pub fn svg(x: &Series) -> Result<String, String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let xmax = x
            .points
            .iter()
            .map(|p| p.0)
            .chain(x.marks.iter().map(|m| m.0))
            .fold(1.0f64, f64::max)
            * 1.3;
        let values = x.points.iter().map(|p| p.1).chain(x.threshold);
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.15).max(hi.abs() * 0.1).max(1e-6);
        let (ymin, ymax) = ((lo - pad).min(0.0_f64.max(lo - pad)), hi + pad);
        let title = match &x.condition {
            Some(c) => format!("{} (fails when {c})", x.label),
            None => x.label.clone(),
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..xmax, ymin..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first traffic change")
            .y_desc(if x.percent {
                format!("{} (%)", x.label)
            } else {
                x.label.clone()
            })
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        for (t, text, kind) in &x.marks {
            let colour = match kind {
                Mark::Traffic => RGBColor(60, 110, 200),
                Mark::Verdict => RGBColor(120, 120, 120),
                Mark::Rollback => RED,
                Mark::Promoted => RGBColor(20, 140, 60),
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*t, ymin), (*t, ymax)],
                    colour.stroke_width(if *kind == Mark::Rollback { 2 } else { 1 }),
                )))
                .map_err(|e| e.to_string())?;
            let y = match kind {
                Mark::Traffic => ymax - (ymax - ymin) * 0.05,
                Mark::Verdict => ymax - (ymax - ymin) * 0.12,
                _ => ymax - (ymax - ymin) * 0.19,
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    text.clone(),
                    (*t, y),
                    ("sans-serif", 12).into_font().color(&colour),
                )))
                .map_err(|e| e.to_string())?;
        }
        if let Some(th) = x.threshold {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, th), (xmax, th)],
                    RGBColor(200, 120, 0).stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(
                        "threshold {}",
                        x.condition.clone().unwrap_or_else(|| th.to_string())
                    ),
                    (0.5, th),
                    ("sans-serif", 12).into_font().color(&RGBColor(200, 120, 0)),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                x.points.iter().map(|p| (p.0, p.1)),
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(x.points.iter().map(|(t, v, class)| {
                let c = match class.as_str() {
                    "success" => RGBColor(20, 140, 60),
                    "failure" => RED,
                    _ => RGBColor(150, 150, 150),
                };
                Circle::new((*t, *v), 4, c.filled())
            }))
            .map_err(|e| e.to_string())?;
        // A measurement with no value is a hollow mark on the floor of the chart: every
        // measurement shows.
        let floor = ymin + (ymax - ymin) * 0.02;
        chart
            .draw_series(
                x.gaps.iter().map(|(t, _)| {
                    Circle::new((*t, floor), 4, RGBColor(150, 150, 150).stroke_width(1))
                }),
            )
            .map_err(|e| e.to_string())?;
        if !x.gaps.is_empty() {
            chart
                .draw_series(std::iter::once(Text::new(
                    "o = no value (no data, an error)",
                    (x.gaps[0].0, floor + (ymax - ymin) * 0.04),
                    ("sans-serif", 11)
                        .into_font()
                        .color(&RGBColor(150, 150, 150)),
                )))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// The file a metric's chart is written to.
pub fn file_name(metric: &str) -> String {
    let safe: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("chart-{safe}.svg")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `series_of` records as JSON values, typed as the journal's readers type them.
    fn series(records: &[Value]) -> Vec<Series> {
        let entries: Vec<Entry> = records.iter().map(Entry::from_value).collect();
        series_of(&entries)
    }

    fn at(second: u32, record: Value) -> Value {
        let mut v = record;
        v["ts"] = json!(format!("2026-11-28T10:00:{second:02}.000Z"));
        v
    }

    #[test]
    fn a_series_has_the_values_the_threshold_and_the_marks_in_time_from_the_first_change() {
        let records = vec![
            at(0, json!({ "type": "traffic", "weights": { "v2": 10 } })),
            at(
                5,
                json!({ "type": "measurement", "measurement": { "metrics": {
                    "errors": { "value": 0.02, "class": "fail", "format": "percent" },
                    "latency": { "outcome": "no data" },
                } } }),
            ),
            at(
                6,
                json!({ "type": "verdict", "verdict": { "window": "1/3", "verdict": "failure",
                    "metrics": { "errors": { "threshold": 0.01, "condition": "< 1%", "label": "Error rate" } } } }),
            ),
            at(7, json!({ "type": "rollback.start", "reason": "verdict" })),
            at(
                8,
                json!({ "type": "run.end", "outcome": "completed", "exit_code": 0 }),
            ),
            at(9, json!({ "type": "future.kind", "weights": { "v3": 1 } })),
        ];
        let all = series(&records);
        assert_eq!(all.len(), 2);
        let errors = &all[0];
        assert_eq!(errors.label, "Error rate");
        assert_eq!(errors.points, vec![(5.0, 2.0, "fail".to_string())]);
        assert_eq!(errors.threshold, Some(1.0));
        assert_eq!(errors.condition.as_deref(), Some("< 1%"));
        let marks: Vec<(f64, &str, Mark)> = errors
            .marks
            .iter()
            .map(|(t, s, m)| (*t, s.as_str(), *m))
            .collect();
        assert_eq!(
            marks,
            vec![
                (0.0, "v2 10%", Mark::Traffic),
                (6.0, "1/3: failure", Mark::Verdict),
                (7.0, "rollback", Mark::Rollback),
                (8.0, "promoted", Mark::Promoted),
            ]
        );
        assert_eq!(all[1].gaps, vec![(5.0, "no data".to_string())]);
        assert!(series(&records[..1]).is_empty(), "no measurement, no chart");
    }
}
