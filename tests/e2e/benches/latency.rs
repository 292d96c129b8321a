//! What each call costs next to a hello-world component, on the host that serves as Spin 4.0.2
//! does (no `TCP_NODELAY`), in one run: kept-alive and fresh connections, p50 and p99, then where
//! a read's time goes and what a create costs against its floor. Prints markdown; asserts nothing
//! about speed.
//!
//! Run: `cargo bench -p e2e --bench latency` (about a minute; `LATENCY_ROUNDS=N` for more samples).
//! The app runs on SQLite (Spin's default store) in a temporary directory; tokens are RS256, what
//! most identity providers issue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::hello::{manifest_with_hello, HELLO};
use e2e::tokens::{Alg, Tokens};
use e2e::wire::Connection;
use e2e::{structured, Options, TestApp, SECRETS};

const QUOTA: &str = "/v2/admin/resourceQuota/dockerRegistrySecrets";
const TENANT: &str = "bench";
/// Secrets the read tenant holds while reads are measured.
const HELD: usize = 20;

fn rounds() -> usize {
    std::env::var("LATENCY_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000)
}

/// One kind of request, timed on a kept-alive connection of its own and on fresh connections.
struct Probe {
    label: &'static str,
    method: &'static str,
    path: String,
    token: Option<String>,
    expect: u16,
    kept: Option<Connection>,
    kept_alive: Vec<Duration>,
    fresh: Vec<Duration>,
}

impl Probe {
    fn new(label: &'static str, path: impl Into<String>, token: Option<&str>, expect: u16) -> Probe {
        Probe {
            label,
            method: "GET",
            path: path.into(),
            token: token.map(|t| format!("Bearer {t}")),
            expect,
            kept: None,
            kept_alive: Vec::new(),
            fresh: Vec::new(),
        }
    }

    fn once(&self, connection: &mut Connection) -> Duration {
        let headers: Vec<(&str, &str)> = self.token.iter().map(|t| ("authorization", t.as_str())).collect();
        let started = Instant::now();
        let answer = connection.send(self.method, &self.path, &headers, b"").expect("the host answers");
        let took = started.elapsed();
        assert_eq!(
            answer.status,
            self.expect,
            "{} {}: {}",
            self.label,
            self.path,
            String::from_utf8_lossy(&answer.body)
        );
        took
    }

    fn sample_kept_alive(&mut self, addr: SocketAddr) {
        let mut connection = self.kept.take().unwrap_or_else(|| Connection::open(addr).expect("connect"));
        let took = self.once(&mut connection);
        self.kept_alive.push(took);
        self.kept = Some(connection);
    }

    fn sample_fresh(&mut self, addr: SocketAddr) {
        let started = Instant::now();
        let mut connection = Connection::open(addr).expect("connect");
        self.once(&mut connection);
        self.fresh.push(started.elapsed());
    }
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.1}", a.as_secs_f64() / b.as_secs_f64())
}

