//! The domain's import graph has no circles, and every module imports only from floors below its own.
//!
//! The floors are the table in `src/lib.rs`'s documentation, read from there, so the documented
//! order and the code cannot disagree. The graph is built from the source text: every `use` item
//! (`crate::`, `super::`, `self::` and child-module paths, braces included) and every `crate::a::b`
//! path written inline, resolved to the file that holds the module it names. Module files are
//! found by following `mod` declarations from `lib.rs` (`#[path]` included), so a test module
//! such as `secrets_tests.rs` counts as part of `secrets` and its imports count too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module of the crate: its path (`["verify", "run"]`) and the file that holds it.
#[derive(Debug, Clone)]
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Removes comments and the contents of string and char literals, keeping line breaks.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&b, i) {
            // raw string r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == '"' {
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    if b[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // '\n', '\u{..}', '\''
            let mut j = i + 2;
            while j < b.len() && b[j] != '\'' {
                j += 1;
            }
            if b.get(i + 2) == Some(&'\'') {
                j = i + 3;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `mod x;` declarations at the file's top level, with their `#[path]` if any.
fn declared_modules(code: &str, raw: &str) -> Vec<(String, Option<String>)> {
    let _ = code;
    let mut found = Vec::new();
    let mut path_attr: Option<String> = None;
    for line in raw.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("#[path = \"") {
            path_attr = rest.split('"').next().map(str::to_owned);
            continue;
        }
        let decl =
            t.strip_prefix("pub(crate) mod ").or_else(|| t.strip_prefix("pub mod ")).or_else(|| t.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
            if !line.starts_with(' ') {
                found.push((name.trim().to_owned(), path_attr.take()));
                continue;
            }
        }
        if !t.starts_with("#[") {
            path_attr = None;
        }
    }
    found
}

/// Every module file of the crate, from `lib.rs` down.
fn modules() -> Vec<Module> {
    let mut out = Vec::new();
    let mut todo = vec![Module { path: vec![], file: src().join("lib.rs") }];
    while let Some(m) = todo.pop() {
        let raw = std::fs::read_to_string(&m.file).unwrap_or_else(|e| panic!("{}: {e}", m.file.display()));
        let dir = m.file.parent().unwrap().to_path_buf();
        let name = m.file.file_name().unwrap().to_str().unwrap();
        // Where a file's child modules live: beside lib.rs and mod.rs, else in a folder of its name.
        let child_dir =
            if m.path.is_empty() || name == "mod.rs" { dir.clone() } else { dir.join(m.file.file_stem().unwrap()) };
        for (child, path_attr) in declared_modules(&strip(&raw), &raw) {
            let file = match path_attr {
                Some(p) => dir.join(p),
                None if child_dir.join(format!("{child}.rs")).exists() => child_dir.join(format!("{child}.rs")),
                None => child_dir.join(&child).join("mod.rs"),
            };
            let mut path = m.path.clone();
            path.push(child);
            todo.push(Module { path, file });
        }
        out.push(m);
    }
    out
}

/// The paths a `use` tree names, flattened: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn flatten(tree: &str) -> Vec<Vec<String>> {
    fn go(prefix: &[String], s: &str, out: &mut Vec<Vec<String>>) {
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        if let Some(open) = s.find('{') {
            let head: Vec<String> =
                s[..open].split("::").map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
            let inner = &s[open + 1..s.rfind('}').expect("balanced braces")];
            let mut path = prefix.to_vec();
            path.extend(head);
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&path, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            go(&path, &inner[start..], out);
        } else {
            let s = s.split(" as ").next().unwrap();
            let mut path = prefix.to_vec();
            path.extend(s.split("::").map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned));
            out.push(path);
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// A path as written, and the inline module (`mod tests { … }`) it was written in.
struct Mention {
    path: Vec<String>,
    inline: Vec<String>,
}

/// The `use` items and inline `crate::` paths of a file's code.
fn mentions(code: &str) -> Vec<Mention> {
    let chars: Vec<char> = code.chars().collect();
    let text: String = chars.iter().collect();
    let mut out = Vec::new();
    // Inline modules: (name, brace depth at which it closes).
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let c = bytes[i] as char;
        let at_word = i == 0 || !is_ident(bytes[i - 1] as char);
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            depth -= 1;
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if at_word && text[i..].starts_with("mod ") {
            let rest = &text[i + 4..];
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            let after = rest[name.len()..].trim_start();
            if after.starts_with('{') {
                inline.push((name, depth));
            }
            i += 4;
            continue;
        }
        if at_word && text[i..].starts_with("use ") {
            let end = text[i..].find(';').map(|e| i + e).expect("a use item ends with ;");
            for path in flatten(&text[i + 4..end]) {
                out.push(Mention { path, inline: inline.iter().map(|(n, _)| n.clone()).collect() });
            }
            i = end + 1;
            continue;
        }
        if at_word && text[i..].starts_with("crate::") {
            let path: Vec<String> = text[i..]
                .split(|c: char| !(is_ident(c) || c == ':'))
                .next()
                .unwrap()
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            let len = path.iter().map(|p| p.len() + 2).sum::<usize>();
            out.push(Mention { path, inline: inline.iter().map(|(n, _)| n.clone()).collect() });
            i += len.max(1);
            continue;
        }
        i += 1;
    }
    out
}

struct Graph {
    /// File (relative to `src/`) -> the files it imports from.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// The same without what test code imports (`mod tests`, inline or in its own file): the
    /// floors bind the shipped code; a test may reach up to drive what it tests.
    shipped: BTreeMap<String, BTreeSet<String>>,
    /// File -> its top-level module (`verify/run.rs` -> `verify`); `lib.rs` -> "".
    top: BTreeMap<String, String>,
}

fn graph() -> Graph {
    let mods = modules();
    let root = src();
    let rel = |f: &Path| f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
    let by_path: BTreeMap<Vec<String>, String> = mods.iter().map(|m| (m.path.clone(), rel(&m.file))).collect();
    // Items lib.rs re-exports (`pub use error::Error;`): `crate::Error` means `crate::error::Error`.
    let lib = strip(&std::fs::read_to_string(root.join("lib.rs")).unwrap());
    let mut root_items: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in mentions(&lib) {
        if let Some(last) = m.path.last() {
            root_items.insert(last.clone(), m.path.clone());
        }
    }
    // The file holding the longest module prefix of an absolute path.
    let resolve =
        |abs: &[String]| -> Option<String> { (1..=abs.len()).rev().find_map(|n| by_path.get(&abs[..n]).cloned()) };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut shipped: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut top = BTreeMap::new();
    for m in &mods {
        let file = rel(&m.file);
        edges.entry(file.clone()).or_default();
        top.insert(file.clone(), m.path.first().cloned().unwrap_or_default());
        let code = strip(&std::fs::read_to_string(&m.file).unwrap());
        let children: BTreeSet<String> =
            declared_modules(&code, &std::fs::read_to_string(&m.file).unwrap()).into_iter().map(|(n, _)| n).collect();
        let test_file = m.path.last().is_some_and(|p| p == "tests");
        shipped.entry(file.clone()).or_default();
        for mention in mentions(&code) {
            let test = test_file || mention.inline.iter().any(|p| p == "tests");
            let mut here: Vec<String> = m.path.clone();
            here.extend(mention.inline.iter().cloned());
            let p = &mention.path;
            let abs: Vec<String> = match p.first().map(String::as_str) {
                Some("crate") if p.len() == 2 && root_items.contains_key(&p[1]) => root_items[&p[1]].clone(),
                Some("crate") => p[1..].to_vec(),
                Some("super") => {
                    let mut base = here.clone();
                    let mut rest = &p[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    base
                }
                Some("self") => {
                    let mut base = here.clone();
                    base.extend(p[1..].iter().cloned());
                    base
                }
                Some(first) if mention.inline.is_empty() && children.contains(first) => {
                    let mut base = m.path.clone();
                    base.extend(p.iter().cloned());
                    base
                }
                _ => continue, // an external crate or std
            };
            if let Some(target) = resolve(&abs) {
                if target != file && target != "lib.rs" {
                    if !test {
                        shipped.entry(file.clone()).or_default().insert(target.clone());
                    }
                    edges.entry(file.clone()).or_default().insert(target);
                }
            }
        }
    }
    Graph { edges, shipped, top }
}

/// The floors documented in `lib.rs`: rows `//! | <n> | `a`, `b` |`.
fn floors() -> BTreeMap<String, u32> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else { continue };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(floor) = cells[0].parse::<u32>() else { continue };
        for module in cells[1].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(out.insert(module.to_owned(), floor).is_none(), "`{module}` is on two floors in lib.rs");
        }
    }
    assert!(!out.is_empty(), "lib.rs documents no floors");
    out
}

