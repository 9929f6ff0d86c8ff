//! What a person sees. Colour is a value decided once (auto / always / never, NO_COLOR honoured)
//! and passed down; nothing below asks the terminal for itself.

pub mod dashboard;
pub mod menu;

use std::io::{IsTerminal, Write};

use owo_colors::OwoColorize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

#[derive(Debug, Clone, Default)]
pub struct Ui {
    pub color: bool,
    pub format: LogFormat,
    pub verbosity: Verbosity,
    /// Whether stdout is a terminal: the monitor redraws in place only there.
    pub stdout_tty: bool,
}

impl Ui {
    pub fn new(choice: ColorChoice, format: LogFormat, verbosity: Verbosity) -> Ui {
        let stdout_tty = std::io::stdout().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stdout_tty
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
            }
        };
        Ui {
            color,
            format,
            verbosity,
            stdout_tty,
        }
    }

    pub fn plain() -> Ui {
        Ui::default()
    }

    fn paint(&self, s: &str, f: impl Fn(&str) -> String) -> String {
        if self.color {
            f(s)
        } else {
            s.to_string()
        }
    }
    pub fn red_bold(&self, s: &str) -> String {
        self.paint(s, |s| s.red().bold().to_string())
    }
    pub fn red(&self, s: &str) -> String {
        self.paint(s, |s| s.red().to_string())
    }
    pub fn green(&self, s: &str) -> String {
        self.paint(s, |s| s.green().to_string())
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint(s, |s| s.yellow().to_string())
    }
    pub fn blue(&self, s: &str) -> String {
        self.paint(s, |s| s.blue().bold().to_string())
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint(s, |s| s.cyan().to_string())
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint(s, |s| s.bold().to_string())
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint(s, |s| s.dimmed().to_string())
    }

    fn text(&self) -> bool {
        self.format == LogFormat::Text
    }

    /// A line of the run's narrative on stdout (suppressed by -q).
    pub fn say(&self, line: &str) {
        if self.text() && self.verbosity != Verbosity::Quiet {
            println_out(line);
        }
    }

    /// A line that matters even with -q: questions, failures, the end of the run.
    pub fn shout(&self, line: &str) {
        if self.text() {
            println_out(line);
        }
    }

    pub fn verbose(&self, line: &str) {
        if self.text() && self.verbosity == Verbosity::Verbose {
            println_out(&self.dim(line));
        }
    }

    pub fn warn(&self, msg: &str) {
        self.error_text(&format!("{}: {msg}\n", self.yellow("warning")));
    }

    pub fn error_text(&self, text: &str) {
        if muted() {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    pub fn banner(&self, title: &str) {
        let rule = "━".repeat(60usize.saturating_sub(title.chars().count() + 4).max(4));
        self.say("");
        self.say(&self.blue(&format!("━━ {title} {rule}")));
    }

    /// One line of a child's output, prefixed and coloured by stream.
    pub fn output_line(&self, stderr: bool, line: &str) {
        if !self.text() || self.verbosity == Verbosity::Quiet {
            return;
        }
        if stderr {
            println_out(&format!("  {} {}", self.yellow("!"), line));
        } else {
            println_out(&format!("  {} {}", self.dim("│"), line));
        }
    }
}

fn println_out(line: &str) {
    write_out(&format!("{line}\n"));
}

thread_local! {
    /// Output of this thread held back: a rehearsed run (`runbook test`) is shown by its
    /// result, and its log, not line by line.
    static MUTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Hold back (or let through again) everything this thread prints.
pub fn mute(on: bool) {
    MUTED.with(|m| m.set(on));
}

fn muted() -> bool {
    MUTED.with(|m| m.get())
}

/// Set once stdout is found closed: nothing more is tried there.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Write `text` to stdout. A closed pipe (`runbook ... | head -1`) ends printing quietly, as
/// ripgrep and fd do: never a panic, and the work the command does (files, the journal, the
/// run) goes on and decides the exit code. SIGPIPE stays ignored, so a run piped into `tee`
/// that is killed is not killed mid-change.
pub fn write_out(text: &str) {
    use std::sync::atomic::Ordering;
    if muted() {
        return;
    }
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Print a prompt without a newline and flush it, so the cursor waits after it.
pub fn print_prompt(text: &str) {
    write_out(text);
}

pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
