//! Every rule of discovery against a scripted provider (a stub [`Sender`] that counts what it is
//! asked) and a clock set by hand.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jwt_simple::prelude::Duration;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::identity::cache::{authenticate_cached, Lookup};
use crate::identity::{verify_with, AuthSettings, Verified};
use crate::jwks::encode_member;
use crate::store::MemoryStore;

const ISSUER: &str = "https://idp.test/realms/acme";
const AUDIENCE: &str = "regsecrets";
/// 10 s into a 30-second window.
const T0: u64 = 1_700_000_020_000;
const DISCOVERY: &str = "https://idp.test/realms/acme/.well-known/openid-configuration";
const JWKS_URI: &str = "https://keys.idp.test/certs";

/// What the scripted provider publishes and how it answers.
#[derive(Clone)]
struct Script {
    /// Public keys published (`kid` -> x).
    keys: BTreeMap<String, Vec<u8>>,
    /// The discovery document's `issuer`.
    document_issuer: String,
    jwks_uri: String,
    cache_control: Option<String>,
    down: bool,
    /// Extra bytes of padding in the JWKS answer.
    padding: usize,
    declared_length: Option<usize>,
}

struct Provider {
    script: Mutex<Script>,
    asked: Mutex<Vec<String>>,
}

impl Provider {
    fn new() -> Arc<Provider> {
        Arc::new(Provider {
            script: Mutex::new(Script {
                keys: BTreeMap::new(),
                document_issuer: ISSUER.into(),
                jwks_uri: JWKS_URI.into(),
                cache_control: None,
                down: false,
                padding: 0,
                declared_length: None,
            }),
            asked: Mutex::new(Vec::new()),
        })
    }

    fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.script.lock().unwrap());
    }

    fn publish(&self, kid: &str, key: &Ed25519KeyPair) {
        self.script(|s| {
            s.keys.insert(kid.into(), key.public_key().to_bytes());
        });
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Fetches of the key set (each fetch reads the document, then the keys).
    fn key_fetches(&self) -> usize {
        self.asked().iter().filter(|u| *u == JWKS_URI).count()
    }
}

impl Sender for Provider {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        assert_eq!(request.method, "GET");
        self.asked.lock().unwrap().push(request.url.to_string());
        let script = self.script.lock().unwrap().clone();
        if script.down {
            return Err(FetchError::Unreachable);
        }
        let mut headers = Vec::new();
        let body = match request.url.as_str() {
            DISCOVERY => json!({"issuer": script.document_issuer, "jwks_uri": script.jwks_uri,
                                "token_endpoint": "https://idp.test/token"})
            .to_string(),
            JWKS_URI => {
                if let Some(value) = &script.cache_control {
                    headers.push(("cache-control".to_string(), value.clone()));
                }
                if let Some(length) = script.declared_length {
                    headers.push(("content-length".to_string(), length.to_string()));
                }
                let keys: Vec<Value> = script
                    .keys
                    .iter()
                    .map(|(kid, x)| json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": encode_member(x)}))
                    .collect();
                json!({"keys": keys, "padding": "p".repeat(script.padding)}).to_string()
            }
            _ => return Ok(Fetched { status: 404, headers, body: Vec::new() }),
        };
        let mut body = body.into_bytes();
        body.truncate(MAX_RESPONSE_BYTES);
        Ok(Fetched { status: 200, headers, body })
    }
}

fn settings() -> AuthSettings {
    AuthSettings {
        jwks: String::new(),
        issuer: String::new(),
        audience: String::new(),
        tenant_claim: "tenant".into(),
        issuers: json!([{"issuer": ISSUER, "audience": AUDIENCE}]).to_string(),
        keys_stale_secs: DEFAULT_STALE_SECS,
    }
}

fn token(key: &Ed25519KeyPair, kid: &str, now_ms: u64) -> String {
    token_for(key, kid, ISSUER, AUDIENCE, json!({"tenant": "acme", "scope": "regsecrets.admin"}), now_ms)
}

fn token_for(key: &Ed25519KeyPair, kid: &str, iss: &str, aud: &str, custom: Value, now_ms: u64) -> String {
    let Value::Object(custom) = custom else { panic!() };
    let now = now_ms / 1000;
    let mut claims: JWTClaims<Map<String, Value>> =
        Claims::with_custom_claims(custom, Duration::from_secs(3600)).with_issuer(iss).with_audience(aud);
    claims.issued_at = Some(Duration::from_secs(now));
    claims.invalid_before = Some(Duration::from_secs(now));
    claims.expires_at = Some(Duration::from_secs(now + 48 * 3600));
    key.clone().with_key_id(kid).sign(claims).unwrap()
}

