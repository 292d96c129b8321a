//! The tenant's write log: how a write is made durable and how a read finds the current state,
//! with `get`, `set`, `delete`, `exists` and `increment` alone, and with safety that depends on no
//! timing at all. Timing (the lease) decides only how soon a stalled slot is taken over.
//!
//! ## What the store must give, and what it may do (the store model)
//! The proof below assumes of the key-value store, per key:
//! - **M1, linearizable calls**: a call that answers took effect at one instant between its start
//!   and its answer, and a read sees the last effect before it (DynamoDB only with
//!   `consistent_read = true`; Redis from its primary; SQLite one file per node);
//! - **M2, durable effects**: an effect is never undone but by a later call (no failover to an
//!   asynchronous replica, no restart that loses acknowledged writes, no restored snapshot while
//!   the service runs: each moves `P:seq` or a register backwards);
//! - **M3, atomic `increment`**: its effects on one key form a sequence, each answering the next
//!   value;
//! - **M4, whole values**: a `set` replaces the value whole.
//!
//! It tolerates:
//! - **T1, late and repeated effects**: a call that failed on our side may take effect later, at
//!   any time, or never (a request that timed out on the client, a command in flight on a dropped
//!   connection), and the store wrapper repeats failed calls (`store::Retrying`), so a call may
//!   take effect twice;
//! - **T2, pauses and deaths**: any writer may pause for any time or die between any two calls,
//!   and carry on afterwards as if nothing happened; clocks may step;
//! - **T3, refused increments**: Spin's DynamoDB makes `increment` a read and then a write
//!   conditioned on the value read, and refuses it (contention, nothing written) when another
//!   writer moved the counter in between. M3 holds for the increments that answer. A writer refused
//!   on `P:seq` holds no slot and goes back to its admission check (`secrets::commit`); one refused
//!   on a slot's ballot counter holds no ballot and watches the other writer's takeover as it would
//!   a higher ballot (`slot::Ballot::Contended`). Neither is a failure, and neither ends a write
//!   that holds a slot. The schedule tests model it (`sim::Sim::dynamo`).
//!
//! Three rules make T1 harmless: **every register is written with one value only** (a slot's
//! intent, each ballot's promise and accepted value have keys of their own, `slot.rs`; a record is
//! written once, by its slot's taker; every writer of `v(k)` writes the same bytes), so a late or
//! repeated write can never revert a later one; **a key is deleted only once it is garbage for
//! good** (R1–R3 below), so a late delete is harmless; and **keys are never reused** (slots only
//! grow), so what a late write re-creates is garbage that no reader trusts (every reader of a
//! slot's registers checks the slot afterwards, the fence) and that the sweep collects.
//!
//! ## Layout (P = the tenant prefix; keys are built in `store.rs`)
//! - `P:seq`: a counter; `increment` hands out slots 1, 2, 3, … Every write takes one.
//! - `P:s:<k>:…`: slot `k`'s registers, by which the slot decides its value: the operation of the
//!   writer that took it, or *void* (`slot.rs`). They exist only while the slot is in flight.
//! - `P:v:<k>`: the *view* after slot `k`: the whole tenant state (every secret's metadata, the
//!   quota limit, the outcomes of recent slots, the records that became garbage) as a function of
//!   the view before it and the slot's decided value (`op::apply`). The last `W + 1` are kept.
//! - `P:r:<k>`: the sealed credentials written by slot `k` (create, modify, re-seal, trust).
//! - `P:mint:<k>`: for a minting secret's record `k`, the registry credential readers minted from
//!   it (`mint::cache`); deleted right after `P:r:<k>` when the record becomes garbage.
//!
//! `W` (the window, 16), the outcome memory (64 slots) and the sweep period (1,024 slots) are the
//! production [`Shape`]; the tests shrink them so that a few writers wrap them.
//!
//! ## A write of operation `op` ([`write()`])
//! 1. Read the current view ([`read_for_write`]) and refuse at once what it refuses (nothing is
//!    written). While `W` or more writes are in flight the window holds no view: a log that moves
//!    means a queue too long to join (503 `TenantBusy`, nothing written); one that stalls for a
//!    lease means dead writers, and the writer goes ahead from the newest view to recover them.
//! 2. `k = increment P:seq`: the slot is ours alone.
//! 3. `set P:r:<k>` (if `op` carries credentials), then `set P:s:<k>:0` (the intent) and read the
//!    slot's ballot counter: the slot decides `op` unless a takeover is under way (`slot.rs`).
//!    From the intent on, a store failure answers 503 `WriteOutcomeUnknown`: the slot decides.
//! 4. Obtain the view `v(k-1)`: read it when it appears (looking as often as the writer's place in
//!    the queue calls for, `Pace`); if the lowest unapplied slot has not moved for a lease, take
//!    it over (decide it, adopting its intent if written, voiding it if not) and apply it, and so
//!    on up to `k-1`.
//! 5. The fence ([`applied`]): check that slot `k` has not been applied by someone else meanwhile.
//!    If it has, this writer's reads may be stale (the slot's registers are deleted once it is
//!    applied): it answers what a true view says became of slot `k` (below, D).
//! 6. Before the view, remove what `v(k-1)` left: the records it lists as garbage (a minting one's
//!    cached credential right after its record), slot `k-1`'s registers, and `v(k-1-W)`.
//! 7. `set P:v:<k> = apply(v(k-1), decided value)`; answer the outcome of `op` in it (503
//!    `TenantBusy` if the slot decided void: our operation never applied).
//! 8. After the view, at once (the next writer does it again if we die): `v(k)`'s garbage, slot
//!    `k`'s registers; every `sweep_every` slots, the sweep (`sweep.rs`).
//!
//! ## A read ([`read`])
//! `S = P:seq`; the first present view among `v(S), v(S-1), …, v(S-W+1)`; if it is not `v(S)`,
//! read `P:seq` again and accept `v(j)` only if it is still below `j + W`. Common case: 2 calls.
//! If the window holds no view, the newest view below it, `v(A)`, if slot `A+1` is not applied.
//!
//! ## Why it is safe (under M1–M4, whatever T1 and T2; nothing here reads a clock)
//! The deletion rules, each kept by every call that deletes (and so by its late effects too):
//! - **R1**: `v(c)` is deleted only after `v(c+W)` was written (step 6 deletes `v(k-1-W)` once the
//!   true `v(k-1)` exists; `drop_if_late` and the sweep check it);
//! - **R2**: slot `k`'s registers are deleted only after `v(k)` was written;
//! - **R3**: a record `r` is deleted only when a view `v(j)`, `j ≥ r`, does not name it. Views name
//!   only their own slot's new records, so no later view names it again.
//!
//! **A. Every slot decides at most one value**, its taker's operation or void (Disk Paxos,
//! `slot.rs`), provided its registers are read before they are deleted.
//!
//! **The fence is exact.** [`applied`]`(k)` reads `v(k)`, `v(k+W)`, `v(k+2W)`, … until one is
//! present or the next index passes `P:seq`. If `v(k)` was written before the fence began, each
//! view in that chain is present or was deleted, and by R1 a deleted `v(c)` means `v(c+W)` was
//! written (so `P:seq ≥ c+W`): the walk continues to `v(c+W)`, and it ends at a present view. If
//! none is found, `v(k)` had not been written when the fence began: slot `k` was not applied.
//!
//! **B. Every view ever written holds the true state after its slot.** By induction on `k`:
//! `v(k)` is written only by a writer that read a true `v(k-1)`, learned slot `k`'s value, and then
//! found (fence) that slot `k` was not applied. By R2 nothing it read of slot `k` had been
//! deleted, so the value it learned is the one decided (A), and it writes `apply(v(k-1), value)`,
//! the same state every other writer of `v(k)` writes (the same `apply` on the same format, F
//! below; within one release the same bytes too, while across releases only what is derived from
//! the state, such as the host index, may differ). A writer that pauses after its fence and writes
//! `v(k)` late writes that same true state (at worst re-creating a deleted view outside every
//! reader's window, C).
//!
//! **C. Reads are linearizable.** A read returns `v(j)` present at its read, true (B). Any write
//! acknowledged before the read began wrote its view `v(m)` first, with `m ≤ S`. If `j = S`, `v(S)`
//! includes every slot up to `S`. Otherwise every `v(m)`, `j < m ≤ S`, was absent when read; by R1
//! such a view is deleted only once `P:seq ≥ m + W > S'` (`S'` the second read of `P:seq`), so it
//! had never been written: no write of a slot in `(j, S]` was acknowledged before the read.
//!
//! **D. Every answer is what a true view says.** 2xx: the slot decided our operation and applying
//! it in the true `v(k-1)` succeeded, or a true view records slot `k` as applied, or (the view
//! has forgotten slot `k`, S3) it names slot `k`'s record, which only an applied create, modify,
//! re-seal or trust of slot `k` makes it do. A refusal: recorded so. 503 `TenantBusy`: the slot
//! decided void, so nothing of it applies, ever. 503 `WriteOutcomeUnknown` otherwise: the slot is
//! decided and applied by whoever comes next, whole or not at all, and the client learns which by
//! reading (the secret reads and exports at the new version, or it does not).
//!
//! **E. Hence the invariants.** An acknowledged write is in `v(k)` and in every later view (views
//! are computed from their predecessor); it is never lost or half-applied. The view is the only
//! index, and by R3 never names a missing record. Names are unique and the quota exact because
//! `apply` checks them against the true previous state.
//!
//! **What is left behind.** By step 6, `v(k)` existing means that `v(k-1)`'s garbage, slot
//! `k-1`'s registers and `v(k-1-W)` were deleted, whoever wrote `v(k)` and whatever became of
//! `v(k-1)`'s writers, however many died in a row. So after a quiet write (one that finds no
//! other in flight) at slot `k`, a tenant of `N` secrets holds at most **`N + W + 2` keys** (its
//! records, `v(k-W) … v(k)`, `P:seq`; a trust and each minting secret's cached credential one
//! more), **plus** whatever was written *late*: by a writer that was overtaken while paused (its
//! slot decided and cleaned by others) and died before cleaning up after itself, or by a failed
//! call whose effect landed after the clean-up (T1). No bounded set of keys can find those (such
//! a writer can come back at any slot), so the sweep lists the tenant's keys every `sweep_every`
//! slots and deletes what its true view proves garbage (`sweep.rs`). A writer that comes back and
//! finishes removes what it wrote late itself; deaths alone leave nothing after the next write.
//!
//! **F. Formats (rolling upgrades).** Every accepted value and every view carries the log format
//! it was written in (absent: 1); `apply` gives a view the higher of its predecessor's format and
//! its operation's. A node reads and writes only the formats up to [`Shape::known_format`]: it
//! refuses to start a write on a newer view (503 `LogFormatUnknown`, nothing written), never adopts
//! an operation of a newer format in a ballot, and never writes a view after one. So every view a
//! node writes is one every node that may write it computes the same (B). A release that changes
//! `apply` or the view's encoding introduces a new format, writes it only once told to
//! (`write_format`), and keeps the old one's behaviour for old-format inputs. What a view
//! carries that is derived from its state alone (the line table and the host index, `view.rs`) is
//! not format: a release may add one without a format, because every release decodes the same state
//! from a view with or without it: an older one ignores it and re-encodes the header from the fields
//! it knows, so it drops it rather than carrying it forward stale; a newer one rebuilds it when
//! absent.
//!
//! ## Failure model: a writer dies or pauses between any two store calls
//! - before `increment`: nothing happened. After it, before its intent: the slot is empty; the
//!   next writer, after a lease without progress, voids it (an orphan record, if written, is the
//!   voided slot's garbage). A paused taker that comes back finds its slot void (by the fence, or
//!   by adopting the void in a ballot) and answers 503 `TenantBusy`, nothing stored.
//! - after its intent: a takeover adopts the intent; the operation applies exactly once, whoever
//!   applies it. The paused taker answers the outcome a true view records (D).
//! - after its fence, before or after writing `v(k)`: its view is true (B); others write the same.
//! - during clean-up: the next writer deletes it all again before its own view (step 6).
//! - a store call that fails is a death at that point, with the call's effect perhaps landing
//!   later (T1): the caller gets 503 `StoreUnavailable` before its intent, `WriteOutcomeUnknown`
//!   from it on; a retry reads first and sees whether it applied.
//!
//! What a pause or death costs is liveness only: writes queued behind a stalled slot wait one
//! lease (and at most a sixteenth more, the longest `Pace` sleeps), then every stalled slot before
//! them is decided at once (a takeover needs no further waiting once one lease has passed without
//! progress). Reads never wait for writers unless more than `W - 1` writes are in flight at once
//! on one tenant and the log keeps moving; behind `W` or more stalled slots (dead writers) a read
//! answers the last applied view (`last_applied`).

