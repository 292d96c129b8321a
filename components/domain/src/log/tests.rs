//! Schedule tests of the write log, on the deterministic scheduler of `sim.rs`:
//! - the harness: writers that run the real operations (`secrets::create` …) through the store
//!   wrapper production uses (`Retrying`), fault plans (pauses, deaths, calls that fail and take
//!   effect later), and [`check`], the invariants every schedule must leave intact;
//! - the situations of `shared/lock-schedules` (which broke the tenant lock) and every schedule of
//!   `shared/log-schedules` (which broke this log before it was mended), each named after it;
//! - a pause and a death at every store call of every write, with the production shape and with a
//!   shape small enough that three writers wrap the window and the outcome memory;
//! - two log formats side by side (a rolling upgrade).
//!
//! The exhaustive bounded search and the random explorer are in `explore.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::sim::{Actor, Sim, SimClock, SimStore, Status, Step};
use super::*;
use crate::clock::FastClock;
use crate::crypto::Keyring;
use crate::dockerconfig::SecretRequest;
use crate::identity::{Principal, Scope, Scopes};
use crate::name::TenantId;
use crate::secrets;
use crate::store::{Retrying, TenantKey};

pub(super) const LEASE: u64 = 1_000;

/// The production shape with the tests' lease.
pub(super) fn policy() -> WritePolicy {
    WritePolicy::with_lease(Duration::from_millis(LEASE))
}

/// A shape that a handful of writers wrap: two views kept, two outcomes remembered, a sweep every
/// four slots.
pub(super) const SMALL: Shape = Shape { window: 2, outcomes: 2, sweep_every: 4, ..Shape::PRODUCTION };

