//! The tests run the components as built for Spin. `cargo test` builds them here when they are
//! missing or older than their sources, with the same command `spin build` runs.

use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::SystemTime;

use crate::repo_root;

/// The `-p NAME` of every `[component.X.build]` command in spin.toml.
fn components(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("command = \"cargo build --target wasm32-wasip2 --release -p "))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect()
}

pub(crate) fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else { return newest };
    for entry in entries.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_source(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).unwrap_or(newest)
        };
        newest = newest.max(time);
    }
    newest
}

pub fn ensure_components() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let root = repo_root();
        let manifest = std::fs::read_to_string(root.join("spin.toml")).expect("spin.toml");
        let names = components(&manifest);
        let sources = newest_source(&root.join("components"));
        let stale = names.iter().any(|name| {
            let wasm = root.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
            wasm.metadata().and_then(|m| m.modified()).map_or(true, |built| built < sources)
        });
        if !stale {
            return;
        }
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.current_dir(&root).args(["build", "--target", "wasm32-wasip2", "--release"]);
        for name in &names {
            cargo.args(["-p", name]);
        }
        let status = cargo.status().expect("cargo runs");
        assert!(
            status.success(),
            "building the components failed; build them with `spin build`, or with \
             `rustup target add wasm32-wasip2 && cargo build --target wasm32-wasip2 --release {}`",
            names.iter().map(|n| format!("-p {n}")).collect::<Vec<_>>().join(" ")
        );
    });
}
