//! The console's sign-in with OpenID Connect, run by the server as a backend-for-frontend
//! (draft-ietf-oauth-browser-based-apps, RFC 9700): the authorization code flow with PKCE (S256),
//! `state` and `nonce`; the code is exchanged here, the ID token verified here, and the provider's
//! tokens kept here, sealed in the store (`identity::session`). The browser gets the `__Host-`
//! session cookie and nothing else: no token, no code verifier, no refresh token.
//!
//! Routes (the `session` component; Spin routes `/auth/...` to it):
//! - `GET /auth/login`: a new login (state, nonce, PKCE verifier kept in one of
//!   [`crate::store::LOGIN_SLOTS`] slots, sealed), then 302 to the provider's authorization endpoint;
//!   the login cookie ties the callback to this browser.
//! - `GET /auth/callback`: the provider's answer. The `state` must be the login cookie's, name a
//!   login in progress younger than [`LOGIN_TTL_SECS`], and be served once (the slot's counter must
//!   move by exactly one: a replay finds it moved on); then the code is exchanged with the verifier,
//!   the ID token is verified (issuer, audience = client id, nonce, signature through the issuer's
//!   key cache, times), the access token is verified as every API caller's is (it gives the tenant
//!   and scopes), and a session is made. Audited as `console.signin`, refusals too.
//! - `GET /auth/session`: what the console shows (tenant, scopes, expiry; which sign-in ways are
//!   offered); refreshes the session's access token server-side when it expires within
//!   [`REFRESH_MARGIN_SECS`] or the keys that verified it are no longer fresh, one refresh of a
//!   session at a time across tabs and nodes (`SignIn::renewed` says how, and why that is safe).
//! - `POST /auth/logout` (anti-CSRF checked): the session is signed out here (`session::sign_out`:
//!   marked, then its record deleted; a refresh under way cannot bring it back), and the answer names the
//!   provider's `end_session_endpoint` (RP-initiated logout, with `client_id` and
//!   `post_logout_redirect_uri`; no `id_token_hint`, so no token reaches the browser) when it has one.
//!   Audited as `console.signout`.
//!
//! Nothing here logs or answers a token, a code or a verifier: refusals are logged by kind
//! ([`SignInFailure`]), and the callback's query is never quoted.

use base64::Engine;
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::audit::{Action, Trail};
use crate::clock::{rfc3339, Clock};
use crate::crypto::{BindingContext, Keyring, Sealed};
use crate::error::{AuthFailure, Error, Internal, SignInFailure};
use crate::http::{finish, Outcome, Reply, Request, RequestId};
use crate::identity::discovery::{
    discovery_url, fetchable, freshness, Discovery, Issuer, MAX_DOCUMENT_BYTES, POLLS, POLL_INTERVAL,
};
use crate::identity::session::{
    self, Record, Tokens, CSRF_HEADER, LOGIN_COOKIE, MAX_SESSION_SECS, REFRESH_WINDOW_MS, SESSION_COOKIE,
};
use crate::identity::{verify_id_token, verify_with, AuthSettings};
use crate::lease;
use crate::net::{Outgoing, Sender};
use crate::store::{
    console_login, console_login_counter, console_login_slot, console_refresh_claim, digest_of, provider_metadata,
    KeyValue,
};

pub const LOGIN: &str = "/auth/login";
pub const CALLBACK: &str = "/auth/callback";
pub const SESSION: &str = "/auth/session";
pub const LOGOUT: &str = "/auth/logout";
/// A login's callback must come within this.
pub const LOGIN_TTL_SECS: u64 = 600;
/// The access token is refreshed when it expires within this.
pub const REFRESH_MARGIN_SECS: u64 = 120;
/// How soon to retry when the provider could not be reached.
const PROVIDER_RETRY_SECS: u64 = 5;

