//! The matching rules, table by table, as the kubelet's keyring documents and tests them
//! (`pkg/credentialprovider/keyring.go`, the `CredentialProviderResponse.auth` documentation of
//! `credentialprovider.kubelet.k8s.io/v1`), and the resolve call over a store.

use super::keyring::{lookup, matches, pattern};
use super::reference::parse_registry;
use super::*;
use crate::name::TenantId;
use crate::store::MemoryStore;

/// (reference, registry, path, tag, digest)
type ParseCase<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

struct NoMinting;

impl crate::mint::MintComponent for NoMinting {
    fn mint(&self, _: &str, _: &str, _: &str) -> Result<crate::mint::Minted, Error> {
        Err(crate::error::Internal::Platform("these tests hold static secrets only").into())
    }
}

/// [`super::resolve`] over static secrets (nothing to mint).
fn resolve<S: KeyValue>(store: &S, who: &Principal, keyring: &Keyring, selector: &Selector) -> Result<Resolved, Error> {
    let source = crate::mint::Source::Component { component: &NoMinting, authorization: "", request_id: "" };
    let env = Env { store, clock: &crate::clock::ManualClock::at(0), policy: Default::default() };
    super::resolve(&env, who, keyring, selector, &source)
}

#[test]
fn image_references_parse_as_the_distribution_grammar_reads_them() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases: Vec<ParseCase> = vec![
        ("nginx".into(), "docker.io", "library/nginx", None, None),
        ("nginx:1.27".into(), "docker.io", "library/nginx", Some("1.27"), None),
        ("library/nginx".into(), "docker.io", "library/nginx", None, None),
        ("bitnami/redis:7".into(), "docker.io", "bitnami/redis", Some("7"), None),
        ("docker.io/nginx".into(), "docker.io", "library/nginx", None, None),
        ("index.docker.io/library/nginx".into(), "docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/bitnami/redis".into(), "docker.io", "bitnami/redis", None, None),
        ("Index.Docker.IO/bitnami/redis".into(), "docker.io", "bitnami/redis", None, None),
        ("localhost/app".into(), "localhost", "app", None, None),
        ("localhost:5000/team/app:v1".into(), "localhost:5000", "team/app", Some("v1"), None),
        // A first component without '.' or ':' is a Docker Hub namespace, not a host.
        ("myregistry/app".into(), "docker.io", "myregistry/app", None, None),
        ("ghcr.io/org/app".into(), "ghcr.io", "org/app", None, None),
        ("REGISTRY.example.com/app".into(), "registry.example.com", "app", None, None),
        (format!("quay.io/org/app@{digest}"), "quay.io", "org/app", None, Some(&digest)),
        (format!("quay.io/org/app:v2@{digest}"), "quay.io", "org/app", Some("v2"), Some(&digest)),
        ("[::1]:5000/app".into(), "[::1]:5000", "app", None, None),
        ("10.0.0.1:5000/a/b/c".into(), "10.0.0.1:5000", "a/b/c", None, None),
        ("host.example/a__b/c-d/e.f/g--h".into(), "host.example", "a__b/c-d/e.f/g--h", None, None),
        // The grammar's own ambiguity: `localhost:5000` alone is Hub's `localhost` tagged `5000`.
        ("localhost:5000".into(), "docker.io", "library/localhost", Some("5000"), None),
    ];
    for (text, registry, path, tag, digest) in cases {
        let image = ImageRef::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            (image.registry.as_str(), image.path.as_str(), image.tag.as_deref(), image.digest.as_deref()),
            (registry, path, tag, digest),
            "{text}"
        );
    }
    assert_eq!(ImageRef::parse("nginx").unwrap().repository(), "docker.io/library/nginx");
    assert_eq!(ImageRef::parse("ghcr.io/org/app:v1").unwrap().to_string(), "ghcr.io/org/app:v1");
}

