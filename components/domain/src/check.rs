//! What a credential check found, as data: the types that verification shares with errors
//! (`CredentialsRejected` carries [`RegistryCheck`]s), with the index and the metadata ([`LastCheck`],
//! [`VerificationSummary`]). They sit on a low floor so that `error`, `dockerconfig` and `index` can
//! hold them without importing `verify` (which imports all three). See the floors in `lib.rs`.

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;

/// The contract's `result` values.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Ok,
    Unauthorized,
    Forbidden,
    Unreachable,
    Tls,
    NotARegistry,
    Blocked,
    Timeout,
}

/// One registry's result, as answered (`registry` is the host the metadata lists).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryCheck {
    pub registry: String,
    pub result: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub message: String,
}

impl RegistryCheck {
    pub fn is_ok(&self) -> bool {
        self.result == Verdict::Ok
    }
}

/// The last outcome, as the index keeps it (compact: it is in every read of the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// Unix milliseconds.
    pub at: u64,
    pub ok: bool,
}

/// The last outcome, as get and list show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    pub checked_at: String,
    pub ok: bool,
}

impl From<LastCheck> for VerificationSummary {
    fn from(last: LastCheck) -> Self {
        VerificationSummary { checked_at: rfc3339(last.at), ok: last.ok }
    }
}
