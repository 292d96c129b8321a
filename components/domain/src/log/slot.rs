//! Deciding one slot of the log: the writer that took the slot proposes its operation; a writer
//! that finds the slot stalled proposes to void it. Exactly one of the two is decided, whatever
//! the pauses and deaths, with `get`, `set` and `increment` alone: Paxos over shared registers
//! (Gafni and Lamport's Disk Paxos with a single disk), one register per ballot.
//!
//! ## The registers of slot `k`
//! - `P:s:<k>:0`: ballot 0, the taker's: written once, with its operation as accepted at ballot 0.
//! - `P:s:<k>:n`: a counter handing out ballots 1, 2, … to writers that take the slot over.
//! - `P:s:<k>:<b>`: ballot `b`'s block `{b, accepted}`, written only by the holder of ballot `b`.
//!
//! ## Ballot `b` ([`ballot`]), as Disk Paxos
//! 1. Write `{b, none}`; read the counter (≥ `b`) and every other block up to it. A block of a
//!    higher ballot: give up (another writer is ahead). Else take the value accepted at the
//!    highest ballot among the blocks read, or our own proposal if none.
//! 2. Write `{b, accepted (b, value)}`; read the counter and the blocks above `b`. Any: give up.
//!    None: `value` is decided.
//!
//! Why at most one value is decided: of two ballots `b < c`, each writes its block before it reads
//! the other's, so if `b` completed phase 2 without seeing `c`'s block, `c`'s phase-1 write came
//! after `b`'s phase-2 read, hence after `b`'s phase-2 write, and `c`'s phase-1 read sees `b`'s
//! accepted value: `c` (and by induction every later ballot) proposes the value `b` decided. A
//! ballot handed out but not yet written is no exception: its first write comes after our read.
//!
//! ## The taker's fast path ([`propose_own`])
//! Ballot 0 needs no phase 1 (no ballot is lower). Write block 0, read the counter: 0 means no
//! takeover has started, and any that starts later reads block 0 in its phase 1 and adopts it, so
//! the operation is decided in two store calls. A counter above 0 with none of those blocks
//! written yet is the same; with one written, the taker runs a full ballot to learn the outcome.
//!
//! ## What these reads assume
//! That no register of the slot was deleted before they were made. The log deletes a slot's
//! registers only after the slot is applied, and every caller checks afterwards that it was not
//! (`log::applied`) before acting on what it learned here.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Internal};
use crate::log::op::Op;
use crate::store::{KeyValue, TenantKeys};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Block {
    b: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted: Option<(u64, Proposal)>,
}

fn read_block<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, ballot: u64) -> Result<Option<Block>, Error> {
    match store.get(&keys.block(slot, ballot))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|_| Internal::CorruptRecord.into()),
    }
}

fn write_block<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, block: &Block) -> Result<(), Error> {
    let bytes = serde_json::to_vec(block).map_err(|_| Internal::CorruptRecord)?;
    Ok(store.set(&keys.block(slot, block.b), &bytes)?)
}

/// The number of ballots handed out for the slot (0: nobody has tried to take it over).
pub fn ballots<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64) -> Result<u64, Error> {
    Ok(store.counter(&keys.ballots(slot))?.unwrap_or(0))
}

