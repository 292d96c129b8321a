//! The documentation cannot rot: `README.md` and `docs/*.md` are read as GitHub renders them, and
//! the test fails on
//! - a relative link or image whose file does not exist, or whose `#anchor` names no heading of
//!   the target page (GitHub's slugs);
//! - a command in a shell code block (or an inline `cargo …` span) that names a cargo package
//!   (`-p X`), a binary (`--bin`, or `cargo run -p X` of a package without one), a bench, a test
//!   target, a subcommand or `--flag` of our own tools (devauth, testhost, the figures command: read
//!   from their clap definitions), a Spin variable (`SPIN_VARIABLE_X`, against spin.toml) or an
//!   environment variable (`NAME=value cmd`, `export NAME=`) that does not exist in the repository;
//! - a figures page older than the benches it reports (see `e2e::figures`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use e2e::figures;
use e2e::repo_root;

fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

// ---------------------------------------------------------------- Markdown, as GitHub reads it

/// A fenced code block: its info string and its lines.
struct Block {
    info: String,
    text: String,
}

/// The page's prose (code blocks blanked out, line count kept) and its fenced code blocks.
fn split(markdown: &str) -> (String, Vec<Block>) {
    let mut prose = String::new();
    let mut blocks = Vec::new();
    let mut fence: Option<(String, Block)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut fence {
            Some((marker, block)) => {
                if trimmed.starts_with(marker.as_str()) && trimmed.trim_start_matches(marker.as_str()).trim().is_empty()
                {
                    let (_, block) = fence.take().unwrap();
                    blocks.push(block);
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
                prose.push('\n');
            }
            None => {
                let marker: String = trimmed.chars().take_while(|c| *c == '`' || *c == '~').collect();
                if marker.len() >= 3 && marker.chars().all(|c| c == marker.chars().next().unwrap()) {
                    let info = trimmed[marker.len()..].trim().to_owned();
                    fence = Some((marker, Block { info, text: String::new() }));
                    prose.push('\n');
                } else {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
        }
    }
    (prose, blocks)
}

/// Inline code spans of prose, and the prose with them blanked out.
fn code_spans(prose: &str) -> (Vec<String>, String) {
    let mut spans = Vec::new();
    let mut rest = String::with_capacity(prose.len());
    let chars: Vec<char> = prose.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let ticks = chars[i..].iter().take_while(|c| **c == '`').count();
            let open = i + ticks;
            let mut j = open;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let n = chars[j..].iter().take_while(|c| **c == '`').count();
                    if n == ticks {
                        close = Some(j);
                        break;
                    }
                    j += n;
                } else {
                    j += 1;
                }
            }
            if let Some(close) = close {
                spans.push(chars[open..close].iter().collect::<String>().trim().to_owned());
                rest.push_str(&" ".repeat(close + ticks - i));
                i = close + ticks;
                continue;
            }
        }
        rest.push(chars[i]);
        i += 1;
    }
    (spans, rest)
}

/// `[text](target)` and `![alt](target)` targets, and `<https://…>` autolinks, of prose without code.
fn links(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = prose;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        // Targets may hold balanced parentheses; they end at the first unbalanced `)` or a space.
        let mut depth = 0;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = j;
                    break;
                }
                ')' => depth -= 1,
                ' ' | '\n' => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        out.push(after[..end].trim_matches(['<', '>']).to_owned());
        rest = &after[end..];
    }
    out
}

/// GitHub's anchor of a heading: the rendered text lower-cased, everything but letters, digits,
/// spaces, `-` and `_` dropped, spaces made `-`; a repeated slug gets `-1`, `-2`, ….
fn slug(heading: &str) -> String {
    // Rendered text: `[text](url)` -> text, code and emphasis markers gone.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(i) = rest.find('[') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(paren)) if close < paren => {
                text.push_str(&after[..close]);
                rest = &after[paren + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let (prose, _) = split(markdown);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(line[hashes..].trim());
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
            *n += 1;
        }
    }
    out
}

