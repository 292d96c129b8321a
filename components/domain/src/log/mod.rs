//! The tenant's write log: how a write is made durable and how a read finds the current state,
//! with `get`, `set`, `delete`, `exists` and `increment` alone, and with safety that depends on no
//! timing at all. Timing (the lease) decides only how soon a stalled slot is taken over.
//!
//! ## Layout (P = the tenant prefix; keys are built in `store.rs`)
//! - `P:seq`: a counter; `increment` hands out slots 1, 2, 3, … Every write takes one.
//! - `P:s:<k>:…`: slot `k`'s registers, by which the slot decides its value: the operation of the
//!   writer that took it, or *void* (see `slot.rs`). They exist only while the slot is in flight.
//! - `P:v:<k>`: the *view* after slot `k`: the whole tenant state (every secret's metadata, the
//!   quota limit, the outcomes of recent slots) as a function of the view before it and the slot's
//!   decided value (`op::apply`). Views are kept for the last [`WINDOW`] slots.
//! - `P:r:<k>`: the sealed credentials written by slot `k` (create, modify, re-seal).
//! - `P:mint:<k>`: for a minting secret's record `k`, the registry credential readers minted from
//!   it (`mint::cache`); deleted right after `P:r:<k>` when the record becomes garbage.
//!
//! ## A write of operation `op` ([`write()`])
//! 1. Read the current view ([`read_for_write`]) and refuse at once what it refuses (nothing is
//!    written). While `W` or more writes are in flight the window holds no view: a log that moves
//!    means a queue too long to join (503 `TenantBusy`, nothing written); one that stalls for a
//!    lease means dead writers, and the writer goes ahead from the newest view to recover them.
//! 2. `k = increment P:seq`: the slot is ours alone.
//! 3. `set P:r:<k>` (if `op` carries credentials), then `set P:s:<k>:0` (the intent) and read the
//!    slot's ballot counter: the slot decides `op` unless a takeover is under way (`slot.rs`).
//! 4. Obtain the view `v(k-1)`: read it when it appears; if the lowest unapplied slot has not
//!    moved for a lease, take it over (decide it, adopting its intent if written, voiding it if
//!    not) and apply it, and so on up to `k-1`.
//! 5. The fence ([`applied`]): check that slot `k` has not been applied by someone else meanwhile.
//!    If it has, this writer's reads may be stale (the slot's registers are deleted once it is
//!    applied): it answers what the views say became of slot `k`.
//! 6. `set P:v:<k> = apply(v(k-1), decided value)`; answer the outcome of `op` in it.
//! 7. Clean up: delete the records the view lists as garbage (each minting one's cached credential
//!    `P:mint:<r>` right after its record `P:r:<r>`, see `mint::cache`), `P:v:<k-W>`, and slot
//!    `k`'s registers.
//!
//! ## A read ([`read`])
//! `S = P:seq`; the first present view among `v(S), v(S-1), …, v(S-W+1)`; if it is not `v(S)`,
//! read `P:seq` again and accept `v(j)` only if it is still below `j + W`. Common case: 2 calls.
//!
//! ## Why it is safe (whatever pauses, deaths and clock steps; nothing here reads a clock)
//! **A. Every slot decides exactly one value**, its taker's operation or void (Paxos, `slot.rs`),
//! provided its registers are read before they are deleted.
//!
//! **B. Every view ever written holds the true state after its slot.** By induction on `k`:
//! `v(k)` is written only by a writer that read a view `v(k-1)` (true by induction), learned slot
//! `k`'s value, and then found (fence) that slot `k` was not yet applied. Registers of slot `k`
//! and the view `v(k-1)` are deleted only after `v(k)`, resp. `v(k-1+W)`, is written; so if the fence
//! passes, nothing it read had been deleted, the value it learned is the one decided (A), and the
//! bytes it writes are `apply(v(k-1), value)`, the same bytes every other writer of `v(k)` writes.
//! A writer that pauses after its fence and writes `v(k)` late writes those same true bytes
//! (at worst re-creating a deleted view outside every reader's window; see C).
//!
//! **The fence is exact.** [`applied`]`(k)` reads `v(k)`, `v(k+W)`, `v(k+2W)`, … until one is
//! present or the next index passes `P:seq`. If `v(k)` was written before the fence began, each
//! view in that chain is present or was deleted, and `v(c)` is deleted only after `v(c+W)` was
//! written (so `P:seq ≥ c+W`): the walk continues to `v(c+W)`, and it ends at a present view.
//! If none is found, `v(k)` had not been written when the fence began: slot `k` was not applied.
//!
//! **C. Reads are linearizable.** A read returns `v(j)` present at its read. `v(j)` is the state
//! after slot `j` (B). Any write acknowledged before the read began wrote its view `v(m)` first,
//! with `m ≤ S`. If `j = S`, `v(S)` includes every slot up to `S`. Otherwise every `v(m)`, `j < m ≤ S`,
//! was absent when read; such a view is deleted only once `P:seq ≥ m + W > S' ` (`S'` the second
//! read of `P:seq`), so it had never been written: no write of a slot in `(j, S]` was acknowledged
//! before the read, and slots after `S` were taken after it began.
//!
//! **D. Hence the invariants.** An acknowledged write is in `v(k)` and in every later view (views
//! are computed from their predecessor); it is never lost or half-applied. The view is the only
//! index, so it never names a missing record: a record is written before its slot is proposed, and
//! deleted only once a true view lists it as garbage (replaced, deleted, refused or voided). Names
//! are unique and the quota exact because `apply` checks them against the true previous state. A
//! refused or voided write's record is garbage from its slot on; its writer deletes it again if it
//! wrote it late.
//!
//! ## Failure model: a writer dies or pauses between any two store calls
//! - before `increment`: nothing happened. After it, before its intent: the slot is empty; the
//!   next writer, after a lease without progress, voids it (an orphan record, if written, is the
//!   voided slot's garbage). A paused taker that comes back finds (fence) its slot applied and
//!   answers what the view says: 503 `TenantBusy` for a voided slot, nothing stored.
//! - after its intent: a takeover adopts the intent; the operation applies exactly once, whoever
//!   applies it. The paused taker answers the outcome the view records.
//! - after its fence, before or after writing `v(k)`: its view is true (B); others write the same.
//! - during clean-up: what it did not delete is garbage of a true view; the next writer deletes
//!   the previous view's garbage again, and the takeover of a slot clears its registers.
//! - a store call that fails is a death at that point: the write's outcome is the slot's, and the
//!   caller gets 503 (`StoreUnavailable`); a retry reads first and sees whether it applied.
//!
//! What a pause or death costs is liveness only: writes queued behind a stalled slot wait one
//! lease, then every stalled slot before them is decided at once (a takeover needs no further
//! waiting once one lease has passed without progress). Reads never wait for writers unless more
//! than `W - 1` writes are in flight at once on one tenant.

