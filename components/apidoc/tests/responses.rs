//! Every status the document gives an operation is one the code answers: each is provoked here
//! through the domain's endpoint functions (what the Spin components run), natively, and must come
//! back with the documented headers. (The reverse, a status answered but not documented, is what
//! schemathesis's `status_code_conformance` finds in `tests/e2e/tests/fuzz_openapi.rs`.)

use std::time::Duration;

use domain::clock::{Clock, SystemClock};
use domain::crypto::Keyring;
use domain::endpoints::{self, Context};
use domain::error::Error;
use domain::http::{Body, Outcome, Request};
use domain::identity::AuthSettings;
use domain::log::WritePolicy;
use domain::mint::{MintComponent, Minted, ProviderEndpoints};
use domain::name::TenantId;
use domain::routes::{Route, ROUTES};
use domain::secrets::Env;
use domain::store::{Key, KeyValue, MemoryStore, StoreResult, TenantKeys};
use domain::verify::fetch::{Outgoing, Sender};
use domain::verify::{
    CheckPolicy, Checked, FetchError, Fetched, Fetcher, Outbound, RegistryCheck, Verdict, VerifyComponent,
};
use serde_json::{json, Value};

const TENANT: &str = "acme";
const EXISTING: &str = "ghcr-pull";
const ALL_SCOPES: &[&str] = &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller", "regsecrets.operator"];

/// Writes that the lock branch turns from 500 (`Internal::LockTimeout`, with `Retry-After`) into
/// 503 `TenantBusy`: until then they answer 500 with `Retry-After`. Empty this at that merge; the
/// test fails while an operation listed here already answers 503, so it cannot go stale.
const AWAITING_TENANT_BUSY: &[&str] = &[];

struct Fixture {
    keys: devauth::DevKeys,
    auth: AuthSettings,
    keyring: Result<Keyring, Error>,
}

impl Fixture {
    fn new() -> Fixture {
        let keys = devauth::generate_test_keys_in_memory();
        let auth = keys.auth_settings();
        let keyring = Keyring::parse(keys.encryption_keys());
        Fixture { keys, auth, keyring }
    }

    fn token(&self, scopes: &[&str]) -> String {
        self.keys.token(TENANT, scopes, Duration::from_secs(600))
    }
}

/// A request to a route, as the component gets it.
struct Call {
    path: String,
    query: String,
    token: Option<String>,
    content_type: Option<&'static str>,
    body: Body,
    if_match: Option<&'static str>,
}

impl Call {
    fn new(fixture: &Fixture, route: &Route) -> Call {
        let body = match route.operation {
            "createSecret" => json!({"name": "new-one", "registry": "ghcr.io", "username": "bot", "password": "pw"}),
            "modifySecret" => json!({"registry": "ghcr.io", "username": "bot", "password": "new"}),
            "setTenantQuota" => json!({"limit": 80}),
            "verifySecret" => json!({"repository": "org/app"}),
            "setWorkloadIdentity" => json!({"issuers": [], "bindings": []}),
            _ => Value::Null,
        };
        // The seeded secret is Docker Hub's.
        let query = if route.operation == "resolveCredentials" { "image=nginx" } else { "" };
        Call {
            path: route.path.replace("{name}", EXISTING).replace("{tenant}", TENANT),
            query: query.into(),
            token: Some(fixture.token(ALL_SCOPES)),
            content_type: (!body.is_null()).then_some("application/json"),
            body: Body::Complete(if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() }),
            if_match: None,
        }
    }

    fn request(&self, route: &Route) -> Request {
        let uri = if self.query.is_empty() { self.path.clone() } else { format!("{}?{}", self.path, self.query) };
        let mut builder = http::Request::builder().method(route.method).uri(uri);
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = self.content_type {
            builder = builder.header("content-type", content_type);
        }
        if let Some(tag) = self.if_match {
            builder = builder.header("if-match", tag);
        }
        builder.body(self.body.clone()).unwrap()
    }
}

/// A store whose every call fails, as a store that is down does.
struct Down;

impl KeyValue for Down {
    fn get(&self, _: &Key) -> StoreResult<Option<Vec<u8>>> {
        Err(domain::error::Internal::Store("down".into()))
    }
    fn set(&self, _: &Key, _: &[u8]) -> StoreResult<()> {
        Err(domain::error::Internal::Store("down".into()))
    }
    fn delete(&self, _: &Key) -> StoreResult<()> {
        Err(domain::error::Internal::Store("down".into()))
    }
    fn exists(&self, _: &Key) -> StoreResult<bool> {
        Err(domain::error::Internal::Store("down".into()))
    }
    fn increment(&self, _: &Key, _: i64) -> StoreResult<i64> {
        Err(domain::error::Internal::Store("down".into()))
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        Err(domain::error::Internal::Store("down".into()))
    }
}

/// No registry answers: every check ends `unreachable`, without touching the network.
struct NoNetwork;

impl Fetcher for NoNetwork {
    fn get(&self, _: &url::Url, _: Option<&str>) -> Result<Fetched, FetchError> {
        Err(FetchError::Unreachable)
    }
}