fn check_links(root: &Path, page: &Path, problems: &mut Vec<String>) {
    let text = std::fs::read_to_string(page).unwrap();
    let (prose, _) = split(&text);
    let (_, prose) = code_spans(&prose);
    for target in links(&prose) {
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() { page.to_path_buf() } else { page.parent().unwrap().join(path) };
        let Ok(file) = file.canonicalize() else {
            problems.push(format!("{}: link to {target}: no such file", rel(root, page)));
            continue;
        };
        if !file.starts_with(root) {
            problems.push(format!("{}: link to {target} leaves the repository", rel(root, page)));
            continue;
        }
        if let Some(anchor) = anchor {
            let known = if file.extension().is_some_and(|e| e == "md") {
                anchors(&std::fs::read_to_string(&file).unwrap())
            } else {
                BTreeSet::new()
            };
            if !known.contains(anchor) {
                problems.push(format!(
                    "{}: link to {target}: no heading #{anchor} in {}",
                    rel(root, page),
                    rel(root, &file)
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- what the repository has

struct Repository {
    /// Package name -> its directory.
    packages: BTreeMap<String, PathBuf>,
    /// Package name -> its binaries.
    bins: BTreeMap<String, BTreeSet<String>>,
    benches: BTreeSet<String>,
    /// Integration test targets, all packages.
    tests: BTreeSet<String>,
    spin_variables: BTreeSet<String>,
    /// Subcommands and flags of our own command-line tools, by package.
    cli: BTreeMap<String, BTreeSet<String>>,
    /// The text of the sources an environment variable may be read in.
    sources: String,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !["target", "node_modules", ".git"].contains(&name.as_ref()) && !name.starts_with(".ci/venv") {
                files_under(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Long flags (`--x`), short ones and subcommands of a clap derive in `main.rs`.
fn clap_words(source: &str) -> BTreeSet<String> {
    let mut words: BTreeSet<String> = ["--help", "-h", "--version", "-V"].map(str::to_owned).into();
    let mut pending: Option<String> = None;
    let mut in_subcommands = false;
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with("#[derive(Subcommand)]") {
            in_subcommands = true;
        }
        if let Some(attr) = t.strip_prefix("#[arg(") {
            for part in attr.trim_end_matches(")]").split(',') {
                let part = part.trim();
                let value = |p: &str| p.split('=').nth(1).map(|v| v.trim().trim_matches(['"', '\'']).to_owned());
                if part == "long" {
                    pending = Some(String::new());
                } else if part.starts_with("long =")
                    || part.starts_with("visible_alias =")
                    || part.starts_with("alias =")
                {
                    words.insert(format!("--{}", value(part).unwrap()));
                } else if part.starts_with("short =") {
                    words.insert(format!("-{}", value(part).unwrap()));
                }
            }
            continue;
        }
        if t.starts_with("#[") || t.starts_with("///") {
            continue;
        }
        if let Some(field) = t.split(':').next().filter(|_| t.contains(':') && !t.contains("::")) {
            let field = field.trim().trim_start_matches("pub ").trim();
            if pending.take().is_some() && field.chars().all(|c| c.is_alphanumeric() || c == '_') {
                words.insert(format!("--{}", field.replace('_', "-")));
            }
        }
        if in_subcommands {
            // `Name,`, `Name {` or `Name(Args),` at the enum's top level: a subcommand, in kebab case.
            let name: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
            if name.chars().next().is_some_and(char::is_uppercase)
                && (t[name.len()..].starts_with([',', ' ', '(', '{']))
            {
                let mut kebab = String::new();
                for (i, c) in name.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        kebab.push('-');
                    }
                    kebab.push(c.to_ascii_lowercase());
                }
                words.insert(kebab);
            }
            if t == "}" && line.starts_with('}') {
                in_subcommands = false;
            }
        }
    }
    words
}

fn repository(root: &Path) -> Repository {
    let workspace: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let excluded: Vec<String> = workspace["workspace"]
        .get("exclude")
        .and_then(|e| e.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut packages = BTreeMap::new();
    let mut bins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut benches = BTreeSet::new();
    let mut tests = BTreeSet::new();
    for group in ["components", "tests"] {
        for entry in std::fs::read_dir(root.join(group)).unwrap().flatten() {
            let dir = entry.path();
            let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
            if excluded.iter().any(|e| root.join(e) == dir) {
                continue;
            }
            let manifest: toml::Value = toml::from_str(&text).unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            let mut own = BTreeSet::new();
            if dir.join("src/main.rs").exists() {
                own.insert(name.clone());
            }
            for entry in std::fs::read_dir(dir.join("src/bin")).into_iter().flatten().flatten() {
                if let Some(stem) = entry.path().file_stem() {
                    own.insert(stem.to_string_lossy().into_owned());
                }
            }
            for (kind, set) in [("bin", &mut own), ("bench", &mut benches), ("test", &mut tests)] {
                for target in manifest.get(kind).and_then(|t| t.as_array()).into_iter().flatten() {
                    if let Some(n) = target.get("name").and_then(|n| n.as_str()) {
                        set.insert(n.to_owned());
                    }
                }
            }
            for (folder, set) in [("benches", &mut benches), ("tests", &mut tests)] {
                for entry in std::fs::read_dir(dir.join(folder)).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "rs") {
                        set.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
                    }
                }
            }
            bins.insert(name.clone(), own);
            packages.insert(name, dir);
        }
    }
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("spin.toml")).unwrap()).unwrap();
    let spin_variables = manifest["variables"].as_table().unwrap().keys().cloned().collect();
    let mut cli = BTreeMap::new();
    for package in ["devauth", "testhost"] {
        let main = std::fs::read_to_string(packages[package].join("src/main.rs")).unwrap();
        cli.insert(package.to_owned(), clap_words(&main));
    }
    let figures_bin = std::fs::read_to_string(root.join("tests/e2e/src/bin/figures.rs")).unwrap();
    let mut figures_words: BTreeSet<String> = ["--help", "-h", "--from", "--profile"].map(str::to_owned).into();
    figures_words.extend(figures::benches(root));
    for flag in ["--from", "--profile"] {
        assert!(figures_bin.contains(&format!("\"{flag}\"")), "the figures command still takes {flag}");
    }
    cli.insert("figures".to_owned(), figures_words);
    let mut files = Vec::new();
    files_under(root, &mut files);
    let mut sources = String::new();
    for file in files {
        let keep = file.extension().is_some_and(|e| ["rs", "js", "py", "toml"].contains(&e.to_str().unwrap()))
            || file.ends_with(".ci/run");
        // Not this file: its own examples of names that do not exist would count as mentions.
        if keep && !file.starts_with(root.join("docs")) && !file.ends_with("tests/e2e/tests/docs.rs") {
            sources.push_str(&std::fs::read_to_string(&file).unwrap_or_default());
        }
    }
    Repository { packages, bins, benches, tests, spin_variables, cli, sources }
}

// ---------------------------------------------------------------- commands

/// Shell lines of a block, continuation lines joined, comments dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if line.starts_with('#') && current.is_empty() {
            continue;
        }
        if let Some(start) = line.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        out.push(std::mem::take(&mut current));
    }
    out.into_iter().filter(|l| !l.trim().is_empty()).collect()
}

