//! A token server for distribution's `auth: token` (the Docker Registry v2 token spec), as
//! Docker Hub, GHCR and Quay run one: `GET <realm>?service=..&scope=repository:<name>:<actions>`
//! with HTTP Basic credentials answers `{"token", "access_token", "expires_in", "issued_at"}`.
//!
//! The JWT is what distribution 2.8.2 (`registry/auth/token`) checks: ES256 signed by a key whose
//! certificate is the registry's `rootcertbundle`, header `kid` = the libtrust key id of that
//! public key, claims `iss` = issuer, `aud` = service (a string), `sub`, `exp`/`nbf`/`iat`, `jti`,
//! and `access` = the requested actions this user's grants allow (possibly none).

use super::serve::{Reply, Request, Server};
use base64::Engine as _;
use jwt_simple::prelude::*;
use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData as _};
use sha2::Digest as _;
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "regsecrets-test-registry";
pub const ISSUER: &str = "regsecrets-test-token-server";

/// Who may log in, and which repositories each may do what with.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// (username, password)
    pub users: Vec<(String, String)>,
    /// (username, repository, actions such as "pull", "push")
    pub grants: Vec<(String, String, Vec<String>)>,
}

impl TokenPolicy {
    pub fn user(mut self, name: &str, password: &str) -> TokenPolicy {
        self.users.push((name.into(), password.into()));
        self
    }

    pub fn grant(mut self, name: &str, repository: &str, actions: &[&str]) -> TokenPolicy {
        self.grants.push((name.into(), repository.into(), actions.iter().map(|a| a.to_string()).collect()));
        self
    }

    fn allowed(&self, user: &str, repository: &str, action: &str) -> bool {
        self.grants.iter().any(|(u, r, actions)| u == user && r == repository && actions.iter().any(|a| a == action))
    }
}

/// One token request as the server saw it (never the password).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// The Basic user, when the credentials were right; `None` for refused requests.
    pub user: Option<String>,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// The `access` entries granted, as `repository:<name>:<actions,>`.
    pub granted: Vec<String>,
}

pub struct TokenServer {
    server: Server,
    signing_cert_pem: String,
    log: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    /// Starts on a loopback port over TLS with `tls`.
    pub fn start(policy: TokenPolicy, tls: Arc<rustls::ServerConfig>) -> TokenServer {
        let signing = KeyPair::generate().expect("signing key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, ISSUER);
        let signing_cert_pem = params.self_signed(&signing).expect("signing cert").pem();
        let key = ES256KeyPair::from_pem(&signing.serialize_pem())
            .expect("ES256 key")
            .with_key_id(&libtrust_key_id(&signing.subject_public_key_info()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let server = Server::start(Some(tls), Arc::new(move |req: &Request| issue(&policy, &key, req, &seen)));
        TokenServer { server, signing_cert_pem, log }
    }

    /// The realm to configure in the registry. Named `localhost`, not `127.0.0.1`: the verify
    /// component refuses loopback IP literals before connecting (its SSRF rule), names it lets
    /// through, and the test host resolves them (to the loopback address this server listens on).
    pub fn realm(&self) -> String {
        format!("https://localhost:{}/token", self.server.port())
    }

    /// The certificate of the signing key (the registry's `rootcertbundle`).
    pub fn signing_cert_pem(&self) -> &str {
        &self.signing_cert_pem
    }

    /// Every token request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }
}

fn issue(policy: &TokenPolicy, key: &ES256KeyPair, req: &Request, log: &Mutex<Vec<TokenRequest>>) -> Reply {
    let scopes = req.query_all("scope");
    let service = req.query_all("service").into_iter().next();
    let user = basic_credentials(req).filter(|(u, p)| policy.users.iter().any(|(pu, pp)| pu == u && pp == p));
    let Some((user, _)) = user else {
        log.lock().unwrap().push(TokenRequest { user: None, service, scopes, granted: Vec::new() });
        let body = serde_json::json!({"details": "incorrect username or password"});
        return Reply::json(401, &body).header("WWW-Authenticate", "Basic realm=\"token\"");
    };
    if req.path() != "/token" || service.as_deref() != Some(SERVICE) {
        return Reply::json(400, &serde_json::json!({"details": "unknown service"}));
    }
    let mut access = Vec::new();
    let mut granted = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split(' ')) {
        let Some((kind, rest)) = scope.split_once(':') else { continue };
        let Some((name, actions)) = rest.rsplit_once(':') else { continue };
        let allowed: Vec<&str> =
            actions.split(',').filter(|a| kind == "repository" && policy.allowed(&user, name, a)).collect();
        if !allowed.is_empty() {
            access.push(serde_json::json!({"type": kind, "name": name, "actions": allowed}));
            granted.push(format!("{kind}:{name}:{}", allowed.join(",")));
        }
    }
    let claims = Claims::with_custom_claims(serde_json::json!({ "access": access }), Duration::from_mins(5))
        .with_issuer(ISSUER)
        .with_subject(&user)
        .with_audience(SERVICE)
        .with_jwt_id(format!("{:x}", rand_id()));
    let token = key.sign(claims).expect("sign");
    log.lock().unwrap().push(TokenRequest { user: Some(user), service, scopes, granted });
    Reply::json(
        200,
        &serde_json::json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"}),
    )
}

fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let encoded = req.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    nanos ^ ((N.fetch_add(1, Ordering::Relaxed) as u128) << 64)
}

/// libtrust's key id: the first 240 bits of SHA-256 of the DER SubjectPublicKeyInfo, base32
/// without padding, in groups of four joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = sha2::Sha256::digest(spki_der);
    let encoded = base32(&digest[..30]);
    let groups: Vec<&str> = (0..encoded.len()).step_by(4).map(|i| &encoded[i..(i + 4).min(encoded.len())]).collect();
    groups.join(":")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn key_ids_have_libtrusts_shape() {
        let id = libtrust_key_id(b"any bytes");
        assert_eq!(id.len(), 48 + 11);
        assert_eq!(id.split(':').count(), 12);
    }
}
