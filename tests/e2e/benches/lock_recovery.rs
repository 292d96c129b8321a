//! How long a tenant cannot be written after a node dies mid-write with N writers queued behind it,
//! for N = 1, 10 and 100, on SQLite and (when `REDIS_URL` is set) on Redis; and the tenant's create
//! throughput before and after. Prints a markdown table; asserts nothing about speed.
//! Run: `cargo bench -p e2e --bench lock_recovery` (about two minutes with Redis).
//!
//! - SQLite, one host: the holder traps after writing its record (before its commit) and N queued
//!   writers trap right after taking their slots: N + 1 dead slots at once.
//! - Redis, two nodes on one `redis-server`: a holder dies on the surviving node (trap), N writers
//!   queue behind it on the other node (a `testhost serve` child process), which is then SIGKILLed.
//!
//! The table gives the number of writers that had taken a slot when the node died (on Redis, those
//! the victim had queued by then, out of N sent). Recovery is measured from the death (the trap, or the SIGKILL) to the 201 of a writer that
//! arrives on the survivor right after it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::nodes::{slots_taken, trapped_create, try_create, ChildNode, TrapPositions};
use e2e::{structured, unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;

const LEASE: Duration = Duration::from_millis(3000);
const QUEUED: [usize; 3] = [1, 10, 100];
const CLIENTS: usize = 8;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(2);
const THROUGHPUT_CAP: i64 = 400;

struct Row {
    backend: &'static str,
    queued: usize,
    recovery: Duration,
    before: f64,
    after: f64,
}

fn app(backend: Backend) -> Arc<TestApp> {
    Arc::new(TestApp::start(Options {
        backend,
        lease_ms: LEASE.as_millis() as u64,
        trap_injection: true,
        ..Options::default()
    }))
}

fn roomy_tenant(app: &TestApp) -> (String, String) {
    let tenant = unique_tenant("bench-lock");
    let operator = app.token("platform", &["regsecrets.operator"]);
    let put = app
        .call("PUT", &format!("/v2/operator/tenants/{tenant}/quota"))
        .bearer(&operator)
        .json(&json!({"limit": 1000}));
    assert_eq!(put.send().status, 200);
    let token = app.token(&tenant, &["regsecrets.admin"]);
    (tenant, token)
}

/// Creates per second of one tenant, `CLIENTS` clients for `THROUGHPUT_WINDOW` or until they have
/// written `THROUGHPUT_CAP` secrets (Redis is fast enough to reach the quota's 1,000 otherwise).
fn throughput(app: &Arc<TestApp>, token: &str, label: &str) -> f64 {
    let started = Instant::now();
    let budget = Arc::new(AtomicI64::new(THROUGHPUT_CAP));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (app, token, label, budget) = (app.clone(), token.to_owned(), label.to_owned(), budget.clone());
            std::thread::spawn(move || {
                let mut written = 0u32;
                while started.elapsed() < THROUGHPUT_WINDOW && budget.fetch_sub(1, Ordering::SeqCst) > 0 {
                    let name = format!("{label}-{client}-{written}");
                    let reply = app.create(&token, &structured(&name, "ghcr.io", "u", "p"));
                    assert_eq!(reply.status, 201, "{}", reply.body);
                    written += 1;
                }
                written
            })
        })
        .collect();
    let written: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    written as f64 / started.elapsed().as_secs_f64()
}

/// The time until a writer that arrives now gets its 201.
fn recovery(app: &TestApp, token: &str, died: Instant) -> Duration {
    let reply = app.create(token, &structured("recovered", "ghcr.io", "u", "p"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    died.elapsed()
}

fn sqlite(traps: TrapPositions, app: &Arc<TestApp>, queued: usize) -> Row {
    let (_, token) = roomy_tenant(app);
    let before = throughput(app, &token, "before");
    assert_eq!(trapped_create(app, &token, "holder", traps.after_record).status, 500);
    let threads: Vec<_> = (0..queued)
        .map(|i| {
            let (app, token) = (app.clone(), token.clone());
            std::thread::spawn(move || trapped_create(&app, &token, &format!("queued-{i}"), traps.after_slot).status)
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap() == 500));
    let died = Instant::now();
    let recovery = recovery(app, &token, died);
    let after = throughput(app, &token, "after");
    Row { backend: "SQLite", queued, recovery, before, after }
}

fn redis(url: &str, traps: TrapPositions, survivor: &Arc<TestApp>, queued: usize) -> Row {
    let (tenant, token) = roomy_tenant(survivor);
    let mut victim = ChildNode::start(url, &survivor.tokens, LEASE.as_millis() as u64);
    let before = throughput(survivor, &token, "before");
    // A writer died mid-write; the victim's writers queue behind its slot.
    assert_eq!(trapped_create(survivor, &token, "holder", traps.after_record).status, 500);
    let held_at = slots_taken(survivor, &tenant);
    let target = victim.url(SECRETS);
    let queue: Vec<_> = (0..queued)
        .map(|i| {
            let (target, token) = (target.clone(), token.clone());
            std::thread::spawn(move || try_create(&target, &token, &format!("queued-{i}")))
        })
        .collect();
    // Long enough for the writers to take their slots, well short of the lease after which they
    // would take the stalled slot over themselves. (Reading the counter meanwhile would list the whole Redis.)
    std::thread::sleep(Duration::from_millis(300 + 10 * queued as u64).min(LEASE / 2));
    victim.kill();
    let died = Instant::now();
    let finished: Vec<u16> = queue.into_iter().filter_map(|t| t.join().unwrap()).collect();
    assert!(finished.is_empty(), "queued writers answered on the dead node: {finished:?}");
    let recovery = recovery(survivor, &token, died);
    // Less the recovered writer's own slot (a takeover takes none).
    let in_queue = slots_taken(survivor, &tenant) - held_at - 1;
    assert!((1..=queued as u64).contains(&in_queue), "{in_queue} of {queued} writers queued when the node died");
    let after = throughput(survivor, &token, "after");
    Row { backend: "Redis, 2 nodes", queued: in_queue as usize, recovery, before, after }
}

fn main() {
    let mut rows = Vec::new();
    let app = app(Backend::Sqlite);
    let traps = TrapPositions::find(&app);
    for queued in QUEUED {
        rows.push(sqlite(traps, &app, queued));
    }
    match TestApp::redis_url() {
        Some(url) => {
            let survivor = self::app(Backend::Redis(url.clone()));
            let traps = TrapPositions::find(&survivor);
            for queued in QUEUED {
                rows.push(redis(&url, traps, &survivor, queued));
            }
        }
        None => eprintln!("note: REDIS_URL is not set, so only SQLite was measured"),
    }
    println!(
        "\nLock recovery after a writer's death (lease {} ms; {CLIENTS} clients for throughput)\n",
        LEASE.as_millis()
    );
    println!("| backend | dead writers queued | recovery | in leases | creates/s before | creates/s after |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} s | {:.2} | {:.0} | {:.0} |",
            row.backend,
            row.queued,
            row.recovery.as_secs_f64(),
            row.recovery.as_secs_f64() / LEASE.as_secs_f64(),
            row.before,
            row.after
        );
    }
}