pub mod op;
pub mod slot;
mod sweep;

use std::time::Duration;

use crate::clock::Clock;
use crate::error::{Error, Internal};
use crate::store::{KeyValue, TenantKeys, WINDOW};
use crate::view::{Header, SlotOutcome, View, OUTCOMES};

use op::{apply_with, Op, Refusal};
use slot::{Proposal, Value};
pub use sweep::sweep;

/// The log format this build writes and the highest it reads (see F in the module doc).
pub const FORMAT: u32 = 1;

/// How often (in slots) an applier sweeps the tenant's keys (see "What is left behind" in the
/// module doc).
pub const SWEEP_EVERY: u64 = 1024;

/// The log's parameters. Production uses [`Shape::PRODUCTION`]; the schedule tests shrink the
/// window and the outcome memory so that a handful of writers wrap them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// `W`: how many of the latest views are kept; readers look this far back from the head.
    pub window: u64,
    /// How many of the latest slots a view remembers the outcome of.
    pub outcomes: u64,
    /// The applier of every slot that is a multiple of this sweeps the tenant's keys.
    pub sweep_every: u64,
    /// The highest log format this node reads; it writes nothing after a view or an operation of
    /// a higher one.
    pub known_format: u32,
    /// The format this node stamps its operations with (≤ `known_format`).
    pub write_format: u32,
}

