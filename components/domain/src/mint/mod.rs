//! Minting: a short-lived registry credential from a secret's provider identity, when the secret
//! is read (export, verification). AWS ECR's `GetAuthorizationToken` signed with SigV4 ([`aws`]),
//! Google's JWT-bearer grant ([`google`]), Azure's client-credentials grant and the registry's
//! `/oauth2/exchange` ([`azure`]). The minted credential is kept sealed in the store until a
//! margin before it expires ([`cache`]), so a burst of reads mints once.
//!
//! Only the `verify` component reaches the providers ([`Sender`], implemented in `spin-bridge`);
//! the `credentials` component reads the cache itself and, on a miss, asks the `verify` component
//! ([`MintComponent`], service chaining on [`MINT_PATH`], which the gateway never routes).
//!
//! Failures: a refusal by the provider is [`Error::ProviderRefused`] (422) in our words; a provider
//! that cannot be reached, times out, throttles or answers 5xx or 429 is
//! [`Error::ProviderUnavailable`] (503 with `Retry-After`: it may work later); an answer we cannot
//! use (no credential in it, a token that does not decode, no credential for a registry asked for,
//! a status that is none of these) is [`Error::ProviderAnswerUnusable`] (502, no `Retry-After`:
//! asking again gets the same answer). Nothing is cached from a failure. No message here contains any part of an
//! identity or of a minted credential, nor the provider's own text (only its error *code*, once
//! checked to be a plain identifier).

pub mod aws;
pub mod azure;
pub mod cache;
pub mod google;
pub mod sigv4;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::Clock;
use crate::crypto::Keyring;
use crate::dockerconfig::DockerConfig;
use crate::error::{Error, Internal};
use crate::index::IndexEntry;
use crate::name::TenantId;
use crate::net::PlainHttpRegistries;
use crate::net::{FetchError, Fetched, Outgoing, Sender};
use crate::provider::Identity;
use crate::store::KeyValue;

/// The `verify` component's internal path for minting a stored secret's credential (chained from
/// the `credentials` component).
pub const MINT_PATH: &str = "/internal/mint";

/// How long to wait before retrying after a provider failed.
pub const RETRY_AFTER_SECS: u64 = 30;

/// One registry's minted login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    /// `host[:port]`.
    pub registry: String,
    pub username: String,
    pub password: String,
}

/// A minted registry credential: one login per registry (ECR answers a token of its own for each
/// registry asked for; Google's and Azure's one token serves each of their registries).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Minted {
    /// Sorted by registry, one each.
    pub logins: Vec<Login>,
    /// Unix milliseconds.
    pub expires_at: u64,
    /// Until when a cached copy is handed out (a margin before `expires_at`), Unix milliseconds.
    pub fresh_until: u64,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("registries", &self.registries())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Minted {
    /// One login for every registry, valid until `expires_at` (see [`Minted::per_registry`]).
    pub fn new(username: &str, password: String, registries: Vec<String>, now_ms: u64, expires_at: u64) -> Minted {
        let logins = registries
            .into_iter()
            .map(|registry| Login { registry, username: username.into(), password: password.clone() })
            .collect();
        Minted::per_registry(logins, now_ms, expires_at)
    }

    /// Logins valid until `expires_at`, handed out from the cache until a tenth of their life (at
    /// least five minutes, at most an hour) before then. Sorted by registry; the first of a
    /// registry named twice is kept.
    pub fn per_registry(mut logins: Vec<Login>, now_ms: u64, expires_at: u64) -> Minted {
        logins.sort_by(|a, b| a.registry.cmp(&b.registry));
        logins.dedup_by(|later, first| later.registry == first.registry);
        let life = expires_at.saturating_sub(now_ms);
        let margin = (life / 10).clamp(5 * 60_000, 60 * 60_000);
        Minted { logins, expires_at, fresh_until: expires_at.saturating_sub(margin) }
    }

    /// The registries it is for, `host[:port]`.
    pub fn registries(&self) -> Vec<&str> {
        self.logins.iter().map(|l| l.registry.as_str()).collect()
    }

    /// The credential as a Docker config: one `auths` entry per registry, with its own login.
    pub fn to_docker_config(&self) -> Result<DockerConfig, Error> {
        let auths: serde_json::Map<String, serde_json::Value> = self
            .logins
            .iter()
            .map(|l| (l.registry.clone(), serde_json::json!({"username": l.username, "password": l.password})))
            .collect();
        let text = serde_json::json!({ "auths": auths }).to_string();
        DockerConfig::from_dockerconfigjson(&text)
            .map_err(|_| crate::error::Internal::Platform("a minted credential is not a valid Docker config").into())
    }
}

