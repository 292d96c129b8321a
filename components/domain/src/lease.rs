//! A lease on a short stretch of time, held by at most one claimant at a time, made with
//! `increment` (the one reliable atomic of every Spin store) and no compare-and-swap: a credential
//! check of one secret version (`verify::inflight`), a refresh of one console session (`signin`).
//!
//! Time is cut into windows of one lease (`w = now / window`). A claimant takes the two windows it
//! may run in, `key(w)` and `key(w + 1)`, each with `increment`, and holds the lease only if both
//! answered 1; when the second did not, it deletes the first (which it alone took) and gives up.
//! The holder's work never lasts longer than a lease, so work that started in window `w` has ended
//! before `w + 2` begins: two claimants whose work could overlap started in the same or adjacent
//! windows, share a key, and only one of them saw 1 there. The holder releases (deletes both
//! keys) when done, so the next claimant need not wait for the windows to pass.
//!
//! Failures, none of which lets two claimants hold the lease at once:
//! - a holder that dies leaves its two keys: the lease is refused until window `w + 2`, then
//!   granted again; the keys stay until the caller's clean-up finds them;
//! - an `increment` that failed on the client and took effect later holds a window nobody uses:
//!   the lease is refused for the rest of that window and the next, never granted twice;
//! - a release that takes effect late deletes keys of windows `w` and `w + 1`, of which a later
//!   holder (windows `w + 1` and `w + 2` at the earliest) has one at most: a claimant needs both,
//!   and the later holder's `w + 2` key still refuses it.
//!
//! The windows come from each node's clock: nodes whose clocks differ by more than a window could
//! hold the lease at once, never more than that.

use crate::error::Error;
use crate::store::{Key, KeyValue};

/// Proof of holding the lease: its two keys.
#[derive(Debug)]
#[must_use = "a lease is released when its work is done"]
pub struct Lease {
    first: Key,
    second: Key,
    window: u64,
}

/// The lease of the windows of `window_ms` that `now_ms` falls in, when no one else holds it
/// (`None`: someone does). `key(w)` names window `w`'s counter.
pub fn take<S: KeyValue + ?Sized>(
    store: &S,
    key: impl Fn(u64) -> Key,
    now_ms: u64,
    window_ms: u64,
) -> Result<Option<Lease>, Error> {
    let window = now_ms / window_ms.max(1);
    let first = key(window);
    if store.increment(&first, 1)? != 1 {
        return Ok(None);
    }
    let second = key(window + 1);
    if store.increment(&second, 1)? != 1 {
        store.delete(&first)?;
        return Ok(None);
    }
    Ok(Some(Lease { first, second, window }))
}

impl Lease {
    /// The window the lease was taken in.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Ends the lease: the next claimant is granted it at once.
    pub fn release<S: KeyValue + ?Sized>(self, store: &S) -> Result<(), Error> {
        store.delete(&self.first)?;
        store.delete(&self.second)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, TenantKeys};

    fn key(w: u64) -> Key {
        TenantKeys::new(&crate::name::TenantId::parse("acme").unwrap()).check_claim(1, w)
    }

    #[test]
    fn a_release_that_lands_late_lets_no_second_holder_in() {
        let store = MemoryStore::new();
        // Windows of 1 s. The first holder takes windows 5 and 6, and releases; its release is
        // sent again (a retry) and the first attempt lands late, below.
        let first = take(&store, key, 5_100, 1_000).unwrap().unwrap();
        first.release(&store).unwrap();
        let later = take(&store, key, 6_100, 1_000).unwrap().expect("released: granted at once");
        // The late copy of the first release deletes window 6's key, the later holder's first.
        store.delete(&key(6)).unwrap();
        for now in [6_100, 6_900, 7_000, 7_999] {
            assert!(take(&store, key, now, 1_000).unwrap().is_none(), "{now}: window 7's key still refuses");
        }
        later.release(&store).unwrap();
        assert!(take(&store, key, 7_000, 1_000).unwrap().is_some());
    }
}
