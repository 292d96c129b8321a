//! Minting against scripted providers that check what the real ones check: AWS recomputes the
//! SigV4 signature with the secret it knows, Google verifies the assertion with the key's public
//! half, Microsoft and the registry check the form fields. Then the cache: a second read mints
//! nothing, expiry re-mints, failures cache nothing, another version is never served.

use std::cell::RefCell;

use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::json;

use super::sigv4::Signer;
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::dockerconfig::{Credentials, SecretRequest};
use crate::provider::Kind;
use crate::store::MemoryStore;

/// 2026-01-01T00:00:00Z
const NOW: u64 = 1_767_225_600_000;

struct Script<F: Fn(&Outgoing) -> Result<Fetched, FetchError>> {
    answer: F,
    sent: RefCell<Vec<Outgoing>>,
}

impl<F: Fn(&Outgoing) -> Result<Fetched, FetchError>> Sender for Script<F> {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        self.sent.borrow_mut().push(request.clone());
        (self.answer)(request)
    }
}

fn script<F: Fn(&Outgoing) -> Result<Fetched, FetchError>>(answer: F) -> Script<F> {
    Script { answer, sent: RefCell::new(Vec::new()) }
}

fn json_answer(status: u16, body: serde_json::Value) -> Result<Fetched, FetchError> {
    Ok(Fetched { status, headers: vec![], body: body.to_string().into_bytes() })
}

fn form_of(request: &Outgoing) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

fn identity(body: serde_json::Value) -> Identity {
    match SecretRequest::from_json(body, true).unwrap().credentials {
        Credentials::Minting(identity) => identity,
        Credentials::Static(_) => panic!("not an identity"),
    }
}

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ECR_PASSWORD: &str = "ecr-password-from-aws";

fn aws_identity() -> Identity {
    identity(
        json!({"name": "ecr", "aws": {"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "region": "eu-central-1"}}),
    )
}

/// AWS as it checks a request: the key must be known, the signature must be the one the secret
/// makes over what was received; then the permission.
fn fake_aws(keys: &[(&str, &str)], allowed: &[&str]) -> impl Fn(&Outgoing) -> Result<Fetched, FetchError> {
    let keys: Vec<(String, String)> = keys.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
    move |request: &Outgoing| {
        let authorization = request.header("authorization").unwrap_or_default().to_owned();
        let credential = authorization.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or("");
        let Some((_, secret)) = keys.iter().find(|(id, _)| id == credential) else {
            return json_answer(
                400,
                json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."}),
            );
        };
        let mut headers: Vec<(String, String)> =
            request.headers.iter().filter(|(n, _)| n != "authorization").cloned().collect();
        // The Host header as sent: with the port when it is not the scheme's.
        let host = request.url.host_str().unwrap();
        headers.push(("host".into(), request.url.port().map_or(host.to_owned(), |p| format!("{host}:{p}"))));
        let scope: Vec<&str> = authorization.split("Credential=").nth(1).unwrap().split('/').collect();
        let signer =
            Signer { access_key_id: credential, secret_access_key: secret, region: scope[2], service: scope[3] };
        if signer.authorization(request.method, &request.url, &headers, &request.body) != authorization {
            return json_answer(
                400,
                json!({"__type": "InvalidSignatureException", "message": "The request signature we calculated does not match"}),
            );
        }
        assert_eq!(request.header("x-amz-target"), Some(aws::ECR_TARGET));
        assert_eq!(request.header("content-type"), Some("application/x-amz-json-1.1"));
        if !allowed.iter().any(|id| id == credential) {
            return json_answer(
                400,
                json!({"__type": "AccessDeniedException", "message": "User: arn:aws:iam::123456789012:user/x is not authorized"}),
            );
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{ECR_PASSWORD}"));
        json_answer(
            200,
            json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": (NOW / 1000 + 12 * 3600) as f64 - 0.5,
                "proxyEndpoint": "https://123456789012.dkr.ecr.eu-central-1.amazonaws.com",
            }]}),
        )
    }
}

