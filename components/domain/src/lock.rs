//! The per-tenant write lock: a ticket lock built on `increment`, the one reliable atomic.
//!
//! Every write of a tenant's secrets happens under this lock, so the tenant's index can be read,
//! changed and written back without compare-and-swap (which Spin's stores cannot offer) and
//! without losing a concurrent update. Readers never take it.
//!
//! Store calls:
//! - acquire: `increment(P:lock:next, 1)` (one write) for a ticket, then `get(P:lock:serving)`
//!   (reads only) until it names our ticket. FIFO, and a waiter only reads while it waits.
//! - release: `set(P:lock:serving, ticket + 1)` (one write).
//!
//! Crashes: a holder or waiter that traps leaves `serving` on its ticket. A waiter that sees the
//! same `serving` for longer than the lease (measured on its own clock, so nodes' clocks need not
//! agree) breaks the lock by setting `serving` to the next ticket and recording the dead ticket as
//! a *suspect*; the next holder removes whatever the suspect wrote but never committed (see
//! `secrets::repair`). Several breakers write the same value, so breaking is idempotent.
//!
//! What this relies on: a live holder finishes within the lease (default 10 s; an operation is a
//! handful of store calls). A holder re-checks that it still holds the lock before its commit
//! write ([`Held::confirm`]), which narrows the window left by a holder stalled past its lease.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Error, Internal};
use crate::store::{KeyValue, TenantKeys};

/// The value of `P:lock:serving`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    /// The ticket allowed to write. Tickets start at 1, so an absent key means 1.
    #[serde(rename = "t")]
    pub ticket: u64,
    /// Tickets whose holders were declared dead; their uncommitted writes must be removed.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub suspects: Vec<u64>,
}

/// How long a waiter tolerates an unchanged `serving` before it declares the ticket dead, and
/// how long it waits in all before giving up with 503.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub lease: Duration,
    pub max_wait: Duration,
}

impl LockPolicy {
    pub const DEFAULT_LEASE_MS: u64 = 10_000;

    pub fn with_lease(lease: Duration) -> LockPolicy {
        LockPolicy { lease, max_wait: lease * 6 }
    }
}

impl Default for LockPolicy {
    fn default() -> Self {
        LockPolicy::with_lease(Duration::from_millis(LockPolicy::DEFAULT_LEASE_MS))
    }
}

/// Proof of holding a tenant's lock.
#[derive(Debug)]
pub struct Held {
    pub ticket: u64,
    /// Dead tickets inherited from breakers, to be repaired by this holder.
    pub suspects: Vec<u64>,
}

fn read_serving<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<Serving, Error> {
    match store.get(&keys.lock_serving())? {
        None => Ok(Serving { ticket: 1, suspects: Vec::new() }),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| Internal::CorruptRecord.into()),
    }
}

fn write_serving<S: KeyValue>(store: &S, keys: &TenantKeys, serving: &Serving) -> Result<(), Error> {
    let bytes = serde_json::to_vec(serving).map_err(|_| Internal::CorruptRecord)?;
    Ok(store.set(&keys.lock_serving(), &bytes)?)
}

pub fn acquire<S: KeyValue, C: Clock>(
    store: &S,
    clock: &C,
    keys: &TenantKeys,
    policy: LockPolicy,
) -> Result<Held, Error> {
    let started = clock.now_ms();
    let mut ticket = take_ticket(store, keys)?;
    // (serving seen, when first seen unchanged)
    let mut watching: Option<(Serving, u64)> = None;
    loop {
        let serving = read_serving(store, keys)?;
        if serving.ticket == ticket {
            return Ok(Held { ticket, suspects: serving.suspects });
        }
        if serving.ticket > ticket {
            // Declared dead while alive (we were stalled past a lease): queue again.
            ticket = take_ticket(store, keys)?;
            watching = None;
            continue;
        }
        let now = clock.now_ms();
        if now.saturating_sub(started) > policy.max_wait.as_millis() as u64 {
            return Err(Internal::LockTimeout.into());
        }
        match &watching {
            Some((seen, since)) if *seen == serving => {
                if now.saturating_sub(*since) >= policy.lease.as_millis() as u64 {
                    break_lock(store, keys, &serving)?;
                    watching = None;
                    continue;
                }
            }
            _ => watching = Some((serving.clone(), now)),
        }
        let queue_position = ticket - serving.ticket;
        clock.sleep(Duration::from_millis((queue_position * 2).clamp(1, 25)));
    }
}

