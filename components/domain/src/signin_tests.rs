//! The console's sign-in against a scripted OpenID provider (a stub [`Sender`] that serves the
//! discovery document, the keys and the token endpoint, checks PKCE and spends each code once) and
//! a clock set by hand.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::audit::Event;
use crate::clock::{Clock, ManualClock};
use crate::identity::session::caller;
use crate::jwks::encode_member;
use crate::net::{FetchError, Fetched};
use crate::store::{Forward, Forwarding, MemoryStore};

const ISSUER: &str = "https://idp.test";
const CLIENT: &str = "console-client";
const SECRET: &str = "client secret/with:odd chars";
const REDIRECT: &str = "https://console.test/auth/callback";
const ORIGIN: &str = "https://console.test";
const T0: u64 = 1_800_000_000_000;
const ACCESS_TTL: u64 = 600;

struct Code {
    challenge: String,
    nonce: String,
    redirect_uri: String,
    spent: bool,
}

#[derive(Default)]
struct Script {
    /// The nonce the next ID tokens carry instead of the login's.
    nonce_override: Option<String>,
    /// The audience of the next ID tokens instead of the client id.
    id_audience: Option<String>,
    down: bool,
    /// The status the token endpoint answers refresh requests with instead of serving them (a
    /// provider that is overloaded or restarting: 500, 503, 429).
    refresh_status: Option<u16>,
    /// Refresh tokens are rotated (panva's oidc-provider, Auth0, Okta): each is good for one
    /// refresh, which answers a new one; a spent one is refused (400 `invalid_grant`).
    rotating: bool,
}

struct Provider {
    key: Ed25519KeyPair,
    codes: Mutex<BTreeMap<String, Code>>,
    script: Mutex<Script>,
    /// Grant types asked of the token endpoint, in order.
    grants: Mutex<Vec<String>>,
    now: Mutex<u64>,
    refreshes: Mutex<u32>,
    /// The refresh tokens handed out and not yet spent (when rotating), and how many were made.
    refresh_tokens: Mutex<(std::collections::BTreeSet<String>, u32)>,
}

impl Provider {
    fn new() -> Provider {
        Provider {
            key: Ed25519KeyPair::generate().with_key_id("k1"),
            codes: Mutex::new(BTreeMap::new()),
            script: Mutex::new(Script::default()),
            grants: Mutex::new(Vec::new()),
            now: Mutex::new(T0 / 1000),
            refreshes: Mutex::new(0),
            refresh_tokens: Mutex::new(Default::default()),
        }
    }

    fn sign(&self, audience: &str, custom: Value) -> String {
        let Value::Object(custom) = custom else { panic!() };
        let now = *self.now.lock().unwrap();
        let mut claims: JWTClaims<Map<String, Value>> =
            Claims::with_custom_claims(custom, Duration::from_secs(ACCESS_TTL))
                .with_issuer(ISSUER)
                .with_audience(audience);
        claims.issued_at = Some(Duration::from_secs(now));
        claims.expires_at = Some(Duration::from_secs(now + ACCESS_TTL));
        claims.subject = Some("alice".into());
        self.key.sign(claims).unwrap()
    }

    /// A new refresh token, good until spent.
    fn refresh_token(&self) -> String {
        let mut tokens = self.refresh_tokens.lock().unwrap();
        tokens.1 += 1;
        let token = format!("refresh-{}", tokens.1);
        tokens.0.insert(token.clone());
        token
    }

    fn access_token(&self) -> String {
        self.sign(
            "regsecrets",
            json!({"tenant": "acme", "scope": "regsecrets.admin regsecrets.viewer", "client_id": CLIENT}),
        )
    }

    /// The user signs in at the provider: a code for the authorization request at `location`.
    fn authorize(&self, location: &str) -> (String, String) {
        let url = Url::parse(location).unwrap();
        assert!(location.starts_with("https://idp.test/auth?"), "{location}");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT);
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        assert_eq!(q["code_challenge"].len(), 43);
        let code = format!("code-{}", self.codes.lock().unwrap().len());
        self.codes.lock().unwrap().insert(
            code.clone(),
            Code {
                challenge: q["code_challenge"].clone(),
                nonce: q["nonce"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                spent: false,
            },
        );
        (code, q["state"].clone())
    }

    fn token_endpoint(&self, request: &Outgoing) -> Fetched {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                CLIENT,
                url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>()
            ))
        );
        let refuse =
            |status: u16| Fetched { status, headers: Vec::new(), body: br#"{"error":"invalid_grant"}"#.to_vec() };
        if request.header("authorization") != Some(basic.as_str()) {
            return refuse(401);
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        self.grants.lock().unwrap().push(form["grant_type"].clone());
        let script = self.script.lock().unwrap();
        let body = match form["grant_type"].as_str() {
            "authorization_code" => {
                let mut codes = self.codes.lock().unwrap();
                let Some(code) = codes.get_mut(&form["code"]) else { return refuse(400) };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                if code.spent
                    || code.redirect_uri != form["redirect_uri"]
                    || code_challenge(&verifier) != code.challenge
                {
                    return refuse(400);
                }
                code.spent = true;
                let nonce = script.nonce_override.clone().unwrap_or(code.nonce.clone());
                let audience = script.id_audience.clone().unwrap_or(CLIENT.into());
                json!({"access_token": self.access_token(), "token_type": "Bearer",
                       "id_token": self.sign(&audience, json!({"nonce": nonce})), "refresh_token": self.refresh_token()})
            }
            "refresh_token" => {
                *self.refreshes.lock().unwrap() += 1;
                if let Some(status) = script.refresh_status {
                    return Fetched {
                        status,
                        headers: Vec::new(),
                        body: br#"{"error":"temporarily_unavailable"}"#.to_vec(),
                    };
                }
                if !form["refresh_token"].starts_with("refresh-") {
                    return refuse(400);
                }
                if !script.rotating {
                    json!({"access_token": self.access_token(), "token_type": "Bearer", "refresh_token": "refresh-0"})
                } else if self.refresh_tokens.lock().unwrap().0.remove(&form["refresh_token"]) {
                    json!({"access_token": self.access_token(), "token_type": "Bearer",
                           "refresh_token": self.refresh_token()})
                } else {
                    return refuse(400);
                }
            }
            _ => return refuse(400),
        };
        Fetched { status: 200, headers: Vec::new(), body: body.to_string().into_bytes() }
    }
}