fn providers<'a>(sender: &'a dyn Sender, clock: &'a ManualClock, endpoints: &'a ProviderEndpoints) -> Providers<'a> {
    Providers { sender, clock, endpoints }
}

/// (registry, username, password) of each login.
fn logins(minted: &Minted) -> Vec<(&str, &str, &str)> {
    minted.logins.iter().map(|l| (l.registry.as_str(), l.username.as_str(), l.password.as_str())).collect()
}

const ACCOUNTS: [&str; 4] = ["111111111111", "222222222222", "333333333333", "444444444444"];

fn aws_identity_of(registry_ids: &[&str]) -> Identity {
    identity(json!({"name": "ecr", "aws": {"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "region": "eu-central-1",
        "registryIds": registry_ids}}))
}

/// ECR as it answers `registryIds`: one item per registry asked for, each with a token of its own
/// (as AWS and moto do); `leave_out` registries are missing from the answer.
fn fake_ecr_per_registry(leave_out: &'static [&'static str]) -> impl Fn(&Outgoing) -> Result<Fetched, FetchError> {
    move |request: &Outgoing| {
        let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let items: Vec<serde_json::Value> = asked["registryIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .filter(|id| !leave_out.contains(id))
            .map(|id| {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{id}-token"));
                json!({"authorizationToken": token, "expiresAt": (NOW / 1000 + 12 * 3600) as f64,
                    "proxyEndpoint": format!("https://{id}.dkr.ecr.eu-central-1.amazonaws.com")})
            })
            .collect();
        json_answer(200, json!({ "authorizationData": items }))
    }
}

#[test]
fn ecr_with_registry_ids_mints_one_login_per_registry_each_with_its_own_token() {
    let aws = script(fake_ecr_per_registry(&[]));
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let minted = providers(&aws, &clock, &endpoints).mint(&aws_identity_of(&ACCOUNTS)).unwrap();
    let expected: Vec<(String, String)> =
        ACCOUNTS.iter().map(|id| (format!("{id}.dkr.ecr.eu-central-1.amazonaws.com"), format!("{id}-token"))).collect();
    let got: Vec<(String, String)> = minted.logins.iter().map(|l| (l.registry.clone(), l.password.clone())).collect();
    assert_eq!(got, expected);
    assert!(minted.logins.iter().all(|l| l.username == "AWS"));
    // The `.dockerconfigjson` holds each registry with its own password.
    let config = minted.to_docker_config().unwrap();
    for (registry, password) in &expected {
        let auth = &config.auths()[registry.as_str()];
        assert_eq!((auth.username(), auth.password()), ("AWS", password.as_str()), "{registry}");
    }
    let asked: serde_json::Value = serde_json::from_slice(&aws.sent.borrow()[0].body).unwrap();
    assert_eq!(asked, json!({ "registryIds": ACCOUNTS }));
}

#[test]
fn an_answer_we_cannot_use_is_a_502_without_retry_after_and_quotes_nothing_of_it() {
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let item = |token: &str, endpoint: &str| {
        json!({"authorizationToken": base64::engine::general_purpose::STANDARD.encode(token),
            "expiresAt": (NOW / 1000 + 3600) as f64, "proxyEndpoint": endpoint})
    };
    let cases: Vec<(&str, Result<Fetched, FetchError>)> = vec![
        ("not JSON", Ok(Fetched { status: 200, headers: vec![], body: b"<html>leaked-body</html>".to_vec() })),
        ("no authorizationData", json_answer(200, json!({"authorizationData": []}))),
        (
            "no user:password",
            json_answer(200, json!({"authorizationData": [item("leaked-body", "https://r.example")]})),
        ),
        (
            "not base64",
            json_answer(
                200,
                json!({"authorizationData": [{"authorizationToken": "%%leaked-body%%",
            "expiresAt": 1.0, "proxyEndpoint": "https://r.example"}]}),
            ),
        ),
        (
            "no proxyEndpoint",
            json_answer(
                200,
                json!({"authorizationData": [{"authorizationToken":
            base64::engine::general_purpose::STANDARD.encode("AWS:leaked-body"), "expiresAt": 1.0}]}),
            ),
        ),
        ("a redirect", Ok(Fetched { status: 302, headers: vec![], body: b"leaked-body".to_vec() })),
    ];
    for (why, answer) in cases {
        let aws = script(move |_: &Outgoing| answer.clone());
        let error = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
        assert!(matches!(error, Error::ProviderAnswerUnusable(_)), "{why}: {error:?}");
        assert_eq!((error.status(), error.code(), error.retry_after_secs()), (502, "ProviderAnswerUnusable", None));
        assert!(error.message().starts_with("AWS answered, but"), "{why}: {}", error.message());
        assert!(!error.message().contains("leaked-body"), "{why}: {}", error.message());
    }
    // A registry of `registryIds` without a token: unusable, and it says which.
    let aws = script(fake_ecr_per_registry(&["333333333333"]));
    let error = providers(&aws, &clock, &endpoints).mint(&aws_identity_of(&ACCOUNTS)).unwrap_err();
    assert_eq!(error.status(), 502);
    assert!(error.message().contains("333333333333.dkr.ecr.eu-central-1.amazonaws.com"), "{}", error.message());
    // Google's and Microsoft's token answers without a token are the same.
    let key = RS256KeyPair::generate(2048).unwrap();
    let google = script(|_: &Outgoing| json_answer(200, json!({"token_type": "Bearer"})));
    let error = providers(&google, &clock, &endpoints)
        .mint(&google_identity(&key, "https://oauth2.googleapis.com/token"))
        .unwrap_err();
    assert_eq!((error.status(), error.retry_after_secs()), (502, None), "{error:?}");
    let azure = script(|_: &Outgoing| json_answer(200, json!({"expires_in": 3599})));
    let error = providers(&azure, &clock, &endpoints).mint(&azure_identity()).unwrap_err();
    assert_eq!((error.status(), error.retry_after_secs()), (502, None), "{error:?}");
}

#[test]
fn ecr_mints_a_signed_get_authorization_token() {
    let aws = script(fake_aws(&[(KEY_ID, SECRET)], &[KEY_ID]));
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let minted = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap();
    assert_eq!(logins(&minted), [("123456789012.dkr.ecr.eu-central-1.amazonaws.com", "AWS", ECR_PASSWORD)]);
    assert_eq!(minted.expires_at, NOW + 12 * 3600 * 1000 - 500);
    assert!(minted.fresh_until < minted.expires_at && minted.fresh_until > NOW);
    let sent = aws.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url.as_str(), "https://api.ecr.eu-central-1.amazonaws.com/");
    assert_eq!(sent[0].header("x-amz-date"), Some("20260101T000000Z"));
    let config = minted.to_docker_config().unwrap();
    let auth = &config.auths()["123456789012.dkr.ecr.eu-central-1.amazonaws.com"];
    assert_eq!((auth.username(), auth.password()), ("AWS", ECR_PASSWORD));
}