struct World {
    store: Arc<MemoryStore>,
    provider: Arc<Provider>,
    clock: ManualClock,
    settings: AuthSettings,
}

impl World {
    fn new() -> World {
        World {
            store: Arc::new(MemoryStore::new()),
            provider: Provider::new(),
            clock: ManualClock::at(T0),
            settings: settings(),
        }
    }

    fn at(&self, ms: u64) -> &World {
        self.clock.set(ms);
        self
    }

    fn verify(&self, token: &str) -> Result<Verified, Error> {
        let discovery = Discovery {
            store: &*self.store,
            sender: &*self.provider,
            clock: &self.clock,
            stale_secs: self.settings.keys_stale_secs,
        };
        verify_with(Some(&format!("Bearer {token}")), &self.settings, Some(&discovery), self.clock.now_ms() / 1000)
    }

    fn cached(&self, token: &str) -> Result<(crate::identity::Principal, Lookup), Error> {
        let discovery = Discovery {
            store: &*self.store,
            sender: &*self.provider,
            clock: &self.clock,
            stale_secs: self.settings.keys_stale_secs,
        };
        authenticate_cached(
            &*self.store,
            Some(&format!("Bearer {token}")),
            &self.settings,
            Some(&discovery),
            self.clock.now_ms() / 1000,
        )
    }
}

fn unauthenticated(result: Result<Verified, Error>) -> AuthFailure {
    match result {
        Err(Error::Unauthenticated(why)) => why,
        other => panic!("expected 401, got {other:?}"),
    }
}

fn unavailable_after(result: Result<Verified, Error>) -> u64 {
    match result {
        Err(e @ Error::IdentityProviderUnavailable { .. }) => {
            assert_eq!(e.status(), 503);
            e.retry_after_secs().unwrap()
        }
        other => panic!("expected 503, got {other:?}"),
    }
}

const SEC: u64 = 1000;

#[test]
fn max_age_is_honoured_within_five_minutes_and_a_day() {
    assert_eq!(freshness(None), 3600);
    assert_eq!(freshness(Some("public, max-age=7200")), 7200);
    assert_eq!(freshness(Some("max-age=60")), 300);
    assert_eq!(freshness(Some("Max-Age=100000, must-revalidate")), 86_400);
    assert_eq!(freshness(Some("no-cache")), 300);
    assert_eq!(freshness(Some("no-store, max-age=9000")), 300);
    assert_eq!(freshness(Some("max-age=soon")), 300);
    assert_eq!(freshness(Some("private")), 3600);
}

#[test]
fn keys_are_discovered_once_and_shared_through_the_store_for_their_max_age() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.cache_control = Some("max-age=600".into()));
    let verified = world.verify(&token(&key, "k1", T0)).unwrap();
    assert_eq!(verified.principal.tenant.as_str(), "acme");
    assert_eq!(verified.keys_fresh_until, Some(T0 / 1000 + 600));
    assert_eq!(world.provider.asked(), vec![DISCOVERY.to_string(), JWKS_URI.to_string()]);

    // Another node, another component: the same store, no fetch while fresh.
    let other = World {
        store: world.store.clone(),
        provider: Provider::new(),
        clock: ManualClock::at(T0),
        settings: settings(),
    };
    other.at(T0 + 599 * SEC).verify(&token(&key, "k1", T0)).unwrap();
    assert!(other.provider.asked().is_empty());

    // Past max-age: fetched again.
    world.at(T0 + 600 * SEC).verify(&token(&key, "k1", T0)).unwrap();
    assert_eq!(world.provider.key_fetches(), 2);
}

#[test]
fn a_rotated_key_is_fetched_on_first_sight_and_a_removed_one_stops_within_the_lifetime() {
    let world = World::new();
    let (old, new) = (Ed25519KeyPair::generate(), Ed25519KeyPair::generate());
    world.provider.publish("old", &old);
    world.provider.script(|s| s.cache_control = Some("max-age=300".into()));
    world.verify(&token(&old, "old", T0)).unwrap();

    // The provider rotates: new key first, old one kept a while, then removed.
    world.provider.publish("new", &new);
    world.at(T0 + 40 * SEC).verify(&token(&new, "new", T0)).unwrap();
    assert_eq!(world.provider.key_fetches(), 2, "an unknown kid fetches again");
    world.provider.script(|s| {
        s.keys.remove("old");
    });
    world.at(T0 + 339 * SEC).verify(&token(&old, "old", T0)).expect("still within the set's lifetime");
    assert_eq!(unauthenticated(world.at(T0 + 340 * SEC).verify(&token(&old, "old", T0))), AuthFailure::UnknownKey);
    world.verify(&token(&new, "new", T0)).unwrap();
}

