//! Schedule tests of the write log: the schedules of `shared/lock-schedules` (which broke the
//! tenant lock) replayed as the same situations in this protocol's store calls, a pause of every
//! writer at every store call and a death there, and a seeded random explorer. After each
//! schedule the invariants of issue 17 are checked (`check`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::sim::{Sim, SimClock, SimStore, Status, Step};
use super::*;
use crate::crypto::Keyring;
use crate::dockerconfig::SecretRequest;
use crate::identity::{Principal, Scope, Scopes};
use crate::name::TenantId;
use crate::secrets;

const LEASE: u64 = 1_000;

fn policy() -> WritePolicy {
    WritePolicy::with_lease(Duration::from_millis(LEASE))
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn keys() -> TenantKeys {
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Create,
    Modify,
    Delete,
}

/// An operation, its secret's name, and what it answered (`None`: it died); a success carries
/// its slot.
type Answered = (Kind, String, Option<Result<u64, Error>>);

/// One operation of a schedule, running.
struct Planned {
    kind: Kind,
    name: String,
    handle: JoinHandle<Option<Result<u64, Error>>>,
}

struct Run {
    sim: Arc<Sim>,
    ops: Vec<Planned>,
}

impl Run {
    fn new() -> Run {
        Run { sim: Sim::new(), ops: Vec::new() }
    }

    /// Writes through the real operations (`secrets::create` …) with the simulated store and clock.
    fn op(&mut self, kind: Kind, name: &str) -> usize {
        let (k, n) = (kind.clone(), name.to_owned());
        let (id, handle) = self.sim.spawn(move |store: &SimStore, clock: &SimClock| {
            let env = Env { store, clock, policy: policy() };
            match k {
                Kind::Create => secrets::create(&env, &admin(), &ring(), body(&n, "pw")).map(|w| w.version),
                Kind::Modify => secrets::modify(&env, &admin(), &ring(), &n, body(&n, "pw2"), None).map(|w| w.version),
                Kind::Delete => secrets::delete(&env, &admin(), &n, None).map(|w| w.version),
            }
        });
        self.ops.push(Planned { kind, name: name.to_owned(), handle });
        id
    }

    /// Runs every waiting actor, the earliest ready first, applying `fault` before each turn
    /// (it may hold or kill the actor about to run). Bounded: a schedule that does not finish in
    /// `limit` turns is a liveness failure.
    fn drive(&self, limit: usize, mut fault: impl FnMut(&Sim, usize, &super::sim::Actor)) {
        for _ in 0..limit {
            let actors = self.sim.actors();
            let next = actors
                .iter()
                .enumerate()
                .filter(|(_, a)| a.status == Status::Waiting)
                .min_by_key(|(i, a)| (a.ready_at, *i))
                .map(|(i, a)| (i, a.clone()));
            let Some((id, actor)) = next else { return };
            fault(&self.sim, id, &actor);
            let after = self.sim.actors();
            if after[id].status != Status::Waiting || after[id].ready_at != actor.ready_at {
                continue; // held or killed: choose again
            }
            self.sim.run(id);
        }
        panic!("the schedule did not finish within {limit} turns: {:?}", self.sim.actors());
    }

    /// Joins every actor: what each operation answered (`None`: it died).
    fn finish(self) -> (Arc<Sim>, Vec<Answered>) {
        self.sim.release();
        let outcomes = self.ops.into_iter().map(|p| (p.kind, p.name, p.handle.join().unwrap())).collect();
        (self.sim, outcomes)
    }
}

/// The invariants of issue 17, once nothing is in flight and one more write has been made:
/// - every create, modify and delete answered with success took effect and was not undone by
///   anything that did not itself succeed (or die, or end with an unknown outcome);
/// - a write refused with 503 `TenantBusy`, or refused at its slot, took no effect;
/// - the view lists exactly the names this allows, each with an existing record that opens;
/// - no record, slot register or view beyond the window is left over; used = listed ≤ limit.
fn check(sim: &Sim, outcomes: &[Answered], existing: &[&str]) {
    let store = &sim.store;
    // One more write, through the plain store, as the next request would make.
    let env = Env { store, clock: &crate::clock::SystemClock, policy: policy() };
    secrets::create(&env, &admin(), &ring(), body("zz-after", "pw")).expect("the next write goes through");
    let view = read(&env, &keys()).unwrap().view;
    let listed: BTreeSet<String> = view.names().map(str::to_owned).collect();

    let mut names: BTreeSet<String> = outcomes.iter().map(|(_, n, _)| n.clone()).collect();
    names.extend(existing.iter().map(|n| n.to_string()));
    for name in &names {
        let ops: Vec<&Answered> = outcomes.iter().filter(|(_, n, _)| n == name).collect();
        let last_success = ops
            .iter()
            .filter_map(|(kind, _, o)| match o {
                Some(Ok(slot)) => Some((*slot, kind.clone())),
                _ => None,
            })
            .max_by_key(|(slot, _)| *slot);
        let expected = match last_success {
            Some((_, Kind::Delete)) => false,
            Some(_) => true,
            None => existing.contains(&name.as_str()),
        };
        let unknown = |kind: Kind| {
            ops.iter().any(|(k, _, o)| *k == kind && matches!(o, None | Some(Err(Error::WriteOutcomeUnknown))))
        };
        let shown = listed.contains(name);
        if shown && !expected {
            assert!(unknown(Kind::Create), "{name} is listed, yet no write that can have created it: {outcomes:?}");
        }
        if !shown && expected {
            assert!(unknown(Kind::Delete), "{name} was written and acknowledged, yet is not listed: {outcomes:?}");
        }
    }
    assert!(listed.iter().all(|n| names.contains(n) || n == "zz-after"), "{listed:?}");
    // Records, registers and views.
    let prefix = format!("{}:", keys().prefix());
    let rows: Vec<String> = store.dump().keys().filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)).collect();
    let stored: BTreeSet<u64> = rows.iter().filter_map(|k| k.strip_prefix("r:")?.parse().ok()).collect();
    let entries = view.entries().unwrap();
    let referenced: BTreeSet<u64> = view.records().unwrap().into_iter().collect();
    assert_eq!(stored, referenced, "records stored vs. named by the view ({outcomes:?})");
    let registers: Vec<&String> = rows.iter().filter(|k| k.starts_with("s:")).collect();
    assert!(registers.is_empty(), "slot registers left: {registers:?} ({outcomes:?})");
    let views = rows.iter().filter(|k| k.starts_with("v:")).count() as u64;
    assert!(views <= WINDOW, "{views} views kept");
    assert_eq!(view.used() as usize, listed.len());
    assert!(view.used() <= view.limit());
    for entry in &entries {
        assert!(secrets::open_entry(store, &ring(), &tenant(), entry).unwrap().is_some(), "{} opens", entry.name);
    }
}

