//! The tests run the components as built for Spin. `cargo test` builds them here when they are
//! missing or older than their sources, with the same command `spin build` runs.

use std::sync::Once;

use devauth::build::{cargo, component_packages, stale_components, WASM_TARGET};

use crate::repo_root;

pub fn ensure_components() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let root = repo_root();
        let manifest = std::fs::read_to_string(root.join("spin.toml")).expect("spin.toml");
        let names = component_packages(&manifest);
        if stale_components(&root, &root.join("target"), &names).is_empty() {
            return;
        }
        let mut cargo = cargo();
        cargo.current_dir(&root).args(["build", "--target", WASM_TARGET, "--release"]);
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
