//! Writers die, many at once, and the tenant's write log recovers in bounded time (issues 11, 17),
//! on every store backend this run reaches (SQLite, and Redis and DynamoDB on moto's server when
//! `REDIS_URL` and `REGSECRETS_DYNAMO_URL` are set).
//!
//! One host: many concurrent writers killed at once by trap injection right after they took their
//! slot (a dead queue) behind a writer killed mid-write. On the stores several nodes share (Redis,
//! DynamoDB), two host processes on one store, one SIGKILLed mid-storm. Also a storm that keeps
//! arriving while writers keep dying, and the refusal when the log is too busy to join: 503
//! `TenantBusy` with `Retry-After`, nothing stored.
//!
//! "Within two leases" is a property of the protocol (a lease to notice a stalled slot, then every
//! stalled slot is decided at once); the tests assert it with a margin for a loaded machine and
//! print the figure.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::invariants::{assert_invariants, assert_invariants_but_late_writes};
use e2e::nodes::{record_versions, trapped_create, try_create, ChildNode, TrapPositions};
use e2e::{at_once, structured, unique_tenant, Backend, Options, Reply, TestApp, SECRETS};
use serde_json::json;

const LEASE: Duration = Duration::from_millis(1000);

/// The bound every recovery is held to: two leases, plus a margin for a loaded 2-core machine.
fn bound() -> Duration {
    LEASE * 2 + Duration::from_secs(3)
}

/// How many writers a storm has on `backend`: `n`, or on moto's DynamoDB, which serves one request
/// at a time (a create there is 15 requests alone and over 70 in a storm, see `docs/figures.md`),
/// `n / moto_divisor`, so that the recovery the tests time is the log's, not moto's queue.
fn sized(backend: &Backend, n: usize, moto_divisor: usize) -> usize {
    if matches!(backend, Backend::Dynamo { .. }) {
        n / moto_divisor
    } else {
        n
    }
}

/// These tests measure waits: run them one at a time, not against each other.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn app(backend: Backend, lease: Duration) -> TestApp {
    TestApp::start(Options { backend, lease_ms: lease.as_millis() as u64, trap_injection: true, ..Options::default() })
}

/// A tenant with room for a storm (the operator raises its quota to the maximum).
fn roomy_tenant(app: &TestApp, label: &str) -> (String, String) {
    let tenant = unique_tenant(label);
    let operator = app.token("platform", &["regsecrets.operator"]);
    let limited = app
        .call("PUT", &format!("/v2/operator/tenants/{tenant}/quota"))
        .bearer(&operator)
        .json(&json!({"limit": 1000}))
        .send();
    assert_eq!(limited.status, 200, "{}", limited.body);
    let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);
    (tenant, token)
}

/// A refusal because the log was too busy to join: the contract's error, 503, `Retry-After`.
fn assert_busy(reply: &Reply) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.code(), "TenantBusy", "{}", reply.body);
    let retry: u64 = reply.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(retry >= 1, "Retry-After: {retry}");
}

/// How many of the guests' store calls failed so far (a contended `increment` is not a failure).
fn failed_store_calls(app: &TestApp) -> u64 {
    let calls = app.app.kv_calls();
    let failed = |kind: &testhost::kv::calls::CallKind| {
        kind.outcome == testhost::kv::calls::Outcome::Failed && !kind.kind.starts_with("dynamodb:")
    };
    calls.iter().filter(|(kind, _)| failed(kind)).map(|(_, tally)| tally.calls).sum()
}

/// The longest time without a successful write, from `from` to `to`, given when writes succeeded.
fn longest_gap(from: Instant, to: Instant, mut successes: Vec<Instant>) -> Duration {
    successes.retain(|t| *t > from);
    successes.sort();
    let mut last = from;
    let mut longest = Duration::ZERO;
    for t in successes.into_iter().chain([to]) {
        longest = longest.max(t.saturating_duration_since(last));
        last = t;
    }
    longest
}

#[test]
fn a_dead_holder_and_a_dead_queue_cost_one_recovery_whatever_their_number() {
    for backend in Backend::all() {
        dead_queue_on(backend);
    }
}

