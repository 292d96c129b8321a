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