#[test]
fn aws_refusals_say_what_to_fix_without_the_secret() {
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    for (keys, allowed, expected) in [
        (vec![("AKIAOTHERKEYEXAMPLE1", SECRET)], vec![], "`aws.accessKeyId`"),
        (vec![(KEY_ID, "another-secret")], vec![KEY_ID], "`aws.secretAccessKey` does not belong"),
        (vec![(KEY_ID, SECRET)], vec![], "grant it `ecr:GetAuthorizationToken`"),
    ] {
        let aws = script(fake_aws(&keys, &allowed));
        let error = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
        assert_eq!(error.status(), 422, "{error:?}");
        let message = error.message();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains(SECRET) && !message.contains(KEY_ID) && !message.contains("arn:"), "{message}");
    }
}

#[test]
fn an_aws_outage_is_a_503_with_retry_after() {
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    for answer in [
        Err(FetchError::Timeout),
        Err(FetchError::Unreachable),
        json_answer(500, json!({"__type": "ServerException"})),
        json_answer(503, json!({})),
        json_answer(429, json!({})),
        json_answer(400, json!({"__type": "ThrottlingException"})),
    ] {
        let aws = script(move |_: &Outgoing| answer.clone());
        let error = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
        assert!(matches!(error, Error::ProviderUnavailable { retry_after_secs: RETRY_AFTER_SECS, .. }), "{error:?}");
        assert_eq!(error.status(), 503);
    }
}

