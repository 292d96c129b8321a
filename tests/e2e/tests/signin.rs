//! The console's sign-in with OpenID Connect, against a real provider (panva's `oidc-provider`,
//! `tests/oidc`), driven over HTTP as a browser would be (the browser itself: `tests/browser`,
//! through `browser.rs`): a session cookie instead of a token for the API, the anti-CSRF check,
//! and the attacks the flow must refuse: a forged `state`, a replayed code, a code without its
//! PKCE verifier, a cookie without its session.

use e2e::oidc::{query_param, CookieJar, OidcProvider, SignIn};
use e2e::{free_port, structured, Call, Options, TestApp, Tokens, SECRETS};

const SESSION: &str = "__Host-regsecrets-session";
const LOGIN: &str = "__Host-regsecrets-login";
const CSRF: &str = "x-regsecrets-csrf";

/// The provider and the app wired to each other; `None` (with a message) without the provider's
/// npm packages, except under CI, which installs them.
fn start() -> Option<(OidcProvider, TestApp, String)> {
    start_with_access_ttl(None)
}

fn start_with_access_ttl(ttl: Option<u64>) -> Option<(OidcProvider, TestApp, String)> {
    let Some(mut idp) = OidcProvider::start_with_access_ttl(ttl) else {
        assert!(std::env::var("CI").is_err(), "CI=true: tests/oidc's node_modules must be installed (`npm ci`)");
        eprintln!("skipped: run `npm ci` in tests/oidc (.ci/run does)");
        return None;
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    idp.register_console(&base);
    let options = Options { listen: Some(([127, 0, 0, 1], port).into()), ..Options::default() };
    let app = TestApp::start_with(options, Tokens::default(), idp.console_variables(&base));
    Some((idp, app, base))
}

fn with_cookies(call: Call, jar: &CookieJar) -> Call {
    let header = jar.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    call.header("cookie", &header)
}

#[test]
fn the_console_signs_in_works_on_a_session_cookie_and_signs_out() {
    let Some((mut idp, app, base)) = start() else { return };
    let flow = SignIn { idp: &idp, app_base: base.clone() };
    let mut jar = CookieJar::default();

    // Before: the console is told what to offer.
    let status = jar.get(&app.url("/auth/session"));
    assert_eq!(status.json()["signIn"], serde_json::json!({"oidc": true, "paste": true}), "{}", status.body);
    assert!(status.json()["session"].is_null());

    let authorize = flow.start(&mut jar);
    assert!(authorize.starts_with(&format!("{}/auth?", idp.issuer)), "{authorize}");
    for (name, value) in [("response_type", "code"), ("code_challenge_method", "S256"), ("resource", "urn:regsecrets")]
    {
        assert_eq!(query_param(&authorize, name).as_deref(), Some(value), "{authorize}");
    }
    assert!(query_param(&authorize, "code_verifier").is_none(), "the verifier never leaves the server");
    assert_eq!(query_param(&authorize, "state").as_deref(), jar.cookies.get(LOGIN).map(String::as_str));
    let callback = flow.at_provider(&mut jar, &authorize);
    let code = query_param(&callback, "code").expect("a code");
    let signed_in = jar.get(&callback);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), Some(format!("{base}/").as_str()));
    assert!(signed_in.body.is_empty());
    let set_cookie: Vec<&str> = signed_in
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    let session_cookie = set_cookie.iter().find(|c| c.starts_with(SESSION)).expect("the session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(jar.cookies.contains_key(SESSION) && !jar.cookies.contains_key(LOGIN), "{:?}", jar.cookies.keys());
    assert_eq!(idp.grants(), ["authorization_code"]);

    let status = jar.get(&app.url("/auth/session"));
    let session = &status.json()["session"];
    assert_eq!(session["tenant"], "oidc-e2e", "{}", status.body);
    assert_eq!(session["subject"], "alice");
    assert!(!status.body.contains("eyJ"), "no token reaches the browser: {}", status.body);

    // The API on the cookie alone: reads; writes with the anti-CSRF header.
    let list = jar.send(app.call("GET", SECRETS));
    assert_eq!(list.status, 200, "{}", list.body);
    let body = structured("console-made", "registry.example.com", "bot", "pw");
    let forged = jar.send(app.call("POST", SECRETS).json(&body));
    assert_eq!(forged.status, 401, "a write without the anti-CSRF header: {}", forged.body);
    let cross =
        jar.send(app.call("POST", SECRETS).header(CSRF, "1").header("origin", "http://evil.example").json(&body));
    assert_eq!(cross.status, 401, "from another origin: {}", cross.body);
    let created = jar.send(app.call("POST", SECRETS).header(CSRF, "1").header("origin", &base).json(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = jar.send(app.call("GET", SECRETS));
    assert_eq!(listed.json()["count"], 1, "{}", listed.body);
    let etag = jar.send(app.call("GET", &format!("{SECRETS}/console-made"))).header("etag").unwrap().to_owned();
    let deleted =
        jar.send(app.call("DELETE", &format!("{SECRETS}/console-made")).header(CSRF, "1").header("if-match", &etag));
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let logs = app.logs();
    assert!(logs.contains("CsrfCheckFailed"), "refusals are logged by kind");

    // Sign-out: here and at the provider.
    let kept = jar.clone();
    let no_header = jar.send(app.call("POST", "/auth/logout").header("origin", &base));
    assert_eq!(no_header.status, 401, "{}", no_header.body);
    let out = jar.send(app.call("POST", "/auth/logout").header(CSRF, "1").header("origin", &base));
    assert_eq!(out.status, 200, "{}", out.body);
    let location = out.json()["location"].as_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/session/end?", idp.issuer)), "{location}");
    assert_eq!(query_param(&location, "post_logout_redirect_uri"), Some(format!("{base}/")));
    assert!(query_param(&location, "id_token_hint").is_none());
    assert!(!jar.cookies.contains_key(SESSION), "the cookie is cleared");
    assert!(jar.get(&app.url("/auth/session")).json()["session"].is_null());

    // The cookie without its session: refused everywhere.
    let stale = with_cookies(app.call("GET", SECRETS), &kept).send();
    assert_eq!(stale.status, 401, "{}", stale.body);
    let random = app.call("GET", SECRETS).header("cookie", &format!("{SESSION}={}", "A".repeat(43))).send();
    assert_eq!(random.status, 401, "{}", random.body);

    // The audit trail: sign-in and sign-out, and nothing that would let anyone in.
    let logs = app.logs();
    let audited = |action: &str, outcome: &str| {
        logs.lines().any(|l| {
            l.contains(&format!("\"action\":\"{action}\"")) && l.contains(&format!("\"outcome\":\"{outcome}\""))
        })
    };
    assert!(audited("console.signin", "success") && audited("console.signout", "success"), "{logs}");
    assert!(logs.lines().any(|l| l.contains("console.signin") && l.contains("\"tenant\":\"oidc-e2e\"")));
    assert!(!logs.contains(&code) && !logs.contains("eyJ"), "no code and no token in the logs");
    let session_id = &kept.cookies[SESSION];
    assert!(!logs.contains(session_id.as_str()), "no session id in the logs");
    let store = app.raw_store();
    assert!(
        store.iter().all(|(_, k, v)| !k.contains(session_id.as_str())
            && !String::from_utf8_lossy(v).contains(session_id.as_str())
            && !String::from_utf8_lossy(v).contains("eyJ")),
        "the store holds no session id and no token in clear"
    );
}

#[test]
fn forged_states_replayed_codes_missing_verifiers_and_orphan_cookies_are_refused() {
    let Some((mut idp, app, base)) = start() else { return };
    let flow = SignIn { idp: &idp, app_base: base.clone() };

    // A forged state: not the login cookie's, or one this service never issued.
    let mut jar = CookieJar::default();
    let authorize = flow.start(&mut jar);
    let callback = flow.at_provider(&mut jar, &authorize);
    let code = query_param(&callback, "code").unwrap();
    let state = query_param(&callback, "state").unwrap();
    let forged = jar.get(&app.url(&format!("/auth/callback?code={code}&state=forged-state")));
    assert_eq!((forged.status, forged.code()), (400, "SignInRefused".to_owned()), "{}", forged.body);
    let mut attacker = CookieJar::default();
    attacker.cookies.insert(LOGIN.into(), "forged-state".into());
    let unknown = attacker.get(&app.url(&format!("/auth/callback?code={code}&state=forged-state")));
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let elsewhere = CookieJar::default().get(&callback);
    assert_eq!(elsewhere.status, 400, "the callback in a browser that did not start the login: {}", elsewhere.body);
    assert!(!elsewhere.headers.iter().any(|(_, v)| v.starts_with(SESSION)));

    // A code without its PKCE verifier, redeemed directly at the provider by whoever intercepted it.
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", idp.client_id(), idp.client_secret()))
    };
    let redirect = format!("{base}/auth/callback");
    let stolen = Call::new("POST", format!("{}/token", idp.issuer))
        .header("authorization", &format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(format!("grant_type=authorization_code&code={code}&redirect_uri={}", url_encode(&redirect)).into_bytes())
        .send();
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert_eq!(stolen.json()["error"], "invalid_grant");

    // The genuine callback: one session.
    let signed_in = jar.get(&callback);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);

    // A replayed code: the same callback again (login cookie put back), and the code under a new
    // login's state (whose verifier is not the code's).
    let mut replay = CookieJar::default();
    replay.cookies.insert(LOGIN.into(), state.clone());
    let again = replay.get(&callback);
    assert_eq!((again.status, again.code()), (400, "SignInRefused".to_owned()), "{}", again.body);
    let mut other = CookieJar::default();
    flow.start(&mut other);
    let new_state = other.cookies[LOGIN].clone();
    let grafted = other.get(&app.url(&format!("/auth/callback?code={code}&state={new_state}")));
    assert_eq!(grafted.status, 400, "{}", grafted.body);
    let grants = idp.grants();
    assert_eq!(
        grants.iter().filter(|g| *g == "authorization_code").count(),
        1,
        "only the genuine exchange succeeded: {grants:?}"
    );

    // A cookie without its session.
    let orphan = app.call("GET", SECRETS).header("cookie", &format!("{SESSION}={}", "B".repeat(43))).send();
    assert_eq!(orphan.status, 401, "{}", orphan.body);
    let status = app.call("GET", "/auth/session").header("cookie", &format!("{SESSION}={}", "B".repeat(43))).send();
    assert!(status.json()["session"].is_null(), "{}", status.body);

    let logs = app.logs();
    for kind in ["StateMismatch", "StateUnknown", "ExchangeRefused(400)", "NoSession"] {
        assert!(logs.contains(kind), "{kind} is logged: {logs}");
    }
    let refused = logs
        .lines()
        .filter(|l| l.contains("\"action\":\"console.signin\"") && l.contains("\"outcome\":\"refused\""))
        .count();
    assert!(refused >= 5, "every refused callback is audited ({refused}): {logs}");
    assert!(!logs.contains(&code), "the code is never logged");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_person_signs_in_with_the_provider_in_a_real_browser() {
    let browser_dir = e2e::repo_root().join("tests/browser");
    let installed = browser_dir.join("node_modules").exists() && std::path::Path::new("/usr/bin/chromium").exists();
    if !installed {
        assert!(std::env::var("CI").is_err(), "CI=true: chromium and tests/browser's node_modules must be installed");
        eprintln!("skipped: run `npm ci` in tests/browser and install Debian's chromium (.ci/run does both)");
        return;
    }
    let Some((mut idp, app, base)) = start() else { return };
    let output = std::process::Command::new("node")
        .args(["--test", "--test-timeout=180000", "signin.test.js"])
        .current_dir(&browser_dir)
        .env("REGSECRETS_SIGNIN_URL", &base)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser's sign-in failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("# pass 1") && stdout.contains("# skipped 0"), "it ran, not skipped: {stdout}");
    assert_eq!(idp.grants(), ["authorization_code"]);
    let logs = app.logs();
    assert!(
        logs.contains("\"action\":\"console.signin\"") && logs.contains("\"action\":\"console.signout\""),
        "{logs}"
    );
    assert!(logs.contains("\"action\":\"secret.create\"") && logs.contains("\"action\":\"secret.delete\""));
}

#[test]
fn the_session_is_refreshed_at_the_provider_before_its_access_token_expires() {
    // Access tokens of 100 s: within the 2-minute margin at once, so every `/auth/session` refreshes.
    let Some((mut idp, app, base)) = start_with_access_ttl(Some(100)) else { return };
    let flow = SignIn { idp: &idp, app_base: base.clone() };
    let mut jar = CookieJar::default();
    assert_eq!(flow.complete(&mut jar).status, 303);
    let first = jar.get(&app.url("/auth/session"));
    assert_eq!(first.json()["session"]["tenant"], "oidc-e2e", "{}", first.body);
    let second = jar.get(&app.url("/auth/session"));
    assert_eq!(second.json()["session"]["tenant"], "oidc-e2e", "{}", second.body);
    assert_eq!(idp.grants(), ["authorization_code", "refresh_token", "refresh_token"], "refreshed at the provider");
    assert!(!first.body.contains("eyJ") && !second.body.contains("eyJ"));
    let list = jar.send(app.call("GET", SECRETS));
    assert_eq!(list.status, 200, "the refreshed access token serves the API: {}", list.body);
    let write = jar.send(app.call("POST", SECRETS).header(CSRF, "1").header("origin", &base).json(&structured(
        "after-refresh",
        "registry.example.com",
        "bot",
        "pw",
    )));
    assert_eq!(write.status, 201, "{}", write.body);
}