pub(super) fn policy_of(shape: Shape) -> WritePolicy {
    WritePolicy { shape, ..policy() }
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

pub(super) fn keys() -> TenantKeys {
    TenantKeys::new(&tenant())
}

fn admin() -> Principal {
    let scopes = Scopes::empty().with(Scope::Admin).with(Scope::Viewer).with(Scope::Puller);
    Principal { tenant: tenant(), scopes, subject: None, client: None }
}

fn ring() -> Keyring {
    Keyring::parse("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap()
}

fn body(name: &str, password: &str) -> SecretRequest {
    let body = serde_json::json!({"name": name, "registry": "ghcr.io", "username": "u", "password": password});
    SecretRequest::from_json(body, true).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Create,
    Modify,
    Delete,
}

/// One write of a schedule, after the fact: its slot (if it took one) and what it answered
/// (`None`: it died); a success carries the version it answered.
#[derive(Debug, Clone)]
pub(super) struct Answered {
    pub kind: Kind,
    pub name: String,
    pub slot: Option<u64>,
    pub answer: Option<Result<u64, Error>>,
}

struct Planned {
    kind: Kind,
    name: String,
    id: usize,
    handle: JoinHandle<Option<Result<u64, Error>>>,
}

pub(super) struct Run {
    pub sim: Arc<Sim>,
    ops: Vec<Planned>,
    policy: WritePolicy,
    seeded: Vec<String>,
}

/// A fault plan: called before each turn with the actor about to run; it may hold or kill it, or
/// make its next store call fail.
pub(super) type Fault<'a> = dyn FnMut(&Sim, usize, &Actor) + 'a;

impl Run {
    /// A schedule on a store holding `existing` secrets (created first, outside the schedule).
    pub fn seeded(shape: Shape, existing: &[&str]) -> Run {
        let run = Run { sim: Sim::new(), ops: Vec::new(), policy: policy_of(shape), seeded: Vec::new() };
        let clock = FastClock::at(0);
        let env = Env { store: &run.sim.store, clock: &clock, policy: run.policy };
        for name in existing {
            secrets::create(&env, &admin(), &ring(), body(name, "pw")).unwrap();
        }
        Run { seeded: existing.iter().map(|n| n.to_string()).collect(), ..run }
    }

    /// A writer running the real operation with the run's policy.
    pub fn op(&mut self, kind: Kind, name: &str) -> usize {
        let policy = self.policy;
        self.op_with(kind, name, policy)
    }

    /// A writer running the real operation with its own policy (another release's shape).
    pub fn op_with(&mut self, kind: Kind, name: &str, policy: WritePolicy) -> usize {
        let n = name.to_owned();
        let (id, handle) = self.sim.spawn(move |store: &SimStore, clock: &SimClock| {
            // The request's deadline has passed from the start (the components' is `max_wait` of
            // real time, which means nothing here): contention on an `increment` is never
            // retried by the wrapper, only by the log's own handling of it.
            let store = Retrying::within(store, Duration::ZERO);
            let env = Env { store: &store, clock, policy };
            match kind {
                Kind::Create => secrets::create(&env, &admin(), &ring(), body(&n, "pw")).map(|w| w.version),
                Kind::Modify => secrets::modify(&env, &admin(), &ring(), &n, body(&n, "pw2"), None).map(|w| w.version),
                Kind::Delete => secrets::delete(&env, &admin(), &n, None).map(|w| w.version),
            }
        });
        self.ops.push(Planned { kind, name: name.to_owned(), id, handle });
        id
    }

    /// Runs every waiting actor, the earliest ready first, applying `fault` before each turn.
    /// Bounded: a schedule that does not finish in `limit` turns is a liveness failure.
    pub fn drive(&self, limit: usize, fault: &mut Fault) {
        self.drive_choosing(limit, fault, &mut |_, _| None)
    }

    /// As [`Run::drive`], but `choose(turn, waiting)` may pick another waiting actor than the
    /// earliest ready one (a preemption; time moves to when that one is ready).
    pub fn drive_choosing(
        &self,
        limit: usize,
        fault: &mut Fault,
        choose: &mut dyn FnMut(usize, &[usize]) -> Option<usize>,
    ) {
        for turn in 0..limit {
            let actors = self.sim.actors();
            let mut waiting: Vec<usize> = (0..actors.len()).filter(|i| actors[*i].status == Status::Waiting).collect();
            if waiting.is_empty() {
                return;
            }
            waiting.sort_by_key(|i| (actors[*i].ready_at, *i));
            let id = choose(turn, &waiting).filter(|c| waiting.contains(c)).unwrap_or(waiting[0]);
            let actor = actors[id].clone();
            fault(&self.sim, id, &actor);
            let after = &self.sim.actors()[id];
            if after.status != Status::Waiting || after.ready_at != actor.ready_at {
                continue; // held or killed: choose again
            }
            self.sim.run(id);
        }
        panic!("the schedule did not finish within {limit} turns: {:?}", self.sim.actors());
    }

    /// Joins every actor: what each write answered (`None`: it died), with its slot.
    pub fn finish(self) -> Finished {
        self.sim.release();
        let actors = self.sim.actors();
        let answers = self
            .ops
            .into_iter()
            .map(|p| Answered { kind: p.kind, name: p.name, slot: actors[p.id].slot, answer: p.handle.join().unwrap() })
            .collect();
        Finished { sim: self.sim, answers, policy: self.policy, seeded: self.seeded, after: Vec::new() }
    }
}

pub(super) struct Finished {
    pub sim: Arc<Sim>,
    pub answers: Vec<Answered>,
    pub policy: WritePolicy,
    seeded: Vec<String>,
    /// Secrets a test created after the schedule, outside it.
    after: Vec<String>,
}

impl Finished {
    /// Creates `name` after the schedule, as the next request would (a quiet write).
    fn create_after(&mut self, name: &str) {
        let clock = FastClock::at(self.sim.now() + 1);
        let env = Env { store: &self.sim.store, clock: &clock, policy: self.policy };
        secrets::create(&env, &admin(), &ring(), body(name, "pw")).expect("a quiet write goes through");
        self.after.push(name.to_owned());
    }

    fn answer(&self, name: &str) -> &Option<Result<u64, Error>> {
        &self.answers.iter().find(|a| a.name == name).unwrap().answer
    }
}

/// What [`check`] found besides the invariants.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Checked {
    /// Keys of the tenant after the quiet write, and the bound of that moment (see below).
    pub keys: usize,
    pub bound: usize,
    /// Keys written late that only the sweep collected.
    pub swept: usize,
}

/// Whether a write with this answer may have taken effect: it succeeded, died, or could not
/// learn its outcome. Every other answer (a refusal, 503 `TenantBusy`, `StoreUnavailable` before
/// its intent) took none.
fn may_have_applied(answer: &Option<Result<u64, Error>>) -> bool {
    matches!(answer, None | Some(Ok(_)) | Some(Err(Error::WriteOutcomeUnknown)))
}

/// The invariants, once the schedule is over, every failed call's effect has landed and one more
/// (quiet) write has been made:
/// - every write answered with success is in the state and was not undone by anything that did
///   not itself succeed or end unknown: for each name, the listed version (or its absence) is
///   explained by the writes that may have applied, and no success came after it;
/// - a write that was refused, or answered 503 `TenantBusy` or `StoreUnavailable`, left no trace;
///   one answered 503 `WriteOutcomeUnknown` is wholly there (its record opens) or wholly absent;
/// - a success answers its own slot as the version;
/// - after the quiet write the tenant holds at most `N + W + 2` keys (`N` secrets, the views of
///   the window and the one before it, `P:seq`) plus what writers overtaken while paused wrote
///   late and died before removing; after a sweep, exactly what the view names: every record it
///   names and no other, no slot register, at most `W + 1` views; used = listed ≤ limit; every
///   listed secret opens.
pub(super) fn check(f: &Finished) -> Checked {
    let sim = &f.sim;
    let store = &sim.store;
    sim.land_all();
    let clock = FastClock::at(sim.now() + 1);
    let env = Env { store, clock: &clock, policy: f.policy };
    secrets::create(&env, &admin(), &ring(), body("zz-after", "pw")).expect("the next write goes through");
    let view = read(&env, &keys()).unwrap().view;
    let ctx = || format!("{:#?}", f.answers);

    // Successes answer their own slot.
    for a in &f.answers {
        if let (Some(Ok(version)), Some(slot)) = (&a.answer, a.slot) {
            assert_eq!(*version, slot, "{} answered version {version} for slot {slot}: {}", a.name, ctx());
        }
    }
    // Every name's state is explained by the writes that may have applied.
    let mut names: BTreeSet<String> = f.answers.iter().map(|a| a.name.clone()).collect();
    names.extend(f.seeded.iter().cloned());
    for name in &names {
        // (slot, kind, succeeded) of every write of `name` that may have applied; seeds succeeded.
        let mut writes: Vec<(u64, Kind, bool)> = f
            .answers
            .iter()
            .filter(|a| &a.name == name && may_have_applied(&a.answer))
            .filter_map(|a| Some((a.slot?, a.kind, matches!(a.answer, Some(Ok(_))))))
            .collect();
        if f.seeded.contains(name) {
            let seed = f.seeded.iter().position(|n| n == name).unwrap() as u64 + 1;
            writes.push((seed, Kind::Create, true));
        }
        let last_success = writes.iter().filter(|w| w.2).max_by_key(|w| w.0).copied();
        match view.find(name).unwrap() {
            Some(entry) => {
                let v = entry.version;
                assert!(
                    writes.iter().any(|w| w.0 == v && w.1 != Kind::Delete),
                    "{name} is listed at version {v}, which no write that may have applied explains: {}",
                    ctx()
                );
                assert!(
                    last_success.is_none_or(|(s, _, _)| s <= v),
                    "{name} is at version {v}, yet a later write succeeded: {}",
                    ctx()
                );
            }
            None => {
                if let Some((s, kind, _)) = last_success.filter(|w| w.1 != Kind::Delete) {
                    assert!(
                        writes.iter().any(|w| w.0 > s && w.1 == Kind::Delete),
                        "{name}: its {kind:?} at slot {s} was acknowledged, yet it is not listed: {}",
                        ctx()
                    );
                }
            }
        }
    }
    let listed: BTreeSet<String> = view.names().map(str::to_owned).collect();
    assert!(listed.iter().all(|n| names.contains(n) || n == "zz-after" || f.after.contains(n)), "{listed:?}");
    assert_eq!(view.used() as usize, listed.len());
    assert!(view.used() <= view.limit());

    // Keys: the bound after the quiet write, then exactly what the view names after a sweep.
    let rows = tenant_rows(store);
    let bound = listed.len() + f.policy.shape.window as usize + 2;
    let swept = sweep(store, &keys(), &view, f.policy.shape.window).unwrap();
    let after = tenant_rows(store);
    let named: BTreeSet<u64> = view.records().unwrap().into_iter().collect();
    let records: BTreeSet<u64> =
        after.iter().filter_map(|k| if let TenantKey::Record(r) = k { Some(*r) } else { None }).collect();
    assert_eq!(records, named, "records stored vs. named by the view: {}", ctx());
    let registers: Vec<&TenantKey> = after.iter().filter(|k| matches!(k, TenantKey::Register(_))).collect();
    assert!(registers.is_empty(), "slot registers left: {registers:?}: {}", ctx());
    let views = after.iter().filter(|k| matches!(k, TenantKey::View(_))).count() as u64;
    assert!(views <= f.policy.shape.window + 1, "{views} views kept");
    assert!(after.iter().all(|k| !matches!(k, TenantKey::Mint(_) | TenantKey::Other)), "{after:?}");
    assert!(after.len() <= bound, "{} keys after the sweep, bound {bound}: {after:?}", after.len());
    for entry in view.entries().unwrap() {
        assert!(secrets::open_entry(store, &ring(), &tenant(), &entry).unwrap().is_some(), "{} opens", entry.name);
    }
    Checked { keys: rows.len(), bound, swept }
}

/// The tenant's keys, by family.
pub(super) fn tenant_rows(store: &MemoryStore) -> Vec<TenantKey> {
    store.dump().keys().filter_map(|k| keys().parse(k).map(|(family, _)| family)).collect()
}

use crate::store::MemoryStore;

pub(super) fn is_call(actor: &Actor, op: &str, key_starts: &str) -> bool {
    matches!(&actor.step, Step::Call(o, k) if *o == op && k.starts_with(key_starts))
}

fn is_exact_call(actor: &Actor, op: &str, key: &str) -> bool {
    matches!(&actor.step, Step::Call(o, k) if *o == op && k == key)
}

/// A fault plan that holds actor `who` for `ms` the first time its next step satisfies `at`.
fn hold_once(who: usize, at: impl Fn(&Actor) -> bool, ms: u64) -> impl FnMut(&Sim, usize, &Actor) {
    let mut held = false;
    move |sim, id, actor| {
        if id == who && !held && at(actor) {
            held = true;
            sim.hold(id, sim.now() + ms);
        }
    }
}

/// A fault plan that holds, for `ms`, whichever actor first makes the call `op key`.
fn hold_whoever(op: &'static str, key: String, ms: u64) -> impl FnMut(&Sim, usize, &Actor) {
    let mut held = false;
    move |sim, id, actor| {
        if !held && is_exact_call(actor, op, &key) {
            held = true;
            sim.hold(id, sim.now() + ms);
        }
    }
}

fn both<'a>(
    mut a: impl FnMut(&Sim, usize, &Actor) + 'a,
    mut b: impl FnMut(&Sim, usize, &Actor) + 'a,
) -> impl FnMut(&Sim, usize, &Actor) + 'a {
    move |sim, id, actor| {
        a(sim, id, actor);
        b(sim, id, actor);
    }
}

// ---- The schedules of shared/lock-schedules, as situations of this protocol ----

