//! `docs/figures.md`, written by one command (`cargo run -p e2e --bin figures`) from the benches'
//! own output, never edited by hand. Each bench gets a section that records when, where and under
//! what load it ran, and the SHA-256 of the bench's source; `tests/docs.rs` fails while a section's
//! digest differs from its bench's source (the page is older than the code it reports) or a bench
//! has no section.
//!
//! The README shows excerpts: a block `<!-- figures:excerpt BENCH -->` … `<!-- figures:end -->`
//! holds the first table of that bench's section, copied by the same command ([`with_excerpts`])
//! and checked by the same test, so the front page never drifts from the measured page.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const PAGE: &str = "docs/figures.md";
/// The page that shows excerpts of the sections.
pub const README: &str = "README.md";
const BEGIN: &str = "<!-- figures:bench ";
const EXCERPT: &str = "<!-- figures:excerpt ";
const END: &str = "<!-- figures:end -->";

/// The benches of `tests/e2e/benches`, by name.
pub fn benches(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("tests/e2e/benches"))
        .expect("tests/e2e/benches")
        .flatten()
        .filter_map(|e| e.path().file_name()?.to_str()?.strip_suffix(".rs").map(str::to_owned))
        .collect();
    names.sort();
    names
}

pub fn bench_source(root: &Path, bench: &str) -> PathBuf {
    root.join("tests/e2e/benches").join(format!("{bench}.rs"))
}

/// The digest a section records: SHA-256 of the bench's source file.
pub fn digest(root: &Path, bench: &str) -> String {
    let source = std::fs::read(bench_source(root, bench)).unwrap_or_else(|e| panic!("{bench}: {e}"));
    Sha256::digest(source).iter().map(|b| format!("{b:02x}")).collect()
}

/// One bench's section as found in the page: its digest and its text (markers included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub digest: String,
    pub text: String,
}

/// The sections of a page, by bench name.
pub fn sections(page: &str) -> BTreeMap<String, Section> {
    let mut out = BTreeMap::new();
    let mut rest = page;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let header_end = after.find("-->").expect("a section marker ends with -->");
        let mut fields = after[..header_end].split_whitespace();
        let name = fields.next().unwrap_or_default().to_owned();
        let digest = fields.find_map(|f| f.strip_prefix("sha256=")).unwrap_or_default().to_owned();
        let end = after.find(END).map(|e| e + END.len()).unwrap_or(after.len());
        out.insert(name, Section { digest, text: rest[start..start + BEGIN.len() + end].to_owned() });
        rest = &after[end..];
    }
    out
}

/// Where and under what load a bench ran.
pub struct Run<'a> {
    pub bench: &'a str,
    /// The command that produced the output (or where it was read from).
    pub how: String,
    pub digest: String,
    pub date: String,
    pub machine: String,
    pub load_before: String,
    pub load_after: String,
    /// What the bench printed on stdout.
    pub output: &'a str,
}

