//! A Spin-faithful test host: runs the app's Spin components (wasm32-wasip2, exporting
//! `wasi:http/incoming-handler`) from `spin.toml` the way Spin 3/4 does, on a loopback port, so
//! tests and developers need no Spin CLI. See `wit/README.md` for the bound interfaces.

pub mod allowed_hosts;
mod app;
mod bindings;
mod blocked_networks;
mod client_tls;
mod dispatch;
mod engine;
pub mod kv;
mod kv_host;
mod logs;
mod loopback_only;
pub mod manifest;
mod network_config;
mod outbound;
mod outbound_http;
pub mod routes;
mod server;
mod state;
pub mod variables;
mod vars_host;

pub use dispatch::TRAP_HEADER;
pub use logs::Stdio;

use anyhow::Result;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The app's `spin.toml`; component sources are relative to its directory.
    pub manifest: PathBuf,
    /// Port 0 picks a free port.
    pub listen: SocketAddr,
    /// A Spin runtime-config file, as `spin up --runtime-config-file`: `[key_value_store.<label>]`,
    /// `[outbound_networking] block_networks` and `[[client_tls]]` (paths relative to the file).
    pub runtime_config: Option<PathBuf>,
    /// The `default` store's SQLite file; `<manifest dir>/.spin/sqlite_key_value.db` otherwise.
    pub sqlite_path: Option<PathBuf>,
    /// Application variable values; they win over `SPIN_VARIABLE_*` and manifest defaults.
    pub variables: BTreeMap<String, String>,
    /// Honour the `spin-test-trap-after-store-calls` request header. Off unless a test asks.
    pub allow_trap_injection: bool,
    /// Also copy component output and host errors to this process's stderr.
    pub echo_logs: bool,
    /// Also append each component's output to `<dir>/<component>_stdout.txt` / `_stderr.txt`,
    /// as `spin up` does in `.spin/logs` (`testhost serve` does too; tests keep it in memory).
    pub log_dir: Option<PathBuf>,
    /// Test-only safety net, stricter than Spin: refuse every outbound destination that is not
    /// `localhost` or a loopback IP literal, before any DNS lookup (the guest sees
    /// `connection-refused`). On in the e2e harness; `testhost serve --loopback-only`.
    pub loopback_only: bool,
    /// Test-only: the `AWS_*` variables an `aws_dynamo` store without credentials reads, instead
    /// of this process's environment (tests run in one process, several hosts each with its own).
    pub aws_environment: Option<BTreeMap<String, String>>,
}

impl HostConfig {
    pub fn new(manifest: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            manifest: manifest.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            runtime_config: None,
            sqlite_path: None,
            variables: BTreeMap::new(),
            allow_trap_injection: false,
            echo_logs: false,
            log_dir: None,
            loopback_only: false,
            aws_environment: None,
        }
    }
}

pub struct RunningApp {
    app: Arc<app::AppShared>,
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    /// Set when `start_blocking` made the runtime; shutting down drops it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningApp {
    /// Loads and compiles every component, then serves. Must run on a multi-thread runtime (as
    /// Spin, SQLite calls block a worker).
    pub async fn start(cfg: HostConfig) -> Result<RunningApp> {
        let logs = logs::LogBook::new(cfg.echo_logs, cfg.log_dir.clone())?;
        let app = {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || app::AppShared::load(&cfg, logs)).await??
        };
        let app = Arc::new(app);
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let _ = app.origin.set(addr);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(server::serve(app.clone(), listener, stop_rx));
        Ok(RunningApp { app, addr, stop, runtime: None })
    }

    /// For plain `#[test]` functions: runs the host on a runtime of its own.
    pub fn start_blocking(cfg: HostConfig) -> Result<RunningApp> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
        let mut running = runtime.block_on(Self::start(cfg))?;
        running.runtime = Some(runtime);
        Ok(running)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn app_name(&self) -> &str {
        &self.app.name
    }

    /// The `default` store's SQLite file, when it is on SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.app.default_sqlite.as_deref()
    }

    /// Everything components wrote to stdout/stderr so far, write by write as it arrived (what
    /// `spin up` shows when following), plus `[host]` lines for refused outbound requests and
    /// failed instances.
    pub fn logs(&self) -> String {
        self.app.logs.text()
    }

    /// What `spin up` would have written to `.spin/logs/<component>_<stdout|stderr>.txt` so far.
    pub fn component_log(&self, component: &str, stream: Stdio) -> String {
        self.app.logs.file(component, stream)
    }

    /// What the app's guests asked of its stores so far, by kind, key family and outcome (see
    /// `kv::calls`): take one before and one after the requests to count.
    pub fn kv_calls(&self) -> std::collections::BTreeMap<kv::calls::CallKind, kv::calls::Tally> {
        self.app.kv_calls()
    }

    /// Every (store, key, value) in the configured backends (Redis rows carry their label).
    pub fn kv_dump(&self) -> Result<Vec<(String, String, Vec<u8>)>> {
        let app = self.app.clone();
        std::thread::spawn(move || app.kv_dump()).join().map_err(|_| anyhow::anyhow!("kv_dump panicked"))?
    }

    pub fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