#[test]
fn malformed_references_are_refused_without_quoting_them() {
    let long_path = format!("ghcr.io/{}", "a".repeat(250));
    let long_tag = format!("app:{}", "t".repeat(129));
    for bad in [
        "",
        "Nginx",
        "ghcr.io/Org/app",
        "ghcr.io//app",
        "ghcr.io/app/",
        "ghcr.io/-app",
        "ghcr.io/a...b",
        "ghcr.io/app:",
        "ghcr.io/app:.v1",
        long_tag.as_str(),
        "ghcr.io/app@sha256:abc",
        "ghcr.io/app@:0123456789abcdef0123456789abcdef",
        "gh_cr.io/app",
        "-ghcr.io/app",
        "ghcr.io:port/app",
        "ghcr.io:123456/app",
        "[zz]:5000/app",
        "user:pw@ghcr.io/app",
        "ghcr.io/app with space",
        long_path.as_str(),
    ] {
        let error = ImageRef::parse(bad).expect_err(bad);
        assert!(error.starts_with("The image reference "), "{bad}: {error}");
        if bad.len() > 3 {
            assert!(!error.contains(bad), "{bad} quoted in {error}");
        }
    }
}

#[test]
fn registries_as_credential_helpers_name_them() {
    for (given, registry) in [
        ("ghcr.io", "ghcr.io"),
        ("localhost:5000", "localhost:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://Quay.io", "quay.io"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("[::1]:443", "[::1]:443"),
    ] {
        assert_eq!(parse_registry(given).as_deref(), Ok(registry), "{given}");
    }
    for bad in ["", "https://", "a b", "host:x", "user@host"] {
        assert!(parse_registry(bad).is_err(), "{bad}");
    }
}

#[test]
fn keys_are_filed_under_the_kubelets_patterns() {
    for (key, expected) in [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("quay.io", "quay.io"),
        ("https://quay.io/v1/", "quay.io"),
        ("http://quay.io/v2/team", "quay.io/team"),
        ("quay.io/team", "quay.io/team"),
        ("quay.io/", "quay.io"),
        ("registry.example.com:5000/a/b", "registry.example.com:5000/a/b"),
        ("*.example.com", "*.example.com"),
        // Only a leading `/v1/` or `/v2/` is Docker's API prefix.
        ("quay.io/v1", "quay.io/v1"),
        ("quay.io/v3/x", "quay.io/v3/x"),
    ] {
        assert_eq!(pattern(key), expected, "{key}");
    }
}

#[test]
fn a_pattern_matches_as_the_kubelet_matches_it() {
    let cases = [
        // Host parts, each a glob, as many parts on both sides.
        ("quay.io", "quay.io/foo/bar", true),
        ("*.kubernetes.io", "prefix.kubernetes.io/app", true),
        ("*.kubernetes.io", "kubernetes.io/app", false),
        ("*.kubernetes.io", "prefix.sub.kubernetes.io/app", false),
        ("*.*.kubernetes.io", "prefix.sub.kubernetes.io/app", true),
        ("prefix.*.io", "prefix.kubernetes.io/app", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io/app", true),
        ("*-good.kubernetes.io", "prefix-bad.kubernetes.io/app", false),
        ("kubernetes.*", "kubernetes.io/app", true),
        ("k?s.io", "k8s.io/app", true),
        ("*.io", "docker.io/library/nginx", true),
        // Ports: equal, and no port matches only no port; no globs in ports.
        ("registry.io:8080", "registry.io:8080/app", true),
        ("registry.io:8080", "registry.io/app", false),
        ("registry.io", "registry.io:8080/app", false),
        ("registry.io:8080", "registry.io:8081/app", false),
        ("*.registry.io:5000", "eu.registry.io:5000/app", true),
        // Paths: the pattern's is a string prefix of the image's.
        ("registry.io:8080/path", "registry.io:8080/path/app", true),
        ("registry.io/team", "registry.io/team/app", true),
        ("registry.io/team", "registry.io/teamwork/app", true),
        ("registry.io/team", "registry.io/other/app", false),
        ("registry.io/team/app", "registry.io/team", false),
        // Case is compared as is (keys and normalised images are lower-case).
        ("Quay.io", "quay.io/app", false),
        // IPv6 literals.
        ("[::1]:5000", "[::1]:5000/app", true),
        ("[::1]:5000", "[::1]:5001/app", false),
    ];
    for (pattern, repository, expected) in cases {
        assert_eq!(matches(pattern, repository), expected, "{pattern} vs {repository}");
    }
}

fn patterns(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| pattern(k)).collect()
}

fn looked_up<'a>(keys: &[&'a str], repository: &str) -> Vec<&'a str> {
    lookup(&patterns(keys), repository).into_iter().map(|i| keys[i]).collect()
}

