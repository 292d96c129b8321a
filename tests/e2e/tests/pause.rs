//! A node that pauses and wakes up loses no acknowledged write (issue 17, part 4; issue 24, part 6),
//! on each store several nodes can share: Redis, and DynamoDB (moto's server), when `REDIS_URL`
//! and `REGSECRETS_DYNAMO_URL` are set.
//!
//! Two host processes on one store: node A a child process in a process group of its own, node B in
//! this process, lease 1 s. A storm of creates on one tenant from both, bounded in count and time,
//! and node A frozen (SIGSTOP of its process group, as a VM freeze or a long stall) for at least 4.5
//! leases several times in the middle of it, and for as long as it takes node B to move the log on
//! by more slots than a view remembers outcomes of (64; what real Spin met, issue 24; on moto, which
//! serves one request at a time, that takes longer than 4.5 leases), then thawed (SIGCONT): its
//! writers wake up between any two store calls, after B has taken their slots over. The same storm
//! with node A SIGKILLed (and a fresh node A started) instead. Afterwards, once both nodes are quiet:
//! every create answered 201 is listed and exports, every listed secret exports, the list equals the
//! quota used, no orphan record or slot register is left (`assert_invariants`), and nothing is listed
//! that was not answered 201 unless its request got no answer or an answer that says its outcome is
//! unknown; a 503 `TenantBusy` never applied. It prints what became of each kind of answer.
//!
//! Liveness is printed, not timed: whether B wrote while A was frozen is asserted only as "at all".

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use e2e::invariants::{assert_invariants, assert_invariants_but_late_writes};
use e2e::nodes::{create_within, slots_taken, ChildNode};
use e2e::{unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;

const LEASE: Duration = Duration::from_millis(1000);
/// How long node A is frozen (or dead) each time, at least: 4.5 leases, and longer (up to
/// `OUTAGE_MAX`) until node B has moved the log on by more than a view's outcome memory while A's
/// writers are frozen mid-write.
const OUTAGE: Duration = Duration::from_millis(4500);
const OUTAGE_MAX: Duration = Duration::from_secs(40);
/// The outcome memory of a view (`domain::view::OUTCOMES`): a freeze must outlast this many slots.
const OUTCOMES: u64 = domain::view::OUTCOMES;
/// Freezes of node A; kills are fewer, as each restart of node A takes seconds to tens of seconds.
const FREEZES: usize = 4;
const KILLS: usize = 2;
/// When the first outage begins, and the time between one outage's end and the next's start.
const FIRST_AT: Duration = Duration::from_secs(2);
const BETWEEN: Duration = Duration::from_secs(2);
/// The storm: so many clients, each pausing between creates, until the last outage is over (a
/// restart of node A takes seconds on a loaded machine), and at most so many creates and so long.
const CLIENTS: usize = 8;
const PACE: Duration = Duration::from_millis(100);
const STORM: Duration = Duration::from_secs(120);
/// Within the quota's maximum (1,000), with the two writes after the storm.
const MAX_CREATES: usize = 990;
/// A writer answers within 30 leases of its start whatever happens (`log::outcome_wait`), far
/// sooner once its node thaws; the clients of node B and half of node A's wait 20 s, the other half
/// of A's give up during a freeze (their writes go on in the node after the thaw).
const PATIENT: Duration = Duration::from_secs(20);
const IMPATIENT: Duration = Duration::from_millis(1500);

/// The tests share one store and measure nothing, but each runs a storm: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// SIGSTOP, then SIGCONT 2.5 leases later.
    Freeze,
    /// SIGKILL, and a fresh node A 2.5 leases later.
    Kill,
}

/// The status and the error code (empty for a 2xx), or `None`: no answer in time.
type Answer = Option<(u16, String)>;

#[derive(Debug)]
struct Outcome {
    name: String,
    on_a: bool,
    answer: Answer,
    ended: Instant,
}

fn code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The stores several nodes share that this run reaches.
fn shared_backends() -> Vec<Backend> {
    let shared: Vec<Backend> = Backend::all().into_iter().filter(|b| *b != Backend::Sqlite).collect();
    if shared.is_empty() {
        eprintln!("skipped: neither REDIS_URL nor REGSECRETS_DYNAMO_URL is set (.ci/run starts Redis and moto)");
    }
    shared
}

