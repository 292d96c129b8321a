//! The minted credential, cached sealed at `P:mint:<version>` (see `store::TenantKeys::mint`).
//!
//! Store calls: a read is `get P:mint:<v>`; a mint adds `set P:mint:<v>`. No lock: the value is
//! keyed by the version it was minted for and names it again inside, and is sealed bound to the
//! tenant, the secret's name and that version, so a late write by a reader that minted for an
//! older version can never be handed out for a newer one (a modify gives the secret a new version,
//! hence a new key). A value past its `freshUntil` is ignored and replaced by the next mint.
//! Concurrent misses may each mint once; every one of them writes a valid credential.
//! A cache value that cannot be opened (corrupt, or sealed under a key since removed from the
//! keyring) counts as a miss. Leftovers: the value of a replaced or deleted version stays until
//! the modify or delete of that secret removes it (`secrets.rs`), or forever if a reader wrote it
//! after that removal; it holds an expired credential by then.

use serde::{Deserialize, Serialize};

use super::Minted;
use crate::crypto::{BindingContext, Keyring, Sealed};
use crate::error::{Error, Internal};
use crate::index::IndexEntry;
use crate::name::TenantId;
use crate::store::{KeyValue, TenantKeys};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cached {
    version: u64,
    expires_at: u64,
    fresh_until: u64,
    sealed: Sealed,
}

fn binding_name(entry: &IndexEntry) -> String {
    format!("{}\u{0}mint\u{0}{}", entry.name, entry.version)
}

/// The cached credential of this entry's version while it is fresh at `now_ms`.
pub fn read<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
    now_ms: u64,
) -> Result<Option<Minted>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).mint(entry.version))? else { return Ok(None) };
    let Ok(cached) = serde_json::from_slice::<Cached>(&bytes) else { return Ok(None) };
    if cached.version != entry.version || now_ms >= cached.fresh_until {
        return Ok(None);
    }
    let name = binding_name(entry);
    let Ok(plain) = keyring.open(&BindingContext { tenant: tenant.as_str(), name: &name }, &cached.sealed) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Minted>(&plain).ok().filter(|m| m.expires_at == cached.expires_at))
}

/// When the entry's version's credential expires, as the cache says (no keyring needed: the expiry
/// is stored in the clear). `None` when nothing is cached or it has expired at `now_ms`.
pub fn expiry<S: KeyValue>(
    store: &S,
    tenant: &TenantId,
    entry: &IndexEntry,
    now_ms: u64,
) -> Result<Option<u64>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).mint(entry.version))? else { return Ok(None) };
    Ok(serde_json::from_slice::<Cached>(&bytes)
        .ok()
        .filter(|c| c.version == entry.version && c.expires_at > now_ms)
        .map(|c| c.expires_at))
}

pub fn write<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
    minted: &Minted,
) -> Result<(), Error> {
    let plain = serde_json::to_vec(minted).map_err(|_| Internal::CorruptRecord)?;
    let name = binding_name(entry);
    let sealed = keyring.seal(&BindingContext { tenant: tenant.as_str(), name: &name }, &plain)?;
    let cached =
        Cached { version: entry.version, expires_at: minted.expires_at, fresh_until: minted.fresh_until, sealed };
    let bytes = serde_json::to_vec(&cached).map_err(|_| Internal::CorruptRecord)?;
    Ok(store.set(&TenantKeys::new(tenant).mint(entry.version), &bytes)?)
}
