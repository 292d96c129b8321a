//! `testhost serve`: runs a Spin app locally without the Spin CLI.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use testhost::{HostConfig, RunningApp};

/// Runs a Spin app (its spin.toml and built .wasm files) the way Spin 4.0.2 does, without the
/// Spin CLI: the project's Spin-compatible test host.
#[derive(Parser)]
#[command(name = "testhost", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app over HTTP until Ctrl-C (as `spin up`); prints the base URL on stdout.
    Serve(Serve),
}

#[derive(Args)]
struct Serve {
    /// The app's manifest; component sources are relative to its directory.
    #[arg(long, short = 'f', value_name = "FILE", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// A Spin runtime-config file ([key_value_store.<label>] tables), as `spin up` takes it.
    #[arg(long, value_name = "FILE")]
    runtime_config_file: Option<PathBuf>,
    /// The default store's SQLite file (default: .spin/sqlite_key_value.db beside the manifest).
    #[arg(long, value_name = "FILE")]
    sqlite_path: Option<PathBuf>,
    /// An application variable; wins over SPIN_VARIABLE_* and the manifest's default. Repeatable.
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = name_value)]
    variables: Vec<(String, String)>,
    /// Honour the spin-test-trap-after-store-calls request header (crash tests only).
    #[arg(long)]
    allow_trap_injection: bool,
    /// Test-only, stricter than Spin: outbound requests may reach loopback destinations only.
    #[arg(long)]
    loopback_only: bool,
    /// Do not copy component output to stderr.
    #[arg(long)]
    quiet: bool,
    /// Where component output is logged, as `spin up --log-dir` (default: .spin/logs beside the
    /// manifest; an empty value logs to no file).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<String>,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("takes name=value")?;
    Ok((name.to_owned(), value.to_owned()))
}

impl Serve {
    fn config(self) -> HostConfig {
        let beside_manifest = self.manifest.parent().unwrap_or(std::path::Path::new("")).join(".spin/logs");
        let mut cfg = HostConfig::new(self.manifest);
        cfg.log_dir = match self.log_dir {
            None => Some(beside_manifest),
            Some(dir) if dir.is_empty() => None,
            Some(dir) => Some(PathBuf::from(dir)),
        };
        cfg.listen = self.listen;
        cfg.runtime_config = self.runtime_config_file;
        cfg.sqlite_path = self.sqlite_path;
        cfg.variables.extend(self.variables);
        cfg.allow_trap_injection = self.allow_trap_injection;
        cfg.loopback_only = self.loopback_only;
        cfg.echo_logs = !self.quiet;
        cfg
    }
}

fn main() -> Result<()> {
    let Command::Serve(serve) = Cli::parse().command;
    let cfg = serve.config();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        if let Some(dir) = &cfg.log_dir {
            eprintln!("Logging component stdio to {}", dir.display());
        }
        let app = RunningApp::start(cfg).await?;
        eprintln!("Serving {} ({})", app.base_url(), app.app_name());
        println!("{}", app.base_url());
        tokio::signal::ctrl_c().await?;
        eprintln!("Shutting down");
        app.shutdown();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed_and_takes_what_callers_pass() {
        Cli::command().debug_assert();
        let Command::Serve(serve) = Cli::try_parse_from([
            "testhost",
            "serve",
            "--listen",
            "127.0.0.1:7450",
            "--runtime-config-file",
            "rc.toml",
            "--variable",
            "a=b=c",
            "--quiet",
        ])
        .unwrap()
        .command;
        let cfg = serve.config();
        assert_eq!(cfg.listen.port(), 7450);
        assert_eq!(cfg.runtime_config.as_deref(), Some(std::path::Path::new("rc.toml")));
        assert_eq!(cfg.variables.get("a").map(String::as_str), Some("b=c"));
        assert!(!cfg.echo_logs);
        assert_eq!(cfg.log_dir.as_deref(), Some(std::path::Path::new(".spin/logs")));
        let Command::Serve(serve) = Cli::try_parse_from(["testhost", "serve", "--log-dir", ""]).unwrap().command;
        assert_eq!(serve.config().log_dir, None, "as `spin up --log-dir \"\"`: no files");
        assert!(Cli::try_parse_from(["testhost", "serve", "--variable", "novalue"]).is_err());
        let Err(help) = Cli::try_parse_from(["testhost", "serve", "--help"]) else { panic!("--help is no run") };
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
