//! Token minting: any claims, any of our algorithms, and the deliberately wrong tokens that
//! security tests need. Claims are taken as JSON exactly as given, so a test can put any value
//! (or leave out any claim) without the signing library second-guessing it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::{
    Claims, Duration as JwtDuration, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, Ed25519KeyPair,
    EdDSAKeyPairLike, HS256Key, JWTClaims, MACLike, RS256KeyPair, RSAKeyPairLike,
};
use serde_json::{json, Map, Value};

use crate::{Alg, DevKeys};

impl DevKeys {
    /// `claims` (a JSON object) signed with this set's key for `alg`, its `kid` in the header.
    ///
    /// # Panics
    /// If this set holds no key for `alg` (keys loaded from disk are Ed25519 only), or `claims` is not an object.
    pub fn sign(&self, alg: Alg, claims: &Value) -> String {
        let kid = self.kid(alg).map(str::to_owned);
        self.sign_with_kid(alg, kid.as_deref(), claims)
    }

    /// As [`DevKeys::sign`] with another `kid` in the header, or none at all.
    pub fn sign_with_kid(&self, alg: Alg, kid: Option<&str>, claims: &Value) -> String {
        let claims = verbatim(claims);
        let signed = match alg {
            Alg::EdDsa => {
                let key = Ed25519KeyPair::from_bytes(&self.ed.to_bytes()).expect("own key");
                with_kid(key, kid, Ed25519KeyPair::with_key_id).sign(claims)
            }
            Alg::Es256 => {
                let key = ES256KeyPair::from_bytes(&self.es().to_bytes()).expect("own key");
                with_kid(key, kid, ES256KeyPair::with_key_id).sign(claims)
            }
            Alg::Rs256 => {
                let key = RS256KeyPair::from_der(&self.rsa().to_der().expect("own key")).expect("own key");
                with_kid(key, kid, RS256KeyPair::with_key_id).sign(claims)
            }
        };
        signed.expect("signing")
    }

    /// A token with exactly this header and claims text, signed with the Ed25519 key: for headers
    /// no library would write (`crit`, odd `typ`, a lying `alg`) or claims that are not even JSON.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = self.ed.key_pair().as_ref().sk.sign(signing_input.as_bytes(), None);
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(*signature))
    }

    /// An unsigned token (`alg: none`, empty signature) naming the Ed25519 key.
    pub fn alg_none(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid(Alg::EdDsa)});
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    /// The algorithm-confusion attack: HS256 keyed with the public key of `alg` as anyone can
    /// fetch it (RSA: its PEM text; EC: the SEC1 point; Ed25519: the raw 32 bytes), naming that key's `kid`.
    pub fn hs256_with_public_key(&self, alg: Alg, claims: &Value) -> String {
        let secret = match alg {
            Alg::EdDsa => self.ed.public_key().to_bytes(),
            Alg::Es256 => self.es().public_key().public_key().to_bytes_uncompressed(),
            Alg::Rs256 => self.rsa().public_key().to_pem().expect("PEM").into_bytes(),
        };
        let kid = self.kid(alg).expect("key present");
        HS256Key::from_bytes(&secret).with_key_id(kid).authenticate(verbatim(claims)).expect("HMAC")
    }

    fn es(&self) -> &ES256KeyPair {
        self.es.as_ref().expect("this DevKeys holds no ES256 key; use generate_test_keys_in_memory()")
    }

    fn rsa(&self) -> &RS256KeyPair {
        self.rsa.as_ref().expect("this DevKeys holds no RS256 key; use generate_test_keys_in_memory()")
    }
}

/// The same token with one bit of its signature flipped.
pub fn tamper_signature(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').expect("a JWT has three parts");
    let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url signature");
    let middle = signature.len() / 2;
    signature[middle] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn with_kid<K>(key: K, kid: Option<&str>, set: fn(K, &str) -> K) -> K {
    match kid {
        Some(kid) => set(key, kid),
        None => key,
    }
}

/// Claims that serialise to exactly `claims`: every member goes into the flattened custom part,
/// every registered field stays empty (so none is added, and none is type-checked).
fn verbatim(claims: &Value) -> JWTClaims<Map<String, Value>> {
    let Value::Object(members) = claims else { panic!("claims must be a JSON object") };
    let mut claims = Claims::with_custom_claims(members.clone(), JwtDuration::from_secs(0));
    claims.issued_at = None;
    claims.expires_at = None;
    claims.invalid_before = None;
    claims.issuer = None;
    claims.subject = None;
    claims.audiences = None;
    claims.jwt_id = None;
    claims.nonce = None;
    claims
}
