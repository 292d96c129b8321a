//! Does a call's cost grow with the size of its tenant (issue 17, part 3; issue 26, part 1)? Four
//! tenants of 10, 100, 500 and 1,000 secrets in one store, each secret on a registry of its own;
//! kept-alive p50/p99 of get, the pull-time lookup of one image (`?image=`), a 20-item page, the
//! quota read, export and create at each size, next to a hello-world component served by the same host in the
//! same run. Every round samples every call at every size in turn (and creates go round the sizes
//! too), so load from elsewhere falls on all sizes alike instead of on whichever size ran while it
//! lasted. Prints a growth table (each call's p50 at each size and its ratio to the p50 at 10
//! secrets), then the store calls each operation makes at 10 and 1,000 secrets, counted on the
//! domain's in-memory store (the same code as the components). Asserts nothing about speed.
//!
//! Run: `cargo bench -p e2e --bench tenant_growth` (a minute or two; `GROWTH_ROUNDS=N` for more
//! samples). The app runs on SQLite (Spin's default store) in a temporary directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::hello::{manifest_with_hello, HELLO};
use e2e::tokens::Tokens;
use e2e::wire::Connection;
use e2e::{structured, Options, TestApp, SECRETS};

const QUOTA: &str = "/v2/admin/resourceQuota/dockerRegistrySecrets";
/// The tenant holding `size` secrets.
fn tenant(size: usize) -> String {
    format!("growth-{size}")
}
const SIZES: [usize; 4] = [10, 100, 500, 1000];
/// Creates timed at each size (each one deleted again, untimed).
const CREATES: usize = 40;