/// gap_create: A pauses 1.6 leases between learning its slot's outcome and writing its view
/// (the lock's confirm→commit gap); B creates y meanwhile, and its wait runs out: it takes A's
/// slot over. Under the lock, A's late index write erased y. Here A's slot is applied once, by
/// whoever comes first, and A's late view write writes the same bytes.
#[test]
fn gap_create_a_writer_paused_before_its_view_loses_nothing() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let mut run = Run::seeded(shape, &[]);
        let a = run.op(Kind::Create, "x");
        run.op(Kind::Create, "y");
        run.drive(10_000, &mut hold_once(a, |actor| is_call(actor, "set", "v:"), LEASE * 16 / 10));
        let f = run.finish();
        assert!(matches!(f.answer("x"), Some(Ok(_))), "{:?}", f.answers);
        assert!(matches!(f.answer("y"), Some(Ok(_))), "{:?}", f.answers);
        check(&f);
    }
}

/// gap_modify: two modifies of x; A pauses 1.6 leases before its view. Both succeed, in slot order.
#[test]
fn gap_modify_two_modifies_both_apply_in_slot_order() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["x"]);
    let a = run.op(Kind::Modify, "x");
    run.op(Kind::Modify, "x");
    run.drive(10_000, &mut hold_once(a, |actor| is_call(actor, "set", "v:"), LEASE * 16 / 10));
    let f = run.finish();
    assert!(f.answers.iter().all(|a| matches!(a.answer, Some(Ok(_)))), "{:?}", f.answers);
    check(&f);
}

/// gap_minimal: A stalls 0.95 lease before its intent, then 0.6 lease before its view; B creates.
#[test]
fn gap_minimal_stalls_before_the_intent_and_before_the_view() {
    let mut run = Run::seeded(Shape::PRODUCTION, &[]);
    let a = run.op(Kind::Create, "x");
    run.op(Kind::Create, "y");
    let first = hold_once(a, |actor| is_call(actor, "set", "s:"), LEASE * 95 / 100);
    let second = hold_once(a, |actor| is_call(actor, "set", "v:"), LEASE * 6 / 10);
    run.drive(10_000, &mut both(first, second));
    let f = run.finish();
    for name in ["x", "y"] {
        assert!(matches!(f.answer(name), Some(Ok(_)) | Some(Err(Error::TenantBusy { .. }))), "{:?}", f.answers);
    }
    check(&f);
}

/// half_lease_503 / half_lease_backward / trace_triple_breakers: a dead writer's slot is taken
/// over by B and C at once, and B pauses 0.6 lease inside its ballot. Under the lock, `serving`
/// went backwards and live writers were refused. Here the ballots decide one value; every live
/// writer succeeds.
#[test]
fn racing_takeovers_of_a_dead_slot_decide_once_and_every_live_writer_succeeds() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let mut run = Run::seeded(shape, &["seed"]);
        let dead = run.op(Kind::Create, "dead");
        let b = run.op(Kind::Create, "b");
        run.op(Kind::Create, "c");
        let mut hold_b = hold_once(b, |actor| is_call(actor, "set", "s:") && actor.calls > 8, LEASE * 6 / 10);
        run.drive(20_000, &mut |sim: &Sim, id, actor: &Actor| {
            if id == dead && actor.calls >= 3 {
                sim.kill(id); // after the view read and its slot: before its record
            }
            hold_b(sim, id, actor);
        });
        let f = run.finish();
        assert!(f.answer("dead").is_none());
        assert!(matches!(f.answer("b"), Some(Ok(_))), "{:?}", f.answers);
        assert!(matches!(f.answer("c"), Some(Ok(_))), "{:?}", f.answers);
        check(&f);
    }
}

/// chain: every writer that got its turn by a takeover is itself paused for a lease.
#[test]
fn chain_a_writer_that_took_over_and_then_paused_loses_nothing() {
    let mut run = Run::seeded(Shape::PRODUCTION, &[]);
    let writers: Vec<usize> = (0..4).map(|i| run.op(Kind::Create, &format!("w-{i}"))).collect();
    let mut held: BTreeSet<usize> = BTreeSet::new();
    run.drive(30_000, &mut |sim: &Sim, id, actor: &Actor| {
        // Each writer pauses a lease before its view once it has run a ballot (a takeover).
        if writers.contains(&id) && !held.contains(&id) && is_call(actor, "set", "v:") && actor.calls > 10 {
            held.insert(id);
            sim.hold(id, sim.now() + LEASE);
        } else if writers.contains(&id) && !held.contains(&id) && is_call(actor, "set", "s:") && actor.calls == 4 {
            held.insert(id);
            sim.hold(id, sim.now() + LEASE * 12 / 10);
        }
    });
    check(&run.finish());
}

/// trace_confirm_aba: a writer paused right after its intent while the log moves on by more than
/// the window; its slot is adopted and applied by others; it comes back and answers the outcome
/// the views record: success, and its secret is there.
#[test]
fn a_writer_paused_after_its_intent_is_applied_by_others_and_says_so() {
    let mut run = Run::seeded(Shape::PRODUCTION, &[]);
    let a = run.op(Kind::Create, "a");
    for i in 0..20 {
        run.op(Kind::Create, &format!("o-{i:02}"));
    }
    run.drive(200_000, &mut hold_once(a, |actor| is_call(actor, "get", "s:"), LEASE * 30));
    let f = run.finish();
    assert!(matches!(f.answer("a"), Some(Ok(_))), "{:?}", f.answers);
    check(&f);
}

/// A writer paused after taking its slot and before writing anything: its slot is voided by the
/// next writer; it comes back, writes its record and intent late, learns its slot was voided and
/// answers 503 with nothing stored (its late record is removed).
#[test]
fn a_writer_whose_empty_slot_was_voided_answers_503_and_leaves_nothing() {
    let mut run = Run::seeded(Shape::PRODUCTION, &[]);
    let a = run.op(Kind::Create, "a");
    run.op(Kind::Create, "b");
    run.drive(50_000, &mut hold_once(a, |actor| is_call(actor, "set", "r:"), LEASE * 3));
    let f = run.finish();
    assert!(matches!(f.answer("a"), Some(Err(Error::TenantBusy { .. }))), "{:?}", f.answers);
    check(&f);
}

/// lost_gone_mark: writers that gave up once cost a lease each; here dead slots in a row and
/// three live writers racing to recover them cost one lease of waiting in all, then a few store
/// calls per slot.
#[test]
fn dead_slots_in_a_row_cost_one_lease_whatever_their_number() {
    for dead_count in [1usize, 2, 10, 40] {
        let mut run = Run::seeded(Shape::PRODUCTION, &["seed"]);
        let dead: Vec<usize> = (0..dead_count).map(|i| run.op(Kind::Create, &format!("dead-{i}"))).collect();
        for i in 0..3 {
            run.op(Kind::Create, &format!("live-{i}"));
        }
        run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
            if dead.contains(&id) && is_call(actor, "set", "r:") {
                sim.kill(id);
            }
        });
        let took = run.sim.now();
        let f = run.finish();
        assert!(took < LEASE * 2, "{dead_count} dead slots: recovered after {took} ms (lease {LEASE})");
        for i in 0..3 {
            assert!(matches!(f.answer(&format!("live-{i}")), Some(Ok(_))), "{:?}", f.answers);
        }
        check(&f);
    }
}

/// Writers queued on one tenant pace their looks at the views by their place in the queue
/// (`Pace`), so the queue's reads grow with its length, not with its length times how long it
/// takes to drain: here 30 store calls a write. Before, each of 32 writers looked (two views a
/// look) every 1 to 25 ms until its turn, 106 calls a write; on moto's DynamoDB, which answers one
/// call at a time, those looks were 87 % of a 64-way race's calls, and the writers applying slots
/// queued behind them for 2 s a slot.
#[test]
fn writers_queued_on_one_tenant_look_at_the_views_by_their_place_in_the_queue() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["seed"]);
    for i in 0..32 {
        run.op(Kind::Create, &format!("w-{i}"));
    }
    run.drive(1_000_000, &mut |_, _, _| {});
    let calls: usize = run.sim.actors().iter().map(|actor| actor.calls).sum();
    let f = run.finish();
    for i in 0..32 {
        assert!(matches!(f.answer(&format!("w-{i}")), Some(Ok(_))), "{:?}", f.answers);
    }
    check(&f);
    // A quiet write makes about a dozen calls.
    assert!(calls / 32 <= 40, "{} store calls a write", calls / 32);
}