fn dead_queue_on(backend: Backend) {
    let _one = serial();
    eprintln!("== on {backend:?}");
    // 48 writers (8 live) and 100 dead tickets; a quarter of that on moto.
    let (writers, late_dead) = (sized(&backend, 48, 4), sized(&backend, 100, 4));
    let app = Arc::new(app(backend, LEASE));
    let traps = TrapPositions::find(&app);
    let (tenant, token) = roomy_tenant(&app, "dead-queue");
    assert_eq!(app.create(&token, &structured("seed", "ghcr.io", "u", "p")).status, 201);

    // The holder dies after writing its record, before committing: an orphan for the repair.
    assert_eq!(trapped_create(&app, &token, "dead-holder", traps.after_record).status, 500);
    assert_eq!(record_versions(&app, &tenant).len(), 2, "the dead holder's record is there, uncommitted");

    // Five in six writers die in the queue right after taking their tickets while the others
    // (8 of 48) wait among them.
    let (a, t) = (app.clone(), token.clone());
    let results = at_once(writers, move |i| {
        let started = Instant::now();
        if i % 6 == 0 {
            (true, a.create(&t, &structured(&format!("live-{i}"), "ghcr.io", "u", "p")).status, started.elapsed())
        } else {
            (false, trapped_create(&a, &t, &format!("dead-{i}"), traps.after_slot).status, started.elapsed())
        }
    });
    let live: Vec<_> = results.iter().filter(|(live, ..)| *live).collect();
    assert!(live.iter().all(|(_, status, _)| *status == 201), "{live:?}");
    assert!(results.iter().filter(|(live, ..)| !live).all(|(_, status, _)| *status == 500), "the dead all trapped");
    let slowest = live.iter().map(|(.., took)| *took).max().unwrap();
    eprintln!(
        "{} live writers among {} dying ones behind a dead holder: all written within {slowest:?}",
        live.len(),
        writers - live.len()
    );
    assert!(slowest < bound(), "{slowest:?}");

    // Now 100 dead tickets in a row, and one live writer after them: one recovery, not 100.
    let (a, t) = (app.clone(), token.clone());
    let dead = at_once(late_dead, move |i| trapped_create(&a, &t, &format!("late-dead-{i}"), traps.after_slot).status);
    assert!(dead.iter().all(|s| *s == 500));
    let started = Instant::now();
    assert_eq!(app.create(&token, &structured("after", "ghcr.io", "u", "p")).status, 201);
    let took = started.elapsed();
    eprintln!("a live writer behind {late_dead} dead tickets: written in {took:?} (lease {LEASE:?})");
    assert!(took < bound(), "{took:?}");

    let names = assert_invariants(&app, &tenant, "after the dead queue");
    let expected: BTreeSet<String> = ["seed", "after"]
        .into_iter()
        .map(String::from)
        .chain((0..writers).filter(|i| i % 6 == 0).map(|i| format!("live-{i}")))
        .collect();
    assert_eq!(names, expected, "every live write, and nothing of the dead");
}

#[test]
fn a_storm_that_keeps_arriving_while_writers_keep_dying_still_recovers() {
    for backend in Backend::all() {
        dying_storm_on(backend);
    }
}

fn dying_storm_on(backend: Backend) {
    let _one = serial();
    eprintln!("== on {backend:?}");
    // 12 clients; 4 on moto.
    let clients_n = sized(&backend, 12, 3);
    let app = Arc::new(app(backend, LEASE));
    let traps = TrapPositions::find(&app);
    let (tenant, token) = roomy_tenant(&app, "dying-storm");
    // Longer than the bound, so that a tenant stuck for the rest of the storm would fail the test.
    let storm = bound() + Duration::from_secs(3);
    let started = Instant::now();
    let (a, t) = (app.clone(), token.clone());
    let clients = at_once(clients_n, move |client| {
        let mut outcomes = Vec::new();
        let mut step = 0;
        while started.elapsed() < storm {
            let name = format!("c{client}-{step}");
            // A third of the clients' requests die right after taking their ticket, all storm long.
            if (client + step) % 3 == 0 {
                assert_eq!(trapped_create(&a, &t, &name, traps.after_slot).status, 500);
            } else {
                let reply = a.create(&t, &structured(&name, "ghcr.io", "u", "p"));
                match reply.status {
                    201 => outcomes.push((name, Some(Instant::now()))),
                    503 => {
                        assert_busy(&reply);
                        outcomes.push((name, None));
                    }
                    other => panic!("a live create answered {other}: {}", reply.body),
                }
            }
            step += 1;
        }
        outcomes
    });
    let ended = Instant::now();
    let outcomes: Vec<_> = clients.into_iter().flatten().collect();
    let written: BTreeSet<String> = outcomes.iter().filter(|(_, ok)| ok.is_some()).map(|(n, _)| n.clone()).collect();
    let refused = outcomes.len() - written.len();
    let gap = longest_gap(started, ended, outcomes.iter().filter_map(|(_, ok)| *ok).collect());
    eprintln!(
        "storm with deaths throughout: {} written, {refused} refused 503, longest time without a write {gap:?}",
        written.len()
    );
    assert!(gap < bound(), "the tenant went {gap:?} without a write");

    let after = Instant::now();
    assert_eq!(app.create(&token, &structured("after-storm", "ghcr.io", "u", "p")).status, 201);
    eprintln!("first write after the storm: {:?}", after.elapsed());
    assert!(after.elapsed() < bound());
    let names = assert_invariants(&app, &tenant, "after the dying storm");
    let mut expected = written;
    expected.insert("after-storm".into());
    assert_eq!(names, expected, "exactly the 201s are stored; nothing of the refused or the dead");
}

