//! A node that pauses and wakes up loses no acknowledged write (issue 17, part 4).
//!
//! Two host processes on one `redis-server`: node A a child process in a process group of its own,
//! node B in this process, lease 1 s. A storm of creates on one tenant from both, bounded in count
//! and time, and node A frozen (SIGSTOP of its process group, as a VM freeze or a long stall) for
//! 2.5 leases several times in the middle of it, then thawed (SIGCONT): its writers wake up between
//! any two store calls, after B has taken their slots over. The same storm with node A SIGKILLed
//! (and a fresh node A started) instead. Afterwards, once both nodes are quiet: every create answered
//! 201 is listed and exports, the list equals the quota used, no orphan record or slot register is
//! left (`assert_invariants`), and nothing is listed that was not answered 201 unless its request got
//! no answer or an answer that says its outcome is unknown; a 503 `TenantBusy` never applied.
//!
//! Liveness is printed, not timed: whether B wrote while A was frozen is asserted only as "at all".

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use e2e::invariants::assert_invariants;
use e2e::nodes::{create_within, slots_taken, ChildNode};
use e2e::{unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;

const LEASE: Duration = Duration::from_millis(1000);
/// How long node A is frozen (or dead) each time: 2.5 leases.
const OUTAGE: Duration = Duration::from_millis(2500);
const OUTAGES: usize = 4;
/// When the first outage begins, and the time between one outage's end and the next's start.
const FIRST_AT: Duration = Duration::from_secs(2);
const BETWEEN: Duration = Duration::from_secs(2);
/// The storm: so many clients, each pausing between creates, for at most so long and so many.
const CLIENTS: usize = 8;
const PACE: Duration = Duration::from_millis(250);
const STORM: Duration = Duration::from_secs(20);
const MAX_CREATES: usize = 640;
/// A writer answers within 12 leases of its start whatever happens (`log::outcome_wait`); the
/// clients of node B and half of node A's wait longer than that, the other half of A's give up
/// during a freeze (their writes go on in the node after the thaw).
const PATIENT: Duration = Duration::from_secs(20);
const IMPATIENT: Duration = Duration::from_millis(1500);

/// The tests share one Redis and measure nothing, but each runs a storm: one at a time.
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

#[derive(Debug)]
struct Outcome {
    name: String,
    on_a: bool,
    /// The status and the error code (empty for a 2xx), or `None`: no answer in time.
    answer: Option<(u16, String)>,
    ended: Instant,
}

fn code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn storm(outage: Outage) {
    let Some(url) = TestApp::redis_url() else {
        eprintln!("skipped: REDIS_URL is not set (.ci/run starts a Redis for this test)");
        return;
    };
    let _one = serial();
    let b = TestApp::start(Options {
        backend: Backend::Redis(url.clone()),
        lease_ms: LEASE.as_millis() as u64,
        ..Options::default()
    });
    let a = Mutex::new(ChildNode::start(&url, &b.tokens, LEASE.as_millis() as u64));
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
    let mut windows = Vec::new();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (issued, a_url, b_url, token) = (&issued, &a_url, &b_url, &token);
                scope.spawn(move || {
                    let on_a = client % 2 == 0;
                    let timeout = if on_a && client % 4 == 2 { IMPATIENT } else { PATIENT };
                    let mut outcomes = Vec::new();
                    for step in 0.. {
                        if started.elapsed() >= STORM || issued.fetch_add(1, Ordering::Relaxed) >= MAX_CREATES {
                            break;
                        }
                        std::thread::sleep(PACE);
                        let name = format!("c{client}-{step}");
                        let url = if on_a { a_url.read().unwrap().clone() } else { b_url.clone() };
                        let answer = create_within(&url, token, &name, timeout).map(|(s, body)| (s, code(&body)));
                        outcomes.push(Outcome { name, on_a, answer, ended: Instant::now() });
                    }
                    outcomes
                })
            })
            .collect();
        std::thread::sleep(FIRST_AT);
        for _ in 0..OUTAGES {
            let from = Instant::now();
            match outage {
                Outage::Freeze => a.lock().unwrap().freeze(),
                Outage::Kill => a.lock().unwrap().kill(),
            }
            std::thread::sleep(OUTAGE);
            match outage {
                Outage::Freeze => a.lock().unwrap().thaw(),
                Outage::Kill => {
                    let fresh = ChildNode::start(&url, &b.tokens, LEASE.as_millis() as u64);
                    *a_url.write().unwrap() = fresh.url(SECRETS);
                    *a.lock().unwrap() = fresh;
                }
            }
            windows.push((from, Instant::now()));
            std::thread::sleep(BETWEEN);
        }
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let last_thaw = windows.last().unwrap().1;

    // Quiet: every request node A was serving when it froze answers within 12 leases of its start
    // (a monotonic clock runs on through a freeze), then the log stops moving.
    let quiet_by = last_thaw + LEASE * 12;
    let mut last = (slots_taken(&b, &tenant), Instant::now());
    while Instant::now() < quiet_by || last.1.elapsed() < LEASE * 3 {
        assert!(started.elapsed() < STORM + Duration::from_secs(60), "the log never went quiet");
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

    let count = |on_a: bool, f: &dyn Fn(&Option<(u16, String)>) -> bool| {
        outcomes.iter().filter(|o| o.on_a == on_a && f(&o.answer)).count()
    };
    let status = |s: u16| move |a: &Option<(u16, String)>| matches!(a, Some((x, _)) if *x == s);
    let busy = |a: &Option<(u16, String)>| matches!(a, Some((503, c)) if c == "TenantBusy");
    let unknown = |a: &Option<(u16, String)>| matches!(a, Some((503, c)) if c != "TenantBusy");
    let during_outage = outcomes
        .iter()
        .filter(|o| !o.on_a && matches!(o.answer, Some((201, _))))
        .filter(|o| windows.iter().any(|(from, to)| o.ended > *from + LEASE && o.ended < *to))
        .count();
    for (node, on_a) in [("A", true), ("B", false)] {
        eprintln!(
            "{outage:?} x{OUTAGES} of {OUTAGE:?}, lease {LEASE:?}, node {node}: {} requests: {} answered 201, {} 409, \
             {} 503 TenantBusy, {} 503 outcome unknown, {} unanswered",
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

    let listed = assert_invariants(&b, &tenant, &format!("after the storm ({outage:?})"));
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
}

#[test]
fn redis_a_node_frozen_mid_storm_loses_no_acknowledged_create_when_it_wakes() {
    storm(Outage::Freeze);
}

#[test]
fn redis_a_node_killed_mid_storm_loses_no_acknowledged_create() {
    storm(Outage::Kill);
}