/// A queue that waited on a dead slot drains, once the slot is taken over, about as fast as one
/// that never waited: the stall is not taken for the log's pace (`Pace`). Measured here: 20 writers
/// took 197 ms without the dead slot and 1,326 ms with it (a lease of 1,000, then the drain); when
/// the pace was averaged over the stall, the writers slept an eighth of a lease between looks and
/// took 1,980 ms; polling every 1 to 25 ms took 1,361. The bound: a lease and three times the time
/// without.
#[test]
fn a_queue_behind_a_dead_slot_drains_at_the_log_s_pace_once_it_is_taken_over() {
    let drain = |dead: bool| {
        let mut run = Run::seeded(Shape::PRODUCTION, &["seed"]);
        let first = run.op(Kind::Create, "first");
        for i in 0..20 {
            run.op(Kind::Create, &format!("w-{i}"));
        }
        run.drive(1_000_000, &mut |sim: &Sim, id, actor: &Actor| {
            if dead && id == first && is_call(actor, "set", "r:") {
                sim.kill(id);
            }
        });
        let took = run.sim.now();
        let f = run.finish();
        for i in 0..20 {
            assert!(matches!(f.answer(&format!("w-{i}")), Some(Ok(_))), "{:?}", f.answers);
        }
        check(&f);
        took
    };
    let (plain, stalled) = (drain(false), drain(true));
    assert!(stalled < LEASE + 3 * plain, "{stalled} ms with a dead slot, {plain} ms without (lease {LEASE})");
}

/// Writers that arrive while `W` or more writes are in flight (the window holds no view) follow
/// the newest view up and check `P:seq` once a look, instead of scanning the window's absent
/// views at every look: 8 writers arriving behind 24 in flight make 84 store calls each while the
/// queue drains, where a scan at every look made 138.
#[test]
fn writers_arriving_at_a_full_window_follow_the_newest_view_instead_of_scanning_the_window() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["seed"]);
    for i in 0..24 {
        run.op(Kind::Create, &format!("w-{i}"));
    }
    let late: Vec<usize> = (0..8).map(|i| run.op(Kind::Create, &format!("late-{i}"))).collect();
    let mut held = Vec::new();
    run.drive(1_000_000, &mut |sim: &Sim, id, actor: &Actor| {
        if late.contains(&id) && actor.step == Step::Start && !held.contains(&id) {
            held.push(id);
            sim.hold(id, sim.now() + 5);
        }
    });
    let actors = run.sim.actors();
    let calls: usize = late.iter().map(|id| actors[*id].calls).sum();
    let f = run.finish();
    for i in 0..8 {
        assert!(matches!(f.answer(&format!("late-{i}")), Some(Ok(_))), "{:?}", f.answers);
    }
    check(&f);
    // Scanning the window at every look made 138 calls a write here.
    assert!(calls / 8 <= 90, "{} store calls a write", calls / 8);
}

/// A writer following the newest view while the window holds none, held between two looks while
/// the log goes more than a window past the view it follows (its successor written and deleted),
/// finds the newest view again at its next look, and refuses a taken name up front (no slot
/// taken), instead of watching the deleted view for a lease and then joining the queue unchecked.
#[test]
fn a_writer_left_more_than_a_window_behind_while_following_finds_the_newest_view_again() {
    let mut run = Run::seeded(SMALL, &["seed"]);
    for i in 0..5 {
        run.op(Kind::Create, &format!("w-{i}"));
    }
    let joiner = run.op(Kind::Create, "w-0");
    let (mut arrived, mut slept, mut held) = (false, false, false);
    run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
        if id != joiner {
            return;
        }
        if !arrived {
            // Arrives once the five are in flight (more than the window of two).
            arrived = true;
            sim.hold(id, sim.now() + 5);
        } else if actor.step == Step::Sleep {
            slept = true;
        } else if slept && !held && is_call(actor, "get", "v:") {
            // Between two looks of its watch: the five finish meanwhile.
            held = true;
            sim.hold(id, sim.now() + LEASE / 2);
        }
    });
    let actors = run.sim.actors();
    let f = run.finish();
    assert!(held, "the joiner never watched the log");
    let answer = &f.answers.last().unwrap().answer;
    assert!(matches!(answer, Some(Err(Error::SecretNameExists))), "{answer:?}");
    assert_eq!(actors[joiner].slot, None, "refused at a slot, not up front: {:?}", f.answers);
    check(&f);
}

/// clock_back: the wall clock steps back an hour while a writer waits for a dead slot; waiting
/// is measured on the monotonic clock, so the takeover comes one lease later as always.
#[test]
fn a_wall_clock_step_backwards_changes_no_wait() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["seed"]);
    let dead = run.op(Kind::Create, "dead");
    run.op(Kind::Create, "live");
    let mut stepped = false;
    run.drive(50_000, &mut |sim: &Sim, id, actor: &Actor| {
        if id == dead && is_call(actor, "set", "r:") {
            sim.kill(id);
        }
        if !stepped && sim.now() > LEASE / 2 {
            stepped = true;
            sim.step_wall_clock(-3_600_000);
        }
    });
    assert!(run.sim.now() < LEASE * 2, "took {} ms", run.sim.now());
    let f = run.finish();
    assert!(matches!(f.answer("live"), Some(Ok(_))), "{:?}", f.answers);
    check(&f);
}

// ---- The schedules of shared/log-schedules ----

/// S1: a taker that comes back after its slot was voided runs a ballot, adopts the void, and
/// applies its own voided slot. It used to answer 201 for a create that was not there; it answers
/// 503 `TenantBusy` (nothing stored), and the secret is absent.
#[test]
fn s1_a_taker_that_adopts_the_void_of_its_own_slot_answers_busy() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let mut run = Run::seeded(shape, &[]);
        let a = run.op(Kind::Create, "a");
        let b = run.op(Kind::Create, "b");
        // A is held 1.5 L before its record; B takes slot 1 over (void) and is held before v:1.
        let hold_a = hold_once(a, |actor| is_exact_call(actor, "set", "r:1"), LEASE * 3 / 2);
        let hold_b = hold_once(b, |actor| is_exact_call(actor, "set", "v:1"), LEASE * 2);
        run.drive(50_000, &mut both(hold_a, hold_b));
        let f = run.finish();
        assert_eq!(f.answers[0].slot, Some(1));
        assert!(matches!(f.answer("a"), Some(Err(Error::TenantBusy { .. }))), "{:?}", f.answers);
        assert!(matches!(f.answer("b"), Some(Ok(2))), "{:?}", f.answers);
        check(&f);
    }
}

/// S2a: the applier of slot `2 + W` is held between its deletion of an old view and its own
/// view, while a taker held for 30 leases before its record comes back. The old order (delete
/// `v(k-W)`, then set `v(k)`) let the fence miss the applied slot 2: the taker "decided" its
/// modify on a cleared slot and wrote a false view, losing an acknowledged modify and a record.
/// Now no view is deleted before the view a window later exists.
#[test]
fn s2a_a_taker_back_while_an_applier_sits_between_two_views_sees_its_slot_applied() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let w = shape.window;
        let mut run = Run::seeded(shape, &["y"]);
        let a = run.op(Kind::Modify, "y");
        for i in 0..w {
            run.op(Kind::Create, &format!("c-{i:02}"));
        }
        let hold_a = hold_once(a, |actor| is_call(actor, "set", "r:"), LEASE * 30);
        // Whoever applies slot 2 + W is held for 40 leases right before its view (after the
        // deletions that come before it).
        let hold_applier = hold_whoever("set", format!("v:{}", 2 + w), LEASE * 40);
        run.drive(400_000, &mut both(hold_a, hold_applier));
        let f = run.finish();
        assert!(matches!(f.answer("y"), Some(Err(Error::TenantBusy { .. }))), "{:?}", f.answers);
        check(&f);
    }
}