fn take_ticket<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<u64, Error> {
    let ticket = store.increment(&keys.lock_next(), 1)?;
    u64::try_from(ticket).map_err(|_| Internal::CorruptRecord.into())
}

/// Skip a dead ticket. Re-reads first, so a breaker that lost a race does not move `serving` back.
fn break_lock<S: KeyValue>(store: &S, keys: &TenantKeys, stuck: &Serving) -> Result<(), Error> {
    if read_serving(store, keys)? != *stuck {
        return Ok(());
    }
    let mut suspects = stuck.suspects.clone();
    suspects.push(stuck.ticket);
    write_serving(store, keys, &Serving { ticket: stuck.ticket + 1, suspects })
}

impl Held {
    /// Still ours? Checked right before the commit write of an operation.
    pub fn confirm<S: KeyValue>(&self, store: &S, keys: &TenantKeys) -> Result<(), Error> {
        if read_serving(store, keys)?.ticket == self.ticket {
            Ok(())
        } else {
            Err(Internal::LockTimeout.into())
        }
    }

    /// Hands the lock to the next ticket. Suspects this holder has not repaired are passed on.
    pub fn release<S: KeyValue>(self, store: &S, keys: &TenantKeys, unrepaired: Vec<u64>) -> Result<(), Error> {
        write_serving(store, keys, &Serving { ticket: self.ticket + 1, suspects: unrepaired })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::TenantId;
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    struct FakeClock(AtomicU64);
    impl Clock for FakeClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
        fn sleep(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }

    fn keys() -> TenantKeys {
        TenantKeys::new(&TenantId::parse("acme").unwrap())
    }

    #[test]
    fn first_ticket_holds_an_untouched_lock() {
        let store = MemoryStore::new();
        let held = acquire(&store, &crate::clock::SystemClock, &keys(), LockPolicy::default()).unwrap();
        assert_eq!(held.ticket, 1);
        held.release(&store, &keys(), vec![]).unwrap();
        let held = acquire(&store, &crate::clock::SystemClock, &keys(), LockPolicy::default()).unwrap();
        assert_eq!(held.ticket, 2);
    }

    #[test]
    fn a_dead_holder_is_skipped_after_the_lease_and_becomes_a_suspect() {
        let store = MemoryStore::new();
        let clock = FakeClock(AtomicU64::new(1_000));
        let policy = LockPolicy::with_lease(Duration::from_millis(500));
        let dead = acquire(&store, &clock, &keys(), policy).unwrap();
        let before = clock.now_ms();
        let next = acquire(&store, &clock, &keys(), policy).unwrap();
        assert_eq!(next.ticket, dead.ticket + 1);
        assert_eq!(next.suspects, vec![dead.ticket]);
        assert!(clock.now_ms() - before >= 500, "waited out the lease");
        assert!(dead.confirm(&store, &keys()).is_err(), "the dead holder no longer holds it");
    }

    #[test]
    fn concurrent_holders_never_overlap() {
        let store = Arc::new(MemoryStore::new());
        let inside = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, inside, total) = (store.clone(), inside.clone(), total.clone());
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let held =
                            acquire(&*store, &crate::clock::SystemClock, &keys(), LockPolicy::default()).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                        total.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        held.release(&*store, &keys(), vec![]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), 200);
    }
}
