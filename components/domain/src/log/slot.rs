//! Deciding one slot of the log: the writer that took the slot proposes its operation; a writer
//! that finds the slot stalled proposes to void it. Exactly one of the two is decided, whatever
//! the pauses, deaths and late store writes, with `get`, `set` and `increment` alone: Paxos over
//! shared registers (Gafni and Lamport's Disk Paxos with a single disk), registers per ballot.
//!
//! ## The registers of slot `k` (each written at most once, with one value)
//! - `P:s:<k>:0`: the intent: ballot 0's accepted value, the taker's operation. Written once.
//! - `P:s:<k>:n`: a counter handing out ballots 1, 2, … to writers that take the slot over.
//! - `P:s:<k>:<b>:p`: ballot `b`'s promise (phase 1), written only by the holder of ballot `b`.
//! - `P:s:<k>:<b>:a`: ballot `b`'s accepted value `(b, value)` (phase 2), written only by the
//!   holder of ballot `b`, after its promise.
//!
//! A ballot *exists* once its promise or its accepted value is present. The two phases have keys of
//! their own so that a write that takes effect late (a store call that failed on the client but
//! reached the store afterwards, or the store wrapper's retry of it) can never revert a later one:
//! every register only ever goes from absent to its one value (or back to absent, once the slot is
//! applied and its registers are collected).
//!
//! ## Ballot `b` ([`ballot`]), as Disk Paxos
//! 1. Write `b`'s promise; read the counter (≥ `b`) and every other ballot up to it. Another ballot
//!    above `b` exists: give up. Else take the value accepted at the highest ballot among those
//!    read, or our own proposal if none.
//! 2. Write `b`'s accepted value; read the counter and the ballots above `b`. Any exists: give up.
//!    None: `value` is decided.
//!
//! Why at most one value is decided: of two ballots `b < c`, each writes before it reads the other,
//! so if `b` completed phase 2 without seeing `c`, every write of `c`'s registers took effect after
//! `b`'s phase-2 read, hence after `b`'s accepted value, and `c`'s phase-1 read (after its own
//! promise) sees `b`'s accepted value: `c` proposes the value accepted at the highest ballot it saw,
//! which by induction on the ballots between `b` and `c` is `b`'s. A ballot handed out but not yet
//! written is no exception: its first write comes after our read. An accepted value that lands late
//! (its holder saw the call fail and gave up) is at a lower ballot than any ballot that went on
//! without it, so it never outranks a value those ballots accepted; a promise that lands late
//! carries no value at all.
//!
//! ## The taker's fast path ([`propose_own`])
//! Ballot 0 needs no phase 1 (no ballot is lower). Write the intent, read the counter: 0 means no
//! takeover has started, and any that starts later reads the intent in its phase 1 and adopts it,
//! so the operation is decided in two store calls. A counter above 0 with none of those ballots
//! written yet is the same; with one written, the taker runs a full ballot to learn the outcome.
//!
//! ## What these reads assume
//! That no register of the slot was deleted before they were made. The log deletes a slot's
//! registers only after the slot is applied, and every caller checks afterwards that it was not
//! (`log::applied`) before acting on what it learned here.
//!
//! ## Formats
//! An accepted value carries the log format of its operation (`log::Shape`); a value of a format
//! this build does not know is never adopted: [`ballot`] and [`propose_own`] answer
//! [`Error::LogFormatUnknown`] (503, retry) instead.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Internal};
use crate::log::op::Op;
use crate::store::{KeyValue, TenantKeys, CONTENDED};

/// What a slot may decide: the taker's operation, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Proposal {
    Intent(Op),
    Void,
}

impl Proposal {
    pub fn op(&self) -> Option<&Op> {
        match self {
            Proposal::Intent(op) => Some(op),
            Proposal::Void => None,
        }
    }
}

/// A value as decided: the proposal and the log format of its operation (1 for a void).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub proposal: Proposal,
    pub format: u32,
}