impl Sender for Provider {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        if self.script.lock().unwrap().down {
            return Err(FetchError::Unreachable);
        }
        let ok = |body: Value| Ok(Fetched { status: 200, headers: Vec::new(), body: body.to_string().into_bytes() });
        match (request.method, request.url.as_str()) {
            ("GET", "https://idp.test/.well-known/openid-configuration") => ok(json!({
                "issuer": ISSUER, "jwks_uri": "https://idp.test/jwks", "authorization_endpoint": "https://idp.test/auth",
                "token_endpoint": "https://idp.test/token", "end_session_endpoint": "https://idp.test/session/end"})),
            ("GET", "https://idp.test/jwks") => ok(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                "x": encode_member(&self.key.public_key().to_bytes())}]})),
            ("POST", "https://idp.test/token") => Ok(self.token_endpoint(request)),
            _ => Ok(Fetched { status: 404, headers: Vec::new(), body: Vec::new() }),
        }
    }
}

/// The world's store: a [`MemoryStore`] that also counts its listings (`keys`, a scan of the
/// whole store on every Spin backend).
#[derive(Default)]
struct TestStore {
    inner: MemoryStore,
    listings: Mutex<u32>,
}

impl TestStore {
    fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        self.inner.dump()
    }

    fn listings(&self) -> u32 {
        *self.listings.lock().unwrap()
    }
}

impl Forward for TestStore {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }
    fn keys(&self) -> crate::store::StoreResult<Vec<String>> {
        *self.listings.lock().unwrap() += 1;
        self.inner.keys()
    }
}

struct World {
    store: Forwarding<TestStore>,
    provider: Provider,
    clock: ManualClock,
    keyring: Result<Keyring, Error>,
    auth: AuthSettings,
    settings: SignInSettings,
}

/// One answer: status, headers, body, audit.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    audit: Option<Event>,
    log: Option<String>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .find_map(|(_, v)| v.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

impl World {
    fn new() -> World {
        World {
            store: Forwarding(TestStore::default()),
            provider: Provider::new(),
            clock: ManualClock::at(T0),
            keyring: Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            auth: AuthSettings {
                jwks: String::new(),
                issuer: String::new(),
                audience: String::new(),
                tenant_claim: "tenant".into(),
                issuers: json!([{"issuer": ISSUER, "audience": "regsecrets"}]).to_string(),
                keys_stale_secs: 3600,
            },
            settings: SignInSettings {
                issuer: ISSUER.into(),
                client_id: CLIENT.into(),
                client_secret: SECRET.into(),
                redirect_uri: REDIRECT.into(),
                scopes: "regsecrets.admin".into(),
                resource: String::new(),
                paste: true,
            },
        }
    }

    fn at(&self, secs_after_t0: u64) {
        self.clock.set(T0 + secs_after_t0 * 1000);
        *self.provider.now.lock().unwrap() = T0 / 1000 + secs_after_t0;
    }

    fn call(&self, method: &str, path_and_query: &str, headers: &[(&str, &str)]) -> Answer {
        self.call_on(&self.store, method, path_and_query, headers)
    }

    /// [`World::call`] with the component's store being `store` (a wrapper over the world's).
    fn call_on(&self, store: &dyn KeyValue, method: &str, path_and_query: &str, headers: &[(&str, &str)]) -> Answer {
        self.call_with(store, &self.provider, &self.clock, method, path_and_query, headers)
    }

    /// [`World::call`] through wrappers of the world's store, provider and clock.
    fn call_with(
        &self,
        store: &dyn KeyValue,
        sender: &dyn Sender,
        clock: &dyn Clock,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut builder = http::Request::builder().method(method).uri(path_and_query);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(crate::http::Body::Complete(Vec::new())).unwrap();
        let ctx = SignIn { store, keyring: &self.keyring, sender, clock, auth: &self.auth, settings: &self.settings };
        let outcome = handle(&ctx, &request);
        let headers = outcome
            .response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        Answer {
            status: outcome.response.status().as_u16(),
            headers,
            body: String::from_utf8(outcome.response.body().clone()).unwrap(),
            audit: outcome.audit,
            log: outcome.log,
        }
    }

    /// A login: its `state` (the login cookie's value) and the provider's code for it.
    fn login(&self) -> (String, String) {
        let answer = self.call("GET", LOGIN, &[]);
        assert_eq!(answer.status, 302, "{}", answer.body);
        let cookie = answer.cookie(LOGIN_COOKIE).expect("login cookie");
        let set = answer.header("set-cookie").unwrap();
        for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(set.contains(attribute), "{set}");
        }
        let (code, state) = self.provider.authorize(answer.header("location").unwrap());
        assert_eq!(cookie, state);
        (state, code)
    }

    fn callback(&self, code: &str, state: &str, cookie_state: &str) -> Answer {
        let cookie = format!("{LOGIN_COOKIE}={cookie_state}");
        self.call(
            "GET",
            &format!("{CALLBACK}?code={code}&state={state}&iss=https%3A%2F%2Fidp.test"),
            &[("cookie", &cookie)],
        )
    }

    /// [`World::signed_in`], and the `Cookie` header that names the session.
    fn signed_in_with_cookie(&self) -> (String, String) {
        let session_id = self.signed_in();
        let cookie = cookie(&session_id);
        (session_id, cookie)
    }

    /// Signs in; the session id.
    fn signed_in(&self) -> String {
        let (state, code) = self.login();
        let answer = self.callback(&code, &state, &state);
        assert_eq!(answer.status, 303, "{} {:?}", answer.body, answer.log);
        answer.cookie(SESSION_COOKIE).expect("session cookie")
    }

    /// Signs the session out (`POST /auth/logout` from the console).
    fn sign_out(&self, session_id: &str) -> Answer {
        let out = self.call("POST", LOGOUT, &[("cookie", &cookie(session_id)), (CSRF_HEADER, "1"), ("origin", ORIGIN)]);
        assert_eq!(out.status, 200, "{}", out.body);
        out
    }

    /// The component's context over the world itself.
    fn context(&self) -> SignIn<'_> {
        SignIn {
            store: &self.store,
            keyring: &self.keyring,
            sender: &self.provider,
            clock: &self.clock,
            auth: &self.auth,
            settings: &self.settings,
        }
    }

    /// `GET /auth/session` with the session's cookie.
    fn status(&self, session_id: &str) -> Answer {
        self.status_with(&self.provider, &self.clock, session_id)
    }

    /// [`World::status`] through a wrapper of the provider or the clock.
    fn status_with(&self, sender: &dyn Sender, clock: &dyn Clock, session_id: &str) -> Answer {
        let cookie = format!("{SESSION_COOKIE}={session_id}");
        self.call_with(&self.store, sender, clock, "GET", SESSION, &[("cookie", &cookie)])
    }

    /// A `GET /auth/session` whose node dies while its refresh request is on its way to the
    /// provider (which never serves it): whatever it wrote to the store before stays there.
    fn dies_while_refreshing(&self, session_id: &str) {
        // `resume_unwind` unwinds without the panic hook's message.
        let sender = on_refresh(&self.provider, || std::panic::resume_unwind(Box::new("the node dies")));
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.status_with(&sender, &self.clock, session_id)
        }));
        assert!(died.is_err(), "the request reached the provider: {:?}", died.map(|a| a.body));
    }

    fn caller(
        &self,
        session_id: &str,
        method: &http::Method,
        extra: &[(&str, &str)],
    ) -> Result<crate::identity::Principal, Error> {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", format!("{SESSION_COOKIE}={session_id}").parse().unwrap());
        for (k, v) in extra {
            headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let request = session::Request { method, headers: &headers };
        caller(&self.store, &request, self.clock.now_ms() / 1000).expect("a session cookie")
    }
}

