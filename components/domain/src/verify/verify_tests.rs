//! The verification operation over the in-memory store, with a scripted registry: the outcome in
//! the metadata, the version and ETag untouched, a concurrent modify winning, one check in flight,
//! who may verify, the flag and the refusal create and patch give.

use std::cell::Cell;
use std::time::Duration;

use base64::Engine;

use super::*;
use crate::clock::SystemClock;
use crate::crypto::Keyring;
use crate::dockerconfig::SecretRequest;
use crate::identity::{Principal, Scope, Scopes};
use crate::log::WritePolicy;
use crate::name::TenantId;
use crate::secrets::{self, Env};
use crate::store::{KeyValue, MemoryStore, TenantKeys};
use url::Url;

const PASSWORD: &str = "s3cret-pw";

fn keyring() -> Keyring {
    Keyring::parse(&format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([9u8; 32]))).unwrap()
}

fn who(scopes: &[Scope]) -> Principal {
    Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: scopes.iter().fold(Scopes::empty(), |s, scope| s.with(*scope)),
        subject: None,
        client: None,
    }
}

fn env(store: &MemoryStore) -> Env<'_, MemoryStore, SystemClock> {
    Env { store, clock: &SystemClock, policy: WritePolicy::with_lease(Duration::from_millis(2_000)) }
}

fn body(name: &str, registry: &str, password: &str) -> SecretRequest {
    let json = serde_json::json!({"name": name, "registry": registry, "username": "bot", "password": password});
    SecretRequest::from_json(json, true).unwrap()
}

/// A basic-auth registry at `registry.example` that accepts `bot`/[`PASSWORD`]; `during` runs
/// inside the first request (to race the check).
struct Registry<'a> {
    during: Box<dyn Fn() + 'a>,
    calls: Cell<usize>,
}

impl Fetcher for Registry<'_> {
    fn get(&self, url: &Url, authorization: Option<&str>) -> Result<Fetched, FetchError> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 1 {
            (self.during)();
        }
        if url.host_str() != Some("registry.example") {
            return Err(FetchError::Unreachable);
        }
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("bot:{PASSWORD}")));
        let status = if authorization == Some(good.as_str()) { 200 } else { 401 };
        Ok(Fetched {
            status,
            headers: vec![
                ("docker-distribution-api-version".into(), "registry/2.0".into()),
                ("www-authenticate".into(), "Basic realm=\"r\"".into()),
            ],
            body: Vec::new(),
        })
    }
}

fn registry<'a>(during: impl Fn() + 'a) -> Registry<'a> {
    Registry { during: Box::new(during), calls: Cell::new(0) }
}

/// The providers, for secrets that mint: these tests store static secrets only.
struct NoProviders;

impl fetch::Sender for NoProviders {
    fn send(&self, _: &fetch::Outgoing) -> Result<Fetched, FetchError> {
        panic!("a static secret's verification called a provider")
    }
}

fn verify(store: &MemoryStore, fetcher: &dyn Fetcher, who: &Principal, name: &str) -> Result<Report, Error> {
    let policy = CheckPolicy::default();
    let checker = Checker { fetcher, clock: &SystemClock, policy: &policy };
    let endpoints = crate::mint::ProviderEndpoints::default();
    let providers = crate::mint::Providers { sender: &NoProviders, clock: &SystemClock, endpoints: &endpoints };
    run::verify_secret(&env(store), who, &keyring(), &checker, &crate::mint::Source::Providers(&providers), name, None)
}

fn admin() -> Principal {
    who(&[Scope::Admin, Scope::Viewer])
}

#[test]
fn the_outcome_is_answered_and_kept_in_the_metadata_without_a_new_version() {
    let store = MemoryStore::new();
    let written =
        secrets::create(&env(&store), &admin(), &keyring(), body("web", "registry.example", PASSWORD)).unwrap();
    let report = verify(&store, &registry(|| {}), &admin(), "web").unwrap();
    assert!(report.ok);
    assert_eq!(report.name, "web");
    assert_eq!(report.registries[0].registry, "registry.example");
    assert_eq!(report.registries[0].result, Verdict::Ok);
    let metadata = secrets::get(&env(&store), &admin(), "web").unwrap();
    assert_eq!(metadata.version, written.version, "a check changes nothing of the secret");
    assert_eq!(metadata.verification, Some(VerificationSummary { checked_at: report.checked_at.clone(), ok: true }));
    let json = serde_json::to_value(&metadata).unwrap();
    assert_eq!(json["verification"]["ok"], true);

    secrets::create(&env(&store), &admin(), &keyring(), body("bad", "registry.example", "wrong")).unwrap();
    let report = verify(&store, &registry(|| {}), &admin(), "bad").unwrap();
    assert!(!report.ok);
    assert_eq!((report.registries[0].result, report.registries[0].http_status), (Verdict::Unauthorized, Some(401)));
    assert_eq!(secrets::get(&env(&store), &admin(), "bad").unwrap().verification.map(|v| v.ok), Some(false));
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains("wrong") && !shown.contains("bot"), "{shown}");
}

