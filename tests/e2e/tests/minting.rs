//! Secrets that mint (issue 19), end to end: the built components in the test host, against moto's
//! server for AWS (IAM authentication on) and the test token endpoints for Google and Azure, on
//! every store backend this run reaches (SQLite, and Redis and DynamoDB when configured: the
//! minted credential's cache is the store's). The
//! provider endpoints reach the `verify` component only through `allowed_outbound_hosts`
//! templates (`{{ aws_endpoint_url }}`, …) set by the variables below, as under Spin, with no edit
//! of spin.toml.

use std::collections::BTreeMap;

use base64::Engine as _;
use domain::clock::{Clock, ManualClock};
use domain::crypto::Keyring;
use domain::index::IndexEntry;
use domain::mint::{self, ProviderEndpoints, Providers, Source};
use domain::name::TenantId;
use domain::provider::{Identity, Kind};
use domain::store::{KeyValue, MemoryStore};
use domain::verify::PlainHttpRegistries;
use e2e::minting::{google_key_file, AzurePeers, GoogleTokens, Moto, UreqSender, AZURE_CLIENT, AZURE_TENANT};
use e2e::{unique_tenant, Backend, Options, Reply, TestApp, Tokens, SECRETS};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

const PULL: &[&str] = &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"];

fn start(backend: &Backend, variables: &[(&str, String)]) -> TestApp {
    let extra: BTreeMap<String, String> = variables.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    TestApp::start_with(Options { backend: backend.clone(), ..Options::default() }, Tokens::default(), extra)
}

fn export(app: &TestApp, token: &str, name: &str) -> Reply {
    app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(token).send()
}

/// The one `auths` entry of an exported Secret: registry, username, password; and its expiry.
fn credential(reply: &Reply) -> (String, String, String, String) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let manifest = reply.json();
    let config = base64::engine::general_purpose::STANDARD
        .decode(manifest["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    let (registry, entry) = config["auths"].as_object().unwrap().iter().next().unwrap();
    let expires = manifest["metadata"]["annotations"]["regsecrets.dev/expires-at"].as_str().unwrap_or_default();
    (
        registry.clone(),
        entry["username"].as_str().unwrap().to_owned(),
        entry["password"].as_str().unwrap().to_owned(),
        expires.to_owned(),
    )
}

#[test]
fn ecr_is_minted_by_moto_once_for_a_burst_and_refused_as_aws_refuses() {
    let Some(moto) = Moto::start() else { return };
    for backend in Backend::all() {
        ecr_minted_once_on(&backend, &moto);
    }
}

fn ecr_minted_once_on(backend: &Backend, moto: &Moto) {
    let app = start(backend, &[("aws_endpoint_url", moto.url())]);
    let tenant = unique_tenant("ecr");
    let token = app.token(&tenant, PULL);
    let aws =
        |(id, secret): &(String, String)| json!({"accessKeyId": id, "secretAccessKey": secret, "region": "us-east-1"});

    assert_eq!(app.create(&token, &json!({"name": "ecr", "aws": aws(&moto.puller)})).status, 201);
    let metadata = app.call("GET", &format!("{SECRETS}/ecr")).bearer(&token).send().json();
    assert_eq!(metadata["kind"], "awsEcr");
    assert!(metadata.get("expiresAt").is_none(), "nothing minted yet: {metadata}");
    assert!(!metadata.to_string().contains(&moto.puller.0), "metadata shows no part of the identity");

    let before = moto.requests();
    let first = export(&app, &token, "ecr");
    let (registry, username, password, expires) = credential(&first);
    assert_eq!(moto.requests(), before + 1, "one GetAuthorizationToken");
    assert!(registry.ends_with(".dkr.ecr.us-east-1.amazonaws.com"), "{registry}");
    assert_eq!(username, "AWS");
    assert!(!password.is_empty());
    assert!(expires.ends_with('Z'), "the Secret says when it expires: {}", first.body);
    for _ in 0..3 {
        assert_eq!(export(&app, &token, "ecr").body, first.body, "the cached credential");
    }
    assert_eq!(moto.requests(), before + 1, "a burst of exports mints once");
    let metadata = app.call("GET", &format!("{SECRETS}/ecr")).bearer(&token).send().json();
    assert_eq!(metadata["expiresAt"], expires.as_str());

    // A key without the permission, a wrong secret, an unknown key: refused by moto's IAM as by AWS.
    let wrong_secret = (moto.puller.0.clone(), "not-the-secret".to_owned());
    let unknown = ("AKIAUNKNOWNKEY000000".to_owned(), "x".to_owned());
    for (name, keys, says) in [
        ("ecr-nobody", &moto.nobody, "grant it `ecr:GetAuthorizationToken`"),
        ("ecr-bad-signature", &wrong_secret, "`aws.secretAccessKey` does not belong"),
        ("ecr-unknown", &unknown, "AWS does not know the access key"),
    ] {
        assert_eq!(app.create(&token, &json!({"name": name, "aws": aws(keys)})).status, 201);
        let before = moto.requests();
        for _ in 0..2 {
            let refused = export(&app, &token, name);
            assert_eq!((refused.status, refused.code().as_str()), (422, "ProviderRefused"), "{name}: {}", refused.body);
            assert!(refused.json()["error"]["message"].as_str().unwrap().contains(says), "{name}: {}", refused.body);
            assert!(!refused.body.contains(&keys.1) && !refused.body.contains(&keys.0), "{}", refused.body);
        }
        assert_eq!(moto.requests(), before + 2, "{name}: nothing is cached from a refusal");
    }

    // A Google key whose token_uri names the metadata service: refused without a request.
    let key = RS256KeyPair::generate(2048).unwrap();
    let file = google_key_file(&key).replace("https://oauth2.googleapis.com/token", "https://169.254.169.254/token");
    let body =
        json!({"name": "gar-ssrf", "google": {"serviceAccountKey": file, "registries": ["europe-docker.pkg.dev"]}});
    assert_eq!(app.create(&token, &body).status, 201);
    let refused = export(&app, &token, "gar-ssrf");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("token_uri"), "{}", refused.body);

    let logs = app.logs();
    for secret in [&moto.puller.1, &moto.nobody.1, &password] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
}

