//! What `spin build` builds, and whether it is missing or older than its sources: shared by
//! `devauth up` and the end-to-end harness, so both agree on which components exist and when
//! they must be rebuilt.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// The target every component is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// The cargo that runs us (`CARGO` under `cargo run`/`cargo test`), else the one on `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The `-p NAME` of every `[component.X.build]` command in spin.toml: what `spin build` runs.
pub fn component_packages(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("command = \"cargo build --target wasm32-wasip2 --release -p "))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect()
}

/// The modification time of the newest file below `dir` (the epoch when there is none).
pub fn newest_file(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_file(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).unwrap_or(newest)
        };
        newest = newest.max(time);
    }
    newest
}

/// Whether `artifact` is missing or older than `sources`.
pub fn outdated(artifact: &Path, sources: SystemTime) -> bool {
    artifact.metadata().and_then(|m| m.modified()).map_or(true, |built| built < sources)
}

/// The packages among `packages` whose release `.wasm` in `target_dir` is missing or older than
/// the newest file under `root/components`.
pub fn stale_components<'a>(root: &Path, target_dir: &Path, packages: &'a [String]) -> Vec<&'a String> {
    let sources = newest_file(&root.join("components"));
    packages
        .iter()
        .filter(|name| outdated(&target_dir.join(format!("{WASM_TARGET}/release/{name}.wasm")), sources))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_are_those_spin_build_builds() {
        let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")).unwrap();
        let packages = component_packages(&manifest);
        // Every component's wasm is one a build command makes (two components may share one wasm
        // with different grants, as `live` and `ready` do: one build serves both).
        let sources: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("source = \"target/wasm32-wasip2/release/")?.strip_suffix(".wasm\""))
            .collect();
        let components = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("[component.")?.strip_suffix(']'))
            .filter(|id| !id.contains('.'))
            .count();
        assert_eq!(sources.len(), components, "every component's source is a release wasm of this workspace");
        for source in &sources {
            assert!(packages.iter().any(|p| p == source), "no build command makes {source}.wasm: {packages:?}");
        }
        let mut unique = packages.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), packages.len(), "each package is built once: {packages:?}");
        assert!(packages.iter().any(|p| p == "gateway"));
    }

    #[test]
    fn an_artifact_is_outdated_when_missing_or_older_than_its_sources() {
        let dir = std::env::temp_dir().join(format!("devauth-build-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let source = dir.join("src/lib.rs");
        std::fs::write(&source, "").unwrap();
        let newest = newest_file(&dir.join("src"));
        assert_eq!(newest, source.metadata().unwrap().modified().unwrap());
        assert!(outdated(&dir.join("missing.wasm"), newest));
        assert!(outdated(&source, newest + std::time::Duration::from_secs(1)));
        assert!(!outdated(&source, newest));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