/// The `Cookie` header that names a session.
fn cookie(session_id: &str) -> String {
    format!("{SESSION_COOKIE}={session_id}")
}

fn refusal(answer: &Answer) -> String {
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["error"]["code"], "SignInRefused");
    answer.log.clone().unwrap()
}

#[test]
fn a_sign_in_makes_a_session_that_names_the_access_tokens_tenant_and_scopes() {
    let world = World::new();
    let (state, code) = world.login();
    let answer = world.callback(&code, &state, &state);
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.header("location"), Some("https://console.test/"));
    let set: Vec<&str> = answer.headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
    let session_cookie = set.iter().find(|c| c.starts_with(SESSION_COOKIE)).unwrap();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(set.iter().any(|c| c.starts_with(&format!("{LOGIN_COOKIE}=;")) && c.contains("Max-Age=0")), "{set:?}");
    assert!(answer.body.is_empty(), "the browser gets the cookie and nothing else");
    let event = answer.audit.clone().unwrap();
    assert_eq!((event.action, event.status, event.tenant.as_deref()), (Action::ConsoleSignIn, 303, Some("acme")));
    assert_eq!(event.subject.as_deref(), Some("alice"));

    let session_id = answer.cookie(SESSION_COOKIE).unwrap();
    let who = world.caller(&session_id, &http::Method::GET, &[]).unwrap();
    assert_eq!(who.tenant.as_str(), "acme");
    assert!(who.scopes.contains(crate::identity::Scope::Admin) && who.scopes.contains(crate::identity::Scope::Viewer));
    assert_eq!(world.provider.grants.lock().unwrap().as_slice(), ["authorization_code"]);

    // Nothing in the store gives the session, a token or the verifier away.
    let dump = world.store.dump();
    let text: String = dump.iter().map(|(k, v)| format!("{k}={}\n", String::from_utf8_lossy(v))).collect();
    assert!(!text.contains(&session_id), "the session id");
    assert!(!text.contains("refresh-1") && !text.contains("eyJ"), "no token in clear");
    // The spent login stays until the next login of its slot overwrites it: its state only as a
    // digest, its nonce and verifier sealed, and a replay of its callback is refused.
    assert!(!text.contains(&state), "the state in clear");
    let logins = dump.keys().filter(|k| k.starts_with("auth:login:") && !k.ends_with(":n")).count();
    assert_eq!(logins, 1, "{:?}", dump.keys());
    assert!(refusal(&world.callback(&code, &state, &state)).contains("Replayed"));

    let status = world.call("GET", SESSION, &[("cookie", &format!("{SESSION_COOKIE}={session_id}"))]);
    assert_eq!(status.status, 200);
    let body = status.json();
    assert_eq!(body["session"]["tenant"], "acme");
    assert_eq!(body["signIn"], json!({"oidc": true, "paste": true}));
    assert!(!status.body.contains("eyJ"), "no token reaches the browser");
}