impl Shape {
    pub const PRODUCTION: Shape = Shape {
        window: WINDOW,
        outcomes: OUTCOMES,
        sweep_every: SWEEP_EVERY,
        known_format: FORMAT,
        write_format: FORMAT,
    };
}

/// How long a slot may stall before a waiting writer takes it over, how long a write or a read
/// waits in all before answering 503, and the log's shape.
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    pub lease: Duration,
    pub max_wait: Duration,
    pub shape: Shape,
}

impl WritePolicy {
    pub const DEFAULT_LEASE_MS: u64 = 10_000;

    pub fn with_lease(lease: Duration) -> WritePolicy {
        WritePolicy { lease, max_wait: lease * 3, shape: Shape::PRODUCTION }
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

impl<S: KeyValue, C: Clock> Env<'_, S, C> {
    fn shape(&self) -> Shape {
        self.policy.shape
    }

    pub(crate) fn elapsed_since(&self, ms: u64) -> u64 {
        self.clock.monotonic_ms().saturating_sub(ms)
    }
}

fn seq<S: KeyValue>(store: &S, keys: &TenantKeys) -> Result<u64, Error> {
    Ok(store.counter(&keys.seq())?.unwrap_or(0))
}

/// `v(slot)`, if present; a view of a format this node does not know is [`Error::LogFormatUnknown`].
fn read_view<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, shape: &Shape) -> Result<Option<View>, Error> {
    if slot == 0 {
        return Ok(Some(View::empty()));
    }
    let Some(view) = store.get(&keys.view(slot))?.map(View::decode).transpose()? else { return Ok(None) };
    if view.format() > shape.known_format {
        return Err(Error::LogFormatUnknown);
    }
    Ok(Some(view))
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

/// How a writer waiting for the view before its slot paces its looks at the store (liveness only:
/// what it finds is checked as before, whenever it looks). A writer `d` slots behind the newest view
/// it knows waits for `d` slots to be applied before its own: it sleeps about `d - 2` slot-times, so
/// as to wake a slot early, and then looks first where the log should have got to. Only the two
/// writers nearest the newest view poll often (1 ms doubling to 25 ms). Without this, `n` writers
/// queued on one tenant each looked every 1 to 25 ms, two whole views a look: a 64-way race on
/// moto's DynamoDB spent 38,909 of its 44,910 calls on those looks, and the writers applying slots
/// waited behind them (2 s a slot).
///
/// The slot-time is optimistic, because a writer that wakes early costs one read and one that
/// wakes late delays everyone behind it: the lower of the pace it has watched and three times what
/// its own first calls took (`increment`, its record, its intent, the ballot counter; applying a
/// slot takes about a dozen), but not below half the pace watched (a fast node's own calls may
/// round to nothing while others apply slots more slowly); and the watch starts again after a gap
/// far longer than the pace (a stall, then a takeover, says nothing of the pace after it). A sleep
/// covers at most half a window of slots, so that where the writer looks first is still in the
/// window, and at most a sixteenth of a lease, so that a stall is noticed at most that long after
/// a lease.
struct Pace {
    /// When the writer began to watch the log's pace, and how many slots it has seen applied since.
    began: u64,
    advanced: u64,
    /// Three times what the writer's own first calls took.
    prior: u64,
    /// When the writer last saw the log move (or began to wait).
    moved: u64,
    backoff: Backoff,
}

impl Pace {
    fn new(now: u64, started: u64) -> Pace {
        let prior = now.saturating_sub(started).saturating_mul(3);
        Pace { began: now, advanced: 0, prior, moved: now, backoff: Backoff::new() }
    }

    fn slot_ms(&self, now: u64) -> u64 {
        let watched = match self.advanced {
            0 => self.prior,
            n => now.saturating_sub(self.began) / n,
        };
        watched.min(self.prior.max(watched / 2)).max(1)
    }

    /// The log moved `slots` ahead.
    fn saw(&mut self, slots: u64, now: u64) {
        let gap = now.saturating_sub(self.moved);
        if gap > slots.saturating_mul(self.slot_ms(now)).saturating_mul(4) {
            (self.began, self.advanced) = (now, 0);
        } else {
            self.advanced += slots;
        }
        self.moved = now;
        self.backoff = Backoff::new();
    }

    /// How far past the newest view it knows, at most `distance`, the log should be by now.
    fn expected(&self, now: u64, distance: u64) -> u64 {
        (now.saturating_sub(self.moved) / self.slot_ms(now)).clamp(1, distance.max(1))
    }

    fn pause<C: Clock>(&mut self, clock: &C, distance: u64, shape: &Shape, lease: u64) {
        if distance <= 2 {
            return self.backoff.pause(clock);
        }
        let slots = (distance - 2).min((shape.window / 2).max(1));
        let ms = self.slot_ms(clock.monotonic_ms()).saturating_mul(slots).clamp(1, (lease / 16).max(1));
        clock.sleep(Duration::from_millis(ms));
    }
}

/// The tenant's current state (see the module doc, "A read", and C). Waits (up to the policy's
/// `max_wait`) only while the window holds no view and the log keeps moving, that is while `W` or
/// more writes are in flight and alive; behind stalled ones it answers the last applied view.
pub fn read<S: KeyValue, C: Clock>(env: &Env<S, C>, keys: &TenantKeys) -> Result<Current, Error> {
    let started = env.clock.monotonic_ms();
    let mut backoff = Backoff::new();
    loop {
        if let Some(current) = read_once(env.store, keys, &env.shape())? {
            return Ok(current);
        }
        if let Some(view) = last_applied(env.store, keys, &env.shape())? {
            return Ok(Current { view, validated: true });
        }
        if env.elapsed_since(started) > env.policy.max_wait.as_millis() as u64 {
            return Err(env.policy.busy());
        }
        backoff.pause(env.clock);
    }
}

fn read_once<S: KeyValue>(store: &S, keys: &TenantKeys, shape: &Shape) -> Result<Option<Current>, Error> {
    let head = seq(store, keys)?;
    for j in (head.saturating_sub(shape.window - 1)..=head).rev() {
        if let Some(view) = read_view(store, keys, j, shape)? {
            if j == head || seq(store, keys)? < j + shape.window {
                return Ok(Some(Current { view, validated: true }));
            }
            return Ok(None);
        }
    }
    Ok(None)
}

/// When the window holds no view (`W` or more slots in flight, perhaps of dead writers): the
/// newest view below it, `v(A)`, if slot `A+1` had not been applied when [`applied`] began. Then
/// no view after `A` had been written (each view is written after its predecessor), so no write
/// after slot `A` had been acknowledged, and `v(A)` was the state at that instant: linearizable
/// as C is. `None`: the log moved meanwhile; read again.
fn last_applied<S: KeyValue>(store: &S, keys: &TenantKeys, shape: &Shape) -> Result<Option<View>, Error> {
    let head = seq(store, keys)?;
    let Some(view) = highest_view_between(store, keys, 0, head.saturating_sub(shape.window), shape)? else {
        return Ok(None);
    };
    Ok((!applied(store, keys, view.slot() + 1, shape)?).then_some(view))
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
    let shape = env.shape();
    let mut backoff = Backoff::new();
    let mut newest: Option<View> = None;
    let mut since = started;
    loop {
        // The newest view: found once by walking down, then followed upwards (progress).
        let mut moved = false;
        let mut view = match newest.take() {
            Some(view) => view,
            None => {
                if let Some(current) = read_once(env.store, keys, &shape)? {
                    return Ok(current);
                }
                let head = seq(env.store, keys)?;
                moved = true;
                highest_view_between(env.store, keys, 0, head.saturating_sub(shape.window), &shape)?
                    .unwrap_or_else(View::empty)
            }
        };
        while let Some(next) = read_view(env.store, keys, view.slot() + 1, &shape)? {
            view = next;
            moved = true;
        }
        if moved {
            // `v(view + 1)` was absent just now. As in `read_once` (C): if `P:seq`, read after
            // that, is still below `view + W`, `v(view + 1)` cannot have been written and deleted
            // (R1), so no view after `view` had been written, and `view` was the state at that
            // instant. So a look that sees the log move costs two calls, not a scan of the window.
            if seq(env.store, keys)? < view.slot() + shape.window {
                return Ok(Current { view, validated: true });
            }
        }
        // No progress seen: the log may have gone more than a window past the view followed
        // (its successor written and deleted while this writer looked away, R1), which the
        // fence (`applied`) tells exactly; then the newest view is found again, as at first.
        let behind = !moved && applied(env.store, keys, view.slot() + 1, &shape)?;
        let now = env.clock.monotonic_ms();
        if moved || behind {
            since = now;
        } else if now.saturating_sub(since) >= env.policy.lease.as_millis() as u64 {
            return Ok(Current { view, validated: false });
        }
        newest = (!behind).then_some(view);
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
pub fn applied<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, shape: &Shape) -> Result<bool, Error> {
    let mut c = slot;
    loop {
        if store.exists(&keys.view(c))? {
            return Ok(true);
        }
        if c + shape.window > seq(store, keys)? {
            return Ok(false);
        }
        c += shape.window;
    }
}

/// A write: its slot, and what became of its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub slot: u64,
    /// The view right after the slot (for the caller's answer), or a later one.
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
/// the caller checked `op` against (from [`read_for_write`]). Answers `Ok` when the operation
/// applied, the refusal it met at its slot, 503 `TenantBusy` when its slot was voided, and 503
/// `WriteOutcomeUnknown` when the outcome could not be learned (the state is whole either way).
pub fn write<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    op: &Op,
    record: Option<&[u8]>,
    current: Current,
) -> Result<Committed, Error> {
    let started = env.clock.monotonic_ms();
    let store = env.store;
    if current.view.format() > env.shape().known_format {
        return Err(Error::LogFormatUnknown);
    }
    // Contention (another writer moved `P:seq` between the backend's read and its conditional
    // write: Spin's DynamoDB) comes back at once, nothing written: the caller checks its
    // operation against the state again before it tries again (`secrets::commit`).
    let k = u64::try_from(store.increment_or_contended(&keys.seq(), 1)?).map_err(|_| Internal::CorruptRecord)?;
    if let Some(bytes) = record {
        // A failure here proposes nothing: the slot is voided by the next writer, and the record
        // is that void's garbage.
        store.set(&keys.record(k), bytes)?;
    }
    let taker = Taker { k, op, wrote_record: record.is_some(), started };
    taker.run(env, keys, current).map_err(|error| match error {
        // From the intent on, the slot decides: a store failure, a format this node does not
        // know or a fault of ours leaves the outcome to whoever applies the slot.
        Error::StoreUnavailable(_) | Error::LogFormatUnknown | Error::Internal(_) => Error::WriteOutcomeUnknown,
        other => other,
    })
}

/// The writer that took slot `k` for `op`.
struct Taker<'a> {
    k: u64,
    op: &'a Op,
    wrote_record: bool,
    started: u64,
}