#[test]
fn a_modify_during_the_check_wins_and_the_stale_outcome_is_dropped() {
    let store = MemoryStore::new();
    secrets::create(&env(&store), &admin(), &keyring(), body("web", "registry.example", PASSWORD)).unwrap();
    let racing = registry(|| {
        let mut change = body("web", "registry.example", "changed");
        change.name = None;
        secrets::modify(&env(&store), &admin(), &keyring(), "web", change, None).unwrap();
    });
    let report = verify(&store, &racing, &admin(), "web").unwrap();
    assert!(report.ok, "the check was of the credentials read");
    assert_eq!(
        secrets::get(&env(&store), &admin(), "web").unwrap().verification,
        None,
        "not written over the new ones"
    );
}

#[test]
fn a_modify_drops_the_last_outcome_and_a_verified_write_keeps_its_own() {
    let store = MemoryStore::new();
    secrets::create(&env(&store), &admin(), &keyring(), body("web", "registry.example", PASSWORD)).unwrap();
    verify(&store, &registry(|| {}), &admin(), "web").unwrap();
    let mut change = body("web", "registry.example", "other");
    change.name = None;
    secrets::modify(&env(&store), &admin(), &keyring(), "web", change, None).unwrap();
    assert_eq!(secrets::get(&env(&store), &admin(), "web").unwrap().verification, None);
    let mut verified = body("web2", "registry.example", PASSWORD);
    verified.verification = Some(LastCheck { at: 1_000, ok: true });
    secrets::create(&env(&store), &admin(), &keyring(), verified).unwrap();
    let kept = secrets::get(&env(&store), &admin(), "web2").unwrap().verification.unwrap();
    assert_eq!((kept.checked_at.as_str(), kept.ok), ("1970-01-01T00:00:01Z", true));
}

#[test]
fn one_check_per_secret_in_flight() {
    let store = MemoryStore::new();
    secrets::create(&env(&store), &admin(), &keyring(), body("web", "registry.example", PASSWORD)).unwrap();
    let second = Cell::new(None);
    let nested = registry(|| second.set(Some(verify(&store, &registry(|| {}), &admin(), "web"))));
    assert!(verify(&store, &nested, &admin(), "web").unwrap().ok);
    assert_eq!(second.take().unwrap().unwrap_err(), Error::VerificationInProgress);
    assert!(verify(&store, &registry(|| {}), &admin(), "web").is_ok(), "free again once done");
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    assert!(store.dump().keys().all(|k| !k.starts_with(&format!("{}:check:", keys.prefix()))), "no claim left behind");
}

#[test]
fn who_may_verify_and_what_is_refused_before_any_request() {
    let store = MemoryStore::new();
    secrets::create(&env(&store), &admin(), &keyring(), body("web", "registry.example", PASSWORD)).unwrap();
    let operator = who(&[Scope::Operator]);
    secrets::create(&env(&store), &operator, &keyring(), body("managed", "registry.example", PASSWORD)).unwrap();
    let untouched = registry(|| panic!("no request may be sent"));
    let before = store.dump();
    assert_eq!(verify(&store, &untouched, &who(&[Scope::Viewer]), "web").unwrap_err(), Error::Forbidden);
    assert_eq!(verify(&store, &untouched, &admin(), "missing").unwrap_err(), Error::SecretNotFound);
    assert_eq!(verify(&store, &untouched, &admin(), "managed").unwrap_err(), Error::Forbidden);
    assert_eq!(verify(&store, &untouched, &operator, "web").unwrap_err(), Error::Forbidden);
    assert_eq!(store.dump(), before, "refusals store nothing");
    assert!(verify(&store, &registry(|| {}), &operator, "managed").unwrap().ok);
}

#[test]
fn every_registry_is_checked_and_one_failure_fails_the_secret() {
    let store = MemoryStore::new();
    let config = format!(
        r#"{{"auths": {{"registry.example": {{"username": "bot", "password": "{PASSWORD}"}},
            "other.example:5000": {{"username": "bot", "password": "{PASSWORD}"}},
            "http://plain.example": {{"username": "bot", "password": "{PASSWORD}"}},
            "10.1.2.3": {{"username": "bot", "password": "{PASSWORD}"}}}}}}"#
    );
    let request =
        SecretRequest::from_json(serde_json::json!({"name": "many", "data": {".dockerconfigjson": config}}), true)
            .unwrap();
    secrets::create(&env(&store), &admin(), &keyring(), request).unwrap();
    let report = verify(&store, &registry(|| {}), &admin(), "many").unwrap();
    assert!(!report.ok);
    let results: Vec<(&str, Verdict)> = report.registries.iter().map(|r| (r.registry.as_str(), r.result)).collect();
    assert_eq!(
        results,
        [
            ("10.1.2.3", Verdict::Blocked),
            ("plain.example", Verdict::Blocked),
            ("other.example:5000", Verdict::Unreachable),
            ("registry.example", Verdict::Ok),
        ]
    );
}