#[test]
fn a_forged_or_unbound_state_is_refused_and_audited() {
    let world = World::new();
    let (state, code) = world.login();
    let log = refusal(&world.callback(&code, "forged-state", &state));
    assert!(log.contains("StateMismatch"), "{log}");
    let log = refusal(&world.callback(&code, "forged-state", "forged-state"));
    assert!(log.contains("StateUnknown"), "a state this service never issued: {log}");
    let log = refusal(&world.call("GET", &format!("{CALLBACK}?code={code}&state={state}"), &[]));
    assert!(log.contains("StateMismatch"), "no login cookie: another browser's callback: {log}");
    let answer = world.call("GET", &format!("{CALLBACK}?error=access_denied&state={state}"), &[]);
    assert!(refusal(&answer).contains("ProviderError"));
    let event = answer.audit.clone().unwrap();
    assert_eq!(
        (event.action, event.outcome, event.tenant),
        (Action::ConsoleSignIn, crate::audit::Verdict::Refused, None)
    );
    assert!(!answer.body.contains(&code) && !log.contains(&code), "the code is never quoted");
    // The genuine callback still works: refusals did not consume the login.
    assert_eq!(world.callback(&code, &state, &state).status, 303);
}

#[test]
fn a_callback_is_served_once_and_a_login_expires() {
    let world = World::new();
    let (state, code) = world.login();
    assert_eq!(world.callback(&code, &state, &state).status, 303);
    let log = refusal(&world.callback(&code, &state, &state));
    assert!(log.contains("StateUnknown") || log.contains("Replayed"), "{log}");
    assert_eq!(world.provider.grants.lock().unwrap().len(), 1, "the replay never reached the provider");

    let (state, code) = world.login();
    world.at(LOGIN_TTL_SECS + 1);
    assert!(refusal(&world.callback(&code, &state, &state)).contains("Expired"));
}

#[test]
fn concurrent_replays_of_one_callback_make_one_session() {
    // Both read the login before either takes the slot: only the first increment is one past the
    // login's value. Here another callback of the same login took it first.
    let world = World::new();
    let (state, code) = world.login();
    world.store.increment(&console_login_counter(console_login_slot(&state)), 1).unwrap();
    assert!(refusal(&world.callback(&code, &state, &state)).contains("Replayed"));
    assert!(world.provider.grants.lock().unwrap().is_empty(), "the code was never sent");
}

#[test]
fn the_id_token_must_carry_the_logins_nonce_and_the_client_as_audience() {
    let world = World::new();
    world.provider.script.lock().unwrap().nonce_override = Some("another-nonce".into());
    let (state, code) = world.login();
    assert!(refusal(&world.callback(&code, &state, &state)).contains("IdToken(WrongNonce)"));

    let world = World::new();
    world.provider.script.lock().unwrap().id_audience = Some("regsecrets".into());
    let (state, code) = world.login();
    assert!(refusal(&world.callback(&code, &state, &state)).contains("IdToken(WrongAudience)"));
}

#[test]
fn a_code_without_its_verifier_is_refused_by_the_provider() {
    let world = World::new();
    let (state, code) = world.login();
    // Someone who intercepted the code redeems it without the verifier only this service holds.
    let stolen = Outgoing::post(
        Url::parse("https://idp.test/token").unwrap(),
        "application/x-www-form-urlencoded",
        format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}").into_bytes(),
    );
    let mut stolen = stolen;
    stolen.headers.push((
        "authorization".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{CLIENT}:{}",
                url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>()
            ))
        ),
    ));
    assert_eq!(world.provider.send(&stolen).unwrap().status, 400);
    assert_eq!(world.callback(&code, &state, &state).status, 303, "the code was not spent by the attempt");
}

#[test]
fn the_session_is_refreshed_server_side_before_the_access_token_expires() {
    let world = World::new();
    let (session_id, cookie) = world.signed_in_with_cookie();
    let first = world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"]["expiresAt"].clone();
    assert_eq!(*world.provider.refreshes.lock().unwrap(), 0, "not yet");
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    let status = world.call("GET", SESSION, &[("cookie", &cookie)]);
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(*world.provider.refreshes.lock().unwrap(), 1);
    assert_ne!(status.json()["session"]["expiresAt"], first);
    world.at(ACCESS_TTL + 200);
    assert!(
        world.caller(&session_id, &http::Method::GET, &[]).is_ok(),
        "the refreshed token serves past the first one's end"
    );

    // Past the first token, without a refresh while the provider is down: the session ends.
    world.at(2 * ACCESS_TTL + 200);
    world.provider.script.lock().unwrap().down = true;
    assert_eq!(
        world.caller(&session_id, &http::Method::GET, &[]).unwrap_err(),
        Error::Unauthenticated(AuthFailure::SessionExpired)
    );
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).status, 503);
    world.provider.script.lock().unwrap().down = false;
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"]["tenant"], "acme");
}

#[test]
fn sign_out_needs_the_csrf_header_ends_the_session_and_names_the_providers_logout() {
    let world = World::new();
    let (session_id, cookie) = world.signed_in_with_cookie();
    let forged = world.call("POST", LOGOUT, &[("cookie", &cookie), ("origin", "https://evil.test")]);
    assert_eq!(forged.status, 401);
    assert!(forged.log.unwrap().contains("CsrfCheckFailed"));
    assert!(world.caller(&session_id, &http::Method::GET, &[]).is_ok(), "a forged sign-out changes nothing");

    let out = world.sign_out(&session_id);
    let location = Url::parse(out.json()["location"].as_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/session/end");
    let q: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT));
    assert_eq!(q.get("post_logout_redirect_uri").map(String::as_str), Some("https://console.test/"));
    assert!(!q.contains_key("id_token_hint"), "no token in the browser's address bar");
    assert_eq!(out.cookie(SESSION_COOKIE).as_deref(), Some(""));
    let event = out.audit.unwrap();
    assert_eq!((event.action, event.tenant.as_deref()), (Action::ConsoleSignOut, Some("acme")));
    assert_eq!(
        world.caller(&session_id, &http::Method::GET, &[]).unwrap_err(),
        Error::Unauthenticated(AuthFailure::NoSession),
        "the cookie without its session"
    );
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"], Value::Null);
}