/// A schedule with `existing` secrets created first (outside the simulation).
fn seeded(existing: &[&str]) -> Run {
    let run = Run::new();
    let env = Env { store: &run.sim.store, clock: &crate::clock::SystemClock, policy: policy() };
    for name in existing {
        secrets::create(&env, &admin(), &ring(), body(name, "pw")).unwrap();
    }
    run
}

fn is_call(actor: &super::sim::Actor, op: &str, key_starts: &str) -> bool {
    matches!(&actor.step, Step::Call(o, k) if *o == op && k.starts_with(key_starts))
}

/// A fault plan for [`Run::drive`]: holds actor `who` for `ms` the first time its next step
/// satisfies `at`.
fn hold_once(
    who: usize,
    at: impl Fn(&super::sim::Actor) -> bool,
    ms: u64,
) -> impl FnMut(&Sim, usize, &super::sim::Actor) {
    let mut held = false;
    move |sim, id, actor| {
        if id == who && !held && at(actor) {
            held = true;
            sim.hold(id, sim.now() + ms);
        }
    }
}

fn outcome_of<'a>(outcomes: &'a [Answered], name: &str) -> &'a Option<Result<u64, Error>> {
    &outcomes.iter().find(|(_, n, _)| n == name).unwrap().2
}

// ---- The schedules of shared/lock-schedules, as situations of this protocol ----

