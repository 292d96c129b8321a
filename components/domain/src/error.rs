//! The one error type of the API and its one mapping to HTTP.
//!
//! Every refusal the service can give is a variant here; [`Error::status`] and [`Error::code`]
//! are the only place that decides how it is answered. Internal faults carry a *kind* that is
//! logged, never a value: nothing that reaches this type may contain secret material.

use std::fmt;

/// Why a token was refused. Logged by kind; the client only ever sees "invalid token".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingHeader,
    NotBearer,
    Malformed,
    UnsupportedAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
    MissingExpiry,
    MissingTenant,
    InvalidTenant,
    InvalidScopeClaim,
    /// The verifier's own configuration (`auth_jwks`, ...) is missing or unusable.
    Misconfigured,
    /// An ID token's `nonce` is missing or not the one its login sent.
    WrongNonce,
    /// A console session cookie names no session (never made, signed out, or ended).
    NoSession,
    /// The console session's access token has expired (or the keys that verified it are no longer
    /// fresh): the console refreshes it through `/auth/session`.
    SessionExpired,
    /// A state-changing call on a session cookie without the console's anti-CSRF header, or from
    /// another origin: treated as a call without credentials.
    CsrfCheckFailed,
}

/// Why the console's sign-in (`signin`) refused a login or its callback: logged, and audited as a
/// refused `console.signin`; the browser sees only that sign-in failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFailure {
    /// The `console_oidc_*` variables are not set (or unusable).
    NotConfigured,
    /// The provider answered the authorization request with an error (the user declined, say).
    ProviderError,
    /// No `state`, or it differs from the login cookie of this browser.
    StateMismatch,
    /// No login in progress has this `state`: forged, ended, or its slot taken by a later login.
    StateUnknown,
    /// The login's callback was already served (a replayed code or state).
    Replayed,
    /// The login is older than `signin::LOGIN_TTL_SECS`.
    Expired,
    /// No `code` in the callback.
    MissingCode,
    /// The token endpoint refused the code (HTTP status), e.g. a used code or a wrong verifier.
    ExchangeRefused(u16),
    /// The token endpoint's answer is not a token answer with an ID token and an access token.
    UnusableTokens,
    /// The ID token failed verification (issuer, audience = client id, nonce, signature, times).
    IdToken(AuthFailure),
    /// The access token failed verification as an API caller's token would.
    AccessToken(AuthFailure),
    /// The ID token and the access token name different subjects.
    SubjectMismatch,
}

/// Why a workload's token was refused: logged, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadFailure {
    Malformed,
    UntrustedIssuer,
    /// Signature, audience, times or key: the verifier's kind.
    Invalid(AuthFailure),
    /// No `kubernetes.io` claims, or they name another service account than `sub`.
    NotAServiceAccount,
    NotBound,
    /// The tenant requires a pod's token at pull time (`requirePodToken`), and none came.
    PodTokenRequired,
}

/// A fault of the platform underneath (store, configuration, randomness, crypto).
/// Answered with a generic 500; its `Display` is what gets logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Internal {
    /// The key-value store failed; the string is the store's error *kind*, never a key or value.
    Store(String),
    /// A stored value could not be decoded (corruption or a foreign writer).
    CorruptRecord,
    /// A required configuration value (Spin variable) is missing or malformed; names the variable.
    Config(&'static str),
    /// Encryption or decryption failed (wrong key, tampered value, no key with that id).
    Crypto(&'static str),
    /// Anything else the adapter met (e.g. service chaining failed); a short static description.
    Platform(&'static str),
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Internal::Store(kind) => write!(f, "key-value store error: {kind}"),
            Internal::CorruptRecord => f.write_str("stored record could not be decoded"),
            Internal::Config(variable) => write!(f, "configuration variable `{variable}` is missing or malformed"),
            Internal::Crypto(what) => write!(f, "encryption error: {what}"),
            Internal::Platform(what) => write!(f, "platform error: {what}"),
        }
    }
}

