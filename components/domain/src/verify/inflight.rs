//! At most one check per secret in flight, with a [`crate::lease`] per secret version, so that a
//! node dying mid-check blocks the secret's checks for at most two leases.
//!
//! The lease's windows are the check's: `P:check:<version>:<w>` and `…:<w+1>`. A check never runs
//! longer than a lease (its deadline stops new requests early enough, see
//! [`super::CheckPolicy`]), which is what the lease's proof needs. The owner deletes both keys when
//! done; a refused claimant deletes the one it owns.
//!
//! Store calls: `increment …:<w>`; `increment …:<w+1>` (only if the first gave 1); leftovers of dead
//! checks, `exists` and `delete` of `…:<w-3>` to `…:<w-1>`; when done, `delete …:<w>`, `delete …:<w+1>`.
//!
//! Failure model: a node that dies holding a claim leaves its two keys; they refuse checks of that
//! secret version until window `w+2` and are deleted by the next check of it that starts within
//! three windows. So the store holds, besides one key per secret, two keys per check in flight and at
//! most two per check whose node died (until that version is checked again). The windows come from
//! each node's clock: nodes whose clocks differ by more than a lease could run two checks of one
//! version at once (harmless but for the registry's load), never more than that.

use crate::error::Error;
use crate::lease::{self, Lease};
use crate::store::{KeyValue, TenantKeys};

/// Proof that this check is the one in flight for the secret's version.
#[derive(Debug)]
pub struct Claim {
    lease: Lease,
}

pub fn claim<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    version: u64,
    now_ms: u64,
    lease_ms: u64,
) -> Result<Claim, Error> {
    let Some(lease) = lease::take(store, |w| keys.check_claim(version, w), now_ms, lease_ms)? else {
        return Err(Error::VerificationInProgress);
    };
    let window = lease.window();
    for old in window.saturating_sub(3)..window {
        let leftover = keys.check_claim(version, old);
        if store.exists(&leftover)? {
            store.delete(&leftover)?;
        }
    }
    Ok(Claim { lease })
}

impl Claim {
    pub fn release<S: KeyValue>(self, store: &S) -> Result<(), Error> {
        self.lease.release(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::TenantId;
    use crate::store::MemoryStore;

    fn keys() -> TenantKeys {
        TenantKeys::new(&TenantId::parse("acme").unwrap())
    }

    const LEASE: u64 = 1_000;

    #[test]
    fn one_check_per_version_at_a_time_and_none_left_behind() {
        let store = MemoryStore::new();
        let held = claim(&store, &keys(), 7, 5_500, LEASE).unwrap();
        for now in [5_500, 5_999, 6_000, 6_999] {
            assert_eq!(claim(&store, &keys(), 7, now, LEASE).unwrap_err(), Error::VerificationInProgress, "{now}");
        }
        assert!(claim(&store, &keys(), 8, 5_500, LEASE).is_ok(), "another version is another secret state");
        held.release(&store).unwrap();
        let again = claim(&store, &keys(), 7, 6_100, LEASE).unwrap();
        again.release(&store).unwrap();
        let check_keys =
            |store: &MemoryStore| store.dump().into_keys().filter(|k| k.contains(":check:7:")).collect::<Vec<_>>();
        assert!(check_keys(&store).is_empty(), "{:?}", check_keys(&store));
    }

    #[test]
    fn a_dead_checker_blocks_for_at_most_two_leases_and_its_keys_are_removed() {
        let store = MemoryStore::new();
        // The node dies: the claim is never released.
        let _dead = claim(&store, &keys(), 7, 5_999, LEASE).unwrap();
        assert!(claim(&store, &keys(), 7, 6_500, LEASE).is_err());
        let next = claim(&store, &keys(), 7, 7_000, LEASE).unwrap();
        next.release(&store).unwrap();
        assert!(store.dump().keys().all(|k| !k.contains(":check:")), "{:?}", store.dump().keys());
    }

    #[test]
    fn racing_claimants_one_wins() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let winners: usize = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || claim(&*store, &keys(), 3, 10_000 + i * 150, LEASE).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap() as usize)
            .sum();
        assert_eq!(winners, 1);
    }
}
