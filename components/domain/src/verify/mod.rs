//! Verifying credentials against the registry itself (`POST …/{name}/verification`, and create and
//! patch with `?verify=true`): the `docker login` handshake, the rules on where a check may go, at
//! most one check per secret in flight, and the outcome kept in the metadata.
//!
//! Only the `verify` component reaches the network ([`fetch::Fetcher`], implemented in
//! `spin-bridge` over Spin's outgoing HTTP); create and patch reach the `verify` component through
//! service chaining ([`VerifyComponent`]), on [`CREDENTIAL_CHECK_PATH`], which the gateway never
//! routes (it forwards only the paths of `routes`).

pub mod challenge;
pub mod fetch;
pub mod handshake;
pub mod inflight;
pub mod outcome;
pub mod run;
pub mod target;

use std::time::Duration;

pub use fetch::{FetchError, Fetched, Fetcher};
pub use outcome::{Checked, LastCheck, RegistryCheck, Report, Verdict, VerificationSummary};
pub use target::{PlainHttpRegistries, Repository};

use crate::clock::Clock;
use crate::dockerconfig::{host_of, DockerConfig};
use crate::error::Error;
use handshake::Session;
use target::registry_base;

/// The `verify` component's internal path for credentials not yet stored (create, patch).
pub const CREDENTIAL_CHECK_PATH: &str = "/internal/credential-check";

/// The operator's settings (Spin variables `verify_timeout_ms`, `verify_insecure_registries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckPolicy {
    /// Connect and first-byte timeout of each request (and between bytes of an answer).
    pub timeout: Duration,
    pub plain_http: PlainHttpRegistries,
}

impl CheckPolicy {
    pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
    /// Requests a check may start, at most: the handshake's four plus a margin for redirects.
    const REQUESTS: u64 = 4;

    /// No request of a check starts later than this after its start.
    pub fn budget_ms(&self) -> u64 {
        self.timeout_ms() * Self::REQUESTS
    }

    /// The longest a check can take: its budget, plus one request started at the last moment
    /// (connect, first byte, and the rest of the answer, each bounded by the timeout).
    pub fn lease_ms(&self) -> u64 {
        self.budget_ms() + 3 * self.timeout_ms()
    }

    fn timeout_ms(&self) -> u64 {
        (self.timeout.as_millis() as u64).max(1)
    }
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            plain_http: PlainHttpRegistries::default(),
        }
    }
}

/// What running checks needs: the network, a clock for the deadline, the policy.
pub struct Checker<'a> {
    pub fetcher: &'a dyn Fetcher,
    pub clock: &'a dyn Clock,
    pub policy: &'a CheckPolicy,
}

impl Checker<'_> {
    /// One result per `auths` entry, in the config's order, under one deadline for them all.
    pub fn check_all(&self, config: &DockerConfig, repository: Option<&Repository>) -> Vec<RegistryCheck> {
        let deadline_ms = self.clock.now_ms() + self.policy.budget_ms();
        let session =
            Session { fetcher: self.fetcher, clock: self.clock, plain_http: &self.policy.plain_http, deadline_ms };
        config
            .auths()
            .iter()
            .map(|(server, auth)| {
                let finding = match registry_base(server, &self.policy.plain_http) {
                    Ok(base) => session.check(&base, auth, repository),
                    Err(refused) => refused,
                };
                finding.for_registry(host_of(server))
            })
            .collect()
    }
}

/// Create and patch ask the `verify` component (service chaining) to check credentials first.
pub trait VerifyComponent {
    /// `authorization` is the caller's header, forwarded so the `verify` component authenticates
    /// the caller itself.
    fn check(&self, authorization: &str, request_id: &str, config: &DockerConfig) -> Result<Checked, Error>;
}

/// What a component may use to verify credentials and mint them: the registries and the
/// providers (the `verify` component only: only it may reach them) or the `verify` component
/// (create and patch to verify, the export to mint).
pub struct Outbound<'a> {
    pub registries: &'a dyn Fetcher,
    pub verify_component: &'a dyn VerifyComponent,
    pub policy: &'a CheckPolicy,
    pub providers: &'a dyn fetch::Sender,
    pub endpoints: &'a crate::mint::ProviderEndpoints,
    pub mint_component: &'a dyn crate::mint::MintComponent,
}

/// `?verify=true` or `?verify=false` (absent: false); any other value of `verify` is a 400.
pub fn wants_verification(query: Option<&str>) -> Result<bool, Error> {
    let mut wanted = false;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "verify" {
            wanted = match value.as_ref() {
                "true" => true,
                "false" => false,
                _ => return Err(Error::InvalidQuery("`verify` must be `true` or `false`".into())),
            };
        }
    }
    Ok(wanted)
}

/// The optional body of `POST …/verification`: `{"repository": "org/app"}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub repository: Option<String>,
}

impl VerifyRequest {
    pub fn repository(&self) -> Result<Option<Repository>, Error> {
        self.repository.as_deref().map(Repository::parse).transpose()
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