#[test]
fn without_configuration_only_pasting_is_offered() {
    let mut world = World::new();
    world.settings.client_id = String::new();
    world.settings.paste = false;
    assert!(refusal(&world.call("GET", LOGIN, &[])).contains("NotConfigured"));
    assert_eq!(world.call("GET", SESSION, &[]).json()["signIn"], json!({"oidc": false, "paste": false}));
    let mut world = World::new();
    world.settings.issuer = "https://not-an-accepted-issuer.test".into();
    assert!(
        refusal(&world.call("GET", LOGIN, &[])).contains("NotConfigured"),
        "the provider's tokens must be accepted"
    );
    let mut world = World::new();
    world.settings.redirect_uri = "http://console.test/auth/callback".into();
    assert!(refusal(&world.call("GET", LOGIN, &[])).contains("NotConfigured"), "https only (http on loopback)");
    assert_eq!(World::new().call("POST", LOGIN, &[]).status, 405);
}

#[test]
fn a_later_login_in_the_same_slot_refuses_the_earlier_callback_and_the_store_stays_bounded() {
    let world = World::new();
    let mut by_slot: BTreeMap<u16, (String, String)> = BTreeMap::new();
    let (earlier, later) = loop {
        let (state, code) = world.login();
        let slot = console_login_slot(&state);
        if let Some(previous) = by_slot.insert(slot, (state.clone(), code.clone())) {
            break (previous, (state, code));
        }
        assert!(by_slot.len() <= crate::store::LOGIN_SLOTS as usize);
    };
    assert!(refusal(&world.callback(&earlier.1, &earlier.0, &earlier.0)).contains("StateUnknown"));
    assert_eq!(world.callback(&later.1, &later.0, &later.0).status, 303, "the later login signs in");
    for _ in 0..300 {
        world.login();
    }
    let login_keys = world.store.dump().keys().filter(|k| k.starts_with("auth:login:")).count();
    assert!(login_keys <= 2 * crate::store::LOGIN_SLOTS as usize, "{login_keys} keys for logins in progress");
}

/// Review finding: the token endpoint answering 503 (or 500, 429) to a refresh is the provider being
/// unavailable, not the refresh being refused; while the session's access token is still good it
/// must keep serving (docs/security.md: "While the provider cannot be reached, a still valid token
/// keeps serving; a session whose refresh is refused ends"). Today `token_request` maps every
/// non-200 to `SignInRefused(ExchangeRefused)` and `status` deletes the session on it.
#[test]
fn a_provider_answering_503_to_a_refresh_does_not_end_a_live_session() {
    let world = World::new();
    let (session_id, cookie) = world.signed_in_with_cookie();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    world.provider.script.lock().unwrap().refresh_status = Some(503);
    let status = world.call("GET", SESSION, &[("cookie", &cookie)]);
    assert_eq!(*world.provider.refreshes.lock().unwrap(), 1, "a refresh was tried");
    assert_ne!(status.json()["session"], Value::Null, "signed out by a provider hiccup: {}", status.body);
    assert!(
        world.caller(&session_id, &http::Method::GET, &[]).is_ok(),
        "the access token is still good for {} s",
        REFRESH_MARGIN_SECS - 1
    );
    // The provider comes back: the next status refreshes.
    world.provider.script.lock().unwrap().refresh_status = None;
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"]["tenant"], "acme");
}

/// Review finding: a sign-out that lands while `GET /auth/session` of the same session is refreshing
/// (the status read the record, then waits on the provider's token endpoint) is undone: the refresh
/// writes the record back with `set`, so the session lives on in the store with freshly refreshed
/// tokens, and anyone holding the cookie's value keeps using the API after the user signed out.
/// The interleaving is played step by step with the two requests' own code: the status's read and
/// its `refresh` (which is what `status` calls after the read), with the sign-out in between.
#[test]
fn a_sign_out_during_a_refresh_is_not_undone_by_the_refresh() {
    let world = World::new();
    let session_id = world.signed_in();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    // `GET /auth/session`: reads the record, finds it due for refresh.
    let record = session::read(&world.store, &session_id).unwrap().unwrap();
    assert!(world.clock.now_ms() / 1000 + REFRESH_MARGIN_SECS >= record.expires_at);
    // Meanwhile, `POST /auth/logout` from the console.
    world.sign_out(&session_id);
    assert!(session::read(&world.store, &session_id).unwrap().is_none(), "signed out");
    // The status's refresh completes.
    let _ = world.context().refresh(&session_id, &record);
    assert!(
        session::read(&world.store, &session_id).unwrap().is_none(),
        "the signed-out session came back with refreshed tokens"
    );
    assert_eq!(
        world.caller(&session_id, &http::Method::GET, &[]).unwrap_err(),
        Error::Unauthenticated(AuthFailure::NoSession),
        "the cookie still works after sign-out"
    );
}

/// The world's store, with a hook run right after the first `increment` of one key once armed:
/// another request's steps, played between two steps of this one.
struct Interleaved<'w> {
    inner: &'w Forwarding<TestStore>,
    key: crate::store::Key,
    hook: Mutex<Option<Box<dyn FnOnce() + 'w>>>,
}

impl Forward for Interleaved<'_> {
    type Inner = Forwarding<TestStore>;
    fn inner(&self) -> &Forwarding<TestStore> {
        self.inner
    }
    fn increment(&self, key: &crate::store::Key, delta: i64) -> crate::store::StoreResult<i64> {
        let value = self.inner.increment(key, delta)?;
        if key.as_str() == self.key.as_str() {
            if let Some(hook) = self.hook.lock().unwrap().take() {
                hook();
            }
        }
        Ok(value)
    }
}

