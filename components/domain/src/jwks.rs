//! The verifier's public keys: a JSON Web Key Set (RFC 7517) as given in the Spin variable `auth_jwks`.
//!
//! Supported keys, each with the one algorithm it may verify:
//! - `kty: "RSA"` (`n`, `e`, modulus of at least 2048 bits) -> RS256,
//! - `kty: "EC"`, `crv: "P-256"` (`x`, `y`) -> ES256,
//! - `kty: "OKP"`, `crv: "Ed25519"` (`x`) -> EdDSA.
//!
//! Keys meant for encryption (`use` other than `sig`), of another type or curve, or whose `alg`
//! names another algorithm are skipped, as RFC 7517 lets a consumer do: a token naming one of them
//! is refused as signed by an unknown key.
//!
//! A request verifies one token against one key, so [`Jwks::parse`] only reads the JSON (borrowing
//! the strings) and [`Jwks::key_for`] builds the single key object the token's `kid` names. Building
//! an RSA or EC key is the costly part; doing it for every key of the set would be wasted work.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jwt_simple::algorithms::{ES256PublicKey, Ed25519PublicKey, RS256PublicKey};
use serde::Deserialize;

/// Base64url as JWKs use it: RFC 7518 says unpadded, some issuers pad anyway.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The algorithms a token may be signed with, one per supported key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    /// The `alg` a JWS header carries for it. Anything else (`none`, HMAC, RS384, PS256...) is refused.
    pub fn from_jws_name(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    pub fn jws_name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// A key built from its JWK, ready to verify tokens of its one algorithm.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    // Boxed: an RSA key is several times the size of the others.
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyingKey::Rs256(_) => Algorithm::Rs256,
            VerifyingKey::Es256(_) => Algorithm::Es256,
            VerifyingKey::EdDsa(_) => Algorithm::EdDsa,
        }
    }
}

/// Why no key could be had for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// No usable key has that `kid`.
    UnknownKey,
    /// A key has that `kid` but verifies another algorithm than the token names.
    AlgorithmMismatch,
    /// The key with that `kid` has unusable material: the JWKS is wrong, not the token.
    BadKeyMaterial,
}

/// The JWKS could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksError;

/// A parsed, not yet built, key set; borrows from the JSON text.
#[derive(Debug)]
pub struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

#[derive(Debug, Deserialize)]
struct JwksDocument<'a> {
    #[serde(borrow)]
    keys: Vec<Jwk<'a>>,
}

/// The members of a JWK we read; every other member is ignored.
#[derive(Debug, Deserialize)]
struct Jwk<'a> {
    #[serde(borrow)]
    kty: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "use")]
    public_key_use: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    e: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    y: Option<Cow<'a, str>>,
}

impl<'a> Jwks<'a> {
    /// Reads the key set. An unreadable document or one without any key is a misconfiguration.
    pub fn parse(json: &'a str) -> Result<Jwks<'a>, JwksError> {
        let document: JwksDocument<'a> = serde_json::from_str(json).map_err(|_| JwksError)?;
        if document.keys.is_empty() {
            return Err(JwksError);
        }
        Ok(Jwks { keys: document.keys })
    }

    /// Builds the key named `kid` for a token that says it is signed with `algorithm`.
    pub fn key_for(&self, kid: &str, algorithm: Algorithm) -> Result<VerifyingKey, KeyLookupError> {
        let mut named_for_another_algorithm = false;
        for jwk in self.keys.iter().filter(|jwk| jwk.kid.as_deref() == Some(kid)) {
            let Some(key_algorithm) = jwk.usable_algorithm() else {
                continue;
            };
            if key_algorithm != algorithm {
                named_for_another_algorithm = true;
                continue;
            }
            return jwk.build(key_algorithm).ok_or(KeyLookupError::BadKeyMaterial);
        }
        if named_for_another_algorithm {
            Err(KeyLookupError::AlgorithmMismatch)
        } else {
            Err(KeyLookupError::UnknownKey)
        }
    }

    /// Every usable key, built: for checking a configuration once, never on a request path.
    pub fn build_all(&self) -> Result<Vec<(String, VerifyingKey)>, KeyLookupError> {
        let mut built = Vec::new();
        for jwk in &self.keys {
            let (Some(kid), Some(algorithm)) = (&jwk.kid, jwk.usable_algorithm()) else {
                continue;
            };
            let key = jwk.build(algorithm).ok_or(KeyLookupError::BadKeyMaterial)?;
            built.push((kid.to_string(), key));
        }
        Ok(built)
    }
}

impl Jwk<'_> {
    /// The one algorithm this key may verify, or `None` when the key is not for us.
    fn usable_algorithm(&self) -> Option<Algorithm> {
        if self.public_key_use.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let algorithm = match (self.kty.as_ref(), self.crv.as_deref()) {
            ("RSA", _) => Algorithm::Rs256,
            ("EC", Some("P-256")) => Algorithm::Es256,
            ("OKP", Some("Ed25519")) => Algorithm::EdDsa,
            _ => return None,
        };
        match self.alg.as_deref() {
            Some(alg) if alg != algorithm.jws_name() => None,
            _ => Some(algorithm),
        }
    }

