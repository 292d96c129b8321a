//! Console sessions: the API's second way to name a caller, beside the bearer token. The console
//! signs in with OpenID Connect as a backend-for-frontend (`signin`): the provider's tokens stay in
//! the store, sealed with the keyring, under a random session id; the browser holds only that id,
//! in the `__Host-` cookie [`SESSION_COOKIE`] (HttpOnly, Secure, SameSite=Strict, Path=/).
//!
//! A session's record keeps what verifying its access token concluded, exactly as the verified-token
//! cache does for a bearer token: the [`Principal`] (tenant and scopes from the provider's access
//! token, through [`super::verify_with`], the same path as every API caller's), the token's own
//! validity bounds and, for a discovered key, until when the key set that verified it is fresh.
//! The API components read that (one `get`) and need no keyring; past those bounds the session
//! answers 401 until `signin` has refreshed it (`GET /auth/session`, which the console calls on a
//! timer and after a 401).
//!
//! Cross-site request forgery: a state-changing call (any method but GET and HEAD) on a session
//! cookie must carry the header [`CSRF_HEADER`], and when the browser says where it comes from
//! (`Origin`, `Sec-Fetch-Site`), that must be the console's own origin. Why that is enough:
//! the cookie is SameSite=Strict, so no other site's page makes the browser send it; a sibling
//! origin of the same site (which SameSite does not tell apart) cannot add a custom header to a
//! cross-origin request without a CORS preflight, which this service never grants, and an HTML
//! form cannot add one at all; and browsers send `Origin` on every cross-origin and every
//! non-GET request, which must then name the origin the session was made on. A call that fails
//! the check is treated as one without credentials (401 `CsrfCheckFailed`, logged).
//!
//! Collection: the store has no expiry (and Fermyon Cloud holds 1,024 keys per store), so the keys
//! of ended sessions are removed by [`collect`], which a successful sign-in runs at most once per
//! [`COLLECTION_WINDOW_SECS`] across nodes. It lists the store's keys and removes, among the
//! sessions' ([`crate::store::console_key`]): a record whose `ends_at` is
//! [`COLLECTION_MARGIN_SECS`] past, that cannot be read, or whose session is signed out; a
//! sign-out mark whose value, its session's `ends_at`, is that far past; a refresh lease's counter
//! whose windows are; the collections' own past counters. Why removing a mark is safe: its value is
//! the `ends_at` of the record it was set for, which is every record of that session's (fixed at
//! sign-in, kept by every refresh), so once it has passed, any record the mark guards, one a
//! refresh writes back later included, has ended, and every reader refuses it with the mark or
//! without ([`Record::live`]; `signin`'s status deletes it). The clock enters only as `ends_at`
//! does for every reader; the margin covers the collecting node's clock running up to an hour
//! ahead of a reader's. So time decides when a key is collected, never whether an ended or
//! signed-out session is refused. A mark from before marks carried their session's end (value
//! `1`) is given one that cannot be too early: now plus [`MAX_SESSION_SECS`], its session having
//! been signed in before now. Deleting a record is safe at any time: an ended or unreadable record
//! is no session, and a signed-out one stays signed out by its mark.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Principal, Scope, Scopes, Verified, TIME_TOLERANCE_SECS};
use crate::crypto::{BindingContext, Keyring, Sealed};
use crate::error::{AuthFailure, Error, Internal};
use crate::name::TenantId;
use crate::store::{
    console_collection_claim, console_key, console_session, console_signed_out, digest_of, ConsoleKey, KeyValue,
};

/// The session cookie: only the session id, 256 random bits in base64url.
pub const SESSION_COOKIE: &str = "__Host-regsecrets-session";
/// The cookie that ties a login's callback to the browser that started it: its `state`.
pub const LOGIN_COOKIE: &str = "__Host-regsecrets-login";
/// The header the console's `fetch` sets on every call made with the session cookie.
pub const CSRF_HEADER: &str = "x-regsecrets-csrf";
/// A session ends this long after sign-in at the latest, refreshed or not.
pub const MAX_SESSION_SECS: u64 = 12 * 3600;
/// A refresh of a session holds the session's lease (`crate::lease`) for windows this long
/// (`signin`): longer than a refresh takes.
pub const REFRESH_WINDOW_MS: u64 = 30_000;
/// The keys of a session are collected this long after its end ([`collect`]): a margin for
/// clocks apart.
pub const COLLECTION_MARGIN_SECS: u64 = 3600;
/// At most one collection per window this long ([`collect`]).
pub const COLLECTION_WINDOW_SECS: u64 = 3600;
/// Longest session id accepted from a cookie (43 characters are made).
const MAX_SESSION_ID_LENGTH: usize = 64;