/// Review finding: a callback that wins its slot's counter then deletes the slot's record
/// unconditionally (`let _ = self.store.delete(&console_login(slot))`). A login that took the same
/// slot between that callback's `increment` and its `delete` (another user starting to sign in at
/// that moment) has its record deleted: its callback is refused as `StateUnknown`, although no
/// later login took its slot and it was never served. The fix: delete only the record read (e.g.
/// skip the delete, the counter already refuses a replay and the next login overwrites the slot;
/// or re-read and delete only when its state digest is still this login's).
#[test]
fn a_callback_does_not_delete_a_later_login_that_took_its_slot_meanwhile() {
    let world = World::new();
    let (state_a, code_a) = world.login();
    let slot = console_login_slot(&state_a);
    let later: Mutex<Option<(String, String)>> = Mutex::new(None);
    let store = Forwarding(Interleaved {
        inner: &world.store,
        key: console_login_counter(slot),
        hook: Mutex::new(Some(Box::new(|| loop {
            // Someone else starts a login, which lands in the same slot.
            let (state, code) = world.login();
            if console_login_slot(&state) == slot {
                *later.lock().unwrap() = Some((state, code));
                break;
            }
        }))),
    });
    let cookie = format!("{LOGIN_COOKIE}={state_a}");
    let first =
        world.call_on(&store, "GET", &format!("{CALLBACK}?code={code_a}&state={state_a}"), &[("cookie", &cookie)]);
    assert_eq!(first.status, 303, "the first callback took its slot's counter first: {}", first.body);
    let (state_b, code_b) = later.lock().unwrap().take().expect("the hook ran");
    let second = world.callback(&code_b, &state_b, &state_b);
    assert_eq!(second.status, 303, "the later login was never served: {} {:?}", second.body, second.log);
}

/// A refresh's `set` that failed and took effect after the sign-out (or any late copy of the
/// record) does not bring the session back: every read checks the sign-out mark.
#[test]
fn a_record_written_back_after_sign_out_is_no_session() {
    let world = World::new();
    let (session_id, cookie) = world.signed_in_with_cookie();
    let record = session::read(&world.store, &session_id).unwrap().unwrap();
    world.sign_out(&session_id);
    // The late write lands.
    session::write(&world.store, &session_id, &record).unwrap();
    assert!(session::read(&world.store, &session_id).unwrap().is_none());
    assert_eq!(
        world.caller(&session_id, &http::Method::GET, &[]).unwrap_err(),
        Error::Unauthenticated(AuthFailure::NoSession)
    );
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"], Value::Null);
    // A sign-out leaves one key for the session, as a session never signed out keeps its record.
    world.store.delete(&crate::store::console_session(&session_id)).unwrap();
    let keys = world.store.dump().keys().filter(|k| k.starts_with("auth:session:")).count();
    assert_eq!(keys, 1, "the mark alone");
}

/// The provider, with a hook run once when the first refresh request reaches it, before it is
/// served: another request's steps, played while this one waits on the token endpoint.
struct OnRefresh<'w> {
    provider: &'w Provider,
    hook: Mutex<Option<Box<dyn FnOnce() + 'w>>>,
}

fn on_refresh<'w>(provider: &'w Provider, hook: impl FnOnce() + 'w) -> OnRefresh<'w> {
    OnRefresh { provider, hook: Mutex::new(Some(Box::new(hook))) }
}

impl Sender for OnRefresh<'_> {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        let body = String::from_utf8_lossy(&request.body);
        if request.method == "POST" && body.contains("grant_type=refresh_token") {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        self.provider.send(request)
    }
}

/// The world's clock, with a hook run at its `at`-th sleep: what lands in the store while a
/// request waits.
struct OnSleep<'w> {
    clock: &'w ManualClock,
    sleeps: Mutex<u32>,
    at: u32,
    hook: Mutex<Option<Box<dyn FnOnce() + 'w>>>,
}

fn on_sleep<'w>(clock: &'w ManualClock, at: u32, hook: impl FnOnce() + 'w) -> OnSleep<'w> {
    OnSleep { clock, sleeps: Mutex::new(0), at, hook: Mutex::new(Some(Box::new(hook))) }
}

impl Clock for OnSleep<'_> {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    fn monotonic_ms(&self) -> u64 {
        self.clock.monotonic_ms()
    }
    fn sleep(&self, _: std::time::Duration) {
        let sleeps = {
            let mut sleeps = self.sleeps.lock().unwrap();
            *sleeps += 1;
            *sleeps
        };
        if sleeps == self.at {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }
}

fn refreshes(world: &World) -> u32 {
    *world.provider.refreshes.lock().unwrap()
}

fn assert_signed_in(answer: &Answer, which: &str) {
    assert_eq!(answer.status, 200, "{which}: {}", answer.body);
    assert_eq!(answer.json()["session"]["tenant"], "acme", "{which} signed out: {}", answer.body);
    assert_eq!(answer.cookie(SESSION_COOKIE), None, "{which} cleared the session cookie");
}