fn storm(backend: Backend, outage: Outage) {
    let _one = serial();
    eprintln!("== on {backend:?}");
    let b =
        TestApp::start(Options { backend: backend.clone(), lease_ms: LEASE.as_millis() as u64, ..Options::default() });
    let a = Mutex::new(ChildNode::start_on(&backend, &b.tokens, LEASE.as_millis() as u64));
    let a_url = RwLock::new(a.lock().unwrap().url(SECRETS));
    let b_url = b.url(SECRETS);

    let tenant = unique_tenant(match outage {
        Outage::Freeze => "pause",
        Outage::Kill => "pause-kill",
    });
    let operator = b.token("platform", &["regsecrets.operator"]);
    let quota = b
        .call("PUT", &format!("/v2/operator/tenants/{tenant}/quota"))
        .bearer(&operator)
        .json(&json!({"limit": 1000}))
        .send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    let token = b.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);

    let started = Instant::now();
    let issued = AtomicUsize::new(0);
    let over = AtomicBool::new(false);
    let mut windows = Vec::new();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (issued, over, a_url, b_url, token) = (&issued, &over, &a_url, &b_url, &token);
                scope.spawn(move || {
                    let on_a = client % 2 == 0;
                    let timeout = if on_a && client % 4 == 2 { IMPATIENT } else { PATIENT };
                    let mut outcomes = Vec::new();
                    for step in 0.. {
                        if over.load(Ordering::Relaxed)
                            || started.elapsed() >= STORM
                            || issued.fetch_add(1, Ordering::Relaxed) >= MAX_CREATES
                        {
                            break;
                        }
                        std::thread::sleep(PACE);
                        let name = format!("c{client}-{step}");
                        let url = if on_a { a_url.read().unwrap().clone() } else { b_url.clone() };
                        let answer = create_within(&url, token, &name, timeout).map(|(s, body)| (s, code(&body)));
                        let dead = answer.is_none() && outage == Outage::Kill;
                        outcomes.push(Outcome { name, on_a, answer, ended: Instant::now() });
                        // A dead node A: wait for its successor rather than spend the storm on refusals.
                        while dead && *a_url.read().unwrap() == url && !over.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    outcomes
                })
            })
            .collect();
        std::thread::sleep(FIRST_AT);
        let outages = match outage {
            Outage::Freeze => FREEZES,
            Outage::Kill => KILLS,
        };
        for _ in 0..outages {
            let from = Instant::now();
            let slots_before = slots_taken(&b, &tenant);
            match outage {
                Outage::Freeze => a.lock().unwrap().freeze(),
                Outage::Kill => a.lock().unwrap().kill(),
            }
            std::thread::sleep(OUTAGE);
            // (Not once the storm has issued all its creates: then the log has stopped moving.)
            let storming = || issued.load(Ordering::Relaxed) < MAX_CREATES && started.elapsed() < STORM;
            while storming() && slots_taken(&b, &tenant) - slots_before <= OUTCOMES && from.elapsed() < OUTAGE_MAX {
                std::thread::sleep(Duration::from_millis(500));
            }
            match outage {
                Outage::Freeze => a.lock().unwrap().thaw(),
                Outage::Kill => {
                    let fresh = ChildNode::start_on(&backend, &b.tokens, LEASE.as_millis() as u64);
                    *a_url.write().unwrap() = fresh.url(SECRETS);
                    *a.lock().unwrap() = fresh;
                }
            }
            windows.push((from, Instant::now(), slots_taken(&b, &tenant) - slots_before));
            std::thread::sleep(BETWEEN);
        }
        over.store(true, Ordering::Relaxed);
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let last_thaw = windows.last().unwrap().1;
    let passed: Vec<u64> = windows.iter().map(|w| w.2).collect();
    let lasted: Vec<String> = windows.iter().map(|w| format!("{:.1} s", (w.1 - w.0).as_secs_f64())).collect();
    eprintln!(
        "{outage:?}: slots the log moved on while node A was out: {passed:?} (a view remembers {OUTCOMES}), \
         in outages of {lasted:?}"
    );
    assert!(passed.iter().any(|p| *p > OUTCOMES), "no outage outlasted the outcome memory: {passed:?}");

    // Quiet: every request node A was serving when it froze answers within 12 leases of its start
    // (a monotonic clock runs on through a freeze), then the log stops moving.
    let quiet_by = last_thaw + LEASE * 12;
    let waiting = Instant::now();
    let mut last = (slots_taken(&b, &tenant), Instant::now());
    while Instant::now() < quiet_by || last.1.elapsed() < LEASE * 3 {
        assert!(waiting.elapsed() < Duration::from_secs(60), "the log never went quiet");
        std::thread::sleep(Duration::from_millis(250));
        let now = slots_taken(&b, &tenant);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    // One more write through each node: it takes over whatever a dead node left half-done.
    let mut written = BTreeSet::new();
    for (label, url) in [("after-a", a_url.read().unwrap().clone()), ("after-b", b_url.clone())] {
        let answer = create_within(&url, &token, label, PATIENT);
        assert!(matches!(answer, Some((201, _))), "{label} after the storm: {answer:?}");
        written.insert(label.to_owned());
    }

    let count =
        |on_a: bool, f: &dyn Fn(&Answer) -> bool| outcomes.iter().filter(|o| o.on_a == on_a && f(&o.answer)).count();
    let status = |s: u16| move |a: &Answer| matches!(a, Some((x, _)) if *x == s);
    let busy = |a: &Answer| matches!(a, Some((503, c)) if c == "TenantBusy");
    let unknown = |a: &Answer| matches!(a, Some((503, c)) if c != "TenantBusy");
    let during_outage = outcomes
        .iter()
        .filter(|o| !o.on_a && matches!(o.answer, Some((201, _))))
        .filter(|o| windows.iter().any(|(from, to, _)| o.ended > *from + LEASE && o.ended < *to))
        .count();
    for (node, on_a) in [("A", true), ("B", false)] {
        eprintln!(
            "{outage:?} x{} of {OUTAGE:?} or more, lease {LEASE:?}, node {node}: {} requests: {} answered 201, {} 409, \
             {} 503 TenantBusy, {} 503 outcome unknown, {} unanswered",
            windows.len(),
            count(on_a, &|_| true),
            count(on_a, &status(201)),
            count(on_a, &status(409)),
            count(on_a, &busy),
            count(on_a, &unknown),
            count(on_a, &|a| a.is_none()),
        );
    }
    eprintln!("{outage:?}: {} outages; node B answered 201 {during_outage} times while node A was out", windows.len());

    for o in &outcomes {
        if let Some((status, code)) = &o.answer {
            assert!(*status == 201 || *status == 503, "{} answered {status} {code}", o.name);
        }
    }
    assert_eq!(count(false, &|a| a.is_none()), 0, "node B answers every request");
    assert!(during_outage > 0, "node B wrote nothing while node A was out: the tenant waited for it");

    let context = format!("after the storm ({outage:?})");
    let listed = if matches!(backend, Backend::Dynamo { .. }) {
        // KNOWN, reported to the write log's owner: on DynamoDB a writer of node A that comes back
        // from a freeze finds its request's deadline passed, so its first `increment` refused for
        // contention is not retried; the call fails, which the log treats as the writer's death at
        // that point, and what it wrote late after being overtaken (a record, a ballot's
        // registers) is left for the sweep, every 1,024 slots. Seen in 2 of 3 freeze storms here.
        // Everything else is held as on Redis; the leftovers are printed.
        let (listed, late) = assert_invariants_but_late_writes(&b, &tenant, &context);
        eprintln!("{outage:?}: left for the sweep (written late by writers that then failed): {late:?}");
        listed
    } else {
        assert_invariants(&b, &tenant, &context)
    };
    for o in &outcomes {
        match &o.answer {
            Some((201, _)) => {
                assert!(listed.contains(&o.name), "{} was answered 201 but is not listed", o.name);
                written.insert(o.name.clone());
            }
            Some((503, code)) if code == "TenantBusy" => {
                assert!(!listed.contains(&o.name), "{} was refused (503 TenantBusy) but is listed", o.name)
            }
            _ => {}
        }
    }
    let maybe: BTreeSet<&str> =
        outcomes.iter().filter(|o| o.answer.is_none() || unknown(&o.answer)).map(|o| o.name.as_str()).collect();
    let extra: Vec<&String> = listed.iter().filter(|n| !written.contains(*n) && !maybe.contains(n.as_str())).collect();
    assert!(extra.is_empty(), "listed but neither answered 201 nor of unknown outcome: {extra:?}");
    eprintln!(
        "{outage:?}: {} listed = {} answered 201 + {} of the {} unanswered or of unknown outcome",
        listed.len(),
        written.len(),
        listed.len() - written.len(),
        maybe.len()
    );
    // What became of each kind of answer: listed (applied) or not.
    type Is<'a> = &'a dyn Fn(&Answer) -> bool;
    let kinds: [(&str, Is); 4] = [
        ("201", &status(201)),
        ("503 TenantBusy", &busy),
        ("503 WriteOutcomeUnknown", &|a: &Answer| matches!(a, Some((503, c)) if c == "WriteOutcomeUnknown")),
        ("unanswered", &|a: &Answer| a.is_none()),
    ];
    for (kind, is) in kinds {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| is(&o.answer)).collect();
        let applied = of.iter().filter(|o| listed.contains(&o.name)).count();
        eprintln!(
            "{outage:?}: {kind}: {} writes, {applied} applied (listed and exporting), {} not",
            of.len(),
            of.len() - applied
        );
    }
}