impl Value {
    pub fn void() -> Value {
        Value { proposal: Proposal::Void, format: 1 }
    }
}

/// An accepted value as stored: `{"b": ballot, "format": f, "value": proposal}`.
#[derive(Serialize)]
struct AcceptedOut<'a> {
    b: u64,
    format: u32,
    value: &'a Proposal,
}

fn encode(ballot: u64, value: &Value) -> Result<Vec<u8>, Error> {
    let out = AcceptedOut { b: ballot, format: value.format, value: &value.proposal };
    serde_json::to_vec(&out).map_err(|_| Internal::CorruptRecord.into())
}

/// Decodes an accepted value: its format first, so that an operation this build does not know is
/// told apart from a damaged register. An intent written by the release before log formats
/// (`{"b": 0, "accepted": [0, proposal]}`, left in flight by a node stopped for the upgrade) is a
/// format-1 value, so that the next writer adopts it instead of wedging on it.
fn decode(bytes: &[u8], known_format: u32) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default = "one")]
        format: u32,
        value: Option<serde_json::Value>,
        /// The release before log formats: `[ballot, proposal]`.
        accepted: Option<(u64, serde_json::Value)>,
    }
    fn one() -> u32 {
        1
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|_| Internal::CorruptRecord)?;
    if head.format > known_format {
        return Err(Error::LogFormatUnknown);
    }
    let value = head.value.or(head.accepted.map(|(_, proposal)| proposal)).ok_or(Internal::CorruptRecord)?;
    let proposal = serde_json::from_value(value).map_err(|_| Internal::CorruptRecord)?;
    Ok(Value { proposal, format: head.format })
}

/// The value ballot `b` accepted, if it has (ballot 0's is the intent).
fn accepted_value<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    slot: u64,
    b: u64,
    known: u32,
) -> Result<Option<Value>, Error> {
    let key = if b == 0 { keys.intent(slot) } else { keys.accepted(slot, b) };
    store.get(&key)?.map(|bytes| decode(&bytes, known)).transpose()
}

/// Whether ballot `b` exists (its promise or its accepted value is present).
fn exists<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, b: u64) -> Result<bool, Error> {
    Ok(store.exists(&keys.promise(slot, b))? || store.exists(&keys.accepted(slot, b))?)
}

/// The number of ballots handed out for the slot (0: nobody has tried to take it over).
pub fn ballots<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64) -> Result<u64, Error> {
    Ok(store.counter(&keys.ballots(slot))?.unwrap_or(0))
}

