//! The per-tenant index: every secret's metadata in one value, so that list and get are one read
//! whatever else the store holds, and the quota's `used` is its length (no counter to drift).

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::{Error, Internal};
use crate::provider::Kind;
use crate::store::{KeyValue, TenantKeys};
use crate::verify::{LastCheck, VerificationSummary};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub registries: Vec<String>,
    pub managed: bool,
    /// Unix milliseconds.
    pub created: u64,
    pub modified: u64,
    /// The lock ticket of the last write; also names the record key `P:r:<version>`, so it grows
    /// with every change and never repeats, even across delete and re-create of a name.
    pub version: u64,
    /// The last check against the registries (records written before verification existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<LastCheck>,
    /// What the record holds: static credentials (absent in entries written before kinds existed)
    /// or a provider identity that mints them.
    #[serde(default, skip_serializing_if = "Kind::is_static")]
    pub kind: Kind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantIndex {
    /// Sorted by name.
    #[serde(default)]
    pub secrets: Vec<IndexEntry>,
    /// Record versions that were replaced or deleted by a committed write and may still exist
    /// (the writer deletes them after committing; a crash in between leaves them here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub garbage: Vec<u64>,
}

impl TenantIndex {
    pub fn load<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<TenantIndex, Error> {
        match store.get(&keys.index())? {
            None => Ok(TenantIndex::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| Internal::CorruptRecord.into()),
        }
    }

    pub fn save<S: KeyValue>(&self, store: &S, keys: &TenantKeys) -> Result<(), Error> {
        let bytes = serde_json::to_vec(self).map_err(|_| Internal::CorruptRecord)?;
        Ok(store.set(&keys.index(), &bytes)?)
    }

    pub fn find(&self, name: &str) -> Option<&IndexEntry> {
        self.position(name).ok().map(|i| &self.secrets[i])
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.secrets.binary_search_by(|e| e.name.as_str().cmp(name))
    }

    /// Inserts or replaces the entry of that name; returns the replaced one.
    pub fn upsert(&mut self, entry: IndexEntry) -> Option<IndexEntry> {
        match self.position(&entry.name) {
            Ok(i) => Some(std::mem::replace(&mut self.secrets[i], entry)),
            Err(i) => {
                self.secrets.insert(i, entry);
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<IndexEntry> {
        self.position(name).ok().map(|i| self.secrets.remove(i))
    }

    pub fn references(&self, version: u64) -> bool {
        self.secrets.iter().any(|e| e.version == version)
    }

    pub fn used(&self) -> u32 {
        self.secrets.len() as u32
    }
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
        }
    }
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// An `If-Match` precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            verification: None,
            kind: Kind::Static,
        }
    }

    #[test]
    fn upsert_keeps_names_sorted_and_unique() {
        let mut index = TenantIndex::default();
        for (n, v) in [("b", 1), ("a", 2), ("c", 3), ("b", 4)] {
            index.upsert(entry(n, v));
        }
        let names: Vec<_> = index.secrets.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(index.find("b").unwrap().version, 4);
        assert!(index.references(4) && !index.references(1));
        assert_eq!(index.remove("a").unwrap().version, 2);
        assert_eq!(index.used(), 2);
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