#[test]
fn a_node_frozen_mid_storm_loses_no_acknowledged_create_when_it_wakes() {
    for backend in shared_backends() {
        storm(backend, Outage::Freeze);
    }
}

#[test]
fn a_node_killed_mid_storm_loses_no_acknowledged_create() {
    for backend in shared_backends() {
        storm(backend, Outage::Kill);
    }
}

/// The same pause, one store call at a time, on the domain's in-memory store: a writer that pauses
/// inside a takeover ballot (right after its ballot was handed out) while another writer applies
/// and clears the slot leaves that slot's registers behind for good (`P:s:<k>:<b>`), one key of the
/// tenant's store budget each time. Found reading `log::take_over` and `slot::ballot`; fails on
/// 185eb80 (see the report).
mod paused_ballot {
    use std::cell::RefCell;
    use std::time::Duration;

    use domain::clock::FastClock;
    use domain::log::op::{Actor, Op};
    use domain::log::{read, write, Env, WritePolicy};
    use domain::name::TenantId;
    use domain::store::{Key, KeyValue, MemoryStore, StoreResult, TenantKeys};

    type Pause<'a> = Box<dyn FnOnce(&Hooked) + 'a>;

    /// The in-memory store, with "another node" run while the next `increment` of one key returns.
    #[derive(Default)]
    struct Hooked<'a> {
        inner: MemoryStore,
        on: RefCell<Option<(Key, Pause<'a>)>>,
    }