/// Whether any ballot above `ballot` (up to `upto`) exists.
fn any_above<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, ballot: u64, upto: u64) -> Result<bool, Error> {
    for other in ballot + 1..=upto {
        if exists(store, keys, slot, other)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The taker of `slot` proposes `own` (its operation) at ballot 0. `Some`: decided. `None`: a
/// takeover is under way; learn the outcome with [`ballot`]. Also answers how many ballots had been
/// handed out when it looked (0: none, so no takeover registers to clear).
pub fn propose_own<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    slot: u64,
    own: &Value,
) -> Result<(Option<Value>, u64), Error> {
    store.set(&keys.intent(slot), &encode(0, own)?)?;
    let handed_out = ballots(store, keys, slot)?;
    if handed_out == 0 || !any_above(store, keys, slot, 0, handed_out)? {
        return Ok((Some(own.clone()), handed_out));
    }
    Ok((None, handed_out))
}

/// What one attempt at a ballot came to.
#[derive(Debug)]
pub enum Ballot {
    /// Ballot `b` ran: `Some(value)`, `value` is decided; `None`, a higher ballot is under way, try
    /// again later. The caller removes `b`'s registers once the slot is applied.
    Ran(u64, Option<Value>),
    /// No ballot was handed out and nothing was written: Spin's DynamoDB refused the counter's
    /// conditional write, most often because another writer moved it in between (that writer is
    /// running a ballot), else for a conflict with another transaction on the item. Either way try
    /// again later, as after `Ran(_, None)`; a writer that stalls is taken over after a lease.
    Contended,
}

/// Runs one ballot for `slot`, proposing `own` unless a value may already be decided.
///
/// A contended counter is answered at once, not retried until the request's deadline: the writers
/// that run ballots hold slots of their own and wait for the slot's outcome much longer than a
/// request waits to join the log, and to them contention means what a higher ballot means.
/// (Answered as a failure once the deadline had passed, it ended writes that held a slot with 503
/// `WriteOutcomeUnknown` while the log was busy and well.) Safe either way: a contended `increment`
/// wrote nothing, and one that took effect after all hands out a ballot nobody runs.
pub fn ballot<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    slot: u64,
    own: Value,
    known_format: u32,
) -> Result<Ballot, Error> {
    let b = match store.increment_or_contended(&keys.ballots(slot), 1) {
        Err(Internal::Store(kind)) if kind == CONTENDED => return Ok(Ballot::Contended),
        counter => u64::try_from(counter?).map_err(|_| Internal::CorruptRecord)?,
    };
    store.set(&keys.promise(slot, b), b"p")?;
    let handed_out = ballots(store, keys, slot)?;
    if any_above(store, keys, slot, b, handed_out)? {
        return Ok(Ballot::Ran(b, None));
    }
    let mut best: Option<Value> = None;
    for other in (0..b).rev() {
        best = accepted_value(store, keys, slot, other, known_format)?;
        if best.is_some() {
            break; // the highest ballot below ours that accepted a value
        }
    }
    let value = best.unwrap_or(own);
    store.set(&keys.accepted(slot, b), &encode(b, &value)?)?;
    let handed_out = ballots(store, keys, slot)?;
    if any_above(store, keys, slot, b, handed_out)? {
        return Ok(Ballot::Ran(b, None));
    }
    Ok(Ballot::Ran(b, Some(value)))
}

