//! Tokens for the tests, from devauth's in-memory keys (Ed25519, ES256 and RS256 in one JWKS).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use devauth::DevKeys;
pub use devauth::{Alg, AUDIENCE, ISSUER};
use serde_json::Value;

const TTL: Duration = Duration::from_secs(3600);

/// A key set and what it signs. Cloning shares the keys, so two hosts can trust the same issuer.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<DevKeys>,
}

impl Default for Tokens {
    /// The key set shared by the whole test binary (RSA key generation is slow).
    fn default() -> Self {
        static SHARED: OnceLock<Tokens> = OnceLock::new();
        SHARED.get_or_init(Tokens::new).clone()
    }
}

impl Tokens {
    /// A fresh key set, trusted by no app unless given to it.
    pub fn new() -> Tokens {
        Tokens { keys: Arc::new(devauth::generate_test_keys_in_memory()) }
    }

    pub fn now() -> i64 {
        devauth::unix_now() as i64
    }

    pub fn jwks(&self) -> String {
        self.keys.jwks()
    }

    /// A valid EdDSA token for `tenant` with `scopes`.
    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.keys.token(tenant, scopes, TTL)
    }

    /// The claims such a token carries, to alter before signing.
    pub fn claims(&self, tenant: &str, scopes: &[&str]) -> Value {
        self.keys.claims(tenant, scopes, TTL)
    }

    pub fn sign(&self, alg: Alg, claims: &Value) -> String {
        self.keys.sign(alg, claims)
    }

    pub fn sign_with_kid(&self, alg: Alg, kid: &str, claims: &Value) -> String {
        self.keys.sign_with_kid(alg, Some(kid), claims)
    }

    pub fn alg_none(&self, claims: &Value) -> String {
        self.keys.alg_none(claims)
    }

    /// HS256 keyed with the RSA public key's bytes: the algorithm-confusion attack.
    pub fn hs256_with_rsa_public_key(&self, claims: &Value) -> String {
        self.keys.hs256_with_public_key(Alg::Rs256, claims)
    }

    pub fn tamper(&self, token: &str) -> String {
        devauth::tamper_signature(token)
    }
}
