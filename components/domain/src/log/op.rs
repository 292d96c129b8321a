//! What a slot of the log carries (an [`Op`]) and what applying it to a view does: the rules of
//! create, modify, delete, the quota, verification outcomes and re-encryption, checked against the
//! state right before the slot. A pure function of (view, slot, op), so every writer that applies
//! a slot computes the same next view.

use serde::{Deserialize, Serialize};

use crate::check::LastCheck;
use crate::error::Error;
use crate::index::{IfMatch, IndexEntry};
use crate::provider::Kind;
pub use crate::view::Refusal;
use crate::view::{Header, View};

/// Who asks, as far as the managed-secret rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub operator: bool,
    pub admin: bool,
}

/// One write, as decided for a slot. Times come from the writer's clock when it took the slot,
/// so that applying is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// A new secret; its record is the slot's own.
    Create {
        name: String,
        registries: Vec<String>,
        actor: Actor,
        now: u64,
        verification: Option<LastCheck>,
        /// What the record holds (absent: static credentials, as before kinds existed).
        #[serde(default, skip_serializing_if = "Kind::is_static")]
        kind: Kind,
    },
    /// New credentials for a secret; its record is the slot's own.
    Modify {
        name: String,
        registries: Vec<String>,
        actor: Actor,
        now: u64,
        if_match: Option<IfMatch>,
        verification: Option<LastCheck>,
        #[serde(default, skip_serializing_if = "Kind::is_static")]
        kind: Kind,
    },
    Delete {
        name: String,
        actor: Actor,
        if_match: Option<IfMatch>,
    },
    /// The operator's quota limit.
    SetLimit {
        limit: u32,
    },
    /// The outcome of a verification of `version`, kept only if the secret is still at it.
    Check {
        name: String,
        version: u64,
        check: LastCheck,
    },
    /// The same credentials re-sealed into the slot's own record, if the secret still uses `record`.
    Reseal {
        name: String,
        record: u64,
    },
    /// The tenant's workload-identity trust, replaced whole by the slot's own record.
    SetTrust,
}

/// The managed-secret rule: only the operator changes a managed secret, and an operator token
/// without the admin scope changes nothing else.
pub fn managed_guard(actor: Actor, entry: &IndexEntry, refusal: Refusal) -> Result<(), Refusal> {
    match (entry.managed, actor.operator) {
        (true, false) => Err(refusal),
        (false, true) if !actor.admin => Err(Refusal::Forbidden),
        _ => Ok(()),
    }
}

/// Whether a modify or delete may go ahead on this view; the entry it changes.
pub fn admit_change(
    view: &View,
    name: &str,
    actor: Actor,
    if_match: Option<&IfMatch>,
    managed: Refusal,
) -> Result<IndexEntry, Refusal> {
    let entry = view.find(name).ok().flatten().ok_or(Refusal::NotFound)?;
    managed_guard(actor, &entry, managed)?;
    if let Some(precondition) = if_match {
        precondition.check(entry.version).map_err(|_| Refusal::Precondition)?;
    }
    Ok(entry)
}

/// Whether a create of `name` may go ahead on this view.
pub fn admit_create(view: &View, name: &str) -> Result<(), Refusal> {
    if view.find(name).ok().flatten().is_some() {
        return Err(Refusal::Exists);
    }
    if view.used() >= view.limit() {
        return Err(Refusal::Quota { limit: view.limit(), used: view.used() });
    }
    Ok(())
}

/// What applying a slot did: the next view, and the outcome its writer answers with.
pub struct Applied {
    pub view: View,
    pub outcome: Result<(), Refusal>,
}

/// The next view after `slot`, whose decided value is `op` (`None`: the slot was voided), with the
/// production shape (format 1, `OUTCOMES` remembered): for benchmarks that build views directly.
pub fn apply(view: &View, slot: u64, op: Option<&Op>) -> Result<Applied, Error> {
    apply_with(view, slot, op, 1, crate::view::OUTCOMES)
}

