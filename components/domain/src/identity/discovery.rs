//! Issuers whose keys are found by discovery (OpenID Connect Discovery 1.0, RFC 8414): the
//! operator names the issuer; its keys are read from `{issuer}/.well-known/openid-configuration`'s
//! `jwks_uri` (or from a `jwks_uri` the operator gives), kept fresh, and shared through the store.
//!
//! The rules, each tested in `discovery_tests.rs`:
//! - **Where**: only the configured issuer's document and the `jwks_uri` it names (or the
//!   configured one), over https; plain http only to a loopback host (tests, a sidecar). Never a
//!   URL from the token (`jku`, `x5u`, `x5c` are not read). The document's `issuer` must equal the
//!   configured issuer exactly, or its keys are not taken. Each answer must be 200 and smaller than
//!   [`MAX_DOCUMENT_BYTES`]; the platform bounds each fetch to [`FETCH_TIMEOUT`].
//! - **How long**: the key set is fresh for the `Cache-Control: max-age` of the JWKS answer,
//!   clamped to [`MIN_MAX_AGE_SECS`]..=[`MAX_MAX_AGE_SECS`], [`DEFAULT_MAX_AGE_SECS`] when absent.
//!   Once it is no longer fresh, the next request fetches it again, so a key the provider removed
//!   stops verifying within that lifetime.
//! - **How often**: one fetch per issuer per [`REFETCH_WINDOW_MS`], whatever the number of nodes,
//!   components and requests: the fetcher is the request whose `increment` of the issuer's counter
//!   for the current window answered 1 (the one reliable atomic of every Spin store). A token with
//!   an unknown `kid` asks for a fetch too, so a storm of random `kid`s costs one fetch per window
//!   and is refused with 401.
//! - **When the provider is down**: the last good keys keep verifying for `stale_secs` (24 h by
//!   default) after they stopped being fresh. A token that needs a key we do not have while the
//!   provider does not answer is refused with 503 and `Retry-After` (the next window), not 401:
//!   the fault is the provider's, the token may well be good.
//!
//! Store calls: a fresh key set, one `get`. A fetch: `get`, `increment` of the window's counter,
//! (`delete` of the previous fetcher's counter), the fetch, `set`. A request that lost the window
//! re-reads the set until the fetcher has written it (bounded, [`POLLS`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::clock::Clock;
use crate::error::{AuthFailure, Error};
use crate::jwks::{Algorithm, Jwks, KeyLookupError, VerifyingKey};
use crate::net::{FetchError, Fetched, Outgoing, Sender, MAX_RESPONSE_BYTES};
use crate::store::{issuer_key_fetch_claim, issuer_key_set, KeyValue};

/// A key set's freshness is at least this, whatever the provider says (`no-cache` included).
pub const MIN_MAX_AGE_SECS: u64 = 5 * 60;
/// ... and at most this.
pub const MAX_MAX_AGE_SECS: u64 = 24 * 3600;
/// When the provider's answer has no `max-age`.
pub const DEFAULT_MAX_AGE_SECS: u64 = 3600;
/// At most one fetch per issuer per window.
pub const REFETCH_WINDOW_MS: u64 = 30_000;
/// How long the last good keys keep verifying after they stopped being fresh, when the provider
/// cannot be reached (`auth_keys_stale_secs`).
pub const DEFAULT_STALE_SECS: u64 = 24 * 3600;
/// Each fetch (connect, first byte, whole answer) is bounded by this (the adapter's client).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document or key set must be smaller than this.
pub const MAX_DOCUMENT_BYTES: usize = MAX_RESPONSE_BYTES;
/// How many times a request that lost the window re-reads the key set while the fetch runs.
pub const POLLS: u32 = 25;
/// The pause between those reads: [`POLLS`] of them span [`FETCH_TIMEOUT`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS given by the operator (JSON text): never fetched.
    Static(String),
    /// Fetched: from this URL, or from the `jwks_uri` of the issuer's discovery document.
    Discovered { jwks_uri: Option<Url> },
}

/// One issuer whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The exact `iss` its tokens carry (and, discovered, its document's `issuer`).
    pub issuer: String,
    /// A value `aud` must be or contain.
    pub audience: String,
    /// The claim holding the tenant id.
    pub tenant_claim: String,
    pub keys: KeySource,
}

/// An entry of `auth_issuers` (a JSON array of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    audience: String,
    #[serde(default)]
    tenant_claim: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    jwks: Option<serde_json::Value>,
}