pub mod op;
pub mod slot;

use std::time::Duration;

use crate::clock::Clock;
use crate::error::{Error, Internal};
use crate::store::{KeyValue, TenantKeys, WINDOW};
use crate::view::{SlotOutcome, View};

use op::{apply, Op, Refusal};
use slot::Proposal;

/// How long a slot may stall before a waiting writer takes it over, and how long a write or a
/// read waits in all before answering 503.
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    pub lease: Duration,
    pub max_wait: Duration,
}

impl WritePolicy {
    pub const DEFAULT_LEASE_MS: u64 = 10_000;

    pub fn with_lease(lease: Duration) -> WritePolicy {
        WritePolicy { lease, max_wait: lease * 3 }
    }

    /// The refusal when a write or read could not finish in time: retry after about a lease.
    pub fn busy(&self) -> Error {
        Error::TenantBusy { retry_after_secs: self.lease.as_millis().div_ceil(1000).max(1) as u64 }
    }
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy::with_lease(Duration::from_millis(WritePolicy::DEFAULT_LEASE_MS))
    }
}

/// What an operation needs from the platform.
pub struct Env<'a, S: KeyValue, C: Clock> {
    pub store: &'a S,
    pub clock: &'a C,
    pub policy: WritePolicy,
}

fn seq<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<u64, Error> {
    Ok(store.counter(&keys.seq())?.unwrap_or(0))
}