/// The provider's tokens, sealed in the record: never answered, never logged.
#[derive(Serialize, Deserialize)]
pub struct Tokens {
    #[serde(rename = "a")]
    pub access_token: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("refresh_token", &self.refresh_token.is_some()).finish_non_exhaustive()
    }
}

/// A session as stored (`store::console_session`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "s")]
    pub scopes: Vec<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The access token's `exp`.
    #[serde(rename = "e")]
    pub expires_at: u64,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub keys_fresh_until: Option<u64>,
    /// When the session ends whatever happens (Unix seconds).
    #[serde(rename = "z")]
    pub ends_at: u64,
    /// The console's origin (`scheme://host[:port]`): the only `Origin` its calls may come from.
    #[serde(rename = "o")]
    pub origin: String,
    /// [`Tokens`], sealed with the keyring, bound to the tenant and the session's digest.
    #[serde(rename = "x")]
    pub tokens: Sealed,
}

impl Record {
    /// A record for a freshly verified access token.
    pub fn new(
        keyring: &Keyring,
        session_id: &str,
        verified: &Verified,
        tokens: &Tokens,
        ends_at: u64,
        origin: &str,
    ) -> Result<Record, Error> {
        let principal = &verified.principal;
        let plain = serde_json::to_vec(tokens).map_err(|_| Internal::Platform("tokens serialize"))?;
        let sealed = keyring.seal(&binding(principal.tenant.as_str(), &digest(session_id)), &plain)?;
        Ok(Record {
            tenant: principal.tenant.as_str().to_owned(),
            scopes: principal.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            subject: principal.subject.clone(),
            client: principal.client.clone(),
            expires_at: verified.expires_at,
            not_before: verified.not_before,
            keys_fresh_until: verified.keys_fresh_until,
            ends_at,
            origin: origin.to_owned(),
            tokens: sealed,
        })
    }

    /// The provider's tokens (for refresh).
    pub fn tokens(&self, keyring: &Keyring, session_id: &str) -> Result<Tokens, Error> {
        let plain = keyring.open(&binding(&self.tenant, &digest(session_id)), &self.tokens)?;
        serde_json::from_slice(&plain).map_err(|_| Internal::CorruptRecord.into())
    }

    pub fn principal(&self) -> Result<Principal, AuthFailure> {
        let tenant = TenantId::parse(&self.tenant).map_err(|_| AuthFailure::InvalidTenant)?;
        let scopes = self.scopes.iter().filter_map(|s| Scope::from_claim_value(s)).collect::<Scopes>();
        Ok(Principal { tenant, scopes, subject: self.subject.clone(), client: self.client.clone() })
    }

    /// Whether the session has ended for good (refresh cannot help).
    pub fn ended(&self, now: u64) -> bool {
        now >= self.ends_at
    }

    /// Whether the access token it holds may be honoured now.
    pub fn live(&self, now: u64) -> bool {
        !self.ended(now)
            && now <= self.expires_at.saturating_add(TIME_TOLERANCE_SECS)
            && self.not_before.is_none_or(|nbf| now.saturating_add(TIME_TOLERANCE_SECS) >= nbf)
            && self.keys_fresh_until.is_none_or(|until| now < until)
    }
}

fn digest(session_id: &str) -> String {
    digest_of("session", session_id)
}

fn binding<'a>(tenant: &'a str, name: &'a str) -> BindingContext<'a> {
    BindingContext { tenant, name }
}

/// A new session id: 256 random bits, base64url.
pub fn new_id() -> Result<String, Error> {
    random_token()
}