#[test]
fn a_storm_of_unknown_kids_costs_one_fetch_per_issuer_per_thirty_seconds() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.verify(&token(&key, "k1", T0)).unwrap();
    let forger = Ed25519KeyPair::generate();
    for i in 0..200u64 {
        // 20 s of requests, all in the window after the warm-up's.
        let now = T0 + 20_000 + i * 100;
        let failure = unauthenticated(world.at(now).verify(&token(&forger, &format!("random-{i}"), now)));
        assert_eq!(failure, AuthFailure::UnknownKey);
    }
    assert_eq!(world.provider.key_fetches(), 2, "the first fetch, then one for the storm's window");
    for i in 0..100u64 {
        let now = T0 + 50_000 + i * 200;
        let _ = world.at(now).verify(&token(&forger, &format!("again-{i}"), now));
    }
    assert_eq!(world.provider.key_fetches(), 3, "one more in the next window");
    world.verify(&token(&key, "k1", T0)).expect("the real key still verifies");

    // Counters of past windows do not pile up: each fetcher deletes the one before.
    let claims = world.store.dump().into_keys().filter(|k| k.starts_with("auth:keys:") && k.matches(':').count() == 3);
    assert_eq!(claims.count(), 1);
}

#[test]
fn concurrent_requests_with_unknown_kids_make_at_most_one_fetch() {
    let store = Arc::new(MemoryStore::new());
    let provider = Provider::new();
    let key = Ed25519KeyPair::generate();
    provider.publish("k1", &key);
    let warm =
        World { store: store.clone(), provider: provider.clone(), clock: ManualClock::at(T0), settings: settings() };
    warm.verify(&token(&key, "k1", T0)).unwrap();
    let now = T0 + 25 * SEC;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (store, provider) = (store.clone(), provider.clone());
            std::thread::spawn(move || {
                let world = World { store, provider, clock: ManualClock::at(now), settings: settings() };
                let forged = token(&Ed25519KeyPair::generate(), &format!("forged-{i}"), now);
                world.verify(&forged).is_ok()
            })
        })
        .collect();
    let accepted = threads.into_iter().map(|t| t.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(accepted, 0);
    assert_eq!(provider.key_fetches(), 2, "the warm-up's fetch and one for all sixteen");
}

#[test]
fn last_good_keys_verify_for_a_bounded_time_while_the_provider_is_down() {
    let mut world = World::new();
    world.settings.keys_stale_secs = 7200;
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.verify(&token(&key, "k1", T0)).unwrap(); // fresh for an hour (no max-age)
    world.provider.script(|s| s.down = true);
    let stale = world.at(T0 + 3600 * SEC).verify(&token(&key, "k1", T0)).expect("stale keys verify");
    assert_eq!(stale.keys_fresh_until, Some(T0 / 1000 + 3600), "and say they are past their freshness");
    world.at(T0 + (3600 + 7199) * SEC).verify(&token(&key, "k1", T0)).expect("within the bound");
    let retry = unavailable_after(world.at(T0 + (3600 + 7200) * SEC).verify(&token(&key, "k1", T0)));
    assert!((1..=30).contains(&retry), "{retry}");
    // The provider is back: fetched again (in a new window), and fresh.
    world.provider.script(|s| s.down = false);
    world.at(T0 + (3600 + 7230) * SEC).verify(&token(&key, "k1", T0)).unwrap();
}

#[test]
fn a_token_needing_keys_we_lack_is_503_while_the_provider_is_down_and_401_when_it_answers() {
    let world = World::new();
    let (key, next) = (Ed25519KeyPair::generate(), Ed25519KeyPair::generate());
    world.provider.publish("k1", &key);
    world.verify(&token(&key, "k1", T0)).unwrap();
    world.provider.script(|s| s.down = true);
    let now = T0 + 45 * SEC;
    let retry = unavailable_after(world.at(now).verify(&token(&next, "k2", now)));
    assert_eq!(retry, 5, "the next window starts in 5 s");
    // Others in the same window learn it from the store, without fetching.
    let fetches = world.provider.asked().len();
    assert!(matches!(world.verify(&token(&next, "k3", now)), Err(Error::IdentityProviderUnavailable { .. })));
    assert_eq!(world.provider.asked().len(), fetches);
    world.verify(&token(&key, "k1", T0)).expect("the keys we have still verify");
    // Up again, next window: the provider does not have k2 either: 401.
    world.provider.script(|s| s.down = false);
    assert_eq!(unauthenticated(world.at(now + 30 * SEC).verify(&token(&next, "k2", now))), AuthFailure::UnknownKey);
}