/// Words of a command, quotes removed (enough for the commands the docs show).
fn words(command: &str) -> Vec<String> {
    let command = command.split(" # ").next().unwrap_or(command);
    command
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';' || c == '|')
        .map(|w| w.trim_matches(['"', '\'', '`', '$']).to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `name` occurs in `text` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(ident) && !text[i + name.len()..].chars().next().is_some_and(ident)
    })
}

const STANDARD_ENV: &[&str] = &["PATH", "HOME", "CI", "RUST_LOG", "RUST_BACKTRACE", "CARGO_TERM_COLOR"];

fn check_command(repo: &Repository, command: &str, problems: &mut Vec<String>) {
    let words = words(command);
    let mut complain = |what: String| problems.push(format!("`{command}`: {what}"));
    // Environment: `export NAME=…` and `NAME=… command` (not `NAME=$(…)` alone: a shell variable).
    let raw: Vec<&str> = command.split_whitespace().collect();
    fn assignment(w: &str) -> Option<(&str, &str)> {
        w.split_once('=').filter(|(n, _)| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    }
    let leading = raw.iter().take_while(|w| assignment(w).is_some()).count();
    let mut environment: Vec<&str> = Vec::new();
    if leading > 0 && leading < raw.len() && !raw[..leading].iter().any(|w| w.contains("$(") || w.contains('`')) {
        environment.extend(raw[..leading].iter().filter_map(|w| assignment(w)).map(|(n, _)| n));
    }
    for pair in raw.windows(2).filter(|p| p[0] == "export") {
        environment.extend(assignment(pair[1]).map(|(n, _)| n));
    }
    for name in environment {
        if let Some(variable) = name.strip_prefix("SPIN_VARIABLE_") {
            if !repo.spin_variables.contains(&variable.to_lowercase()) {
                complain(format!("no Spin variable {} in spin.toml", variable.to_lowercase()));
            }
        } else if !STANDARD_ENV.contains(&name) && !mentions(&repo.sources, name) {
            complain(format!("no environment variable {name} is read anywhere in the repository"));
        }
    }
    // cargo invocations.
    for (start, _) in words.iter().enumerate().filter(|(_, w)| *w == "cargo") {
        let args: Vec<&str> = words[start + 1..].iter().map(String::as_str).take_while(|w| *w != "&&").collect();
        let (own, tool_args) = match args.iter().position(|w| *w == "--") {
            Some(i) => (&args[..i], &args[i + 1..]),
            None => (&args[..], &[][..]),
        };
        let mut package = None;
        let mut bin = None;
        for pair in own.windows(2) {
            match pair[0] {
                "-p" | "--package" => {
                    package = Some(pair[1]);
                    if !repo.packages.contains_key(pair[1]) {
                        complain(format!("no cargo package {}", pair[1]));
                    }
                }
                "--bin" => {
                    bin = Some(pair[1]);
                    if !repo.bins.values().any(|b| b.contains(pair[1])) {
                        complain(format!("no binary {}", pair[1]));
                    }
                }
                "--bench" if !repo.benches.contains(pair[1]) => complain(format!("no bench {}", pair[1])),
                "--test" if !repo.tests.contains(pair[1]) => complain(format!("no test target {}", pair[1])),
                _ => {}
            }
        }
        if own.first() == Some(&"run") {
            let Some(package) = package else { continue };
            let Some(bins) = repo.bins.get(package) else { continue };
            let bin = bin.unwrap_or(package);
            if !bins.contains(bin) {
                complain(format!("package {package} has no binary {bin}"));
                continue;
            }
            if let Some(known) = repo.cli.get(bin) {
                // Our own tools: every subcommand and flag must be theirs; after a second `--`,
                // devauth passes arguments to `spin up` or `testhost serve`: held to testhost's.
                let (mine, passed) = match tool_args.iter().position(|w| *w == "--") {
                    Some(i) => (&tool_args[..i], &tool_args[i + 1..]),
                    None => (tool_args, &[][..]),
                };
                let checks = mine
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (i == 0, *w, known, bin))
                    .chain(passed.iter().map(|w| (false, *w, &repo.cli["testhost"], "testhost serve")));
                for (first, word, set, tool) in checks {
                    let word = word.split('=').next().unwrap();
                    let flag = word.starts_with('-') && word.len() > 1;
                    let subcommand = first
                        && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
                    if (flag || subcommand) && !set.contains(word) {
                        complain(format!("{tool} has no {word}"));
                    }
                }
            }
        }
    }
}

