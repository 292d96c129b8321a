//! What keys by discovery cost (`domain::identity::discovery`), and that a warm request costs what it
//! did with a key set given as is. On the built wasm in the test host, RS256 tokens (what most
//! providers issue), p50 of:
//! - the first request of an issuer whose keys are not in the store yet: the discovery document and
//!   the key set fetched from a local provider (loopback HTTP), then the token verified and
//!   remembered; one sample per issuer, the app trusting that many issuers;
//! - a read (`GET /{name}`) and a write (`PATCH /{name}`) with the same token again and again
//!   (answered from the verified-token cache), and with a new token each time (verified in full
//!   against the key set, read from the store when discovered), for keys given as is (`auth_jwks`)
//!   and for keys discovered: two apps side by side, their samples taken in turn.
//!
//! Run: `cargo bench -p e2e --bench keys_cost`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::registry::{Reply, Server};
use e2e::{structured, Options, TestApp, Tokens, SECRETS};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

const SAMPLES: usize = 200;
/// Issuers of the cold-start measurement: one first request each.
const COLD: usize = 40;

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed(call: impl FnOnce() -> u16, expect: u16) -> Duration {
    let started = Instant::now();
    assert_eq!(call(), expect);
    started.elapsed()
}

/// A local OpenID provider for issuers `<origin>/i/<n>`, all with the same RS256 key.
struct Provider {
    server: Server,
    key_fetches: Arc<AtomicUsize>,
}

impl Provider {
    fn start(jwks: Value) -> Provider {
        let key_fetches = Arc::new(AtomicUsize::new(0));
        let port = Arc::new(Mutex::new(0u16));
        let (count, own_port) = (key_fetches.clone(), port.clone());
        let server = Server::start(
            None,
            Arc::new(move |request| {
                let origin = format!("http://127.0.0.1:{}", own_port.lock().unwrap());
                let path = request.path().to_owned();
                if let Some(issuer) = path.strip_suffix("/.well-known/openid-configuration") {
                    let issuer = format!("{origin}{issuer}");
                    return Reply::json(200, &json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}));
                }
                if path.ends_with("/jwks") {
                    count.fetch_add(1, Ordering::SeqCst);
                    return Reply::json(200, &jwks).header("cache-control", "public, max-age=3600");
                }
                Reply::json(404, &json!({}))
            }),
        );
        *port.lock().unwrap() = server.port();
        Provider { server, key_fetches }
    }

    fn issuer(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/i/{n}", self.server.port())
    }
}

struct Signer {
    key: RS256KeyPair,
    issued: AtomicUsize,
}

impl Signer {
    /// A new token (its own `sub`) of `issuer` for the bench tenant.
    fn token(&self, issuer: &str) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let custom = json!({"tenant": "bench", "scope": "regsecrets.admin regsecrets.viewer"});
        let claims = Claims::with_custom_claims(
            custom.as_object().unwrap().clone(),
            jwt_simple::prelude::Duration::from_hours(1),
        )
        .with_issuer(issuer)
        .with_audience("regsecrets")
        .with_subject(format!("bench-{n}"));
        self.key.sign(claims).unwrap()
    }
}

/// One app and its tokens: the same token again and again (cached), and new ones (verified in full).
struct Side<'a> {
    app: &'a TestApp,
    cached: String,
    fresh: Vec<String>,
}

const PRESENT: &str = "present";

impl Side<'_> {
    fn new<'a>(app: &'a TestApp, token: &dyn Fn() -> String) -> Side<'a> {
        let cached = token();
        let side = Side { app, cached, fresh: (0..2 * SAMPLES).map(|_| token()).collect() };
        assert_eq!(app.create(&side.cached, &Self::body()).status, 201);
        for _ in 0..20 {
            side.read(&side.cached);
            side.write(&side.cached);
        }
        side
    }

    fn body() -> Value {
        structured(PRESENT, "registry.example.com", "bot", "pw")
    }

    fn read(&self, token: &str) -> Duration {
        let path = format!("{SECRETS}/{PRESENT}");
        timed(|| self.app.call("GET", &path).bearer(token).send().status, 200)
    }

    fn write(&self, token: &str) -> Duration {
        let path = format!("{SECRETS}/{PRESENT}");
        timed(|| self.app.call("PATCH", &path).bearer(token).json(&Self::body()).send().status, 200)
    }
}

/// One timed call of a side, with the `i`-th sample's token.
type Call = dyn Fn(&Side, usize) -> Duration;