/// 256 random bits in base64url without padding (43 characters): session ids, `state`, `nonce`,
/// PKCE verifiers.
pub fn random_token() -> Result<String, Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| Internal::Platform("no randomness"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The value of cookie `name` among the request's `Cookie` headers (RFC 6265 section 5.4), when it
/// looks like one of ours (base64url, bounded).
pub fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| {
            !value.is_empty()
                && value.len() <= MAX_SESSION_ID_LENGTH
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Reads a session's record (`None`: no such session, or one signed out).
///
/// Sign-out and refresh race without compare-and-swap: a refresh reads the record, asks the
/// provider (seconds), and writes the renewed record back with `set`, which may land after a
/// sign-out deleted it, or later still when that `set` failed and took effect anyway. So a
/// sign-out first sets the session's mark ([`console_signed_out`], never removed before the
/// record) and only then deletes the record, and a record is a session only while its mark is
/// absent, read after the record. Why that holds on any store whose keys are each linearizable,
/// at any timing: the mark is set before the sign-out answers and never deleted while a record may
/// exist, so every read that starts after the sign-out answered finds the mark, whatever record a
/// refresh wrote, when.
pub fn read<S: KeyValue + ?Sized>(store: &S, session_id: &str) -> Result<Option<Record>, Error> {
    let Some(bytes) = store.get(&console_session(session_id))? else { return Ok(None) };
    // An unreadable record is no session: the user signs in again.
    let Ok(record) = serde_json::from_slice(&bytes) else { return Ok(None) };
    if signed_out(store, session_id)? {
        return Ok(None);
    }
    Ok(Some(record))
}

/// Whether the session was signed out ([`read`]).
pub fn signed_out<S: KeyValue + ?Sized>(store: &S, session_id: &str) -> Result<bool, Error> {
    Ok(store.exists(&console_signed_out(session_id))?)
}

/// A sign-out mark's value: the end of the session it was set for ([`collect`]).
#[derive(Serialize, Deserialize)]
struct Mark {
    #[serde(rename = "z")]
    ends_at: u64,
}

fn mark(ends_at: u64) -> Vec<u8> {
    serde_json::to_vec(&Mark { ends_at }).expect("marks serialize")
}

/// Signs a session out for good: the mark, then the record ([`read`] says why in that order).
/// The mark takes the record's place in the store (one key either way) until it is collected,
/// an hour after `ends_at`, the session's end ([`collect`]).
pub fn sign_out<S: KeyValue + ?Sized>(store: &S, session_id: &str, ends_at: u64) -> Result<(), Error> {
    store.set(&console_signed_out(session_id), &mark(ends_at))?;
    delete(store, session_id)
}

/// What a collection removed (module documentation, "Collection").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub records: usize,
    pub marks: usize,
    pub claims: usize,
}

/// Collects the keys of ended sessions (module documentation), when no one has in this
/// [`COLLECTION_WINDOW_SECS`] window (`None`: someone has; the first request whose `increment` of
/// the window's counter answers 1 collects). An `increment` that failed and took effect later only
/// skips a window's collection.
///
/// Store calls: the `increment`; then, for the window's collector, a listing of the store's keys
/// (a scan of the whole store on every Spin backend, hence once per window), a `get` of each
/// session's record and mark, and a `delete` of each key collected (or a `set` for a mark without
/// its session's end).
pub fn collect<S: KeyValue + ?Sized>(store: &S, now: u64) -> Result<Option<Collected>, Error> {
    let window = now / COLLECTION_WINDOW_SECS;
    if store.increment(&console_collection_claim(window), 1)? != 1 {
        return Ok(None);
    }
    let past = |end: u64| end.saturating_add(COLLECTION_MARGIN_SECS) <= now;
    let mut collected = Collected::default();
    let mut records = Vec::new();
    let mut marks = BTreeMap::new();
    for listed in store.keys()? {
        let Some((family, key)) = console_key(&listed) else { continue };
        match family {
            ConsoleKey::Session { digest } => records.push((digest, key)),
            ConsoleKey::SignedOut { digest } => {
                marks.insert(digest, key);
            }
            // The lease of windows `w` and `w + 1` has lapsed when `w + 2` begins.
            ConsoleKey::RefreshClaim { window, .. }
                if past(window.saturating_add(2).saturating_mul(REFRESH_WINDOW_MS) / 1000) =>
            {
                store.delete(&key)?;
                collected.claims += 1;
            }
            ConsoleKey::CollectionClaim { window: w } if w < window => {
                store.delete(&key)?;
                collected.claims += 1;
            }
            ConsoleKey::RefreshClaim { .. } | ConsoleKey::CollectionClaim { .. } => {}
        }
    }
    // Records before their marks: a mark is never removed before a record it guards.
    for (digest, key) in records {
        let Some(bytes) = store.get(&key)? else { continue };
        let ended = serde_json::from_slice::<Record>(&bytes).map_or(true, |record| past(record.ends_at));
        if ended || marks.contains_key(&digest) {
            store.delete(&key)?;
            collected.records += 1;
        }
    }
    for key in marks.into_values() {
        let Some(bytes) = store.get(&key)? else { continue };
        match serde_json::from_slice::<Mark>(&bytes) {
            Ok(mark) if past(mark.ends_at) => {
                store.delete(&key)?;
                collected.marks += 1;
            }
            Ok(_) => {}
            Err(_) => store.set(&key, &mark(now.saturating_add(MAX_SESSION_SECS)))?,
        }
    }
    Ok(Some(collected))
}

pub fn write<S: KeyValue + ?Sized>(store: &S, session_id: &str, record: &Record) -> Result<(), Error> {
    let bytes = serde_json::to_vec(record).map_err(|_| Internal::Platform("sessions serialize"))?;
    Ok(store.set(&console_session(session_id), &bytes)?)
}

pub fn delete<S: KeyValue + ?Sized>(store: &S, session_id: &str) -> Result<(), Error> {
    Ok(store.delete(&console_session(session_id))?)
}

/// What the CSRF check needs of a request.
pub struct Request<'a> {
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
}