/// What asking again will not change is never "retry later": an untrusted certificate is the
/// provider's answer we cannot use (502, no Retry-After), a destination our own network rules
/// refuse is our configuration (500).
#[test]
fn an_untrusted_certificate_or_a_blocked_destination_is_no_outage() {
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let tls = script(|_: &Outgoing| Err(FetchError::Tls));
    let error = providers(&tls, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
    assert!(matches!(error, Error::ProviderAnswerUnusable(_)), "{error:?}");
    assert_eq!((error.status(), error.retry_after_secs()), (502, None));
    let blocked = script(|_: &Outgoing| Err(FetchError::Blocked));
    let error = providers(&blocked, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
    assert_eq!(error, Error::Internal(Internal::Config("allowed_outbound_hosts")));
    assert_eq!((error.status(), error.retry_after_secs()), (500, None));
}

#[test]
fn a_role_is_assumed_first_and_its_session_signs_the_ecr_call() {
    let mut body = json!({"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "region": "eu-central-1"});
    body["roleArn"] = json!("arn:aws:iam::123456789012:role/puller");
    let identity = identity(json!({"name": "ecr", "aws": body}));
    let ecr = fake_aws(&[("ASIAROLESESSIONKEY01", "role-secret")], &["ASIAROLESESSIONKEY01"]);
    let sender = script(move |request: &Outgoing| {
        if request.header("x-amz-target").is_none() {
            let form = form_of(request);
            assert_eq!(form["Action"], "AssumeRole");
            assert_eq!(form["RoleArn"], "arn:aws:iam::123456789012:role/puller");
            assert!(request.header("authorization").unwrap().contains("/eu-central-1/sts/aws4_request"));
            let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAROLESESSIONKEY01</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey><SessionToken>session-token</SessionToken><Expiration>2026-01-01T01:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
            return Ok(Fetched { status: 200, headers: vec![], body: xml.as_bytes().to_vec() });
        }
        assert_eq!(request.header("x-amz-security-token"), Some("session-token"));
        ecr(request)
    });
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::parse("http://127.0.0.1:5000", "", "", PlainHttpRegistries::default()).unwrap();
    let minted = providers(&sender, &clock, &endpoints).mint(&identity).unwrap();
    assert_eq!(minted.logins[0].password, ECR_PASSWORD);
    let sent = sender.sent.borrow();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter().all(|r| r.url.as_str() == "http://127.0.0.1:5000/"),
        "the operator's endpoint serves every AWS service"
    );
}

fn google_identity(key: &RS256KeyPair, token_uri: &str) -> Identity {
    let text = crate::provider::tests::google_key_text(key, token_uri);
    identity(json!({"name": "gar", "google": {"serviceAccountKey": text, "registries": ["europe-docker.pkg.dev"]}}))
}

/// Google's token endpoint as it checks a JWT-bearer grant.
fn fake_google(public: RS256PublicKey, url: &'static str) -> impl Fn(&Outgoing) -> Result<Fetched, FetchError> {
    move |request: &Outgoing| {
        assert_eq!(request.url.as_str(), url);
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        let form = form_of(request);
        assert_eq!(form["grant_type"], google::GRANT_TYPE);
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&["puller@p.iam.gserviceaccount.com"])),
            allowed_audiences: Some(HashSet::from_strings(&[url])),
            time_tolerance: Some(Duration::from_secs(0)),
            ..Default::default()
        };
        // Checked as of the test's clock, as Google checks `exp` against its own.
        let options =
            VerificationOptions { artificial_time: Some(UnixTimeStamp::from_secs(NOW / 1000 + 10)), ..options };
        match public.verify_token::<google::ScopeClaim>(&form["assertion"], Some(options)) {
            Ok(claims) => {
                assert_eq!(claims.custom.scope, google::SCOPE);
                assert_eq!(claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs(), 3600);
                json_answer(200, json!({"access_token": "ya29.minted", "expires_in": 3599, "token_type": "Bearer"}))
            }
            Err(_) => {
                json_answer(400, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}))
            }
        }
    }
}

