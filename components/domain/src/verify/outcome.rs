//! What a check found: one result per registry, in the contract's words, with a message of ours.
//! Nothing here ever holds a credential, a token or a byte of a registry's answer.

use serde::{Deserialize, Serialize};

pub use crate::check::{LastCheck, RegistryCheck, Verdict, VerificationSummary};

/// Why a check stopped where it did: the verdict, the status that decided it (when one came),
/// and which of our messages explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    pub status: Option<u16>,
    pub why: Why,
}

/// The messages: ours, short, each saying what to do. Never text from the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Accepted,
    AcceptedWithRepository,
    WrongCredentials,
    NoAccess,
    RepositoryNotVisible,
    CannotConnect,
    RegistryFailed,
    UntrustedCertificate,
    NoRegistryApi,
    NoChallenge,
    BadTokenAnswer,
    TooManyRedirects,
    PrivateAddress,
    PlainHttp,
    DestinationBlocked,
    NoAnswerInTime,
}

impl Why {
    pub fn message(self) -> &'static str {
        match self {
            Why::Accepted => "The registry accepted the credentials.",
            Why::AcceptedWithRepository => "The registry accepted the credentials and they can pull the repository.",
            Why::WrongCredentials => {
                "The registry refused the username or password; check them (a token may have expired or been revoked)."
            }
            Why::NoAccess => "The registry accepted the login but refused access; check the account's permissions.",
            Why::RepositoryNotVisible => {
                "The repository does not exist or these credentials cannot see it; check its name and the account's permissions."
            }
            Why::CannotConnect => {
                "Could not connect to the registry; check the host name and port, and that it is reachable from this service."
            }
            Why::RegistryFailed => "The registry answered with a server error; try again later.",
            Why::UntrustedCertificate => {
                "The registry's TLS certificate is not trusted or not valid for its name; a private CA must be added by the operator."
            }
            Why::NoRegistryApi => {
                "The server does not answer as a Docker registry (no registry API at /v2/); check the registry address."
            }
            Why::NoChallenge => "The registry asks for a login it does not describe; check the registry address.",
            Why::BadTokenAnswer => "The registry's token service gave no usable token; check the registry address.",
            Why::TooManyRedirects => "The registry redirected too often; check the registry address.",
            Why::PrivateAddress => {
                "The registry is a private, local or reserved address, which this service does not contact."
            }
            Why::PlainHttp => {
                "The registry is plain http, which this service contacts only when the operator allows that registry."
            }
            Why::DestinationBlocked => "The registry's address is on a network this service may not reach.",
            Why::NoAnswerInTime => "The registry did not answer in time; try again later, or check the address.",
        }
    }
}

impl Finding {
    pub fn new(verdict: Verdict, why: Why) -> Finding {
        Finding { verdict, status: None, why }
    }

    pub fn status(mut self, status: u16) -> Finding {
        self.status = Some(status);
        self
    }

    pub fn for_registry(self, registry: &str) -> RegistryCheck {
        RegistryCheck {
            registry: registry.to_owned(),
            result: self.verdict,
            http_status: self.status,
            message: self.why.message().to_owned(),
        }
    }
}

/// The answer of `POST …/{name}/verification`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub name: String,
    pub checked_at: String,
    pub ok: bool,
    pub registries: Vec<RegistryCheck>,
}

/// What the `verify` component answers create and patch on the internal path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub ok: bool,
    pub registries: Vec<RegistryCheck>,
}

impl Checked {
    pub fn of(registries: Vec<RegistryCheck>) -> Checked {
        Checked { ok: registries.iter().all(RegistryCheck::is_ok), registries }
    }
}