/// The `console_oidc_*` variables and `console_token_paste`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInSettings {
    /// The provider, one of the issuers whose tokens the API accepts (`auth_issuer`, `auth_issuers`).
    pub issuer: String,
    pub client_id: String,
    /// Empty: a public client (PKCE only); else `client_secret_basic`.
    pub client_secret: String,
    /// The callback as registered with the provider: `https://<console host>/auth/callback`.
    pub redirect_uri: String,
    /// The scopes asked for (space-separated).
    pub scopes: String,
    /// An RFC 8707 `resource` to ask access tokens for (empty: none).
    pub resource: String,
    /// Whether the console offers pasting a token.
    pub paste: bool,
}

impl SignInSettings {
    pub const DEFAULT_SCOPES: &'static str = "openid offline_access";
}

struct Configured {
    issuer: Issuer,
    redirect: Url,
    /// The console's origin: the redirect URI's.
    origin: String,
}

impl SignInSettings {
    fn configured(&self, auth: &AuthSettings) -> Result<Configured, Error> {
        let not_configured = || Error::SignInRefused(SignInFailure::NotConfigured);
        if self.issuer.is_empty() || self.client_id.is_empty() || self.redirect_uri.is_empty() {
            return Err(not_configured());
        }
        let issuer = auth
            .issuers()
            .map_err(|_| not_configured())?
            .into_iter()
            .find(|i| i.issuer == self.issuer)
            .ok_or_else(not_configured)?;
        let redirect = Url::parse(&self.redirect_uri).map_err(|_| not_configured())?;
        if !fetchable(&redirect) || redirect.path() != CALLBACK || redirect.query().is_some() {
            return Err(not_configured());
        }
        let origin = redirect.origin().ascii_serialization();
        Ok(Configured { issuer, redirect, origin })
    }
}

/// What the sign-in needs from its component.
pub struct SignIn<'a> {
    pub store: &'a dyn KeyValue,
    pub keyring: &'a Result<Keyring, Error>,
    /// The way to the provider (discovery document, token endpoint, keys).
    pub sender: &'a dyn Sender,
    pub clock: &'a dyn Clock,
    pub auth: &'a AuthSettings,
    pub settings: &'a SignInSettings,
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredMetadata {
    #[serde(rename = "m")]
    metadata: Metadata,
    #[serde(rename = "u")]
    fresh_until: u64,
}

/// A login in progress, as stored in its slot.
#[derive(Debug, Serialize, Deserialize)]
struct Login {
    /// SHA-256 of its `state`.
    #[serde(rename = "s")]
    state: String,
    /// The slot counter's value this login took.
    #[serde(rename = "e")]
    epoch: i64,
    #[serde(rename = "t")]
    created_at: u64,
    /// [`LoginSecrets`], sealed, bound to the state's digest.
    #[serde(rename = "x")]
    secrets: Sealed,
}

#[derive(Serialize, Deserialize)]
struct LoginSecrets {
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    verifier: String,
}

/// The token endpoint's answer (RFC 6749 section 5.1, OpenID Connect Core section 3.1.3.3).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

const LOGIN_BINDING_TENANT: &str = "console-login";

fn refused(why: SignInFailure) -> Error {
    Error::SignInRefused(why)
}

fn unavailable(why: &str) -> Error {
    Error::IdentityProviderUnavailable { retry_after_secs: PROVIDER_RETRY_SECS, why: why.to_owned() }
}