/// S2b: a writer held inside its wait for the slot before its own, while others adopt its intent
/// and move the log a window on, and the applier a window later is held before its view: the
/// late writer must not take an applied slot over again and void it.
#[test]
fn s2b_a_late_takeover_never_voids_an_applied_slot() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let w = shape.window;
        let mut run = Run::seeded(shape, &[]);
        let p = run.op(Kind::Create, "p");
        let late = run.op(Kind::Create, "w");
        // Slots 3 to 1 + W: the applier of the last is the last writer, so nobody takes it over.
        for i in 0..w - 1 {
            run.op(Kind::Create, &format!("o-{i:02}"));
        }
        // P goes first through slot 1 (held a little so that W reads v(0) and takes slot 2).
        let hold_p = hold_once(p, |actor| is_call(actor, "set", "r:"), 5);
        let hold_w = hold_once(late, |actor| is_exact_call(actor, "get", "v:1") && actor.slot.is_some(), LEASE * 10);
        let hold_applier = hold_whoever("set", format!("v:{}", 1 + w), LEASE * 20);
        run.drive(400_000, &mut both(hold_p, both(hold_w, hold_applier)));
        let f = run.finish();
        assert!(matches!(f.answer("p"), Some(Ok(1))), "{:?}", f.answers);
        check(&f);
    }
}

/// S3: a taker held at its ballot counter read while more slots pass than a view remembers; its
/// intent was adopted and applied. It used to meet a forgotten outcome, answer 503 and delete its
/// applied record (a listed secret whose export answers 500). The view names its record, so it
/// answers 201, and the secret exports.
#[test]
fn s3_a_taker_back_after_the_outcome_memory_answers_from_its_named_record() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let mut run = Run::seeded(shape, &["z"]);
        let a = run.op(Kind::Create, "a");
        for _ in 0..shape.outcomes + 2 {
            run.op(Kind::Modify, "z");
        }
        run.drive(2_000_000, &mut hold_once(a, |actor| is_call(actor, "get", "s:2:n"), LEASE * 100));
        let f = run.finish();
        assert_eq!(f.answers[0].slot, Some(2));
        assert!(matches!(f.answer("a"), Some(Ok(2))), "{:?}", f.answers);
        check(&f);
    }
}

/// L1: a taker held before its record while its slot is voided and cleaned, that writes the
/// record late and dies before its intent. Nothing names record 1 again: the periodic sweep
/// collects it (the regular clean-up cannot know of it).
#[test]
fn l1_a_record_written_late_by_a_writer_that_dies_is_swept() {
    let mut run = Run::seeded(SMALL, &[]);
    let a = run.op(Kind::Create, "a");
    run.op(Kind::Create, "b");
    run.drive(50_000, &mut |sim: &Sim, id, actor: &Actor| {
        if id == a && actor.calls <= 3 && is_exact_call(actor, "set", "r:1") {
            sim.hold(id, sim.now() + LEASE * 3);
        } else if id == a && is_call(actor, "set", "s:1:0") {
            sim.kill(id);
        }
    });
    let mut f = run.finish();
    assert!(f.answer("a").is_none());
    assert!(f.sim.store.dump().keys().any(|k| k.ends_with(":r:1")), "the late record was written");
    // Quiet writes up to the next multiple of the sweep period collect it without being asked.
    for i in 0..SMALL.sweep_every {
        f.create_after(&format!("q-{i}"));
    }
    assert!(!f.sim.store.dump().keys().any(|k| k.ends_with(":r:1")), "swept");
    check(&f);
}

/// L2: two appliers in a row die right after their views; each left its garbage (the replaced
/// records). The next writer deletes what the view before its own left, before writing its own:
/// one quiet write leaves no garbage, with no sweep.
#[test]
fn l2_the_garbage_of_appliers_that_die_in_a_row_is_collected_by_the_next_write() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["x", "y"]);
    let a = run.op(Kind::Modify, "x");
    let b = run.op(Kind::Modify, "y");
    run.drive(50_000, &mut |sim: &Sim, id, actor: &Actor| {
        // Right after `set v:<k>`: the next call is the first of the clean-up.
        if (id == a || id == b)
            && actor.calls > 6
            && matches!(&actor.step, Step::Call("delete", k) if k.starts_with("r:"))
        {
            sim.kill(id);
        }
    });
    let mut f = run.finish();
    assert!(f.answers.iter().all(|a| a.answer.is_none()), "both died after their views: {:?}", f.answers);
    f.create_after("quiet");
    let env = Env { store: &f.sim.store, clock: &crate::clock::SystemClock, policy: f.policy };
    let view = read(&env, &keys()).unwrap().view;
    let named: BTreeSet<u64> = view.records().unwrap().into_iter().collect();
    let stored: BTreeSet<u64> = tenant_rows(&f.sim.store)
        .into_iter()
        .filter_map(|k| if let TenantKey::Record(r) = k { Some(r) } else { None })
        .collect();
    assert_eq!(stored, named, "after one quiet write, without a sweep");
    check(&f);
}

/// L3: a takeover held inside its ballot while the slot is applied and cleared writes its
/// accepted value late and dies: swept. And a late view whose writer dies before it can drop it.
#[test]
fn l3_registers_and_views_written_late_by_writers_that_die_are_swept() {
    let mut run = Run::seeded(SMALL, &["seed"]);
    let dead = run.op(Kind::Create, "dead");
    let b = run.op(Kind::Create, "b");
    run.op(Kind::Create, "c");
    let mut b_held = false;
    run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
        if id == dead && is_call(actor, "set", "s:") {
            sim.kill(id); // intent never written: its slot will be voided
        }
        if id == b && !b_held && matches!(&actor.step, Step::Call("set", k) if k.ends_with(":a")) {
            b_held = true;
            sim.hold(id, sim.now() + LEASE * 5);
        } else if id == b
            && b_held
            && actor.ready_at <= sim.now()
            && matches!(&actor.step, Step::Call(..))
            && sim.now() > LEASE * 5
        {
            sim.kill(id); // right after its late accepted value
        }
    });
    let f = run.finish();
    check(&f);
}

/// A failed store call whose effect lands later, at each write of a create, a lease after the
/// failure or never: the writer's retry or its answer, and the invariants, whatever lands when.
#[test]
fn a_failed_call_that_takes_effect_later_breaks_nothing() {
    for shape in [Shape::PRODUCTION, SMALL] {
        for lands in [Some(0), Some(LEASE * 2), None] {
            for at in 1..=14usize {
                let mut run = Run::seeded(shape, &["x"]);
                let a = run.op(Kind::Modify, "x");
                run.op(Kind::Create, "b");
                run.op(Kind::Modify, "x");
                let mut done = false;
                run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
                    if id == a && !done && actor.calls + 1 == at && matches!(actor.step, Step::Call(..)) {
                        done = true;
                        sim.fail_next(id, lands.map(|d| sim.now() + d));
                    }
                });
                check(&run.finish());
            }
        }
    }
}

// ---- Every store call: a pause of 2.5 leases there, and a death there ----

fn every_position(shape: Shape, kind: Kind, kill: bool) -> usize {
    for at in 1.. {
        let mut run = Run::seeded(shape, &["x", "y"]);
        let target = if kind == Kind::Create { "new" } else { "x" };
        let a = run.op(kind, target);
        run.op(Kind::Create, "b");
        run.op(Kind::Modify, "y");
        let mut reached = false;
        run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
            if id == a && !reached && actor.calls + 1 == at && matches!(actor.step, Step::Call(..)) {
                reached = true;
                if kill {
                    sim.kill(id);
                } else {
                    sim.hold(id, sim.now() + LEASE * 5 / 2);
                }
            }
        });
        let checked = check(&run.finish());
        if kill {
            // Deaths alone leave nothing that the next write does not collect.
            assert!(checked.keys <= checked.bound && checked.swept == 0, "{kind:?} killed at call {at}: {checked:?}");
        }
        if !reached {
            return at - 1; // the operation made fewer calls than `at`: every position was covered
        }
    }
    unreachable!()
}