/// gap_create: A pauses 1.6 leases between learning its slot's outcome and writing its view
/// (the lock's confirm→commit gap); B creates y meanwhile, and its wait runs out: it takes A's
/// slot over. Under the lock, A's late index write erased y. Here A's slot is applied once, by
/// whoever comes first, and A's late view write writes the same bytes.
#[test]
fn gap_create_a_writer_paused_before_its_view_loses_nothing() {
    let mut run = seeded(&[]);
    let a = run.op(Kind::Create, "x");
    run.op(Kind::Create, "y");
    run.drive(10_000, hold_once(a, |actor| is_call(actor, "set", "v:"), LEASE * 16 / 10));
    let (sim, outcomes) = run.finish();
    assert!(outcome_of(&outcomes, "x").as_ref().unwrap().is_ok(), "{outcomes:?}");
    assert!(outcome_of(&outcomes, "y").as_ref().unwrap().is_ok(), "{outcomes:?}");
    check(&sim, &outcomes, &[]);
}

/// gap_modify: two modifies of x; A pauses 1.6 leases before its view. Both succeed, in slot order.
#[test]
fn gap_modify_two_modifies_both_apply_in_slot_order() {
    let mut run = seeded(&["x"]);
    let a = run.op(Kind::Modify, "x");
    run.op(Kind::Modify, "x");
    run.drive(10_000, hold_once(a, |actor| is_call(actor, "set", "v:"), LEASE * 16 / 10));
    let (sim, outcomes) = run.finish();
    let slots: Vec<u64> = outcomes.iter().map(|(_, _, o)| *o.as_ref().unwrap().as_ref().unwrap()).collect();
    let env = Env { store: &sim.store, clock: &crate::clock::SystemClock, policy: policy() };
    let version = secrets::get(&env, &admin(), "x").unwrap().version;
    assert_eq!(version, *slots.iter().max().unwrap(), "the later slot's write is the current one");
    check(&sim, &outcomes, &["x"]);
}

/// gap_minimal: A stalls 0.95 lease before its intent, then 0.6 lease before its view; B creates.
#[test]
fn gap_minimal_stalls_before_the_intent_and_before_the_view() {
    let mut run = seeded(&[]);
    let a = run.op(Kind::Create, "x");
    run.op(Kind::Create, "y");
    let (mut first, mut second) = (false, false);
    run.drive(10_000, |sim, id, actor| {
        if id != a {
            return;
        }
        if !first && is_call(actor, "set", "s:") {
            first = true;
            sim.hold(id, sim.now() + LEASE * 95 / 100);
        } else if !second && is_call(actor, "set", "v:") {
            second = true;
            sim.hold(id, sim.now() + LEASE * 6 / 10);
        }
    });
    let (sim, outcomes) = run.finish();
    for name in ["x", "y"] {
        assert!(
            matches!(outcome_of(&outcomes, name), Some(Ok(_)) | Some(Err(Error::TenantBusy { .. }))),
            "{outcomes:?}"
        );
    }
    check(&sim, &outcomes, &[]);
}

/// half_lease_503 / half_lease_backward / trace_triple_breakers: a dead writer's slot is taken
/// over by B and C at once, and B pauses 0.6 lease inside its ballot. Under the lock, `serving`
/// went backwards and live writers were refused. Here the ballots decide one value; every live
/// writer succeeds.
#[test]
fn racing_takeovers_of_a_dead_slot_decide_once_and_every_live_writer_succeeds() {
    let mut run = seeded(&["seed"]);
    let dead = run.op(Kind::Create, "dead");
    let b = run.op(Kind::Create, "b");
    run.op(Kind::Create, "c");
    let mut hold_b = hold_once(b, |actor| is_call(actor, "set", "s:") && actor.calls > 8, LEASE * 6 / 10);
    run.drive(20_000, |sim, id, actor| {
        if id == dead && actor.calls >= 3 {
            sim.kill(id); // after the view read and its slot: before its record
        }
        hold_b(sim, id, actor);
    });
    let (sim, outcomes) = run.finish();
    assert!(outcome_of(&outcomes, "dead").is_none());
    assert!(matches!(outcome_of(&outcomes, "b"), Some(Ok(_))), "{outcomes:?}");
    assert!(matches!(outcome_of(&outcomes, "c"), Some(Ok(_))), "{outcomes:?}");
    check(&sim, &outcomes, &["seed"]);
}