/// Whether a session's record is to be refreshed: its access token expires within
/// [`REFRESH_MARGIN_SECS`], or the keys that verified it are no longer fresh by then.
fn due(record: &Record, now: u64) -> bool {
    let keys_stale = record.keys_fresh_until.is_some_and(|until| now + REFRESH_MARGIN_SECS >= until);
    now + REFRESH_MARGIN_SECS >= record.expires_at || keys_stale
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `code_challenge` of a verifier (RFC 7636 section 4.2, S256).
pub fn code_challenge(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(name: &str, value: &str, max_age: u64, same_site: &str) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite={same_site}")
}

fn cleared(name: &str, same_site: &str) -> String {
    cookie(name, "", 0, same_site)
}

impl SignIn<'_> {
    fn now(&self) -> u64 {
        self.clock.now_ms() / 1000
    }

    fn keyring(&self) -> Result<&Keyring, Error> {
        self.keyring.as_ref().map_err(Clone::clone)
    }

    fn discovery(&self) -> Discovery<'_> {
        Discovery { store: self.store, sender: self.sender, clock: self.clock, stale_secs: self.auth.keys_stale_secs }
    }

    /// The provider's endpoints: from the store while fresh, else from its discovery document
    /// (whose `issuer` must be the configured one, and whose endpoints must be https, or http on
    /// loopback); a stale copy serves while the provider does not answer.
    fn metadata(&self, issuer: &str) -> Result<Metadata, Error> {
        let now = self.now();
        let key = provider_metadata(issuer);
        let stored: Option<StoredMetadata> =
            self.store.get(&key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(stored) = stored.as_ref().filter(|s| now < s.fresh_until && s.metadata.issuer == issuer) {
            return Ok(stored.metadata.clone());
        }
        match self.fetch_metadata(issuer) {
            Ok((metadata, max_age)) => {
                let fresh = StoredMetadata { metadata: metadata.clone(), fresh_until: now + max_age };
                // Best effort: the next login reads the document again.
                let _ = self.store.set(&key, &serde_json::to_vec(&fresh).expect("metadata serializes"));
                Ok(metadata)
            }
            Err(why) => {
                stored.filter(|s| s.metadata.issuer == issuer).map(|s| s.metadata).ok_or_else(|| unavailable(why))
            }
        }
    }

    fn fetch_metadata(&self, issuer: &str) -> Result<(Metadata, u64), &'static str> {
        let url = discovery_url(issuer).map_err(|_| "issuer is not a URL")?;
        let request = Outgoing {
            method: "GET",
            url,
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
        };
        let answer = self.sender.send(&request).map_err(|_| "discovery document unreachable")?;
        if answer.status != 200 || answer.body.len() >= MAX_DOCUMENT_BYTES {
            return Err("discovery document answered other than 200, or too large");
        }
        let metadata: Metadata = serde_json::from_slice(&answer.body).map_err(|_| "discovery document unreadable")?;
        if metadata.issuer != issuer {
            return Err("discovery document names another issuer");
        }
        let usable = |u: &str| Url::parse(u).is_ok_and(|u| fetchable(&u));
        if !usable(&metadata.authorization_endpoint)
            || !usable(&metadata.token_endpoint)
            || metadata.end_session_endpoint.as_deref().is_some_and(|u| !usable(u))
        {
            return Err("discovery document's endpoints are not https");
        }
        Ok((metadata, freshness(answer.header("cache-control"))))
    }

    /// A token request (code or refresh token) with the client's authentication.
    fn token_request(&self, token_endpoint: &str, pairs: &[(&str, &str)]) -> Result<TokenAnswer, Error> {
        let url = Url::parse(token_endpoint).map_err(|_| unavailable("token endpoint is not a URL"))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            form.append_pair(name, value);
        }
        let settings = self.settings;
        if settings.client_secret.is_empty() {
            form.append_pair("client_id", &settings.client_id);
        }
        let mut request = Outgoing::post(url, "application/x-www-form-urlencoded", form.finish().into_bytes());
        request.headers.push(("accept".into(), "application/json".into()));
        if !settings.client_secret.is_empty() {
            // RFC 6749 section 2.3.1: each part form-encoded, then Basic.
            let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(&settings.client_id), encode(&settings.client_secret));
            request.headers.push((
                "authorization".into(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)),
            ));
        }
        let answer = self.sender.send(&request).map_err(|_| unavailable("token endpoint unreachable"))?;
        // An overloaded or restarting provider (5xx, 429) has not refused anything: the session
        // keeps its still valid token and the refresh is tried again (RFC 6749 section 5.2 names
        // what a refusal is: a 400 or 401 with an `error`).
        if answer.status >= 500 || answer.status == 429 {
            return Err(unavailable("token endpoint answered an error of its own"));
        }
        if answer.status != 200 {
            return Err(refused(SignInFailure::ExchangeRefused(answer.status)));
        }
        serde_json::from_slice(&answer.body).map_err(|_| refused(SignInFailure::UnusableTokens))
    }

    fn login(&self) -> Result<Reply, Error> {
        let configured = self.settings.configured(self.auth)?;
        let keyring = self.keyring()?;
        let metadata = self.metadata(&configured.issuer.issuer)?;
        let (state, nonce, verifier) = (session::random_token()?, session::random_token()?, session::random_token()?);
        let slot = console_login_slot(&state);
        let epoch = self.store.increment(&console_login_counter(slot), 1)?;
        let state_digest = digest_of("state", &state);
        let plain = serde_json::to_vec(&LoginSecrets { nonce: nonce.clone(), verifier: verifier.clone() })
            .map_err(|_| Internal::Platform("login serializes"))?;
        let secrets = keyring.seal(&BindingContext { tenant: LOGIN_BINDING_TENANT, name: &state_digest }, &plain)?;
        let login = Login { state: state_digest, epoch, created_at: self.now(), secrets };
        self.store.set(&console_login(slot), &serde_json::to_vec(&login).expect("logins serialize"))?;

        let mut location = Url::parse(&metadata.authorization_endpoint)
            .map_err(|_| unavailable("authorization endpoint is not a URL"))?;
        {
            let mut query = location.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", configured.redirect.as_str())
                .append_pair("scope", &self.scopes())
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &code_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if !self.settings.resource.is_empty() {
                query.append_pair("resource", &self.settings.resource);
            }
        }
        Ok(Reply { status: 302, headers: Vec::new(), body: Vec::new() }
            .with_header(LOCATION, location.to_string())
            // Lax, not Strict: the callback is a top-level navigation coming from the provider's site.
            .with_header(SET_COOKIE, cookie(LOGIN_COOKIE, &state, LOGIN_TTL_SECS, "Lax"))
            .with_header(CACHE_CONTROL, "no-store"))
    }

    fn scopes(&self) -> String {
        let scopes = self.settings.scopes.trim();
        let scopes = if scopes.is_empty() { SignInSettings::DEFAULT_SCOPES } else { scopes };
        if scopes.split_ascii_whitespace().any(|s| s == "openid") {
            scopes.to_owned()
        } else {
            format!("openid {scopes}")
        }
    }

    fn callback(&self, request: &Request, trail: &mut Trail) -> Result<Reply, Error> {
        let configured = self.settings.configured(self.auth)?;
        let keyring = self.keyring()?;
        let now = self.now();
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
        let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if param("error").is_some() {
            return Err(refused(SignInFailure::ProviderError));
        }
        let state = param("state").ok_or(refused(SignInFailure::StateMismatch))?;
        let bound = session::cookie(request.headers(), LOGIN_COOKIE).ok_or(refused(SignInFailure::StateMismatch))?;
        if !same(state, bound) {
            return Err(refused(SignInFailure::StateMismatch));
        }
        let slot = console_login_slot(state);
        let state_digest = digest_of("state", state);
        let login: Login = self
            .store
            .get(&console_login(slot))?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|login: &Login| same(&login.state, &state_digest))
            .ok_or(refused(SignInFailure::StateUnknown))?;
        if now > login.created_at.saturating_add(LOGIN_TTL_SECS) {
            return Err(refused(SignInFailure::Expired));
        }
        // Served once: the slot's counter moves by one per login and one per callback, so only the
        // first callback of the latest login of the slot finds it one past the login's value.
        if self.store.increment(&console_login_counter(slot), 1)? != login.epoch + 1 {
            return Err(refused(SignInFailure::Replayed));
        }
        // The slot's record is left for the next login to overwrite: deleting it here could delete
        // a later login that took the slot since the read above (the store has no compare-and-
        // delete), and it is already spent (the counter refuses its replay; the code it was for is
        // being exchanged, and a verifier is worthless after that).
        let plain =
            keyring.open(&BindingContext { tenant: LOGIN_BINDING_TENANT, name: &state_digest }, &login.secrets)?;
        let secrets: LoginSecrets = serde_json::from_slice(&plain).map_err(|_| Internal::CorruptRecord)?;
        let code = param("code").filter(|c| !c.is_empty()).ok_or(refused(SignInFailure::MissingCode))?;

        let metadata = self.metadata(&configured.issuer.issuer)?;
        let answer = self.token_request(
            &metadata.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", configured.redirect.as_str()),
                ("code_verifier", &secrets.verifier),
            ],
        )?;
        let id_token = answer.id_token.as_deref().ok_or(refused(SignInFailure::UnusableTokens))?;
        let discovery = self.discovery();
        let subject = verify_id_token(
            id_token,
            &configured.issuer,
            &self.settings.client_id,
            &secrets.nonce,
            Some(&discovery),
            now,
        )
        .map_err(|e| match e {
            Error::Unauthenticated(why) => refused(SignInFailure::IdToken(why)),
            other => other,
        })?;
        let verified = verify_with(Some(&format!("Bearer {}", answer.access_token)), self.auth, Some(&discovery), now)
            .map_err(|e| match e {
                Error::Unauthenticated(why) => refused(SignInFailure::AccessToken(why)),
                other => other,
            })?;
        trail.caller(&verified.principal);
        if verified.principal.subject.as_deref().is_some_and(|s| s != subject) {
            return Err(refused(SignInFailure::SubjectMismatch));
        }
        let session_id = session::new_id()?;
        let tokens = Tokens { access_token: answer.access_token, refresh_token: answer.refresh_token };
        let record = Record::new(keyring, &session_id, &verified, &tokens, now + MAX_SESSION_SECS, &configured.origin)?;
        session::write(self.store, &session_id, &record)?;
        // The keys of ended sessions, at most once an hour (a sign-in is rare, a listing costly).
        // Best effort: a collection that fails leaves them to a later hour's.
        let _ = session::collect(self.store, now);
        Ok(Reply { status: 303, headers: Vec::new(), body: Vec::new() }
            .with_header(LOCATION, format!("{}/", configured.origin))
            .with_header(SET_COOKIE, cookie(SESSION_COOKIE, &session_id, MAX_SESSION_SECS, "Strict"))
            .with_header(SET_COOKIE, cleared(LOGIN_COOKIE, "Lax"))
            .with_header(CACHE_CONTROL, "no-store"))
    }

    /// A session's record with a newly verified access token: the same one while it is not about
    /// to expire (its keys were no longer fresh), else one from the refresh token.
    fn refresh(&self, session_id: &str, record: &Record) -> Result<Record, Error> {
        let now = self.now();
        let keyring = self.keyring()?;
        let tokens = record.tokens(keyring, session_id)?;
        let (access_token, refresh_token) = if now + REFRESH_MARGIN_SECS < record.expires_at {
            (tokens.access_token, tokens.refresh_token)
        } else {
            let expired = Error::Unauthenticated(AuthFailure::SessionExpired);
            let refresh_token = tokens.refresh_token.ok_or(expired.clone())?;
            let configured = self.settings.configured(self.auth).map_err(|_| expired)?;
            let metadata = self.metadata(&configured.issuer.issuer)?;
            let answer = self.token_request(
                &metadata.token_endpoint,
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
            )?;
            // A provider that does not rotate refresh tokens answers none: the old one stays good.
            (answer.access_token, answer.refresh_token.or(Some(refresh_token)))
        };
        let discovery = self.discovery();
        let verified = verify_with(Some(&format!("Bearer {access_token}")), self.auth, Some(&discovery), now)?;
        if verified.principal.tenant.as_str() != record.tenant {
            // A session stays in its tenant.
            return Err(Error::Unauthenticated(AuthFailure::InvalidTenant));
        }
        let tokens = Tokens { access_token, refresh_token };
        let renewed = Record::new(keyring, session_id, &verified, &tokens, record.ends_at, &record.origin)?;
        // A refresher paused past its lease may come back after a later refresh wrote: the later
        // record stays (its refresh token is the one the provider handed out last). And a session
        // gone meanwhile (signed out, ended, its refresh refused elsewhere) is not brought back.
        match session::read(self.store, session_id)? {
            None => return Err(Error::Unauthenticated(AuthFailure::NoSession)),
            Some(stored) if stored.expires_at > renewed.expires_at => return Ok(stored),
            Some(_) => {}
        }
        session::write(self.store, session_id, &renewed)?;
        // A sign-out may have come while the provider was asked (`session::sign_out`): it is never
        // undone, because every reader checks its mark; here the record written back is removed.
        if session::signed_out(self.store, session_id)? {
            session::delete(self.store, session_id)?;
            return Err(Error::Unauthenticated(AuthFailure::NoSession));
        }
        Ok(renewed)
    }

    /// The session's record once refreshed, by this request or another (`None`: the session is
    /// over: signed out, or its refresh refused). `record` is the record as read, due for refresh.
    ///
    /// At most one refresh of a session runs at a time, across tabs and nodes: a refresh holds the
    /// session's [`lease`] (`store::console_refresh_claim`, windows of [`REFRESH_WINDOW_MS`], longer
    /// than a refresh takes: the discovery document, the token endpoint and a key fetch are each
    /// bounded by the platform's 5 s). It has to be: providers that rotate refresh tokens (panva's
    /// oidc-provider, Auth0, Okta) refuse a spent one, and some then revoke every token issued
    /// from it, so the second of two refreshes at once would end the session of anyone with two
    /// tabs open.
    /// - The holder reads the record again under the lease (a refresher before it may have written,
    ///   and spent the refresh token of the first read) and refreshes only if that one is still
    ///   due. It releases the lease when done, so that the next refresh need not wait; but not after
    ///   a failed store call, which may still take effect (its record written late): the lease then
    ///   lapses with its windows.
    /// - A request that finds the lease held does not ask the provider: while the session's access
    ///   token is live it answers the record as it is; otherwise it re-reads the record (bounded,
    ///   [`POLLS`] times [`POLL_INTERVAL`]) until the holder's write shows, else answers 503 with
    ///   `Retry-After`. It never ends the session.
    /// - A refused refresh reads the record again before ending the session: one whose `expires_at`
    ///   is later than the record it refreshed from was written by another refresh (this one was
    ///   paused past its lease, see below), and is answered instead.
    ///
    /// Why that is safe with no compare-and-swap, whatever the timing: no session outlives its
    /// sign-out or its end, or changes tenant, whatever pauses; timing decides only how soon a
    /// refresh happens, and whether a paused request (or nodes' clocks apart by more than a window)
    /// costs the user a new sign-in.
    /// - no two requests hold the lease at once (`lease`). An `increment` of the claim that failed
    ///   and took effect later, like a holder that died, holds windows nobody uses: the session's
    ///   refreshes wait until those (two at most) have passed, answering from the record or 503
    ///   meanwhile; the keys left are removed by the collection of ended sessions
    ///   (`session::collect`).
    /// - a refresher paused past its lease comes back to a record another may have refreshed. If it
    ///   had not yet reached the provider, it presents a refresh token that may be spent: refused,
    ///   it finds the later record and answers that. (A provider that revokes the whole family on
    ///   reuse, as Auth0 does, revokes the later refresh token too: the session keeps serving its
    ///   access token and ends at its next refresh. No lease keeps a paused request from reaching
    ///   the provider late.) If it had, it writes its record only when the stored one is not later
    ///   (`refresh`); a pause between that read and its write, or a write that lands late, can
    ///   still put back a refresh token spent since, and the next refresh, refused and finding no
    ///   later record, ends the session: the user signs in again. Never more than that.
    /// - nothing here undoes a sign-out: a refresher checks the mark after its write (`refresh`),
    ///   and every read checks it (`session::read`).
    fn renewed(&self, session_id: &str, record: Record) -> Result<Option<Record>, Error> {
        let store = self.store;
        let now = self.now();
        let claim = |window| console_refresh_claim(session_id, window);
        let Some(lease) = lease::take(store, claim, self.clock.now_ms(), REFRESH_WINDOW_MS)? else {
            return self.refreshed_elsewhere(session_id, record);
        };
        // Best effort: a lease not released lapses with its windows.
        let release = |lease: lease::Lease| {
            let _ = lease.release(store);
        };
        let Some(current) = session::read(store, session_id)? else {
            release(lease);
            return Ok(None);
        };
        if !due(&current, now) {
            release(lease);
            return Ok(Some(current));
        }
        match self.refresh(session_id, &current) {
            Ok(renewed) => {
                release(lease);
                Ok(Some(renewed))
            }
            // The provider is down: the token keeps serving while it is good.
            Err(Error::IdentityProviderUnavailable { .. }) => {
                release(lease);
                if current.live(now) {
                    Ok(Some(current))
                } else {
                    Err(unavailable("the session could not be refreshed"))
                }
            }
            Err(Error::StoreUnavailable(_)) => Err(unavailable("the session could not be refreshed")),
            // A fault of ours (the keyring missing or unable to open the tokens, say) is not the
            // provider refusing: answered 500 and logged, the session kept for when it is mended.
            Err(error @ Error::Internal(_)) => {
                release(lease);
                Err(error)
            }
            Err(_) => {
                release(lease);
                match session::read(store, session_id)? {
                    Some(later) if later.expires_at > current.expires_at => Ok(Some(later)),
                    _ => {
                        session::delete(store, session_id)?;
                        Ok(None)
                    }
                }
            }
        }
    }

    /// [`SignIn::renewed`] when another request holds the session's refresh lease.
    fn refreshed_elsewhere(&self, session_id: &str, record: Record) -> Result<Option<Record>, Error> {
        if record.live(self.now()) {
            return Ok(Some(record));
        }
        for _ in 0..POLLS {
            self.clock.sleep(POLL_INTERVAL);
            let Some(latest) = session::read(self.store, session_id)? else { return Ok(None) };
            if latest.expires_at > record.expires_at || !due(&latest, self.now()) {
                return Ok(Some(latest));
            }
        }
        Err(Error::IdentityProviderUnavailable {
            retry_after_secs: PROVIDER_RETRY_SECS,
            why: "the session is being refreshed by another request".to_owned(),
        })
    }

    fn status(&self, request: &Request) -> Result<Reply, Error> {
        let now = self.now();
        let offered = json!({
            "oidc": self.settings.configured(self.auth).is_ok(),
            "paste": self.settings.paste,
        });
        let signed_out = |clear: bool| {
            let reply =
                Reply::json(200, &json!({"signIn": offered, "session": null})).with_header(CACHE_CONTROL, "no-store");
            if clear {
                reply.with_header(SET_COOKIE, cleared(SESSION_COOKIE, "Strict"))
            } else {
                reply
            }
        };
        let Some(session_id) = session::cookie(request.headers(), SESSION_COOKIE) else { return Ok(signed_out(false)) };
        let Some(record) = session::read(self.store, session_id)? else { return Ok(signed_out(true)) };
        if record.ended(now) {
            session::delete(self.store, session_id)?;
            return Ok(signed_out(true));
        }
        let record = if due(&record, now) {
            match self.renewed(session_id, record)? {
                Some(renewed) => renewed,
                None => return Ok(signed_out(true)),
            }
        } else {
            record
        };
        let principal = record.principal().map_err(Error::Unauthenticated)?;
        let body = json!({
            "signIn": offered,
            "session": {
                "tenant": principal.tenant.as_str(),
                "subject": principal.subject,
                "scopes": record.scopes,
                "expiresAt": rfc3339(record.expires_at * 1000),
                "endsAt": rfc3339(record.ends_at * 1000),
            },
        });
        Ok(Reply::json(200, &body).with_header(CACHE_CONTROL, "no-store"))
    }

    fn logout(&self, request: &Request, trail: &mut Trail) -> Result<Reply, Error> {
        let check = session::Request { method: request.method(), headers: request.headers() };
        let configured = self.settings.configured(self.auth).ok();
        if let Some(session_id) = session::cookie(request.headers(), SESSION_COOKIE) {
            if let Some(record) = session::read(self.store, session_id)? {
                if !session::csrf_ok(&check, &record.origin) {
                    return Err(Error::Unauthenticated(AuthFailure::CsrfCheckFailed));
                }
                if let Ok(principal) = record.principal() {
                    trail.caller(&principal);
                }
                session::sign_out(self.store, session_id, record.ends_at)?;
            } else if !session::csrf_ok(&check, configured.as_ref().map_or("", |c| c.origin.as_str())) {
                return Err(Error::Unauthenticated(AuthFailure::CsrfCheckFailed));
            }
        } else {
            return Err(Error::Unauthenticated(AuthFailure::NoSession));
        }
        let location = configured
            .and_then(|configured| {
                let metadata = self.metadata(&configured.issuer.issuer).ok()?;
                let mut end = Url::parse(metadata.end_session_endpoint.as_deref()?).ok()?;
                end.query_pairs_mut()
                    .append_pair("client_id", &self.settings.client_id)
                    .append_pair("post_logout_redirect_uri", &format!("{}/", configured.origin));
                Some(end.to_string())
            })
            .unwrap_or_else(|| "/".to_owned());
        Ok(Reply::json(200, &json!({ "location": location }))
            .with_header(SET_COOKIE, cleared(SESSION_COOKIE, "Strict"))
            .with_header(CACHE_CONTROL, "no-store"))
    }
}