/// Whether any block above `ballot` (up to `upto`) is written.
fn any_above<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, ballot: u64, upto: u64) -> Result<bool, Error> {
    for other in ballot + 1..=upto {
        if read_block(store, keys, slot, other)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The taker of `slot` proposes `op` at ballot 0. `Some(Intent)`: decided. `None`: a takeover is
/// under way; learn the outcome with [`ballot`].
pub fn propose_own<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, op: &Op) -> Result<Option<Proposal>, Error> {
    let proposal = Proposal::Intent(op.clone());
    write_block(store, keys, slot, &Block { b: 0, accepted: Some((0, proposal.clone())) })?;
    let handed_out = ballots(store, keys, slot)?;
    if handed_out == 0 || !any_above(store, keys, slot, 0, handed_out)? {
        return Ok(Some(proposal));
    }
    Ok(None)
}

/// Runs one ballot for `slot`, proposing `own` unless a value may already be decided.
/// `Some(value)`: `value` is decided. `None`: a higher ballot is under way; try again later.
/// Returns the ballot too, so that the caller can remove its block once the slot is applied.
pub fn ballot<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    slot: u64,
    own: Proposal,
) -> Result<(u64, Option<Proposal>), Error> {
    let b = u64::try_from(store.increment(&keys.ballots(slot), 1)?).map_err(|_| Internal::CorruptRecord)?;
    write_block(store, keys, slot, &Block { b, accepted: None })?;
    let handed_out = ballots(store, keys, slot)?;
    let mut best: Option<(u64, Proposal)> = None;
    for other in (0..=handed_out).filter(|o| *o != b) {
        let Some(block) = read_block(store, keys, slot, other)? else { continue };
        if block.b > b {
            return Ok((b, None));
        }
        if let Some((at, value)) = block.accepted {
            if best.as_ref().is_none_or(|(best_at, _)| at > *best_at) {
                best = Some((at, value));
            }
        }
    }
    let value = best.map_or(own, |(_, value)| value);
    write_block(store, keys, slot, &Block { b, accepted: Some((b, value.clone())) })?;
    let handed_out = ballots(store, keys, slot)?;
    if any_above(store, keys, slot, b, handed_out)? {
        return Ok((b, None));
    }
    Ok((b, Some(value)))
}

/// Removes the slot's registers once it is applied: ballot 0 always; the counter and the
/// takeover blocks when `ballots` were handed out; and `own`, the ballots this writer ran (which
/// may be above `ballots` if the counter was removed and handed them out again).
pub fn clear<S: KeyValue>(store: &S, keys: &TenantKeys, slot: u64, ballots: u64, own: &[u64]) -> Result<(), Error> {
    store.delete(&keys.block(slot, 0))?;
    for b in (1..=ballots).chain(own.iter().copied().filter(|b| *b > ballots)) {
        store.delete(&keys.block(slot, b))?;
    }
    if ballots > 0 || !own.is_empty() {
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

    fn keys() -> TenantKeys {
        TenantKeys::new(&TenantId::parse("acme").unwrap())
    }

    fn op() -> Op {
        Op::Delete { name: "x".into(), actor: Actor { operator: false, admin: true }, if_match: None }
    }

    #[test]
    fn an_untouched_slot_decides_its_takers_operation_in_two_calls() {
        let store = MemoryStore::new();
        assert_eq!(propose_own(&store, &keys(), 7, &op()).unwrap(), Some(Proposal::Intent(op())));
        assert_eq!(store.ops.snapshot(), (1, 1));
    }

    #[test]
    fn a_takeover_adopts_a_written_intent_and_voids_an_empty_slot() {
        let store = MemoryStore::new();
        propose_own(&store, &keys(), 1, &op()).unwrap();
        assert_eq!(ballot(&store, &keys(), 1, Proposal::Void).unwrap().1, Some(Proposal::Intent(op())));
        assert_eq!(ballot(&store, &keys(), 2, Proposal::Void).unwrap().1, Some(Proposal::Void));
        // The taker of slot 2 comes back: its own proposal can no longer win.
        assert_eq!(propose_own(&store, &keys(), 2, &op()).unwrap(), None);
        assert_eq!(ballot(&store, &keys(), 2, Proposal::Intent(op())).unwrap().1, Some(Proposal::Void));
    }

    #[test]
    fn a_lower_ballot_that_meets_a_higher_one_gives_up() {
        let store = MemoryStore::new();
        // Ballot 1 is handed out, then ballot 2 writes its phase-1 block before ballot 1 reads.
        store.increment(&keys().ballots(3), 1).unwrap();
        store.increment(&keys().ballots(3), 1).unwrap();
        write_block(&store, &keys(), 3, &Block { b: 2, accepted: None }).unwrap();
        // Ballot 3 (the next) sees ballot 2 below it and goes ahead; an owner now must learn.
        assert_eq!(ballot(&store, &keys(), 3, Proposal::Void).unwrap(), (3, Some(Proposal::Void)));
        assert_eq!(propose_own(&store, &keys(), 3, &op()).unwrap(), None);
        clear(&store, &keys(), 3, 3, &[]).unwrap();
        assert!(store.dump().is_empty(), "{:?}", store.dump().keys());
    }
}