#[test]
fn a_pause_of_two_and_a_half_leases_at_any_store_call_loses_nothing() {
    for shape in [Shape::PRODUCTION, SMALL] {
        for kind in [Kind::Create, Kind::Modify, Kind::Delete] {
            let positions = every_position(shape, kind, false);
            assert!(positions >= 8, "{kind:?}: only {positions} store calls");
        }
    }
}

#[test]
fn a_death_at_any_store_call_loses_nothing_and_the_next_write_cleans_up() {
    for shape in [Shape::PRODUCTION, SMALL] {
        for kind in [Kind::Create, Kind::Modify, Kind::Delete] {
            let positions = every_position(shape, kind, true);
            assert!(positions >= 8, "{kind:?}: only {positions} store calls");
        }
    }
}

// ---- Two log formats side by side ----

/// A rolling upgrade: nodes of a release that knows only format 1 and nodes of one that writes
/// format 2 write to one tenant at once, with pauses. Once a format-2 view exists, no old node
/// writes a view after it (it answers 503 `LogFormatUnknown`, or `WriteOutcomeUnknown` if it had
/// already proposed), and every invariant holds. Format 2 here differs from 1 only in the
/// format it stamps, which is all the log's rule needs: views of one slot are the same bytes
/// whoever writes them, because a node writes only formats it knows.
#[test]
fn two_releases_side_by_side_never_write_a_view_the_other_cannot_reproduce() {
    let old = policy_of(SMALL);
    let new = policy_of(Shape { known_format: 2, write_format: 2, ..SMALL });
    for seed in 0..24u64 {
        let mut run = Run::seeded(SMALL, &["x", "y"]);
        let mut olds = BTreeSet::new();
        for i in 0..6u64 {
            let kind = [Kind::Create, Kind::Modify, Kind::Delete][((seed + i) % 3) as usize];
            let name = ["x", "y", "n"][((seed / 3 + i) % 3) as usize];
            let policy = if (seed >> i) & 1 == 1 { new } else { old };
            let id = run.op_with(kind, name, policy);
            if policy.shape.known_format == 1 {
                olds.insert(id);
            }
        }
        let pause_at = 2 + (seed % 9) as usize;
        let who = (seed % 6) as usize;
        run.drive(200_000, &mut hold_once(who, move |actor| actor.calls + 1 == pause_at, LEASE * 2));
        let mut f = run.finish();
        // Format 2 was reached if a new node wrote: no old node wrote any view after it.
        let views = f.sim.views_written();
        let first_v2 = views
            .iter()
            .filter(|(_, _, bytes)| View::decode(bytes.clone()).unwrap().format() == 2)
            .map(|(_, slot, _)| *slot)
            .min();
        for (actor, slot, bytes) in &views {
            let format = View::decode(bytes.clone()).unwrap().format();
            if olds.contains(actor) {
                assert_eq!(format, 1, "an old node wrote a view of format {format}");
                assert!(first_v2.is_none_or(|v2| *slot < v2), "an old node wrote v({slot}) after v({first_v2:?})");
            }
        }
        for (i, a) in f.answers.iter().enumerate() {
            if olds.contains(&i) && first_v2.is_some() {
                assert!(
                    !matches!(a.answer, Some(Err(Error::Internal(_)))),
                    "an old node answered 500 instead of 503: {:?}",
                    a
                );
            }
        }
        f.policy = new;
        check(&f);
    }
}

// ---- Schedules from the review of the log (cold reading against the store model) ----

/// R1. An upgrade from the release before log formats (commit 885604a), done as
/// `docs/deployment.md` says (every old node stopped before the new ones start): an old node
/// stopped mid-write leaves its slot in flight, with its ballot-0 block in the old encoding
/// `{"b":0,"accepted":[0,proposal]}` at `P:s:<k>:0` (the same key as the new intent). The next
/// write must recover the slot (adopt or void it); it used to wait a lease, take the slot over,
/// fail to decode the old block and answer 500, on every write, forever.
#[test]
fn review_r1_an_old_release_slot_left_in_flight_does_not_wedge_the_tenant() {
    let mut run = Run::seeded(Shape::PRODUCTION, &["x"]);
    {
        let (store, k) = (&run.sim.store, keys());
        // The old node: `increment P:seq` (= 2), `set P:r:2`, `set P:s:2:0` (old block), stopped.
        assert_eq!(store.increment(&k.seq(), 1).unwrap(), 2);
        store.set(&k.record(2), &secrets::seal(&ring(), &tenant(), "old", b"{}").unwrap()).unwrap();
        let op = Op::Create {
            name: "old".into(),
            registries: vec!["ghcr.io".into()],
            actor: op::Actor { operator: false, admin: true },
            now: 1,
            verification: None,
            kind: crate::provider::Kind::Static,
        };
        let block = serde_json::json!({"b": 0, "accepted": [0, slot::Proposal::Intent(op)]});
        store.set(&k.intent(2), &serde_json::to_vec(&block).unwrap()).unwrap();
    }
    run.op(Kind::Create, "b");
    run.drive(50_000, &mut |_: &Sim, _, _: &Actor| {});
    let f = run.finish();
    assert!(
        !matches!(f.answer("b"), Some(Err(Error::Internal(_)))),
        "a write after an upgrade answers 500: {:?}",
        f.answers
    );
}

/// R2. Reads under contention are not 500s (issue 24, item 5): an export of `x`
/// that finds its record deleted under it (a modify of `x` applied and collected the old record
/// between the export's view read and its record read) three times in a row answers 500
/// (`Internal::Platform`, "secret changed under three consecutive reads") instead of 503 with
/// `Retry-After`. The same loop is in `resolve`, `endpoints`, `verify::run` and `workload`.
#[test]
fn review_r2_an_export_racing_three_modifies_answers_503_not_500() {
    let run = Run::seeded(Shape::PRODUCTION, &["x"]);
    let (exporter, exported) = run.sim.spawn(|store: &SimStore, clock: &SimClock| {
        let env = Env { store, clock, policy: policy() };
        let endpoints = crate::mint::ProviderEndpoints::default();
        let providers = crate::mint::Providers { sender: &Ecr, clock, endpoints: &endpoints };
        crate::export::export(&env, &admin(), &ring(), "x", &crate::mint::Source::Providers(&providers)).map(|_| ())
    });
    let mut last = 0;
    let mut modifies = 0;
    run.drive(10_000, &mut |sim: &Sim, id, actor: &Actor| {
        // Right before each of the exporter's record reads, a modify of `x` runs to its end.
        if id == exporter && is_call(actor, "get", "r:") && actor.calls != last {
            last = actor.calls;
            modifies += 1;
            let clock = FastClock::at(sim.now());
            let env = Env { store: &sim.store, clock: &clock, policy: policy() };
            secrets::modify(&env, &admin(), &ring(), "x", body("x", &format!("pw-{modifies}")), None).unwrap();
        }
    });
    let sim = run.finish().sim;
    let answer = exported.join().unwrap().expect("the exporter ran to its end");
    assert!(modifies >= 3);
    assert!(
        !matches!(answer, Err(Error::Internal(_))),
        "an export under contention answered 500: {answer:?} (want 503 Retry-After)"
    );
    drop(sim);
}

