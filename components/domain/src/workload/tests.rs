//! Workload identity with tokens minted by a test issuer shaped as a cluster's service-account
//! issuer mints them (ES256, `kid`, `iss`, `aud`, `exp`, `sub`, the `kubernetes.io` claims).

use jwt_simple::prelude::*;
use serde_json::json;

use super::*;
use crate::identity::{Scope, Scopes};
use crate::jwks::encode_member;
use crate::store::MemoryStore;

const ISSUER: &str = "https://cluster-a.example.com";
const AUDIENCE: &str = "regsecrets";
const NOW: u64 = 1_800_000_000;

struct Cluster {
    issuer: &'static str,
    key: ES256KeyPair,
}

impl Cluster {
    fn new(issuer: &'static str) -> Cluster {
        Cluster { issuer, key: ES256KeyPair::generate().with_key_id("sa-key-1") }
    }

    fn jwks(&self) -> Value {
        let point = self.key.public_key().public_key().to_bytes_uncompressed();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "sa-key-1", "use": "sig", "alg": "ES256",
            "x": encode_member(&point[1..33]), "y": encode_member(&point[33..])}]})
    }

    /// A projected service-account token for a pod of `namespace` running as `name`.
    fn token(&self, namespace: &str, name: &str, audience: &str, expires_at: u64) -> String {
        let custom = json!({"kubernetes.io": {"namespace": namespace,
            "serviceaccount": {"name": name, "uid": "0b8a6a57-3b84-4a0e-9d1c-9c1fd4c7f6a1"},
            "pod": {"name": "app-7d4b9", "uid": "5e0f3a0c-8f1e-4a4b-8a8e-2b1a6f0d9c11"}}});
        let claims = JWTClaims {
            issued_at: Some(Duration::from_secs(NOW - 10)),
            expires_at: Some(Duration::from_secs(expires_at)),
            invalid_before: Some(Duration::from_secs(NOW - 10)),
            issuer: Some(self.issuer.into()),
            subject: Some(format!("system:serviceaccount:{namespace}:{name}")),
            audiences: Some(Audiences::AsString(audience.into())),
            jwt_id: None,
            nonce: None,
            custom,
        };
        self.key.sign(claims).unwrap()
    }
}

fn trust(cluster: &Cluster, bindings: Vec<Binding>) -> WorkloadTrust {
    WorkloadTrust {
        issuers: vec![TrustedIssuer {
            issuer: cluster.issuer.into(),
            audience: AUDIENCE.into(),
            jwks: Some(cluster.jwks()),
        }],
        bindings,
        require_pod_token: false,
    }
}

fn binding(subject: &str, secrets: &[&str]) -> Binding {
    Binding { issuer: ISSUER.into(), subject: subject.into(), secrets: secrets.iter().map(|s| (*s).into()).collect() }
}

