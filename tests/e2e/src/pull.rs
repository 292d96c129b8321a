//! The native pull-time binaries (`components/pull`): built once per test binary in release mode,
//! as `cargo build --release -p regsecrets-pull` builds them for users, and run as their clients
//! run them (a kubelet: request on stdin; skopeo: `credHelpers` and `PATH`).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::repo_root;

pub const PROVIDER: &str = "regsecrets-credential-provider";
pub const HELPER: &str = "docker-credential-regsecrets";

/// The directory holding both binaries (`target/release`), built if needed.
pub fn binaries() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let status = devauth::build::cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "regsecrets-pull"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --release -p regsecrets-pull failed");
        let dir = root.join("target/release");
        for binary in [PROVIDER, HELPER] {
            assert!(dir.join(binary).is_file(), "{binary} is not in {}", dir.display());
        }
        dir
    })
    .clone()
}