/// chain: every writer that got its turn by a takeover is itself paused for a lease.
#[test]
fn chain_a_writer_that_took_over_and_then_paused_loses_nothing() {
    let mut run = seeded(&[]);
    let writers: Vec<usize> = (0..4).map(|i| run.op(Kind::Create, &format!("w-{i}"))).collect();
    let mut held: BTreeSet<usize> = BTreeSet::new();
    run.drive(30_000, |sim, id, actor| {
        // Each writer pauses a lease before its view once it has run a ballot (a takeover).
        if writers.contains(&id) && !held.contains(&id) && is_call(actor, "set", "v:") && actor.calls > 10 {
            held.insert(id);
            sim.hold(id, sim.now() + LEASE);
        } else if writers.contains(&id) && !held.contains(&id) && is_call(actor, "set", "s:") && actor.calls == 4 {
            held.insert(id);
            sim.hold(id, sim.now() + LEASE * 12 / 10);
        }
    });
    let (sim, outcomes) = run.finish();
    check(&sim, &outcomes, &[]);
}

/// trace_confirm_aba: a writer paused right after its intent while the log moves on by more than
/// the window; its slot is adopted and applied by others; it comes back and answers the outcome
/// the views record: success, and its secret is there.
#[test]
fn a_writer_paused_after_its_intent_is_applied_by_others_and_says_so() {
    let mut run = seeded(&[]);
    let a = run.op(Kind::Create, "a");
    for i in 0..20 {
        run.op(Kind::Create, &format!("o-{i:02}"));
    }
    run.drive(200_000, hold_once(a, |actor| is_call(actor, "get", "s:"), LEASE * 30));
    let (sim, outcomes) = run.finish();
    assert!(matches!(outcome_of(&outcomes, "a"), Some(Ok(_))), "{outcomes:?}");
    check(&sim, &outcomes, &[]);
}

/// A writer paused after taking its slot and before writing anything: its slot is voided by the
/// next writer; it comes back, writes its record and intent late, learns its slot was voided and
/// answers 503 with nothing stored (its late record is removed).
#[test]
fn a_writer_whose_empty_slot_was_voided_answers_503_and_leaves_nothing() {
    let mut run = seeded(&[]);
    let a = run.op(Kind::Create, "a");
    run.op(Kind::Create, "b");
    run.drive(50_000, hold_once(a, |actor| is_call(actor, "set", "r:"), LEASE * 3));
    let (sim, outcomes) = run.finish();
    assert!(matches!(outcome_of(&outcomes, "a"), Some(Err(Error::TenantBusy { .. }))), "{outcomes:?}");
    check(&sim, &outcomes, &[]);
}

/// lost_gone_mark: writers that gave up once cost a lease each; here two dead slots in a row and
/// three live writers racing to recover them cost one lease in all.
#[test]
fn dead_slots_in_a_row_cost_one_lease_whatever_their_number() {
    for dead_count in [1usize, 2, 10, 40] {
        let mut run = seeded(&["seed"]);
        let dead: Vec<usize> = (0..dead_count).map(|i| run.op(Kind::Create, &format!("dead-{i}"))).collect();
        let live: Vec<usize> = (0..3).map(|i| run.op(Kind::Create, &format!("live-{i}"))).collect();
        let _ = live;
        run.drive(100_000, |sim, id, actor| {
            if dead.contains(&id) && is_call(actor, "set", "r:") {
                sim.kill(id);
            }
        });
        let took = run.sim.now();
        let (sim, outcomes) = run.finish();
        assert!(took < LEASE * 2, "{dead_count} dead slots: recovered after {took} ms (lease {LEASE})");
        for i in 0..3 {
            assert!(matches!(outcome_of(&outcomes, &format!("live-{i}")), Some(Ok(_))), "{outcomes:?}");
        }
        check(&sim, &outcomes, &["seed"]);
    }
}

