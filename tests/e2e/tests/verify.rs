//! Credential verification end to end, against the real peers of `e2e::registry`: Debian's
//! distribution registry with htpasswd (Basic) and with token auth (Bearer, our token server), an
//! image pushed by skopeo, and peers that fail in each way. The app trusts the test CA for the
//! `verify` component only (`[[client_tls]]`) and may reach loopback only (the harness's safety net).
//!
//! Registries are named `localhost:<port>`: the component refuses IP literals in private ranges
//! (127.0.0.1 too) before connecting, which one case checks.
//!
//! Each case prints a row `| case | result | httpStatus | ms |` (run with `--nocapture` for the table).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use e2e::registry::{self, Pki, Registry, Server, TokenPolicy};
use e2e::{structured, unique_tenant, Options, Reply, TestApp, Tokens, SECRETS};
use serde_json::{json, Value};

/// Connect and first-byte timeout of each request the component sends (`verify_timeout_ms`).
const TIMEOUT_MS: u64 = 1_500;
const ADMIN: &[&str] = &["regsecrets.admin", "regsecrets.viewer"];
const USER: &str = "alice";
const PASSWORD: &str = "right-Pa55word-never-shown";

fn pki() -> Arc<Pki> {
    static PKI: OnceLock<Arc<Pki>> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("verification tests")).clone()
}

fn start(network_config: String) -> TestApp {
    let options = Options { network_config: Some(network_config), ..Default::default() };
    let variables = BTreeMap::from([("verify_timeout_ms".to_owned(), TIMEOUT_MS.to_string())]);
    TestApp::start_with(options, Tokens::default(), variables)
}

/// The app under test: trusts the test CA for `verify`.
fn app() -> &'static TestApp {
    static APP: OnceLock<TestApp> = OnceLock::new();
    APP.get_or_init(|| start(pki().client_tls_toml("verify")))
}

/// A basic-auth registry holding `org/app:v1`, shared by the cases that need one.
fn basic_registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let registry = Registry::with_htpasswd(&pki(), &[(USER, PASSWORD)])?;
            registry.push_image("org/app", "v1", (USER, PASSWORD));
            Some(registry)
        })
        .as_ref()
}

fn localhost(port: u16) -> String {
    format!("localhost:{port}")
}

struct Tenant {
    app: &'static TestApp,
    id: String,
    admin: String,
}

impl Tenant {
    fn new(app: &'static TestApp, label: &str) -> Tenant {
        let id = unique_tenant(label);
        Tenant { app, admin: app.token(&id, ADMIN), id }
    }

    fn create(&self, name: &str, registry: &str, user: &str, password: &str) {
        let reply = self.app.create(&self.admin, &structured(name, registry, user, password));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }

    fn verify(&self, name: &str, repository: Option<&str>) -> (Reply, Duration) {
        let call = self.app.call("POST", &format!("{SECRETS}/{name}/verification")).bearer(&self.admin);
        let call = match repository {
            Some(repository) => call.json(&json!({ "repository": repository })),
            None => call,
        };
        let started = Instant::now();
        let reply = call.send();
        (reply, started.elapsed())
    }

    fn get(&self, name: &str) -> Value {
        let reply = self.app.call("GET", &format!("{SECRETS}/{name}")).bearer(&self.admin).send();
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
}

/// Verifies `name` and checks its one registry's result; prints the row.
fn expect(t: &Tenant, case: &str, name: &str, repository: Option<&str>, result: &str, status: Option<u16>) -> Value {
    let (reply, took) = t.verify(name, repository);
    assert_eq!(reply.status, 200, "{case}: {}", reply.body);
    let body = reply.json();
    let check = &body["registries"][0];
    println!("| {case} | {} | {} | {} ms |", check["result"], check["httpStatus"], took.as_millis());
    assert_eq!(check["result"], result, "{case}: {body}");
    assert_eq!(check["httpStatus"].as_u64(), status.map(u64::from), "{case}: {body}");
    assert_eq!(body["ok"], result == "ok", "{case}");
    assert_eq!(body["name"], name);
    assert!(!check["message"].as_str().unwrap_or_default().is_empty());
    assert_no_secrets(&reply.body);
    body
}

fn assert_no_secrets(text: &str) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), "wrong-password", "eyJ"] {
        assert!(!text.contains(secret), "{secret} shown in {text}");
    }
}

