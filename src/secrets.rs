//! Secret values are replaced before any text leaves the process: terminal, journal, log,
//! artifacts and notifications all pass through `Redactor::redact`.

use crate::config::Config;

pub const MASK: &str = "[REDACTED]";

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
    /// (name, value) of each named secret (`secrets.values`, `secrets.env`), longest value first:
    /// an undo keeps the name and is given the value when it runs.
    named: Vec<(String, String)>,
    /// Names of secrets too short to redact.
    short: Vec<String>,
}

/// How an undo refers to a secret: by name, never by value.
const REF_OPEN: &str = "{{secret:";
const REF_CLOSE: &str = "}}";

impl Redactor {
    pub fn from_config(config: &Config) -> Redactor {
        let mut r = Redactor::default();
        for (name, v) in &config.secrets.values {
            r.add_named(name, v);
        }
        for name in &config.secrets.env {
            if let Ok(v) = std::env::var(name) {
                r.add_named(name, &v);
            }
        }
        r
    }

    /// Names of the secrets too short to be redacted (they would mask ordinary text).
    pub fn too_short(&self) -> &[String] {
        &self.short
    }

    fn add_named(&mut self, name: &str, secret: &str) {
        if !secret.is_empty() && secret.trim().len() < 4 {
            self.short.push(name.to_string());
        }
        self.add(secret);
        if secret.len() >= 4 {
            self.named.push((name.to_string(), secret.to_string()));
            self.named.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    /// The names of the secrets this process has.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.iter().map(|(n, _)| n.as_str())
    }

    /// `text` with each named secret's value replaced by a reference to its name.
    pub fn refer(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.named {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("{REF_OPEN}{name}{REF_CLOSE}"));
            }
        }
        out
    }

    /// `text` with each secret reference replaced by the secret's value; the name of the first
    /// secret this process does not have is the error.
    pub fn resolve(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(REF_OPEN) {
            let after = &rest[i + REF_OPEN.len()..];
            let Some(j) = after.find(REF_CLOSE) else {
                break;
            };
            let name = &after[..j];
            let value = self
                .named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| name.to_string())?;
            out.push_str(&rest[..i]);
            out.push_str(value);
            rest = &after[j + REF_CLOSE.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn add(&mut self, secret: &str) {
        // Very short values would mask ordinary words and numbers everywhere.
        if secret.len() < 4 {
            return;
        }
        let mut forms = vec![secret.to_string()];
        // Output reaches the terminal and the log a line at a time: a secret of several lines
        // is masked line by line too.
        if secret.contains('\n') {
            forms.extend(
                secret
                    .lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| l.trim().len() >= 4)
                    .map(str::to_string),
            );
        }
        // The journal is JSON: a secret with quotes, backslashes or newlines appears escaped there.
        let mut escaped_forms = Vec::new();
        for f in &forms {
            let e = serde_json::to_string(f).unwrap_or_default();
            let e = e.trim_matches('"').to_string();
            if e != *f {
                escaped_forms.push(e);
            }
        }
        forms.extend(escaped_forms);
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

    #[test]
    fn secrets_are_referred_to_by_name_and_resolved_back() {
        let mut r = Redactor::default();
        r.add_named("api", "tok-123456");
        let line = r.refer("curl -H 'x: tok-123456' tok-123456");
        assert_eq!(line, "curl -H 'x: {{secret:api}}' {{secret:api}}");
        assert_eq!(
            r.resolve(&line).unwrap(),
            "curl -H 'x: tok-123456' tok-123456"
        );
        assert_eq!(r.resolve("a {{secret:gone}} b"), Err("gone".to_string()));
        assert_eq!(r.resolve("no {{secret: end").unwrap(), "no {{secret: end");
    }
}