impl Taker<'_> {
    fn run<S: KeyValue, C: Clock>(
        &self,
        env: &Env<S, C>,
        keys: &TenantKeys,
        current: Current,
    ) -> Result<Committed, Error> {
        let (store, shape, k) = (env.store, env.shape(), self.k);
        let own = Value { proposal: Proposal::Intent(self.op.clone()), format: shape.write_format };
        let (mut decided, handed_out) = slot::propose_own(store, keys, k, &own)?;
        let mut counted = handed_out > 0;
        let mut own_ballots = Vec::new();
        let Some(previous) = previous_view(env, keys, k, current, self.started)? else {
            return self.answer_from_views(env, keys, &own_ballots);
        };
        while decided.is_none() {
            counted = true;
            if let slot::Ballot::Ran(ballot, value) = slot::ballot(store, keys, k, own.clone(), shape.known_format)? {
                own_ballots.push(ballot);
                decided = value;
            }
            if decided.is_none() {
                if applied(store, keys, k, &shape)? {
                    return self.answer_from_views(env, keys, &own_ballots);
                }
                if env.elapsed_since(self.started) > outcome_wait(&env.policy) {
                    return Err(Error::WriteOutcomeUnknown);
                }
                yield_to_higher_ballot(env);
            }
        }
        // The fence: if nobody has taken a later slot, nobody but us can have applied this one.
        let fenced = env.clock.monotonic_ms();
        if seq(store, keys)? != k && applied(store, keys, k, &shape)? {
            return self.answer_from_views(env, keys, &own_ballots);
        }
        let value = decided.expect("decided above");
        let applying = Applying {
            k,
            previous: &previous.view,
            previous_clean: previous.clean,
            value: &value,
            own_ballots: &own_ballots,
            counted,
            fenced,
        };
        let Slot { view, outcome, .. } = apply_slot(env, keys, applying)?;
        match value.proposal {
            // Our slot was voided while we were away (S1): nothing of ours applied.
            Proposal::Void => Err(env.policy.busy()),
            Proposal::Intent(_) => outcome.map(|()| Committed { slot: k, view }).map_err(Refusal::into_error),
        }
    }

    /// The answer of a writer whose slot was applied by others while it was away: what a true
    /// view says became of it. Removes what it may have written late (its registers), and its
    /// record unless that view names it.
    fn answer_from_views<S: KeyValue, C: Clock>(
        &self,
        env: &Env<S, C>,
        keys: &TenantKeys,
        own_ballots: &[u64],
    ) -> Result<Committed, Error> {
        let k = self.k;
        let asked = env.clock.monotonic_ms();
        let view = loop {
            match read(env, keys) {
                Ok(current) => break current.view,
                Err(Error::TenantBusy { .. }) if env.elapsed_since(asked) < outcome_wait(&env.policy) => {}
                Err(Error::TenantBusy { .. }) => return Err(Error::WriteOutcomeUnknown),
                Err(other) => return Err(other),
            }
        };
        slot::clear(env.store, keys, k, own_ballots, true)?;
        if view.slot() < k {
            // Not reachable (slot `k` was applied, and reads are linearizable); nothing is removed.
            return Err(Error::WriteOutcomeUnknown);
        }
        // Views name only their own slot's new records, so a record this view (at or after `k`)
        // does not name is garbage for good; one it names was applied.
        let named = self.wrote_record && view.records()?.contains(&k);
        if self.wrote_record && !named {
            env.store.delete(&keys.record(k))?;
        }
        match view.outcome_of(k) {
            SlotOutcome::Applied => Ok(Committed { slot: k, view }),
            SlotOutcome::Refused(refusal) => Err(refusal.into_error()),
            SlotOutcome::Voided => Err(env.policy.busy()),
            // More slots passed than the view remembers (S3): its record, if the view still names
            // it, says the write applied; otherwise the outcome cannot be learned here.
            SlotOutcome::Forgotten if named => Ok(Committed { slot: k, view }),
            SlotOutcome::Forgotten => Err(Error::WriteOutcomeUnknown),
        }
    }
}