/// Checks a page's commands; returns how many `cargo` commands it read.
fn check_commands(root: &Path, repo: &Repository, page: &Path, problems: &mut Vec<String>) -> usize {
    let text = std::fs::read_to_string(page).unwrap();
    let (prose, blocks) = split(&text);
    let mut lines = Vec::new();
    for block in blocks {
        if ["sh", "bash", "shell", "console"].contains(&block.info.as_str()) {
            lines.extend(commands(&block.text));
        }
    }
    let (spans, _) = code_spans(&prose);
    lines.extend(spans.into_iter().filter(|s| s.starts_with("cargo ") || s.contains(" cargo ")));
    let mut found = Vec::new();
    for line in &lines {
        check_command(repo, line, &mut found);
    }
    problems.extend(found.into_iter().map(|p| format!("{}: {p}", rel(root, page))));
    lines.iter().filter(|l| l.contains("cargo ")).count()
}

// ---------------------------------------------------------------- the tests

#[test]
fn every_relative_link_and_anchor_of_the_docs_points_somewhere() {
    let root = repo_root();
    let mut problems = Vec::new();
    for page in pages(&root) {
        check_links(&root, &page, &mut problems);
    }
    assert!(problems.is_empty(), "dead links:\n{}", problems.join("\n"));
}

#[test]
fn every_command_of_the_docs_names_what_exists() {
    let root = repo_root();
    let repo = repository(&root);
    let mut problems = Vec::new();
    let mut read = 0;
    for page in pages(&root) {
        read += check_commands(&root, &repo, &page, &mut problems);
    }
    assert!(read >= 20, "only {read} cargo commands were found in the docs: is the reader still working?");
    assert!(problems.is_empty(), "commands that name what does not exist:\n{}", problems.join("\n"));
}

