//! The real peers work as the verification tests need them: distribution's registry challenges
//! and accepts Basic credentials, accepts the token server's JWTs only for what they grant, holds
//! the image skopeo pushed; the failure peers fail the way they are meant to.

use e2e::registry::{self, Pki, Registry, TokenPolicy, SERVICE};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn pki() -> Arc<Pki> {
    static PKI: OnceLock<Arc<Pki>> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("fixture tests")).clone()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

const MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn htpasswd_registry_challenges_then_accepts_basic_credentials_and_holds_the_pushed_image() {
    let pki = pki();
    let Some(reg) = Registry::with_htpasswd(&pki, &[("alice", "right-password")]) else { return };
    let agent = pki.agent();
    let v2 = format!("{}/v2/", reg.url());

    let anonymous = agent.get(&v2).call().unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");

    let ok = agent.get(&v2).header("Authorization", basic("alice", "right-password")).call().unwrap();
    assert_eq!(ok.status(), 200, "{}", reg.log());
    let wrong = agent.get(&v2).header("Authorization", basic("alice", "wrong")).call().unwrap();
    assert_eq!(wrong.status(), 401);

    reg.push_image("org/app", "v1", ("alice", "right-password"));
    let mut tags = agent
        .get(&format!("{}/v2/org/app/tags/list", reg.url()))
        .header("Authorization", basic("alice", "right-password"))
        .call()
        .unwrap();
    assert_eq!(tags.status(), 200);
    let tags: serde_json::Value = serde_json::from_str(&tags.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(tags, serde_json::json!({"name": "org/app", "tags": ["v1"]}));
    let manifest = agent
        .head(&format!("{}/v2/org/app/manifests/v1", reg.url()))
        .header("Authorization", basic("alice", "right-password"))
        .header("Accept", MANIFEST_TYPES)
        .call()
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let missing = agent
        .head(&format!("{}/v2/org/other/manifests/v1", reg.url()))
        .header("Authorization", basic("alice", "right-password"))
        .header("Accept", MANIFEST_TYPES)
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn token_registry_accepts_the_token_servers_jwts_for_what_they_grant() {
    let pki = pki();
    let policy = TokenPolicy::default().user("alice", "right-password").user("bob", "bobs-password").grant(
        "alice",
        "org/app",
        &["pull", "push"],
    );
    let Some(reg) = Registry::with_token_auth(&pki, policy) else { return };
    let agent = pki.agent();
    let tokens = reg.token_server().unwrap();

    // The challenge names the realm and service, as Docker Hub's does.
    let anonymous = agent.get(&format!("{}/v2/", reg.url())).call().unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert_eq!(challenge, format!("Bearer realm=\"{}\",service=\"{SERVICE}\"", tokens.realm()));

    reg.push_image("org/app", "v1", ("alice", "right-password"));

    let token = |user: &str, password: &str, scope: &str| -> (u16, Option<String>) {
        let url = format!("{}?service={SERVICE}&scope={scope}", tokens.realm());
        let mut reply = agent.get(&url).header("Authorization", basic(user, password)).call().unwrap();
        let status = reply.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        (status, body["token"].as_str().map(str::to_string))
    };
    let manifest_with = |token: &str, repository: &str| -> u16 {
        agent
            .get(&format!("{}/v2/{repository}/manifests/v1", reg.url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", MANIFEST_TYPES)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };

    let (status, alice) = token("alice", "right-password", "repository:org/app:pull");
    assert_eq!(status, 200);
    assert_eq!(manifest_with(alice.as_deref().unwrap(), "org/app"), 200, "{}", reg.log());
    assert_eq!(manifest_with(alice.as_deref().unwrap(), "org/secret"), 401, "the token grants org/app only");

    // Right credentials, no grant: a token without access, which the registry refuses.
    let (status, bob) = token("bob", "bobs-password", "repository:org/app:pull");
    assert_eq!(status, 200);
    assert_eq!(manifest_with(bob.as_deref().unwrap(), "org/app"), 401);
    // Yet any valid token opens the base endpoint (the login check).
    let base = agent
        .get(&format!("{}/v2/", reg.url()))
        .header("Authorization", format!("Bearer {}", bob.unwrap()))
        .call()
        .unwrap();
    assert_eq!(base.status(), 200);

    let (status, none) = token("alice", "wrong", "repository:org/app:pull");
    assert_eq!((status, none), (401, None));

    let seen = tokens.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.user, None, "a refused login is recorded without a user");
    assert!(seen.iter().any(|r| r.user.as_deref() == Some("bob") && r.granted.is_empty()));
    assert!(seen.iter().any(|r| r.user.as_deref() == Some("alice") && r.granted == ["repository:org/app:pull"]));
}

#[test]
fn failure_peers_fail_as_promised() {
    let pki = pki();
    let agent = pki.agent();

    let refused = agent.get(&format!("http://127.0.0.1:{}/v2/", registry::closed_port())).call();
    assert!(refused.is_err());

    let stranger = registry::untrusted_https();
    let err = agent.get(&format!("https://127.0.0.1:{}/v2/", stranger.port())).call().unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    let tls_page = registry::not_a_registry(Some(&pki));
    let plain_page = registry::not_a_registry(None);
    for url in
        [format!("https://127.0.0.1:{}/v2/", tls_page.port()), format!("http://127.0.0.1:{}/v2/", plain_page.port())]
    {
        let mut reply = agent.get(&url).call().unwrap();
        assert_eq!(reply.status(), 200);
        assert!(reply.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(reply.body_mut().read_to_string().unwrap().contains("<title>"));
    }

    let silent = registry::never_answers();
    let impatient: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(500))).build().into();
    let started = Instant::now();
    assert!(impatient.get(&format!("http://127.0.0.1:{}/v2/", silent.port())).call().is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_production_network_rules_are_the_shipped_ones() {
    let rules = registry::production_network_config();
    assert!(rules.contains("block_networks = [\"private\"]"), "{rules}");
    assert!(!rules.contains("key_value_store"), "{rules}");
}
