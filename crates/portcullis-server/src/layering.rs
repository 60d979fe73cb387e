//! The server's one direction (http → services → state and store), checked on the source:
//! nothing under `services/`, `workers/` or `state/`, nor `error.rs`, imports axum or reaches
//! into `crate::http`; and nothing under `state/` reaches into the services or workers above it. A service that needs a status or a header would otherwise
//! grow one, and the statuses would drift again.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc comments may name the HTTP layer).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or_default()))
}

fn offences(path: &Path) -> Vec<String> {
    offences_of(path, &["axum", "crate::http", "super::http"])
}

fn offences_of(path: &Path, needles: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    code_lines(&text)
        .filter(|(_, code)| needles.iter().any(|n| code.contains(n)))
        .map(|(n, code)| format!("{}:{n}: {}", path.display(), code.trim()))
        .collect()
}

#[test]
fn nothing_below_http_imports_axum_or_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("services"), &mut files);
    rust_files(&src.join("workers"), &mut files);
    rust_files(&src.join("state"), &mut files);
    files.push(src.join("error.rs"));
    assert!(files.len() > 10, "the layout moved: {files:?}");
    let found: Vec<String> = files.iter().flat_map(|f| offences(f)).collect();
    assert!(
        found.is_empty(),
        "below http/ these import the HTTP layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_state_imports_nothing_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("state"), &mut files);
    assert!(files.len() >= 4, "the layout moved: {files:?}");
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| offences_of(f, &["crate::services", "crate::workers", "crate::http"]))
        .collect();
    assert!(
        found.is_empty(),
        "state/ must import only core, store and itself:\n{}",
        found.join("\n")
    );
}

/// The check itself finds what it looks for (a test that cannot fail hides the gap).
#[test]
fn the_check_sees_an_axum_import_and_ignores_comments() {
    let dir = std::env::temp_dir().join(format!("portcullis-layering-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.rs");
    std::fs::write(&bad, "//! see crate::http\nuse axum::Json; // axum\n").expect("write");
    let found = offences(&bad);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with(":2: use axum::Json;"), "{found:?}");
}