/// p50 of reads and writes with the cached token and with new ones, the two sides' samples taken
/// in turn so that the machine's load weighs on both alike.
fn compare(a: &Side, b: &Side) -> [(Duration, Duration); 4] {
    let mut out = [(Duration::ZERO, Duration::ZERO); 4];
    let calls: [&Call; 4] = [
        &|side, _| side.read(&side.cached),
        &|side, i| side.read(&side.fresh[i]),
        &|side, _| side.write(&side.cached),
        &|side, i| side.write(&side.fresh[SAMPLES + i]),
    ];
    for (k, call) in calls.iter().enumerate() {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..SAMPLES {
            xs.push(call(a, i));
            ys.push(call(b, i));
        }
        out[k] = (p50(xs), p50(ys));
    }
    out
}

fn main() {
    let signer = Signer { key: RS256KeyPair::generate(2048).unwrap().with_key_id("bench-rsa"), issued: 0.into() };
    let public = signer.key.public_key().to_components();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "bench-rsa", "use": "sig", "alg": "RS256",
        "n": domain::jwks::encode_member(&public.n), "e": domain::jwks::encode_member(&public.e)}]});
    let provider = Provider::start(jwks.clone());
    let origin = format!("http://127.0.0.1:{}", provider.server.port());

    // Keys given as is, as before discovery (the same key, in auth_jwks), and one discovered issuer:
    // two apps side by side.
    let given = BTreeMap::from([
        ("auth_jwks".to_owned(), jwks.to_string()),
        ("auth_issuer".to_owned(), "https://given.example".to_owned()),
    ]);
    let issuers = json!([{"issuer": provider.issuer(0), "audience": "regsecrets"}]).to_string();
    let discovered = BTreeMap::from([
        ("auth_jwks".to_owned(), String::new()),
        ("auth_issuer".to_owned(), String::new()),
        ("auth_issuers".to_owned(), issuers),
        ("auth_keys_origin_1".to_owned(), origin.clone()),
    ]);
    let given_app = TestApp::start_with(Options::default(), Tokens::new(), given);
    let discovered_app = TestApp::start_with(Options::default(), Tokens::new(), discovered);
    let before = Side::new(&given_app, &|| signer.token("https://given.example"));
    let after = Side::new(&discovered_app, &|| signer.token(&provider.issuer(0)));
    let warm = compare(&before, &after);
    assert_eq!(provider.key_fetches.load(Ordering::SeqCst), 1, "one fetch served every request");
    drop((before, after));
    drop((given_app, discovered_app));

    // The first request of each of COLD issuers, none of whose keys are in the store yet.
    let many: Vec<Value> =
        (1..=COLD).map(|n| json!({"issuer": provider.issuer(n), "audience": "regsecrets"})).collect();
    let cold_vars = BTreeMap::from([
        ("auth_jwks".to_owned(), String::new()),
        ("auth_issuer".to_owned(), String::new()),
        ("auth_issuers".to_owned(), Value::from(many).to_string()),
        ("auth_keys_origin_1".to_owned(), origin),
    ]);
    let app = TestApp::start_with(Options::default(), Tokens::new(), cold_vars);
    let first = signer.token(&provider.issuer(1));
    assert_eq!(app.create(&first, &structured("present", "registry.example.com", "bot", "pw")).status, 201);
    let present = format!("{SECRETS}/present");
    let fetches_before = provider.key_fetches.load(Ordering::SeqCst);
    let mut cold = Vec::new();
    let mut stored = Vec::new();
    for n in 2..=COLD {
        let issuer = provider.issuer(n);
        let (a, b) = (signer.token(&issuer), signer.token(&issuer));
        cold.push(timed(|| app.call("GET", &present).bearer(&a).send().status, 200));
        stored.push(timed(|| app.call("GET", &present).bearer(&b).send().status, 200));
    }
    assert_eq!(provider.key_fetches.load(Ordering::SeqCst) - fetches_before, COLD - 1, "one fetch per issuer");

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "RS256 tokens; p50 in ms over {SAMPLES} requests each (first requests: one per issuer, {} issuers)",
        COLD - 1
    );
    println!();
    println!("| call | keys given (`auth_jwks`) | keys discovered | x |");
    println!("|---|---|---|---|");
    let names = [
        "read, token from the cache",
        "read, new token (verified in full)",
        "write (PATCH), token from the cache",
        "write (PATCH), new token (verified in full)",
    ];
    for (name, (given, discovered)) in names.iter().zip(warm) {
        let ratio = discovered.as_secs_f64() / given.as_secs_f64();
        println!("| {name} | {} | {} | {ratio:.2} |", ms(given), ms(discovered));
    }
    println!();
    println!("| first read of an issuer (40 issuers trusted) | p50 |");
    println!("|---|---|");
    println!("| keys not in the store: discovery document and key set fetched, token verified | {} |", ms(p50(cold)));
    println!("| keys in the store: new token verified | {} |", ms(p50(stored)));
}