/// Two tabs (or two nodes) refresh the same session at once, and the provider rotates refresh
/// tokens: the second refresh would present the refresh token the first one spent, be refused
/// (400 `invalid_grant`), and sign the user out for having two tabs open. One refresh runs; the
/// other, finding it under way while the session's token is still good, answers the record as it is.
#[test]
fn two_refreshes_at_once_keep_the_session_with_a_provider_that_rotates_refresh_tokens() {
    let world = World::new();
    world.provider.script.lock().unwrap().rotating = true;
    let session_id = world.signed_in();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    let second: Mutex<Option<Answer>> = Mutex::new(None);
    // While the first tab's refresh waits on the token endpoint, the second tab asks.
    let sender = on_refresh(&world.provider, || *second.lock().unwrap() = Some(world.status(&session_id)));
    let first = world.status_with(&sender, &world.clock, &session_id);
    let second = second.lock().unwrap().take().expect("the second tab asked during the first one's refresh");
    assert_signed_in(&first, "the first tab");
    assert_signed_in(&second, "the second tab");
    assert_eq!(refreshes(&world), 1, "one refresh reached the provider");
    let claims = world.store.dump().into_keys().filter(|k| k.contains(":refresh:")).collect::<Vec<_>>();
    assert!(claims.is_empty(), "the lease was released: {claims:?}");
    assert!(world.caller(&session_id, &http::Method::GET, &[]).is_ok());

    // The record holds the refresh token the provider handed out last: the next refresh works.
    world.at(2 * ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    assert_signed_in(&world.status(&session_id), "the next refresh");
    assert_eq!(refreshes(&world), 2);
}

/// A refresher paused while its request is on its way to the provider, longer than its claim lasts:
/// meanwhile another request refreshes and spends the refresh token, so the provider refuses the
/// paused one's. It re-reads the record, finds the later refresh's, and answers that instead of
/// signing the user out.
#[test]
fn a_refresh_refused_because_a_later_refresh_spent_its_token_answers_the_later_record() {
    let world = World::new();
    world.provider.script.lock().unwrap().rotating = true;
    let session_id = world.signed_in();
    let started = ACCESS_TTL - REFRESH_MARGIN_SECS + 1;
    world.at(started);
    let later: Mutex<Option<Answer>> = Mutex::new(None);
    let sender = on_refresh(&world.provider, || {
        world.at(started + 100);
        *later.lock().unwrap() = Some(world.status(&session_id));
    });
    let paused = world.status_with(&sender, &world.clock, &session_id);
    let later = later.lock().unwrap().take().expect("the later request ran during the pause");
    assert_signed_in(&later, "the later refresh");
    assert_eq!(refreshes(&world), 2, "the later refresh, then the paused one's (refused)");
    assert_signed_in(&paused, "the paused refresh");
    assert_eq!(paused.json()["session"]["expiresAt"], later.json()["session"]["expiresAt"], "the later record");
    assert!(world.caller(&session_id, &http::Method::GET, &[]).is_ok());
}

/// The other side: a refresh refused with no later record to be found ends the session.
#[test]
fn a_refresh_refused_with_no_later_record_ends_the_session() {
    let world = World::new();
    world.provider.script.lock().unwrap().rotating = true;
    let session_id = world.signed_in();
    // The provider revoked the session's refresh token (the user's account was disabled, say).
    world.provider.refresh_tokens.lock().unwrap().0.clear();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    let answer = world.status(&session_id);
    assert_eq!(answer.json()["session"], Value::Null, "{}", answer.body);
    assert_eq!(answer.cookie(SESSION_COOKIE).as_deref(), Some(""), "the cookie is cleared");
    assert!(world.store.get(&crate::store::console_session(&session_id)).unwrap().is_none(), "the record is gone");
    let claims = world.store.dump().into_keys().filter(|k| k.contains(":refresh:")).collect::<Vec<_>>();
    assert!(claims.is_empty(), "the lease was released: {claims:?}");
}

/// A refresher whose node dies while it asks the provider leaves its claim behind: the session's
/// refreshes wait for the claim's windows to pass (answering 503 with `Retry-After` while the token
/// is no longer good, never signing the user out), then the next request refreshes.
#[test]
fn a_refresher_that_died_holding_the_claim_delays_the_next_refresh_by_two_windows_at_most() {
    let world = World::new();
    let session_id = world.signed_in();
    // T0 is a multiple of the 30 s window: 700 s after it is in window 23 (690..720 s).
    world.at(ACCESS_TTL + 100);
    world.dies_while_refreshing(&session_id);
    assert_eq!(refreshes(&world), 0, "the provider never served it");
    for at in [ACCESS_TTL + 100, ACCESS_TTL + 149] {
        world.at(at);
        let answer = world.status(&session_id);
        assert_eq!(answer.status, 503, "at {at} s: {}", answer.body);
        assert!(answer.header("retry-after").is_some(), "{:?}", answer.headers);
        assert_eq!(answer.cookie(SESSION_COOKIE), None, "at {at} s: signed out");
    }
    assert_eq!(refreshes(&world), 0, "no refresh while the claim holds");
    assert!(session::read(&world.store, &session_id).unwrap().is_some(), "the session is kept");
    world.at(ACCESS_TTL + 150);
    assert_signed_in(&world.status(&session_id), "two windows on");
    assert_eq!(refreshes(&world), 1);
}

/// A request that finds a refresh under way while the session's token is no longer good waits
/// (bounded) for the refresher's record, and answers it, without asking the provider itself.
#[test]
fn a_refresher_that_lost_the_claim_waits_for_the_winners_record() {
    let world = World::new();
    world.provider.script.lock().unwrap().rotating = true;
    let session_id = world.signed_in();
    world.at(ACCESS_TTL + 100);
    let record = session::read(&world.store, &session_id).unwrap().unwrap();
    // The winner: it has claimed the refresh and is asking the provider.
    world.dies_while_refreshing(&session_id);
    let clock = on_sleep(&world.clock, 3, || {
        // The winner's renewed record lands.
        world.context().refresh(&session_id, &record).unwrap();
    });
    let answer = world.status_with(&world.provider, &clock, &session_id);
    assert_eq!(*clock.sleeps.lock().unwrap(), 3, "it waited, and stopped once the record was renewed");
    assert_signed_in(&answer, "the request that waited");
    assert_ne!(answer.json()["session"]["expiresAt"], rfc3339(record.expires_at * 1000), "the renewed record");
    assert_eq!(refreshes(&world), 1, "the winner's refresh alone");
}

const HOUR: u64 = 3600;

/// The store's keys of console sessions (records, sign-out marks, refresh leases).
fn session_keys(world: &World) -> Vec<String> {
    world.store.dump().into_keys().filter(|k| k.starts_with("auth:session:")).collect()
}

fn has(world: &World, key: &crate::store::Key) -> bool {
    world.store.get(key).unwrap().is_some()
}

/// Sessions that ended are collected: their records (refreshed or not, abandoned without sign-out),
/// their sign-out marks, the leases refreshers left, and records that cannot be read. The store
/// has no expiry, and Fermyon Cloud holds 1,024 keys per store: without this, every sign-in would
/// keep a key forever.
#[test]
fn a_sign_in_collects_the_keys_of_sessions_that_ended() {
    let world = World::new();
    let abandoned = world.signed_in();
    let signed_out = world.signed_in();
    world.sign_out(&signed_out);
    let refreshed = world.signed_in();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    assert_signed_in(&world.status(&refreshed), "refreshed");
    world.at(ACCESS_TTL + 100);
    world.dies_while_refreshing(&abandoned);
    // A record that cannot be read (damaged, say): no session, and never one.
    world.store.set(&crate::store::console_session("unreadable"), b"{not a record").unwrap();
    assert!(session_keys(&world).len() >= 5, "{:?}", session_keys(&world));

    // An hour past the sessions' 12 hours.
    world.at(MAX_SESSION_SECS + HOUR + 1);
    let fresh = world.signed_in();
    assert_eq!(session_keys(&world), [crate::store::console_session(&fresh).as_str()], "only the live session's");
    let claims = world.store.dump().into_keys().filter(|k| k.starts_with("auth:session-collect:")).count();
    assert_eq!(claims, 1, "the collections' claims of past windows are collected too");
    assert_signed_in(&world.status(&fresh), "the fresh session");
}

/// A sign-out mark guards its session against a record a refresh writes back late: it is removed
/// only once that session has ended (an hour after, for clocks apart), when any record it guards is
/// refused for having ended anyway.
#[test]
fn a_sign_out_mark_is_never_collected_while_its_session_could_be_live() {
    let world = World::new();
    let early = world.signed_in();
    let early_record = session::read(&world.store, &early).unwrap().unwrap();
    world.sign_out(&early);
    world.at(11 * HOUR);
    let late = world.signed_in();
    let late_record = session::read(&world.store, &late).unwrap().unwrap();
    world.sign_out(&late);
    // A mark set before marks carried their session's end.
    let legacy = world.signed_in();
    let legacy_record = session::read(&world.store, &legacy).unwrap().unwrap();
    world.sign_out(&legacy);
    world.store.set(&crate::store::console_signed_out(&legacy), b"1").unwrap();
    let mark = |id: &str| has(&world, &crate::store::console_signed_out(id));
    let record = |id: &str| has(&world, &crate::store::console_session(id));

    // The early session has ended, within the margin: its mark stays.
    world.at(MAX_SESSION_SECS + HOUR / 2);
    world.signed_in();
    assert!(mark(&early) && mark(&late) && mark(&legacy));

    world.at(MAX_SESSION_SECS + HOUR + 1);
    world.signed_in();
    assert!(!mark(&early), "the early session ended over an hour ago");
    assert!(mark(&late), "the late one could still be live for 10 hours");
    assert!(mark(&legacy), "a mark without its session's end is given a late enough one");
    // Refreshes' records written back late: no session either way.
    for (id, written) in [(&early, &early_record), (&late, &late_record), (&legacy, &legacy_record)] {
        session::write(&world.store, id, written).unwrap();
        assert!(
            world.caller(id, &http::Method::GET, &[]).is_err(),
            "a signed-out session came back: {:?}",
            world.caller(id, &http::Method::GET, &[])
        );
        assert_eq!(world.status(id).json()["session"], Value::Null);
    }

    // An hour after the late session's end, and after the end given to the legacy mark.
    world.at(11 * HOUR + MAX_SESSION_SECS + HOUR + 1);
    session::write(&world.store, &late, &late_record).unwrap();
    session::write(&world.store, &legacy, &legacy_record).unwrap();
    world.signed_in();
    assert!(!mark(&late) && !record(&late), "collected, the record written back too");
    assert!(mark(&legacy), "its end was set at the collection that met it: {} s on", MAX_SESSION_SECS);
    assert!(!record(&legacy), "a signed-out session's record is collected while its mark stays");
    world.at(2 * (MAX_SESSION_SECS + HOUR) + 2);
    world.signed_in();
    assert!(!mark(&legacy));
}

/// The collection lists the whole store (`get_keys` scans it on every Spin backend): it runs at
/// most once per hour, at the first sign-in of the hour across nodes.
#[test]
fn the_collection_runs_at_most_once_per_hour() {
    let world = World::new();
    world.signed_in();
    assert_eq!(world.store.listings(), 1, "the first sign-in of the hour collects");
    world.signed_in();
    world.at(HOUR - 1);
    world.signed_in();
    assert_eq!(world.store.listings(), 1, "not again within the hour");
    let session_id = world.signed_in();
    world.at(HOUR - 1 + ACCESS_TTL);
    world.status(&session_id);
    world.sign_out(&session_id);
    assert_eq!(world.store.listings(), 1, "nor on other routes");
    world.at(HOUR);
    world.signed_in();
    world.signed_in();
    assert_eq!(world.store.listings(), 2, "the next hour's first sign-in");
}

/// A fault of ours during a refresh (here the keyring cannot be had: a configuration mistake) is a
/// 500, and the session stays for when it is mended; only the provider refusing ends a session.
#[test]
fn an_internal_error_during_a_refresh_does_not_end_the_session() {
    let mut world = World::new();
    let (session_id, cookie) = world.signed_in_with_cookie();
    world.at(ACCESS_TTL - REFRESH_MARGIN_SECS + 1);
    world.keyring = Err(Internal::Config("encryption_keys").into());
    let status = world.call("GET", SESSION, &[("cookie", &cookie)]);
    assert_eq!(status.status, 500, "{}", status.body);
    assert!(session::read(&world.store, &session_id).unwrap().is_some(), "the session is kept");
    world.keyring = Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    assert_eq!(world.call("GET", SESSION, &[("cookie", &cookie)]).json()["session"]["tenant"], "acme");
    assert_eq!(world.provider.grants.lock().unwrap().last().map(String::as_str), Some("refresh_token"));
}