/// Where AWS is: its regional endpoints under a domain, or one endpoint for every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsEndpoint {
    /// `https://<service>.<region>.<suffix>/` (`https://*.amazonaws.com`, `https://*.amazonaws.com.cn`).
    Regional { suffix: String },
    /// Every AWS call goes here (moto, LocalStack, a VPC endpoint).
    Fixed(Url),
}

/// Where the providers are: the operator's Spin variables `aws_endpoint_url`, `google_token_url`,
/// `azure_authority_url` (trusted as given, plain http and loopback included), and the plain-http
/// registries (`verify_insecure_registries`) for Azure's exchange.
///
/// Each variable is an origin, `scheme://host[:port]` without a path, because the `verify`
/// component's `allowed_outbound_hosts` takes it through Spin's templating, and Spin refuses an
/// allowed host with a path (and, in Spin 4.0.2, an empty one: so every variable has a default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub aws: AwsEndpoint,
    /// `None` (the variable at its default): the service account key's `token_uri`, over https and
    /// under the verification's SSRF rules (Google's key files name `https://oauth2.googleapis.com/token`).
    /// Set: `<google_token_url>/token`, whatever the key says.
    pub google_token_url: Option<Url>,
    pub azure_authority_url: Url,
    pub plain_http: PlainHttpRegistries,
}

impl ProviderEndpoints {
    pub const AWS_DEFAULT: &'static str = "https://*.amazonaws.com";
    pub const GOOGLE_DEFAULT: &'static str = "https://oauth2.googleapis.com";
    pub const GOOGLE_TOKEN_URL: &'static str = "https://oauth2.googleapis.com/token";
    pub const AZURE_AUTHORITY: &'static str = "https://login.microsoftonline.com";

    /// From the variables' values; an empty value means the default. A value that is not an
    /// http(s) URL is a configuration fault naming the variable.
    pub fn parse(
        aws: &str,
        google: &str,
        azure: &str,
        plain_http: PlainHttpRegistries,
    ) -> Result<ProviderEndpoints, Error> {
        let url = |value: &str, variable: &'static str| -> Result<Url, Error> {
            match Url::parse(value.trim()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
                _ => Err(crate::error::Internal::Config(variable).into()),
            }
        };
        let aws = aws.trim().trim_end_matches('/');
        let aws = match aws.strip_prefix("https://*.") {
            _ if aws.is_empty() => AwsEndpoint::Regional { suffix: "amazonaws.com".into() },
            Some(suffix) if !suffix.is_empty() && !suffix.contains(['/', ':', '*']) => {
                AwsEndpoint::Regional { suffix: suffix.to_ascii_lowercase() }
            }
            _ => AwsEndpoint::Fixed(url(aws, "aws_endpoint_url")?),
        };
        let google = google.trim().trim_end_matches('/');
        let google_token_url = if google.is_empty() || google == Self::GOOGLE_DEFAULT {
            None
        } else {
            let base = url(google, "google_token_url")?;
            let token = if base.path() == "/" { base.join("/token").expect("a path joins") } else { base };
            Some(token)
        };
        let azure = azure.trim();
        let azure_authority_url = if azure.is_empty() {
            Url::parse(Self::AZURE_AUTHORITY).expect("valid")
        } else {
            url(azure, "azure_authority_url")?
        };
        Ok(ProviderEndpoints { aws, google_token_url, azure_authority_url, plain_http })
    }
}

impl Default for ProviderEndpoints {
    fn default() -> Self {
        ProviderEndpoints::parse("", "", "", PlainHttpRegistries::default()).expect("the defaults are valid")
    }
}

/// What minting needs: the network (the `verify` component's), a clock, the endpoints.
pub struct Providers<'a> {
    pub sender: &'a dyn Sender,
    pub clock: &'a dyn Clock,
    pub endpoints: &'a ProviderEndpoints,
}

impl Providers<'_> {
    /// Mints a registry credential from `identity`: no cache, no store.
    pub fn mint(&self, identity: &Identity) -> Result<Minted, Error> {
        match identity {
            Identity::AwsEcr(aws) => aws::mint(self, aws),
            Identity::Google(google) => google::mint(self, google),
            Identity::Azure(azure) => azure::mint(self, azure),
        }
    }

    fn send(&self, provider: &str, request: &Outgoing) -> Result<Fetched, Error> {
        self.sender.send(request).map_err(|e| unavailable(provider, e))
    }
}