/// Whether a request on a session cookie passes the anti-CSRF check (module documentation).
pub fn csrf_ok(request: &Request<'_>, origin: &str) -> bool {
    if matches!(*request.method, http::Method::GET | http::Method::HEAD) {
        return true;
    }
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    let marked = header(CSRF_HEADER).is_some_and(|v| !v.trim().is_empty());
    let same_origin = header("origin").is_none_or(|o| o.eq_ignore_ascii_case(origin));
    // Sent by every current browser; a chained request between components keeps the original's.
    let same_site = header("sec-fetch-site").is_none_or(|s| s == "same-origin");
    marked && same_origin && same_site
}

/// The caller a request's session cookie names, when it carries one and no `Authorization`.
/// `None`: no session cookie (the bearer token rules apply).
pub fn caller<S: KeyValue + ?Sized>(store: &S, request: &Request<'_>, now: u64) -> Option<Result<Principal, Error>> {
    let session_id = cookie(request.headers, SESSION_COOKIE)?;
    Some((|| {
        let refused = |why| Err(Error::Unauthenticated(why));
        let Some(record) = read(store, session_id)? else { return refused(AuthFailure::NoSession) };
        if !csrf_ok(request, &record.origin) {
            return refused(AuthFailure::CsrfCheckFailed);
        }
        if !record.live(now) {
            return refused(AuthFailure::SessionExpired);
        }
        record.principal().map_err(Error::Unauthenticated)
    })())
}

/// The caller's credential as a component passes it on to another (service chaining to the
/// `verify` component): the `Authorization` header's value, or else the session cookie.
pub fn chained_credential(headers: &http::HeaderMap) -> String {
    if let Some(authorization) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return authorization.to_owned();
    }
    cookie(headers, SESSION_COOKIE).map(|id| format!("{SESSION_COOKIE}={id}")).unwrap_or_default()
}

