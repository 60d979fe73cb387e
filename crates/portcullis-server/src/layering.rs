//! The server's one direction (http → services → state and store), checked on the source:
//! nothing under `services/`, `workers/` or `state/`, nor `error.rs`, imports axum or reaches
//! into `crate::http`; nothing under `state/` reaches into the services or workers above it;
//! and the services import each other without a circle. A service that needs a status or a header would otherwise
//! grow one, and the statuses would drift again.

use std::collections::{BTreeMap, BTreeSet};
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

/// The service a source file belongs to: `services/roles/requests.rs` → `roles`.
fn service_of(services: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(services).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Which services each service names (`crate::services::NAME`), outside comments.
fn service_graph(services: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(services, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(from) = service_of(services, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let edges = graph.entry(from.clone()).or_default();
        for (_, code) in code_lines(&text) {
            for part in code.split("crate::services::").skip(1) {
                let to: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    edges.insert(to);
                }
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one (depth-first search with colours).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == v) {
            let mut cycle = path[i..].to_vec();
            cycle.push(v.to_owned());
            return Some(cycle);
        }
        if done.contains(v) {
            return None;
        }
        path.push(v.to_owned());
        for w in graph.get(v).into_iter().flatten() {
            if let Some(c) = visit(w, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(v.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for v in graph.keys() {
        if let Some(c) = visit(v, graph, &mut done, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Services depend on each other in one direction only: no circle of imports, so each can be
/// read (and tested) from the ones below it.
#[test]
fn services_import_each_other_without_a_circle() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let graph = service_graph(&services);
    assert!(graph.len() > 15, "the layout moved: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import circle among the services: {}", cycle.join(" → "));
    }
}

/// The circle check finds a circle when there is one.
#[test]
fn the_circle_check_sees_a_circle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    let cycle = find_cycle(&graph).expect("a circle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}