/// Reads `auth_issuers`: `[{"issuer", "audience", "tenant_claim"?, "jwks_uri"? | "jwks"?}]`.
/// Without `jwks` the keys are discovered, so the issuer (and `jwks_uri`) must be fetchable
/// ([`fetchable`]). Empty text: no issuers. Anything malformed, an issuer named twice or one that
/// may not be fetched makes the whole setting unusable (every token is then refused as the
/// verifier's misconfiguration, which is logged).
pub fn parse_issuers(text: &str, default_tenant_claim: &str) -> Result<Vec<Issuer>, AuthFailure> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<IssuerEntry> = serde_json::from_str(text).map_err(|_| AuthFailure::Misconfigured)?;
    let mut issuers: Vec<Issuer> = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.issuer.is_empty() || entry.audience.is_empty() || issuers.iter().any(|i| i.issuer == entry.issuer) {
            return Err(AuthFailure::Misconfigured);
        }
        let keys = match (entry.jwks, entry.jwks_uri) {
            (Some(_), Some(_)) => return Err(AuthFailure::Misconfigured),
            (Some(jwks), None) => KeySource::Static(jwks.to_string()),
            (None, uri) => {
                let issuer_url = Url::parse(&entry.issuer).map_err(|_| AuthFailure::Misconfigured)?;
                let jwks_uri = uri.map(|u| Url::parse(&u)).transpose().map_err(|_| AuthFailure::Misconfigured)?;
                if !fetchable(&issuer_url) || jwks_uri.as_ref().is_some_and(|u| !fetchable(u)) {
                    return Err(AuthFailure::Misconfigured);
                }
                KeySource::Discovered { jwks_uri }
            }
        };
        let tenant_claim = entry.tenant_claim.unwrap_or_else(|| default_tenant_claim.to_owned());
        issuers.push(Issuer { issuer: entry.issuer, audience: entry.audience, tenant_claim, keys });
    }
    Ok(issuers)
}

/// Whether keys may be fetched from `url`: https, or plain http to a loopback host; no credentials
/// in the URL.
pub fn fetchable(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    scheme_ok && url.username().is_empty() && url.password().is_none()
}

/// The discovery document's URL (OpenID Connect Discovery 1.0 section 4: the issuer, without a
/// trailing `/`, then `/.well-known/openid-configuration`).
pub fn discovery_url(issuer: &str) -> Result<Url, AuthFailure> {
    Url::parse(&format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')))
        .map_err(|_| AuthFailure::Misconfigured)
}

/// What discovery needs from the platform: the shared store, the way out, and time.
pub struct Discovery<'a> {
    pub store: &'a dyn KeyValue,
    pub sender: &'a dyn Sender,
    pub clock: &'a dyn Clock,
    /// How long the last good keys are used past their freshness while the provider is down.
    pub stale_secs: u64,
}

/// A key for a token, and until when (Unix seconds) the key set it came from is fresh: the
/// verified-token cache honours nothing verified with it past that.
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub key: VerifyingKey,
    pub fresh_until: u64,
}

/// Why a fetch gave no keys: logged (by kind), never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    Unreachable(FetchError),
    /// Not 200 (redirects are not followed).
    Status(u16),
    TooLarge,
    /// Not JSON of the expected shape, or a key set without a usable key.
    Unreadable,
    /// The document's `issuer` is not the configured issuer.
    IssuerMismatch,
    /// The document's `jwks_uri` is missing or may not be fetched.
    UnfetchableJwksUri,
}

impl FetchFailure {
    fn describe(self) -> &'static str {
        match self {
            FetchFailure::Unreachable(FetchError::Timeout) => "timed out",
            FetchFailure::Unreachable(FetchError::Tls) => "TLS failed",
            FetchFailure::Unreachable(FetchError::Blocked) => "blocked by the platform",
            FetchFailure::Unreachable(FetchError::Unreachable) => "unreachable",
            FetchFailure::Status(_) => "answered other than 200",
            FetchFailure::TooLarge => "answer too large",
            FetchFailure::Unreadable => "answer unreadable or without usable keys",
            FetchFailure::IssuerMismatch => "discovery document names another issuer",
            FetchFailure::UnfetchableJwksUri => "jwks_uri missing or not https",
        }
    }
}