/// A writer that took longer than this between its fence and the end of its clean-up checks
/// whether it wrote its view after the window had moved past it (a timing used for tidiness only).
const LATE_MS: u64 = 10;

/// Deletes `v(k)` if the window has moved past it: a view written that late re-created one that
/// was already deleted. Only once `v(k+W)` has been written, as the regular clean-up: the fence
/// (`applied`) relies on no view being deleted before the view a window later exists.
fn drop_if_late<S: KeyValue>(store: &S, keys: &TenantKeys, k: u64, shape: &Shape) -> Result<(), Error> {
    if applied(store, keys, k + shape.window, shape)? {
        store.delete(&keys.view(k))?;
    }
    Ok(())
}

/// A slot about to be applied: the true `v(k-1)`, its decided value, the ballots this writer ran
/// (its registers to clear), whether the slot's ballot counter must be read to clear the others'
/// (a takeover may have run), and when its fence passed. `previous_clean`: this writer applied
/// `v(k-1)` itself just before and cleaned up after it, so that need not be done again.
struct Applying<'a> {
    k: u64,
    previous: &'a View,
    previous_clean: bool,
    value: &'a Value,
    own_ballots: &'a [u64],
    counted: bool,
    fenced: u64,
}

/// Deletes the records a view lists as garbage (each minting one's cached credential right after
/// its record: see `mint::cache` for why no cached credential outlives its record).
fn collect<S: KeyValue>(store: &S, keys: &TenantKeys, header: &Header) -> Result<(), Error> {
    for record in &header.garbage {
        store.delete(&keys.record(*record))?;
        if header.minted.contains(record) {
            store.delete(&keys.mint(*record))?;
        }
    }
    Ok(())
}