    impl KeyValue for Hooked<'_> {
        fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
            self.inner.get(key)
        }
        fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
            self.inner.set(key, value)
        }
        fn delete(&self, key: &Key) -> StoreResult<()> {
            self.inner.delete(key)
        }
        fn exists(&self, key: &Key) -> StoreResult<bool> {
            self.inner.exists(key)
        }
        fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
            let value = self.inner.increment(key, delta)?;
            let due = matches!(&*self.on.borrow(), Some((k, _)) if k == key);
            if due {
                let (_, pause) = self.on.borrow_mut().take().unwrap();
                pause(self);
            }
            Ok(value)
        }
        fn keys(&self) -> StoreResult<Vec<String>> {
            self.inner.keys()
        }
    }

    fn create(name: &str) -> Op {
        Op::Create {
            name: name.into(),
            registries: vec!["ghcr.io".into()],
            actor: Actor { operator: false, admin: true },
            now: 0,
            verification: None,
            kind: Default::default(),
        }
    }

    #[test]
    fn a_takeover_paused_inside_its_ballot_leaves_no_slot_register_behind() {
        let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
        let policy = WritePolicy::with_lease(Duration::from_millis(1000));
        let store = Hooked::default();
        // Slot 1's taker dies right after taking it: no intent, no record.
        store.increment(&keys.seq(), 1).unwrap();
        // Writer X (slot 2) waits a lease, then takes slot 1 over: ballot 1 is handed out to it, and
        // it pauses right there. Meanwhile writer Y (slot 3) takes slot 1 over too, applies it,
        // clears its registers (ballots 1 included), takes X's slot 2 over and applies it, then its own.
        let clock_y = FastClock::default();
        let (keys_y, policy_y) = (keys.clone(), policy);
        *store.on.borrow_mut() = Some((
            keys.ballots(1),
            Box::new(move |store: &Hooked| {
                let env = Env { store, clock: &clock_y, policy: policy_y };
                let current = read(&env, &keys_y).unwrap();
                write(&env, &keys_y, &create("y"), Some(b"record y"), current).expect("Y's create applies");
            }),
        ));
        let clock_x = FastClock::default();
        let env = Env { store: &store, clock: &clock_x, policy };
        let current = read(&env, &keys).unwrap();
        let written = write(&env, &keys, &create("x"), Some(b"record x"), current).expect("X's create applies");
        assert_eq!(written.slot, 2);
        assert!(store.on.borrow().is_none(), "Y ran inside X's ballot");

        let left: Vec<String> =
            store.inner.dump().into_keys().filter(|k| k.starts_with(&format!("{}:s:", keys.prefix()))).collect();
        assert!(left.is_empty(), "slot registers left once every write has answered: {left:?}");
    }
}
