//! The minted credential, cached sealed at `P:mint:<r>`, where `r` is the record (`P:r:<r>`, the
//! slot that wrote the identity, see `store::TenantKeys::mint`) the credential was minted from.
//!
//! ## Store calls
//! - a read: `get P:mint:<r>`;
//! - a mint adds `set P:mint:<r>`, then `get P:r:<r>`, and `delete P:mint:<r>` if the record is gone.
//!
//! The log is not involved: a reader writes no slot, and nothing of the tenant's state (the view)
//! changes. The value names its record again inside and is sealed bound to the tenant, the secret's
//! name and that record, so a late write by a reader that minted from a replaced record can never
//! be handed out for a newer one (a modify or a re-seal gives the secret a new record, hence a new
//! key). A value past its `freshUntil` is ignored and replaced by the next mint. Concurrent misses
//! may each mint once; every one of them writes a valid credential. A value that cannot be opened
//! (corrupt, or sealed under a key since removed from the keyring) counts as a miss. Nothing is
//! cached from a failure: a provider's refusal or outage returns before the `set`.
//!
//! ## Why no cached credential outlives its record (by order, not timing)
//! A record `r` stops being named when a slot replaces or deletes its secret; from that slot on,
//! the views list `r` as garbage, and its deleters (the writer that applies the slot, and the next
//! one) delete `P:r:<r>` and, because the entry was a minting kind (the view's `minted` list),
//! `P:mint:<r>` after it (`log::apply_slot`). A record is never written again once deleted: its
//! slot's writer wrote it before proposing the slot, and a reader finds `r` only in a view, that is
//! after the slot applied. Now take any `set P:mint:<r>` of ours:
//! - if some deleter's `delete P:mint:<r>` comes after our `set`, it removes what we wrote;
//! - if not, our `set` comes after every deleter's `delete P:mint:<r>`, so after its
//!   `delete P:r:<r>`; our `get P:r:<r>` comes after our `set`, sees the record gone, and we
//!   delete the key ourselves.
//!
//! Either the GC's delete of the cache follows our set, or our get sees the record gone, whatever
//! pauses either side takes. A static secret's record has no cache key and its deletion costs no
//! extra call. The one case this order cannot cover is a reader that *dies* (not pauses) between
//! its `set` and its `get` after the record was deleted: one key stays, holding a credential that
//! expires within the provider's token life.

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
    record: u64,
    expires_at: u64,
    fresh_until: u64,
    sealed: Sealed,
}

fn binding_name(entry: &IndexEntry) -> String {
    format!("{}\u{0}mint\u{0}{}", entry.name, entry.record)
}

/// The cached credential of this entry's record while it is fresh at `now_ms`.
pub fn read<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
    now_ms: u64,
) -> Result<Option<Minted>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).mint(entry.record))? else { return Ok(None) };
    let Ok(cached) = serde_json::from_slice::<Cached>(&bytes) else { return Ok(None) };
    if cached.record != entry.record || now_ms >= cached.fresh_until {
        return Ok(None);
    }
    let name = binding_name(entry);
    let Ok(plain) = keyring.open(&BindingContext { tenant: tenant.as_str(), name: &name }, &cached.sealed) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Minted>(&plain).ok().filter(|m| m.expires_at == cached.expires_at))
}

/// When the credential cached for `record` expires (no keyring needed: the expiry is stored in the
/// clear). `None` when nothing is cached or it has expired at `now_ms`.
pub fn expiry<S: KeyValue>(store: &S, tenant: &TenantId, record: u64, now_ms: u64) -> Result<Option<u64>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).mint(record))? else { return Ok(None) };
    Ok(serde_json::from_slice::<Cached>(&bytes)
        .ok()
        .filter(|c| c.record == record && c.expires_at > now_ms)
        .map(|c| c.expires_at))
}

/// Caches `minted` for the entry's record; removes it again if the record was deleted meanwhile
/// (see the module doc).
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
        Cached { record: entry.record, expires_at: minted.expires_at, fresh_until: minted.fresh_until, sealed };
    let bytes = serde_json::to_vec(&cached).map_err(|_| Internal::CorruptRecord)?;
    let keys = TenantKeys::new(tenant);
    store.set(&keys.mint(entry.record), &bytes)?;
    if store.get(&keys.record(entry.record))?.is_none() {
        store.delete(&keys.mint(entry.record))?;
    }
    Ok(())
}
