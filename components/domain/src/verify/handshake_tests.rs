//! The handshake against a scripted registry: every path of the state machine, and what it sends.

use std::cell::RefCell;

use super::*;
use crate::clock::ManualClock;
use crate::dockerconfig::DockerConfig;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const USER: &str = "robot";
const PASSWORD: &str = "pa55-w0rd-never-shown";
const TOKEN: &str = "t0ken-never-shown";

/// Answers by the request's URL and authorization; logs what was sent.
struct Registry<F: Fn(&str, Option<&str>) -> Result<Fetched, FetchError>> {
    answer: F,
    sent: RefCell<Vec<(String, Option<String>)>>,
}

impl<F: Fn(&str, Option<&str>) -> Result<Fetched, FetchError>> Fetcher for Registry<F> {
    fn get(&self, url: &Url, authorization: Option<&str>) -> Result<Fetched, FetchError> {
        self.sent.borrow_mut().push((url.to_string(), authorization.map(str::to_owned)));
        (self.answer)(url.as_str(), authorization)
    }
}

fn registry<F: Fn(&str, Option<&str>) -> Result<Fetched, FetchError>>(answer: F) -> Registry<F> {
    Registry { answer, sent: RefCell::new(Vec::new()) }
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Fetched, FetchError> {
    Ok(Fetched {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
    })
}

const API: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

fn basic() -> String {
    format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")))
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn credentials(password: &str) -> RegistryAuth {
    let config = DockerConfig::from_credentials(Some("registry.example"), USER, password, None).unwrap();
    config.auths().values().next().unwrap().clone()
}

fn run<F: Fn(&str, Option<&str>) -> Result<Fetched, FetchError>>(
    fake: &Registry<F>,
    repository: Option<&str>,
) -> Finding {
    run_at(fake, repository, 0)
}

fn run_at<F: Fn(&str, Option<&str>) -> Result<Fetched, FetchError>>(
    fake: &Registry<F>,
    repository: Option<&str>,
    now: u64,
) -> Finding {
    let plain_http = PlainHttpRegistries::default();
    let clock = ManualClock::at(now);
    let session = Session { fetcher: fake, clock: &clock, plain_http: &plain_http, deadline_ms: 1_000 };
    let repository = repository.map(|r| Repository::parse(r).unwrap());
    session.check(&Url::parse("https://registry.example/").unwrap(), &credentials(PASSWORD), repository.as_ref())
}

fn verdict(f: Finding) -> (Verdict, Option<u16>) {
    (f.verdict, f.status)
}

/// A registry with basic auth (distribution's htpasswd).
fn basic_registry(url: &str, authorization: Option<&str>) -> Result<Fetched, FetchError> {
    match (url, authorization) {
        ("https://registry.example/v2/", None) => {
            answer(401, &[API, ("www-authenticate", "Basic realm=\"Registry Realm\"")], "{\"errors\":[]}")
        }
        ("https://registry.example/v2/", Some(a)) if a == basic() => answer(200, &[API], "{}"),
        ("https://registry.example/v2/org/app/tags/list", Some(a)) if a == basic() => answer(200, &[API], "{}"),
        ("https://registry.example/v2/org/other/tags/list", Some(_)) => answer(404, &[API], ""),
        (_, _) => answer(401, &[API, ("www-authenticate", "Basic realm=\"Registry Realm\"")], ""),
    }
}

/// A registry with token auth: its realm hands tokens for right credentials, the pull scope of
/// `org/app` only.
fn token_registry(url: &str, authorization: Option<&str>) -> Result<Fetched, FetchError> {
    let challenge = ("www-authenticate", "Bearer realm=\"https://auth.example/token\",service=\"reg.example\"");
    let good = authorization == Some(bearer().as_str());
    match url {
        "https://auth.example/token?service=reg.example"
        | "https://auth.example/token?service=reg.example&scope=repository%3Aorg%2Fapp%3Apull"
            if authorization == Some(basic().as_str()) =>
        {
            answer(200, &[], &format!("{{\"token\":\"{TOKEN}\",\"expires_in\":300}}"))
        }
        "https://auth.example/token?service=reg.example&scope=repository%3Aorg%2Fsecret%3Apull" => {
            answer(200, &[], "{\"access_token\":\"weak\"}")
        }
        u if u.starts_with("https://auth.example/token") => answer(401, &[], "{\"details\":\"wrong password\"}"),
        "https://registry.example/v2/" if good => answer(200, &[API], "{}"),
        "https://registry.example/v2/org/app/tags/list" if good => answer(200, &[API], "{}"),
        "https://registry.example/v2/" if authorization == Some("Bearer weak") => answer(200, &[API], "{}"),
        _ => answer(401, &[API, challenge], "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}"),
    }
}

#[test]
fn basic_auth_accepts_right_credentials_and_sends_nothing_before_the_challenge() {
    let fake = registry(basic_registry);
    assert_eq!(verdict(run(&fake, None)), (Verdict::Ok, Some(200)));
    let sent = fake.sent.borrow();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], ("https://registry.example/v2/".into(), None), "no credentials before the challenge");
    assert_eq!(sent[1].1.as_deref(), Some(basic().as_str()));
}

