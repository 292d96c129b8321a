//! A throwaway CA for one test process, and certificates signed by it for `localhost`,
//! `127.0.0.1` and `::1`, written to a temp dir in the forms each peer reads.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The names every server certificate here is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub struct Pki {
    dir: tempfile::TempDir,
    pub ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl Pki {
    /// A fresh CA named `label` and a server certificate signed by it.
    pub fn new(label: &str) -> Arc<Pki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("regsecrets test CA ({label})"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA cert");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &*ca).expect("server cert");

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).expect("write CA");
        std::fs::write(dir.path().join("server.crt"), cert.pem()).expect("write cert");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write key");
        // skopeo reads every *.crt of a directory as a CA (and *.cert/*.key as client certs).
        std::fs::create_dir(dir.path().join("trust")).expect("trust dir");
        std::fs::write(dir.path().join("trust/ca.crt"), ca.pem()).expect("write CA");
        Arc::new(Pki {
            ca_pem: ca.pem(),
            server_chain: vec![cert.der().clone()],
            server_key_der: key.serialize_der(),
            dir,
        })
    }

    /// The CA certificate (PEM): what `[[client_tls]] ca_roots_file` points at.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A directory holding only `ca.crt`, for skopeo's `--dest-cert-dir`.
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls server config with the server certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rustls::pki_types::PrivateKeyDer::try_from(self.server_key_der.clone()).expect("server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .expect("server config");
        Arc::new(config)
    }

    /// Runtime-config TOML (Spin's `[[client_tls]]`) that makes `component` trust this CA for
    /// `127.0.0.1` and `localhost`, and nothing else.
    pub fn client_tls_toml(&self, component: &str) -> String {
        format!(
            "[[client_tls]]\ncomponent_ids = [\"{component}\"]\nhosts = [\"127.0.0.1\", \"localhost\"]\nca_roots_file = {:?}\n",
            self.ca_file().display().to_string()
        )
    }

    /// An HTTPS client for the tests themselves that trusts this CA (statuses are not errors).
    pub fn agent(&self) -> ureq::Agent {
        let ca = ureq::tls::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA pem").to_owned();
        let tls =
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca]))).build();
        ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into()
    }
}