/// Writes `v(k)` from the true `v(k-1)` and slot `k`'s decided value. The caller has passed the
/// fence for `k`. Before the view, what `v(k-1)` left behind is removed (its garbage, slot `k-1`'s
/// registers, the view a window before it), so that `v(k)` existing means they are gone, whoever
/// wrote it and whatever became of `v(k-1)`'s writers; after it, what slot `k` leaves is removed
/// at once (the next writer does it again if this one dies), and every `sweep_every` slots the
/// tenant's keys are swept for anything written late.
fn apply_slot<S: KeyValue, C: Clock>(env: &Env<S, C>, keys: &TenantKeys, applying: Applying) -> Result<Slot, Error> {
    let Applying { k, previous, previous_clean, value, own_ballots, counted, fenced } = applying;
    let (store, shape) = (env.store, env.shape());
    let applied = apply_with(previous, k, value.proposal.op(), value.format, shape.outcomes)?;
    if !previous_clean {
        collect(store, keys, previous.header())?;
        if k > 1 {
            slot::clear(store, keys, k - 1, &[], true)?;
        }
    }
    if k > shape.window + 1 {
        // `v(k-1)` exists: the fence's rule (no view deleted before the view a window later).
        store.delete(&keys.view(k - 1 - shape.window))?;
    }
    store.set(&keys.view(k), applied.view.bytes())?;
    // The write is done; what follows is tidiness that the next writer repeats, so its failures
    // are not the write's.
    let clean = collect(store, keys, applied.view.header()).is_ok()
        && slot::clear(store, keys, k, own_ballots, counted).is_ok();
    if env.elapsed_since(fenced) > LATE_MS {
        let _ = drop_if_late(store, keys, k, &shape);
    }
    if k % shape.sweep_every.max(1) == 0 {
        let _ = sweep(store, keys, &applied.view, shape.window);
    }
    Ok(Slot { view: applied.view, outcome: applied.outcome, clean: clean && counted })
}

