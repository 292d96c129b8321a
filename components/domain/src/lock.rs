//! The per-tenant write lock: a ticket lock built on `increment`, the one reliable atomic, that
//! recovers from any number of dead tickets in bounded time.
//!
//! Every write of a tenant's secrets happens under this lock, so the tenant's index can be read,
//! changed and written back without compare-and-swap (which Spin's stores cannot offer) and
//! without losing a concurrent update. Readers never take it.
//!
//! ## Protocol (P = the tenant prefix)
//! - **Acquire**: take a ticket `t = increment(P:lock:next)`, then read `P:lock:serving` until it
//!   names `t` (reads only while waiting; FIFO among live waiters). If it names a ticket *above*
//!   `t`, we were skipped by a break: take a fresh ticket (the wait so far still counts).
//! - **Release**: read `serving` (still ours? if not, a breaker holds it: write nothing), read
//!   `P:lock:gone`, and set `serving` to the next ticket that is not marked gone.
//! - **Break** (recovery): a waiter that sees the same `serving` for a whole lease, on its own
//!   clock, re-reads it, takes a *fresh* ticket `F = increment(P:lock:next)` and sets `serving` to
//!   `F`, adding the stuck ticket to the value's *suspects*. Every ticket dispensed before `F`, dead
//!   or alive, is skipped at once: live skipped waiters see `serving > mine` and queue again, dead
//!   ones cost nothing more. So one lease after the last change of `serving`, whatever the number of
//!   dead tickets, a live writer has the lock. The breaker then waits half a lease (the *settle*)
//!   before reading `serving` again: if another waiter broke the same stuck ticket at the same time,
//!   the later write wins and the loser sees `serving` is not its ticket (above it: it queues again;
//!   below it: it waits in line as any waiter).
//! - **Give up**: a waiter that has waited `max_wait` in all adds its ticket to `P:lock:gone`
//!   (read, add, write, read back to check a racing give-up did not overwrite it), so releases hand
//!   the lock past it at no cost to those behind. It then reads `serving` once more: if the lock
//!   reached it meanwhile it holds the lock after all and goes on; otherwise it answers 503.
//!   `gone` is pruned of tickets already passed by each writer of it, so it stays small.
//! - **Confirm**: right before its commit write, a holder reads `serving`: if it no longer names its
//!   ticket, the holder was declared dead (stalled past its lease), writes nothing more, deletes the
//!   record it wrote under its own ticket, and answers 503.
//!
//! ## Store calls
//! acquire: `increment P:lock:next`, `get P:lock:serving` ×k (k ≥ 1; more only while waiting).
//! release: `get P:lock:serving`, `get P:lock:gone`, `set P:lock:serving`. A break adds
//! `get P:lock:serving`, `increment P:lock:next`, `set P:lock:serving`; a give-up adds
//! `get P:lock:serving`, `get P:lock:gone`, `set P:lock:gone`, `get P:lock:gone`, `get P:lock:serving`.
//!
//! ## Failure model (a node dies between any two of these calls)
//! - After `increment` (a waiter dies): its ticket is dead. When `serving` reaches it, nobody moves
//!   `serving` for a lease; the next live waiter breaks, skipping it and every other dead ticket.
//! - While holding (after the `get` that returned its ticket, before the release's `set`): the same;
//!   its uncommitted record (`P:r:<ticket>`) is removed by the next holder, which inherits the ticket
//!   as a suspect. Committed work stays (the index write is the commit point).
//! - A breaker dies after its `increment`: its fresh ticket is one more dead ticket, nothing else
//!   changed. After its `set`: `serving` names its dead fresh ticket; the next break skips it
//!   (the suspects list carries the original stuck ticket along, so its repair is not lost).
//! - A giving-up waiter dies before or after marking: unmarked, its ticket is one more dead ticket
//!   (one lease, then skipped with all others); marked, it is skipped at no cost.
//! - Only `increment`, `get` and `set` of single keys are used, atomic on SQLite and Redis.
//!
//! ## What this relies on
//! A live holder finishes within the lease (default 10 s; an operation is a handful of store calls);
//! a breaker's re-read, `increment` and `set` take less than the settle (half a lease). If a holder
//! stalls past its lease, two holders can overlap; [`Held::confirm`] right before the commit write
//! narrows that to the one store call between the confirm and the commit. `serving` never moves
//! backwards except by such an overlap (release re-reads it first). Nodes' clocks need not agree:
//! every duration is measured on the waiter's own clock.
//!
//! ## Residual costs
//! A waiter that gives up at the very moment a release reads `gone` may be handed the lock after
//! it left: one lease, then a break. Live waiters skipped by a break lose their place (FIFO holds
//! among waiters that were not skipped). A live writer that first looks at a stuck `serving` gets
//! the lock within a lease and a half of that look, plus the time of its polls.

