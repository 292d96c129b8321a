//! The identity suite: every way a token can be wrong is refused with 401 and no more said;
//! every scope reaches only what the contract gives it; tenants never meet.

use e2e::tokens::{Alg, Tokens};
use e2e::{structured, unique_tenant, Reply, TestApp, SECRETS};
use serde_json::json;

fn app() -> &'static TestApp {
    TestApp::shared()
}

fn list_with(authorization: Option<&str>) -> Reply {
    let mut call = app().call("GET", SECRETS);
    if let Some(value) = authorization {
        call = call.header("authorization", value);
    }
    call.send()
}

fn assert_invalid_token(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 401, "{case}: {}", reply.body);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer error=\"invalid_token\""), "{case}");
    assert_eq!(reply.code(), "Unauthorized", "{case}");
    assert_eq!(
        reply.json()["error"]["message"],
        "The bearer token is missing or invalid",
        "{case}: the body says no more"
    );
}

fn claims(tenant: &str) -> serde_json::Value {
    app().tokens.claims(tenant, &["regsecrets.admin", "regsecrets.viewer"])
}

#[test]
fn tokens_of_every_supported_algorithm_are_accepted() {
    let tenant = unique_tenant("algs");
    for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
        let token = app().tokens.sign(alg, &claims(&tenant));
        assert_eq!(list_with(Some(&format!("Bearer {token}"))).status, 200, "{alg:?}");
    }
}

#[test]
fn missing_malformed_and_forged_tokens_are_refused() {
    let tokens = &app().tokens;
    let tenant = unique_tenant("forged");
    let good = claims(&tenant);
    let now = Tokens::now();
    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("not bearer", Some(format!("Basic {}", "dXNlcjpwYXNz"))),
        ("empty bearer", Some("Bearer ".into())),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("garbage", Some("Bearer %%%".into())),
    ];
    let mut with = |name: &'static str, token: String| cases.push((name, Some(format!("Bearer {token}"))));
    with("bad signature", tokens.tamper(&tokens.sign(Alg::EdDsa, &good)));
    with("alg none", tokens.alg_none(&good));
    with("HS256 with the RSA public key as secret", tokens.hs256_with_rsa_public_key(&good));
    with("expired", tokens.sign(Alg::EdDsa, &set(&good, "exp", json!(now - 120))));
    with("not yet valid", tokens.sign(Alg::EdDsa, &set(&good, "nbf", json!(now + 600))));
    with("issued in the future", tokens.sign(Alg::EdDsa, &set(&good, "iat", json!(now + 600))));
    with("wrong issuer", tokens.sign(Alg::EdDsa, &set(&good, "iss", json!("https://evil.example"))));
    with("wrong audience", tokens.sign(Alg::EdDsa, &set(&good, "aud", json!("another-api"))));
    with("no expiry", tokens.sign(Alg::EdDsa, &without(&good, "exp")));
    with("unknown kid", tokens.sign_with_kid(Alg::EdDsa, "nobody", &good));
    with("missing tenant claim", tokens.sign(Alg::EdDsa, &without(&good, "tenant")));
    with("foreign key", Tokens::new().sign(Alg::EdDsa, &good));
    for bad_tenant in ["a/b", "a:b", "..", "a\u{0}b", &"t".repeat(1000)] {
        with("bad tenant id", tokens.sign(Alg::EdDsa, &set(&good, "tenant", json!(bad_tenant))));
    }
    for (case, header) in cases {
        assert_invalid_token(&list_with(header.as_deref()), case);
    }
}

#[test]
fn expiry_has_sixty_seconds_of_leeway_not_fifteen_minutes() {
    let tokens = &app().tokens;
    let good = claims(&unique_tenant("leeway"));
    let now = Tokens::now();
    let just_expired = tokens.sign(Alg::EdDsa, &set(&good, "exp", json!(now - 20)));
    assert_eq!(list_with(Some(&format!("Bearer {just_expired}"))).status, 200);
    let long_expired = tokens.sign(Alg::EdDsa, &set(&good, "exp", json!(now - 5 * 60)));
    assert_invalid_token(&list_with(Some(&format!("Bearer {long_expired}"))), "5 minutes past expiry");
}