/// R3. Reads wedge behind `W` dead writers. `W` writes die right after `increment P:seq` (a node
/// killed in a storm with `W` of its writes in flight on one tenant): no view is in the window
/// any more, and `read` (list, get, export, every pull-time lookup) waits `max_wait` and answers
/// 503 `TenantBusy`, again and again, until some *write* comes and recovers the slots: a
/// read-only tenant (pulls) never read again. Store calls: D1 `get seq`, `get v:1`,
/// `increment seq` (= 2), killed; D2 the same (= 3), killed; R `get seq` (= 3), `get v:3`,
/// `get v:2` (absent), … for three leases, then 503. The last view `v(1)` is provably current:
/// `applied(2)` (walking `v:2`, `v:4`, … up to `seq`) finds no view after it, so no write after
/// slot 1 was acknowledged: when the window holds no view, a reader takes the highest view `v(A)`
/// below it and answers it if `applied(A + 1)` is false (`log::last_applied`).
#[test]
fn review_r3_reads_are_not_wedged_forever_by_w_dead_writers() {
    for shape in [Shape::PRODUCTION, SMALL] {
        let mut run = Run::seeded(shape, &["x"]);
        let dead: Vec<usize> = (0..shape.window).map(|i| run.op(Kind::Create, &format!("d-{i}"))).collect();
        let (reader, read_h) = run.sim.spawn(move |store: &SimStore, clock: &SimClock| {
            let env = Env { store, clock, policy: policy_of(shape) };
            read(&env, &keys()).map(|current| current.view.slot())
        });
        let mut held = false;
        run.drive(50_000, &mut |sim: &Sim, id, actor: &Actor| {
            if dead.contains(&id) && actor.slot.is_some() {
                sim.kill(id); // right after its slot: before its record
            }
            if id == reader && !held {
                held = true;
                sim.hold(id, sim.now() + 200); // after the writers took their slots
            }
        });
        let f = run.finish();
        let answer = read_h.join().unwrap().expect("the reader ran to its end");
        assert_eq!(answer, Ok(1), "a read of a tenant whose last {} writers died", shape.window);
        check(&f);
    }
}

// ---- Review explorer: random preemptions and readers, with read linearizability ----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

type Timed<T> = JoinHandle<Option<(u64, u64, T)>>;
/// A writer of the schedule: its actor, operation, name, and (start, end, answer).
type TimedWriter = (usize, Kind, String, Timed<Result<u64, Error>>);
/// A reader of the schedule: its actor, when it starts, and (start, end, the view's slot and bytes).
type TimedReader = (usize, u64, Timed<Result<(u64, Vec<u8>), Error>>);

/// One schedule: writers and readers, random faults, random preemptions. Checks `check`, that
/// every `v(k)` ever written has one content, and that reads are linearizable (a read returns a
/// view written for its slot, includes every write acknowledged before it began, and a read that
/// begins after another ended never returns an older view).
fn review_schedule(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let shape = Shape {
        window: 2 + rng.below(3),
        outcomes: 1 + rng.below(3),
        sweep_every: [1, 2, 3, 4, 1024][rng.below(5) as usize],
        ..SMALL
    };
    let run = Run::seeded(shape, &["n0", "n1"]);
    let policy = run.policy;
    let heavy = std::env::var("REVIEW_HEAVY").is_ok();
    let n_writers = 3 + rng.below(if heavy { 28 } else { 10 }) as usize;
    let mut writers: Vec<TimedWriter> = Vec::new();
    for _ in 0..n_writers {
        let kind = [Kind::Create, Kind::Modify, Kind::Delete][rng.below(3) as usize];
        let name = format!("n{}", rng.below(4));
        let n = name.clone();
        let (id, handle) = run.sim.spawn(move |store: &SimStore, clock: &SimClock| {
            let store = Retrying { inner: store, deadline: None };
            let env = Env { store: &store, clock, policy };
            let t0 = clock.monotonic_ms();
            let answer = match kind {
                Kind::Create => secrets::create(&env, &admin(), &ring(), body(&n, "pw")).map(|w| w.version),
                Kind::Modify => secrets::modify(&env, &admin(), &ring(), &n, body(&n, "pw2"), None).map(|w| w.version),
                Kind::Delete => secrets::delete(&env, &admin(), &n, None).map(|w| w.version),
            };
            (t0, clock.monotonic_ms(), answer)
        });
        writers.push((id, kind, name, handle));
    }
    let mut readers: Vec<TimedReader> = Vec::new();
    for _ in 0..2 + rng.below(if heavy { 8 } else { 4 }) {
        let (id, handle) = run.sim.spawn(move |store: &SimStore, clock: &SimClock| {
            let store = Retrying { inner: store, deadline: None };
            let env = Env { store: &store, clock, policy };
            let t0 = clock.monotonic_ms();
            let answer = read(&env, &keys()).map(|c| (c.view.slot(), c.view.bytes().to_vec()));
            (t0, clock.monotonic_ms(), answer)
        });
        readers.push((id, rng.below(LEASE * 4), handle));
    }
    // Faults: per writer, up to two of pause / death / failed call, at random call numbers.
    let mut plan: BTreeMap<usize, Vec<(usize, u64)>> = BTreeMap::new();
    for (id, ..) in &writers {
        for _ in 0..rng.below(3) {
            plan.entry(*id).or_default().push((1 + rng.below(25) as usize, rng.next()));
        }
        if let Some(p) = plan.get_mut(id) {
            p.sort();
        }
    }
    let reader_start: BTreeMap<usize, u64> = readers.iter().map(|(id, at, _)| (*id, *at)).collect();
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let mut fault = |sim: &Sim, id: usize, actor: &Actor| {
        if let Some(at) = reader_start.get(&id) {
            if started.insert(id) {
                sim.hold(id, *at);
            }
            return;
        }
        if !matches!(actor.step, Step::Call(..)) {
            return;
        }
        let Some(p) = plan.get_mut(&id) else { return };
        let Some(&(at, what)) = p.first() else { return };
        if actor.calls + 1 < at {
            return;
        }
        p.remove(0);
        match what % 10 {
            0..=4 => sim.hold(id, sim.now() + (what >> 8) % (LEASE * 6)),
            5 => sim.hold(id, sim.now() + LEASE * 40),
            6 | 7 => sim.kill(id),
            8 => sim.fail_next(id, Some(sim.now() + (what >> 8) % (LEASE * 3))),
            _ => sim.fail_next(id, None),
        }
    };
    let mut prng = Rng(seed ^ 0xDEAD_BEEF | 1);
    let mut choose = |_turn: usize, waiting: &[usize]| {
        if prng.below(if heavy { 3 } else { 6 }) == 0 {
            Some(waiting[prng.below(waiting.len() as u64) as usize])
        } else {
            None
        }
    };
    run.drive_choosing(400_000, &mut fault, &mut choose);
    run.sim.release();
    let actors = run.sim.actors();
    let mut answers = Vec::new();
    let mut acked: Vec<(u64, u64)> = Vec::new(); // (ack time, slot)
    for (id, kind, name, handle) in writers {
        let got = handle.join().unwrap();
        if let Some((_, t1, Ok(version))) = &got {
            acked.push((*t1, *version));
        }
        answers.push(Answered { kind, name, slot: actors[id].slot, answer: got.map(|(_, _, a)| a) });
    }
    let views = run.sim.views_written();
    let mut by_slot: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (actor, slot, bytes) in &views {
        let first = by_slot.entry(*slot).or_insert_with(|| bytes.clone());
        assert!(first == bytes, "seed {seed}: two contents of v({slot}) (the second by actor {actor}): {answers:#?}");
    }
    let mut reads: Vec<(u64, u64, u64)> = Vec::new();
    for (_, _, handle) in readers {
        let Some((t0, t1, Ok((slot, bytes)))) = handle.join().unwrap() else { continue };
        // Views of the seeded slots (and ones only a landed failed call wrote) are not recorded.
        if let Some(written) = by_slot.get(&slot) {
            assert!(written == &bytes, "seed {seed}: a read returned another content of v({slot})");
        }
        for (ack, s) in &acked {
            assert!(
                !(*ack < t0 && *s > slot),
                "seed {seed}: a read begun at {t0} returned v({slot}), but slot {s} was acknowledged at {ack}"
            );
        }
        reads.push((t0, t1, slot));
    }
    for a in &reads {
        for b in &reads {
            assert!(!(a.1 < b.0 && b.2 < a.2), "seed {seed}: reads went backwards: {a:?} then {b:?}");
        }
    }
    let f = Finished { sim: run.sim.clone(), answers, policy, seeded: run.seeded.clone(), after: Vec::new() };
    check(&f);
}

