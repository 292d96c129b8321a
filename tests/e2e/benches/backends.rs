//! The same work on each store backend: SQLite, and Redis and DynamoDB (moto's server, one request
//! at a time) when `REDIS_URL` and `REGSECRETS_DYNAMO_URL` are set. Per backend: a create's and a
//! read's p50 latency and one tenant's create storm throughput, each also as a ratio to SQLite in
//! the same run (moto's absolute times mean nothing); and a tenant's keys and largest value at the
//! 1,000-secret quota against the backends' limits. Also per backend, from the test host's counts
//! (`testhost::kv::calls`): the store calls a create and a read make, by kind and key family; in
//! the storm, how many `increment`s of the tenant's `P:seq` were refused for contention (and
//! retried by the component); and on DynamoDB the API requests and capacity units each costs (what
//! AWS bills). Prints markdown; asserts only that every request was answered as it must be (never
//! a 5xx).
//! Run: `cargo bench -p e2e --bench backends` (a few minutes with DynamoDB).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use e2e::{structured, unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;
use testhost::kv::calls::{CallKind, Outcome, Tally};

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
    /// Store calls of the sequential creates, the reads, and the storm, and how many the storm wrote.
    create_calls: Counts,
    read_calls: Counts,
    storm_calls: Counts,
    storm_written: u64,
}

type Counts = BTreeMap<CallKind, Tally>;

/// What happened between two snapshots of the host's counts.
fn since(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(kind, tally)| {
            let was = before.get(kind).copied().unwrap_or_default();
            let calls = tally.calls - was.calls;
            (calls > 0).then(|| {
                let diff = Tally {
                    calls,
                    read_units: tally.read_units - was.read_units,
                    write_units: tally.write_units - was.write_units,
                };
                (kind.clone(), diff)
            })
        })
        .collect()
}

/// Calls made by the guests (not DynamoDB's requests), optionally of one kind, family and outcome.
fn guest(counts: &Counts, kind: Option<&str>, family: Option<&str>, outcome: Option<Outcome>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| !k.kind.starts_with("dynamodb:"))
        .filter(|(k, _)| kind.is_none_or(|want| k.kind == want))
        .filter(|(k, _)| family.is_none_or(|want| k.family == want))
        .filter(|(k, _)| outcome.is_none_or(|want| k.outcome == want))
        .map(|(_, t)| t.calls)
        .sum()
}

/// DynamoDB's requests: how many, and the read and write capacity units they consumed.
fn dynamodb(counts: &Counts) -> (u64, f64, f64) {
    counts
        .iter()
        .filter(|(k, _)| k.kind.starts_with("dynamodb:"))
        .fold((0, 0.0, 0.0), |(n, r, w), (_, t)| (n + t.calls, r + t.read_units, w + t.write_units))
}