/// clock_back: the wall clock steps back an hour while a writer waits for a dead slot; waiting
/// is measured on the monotonic clock, so the takeover comes one lease later as always.
#[test]
fn a_wall_clock_step_backwards_changes_no_wait() {
    let mut run = seeded(&["seed"]);
    let dead = run.op(Kind::Create, "dead");
    run.op(Kind::Create, "live");
    let mut stepped = false;
    run.drive(50_000, |sim, id, actor| {
        if id == dead && is_call(actor, "set", "r:") {
            sim.kill(id);
        }
        if !stepped && sim.now() > LEASE / 2 {
            stepped = true;
            sim.step_wall_clock(-3_600_000);
        }
    });
    assert!(run.sim.now() < LEASE * 2, "took {} ms", run.sim.now());
    let (sim, outcomes) = run.finish();
    assert!(matches!(outcome_of(&outcomes, "live"), Some(Ok(_))), "{outcomes:?}");
    check(&sim, &outcomes, &["seed"]);
}

// ---- Every store call: a pause of 2.5 leases there, and a death there ----

fn every_position(kind: Kind, kill: bool) -> usize {
    for at in 1.. {
        let mut run = seeded(&["x", "y"]);
        let target = if kind == Kind::Create { "new" } else { "x" };
        let a = run.op(kind.clone(), target);
        run.op(Kind::Create, "b");
        run.op(Kind::Modify, "y");
        let mut done = false;
        let mut reached = false;
        run.drive(100_000, |sim, id, actor| {
            if id == a && !done && actor.calls + 1 == at && matches!(actor.step, Step::Call(..)) {
                done = true;
                reached = true;
                if kill {
                    sim.kill(id);
                } else {
                    sim.hold(id, sim.now() + LEASE * 5 / 2);
                }
            }
        });
        let (sim, outcomes) = run.finish();
        check(&sim, &outcomes, &["x", "y"]);
        if !reached {
            return at - 1; // the operation made fewer calls than `at`: every position was covered
        }
    }
    unreachable!()
}

#[test]
fn a_pause_of_two_and_a_half_leases_at_any_store_call_loses_nothing() {
    for kind in [Kind::Create, Kind::Modify, Kind::Delete] {
        let positions = every_position(kind.clone(), false);
        assert!(positions >= 8, "{kind:?}: only {positions} store calls");
        eprintln!("{kind:?}: paused at each of {positions} store calls");
    }
}

#[test]
fn a_death_at_any_store_call_loses_nothing_and_the_next_write_cleans_up() {
    for kind in [Kind::Create, Kind::Modify, Kind::Delete] {
        let positions = every_position(kind.clone(), true);
        assert!(positions >= 8, "{kind:?}: only {positions} store calls");
    }
}