fn read_view<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64) -> Result<Option<View>, Error> {
    if slot == 0 {
        return Ok(Some(View::empty()));
    }
    store.get(&keys.view(slot))?.map(View::decode).transpose()
}

/// A ballot met a higher one: let that one finish (a few store calls) before trying again, so
/// that writers who noticed a stalled slot at the same moment do not keep preempting each other.
fn yield_to_higher_ballot<S: KeyValue, C: Clock>(env: &Env<S, C>) {
    env.clock.sleep(env.policy.lease / 4);
}

/// Doubling pauses from 1 ms up to 25 ms, for polling.
struct Backoff(u64);

impl Backoff {
    fn new() -> Backoff {
        Backoff(1)
    }
    fn pause<C: Clock>(&mut self, clock: &C) {
        clock.sleep(Duration::from_millis(self.0));
        self.0 = (self.0 * 2).min(25);
    }
}

/// The tenant's current state (see the module doc, "A read", and C). Waits (up to the policy's
/// `max_wait`) only while the window holds no view, that is while `W` or more writes are in flight.
pub fn read<S: KeyValue, C: Clock>(env: &Env<S, C>, keys: &TenantKeys) -> Result<Current, Error> {
    let started = env.clock.monotonic_ms();
    let mut backoff = Backoff::new();
    loop {
        if let Some(current) = read_once(env.store, keys)? {
            return Ok(current);
        }
        if env.clock.monotonic_ms().saturating_sub(started) > env.policy.max_wait.as_millis() as u64 {
            return Err(env.policy.busy());
        }
        backoff.pause(env.clock);
    }
}

fn read_once<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<Option<Current>, Error> {
    let head = seq(store, keys)?;
    for j in (head.saturating_sub(WINDOW - 1)..=head).rev() {
        if let Some(view) = read_view(store, keys, j)? {
            if j == head {
                return Ok(Some(Current { view, validated: true }));
            }
            if seq(store, keys)? < j + WINDOW {
                return Ok(Some(Current { view, validated: true }));
            }
            return Ok(None);
        }
    }
    Ok(None)
}

/// What a writer starts from: the current state, as [`read`] finds it. While `W` or more writes
/// are in flight the window holds no view; then the writer watches the newest view there is:
/// - if it moves, the log is busy: after the policy's `max_wait` the writer is refused with 503
///   `TenantBusy` before it takes a slot (nothing written), as a queue that long would outlast it;
/// - if it stays for a lease, the slots after it are stalled (their writers died): the writer starts
///   from that view, a true state but maybe not the last, so it refuses nothing up front and lets
///   its slot decide, and its wait for the slot before its own recovers the stalled ones.
pub fn read_for_write<S: KeyValue, C: Clock>(env: &Env<S, C>, keys: &TenantKeys) -> Result<Current, Error> {
    let started = env.clock.monotonic_ms();
    let mut backoff = Backoff::new();
    let mut newest: Option<View> = None;
    let mut since = started;
    loop {
        if let Some(current) = read_once(env.store, keys)? {
            return Ok(current);
        }
        let head = seq(env.store, keys)?;
        // The newest view: found once by walking down, then followed upwards (progress).
        let mut moved = false;
        let mut view = match newest.take() {
            Some(view) => view,
            None => {
                moved = true;
                highest_view_between(env.store, keys, 0, head.saturating_sub(WINDOW))?.unwrap_or_else(View::empty)
            }
        };
        while let Some(next) = read_view(env.store, keys, view.slot() + 1)? {
            view = next;
            moved = true;
        }
        let now = env.clock.monotonic_ms();
        if moved {
            since = now;
        } else if now.saturating_sub(since) >= env.policy.lease.as_millis() as u64 {
            return Ok(Current { view, validated: false });
        }
        newest = Some(view);
        if now.saturating_sub(started) > env.policy.max_wait.as_millis() as u64 {
            return Err(env.policy.busy());
        }
        backoff.pause(env.clock);
    }
}