/// The `verify` component, as create and patch reach it, rejecting every credential.
struct Rejecting;

impl VerifyComponent for Rejecting {
    fn check(&self, _: &str, _: &str, _: &domain::dockerconfig::DockerConfig) -> Result<Checked, Error> {
        Ok(Checked::of(vec![RegistryCheck {
            registry: "ghcr.io".into(),
            result: Verdict::Unauthorized,
            http_status: Some(401),
            message: "refused".into(),
        }]))
    }
}

/// AWS, as the `verify` component reaches it to mint: it refuses the key of secrets in
/// `eu-west-1` (no permission), answers secrets in `eu-north-1` with no credential in its answer,
/// and is unreachable for every other region.
struct Aws;

impl Sender for Aws {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        if request.url.host_str() == Some("api.ecr.eu-west-1.amazonaws.com") {
            let body = json!({"__type": "AccessDeniedException", "message": "not authorized"});
            return Ok(Fetched { status: 400, headers: vec![], body: body.to_string().into_bytes() });
        }
        if request.url.host_str() == Some("api.ecr.eu-north-1.amazonaws.com") {
            let body = json!({"authorizationData": []});
            return Ok(Fetched { status: 200, headers: vec![], body: body.to_string().into_bytes() });
        }
        Err(FetchError::Unreachable)
    }
}

/// The `verify` component, as the export reaches it to mint: what it answers for the secrets
/// [`minting`] stores (refused by AWS, or AWS down).
struct Minting;

impl MintComponent for Minting {
    fn mint(&self, _: &str, _: &str, name: &str) -> Result<Minted, Error> {
        match name {
            REFUSED => Err(Error::ProviderRefused("AWS refused ecr:GetAuthorizationToken".into())),
            UNUSABLE => Err(Error::ProviderAnswerUnusable("AWS answered, but with no credential".into())),
            _ => Err(Error::ProviderUnavailable { message: "AWS could not be reached".into(), retry_after_secs: 30 }),
        }
    }
}

/// Minting secrets (AWS identities) whose provider refuses them, answers nothing usable, or cannot
/// be reached.
const REFUSED: &str = "refused-one";
const UNUSABLE: &str = "unusable-one";
const DOWN: &str = "down-one";

fn minting(fixture: &Fixture, store: &MemoryStore, name: &str) {
    let create = ROUTES.iter().find(|r| r.operation == "createSecret").unwrap();
    let mut call = Call::new(fixture, create);
    let region = match name {
        REFUSED => "eu-west-1",
        UNUSABLE => "eu-north-1",
        _ => "eu-central-1",
    };
    let body =
        json!({"name": name, "aws": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "s", "region": region}});
    call.body = Body::Complete(serde_json::to_vec(&body).unwrap());
    assert_eq!(run(fixture, store, WritePolicy::default(), create, &call).response.status(), 201);
}

fn run<S: KeyValue>(fixture: &Fixture, store: &S, policy: WritePolicy, route: &Route, call: &Call) -> Outcome {
    let env = Env { store, clock: &SystemClock, policy };
    let policy = CheckPolicy::default();
    let endpoints = ProviderEndpoints::default();
    let outbound = Outbound {
        registries: &NoNetwork,
        verify_component: &Rejecting,
        policy: &policy,
        providers: &Aws,
        endpoints: &endpoints,
        mint_component: &Minting,
    };
    let ctx = Context {
        env,
        auth: &fixture.auth,
        keyring: Some(&fixture.keyring),
        outbound: Some(outbound),
        key_sender: None,
    };
    let request = call.request(route);
    match route.component {
        "create" => endpoints::create(&ctx, &request),
        "patch" => endpoints::modify(&ctx, &request),
        "delete" => endpoints::delete(&ctx, &request),
        "list" => endpoints::read(&ctx, &request),
        "credentials" => endpoints::credentials(&ctx, &request),
        "quota" => endpoints::quota(&ctx, &request),
        "reencrypt" => endpoints::reencrypt(&ctx, &request),
        "verify" => endpoints::verify(&ctx, &request),
        "workload" => endpoints::workload(&ctx, &request),
        "live" => endpoints::liveness(&request),
        "ready" => endpoints::readiness(store, &request),
        other => panic!("no endpoint function for component {other}"),
    }
}

/// A store holding one secret, `EXISTING`, of the tenant.
fn seeded(fixture: &Fixture) -> MemoryStore {
    let store = MemoryStore::new();
    let create = ROUTES.iter().find(|r| r.operation == "createSecret").unwrap();
    let mut call = Call::new(fixture, create);
    call.body =
        Body::Complete(serde_json::to_vec(&json!({"name": EXISTING, "username": "u", "password": "p"})).unwrap());
    assert_eq!(run(fixture, &store, WritePolicy::default(), create, &call).response.status(), 201);
    store
}

