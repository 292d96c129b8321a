//! The end-to-end harness: builds the components if needed, runs the app in the Spin-faithful
//! host on SQLite, Redis or DynamoDB, mints tokens, and drives the API over real HTTP.

mod build;
mod client;
pub mod figures;
pub mod hello;
pub mod invariants;
pub mod minting;
pub mod nodes;
pub mod oidc;
pub mod pull;
pub mod registry;
pub mod tokens;
pub mod wire;

pub use client::{Call, Reply};
pub use tokens::Tokens;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use testhost::{HostConfig, RunningApp};

pub const SECRETS: &str = "/v2/admin/dockerRegistrySecrets";

/// Where the app keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// Spin's Redis backend, through a runtime-config file in Spin's format.
    Redis(String),
    /// Spin's DynamoDB backend (`aws_dynamo`, `consistent_read = true`) on the endpoint `url`
    /// (moto's server in CI), in table `table`, which the harness creates if needed; hosts given
    /// the same table share one store.
    Dynamo {
        url: String,
        table: String,
    },
}

impl Backend {
    /// DynamoDB at `url`, in a table of its own.
    pub fn dynamo(url: &str) -> Backend {
        static TABLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Backend::Dynamo { url: url.to_owned(), table: format!("regsecrets-{}-{n}", std::process::id()) }
    }

    /// Every backend this run can reach: SQLite, and Redis and DynamoDB when configured (CI sets
    /// `REDIS_URL` and `REGSECRETS_DYNAMO_URL`); notes on stderr which are left out.
    pub fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Sqlite];
        match TestApp::redis_url() {
            Some(url) => all.push(Backend::Redis(url)),
            None => eprintln!("note: REDIS_URL is not set, so Redis was left out (.ci/run starts a Redis)"),
        }
        match TestApp::dynamo_url() {
            Some(url) => all.push(Backend::dynamo(&url)),
            None => eprintln!("note: REGSECRETS_DYNAMO_URL is not set, so DynamoDB was left out (.ci/run starts moto)"),
        }
        all
    }
}

/// The `AWS_*` environment a host on DynamoDB at `url` reads (moto takes any credentials).
fn aws_environment(url: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("AWS_ENDPOINT_URL".to_owned(), url.to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
    ])
}

/// The runtime-config table of a DynamoDB store, as an operator writes it (credentials from the
/// environment, as on EKS).
fn dynamo_store(table: &str) -> String {
    format!("[key_value_store.default]\ntype = \"aws_dynamo\"\nregion = \"us-east-1\"\ntable = \"{table}\"\nconsistent_read = true\n")
}

/// The runtime-config text of `backend`'s store (`None` for SQLite, which the host is handed by
/// path) and the `AWS_*` environment a host on it needs; creates the DynamoDB table if needed.
pub(crate) fn store_config(backend: &Backend) -> (Option<String>, Option<BTreeMap<String, String>>) {
    match backend {
        Backend::Sqlite => (None, None),
        Backend::Redis(url) => (Some(format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n")), None),
        Backend::Dynamo { url, table } => {
            create_dynamo_table(url, table);
            (Some(dynamo_store(table)), Some(aws_environment(url)))
        }
    }
}

fn create_dynamo_table(url: &str, table: &str) {
    let config: testhost::kv::runtime_config::RuntimeConfig = toml::from_str(&dynamo_store(table)).expect("config");
    let testhost::kv::runtime_config::StoreConfig::AwsDynamo(store) = &config.key_value_store["default"] else {
        unreachable!()
    };
    let env = aws_environment(url);
    let kv = testhost::kv::dynamo::DynamoKv::new(store, &|name| env.get(name).cloned()).expect("DynamoDB store");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(kv.create_table()).unwrap_or_else(|e| panic!("creating table {table} at {url}: {e:?}"));
}

#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub lease_ms: u64,
    pub trap_injection: bool,
    /// `None` leaves `encryption_keys` unset (to test that endpoints refuse, never fall back).
    pub encryption_keys: Option<String>,
    /// An existing SQLite file to share with another host (two "nodes"), when on SQLite.
    pub sqlite_path: Option<PathBuf>,
    /// Runtime-config TOML for outbound networking (`[outbound_networking]`, `[[client_tls]]`),
    /// added to the runtime-config file the harness writes (see `registry`).
    pub network_config: Option<String>,
    /// Where the app listens (`None`: a free port the host picks). The console's sign-in needs
    /// its callback URL, and so its port, before the app starts: see [`free_port`].
    pub listen: Option<std::net::SocketAddr>,
}

/// A loopback port free right now, for an app whose URL must be known before it starts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::Sqlite,
            lease_ms: 10_000,
            trap_injection: false,
            encryption_keys: Some(test_encryption_keys("k1")),
            sqlite_path: None,
            network_config: None,
            listen: None,
        }
    }
}

/// A fixed, test-only keyring value: `<id>:<base64 of 32 bytes>`.
pub fn test_encryption_keys(id: &str) -> String {
    use base64::Engine;
    let key: Vec<u8> =
        (0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(id.len() as u8 + id.as_bytes()[id.len() - 1])).collect();
    format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode(key))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

pub struct TestApp {
    pub app: RunningApp,
    pub tokens: Tokens,
    pub options: Options,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn start(options: Options) -> TestApp {
        Self::start_with(options, Tokens::default(), BTreeMap::new())
    }

