//! The `docker login` handshake against one registry, as a small state machine over [`Fetcher`]:
//!
//! 1. `GET <base>/v2/` without credentials. `200` with `Docker-Distribution-API-Version`: an open
//!    registry. `401`: follow its `WWW-Authenticate` challenge. `404`, or a `200` without that
//!    header: not a registry.
//! 2. `Basic`: `GET /v2/` again with basic auth. `Bearer realm,service[,scope]`: `GET <realm>`
//!    with basic auth, `service`, and `scope=repository:<repo>:pull` when a repository was named;
//!    take `token` or `access_token` from its JSON; then `GET /v2/` with the bearer token.
//! 3. With a repository: `GET /v2/<repo>/tags/list` with the same authorization.
//!
//! Every request goes through [`Session::fetch`]: the destination is admitted first (https, no
//! private IP literal), redirects are followed at most [`MAX_REDIRECTS`] times and only to https,
//! and an `Authorization` header never follows a redirect to another host. A deadline on the
//! session's clock bounds the whole check. Nothing of a registry's answer is kept beyond its status,
//! the challenge and (for the realm) the token, which is used and dropped.

use url::Url;

use super::challenge::{parse_all, Challenge};
use super::fetch::{FetchError, Fetched, Fetcher};
use super::outcome::{Finding, Verdict, Why};
use super::target::{admit, PlainHttpRegistries, Repository};
use crate::clock::Clock;
use crate::dockerconfig::RegistryAuth;

pub const MAX_REDIRECTS: usize = 3;
const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// One registry's check in progress.
pub struct Session<'a> {
    pub fetcher: &'a dyn Fetcher,
    pub clock: &'a dyn Clock,
    pub plain_http: &'a PlainHttpRegistries,
    /// Unix ms after which no further request is started.
    pub deadline_ms: u64,
}

type Step<T> = Result<T, Finding>;

