//! `devauth`: local keys, JWKS, tokens and a `spin up` with them, for development without any
//! committed secret. Run `devauth help` for the commands.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context};
use devauth::{DevKeys, AUDIENCE, DEFAULT_DIR, ISSUER};

const USAGE: &str = "\
devauth: local identity and encryption keys for regsecrets (kept in .dev/, git-ignored)

  devauth init [--dir D]                 create the signing key and encryption_keys once
  devauth env [--dir D]                  print `export SPIN_VARIABLE_...` lines (eval \"$(devauth env)\")
  devauth token --tenant T --scope S[,S] [--ttl SECS] [--kid KID] [--dir D]
                                         print a signed token; scopes: viewer, admin, puller,
                                         operator (or full names, e.g. regsecrets.admin)
  devauth up [--dir D] [-- SPIN ARGS]    run `spin up` with those variables set
  devauth bench-verify [--seconds N]     native cost of verifying one token, per algorithm
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("devauth: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let (rest, passthrough) = match rest.iter().position(|arg| arg == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let options = Options::parse(rest)?;
    if !passthrough.is_empty() && command != "up" {
        bail!("only `up` takes arguments after `--`");
    }
    match command.as_str() {
        "init" => init(&options),
        "env" => print_env(&options),
        "token" => token(&options),
        "up" => up(&options, passthrough),
        "bench-verify" => bench_verify(&options),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

#[derive(Default)]
struct Options {
    dir: Option<PathBuf>,
    tenant: Option<String>,
    scopes: Vec<String>,
    ttl_secs: Option<u64>,
    kid: Option<String>,
    seconds: Option<f64>,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag.as_str(), None),
            };
            let mut value =
                || inline.clone().or_else(|| args.next().cloned()).with_context(|| format!("{name} needs a value"));
            match name {
                "--dir" => options.dir = Some(PathBuf::from(value()?)),
                "--tenant" => options.tenant = Some(value()?),
                "--scope" | "--scopes" => {
                    options.scopes.extend(value()?.split(',').map(str::trim).map(full_scope_name))
                }
                "--ttl" => options.ttl_secs = Some(value()?.parse().context("--ttl takes whole seconds")?),
                "--kid" => options.kid = Some(value()?),
                "--seconds" => options.seconds = Some(value()?.parse().context("--seconds takes a number")?),
                other => bail!("unknown option `{other}`\n\n{USAGE}"),
            }
        }
        Ok(options)
    }

    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
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

fn init(options: &Options) -> anyhow::Result<ExitCode> {
    let dir = options.dir();
    let (keys, created) = DevKeys::load_or_create_reporting(&dir)?;
    let said = |made: bool| if made { "created" } else { "kept existing" };
    println!("{} signing key (Ed25519, kid {}) in {}", said(created.signing_key), kid(&keys), dir.display());
    println!("{} encryption_keys in {}", said(created.encryption_keys), dir.display());
    println!("next: eval \"$(devauth env)\" or devauth up");
    Ok(ExitCode::SUCCESS)
}

fn print_env(options: &Options) -> anyhow::Result<ExitCode> {
    let keys = DevKeys::load_or_create(&options.dir())?;
    for (name, value) in keys.spin_variables() {
        println!("export {}={}", env_name(name), shell_quote(&value));
    }
    Ok(ExitCode::SUCCESS)
}

fn token(options: &Options) -> anyhow::Result<ExitCode> {
    let tenant = options.tenant.as_deref().context("token needs --tenant")?;
    if options.scopes.is_empty() {
        bail!("token needs --scope (viewer, admin, puller, operator; comma-separated)");
    }
    let keys = DevKeys::load_or_create(&options.dir())?;
    let scopes: Vec<&str> = options.scopes.iter().map(String::as_str).collect();
    let claims = keys.claims(tenant, &scopes, Duration::from_secs(options.ttl_secs.unwrap_or(3600)));
    let kid = options.kid.as_deref().unwrap_or(kid(&keys));
    println!("{}", keys.sign_with_kid(devauth::Alg::EdDsa, Some(kid), &claims));
    Ok(ExitCode::SUCCESS)
}

fn up(options: &Options, spin_args: &[String]) -> anyhow::Result<ExitCode> {
    let keys = DevKeys::load_or_create(&options.dir())?;
    let variables: Vec<(String, String)> =
        keys.spin_variables().into_iter().map(|(name, value)| (env_name(name), value)).collect();
    let mut command = if on_path("spin") {
        let mut spin = Command::new("spin");
        spin.arg("up").args(spin_args);
        spin
    } else if Path::new("tests/host/Cargo.toml").exists() {
        eprintln!("devauth: `spin` is not on PATH; running the test host instead");
        let mut host = Command::new("cargo");
        host.args(["run", "--profile", "host", "-p", "testhost", "--", "serve"]).args(spin_args);
        host
    } else {
        eprintln!("devauth: `spin` is not on PATH. Install Spin, or from the repository root run");
        eprintln!("  eval \"$(devauth env)\" && cargo run --profile host -p testhost -- serve");
        return Ok(ExitCode::from(127));
    };
    eprintln!(
        "devauth: issuer {ISSUER}, audience {AUDIENCE}; get a token with `devauth token --tenant T --scope admin`"
    );
    let status = command.envs(variables).status().context("starting the server")?;
    Ok(status.code().and_then(|code| u8::try_from(code).ok()).map(ExitCode::from).unwrap_or(ExitCode::FAILURE))
}

fn bench_verify(options: &Options) -> anyhow::Result<ExitCode> {
    let per_alg = Duration::from_secs_f64(options.seconds.unwrap_or(2.0));
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

/// Spin reads variable `auth_jwks` from `SPIN_VARIABLE_AUTH_JWKS`.
fn env_name(variable: &str) -> String {
    format!("SPIN_VARIABLE_{}", variable.to_ascii_uppercase())
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