#[test]
fn basic_auth_right_credentials_are_ok_and_the_outcome_shows_in_get_and_list() {
    let Some(registry) = basic_registry() else { return };
    let t = Tenant::new(app(), "basic-ok");
    let host = localhost(registry.port());
    t.create("basic", &host, USER, PASSWORD);
    let version = t.get("basic")["version"].clone();
    let body = expect(&t, "Basic, right credentials", "basic", None, "ok", Some(200));
    assert_eq!(body["registries"][0]["registry"], host.as_str());
    expect(&t, "Basic, right credentials, repository org/app", "basic", Some("org/app"), "ok", Some(200));
    expect(&t, "Basic, repository that does not exist", "basic", Some("org/missing"), "forbidden", Some(404));

    let got = t.get("basic");
    assert_eq!(got["verification"]["ok"], false, "the last outcome: {got}");
    assert!(got["verification"]["checkedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got["version"], version, "a check is not a change of the secret");
    expect(&t, "Basic, right credentials (again)", "basic", None, "ok", Some(200));
    let list = t.app.call("GET", SECRETS).bearer(&t.admin).send().json();
    assert_eq!(list["resources"][0]["verification"]["ok"], true, "{list}");
    assert_eq!(list["resources"][0]["verification"]["checkedAt"], t.get("basic")["verification"]["checkedAt"]);
}

#[test]
fn basic_auth_wrong_password_is_unauthorized() {
    let Some(registry) = basic_registry() else { return };
    let t = Tenant::new(app(), "basic-wrong");
    t.create("wrong", &localhost(registry.port()), USER, "wrong-password");
    expect(&t, "Basic, wrong password", "wrong", None, "unauthorized", Some(401));
    assert_eq!(t.get("wrong")["verification"]["ok"], false);
}

#[test]
fn bearer_flow_against_token_auth() {
    let policy = TokenPolicy::default().user(USER, PASSWORD).user("bob", "bobs-password").grant(
        USER,
        "org/app",
        &["pull", "push"],
    );
    let Some(registry) = Registry::with_token_auth(&pki(), policy) else { return };
    registry.push_image("org/app", "v1", (USER, PASSWORD));
    let t = Tenant::new(app(), "bearer");
    let host = localhost(registry.port());
    t.create("alice", &host, USER, PASSWORD);
    t.create("bob", &host, "bob", "bobs-password");
    t.create("wrong", &host, USER, "wrong-password");
    expect(&t, "Bearer, right credentials", "alice", None, "ok", Some(200));
    expect(&t, "Bearer, right credentials, repository org/app", "alice", Some("org/app"), "ok", Some(200));
    expect(&t, "Bearer, no access to org/app", "bob", Some("org/app"), "unauthorized", Some(401));
    expect(&t, "Bearer, wrong password", "wrong", None, "unauthorized", Some(401));
    let asked = registry.token_server().unwrap().requests();
    assert!(
        asked.iter().any(|r| r.user.as_deref() == Some(USER) && r.scopes == ["repository:org/app:pull"]),
        "the token was asked with the repository's pull scope"
    );
    assert!(asked.iter().all(|r| r.service.as_deref() == Some(registry::SERVICE)));
}

#[test]
fn closed_port_is_unreachable() {
    let t = Tenant::new(app(), "closed");
    t.create("closed", &localhost(registry::closed_port()), USER, PASSWORD);
    expect(&t, "closed port", "closed", None, "unreachable", None);
}

#[test]
fn a_ca_we_do_not_trust_is_tls() {
    let server = registry::untrusted_https();
    let t = Tenant::new(app(), "tls");
    t.create("tls", &localhost(server.port()), USER, PASSWORD);
    expect(&t, "untrusted CA", "tls", None, "tls", None);
}

#[test]
fn a_web_server_is_not_a_registry() {
    let server = registry::not_a_registry(Some(&pki()));
    let t = Tenant::new(app(), "web");
    t.create("web", &localhost(server.port()), USER, PASSWORD);
    expect(&t, "HTTPS server that is not a registry", "web", None, "notARegistry", Some(200));
}

#[test]
fn a_server_that_never_answers_times_out_within_the_limit_and_blocks_a_second_check_meanwhile() {
    let server = registry::never_answers();
    let t = Arc::new(Tenant::new(app(), "silent"));
    t.create("silent", &localhost(server.port()), USER, PASSWORD);
    let first = {
        let t = t.clone();
        std::thread::spawn(move || expect(&t, "server never answers", "silent", None, "timeout", None))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (second, _) = t.verify("silent", None);
    assert_eq!(second.status, 409, "one check per secret in flight: {}", second.body);
    assert_eq!(second.code(), "VerificationInProgress");
    first.join().unwrap();
    let started = Instant::now();
    let (again, _) = t.verify("silent", None);
    assert_eq!(again.status, 200, "free again once done: {}", again.body);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(4 * TIMEOUT_MS), "bounded by the timeout: {took:?}");
}

#[test]
fn private_addresses_are_blocked() {
    // An IP literal in loopback: refused by the component itself, before any connection.
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let server = Server::start(
        Some(pki().server_config()),
        Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            registry::Reply::new(200, "text/plain", "hello")
        }),
    );
    let t = Tenant::new(app(), "literal");
    t.create("literal", &format!("127.0.0.1:{}", server.port()), USER, PASSWORD);
    expect(&t, "IP literal 127.0.0.1 (component refuses)", "literal", None, "blocked", None);
    t.create("plain", &format!("http://localhost:{}", server.port()), USER, PASSWORD);
    expect(&t, "plain http, not allowed by the operator", "plain", None, "blocked", None);
    assert_eq!(requests.load(Ordering::SeqCst), 0, "nothing was sent");

    // A name that resolves to loopback, under the shipped production runtime config.
    let Some(registry) = basic_registry() else { return };
    static PRODUCTION: OnceLock<TestApp> = OnceLock::new();
    let production = PRODUCTION.get_or_init(|| start(registry::production_network_config()));
    let t = Tenant::new(production, "production");
    t.create("private", &localhost(registry.port()), USER, PASSWORD);
    expect(&t, "localhost under block_networks = [\"private\"]", "private", None, "blocked", None);
}

