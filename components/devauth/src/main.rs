//! `devauth`: local keys, JWKS, tokens and a `spin up` with them, for development without any
//! committed secret. `devauth --help` lists the commands.

mod up;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use devauth::{DevKeys, DEFAULT_DIR};

/// Local identity and encryption keys for regsecrets (kept in .dev/, git-ignored, mode 0600),
/// tokens signed with them, and the app run with them.
#[derive(Parser)]
#[command(name = "devauth", version, arg_required_else_help = true)]
struct Cli {
    /// Where the keys are kept.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the signing key and encryption_keys once (every other command does it if needed).
    Init,
    /// Print `export SPIN_VARIABLE_...` lines: eval "$(devauth env)".
    Env,
    /// Print a signed token (EdDSA) for a tenant and scopes.
    Token {
        /// The tenant the token names.
        #[arg(long)]
        tenant: String,
        /// viewer, admin, puller, operator (or full names, e.g. regsecrets.admin); comma-separated or repeated.
        #[arg(long = "scope", visible_alias = "scopes", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        ttl: u64,
        /// Sign with this key id in the header (to test unknown keys).
        #[arg(long)]
        kid: Option<String>,
        /// The `sub` claim: who the audit trail says acted.
        #[arg(long, default_value = "developer")]
        subject: String,
        /// The `azp` claim: the client the audit trail names.
        #[arg(long)]
        client: Option<String>,
    },
    /// Build what is missing and run the app with these keys: `spin up`, or without Spin the
    /// project's Spin-compatible host. Arguments after `--` go to `spin up` / `testhost serve`.
    Up {
        #[arg(last = true, value_name = "SPIN UP ARGS")]
        spin_args: Vec<String>,
    },
    /// Native cost of verifying one token, per algorithm.
    BenchVerify {
        /// Seconds to spend per algorithm.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("devauth: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = cli.dir;
    match cli.command {
        Command::Init => init(&dir),
        Command::Env => print_env(&dir),
        Command::Token { tenant, scopes, ttl, kid, subject, client } => {
            let scopes: Vec<String> = scopes.iter().map(|s| full_scope_name(s.trim())).collect();
            token(&dir, &tenant, &scopes, ttl, kid, &subject, client)
        }
        Command::Up { spin_args } => up::up(&DevKeys::load_or_create(&dir)?, &spin_args),
        Command::BenchVerify { seconds } => bench_verify(seconds),
    }
}

/// `admin` is short for `regsecrets.admin`; a name with a dot is taken as it is.
fn full_scope_name(scope: &str) -> String {
    if scope.contains('.') || scope.is_empty() {
        scope.to_string()
    } else {
        format!("regsecrets.{scope}")
    }
}

fn init(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (keys, created) = DevKeys::load_or_create_reporting(dir)?;
    let said = |made: bool| if made { "created" } else { "kept existing" };
    println!("{} signing key (Ed25519, kid {}) in {}", said(created.signing_key), kid(&keys), dir.display());
    println!("{} encryption_keys in {}", said(created.encryption_keys), dir.display());
    println!("next: eval \"$(devauth env)\" or devauth up");
    Ok(ExitCode::SUCCESS)
}

fn print_env(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let keys = DevKeys::load_or_create(dir)?;
    for (name, value) in keys.spin_variables() {
        println!("export {}={}", up::env_name(name), shell_quote(&value));
    }
    Ok(ExitCode::SUCCESS)
}

fn token(
    dir: &std::path::Path,
    tenant: &str,
    scopes: &[String],
    ttl: u64,
    kid_override: Option<String>,
    subject: &str,
    client: Option<String>,
) -> anyhow::Result<ExitCode> {
    let keys = DevKeys::load_or_create(dir)?;
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let mut claims = keys.claims(tenant, &scopes, Duration::from_secs(ttl));
    claims["sub"] = subject.into();
    if let Some(client) = client {
        claims["azp"] = client.into();
    }
    let kid = kid_override.as_deref().unwrap_or(kid(&keys));
    println!("{}", keys.sign_with_kid(devauth::Alg::EdDsa, Some(kid), &claims));
    Ok(ExitCode::SUCCESS)
}

fn bench_verify(seconds: f64) -> anyhow::Result<ExitCode> {
    let per_alg = Duration::try_from_secs_f64(seconds).context("--seconds takes a positive number")?;
    if cfg!(debug_assertions) {
        eprintln!(
            "devauth: this is a debug build; run `cargo run --release -p devauth -- bench-verify` for real figures"
        );
    }
    println!("{:<6} {:>10} {:>22} {:>26}", "alg", "iterations", "authenticate µs/call", "JWKS parse + key µs/call");
    for figure in devauth::bench::verify_cost(per_alg)? {
        println!(
            "{:<6} {:>10} {:>22.1} {:>26.1}",
            figure.alg, figure.iterations, figure.authenticate_us, figure.key_lookup_us
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn kid(keys: &DevKeys) -> &str {
    keys.kid(devauth::Alg::EdDsa).expect("an Ed25519 key is always present")
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_keeps_the_readme_s_forms() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["devauth", "token", "--tenant", "acme", "--scope", "admin,puller", "--ttl=60"]);
        let Command::Token { tenant, scopes, ttl, .. } = cli.unwrap().command else { panic!("token") };
        assert_eq!((tenant.as_str(), ttl), ("acme", 60));
        assert_eq!(
            scopes.iter().map(|s| full_scope_name(s)).collect::<Vec<_>>(),
            ["regsecrets.admin", "regsecrets.puller"]
        );
        let cli = Cli::try_parse_from(["devauth", "up", "--dir", "/tmp/k", "--", "--runtime-config-file", "x.toml"]);
        let cli = cli.unwrap();
        assert_eq!(cli.dir, PathBuf::from("/tmp/k"));
        let Command::Up { spin_args } = cli.command else { panic!("up") };
        assert_eq!(spin_args, ["--runtime-config-file", "x.toml"]);
        assert!(Cli::try_parse_from(["devauth", "token", "--tenant", "acme"]).is_err(), "a token needs a scope");
        let Err(help) = Cli::try_parse_from(["devauth", "up", "--help"]) else { panic!("--help is no run") };
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