fn rounds() -> usize {
    std::env::var("GROWTH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(400)
}

fn name(i: usize) -> String {
    format!("s-{i:04}")
}

/// Secret `i`'s registry: one per secret, as in a tenant that keeps one pull secret per registry.
fn registry(i: usize) -> String {
    format!("r{i:04}.registry.test")
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Sends one request on `connection`, checks its status, and returns how long it took.
fn timed(
    connection: &mut Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    expect: u16,
) -> Duration {
    let started = Instant::now();
    let answer = connection.send(method, path, headers, body).expect("the host answers");
    let took = started.elapsed();
    assert_eq!(answer.status, expect, "{method} {path}: {}", String::from_utf8_lossy(&answer.body));
    took
}

/// One kind of read, on a kept-alive connection of its own.
struct Probe {
    label: &'static str,
    path: String,
    auth: Option<String>,
    connection: Connection,
    samples: Vec<Duration>,
}

impl Probe {
    fn sample(&mut self) {
        let headers: Vec<(&str, &str)> = self.auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let took = timed(&mut self.connection, "GET", &self.path, &headers, b"", 200);
        self.samples.push(took);
    }
}

/// p50 and p99 of each call at one size.
struct AtSize {
    size: usize,
    calls: Vec<(&'static str, Duration, Duration)>,
}

/// The tokens of one size's tenant.
struct Tenant {
    size: usize,
    viewer: String,
    puller: String,
    admin: String,
}

fn probes(addr: SocketAddr, t: &Tenant) -> Vec<Probe> {
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let middle = name(t.size / 2);
    let probe = |label, path: String, auth| Probe {
        label,
        path,
        auth,
        connection: Connection::open(addr).expect("connect"),
        samples: Vec::new(),
    };
    vec![
        probe("hello-world", HELLO.to_owned(), None),
        probe("get", format!("{SECRETS}/{middle}"), bearer(&t.viewer)),
        probe(
            "lookup (?image=)",
            format!("/v2/pull/credentials?image={}/team/app:1", registry(t.size / 2)),
            bearer(&t.puller),
        ),
        probe(
            "20-item page",
            format!("{SECRETS}?$top=20&$skip={}", (t.size / 2).saturating_sub(10)),
            bearer(&t.viewer),
        ),
        probe("quota", QUOTA.to_owned(), bearer(&t.viewer)),
        probe("export", format!("{SECRETS}/{middle}/credentials"), bearer(&t.puller)),
    ]
}

fn measure(addr: SocketAddr, tenants: &[Tenant], rounds: usize) -> Vec<AtSize> {
    let mut by_size: Vec<Vec<Probe>> = tenants.iter().map(|t| probes(addr, t)).collect();
    // Warm-up, then interleaved rounds over every call at every size.
    for probe in by_size.iter_mut().flatten() {
        for _ in 0..20 {
            probe.sample();
        }
        probe.samples.clear();
    }
    for _ in 0..rounds {
        for probe in by_size.iter_mut().flatten() {
            probe.sample();
        }
    }
    // Creates: each tenant holds `size - 1` secrets while one is timed (its last one is deleted
    // first and created again at the end), and each created one is deleted again before the next.
    let mut writers: Vec<(Connection, String)> =
        tenants.iter().map(|t| (Connection::open(addr).expect("connect"), format!("Bearer {}", t.admin))).collect();
    let mut creates = vec![Vec::new(); tenants.len()];
    for (t, (connection, auth)) in tenants.iter().zip(&mut writers) {
        timed(connection, "DELETE", &format!("{SECRETS}/{}", name(t.size - 1)), &[("authorization", auth)], b"", 200);
    }
    for i in 0..CREATES {
        for ((connection, auth), samples) in writers.iter_mut().zip(&mut creates) {
            let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
            let body = structured(&format!("w-{i}"), &registry(10_000 + i), "bot", "pw").to_string();
            samples.push(timed(connection, "POST", SECRETS, &json, body.as_bytes(), 201));
            timed(connection, "DELETE", &format!("{SECRETS}/w-{i}"), &json[..1], b"", 200);
        }
    }
    for (t, (connection, auth)) in tenants.iter().zip(&mut writers) {
        let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let body = structured(&name(t.size - 1), &registry(t.size - 1), "bot", "pw").to_string();
        timed(connection, "POST", SECRETS, &json, body.as_bytes(), 201);
    }
    tenants
        .iter()
        .zip(by_size)
        .zip(creates)
        .map(|((t, probes), creates)| {
            let mut calls: Vec<_> =
                probes.iter().map(|p| (p.label, percentile(&p.samples, 0.5), percentile(&p.samples, 0.99))).collect();
            calls.push(("create", percentile(&creates, 0.5), percentile(&creates, 0.99)));
            AtSize { size: t.size, calls }
        })
        .collect()
}

/// Store calls (reads, writes) per operation on the domain's in-memory store, with `held` secrets.
fn store_calls(held: usize) -> Vec<(&'static str, u64, u64)> {
    use domain::clock::SystemClock;
    use domain::crypto::Keyring;
    use domain::dockerconfig::SecretRequest;
    use domain::identity::{Principal, Scope, Scopes};
    use domain::log::WritePolicy;
    use domain::name::TenantId;
    use domain::paging::ListQuery;
    use domain::quota::{resource_quota, set_tenant_quota, SetQuota};
    use domain::secrets::{self, Env};
    use domain::store::MemoryStore;

    let store = MemoryStore::new();
    let env = Env { store: &store, clock: &SystemClock, policy: WritePolicy::default() };
    let ring = Keyring::parse(&e2e::test_encryption_keys("k1")).unwrap();
    let who = Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: Scopes::empty().with(Scope::Admin).with(Scope::Viewer).with(Scope::Puller),
        subject: None,
        client: None,
    };
    let operator = Principal {
        tenant: TenantId::parse("platform").unwrap(),
        scopes: Scopes::empty().with(Scope::Operator),
        subject: None,
        client: None,
    };
    let body = |name: &str, registry: &str| {
        SecretRequest::from_json(
            serde_json::json!({"name": name, "registry": registry, "username": "u", "password": "p"}),
            true,
        )
        .unwrap()
    };
    set_tenant_quota(&env, &operator, "acme", SetQuota { limit: 1000 }).unwrap();
    for i in 0..held - 1 {
        secrets::create(&env, &who, &ring, body(&name(i), &registry(i))).unwrap();
    }
    let middle = name(held / 2);
    let page = ListQuery { top: 20, skip: (held / 2).saturating_sub(10), ..ListQuery::default() };
    let mut counted = Vec::new();
    let mut step = |label: &'static str, op: &mut dyn FnMut()| {
        let (r0, w0) = store.ops.snapshot();
        op();
        let (r1, w1) = store.ops.snapshot();
        counted.push((label, r1 - r0, w1 - w0));
    };
    step("create", &mut || drop(secrets::create(&env, &who, &ring, body("app", "app.registry.test")).unwrap()));
    step("get", &mut || drop(secrets::get(&env, &who, &middle).unwrap()));
    step("20-item page", &mut || drop(secrets::list(&env, &who, &page).unwrap()));
    step("quota", &mut || {
        resource_quota(&env, &who, false).unwrap();
    });
    // A static secret: the export never mints, so the minting component is never asked.
    struct NoMinting;
    impl domain::mint::MintComponent for NoMinting {
        fn mint(&self, _: &str, _: &str, _: &str) -> Result<domain::mint::Minted, domain::Error> {
            unreachable!("a static secret is never minted")
        }
    }
    let source = domain::mint::Source::Component { component: &NoMinting, authorization: "", request_id: "" };
    step("export", &mut || drop(domain::export::export(&env, &who, &ring, &middle, &source).unwrap()));
    let image = domain::resolve::Selector::parse(Some(&format!("image={}/team/app:1", registry(held / 2)))).unwrap();
    step("lookup (?image=)", &mut || {
        let found = domain::resolve::resolve(&env, &who, &ring, &image, &source).unwrap();
        assert_eq!(found.credentials.len(), 1, "one secret covers the image");
    });
    step("delete", &mut || drop(secrets::delete(&env, &who, "app", None).unwrap()));
    counted
}

fn main() {
    let started = Instant::now();
    let rounds = rounds();
    let tokens = Tokens::default();
    let app = TestApp::start_from(manifest_with_hello(), Options::default(), tokens.clone(), BTreeMap::new());
    let addr = app.app.addr();
    let operator = tokens.token("platform", &["regsecrets.operator"]);
    let mut tenants = Vec::new();
    for size in SIZES {
        let t = tenant(size);
        let raised = app
            .call("PUT", &format!("/v2/operator/tenants/{t}/quota"))
            .bearer(&operator)
            .json(&serde_json::json!({"limit": 1000}))
            .send();
        assert_eq!(raised.status, 200, "{}", raised.body);
        let admin = tokens.token(&t, &["regsecrets.admin"]);
        let auth = format!("Bearer {admin}");
        let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let mut grower = Connection::open(addr).expect("connect");
        for i in 0..size {
            let body = structured(&name(i), &registry(i), "bot", "pw").to_string();
            timed(&mut grower, "POST", SECRETS, &json, body.as_bytes(), 201);
        }
        eprintln!("tenant {t} holds {size} secrets ({:.0?} in)", started.elapsed());
        tenants.push(Tenant {
            size,
            viewer: tokens.token(&t, &["regsecrets.viewer"]),
            puller: tokens.token(&t, &["regsecrets.puller"]),
            admin,
        });
    }
    let table = measure(addr, &tenants, rounds);
    eprintln!("measured ({:.0?} in)", started.elapsed());

    let base = &table[0];
    println!(
        "\n## Growth with a tenant's size: kept-alive p50 (ms), and its ratio to the p50 at {} secrets",
        base.size
    );
    println!(
        "{rounds} rounds per read and {CREATES} creates per size, interleaved across the sizes (a create is timed with size - 1 secrets held)\n"
    );
    let mut header = "| call |".to_owned();
    let mut rule = "|---|".to_owned();
    for at in &table {
        header.push_str(&format!(" {} p50 | {} p99 | x |", at.size, at.size));
        rule.push_str("---|---|---|");
    }
    println!("{header}\n{rule}");
    for (i, (label, ..)) in base.calls.iter().enumerate() {
        let mut row = format!("| {label} |");
        for at in &table {
            let (_, p50, p99) = at.calls[i];
            row.push_str(&format!(
                " {} | {} | {:.2} |",
                ms(p50),
                ms(p99),
                p50.as_secs_f64() / base.calls[i].1.as_secs_f64()
            ));
        }
        println!("{row}");
    }
    println!(
        "\nhello-world p50 at each size: {}",
        table.iter().map(|at| ms(at.calls[0].1)).collect::<Vec<_>>().join(", ")
    );

    println!("\n## Store calls per operation (reads, writes), domain's in-memory store\n");
    let (small, large) = (store_calls(10), store_calls(1000));
    println!("| operation | 10 secrets | 1,000 secrets |\n|---|---|---|");
    for ((label, r0, w0), (_, r1, w1)) in small.iter().zip(&large) {
        println!("| {label} | {r0} reads, {w0} writes | {r1} reads, {w1} writes |");
    }
    println!("\nran in {:.0?}", started.elapsed());
}