#[test]
fn verify_true_refuses_and_stores_nothing_when_a_registry_says_no() {
    let Some(registry) = basic_registry() else { return };
    let t = Tenant::new(app(), "flag");
    let host = localhost(registry.port());
    let before = t.app.tenant_rows(&t.id);
    let wrong = structured("flagged", &host, USER, "wrong-password");
    let reply = t.app.call("POST", &format!("{SECRETS}?verify=true")).bearer(&t.admin).json(&wrong).send();
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.code(), "CredentialsRejected");
    let details = &reply.json()["error"]["details"];
    assert_eq!(details["registries"][0]["registry"], host.as_str(), "{details}");
    assert_eq!(details["registries"][0]["result"], "unauthorized");
    assert_eq!(details["registries"][0]["httpStatus"], 401);
    assert_no_secrets(&reply.body);
    assert_eq!(t.app.tenant_rows(&t.id), before, "nothing stored");

    let right = structured("flagged", &host, USER, PASSWORD);
    let reply = t.app.call("POST", &format!("{SECRETS}?verify=true")).bearer(&t.admin).json(&right).send();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let created = t.get("flagged");
    assert_eq!(created["verification"]["ok"], true, "a verified create records the outcome: {created}");

    let rows = t.app.tenant_rows(&t.id);
    let patch = json!({"registry": host, "username": USER, "password": "wrong-password"});
    let reply = t.app.call("PATCH", &format!("{SECRETS}/flagged?verify=true")).bearer(&t.admin).json(&patch).send();
    assert_eq!((reply.status, reply.code()), (422, "CredentialsRejected".to_owned()), "{}", reply.body);
    assert_eq!(t.app.tenant_rows(&t.id), rows, "a refused patch stores nothing");

    let reply = t.app.call("POST", &format!("{SECRETS}?verify=maybe")).bearer(&t.admin).json(&right).send();
    assert_eq!((reply.status, reply.code()), (400, "InvalidQueryParameter".to_owned()), "{}", reply.body);

    // Without the flag: no check at all, even of a registry nobody could reach.
    let unchecked = structured("unchecked", &localhost(registry::closed_port()), USER, PASSWORD);
    let reply = t.app.call("POST", &format!("{SECRETS}?verify=false")).bearer(&t.admin).json(&unchecked).send();
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(t.get("unchecked").get("verification").is_none());
    let reply = t.app.call("PATCH", &format!("{SECRETS}/flagged")).bearer(&t.admin).json(&patch).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(t.get("flagged").get("verification").is_none(), "new credentials, no outcome yet");
}

