//! Outbound TLS client settings as Spin 4.0.2's outbound-networking factor builds them: by default
//! the platform's roots plus webpki's; a runtime config's `[[client_tls]]` entry replaces that for
//! the named components and hosts. Hosts match the request URI's host exactly (no port, no
//! wildcard, case-sensitive), the first entry naming a (component, host) pair wins, and
//! `ca_roots_file` alone means only those roots.

use anyhow::{ensure, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// One `[[client_tls]]` table, with Spin's field names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsToml {
    pub component_ids: Vec<String>,
    pub hosts: Vec<String>,
    pub ca_use_platform_roots: Option<bool>,
    pub ca_use_webpki_roots: Option<bool>,
    pub ca_roots_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_private_key_file: Option<PathBuf>,
}

/// Every component's TLS settings; components and hosts without an entry share the default.
#[derive(Default)]
pub struct ClientTlsConfigs {
    by_component: HashMap<String, HashMap<String, Arc<ClientConfig>>>,
    default: OnceLock<Arc<ClientConfig>>,
}

impl ClientTlsConfigs {
    /// Builds every entry now, so a bad file fails at load as in Spin. Relative paths are relative
    /// to the runtime-config file's directory.
    pub fn new(entries: Vec<ClientTlsToml>, config_dir: &Path) -> Result<ClientTlsConfigs> {
        let mut by_component: HashMap<String, HashMap<String, Arc<ClientConfig>>> = HashMap::new();
        for entry in entries {
            ensure!(!entry.component_ids.is_empty(), "'component_ids' list may not be empty");
            ensure!(!entry.hosts.is_empty(), "'hosts' list may not be empty");
            for host in &entry.hosts {
                validate_host(host)?;
            }
            let config = Arc::new(build(&entry, config_dir)?);
            for component in &entry.component_ids {
                let hosts = by_component.entry(component.clone()).or_default();
                for host in &entry.hosts {
                    hosts.entry(host.clone()).or_insert_with(|| config.clone());
                }
            }
        }
        Ok(ClientTlsConfigs { by_component, default: OnceLock::new() })
    }

    /// The settings for a request by `component` to `host` (the URI's host, as written).
    pub fn get(&self, component: &str, host: &str) -> Arc<ClientConfig> {
        if let Some(config) = self.by_component.get(component).and_then(|hosts| hosts.get(host)) {
            return config.clone();
        }
        // Built on first use: reading the platform's store costs milliseconds per app start.
        self.default
            .get_or_init(|| Arc::new(client_config(true, true, Vec::new(), None).expect("the default roots load")))
            .clone()
    }
}

fn validate_host(host: &str) -> Result<()> {
    let authority: http::uri::Authority = host.parse().with_context(|| format!("invalid TLS 'host' {host:?}"))?;
    ensure!(authority.port().is_none(), "invalid TLS 'host' {host:?}; ports not currently supported");
    Ok(())
}

fn build(entry: &ClientTlsToml, dir: &Path) -> Result<ClientConfig> {
    let (platform, webpki) = match (entry.ca_use_platform_roots, entry.ca_use_webpki_roots) {
        (Some(platform), Some(webpki)) => (platform, webpki),
        (Some(platform), None) => (platform, false),
        (None, Some(webpki)) => (false, webpki),
        (None, None) => (entry.ca_roots_file.is_none(), false),
    };
    let roots = entry.ca_roots_file.as_ref().map(|p| load_certs(&dir.join(p))).transpose()?.unwrap_or_default();
    let client_cert = match (&entry.client_cert_file, &entry.client_private_key_file) {
        (Some(cert), Some(key)) => Some((load_certs(&dir.join(cert))?, load_key(&dir.join(key))?)),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!("client_cert_file specified without client_private_key_file"),
        (None, Some(_)) => anyhow::bail!("client_private_key_file specified without client_cert_file"),
    };
    client_config(platform, webpki, roots, client_cert).context("error building TLS client config")
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .with_context(|| format!("failed to load certificate(s) from '{}'", path.display()))
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("failed to load key from '{}'", path.display()))
}

/// The process-independent crypto provider: ring, as Spin's and wasmtime's rustls use.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The default roots (platform and webpki), for the host's own clients (DynamoDB).
pub(crate) fn default_client_config() -> Result<ClientConfig> {
    client_config(true, true, Vec::new(), None)
}

/// Spin verifies with the platform verifier plus extra roots; here the platform's roots are read
/// from its store (rustls-native-certs) into the same root set.
fn client_config(
    platform: bool,
    webpki: bool,
    extra: Vec<CertificateDer<'static>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig> {
    ensure!(
        platform || webpki || !extra.is_empty(),
        "at least one of 'use_platform_roots', 'use_webpki_roots', or 'root_certificates' must be set"
    );
    let mut roots = rustls::RootCertStore::empty();
    for cert in extra {
        roots.add(cert)?;
    }
    if webpki {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if platform {
        // Unreadable entries are skipped, as the platform verifier does.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = builder.with_root_certificates(roots);
    Ok(match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> ClientTlsToml {
        toml::from_str(toml_text).unwrap()
    }

    fn ca_file(dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        path
    }

    #[test]
    fn entries_apply_to_their_components_and_exact_hosts_only() {
        let dir = tempfile::tempdir().unwrap();
        ca_file(dir.path());
        let configs = ClientTlsConfigs::new(
            vec![entry("component_ids = [\"verify\"]\nhosts = [\"registry.local\", \"127.0.0.1\"]\nca_roots_file = \"ca.pem\"\n")],
            dir.path(),
        )
        .unwrap();
        let custom = configs.get("verify", "registry.local");
        assert!(Arc::ptr_eq(&custom, &configs.get("verify", "127.0.0.1")));
        let default = configs.get("create", "registry.local");
        assert!(!Arc::ptr_eq(&custom, &default), "another component gets the default");
        assert!(Arc::ptr_eq(&default, &configs.get("verify", "REGISTRY.local")), "hosts match case-sensitively");
        assert!(Arc::ptr_eq(&default, &configs.get("verify", "other.local")));
    }

    #[test]
    fn refuses_what_spin_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |text: &str| ClientTlsConfigs::new(vec![entry(text)], dir.path()).is_err();
        assert!(bad("component_ids = []\nhosts = [\"a\"]\n"));
        assert!(bad("component_ids = [\"v\"]\nhosts = []\n"));
        assert!(bad("component_ids = [\"v\"]\nhosts = [\"a:443\"]\n"), "ports are not supported");
        assert!(bad("component_ids = [\"v\"]\nhosts = [\"a\"]\nca_roots_file = \"missing.pem\"\n"));
        assert!(bad("component_ids = [\"v\"]\nhosts = [\"a\"]\nca_use_platform_roots = false\n"));
        assert!(bad("component_ids = [\"v\"]\nhosts = [\"a\"]\nclient_cert_file = \"c.pem\"\n"));
        assert!(toml::from_str::<ClientTlsToml>("component_ids = [\"v\"]\nhosts = [\"a\"]\nnope = 1\n").is_err());
    }
}
