//! Credentials encrypted at rest: XChaCha20-Poly1305 under keys from the secret Spin variable
//! `encryption_keys`, bound to the tenant and name the value belongs to.
//!
//! # `encryption_keys`
//! Comma-separated entries `<key-id>:<base64 of 32 random bytes>`, for example
//! `k2:3q2+7w...=,k1:AAECAw...=`. Key ids are 1 to 32 characters of `[a-z0-9-]` and unique.
//! Base64 is the standard alphabet, padding optional; each key must decode to exactly 32 bytes
//! (make one with `openssl rand -base64 32`). Spaces around entries are ignored.
//!
//! The **first** key encrypts every new value; **every** key decrypts. To rotate: put a new key
//! first and keep the old ones after it until every stored value has been rewritten (values sealed
//! with an older key report [`Keyring::needs_reencrypt`]); then drop the old key.
//!
//! # Binding
//! The tenant and the secret's name are the AEAD's associated data, encoded without ambiguity
//! (a version label, then each part prefixed by its length), so a stored value copied to another
//! tenant's or another name's key fails to decrypt instead of handing out someone else's credentials.
//! Each value gets a fresh random 192-bit nonce, which XChaCha20 makes safe to draw at random.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::error::Internal;
use crate::Error;

pub const KEY_LENGTH: usize = 32;
pub const NONCE_LENGTH: usize = 24;
pub const MAX_KEY_ID_LENGTH: usize = 32;
/// Names the associated-data layout; a new layout gets a new label.
const BINDING_LABEL: &[u8] = b"regsecrets/v1";
const VARIABLE: &str = "encryption_keys";

const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a sealed value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingContext<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
}

impl BindingContext<'_> {
    /// label, tenant and name, each preceded by its length as a big-endian u32.
    fn associated_data(&self) -> Vec<u8> {
        let parts = [BINDING_LABEL, self.tenant.as_bytes(), self.name.as_bytes()];
        let mut encoded = Vec::with_capacity(parts.iter().map(|part| 4 + part.len()).sum());
        for part in parts {
            // Tenant ids and names are bounded far below 4 GiB by their own rules.
            encoded.extend_from_slice(&(part.len() as u32).to_be_bytes());
            encoded.extend_from_slice(part);
        }
        encoded
    }
}

/// An encrypted value as stored: which key, the nonce and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub kid: String,
    /// Base64 of the 24-byte nonce.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Base64 of the ciphertext followed by the 16-byte tag.
    #[serde(rename = "ct")]
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("kid", &self.kid)
            .field("ciphertext_b64_length", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

struct RingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys of `encryption_keys`, the first one writing.
pub struct Keyring {
    keys: Vec<RingKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.iter().map(|key| key.id.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Reads the `encryption_keys` variable (format in the module documentation).
    pub fn parse(variable: &str) -> Result<Keyring, Error> {
        let malformed = || Error::Internal(Internal::Config(VARIABLE));
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for entry in variable.split(',') {
            let (id, key_b64) = entry.trim().split_once(':').ok_or_else(malformed)?;
            if !is_valid_key_id(id) || !seen.insert(id) {
                return Err(malformed());
            }
            let mut key = KEY_BASE64.decode(key_b64.trim()).map_err(|_| malformed())?;
            let cipher = (key.len() == KEY_LENGTH).then(|| XChaCha20Poly1305::new_from_slice(&key).ok());
            key.fill(0);
            let cipher = cipher.flatten().ok_or_else(malformed)?;
            keys.push(RingKey { id: id.to_string(), cipher });
        }
        Ok(Keyring { keys })
    }

    /// The id of the key new values are sealed with.
    pub fn write_kid(&self) -> &str {
        &self.keys[0].id
    }

    /// Whether `sealed` was written with another key than the current write key (rotation).
    pub fn needs_reencrypt(&self, sealed: &Sealed) -> bool {
        sealed.kid != self.write_kid()
    }

    pub fn seal(&self, aad: &BindingContext, plaintext: &[u8]) -> Result<Sealed, Error> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LENGTH];
        getrandom::fill(&mut nonce).map_err(|_| Internal::Platform("no randomness for a nonce"))?;
        let associated_data = aad.associated_data();
        let payload = Payload { msg: plaintext, aad: &associated_data };
        let ciphertext = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| Internal::Crypto("encryption failed"))?;
        Ok(Sealed { kid: key.id.clone(), nonce: STANDARD.encode(nonce), ciphertext: STANDARD.encode(ciphertext) })
    }

    pub fn open(&self, aad: &BindingContext, sealed: &Sealed) -> Result<Vec<u8>, Error> {
        let key = self
            .keys
            .iter()
            .find(|key| key.id == sealed.kid)
            .ok_or(Internal::Crypto("no key with the sealed value's key id"))?;
        let nonce = STANDARD.decode(&sealed.nonce).map_err(|_| Internal::CorruptRecord)?;
        if nonce.len() != NONCE_LENGTH {
            return Err(Internal::CorruptRecord.into());
        }
        let ciphertext = STANDARD.decode(&sealed.ciphertext).map_err(|_| Internal::CorruptRecord)?;
        let associated_data = aad.associated_data();
        let payload = Payload { msg: &ciphertext, aad: &associated_data };
        let plaintext = key
            .cipher
            .decrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| Internal::Crypto("authentication failed: wrong key, binding or tampered value"))?;
        Ok(plaintext)
    }
}

fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LENGTH).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_b64(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LENGTH])
    }

    fn ring(spec: &[(&str, u8)]) -> Keyring {
        let variable: Vec<String> = spec.iter().map(|(id, byte)| format!("{id}:{}", key_b64(*byte))).collect();
        Keyring::parse(&variable.join(",")).unwrap()
    }

    const ACME_WEB: BindingContext = BindingContext { tenant: "acme", name: "web" };

    fn config_error() -> Error {
        Error::Internal(Internal::Config("encryption_keys"))
    }

    #[test]
    fn round_trip() {
        let ring = ring(&[("k1", 1)]);
        let sealed = ring.seal(&ACME_WEB, b"{\"auths\":{}}").unwrap();
        assert_eq!(sealed.kid, "k1");
        assert_eq!(ring.open(&ACME_WEB, &sealed).unwrap(), b"{\"auths\":{}}");
        assert_eq!(ring.open(&ACME_WEB, &ring.seal(&ACME_WEB, b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn stored_form_uses_short_field_names() {
        let sealed = ring(&[("k1", 1)]).seal(&ACME_WEB, b"x").unwrap();
        let json = serde_json::to_value(&sealed).unwrap();
        let mut fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["ct", "kid", "n"]);
        assert_eq!(serde_json::from_value::<Sealed>(json).unwrap(), sealed);
    }

    #[test]
    fn a_value_moved_to_another_tenant_or_name_does_not_open() {
        let ring = ring(&[("k1", 1)]);
        let sealed = ring.seal(&ACME_WEB, b"secret").unwrap();
        let elsewhere = [
            BindingContext { tenant: "globex", name: "web" },
            BindingContext { tenant: "acme", name: "web2" },
            BindingContext { tenant: "acme", name: "" },
            // Same concatenation, different split: the length prefixes tell them apart.
            BindingContext { tenant: "acmew", name: "eb" },
            BindingContext { tenant: "acm", name: "eweb" },
        ];
        for context in elsewhere {
            let error = ring.open(&context, &sealed).unwrap_err();
            assert!(matches!(error, Error::Internal(Internal::Crypto(_))), "{context:?}");
        }
    }

    #[test]
    fn tampering_is_detected() {
        let ring = ring(&[("k1", 1)]);
        let sealed = ring.seal(&ACME_WEB, b"secret value").unwrap();
        let mut ciphertext = STANDARD.decode(&sealed.ciphertext).unwrap();
        for i in [0, ciphertext.len() - 1] {
            ciphertext[i] ^= 1;
            let tampered = Sealed { ciphertext: STANDARD.encode(&ciphertext), ..sealed.clone() };
            assert!(matches!(ring.open(&ACME_WEB, &tampered), Err(Error::Internal(Internal::Crypto(_)))));
            ciphertext[i] ^= 1;
        }
        let other_nonce = Sealed { nonce: STANDARD.encode([7u8; NONCE_LENGTH]), ..sealed.clone() };
        assert!(matches!(ring.open(&ACME_WEB, &other_nonce), Err(Error::Internal(Internal::Crypto(_)))));
        let truncated = Sealed { ciphertext: STANDARD.encode([1u8; 8]), ..sealed.clone() };
        assert!(matches!(ring.open(&ACME_WEB, &truncated), Err(Error::Internal(Internal::Crypto(_)))));
        for broken in [
            Sealed { nonce: "***".into(), ..sealed.clone() },
            Sealed { nonce: STANDARD.encode([0u8; 12]), ..sealed.clone() },
            Sealed { ciphertext: "***".into(), ..sealed.clone() },
        ] {
            assert_eq!(ring.open(&ACME_WEB, &broken), Err(Error::Internal(Internal::CorruptRecord)));
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_the_old_key_goes() {
        let old = ring(&[("k1", 1)]);
        let sealed = old.seal(&ACME_WEB, b"secret").unwrap();
        let rotated = ring(&[("k2", 2), ("k1", 1)]);
        assert_eq!(rotated.write_kid(), "k2");
        assert_eq!(rotated.open(&ACME_WEB, &sealed).unwrap(), b"secret");
        assert!(rotated.needs_reencrypt(&sealed));
        let resealed = rotated.seal(&ACME_WEB, b"secret").unwrap();
        assert_eq!(resealed.kid, "k2");
        assert!(!rotated.needs_reencrypt(&resealed));

        let only_new = ring(&[("k2", 2)]);
        assert!(matches!(only_new.open(&ACME_WEB, &sealed), Err(Error::Internal(Internal::Crypto(_)))));
        assert_eq!(only_new.open(&ACME_WEB, &resealed).unwrap(), b"secret");
        // A key under the right id but with other bytes does not open either.
        let impostor = ring(&[("k1", 9)]);
        assert!(matches!(impostor.open(&ACME_WEB, &sealed), Err(Error::Internal(Internal::Crypto(_)))));
    }

    #[test]
    fn parses_the_documented_format() {
        let unpadded = key_b64(2).trim_end_matches('=').to_string();
        let ring = Keyring::parse(&format!(" k-2:{unpadded} , 0local1:{} ", key_b64(1))).unwrap();
        assert_eq!(ring.write_kid(), "k-2");
        let sealed = ring.seal(&ACME_WEB, b"x").unwrap();
        assert_eq!(Keyring::parse(&format!("k-2:{}", key_b64(2))).unwrap().open(&ACME_WEB, &sealed).unwrap(), b"x");
    }

    #[test]
    fn refuses_malformed_key_lists() {
        let good = key_b64(1);
        let short = STANDARD.encode([1u8; 16]);
        let long = STANDARD.encode([1u8; 33]);
        let long_id = "a".repeat(33);
        let cases = [
            String::new(),
            "   ".into(),
            good.clone(),
            format!("k1:{short}"),
            format!("k1:{long}"),
            "k1:not base64!".into(),
            format!("k1:{good},"),
            format!(",k1:{good}"),
            format!("k1:{good},k1:{good}"),
            format!(":{good}"),
            format!("K1:{good}"),
            format!("k_1:{good}"),
            format!("k 1:{good}"),
            format!("{long_id}:{good}"),
            format!("k1:{good};k2:{good}"),
        ];
        for case in cases {
            assert_eq!(Keyring::parse(&case).unwrap_err(), config_error(), "{case:?}");
        }
        assert!(Keyring::parse(&format!("{}:{good}", "a".repeat(32))).is_ok());
    }

    #[test]
    fn nonces_differ_between_seals_of_the_same_value() {
        let ring = ring(&[("k1", 1)]);
        let first = ring.seal(&ACME_WEB, b"same").unwrap();
        let second = ring.seal(&ACME_WEB, b"same").unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(STANDARD.decode(&first.nonce).unwrap().len(), NONCE_LENGTH);
    }

    #[test]
    fn debug_output_holds_no_key_or_ciphertext() {
        let variable = format!("k2:{},k1:{}", key_b64(0xAB), key_b64(0xCD));
        let ring = Keyring::parse(&variable).unwrap();
        let printed = format!("{ring:?}");
        assert!(printed.contains("k2") && printed.contains("k1"), "{printed}");
        for key in [key_b64(0xAB), key_b64(0xCD)] {
            assert!(!printed.contains(&key[..8]), "{printed}");
        }
        assert!(!printed.contains("171") && !printed.contains("205") && !printed.contains("0xab"), "{printed}");

        let sealed = ring.seal(&ACME_WEB, b"password").unwrap();
        let printed = format!("{sealed:?}");
        assert!(!printed.contains(&sealed.ciphertext) && !printed.contains(&sealed.nonce), "{printed}");
    }
}