#[test]
fn without_any_keys_an_unreachable_provider_is_503() {
    let world = World::new();
    world.provider.script(|s| s.down = true);
    let key = Ed25519KeyPair::generate();
    unavailable_after(world.verify(&token(&key, "k1", T0)));
    // A second request in the window does not fetch, and says the same.
    unavailable_after(world.verify(&token(&key, "k1", T0)));
    assert_eq!(world.provider.asked().len(), 1);
}

#[test]
fn a_document_naming_another_issuer_gives_no_keys() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.document_issuer = "https://idp.test/realms/other".into());
    unavailable_after(world.verify(&token(&key, "k1", T0)));
    assert_eq!(world.provider.asked(), vec![DISCOVERY.to_string()], "the key set is never read");
    let why = match world.verify(&token(&key, "k1", T0)) {
        Err(e) => e.log_reason().unwrap(),
        Ok(_) => panic!(),
    };
    assert!(why.contains("another issuer"), "{why}");
}

#[test]
fn answers_of_64_kib_or_more_are_refused() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.padding = MAX_DOCUMENT_BYTES);
    unavailable_after(world.verify(&token(&key, "k1", T0)));

    let world = World::new();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.declared_length = Some(10 * 1024 * 1024));
    unavailable_after(world.verify(&token(&key, "k1", T0)));

    let world = World::new();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.padding = MAX_DOCUMENT_BYTES - 1024);
    world.verify(&token(&key, "k1", T0)).expect("just under the limit");
}

#[test]
fn keys_are_fetched_over_https_or_plain_http_to_loopback_only() {
    for ok in ["https://idp.example", "http://127.0.0.1:8080", "http://localhost:9000/realms/x", "http://[::1]:80"] {
        let text = json!([{"issuer": ok, "audience": "a"}]).to_string();
        assert!(parse_issuers(&text, "tenant").is_ok(), "{ok}");
    }
    for refused in ["http://idp.example", "http://10.0.0.1", "ftp://idp.example", "https://user:pw@idp.example", "idp"]
    {
        let text = json!([{"issuer": refused, "audience": "a"}]).to_string();
        assert_eq!(parse_issuers(&text, "tenant").unwrap_err(), AuthFailure::Misconfigured, "{refused}");
        let uri = json!([{"issuer": "https://idp.example", "audience": "a", "jwks_uri": refused}]).to_string();
        assert_eq!(parse_issuers(&uri, "tenant").unwrap_err(), AuthFailure::Misconfigured, "{refused}");
    }
    // A static key set needs no fetchable issuer.
    let text = json!([{"issuer": "urn:private", "audience": "a", "jwks": {"keys": []}}]).to_string();
    assert!(matches!(parse_issuers(&text, "tenant").unwrap()[0].keys, KeySource::Static(_)));

    // The document points its keys at plain http: not fetched.
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.jwks_uri = "http://keys.idp.test/certs".into());
    unavailable_after(world.verify(&token(&key, "k1", T0)));
    assert_eq!(world.provider.asked(), vec![DISCOVERY.to_string()]);
}

#[test]
fn the_token_never_says_where_its_keys_are() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    let mut attacker = Ed25519KeyPair::generate().with_key_id("evil");
    attacker.attach_metadata(KeyMetadata::default().with_key_set_url("https://evil.test/jwks")).unwrap();
    let claims =
        Claims::with_custom_claims(json!({"tenant": "acme"}).as_object().unwrap().clone(), Duration::from_secs(60))
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE);
    let forged = attacker.sign(claims).unwrap();
    assert!(forged.split('.').next().is_some_and(|h| !h.is_empty()));
    assert_eq!(unauthenticated(world.verify(&forged)), AuthFailure::UnknownKey);
    assert!(world.provider.asked().iter().all(|u| !u.contains("evil")), "{:?}", world.provider.asked());
}

#[test]
fn a_configured_jwks_uri_is_read_without_discovery() {
    let mut world = World::new();
    world.settings.issuers = json!([{"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": JWKS_URI}]).to_string();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.verify(&token(&key, "k1", T0)).unwrap();
    assert_eq!(world.provider.asked(), vec![JWKS_URI.to_string()]);
}

