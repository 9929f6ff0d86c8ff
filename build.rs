//! Embeds runbooks/*.rhai and stdlib/*.rhai in the binary, whatever those folders hold.

use std::fmt::Write as _;
use std::path::Path;

fn list(dir: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "rhai"));
    files.sort();
    let mut out = String::from("&[\n");
    for p in files {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            p.display().to_string()
        );
    }
    out.push(']');
    out
}

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let code = format!(
        "/// Shipped runbooks: (file name, text).\npub static RUNBOOKS: &[(&str, &str)] = {};\n\
         /// Shipped stdlib modules: (file name, text).\npub static STDLIB: &[(&str, &str)] = {};\n",
        list("runbooks"),
        list("stdlib")
    );
    std::fs::write(Path::new(&out).join("embedded.rs"), code).expect("write embedded.rs");
}