/// The next view after `slot`, whose decided value is `op` (`None`: the slot was voided) of log
/// format `format`; the view remembers the outcomes of the last `outcomes` slots. The view is in
/// the higher of its predecessor's format and the operation's.
pub fn apply_with(view: &View, slot: u64, op: Option<&Op>, format: u32, outcomes: u64) -> Result<Applied, Error> {
    let prev = view.header();
    let from = slot.saturating_sub(outcomes.max(1) - 1).max(1);
    let format = format.max(view.format());
    let mut header = Header {
        slot,
        format: (format > 1).then_some(format),
        limit: prev.limit,
        refused: prev.refused.iter().filter(|(s, _)| *s >= from).cloned().collect(),
        from,
        trust: prev.trust,
        garbage: Vec::new(),
        minted: Vec::new(),
    };
    let Some(op) = op else {
        header.refused.push((slot, None));
        header.garbage.push(slot);
        return Ok(Applied { view: view.next(header, None, None)?, outcome: Ok(()) });
    };
    let change = change(view, slot, op);
    let (upsert, remove, garbage) = match &change {
        Ok(c) => (c.upsert.as_ref(), c.remove.as_deref(), c.garbage),
        Err(_) => (None, None, Some((slot, Kind::Static))),
    };
    match (&change, op) {
        (Ok(_), Op::SetLimit { limit }) => header.limit = Some(*limit),
        (Ok(_), Op::SetTrust) => header.garbage.extend(header.trust.replace(slot)),
        _ => {}
    }
    if let Err(refusal) = &change {
        header.refused.push((slot, Some(refusal.clone())));
    }
    if let Some((record, kind)) = garbage {
        header.garbage.push(record);
        if !kind.is_static() {
            header.minted.push(record);
        }
    }
    let next = view.next(header, upsert, remove)?;
    Ok(Applied { view: next, outcome: change.map(|_| ()) })
}

struct Change {
    upsert: Option<IndexEntry>,
    remove: Option<String>,
    /// The record that no longer has a reader, and the kind of the entry that named it (a minting
    /// kind's record may have a cached credential, `P:mint:<record>`, to delete after it).
    garbage: Option<(u64, Kind)>,
}