#[test]
fn audience_may_be_an_array_containing_ours() {
    let good = claims(&unique_tenant("aud"));
    let token = app().tokens.sign(Alg::EdDsa, &set(&good, "aud", json!(["other", e2e::tokens::AUDIENCE])));
    assert_eq!(list_with(Some(&format!("Bearer {token}"))).status, 200);
}

#[test]
fn scope_may_be_a_string_or_an_array() {
    let tenant = unique_tenant("scopeforms");
    let base = claims(&tenant);
    for scope in [json!("regsecrets.viewer"), json!(["regsecrets.viewer"])] {
        let token = app().tokens.sign(Alg::EdDsa, &set(&base, "scope", json!(scope)));
        assert_eq!(list_with(Some(&format!("Bearer {token}"))).status, 200, "{scope}");
    }
}

/// Each scope against each call it must not reach: 403, and nothing changes.
#[test]
fn each_scope_reaches_only_what_the_contract_gives_it() {
    let app = app();
    let tenant = unique_tenant("scopes");
    let admin = app.token(&tenant, &["regsecrets.admin"]);
    assert_eq!(app.create(&admin, &structured("s", "ghcr.io", "u", "p")).status, 201);
    let body = structured("t", "ghcr.io", "u", "p");
    let patch_body = json!({"registry": "ghcr.io", "username": "u", "password": "p2"});
    let quota_path = format!("/v2/operator/tenants/{tenant}/quota");
    type Request<'a> = (&'a str, String, Option<serde_json::Value>);
    let calls: Vec<(&str, Request)> = vec![
        ("list", ("GET", SECRETS.into(), None)),
        ("get", ("GET", format!("{SECRETS}/s"), None)),
        ("create", ("POST", SECRETS.into(), Some(body))),
        ("patch", ("PATCH", format!("{SECRETS}/s"), Some(patch_body))),
        ("export", ("GET", format!("{SECRETS}/s/credentials"), None)),
        ("quota", ("GET", "/v2/admin/resourceQuota/dockerRegistrySecrets".into(), None)),
        ("operator get", ("GET", quota_path.clone(), None)),
        ("operator put", ("PUT", quota_path, Some(json!({"limit": 7})))),
        ("delete", ("DELETE", format!("{SECRETS}/s"), None)),
    ];
    let all = ["list", "get", "create", "patch", "export", "quota", "operator get", "operator put", "delete"];
    let forbidden: &[(&str, &[&str])] = &[
        ("regsecrets.viewer", &["create", "patch", "export", "operator get", "operator put", "delete"]),
        ("regsecrets.admin", &["export", "operator get", "operator put"]),
        ("regsecrets.puller", &["list", "get", "create", "patch", "quota", "operator get", "operator put", "delete"]),
        // The operator's writes reach managed secrets only; "s" is the tenant's own.
        ("regsecrets.operator", &["list", "get", "patch", "export", "quota", "delete"]),
        ("", &all),
    ];
    for (scope, refused) in forbidden {
        let token = app.token(&tenant, &[scope]);
        for (name, (method, path, body)) in calls.iter().filter(|(name, _)| refused.contains(name)) {
            let before = app.tenant_rows(&tenant);
            let mut call = app.call(method, path).bearer(&token);
            if let Some(body) = body {
                call = call.json(body);
            }
            let reply = call.send();
            assert_eq!(reply.status, 403, "{scope:?} must not {name}: {}", reply.body);
            assert_eq!(reply.code(), "Forbidden");
            assert_eq!(app.tenant_rows(&tenant), before, "{scope:?} {name} changed the store");
        }
    }
    let puller = app.token(&tenant, &["regsecrets.puller"]);
    assert_eq!(app.call("GET", &format!("{SECRETS}/s/credentials")).bearer(&puller).send().status, 200);
}