#[test]
fn when_the_log_is_too_busy_to_join_the_answer_is_503_with_retry_after_and_nothing_is_stored() {
    for backend in Backend::all() {
        too_busy_on(backend);
    }
}

fn too_busy_on(backend: Backend) {
    let _one = serial();
    eprintln!("== on {backend:?}");
    // A short lease makes new writers give up (after three leases of a queue of W or more in
    // flight) while a long queue is served; writers that joined the queue are applied.
    let lease = Duration::from_millis(500);
    let app = Arc::new(app(backend, lease));
    for writers in [64, 128, 256] {
        let (tenant, token) = roomy_tenant(&app, "busy");
        let (a, t) = (app.clone(), token.clone());
        let failed_before = failed_store_calls(&app);
        let replies = at_once(writers, move |i| {
            let started = Instant::now();
            (a.create(&t, &structured(&format!("w-{i}"), "ghcr.io", "u", "p")), started.elapsed())
        });
        let failed = failed_store_calls(&app) - failed_before;
        let mut written = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        let mut busy = 0;
        for (i, (reply, took)) in replies.iter().enumerate() {
            match (reply.status, reply.code().as_str()) {
                (201, _) => {
                    written.insert(format!("w-{i}"));
                }
                // A writer that joined the queue but could not learn its slot's outcome: the
                // contract's truthful answer (its write applies whole or not at all), but only
                // when a store call failed, or when it waited the whole time a write waits for its
                // outcome (ten times the wait to join: moto's one-at-a-time queue on a loaded
                // machine). Losing a counter to another writer is neither (CI met that answer).
                (503, "WriteOutcomeUnknown") => {
                    assert!(
                        failed > 0 || *took >= lease * 30,
                        "w-{i} answered WriteOutcomeUnknown after {took:?} with no store call failed: {}",
                        reply.body
                    );
                    unknown.insert(format!("w-{i}"));
                }
                _ => {
                    assert_busy(reply);
                    busy += 1;
                }
            }
        }
        eprintln!(
            "{writers} writers at once, lease {lease:?}: {} written, {busy} refused 503 TenantBusy, {} 503 \
             WriteOutcomeUnknown ({failed} store calls failed meanwhile)",
            written.len(),
            unknown.len(),
        );
        assert!(!written.is_empty(), "some were written");
        if busy == 0 {
            continue; // the machine served them all in time: try a longer queue
        }
        // The 201s are stored, and nothing of the refused: a 503 TenantBusy wrote nothing.
        assert_eq!(app.create(&token, &structured("after", "ghcr.io", "u", "p")).status, 201);
        written.insert("after".into());
        let stored = if unknown.is_empty() {
            assert_invariants(&app, &tenant, "after the refusals")
        } else {
            assert_invariants_but_late_writes(&app, &tenant, "after the refusals").0
        };
        assert!(stored.is_superset(&written), "a 201 is missing: {:?}", written.difference(&stored));
        let refused_but_stored: Vec<_> = stored.difference(&written).filter(|n| !unknown.contains(*n)).collect();
        assert!(refused_but_stored.is_empty(), "refused, yet stored: {refused_but_stored:?}");
        return;
    }
    panic!("no writer was ever refused: the queue never outlasted three leases");
}

