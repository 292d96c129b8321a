//! Runs the benches and writes `docs/figures.md` (see `e2e::figures`).
//!
//! ```text
//! cargo run -p e2e --bin figures                     # every bench of tests/e2e/benches
//! cargo run -p e2e --bin figures -- latency          # only these; the other sections are kept
//! cargo run -p e2e --bin figures -- --profile dev    # benches built in that cargo profile (see below)
//! cargo run -p e2e --bin figures -- --from DIR       # from saved output: DIR/<bench>.txt, as
//!                                                    # `cargo bench --bench <bench>` printed it
//! ```
//!
//! Benches run as `cargo bench --bench <bench>` from the workspace root (the workspace's features,
//! as `cargo test` builds them, so no second build of the host). The default is cargo's `bench`
//! profile (optimised); `--profile dev` measures an unoptimised host instead, when building the
//! optimised one is out of reach: its page says so, and only its ratios are worth reading.
//!
//! A bench's stdout is its figures; its stderr (progress, notes) passes through to the terminal.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use e2e::figures::{self, Run, Section};

fn main() -> ExitCode {
    let root = e2e::repo_root();
    let mut from: Option<PathBuf> = None;
    let mut profile: Option<String> = None;
    let mut chosen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from" => from = args.next().map(PathBuf::from),
            "--profile" => profile = args.next(),
            "-h" | "--help" => {
                println!(
                    "usage: figures [--profile PROFILE | --from DIR] [BENCH...]\nbenches: {}",
                    figures::benches(&root).join(" ")
                );
                return ExitCode::SUCCESS;
            }
            other => chosen.push(other.to_owned()),
        }
    }
    let all = figures::benches(&root);
    if let Some(unknown) = chosen.iter().find(|b| !all.contains(b)) {
        eprintln!("no bench named {unknown}; there are: {}", all.join(" "));
        return ExitCode::FAILURE;
    }
    if chosen.is_empty() {
        chosen = all.clone();
    }
    let page_path = root.join(figures::PAGE);
    let mut sections = figures::sections(&std::fs::read_to_string(&page_path).unwrap_or_default());
    sections.retain(|name, _| all.contains(name));
    for bench in &chosen {
        let load_before = figures::load_average();
        let output = match &from {
            Some(dir) => match std::fs::read_to_string(dir.join(format!("{bench}.txt"))) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{}: {e}", dir.join(format!("{bench}.txt")).display());
                    return ExitCode::FAILURE;
                }
            },
            None => {
                let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                command.current_dir(&root).args(["bench", "--bench", bench]);
                if let Some(profile) = &profile {
                    command.args(["--profile", profile]);
                }
                eprintln!("== {command:?}");
                let out = command.stderr(Stdio::inherit()).output().expect("cargo runs");
                if !out.status.success() {
                    eprintln!("the bench {bench} failed; {} is unchanged", figures::PAGE);
                    return ExitCode::FAILURE;
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        let how = match (&from, &profile) {
            (Some(dir), _) => format!("from saved output, {}", dir.join(format!("{bench}.txt")).display()),
            (None, Some(p)) => format!("`cargo bench --bench {bench} --profile {p}`"),
            (None, None) => format!("`cargo bench --bench {bench}`"),
        };
        let run = Run {
            bench,
            how,
            digest: figures::digest(&root, bench),
            date: utc_now(),
            machine: figures::machine(),
            load_before,
            load_after: figures::load_average(),
            output: &output,
        };
        sections.insert(bench.clone(), Section { digest: run.digest.clone(), text: figures::render(&run) });
        // Written after every bench, so an interrupted run keeps what it measured.
        std::fs::write(&page_path, figures::page(&sections)).expect("write the figures page");
        let readme_path = root.join(figures::README);
        let readme = std::fs::read_to_string(&readme_path).expect("README.md");
        std::fs::write(&readme_path, figures::with_excerpts(&readme, &sections)).expect("write the README");
        eprintln!("== {bench}: written to {} (and its excerpts in {})", figures::PAGE, figures::README);
    }
    ExitCode::SUCCESS
}

/// When the bench ran, in RFC 3339 UTC.
fn utc_now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    domain::clock::rfc3339(ms as u64)
}
