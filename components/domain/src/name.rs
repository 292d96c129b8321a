//! The two identifiers that reach keys and manifests: a secret's name and a tenant's id.
//!
//! Both are checked by hand (no regex crate: it would weigh on every wasm component) and
//! refused with a message that names the rule, never echoing the input back.

use std::fmt;

use crate::Error;

/// A secret's name: a Kubernetes DNS-1123 subdomain, because it becomes an `imagePullSecrets` name.
///
/// Equivalent to Kubernetes' `IsDNS1123Subdomain`: at most 253 characters matching
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SecretName(String);

impl SecretName {
    pub const MAX_LEN: usize = 253;

    pub fn parse(candidate: &str) -> Result<SecretName, Error> {
        let refuse = |rule: &str| Err(Error::InvalidSecretName(format!("The secret name {rule}")));
        if candidate.is_empty() {
            return refuse("must not be empty");
        }
        if candidate.chars().count() > Self::MAX_LEN {
            return refuse("must be at most 253 characters");
        }
        if !candidate.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
            return refuse("may contain only lower-case letters, digits, '-' and '.'");
        }
        let alphanumeric = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let bytes = candidate.as_bytes();
        if !alphanumeric(bytes.first()) || !alphanumeric(bytes.last()) {
            return refuse("must start and end with a letter or digit");
        }
        for label in candidate.split('.') {
            let label = label.as_bytes();
            if !alphanumeric(label.first()) || !alphanumeric(label.last()) {
                return refuse("must have a letter or digit on each side of every '.'");
            }
        }
        Ok(SecretName(candidate.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<SecretName> for String {
    fn from(name: SecretName) -> String {
        name.0
    }
}

impl TryFrom<String> for SecretName {
    type Error = Error;

    fn try_from(candidate: String) -> Result<Self, Error> {
        SecretName::parse(&candidate)
    }
}

/// A tenant's id, as the JWT's tenant claim carries it.
///
/// The charset is deliberately narrow (1..=128 ASCII letters, digits, `-`, `_`, `.`; no leading
/// `.`, no `..`) so that no tenant id can smuggle path, key or header syntax anywhere it is used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id. Identity code answers it with 401 (the token is unusable);
/// the operator endpoints answer it with [`Error::InvalidTenant`] via [`TenantIdError::into_invalid_tenant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantIdError {
    Empty,
    TooLong,
    ForbiddenCharacter,
    LeadingDot,
    DoubleDot,
}

impl fmt::Display for TenantIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TenantIdError::Empty => "The tenant id must not be empty",
            TenantIdError::TooLong => "The tenant id must be at most 128 characters",
            TenantIdError::ForbiddenCharacter => {
                "The tenant id may contain only ASCII letters, digits, '-', '_' and '.'"
            }
            TenantIdError::LeadingDot => "The tenant id must not start with '.'",
            TenantIdError::DoubleDot => "The tenant id must not contain '..'",
        })
    }
}

impl std::error::Error for TenantIdError {}

impl TenantIdError {
    /// The 400 an operator path with this tenant id gets. Not a `From` impl on purpose: in
    /// identity code the same failure is a 401, and `?` must not silently pick the 400.
    pub fn into_invalid_tenant(self) -> Error {
        Error::InvalidTenant(self.to_string())
    }
}