/// The error body's `details`: a JSON object, as SAP's `BckndError.details` is, so that clients
/// generated from SAP's document read it as a map. Left out of the body when empty.
pub type Details = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    // 400
    InvalidSecretName(String),
    InvalidDockerConfig(String),
    /// The body is not what the endpoint takes (bad JSON, wrong field types, both forms mixed).
    InvalidRequest(String),
    /// A PATCH body names another secret than its path.
    NameMismatch,
    /// `$top`, `$skip`, `$count`, `$search` or another query parameter is malformed.
    InvalidQuery(String),
    /// A tenant id in an operator path is not a valid tenant id.
    InvalidTenant(String),
    /// An operator's quota limit is out of range.
    InvalidQuota(String),
    // 401
    Unauthenticated(AuthFailure),
    // 403
    Forbidden,
    QuotaExceeded {
        limit: u32,
        used: u32,
    },
    UpdateManagedSecretNotAllowed,
    DeleteManagedSecretNotAllowed,
    /// A pod's service-account token was not accepted at pull time (`crate::workload`); why is
    /// logged, never answered.
    WorkloadNotPermitted(WorkloadFailure),
    // 404
    SecretNotFound,
    RouteNotFound,
    /// No secret of the tenant holds credentials for the image or registry asked about.
    NoMatchingCredentials,
    // 405
    MethodNotAllowed {
        allow: &'static str,
    },
    // 409
    SecretNameExists,
    /// A check of this secret is already running (at most one per secret in flight).
    VerificationInProgress,
    // 412
    PreconditionFailed,
    // 413
    PayloadTooLarge {
        limit: usize,
    },
    // 415
    UnsupportedMediaType,
    // 422
    /// `?verify=true` and a registry did not accept the credentials: nothing was stored.
    CredentialsRejected {
        registries: Vec<crate::check::RegistryCheck>,
    },
    /// A secret's provider (AWS, Google, Microsoft) or its registry refused the stored identity;
    /// the message says, in our words, what to fix. Nothing of the identity is in it.
    ProviderRefused(String),
    // 500
    Internal(Internal),
    // 502
    /// A secret's provider answered, but with something we cannot use as a registry credential
    /// (a shape we do not know, a token that does not decode, no credential for a registry): not
    /// an outage, so no `Retry-After`; the message names the provider and what was wrong, never a
    /// value from its answer. Nothing was minted or cached.
    ProviderAnswerUnusable(String),
    // 503
    /// The write could not start in time (the tenant's log is too busy to read), or its slot was
    /// taken over while its writer was away: nothing was written; retry later. Also a read whose
    /// secret was replaced under it in every round (`crate::reread`).
    TenantBusy {
        retry_after_secs: u64,
    },
    /// The write was proposed but its outcome could not be learned in time (the store stayed
    /// unreachable, or the log fell far behind): it is applied or refused as a whole, by whoever
    /// writes next; read before retrying.
    WriteOutcomeUnknown,
    /// The tenant's write log holds a view or an operation in a log format this build does not
    /// know (a rolling upgrade is under way): nothing was written; retry once every node runs the
    /// new release.
    LogFormatUnknown,
    /// The key-value store failed; the string is its error *kind* (logged, never answered).
    StoreUnavailable(String),
    /// The readiness probe: the store did not answer its read. The kind is logged.
    NotReady(Internal),
    /// A provider could not be reached, timed out, or answered 5xx or 429 (or throttled): nothing
    /// was minted or cached; retry later. The message names the provider.
    ProviderUnavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// A token needs signing keys of its issuer that we do not have, and the issuer's keys could
    /// not be fetched (`identity::discovery`): the token may be good; retry later. `why` is logged.
    /// The console's sign-in was refused (a login or its callback): 400.
    SignInRefused(SignInFailure),
    IdentityProviderUnavailable {
        retry_after_secs: u64,
        why: String,
    },
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidSecretName(_)
            | Error::InvalidDockerConfig(_)
            | Error::InvalidRequest(_)
            | Error::NameMismatch
            | Error::InvalidQuery(_)
            | Error::InvalidTenant(_)
            | Error::InvalidQuota(_)
            | Error::SignInRefused(_) => 400,
            Error::Unauthenticated(_) => 401,
            Error::Forbidden
            | Error::QuotaExceeded { .. }
            | Error::UpdateManagedSecretNotAllowed
            | Error::DeleteManagedSecretNotAllowed
            | Error::WorkloadNotPermitted(_) => 403,
            Error::SecretNotFound | Error::RouteNotFound | Error::NoMatchingCredentials => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::SecretNameExists | Error::VerificationInProgress => 409,
            Error::PreconditionFailed => 412,
            Error::PayloadTooLarge { .. } => 413,
            Error::UnsupportedMediaType => 415,
            Error::CredentialsRejected { .. } | Error::ProviderRefused(_) => 422,
            Error::Internal(_) => 500,
            Error::ProviderAnswerUnusable(_) => 502,
            Error::TenantBusy { .. }
            | Error::WriteOutcomeUnknown
            | Error::LogFormatUnknown
            | Error::StoreUnavailable(_)
            | Error::NotReady(_)
            | Error::ProviderUnavailable { .. }
            | Error::IdentityProviderUnavailable { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidSecretName(_) => "InvalidSecretName",
            Error::InvalidDockerConfig(_) => "InvalidDockerConfig",
            Error::InvalidRequest(_) => "InvalidRequest",
            Error::NameMismatch => "SecretNameMismatch",
            Error::InvalidQuery(_) => "InvalidQueryParameter",
            Error::InvalidTenant(_) => "InvalidTenantId",
            Error::InvalidQuota(_) => "InvalidQuota",
            Error::Unauthenticated(_) => "Unauthorized",
            Error::Forbidden => "Forbidden",
            Error::QuotaExceeded { .. } => "QuotaExceeded",
            Error::UpdateManagedSecretNotAllowed => "UpdateManagedSecretNotAllowed",
            Error::DeleteManagedSecretNotAllowed => "DeleteManagedSecretNotAllowed",
            Error::WorkloadNotPermitted(_) => "WorkloadNotPermitted",
            Error::SecretNotFound => "SecretNotFound",
            Error::RouteNotFound => "NotFound",
            Error::NoMatchingCredentials => "NoMatchingCredentials",
            Error::MethodNotAllowed { .. } => "MethodNotAllowed",
            Error::SecretNameExists => "SecretNameExists",
            Error::VerificationInProgress => "VerificationInProgress",
            Error::CredentialsRejected { .. } => "CredentialsRejected",
            Error::PreconditionFailed => "PreconditionFailed",
            Error::PayloadTooLarge { .. } => "PayloadTooLarge",
            Error::UnsupportedMediaType => "UnsupportedMediaType",
            Error::Internal(_) => "InternalError",
            Error::TenantBusy { .. } => "TenantBusy",
            Error::WriteOutcomeUnknown => "WriteOutcomeUnknown",
            Error::LogFormatUnknown => "LogFormatUnknown",
            Error::StoreUnavailable(_) => "StoreUnavailable",
            Error::NotReady(_) => "NotReady",
            Error::ProviderRefused(_) => "ProviderRefused",
            Error::ProviderUnavailable { .. } => "ProviderUnavailable",
            Error::ProviderAnswerUnusable(_) => "ProviderAnswerUnusable",
            Error::IdentityProviderUnavailable { .. } => "IdentityProviderUnavailable",
            Error::SignInRefused(_) => "SignInRefused",
        }
    }

    /// The message a client sees. Never includes the reason of a 401 or the kind of a 500.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidSecretName(why)
            | Error::InvalidDockerConfig(why)
            | Error::InvalidRequest(why)
            | Error::InvalidQuery(why)
            | Error::InvalidTenant(why)
            | Error::InvalidQuota(why)
            | Error::ProviderRefused(why)
            | Error::ProviderAnswerUnusable(why) => why.clone(),
            Error::ProviderUnavailable { message, .. } => message.clone(),
            Error::NameMismatch => {
                "The name in the body differs from the name in the path; a secret cannot be renamed".into()
            }
            Error::Unauthenticated(_) => "The bearer token is missing or invalid".into(),
            Error::Forbidden => "The token does not grant the scope this call needs".into(),
            Error::QuotaExceeded { limit, used } => {
                format!("The tenant holds {used} of at most {limit} Docker registry secrets; delete one or ask the platform operator to raise the limit")
            }
            Error::UpdateManagedSecretNotAllowed => {
                "This secret is managed by the platform and cannot be modified".into()
            }
            Error::DeleteManagedSecretNotAllowed => {
                "This secret is managed by the platform and cannot be deleted".into()
            }
            Error::WorkloadNotPermitted(_) => {
                "The workload's service-account token is not accepted, or its service account is bound to no secret".into()
            }
            Error::SecretNotFound => "No Docker registry secret of that name exists".into(),
            Error::RouteNotFound => "No such resource".into(),
            Error::NoMatchingCredentials => {
                "None of the tenant's secrets holds credentials for this image or registry; pull anonymously or create a secret for it".into()
            }
            Error::MethodNotAllowed { allow } => format!("This resource takes only {allow}"),
            Error::SecretNameExists => "A Docker registry secret of that name already exists".into(),
            Error::VerificationInProgress => {
                "A verification of this secret is already running; try again when it has finished".into()
            }
            Error::CredentialsRejected { .. } => {
                "A registry did not accept the credentials, so nothing was stored; `details.registries` says what each registry answered".into()
            }
            Error::PreconditionFailed => "The secret has changed since the version given in If-Match".into(),
            Error::PayloadTooLarge { limit } => format!("The request body is larger than {limit} bytes"),
            Error::UnsupportedMediaType => "The request body must be JSON (Content-Type: application/json)".into(),
            Error::Internal(_) => "The service could not complete the request; try again later".into(),
            Error::TenantBusy { retry_after_secs } => format!(
                "Other writes of this tenant's secrets are in progress; nothing was changed, retry in {retry_after_secs} s"
            ),
            Error::WriteOutcomeUnknown => "The write was accepted but its outcome could not be confirmed in time; it takes effect whole or not at all: read the secret before retrying".into(),
            Error::LogFormatUnknown => {
                "The service is being upgraded and this node cannot yet read the tenant's newest state; nothing was changed, retry shortly".into()
            }
            Error::StoreUnavailable(_) => {
                "The storage behind the service is unavailable; a write takes effect whole or not at all: read before retrying".into()
            }
            Error::NotReady(_) => "The store did not answer; this node cannot serve requests now".into(),
            Error::IdentityProviderUnavailable { .. } => {
                "The token's issuer could not be reached for its signing keys; retry later".into()
            }
            Error::SignInRefused(SignInFailure::NotConfigured) => {
                "Signing in with the identity provider is not configured; paste a token in the console".into()
            }
            Error::SignInRefused(_) => "Sign-in failed or was already completed; start again from the console".into(),
        }
    }

    pub fn details(&self) -> Details {
        let mut details = Details::new();
        if let Error::QuotaExceeded { limit, used } = self {
            details.insert("limit".into(), (*limit).into());
            details.insert("used".into(), (*used).into());
        }
        if let Error::CredentialsRejected { registries } = self {
            details.insert("registries".into(), serde_json::to_value(registries).unwrap_or_default());
        }
        details
    }

    /// What the log line says about this error: the kind, never a value from the request.
    pub fn log_reason(&self) -> Option<String> {
        match self {
            Error::Unauthenticated(why) => Some(format!("authentication refused: {why:?}")),
            Error::Internal(fault) => Some(fault.to_string()),
            Error::StoreUnavailable(kind) => Some(format!("key-value store error: {kind}")),
            Error::WorkloadNotPermitted(why) => Some(format!("workload identity refused: {why:?}")),
            Error::NotReady(fault) => Some(format!("not ready: {fault}")),
            Error::IdentityProviderUnavailable { why, .. } => Some(format!("issuer keys unavailable: {why}")),
            Error::SignInRefused(why) => Some(format!("console sign-in refused: {why:?}")),
            _ => None,
        }
    }
}

impl Error {
    /// Seconds a client should wait before retrying, for the answers that say so (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::TenantBusy { retry_after_secs }
            | Error::ProviderUnavailable { retry_after_secs, .. }
            | Error::IdentityProviderUnavailable { retry_after_secs, .. } => Some(*retry_after_secs),
            Error::WriteOutcomeUnknown | Error::StoreUnavailable(_) => Some(1),
            Error::LogFormatUnknown => Some(LOG_FORMAT_RETRY_AFTER_SECS),
            Error::NotReady(_) => Some(NOT_READY_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// How soon a client may retry after `LogFormatUnknown` (a rolling upgrade replaces a node in
/// seconds to minutes).
pub const LOG_FORMAT_RETRY_AFTER_SECS: u64 = 5;

/// How soon an orchestrator's readiness probe may ask again after `NotReady`.
pub const NOT_READY_RETRY_AFTER_SECS: u64 = 5;

/// A failing store is unavailable (503, retry), not a fault of ours (500).
impl From<Internal> for Error {
    fn from(fault: Internal) -> Self {
        match fault {
            Internal::Store(kind) => Error::StoreUnavailable(kind),
            fault => Error::Internal(fault),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Error {}