/// The key set as stored (`store::issuer_key_set`), shared by every node and component.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    /// Where it was fetched from (the discovery URL or the configured `jwks_uri`): a set fetched
    /// from elsewhere (the operator changed it) is not used.
    #[serde(rename = "s")]
    source: String,
    /// The JWKS text; empty when no fetch ever succeeded.
    #[serde(rename = "j")]
    jwks: String,
    /// Unix seconds until which it is fresh.
    #[serde(rename = "u")]
    fresh_until: u64,
    /// When the last fetch failed, if it did after the last success.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<u64>,
    /// The window of the last fetch (its counter is deleted by the next fetcher).
    #[serde(rename = "w")]
    window: u64,
    /// Why the last fetch failed, for the log.
    #[serde(rename = "y", default, skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

impl Cached {
    fn fresh(&self, now: u64) -> bool {
        now < self.fresh_until
    }

    fn lookup(&self, kid: &str, algorithm: Algorithm) -> Result<VerifyingKey, KeyLookupError> {
        if self.jwks.is_empty() {
            return Err(KeyLookupError::UnknownKey);
        }
        let jwks = Jwks::parse(&self.jwks).map_err(|_| KeyLookupError::UnknownKey)?;
        jwks.key_for(kid, algorithm)
    }
}

fn refused(failure: KeyLookupError) -> Error {
    Error::Unauthenticated(match failure {
        KeyLookupError::UnknownKey => AuthFailure::UnknownKey,
        KeyLookupError::AlgorithmMismatch => AuthFailure::UnsupportedAlgorithm,
        KeyLookupError::BadKeyMaterial => AuthFailure::Misconfigured,
    })
}

fn unavailable(now_ms: u64, why: &str) -> Error {
    let next_window = (now_ms / REFETCH_WINDOW_MS + 1) * REFETCH_WINDOW_MS;
    Error::IdentityProviderUnavailable {
        retry_after_secs: (next_window - now_ms).div_ceil(1000).max(1),
        why: why.to_owned(),
    }
}

/// The key `kid` of `issuer` for a token signed with `algorithm`: from the shared key set while it
/// is fresh, fetched (at most once per issuer and window) when it is not or does not have `kid`.
pub fn key_for(discovery: &Discovery<'_>, issuer: &Issuer, kid: &str, algorithm: Algorithm) -> Result<FoundKey, Error> {
    let KeySource::Discovered { jwks_uri } = &issuer.keys else {
        return Err(Error::Unauthenticated(AuthFailure::Misconfigured));
    };
    let source = match jwks_uri {
        Some(uri) => uri.clone(),
        None => discovery_url(&issuer.issuer).map_err(Error::Unauthenticated)?,
    };
    let store = discovery.store;
    let now_ms = discovery.clock.now_ms();
    let now = now_ms / 1000;
    let set_key = issuer_key_set(&issuer.issuer);
    let read = || -> Result<Option<Cached>, Error> {
        let bytes = store.get(&set_key)?;
        // An unreadable entry is a miss: it is replaced by the next fetch.
        Ok(bytes.and_then(|b| serde_json::from_slice::<Cached>(&b).ok()).filter(|c| c.source == source.as_str()))
    };
    let cached = read()?;
    if let Some(cached) = cached.as_ref().filter(|c| c.fresh(now)) {
        match cached.lookup(kid, algorithm) {
            Ok(key) => return Ok(FoundKey { key, fresh_until: cached.fresh_until }),
            Err(KeyLookupError::UnknownKey) => {}
            Err(other) => return Err(refused(other)),
        }
    }

    let window = now_ms / REFETCH_WINDOW_MS;
    if store.increment(&issuer_key_fetch_claim(&issuer.issuer, window), 1)? == 1 {
        if let Some(previous) = cached.as_ref().map(|c| c.window).filter(|w| *w != window) {
            // Best effort: a leftover counter is one small key, deleted by no one else.
            let _ = store.delete(&issuer_key_fetch_claim(&issuer.issuer, previous));
        }
        let updated = match fetch(discovery.sender, issuer, jwks_uri.as_ref()) {
            Ok((jwks, max_age)) => Cached {
                source: source.to_string(),
                jwks,
                fresh_until: now + max_age,
                failed_at: None,
                window,
                failure: None,
            },
            Err(failure) => {
                let mut kept = cached.unwrap_or(Cached {
                    source: source.to_string(),
                    jwks: String::new(),
                    fresh_until: 0,
                    failed_at: None,
                    window,
                    failure: None,
                });
                kept.failed_at = Some(now);
                kept.window = window;
                kept.failure = Some(failure.describe().to_owned());
                kept
            }
        };
        store.set(&set_key, &serde_json::to_vec(&updated).expect("key sets serialize"))?;
        return decide(Some(&updated), now_ms, discovery.stale_secs, kid, algorithm);
    }

    // Another request fetches in this window: wait (bounded) until it has written its result.
    let mut latest = cached;
    for _ in 0..POLLS {
        if latest.as_ref().is_some_and(|c| c.window == window) {
            break;
        }
        discovery.clock.sleep(POLL_INTERVAL);
        latest = read()?;
    }
    decide(latest.as_ref(), discovery.clock.now_ms(), discovery.stale_secs, kid, algorithm)
}