impl TenantId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(candidate: &str) -> Result<TenantId, TenantIdError> {
        if candidate.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if candidate.len() > Self::MAX_LEN {
            return Err(TenantIdError::TooLong);
        }
        if !candidate.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(TenantIdError::ForbiddenCharacter);
        }
        if candidate.starts_with('.') {
            return Err(TenantIdError::LeadingDot);
        }
        if candidate.contains("..") {
            return Err(TenantIdError::DoubleDot);
        }
        Ok(TenantId(candidate.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<TenantId> for String {
    fn from(tenant: TenantId) -> String {
        tenant.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(candidate: &str) -> String {
        match SecretName::parse(candidate) {
            Err(Error::InvalidSecretName(message)) => message,
            other => panic!("{candidate:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn accepts_dns_1123_subdomains() {
        for name in ["a", "0", "my-secret", "ghcr.io", "a.b.c", "a-b.c-d", "1-2", "x".repeat(253).as_str()] {
            assert_eq!(SecretName::parse(name).unwrap().as_str(), name);
        }
        let dotted = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        assert_eq!(dotted.len(), 253);
        assert!(SecretName::parse(&dotted).is_ok());
    }

    #[test]
    fn refuses_empty_and_too_long() {
        assert!(refusal("").contains("must not be empty"));
        assert!(refusal(&"x".repeat(254)).contains("at most 253 characters"));
        assert!(refusal(&"x".repeat(1000)).contains("at most 253 characters"));
    }

    #[test]
    fn refuses_characters_outside_the_charset() {
        for name in ["My-secret", "UPPER", "under_score", "space here", "slash/x", "colon:x", "é", "naïve", "a\0b"] {
            assert!(refusal(name).contains("only lower-case letters, digits, '-' and '.'"), "{name}");
        }
    }

    #[test]
    fn refuses_non_alphanumeric_ends() {
        for name in ["-a", "a-", ".a", "a.", "-", ".", "--", "-a-"] {
            assert!(refusal(name).contains("must start and end with a letter or digit"), "{name}");
        }
    }

    #[test]
    fn refuses_bad_labels() {
        for name in ["a..b", "a.-b", "a-.b", "a.-.b"] {
            assert!(refusal(name).contains("on each side of every '.'"), "{name}");
        }
    }

    #[test]
    fn refusal_never_echoes_the_input() {
        assert!(!refusal("Sekret_Value").contains("Sekret_Value"));
    }

    #[test]
    fn name_serializes_and_displays_as_its_string() {
        let name = SecretName::parse("my.secret").unwrap();
        assert_eq!(name.to_string(), "my.secret");
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""my.secret""#);
        let back: SecretName = serde_json::from_str(r#""my.secret""#).unwrap();
        assert_eq!(back, name);
        assert!(serde_json::from_str::<SecretName>(r#""Bad_Name""#).is_err());
    }

    #[test]
    fn accepts_tenant_ids_in_the_safe_charset() {
        let longest = "t".repeat(128);
        for tenant in ["a", "acme", "Acme-Corp_01", "a.b", "a.b.c", "0", "a.", "_x", "-x", longest.as_str()] {
            assert_eq!(TenantId::parse(tenant).unwrap().as_str(), tenant);
        }
    }

    #[test]
    fn refuses_unsafe_tenant_ids() {
        let cases: &[(&str, TenantIdError)] = &[
            ("", TenantIdError::Empty),
            (&"t".repeat(129), TenantIdError::TooLong),
            (&"t".repeat(1000), TenantIdError::TooLong),
            ("a/b", TenantIdError::ForbiddenCharacter),
            ("a:b", TenantIdError::ForbiddenCharacter),
            ("a\0b", TenantIdError::ForbiddenCharacter),
            ("a b", TenantIdError::ForbiddenCharacter),
            ("a\tb", TenantIdError::ForbiddenCharacter),
            ("a\nb", TenantIdError::ForbiddenCharacter),
            ("ténant", TenantIdError::ForbiddenCharacter),
            ("a%2fb", TenantIdError::ForbiddenCharacter),
            (".hidden", TenantIdError::LeadingDot),
            ("..", TenantIdError::LeadingDot),
            ("a..b", TenantIdError::DoubleDot),
            ("a..", TenantIdError::DoubleDot),
        ];
        for (tenant, why) in cases {
            assert_eq!(TenantId::parse(tenant), Err(*why), "{tenant:?}");
        }
    }

    #[test]
    fn tenant_error_maps_to_invalid_tenant() {
        let error = TenantId::parse("a/b").unwrap_err().into_invalid_tenant();
        assert_eq!(error.status(), 400);
        assert_eq!(error.code(), "InvalidTenantId");
        assert!(error.message().contains("ASCII letters"));
    }
}