#[test]
fn the_flag_takes_true_or_false_only() {
    assert!(!wants_verification(None).unwrap());
    assert!(!wants_verification(Some("verify=false")).unwrap());
    assert!(wants_verification(Some("verify=true")).unwrap());
    assert!(wants_verification(Some("x=1&verify=true")).unwrap());
    for bad in ["verify=", "verify=1", "verify=TRUE", "verify=yes", "verify"] {
        assert!(matches!(wants_verification(Some(bad)), Err(Error::InvalidQuery(_))), "{bad}");
    }
}

#[test]
fn a_rejection_carries_each_registrys_result_in_details() {
    let checked = Checked::of(vec![
        outcome::Finding::new(Verdict::Ok, outcome::Why::Accepted).for_registry("a.example"),
        outcome::Finding::new(Verdict::Unauthorized, outcome::Why::WrongCredentials)
            .status(401)
            .for_registry("b.example"),
    ]);
    assert!(!checked.ok);
    let error = run::accepted(checked, 5).unwrap_err();
    assert_eq!((error.status(), error.code()), (422, "CredentialsRejected"));
    let details = serde_json::Value::Object(error.details());
    assert_eq!(details["registries"][1]["result"], "unauthorized");
    assert_eq!(details["registries"][1]["httpStatus"], 401);
    assert!(details["registries"][0].get("httpStatus").is_none());
    let fine = Checked::of(vec![outcome::Finding::new(Verdict::Ok, outcome::Why::Accepted).for_registry("a")]);
    assert_eq!(run::accepted(fine, 5).unwrap(), LastCheck { at: 5, ok: true });
}

#[test]
fn entries_without_an_outcome_still_read() {
    let store = MemoryStore::new();
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    let view = "{\"slot\":1}\n{\"name\":\"web\",\"registries\":[\"ghcr.io\"],\"managed\":false,\"created\":0,\"modified\":0,\"version\":1,\"record\":1}";
    store.increment(&keys.seq(), 1).unwrap();
    store.set(&keys.view(1), view.as_bytes()).unwrap();
    let metadata = secrets::get(&env(&store), &admin(), "web").unwrap();
    assert_eq!(metadata.verification, None);
    assert!(serde_json::to_value(&metadata).unwrap().get("verification").is_none());
}

/// ECR for the verification of a minting secret: hands out `AWS`/[`PASSWORD`] for
/// `registry.example` (the proxy endpoint), counting the mints.
struct Ecr(Cell<usize>);

impl fetch::Sender for Ecr {
    fn send(&self, request: &fetch::Outgoing) -> Result<Fetched, FetchError> {
        use crate::clock::Clock;
        self.0.set(self.0.get() + 1);
        assert!(request.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{PASSWORD}"));
        let now = SystemClock.now_ms() / 1000;
        let body = serde_json::json!({"authorizationData": [{"authorizationToken": token,
            "expiresAt": now + 3600, "proxyEndpoint": "https://registry.example"}]});
        Ok(Fetched { status: 200, headers: vec![], body: body.to_string().into_bytes() })
    }
}

/// A basic-auth registry accepting `AWS`/[`PASSWORD`], as ECR's registry takes the minted token.
struct EcrRegistry;

impl Fetcher for EcrRegistry {
    fn get(&self, url: &Url, authorization: Option<&str>) -> Result<Fetched, FetchError> {
        assert_eq!(url.host_str(), Some("registry.example"));
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("AWS:{PASSWORD}")));
        Ok(Fetched {
            status: if authorization == Some(good.as_str()) { 200 } else { 401 },
            headers: vec![
                ("docker-distribution-api-version".into(), "registry/2.0".into()),
                ("www-authenticate".into(), "Basic realm=\"r\"".into()),
            ],
            body: Vec::new(),
        })
    }
}

#[test]
fn a_minting_secret_is_verified_with_its_current_minted_credential_minted_once() {
    let store = MemoryStore::new();
    let body = serde_json::json!({"name": "ecr", "aws": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s", "region": "eu-central-1"}});
    secrets::create(&env(&store), &admin(), &keyring(), SecretRequest::from_json(body, true).unwrap()).unwrap();
    let ecr = Ecr(Cell::new(0));
    let endpoints = crate::mint::ProviderEndpoints::default();
    let providers = crate::mint::Providers { sender: &ecr, clock: &SystemClock, endpoints: &endpoints };
    let policy = CheckPolicy::default();
    let checker = Checker { fetcher: &EcrRegistry, clock: &SystemClock, policy: &policy };
    let source = crate::mint::Source::Providers(&providers);
    for _ in 0..2 {
        let report = run::verify_secret(&env(&store), &admin(), &keyring(), &checker, &source, "ecr", None).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.registries[0].registry, "registry.example");
    }
    assert_eq!(ecr.0.get(), 1, "the second verification used the cached credential");
}
