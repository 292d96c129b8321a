//! One secret's metadata as the tenant's view holds it ([`IndexEntry`]), what list and get
//! answer of it ([`SecretMetadata`]), and the ETag / `If-Match` rules of its version.

use serde::{Deserialize, Serialize};

use crate::check::{LastCheck, VerificationSummary};
use crate::clock::rfc3339;
use crate::error::Error;
use crate::provider::Kind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub registries: Vec<String>,
    pub managed: bool,
    /// Unix milliseconds.
    pub created: u64,
    pub modified: u64,
    /// The log slot of the last change of the credentials: grows with every change and never
    /// repeats, even across delete and re-create of a name (the ETag).
    pub version: u64,
    /// Which record (`P:r:<record>`) holds the sealed credentials: the version's slot, or the
    /// slot of a later re-encryption, which changes the record but not the version.
    pub record: u64,
    /// The last check against the registries (records written before verification existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<LastCheck>,
    /// What the record holds: static credentials (absent in entries written before kinds existed)
    /// or a provider identity that mints them.
    #[serde(default, skip_serializing_if = "Kind::is_static")]
    pub kind: Kind,
}

/// What list and get answer: metadata, never credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretMetadata {
    pub name: String,
    pub registries: Vec<String>,
    pub managed: bool,
    pub created_at: String,
    pub modified_at: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSummary>,
    /// `static`, or the provider whose identity the secret holds and mints registry credentials from.
    pub kind: Kind,
    /// For minting kinds: when the current minted registry credential expires (RFC 3339); absent
    /// until one has been minted, and once it has expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Which record holds the credentials, for finding a minting secret's cached credential
    /// (`mint::cache`); never answered.
    #[serde(skip)]
    pub record: u64,
}

impl From<&IndexEntry> for SecretMetadata {
    fn from(e: &IndexEntry) -> Self {
        SecretMetadata {
            name: e.name.clone(),
            registries: e.registries.clone(),
            managed: e.managed,
            created_at: rfc3339(e.created),
            modified_at: rfc3339(e.modified),
            version: e.version,
            verification: e.verification.map(VerificationSummary::from),
            kind: e.kind,
            expires_at: None,
            record: e.record,
        }
    }
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// An `If-Match` precondition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IfMatch {
    Any,
    /// The versions named; a tag that is not one of ours matches nothing.
    Versions(Vec<u64>),
}

impl IfMatch {
    pub fn parse(header: &str) -> IfMatch {
        if header.trim() == "*" {
            return IfMatch::Any;
        }
        let versions = header
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
            })
            .collect();
        IfMatch::Versions(versions)
    }

    pub fn check(&self, version: u64) -> Result<(), Error> {
        match self {
            IfMatch::Any => Ok(()),
            IfMatch::Versions(v) if v.contains(&version) => Ok(()),
            IfMatch::Versions(_) => Err(Error::PreconditionFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: u64) -> IndexEntry {
        IndexEntry {
            name: name.into(),
            registries: vec![],
            managed: false,
            created: 0,
            modified: 0,
            version,
            record: version,
            verification: None,
            kind: Kind::Static,
        }
    }

    #[test]
    fn if_match_accepts_strong_weak_lists_and_star() {
        assert!(IfMatch::parse("\"7\"").check(7).is_ok());
        assert!(IfMatch::parse("W/\"7\"").check(7).is_ok());
        assert!(IfMatch::parse("\"3\", \"7\"").check(7).is_ok());
        assert!(IfMatch::parse("*").check(1).is_ok());
        assert_eq!(IfMatch::parse("\"6\"").check(7), Err(Error::PreconditionFailed));
        assert_eq!(IfMatch::parse("7").check(7), Err(Error::PreconditionFailed));
        assert_eq!(IfMatch::parse("\"abc\"").check(7), Err(Error::PreconditionFailed));
    }

    #[test]
    fn metadata_has_rfc3339_times_and_no_credentials_field() {
        let json = serde_json::to_value(SecretMetadata::from(&entry("a", 9))).unwrap();
        assert_eq!(json["createdAt"], "1970-01-01T00:00:00Z");
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["createdAt", "kind", "managed", "modifiedAt", "name", "registries", "version"]);
        assert_eq!(json["kind"], "static");
    }
}