/// The `credentials` component's way to a minted credential: the `verify` component.
pub trait MintComponent {
    /// `authorization` is the caller's header, forwarded so the `verify` component authenticates
    /// the caller itself. The answer is the current credential of the secret `name`, from the
    /// cache or minted (and then cached) there.
    fn mint(&self, authorization: &str, request_id: &str, name: &str) -> Result<Minted, Error>;
}

/// Where a cache miss is minted.
pub enum Source<'a> {
    /// Here (the `verify` component): mint, then cache.
    Providers(&'a Providers<'a>),
    /// The `verify` component, through service chaining (the `credentials` component).
    Component { component: &'a dyn MintComponent, authorization: &'a str, request_id: &'a str },
}

/// The registry credential a secret's entry stands for now: the cached one while it is fresh, or
/// a new one (cached when minted here). `identity` is the entry's unsealed identity.
pub fn current<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
    identity: &Identity,
    source: &Source,
    now_ms: u64,
) -> Result<Minted, Error> {
    if let Some(cached) = cache::read(store, keyring, tenant, entry, now_ms)? {
        return Ok(cached);
    }
    match source {
        Source::Providers(providers) => {
            let minted = providers.mint(identity)?;
            cache::write(store, keyring, tenant, entry, &minted)?;
            Ok(minted)
        }
        Source::Component { component, authorization, request_id } => {
            component.mint(authorization, request_id, &entry.name)
        }
    }
}

/// A request that got no answer: an outage (503, retry later) when the provider could not be reached
/// or was slow; never "retry later" for what asking again will not change: a certificate this
/// service does not trust (502, the operator's `[[client_tls]]` or the endpoint variable), or a
/// destination this service's own network rules refuse (500, its `allowed_outbound_hosts`).
fn unavailable(provider: &str, error: FetchError) -> Error {
    let why = match error {
        FetchError::Unreachable => "could not be reached",
        FetchError::Timeout => "did not answer in time",
        FetchError::Tls => {
            return Error::ProviderAnswerUnusable(format!(
                "{provider} presented a certificate this service does not trust; nothing was minted or cached, and asking again would get the same answer: report it to the operator"
            ))
        }
        FetchError::Blocked => return Internal::Config("allowed_outbound_hosts").into(),
    };
    Error::ProviderUnavailable {
        message: format!("{provider} {why}; nothing was minted or cached, retry later"),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// A provider's answer that is neither a credential nor a refusal: an outage (5xx, 429) to retry
/// later, or any other status, which asking again will not change.
fn failed(provider: &str, status: u16) -> Error {
    if status >= 500 || status == 429 {
        Error::ProviderUnavailable {
            message: format!("{provider} answered HTTP {status}; nothing was minted or cached, retry later"),
            retry_after_secs: RETRY_AFTER_SECS,
        }
    } else {
        unusable(provider, &format!("with HTTP {status}, which is neither a credential nor a refusal"))
    }
}

/// A provider's answer we cannot use; `what` says what was wrong with it in our words, never with
/// a value from the answer.
fn unusable(provider: &str, what: &str) -> Error {
    Error::ProviderAnswerUnusable(format!(
        "{provider} answered, but {what}; nothing was minted or cached, and asking again would get the same answer: report it to the operator"
    ))
}

/// Outages only: throttling answered with a status that is no 429 (AWS answers 400 with a
/// throttling code).
fn throttled(provider: &str) -> Error {
    Error::ProviderUnavailable {
        message: format!("{provider} is throttling requests; nothing was minted or cached, retry later"),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// A provider's error code shown to the client only when it is a plain identifier (never free text).
fn code_shown(code: Option<&str>) -> Option<&str> {
    code.filter(|c| {
        !c.is_empty()
            && c.len() <= 64
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    })
}

/// The OAuth error answer's `error` code (RFC 6749 §5.2).
fn oauth_error(answer: &Fetched) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    code_shown(body.get("error")?.as_str()).map(str::to_owned)
}

/// `application/x-www-form-urlencoded` of these pairs.
fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish().into_bytes()
}

/// For tests of readers over static secrets: a source that is never asked.
#[cfg(test)]
pub(crate) struct NoMinting;

#[cfg(test)]
impl MintComponent for NoMinting {
    fn mint(&self, _: &str, _: &str, _: &str) -> Result<Minted, Error> {
        Err(crate::error::Internal::Platform("a static secret was minted").into())
    }
}

#[cfg(test)]
pub(crate) const STATIC_ONLY: Source<'static> =
    Source::Component { component: &NoMinting, authorization: "", request_id: "" };

#[cfg(test)]
#[path = "mint_tests.rs"]
mod tests;
