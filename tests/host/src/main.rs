//! `testhost serve`: runs a Spin app locally without the Spin CLI.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use testhost::{HostConfig, RunningApp};

const USAGE: &str = "usage: testhost serve [--manifest spin.toml] [--listen 127.0.0.1:3000] \
[--runtime-config-file FILE] [--sqlite-path FILE] [--variable name=value]... [--allow-trap-injection] [--loopback-only] [--quiet]";

fn parse(args: &[String]) -> Result<HostConfig> {
    let mut cfg = HostConfig::new("spin.toml");
    cfg.listen = "127.0.0.1:3000".parse()?;
    cfg.echo_logs = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--manifest" | "-f" => cfg.manifest = PathBuf::from(value()?),
            "--listen" => cfg.listen = value()?.parse().context("--listen takes host:port")?,
            "--runtime-config-file" => cfg.runtime_config = Some(PathBuf::from(value()?)),
            "--sqlite-path" => cfg.sqlite_path = Some(PathBuf::from(value()?)),
            "--variable" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').context("--variable takes name=value")?;
                cfg.variables.insert(k.to_string(), v.to_string());
            }
            "--allow-trap-injection" => cfg.allow_trap_injection = true,
            // Test-only: outbound requests may reach loopback only (stricter than Spin).
            "--loopback-only" => cfg.loopback_only = true,
            "--quiet" => cfg.echo_logs = false,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(cfg)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("serve") {
        bail!("{USAGE}");
    }
    let cfg = parse(&args[1..])?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = RunningApp::start(cfg).await?;
        eprintln!("Serving {} ({})", app.base_url(), app.app_name());
        println!("{}", app.base_url());
        tokio::signal::ctrl_c().await?;
        eprintln!("Shutting down");
        app.shutdown();
        Ok(())
    })
}