/// What [`read`] found.
#[derive(Debug, Clone)]
pub struct Current {
    pub view: View,
    /// Whether `view` is the current state (see [`read_for_write`]).
    pub validated: bool,
}

/// Whether slot `slot` had been applied when this call began (see the module doc, "The fence").
pub fn applied<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64) -> Result<bool, Error> {
    let mut c = slot;
    loop {
        if read_view(store, keys, c)?.is_some() {
            return Ok(true);
        }
        if c + WINDOW > seq(store, keys)? {
            return Ok(false);
        }
        c += WINDOW;
    }
}

/// A write: its slot, and what became of its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub slot: u64,
    /// The view right after the slot (for the caller's answer).
    pub view: View,
}

/// How long a writer that has proposed waits in all for its slot's outcome before it answers
/// 503 `WriteOutcomeUnknown` (its slot is still applied, by whoever comes next). Long: once its
/// intent is written, the truthful answer is the slot's outcome, which comes as the queue before
/// it drains (writers are admitted only while fewer than `W` are in flight, see `read_for_write`).
fn outcome_wait(policy: &WritePolicy) -> u64 {
    policy.max_wait.as_millis() as u64 * 10
}

/// Writes `op` (and its record, sealed) through the log; see the module doc. `current` is what
/// the caller checked `op` against (from [`read`]). Answers `Ok` when the operation applied, or
/// the refusal it met at its slot.
pub fn write<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    op: &Op,
    record: Option<&[u8]>,
    current: Current,
) -> Result<Committed, Error> {
    let started = env.clock.monotonic_ms();
    let store = env.store;
    let k = u64::try_from(store.increment(&keys.seq(), 1)?).map_err(|_| Internal::CorruptRecord)?;
    if let Some(bytes) = record {
        store.set(&keys.record(k), bytes)?;
    }
    let mut decided = slot::propose_own(store, keys, k, op)?;
    let contended = decided.is_none();
    let mut own_ballots = Vec::new();
    let Some(previous) = previous_view(env, keys, k, current, started)? else {
        return answer_from_views(env, keys, k, record.is_some(), started);
    };
    while decided.is_none() {
        let (ballot, value) = slot::ballot(store, keys, k, Proposal::Intent(op.clone()))?;
        own_ballots.push(ballot);
        decided = value;
        if decided.is_none() {
            if applied(store, keys, k)? {
                slot::clear(store, keys, k, 0, &own_ballots)?;
                return answer_from_views(env, keys, k, record.is_some(), started);
            }
            if env.clock.monotonic_ms().saturating_sub(started) > outcome_wait(&env.policy) {
                return Err(Error::WriteOutcomeUnknown);
            }
            yield_to_higher_ballot(env);
        }
    }
    // The fence: if nobody has taken a later slot, nobody but us can have applied this one.
    let fenced = env.clock.monotonic_ms();
    if seq(store, keys)? != k && applied(store, keys, k)? {
        return answer_from_views(env, keys, k, record.is_some(), started);
    }
    let value = decided.expect("decided above");
    let applying = Applying { k, previous: &previous, value: &value, contended, own_ballots: &own_ballots, fenced };
    let (view, outcome) = apply_slot(env, keys, applying)?;
    outcome.map(|()| Committed { slot: k, view }).map_err(Refusal::into_error)
}

