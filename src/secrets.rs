//! Secret values are replaced before any text leaves the process: terminal, journal, log,
//! artifacts and notifications all pass through `Redactor::redact`.

use crate::config::Config;

pub const MASK: &str = "[REDACTED]";

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn from_config(config: &Config) -> Redactor {
        let mut r = Redactor::default();
        for v in config.secrets.values.values() {
            r.add(v);
        }
        for name in &config.secrets.env {
            if let Ok(v) = std::env::var(name) {
                r.add(&v);
            }
        }
        r
    }

    pub fn add(&mut self, secret: &str) {
        // Very short values would mask ordinary words and numbers everywhere.
        if secret.len() < 4 {
            return;
        }
        let mut forms = vec![secret.to_string()];
        // The journal is JSON: a secret with quotes or backslashes appears escaped there.
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"').to_string();
        if escaped != secret {
            forms.push(escaped);
        }
        for f in forms {
            if !self.secrets.contains(&f) {
                self.secrets.push(f);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_json_escaped_forms() {
        let mut r = Redactor::default();
        r.add("s3cr\"et");
        assert_eq!(r.redact("a s3cr\"et b"), format!("a {MASK} b"));
        assert_eq!(
            r.redact(r#"{"x":"s3cr\"et"}"#),
            format!(r#"{{"x":"{MASK}"}}"#)
        );
        r.add("ab");
        assert_eq!(r.redact("ab"), "ab");
    }
}
