//! Finding runbooks: a path as given, else a name in ./runbooks, the team's `runbook_dirs`, and
//! the runbooks shipped in the binary, in that order (a local file shadows a shipped one).

use std::path::{Path, PathBuf};

use crate::embedded;
use crate::error::Error;

#[derive(Debug, Clone)]
pub enum Origin {
    Path,
    Local,
    Team,
    Shipped,
}

#[derive(Debug, Clone)]
pub struct Found {
    /// The name errors and artifacts show: a path, or `<shipped>/runbooks/x.rhai`.
    pub shown: String,
    pub text: String,
    pub origin: Origin,
    /// The file, for runbooks on disk (relative imports resolve beside it).
    pub path: Option<PathBuf>,
}

fn file_name(name: &str) -> String {
    if name.ends_with(".rhai") {
        name.to_string()
    } else {
        format!("{name}.rhai")
    }
}

fn search_dirs(team_dirs: &[PathBuf]) -> Vec<(PathBuf, Origin)> {
    let mut dirs = vec![(PathBuf::from("runbooks"), Origin::Local)];
    dirs.extend(team_dirs.iter().map(|d| (d.clone(), Origin::Team)));
    dirs
}

pub fn find(name: &str, team_dirs: &[PathBuf]) -> Result<Found, Error> {
    let as_given = Path::new(name);
    if as_given.is_file() {
        return read(as_given, Origin::Path);
    }
    if name.contains('/') {
        return Err(Error::RunbookNotFound {
            name: name.to_string(),
            searched: vec![format!("{name} (no such file)")],
            suggestion: None,
        });
    }
    let file = file_name(name);
    let mut searched = Vec::new();
    for (dir, origin) in search_dirs(team_dirs) {
        let p = dir.join(&file);
        if p.is_file() {
            return read(&p, origin);
        }
        searched.push(format!("{}/", dir.display()));
    }
    if let Some((f, text)) = embedded::RUNBOOKS.iter().find(|(f, _)| *f == file) {
        return Ok(Found {
            shown: crate::modules::shipped_name("runbooks", f),
            text: text.to_string(),
            origin: Origin::Shipped,
            path: None,
        });
    }
    searched.push("the runbooks shipped in this binary".into());
    let names: Vec<String> = list(team_dirs).into_iter().map(|e| e.name).collect();
    Err(Error::RunbookNotFound {
        name: name.to_string(),
        searched,
        suggestion: crate::error::did_you_mean(
            name.trim_end_matches(".rhai"),
            names.iter().map(String::as_str),
        ),
    })
}

fn read(p: &Path, origin: Origin) -> Result<Found, Error> {
    let text = crate::error::read_text("runbook", p)?;
    let shown = p.strip_prefix("./").unwrap_or(p).display().to_string();
    Ok(Found {
        shown,
        text,
        origin,
        path: Some(p.to_path_buf()),
    })
}

/// The first lines of a script's leading `//` comment, as one line.
pub fn description(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(c) = t.strip_prefix("//") {
            let c = c.trim_start_matches(['/', '!']).trim();
            if c.is_empty() {
                if !out.is_empty() {
                    break;
                }
                continue;
            }
            out.push(c.to_string());
        } else if t.is_empty() && out.is_empty() {
            continue;
        } else {
            break;
        }
    }
    out.join(" ")
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub source: String,
    pub description: String,
    pub shadows: bool,
}

/// Every runbook found, first the ones that win; a shipped runbook shadowed by a local one is
/// listed with `shadows` set on the local entry.
pub fn list(team_dirs: &[PathBuf]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for (dir, _) in search_dirs(team_dirs) {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for p in files {
            if p.extension().is_none_or(|e| e != "rhai") {
                continue;
            }
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if out.iter().any(|e| e.name == name) {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            out.push(Entry {
                name,
                source: p.display().to_string(),
                description: description(&text),
                shadows: false,
            });
        }
    }
    for (f, text) in embedded::RUNBOOKS {
        let name = f.trim_end_matches(".rhai").to_string();
        if let Some(e) = out.iter_mut().find(|e| e.name == name) {
            e.shadows = true;
            continue;
        }
        out.push(Entry {
            name,
            source: "shipped".into(),
            description: description(text),
            shadows: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn description_is_the_leading_comment() {
        let text = "// Deploy a feature.\n// With checks.\n\nlet x = 1; // not this\n";
        assert_eq!(super::description(text), "Deploy a feature. With checks.");
        assert_eq!(super::description("let x = 1;"), "");
    }
}