#[test]
fn google_mints_with_a_signed_assertion_against_the_keys_token_uri() {
    let key = RS256KeyPair::generate(2048).unwrap();
    let url = "https://oauth2.googleapis.com/token";
    let google = script(fake_google(key.public_key(), url));
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let minted = providers(&google, &clock, &endpoints).mint(&google_identity(&key, url)).unwrap();
    assert_eq!(logins(&minted), [("europe-docker.pkg.dev", "oauth2accesstoken", "ya29.minted")]);
    assert_eq!(minted.expires_at, NOW + 3_599_000);

    // Another key's signature is refused as Google refuses it.
    let other = RS256KeyPair::generate(2048).unwrap();
    let error = providers(&google, &clock, &endpoints).mint(&google_identity(&other, url)).unwrap_err();
    assert_eq!(error.status(), 422);
    assert!(
        error.message().contains("invalid_grant") && !error.message().contains("Invalid JWT"),
        "{}",
        error.message()
    );
}

#[test]
fn the_operators_google_token_url_wins_over_the_keys_and_a_private_token_uri_is_never_fetched() {
    let key = RS256KeyPair::generate(2048).unwrap();
    let clock = ManualClock::at(NOW);
    let google = script(fake_google(key.public_key(), "http://127.0.0.1:4000/token"));
    let endpoints = ProviderEndpoints::parse("", "http://127.0.0.1:4000", "", PlainHttpRegistries::default()).unwrap();
    let identity = google_identity(&key, "https://oauth2.googleapis.com/token");
    assert_eq!(providers(&google, &clock, &endpoints).mint(&identity).unwrap().logins[0].password, "ya29.minted");

    // Stored before the rule, or edited: a key naming the metadata service is refused, unsent.
    let Identity::Google(mut g) = identity else { panic!() };
    for uri in ["https://169.254.169.254/token", "http://oauth2.googleapis.com/token", "https://10.0.0.1/token"] {
        g.token_uri = Some(uri.into());
        let nothing = script(|_: &Outgoing| -> Result<Fetched, FetchError> { panic!("nothing may be sent") });
        let error =
            providers(&nothing, &clock, &ProviderEndpoints::default()).mint(&Identity::Google(g.clone())).unwrap_err();
        assert_eq!(error.status(), 422, "{uri}");
        assert!(error.message().contains("token_uri"));
    }
}

fn azure_identity() -> Identity {
    identity(
        json!({"name": "acr", "azure": {"tenantId": "contoso.onmicrosoft.com", "clientId": "app-id", "clientSecret": "client~secret", "registry": "myreg.azurecr.io"}}),
    )
}

fn refresh_token(exp: u64) -> String {
    let part = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.sig", part(json!({"alg": "RS256"})), part(json!({"exp": exp})))
}

