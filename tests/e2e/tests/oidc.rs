//! Keys by discovery against a real OpenID provider (panva's `oidc-provider`, `tests/oidc`): the app
//! names only the issuer; the provider rotates its signing key while API calls flow, then stops.
//!
//! At most one fetch per issuer per 30-second window is the rule, so the test waits for a new
//! window where the rule would otherwise (rightly) hold a fetch back: the test takes about a minute.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::oidc::OidcProvider;
use e2e::{structured, Options, TestApp, Tokens, SECRETS};
use jwt_simple::prelude::*;

const WINDOW_MS: u64 = 30_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Sleeps until a 30-second window begins that holds no fetch made so far.
fn wait_for_a_window_after(last_fetch_ms: u64) {
    let next = (last_fetch_ms / WINDOW_MS + 1) * WINDOW_MS + 200;
    let now = now_ms();
    if next > now {
        std::thread::sleep(Duration::from_millis(next - now));
    }
}

/// A token for the provider's issuer, signed by a key it never published.
fn forged(issuer: &str, kid: &str) -> String {
    let claims = Claims::with_custom_claims(
        serde_json::json!({"tenant": "oidc-e2e", "scope": "regsecrets.admin"}).as_object().unwrap().clone(),
        jwt_simple::prelude::Duration::from_secs(600),
    )
    .with_issuer(issuer)
    .with_audience("regsecrets");
    Ed25519KeyPair::generate().with_key_id(kid).sign(claims).unwrap()
}

/// Every call: a list (read), and a create and a delete (writes), all with `token`.
fn api_calls_succeed(app: &TestApp, token: &str, round: &str) {
    let list = app.call("GET", SECRETS).bearer(token).send();
    assert_eq!(list.status, 200, "{round}: {}", list.body);
    let name = format!("rotation-{round}");
    let created = app.create(token, &structured(&name, "registry.example.com", "bot", "pw"));
    assert_eq!(created.status, 201, "{round}: {}", created.body);
    let deleted = app.call("DELETE", &format!("{SECRETS}/{name}")).bearer(token).send();
    assert_eq!(deleted.status, 200, "{round}: {}", deleted.body);
}