/// A writer that took longer than this between its fence and the end of its clean-up checks
/// whether it wrote its view after the window had moved past it (a timing used for tidiness only).
const LATE_MS: u64 = 10;

/// Deletes `v(k)` if the window has moved past it: a view written that late re-created one that
/// was already deleted. Only once `v(k+W)` has been written, as the regular clean-up: the fence
/// (`applied`) relies on no view being deleted before the view a window later exists.
fn drop_if_late<S: KeyValue>(store: &S, keys: &TenantKeys, k: u64) -> Result<(), Error> {
    if applied(store, keys, k + WINDOW)? {
        store.delete(&keys.view(k))?;
    }
    Ok(())
}

/// A slot about to be applied: the true `v(k-1)`, its decided value, whether a takeover ran (its
/// registers to clear), the ballots this writer ran, and when its fence passed.
struct Applying<'a> {
    k: u64,
    previous: &'a View,
    value: &'a Proposal,
    contended: bool,
    own_ballots: &'a [u64],
    fenced: u64,
}

/// Writes `v(k)` from the true `v(k-1)` and slot `k`'s decided value, then cleans up. The caller
/// has passed the fence for `k`.
fn apply_slot<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    applying: Applying,
) -> Result<(View, Result<(), Refusal>), Error> {
    let Applying { k, previous, value, contended, own_ballots, fenced } = applying;
    let store = env.store;
    let applied = apply(previous, k, value.op())?;
    // Before the view, so that a writer that dies here leaves this to whoever applies `k` next.
    if k > WINDOW {
        store.delete(&keys.view(k - WINDOW))?;
    }
    store.set(&keys.view(k), applied.view.bytes())?;
    for header in [previous.header(), applied.view.header()] {
        for record in &header.garbage {
            store.delete(&keys.record(*record))?;
            // After the record, never before: see `mint::cache` for why no cached credential
            // outlives its record.
            if header.minted.contains(record) {
                store.delete(&keys.mint(*record))?;
            }
        }
    }
    let handed_out = if contended { slot::ballots(store, keys, k)? } else { 0 };
    slot::clear(store, keys, k, handed_out, own_ballots)?;
    // Slot `k-1`'s intent, in case its applier died before clearing it (it is applied: `previous`).
    if k > 1 {
        store.delete(&keys.block(k - 1, 0))?;
    }
    if env.clock.monotonic_ms().saturating_sub(fenced) > LATE_MS {
        drop_if_late(store, keys, k)?;
    }
    Ok((applied.view, applied.outcome))
}

/// `v(k-1)`, waiting for the slots before `k` and taking over the stalled ones. `None`: slot `k`
/// was applied by others meanwhile (this writer was away for longer than a lease). A writer that
/// started from an unvalidated view has already watched the log stall for a lease
/// (`read_for_write`): it looks for stalled slots at once.
fn previous_view<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    k: u64,
    current: Current,
    started: u64,
) -> Result<Option<View>, Error> {
    let store = env.store;
    let target = k - 1;
    let mut floor = current.view;
    let lease = env.policy.lease.as_millis() as u64;
    let mut since = env.clock.monotonic_ms().saturating_sub(if current.validated { 0 } else { lease });
    let mut recovering = false;
    let mut backoff = Backoff::new();
    loop {
        if floor.slot() == target {
            return Ok(Some(floor));
        }
        if floor.slot() > target {
            return Ok(None);
        }
        if let Some(view) = read_view(store, keys, target)? {
            return Ok(Some(view));
        }
        if let Some(view) = read_view(store, keys, floor.slot() + 1)? {
            floor = view;
            since = env.clock.monotonic_ms();
            recovering = false;
            backoff = Backoff::new();
            continue;
        }
        let now = env.clock.monotonic_ms();
        if now.saturating_sub(started) > outcome_wait(&env.policy) {
            return Err(Error::WriteOutcomeUnknown);
        }
        if !recovering {
            if now.saturating_sub(since) < env.policy.lease.as_millis() as u64 {
                backoff.pause(env.clock);
                continue;
            }
            // A lease without progress: the views may have moved past `floor` while we looked,
            // or slot `floor + 1` is stalled. Look for the highest view below the target first.
            if let Some(view) = highest_view_between(store, keys, floor.slot() + 1, target)? {
                floor = view;
                since = env.clock.monotonic_ms();
                continue;
            }
            // Recovery: decide every stalled slot up to ours, one after the other, without
            // waiting again (their writers had a lease to write their intents).
            recovering = true;
        }
        match take_over(env, keys, &floor)? {
            TakeOver::Applied(view) => floor = view,
            TakeOver::Moved => {
                recovering = false;
                if applied(store, keys, k)? {
                    return Ok(None);
                }
                if let Some(view) = highest_view_between(store, keys, floor.slot() + 1, target)? {
                    floor = view;
                }
            }
            TakeOver::Contended => {
                // Another writer is recovering: watch it; take over again only if it stalls.
                recovering = false;
                since = env.clock.monotonic_ms();
                yield_to_higher_ballot(env);
            }
        }
    }
}

