//! Menus, boxes and checklists as text. The words come from the spec; these only lay them out.

use super::Ui;

#[derive(Debug, Clone)]
pub struct MenuOption {
    pub key: String,
    pub label: String,
    pub notes: Vec<String>,
    /// Shown, keeping its letter or number, but not to be chosen (why not).
    pub unavailable: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuStyle {
    Numbers,
    Letters,
}

impl MenuStyle {
    pub fn marker(self, index: usize) -> String {
        match self {
            MenuStyle::Numbers => {
                const KEYCAPS: [&str; 9] = ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣"];
                KEYCAPS
                    .get(index)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("{}.", index + 1))
            }
            MenuStyle::Letters => format!("{})", letter(index)),
        }
    }

    /// What a person types for option `index`.
    pub fn key(self, index: usize) -> String {
        match self {
            MenuStyle::Numbers => (index + 1).to_string(),
            MenuStyle::Letters => letter(index).to_string(),
        }
    }
}

fn letter(index: usize) -> char {
    (b'a' + (index % 26) as u8) as char
}

/// "Press 1, 2, 3, or 4:" / "Press a, b, or c:" (the keys of the options that can be chosen)
pub fn press_line(style: MenuStyle, options: &[MenuOption]) -> String {
    let keys: Vec<String> = (0..options.len())
        .filter(|&i| options[i].unavailable.is_none())
        .map(|i| style.key(i))
        .collect();
    match keys.len() {
        0 => "Press:".to_string(),
        1 => format!("Press {}:", keys[0]),
        2 => format!("Press {} or {}:", keys[0], keys[1]),
        n => format!("Press {}, or {}:", keys[..n - 1].join(", "), keys[n - 1]),
    }
}

pub fn render_menu(ui: &Ui, question: &str, options: &[MenuOption], style: MenuStyle) -> String {
    let mut out = format!("{}\n\n", ui.bold(question));
    for (i, opt) in options.iter().enumerate() {
        match &opt.unavailable {
            // The letter stays the option's own (a-e always mean the same); it cannot be chosen.
            Some(why) => out.push_str(&format!(
                "{} {}\n",
                style.marker(i),
                ui.dim(&format!("{} (not available: {why})", opt.label))
            )),
            None => out.push_str(&format!("{} {}\n", style.marker(i), ui.bold(&opt.label))),
        }
        for note in &opt.notes {
            out.push_str(&format!("   - {note}\n"));
        }
        if !opt.notes.is_empty() && i + 1 < options.len() {
            out.push('\n');
        }
    }
    out
}

pub const APPROVAL_TITLE: &str = "⚠️ CRITICAL DECISION: Deploy to Production";
pub const APPROVAL_QUESTION: &str = "Do you approve deployment? (y/n):";

pub fn render_approval(ui: &Ui, title: &str, fields: &[(String, String)]) -> String {
    let rule = "━".repeat(39);
    let mut out = format!("{}\n{}\n", ui.yellow(&ui.bold(title)), ui.yellow(&rule));
    for (k, v) in fields {
        out.push_str(&format!("{}: {v}\n", ui.bold(k)));
    }
    out
}