/// Microsoft Entra ID's token endpoint and the registry's exchange, checking their form fields.
fn fake_azure(secret: &'static str) -> impl Fn(&Outgoing) -> Result<Fetched, FetchError> {
    move |request: &Outgoing| {
        let form = form_of(request);
        match request.url.as_str() {
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" => {
                assert_eq!(form["grant_type"], "client_credentials");
                assert_eq!(form["scope"], azure::SCOPE);
                if form["client_id"] != "app-id" || form["client_secret"] != secret {
                    return json_answer(
                        401,
                        json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                    );
                }
                json_answer(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "aad-token"}))
            }
            "https://myreg.azurecr.io/oauth2/exchange" => {
                assert_eq!(form["grant_type"], "access_token");
                assert_eq!(form["service"], "myreg.azurecr.io");
                assert_eq!(form["tenant"], "contoso.onmicrosoft.com");
                assert_eq!(form["access_token"], "aad-token");
                json_answer(200, json!({"refresh_token": refresh_token(NOW / 1000 + 3 * 3600)}))
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn azure_exchanges_the_service_principals_token_at_the_registry() {
    let azure = script(fake_azure("client~secret"));
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let minted = providers(&azure, &clock, &endpoints).mint(&azure_identity()).unwrap();
    let refresh = refresh_token(NOW / 1000 + 3 * 3600);
    assert_eq!(logins(&minted), [("myreg.azurecr.io", "00000000-0000-0000-0000-000000000000", refresh.as_str())]);
    assert_eq!(minted.expires_at, NOW + 3 * 3600 * 1000);
    assert_eq!(azure.sent.borrow().len(), 2);

    let refusing = script(fake_azure("rotated"));
    let error = providers(&refusing, &clock, &endpoints).mint(&azure_identity()).unwrap_err();
    assert_eq!(error.status(), 422);
    assert!(error.message().contains("`azure.clientSecret`") && !error.message().contains("client~secret"));
    assert!(!error.message().contains("AADSTS"), "the provider's text is not passed on");
    assert_eq!(refusing.sent.borrow().len(), 1, "no exchange after a refusal");
}

// The cache, through `current`.

fn keyring() -> Keyring {
    Keyring::parse(&format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]))).unwrap()
}

/// A minting secret's entry whose identity is record `record` (stored, so that a cache write
/// finds it: see `cache`).
fn entry(record: u64) -> IndexEntry {
    IndexEntry {
        name: "ecr".into(),
        registries: vec![],
        managed: false,
        created: 0,
        modified: 0,
        version: record,
        record,
        verification: None,
        kind: Kind::AwsEcr,
    }
}

fn with_records(store: &MemoryStore, tenant: &TenantId, records: &[u64]) {
    for record in records {
        store.set(&crate::store::TenantKeys::new(tenant).record(*record), b"{}").unwrap();
    }
}