#[test]
fn a_tenant_never_reaches_another_tenants_secrets() {
    let app = app();
    let (a, b) = (unique_tenant("tenant-a"), unique_tenant("tenant-b"));
    let admin_a = app.token(&a, &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"]);
    let admin_b = app.token(&b, &["regsecrets.admin", "regsecrets.viewer"]);
    assert_eq!(app.create(&admin_b, &structured("b-only", "ghcr.io", "bee", "b-password")).status, 201);
    let b_list = app.call("GET", SECRETS).bearer(&admin_b).send().body;
    for (method, path) in [
        ("GET", format!("{SECRETS}/b-only")),
        ("GET", format!("{SECRETS}/b-only/credentials")),
        ("DELETE", format!("{SECRETS}/b-only")),
    ] {
        let reply = app.call(method, &path).bearer(&admin_a).send();
        assert_eq!(reply.status, 404, "{method} {path}");
        assert!(!reply.body.contains("b-password") && !reply.body.contains("bee"));
    }
    let patch = json!({"registry": "ghcr.io", "username": "x", "password": "y"});
    assert_eq!(app.call("PATCH", &format!("{SECRETS}/b-only")).bearer(&admin_a).json(&patch).send().status, 404);
    assert_eq!(app.call("GET", SECRETS).bearer(&admin_a).send().json()["count"], 0);
    assert_eq!(app.call("GET", SECRETS).bearer(&admin_b).send().body, b_list, "B's list unchanged");
}

#[test]
fn the_same_name_in_two_tenants_stays_two_secrets() {
    let app = app();
    let (a, b) = (unique_tenant("same-a"), unique_tenant("same-b"));
    let scopes = ["regsecrets.admin", "regsecrets.puller"];
    let (ta, tb) = (app.token(&a, &scopes), app.token(&b, &scopes));
    assert_eq!(app.create(&ta, &structured("shared", "ghcr.io", "ua", "pa")).status, 201);
    assert_eq!(app.create(&tb, &structured("shared", "ghcr.io", "ub", "pb")).status, 201);
    let export = |t: &str| app.call("GET", &format!("{SECRETS}/shared/credentials")).bearer(t).send().json();
    assert_ne!(export(&ta)["data"], export(&tb)["data"]);
}

/// JSON nested as deep as `serde_json` parses (128 levels) and deeper, in request bodies and in a
/// token's claims, is answered as any bad body or unknown claim is: never by a component that ran
/// out of stack (they run on 256 KiB, `components/spin-bridge/wasm-stack.rs`), and nothing stored.
#[test]
fn deeply_nested_bodies_and_claims_are_refused_not_crashed() {
    let app = app();
    let tenant = unique_tenant("deep");
    let admin = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);
    assert_eq!(app.create(&admin, &structured("deep", "ghcr.io", "u", "p")).status, 201);
    let before = app.tenant_rows(&tenant);
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [100, 126, 127, 128, 129, 10_000] {
        // The object is one level; its field `x` the rest.
        let body = format!(r#"{{"name":"deep2","x":{}}}"#, nested(depth - 1));
        for (method, path) in [("POST", SECRETS.to_owned()), ("PATCH", format!("{SECRETS}/deep"))] {
            let reply = app
                .call(method, &path)
                .bearer(&admin)
                .header("content-type", "application/json")
                .raw(body.clone().into_bytes())
                .send();
            assert_eq!(reply.status, 400, "{method} nested {depth} deep: {}", reply.body);
        }
    }
    assert_eq!(app.tenant_rows(&tenant), before, "nothing stored");
    // Claims: a token whose claims nest 127 levels (the object and 126 arrays in one claim) still verifies
    // (unknown claims are ignored); one nested deeper than `serde_json` parses is refused.
    let deep_claim = |depth: usize| {
        let mut value = json!([]);
        for _ in 1..depth {
            value = json!([value]);
        }
        set(&claims(&tenant), "x", value)
    };
    for alg in [Alg::Rs256, Alg::EdDsa] {
        let token = app.tokens.sign(alg, &deep_claim(126));
        assert_eq!(app.call("GET", &format!("{SECRETS}/deep")).bearer(&token).send().status, 200, "{alg:?}");
        let token = app.tokens.sign(alg, &deep_claim(1000));
        assert_invalid_token(&list_with(Some(&format!("Bearer {token}"))), "claims nested 1,000 deep");
    }
}

#[test]
fn a_viewers_list_and_get_carry_no_credential_material() {
    let app = app();
    let tenant = unique_tenant("viewer");
    let admin = app.token(&tenant, &["regsecrets.admin"]);
    let viewer = app.token(&tenant, &["regsecrets.viewer"]);
    let sap = json!({"name": "sap", "data": {".dockerconfigjson": json!({"auths": {"quay.io": {"username": "quser", "password": "qpass-123", "email": "q@example.com", "identitytoken": "idtok-456"}}}).to_string()}});
    assert_eq!(app.create(&admin, &sap).status, 201);
    assert_eq!(app.create(&admin, &structured("kube", "ghcr.io", "kuser", "kpass-789")).status, 201);
    let bodies = [
        app.call("GET", SECRETS).bearer(&viewer).send().body,
        app.call("GET", &format!("{SECRETS}/sap")).bearer(&viewer).send().body,
        app.call("GET", &format!("{SECRETS}/kube")).bearer(&viewer).send().body,
    ];
    for body in bodies {
        for secret in ["quser", "qpass-123", "idtok-456", "kuser", "kpass-789", "q@example.com", "auth\""] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

fn set(claims: &serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut claims = claims.clone();
    claims[key] = value;
    claims
}

fn without(claims: &serde_json::Value, key: &str) -> serde_json::Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// The verified-token cache remembers a token only after a read it authenticated succeeded, and
/// keeps its digest, never the token.
#[test]
fn reads_remember_a_verified_token_only_after_success() {
    // An app of its own: in the shared one other tests' live tokens may hold this token's slot.
    let app = &TestApp::start(e2e::Options::default());
    let tenant = unique_tenant("cache");
    let token = app.token(&tenant, &["regsecrets.viewer"]);
    let remembered = || app.cached_token_entries(&token);
    assert_eq!(app.call("GET", &format!("{SECRETS}/missing")).bearer(&token).send().status, 404);
    assert_eq!(remembered(), 0, "a refused read stores nothing");
    assert_eq!(app.call("GET", SECRETS).bearer(&token).send().status, 200);
    assert_eq!(remembered(), 1);
    assert!(app.raw_store().iter().all(|(_, _, value)| !String::from_utf8_lossy(value).contains(&token)));
    assert_eq!(app.call("GET", SECRETS).bearer(&token).send().status, 200, "answered from the cache");
}

/// Writes authenticate through the same cache: remembered only after a write succeeded, and a
/// remembered token still grants only its scopes.
#[test]
fn writes_remember_a_verified_token_only_after_success() {
    let app = &TestApp::start(e2e::Options::default());
    let tenant = unique_tenant("write-cache");
    let admin = app.token(&tenant, &["regsecrets.admin"]);
    let remembered = || app.cached_token_entries(&admin);
    let refused = app.create(
        &admin,
        &serde_json::json!({"name": "Not A Name", "registry": "r.example", "username": "u", "password": "p"}),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(remembered(), 0, "a refused write stores nothing");
    assert_eq!(app.create(&admin, &structured("first", "r.example", "u", "p")).status, 201);
    assert_eq!(remembered(), 1);
    assert_eq!(app.create(&admin, &structured("second", "r.example", "u", "p")).status, 201, "answered from the cache");
    let deleted = app.call("DELETE", &format!("{SECRETS}/second")).bearer(&admin).send();
    assert_eq!(deleted.status, 200, "{}", deleted.body);

    // A viewer token whose cache slot is not the admin's (16 slots, chosen by the token's digest).
    use sha2::{Digest, Sha256};
    let slot = |token: &str| Sha256::digest(token.as_bytes())[0] % 16;
    let viewer = (0..)
        .map(|i| {
            let mut claims = app.tokens.claims(&tenant, &["regsecrets.viewer"]);
            claims["sub"] = format!("viewer-{i}").into();
            app.tokens.sign(Alg::EdDsa, &claims)
        })
        .find(|token| slot(token) != slot(&admin))
        .unwrap();
    assert_eq!(app.call("GET", SECRETS).bearer(&viewer).send().status, 200);
    assert_eq!(app.cached_token_entries(&viewer), 1);
    let write = app.create(&viewer, &structured("third", "r.example", "u", "p"));
    assert_eq!(write.status, 403, "a viewer answered from the cache is still no admin: {}", write.body);
}