impl From<FetchError> for Finding {
    fn from(e: FetchError) -> Finding {
        match e {
            FetchError::Unreachable => Finding::new(Verdict::Unreachable, Why::CannotConnect),
            FetchError::Tls => Finding::new(Verdict::Tls, Why::UntrustedCertificate),
            FetchError::Timeout => Finding::new(Verdict::Timeout, Why::NoAnswerInTime),
            FetchError::Blocked => Finding::new(Verdict::Blocked, Why::DestinationBlocked),
        }
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// What a refusal or an unexpected answer means, when it is not part of the happy path.
fn unexpected(answer: &Fetched) -> Finding {
    let finding = match answer.status {
        401 => Finding::new(Verdict::Unauthorized, Why::WrongCredentials),
        403 => Finding::new(Verdict::Forbidden, Why::NoAccess),
        500..=599 => Finding::new(Verdict::Unreachable, Why::RegistryFailed),
        _ => Finding::new(Verdict::NotARegistry, Why::NoRegistryApi),
    };
    finding.status(answer.status)
}

impl Session<'_> {
    /// GET with the rules above; the final answer (never a redirect).
    fn fetch(&self, url: Url, authorization: Option<&str>) -> Step<Fetched> {
        let mut url = url;
        let mut authorization = authorization;
        for _ in 0..=MAX_REDIRECTS {
            admit(&url, self.plain_http)?;
            if self.clock.now_ms() >= self.deadline_ms {
                return Err(Finding::new(Verdict::Timeout, Why::NoAnswerInTime));
            }
            let answer = self.fetcher.get(&url, authorization)?;
            if !is_redirect(answer.status) {
                return Ok(answer);
            }
            let next = answer
                .header("location")
                .and_then(|location| url.join(location).ok())
                .ok_or_else(|| Finding::new(Verdict::NotARegistry, Why::NoRegistryApi).status(answer.status))?;
            if next.scheme() != "https" {
                return Err(Finding::new(Verdict::Blocked, Why::PlainHttp).status(answer.status));
            }
            if !same_origin(&url, &next) {
                authorization = None;
            }
            url = next;
        }
        Err(Finding::new(Verdict::NotARegistry, Why::TooManyRedirects))
    }

    /// Runs the handshake; `Ok` is the finding of a registry that accepted the credentials.
    pub fn check(&self, base: &Url, auth: &RegistryAuth, repository: Option<&Repository>) -> Finding {
        self.run(base, auth, repository).unwrap_or_else(|finding| finding)
    }

    fn run(&self, base: &Url, auth: &RegistryAuth, repository: Option<&Repository>) -> Step<Finding> {
        let v2 = base.join("/v2/").expect("a base URL takes a path");
        let first = self.fetch(v2.clone(), None)?;
        let authorization = match first.status {
            200 => {
                require_registry(&first)?;
                None
            }
            401 => Some(self.login(&v2, &first, auth, repository)?),
            404 => return Err(Finding::new(Verdict::NotARegistry, Why::NoRegistryApi).status(404)),
            _ => return Err(unexpected(&first)),
        };
        match repository {
            None => Ok(Finding::new(Verdict::Ok, Why::Accepted).status(200)),
            Some(repository) => self.can_pull(base, repository, authorization.as_deref()),
        }
    }

    /// Answers the challenge of `/v2/`; the `Authorization` value that the registry accepted.
    fn login(&self, v2: &Url, first: &Fetched, auth: &RegistryAuth, repository: Option<&Repository>) -> Step<String> {
        let challenges = parse_all(first.all("www-authenticate"));
        let bearer = challenges.iter().find(|c| c.scheme == "bearer" && c.param("realm").is_some());
        let basic = challenges.iter().any(|c| c.scheme == "basic");
        let authorization = match (bearer, basic) {
            (Some(challenge), _) => format!("Bearer {}", self.token(challenge, auth, repository)?),
            (None, true) => basic_authorization(auth),
            (None, false) => return Err(Finding::new(Verdict::NotARegistry, Why::NoChallenge).status(401)),
        };
        let answer = self.fetch(v2.clone(), Some(&authorization))?;
        match answer.status {
            200 => require_registry(&answer).map(|()| authorization),
            _ => Err(unexpected(&answer)),
        }
    }

    /// The token service: basic auth, the registry's `service`, and the repository's pull scope
    /// (or the challenge's own scope when no repository was named).
    fn token(&self, challenge: &Challenge, auth: &RegistryAuth, repository: Option<&Repository>) -> Step<String> {
        let realm = challenge.param("realm").unwrap_or_default();
        let mut url = Url::parse(realm).map_err(|_| Finding::new(Verdict::NotARegistry, Why::NoChallenge))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            match (repository, challenge.param("scope")) {
                (Some(repository), _) => {
                    query.append_pair("scope", &format!("repository:{}:pull", repository.as_str()));
                }
                (None, Some(scope)) => {
                    query.append_pair("scope", scope);
                }
                (None, None) => {}
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let answer = self.fetch(url, Some(&basic_authorization(auth)))?;
        if answer.status != 200 {
            return Err(unexpected(&answer));
        }
        let bad = || Finding::new(Verdict::NotARegistry, Why::BadTokenAnswer).status(200);
        let json: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| bad())?;
        ["token", "access_token"]
            .iter()
            .filter_map(|field| json.get(field).and_then(|v| v.as_str()))
            .find(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .ok_or_else(bad)
    }

    fn can_pull(&self, base: &Url, repository: &Repository, authorization: Option<&str>) -> Step<Finding> {
        let url = base.join(&format!("/v2/{}/tags/list", repository.as_str())).expect("repository names are paths");
        let answer = self.fetch(url, authorization)?;
        match answer.status {
            200 => Ok(Finding::new(Verdict::Ok, Why::AcceptedWithRepository).status(200)),
            404 => Err(Finding::new(Verdict::Forbidden, Why::RepositoryNotVisible).status(404)),
            _ => Err(unexpected(&answer)),
        }
    }
}

/// A registry says so in every answer of its API (the distribution spec's version header).
fn require_registry(answer: &Fetched) -> Step<()> {
    match answer.header(API_VERSION_HEADER) {
        Some(_) => Ok(()),
        None => Err(Finding::new(Verdict::NotARegistry, Why::NoRegistryApi).status(answer.status)),
    }
}

fn basic_authorization(auth: &RegistryAuth) -> String {
    format!("Basic {}", auth.auth())
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