use std::cell::Cell;
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

    /// A waiter gives up after three leases: recovery from dead tickets takes at most one and a
    /// half, so only a queue too long to serve in time makes a writer give up.
    pub fn with_lease(lease: Duration) -> LockPolicy {
        LockPolicy { lease, max_wait: lease * 3 }
    }

    /// How long a breaker waits after its write before it trusts it (see the module's protocol).
    pub fn settle(&self) -> Duration {
        self.lease / 2
    }

    /// The refusal when the lock cannot be had: retry after about a lease (at least a second).
    pub fn busy(&self) -> Error {
        Error::TenantBusy { retry_after_secs: self.lease.as_millis().div_ceil(1000).max(1) as u64 }
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
    policy: LockPolicy,
    /// Set when [`Held::confirm`] found the lock taken over: release then writes nothing.
    superseded: Cell<bool>,
}

/// At most this many gone tickets are remembered; beyond it a give-up costs a lease, as a death does.
const GONE_CAPACITY: usize = 64;

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

fn read_gone<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<Vec<u64>, Error> {
    match store.get(&keys.lock_gone())? {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| Internal::CorruptRecord.into()),
    }
}

fn take_ticket<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<u64, Error> {
    let ticket = store.increment(&keys.lock_next(), 1)?;
    u64::try_from(ticket).map_err(|_| Internal::CorruptRecord.into())
}

/// How long `serving` has shown the same value, on the waiter's own clock.
#[derive(Default)]
struct Watch(Option<(Serving, u64)>);

impl Watch {
    fn unchanged_for(&mut self, serving: &Serving, now: u64) -> u64 {
        match &self.0 {
            Some((seen, since)) if seen == serving => now.saturating_sub(*since),
            _ => {
                self.0 = Some((serving.clone(), now));
                0
            }
        }
    }
}

pub fn acquire<S: KeyValue, C: Clock>(
    store: &S,
    clock: &C,
    keys: &TenantKeys,
    policy: LockPolicy,
) -> Result<Held, Error> {
    let started = clock.now_ms();
    let mut ticket = take_ticket(store, keys)?;
    let mut watch = Watch::default();
    loop {
        let serving = read_serving(store, keys)?;
        if serving.ticket == ticket {
            return Ok(Held::new(ticket, serving.suspects, policy));
        }
        let now = clock.now_ms();
        let out_of_time = now.saturating_sub(started) > policy.max_wait.as_millis() as u64;
        if serving.ticket > ticket {
            if out_of_time {
                return Err(policy.busy()); // skipped, so nobody waits for this ticket: leave
            }
            // Skipped by a break (every ticket before the breaker's was): queue again.
            ticket = take_ticket(store, keys)?;
            watch = Watch::default();
            continue;
        }
        if watch.unchanged_for(&serving, now) >= policy.lease.as_millis() as u64 {
            ticket = break_lock(store, clock, keys, &serving, ticket, policy)?;
            watch = Watch::default();
            continue;
        }
        if out_of_time {
            return give_up(store, keys, ticket, policy);
        }
        let queue_position = ticket - serving.ticket;
        clock.sleep(Duration::from_millis((queue_position * 2).clamp(1, 25)));
    }
}