fn change(view: &View, slot: u64, op: &Op) -> Result<Change, Refusal> {
    let keep = |entry: IndexEntry| Change { upsert: Some(entry), remove: None, garbage: None };
    match op {
        Op::Create { name, registries, actor, now, verification, kind } => {
            admit_create(view, name)?;
            Ok(keep(IndexEntry {
                name: name.clone(),
                registries: registries.clone(),
                managed: actor.operator,
                created: *now,
                modified: *now,
                version: slot,
                record: slot,
                verification: *verification,
                kind: *kind,
            }))
        }
        Op::Modify { name, registries, actor, now, if_match, verification, kind } => {
            let old = admit_change(view, name, *actor, if_match.as_ref(), Refusal::ManagedUpdate)?;
            let garbage = Some((old.record, old.kind));
            let entry = IndexEntry {
                registries: registries.clone(),
                modified: *now,
                version: slot,
                record: slot,
                verification: *verification,
                kind: *kind,
                ..old
            };
            Ok(Change { garbage, ..keep(entry) })
        }
        Op::Delete { name, actor, if_match } => {
            let old = admit_change(view, name, *actor, if_match.as_ref(), Refusal::ManagedDelete)?;
            Ok(Change { upsert: None, remove: Some(old.name), garbage: Some((old.record, old.kind)) })
        }
        Op::SetLimit { .. } | Op::SetTrust => Ok(Change { upsert: None, remove: None, garbage: None }),
        Op::Check { name, version, check } => {
            let entry = view.find(name).ok().flatten().filter(|e| e.version == *version).ok_or(Refusal::Stale)?;
            Ok(keep(IndexEntry { verification: Some(*check), ..entry }))
        }
        Op::Reseal { name, record } => {
            let entry = view.find(name).ok().flatten().filter(|e| e.record == *record).ok_or(Refusal::Stale)?;
            Ok(Change { garbage: Some((*record, entry.kind)), ..keep(IndexEntry { record: slot, ..entry }) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Actor = Actor { operator: false, admin: true };

    fn create(name: &str) -> Op {
        Op::Create {
            name: name.into(),
            registries: vec!["ghcr.io".into()],
            actor: TENANT,
            now: 5,
            verification: None,
            kind: Kind::Static,
        }
    }

    fn run(ops: &[Option<Op>]) -> (View, Vec<Result<(), Refusal>>) {
        let mut view = View::empty();
        let mut outcomes = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let applied = apply(&view, i as u64 + 1, op.as_ref()).unwrap();
            view = applied.view;
            outcomes.push(applied.outcome);
        }
        (view, outcomes)
    }

    #[test]
    fn a_name_is_created_once_and_its_record_is_its_slot() {
        let (view, outcomes) = run(&[Some(create("a")), Some(create("a"))]);
        assert_eq!(outcomes, [Ok(()), Err(Refusal::Exists)]);
        let entry = view.find("a").unwrap().unwrap();
        assert_eq!((entry.version, entry.record), (1, 1));
        assert_eq!(view.header().garbage, [2], "the refused create's own record has no reader");
        assert_eq!(view.outcome_of(2), crate::view::SlotOutcome::Refused(Refusal::Exists));
    }

    #[test]
    fn the_quota_counts_what_applied_before_the_slot() {
        let mut ops = vec![Some(Op::SetLimit { limit: 2 })];
        ops.extend(["a", "b", "c"].map(|n| Some(create(n))));
        let (view, outcomes) = run(&ops);
        assert_eq!(outcomes[3], Err(Refusal::Quota { limit: 2, used: 2 }));
        assert_eq!(view.used(), 2);
    }

    #[test]
    fn a_modify_replaces_the_record_and_a_stale_if_match_is_refused() {
        let modify = |if_match| Op::Modify {
            name: "a".into(),
            registries: vec!["quay.io".into()],
            actor: TENANT,
            now: 9,
            if_match,
            verification: None,
            kind: Kind::Static,
        };
        let (view, outcomes) = run(&[
            Some(create("a")),
            Some(modify(Some(IfMatch::Versions(vec![1])))),
            Some(modify(Some(IfMatch::Versions(vec![1])))),
        ]);
        assert_eq!(outcomes, [Ok(()), Ok(()), Err(Refusal::Precondition)]);
        let entry = view.find("a").unwrap().unwrap();
        assert_eq!((entry.version, entry.record, entry.created, entry.modified), (2, 2, 5, 9));
        assert_eq!(view.header().garbage, [3]);
    }

    #[test]
    fn a_voided_slot_changes_nothing_but_its_own_record_and_is_remembered() {
        let (view, outcomes) = run(&[Some(create("a")), None]);
        assert_eq!(outcomes, [Ok(()), Ok(())]);
        assert_eq!(view.names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(view.header().garbage, [2]);
        assert_eq!(view.outcome_of(2), crate::view::SlotOutcome::Voided);
    }

    #[test]
    fn managed_secrets_are_the_operators_and_a_reseal_moves_only_the_record() {
        let operator = Actor { operator: true, admin: false };
        let managed = Op::Create {
            name: "m".into(),
            registries: vec![],
            actor: operator,
            now: 1,
            verification: None,
            kind: Kind::Static,
        };
        let delete = Op::Delete { name: "m".into(), actor: TENANT, if_match: None };
        let reseal = Op::Reseal { name: "m".into(), record: 1 };
        let (view, outcomes) = run(&[Some(managed), Some(delete), Some(reseal.clone()), Some(reseal)]);
        assert_eq!(outcomes, [Ok(()), Err(Refusal::ManagedDelete), Ok(()), Err(Refusal::Stale)]);
        let entry = view.find("m").unwrap().unwrap();
        assert_eq!((entry.version, entry.record), (1, 3), "a re-seal keeps the version (the ETag)");
    }

    #[test]
    fn a_trust_replaces_the_previous_one_whose_record_becomes_garbage() {
        let (view, outcomes) = run(&[Some(Op::SetTrust), Some(create("a")), Some(Op::SetTrust)]);
        assert_eq!(outcomes, [Ok(()), Ok(()), Ok(())]);
        assert_eq!(view.header().trust, Some(3));
        assert_eq!(view.header().garbage, [1]);
        assert_eq!(view.records().unwrap(), [2, 3]);
    }

    #[test]
    fn applying_is_a_function_of_view_slot_and_op() {
        let (a, _) = run(&[Some(create("a")), None, Some(create("b"))]);
        let (b, _) = run(&[Some(create("a")), None, Some(create("b"))]);
        assert_eq!(a.bytes(), b.bytes());
    }
}