/// What [`apply_slot`] did: the view it wrote, the outcome of the slot's operation, and whether it
/// cleaned up after the slot entirely (its garbage, and every register: the counter was read).
struct Slot {
    view: View,
    outcome: Result<(), Refusal>,
    clean: bool,
}

/// A view found by [`previous_view`]; `clean`: this writer applied it and cleaned up after it.
struct Previous {
    view: View,
    clean: bool,
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
) -> Result<Option<Previous>, Error> {
    let (store, shape) = (env.store, env.shape());
    let target = k - 1;
    let mut floor = current.view;
    let mut clean = false;
    let lease = env.policy.lease.as_millis() as u64;
    let mut since = env.clock.monotonic_ms().saturating_sub(if current.validated { 0 } else { lease });
    let mut recovering = false;
    let mut pace = Pace::new(env.clock.monotonic_ms(), started);
    loop {
        if floor.slot() == target {
            return Ok(Some(Previous { view: floor, clean }));
        }
        if floor.slot() > target {
            return Ok(None);
        }
        // Where the log should be by now, then the view right after the one we know, then ours
        // (in case the log went past the views we know while we were away).
        let distance = target - floor.slot();
        let expected = pace.expected(env.clock.monotonic_ms(), distance);
        let mut looks = vec![floor.slot() + expected];
        if expected > 1 {
            looks.push(floor.slot() + 1);
        }
        if expected < distance {
            looks.push(target);
        }
        let mut found = None;
        for slot in looks {
            if let Some(view) = read_view(store, keys, slot, &shape)? {
                found = Some(view);
                break;
            }
        }
        if let Some(view) = found {
            let now = env.clock.monotonic_ms();
            pace.saw(view.slot().saturating_sub(floor.slot()), now);
            (floor, clean) = (view, false);
            since = now;
            recovering = false;
            continue;
        }
        let now = env.clock.monotonic_ms();
        if now.saturating_sub(started) > outcome_wait(&env.policy) {
            // Waited long (or was paused long): if others applied our slot meanwhile, its outcome
            // is in the views; otherwise it cannot be learned now.
            if applied(store, keys, k, &shape)? {
                return Ok(None);
            }
            return Err(Error::WriteOutcomeUnknown);
        }
        if !recovering {
            if now.saturating_sub(since) < lease {
                pace.pause(env.clock, distance, &shape, lease);
                continue;
            }
            // A lease without progress: the views may have moved past `floor` while we looked,
            // or slot `floor + 1` is stalled. Look for the highest view below the target first.
            if let Some(view) = highest_view_between(store, keys, floor.slot() + 1, target, &shape)? {
                (floor, clean) = (view, false);
                since = env.clock.monotonic_ms();
                continue;
            }
            // Recovery: decide every stalled slot up to ours, one after the other, without
            // waiting again (their writers had a lease to write their intents).
            recovering = true;
        }
        match take_over(env, keys, &floor, clean)? {
            TakeOver::Applied(slot) => (floor, clean) = (slot.view, slot.clean),
            TakeOver::Moved => {
                recovering = false;
                if applied(store, keys, k, &shape)? {
                    return Ok(None);
                }
                if let Some(view) = highest_view_between(store, keys, floor.slot() + 1, target, &shape)? {
                    (floor, clean) = (view, false);
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

fn highest_view_between<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    low: u64,
    high: u64,
    shape: &Shape,
) -> Result<Option<View>, Error> {
    for j in (low..=high).rev() {
        if let Some(view) = read_view(store, keys, j, shape)? {
            return Ok(Some(view));
        }
    }
    Ok(None)
}

enum TakeOver {
    /// We decided and applied the slot after `previous`.
    Applied(Box<Slot>),
    /// It was applied by someone else (our reads may be stale: start again from the views).
    Moved,
    /// A higher ballot is under way.
    Contended,
}

/// Decides the slot after `previous` (adopting its taker's intent if written, voiding it if not)
/// and applies it.
fn take_over<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    previous: &View,
    previous_clean: bool,
) -> Result<TakeOver, Error> {
    let (store, shape) = (env.store, env.shape());
    let m = previous.slot() + 1;
    let slot::Ballot::Ran(ballot, Some(value)) = slot::ballot(store, keys, m, Value::void(), shape.known_format)?
    else {
        return Ok(TakeOver::Contended);
    };
    if applied(store, keys, m, &shape)? {
        // Too late: whatever we wrote for the slot has no reader; clear it as the applier did.
        slot::clear(store, keys, m, &[ballot], true)?;
        return Ok(TakeOver::Moved);
    }
    let fenced = env.clock.monotonic_ms();
    let applying =
        Applying { k: m, previous, previous_clean, value: &value, own_ballots: &[ballot], counted: true, fenced };
    Ok(TakeOver::Applied(Box::new(apply_slot(env, keys, applying)?)))
}

#[cfg(test)]
mod explore;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