#[test]
fn a_burst_mints_once_and_a_stale_credential_is_minted_again() {
    let store = MemoryStore::new();
    let tenant = TenantId::parse("acme").unwrap();
    let aws = script(fake_aws(&[(KEY_ID, SECRET)], &[KEY_ID]));
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let providers = providers(&aws, &clock, &endpoints);
    let source = Source::Providers(&providers);
    let identity = aws_identity();
    with_records(&store, &tenant, &[7, 8]);
    let first = current(&store, &keyring(), &tenant, &entry(7), &identity, &source, clock.now_ms()).unwrap();
    for _ in 0..5 {
        let again = current(&store, &keyring(), &tenant, &entry(7), &identity, &source, clock.now_ms()).unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(aws.sent.borrow().len(), 1, "one mint for six reads");
    assert_eq!(cache::expiry(&store, &tenant, 7, clock.now_ms()).unwrap(), Some(first.expires_at));
    // The stored values hold no credential in the clear.
    let raw = store.dump().into_values().flatten().collect::<Vec<u8>>();
    assert!(!String::from_utf8_lossy(&raw).contains(ECR_PASSWORD));

    clock.set(first.fresh_until);
    current(&store, &keyring(), &tenant, &entry(7), &identity, &source, clock.now_ms()).unwrap();
    assert_eq!(aws.sent.borrow().len(), 2, "re-minted within the margin before expiry");

    // Another record of the secret (a modify or re-seal) never gets this record's credential.
    current(&store, &keyring(), &tenant, &entry(8), &identity, &source, clock.now_ms()).unwrap();
    assert_eq!(aws.sent.borrow().len(), 3);
}

#[test]
fn nothing_is_cached_from_a_failure() {
    let store = MemoryStore::new();
    let tenant = TenantId::parse("acme").unwrap();
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let down = script(|_: &Outgoing| Err(FetchError::Timeout));
    let providers = providers(&down, &clock, &endpoints);
    let error = current(&store, &keyring(), &tenant, &entry(7), &aws_identity(), &Source::Providers(&providers), NOW);
    assert!(matches!(error, Err(Error::ProviderUnavailable { .. })));
    assert!(store.dump().is_empty());
}

#[test]
fn a_cached_value_moved_to_another_key_or_tampered_is_not_served() {
    let store = MemoryStore::new();
    let tenant = TenantId::parse("acme").unwrap();
    let minted = Minted::new("AWS", "pw".into(), vec!["r.example".into()], NOW, NOW + 3_600_000);
    with_records(&store, &tenant, &[7, 8]);
    cache::write(&store, &keyring(), &tenant, &entry(7), &minted).unwrap();
    assert_eq!(cache::read(&store, &keyring(), &tenant, &entry(7), NOW).unwrap(), Some(minted.clone()));
    // A stale writer's value copied under a newer record's key: the record inside and the
    // binding both refuse it.
    let keys = crate::store::TenantKeys::new(&tenant);
    let bytes = store.get(&keys.mint(7)).unwrap().unwrap();
    store.set(&keys.mint(8), &bytes).unwrap();
    assert_eq!(cache::read(&store, &keyring(), &tenant, &entry(8), NOW).unwrap(), None);
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["record"] = json!(8);
    store.set(&keys.mint(8), value.to_string().as_bytes()).unwrap();
    assert_eq!(cache::read(&store, &keyring(), &tenant, &entry(8), NOW).unwrap(), None);
}

#[test]
fn the_endpoint_variables_are_origins_with_the_providers_defaults() {
    let default = ProviderEndpoints::default();
    let spelled = ProviderEndpoints::parse(
        ProviderEndpoints::AWS_DEFAULT,
        ProviderEndpoints::GOOGLE_DEFAULT,
        ProviderEndpoints::AZURE_AUTHORITY,
        PlainHttpRegistries::default(),
    )
    .unwrap();
    assert_eq!(default, spelled, "the spin.toml defaults mean the providers' own endpoints");
    assert_eq!(default.aws, AwsEndpoint::Regional { suffix: "amazonaws.com".into() });
    assert_eq!(default.google_token_url, None);
    let sovereign = ProviderEndpoints::parse(
        "https://*.amazonaws.com.cn",
        "",
        "https://login.chinacloudapi.cn",
        PlainHttpRegistries::default(),
    )
    .unwrap();
    assert_eq!(sovereign.aws, AwsEndpoint::Regional { suffix: "amazonaws.com.cn".into() });
    let local = ProviderEndpoints::parse(
        "http://127.0.0.1:5000",
        "http://127.0.0.1:4000",
        "http://127.0.0.1:4001",
        PlainHttpRegistries::default(),
    )
    .unwrap();
    assert_eq!(local.aws, AwsEndpoint::Fixed(Url::parse("http://127.0.0.1:5000/").unwrap()));
    assert_eq!(local.google_token_url.unwrap().as_str(), "http://127.0.0.1:4000/token");
    assert!(matches!(
        ProviderEndpoints::parse("ftp://x", "", "", PlainHttpRegistries::default()),
        Err(Error::Internal(crate::error::Internal::Config("aws_endpoint_url")))
    ));

    let clock = ManualClock::at(NOW);
    let nothing = script(|_: &Outgoing| Err(FetchError::Unreachable));
    let providers = providers(&nothing, &clock, &sovereign);
    assert_eq!(
        aws::endpoint(&providers, "api.ecr", "cn-north-1").as_str(),
        "https://api.ecr.cn-north-1.amazonaws.com.cn/"
    );
    let providers = Providers { endpoints: &default, ..providers };
    assert_eq!(aws::endpoint(&providers, "sts", "cn-north-1").as_str(), "https://sts.cn-north-1.amazonaws.com.cn/");
}

#[test]
fn iam_refusals_in_the_query_protocols_xml_are_read_too_and_a_past_expiry_is_not_trusted() {
    let clock = ManualClock::at(NOW);
    let endpoints = ProviderEndpoints::default();
    let xml = |code: &str| {
        let body = format!(
            "<ErrorResponse><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors></ErrorResponse>"
        );
        Ok(Fetched { status: 403, headers: vec![], body: body.into_bytes() })
    };
    for (code, says) in [
        ("InvalidClientTokenId", "does not know the access key"),
        ("SignatureDoesNotMatch", "does not belong"),
        ("AccessDenied", "grant it"),
    ] {
        let aws = script(move |_: &Outgoing| xml(code));
        let error = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap_err();
        assert!(error.message().contains(says), "{code}: {}", error.message());
    }
    // An emulator's fixed expiry in the past: ECR's documented 12 hours instead.
    let token = base64::engine::general_purpose::STANDARD.encode("AWS:pw");
    let aws = script(move |_: &Outgoing| {
        json_answer(
            200,
            json!({"authorizationData": [{"authorizationToken": token, "expiresAt": 1420070400.0, "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}),
        )
    });
    let minted = providers(&aws, &clock, &endpoints).mint(&aws_identity()).unwrap();
    assert_eq!(minted.expires_at, NOW + aws::TOKEN_LIFE_MS);
}

#[test]
fn a_credential_cached_after_its_record_was_deleted_is_removed_by_its_writer() {
    let store = MemoryStore::new();
    let tenant = TenantId::parse("acme").unwrap();
    let minted = Minted::new("AWS", "pw".into(), vec!["r.example".into()], NOW, NOW + 3_600_000);
    // Record 7 was already garbage-collected when the (paused) minter writes its credential.
    cache::write(&store, &keyring(), &tenant, &entry(7), &minted).unwrap();
    assert!(store.dump().is_empty(), "{:?}", store.dump().keys());
    assert_eq!(cache::read(&store, &keyring(), &tenant, &entry(7), NOW).unwrap(), None);
}

#[test]
fn a_modify_or_delete_removes_the_replaced_records_cached_credential_and_a_static_one_costs_nothing() {
    use crate::identity::{Principal, Scope, Scopes};
    use crate::log::WritePolicy;
    use crate::secrets::{self, Env};
    let store = MemoryStore::new();
    let clock = ManualClock::at(NOW);
    let env = Env { store: &store, clock: &clock, policy: WritePolicy::default() };
    let who = Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: Scopes::empty().with(Scope::Admin),
        subject: None,
        client: None,
    };
    let body = || {
        SecretRequest::from_json(
            json!({"name": "ecr", "aws": {"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "region": "eu-central-1"}}),
            true,
        )
        .unwrap()
    };
    let aws = script(fake_aws(&[(KEY_ID, SECRET)], &[KEY_ID]));
    let endpoints = ProviderEndpoints::default();
    let providers = providers(&aws, &clock, &endpoints);
    let mint_current = || {
        let env = secrets::Env { store: &store, clock: &clock, policy: crate::log::WritePolicy::default() };
        let entry = secrets::current(&env, &who.tenant).unwrap().view.entries().unwrap().into_iter().next().unwrap();
        current(&store, &keyring(), &who.tenant, &entry, &aws_identity(), &Source::Providers(&providers), NOW).unwrap();
        entry.record
    };
    let keys = crate::store::TenantKeys::new(&who.tenant);
    secrets::create(&env, &who, &keyring(), body()).unwrap();
    let first = mint_current();
    assert!(store.get(&keys.mint(first)).unwrap().is_some());
    let before = store.ops.snapshot();
    secrets::modify(&env, &who, &keyring(), "ecr", body(), None).unwrap();
    let after = store.ops.snapshot();
    assert!(store.get(&keys.mint(first)).unwrap().is_none(), "the replaced record's credential is gone");
    let second = mint_current();
    secrets::delete(&env, &who, "ecr", None).unwrap();
    assert!(store.get(&keys.mint(second)).unwrap().is_none());

    // The same modify of a static secret: one store write fewer (no `P:mint:` to delete).
    let plain = || SecretRequest::from_json(json!({"name": "app", "username": "u", "password": "p"}), true).unwrap();
    secrets::create(&env, &who, &keyring(), plain()).unwrap();
    let static_before = store.ops.snapshot();
    secrets::modify(&env, &who, &keyring(), "app", plain(), None).unwrap();
    let static_after = store.ops.snapshot();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (static_after.0 - static_before.0, static_after.1 - static_before.1 + 1)
    );
}