#[test]
fn ecr_with_registry_ids_exports_and_resolves_each_registrys_own_token() {
    let Some(moto) = Moto::start() else { return };
    for backend in Backend::all() {
        ecr_registry_ids_on(&backend, &moto);
    }
}

fn ecr_registry_ids_on(backend: &Backend, moto: &Moto) {
    let app = start(backend, &[("aws_endpoint_url", moto.url())]);
    let tenant = unique_tenant("ecr-ids");
    let token = app.token(&tenant, PULL);
    let accounts = ["111111111111", "222222222222", "333333333333", "444444444444"];
    let (id, secret) = &moto.puller;
    let body = json!({"name": "ecr-four", "aws": {"accessKeyId": id, "secretAccessKey": secret, "region": "us-east-1",
        "registryIds": accounts}});
    assert_eq!(app.create(&token, &body).status, 201);

    // Four registries, each with the token moto minted for it (moto, as ECR, answers one each).
    let reply = export(&app, &token, "ecr-four");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let config = base64::engine::general_purpose::STANDARD
        .decode(reply.json()["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let auths = serde_json::from_slice::<Value>(&config).unwrap()["auths"].clone();
    let mut passwords = std::collections::BTreeSet::new();
    for account in accounts {
        let registry = format!("{account}.dkr.ecr.us-east-1.amazonaws.com");
        let entry = &auths[registry.as_str()];
        assert_eq!(entry["username"], "AWS", "{registry}: {auths}");
        passwords.insert(entry["password"].as_str().unwrap().to_owned());
    }
    assert_eq!((auths.as_object().unwrap().len(), passwords.len()), (4, 4), "one token of its own each");

    // The pull-time lookup answers a registry its own token.
    let registry = format!("{}.dkr.ecr.us-east-1.amazonaws.com", accounts[2]);
    let resolved = app.call("GET", &format!("/v2/pull/credentials?registry={registry}")).bearer(&token).send();
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    let answered = &resolved.json()["credentials"][0];
    assert_eq!(answered["password"], auths[registry.as_str()]["password"], "{}", resolved.body);
}

#[test]
fn ecr_is_minted_again_once_the_cached_credential_nears_its_expiry() {
    let Some(moto) = Moto::start() else { return };
    let endpoints = ProviderEndpoints::parse(&moto.url(), "", "", PlainHttpRegistries::default()).unwrap();
    let clock = ManualClock::at(domain::clock::SystemClock.now_ms());
    let providers = Providers { sender: &UreqSender, clock: &clock, endpoints: &endpoints };
    let request = domain::dockerconfig::SecretRequest::from_json(
        json!({"name": "ecr", "aws": {"accessKeyId": moto.puller.0, "secretAccessKey": moto.puller.1, "region": "eu-west-1"}}),
        true,
    )
    .unwrap();
    let domain::dockerconfig::Credentials::Minting(identity @ Identity::AwsEcr(_)) = request.credentials else {
        panic!()
    };
    let store = MemoryStore::new();
    let keyring = Keyring::parse(&e2e::test_encryption_keys("k1")).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let entry = IndexEntry {
        name: "ecr".into(),
        registries: vec![],
        managed: false,
        created: 0,
        modified: 0,
        version: 1,
        record: 1,
        verification: None,
        kind: Kind::AwsEcr,
    };
    // The record the credential is minted from (a cache write checks that it still exists).
    store.set(&domain::store::TenantKeys::new(&tenant).record(1), b"{}").unwrap();
    let source = Source::Providers(&providers);
    let read = || mint::current(&store, &keyring, &tenant, &entry, &identity, &source, clock.now_ms()).unwrap();

    let before = moto.requests();
    let first = read();
    assert_eq!(first.logins[0].username, "AWS");
    assert!(first.expires_at > clock.now_ms() + 11 * 3600 * 1000, "ECR tokens last 12 hours");
    clock.set(first.fresh_until - 1);
    assert_eq!(read(), first);
    assert_eq!(moto.requests(), before + 1, "cached until the margin before expiry");
    clock.set(first.fresh_until);
    read();
    assert_eq!(moto.requests(), before + 2, "minted again within the margin");
}

#[test]
fn google_and_azure_are_minted_through_their_token_endpoints_once_per_burst() {
    for backend in Backend::all() {
        google_and_azure_on(&backend);
    }
}

fn google_and_azure_on(backend: &Backend) {
    let key = RS256KeyPair::generate(2048).unwrap();
    let google = GoogleTokens::start(key.public_key());
    let azure = AzurePeers::start("client~secret");
    let azure_host = format!("localhost:{}", azure.port());
    let app = start(
        backend,
        &[
            ("google_token_url", google.url()),
            ("azure_authority_url", format!("http://{azure_host}")),
            ("verify_insecure_registries", azure_host.clone()),
        ],
    );
    let tenant = unique_tenant("gcp-acr");
    let token = app.token(&tenant, PULL);

    let body = json!({"name": "gar", "google": {"serviceAccountKey": google_key_file(&key), "registries": ["europe-docker.pkg.dev"]}});
    assert_eq!(app.create(&token, &body).status, 201);
    let first = export(&app, &token, "gar");
    let (registry, username, password, expires) = credential(&first);
    assert_eq!(
        (registry.as_str(), username.as_str(), password.as_str()),
        ("europe-docker.pkg.dev", "oauth2accesstoken", "ya29.test-1")
    );
    assert!(!expires.is_empty());
    assert_eq!(export(&app, &token, "gar").body, first.body);
    assert_eq!(google.issued.load(std::sync::atomic::Ordering::SeqCst), 1, "one grant for two exports");

    let other = RS256KeyPair::generate(2048).unwrap();
    let body = json!({"name": "gar-other-key", "google": {"serviceAccountKey": google_key_file(&other), "registries": ["gcr.io"]}});
    assert_eq!(app.create(&token, &body).status, 201);
    let refused = export(&app, &token, "gar-other-key");
    assert_eq!((refused.status, refused.code().as_str()), (422, "ProviderRefused"), "{}", refused.body);
    assert!(refused.body.contains("invalid_grant") && !refused.body.contains("Invalid JWT"), "{}", refused.body);
    assert!(google.refused.lock().unwrap().iter().any(|why| why.contains("Invalid JWT")), "refused for its signature");

    let azure_body = |secret: &str| json!({"tenantId": AZURE_TENANT, "clientId": AZURE_CLIENT, "clientSecret": secret, "registry": azure_host});
    assert_eq!(app.create(&token, &json!({"name": "acr", "azure": azure_body("client~secret")})).status, 201);
    let first = export(&app, &token, "acr");
    let (registry, username, password, _) = credential(&first);
    assert_eq!((registry.as_str(), username.as_str()), (azure_host.as_str(), "00000000-0000-0000-0000-000000000000"));
    assert_eq!(password.split('.').count(), 3, "the registry's refresh token");
    assert_eq!(export(&app, &token, "acr").body, first.body);
    assert_eq!(azure.exchanged.load(std::sync::atomic::Ordering::SeqCst), 1);

    assert_eq!(app.create(&token, &json!({"name": "acr-rotated", "azure": azure_body("old~secret")})).status, 201);
    let refused = export(&app, &token, "acr-rotated");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("`azure.clientSecret`") && !refused.body.contains("old~secret"), "{}", refused.body);
    assert!(!refused.body.contains("AADSTS"), "the provider's text is not passed on");
    assert!(!app.logs().contains("client~secret"));

    // A modify gives a secret a new record (minted anew), a delete removes one: no cached
    // credential outlives the record it was minted from.
    let gar = json!({"google": {"serviceAccountKey": google_key_file(&key), "registries": ["europe-docker.pkg.dev"]}});
    let patched = app.call("PATCH", &format!("{SECRETS}/gar")).bearer(&token).json(&gar).send();
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(credential(&export(&app, &token, "gar")).2, "ya29.test-2", "minted for the new record");
    for name in ["acr", "gar-other-key", "acr-rotated"] {
        assert_eq!(app.call("DELETE", &format!("{SECRETS}/{name}")).bearer(&token).send().status, 200, "{name}");
    }
    e2e::invariants::assert_invariants(&app, &tenant, "after minting, a modify and deletes");
}