#[test]
fn the_figures_page_is_not_older_than_the_benches_it_reports() {
    let root = repo_root();
    let page = std::fs::read_to_string(root.join(figures::PAGE)).expect("docs/figures.md");
    let sections = figures::sections(&page);
    let mut problems = Vec::new();
    for bench in figures::benches(&root) {
        match sections.get(&bench) {
            None => problems.push(format!("{bench}: no section")),
            Some(s) if s.digest != figures::digest(&root, &bench) => {
                problems.push(format!("{bench}: measured with other code than tests/e2e/benches/{bench}.rs now holds"))
            }
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "docs/figures.md is older than the benches; re-measure with `cargo run -p e2e --bin figures -- <bench>`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_shows_the_figures_page_as_it_is() {
    let root = repo_root();
    let sections = figures::sections(&std::fs::read_to_string(root.join(figures::PAGE)).expect("docs/figures.md"));
    let readme = std::fs::read_to_string(root.join(figures::README)).expect("README.md");
    let shown = figures::excerpted(&readme);
    assert!(shown.iter().any(|b| b == "tenant_growth"), "the README shows tenant_growth's growth table (issue 17)");
    for bench in &shown {
        assert!(sections.contains_key(bench), "the README shows figures of {bench}, which docs/figures.md lacks");
    }
    assert!(
        figures::with_excerpts(&readme, &sections) == readme,
        "the README's figures differ from docs/figures.md: re-measure with `cargo run -p e2e --bin figures -- <bench>`"
    );
}

// The checks themselves: a check that cannot fail proves nothing.

#[test]
fn slugs_are_githubs() {
    assert_eq!(slug("Consistency: quotas, exclusive names, the index"), "consistency-quotas-exclusive-names-the-index");
    assert_eq!(slug("The test host (`tests/host`)"), "the-test-host-testshost");
    assert_eq!(slug("SSRF: where verification may connect"), "ssrf-where-verification-may-connect");
    assert_eq!(slug("See [the API](api.md) now"), "see-the-api-now");
    let page = "# A\n## Twice\n```sh\n# not a heading\n```\n## Twice\n";
    assert_eq!(anchors(page), ["a", "twice", "twice-1"].map(str::to_owned).into());
}

#[test]
fn dead_links_and_wrong_anchors_are_found() {
    let root = repo_root();
    let dir = tempfile::tempdir_in(root.join("target")).unwrap();
    let page = dir.path().join("page.md");
    std::fs::write(
        &page,
        "# Here\n[ok](#here) [bad](#nowhere) [gone](missing.md) [readme](../../README.md#quick-start)\n\
         [wrong](../../README.md#no-such-part) `[code](ignored.md)` <https://example.com>\n",
    )
    .unwrap();
    let mut problems = Vec::new();
    check_links(&root, &page, &mut problems);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("#nowhere") && problems[1].contains("missing.md") && problems[2].contains("no-such-part")
    );
}

#[test]
fn commands_naming_what_does_not_exist_are_found() {
    let root = repo_root();
    let repo = repository(&root);
    let check = |command: &str| {
        let mut problems = Vec::new();
        check_command(&repo, command, &mut problems);
        problems
    };
    for good in [
        "cargo run -p devauth -- up -- --runtime-config-file runtime-config/redis.toml",
        "cargo run -q -p devauth -- token --tenant acme --scope admin --ttl 60",
        "cargo run --profile host -p testhost -- serve --listen 127.0.0.1:3000",
        "cargo bench -p e2e --bench latency",
        "cargo test -p e2e --test probes",
        "cargo run -p e2e --bin figures -- latency",
        "REGSECRETS_WRITE_OPENAPI=1 cargo test -p apidoc --test document",
        "export SPIN_VARIABLE_AUTH_ISSUER=https://login.example.com/",
    ] {
        assert_eq!(check(good), Vec::<String>::new(), "{good}");
    }
    for bad in [
        "cargo test -p nosuchcrate",
        "cargo run -p devauth -- token --tenant acme --scopez admin",
        "cargo run -p devauth -- mint",
        "cargo run -p devauth -- up -- --no-such-flag",
        "cargo bench -p e2e --bench nosuchbench",
        "cargo test -p e2e --test nosuchtest",
        "cargo run -p domain",
        "cargo run -p e2e --bin nosuchbin",
        "cargo run -p e2e --bin figures -- nosuchbench",
        "REGSECRETS_NO_SUCH_SETTING=1 cargo test",
        "export SPIN_VARIABLE_NO_SUCH_VARIABLE=x",
    ] {
        assert!(!check(bad).is_empty(), "not found wrong: {bad}");
    }
}