/// Skips every ticket dispensed so far by moving `serving` to a fresh ticket of ours; returns the
/// ticket to wait with from now on. Re-reads first, so a breaker that comes late does nothing.
fn break_lock<S: KeyValue, C: Clock>(
    store: &S,
    clock: &C,
    keys: &TenantKeys,
    stuck: &Serving,
    mine: u64,
    policy: LockPolicy,
) -> Result<u64, Error> {
    if read_serving(store, keys)? != *stuck {
        return Ok(mine);
    }
    let fresh = take_ticket(store, keys)?;
    let mut suspects = stuck.suspects.clone();
    suspects.push(stuck.ticket);
    write_serving(store, keys, &Serving { ticket: fresh, suspects })?;
    // A breaker that read the same stuck value before our write may still overwrite it.
    clock.sleep(policy.settle());
    Ok(fresh)
}

/// Leaves the queue without slowing those behind: marks the ticket gone so releases skip it.
fn give_up<S: KeyValue>(store: &S, keys: &TenantKeys, ticket: u64, policy: LockPolicy) -> Result<Held, Error> {
    for _ in 0..3 {
        let serving = read_serving(store, keys)?;
        if serving.ticket > ticket {
            return Err(policy.busy()); // already skipped: nothing to mark
        }
        if serving.ticket == ticket {
            return Ok(Held::new(ticket, serving.suspects, policy));
        }
        let mut gone = read_gone(store, keys)?;
        gone.retain(|t| *t > serving.ticket && *t != ticket);
        gone.push(ticket);
        gone.sort_unstable();
        gone.truncate(GONE_CAPACITY);
        let bytes = serde_json::to_vec(&gone).map_err(|_| Internal::CorruptRecord)?;
        store.set(&keys.lock_gone(), &bytes)?;
        // Another waiter giving up at the same time may have overwritten our mark: check.
        if read_gone(store, keys)?.contains(&ticket) {
            break;
        }
    }
    let serving = read_serving(store, keys)?;
    if serving.ticket == ticket {
        // Handed to us while we marked: a release read `gone` before our mark landed. Hold it.
        return Ok(Held::new(ticket, serving.suspects, policy));
    }
    Err(policy.busy())
}

impl Held {
    fn new(ticket: u64, suspects: Vec<u64>, policy: LockPolicy) -> Held {
        Held { ticket, suspects, policy, superseded: Cell::new(false) }
    }

    /// Still ours? Checked right before the commit write of an operation. If not, the holder was
    /// declared dead while alive: it must write nothing more, and answers 503.
    pub fn confirm<S: KeyValue>(&self, store: &S, keys: &TenantKeys) -> Result<(), Error> {
        if read_serving(store, keys)?.ticket == self.ticket {
            Ok(())
        } else {
            self.superseded.set(true);
            Err(self.policy.busy())
        }
    }

    /// Whether [`Held::confirm`] found the lock taken over.
    pub fn superseded(&self) -> bool {
        self.superseded.get()
    }

    /// Hands the lock to the next ticket not marked gone. Suspects this holder has not repaired
    /// are passed on. A holder that lost the lock (to a breaker) writes nothing.
    pub fn release<S: KeyValue>(self, store: &S, keys: &TenantKeys, unrepaired: Vec<u64>) -> Result<(), Error> {
        if self.superseded() || read_serving(store, keys)?.ticket != self.ticket {
            return Ok(());
        }
        let gone = read_gone(store, keys)?;
        let mut next = self.ticket + 1;
        while gone.contains(&next) {
            next += 1;
        }
        write_serving(store, keys, &Serving { ticket: next, suspects: unrepaired })
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