#[test]
fn basic_auth_with_a_wrong_password_is_unauthorized() {
    let fake = registry(|url: &str, auth: Option<&str>| {
        let wrong = auth.is_some_and(|a| a != basic());
        basic_registry(url, if wrong { Some("x") } else { auth })
    });
    let plain_http = PlainHttpRegistries::default();
    let session = Session { fetcher: &fake, clock: &ManualClock::at(0), plain_http: &plain_http, deadline_ms: 1 };
    let finding =
        session.check(&Url::parse("https://registry.example/").unwrap(), &credentials("wrong-password"), None);
    assert_eq!(verdict(finding), (Verdict::Unauthorized, Some(401)));
}

#[test]
fn basic_auth_checks_the_named_repository() {
    assert_eq!(verdict(run(&registry(basic_registry), Some("org/app"))), (Verdict::Ok, Some(200)));
    assert_eq!(verdict(run(&registry(basic_registry), Some("org/other"))), (Verdict::Forbidden, Some(404)));
    assert_eq!(verdict(run(&registry(basic_registry), Some("org/locked"))), (Verdict::Unauthorized, Some(401)));
}

#[test]
fn bearer_flow_gets_a_token_with_service_and_scope_and_uses_it() {
    let fake = registry(token_registry);
    assert_eq!(verdict(run(&fake, Some("org/app"))), (Verdict::Ok, Some(200)));
    let sent = fake.sent.borrow();
    let urls: Vec<&str> = sent.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://registry.example/v2/",
            "https://auth.example/token?service=reg.example&scope=repository%3Aorg%2Fapp%3Apull",
            "https://registry.example/v2/",
            "https://registry.example/v2/org/app/tags/list",
        ]
    );
    assert_eq!(sent[1].1.as_deref(), Some(basic().as_str()), "the realm gets basic auth");
    assert_eq!(sent[2].1.as_deref(), Some(bearer().as_str()));
    assert_eq!(sent[3].1.as_deref(), Some(bearer().as_str()));
    drop(sent);
    let fake = registry(token_registry);
    assert_eq!(verdict(run(&fake, None)), (Verdict::Ok, Some(200)));
    assert_eq!(
        fake.sent.borrow()[1].0,
        "https://auth.example/token?service=reg.example",
        "no scope without a repository"
    );
}

#[test]
fn bearer_flow_refusals() {
    // The token service refuses the password.
    let fake = registry(|url: &str, auth: Option<&str>| {
        token_registry(url, if url.contains("auth.example") { Some("Basic bad") } else { auth })
    });
    assert_eq!(verdict(run(&fake, None)), (Verdict::Unauthorized, Some(401)));
    // A token without access to the repository (access_token form): the registry says 401.
    assert_eq!(verdict(run(&registry(token_registry), Some("org/secret"))), (Verdict::Unauthorized, Some(401)));
    // The registry says 403 for the repository.
    let fake = registry(
        |url: &str, auth: Option<&str>| {
            if url.ends_with("/tags/list") {
                answer(403, &[API], "")
            } else {
                token_registry(url, auth)
            }
        },
    );
    assert_eq!(verdict(run(&fake, Some("org/app"))), (Verdict::Forbidden, Some(403)));
    // A realm answer that is not a token.
    let fake = registry(|url: &str, auth: Option<&str>| {
        if url.contains("auth.example") {
            answer(200, &[], "<html>login</html>")
        } else {
            token_registry(url, auth)
        }
    });
    assert_eq!(verdict(run(&fake, None)), (Verdict::NotARegistry, Some(200)));
}