fn refusal(result: Result<impl std::fmt::Debug, Error>) -> WorkloadFailure {
    match result {
        Err(Error::WorkloadNotPermitted(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

fn admitted(trust: &WorkloadTrust, token: &str) -> Result<BTreeSet<String>, Error> {
    let workload = verify(trust, token, None, NOW)?;
    bound_secrets(trust, &workload)
}

#[test]
fn a_bound_service_account_gets_its_secrets_and_a_namespace_wildcard_covers_the_namespace() {
    let cluster = Cluster::new(ISSUER);
    let trust = trust(
        &cluster,
        vec![
            binding("system:serviceaccount:shop:checkout", &["payments-registry"]),
            binding("system:serviceaccount:ci:*", &["ci-cache", "base-images"]),
        ],
    );
    let checkout = cluster.token("shop", "checkout", AUDIENCE, NOW + 600);
    assert_eq!(admitted(&trust, &checkout).unwrap(), BTreeSet::from(["payments-registry".to_owned()]));
    let workload = verify(&trust, &checkout, None, NOW).unwrap();
    assert_eq!((workload.issuer.as_str(), workload.subject.as_str()), (ISSUER, "system:serviceaccount:shop:checkout"));
    let builder = cluster.token("ci", "builder", AUDIENCE, NOW + 600);
    assert_eq!(admitted(&trust, &builder).unwrap(), BTreeSet::from(["base-images".to_owned(), "ci-cache".to_owned()]));
}

#[test]
fn unbound_other_namespace_untrusted_expired_and_wrong_audience_are_refused() {
    let cluster = Cluster::new(ISSUER);
    let trust = trust(&cluster, vec![binding("system:serviceaccount:shop:checkout", &["payments-registry"])]);
    // Unbound: another service account of the same namespace.
    assert_eq!(
        refusal(admitted(&trust, &cluster.token("shop", "cart", AUDIENCE, NOW + 600))),
        WorkloadFailure::NotBound
    );
    // The same name in another namespace.
    assert_eq!(
        refusal(admitted(&trust, &cluster.token("staging", "checkout", AUDIENCE, NOW + 600))),
        WorkloadFailure::NotBound
    );
    // Another cluster, not trusted; and one claiming the trusted issuer but signed by its own key.
    let other = Cluster::new("https://cluster-b.example.com");
    assert_eq!(
        refusal(admitted(&trust, &other.token("shop", "checkout", AUDIENCE, NOW + 600))),
        WorkloadFailure::UntrustedIssuer
    );
    let impostor = Cluster { issuer: ISSUER, key: ES256KeyPair::generate().with_key_id("sa-key-1") };
    assert_eq!(
        refusal(admitted(&trust, &impostor.token("shop", "checkout", AUDIENCE, NOW + 600))),
        WorkloadFailure::Invalid(crate::error::AuthFailure::BadSignature)
    );
    // Expired (beyond the 60 s leeway), and minted for another audience.
    assert_eq!(
        refusal(admitted(&trust, &cluster.token("shop", "checkout", AUDIENCE, NOW - 120))),
        WorkloadFailure::Invalid(crate::error::AuthFailure::Expired)
    );
    assert_eq!(
        refusal(admitted(&trust, &cluster.token("shop", "checkout", "another-audience", NOW + 600))),
        WorkloadFailure::Invalid(crate::error::AuthFailure::WrongAudience)
    );
    assert_eq!(refusal(admitted(&trust, "not.a.token")), WorkloadFailure::Malformed);
    // A binding of another issuer does not count for this one.
    let mut two = trust.clone();
    two.issuers.push(TrustedIssuer {
        issuer: other.issuer.into(),
        audience: AUDIENCE.into(),
        jwks: Some(other.jwks()),
    });
    two.bindings =
        vec![Binding { issuer: other.issuer.into(), ..binding("system:serviceaccount:shop:checkout", &["x"]) }];
    assert_eq!(
        refusal(admitted(&two, &cluster.token("shop", "checkout", AUDIENCE, NOW + 600))),
        WorkloadFailure::NotBound
    );
}

#[test]
fn the_kubernetes_claims_must_name_the_subject() {
    let cluster = Cluster::new(ISSUER);
    let trust = trust(&cluster, vec![binding("system:serviceaccount:shop:checkout", &["payments-registry"])]);
    let forged = |custom: Value, subject: &str| {
        let mut claims = JWTClaims {
            issued_at: Some(Duration::from_secs(NOW)),
            expires_at: Some(Duration::from_secs(NOW + 600)),
            invalid_before: None,
            issuer: Some(ISSUER.into()),
            subject: Some(subject.into()),
            audiences: Some(Audiences::AsString(AUDIENCE.into())),
            jwt_id: None,
            nonce: None,
            custom,
        };
        claims.subject = Some(subject.into());
        cluster.key.sign(claims).unwrap()
    };
    let subject = "system:serviceaccount:shop:checkout";
    for (custom, subject) in [
        (json!({}), subject),
        (json!({"kubernetes.io": {"namespace": "other", "serviceaccount": {"name": "checkout"}}}), subject),
        (json!({"kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "checkout"}}}), "checkout"),
    ] {
        assert_eq!(refusal(admitted(&trust, &forged(custom, subject))), WorkloadFailure::NotAServiceAccount);
    }
}

#[test]
fn a_trust_is_validated_before_it_is_saved_and_read_back_as_saved() {
    let cluster = Cluster::new(ISSUER);
    let admin = Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: Scopes::empty().with(Scope::Admin),
        subject: None,
        client: None,
    };
    let store = MemoryStore::new();
    let store =
        crate::secrets::Env { store: &store, clock: &crate::clock::ManualClock::at(0), policy: Default::default() };
    assert_eq!(get(&store, &admin).unwrap(), WorkloadTrust::default());
    let good = trust(&cluster, vec![binding("system:serviceaccount:shop:*", &["payments-registry"])]);
    assert_eq!(put(&store, &admin, good.clone()).unwrap(), good);
    assert_eq!(load(&store, &admin.tenant).unwrap(), good);

    let mut bad_cases = Vec::new();
    let mut t = good.clone();
    t.issuers[0].issuer = "http://cluster-a.example.com".into();
    bad_cases.push(t);
    let mut t = good.clone();
    t.issuers[0].audience = String::new();
    bad_cases.push(t);
    let mut t = good.clone();
    t.issuers[0].jwks = Some(json!({"keys": []}));
    bad_cases.push(t);
    let mut t = good.clone();
    t.bindings[0].issuer = "https://unknown.example.com".into();
    bad_cases.push(t);
    for subject in
        ["shop:checkout", "system:serviceaccount:Shop:x", "system:serviceaccount:shop", "system:serviceaccount:*:*"]
    {
        let mut t = good.clone();
        t.bindings[0].subject = subject.into();
        bad_cases.push(t);
    }
    let mut t = good.clone();
    t.bindings[0].secrets = vec!["Not A Name".into()];
    bad_cases.push(t);
    let mut t = good.clone();
    t.issuers.push(t.issuers[0].clone());
    bad_cases.push(t);
    for bad in bad_cases {
        assert!(matches!(put(&store, &admin, bad.clone()), Err(Error::InvalidRequest(_))), "{bad:?}");
    }
    assert_eq!(load(&store, &admin.tenant).unwrap(), good, "a refused PUT changes nothing");
    let viewer = Principal { scopes: Scopes::empty().with(Scope::Viewer), ..admin.clone() };
    assert_eq!(put(&store, &viewer, good.clone()), Err(Error::Forbidden));
    assert_eq!(get(&store, &viewer).unwrap(), good);
}

#[test]
fn the_lookup_answers_only_the_bound_secrets() {
    let cluster = Cluster::new(ISSUER);
    let store = MemoryStore::new();
    let keyring = crate::crypto::Keyring::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let admin = Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: Scopes::empty().with(Scope::Admin).with(Scope::Puller),
        subject: None,
        client: None,
    };
    let env = crate::secrets::Env { store: &store, clock: &crate::clock::SystemClock, policy: Default::default() };
    for (name, user) in [("payments-registry", "payments"), ("everything", "wide")] {
        let body = json!({"name": name, "registry": "registry.example.com", "username": user, "password": "pw"});
        let request = crate::dockerconfig::SecretRequest::from_json(body, true).unwrap();
        crate::secrets::create(&env, &admin, &keyring, request).unwrap();
    }
    save(
        &env,
        &admin.tenant,
        &trust(&cluster, vec![binding("system:serviceaccount:shop:checkout", &["payments-registry"])]),
    )
    .unwrap();
    let selector = crate::resolve::Selector::parse(Some("image=registry.example.com/shop/checkout:v3")).unwrap();
    let everyone = crate::resolve::resolve(&env, &admin, &keyring, &selector, &crate::mint::STATIC_ONLY).unwrap();
    assert_eq!(everyone.credentials.len(), 2);
    let (_, bound) = admit(&env, &admin, &cluster.token("shop", "checkout", AUDIENCE, NOW + 600), None, NOW).unwrap();
    let narrowed =
        crate::resolve::resolve_among(&env, &admin, &keyring, &selector, Some(&bound), &crate::mint::STATIC_ONLY)
            .unwrap();
    assert_eq!(narrowed.credentials.iter().map(|c| c.username.as_str()).collect::<Vec<_>>(), ["payments"]);
}

/// A cluster's issuer that publishes its keys (`/.well-known/openid-configuration`, then
/// `/openid/v1/jwks`, as the Kubernetes API server does), or is down.
struct PublishedKeys {
    keys: std::sync::Mutex<Option<Value>>,
}

impl crate::net::Sender for PublishedKeys {
    fn send(&self, request: &crate::net::Outgoing) -> Result<crate::net::Fetched, crate::net::FetchError> {
        let Some(jwks) = self.keys.lock().unwrap().clone() else { return Err(crate::net::FetchError::Unreachable) };
        let body = match request.url.as_str() {
            "https://cluster-a.example.com/.well-known/openid-configuration" => {
                json!({"issuer": ISSUER, "jwks_uri": "https://cluster-a.example.com/openid/v1/jwks"})
            }
            "https://cluster-a.example.com/openid/v1/jwks" => jwks,
            _ => return Ok(crate::net::Fetched { status: 404, ..Default::default() }),
        };
        Ok(crate::net::Fetched { status: 200, headers: Vec::new(), body: body.to_string().into_bytes() })
    }
}

#[test]
fn a_cluster_trusted_by_issuer_url_is_followed_through_its_key_rotation() {
    let old = Cluster::new(ISSUER);
    let new = Cluster { issuer: ISSUER, key: ES256KeyPair::generate().with_key_id("sa-key-2") };
    let new_jwks = || {
        let mut jwks = new.jwks();
        jwks["keys"][0]["kid"] = "sa-key-2".into();
        jwks
    };
    let mut trust = trust(&old, vec![binding("system:serviceaccount:shop:checkout", &["payments-registry"])]);
    trust.issuers[0].jwks = None;
    trust.validate().expect("an https issuer without a JWKS is trusted by discovery");
    assert_eq!(serde_json::to_value(&trust).unwrap()["issuers"][0].get("jwks"), None);

    let store = MemoryStore::new();
    let clock = crate::clock::ManualClock::at(NOW * 1000);
    let published = PublishedKeys { keys: std::sync::Mutex::new(Some(old.jwks())) };
    let discovery = Discovery { store: &store, sender: &published, clock: &clock, stale_secs: 3600 };
    let checkout = |cluster: &Cluster| cluster.token("shop", "checkout", AUDIENCE, NOW + 600);
    assert_eq!(
        verify(&trust, &checkout(&old), Some(&discovery), NOW).unwrap().subject,
        "system:serviceaccount:shop:checkout"
    );
    // Without a way out, such an issuer cannot be verified at all.
    assert!(matches!(refusal(verify(&trust, &checkout(&old), None, NOW)), WorkloadFailure::Invalid(_)));

    // The cluster rotates its service-account key: the new kid is fetched on first sight.
    *published.keys.lock().unwrap() = Some(new_jwks());
    clock.set((NOW + 40) * 1000);
    verify(&trust, &checkout(&new), Some(&discovery), NOW + 40).expect("the rotated key verifies");
    // The issuer goes down: the keys we have keep verifying, a key we lack is 503, not a refusal.
    *published.keys.lock().unwrap() = None;
    clock.set((NOW + 80) * 1000);
    verify(&trust, &checkout(&new), Some(&discovery), NOW + 80).unwrap();
    let stranger = Cluster { issuer: ISSUER, key: ES256KeyPair::generate().with_key_id("sa-key-3") };
    let unavailable = verify(&trust, &checkout(&stranger), Some(&discovery), NOW + 80).unwrap_err();
    assert_eq!(unavailable.status(), 503, "{unavailable:?}");
}

#[test]
fn a_tenant_that_requires_pod_tokens_gives_a_node_nothing_without_one() {
    let cluster = Cluster::new(ISSUER);
    let node = Principal {
        tenant: TenantId::parse("acme").unwrap(),
        scopes: Scopes::empty().with(Scope::Admin).with(Scope::Puller),
        subject: None,
        client: None,
    };
    let store = MemoryStore::new();
    let env =
        crate::secrets::Env { store: &store, clock: &crate::clock::ManualClock::at(0), policy: Default::default() };
    let pod = cluster.token("shop", "checkout", AUDIENCE, NOW + 600);
    assert!(pull_scope(&env, &node, None, None, NOW).unwrap().is_none(), "no trust: the node's matches");

    let mut required = trust(&cluster, vec![binding("system:serviceaccount:shop:checkout", &["payments-registry"])]);
    put(&env, &node, required.clone()).unwrap();
    assert!(pull_scope(&env, &node, None, None, NOW).unwrap().is_none(), "trusted, not required: still the node's");
    required.require_pod_token = true;
    put(&env, &node, required.clone()).unwrap();
    assert_eq!(load(&env, &node.tenant).unwrap(), required, "the switch is kept in the trust, through the log");
    assert_eq!(refusal(pull_scope(&env, &node, None, None, NOW)), WorkloadFailure::PodTokenRequired);
    let (workload, secrets) = pull_scope(&env, &node, Some(&pod), None, NOW).unwrap().unwrap();
    assert_eq!(workload.subject, "system:serviceaccount:shop:checkout");
    assert_eq!(secrets, BTreeSet::from(["payments-registry".to_owned()]));
    assert_eq!(
        refusal(pull_scope(&env, &node, Some(&cluster.token("shop", "cart", AUDIENCE, NOW + 600)), None, NOW)),
        WorkloadFailure::NotBound
    );

    // On the wire: `requirePodToken`, left out while false (a trust saved before the switch reads the same).
    let text = serde_json::to_value(&required).unwrap();
    assert_eq!(text["requirePodToken"], true);
    required.require_pod_token = false;
    assert!(serde_json::to_value(&required).unwrap().get("requirePodToken").is_none());
}