fn stalls(samples: &[Duration]) -> usize {
    samples.iter().filter(|d| **d > Duration::from_millis(20)).count()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One store write as the app's store makes it (the host's SQLite store: Spin's schema, an upsert
/// in autocommit mode, so a commit with its fsyncs), on the disk the app's store is on.
fn sqlite_commit(dir: &std::path::Path) -> Duration {
    let kv = testhost::kv::sqlite::SqliteKv::open(Some(&dir.join("commit-probe.db"))).expect("sqlite");
    let samples: Vec<Duration> = (0..100u32)
        .map(|i| {
            let started = Instant::now();
            kv.set("default", &format!("k{}", i % 10), &i.to_le_bytes().repeat(50)).expect("set");
            started.elapsed()
        })
        .collect();
    percentile(&samples, 0.5)
}

/// Creates, modifies and deletes one secret per round on kept-alive connections.
fn writes(addr: SocketAddr, admin: &str, rounds: usize) -> [(&'static str, Vec<Duration>); 4] {
    let auth = format!("Bearer {admin}");
    let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut connection = Connection::open(addr).expect("connect");
    let (mut create, mut modify, mut delete, mut taken) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let held = structured("held-00", "ghcr.io", "bot", "pw").to_string();
    for i in 0..rounds {
        let name = format!("w{i}");
        let body = structured(&name, "ghcr.io", "bot", "pw").to_string();
        let mut timed = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], expect: u16| {
            let started = Instant::now();
            let answer = connection.send(method, path, headers, body).expect("the host answers");
            assert_eq!(answer.status, expect, "{method} {path}: {}", String::from_utf8_lossy(&answer.body));
            started.elapsed()
        };
        taken.push(timed("POST", SECRETS, &json, held.as_bytes(), 409));
        create.push(timed("POST", SECRETS, &json, body.as_bytes(), 201));
        let patch = structured(&name, "ghcr.io", "bot", "pw2").to_string();
        modify.push(timed("PATCH", &format!("{SECRETS}/{name}"), &json, patch.as_bytes(), 200));
        delete.push(timed("DELETE", &format!("{SECRETS}/{name}"), &json[..1], b"", 200));
    }
    [("create", create), ("modify", modify), ("delete", delete), ("create refused, name taken (409)", taken)]
}

fn main() {
    let rounds = rounds();
    let load_before = load();
    let tokens = Tokens::default();
    let app = TestApp::start_from(manifest_with_hello(), Options::default(), tokens.clone(), BTreeMap::new());
    let addr = app.app.addr();
    let rs256 = |scopes: &[&str]| tokens.sign(Alg::Rs256, &tokens.claims(TENANT, scopes));
    let (admin, viewer, puller) =
        (rs256(&["regsecrets.admin"]), rs256(&["regsecrets.viewer"]), rs256(&["regsecrets.puller"]));
    // A token of its own for reads that never succeed, so it is never cached: verified every time.
    let never_cached = rs256(&["regsecrets.viewer", "bench.uncached"]);
    for i in 0..HELD {
        assert_eq!(app.create(&admin, &structured(&format!("held-{i:02}"), "ghcr.io", "bot", "pw")).status, 201);
    }
    let one = format!("{SECRETS}/held-07");

    let mut calls = vec![
        Probe::new("hello-world component", HELLO, None, 200),
        Probe::new("list", SECRETS, Some(&viewer), 200),
        Probe::new("get one", one.clone(), Some(&viewer), 200),
        Probe::new("resource quota", QUOTA, Some(&viewer), 200),
        Probe::new("export (credentials)", format!("{one}/credentials"), Some(&puller), 200),
    ];
    let mut stages = [
        Probe::new("gateway alone (404 of an unknown /v2 path)", "/v2/nowhere", None, 404),
        Probe::new("endpoint alone, refused before any store call (401: list without a token)", SECRETS, None, 401),
        Probe::new(
            "gateway, chaining hop and endpoint, refused before any store call (401: an operator path)",
            "/v2/operator/tenants/bench/quota",
            None,
            401,
        ),
        Probe::new(
            "get, token verified in full (a missing name is never cached)",
            format!("{SECRETS}/nope"),
            Some(&never_cached),
            404,
        ),
    ];
    // Warm-up (and the verified-token cache filled), then interleaved rounds, so that load from
    // elsewhere on the machine falls on every call alike.
    for probe in calls.iter_mut().chain(stages.iter_mut()) {
        for _ in 0..20 {
            probe.sample_kept_alive(addr);
            probe.sample_fresh(addr);
        }
        probe.kept_alive.clear();
        probe.fresh.clear();
    }
    for round in 0..rounds {
        for probe in calls.iter_mut().chain(stages.iter_mut()) {
            probe.sample_kept_alive(addr);
            if round % 3 == 0 {
                probe.sample_fresh(addr);
            }
        }
    }
    let write_rounds = (rounds / 20).max(20);
    let written = writes(addr, &admin, write_rounds);
    let commit = sqlite_commit(app.app.sqlite_path().and_then(|p| p.parent()).expect("the app is on SQLite"));

    let hello = &calls[0];
    let (h50, h99) = (percentile(&hello.kept_alive, 0.5), percentile(&hello.kept_alive, 0.99));
    let (hf50, hf99) = (percentile(&hello.fresh, 0.5), percentile(&hello.fresh, 0.99));
    println!("\n## Latency: {rounds} kept-alive rounds per read (a third of them also on a fresh connection), {write_rounds} write rounds");
    println!("load average before: {load_before}; after: {}\n", load());
    println!("| call | kept-alive p50 | p99 | p50 / hello | p99 / hello | stalls > 20 ms | fresh p50 | fresh p99 | fresh p50 / hello |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for probe in &calls {
        let (k50, k99) = (percentile(&probe.kept_alive, 0.5), percentile(&probe.kept_alive, 0.99));
        let (f50, f99) = (percentile(&probe.fresh, 0.5), percentile(&probe.fresh, 0.99));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            probe.label,
            ms(k50),
            ms(k99),
            ratio(k50, h50),
            ratio(k99, h99),
            stalls(&probe.kept_alive),
            ms(f50),
            ms(f99),
            ratio(f50, hf50)
        );
    }
    for (label, samples) in &written {
        let (k50, k99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        println!(
            "| {label} | {} | {} | {} | {} | {} | | | |",
            ms(k50),
            ms(k99),
            ratio(k50, h50),
            ratio(k99, h99),
            stalls(samples)
        );
    }
    println!("\nhello-world on fresh connections: p50 {}, p99 {}", ms(hf50), ms(hf99));

    println!("\n## Where a read's time goes (kept-alive)\n");
    println!("| stage | instances | p50 | p99 | p50 - hello |");
    println!("|---|---|---|---|---|");
    let rows = [
        (hello.label, "1", &hello.kept_alive),
        (stages[0].label, "1", &stages[0].kept_alive),
        (stages[1].label, "1", &stages[1].kept_alive),
        (stages[2].label, "2", &stages[2].kept_alive),
        ("list: the token from the verified-token cache, the index read", "1", &calls[1].kept_alive),
        (stages[3].label, "1", &stages[3].kept_alive),
    ];
    for (label, instances, samples) in rows {
        let p50 = percentile(samples, 0.5);
        println!(
            "| {label} | {instances} | {} | {} | {} |",
            ms(p50),
            ms(percentile(samples, 0.99)),
            ms(p50.saturating_sub(h50))
        );
    }

    // The same read of one name, verified in full versus answered from the cache.
    let verification = percentile(&stages[3].kept_alive, 0.5).saturating_sub(percentile(&calls[2].kept_alive, 0.5));
    let create = percentile(&written[0].1, 0.5);
    // create's writes: increment seq, set r:<k>, set s:<k>:0, delete v:<k-W>, set v:<k>, delete
    // s:<k>:0, delete s:<k-1>:0 (see secrets.rs).
    let floor = h50 + verification + commit * 7;
    println!("\n## Create against its floor\n");
    println!("one store write (the host's SQLite store, a commit with its fsyncs, p50 of 100): {}", ms(commit));
    println!(
        "floor = hello {} + one RS256 verification {} + 7 store writes x {} = {}",
        ms(h50),
        ms(verification),
        ms(commit),
        ms(floor)
    );
    println!("create p50 {} = {}x its floor", ms(create), ratio(create, floor));
    let refused = percentile(&written[3].1, 0.5);
    println!(
        "of which before any store write (a create refused for a taken name: instances, chaining, verification, \
         reads): {}; the log's calls: {}",
        ms(refused),
        ms(create.saturating_sub(refused))
    );
}