/// `get P:v:* 3.0, increment P:seq 1.0, …`: calls per operation by kind and family, most first.
fn breakdown(counts: &Counts, per: f64, dynamodb_requests: bool) -> String {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for (k, t) in counts {
        if k.kind.starts_with("dynamodb:") != dynamodb_requests {
            continue;
        }
        let mut label = match dynamodb_requests {
            true => k.kind.trim_start_matches("dynamodb:").to_owned(),
            false => format!("{} {}", k.kind, k.family),
        };
        match k.outcome {
            Outcome::Ok => {}
            Outcome::Contended => label.push_str(" (contended)"),
            Outcome::Failed => label.push_str(" (failed)"),
        }
        *by.entry(label).or_default() += t.calls;
    }
    let mut by: Vec<(String, u64)> = by.into_iter().collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by.iter().map(|(label, n)| format!("{label} {:.1}", *n as f64 / per)).collect::<Vec<_>>().join(", ")
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
fn storm(app: &Arc<TestApp>, token: &str) -> (f64, usize, u64) {
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
    (written as f64 / started.elapsed().as_secs_f64(), refused.load(Ordering::SeqCst), written as u64)
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
    let before = app.app.kv_calls();
    let creates: Vec<Duration> = (0..CREATES)
        .map(|i| {
            let started = Instant::now();
            let reply = app.create(&token, &structured(&format!("one-{i}"), "ghcr.io", "u", "p"));
            assert_eq!(reply.status, 201, "{}", reply.body);
            started.elapsed()
        })
        .collect();
    let after_creates = app.app.kv_calls();
    let reads: Vec<Duration> = (0..READS)
        .map(|i| {
            let started = Instant::now();
            let reply = app.call("GET", &format!("{SECRETS}/one-{}", i % CREATES)).bearer(&token).send();
            assert_eq!(reply.status, 200, "{}", reply.body);
            started.elapsed()
        })
        .collect();
    let after_reads = app.app.kv_calls();
    let (_, storm_token) = roomy_tenant(&app, "bench-storm");
    let before_storm = app.app.kv_calls();
    let (storm, refused, storm_written) = storm(&app, &storm_token);
    let after_storm = app.app.kv_calls();
    Row {
        backend: label,
        create: p50(creates),
        read: p50(reads),
        storm,
        refused,
        create_calls: since(&before, &after_creates),
        read_calls: since(&after_creates, &after_reads),
        storm_calls: since(&before_storm, &after_storm),
        storm_written,
    }
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
    let (creates, reads) = (CREATES as f64, READS as f64);
    println!("\nStore calls per operation (guest calls to the key-value store, from the test host's counts): a create and a read of the sequential runs above, and a create of the storm, where `increment P:seq` refused for contention is retried by the component\n");
    println!("| backend | per create | of which `get P:v:*` | per read | per storm create | `increment P:seq` in the storm | refused for contention (retried) |");
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let written = row.storm_written.max(1) as f64;
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            row.backend,
            guest(&row.create_calls, None, None, None) as f64 / creates,
            guest(&row.create_calls, Some("get"), Some("P:v:*"), None) as f64 / creates,
            guest(&row.read_calls, None, None, None) as f64 / reads,
            guest(&row.storm_calls, None, None, None) as f64 / written,
            guest(&row.storm_calls, Some("increment"), Some("P:seq"), None),
            guest(&row.storm_calls, Some("increment"), Some("P:seq"), Some(Outcome::Contended)),
        );
    }
    println!("\nThe same calls by kind and key family (per operation)\n");
    println!("| backend | a create | a read | a storm create |");
    println!("|---|---|---|---|");
    for row in &rows {
        let written = row.storm_written.max(1) as f64;
        println!(
            "| {} | {} | {} | {} |",
            row.backend,
            breakdown(&row.create_calls, creates, false),
            breakdown(&row.read_calls, reads, false),
            breakdown(&row.storm_calls, written, false)
        );
    }
    for row in rows.iter().filter(|r| dynamodb(&r.create_calls).0 > 0) {
        let written = row.storm_written.max(1) as f64;
        println!("\nOn {}: DynamoDB API requests (what AWS bills) per operation, and the capacity units they consumed (strongly consistent reads: 1 read unit per 4 KB of item; writes 1 unit per KB, transactions twice)\n", row.backend);
        println!("| operation | requests | by operation | read units | write units |");
        println!("|---|---|---|---|---|");
        for (what, counts, per) in [
            ("a create", &row.create_calls, creates),
            ("a read", &row.read_calls, reads),
            ("a storm create", &row.storm_calls, written),
        ] {
            let (requests, read_units, write_units) = dynamodb(counts);
            println!(
                "| {what} | {:.1} | {} | {:.1} | {:.1} |",
                requests as f64 / per,
                breakdown(counts, per, true),
                read_units / per,
                write_units / per
            );
        }
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
    // Computed from the size, as DynamoDB bills: one item is served by one partition, whose
    // ceiling is 3,000 read and 1,000 write units a second.
    let (read_units, write_units) = (largest.div_ceil(4096).max(1), largest.div_ceil(1024).max(1));
    println!(
        "| on DynamoDB, one strongly consistent read of that view | {read_units} read units | 3,000 read units/s per partition | at most {} reads of it a second |",
        3000 / read_units
    );
    println!("| on DynamoDB, writing one view of that size | {write_units} write units | 1,000 write units/s per partition | |");
}