// ---- Random schedules ----

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Many seeded schedules of 3 to 6 writers on four names with random pauses (up to three
/// leases, at any store call), deaths and wall-clock steps, each checked. Bounded in count.
#[test]
fn random_schedules_keep_every_invariant() {
    let schedules = std::env::var("REGSECRETS_SCHEDULES").ok().and_then(|n| n.parse().ok()).unwrap_or(300u64);
    let mut pauses = 0;
    let mut deaths = 0;
    for seed in 1..=schedules {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut run = seeded(&["n0", "n1"]);
        let writers = 3 + rng.below(4) as usize;
        let mut ids = Vec::new();
        for _ in 0..writers {
            let name = format!("n{}", rng.below(4));
            let kind = match rng.below(3) {
                0 => Kind::Create,
                1 => Kind::Modify,
                _ => Kind::Delete,
            };
            ids.push(run.op(kind, &name));
        }
        let mut plan: BTreeMap<usize, (usize, u64, bool)> = BTreeMap::new();
        for id in &ids {
            match rng.below(4) {
                0 => {
                    plan.insert(*id, (1 + rng.below(14) as usize, LEASE * (1 + rng.below(30)) / 10, false));
                }
                1 if deaths < seed / 3 + 1 => {
                    plan.insert(*id, (1 + rng.below(14) as usize, 0, true));
                }
                _ => {}
            }
        }
        let step_at = rng.below(3 * LEASE);
        let mut stepped = false;
        run.drive(200_000, |sim, id, actor| {
            if !stepped && sim.now() > step_at {
                stepped = true;
                sim.step_wall_clock(if step_at.is_multiple_of(2) { -7_200_000 } else { 7_200_000 });
            }
            if let Some((at, ms, kill)) = plan.get(&id).copied() {
                if actor.calls + 1 >= at && matches!(actor.step, Step::Call(..)) {
                    plan.remove(&id);
                    if kill {
                        deaths += 1;
                        sim.kill(id);
                    } else {
                        pauses += 1;
                        sim.hold(id, sim.now() + ms);
                    }
                }
            }
        });
        let (sim, outcomes) = run.finish();
        check(&sim, &outcomes, &["n0", "n1"]);
    }
    eprintln!("{schedules} random schedules ran ({pauses} pauses, {deaths} deaths), every invariant held");
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
    let prefix = format!("{}:mint:", keys().prefix());
    for key in store.dump().keys() {
        let Some(record) = key.strip_prefix(&prefix) else { continue };
        let record: u64 = record.parse().unwrap();
        assert!(minting.contains(&record), "P:mint:{record} survives its record (view names {minting:?})");
    }
}

/// An export of the minting secret `ecr` (mints and caches) and a write that replaces or deletes
/// it. The minter is paused for one lease at its store call number `minter_at`, the writer for 2.5
/// leases at its number `writer_at` (either may be left alone): with both, the minter can read the
/// old view, then cache while the writer is paused inside its clean-up. Says whether each pause
/// point was reached.
fn minter_against(write: Kind, minter_at: Option<usize>, writer_at: Option<usize>) -> (bool, bool) {
    let run = Run::new();
    let env = Env { store: &run.sim.store, clock: &crate::clock::SystemClock, policy: policy() };
    secrets::create(&env, &admin(), &ring(), ecr_body("ecr")).unwrap();
    let mut run = run;
    let (minter, minted) = run.sim.spawn(|store: &SimStore, clock: &SimClock| {
        let env = Env { store, clock, policy: policy() };
        let endpoints = crate::mint::ProviderEndpoints::default();
        let providers = crate::mint::Providers { sender: &Ecr, clock, endpoints: &endpoints };
        let source = crate::mint::Source::Providers(&providers);
        crate::export::export(&env, &admin(), &ring(), "ecr", &source).map(|_| ())
    });
    let (k, n) = (write.clone(), "ecr".to_owned());
    let (writer, handle) = run.sim.spawn(move |store: &SimStore, clock: &SimClock| {
        let env = Env { store, clock, policy: policy() };
        match k {
            Kind::Modify => secrets::modify(&env, &admin(), &ring(), &n, ecr_body(&n), None).map(|w| w.version),
            _ => secrets::delete(&env, &admin(), &n, None).map(|w| w.version),
        }
    });
    run.ops.push(Planned { kind: write, name: "ecr".into(), handle });
    let mut reached = [false, false];
    run.drive(100_000, |sim, id, actor| {
        let pauses = [(minter, minter_at, LEASE), (writer, writer_at, LEASE * 5 / 2)];
        for (n, (who, at, pause)) in pauses.into_iter().enumerate() {
            if id == who && !reached[n] && Some(actor.calls + 1) == at && matches!(actor.step, Step::Call(..)) {
                reached[n] = true;
                sim.hold(id, sim.now() + pause);
            }
        }
    });
    let (sim, outcomes) = run.finish();
    let exported = minted.join().unwrap().expect("the minter ran to its end");
    assert!(matches!(exported, Ok(()) | Err(Error::SecretNotFound)), "{exported:?}");
    assert!(outcomes.iter().all(|(_, _, o)| matches!(o, Some(Ok(_)))), "{outcomes:?}");
    no_orphan_minted_credential(&sim);
    (reached[0], reached[1])
}

#[test]
fn a_minter_paused_at_any_store_call_leaves_no_cached_credential_of_a_deleted_record() {
    for write in [Kind::Modify, Kind::Delete] {
        let mut minter_calls = 1;
        while minter_against(write.clone(), Some(minter_calls), None).0 {
            minter_calls += 1;
        }
        let mut writer_calls = 1;
        while minter_against(write.clone(), None, Some(writer_calls)).1 {
            writer_calls += 1;
        }
        assert!(minter_calls > 5 && writer_calls > 5, "{write:?}: only {minter_calls} and {writer_calls} store calls");
        // Both paused, at every pair of store calls.
        for m in 1..minter_calls {
            for w in 1..writer_calls {
                minter_against(write.clone(), Some(m), Some(w));
            }
        }
    }
}
