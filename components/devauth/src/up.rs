//! `devauth up`: the one run command of the quick start. On a fresh machine it builds what is
//! missing, saying what and why it takes minutes the first time, then runs the app with the local
//! keys: under `spin up` when a working Spin CLI is on `PATH`, else in the project's host.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use devauth::build::{cargo, component_packages, stale_components, WASM_TARGET as TARGET};
use devauth::{DevKeys, AUDIENCE, ISSUER};

pub fn up(keys: &DevKeys, spin_args: &[String]) -> anyhow::Result<ExitCode> {
    let root = app_root()?;
    let spin = working_spin();
    build_components(&root)?;
    let mut command = match &spin {
        Some(version) => {
            say(&format!("running `spin up` ({version})"));
            let mut spin = Command::new("spin");
            spin.arg("up").args(spin_args);
            spin
        }
        None => {
            say("no working `spin` on PATH (see the README's quick start to install it); running the app in the \
                 project's Spin-compatible host instead. Building it takes several minutes the first time \
                 (wasmtime and Cranelift), seconds afterwards.");
            let mut host = cargo();
            host.args(["run", "--profile", "host", "-p", "testhost", "--", "serve"]).args(spin_args);
            host
        }
    };
    say(&format!("issuer {ISSUER}, audience {AUDIENCE}; get a token with `cargo run -q -p devauth -- token --tenant acme --scope admin`"));
    let variables = keys.spin_variables().into_iter().map(|(name, value)| (env_name(name), value));
    let status = command.current_dir(&root).envs(variables).status().context("starting the server")?;
    Ok(status.code().and_then(|code| u8::try_from(code).ok()).map(ExitCode::from).unwrap_or(ExitCode::FAILURE))
}

/// Spin reads variable `auth_jwks` from `SPIN_VARIABLE_AUTH_JWKS`.
pub fn env_name(variable: &str) -> String {
    format!("SPIN_VARIABLE_{}", variable.to_ascii_uppercase())
}

fn say(what: &str) {
    eprintln!("devauth: {what}");
}

/// The directory holding the app's spin.toml: the current one, else this workspace's.
fn app_root() -> anyhow::Result<PathBuf> {
    let here = env::current_dir().context("reading the current directory")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [here, workspace]
        .into_iter()
        .find(|dir| dir.join("spin.toml").is_file())
        .context("no spin.toml here; run `devauth up` from the regsecrets repository")
}

/// `Some(version)` when `spin --version` runs: a `spin` that is absent or broken is no Spin.
fn working_spin() -> Option<String> {
    let output = Command::new("spin").arg("--version").stdin(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Builds the components, with the command `spin build` runs, when one is missing or older
/// than the sources.
fn build_components(root: &Path) -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string(root.join("spin.toml")).context("reading spin.toml")?;
    let packages = component_packages(&manifest);
    let target_dir = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let missing = stale_components(root, &target_dir, &packages);
    if missing.is_empty() {
        return Ok(());
    }
    if !target_installed() {
        bail!("the Rust target {TARGET} is not installed; run `rustup target add {TARGET}` and try again");
    }
    let args: Vec<String> = packages.iter().flat_map(|p| ["-p".to_owned(), p.clone()]).collect();
    say(&format!(
        "building the components ({} missing or older than their sources) with the command `spin build` runs: \
         cargo build --target {TARGET} --release {}. The first build takes a few minutes.",
        missing.len(),
        args.join(" ")
    ));
    let status = cargo().current_dir(root).args(["build", "--target", TARGET, "--release"]).args(&args).status()?;
    if !status.success() {
        bail!("building the components failed (see above)");
    }
    Ok(())
}

/// Whether rustup lists the wasm target; without rustup, assume the toolchain knows best.
fn target_installed() -> bool {
    match Command::new("rustup").args(["target", "list", "--installed"]).stderr(Stdio::null()).output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).lines().any(|l| l == TARGET),
        _ => true,
    }
}