#[test]
fn every_matching_key_counts_the_most_specific_first() {
    let keys =
        ["bar.example.com", "bar.example.com/pong", "*.example.com", "foo.example.com", "bar.example.com/pong/ping"];
    assert_eq!(
        looked_up(&keys, "bar.example.com/pong/ping/app"),
        ["bar.example.com/pong/ping", "bar.example.com/pong", "bar.example.com", "*.example.com"]
    );
    assert_eq!(
        looked_up(&keys, "bar.example.com/ponger"),
        ["bar.example.com/pong", "bar.example.com", "*.example.com"]
    );
    assert_eq!(looked_up(&keys, "foo.example.com/app"), ["foo.example.com", "*.example.com"]);
    assert_eq!(looked_up(&keys, "baz.example.com/app"), ["*.example.com"]);
    assert!(looked_up(&keys, "example.com/app").is_empty());
    assert!(looked_up(&keys, "bar.example.com:443/app").is_empty());
}

#[test]
fn docker_hub_images_fall_back_to_docker_hubs_key_only_when_nothing_else_matched() {
    let hub = "https://index.docker.io/v1/";
    // Every spelling of a Hub image reaches the Hub key.
    for image in ["nginx", "library/nginx", "docker.io/nginx", "index.docker.io/library/nginx", "bitnami/redis:7"] {
        let repository = ImageRef::parse(image).unwrap().repository();
        assert_eq!(looked_up(&[hub, "quay.io"], &repository), [hub], "{image}");
    }
    // Not other registries', whatever they are called. (The kubelet would give `localhost/nginx`
    // Docker Hub's credentials, although it pulls it from localhost; see `keyring`'s note.)
    for image in ["quay.io/library/nginx", "localhost/nginx", "localhost:5000/nginx", "myhost.local/nginx"] {
        let repository = ImageRef::parse(image).unwrap().repository();
        assert!(looked_up(&[hub], &repository).is_empty(), "{image}");
    }
    // A key that matches directly wins, and the fallback is then not used (as in the kubelet).
    let repository = ImageRef::parse("nginx").unwrap().repository();
    assert_eq!(looked_up(&[hub, "*.io"], &repository), ["*.io"]);
    assert_eq!(looked_up(&[hub, "docker.io/library"], &repository), ["docker.io/library"]);
    // A namespace key on Docker Hub is written `docker.io/<namespace>`: `index.docker.io/<namespace>`
    // has three host parts and matches nothing the kubelet looks up.
    let repository = ImageRef::parse("acme/app").unwrap().repository();
    assert_eq!(looked_up(&["docker.io/acme", hub], &repository), ["docker.io/acme"]);
    assert_eq!(looked_up(&["index.docker.io/acme", hub], &repository), [hub]);
}

// ---- the call over a store ----

fn principal(tenant: &str, scopes: &str) -> Principal {
    Principal {
        tenant: TenantId::parse(tenant).unwrap(),
        scopes: crate::identity::Scopes::from_claim(&serde_json::Value::String(scopes.into())).unwrap(),
        subject: None,
        client: None,
    }
}

fn keyring() -> Keyring {
    Keyring::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap()
}

