//! The server: the tokio environment around the node shell (crate::shell).
//!
//! Start-up (core.rs) prepares the files and starts everything; the event loop (event_loop.rs)
//! owns the node shell, which owns the consensus machine and the store; the persister owns the
//! TLog writer; connection tasks speak the client protocol; peer links carry node-to-node
//! messages.

pub mod auth;
pub mod blocking;
pub mod catchup;
pub mod collapse;
pub mod conn;
pub mod core;
pub mod env;
pub mod error;
pub mod event_loop;
pub mod fdlimit;
pub mod frame;
pub mod host;
pub mod limits;
pub mod loglimit;
pub mod peers;
pub mod persist;
pub mod rebuild;
pub mod shared;
pub mod startup;
pub mod storage;

pub use error::ServeError;

#[cfg(test)]
mod tests {
    //! The server's files by responsibility (issue 13): no two of them need each other, directly
    //! or through others. Read from the sources: each file's `super::...` and
    //! `crate::server::...` paths outside its tests name the files it needs.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The server's modules a source text names, by `super::`, `super::super::` (from a file
    /// one level down) or `crate::server::`, grouped imports (`super::{a, b::C}`) included.
    fn named(text: &str, prefixes: &[&str]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for prefix in prefixes {
            for (at, _) in text.match_indices(prefix) {
                let rest = &text[at + prefix.len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    // Top-level items of the group, up to its closing brace.
                    let (mut depth, mut item) = (0, String::new());
                    for c in group.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                out.insert(first_segment(&item));
                                item.clear();
                                continue;
                            }
                            _ => {}
                        }
                        item.push(c);
                    }
                    out.insert(first_segment(&item));
                } else {
                    out.insert(first_segment(rest));
                }
            }
        }
        out.retain(|m| !m.is_empty() && m != "super");
        out
    }

    fn first_segment(path: &str) -> String {
        path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
    }

    /// A file's text without its tests.
    fn without_tests(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    }

    #[test]
    fn the_servers_files_have_no_import_cycles() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
        let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if name == "mod" {
                continue;
            }
            let mut uses = BTreeSet::new();
            if path.is_dir() {
                // A module of several files: `super::` in its mod.rs and `super::super::` in
                // the files below name the server's modules.
                for file in std::fs::read_dir(&path).unwrap() {
                    let file = file.unwrap().path();
                    let text = without_tests(&file);
                    let up = if file.ends_with("mod.rs") { "super::" } else { "super::super::" };
                    uses.extend(named(&text, &[up, "crate::server::"]));
                }
            } else {
                uses = named(&without_tests(&path), &["super::", "crate::server::"]);
            }
            uses.remove(&name);
            needs.insert(name, uses);
        }
        assert!(needs.len() >= 15, "the server's files were not found: {needs:?}");
        // Depth-first search; a module met again on the current path closes a cycle.
        fn visit(
            m: &str,
            needs: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) {
            if let Some(at) = path.iter().position(|p| p == m) {
                panic!(
                    "import cycle between the server's files: {} -> {m}",
                    path[at..].join(" -> ")
                );
            }
            if !done.insert(m.to_string()) {
                return;
            }
            path.push(m.to_string());
            for next in needs.get(m).into_iter().flatten() {
                if needs.contains_key(next) {
                    visit(next, needs, path, done);
                }
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        for m in needs.keys() {
            visit(m, &needs, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn a_cycle_is_seen_through_grouped_imports() {
        let text = "use super::{conn::Conn, shared::{A, B}};\nuse crate::server::peers;";
        let got = named(text, &["super::", "crate::server::"]);
        assert_eq!(got, ["conn", "peers", "shared"].map(String::from).into_iter().collect());
    }
}