#[test]
fn keys_follow_a_real_providers_rotation_and_outage() {
    let Some(mut idp) = OidcProvider::start() else {
        assert!(std::env::var("CI").is_err(), "CI=true: tests/oidc's node_modules must be installed (`npm ci`)");
        eprintln!("skipped: run `npm ci` in tests/oidc (.ci/run does)");
        return;
    };
    let issuers = serde_json::json!([{"issuer": idp.issuer, "audience": "regsecrets"}]).to_string();
    let extra =
        BTreeMap::from([("auth_issuers".to_owned(), issuers), ("auth_keys_origin_1".to_owned(), idp.issuer.clone())]);
    let app = TestApp::start_with(Options::default(), Tokens::default(), extra);
    let scopes = ["regsecrets.admin", "regsecrets.viewer"];

    // The first key: discovered on the first call, then served from the store.
    let first = idp.token(&scopes);
    for round in 0..3 {
        api_calls_succeed(&app, &first, &format!("k1-{round}"));
    }
    assert_eq!(idp.key_fetches().len(), 1, "one fetch serves every component and call");

    // Rotation as oidc-provider recommends it: publish the new key, then sign with it.
    idp.command("publish");
    api_calls_succeed(&app, &first, "published");
    wait_for_a_window_after(*idp.key_fetches().last().unwrap());
    let promoted = idp.command("promote");
    let second = idp.token(&scopes);
    assert_eq!(OidcProvider::kid_of(&second), promoted["signing"].as_str().unwrap());
    assert_ne!(OidcProvider::kid_of(&second), OidcProvider::kid_of(&first));
    for round in 0..3 {
        api_calls_succeed(&app, &second, &format!("k2-{round}"));
        api_calls_succeed(&app, &first, &format!("k1-still-{round}"));
    }
    let fetches = idp.key_fetches();
    assert_eq!(fetches.len(), 2, "the new kid made one fetch: {fetches:?}");

    // A storm of tokens with random kids: refused (401), and at most one fetch for the window.
    for i in 0..40 {
        let reply = app.call("GET", SECRETS).bearer(&forged(&idp.issuer, &format!("random-{i}"))).send();
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    let after_storm = idp.key_fetches();
    assert!(after_storm.len() <= fetches.len() + 1, "{after_storm:?}");
    let windows = |times: &[u64]| times.iter().map(|t| t / WINDOW_MS).collect::<Vec<_>>();
    let mut distinct = windows(&after_storm);
    distinct.dedup();
    assert_eq!(distinct.len(), after_storm.len(), "never two fetches in one window: {after_storm:?}");

    // The old key is retired by the provider; the new one goes on.
    idp.command("retire");
    api_calls_succeed(&app, &second, "retired");

    // The provider stops: the keys we have keep verifying; a key we do not have is 503, not 401.
    let last_fetch = *idp.key_fetches().last().unwrap();
    idp.stop();
    api_calls_succeed(&app, &second, "provider-down");
    wait_for_a_window_after(last_fetch);
    let unknown = app.call("GET", SECRETS).bearer(&forged(&idp.issuer, "not-yet-published")).send();
    assert_eq!(unknown.status, 503, "{}", unknown.body);
    assert_eq!(unknown.code(), "IdentityProviderUnavailable");
    let retry: u64 = unknown.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let again = app.call("GET", SECRETS).bearer(&forged(&idp.issuer, "another")).send();
    assert_eq!(again.status, 503, "the window's failed fetch is shared: {}", again.body);
    api_calls_succeed(&app, &second, "provider-still-down");
    assert!(app.logs().contains("issuer keys unavailable"), "the outage is logged");
}

/// A cluster's service-account issuer served by the test over https (as the Kubernetes API server
/// serves `/.well-known/openid-configuration` and `/openid/v1/jwks`), with ES256 keys it rotates.
struct Cluster {
    server: Option<e2e::registry::Server>,
    keys: std::sync::Arc<std::sync::Mutex<Vec<ES256KeyPair>>>,
    issuer: String,
}

impl Cluster {
    fn start(pki: &e2e::registry::Pki) -> Cluster {
        use e2e::registry::Reply;
        let keys = std::sync::Arc::new(std::sync::Mutex::new(vec![ES256KeyPair::generate().with_key_id("sa-1")]));
        let port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
        let (published, own_port) = (keys.clone(), port.clone());
        let server = e2e::registry::Server::start(
            Some(pki.server_config()),
            std::sync::Arc::new(move |request| {
                let issuer = format!("https://127.0.0.1:{}", own_port.lock().unwrap());
                match request.path() {
                    "/.well-known/openid-configuration" => Reply::json(
                        200,
                        &serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/openid/v1/jwks")}),
                    ),
                    "/openid/v1/jwks" => {
                        let keys: Vec<serde_json::Value> = published.lock().unwrap().iter().map(jwk).collect();
                        Reply::json(200, &serde_json::json!({ "keys": keys }))
                    }
                    _ => Reply::json(404, &serde_json::json!({})),
                }
            }),
        );
        *port.lock().unwrap() = server.port();
        let issuer = format!("https://127.0.0.1:{}", server.port());
        Cluster { server: Some(server), keys, issuer }
    }

    /// The newest key signs; the older ones stay published.
    fn rotate(&self, kid: &str) {
        self.keys.lock().unwrap().push(ES256KeyPair::generate().with_key_id(kid));
    }

    /// A projected service-account token for shop/checkout, signed by the newest key.
    fn pod_token(&self) -> String {
        let custom = serde_json::json!({"kubernetes.io": {"namespace": "shop",
            "serviceaccount": {"name": "checkout", "uid": "6f1c2a8e-0000-4000-8000-000000000001"}}});
        let claims = Claims::with_custom_claims(
            custom.as_object().unwrap().clone(),
            jwt_simple::prelude::Duration::from_secs(600),
        )
        .with_issuer(&self.issuer)
        .with_audience("regsecrets")
        .with_subject("system:serviceaccount:shop:checkout");
        self.keys.lock().unwrap().last().unwrap().sign(claims).unwrap()
    }
}

fn jwk(key: &ES256KeyPair) -> serde_json::Value {
    let point = key.public_key().public_key().to_bytes_uncompressed();
    let b64 = |bytes: &[u8]| domain::jwks::encode_member(bytes);
    serde_json::json!({"kty": "EC", "crv": "P-256", "kid": key.key_id().clone().unwrap(), "use": "sig", "alg": "ES256",
        "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

#[test]
fn pod_token_pulls_follow_a_clusters_key_rotation_when_trusted_by_issuer_url() {
    let pki = e2e::registry::Pki::new("cluster issuer");
    let mut cluster = Cluster::start(&pki);
    let options = Options { network_config: Some(pki.client_tls_toml("credentials")), ..Options::default() };
    let extra = BTreeMap::from([("auth_keys_origin_1".to_owned(), cluster.issuer.clone())]);
    let app = TestApp::start_with(options, Tokens::default(), extra);
    let tenant = e2e::unique_tenant("cluster-rotation");
    let admin = app.token(&tenant, &["regsecrets.admin"]);
    for (name, user) in [("payments", "pay-bot"), ("everything", "wide-bot")] {
        assert_eq!(app.create(&admin, &structured(name, "registry.example.com", user, "pw")).status, 201);
    }
    let trust = serde_json::json!({
        "issuers": [{"issuer": cluster.issuer, "audience": "regsecrets"}],
        "bindings": [{"issuer": cluster.issuer, "subject": "system:serviceaccount:shop:checkout", "secrets": ["payments"]}],
    });
    let put = app.call("PUT", "/v2/admin/workloadIdentity").bearer(&admin).json(&trust).send();
    assert_eq!(put.status, 200, "{}", put.body);
    let node = app.token(&tenant, &["regsecrets.puller"]);
    let pull = |pod_token: &str| {
        app.call("GET", "/v2/pull/credentials?image=registry.example.com/shop/app")
            .bearer(&node)
            .header("x-regsecrets-service-account-token", pod_token)
            .send()
    };
    let users = |reply: &e2e::Reply| -> Vec<String> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(users(&pull(&cluster.pod_token())), ["pay-bot"], "only the bound secret");

    // The cluster rotates its service-account key (in a window after the first fetch).
    wait_for_a_window_after(now_ms());
    cluster.rotate("sa-2");
    assert_eq!(users(&pull(&cluster.pod_token())), ["pay-bot"], "the rotated key is fetched and verifies");

    // The issuer goes away: the keys we have keep verifying; a key we lack is 503, not 403.
    cluster.server = None;
    assert_eq!(users(&pull(&cluster.pod_token())), ["pay-bot"]);
    wait_for_a_window_after(now_ms());
    cluster.rotate("sa-3");
    let unavailable = pull(&cluster.pod_token());
    assert_eq!(unavailable.status, 503, "{}", unavailable.body);
    assert!(unavailable.header("retry-after").is_some());
}

/// A service-account token of `issuer` for shop/`name`, signed by `key`.
fn pod_token_of(key: &ES256KeyPair, issuer: &str, name: &str) -> String {
    let custom = serde_json::json!({"kubernetes.io": {"namespace": "shop",
        "serviceaccount": {"name": name, "uid": "6f1c2a8e-0000-4000-8000-000000000002"}}});
    let claims =
        Claims::with_custom_claims(custom.as_object().unwrap().clone(), jwt_simple::prelude::Duration::from_secs(600))
            .with_issuer(issuer)
            .with_audience("regsecrets")
            .with_subject(format!("system:serviceaccount:shop:{name}"));
    key.sign(claims).unwrap()
}

#[test]
fn a_tenant_that_requires_pod_tokens_answers_a_node_nothing_without_one() {
    let app = TestApp::start(Options::default());
    let tenant = e2e::unique_tenant("pod-token-required");
    let admin = app.token(&tenant, &["regsecrets.admin"]);
    for (name, user) in [("payments", "pay-bot"), ("everything", "wide-bot")] {
        assert_eq!(app.create(&admin, &structured(name, "registry.example.com", user, "pw")).status, 201);
    }
    let key = ES256KeyPair::generate().with_key_id("sa-1");
    let issuer = "https://cluster.example.com";
    let mut trust = serde_json::json!({
        "issuers": [{"issuer": issuer, "audience": "regsecrets", "jwks": {"keys": [jwk(&key)]}}],
        "bindings": [{"issuer": issuer, "subject": "system:serviceaccount:shop:checkout", "secrets": ["payments"]}],
        "requirePodToken": true,
    });
    let put = app.call("PUT", "/v2/admin/workloadIdentity").bearer(&admin).json(&trust).send();
    assert_eq!(put.status, 200, "{}", put.body);
    let read = app.call("GET", "/v2/admin/workloadIdentity").bearer(&admin).send();
    assert_eq!(read.json()["requirePodToken"], true, "{}", read.body);

    let node = app.token(&tenant, &["regsecrets.puller"]);
    let pull = |pod: Option<&str>| {
        let call = app.call("GET", "/v2/pull/credentials?image=registry.example.com/shop/app").bearer(&node);
        match pod {
            Some(token) => call.header("x-regsecrets-service-account-token", token).send(),
            None => call.send(),
        }
    };
    let export = |name: &str, pod: Option<&str>| {
        let call = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&node);
        match pod {
            Some(token) => call.header("x-regsecrets-service-account-token", token).send(),
            None => call.send(),
        }
    };
    let checkout = pod_token_of(&key, issuer, "checkout");
    let alone = pull(None);
    assert_eq!((alone.status, alone.code()), (403, "WorkloadNotPermitted".to_owned()), "{}", alone.body);
    let with_pod = pull(Some(&checkout));
    assert_eq!(with_pod.status, 200, "{}", with_pod.body);
    assert_eq!(with_pod.json()["credentials"].as_array().unwrap().len(), 1, "{}", with_pod.body);
    assert!(with_pod.body.contains("pay-bot") && !with_pod.body.contains("wide-bot"), "{}", with_pod.body);
    assert_eq!(export("everything", None).status, 403, "the export is no way around the switch");
    assert_eq!(export("everything", Some(&checkout)).status, 403, "a secret not bound to the pod");
    assert_eq!(export("payments", Some(&checkout)).status, 200);
    assert_eq!(pull(Some(&pod_token_of(&key, issuer, "cart"))).status, 403, "an unbound service account");
    assert!(app.logs().contains("PodTokenRequired"), "why is logged");

    trust["requirePodToken"] = false.into();
    assert_eq!(app.call("PUT", "/v2/admin/workloadIdentity").bearer(&admin).json(&trust).send().status, 200);
    let again = pull(None);
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("pay-bot") && again.body.contains("wide-bot"), "switched off: the node's matches");
}
