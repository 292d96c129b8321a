//! Reads under load (issue 26, part 2): 16 clients, each on its own kept-alive connection, send one
//! kind of request back to back to one host holding a tenant of 1,000 secrets (each on a registry
//! of its own): a hello-world component, get, export and the pull-time lookup of one image; and, to
//! tell where a read's time goes, a component of ours that answers without the store (the liveness
//! probe), a get refused before any store call (no token), and a get on a tenant of 10. Every
//! call runs in several short turns, round-robin with the others, so that load from elsewhere falls
//! on every call alike. Per backend (SQLite; Redis when `REDIS_URL` is set), it prints each call's
//! requests per second and p50/p99, and their ratios to hello-world's in the same run; then what a
//! read moves (the view's size, and the store calls of each read on the domain's in-memory store).
//! Asserts only that every request was answered as it must be.
//!
//! Run: `cargo bench -p e2e --bench throughput` (about a minute per backend; `THROUGHPUT_TURNS=N`
//! turns of `THROUGHPUT_TURN_MS` each per call, default 4 × 1500 ms).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use e2e::hello::{manifest_with_hello, HELLO};
use e2e::tokens::Tokens;
use e2e::wire::Connection;
use e2e::{structured, Backend, Options, TestApp, SECRETS};

const CLIENTS: usize = 16;
const SECRET_COUNT: usize = 1000;
const TENANT: &str = "load-1000";
const SMALL_TENANT: &str = "load-10";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn name(i: usize) -> String {
    format!("s-{i:04}")
}

fn registry(i: usize) -> String {
    format!("r{i:04}.registry.test")
}

/// One kind of request: its label, path and `Authorization` header.
struct Call {
    label: &'static str,
    path: String,
    auth: Option<String>,
    /// What it must answer.
    status: u16,
}

/// What the clients measured of one call, over all its turns.
#[derive(Default)]
struct Tally {
    requests: usize,
    busy: Duration,
    samples: Vec<Duration>,
}

impl Tally {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.busy.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.samples.sort();
        self.samples[((self.samples.len() - 1) as f64 * p).round() as usize]
    }
}