#[test]
fn several_issuers_each_with_their_audience_and_tenant_claim_and_the_static_one_still_works() {
    let legacy = Ed25519KeyPair::generate();
    let static_jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "legacy",
        "x": encode_member(&legacy.public_key().to_bytes())}]})
    .to_string();
    let mut world = World::new();
    world.settings = AuthSettings {
        issuers: json!([
            {"issuer": ISSUER, "audience": AUDIENCE},
            {"issuer": "https://other.test", "audience": "api://regsecrets", "tenant_claim": "org", "jwks_uri": JWKS_URI},
        ])
        .to_string(),
        ..AuthSettings::new(static_jwks, "https://static.test", "static-aud")
    };
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);

    let claims = json!({"tenant": "acme"});
    assert_eq!(
        world
            .verify(&token_for(&legacy, "legacy", "https://static.test", "static-aud", claims.clone(), T0))
            .unwrap()
            .principal
            .tenant
            .as_str(),
        "acme"
    );
    assert_eq!(
        world.verify(&token_for(&key, "k1", ISSUER, AUDIENCE, claims.clone(), T0)).unwrap().principal.tenant.as_str(),
        "acme"
    );
    let org = json!({"org": "globex"});
    let verified = world.verify(&token_for(&key, "k1", "https://other.test", "api://regsecrets", org, T0)).unwrap();
    assert_eq!(verified.principal.tenant.as_str(), "globex");
    // Each issuer's own rules: another's audience, an unknown issuer, a key of another issuer.
    let wrong_aud = token_for(&key, "k1", "https://other.test", AUDIENCE, json!({"org": "globex"}), T0);
    assert_eq!(unauthenticated(world.verify(&wrong_aud)), AuthFailure::WrongAudience);
    let unknown = token_for(&key, "k1", "https://nobody.test", AUDIENCE, claims.clone(), T0);
    assert_eq!(unauthenticated(world.verify(&unknown)), AuthFailure::WrongIssuer);
    let cross = token_for(&legacy, "legacy", ISSUER, AUDIENCE, claims, T0);
    assert_eq!(unauthenticated(world.verify(&cross)), AuthFailure::UnknownKey);
}

#[test]
fn a_broken_or_ambiguous_issuer_list_is_a_misconfiguration() {
    for text in [
        "not json",
        r#"[{"issuer": "https://a.test"}]"#,
        r#"[{"issuer": "https://a.test", "audience": "x", "extra": 1}]"#,
        r#"[{"issuer": "https://a.test", "audience": "x"}, {"issuer": "https://a.test", "audience": "y"}]"#,
        r#"[{"issuer": "https://a.test", "audience": "x", "jwks": {"keys": []}, "jwks_uri": "https://a.test/k"}]"#,
    ] {
        assert_eq!(parse_issuers(text, "tenant").unwrap_err(), AuthFailure::Misconfigured, "{text}");
    }
    let none = AuthSettings { issuers: String::new(), ..settings() };
    assert_eq!(none.issuers().unwrap_err(), AuthFailure::Misconfigured);
}

#[test]
fn the_verified_token_cache_honours_nothing_past_the_key_sets_freshness() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.provider.script(|s| s.cache_control = Some("max-age=300".into()));
    let jwt = token(&key, "k1", T0);
    let Lookup::Verified(Some(remember)) = world.cached(&jwt).unwrap().1 else { panic!("a miss to remember") };
    remember.save(&*world.store);
    let before = world.provider.asked().len();
    assert!(matches!(world.at(T0 + 299 * SEC).cached(&jwt).unwrap().1, Lookup::Hit));
    assert_eq!(world.provider.asked().len(), before, "a hit reads no keys");
    // The provider removes the key; past the set's lifetime the cached token is not honoured.
    world.provider.script(|s| {
        s.keys.clear();
    });
    world.provider.publish("k2", &Ed25519KeyPair::generate());
    match world.at(T0 + 300 * SEC).cached(&jwt) {
        Err(Error::Unauthenticated(AuthFailure::UnknownKey)) => {}
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn stale_keys_verify_but_are_not_remembered() {
    let world = World::new();
    let key = Ed25519KeyPair::generate();
    world.provider.publish("k1", &key);
    world.verify(&token(&key, "k1", T0)).unwrap();
    world.provider.script(|s| s.down = true);
    let (_, lookup) = world.at(T0 + 3700 * SEC).cached(&token(&key, "k1", T0)).unwrap();
    assert!(matches!(lookup, Lookup::Verified(None)), "{lookup:?}");
}