#[test]
fn refusals_before_any_check() {
    let t = Tenant::new(app(), "refusals");
    t.create("any", &localhost(registry::closed_port()), USER, PASSWORD);
    let viewer = t.app.token(&t.id, &["regsecrets.viewer"]);
    let path = format!("{SECRETS}/any/verification");
    let reply = t.app.call("POST", &path).bearer(&viewer).send();
    assert_eq!((reply.status, reply.code()), (403, "Forbidden".to_owned()));
    let reply = t.app.call("POST", &format!("{SECRETS}/missing/verification")).bearer(&t.admin).send();
    assert_eq!((reply.status, reply.code()), (404, "SecretNotFound".to_owned()));
    let reply = t.app.call("POST", &path).bearer(&t.admin).json(&json!({"repository": "Not/Valid"})).send();
    assert_eq!((reply.status, reply.code()), (400, "InvalidRequest".to_owned()));
    let reply = t.app.call("GET", &path).bearer(&t.admin).send();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    for internal in ["/internal/credential-check", "/v2/internal/credential-check"] {
        let reply = t.app.call("POST", internal).bearer(&t.admin).json(&json!({"auths": {}})).send();
        assert!([404, 405].contains(&reply.status), "{internal} is not reachable from outside: {}", reply.status);
    }
}

#[test]
fn no_credential_or_token_in_answers_or_logs() {
    // Runs after (or alongside) the other cases of this binary: the app's log holds all of them.
    basic_auth_wrong_password_is_unauthorized();
    assert_no_secrets(&app().logs());
}

/// What a check costs on loopback, against a plain read in the same run. Prints; asserts nothing
/// about speed.
#[test]
fn check_cost_on_loopback() {
    let Some(basic) = basic_registry() else { return };
    let policy = TokenPolicy::default().user(USER, PASSWORD).grant(USER, "org/app", &["pull"]);
    let Some(bearer) = Registry::with_token_auth(&pki(), policy) else { return };
    let t = Tenant::new(app(), "cost");
    t.create("basic", &localhost(basic.port()), USER, PASSWORD);
    t.create("bearer", &localhost(bearer.port()), USER, PASSWORD);
    let p50 = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1000.0
    };
    let runs = 15;
    let time = |f: &dyn Fn()| {
        p50((0..runs)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect())
    };
    let read = time(&|| {
        t.get("basic");
    });
    let check = |name: &str| {
        let (reply, _) = t.verify(name, None);
        assert_eq!(reply.json()["ok"], true, "{}", reply.body);
    };
    // A closed port answers at once: what is left is the check's own cost (claim, decrypt, record).
    t.create("closed", &localhost(registry::closed_port()), USER, PASSWORD);
    let closed_ms = time(&|| {
        let (reply, _) = t.verify("closed", None);
        assert_eq!(reply.json()["registries"][0]["result"], "unreachable", "{}", reply.body);
    });
    let basic_ms = time(&|| check("basic"));
    let bearer_ms = time(&|| check("bearer"));
    println!(
        "check cost, p50 of {runs}: get {read:.1} ms; check of a closed port {closed_ms:.1} ms; \
         Basic check {basic_ms:.1} ms; Bearer check {bearer_ms:.1} ms"
    );
}