/// Serves the sign-in routes (module documentation).
pub fn handle(ctx: &SignIn<'_>, request: &Request) -> Outcome {
    let id = RequestId::of(request.headers());
    let path = request.uri().path();
    let mut trail = Trail::default();
    let method = request.method();
    let result = match path {
        LOGIN | CALLBACK | SESSION if method != Method::GET => Err(Error::MethodNotAllowed { allow: "GET" }),
        LOGOUT if method != Method::POST => Err(Error::MethodNotAllowed { allow: "POST" }),
        LOGIN => ctx.login(),
        CALLBACK => {
            trail = Trail::for_action(Action::ConsoleSignIn);
            ctx.callback(request, &mut trail)
        }
        SESSION => ctx.status(request),
        LOGOUT => {
            trail = Trail::for_action(Action::ConsoleSignOut);
            ctx.logout(request, &mut trail)
        }
        _ => Err(Error::RouteNotFound),
    };
    let mut outcome = finish(result, &id, path);
    outcome.audit = trail.finish(&id, outcome.response.status().as_u16(), ctx.clock.now_ms());
    outcome
}

/// The header the console sets on its calls (re-exported for the console's tests).
pub const CONSOLE_CSRF_HEADER: &str = CSRF_HEADER;

#[cfg(test)]
#[path = "signin_tests.rs"]
mod tests;