/// Writes a secret as the store holds it, through the domain's own create.
fn create(store: &MemoryStore, tenant: &str, name: &str, config: &str) {
    let env = crate::secrets::Env { store, clock: &crate::clock::SystemClock, policy: Default::default() };
    let body = serde_json::json!({"name": name, "data": {".dockerconfigjson": config}});
    let request = crate::dockerconfig::SecretRequest::from_json(body, true).unwrap();
    crate::secrets::create(&env, &principal(tenant, "regsecrets.admin"), &keyring(), request).unwrap();
}

fn config(entries: &[(&str, &str, &str)]) -> String {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, user, pass)| ((*key).to_owned(), serde_json::json!({"username": user, "password": pass})))
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}

fn puller(tenant: &str) -> Principal {
    principal(tenant, "regsecrets.puller")
}

fn image(text: &str) -> Selector {
    Selector::Image(ImageRef::parse(text).unwrap())
}

#[test]
fn the_call_answers_the_covering_credentials_of_the_callers_tenant_most_specific_first() {
    let store = MemoryStore::new();
    create(&store, "acme", "wide", &config(&[("registry.example.com", "wide-user", "wide-pw")]));
    create(&store, "acme", "team", &config(&[("registry.example.com/team", "team-user", "team-pw")]));
    create(&store, "acme", "hub", &config(&[("docker.io", "hub-user", "hub-pw"), ("quay.io", "q", "qpw")]));
    create(&store, "other", "theirs", &config(&[("registry.example.com", "their-user", "their-pw")]));

    let answer = resolve(&store, &puller("acme"), &keyring(), &image("registry.example.com/team/app:v1")).unwrap();
    assert_eq!(answer.image.as_deref(), Some("registry.example.com/team/app:v1"));
    assert_eq!(answer.cache_seconds, CACHE_SECONDS);
    let got: Vec<(&str, &str, &str, &str)> = answer
        .credentials
        .iter()
        .map(|c| (c.secret.as_str(), c.pattern.as_str(), c.username.as_str(), c.password.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("team", "registry.example.com/team", "team-user", "team-pw"),
            ("wide", "registry.example.com", "wide-user", "wide-pw")
        ]
    );
    assert_eq!(answer.credentials[0].auth, "dGVhbS11c2VyOnRlYW0tcHc=", "base64 of team-user:team-pw");

    let hub = resolve(&store, &puller("acme"), &keyring(), &image("nginx")).unwrap();
    assert_eq!(hub.credentials.len(), 1);
    assert_eq!(
        (hub.credentials[0].server.as_str(), hub.credentials[0].pattern.as_str()),
        ("https://index.docker.io/v1/", "index.docker.io")
    );
    assert_eq!(hub.credentials[0].username, "hub-user");

    // Another tenant holding the same registry sees only its own; one holding nothing gets 404.
    let theirs = resolve(&store, &puller("other"), &keyring(), &image("registry.example.com/team/app")).unwrap();
    assert_eq!(theirs.credentials.iter().map(|c| c.username.as_str()).collect::<Vec<_>>(), ["their-user"]);
    assert_eq!(
        resolve(&store, &puller("nobody"), &keyring(), &image("registry.example.com/app")),
        Err(Error::NoMatchingCredentials)
    );
    assert_eq!(
        resolve(&store, &puller("acme"), &keyring(), &image("ghcr.io/org/app")),
        Err(Error::NoMatchingCredentials)
    );
}

