//! Credentials at pull time, natively: what `regsecrets-credential-provider` (the kubelet's exec
//! plugin) and `docker-credential-regsecrets` (the Docker credential helper) share: configuration,
//! the bearer token, and the one call they make, `GET /v2/pull/credentials`.
//!
//! Nothing here writes a credential anywhere but the answer on stdout: errors name the service's
//! status and error code, never a token, password or response body.

pub mod config;
pub mod helper;
pub mod provider;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Deserialize;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

pub use config::{CacheKeyType, Config, Credential};

/// The request header that carries a pod's service-account token to the service (the kubelet
/// hands it to the provider with `tokenAttributes`), for workload identity.
pub const WORKLOAD_TOKEN_HEADER: &str = "x-regsecrets-service-account-token";
pub const PULL_CREDENTIALS: &str = "/v2/pull/credentials";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Flags or environment.
    Config(String),
    /// The input on stdin.
    Input(String),
    /// Reading the token or CA file, or getting a token from the token endpoint.
    Credential(String),
    /// The service could not be reached or answered something else than expected.
    Service(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Config(what) => write!(f, "configuration: {what}"),
            Fault::Input(what) => write!(f, "input: {what}"),
            Fault::Credential(what) => write!(f, "credential: {what}"),
            Fault::Service(what) => write!(f, "service: {what}"),
        }
    }
}

/// What the selector of a call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask<'a> {
    Image(&'a str),
    Registry(&'a str),
    All,
}

/// One credential of the service's answer.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct PullCredential {
    pub secret: String,
    pub server: String,
    #[serde(rename = "match")]
    pub pattern: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PullCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("secret", &self.secret).field("match", &self.pattern).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    pub cache_seconds: u64,
    pub credentials: Vec<PullCredential>,
}

/// A bearer token and when it stops being valid (Unix seconds), when known.
pub struct Bearer {
    pub token: String,
    pub expires_at: Option<u64>,
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The `exp` claim of a JWT, read without verifying it (the service verifies; this only bounds
/// how long an answer obtained with it may be cached).
pub fn jwt_expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_u64()
}

pub struct Service {
    config: Config,
    agent: ureq::Agent,
}

fn root_certs(ca_file: &std::path::Path) -> Result<RootCerts, Fault> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| Fault::Config(format!("cannot read the CA file {}: {}", ca_file.display(), e.kind())))?;
    let extra: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
            _ => None,
        })
        .collect();
    if extra.is_empty() {
        return Err(Fault::Config(format!("the CA file {} holds no PEM certificate", ca_file.display())));
    }
    let mut roots: Vec<Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    roots.extend(extra);
    Ok(RootCerts::new_with_certs(&roots))
}

impl Service {
    /// The platform's roots, plus the CA file's certificates when one is configured (without one,
    /// Mozilla's roots compiled in, which spares reading the system store on every pull).
    pub fn new(config: Config) -> Result<Service, Fault> {
        let mut tls = TlsConfig::builder();
        if let Some(ca_file) = &config.ca_file {
            tls = tls.root_certs(root_certs(ca_file)?);
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("regsecrets-pull/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Service { config, agent })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The token to call the service with: the token file as it is now, or a fresh one from the
    /// token endpoint.
    pub fn bearer(&self) -> Result<Bearer, Fault> {
        match &self.config.credential {
            Credential::TokenFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Fault::Credential(format!("cannot read the token file {}: {}", path.display(), e.kind()))
                })?;
                let token = text.trim().to_owned();
                if token.is_empty() {
                    return Err(Fault::Credential(format!("the token file {} is empty", path.display())));
                }
                Ok(Bearer { expires_at: jwt_expiry(&token), token })
            }
            Credential::Client { id, secret, token_url, scope } => {
                self.client_credentials(id, secret, token_url, scope)
            }
        }
    }

    fn client_credentials(&self, id: &str, secret: &str, url: &str, scope: &Option<String>) -> Result<Bearer, Fault> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: Option<u64>,
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", form(id), form(secret)));
        let mut fields = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            fields.push(("scope", scope));
        }
        let mut response = self
            .agent
            .post(url)
            .header("authorization", format!("Basic {basic}"))
            .header("accept", "application/json")
            .send_form(fields)
            .map_err(|e| Fault::Credential(format!("the token endpoint could not be reached: {}", kind(&e))))?;
        if response.status() != 200 {
            return Err(Fault::Credential(format!("the token endpoint answered {}", response.status())));
        }
        let answer: TokenResponse = serde_json::from_str(&read_body(&mut response))
            .map_err(|_| Fault::Credential("the token endpoint's answer has no access_token".into()))?;
        let by_lifetime = answer.expires_in.map(|s| unix_now() + s);
        let expires_at = match (by_lifetime, jwt_expiry(&answer.access_token)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Bearer { token: answer.access_token, expires_at })
    }

    /// `GET /v2/pull/credentials`: `Ok(None)` when the service holds nothing for it (404
    /// `NoMatchingCredentials`), so callers fall back to pulling anonymously.
    pub fn resolve(&self, ask: &Ask, bearer: &Bearer, workload_token: Option<&str>) -> Result<Option<Resolved>, Fault> {
        let mut request = self
            .agent
            .get(format!("{}{PULL_CREDENTIALS}", self.config.url))
            .header("authorization", format!("Bearer {}", bearer.token))
            .header("accept", "application/json");
        request = match ask {
            Ask::Image(image) => request.query("image", *image),
            Ask::Registry(registry) => request.query("registry", *registry),
            Ask::All => request.query("all", "true"),
        };
        if let Some(token) = workload_token {
            request = request.header(WORKLOAD_TOKEN_HEADER, token);
        }
        let mut response = request
            .call()
            .map_err(|e| Fault::Service(format!("{} could not be reached: {}", self.config.url, kind(&e))))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(&read_body(&mut response)).unwrap_or_default();
        let code = body.pointer("/error/code").and_then(|c| c.as_str()).unwrap_or("").to_owned();
        match status {
            200 => serde_json::from_value(body)
                .map(Some)
                .map_err(|_| Fault::Service("the answer is not the credentials the API documents".into())),
            404 if code == "NoMatchingCredentials" => Ok(None),
            _ => {
                let id = body.pointer("/error/requestId").and_then(|c| c.as_str()).unwrap_or("");
                Err(Fault::Service(format!("answered {status} {code} (request id {id})")))
            }
        }
    }
}

/// At most 1 MiB of an answer (an empty string if it is longer or unreadable).
fn read_body(response: &mut ureq::http::Response<ureq::Body>) -> String {
    response.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default()
}

/// `application/x-www-form-urlencoded` of a client id or secret, as RFC 6749 §2.3.1 asks before
/// Basic encoding.
fn form(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What went wrong with a request, by kind: never a URL with credentials or a body.
fn kind(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(e) => format!("{}", e.kind()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Tls(what) => format!("TLS: {what}"),
        ureq::Error::Rustls(e) => format!("TLS: {e}"),
        _ => "request failed".into(),
    }
}