/// One turn: `CLIENTS` connections send `call` back to back for `length`; returns the latencies.
fn turn(addr: SocketAddr, call: &Call, length: Duration, tally: &mut Tally) {
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (start, path, auth, status) = (start.clone(), call.path.clone(), call.auth.clone(), call.status);
            let mut connection = Connection::open(addr).expect("connect");
            std::thread::spawn(move || {
                let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
                // One request before the clock starts, so that the turn times kept-alive requests.
                assert_eq!(connection.send("GET", &path, &headers, b"").expect("answer").status, status);
                start.wait();
                let until = Instant::now() + length;
                let mut samples = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    let answer = connection.send("GET", &path, &headers, b"").expect("the host answers");
                    samples.push(sent.elapsed());
                    assert_eq!(answer.status, status, "{path}: {}", String::from_utf8_lossy(&answer.body));
                }
                samples
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for client in clients {
        let samples = client.join().expect("a client");
        tally.requests += samples.len();
        tally.samples.extend(samples);
    }
    tally.busy += began.elapsed();
}

struct Measured {
    backend: &'static str,
    rows: Vec<(&'static str, f64, Duration, Duration)>,
}

fn measure(backend: Backend, label: &'static str, turns: u64, length: Duration) -> Measured {
    let tokens = Tokens::default();
    let options = Options { backend, ..Options::default() };
    let app = TestApp::start_from(manifest_with_hello(), options, tokens.clone(), BTreeMap::new());
    let addr = app.app.addr();
    let operator = tokens.token("platform", &["regsecrets.operator"]);
    let raised = app
        .call("PUT", &format!("/v2/operator/tenants/{TENANT}/quota"))
        .bearer(&operator)
        .json(&serde_json::json!({"limit": SECRET_COUNT}))
        .send();
    assert_eq!(raised.status, 200, "{}", raised.body);
    let admin = format!("Bearer {}", tokens.token(TENANT, &["regsecrets.admin"]));
    let json = [("authorization", admin.as_str()), ("content-type", "application/json")];
    let mut grower = Connection::open(addr).expect("connect");
    let filling = Instant::now();
    for i in 0..SECRET_COUNT {
        let body = structured(&name(i), &registry(i), "bot", "pw").to_string();
        let answer = grower.send("POST", SECRETS, &json, body.as_bytes()).expect("answer");
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    }
    eprintln!("{label}: {SECRET_COUNT} secrets created in {:.0?}", filling.elapsed());
    // A tenant of 10, to tell what the 1,000-secret view's bytes cost from what every read costs.
    let small_admin = format!("Bearer {}", tokens.token(SMALL_TENANT, &["regsecrets.admin"]));
    for i in 0..10 {
        let json = [("authorization", small_admin.as_str()), ("content-type", "application/json")];
        let body = structured(&name(i), &registry(i), "bot", "pw").to_string();
        let answer = grower.send("POST", SECRETS, &json, body.as_bytes()).expect("answer");
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    }
    let small_viewer = Some(format!("Bearer {}", tokens.token(SMALL_TENANT, &["regsecrets.viewer"])));
    let viewer = Some(format!("Bearer {}", tokens.token(TENANT, &["regsecrets.viewer"])));
    let puller = Some(format!("Bearer {}", tokens.token(TENANT, &["regsecrets.puller"])));
    let middle = SECRET_COUNT / 2;
    let calls = [
        Call { label: "hello-world", path: HELLO.to_owned(), auth: None, status: 200 },
        Call {
            label: "liveness probe (a component of ours, no store, no token)",
            path: "/healthz".to_owned(),
            auth: None,
            status: 200,
        },
        Call {
            label: "get, no token (401 before any store call)",
            path: format!("{SECRETS}/{}", name(middle)),
            auth: None,
            status: 401,
        },
        Call { label: "get, tenant of 10", path: format!("{SECRETS}/{}", name(5)), auth: small_viewer, status: 200 },
        Call { label: "get", path: format!("{SECRETS}/{}", name(middle)), auth: viewer, status: 200 },
        Call {
            label: "export",
            path: format!("{SECRETS}/{}/credentials", name(middle)),
            auth: puller.clone(),
            status: 200,
        },
        Call {
            label: "lookup (?image=)",
            path: format!("/v2/pull/credentials?image={}/team/app:1", registry(middle)),
            auth: puller,
            status: 200,
        },
    ];
    let mut tallies: Vec<Tally> = calls.iter().map(|_| Tally::default()).collect();
    for _ in 0..turns {
        for (call, tally) in calls.iter().zip(&mut tallies) {
            turn(addr, call, length, tally);
        }
    }
    let rows = calls
        .iter()
        .zip(&mut tallies)
        .map(|(call, tally)| (call.label, tally.per_second(), tally.percentile(0.5), tally.percentile(0.99)))
        .collect();
    Measured { backend: label, rows }
}

/// The view's size at 1,000 secrets, and the store calls of each read, on the domain's in-memory store.
fn what_a_read_moves() -> (usize, Vec<(&'static str, u64)>) {
    use domain::clock::SystemClock;
    use domain::crypto::Keyring;
    use domain::dockerconfig::SecretRequest;
    use domain::identity::{Principal, Scope, Scopes};
    use domain::log::WritePolicy;
    use domain::name::TenantId;
    use domain::quota::{set_tenant_quota, SetQuota};
    use domain::secrets::{self, Env};
    use domain::store::MemoryStore;

    let store = MemoryStore::new();
    let env = Env { store: &store, clock: &SystemClock, policy: WritePolicy::default() };
    let ring = Keyring::parse(&e2e::test_encryption_keys("k1")).unwrap();
    let principal = |tenant: &str, scopes: Scopes| Principal {
        tenant: TenantId::parse(tenant).unwrap(),
        scopes,
        subject: None,
        client: None,
    };
    let who = principal("acme", Scopes::empty().with(Scope::Admin).with(Scope::Viewer).with(Scope::Puller));
    let operator = principal("platform", Scopes::empty().with(Scope::Operator));
    set_tenant_quota(&env, &operator, "acme", SetQuota { limit: SECRET_COUNT as u32 }).unwrap();
    for i in 0..SECRET_COUNT {
        let body = serde_json::json!({"name": name(i), "registry": registry(i), "username": "bot", "password": "pw"});
        secrets::create(&env, &who, &ring, SecretRequest::from_json(body, true).unwrap()).unwrap();
    }
    let view = store.dump().into_iter().filter(|(key, _)| key.contains(":v:")).map(|(_, v)| v.len()).max().unwrap_or(0);
    struct NoMinting;
    impl domain::mint::MintComponent for NoMinting {
        fn mint(&self, _: &str, _: &str, _: &str) -> Result<domain::mint::Minted, domain::Error> {
            unreachable!("a static secret is never minted")
        }
    }
    let source = domain::mint::Source::Component { component: &NoMinting, authorization: "", request_id: "" };
    let middle = name(SECRET_COUNT / 2);
    let image =
        domain::resolve::Selector::parse(Some(&format!("image={}/team/app:1", registry(SECRET_COUNT / 2)))).unwrap();
    let mut calls = Vec::new();
    let mut count = |label: &'static str, op: &mut dyn FnMut()| {
        let (reads, _) = store.ops.snapshot();
        op();
        calls.push((label, store.ops.snapshot().0 - reads));
    };
    count("get", &mut || drop(secrets::get(&env, &who, &middle).unwrap()));
    count("export", &mut || drop(domain::export::export(&env, &who, &ring, &middle, &source).unwrap()));
    count("lookup (?image=)", &mut || drop(domain::resolve::resolve(&env, &who, &ring, &image, &source).unwrap()));
    (view, calls)
}

fn main() {
    let started = Instant::now();
    let turns = env_or("THROUGHPUT_TURNS", 4);
    let length = Duration::from_millis(env_or("THROUGHPUT_TURN_MS", 1500));
    let mut backends = vec![(Backend::Sqlite, "SQLite")];
    match TestApp::redis_url() {
        Some(url) => backends.push((Backend::Redis(url), "Redis")),
        None => eprintln!("note: REDIS_URL is not set, so Redis was left out"),
    }
    let measured: Vec<Measured> =
        backends.into_iter().map(|(backend, label)| measure(backend, label, turns, length)).collect();

    println!(
        "\n{CLIENTS} clients on kept-alive connections, one tenant of {SECRET_COUNT} secrets; {turns} turns of {} ms per call, round-robin\n",
        length.as_millis()
    );
    println!("| backend | call | requests/s | / hello-world | p50 ms | p99 ms | p99 / hello-world |");
    println!("|---|---|---|---|---|---|---|");
    for m in &measured {
        let (_, hello_rate, _, hello_p99) = m.rows[0];
        for &(label, rate, p50, p99) in &m.rows {
            println!(
                "| {} | {label} | {rate:.0} | {:.0} % | {:.2} | {:.2} | {:.1} |",
                m.backend,
                rate * 100.0 / hello_rate,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                p99.as_secs_f64() / hello_p99.as_secs_f64()
            );
        }
    }
    let (view, calls) = what_a_read_moves();
    println!(
        "\nWhat a read moves at {SECRET_COUNT} secrets: the view is {:.1} KB; store reads per call: {}",
        view as f64 / 1024.0,
        calls.iter().map(|(label, reads)| format!("{label} {reads}")).collect::<Vec<_>>().join(", ")
    );
    eprintln!("ran in {:.0?}", started.elapsed());
}