#[test]
fn registry_and_all_answer_every_key_of_the_registry_or_tenant() {
    let store = MemoryStore::new();
    create(&store, "acme", "wide", &config(&[("registry.example.com", "w", "wpw")]));
    create(&store, "acme", "team", &config(&[("registry.example.com/team", "t", "tpw")]));
    create(&store, "acme", "hub", &config(&[("https://index.docker.io/v1/", "h", "hpw")]));
    create(&store, "acme", "port", &config(&[("registry.example.com:5000", "p", "ppw")]));
    let secrets = |selector: Selector| -> Vec<String> {
        resolve(&store, &puller("acme"), &keyring(), &selector)
            .unwrap()
            .credentials
            .into_iter()
            .map(|c| c.secret)
            .collect()
    };
    assert_eq!(secrets(Selector::Registry("registry.example.com".into())), ["team", "wide"]);
    assert_eq!(secrets(Selector::Registry("registry.example.com:5000".into())), ["port"]);
    assert_eq!(secrets(Selector::Registry("docker.io".into())), ["hub"]);
    assert_eq!(secrets(Selector::All), ["port", "team", "wide", "hub"]);
    let answer = resolve(&store, &puller("acme"), &keyring(), &Selector::Registry("docker.io".into())).unwrap();
    assert_eq!((answer.image, answer.registry.as_deref()), (None, Some("docker.io")));
}

#[test]
fn only_a_puller_may_resolve() {
    let store = MemoryStore::new();
    create(&store, "acme", "wide", &config(&[("registry.example.com", "w", "wpw")]));
    for scopes in ["regsecrets.viewer", "regsecrets.admin", "regsecrets.operator", ""] {
        assert_eq!(
            resolve(&store, &principal("acme", scopes), &keyring(), &image("registry.example.com/app")),
            Err(Error::Forbidden),
            "{scopes}"
        );
    }
}

#[test]
fn the_query_takes_exactly_one_selector() {
    assert_eq!(Selector::parse(Some("image=nginx%3A1.27")).unwrap(), image("nginx:1.27"));
    assert_eq!(
        Selector::parse(Some("registry=https%3A%2F%2Findex.docker.io%2Fv1%2F")).unwrap(),
        Selector::Registry("docker.io".into())
    );
    assert_eq!(Selector::parse(Some("all=TRUE")).unwrap(), Selector::All);
    for bad in [
        None,
        Some(""),
        Some("image=nginx&registry=quay.io"),
        Some("image=a&image=b"),
        Some("all=false"),
        Some("name=x"),
        Some("image=Bad"),
    ] {
        assert!(matches!(Selector::parse(bad), Err(Error::InvalidQuery(_))), "{bad:?}");
    }
    assert_eq!(image("index.docker.io/nginx").audit_text(), "docker.io/library/nginx");
}

#[test]
fn a_secret_may_hold_a_host_glob_and_it_covers_one_host_part() {
    let store = MemoryStore::new();
    create(&store, "acme", "glob", &config(&[("*.example.com", "g", "gpw")]));
    let answer = resolve(&store, &puller("acme"), &keyring(), &image("eu.example.com/app")).unwrap();
    assert_eq!(
        (answer.credentials[0].server.as_str(), answer.credentials[0].pattern.as_str()),
        ("*.example.com", "*.example.com")
    );
    for uncovered in ["example.com/app", "a.eu.example.com/app", "eu.example.com:5000/app"] {
        assert_eq!(
            resolve(&store, &puller("acme"), &keyring(), &image(uncovered)),
            Err(Error::NoMatchingCredentials),
            "{uncovered}"
        );
    }
    // Globs stand for host parts only, never for a port.
    for refused in ["example.com:*", "example.com:50*"] {
        let result = crate::dockerconfig::DockerConfig::from_dockerconfigjson(&config(&[(refused, "u", "p")]));
        assert!(matches!(result, Err(Error::InvalidDockerConfig(_))), "{refused}: {result:?}");
    }
}

