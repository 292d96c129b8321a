//! Local development identity for regsecrets, with no committed secret: an Ed25519 signing key and
//! an `encryption_keys` value created on first use under `.dev/` (git-ignored, files 0600), the JWKS
//! the service verifies against, and tokens for any tenant and scopes.
//!
//! Tests use [`generate_test_keys_in_memory`] (RS256, ES256 and EdDSA keys, nothing on disk) and
//! the minting helpers of [`DevKeys`] to build every kind of wrong token: expired, foreign issuer,
//! `alg: none`, HMAC keyed with a public key, unknown `kid`, tampered signature.

mod mint;
mod store;

pub mod bench;
pub mod build;

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, Ed25519KeyPair, EdDSAKeyPairLike, RS256KeyPair,
    RSAKeyPairLike,
};
use serde_json::{json, Value};

pub use mint::tamper_signature;
pub use store::Created;

/// The `iss` of local tokens (Spin variable `auth_issuer`).
pub const ISSUER: &str = "regsecrets-devauth-local";
/// The `aud` of local tokens (Spin variable `auth_audience`).
pub const AUDIENCE: &str = "regsecrets";
/// Where `devauth` keeps its files unless told otherwise; git-ignored.
pub const DEFAULT_DIR: &str = ".dev";
/// The id of the generated encryption key in `encryption_keys`.
pub const ENCRYPTION_KEY_ID: &str = "local1";

/// The signing algorithms the service accepts; one key of each may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

/// Signing keys (Ed25519 always; ES256 and RS256 for in-memory test keys) and an `encryption_keys` value.
pub struct DevKeys {
    ed: Ed25519KeyPair,
    es: Option<ES256KeyPair>,
    rsa: Option<RS256KeyPair>,
    encryption_keys: String,
}

impl fmt::Debug for DevKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> =
            [Alg::EdDsa, Alg::Es256, Alg::Rs256].into_iter().filter_map(|alg| self.kid(alg)).collect();
        f.debug_struct("DevKeys").field("kids", &kids).finish_non_exhaustive()
    }
}

/// Ed25519, ES256 and RS256 keys and an encryption key, all in memory: for tests that must not touch disk.
pub fn generate_test_keys_in_memory() -> DevKeys {
    let mut keys = DevKeys::with_ed25519(Ed25519KeyPair::generate(), store::new_encryption_keys());
    let es = ES256KeyPair::generate();
    let es_kid = kid_from("es", &es.public_key().public_key().to_bytes_uncompressed()[1..]);
    keys.es = Some(es.with_key_id(&es_kid));
    let rsa = RS256KeyPair::generate(2048).expect("RSA key generation");
    let rsa_kid = kid_from("rsa", &rsa.public_key().to_components().n);
    keys.rsa = Some(rsa.with_key_id(&rsa_kid));
    keys
}

impl DevKeys {
    /// The keys in `dir`, created there (files 0600) if absent. Existing files are kept.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<DevKeys> {
        Ok(store::load_or_create(dir)?.0)
    }

    /// [`DevKeys::load_or_create`], also telling which files it created.
    pub fn load_or_create_reporting(dir: &Path) -> anyhow::Result<(DevKeys, Created)> {
        store::load_or_create(dir)
    }

    fn with_ed25519(ed: Ed25519KeyPair, encryption_keys: String) -> DevKeys {
        let kid = kid_from("ed", &ed.public_key().to_bytes());
        DevKeys { ed: ed.with_key_id(&kid), es: None, rsa: None, encryption_keys }
    }

    /// The `kid` of the key for `alg`, if this set holds one.
    pub fn kid(&self, alg: Alg) -> Option<&str> {
        match alg {
            Alg::EdDsa => self.ed.key_id().as_deref(),
            Alg::Es256 => self.es.as_ref().and_then(|key| key.key_id().as_deref()),
            Alg::Rs256 => self.rsa.as_ref().and_then(|key| key.key_id().as_deref()),
        }
    }

    /// The public keys as a JWKS document: the value of the Spin variable `auth_jwks`.
    pub fn jwks(&self) -> String {
        let mut keys = Vec::new();
        let ed = self.ed.public_key().to_bytes();
        keys.push(json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid(Alg::EdDsa), "x": b64url(&ed)}));
        if let Some(es) = &self.es {
            let point = es.public_key().public_key().to_bytes_uncompressed();
            keys.push(json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid(Alg::Es256),
                             "x": b64url(&point[1..33]), "y": b64url(&point[33..])}));
        }
        if let Some(rsa) = &self.rsa {
            let public = rsa.public_key().to_components();
            keys.push(json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid(Alg::Rs256),
                             "n": b64url(&public.n), "e": b64url(&public.e)}));
        }
        json!({ "keys": keys }).to_string()
    }

    /// The value of the secret Spin variable `encryption_keys` (one key, id [`ENCRYPTION_KEY_ID`]).
    pub fn encryption_keys(&self) -> &str {
        &self.encryption_keys
    }

    /// The verifier settings matching these keys, as the service builds them from its variables.
    pub fn auth_settings(&self) -> domain::identity::AuthSettings {
        domain::identity::AuthSettings::new(self.jwks(), ISSUER, AUDIENCE)
    }

    /// The Spin variables a local run needs: `auth_jwks`, `auth_issuer`, `auth_audience`, `encryption_keys`.
    pub fn spin_variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("auth_jwks", self.jwks()),
            ("auth_issuer", ISSUER.to_string()),
            ("auth_audience", AUDIENCE.to_string()),
            ("encryption_keys", self.encryption_keys.clone()),
        ]
    }

    /// A valid EdDSA token for `tenant` with these `scope` values (e.g. `regsecrets.admin`), verbatim.
    pub fn token(&self, tenant: &str, scopes: &[&str], ttl: Duration) -> String {
        self.sign(Alg::EdDsa, &self.claims(tenant, scopes, ttl))
    }

    /// The claims of a valid token (`iss`, `aud`, `iat`, `exp`, `tenant`, `scope`), to edit before signing.
    pub fn claims(&self, tenant: &str, scopes: &[&str], ttl: Duration) -> Value {
        let now = unix_now();
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ttl.as_secs(),
            "tenant": tenant,
            "scope": scopes.join(" "),
        })
    }
}

/// Seconds since the Unix epoch, for building `exp`, `nbf` and `iat` values.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0)
}

fn b64url(bytes: &[u8]) -> String {
    domain::jwks::encode_member(bytes)
}

/// A short id derived from the public key, so that a new key never reuses an old key's `kid`.
fn kid_from(prefix: &str, public_key_bytes: &[u8]) -> String {
    format!("{prefix}-{}", b64url(&public_key_bytes[..9]))
}

#[cfg(test)]
mod tests;