/// One cycle of the graph, as a list of files ending where it began; None when there is none.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        mark: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        mark.insert(n.to_owned(), Mark::Open);
        stack.push(n.to_owned());
        for next in edges.get(n).into_iter().flatten() {
            match mark.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, edges, mark, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        mark.insert(n.to_owned(), Mark::Done);
        None
    }
    let mut mark = BTreeMap::new();
    for n in edges.keys() {
        if mark.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(n, edges, &mut mark, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_domain_has_no_import_circle() {
    let g = graph();
    assert!(g.edges.len() > 20, "the walk found the crate's files: {:?}", g.edges.keys());
    if let Some(cycle) = find_cycle(&g.edges) {
        panic!("import circle in components/domain/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn every_module_imports_only_from_lower_floors() {
    let g = graph();
    let floors = floors();
    let mut problems = Vec::new();
    for module in g.top.values().filter(|m| !m.is_empty()).collect::<BTreeSet<_>>() {
        if !floors.contains_key(module.as_str()) {
            problems.push(format!("`{module}` is on no floor: add it to the table in lib.rs"));
        }
    }
    for module in floors.keys() {
        if !g.top.values().any(|m| m == module) {
            problems.push(format!("lib.rs puts `{module}` on a floor, but there is no such module"));
        }
    }
    for (file, targets) in &g.shipped {
        let from = &g.top[file];
        for target in targets {
            let to = &g.top[target];
            if from == to || from.is_empty() {
                continue;
            }
            if let (Some(a), Some(b)) = (floors.get(from), floors.get(to)) {
                if b >= a {
                    problems.push(format!("{file} (`{from}`, floor {a}) imports {target} (`{to}`, floor {b})"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// The checker itself: a test that cannot fail proves nothing.

#[test]
fn a_circle_is_found_and_named() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("error.rs".into()).or_default().insert("verify/mod.rs".into());
    edges.entry("verify/mod.rs".into()).or_default().insert("clock.rs".into());
    edges.entry("verify/mod.rs".into()).or_default().insert("error.rs".into());
    edges.entry("clock.rs".into()).or_default();
    let cycle = find_cycle(&edges).expect("a circle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"error.rs".to_owned()) && cycle.contains(&"verify/mod.rs".to_owned()), "{cycle:?}");
    edges.get_mut("verify/mod.rs").unwrap().remove("error.rs");
    assert_eq!(find_cycle(&edges), None);
}

#[test]
fn use_trees_and_inline_paths_are_read() {
    let code = strip(
        "use crate::{clock::Clock, verify::{outcome::LastCheck, Outbound as O}};\n\
         // use crate::commented::Out;\n\
         fn f() { let s = \"crate::in_a_string\"; crate::http::finish(); }\n\
         mod tests { use super::*; }\n",
    );
    let found: Vec<(String, Vec<String>)> =
        mentions(&code).into_iter().map(|m| (m.path.join("::"), m.inline)).collect();
    assert_eq!(
        found,
        vec![
            ("crate::clock::Clock".to_owned(), vec![]),
            ("crate::verify::outcome::LastCheck".to_owned(), vec![]),
            ("crate::verify::Outbound".to_owned(), vec![]),
            ("crate::http::finish".to_owned(), vec![]),
            ("super::*".to_owned(), vec!["tests".to_owned()]),
        ]
    );
}

#[test]
fn the_graph_sees_the_edges_that_made_the_old_circles() {
    // If the parser stopped seeing imports, the no-circle test would pass for nothing.
    let g = graph();
    let has = |from: &str, to: &str| g.edges.get(from).is_some_and(|t| t.contains(to));
    assert!(has("error.rs", "check.rs"), "error.rs -> check.rs (CredentialsRejected's RegistryCheck)");
    assert!(has("audit.rs", "request_id.rs"), "audit.rs -> request_id.rs");
    assert!(has("http.rs", "audit.rs"), "http.rs -> audit.rs (Outcome's Event)");
    assert!(has("verify/run.rs", "verify/mod.rs"), "super:: paths resolve to the parent");
    assert!(has("verify/mod.rs", "verify/handshake.rs"), "child paths (`use handshake::Session`)");
    assert!(has("name.rs", "error.rs"), "`crate::Error` resolves through lib.rs's re-export");
    assert!(has("secrets_tests.rs", "export.rs"), "#[path] test modules are part of the graph");
    let shipped = |from: &str, to: &str| g.shipped.get(from).is_some_and(|t| t.contains(to));
    assert!(!shipped("secrets_tests.rs", "export.rs") && shipped("export.rs", "secrets.rs"), "test code is told apart");
    assert!(has("routes.rs", "verify/mod.rs") && !shipped("routes.rs", "verify/mod.rs"), "inline `mod tests` too");
}
