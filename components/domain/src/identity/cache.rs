//! A cache of verified tokens, so that reads do not pay for signature verification on every
//! request. Components are instantiated per request, so the cache lives in the key-value store.
//!
//! Why it is sound: an entry is written only after the exact token was fully verified under the
//! exact settings, and it is keyed by SHA-256 of the token: no other token can hit it. It holds
//! only what verification concluded (tenant, scopes) and the token's own validity bounds, which
//! are checked on every hit with the same 60 s leeway; a change of `auth_jwks`, issuer, audience
//! or tenant claim (a key withdrawn, say) changes the settings digest and turns every entry into
//! a miss. It saves nothing an attacker could not already do with write access to the store.
//!
//! Why it is cheap: a hit is one read (microseconds on SQLite) instead of 0.4 to 2 ms of
//! verification inside the component. A miss writes its entry (an fsync on SQLite) only after the
//! read it served succeeded, so refused requests still store nothing, and only into a free place
//! (a slot holds up to [`PER_SLOT`] live entries; expired ones and those of other settings make
//! room), so more live tokens than places never make every request write. There are [`SLOTS`]
//! slots: a fixed, small share of the store's keys whatever the number of tokens, and room for
//! `SLOTS × PER_SLOT` tokens (a cluster's pullers, a fleet's CI jobs) before any is verified again.
//!
//! Two misses on one slot at once both write the slot as they read it plus their own entry, so
//! one entry may be lost: that only costs its token one more verification (every entry is checked
//! whole on every hit, and only ever written for a token verified in full).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::discovery::Discovery;
use super::{bearer_token, verify_with, AuthSettings, Principal, Scope, Scopes, TIME_TOLERANCE_SECS};
use crate::error::Error;
use crate::name::TenantId;
use crate::store::{token_cache_slot, Key, KeyValue};

pub const SLOTS: u8 = 16;
/// Live entries one slot holds (about 250 bytes each, so a slot's read stays a few KB).
pub const PER_SLOT: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Digest of the settings the token was verified under.
    #[serde(rename = "g")]
    settings: String,
    /// SHA-256 of the token.
    #[serde(rename = "h")]
    token: String,
    #[serde(rename = "t")]
    tenant: String,
    #[serde(rename = "s")]
    scopes: Vec<String>,
    #[serde(rename = "e")]
    expires_at: u64,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    not_before: Option<u64>,
    /// `sub` and `azp`/`client_id`, kept for the audit trail.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// For a token verified with a discovered key: until when that key set is fresh. Past it the
    /// token is verified again, against the keys as they are then.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    keys_fresh_until: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        now <= self.expires_at.saturating_add(TIME_TOLERANCE_SECS)
            && self.not_before.is_none_or(|nbf| now.saturating_add(TIME_TOLERANCE_SECS) >= nbf)
            && self.keys_fresh_until.is_none_or(|until| now < until)
    }

    fn principal(&self) -> Option<Principal> {
        let tenant = TenantId::parse(&self.tenant).ok()?;
        let scopes = self.scopes.iter().filter_map(|s| Scope::from_claim_value(s)).collect::<Scopes>();
        Some(Principal { tenant, scopes, subject: self.subject.clone(), client: self.client.clone() })
    }
}

/// What a slot holds: its entries; a slot of the release before buckets held one entry alone (read
/// alike; a node of that release reads a list as an unreadable slot, a miss, and overwrites it).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Many(Vec<Entry>),
    One(Entry),
}

/// A slot's entries; an unreadable slot is an empty one: the cache can only ever save work, never
/// refuse a request.
fn read_slot<S: KeyValue>(store: &S, key: &Key) -> Vec<Entry> {
    match store.get(key).ok().flatten().and_then(|bytes| serde_json::from_slice(&bytes).ok()) {
        Some(Stored::Many(entries)) => entries,
        Some(Stored::One(entry)) => vec![entry],
        None => Vec::new(),
    }
}

/// An entry to write once the request it authenticated has succeeded.
#[derive(Debug)]
pub struct Remember {
    key: Key,
    bytes: Vec<u8>,
}

impl Remember {
    /// Best effort: a failed write only means the next request verifies again.
    pub fn save<S: KeyValue>(self, store: &S) {
        let _ = store.set(&self.key, &self.bytes);
    }
}

/// Whether the principal came from the cache.
#[derive(Debug)]
pub enum Lookup {
    Hit,
    /// Verified now; `Some` when the entry should be written after the request succeeds.
    Verified(Option<Remember>),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn settings_digest(settings: &AuthSettings) -> String {
    let mut hasher = Sha256::new();
    for part in [&settings.jwks, &settings.issuer, &settings.audience, &settings.tenant_claim, &settings.issuers] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(settings.keys_stale_secs.to_be_bytes());
    hex(&hasher.finalize()[..16])
}

/// As [`super::verify_with`], answered from the cache when this token was verified before.
pub fn authenticate_cached<S: KeyValue>(
    store: &S,
    authorization: Option<&str>,
    settings: &AuthSettings,
    discovery: Option<&Discovery<'_>>,
    now: u64,
) -> Result<(Principal, Lookup), Error> {
    let token = bearer_token(authorization).map_err(Error::Unauthenticated)?;
    let digest = Sha256::digest(token.as_bytes());
    let key = token_cache_slot(digest[0] % SLOTS);
    let (settings_id, token_id) = (settings_digest(settings), hex(&digest));
    let mut entries = read_slot(store, &key);
    let found = entries.iter().find(|e| e.settings == settings_id && e.token == token_id && e.live(now));
    if let Some(principal) = found.and_then(Entry::principal) {
        return Ok((principal, Lookup::Hit));
    }
    let verified = verify_with(authorization, settings, discovery, now)?;
    // Room: entries that expired, or were verified under other settings, are dropped.
    entries.retain(|e| e.settings == settings_id && e.token != token_id && e.live(now));
    // Keys served past their freshness (their provider is down) verify, but are not remembered.
    let keys_fresh = verified.keys_fresh_until.is_none_or(|until| now < until);
    let remember = (entries.len() < PER_SLOT && keys_fresh).then(|| {
        entries.push(Entry {
            settings: settings_id,
            token: token_id,
            tenant: verified.principal.tenant.as_str().to_owned(),
            scopes: verified.principal.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: verified.expires_at,
            not_before: verified.not_before,
            subject: verified.principal.subject.clone(),
            client: verified.principal.client.clone(),
            keys_fresh_until: verified.keys_fresh_until,
        });
        Remember { key, bytes: serde_json::to_vec(&entries).expect("entries serialize") }
    });
    Ok((verified.principal, Lookup::Verified(remember)))
}
