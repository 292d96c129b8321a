//! Does a tenant's list and get stay as fast when the store holds many other tenants?
//! Fills the SQLite store with 10,000 other tenants × 20 secrets, and prints list and get
//! p50/p99 against the nearly empty store and the full one, in the same run. Then prints the
//! store reads and writes each operation makes (counted on the domain's in-memory store, which
//! runs the same code as the components). Run: `cargo bench -p e2e --bench store_scaling`.

use std::time::{Duration, Instant};

use domain::log::op::{apply, Actor, Op};
use domain::name::TenantId;
use domain::store::TenantKeys;
use domain::view::View;
use e2e::{structured, Options, TestApp, SECRETS};

const OTHER_TENANTS: usize = 10_000;
const SECRETS_EACH: usize = 20;
const SAMPLES: usize = 300;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn measure(app: &TestApp, token: &str) -> [(Duration, Duration); 2] {
    let mut list = Vec::new();
    let mut get = Vec::new();
    for i in 0..SAMPLES {
        let started = Instant::now();
        assert_eq!(app.call("GET", SECRETS).bearer(token).send().status, 200);
        list.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(app.call("GET", &format!("{SECRETS}/bench-{}", i % SECRETS_EACH)).bearer(token).send().status, 200);
        get.push(started.elapsed());
    }
    [percentiles(list), percentiles(get)]
}

/// Other tenants' rows, written straight into the SQLite file in one transaction, in exactly the
/// layout the components write (the log's counter, the view, one record key per secret).
fn fill(db: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(db).expect("open the store");
    let tx = conn.transaction().unwrap();
    {
        let mut insert =
            tx.prepare("INSERT OR REPLACE INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)").unwrap();
        for t in 0..OTHER_TENANTS {
            let keys = TenantKeys::new(&TenantId::parse(&format!("other-{t}")).unwrap());
            let mut view = View::empty();
            for s in 0..SECRETS_EACH {
                let slot = s as u64 + 1;
                let actor = Actor { operator: false, admin: true };
                let op = Op::Create {
                    name: format!("secret-{s}"),
                    registries: vec!["ghcr.io".into()],
                    actor,
                    now: 0,
                    verification: None,
                    kind: Default::default(),
                };
                view = apply(&view, slot, Some(&op)).unwrap().view;
                let record =
                    format!(r#"{{"name":"secret-{s}","sealed":{{"kid":"k1","n":"AAAA","ct":"{}"}}}}"#, "A".repeat(200));
                insert.execute(rusqlite::params![keys.record(slot).as_str(), record.as_bytes()]).unwrap();
            }
            let head = SECRETS_EACH as i64;
            insert.execute(rusqlite::params![keys.seq().as_str(), head.to_le_bytes().to_vec()]).unwrap();
            insert.execute(rusqlite::params![keys.view(head as u64).as_str(), view.bytes()]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn print_store_calls() {
    use domain::clock::SystemClock;
    use domain::crypto::Keyring;
    use domain::dockerconfig::SecretRequest;
    use domain::identity::{Principal, Scope, Scopes};
    use domain::log::WritePolicy;
    use domain::paging::ListQuery;
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
    let body = || {
        SecretRequest::from_json(
            serde_json::json!({"name": "app", "registry": "ghcr.io", "username": "u", "password": "p"}),
            true,
        )
        .unwrap()
    };
    secrets::create(
        &env,
        &who,
        &ring,
        SecretRequest::from_json(
            serde_json::json!({"name": "warm", "registry": "ghcr.io", "username": "u", "password": "p"}),
            true,
        )
        .unwrap(),
    )
    .unwrap();
    let step = |label: &str, op: &mut dyn FnMut()| {
        let (r0, w0) = store.ops.snapshot();
        op();
        let (r1, w1) = store.ops.snapshot();
        println!("  {label:<28} {:>2} reads  {:>2} writes", r1 - r0, w1 - w0);
    };
    println!("store calls per operation (a write is one fsync on Spin's SQLite store):");
    step("create", &mut || drop(secrets::create(&env, &who, &ring, body()).unwrap()));
    step("create (name taken: 409)", &mut || drop(secrets::create(&env, &who, &ring, body()).unwrap_err()));
    step("modify", &mut || drop(secrets::modify(&env, &who, &ring, "app", body(), None).unwrap()));
    step("list", &mut || drop(secrets::list(&env, &who, &ListQuery::default()).unwrap()));
    step("get", &mut || drop(secrets::get(&env, &who, "app").unwrap()));
    // A static secret: the export never mints, so the minting component is never asked.
    struct NoMinting;
    impl domain::mint::MintComponent for NoMinting {
        fn mint(&self, _: &str, _: &str, _: &str) -> Result<domain::mint::Minted, domain::Error> {
            unreachable!("a static secret is never minted")
        }
    }
    let source = domain::mint::Source::Component { component: &NoMinting, authorization: "", request_id: "" };
    step("export", &mut || drop(domain::export::export(&env, &who, &ring, "app", &source).unwrap()));
    step("delete", &mut || drop(secrets::delete(&env, &who, "app", None).unwrap()));
}

fn main() {
    print_store_calls();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kv.db");
    let app = TestApp::start(Options { sqlite_path: Some(db.clone()), ..Options::default() });
    let token = app.token("bench", &["regsecrets.admin", "regsecrets.viewer"]);
    for s in 0..SECRETS_EACH {
        assert_eq!(app.create(&token, &structured(&format!("bench-{s}"), "ghcr.io", "u", "p")).status, 201);
    }
    measure(&app, &token); // warm-up
    let empty = measure(&app, &token);
    let started = Instant::now();
    fill(&db);
    println!(
        "filled {OTHER_TENANTS} other tenants x {SECRETS_EACH} secrets ({} keys) in {:.1?}",
        OTHER_TENANTS * (SECRETS_EACH + 2),
        started.elapsed()
    );
    let full = measure(&app, &token);
    println!(
        "{:<6} {:>14} {:>14} {:>14} {:>14} {:>8}",
        "call", "empty p50", "empty p99", "full p50", "full p99", "p50 x"
    );
    for (label, (e, f)) in ["list", "get"].iter().zip(empty.iter().zip(full.iter())) {
        println!(
            "{label:<6} {:>14.2?} {:>14.2?} {:>14.2?} {:>14.2?} {:>8.2}",
            e.0,
            e.1,
            f.0,
            f.1,
            f.0.as_secs_f64() / e.0.as_secs_f64()
        );
    }
}