#[test]
fn servers_that_are_not_registries() {
    for (status, headers) in [(200, vec![]), (404, vec![API]), (404, vec![]), (418, vec![])] {
        let fake = registry(move |_: &str, _: Option<&str>| answer(status, &headers, "<html>hello</html>"));
        assert_eq!(verdict(run(&fake, None)), (Verdict::NotARegistry, Some(status)), "{status}");
    }
    let no_challenge = registry(|_: &str, _: Option<&str>| answer(401, &[API], ""));
    assert_eq!(verdict(run(&no_challenge, None)), (Verdict::NotARegistry, Some(401)));
    let unknown_challenge =
        registry(|_: &str, _: Option<&str>| answer(401, &[API, ("www-authenticate", "Negotiate")], ""));
    assert_eq!(verdict(run(&unknown_challenge, None)), (Verdict::NotARegistry, Some(401)));
    let open = registry(|_: &str, _: Option<&str>| answer(200, &[API], "{}"));
    assert_eq!(verdict(run(&open, None)), (Verdict::Ok, Some(200)), "an open registry takes any credentials");
    let failing = registry(|_: &str, _: Option<&str>| answer(503, &[], ""));
    assert_eq!(verdict(run(&failing, None)), (Verdict::Unreachable, Some(503)));
}

#[test]
fn transport_failures_are_classified() {
    for (error, expected) in [
        (FetchError::Unreachable, Verdict::Unreachable),
        (FetchError::Tls, Verdict::Tls),
        (FetchError::Timeout, Verdict::Timeout),
        (FetchError::Blocked, Verdict::Blocked),
    ] {
        let fake = registry(move |_: &str, _: Option<&str>| Err(error));
        assert_eq!(verdict(run(&fake, None)), (expected, None));
    }
}

#[test]
fn past_the_deadline_nothing_more_is_sent() {
    let fake = registry(basic_registry);
    assert_eq!(verdict(run_at(&fake, None, 1_000)), (Verdict::Timeout, None));
    assert!(fake.sent.borrow().is_empty());
}

#[test]
fn redirects_keep_credentials_on_the_same_host_only() {
    let fake = registry(|url: &str, auth: Option<&str>| match url {
        "https://registry.example/v2/" if auth.is_some() => {
            answer(307, &[("location", "https://mirror.example/v2/")], "")
        }
        "https://mirror.example/v2/" if auth.is_some() => answer(200, &[API], ""),
        "https://mirror.example/v2/" => answer(401, &[API], ""),
        _ => basic_registry(url, auth),
    });
    assert_eq!(verdict(run(&fake, None)), (Verdict::Unauthorized, Some(401)));
    assert_eq!(fake.sent.borrow()[2], ("https://mirror.example/v2/".into(), None), "credentials stay home");

    let fake = registry(|url: &str, auth: Option<&str>| match url {
        "https://registry.example/v2/" if auth.is_some() => answer(308, &[("location", "/v2/real/")], ""),
        "https://registry.example/v2/real/" if auth == Some(basic().as_str()) => answer(200, &[API], ""),
        _ => basic_registry(url, auth),
    });
    assert_eq!(verdict(run(&fake, None)), (Verdict::Ok, Some(200)), "same host: credentials go along");
}

#[test]
fn redirects_to_plain_http_private_addresses_or_in_circles_are_refused() {
    for (location, expected) in [
        ("http://registry.example/v2/", (Verdict::Blocked, Some(302))),
        ("https://169.254.169.254/latest/meta-data/", (Verdict::Blocked, None)),
        ("https://[::1]/v2/", (Verdict::Blocked, None)),
        ("https://registry.example/v2/", (Verdict::NotARegistry, None)),
    ] {
        let fake = registry(move |_: &str, _: Option<&str>| answer(302, &[("location", location)], ""));
        assert_eq!(verdict(run(&fake, None)), expected, "{location}");
        assert!(fake.sent.borrow().len() <= MAX_REDIRECTS + 1);
    }
}

#[test]
fn a_realm_on_a_private_address_gets_no_credentials() {
    let fake = registry(|url: &str, _: Option<&str>| {
        assert!(!url.contains("10.0.0.1"), "nothing is sent to a private realm");
        answer(401, &[API, ("www-authenticate", "Bearer realm=\"https://10.0.0.1/token\",service=x")], "")
    });
    assert_eq!(verdict(run(&fake, None)), (Verdict::Blocked, None));
    assert_eq!(fake.sent.borrow().len(), 1);
}

#[test]
fn findings_never_carry_credentials_tokens_or_registry_text() {
    for repository in [None, Some("org/app"), Some("org/secret")] {
        for fake in [run(&registry(token_registry), repository), run(&registry(basic_registry), repository)] {
            let shown = serde_json::to_string(&fake.for_registry("registry.example")).unwrap();
            for secret in [PASSWORD, TOKEN, USER, "weak", "UNAUTHORIZED", "wrong password", &basic()[6..]] {
                assert!(!shown.contains(secret), "{shown} shows {secret}");
            }
        }
    }
}