/// Sends the route a request that must be answered `status`, and returns the answer.
fn provoke(fixture: &Fixture, route: &Route, status: u16) -> Outcome {
    let store = seeded(fixture);
    let mut call = Call::new(fixture, route);
    let policy = WritePolicy::default();
    let op = route.operation;
    match status {
        200 | 201 => {}
        400 => match op {
            "createSecret" | "modifySecret" => call.body = Body::Complete(b"{\"name\": \"Not A Name\"}".to_vec()),
            "listSecrets" => call.query = "$top=many".into(),
            "getResourceQuota" => call.query = "quotaOnly=null".into(),
            "verifySecret" => call.body = Body::Complete(b"{\"repository\": \"Not A Repository\"}".to_vec()),
            "resolveCredentials" => call.query = "image=Not%20An%20Image".into(),
            "setWorkloadIdentity" => {
                call.body = Body::Complete(b"{\"issuers\": [], \"bindings\": [{\"issuer\": \"x\"}]}".to_vec())
            }
            _ if route.path.contains("{tenant}") => call.path = route.path.replace("{tenant}", "a..b"),
            _ => panic!("{op}: no way to provoke 400 known"),
        },
        401 => call.token = None,
        403 => {
            let puller_only = ["exportCredentials", "resolveCredentials"];
            let other = if puller_only.contains(&op) { "regsecrets.viewer" } else { "regsecrets.puller" };
            call.token = Some(fixture.token(&[other]));
        }
        404 if op == "resolveCredentials" => call.query = "image=ghcr.io/nobody/app".into(),
        404 => call.path = route.path.replace("{name}", "missing"),
        409 if op == "verifySecret" => {
            // A check of this version is already in flight.
            let keys = TenantKeys::new(&TenantId::parse(TENANT).unwrap());
            let now = SystemClock.now_ms();
            let lease = CheckPolicy::default().lease_ms();
            for version in 0..4 {
                std::mem::forget(domain::verify::inflight::claim(&store, &keys, version, now, lease));
            }
        }
        409 => {
            call.body = Body::Complete(
                serde_json::to_vec(&json!({"name": EXISTING, "username": "u", "password": "p"})).unwrap(),
            )
        }
        422 if op == "exportCredentials" || op == "verifySecret" => {
            minting(fixture, &store, REFUSED);
            call.path = route.path.replace("{name}", REFUSED);
        }
        422 if op == "resolveCredentials" => {
            // Every secret is looked at, and this one's provider refuses its identity.
            minting(fixture, &store, REFUSED);
            call.query = "all=true".into();
        }
        502 if op == "exportCredentials" || op == "verifySecret" => {
            minting(fixture, &store, UNUSABLE);
            call.path = route.path.replace("{name}", UNUSABLE);
        }
        502 if op == "resolveCredentials" => {
            minting(fixture, &store, UNUSABLE);
            call.query = "all=true".into();
        }
        503 if op == "exportCredentials" => {
            minting(fixture, &store, DOWN);
            call.path = route.path.replace("{name}", DOWN);
        }
        422 => call.query = "verify=true".into(),
        412 => call.if_match = Some("\"999999\""),
        413 => call.body = Body::TooLarge,
        415 => call.content_type = Some("text/plain"),
        500 => {
            // A stored value that is not ours: the tenant's current view is damaged.
            let keys = TenantKeys::new(&TenantId::parse(TENANT).unwrap());
            let head = store.counter(&keys.seq()).unwrap().unwrap();
            store.set(&keys.view(head), b"damaged").unwrap();
        }
        503 => return run(fixture, &Down, policy, route, &call),
        other => panic!("{op}: no way to provoke {other} known"),
    }
    run(fixture, &store, policy, route, &call)
}

fn header<'a>(outcome: &'a Outcome, name: &str) -> Option<&'a str> {
    outcome.response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn every_documented_status_of_every_operation_is_answered_with_its_headers() {
    let fixture = Fixture::new();
    let doc: Value = serde_json::from_str(&apidoc::json()).unwrap();
    let mut checked = 0;
    for route in ROUTES {
        let responses = doc["paths"][route.path][route.method.to_ascii_lowercase()]["responses"].as_object().unwrap();
        for (status, response) in responses {
            let status: u16 = status.parse().expect("statuses are numbers");
            let outcome = provoke(&fixture, route, status);
            let answered = outcome.response.status().as_u16();
            let body = String::from_utf8_lossy(outcome.response.body()).into_owned();
            if status == 503 && AWAITING_TENANT_BUSY.contains(&route.operation) {
                assert_eq!(answered, 500, "{} answers 503 now: remove it from AWAITING_TENANT_BUSY", route.operation);
                assert!(header(&outcome, "retry-after").is_some(), "{}: {body}", route.operation);
                continue;
            }
            assert_eq!(answered, status, "{} {}: {body}", route.operation, route.path);
            assert!(header(&outcome, "x-request-id").is_some());
            let response = match response.get("$ref").and_then(Value::as_str) {
                Some(reference) => doc.pointer(reference.trim_start_matches('#')).unwrap(),
                None => response,
            };
            for name in response["headers"].as_object().map(|h| h.keys().collect()).unwrap_or_else(Vec::new) {
                assert!(header(&outcome, name).is_some(), "{} {status} lacks {name}", route.operation);
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} responses checked");
}