/// With the key set as it now stands: the key; 401 when the set is fresh, the provider answered,
/// and it has no such key; 503 when we lack keys because the provider did not answer.
fn decide(
    cached: Option<&Cached>,
    now_ms: u64,
    stale_secs: u64,
    kid: &str,
    algorithm: Algorithm,
) -> Result<FoundKey, Error> {
    let now = now_ms / 1000;
    let Some(cached) = cached else {
        return Err(unavailable(now_ms, "no key set yet; its fetch is under way"));
    };
    let why = cached.failure.as_deref().unwrap_or("the key set is being fetched");
    let usable = cached.fresh(now) || now < cached.fresh_until.saturating_add(stale_secs);
    if !usable || cached.jwks.is_empty() {
        return Err(unavailable(now_ms, why));
    }
    match cached.lookup(kid, algorithm) {
        Ok(key) => Ok(FoundKey { key, fresh_until: cached.fresh_until }),
        Err(KeyLookupError::UnknownKey) if !cached.fresh(now) || cached.failed_at.is_some() => {
            Err(unavailable(now_ms, why))
        }
        Err(failure) => Err(refused(failure)),
    }
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    #[serde(default)]
    jwks_uri: Option<String>,
}

fn get(sender: &dyn Sender, url: &Url) -> Result<Fetched, FetchFailure> {
    if !fetchable(url) {
        return Err(FetchFailure::UnfetchableJwksUri);
    }
    let request = Outgoing {
        method: "GET",
        url: url.clone(),
        headers: vec![("accept".into(), "application/json".into())],
        body: Vec::new(),
    };
    let answer = sender.send(&request).map_err(FetchFailure::Unreachable)?;
    if answer.status != 200 {
        return Err(FetchFailure::Status(answer.status));
    }
    let declared = answer.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
    // The sender cuts the body at MAX_RESPONSE_BYTES: a body that long may have been longer.
    if declared.is_some_and(|n| n >= MAX_DOCUMENT_BYTES) || answer.body.len() >= MAX_DOCUMENT_BYTES {
        return Err(FetchFailure::TooLarge);
    }
    Ok(answer)
}

/// Fetches the issuer's key set: its JSON text and how long it is fresh (seconds).
pub fn fetch(sender: &dyn Sender, issuer: &Issuer, jwks_uri: Option<&Url>) -> Result<(String, u64), FetchFailure> {
    let jwks_uri = match jwks_uri {
        Some(uri) => uri.clone(),
        None => {
            let url = discovery_url(&issuer.issuer).map_err(|_| FetchFailure::UnfetchableJwksUri)?;
            let answer = get(sender, &url)?;
            let document: DiscoveryDocument =
                serde_json::from_slice(&answer.body).map_err(|_| FetchFailure::Unreadable)?;
            if document.issuer != issuer.issuer {
                return Err(FetchFailure::IssuerMismatch);
            }
            let uri = document.jwks_uri.ok_or(FetchFailure::UnfetchableJwksUri)?;
            let uri = Url::parse(&uri).map_err(|_| FetchFailure::UnfetchableJwksUri)?;
            if !fetchable(&uri) {
                return Err(FetchFailure::UnfetchableJwksUri);
            }
            uri
        }
    };
    let answer = get(sender, &jwks_uri)?;
    let text = String::from_utf8(answer.body.clone()).map_err(|_| FetchFailure::Unreadable)?;
    Jwks::parse(&text).map_err(|_| FetchFailure::Unreadable)?;
    Ok((text, freshness(answer.header("cache-control"))))
}

/// How long an answer with this `Cache-Control` is fresh, clamped to our bounds.
pub fn freshness(cache_control: Option<&str>) -> u64 {
    let Some(value) = cache_control else { return DEFAULT_MAX_AGE_SECS };
    let mut max_age = None;
    for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            max_age = Some(0);
            break;
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            max_age = seconds.trim_matches('"').parse::<u64>().ok().or(Some(0));
        }
    }
    max_age.unwrap_or(DEFAULT_MAX_AGE_SECS).clamp(MIN_MAX_AGE_SECS, MAX_MAX_AGE_SECS)
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