/// `REVIEW_SCHEDULES=N REVIEW_SEED=S`: N schedules from seed S (default 200 from 1).
#[test]
fn review_random_schedules_with_preemptions_and_readers() {
    let n: u64 = std::env::var("REVIEW_SCHEDULES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let from: u64 = std::env::var("REVIEW_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    for seed in from..from + n {
        review_schedule(seed);
    }
    eprintln!("review explorer: {n} schedules from seed {from}");
}

// ---- A reader that minted, against the writes that make its record garbage ----

/// AWS as a stub: every GetAuthorizationToken answers a 12-hour token.
struct Ecr;

impl crate::net::Sender for Ecr {
    fn send(&self, _: &crate::net::Outgoing) -> Result<crate::net::Fetched, crate::net::FetchError> {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:minted");
        let body = serde_json::json!({"authorizationData": [{"authorizationToken": token,
            "expiresAt": 4_102_444_800.0, "proxyEndpoint": "https://123456789012.dkr.ecr.eu-central-1.amazonaws.com"}]});
        Ok(crate::net::Fetched { status: 200, headers: vec![], body: body.to_string().into_bytes() })
    }
}

fn ecr_body(name: &str) -> SecretRequest {
    let body = serde_json::json!({"name": name, "aws": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "secretAccessKey": "s", "region": "eu-central-1"}});
    SecretRequest::from_json(body, true).unwrap()
}

/// No `P:mint:<r>` is left for a record `r` the current view does not name as a minting secret's.
fn no_orphan_minted_credential(sim: &Sim) {
    let store = &sim.store;
    let env = Env { store, clock: &crate::clock::SystemClock, policy: policy() };
    let view = read(&env, &keys()).unwrap().view;
    let minting: BTreeSet<u64> =
        view.entries().unwrap().into_iter().filter(|e| !e.kind.is_static()).map(|e| e.record).collect();
    for key in tenant_rows(store) {
        if let TenantKey::Mint(record) = key {
            assert!(minting.contains(&record), "P:mint:{record} survives its record (view names {minting:?})");
        }
    }
}

/// An export of the minting secret `ecr` (mints and caches) and a write that replaces or deletes
/// it. The minter is paused for one lease at its store call number `minter_at`, the writer for 2.5
/// leases at its number `writer_at` (either may be left alone): with both, the minter can read the
/// old view, then cache while the writer is paused inside its clean-up. Says whether each pause
/// point was reached.
fn minter_against(write: Kind, minter_at: Option<usize>, writer_at: Option<usize>) -> (bool, bool) {
    let run = Run::seeded(Shape::PRODUCTION, &[]);
    let env = Env { store: &run.sim.store, clock: &crate::clock::SystemClock, policy: policy() };
    secrets::create(&env, &admin(), &ring(), ecr_body("ecr")).unwrap();
    let (minter, minted) = run.sim.spawn(|store: &SimStore, clock: &SimClock| {
        let env = Env { store, clock, policy: policy() };
        let endpoints = crate::mint::ProviderEndpoints::default();
        let providers = crate::mint::Providers { sender: &Ecr, clock, endpoints: &endpoints };
        let source = crate::mint::Source::Providers(&providers);
        crate::export::export(&env, &admin(), &ring(), "ecr", &source).map(|_| ())
    });
    let (writer, written) = run.sim.spawn(move |store: &SimStore, clock: &SimClock| {
        let env = Env { store, clock, policy: policy() };
        match write {
            Kind::Modify => secrets::modify(&env, &admin(), &ring(), "ecr", ecr_body("ecr"), None).map(|w| w.version),
            _ => secrets::delete(&env, &admin(), "ecr", None).map(|w| w.version),
        }
    });
    let mut reached = [false, false];
    run.drive(100_000, &mut |sim: &Sim, id, actor: &Actor| {
        let pauses = [(minter, minter_at, LEASE), (writer, writer_at, LEASE * 5 / 2)];
        for (n, (who, at, pause)) in pauses.into_iter().enumerate() {
            if id == who && !reached[n] && Some(actor.calls + 1) == at && matches!(actor.step, Step::Call(..)) {
                reached[n] = true;
                sim.hold(id, sim.now() + pause);
            }
        }
    });
    let sim = run.finish().sim;
    let exported = minted.join().unwrap().expect("the minter ran to its end");
    assert!(matches!(exported, Ok(()) | Err(Error::SecretNotFound)), "{exported:?}");
    assert!(matches!(written.join().unwrap(), Some(Ok(_))));
    no_orphan_minted_credential(&sim);
    (reached[0], reached[1])
}

#[test]
fn a_minter_paused_at_any_store_call_leaves_no_cached_credential_of_a_deleted_record() {
    for write in [Kind::Modify, Kind::Delete] {
        let mut minter_calls = 1;
        while minter_against(write, Some(minter_calls), None).0 {
            minter_calls += 1;
        }
        let mut writer_calls = 1;
        while minter_against(write, None, Some(writer_calls)).1 {
            writer_calls += 1;
        }
        assert!(minter_calls > 5 && writer_calls > 5, "{write:?}: only {minter_calls} and {writer_calls} store calls");
        // Both paused, at every pair of store calls.
        for m in 1..minter_calls {
            for w in 1..writer_calls {
                minter_against(write, Some(m), Some(w));
            }
        }
    }
}

/// The outcome classes a fault plan produced, for the explorers' reports.
pub(super) fn tally(answers: &[Answered], into: &mut BTreeMap<&'static str, usize>) {
    for a in answers {
        let class = match &a.answer {
            None => "died",
            Some(Ok(_)) => "2xx",
            Some(Err(Error::TenantBusy { .. })) => "503 TenantBusy",
            Some(Err(Error::WriteOutcomeUnknown)) => "503 WriteOutcomeUnknown",
            Some(Err(Error::StoreUnavailable(_))) => "503 StoreUnavailable",
            Some(Err(Error::LogFormatUnknown)) => "503 LogFormatUnknown",
            Some(Err(_)) => "refused (4xx)",
        };
        *into.entry(class).or_default() += 1;
    }
}

/// On DynamoDB, two writers that take the same stalled slot over at about the same moment contend
/// for its ballot counter (Spin reads it, then writes conditionally): here the first is paused
/// between its read and its write while the second takes the slot over, so its write is refused
/// (nothing written). It watches the other's takeover as it would a higher ballot: the stalled slot
/// is voided once, and both writes apply. (The refusal was a store failure once the request's
/// wait to join the log had passed, and the writer answered 503 `WriteOutcomeUnknown` for a write
/// that then applied.)
#[test]
fn two_takeovers_of_one_stalled_slot_on_dynamodb_contend_for_its_ballot_and_both_writes_apply() {
    // A window of 4: both writers take their slots behind the stalled one at once, without
    // waiting for the log to move first (a window of 2 holds the second back until it does).
    let mut run = Run::seeded(Shape { window: 4, ..SMALL }, &[]);
    run.sim.dynamo();
    run.sim.store.increment(&keys().seq(), 1).unwrap(); // slot 1's taker died at once
    run.op(Kind::Create, "b");
    let c = run.op(Kind::Create, "c");
    let write = Step::Call("increment", "s:1:n".into());
    let mut paused = false;
    run.drive(100_000, &mut |sim: &Sim, id: usize, actor: &Actor| {
        if id == c && actor.step == Step::Start {
            sim.hold(id, 10); // c takes its slot after b's, without contending for it
        }
        if actor.step == write && !paused {
            paused = true;
            sim.hold(id, sim.now() + 5);
        }
    });
    assert_eq!(run.sim.contended(), (0, 1), "the paused writer lost the ballot counter");
    let finished = run.finish();
    for a in &finished.answers {
        assert!(matches!(a.answer, Some(Ok(_))), "{:?}", finished.answers);
    }
    check(&finished);
}