/// A bench's section: its command, date, machine and load, then its output as Markdown (its
/// tables as they are, its `## ` headings one level down, other lines as preformatted text).
pub fn render(run: &Run) -> String {
    let mut out = format!("{BEGIN}{} sha256={} -->\n", run.bench, run.digest);
    out.push_str(&format!("## {}\n\n", run.bench));
    out.push_str(&format!(
        "{}, run {} on {}; load average {} before, {} after.\n\
         Source digest (SHA-256 of `tests/e2e/benches/{}.rs`): `{}`.\n\n",
        run.how, run.date, run.machine, run.load_before, run.load_after, run.bench, run.digest
    ));
    let mut text: Vec<&str> = Vec::new();
    let flush = |text: &mut Vec<&str>, out: &mut String| {
        if !text.is_empty() {
            out.push_str("```text\n");
            for line in text.drain(..) {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("```\n\n");
        }
    };
    let mut in_table = false;
    for line in run.output.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with('|') {
            flush(&mut text, &mut out);
            out.push_str(trimmed);
            out.push('\n');
            in_table = true;
            continue;
        }
        if in_table {
            out.push('\n');
            in_table = false;
        }
        if let Some(heading) = trimmed.strip_prefix("## ") {
            flush(&mut text, &mut out);
            out.push_str(&format!("### {heading}\n\n"));
        } else if trimmed.is_empty() {
            flush(&mut text, &mut out);
        } else {
            text.push(trimmed);
        }
    }
    flush(&mut text, &mut out);
    if in_table {
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// The whole page: its head, then one section per bench (those not re-run kept as they were).
pub fn page(sections: &BTreeMap<String, Section>) -> String {
    let mut out = String::from(
        "# Figures\n\n\
         *Written by `cargo run -p e2e --bin figures` (all benches; name some to re-run only those, e.g.\n\
         `cargo run -p e2e --bin figures -- latency`; each section names the command and profile it ran). Do not edit by hand: `tests/e2e/tests/docs.rs`\n\
         fails while a section is older than its bench's source.*\n\n\
         Every figure is measured through the project's test host over loopback HTTP on the machine named in\n\
         its section, usually while other builds share its cores: the load average says how much. Compare\n\
         figures within one section; across sections and machines, read ratios, not milliseconds.\n\n",
    );
    for section in sections.values() {
        out.push_str(section.text.trim_end());
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// What a README block shows of a section: its first table, and where the rest is.
pub fn excerpt(bench: &str, section: &Section) -> String {
    let table: Vec<&str> =
        section.text.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
    format!(
        "{}\n\n*From [docs/figures.md](docs/figures.md#{bench}), which says how, where and when it was measured.*\n",
        table.join("\n")
    )
}

/// `doc` with every excerpt block's body replaced by the excerpt of its bench's section (a block
/// whose bench has no section is left as it is).
pub fn with_excerpts(doc: &str, sections: &BTreeMap<String, Section>) -> String {
    let mut out = String::new();
    let mut rest = doc;
    while let Some(start) = rest.find(EXCERPT) {
        let after = &rest[start..];
        let (Some(marker_end), Some(end)) = (after.find("-->\n"), after.find(END)) else { break };
        let bench = after[EXCERPT.len()..marker_end].trim();
        out.push_str(&rest[..start + marker_end + 4]);
        match sections.get(bench) {
            Some(section) => out.push_str(&excerpt(bench, section)),
            None => out.push_str(&after[marker_end + 4..end]),
        }
        out.push_str(END);
        rest = &after[end + END.len()..];
    }
    out.push_str(rest);
    out
}

/// The benches a document shows excerpts of.
pub fn excerpted(doc: &str) -> Vec<String> {
    doc.match_indices(EXCERPT)
        .filter_map(|(i, _)| doc[i + EXCERPT.len()..].split("-->").next().map(|b| b.trim().to_owned()))
        .collect()
}

/// `1.23, 1.10, 0.90` from /proc/loadavg (or "unknown").
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "unknown".into())
}

/// CPU model, cores and OS of this machine (no host name).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} × {cpu} ({}, {})", std::env::consts::OS, std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\n## Latency: 3 rounds\nload average before: 1.0; after: 2.0\n\n| call | p50 |\n|---|---|\n| list | 0.4 ms |\n\nhello p50 0.3 ms\n";

    fn run(output: &str) -> String {
        render(&Run {
            bench: "latency",
            how: "`cargo bench --bench latency`".into(),
            digest: "ab12".into(),
            date: "2026-12-02 01:00 UTC".into(),
            machine: "2 × CPU".into(),
            load_before: "1.00, 1.00, 1.00".into(),
            load_after: "2.00, 1.50, 1.00".into(),
            output,
        })
    }

    #[test]
    fn an_excerpt_block_takes_the_first_table_of_its_section() {
        let mut sections = BTreeMap::new();
        sections.insert("latency".to_owned(), Section { digest: "ab12".into(), text: run(OUTPUT) });
        let doc = "# Title\n\n<!-- figures:excerpt latency -->\nold\n<!-- figures:end -->\n\nafter\n\
                   <!-- figures:excerpt gone -->\nkept\n<!-- figures:end -->\n";
        let updated = with_excerpts(doc, &sections);
        assert_eq!(
            updated,
            "# Title\n\n<!-- figures:excerpt latency -->\n| call | p50 |\n|---|---|\n| list | 0.4 ms |\n\n\
             *From [docs/figures.md](docs/figures.md#latency), which says how, where and when it was measured.*\n\
             <!-- figures:end -->\n\nafter\n<!-- figures:excerpt gone -->\nkept\n<!-- figures:end -->\n"
        );
        assert_eq!(with_excerpts(&updated, &sections), updated, "copying again changes nothing");
        assert_eq!(excerpted(doc), ["latency", "gone"]);
    }

    #[test]
    fn a_section_keeps_tables_moves_headings_down_and_fences_the_rest() {
        let text = run(OUTPUT);
        assert!(text.starts_with("<!-- figures:bench latency sha256=ab12 -->\n## latency\n"), "{text}");
        assert!(text.contains("### Latency: 3 rounds\n"), "{text}");
        assert!(text.contains("```text\nload average before: 1.0; after: 2.0\n```\n"), "{text}");
        assert!(text.contains("| call | p50 |\n|---|---|\n| list | 0.4 ms |\n\n"), "{text}");
        assert!(text.contains("```text\nhello p50 0.3 ms\n```\n"), "{text}");
        assert!(text.ends_with("<!-- figures:end -->\n"));
        assert!(text.contains("`cargo bench --bench latency`, run 2026-12-02 01:00 UTC on 2 × CPU; load average 1.00, 1.00, 1.00 before, 2.00, 1.50, 1.00 after"), "{text}");
    }

    #[test]
    fn sections_are_read_back_with_their_digests_and_kept_when_not_rerun() {
        let mut all = BTreeMap::new();
        all.insert("latency".to_owned(), Section { digest: "ab12".into(), text: run(OUTPUT) });
        let other = run("x\n").replace("latency", "verify_cost").replace("ab12", "cd34");
        all.insert("verify_cost".to_owned(), Section { digest: "cd34".into(), text: other });
        let page = page(&all);
        let read = sections(&page);
        assert_eq!(read.keys().collect::<Vec<_>>(), ["latency", "verify_cost"]);
        assert_eq!(read["latency"].digest, "ab12");
        assert_eq!(read["verify_cost"].digest, "cd34");
        assert_eq!(read["latency"].text.trim_end(), all["latency"].text.trim_end());
        assert_eq!(self::page(&read), page, "writing the page again changes nothing");
    }
}