    fn build(&self, algorithm: Algorithm) -> Option<VerifyingKey> {
        match algorithm {
            Algorithm::Rs256 => {
                let n = decode(self.n.as_deref()?)?;
                let e = decode(self.e.as_deref()?)?;
                if modulus_bits(&n) < MIN_RSA_MODULUS_BITS || e.is_empty() || e.len() > 8 {
                    return None;
                }
                RS256PublicKey::from_components(&n, &e).ok().map(|key| VerifyingKey::Rs256(Box::new(key)))
            }
            Algorithm::Es256 => {
                let x = decode(self.x.as_deref()?)?;
                let y = decode(self.y.as_deref()?)?;
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                // SEC1 uncompressed point; the curve library checks that it lies on P-256.
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ES256PublicKey::from_bytes(&point).ok().map(VerifyingKey::Es256)
            }
            Algorithm::EdDsa => {
                let x = decode(self.x.as_deref()?)?;
                if x.len() != 32 {
                    return None;
                }
                Ed25519PublicKey::from_bytes(&x).ok().map(VerifyingKey::EdDsa)
            }
        }
    }
}

fn decode(b64url: &str) -> Option<Vec<u8>> {
    B64URL.decode(b64url).ok()
}

fn modulus_bits(n: &[u8]) -> usize {
    let significant = match n.iter().position(|&b| b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

/// Base64url without padding, as a JWK writes its members (for tools that produce JWKS).
pub fn encode_member(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::prelude::*;

    fn okp(kid: &str, x: &[u8]) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": encode_member(x)})
    }

    #[test]
    fn unreadable_or_empty_sets_are_refused() {
        assert_eq!(Jwks::parse("").unwrap_err(), JwksError);
        assert_eq!(Jwks::parse("{").unwrap_err(), JwksError);
        assert_eq!(Jwks::parse(r#"{"keys": []}"#).unwrap_err(), JwksError);
        assert_eq!(Jwks::parse(r#"{"keys": [{"kid": "a"}]}"#).unwrap_err(), JwksError);
    }

    #[test]
    fn finds_the_key_by_kid_and_algorithm() {
        let ed = Ed25519KeyPair::generate();
        let es = ES256KeyPair::generate();
        let es_point = es.public_key().public_key().to_bytes_uncompressed();
        let json = serde_json::json!({"keys": [
            okp("ed", &ed.public_key().to_bytes()),
            {"kty": "EC", "crv": "P-256", "kid": "es", "use": "sig", "alg": "ES256",
             "x": encode_member(&es_point[1..33]), "y": encode_member(&es_point[33..])},
        ]})
        .to_string();
        let jwks = Jwks::parse(&json).unwrap();
        assert_eq!(jwks.key_for("ed", Algorithm::EdDsa).unwrap().algorithm(), Algorithm::EdDsa);
        assert_eq!(jwks.key_for("es", Algorithm::Es256).unwrap().algorithm(), Algorithm::Es256);
        assert_eq!(jwks.key_for("es", Algorithm::EdDsa).unwrap_err(), KeyLookupError::AlgorithmMismatch);
        assert_eq!(jwks.key_for("nope", Algorithm::EdDsa).unwrap_err(), KeyLookupError::UnknownKey);
        assert_eq!(jwks.build_all().unwrap().len(), 2);
    }

    #[test]
    fn skips_encryption_keys_other_types_and_other_algorithms() {
        let x = Ed25519KeyPair::generate().public_key().to_bytes();
        let mut enc = okp("enc", &x);
        enc["use"] = "enc".into();
        let mut other_alg = okp("alg", &x);
        other_alg["alg"] = "ES256".into();
        let json = serde_json::json!({"keys": [
            enc,
            other_alg,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
        ]})
        .to_string();
        let jwks = Jwks::parse(&json).unwrap();
        for kid in ["enc", "alg", "hmac", "p384"] {
            for algorithm in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
                assert_eq!(jwks.key_for(kid, algorithm).unwrap_err(), KeyLookupError::UnknownKey, "{kid}");
            }
        }
    }

    #[test]
    fn bad_material_is_reported_as_such() {
        let json = serde_json::json!({"keys": [
            okp("short", &[1u8; 31]),
            {"kty": "OKP", "crv": "Ed25519", "kid": "not-b64", "x": "***"},
            {"kty": "RSA", "kid": "small", "n": encode_member(&[0xC5u8; 128]), "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "off-curve",
             "x": encode_member(&[1u8; 32]), "y": encode_member(&[2u8; 32])},
        ]})
        .to_string();
        let jwks = Jwks::parse(&json).unwrap();
        assert_eq!(jwks.key_for("short", Algorithm::EdDsa).unwrap_err(), KeyLookupError::BadKeyMaterial);
        assert_eq!(jwks.key_for("not-b64", Algorithm::EdDsa).unwrap_err(), KeyLookupError::BadKeyMaterial);
        assert_eq!(jwks.key_for("small", Algorithm::Rs256).unwrap_err(), KeyLookupError::BadKeyMaterial);
        assert_eq!(jwks.key_for("off-curve", Algorithm::Es256).unwrap_err(), KeyLookupError::BadKeyMaterial);
        assert_eq!(jwks.build_all().unwrap_err(), KeyLookupError::BadKeyMaterial);
    }

    #[test]
    fn modulus_size_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        assert_eq!(modulus_bits(&[]), 0);
    }
}
