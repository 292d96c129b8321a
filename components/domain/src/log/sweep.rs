//! The sweep: what a true view proves garbage, found among all the tenant's keys. It collects
//! what the regular clean-up cannot know of: a key written *late*, after the slot it belongs to
//! was applied and cleaned, by a writer that was paused across it and died before it could clean
//! up after itself, or by a store call that failed on the client and reached the store later.
//! Such a key can be any of the slot-numbered ones, at any slot, at any time, so only a listing
//! finds it; `get_keys` scans the whole store on every Spin backend, so the sweep runs once every
//! `Shape::sweep_every` slots of a tenant, not on every write.
//!
//! With `v(j)` a view that was written (true, whoever reads it and however late):
//! - `P:r:<x>`, `x ≤ j`, not named by `v(j)`: views name only the records of their own slot's
//!   writes, so no view after `j` names it again;
//! - `P:mint:<x>` after `P:r:<x>`, for such an `x` or any `x ≤ j` that `v(j)` does not name as a
//!   minting secret's record (the order of `mint::cache`'s proof);
//! - `P:s:<x>:…`, `x ≤ j`: slot `x` is applied (`v(x)` was written before `v(j)`), and every reader
//!   of a slot's registers checks afterwards that the slot was not applied (`log::applied`);
//! - `P:v:<x>`, `x + W < j`: `v(x + W)` was written, the fence's rule (the view before the window is
//!   kept, as the regular clean-up keeps it);
//! - `P:check:<version>:…` for a version `≤ j` that no secret of `v(j)` is at: that check's outcome
//!   is refused as stale anyway (`verify`), so its claim guards nothing.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::store::{KeyValue, TenantKey, TenantKeys};
use crate::view::View;

/// Deletes every key of the tenant that `view` (a true view) proves garbage, `window` being the
/// log's `W`; answers how many.
pub fn sweep<S: KeyValue>(store: &S, keys: &TenantKeys, view: &View, window: u64) -> Result<usize, Error> {
    let j = view.slot();
    let entries = view.entries()?;
    let named: BTreeSet<u64> = view.records()?.into_iter().collect();
    let minting: BTreeSet<u64> = entries.iter().filter(|e| !e.kind.is_static()).map(|e| e.record).collect();
    let versions: BTreeSet<u64> = entries.iter().map(|e| e.version).collect();
    let mut first = Vec::new();
    let mut then = Vec::new();
    for listed in store.keys()? {
        let Some((family, key)) = keys.parse(&listed) else { continue };
        match family {
            TenantKey::Record(x) if x <= j && !named.contains(&x) => first.push(key),
            TenantKey::Mint(x) if x <= j && !minting.contains(&x) => then.push(key),
            TenantKey::Register(x) if x <= j => first.push(key),
            TenantKey::View(x) if x + window < j => first.push(key),
            TenantKey::CheckClaim(version) if version <= j && !versions.contains(&version) => first.push(key),
            _ => {}
        }
    }
    let removed = first.len() + then.len();
    for key in first.into_iter().chain(then) {
        store.delete(&key)?;
    }
    Ok(removed)
}
