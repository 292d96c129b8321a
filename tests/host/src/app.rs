//! Loading an app: manifest, variables, key-value backends, and each component compiled once and
//! pre-linked (`InstancePre`), as `spin up` does at start.

use crate::allowed_hosts::AllowedHosts;
use crate::kv::{self, runtime_config::RuntimeConfig, Backend};
use crate::logs::LogBook;
use crate::manifest::{Manifest, RouteConfig};
use crate::network_config::NetworkPolicy;
use crate::routes::Router;
use crate::state::InstanceState;
use crate::variables::Variables;
use crate::HostConfig;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub struct ComponentInfo {
    pub id: String,
    pub allowed_stores: Arc<HashSet<String>>,
    pub allowed_hosts: AllowedHosts,
    pub environment: Vec<(String, String)>,
}

pub struct LoadedComponent {
    pub info: Arc<ComponentInfo>,
    pub pre: ProxyPre<InstanceState>,
}

pub struct AppShared {
    pub name: String,
    pub engine: Engine,
    pub components: HashMap<String, LoadedComponent>,
    pub router: Router,
    pub variables: Variables,
    pub backends: Arc<BTreeMap<String, Backend>>,
    pub logs: LogBook,
    /// Blocked networks, client TLS and the loopback-only safety net, for requests that leave.
    pub network: NetworkPolicy,
    pub allow_trap_injection: bool,
    pub default_sqlite: Option<PathBuf>,
    /// Where the app serves, known once the listener is bound.
    pub origin: OnceLock<std::net::SocketAddr>,
}

fn linker(engine: &Engine) -> Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    let err = |e: wasmtime::Error| anyhow::anyhow!("{e:?}");
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
    crate::bindings::SpinHost::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s| s).map_err(err)?;
    Ok(linker)
}

impl AppShared {
    pub fn load(cfg: &HostConfig, logs: LogBook) -> Result<AppShared> {
        let manifest = Manifest::load(&cfg.manifest)?;
        let manifest_dir = cfg
            .manifest
            .parent()
            .map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p })
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();

        let variables = Variables::resolve(&manifest, &cfg.variables, |k| std::env::var(k).ok())?;

        let runtime_config = match &cfg.runtime_config {
            Some(p) => RuntimeConfig::load(p)?,
            None => RuntimeConfig::default(),
        };
        let default_sqlite =
            cfg.sqlite_path.clone().unwrap_or_else(|| manifest_dir.join(".spin").join("sqlite_key_value.db"));
        let config_dir = cfg.runtime_config.as_ref().and_then(|p| p.parent());
        let aws_environment = cfg.aws_environment.clone();
        let env = move |name: &str| match &aws_environment {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        let backends = kv::runtime_config::backends(&runtime_config, config_dir, &default_sqlite, &env)?;
        let network = NetworkPolicy::load(cfg.runtime_config.as_deref(), cfg.loopback_only)?;

        let public = manifest.trigger.http.iter().filter_map(|t| match &t.route {
            RouteConfig::Route(r) => Some((t.component.as_str(), r.as_str())),
            RouteConfig::Private { .. } => None,
        });
        let router = Router::build(public)?;

        let engine = crate::engine::engine()?;
        let linker = linker(&engine)?;
        let ids: Vec<String> = manifest.component.keys().cloned().collect();
        let mut components = HashMap::new();
        for (id, decl) in &manifest.component {
            kv::runtime_config::check_labels(&backends, id, &decl.key_value_stores)?;
            let allowed_hosts = AllowedHosts::parse_templated(&decl.allowed_outbound_hosts, &ids, &variables)
                .with_context(|| format!("component {id:?}: invalid allowed_outbound_hosts"))?;
            let path = manifest.source_path(&manifest_dir, decl);
            let component = Component::from_file(&engine, &path)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .with_context(|| format!("cannot compile component {id:?} from {}", path.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(ProxyPre::new)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .with_context(|| format!("component {id:?} ({}) cannot be loaded", path.display()))?;
            let info = ComponentInfo {
                id: id.clone(),
                allowed_stores: Arc::new(decl.key_value_stores.iter().cloned().collect()),
                allowed_hosts,
                environment: decl.environment.clone().into_iter().collect(),
            };
            components.insert(id.clone(), LoadedComponent { info: Arc::new(info), pre });
        }
        let default_sqlite = match backends.get("default") {
            Some(Backend::Sqlite(s)) => s.path().map(|p| p.to_path_buf()),
            _ => None,
        };
        Ok(AppShared {
            name: manifest.application.name.clone(),
            engine,
            components,
            router,
            variables,
            backends: Arc::new(backends),
            logs,
            network,
            allow_trap_injection: cfg.allow_trap_injection,
            default_sqlite,
            origin: OnceLock::new(),
        })
    }

    /// What this app's guests asked of its stores so far, summed over every configured backend
    /// (see `kv::calls`).
    pub fn kv_calls(&self) -> BTreeMap<kv::calls::CallKind, kv::calls::Tally> {
        let mut seen = HashSet::new();
        let mut out: BTreeMap<kv::calls::CallKind, kv::calls::Tally> = BTreeMap::new();
        for backend in self.backends.values() {
            if !seen.insert(backend.calls() as *const kv::calls::Calls) {
                continue;
            }
            for (kind, tally) in backend.calls().snapshot() {
                let sum = out.entry(kind).or_default();
                sum.calls += tally.calls;
                sum.read_units += tally.read_units;
                sum.write_units += tally.write_units;
            }
        }
        out
    }

    /// Every (store, key, value) row of every backend; Redis and DynamoDB have no store column,
    /// so their rows carry the label they were configured under.
    pub fn kv_dump(&self) -> Result<Vec<(String, String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut seen_sqlite = HashSet::new();
        let mut seen_redis = HashSet::new();
        let mut seen_dynamo = HashSet::new();
        for (label, backend) in self.backends.iter() {
            match backend {
                Backend::Sqlite(s) => {
                    if seen_sqlite.insert(Arc::as_ptr(s)) {
                        out.extend(s.dump()?);
                    }
                }
                Backend::Redis(r) => {
                    if seen_redis.insert(r.url().to_string()) {
                        out.extend(r.dump()?.into_iter().map(|(k, v)| (label.clone(), k, v)));
                    }
                }
                Backend::Dynamo(d) => {
                    if seen_dynamo.insert(d.table().to_owned()) {
                        let d = d.clone();
                        let rows =
                            block_on_host(async move { d.dump().await }).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                        out.extend(rows.into_iter().map(|(k, v)| (label.clone(), k, v)));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Runs a host future to completion from synchronous code (tests' store dumps), on a runtime of
/// its own in another thread, so that it works inside and outside the host's runtime alike.
fn block_on_host<T: Send + 'static>(future: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
    })
    .join()
    .expect("the dump thread")
}
