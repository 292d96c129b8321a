//! The same work on each store backend: SQLite, and Redis and DynamoDB (moto's server, one request
//! at a time) when `REDIS_URL` and `REGSECRETS_DYNAMO_URL` are set. Per backend: a create's and a
//! read's p50 latency and one tenant's create storm throughput, each also as a ratio to SQLite in
//! the same run (moto's absolute times mean nothing); and a tenant's keys and largest value at the
//! 1,000-secret quota against the backends' limits. Prints markdown; asserts only that every
//! request was answered as it must be (never a 5xx).
//! Run: `cargo bench -p e2e --bench backends` (a few minutes with DynamoDB).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{structured, unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;

const CREATES: usize = 40;
const READS: usize = 200;
const STORM_CLIENTS: usize = 16;
const STORM_WINDOW: Duration = Duration::from_secs(3);
const STORM_CAP: i64 = 300;
const QUOTA: usize = 1000;

struct Row {
    backend: String,
    create: Duration,
    read: Duration,
    storm: f64,
    refused: usize,
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn roomy_tenant(app: &TestApp, label: &str) -> (String, String) {
    let tenant = unique_tenant(label);
    let operator = app.token("platform", &["regsecrets.operator"]);
    let put = app
        .call("PUT", &format!("/v2/operator/tenants/{tenant}/quota"))
        .bearer(&operator)
        .json(&json!({"limit": QUOTA}));
    assert_eq!(put.send().status, 200);
    let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);
    (tenant, token)
}

/// `STORM_CLIENTS` clients creating in one tenant for `STORM_WINDOW` (or `STORM_CAP` creates):
/// creates per second, and how many were answered 503 `TenantBusy` (none other than 201 or that).
fn storm(app: &Arc<TestApp>, token: &str) -> (f64, usize) {
    let started = Instant::now();
    let budget = Arc::new(AtomicI64::new(STORM_CAP));
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..STORM_CLIENTS)
        .map(|client| {
            let (app, token, budget, refused) = (app.clone(), token.to_owned(), budget.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut written = 0u32;
                while started.elapsed() < STORM_WINDOW && budget.fetch_sub(1, Ordering::SeqCst) > 0 {
                    let reply =
                        app.create(&token, &structured(&format!("storm-{client}-{written}"), "ghcr.io", "u", "p"));
                    match reply.status {
                        201 => written += 1,
                        503 if reply.body.contains("TenantBusy") => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        other => panic!("a storm create answered {other}: {}", reply.body),
                    }
                }
                written
            })
        })
        .collect();
    let written: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    (written as f64 / started.elapsed().as_secs_f64(), refused.load(Ordering::SeqCst))
}

fn measure(backend: Backend) -> Row {
    let label = match &backend {
        Backend::Sqlite => "SQLite".to_owned(),
        Backend::Redis(_) => "Redis".to_owned(),
        Backend::Dynamo { .. } => "DynamoDB (moto)".to_owned(),
    };
    eprintln!("== {label}");
    let app = Arc::new(TestApp::start(Options { backend, ..Options::default() }));
    let (_, token) = roomy_tenant(&app, "bench-backends");
    let creates: Vec<Duration> = (0..CREATES)
        .map(|i| {
            let started = Instant::now();
            let reply = app.create(&token, &structured(&format!("one-{i}"), "ghcr.io", "u", "p"));
            assert_eq!(reply.status, 201, "{}", reply.body);
            started.elapsed()
        })
        .collect();
    let reads: Vec<Duration> = (0..READS)
        .map(|i| {
            let started = Instant::now();
            let reply = app.call("GET", &format!("{SECRETS}/one-{}", i % CREATES)).bearer(&token).send();
            assert_eq!(reply.status, 200, "{}", reply.body);
            started.elapsed()
        })
        .collect();
    let (_, storm_token) = roomy_tenant(&app, "bench-storm");
    let (storm, refused) = storm(&app, &storm_token);
    Row { backend: label, create: p50(creates), read: p50(reads), storm, refused }
}

/// One tenant filled to the quota (on SQLite: the sizes do not depend on the backend).
fn at_quota() -> (usize, usize) {
    let app = Arc::new(TestApp::start(Options::default()));
    let (tenant, token) = roomy_tenant(&app, "bench-full");
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (app, token, next) = (app.clone(), token.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= QUOTA {
                    break;
                }
                // Names as long as a real one: registry-style, 40 characters.
                let name = format!("team-{i:04}-registry-pull-secret-prod-eu1");
                let reply = app.create(
                    &token,
                    &structured(&name, "registry.example.com", "robot$team-pull", "p".repeat(40).as_str()),
                );
                assert_eq!(reply.status, 201, "{}", reply.body);
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let rows = app.tenant_rows(&tenant);
    let largest = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    (rows.len(), largest)
}

fn main() {
    let rows: Vec<Row> = Backend::all().into_iter().map(measure).collect();
    let sqlite = &rows[0];
    println!("\nPer backend: p50 of {CREATES} sequential creates and {READS} reads of one secret; one tenant's create storm ({STORM_CLIENTS} clients, {} s or {STORM_CAP} creates)\n", STORM_WINDOW.as_secs());
    println!(
        "| backend | create p50 | / SQLite | read p50 | / SQLite | storm creates/s | / SQLite | storm 503 TenantBusy |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.2} ms | {:.1} | {:.2} ms | {:.1} | {:.0} | {:.2} | {} |",
            row.backend,
            row.create.as_secs_f64() * 1e3,
            row.create.as_secs_f64() / sqlite.create.as_secs_f64(),
            row.read.as_secs_f64() * 1e3,
            row.read.as_secs_f64() / sqlite.read.as_secs_f64(),
            row.storm,
            row.storm / sqlite.storm,
            row.refused
        );
    }
    let (keys, largest) = at_quota();
    println!("\nOne tenant at its quota of {QUOTA} secrets (40-character names)\n");
    println!("| what | measured | limit | share of the limit |");
    println!("|---|---|---|---|");
    println!(
        "| the tenant's keys (quiet) | {keys} | Fermyon Cloud: 1,024 keys per store | {:.0} % |",
        keys as f64 * 100.0 / 1024.0
    );
    println!(
        "| its largest value (the view) | {:.1} KB | DynamoDB: 400 KB per item | {:.0} % |",
        largest as f64 / 1024.0,
        largest as f64 * 100.0 / (400.0 * 1024.0)
    );
}