#[test]
fn only_secrets_whose_hosts_can_cover_the_registry_are_read_and_decrypted() {
    let store = MemoryStore::new();
    create(&store, "acme", "hub", &config(&[("docker.io", "h", "hpw")]));
    create(&store, "acme", "quay", &config(&[("quay.io", "q", "qpw")]));
    create(&store, "acme", "glob", &config(&[("*.example.com", "g", "gpw")]));
    create(&store, "acme", "ghcr", &config(&[("ghcr.io/team", "t", "tpw"), ("quay.io/team", "u", "upw")]));
    let reads = |selector: Selector| {
        let before = store.ops.snapshot().0;
        let answer = resolve(&store, &puller("acme"), &keyring(), &selector);
        (store.ops.snapshot().0 - before, answer.map(|a| a.credentials.len()))
    };
    // The tenant's view (two reads), then only the records that may match.
    assert_eq!(reads(image("quay.io/team/app")), (4, Ok(2)), "quay and ghcr (which holds quay.io/team)");
    assert_eq!(reads(image("eu.example.com/app")), (3, Ok(1)));
    assert_eq!(reads(image("nginx")), (3, Ok(1)));
    assert_eq!(reads(image("gitlab.com/app")), (2, Err(Error::NoMatchingCredentials)));
    assert_eq!(reads(Selector::All), (6, Ok(5)));
}

/// Writes a secret at `now_ms` with a verification outcome, as create with `?verify=true` keeps it.
fn create_at(store: &MemoryStore, name: &str, key: &str, now_ms: u64, verified: Option<bool>) {
    let env = crate::secrets::Env { store, clock: &crate::clock::ManualClock::at(now_ms), policy: Default::default() };
    let body = serde_json::json!({"name": name, "data": {".dockerconfigjson": config(&[(key, name, "pw")])}});
    let mut request = crate::dockerconfig::SecretRequest::from_json(body, true).unwrap();
    request.verification = verified.map(|ok| crate::check::LastCheck { at: now_ms, ok });
    crate::secrets::create(&env, &principal("acme", "regsecrets.admin"), &keyring(), request).unwrap();
}

#[test]
fn several_secrets_for_one_registry_come_ranked_with_the_reason() {
    let store = MemoryStore::new();
    // Named so that the name alone would give another order.
    create_at(&store, "a-stale", "registry.example.com", 1_000, Some(false));
    create_at(&store, "b-newest-unchecked", "registry.example.com", 4_000, None);
    create_at(&store, "c-fresh", "registry.example.com", 2_000, Some(true));
    create_at(&store, "d-older-unchecked", "https://registry.example.com", 3_000, None);
    create_at(&store, "e-team", "registry.example.com/team", 500, Some(false));
    let order = |selector: Selector| {
        let answer = resolve(&store, &puller("acme"), &keyring(), &selector).unwrap();
        answer.credentials.into_iter().map(|c| (c.secret, c.rank.reason)).collect::<Vec<_>>()
    };
    let by_image = order(image("registry.example.com/team/app"));
    let expected = [
        ("e-team", Some(rank::Reason::MoreSpecificMatch)),
        ("c-fresh", Some(rank::Reason::Verified)),
        ("b-newest-unchecked", Some(rank::Reason::ModifiedLater)),
        ("d-older-unchecked", Some(rank::Reason::NotFailed)),
        ("a-stale", None),
    ];
    let expected: Vec<(String, Option<rank::Reason>)> = expected.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect();
    assert_eq!(by_image, expected);
    // The registry-wide question (a Docker credential helper's) ranks the same way.
    assert_eq!(order(Selector::Registry("registry.example.com".into())), expected);
    // Outside the team path the team key does not match, and the fresh one comes first.
    assert_eq!(order(image("registry.example.com/other/app"))[0].0, "c-fresh");

    // What the API answers: the standing, the time, and the reason, in camelCase.
    let answer = resolve(&store, &puller("acme"), &keyring(), &image("registry.example.com/team/app")).unwrap();
    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(
        json["credentials"][1]["rank"],
        serde_json::json!({"verification": "verified", "modifiedAt": "1970-01-01T00:00:02Z", "reason": "verified"})
    );
    assert_eq!(
        json["credentials"][4]["rank"],
        serde_json::json!({"verification": "failed", "modifiedAt": "1970-01-01T00:00:01Z"})
    );
}