/// The headers of a chained request that carry [`chained_credential`]'s value: a session cookie
/// goes on as a cookie with the anti-CSRF header (the calling component has checked the original
/// request), anything else as `Authorization`.
pub fn chained_headers(credential: &str) -> Vec<(&'static str, String)> {
    if credential.starts_with(SESSION_COOKIE) && credential[SESSION_COOKIE.len()..].starts_with('=') {
        vec![("cookie", credential.to_owned()), (CSRF_HEADER, "1".to_owned())]
    } else {
        vec![("authorization", credential.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn keyring() -> Keyring {
        Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
    }

    fn verified(expires_at: u64) -> Verified {
        Verified {
            principal: Principal {
                tenant: TenantId::parse("acme").unwrap(),
                scopes: Scopes::empty().with(Scope::Admin),
                subject: Some("alice".into()),
                client: Some("console".into()),
            },
            expires_at,
            not_before: None,
            keys_fresh_until: Some(expires_at - 100),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    const ORIGIN: &str = "https://console.example.com";

    fn stored(store: &MemoryStore, expires_at: u64) -> String {
        let id = new_id().unwrap();
        let tokens = Tokens { access_token: "access-token-value".into(), refresh_token: Some("refresh-value".into()) };
        let record = Record::new(&keyring(), &id, &verified(expires_at), &tokens, 50_000, ORIGIN).unwrap();
        write(store, &id, &record).unwrap();
        id
    }

    #[test]
    fn the_store_holds_neither_the_session_id_nor_the_tokens_in_clear() {
        let store = MemoryStore::new();
        let id = stored(&store, 10_000);
        let dump = format!("{:?}", store.dump());
        assert!(!dump.contains(&id), "the id is kept only as a digest");
        for value in store.dump().values() {
            let text = String::from_utf8_lossy(value);
            assert!(!text.contains("access-token-value") && !text.contains("refresh-value"), "{text}");
        }
        let record = read(&store, &id).unwrap().unwrap();
        let tokens = record.tokens(&keyring(), &id).unwrap();
        assert_eq!(tokens.access_token, "access-token-value");
        assert!(record.tokens(&keyring(), "another-session-id").is_err(), "bound to its session");
    }

    #[test]
    fn a_cookie_names_its_session_within_the_tokens_bounds() {
        let store = MemoryStore::new();
        let id = stored(&store, 10_000);
        let get = http::Method::GET;
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        let h = headers(&[("cookie", &cookie)]);
        let request = Request { method: &get, headers: &h };
        let who = caller(&store, &request, 9_000).unwrap().unwrap();
        assert_eq!(who.tenant.as_str(), "acme");
        assert!(who.scopes.contains(Scope::Admin));
        assert_eq!(
            caller(&store, &request, 9_950).unwrap().unwrap_err(),
            Error::Unauthenticated(AuthFailure::SessionExpired),
            "past the key set's freshness"
        );
        let none = headers(&[("cookie", "theme=dark")]);
        assert!(caller(&store, &Request { method: &get, headers: &none }, 9_000).is_none());
        let forged = headers(&[("cookie", &format!("{SESSION_COOKIE}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))]);
        assert_eq!(
            caller(&store, &Request { method: &get, headers: &forged }, 9_000).unwrap().unwrap_err(),
            Error::Unauthenticated(AuthFailure::NoSession)
        );
        delete(&store, &id).unwrap();
        assert_eq!(
            caller(&store, &request, 9_000).unwrap().unwrap_err(),
            Error::Unauthenticated(AuthFailure::NoSession)
        );
    }

    #[test]
    fn writes_on_a_session_need_the_csrf_header_and_the_consoles_origin() {
        let store = MemoryStore::new();
        let id = stored(&store, 10_000);
        let cookie = format!("{SESSION_COOKIE}={id}");
        let post = http::Method::POST;
        let check = |pairs: &[(&str, &str)]| {
            let mut all = vec![("cookie", cookie.as_str())];
            all.extend_from_slice(pairs);
            let h = headers(&all);
            caller(&store, &Request { method: &post, headers: &h }, 9_000).unwrap()
        };
        let refused = Err(Error::Unauthenticated(AuthFailure::CsrfCheckFailed));
        assert_eq!(check(&[]).map(|p| p.tenant), refused.clone(), "no header");
        assert!(check(&[(CSRF_HEADER, "1")]).is_ok(), "header, no Origin (not every client sends one)");
        assert!(check(&[(CSRF_HEADER, "1"), ("origin", ORIGIN), ("sec-fetch-site", "same-origin")]).is_ok());
        assert_eq!(
            check(&[(CSRF_HEADER, "1"), ("origin", "https://evil.example.com")]).map(|p| p.tenant),
            refused.clone()
        );
        assert_eq!(check(&[(CSRF_HEADER, "1"), ("origin", "null")]).map(|p| p.tenant), refused.clone());
        assert_eq!(check(&[(CSRF_HEADER, "1"), ("sec-fetch-site", "same-site")]).map(|p| p.tenant), refused);
    }

    #[test]
    fn only_well_formed_cookie_values_are_read() {
        let h = headers(&[("cookie", &format!("{SESSION_COOKIE}=../../x; other=1"))]);
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
        let long = "a".repeat(65);
        let h = headers(&[("cookie", &format!("{SESSION_COOKIE}={long}"))]);
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
        let h = headers(&[("cookie", "a=1"), ("cookie", &format!("{SESSION_COOKIE}=abc_-9"))]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc_-9"));
    }
}