    /// Starts the app with these token keys and extra application variables.
    pub fn start_with(options: Options, tokens: Tokens, extra: BTreeMap<String, String>) -> TestApp {
        Self::start_from(repo_root().join("spin.toml"), options, tokens, extra)
    }

    /// As [`TestApp::start_with`], from another manifest (the latency bench adds a hello-world).
    pub fn start_from(manifest: PathBuf, options: Options, tokens: Tokens, extra: BTreeMap<String, String>) -> TestApp {
        build::ensure_components();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = HostConfig::new(manifest);
        config.allow_trap_injection = options.trap_injection;
        config.echo_logs = std::env::var_os("E2E_ECHO_LOGS").is_some();
        match &options.backend {
            Backend::Sqlite => {
                config.sqlite_path = Some(options.sqlite_path.clone().unwrap_or_else(|| dir.path().join("kv.db")))
            }
            shared => {
                let (store, environment) = store_config(shared);
                let file = dir.path().join("runtime-config.toml");
                std::fs::write(&file, store.expect("a shared store's runtime config")).expect("runtime config");
                config.runtime_config = Some(file);
                config.aws_environment = environment;
            }
        }
        if let Some(network) = &options.network_config {
            let file = dir.path().join("runtime-config.toml");
            let mut text = std::fs::read_to_string(&file).unwrap_or_default();
            text.push_str(network);
            std::fs::write(&file, text).expect("runtime config");
            config.runtime_config = Some(file);
        }
        // Tests may reach loopback only: nothing here ever contacts ghcr.io, docker.io or any other host.
        config.loopback_only = true;
        if let Some(listen) = options.listen {
            config.listen = listen;
        }
        let mut variables = BTreeMap::from([
            ("auth_jwks".to_owned(), tokens.jwks()),
            ("auth_issuer".to_owned(), tokens::ISSUER.to_owned()),
            ("auth_audience".to_owned(), tokens::AUDIENCE.to_owned()),
            ("tenant_lock_lease_ms".to_owned(), options.lease_ms.to_string()),
            // Required by spin.toml; an empty value stands for "not configured".
            ("encryption_keys".to_owned(), options.encryption_keys.clone().unwrap_or_default()),
        ]);
        variables.extend(extra);
        config.variables = variables;
        let app = RunningApp::start_blocking(config).expect("the host starts the app");
        TestApp { app, tokens, options, _dir: dir }
    }

    /// One app per test binary, on SQLite; tests keep apart by using tenants of their own.
    pub fn shared() -> &'static TestApp {
        static APP: OnceLock<TestApp> = OnceLock::new();
        APP.get_or_init(|| TestApp::start(Options::default()))
    }

    /// The Redis backend, when a server is configured (CI sets `REDIS_URL`).
    pub fn redis_url() -> Option<String> {
        std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
    }

    /// The DynamoDB endpoint, when one is configured (CI starts moto's server and sets
    /// `REGSECRETS_DYNAMO_URL`).
    pub fn dynamo_url() -> Option<String> {
        std::env::var("REGSECRETS_DYNAMO_URL").ok().filter(|u| !u.is_empty())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base_url())
    }

    pub fn call(&self, method: &str, path: &str) -> Call {
        Call::new(method, self.url(path))
    }

    /// `POST` the collection: create a secret.
    pub fn create(&self, token: &str, body: &serde_json::Value) -> Reply {
        self.call("POST", SECRETS).bearer(token).json(body).send()
    }

    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.tokens.token(tenant, scopes)
    }

    /// Every row of the raw store, for "nothing changed" and "no plaintext" checks.
    pub fn raw_store(&self) -> Vec<(String, String, Vec<u8>)> {
        let mut rows = self.app.kv_dump().expect("store dump");
        rows.sort();
        rows
    }

    /// The raw store's rows whose keys belong to this tenant (the prefix is the domain's).
    pub fn tenant_rows(&self, tenant: &str) -> Vec<(String, Vec<u8>)> {
        let prefix = format!("{}:", tenant_prefix(tenant));
        self.raw_store().into_iter().filter(|(_, k, _)| k.starts_with(&prefix)).map(|(_, k, v)| (k, v)).collect()
    }

    /// How many slots of the verified-token cache (`auth:cache:*`) hold this token's digest.
    pub fn cached_token_entries(&self, token: &str) -> usize {
        use sha2::{Digest, Sha256};
        let digest: String = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        self.raw_store()
            .into_iter()
            .filter(|(_, key, value)| {
                key.starts_with("auth:cache:") && String::from_utf8_lossy(value).contains(&digest)
            })
            .count()
    }

    pub fn logs(&self) -> String {
        self.app.logs()
    }
}

/// Runs `request(i)` for `n` threads released together; returns their results in order.
pub fn at_once<T: Send + 'static>(n: usize, request: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let request = std::sync::Arc::new(request);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, request) = (barrier.clone(), request.clone());
            std::thread::spawn(move || {
                barrier.wait();
                request(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

pub fn tenant_prefix(tenant: &str) -> String {
    domain::store::TenantKeys::new(&domain::name::TenantId::parse(tenant).expect("test tenants are valid"))
        .prefix()
        .to_owned()
}

/// A tenant id of the test's own, so tests sharing an app never see each other's secrets.
pub fn unique_tenant(label: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{label}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A structured-form create body.
pub fn structured(name: &str, registry: &str, username: &str, password: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "registry": registry, "username": username, "password": password})
}