/// Removes the slot's registers once it is applied: the intent, and when ballots were handed out
/// (the counter says how many) or this writer ran some (`own`, which may be above the counter if
/// it was removed and handed them out again), their promises, accepted values and the counter.
/// `counted`: whether to read the counter (a caller that saw it at 0 and ran no ballot skips it).
pub fn clear<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, own: &[u64], counted: bool) -> Result<(), Error> {
    store.delete(&keys.intent(slot))?;
    let handed_out = if counted { ballots(store, keys, slot)? } else { 0 };
    let mut any = false;
    for b in (1..=handed_out).chain(own.iter().copied().filter(|b| *b > handed_out)) {
        store.delete(&keys.promise(slot, b))?;
        store.delete(&keys.accepted(slot, b))?;
        any = true;
    }
    if any {
        store.delete(&keys.ballots(slot))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::op::Actor;
    use crate::name::TenantId;
    use crate::store::MemoryStore;

    /// A ballot that ran (the stores here are never contended).
    fn ran(
        store: &MemoryStore,
        keys: &TenantKeys,
        slot: u64,
        own: Value,
        known: u32,
    ) -> Result<(u64, Option<Value>), Error> {
        match ballot(store, keys, slot, own, known)? {
            Ballot::Ran(b, value) => Ok((b, value)),
            Ballot::Contended => panic!("a memory store is never contended"),
        }
    }

    fn keys() -> TenantKeys {
        TenantKeys::new(&TenantId::parse("acme").unwrap())
    }

    fn op() -> Op {
        Op::Delete { name: "x".into(), actor: Actor { operator: false, admin: true }, if_match: None }
    }

    fn intent() -> Value {
        Value { proposal: Proposal::Intent(op()), format: 1 }
    }

    #[test]
    fn an_untouched_slot_decides_its_takers_operation_in_two_calls() {
        let store = MemoryStore::new();
        assert_eq!(propose_own(&store, &keys(), 7, &intent()).unwrap(), (Some(intent()), 0));
        assert_eq!(store.ops.snapshot(), (1, 1));
    }

    #[test]
    fn a_takeover_adopts_a_written_intent_and_voids_an_empty_slot() {
        let store = MemoryStore::new();
        propose_own(&store, &keys(), 1, &intent()).unwrap();
        assert_eq!(ran(&store, &keys(), 1, Value::void(), 1).unwrap().1, Some(intent()));
        assert_eq!(ran(&store, &keys(), 2, Value::void(), 1).unwrap().1, Some(Value::void()));
        // The taker of slot 2 comes back: its own proposal can no longer win.
        assert_eq!(propose_own(&store, &keys(), 2, &intent()).unwrap().0, None);
        assert_eq!(ran(&store, &keys(), 2, intent(), 1).unwrap().1, Some(Value::void()));
    }

    #[test]
    fn a_lower_ballot_that_meets_a_higher_one_gives_up() {
        let store = MemoryStore::new();
        // Ballot 1 is handed out, then ballot 2 writes its promise before ballot 1 reads.
        store.increment(&keys().ballots(3), 1).unwrap();
        store.increment(&keys().ballots(3), 1).unwrap();
        store.set(&keys().promise(3, 2), b"p").unwrap();
        // Ballot 3 (the next) sees ballot 2 below it and goes ahead; an owner now must learn.
        assert_eq!(ran(&store, &keys(), 3, Value::void(), 1).unwrap(), (3, Some(Value::void())));
        assert_eq!(propose_own(&store, &keys(), 3, &intent()).unwrap().0, None);
        clear(&store, &keys(), 3, &[], true).unwrap();
        assert!(store.dump().is_empty(), "{:?}", store.dump().keys());
    }

    /// The schedule of `shared/log-schedules` ("store behaviour"): ballot 1 decides the intent;
    /// its phase-1 write, delayed, lands after its phase 2. With one register per ballot it
    /// reverted the accepted value, and ballot 2 voided a decided slot. Now a promise lands on a
    /// key of its own and the accepted value stays.
    #[test]
    fn a_late_promise_cannot_revert_an_accepted_value() {
        let store = MemoryStore::new();
        propose_own(&store, &keys(), 4, &intent()).unwrap();
        // A takeover that ran ballot 1 through: decided the intent.
        assert_eq!(ran(&store, &keys(), 4, Value::void(), 1).unwrap(), (1, Some(intent())));
        // Its first promise write, delayed on the wire, lands now.
        store.set(&keys().promise(4, 1), b"p").unwrap();
        // Someone deletes the intent early would be a bug elsewhere; here ballot 2 must find
        // ballot 1's value even without the intent.
        store.delete(&keys().intent(4)).unwrap();
        assert_eq!(ran(&store, &keys(), 4, Value::void(), 1).unwrap(), (2, Some(intent())));
    }

    /// An intent left in flight by a node of the release before log formats, stopped for the
    /// upgrade, is adopted by the takeover that recovers its slot.
    #[test]
    fn an_intent_of_the_release_before_formats_is_adopted() {
        let store = MemoryStore::new();
        let old = serde_json::json!({"b": 0, "accepted": [0, Proposal::Intent(op())]});
        store.set(&keys().intent(6), &serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(ran(&store, &keys(), 6, Value::void(), 1).unwrap(), (1, Some(intent())));
    }

    #[test]
    fn a_value_of_an_unknown_format_is_never_adopted() {
        let store = MemoryStore::new();
        propose_own(&store, &keys(), 5, &Value { format: 2, ..intent() }).unwrap();
        assert_eq!(ran(&store, &keys(), 5, Value::void(), 1).unwrap_err(), Error::LogFormatUnknown);
        assert_eq!(ran(&store, &keys(), 5, Value::void(), 2).unwrap().1, Some(Value { format: 2, ..intent() }));
    }
}