#[test]
fn two_nodes_one_killed_mid_storm_the_survivor_recovers_within_two_leases() {
    let shared: Vec<Backend> = Backend::all().into_iter().filter(|b| *b != Backend::Sqlite).collect();
    if shared.is_empty() {
        eprintln!("skipped: neither REDIS_URL nor REGSECRETS_DYNAMO_URL is set (.ci/run starts Redis and moto)");
    }
    for backend in shared {
        node_killed_on(backend);
    }
}

fn node_killed_on(backend: Backend) {
    let _one = serial();
    eprintln!("== on {backend:?}");
    let survivor = Arc::new(app(backend.clone(), LEASE));
    let victim = Arc::new(Mutex::new(ChildNode::start_on(&backend, &survivor.tokens, LEASE.as_millis() as u64)));
    let (tenant, token) = roomy_tenant(&survivor, "node-death");
    let victim_url = victim.lock().unwrap().url(SECRETS);
    let kill_at = Duration::from_secs(1);
    // Longer than the bound after the kill, so that a stuck survivor would fail the test.
    let storm = kill_at + bound() + Duration::from_secs(2);
    let started = Instant::now();
    let killed = Arc::new(Mutex::new(None::<Instant>));
    let killer = {
        let (victim, killed) = (victim.clone(), killed.clone());
        std::thread::spawn(move || {
            std::thread::sleep(kill_at);
            victim.lock().unwrap().kill();
            *killed.lock().unwrap() = Some(Instant::now());
        })
    };
    let (s, t) = (survivor.clone(), token.clone());
    // 24 clients, each pausing 300 ms between creates: about 80 a second offered, within the quota.
    // A third of that on moto.
    let clients_n = sized(&backend, 24, 3);
    let clients = at_once(clients_n, move |client| {
        let mut outcomes = Vec::new();
        let mut on_victim = client % 2 == 0;
        let mut step = 0;
        while started.elapsed() < storm {
            std::thread::sleep(Duration::from_millis(300));
            let name = format!("c{client}-{step}");
            step += 1;
            if on_victim {
                match try_create(&victim_url, &t, &name) {
                    Some(status) => outcomes.push((name, status, Instant::now(), true)),
                    None => on_victim = false, // the node is gone: carry on against the survivor
                }
                continue;
            }
            let reply = s.create(&t, &structured(&name, "ghcr.io", "u", "p"));
            if reply.status == 503 {
                assert_busy(&reply);
            }
            outcomes.push((name, reply.status, Instant::now(), false));
        }
        outcomes
    });
    let ended = Instant::now();
    killer.join().unwrap();
    let killed = killed.lock().unwrap().expect("the victim was killed");
    let outcomes: Vec<_> = clients.into_iter().flatten().collect();
    let on_survivor: Vec<_> = outcomes.iter().filter(|o| !o.3).collect();
    assert!(
        on_survivor.iter().all(|o| o.1 == 201 || o.1 == 503),
        "the survivor answers 201 or 503, never a fault: {:?}",
        on_survivor.iter().map(|o| o.1).collect::<Vec<_>>()
    );
    let successes: Vec<Instant> = on_survivor.iter().filter(|o| o.1 == 201).map(|o| o.2).collect();
    let gap = longest_gap(killed, ended, successes);
    let refused = on_survivor.iter().filter(|o| o.1 == 503).count();
    eprintln!(
        "two nodes, one killed {kill_at:?} into a {storm:?} storm of {clients_n} clients: survivor wrote {} and refused {refused}; \
         longest time without a write after the kill {gap:?} (lease {LEASE:?})",
        on_survivor.len() - refused
    );
    assert!(gap < bound(), "the survivor went {gap:?} without a write after the kill");

    let after = Instant::now();
    assert_eq!(survivor.create(&token, &structured("after-kill", "ghcr.io", "u", "p")).status, 201);
    assert!(after.elapsed() < bound(), "{:?}", after.elapsed());
    // A second write, so that whatever the dead node left is repaired before the check.
    assert_eq!(survivor.create(&token, &structured("after-kill-2", "ghcr.io", "u", "p")).status, 201);
    let names = assert_invariants(&survivor, &tenant, "after the node's death");
    for (name, status, _, _) in &outcomes {
        match status {
            201 => assert!(names.contains(name), "{name} was written (201) but is not listed"),
            503 => assert!(!names.contains(name), "{name} was refused (503) but is listed"),
            _ => {}
        }
    }
}
