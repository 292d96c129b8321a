//! The hello-world component (`tests/hello`) served beside the app, for the latency benchmark: a
//! manifest of its own (the app's `spin.toml` plus one route), never the production one.

use std::path::PathBuf;

use devauth::build::{cargo, newest_file, outdated, WASM_TARGET};

use crate::repo_root;

/// Where the hello-world answers.
pub const HELLO: &str = "/hello";

fn ensure_built(root: &std::path::Path) -> PathBuf {
    let wasm = root.join("target/wasm32-wasip2/release/hello.wasm");
    if outdated(&wasm, newest_file(&root.join("tests/hello"))) {
        let status = cargo()
            .current_dir(root)
            .args(["build", "--target", WASM_TARGET, "--release", "-p", "hello"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building tests/hello failed");
    }
    wasm
}

/// A manifest serving the app and the hello-world at [`HELLO`], written under `target/`.
///
/// With `LATENCY_BASELINE_DIR` set, the app is another build: that directory's `spin.toml` with
/// its `.wasm` files beside it (to compare a change against the build before it, in one run).
pub fn manifest_with_hello() -> PathBuf {
    let root = repo_root();
    let wasm = ensure_built(&root);
    let baseline = std::env::var_os("LATENCY_BASELINE_DIR").map(PathBuf::from);
    let (app, sources) = match &baseline {
        Some(dir) => (dir.join("spin.toml"), dir.clone()),
        None => (root.join("spin.toml"), root.join("target/wasm32-wasip2/release")),
    };
    let app = std::fs::read_to_string(&app).unwrap_or_else(|e| panic!("{}: {e}", app.display()));
    // Sources are relative to the manifest's directory: make them absolute.
    let app = app.replace("source = \"target/wasm32-wasip2/release/", &format!("source = \"{}/", sources.display()));
    let manifest = format!(
        "{app}\n[[trigger.http]]\nroute = \"{HELLO}\"\ncomponent = \"hello\"\n\n[component.hello]\nsource = \"{}\"\n",
        wasm.display()
    );
    let dir = root.join("target/latency-bench");
    std::fs::create_dir_all(&dir).expect("target/latency-bench");
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).expect("bench manifest");
    path
}