fn highest_view_between<S: KeyValue>(store: &S, keys: &TenantKeys, low: u64, high: u64) -> Result<Option<View>, Error> {
    for j in (low..=high).rev() {
        if let Some(view) = read_view(store, keys, j)? {
            return Ok(Some(view));
        }
    }
    Ok(None)
}

enum TakeOver {
    /// We decided and applied the slot after `previous`.
    Applied(View),
    /// It was applied by someone else (our reads may be stale: start again from the views).
    Moved,
    /// A higher ballot is under way.
    Contended,
}

/// Decides the slot after `previous` (adopting its taker's intent if written, voiding it if not)
/// and applies it.
fn take_over<S: KeyValue, C: Clock>(env: &Env<S, C>, keys: &TenantKeys, previous: &View) -> Result<TakeOver, Error> {
    let store = env.store;
    let m = previous.slot() + 1;
    let (ballot, value) = slot::ballot(store, keys, m, Proposal::Void)?;
    let Some(value) = value else { return Ok(TakeOver::Contended) };
    if applied(store, keys, m)? {
        // Too late: whatever we wrote for the slot has no reader; clear it as the applier did.
        slot::clear(store, keys, m, slot::ballots(store, keys, m)?, &[ballot])?;
        return Ok(TakeOver::Moved);
    }
    let fenced = env.clock.monotonic_ms();
    let applying = Applying { k: m, previous, value: &value, contended: true, own_ballots: &[ballot], fenced };
    let (view, _) = apply_slot(env, keys, applying)?;
    Ok(TakeOver::Applied(view))
}

/// The answer of a writer whose slot `k` was applied by others while it was away: what the
/// views say became of it. Removes what it may have written late (its intent, its record).
fn answer_from_views<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    k: u64,
    wrote_record: bool,
    started: u64,
) -> Result<Committed, Error> {
    let view = loop {
        match read(env, keys) {
            Ok(current) => break current.view,
            Err(Error::TenantBusy { .. })
                if env.clock.monotonic_ms().saturating_sub(started) < outcome_wait(&env.policy) => {}
            Err(Error::TenantBusy { .. }) => return Err(Error::WriteOutcomeUnknown),
            Err(other) => return Err(other),
        }
    };
    let outcome = view.outcome_of(k);
    slot::clear(env.store, keys, k, 0, &[])?;
    if wrote_record && outcome != SlotOutcome::Applied {
        env.store.delete(&keys.record(k))?;
    }
    match outcome {
        SlotOutcome::Applied => Ok(Committed { slot: k, view }),
        SlotOutcome::Refused(refusal) => Err(refusal.into_error()),
        SlotOutcome::Voided => Err(env.policy.busy()),
        SlotOutcome::Forgotten => Err(Error::WriteOutcomeUnknown),
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
