//! The error answers, one component response per status, each with an example body produced by
//! the domain's own `finish` (the one place errors become responses), and the headers that matter.

use domain::error::{AuthFailure, Error, Internal};
use domain::http::{finish, RequestId, REQUEST_ID};
use serde_json::{json, Value};
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder};

use crate::schemas;

const EXAMPLE_REQUEST_ID: &str = "5d01c0ffee";
const EXAMPLE_TARGET: &str = "/v2/admin/dockerRegistrySecrets/ghcr-pull";

/// What a status means, the headers it carries besides `x-request-id`, and an example error.
struct ErrorResponse {
    status: u16,
    name: &'static str,
    description: &'static str,
    headers: &'static [&'static str],
    example: Example,
}

enum Example {
    /// The body the domain answers for this error.
    Of(Error),
}

fn table() -> Vec<ErrorResponse> {
    use Example::Of;
    vec![
        ErrorResponse {
            status: 400,
            name: "BadRequest",
            description: "The request is malformed: body, name, Docker config, query parameter or tenant id \
(`InvalidRequest`, `InvalidSecretName`, `InvalidDockerConfig`, `SecretNameMismatch`, `InvalidQueryParameter`, \
`InvalidTenantId`, `InvalidQuota`). The message says which rule failed; it never quotes a credential.",
            headers: &[],
            example: Of(Error::InvalidSecretName(
                "The secret name may contain only lower-case letters, digits, '-' and '.'".into(),
            )),
        },
        ErrorResponse {
            status: 401,
            name: "Unauthorized",
            description: "The bearer token is missing or invalid (`Unauthorized`); which check failed is logged, \
not answered.",
            headers: &["WWW-Authenticate"],
            example: Of(Error::Unauthenticated(AuthFailure::Expired)),
        },
        ErrorResponse {
            status: 403,
            name: "Forbidden",
            description: "The token lacks the scope (`Forbidden`), the tenant holds its limit (`QuotaExceeded`, \
details `limit` and `used`), or the secret is managed by the platform (`UpdateManagedSecretNotAllowed`, \
`DeleteManagedSecretNotAllowed`), or, at pull time, a pod's service-account token is not accepted or its \
service account is bound to no secret (`WorkloadNotPermitted`).",
            headers: &[],
            example: Of(Error::QuotaExceeded { limit: 50, used: 50 }),
        },
        ErrorResponse {
            status: 404,
            name: "NotFound",
            description: "No secret of that name in the tenant (`SecretNotFound`), or none of its secrets covers the \
image or registry asked about (`NoMatchingCredentials`: pull anonymously).",
            headers: &[],
            example: Of(Error::SecretNotFound),
        },
        ErrorResponse {
            status: 405,
            name: "MethodNotAllowed",
            description: "The path does not take this method; `Allow` lists those it takes.",
            headers: &["Allow"],
            example: Of(Error::MethodNotAllowed { allow: "GET, PATCH, DELETE" }),
        },
        ErrorResponse {
            status: 409,
            name: "Conflict",
            description: "The tenant already holds a secret of that name (`SecretNameExists`), or a verification \
of the secret is already running (`VerificationInProgress`).",
            headers: &[],
            example: Of(Error::SecretNameExists),
        },
        ErrorResponse {
            status: 412,
            name: "PreconditionFailed",
            description: "The secret has changed since the version in `If-Match` (`PreconditionFailed`).",
            headers: &[],
            example: Of(Error::PreconditionFailed),
        },
        ErrorResponse {
            status: 413,
            name: "PayloadTooLarge",
            description: "The body is over 64 KiB (`PayloadTooLarge`); nothing of it was read.",
            headers: &[],
            example: Of(Error::PayloadTooLarge { limit: domain::http::MAX_BODY_BYTES }),
        },
        ErrorResponse {
            status: 415,
            name: "UnsupportedMediaType",
            description: "The body is not sent as JSON (`UnsupportedMediaType`).",
            headers: &[],
            example: Of(Error::UnsupportedMediaType),
        },
        ErrorResponse {
            status: 422,
            name: "CredentialsRejected",
            description: "With `verify=true`: a registry did not accept the credentials, so nothing was stored \
(`CredentialsRejected`); `details.registries` holds each registry's result. For a secret that mints: the provider \
(AWS, Google, Microsoft Entra ID or the registry's exchange) refused the stored identity (`ProviderRefused`); the \
message says what to fix.",
            headers: &[],
            example: Of(Error::CredentialsRejected {
                registries: vec![domain::verify::RegistryCheck {
                    registry: "ghcr.io".into(),
                    result: domain::verify::Verdict::Unauthorized,
                    http_status: Some(401),
                    message: "The registry refused the username and password: correct them and verify again.".into(),
                }],
            }),
        },
        ErrorResponse {
            status: 500,
            name: "InternalError",
            description: "The platform failed (configuration, encryption, a corrupt stored value): \
`InternalError`, with nothing more said; the kind is logged.",
            headers: &[],
            example: Of(Error::Internal(Internal::CorruptRecord)),
        },
        ErrorResponse {
            status: 502,
            name: "BadGateway",
            description: "For a secret that mints: its provider (AWS, Google, Microsoft Entra ID or the registry's \
exchange) answered, but with nothing we can use as a registry credential (`ProviderAnswerUnusable`): no token, a token \
that does not decode, no credential for one of the identity's registries. Not an outage, so no `Retry-After`: asking \
again gets the same answer; nothing was minted or cached. The message names the provider and what was wrong, never \
a value from its answer.",
            headers: &[],
            example: Of(Error::ProviderAnswerUnusable(
                "AWS answered, but ecr:GetAuthorizationToken's answer holds no authorizationData; nothing was minted or cached, and asking again would get the same answer: report it to the operator".into(),
            )),
        },
        ErrorResponse {
            status: 503,
            name: "ServiceUnavailable",
            description: "Try again after `Retry-After` seconds. `TenantBusy`: the tenant's write log was too \
busy to join in time, or a write's slot was taken over while its writer stalled; nothing was written; \
or a read found the secret replaced under it by the tenant's writes in every one of its rounds. \
`StoreUnavailable`: the key-value store failed. `WriteOutcomeUnknown`: a write was proposed but its \
outcome could not be learned (the store failed under it, or its writer was paused for longer than the \
log remembers outcomes); it takes effect whole or not at all. After either of the last two, read \
before retrying a write. `LogFormatUnknown`: a rolling upgrade is under way and this node cannot yet \
read the tenant's newest state; nothing was written. `NotReady` (the readiness probe): the store did not answer. \
`ProviderUnavailable`, for a secret that mints: its provider could not be reached, timed out, or answered \
5xx or 429 (throttling); nothing was minted or cached. `IdentityProviderUnavailable`: the token needs \
signing keys of its issuer that the service does not have, and the issuer's provider could not be reached \
for them; the token may be good.",
            headers: &["Retry-After"],
            example: Of(Error::TenantBusy { retry_after_secs: 1 }),
        },
    ]
}

fn example(example: &Example) -> Value {
    let headers = domain::http::header_map([(REQUEST_ID.to_owned(), EXAMPLE_REQUEST_ID.as_bytes().to_vec())]);
    let id = RequestId::of(&headers);
    match example {
        Example::Of(error) => {
            let outcome = finish(Err(error.clone()), &id, EXAMPLE_TARGET);
            serde_json::from_slice(outcome.response.body()).expect("error bodies are JSON")
        }
    }
}

/// The component name of a status's response; panics for a status the table lacks, so an
/// operation cannot list a status without saying what it means.
pub fn name(status: u16) -> &'static str {
    table()
        .into_iter()
        .find(|r| r.status == status)
        .unwrap_or_else(|| panic!("no component response for status {status}"))
        .name
}

pub fn components() -> Vec<(&'static str, Response)> {
    table()
        .iter()
        .map(|r| {
            let mut response = ResponseBuilder::new().description(r.description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schemas::ERROR)))
                    .example(Some(example(&r.example)))
                    .build(),
            );
            for name in r.headers.iter().copied().chain([REQUEST_ID]) {
                response = response.header(name, header(name));
            }
            (r.name, response.build())
        })
        .collect()
}

/// A response header the API sets, described once.
pub fn header(name: &str) -> Header {
    let (description, example_schema) = match name {
        REQUEST_ID => (
            "The request's id: the caller's `x-request-id` when sane, a fresh one otherwise; also in \
error bodies and log lines.",
            json!({"type": "string"}),
        ),
        "ETag" => (
            "The secret's version, quoted (`\"7\"`): send it back in `If-Match`.",
            json!({"type": "string", "pattern": "^\"[0-9]+\"$"}),
        ),
        "Location" => ("The new secret's path.", json!({"type": "string"})),
        "Cache-Control" => ("`no-store`: credentials are never cached.", json!({"type": "string"})),
        "WWW-Authenticate" => ("`Bearer error=\"invalid_token\"`.", json!({"type": "string"})),
        "Allow" => ("The methods the path takes.", json!({"type": "string"})),
        "Retry-After" => ("Seconds to wait before trying again.", json!({"type": "string", "pattern": "^[0-9]+$"})),
        other => panic!("no description for header {other}"),
    };
    HeaderBuilder::new().schema(schemas::inline(example_schema)).description(Some(description)).build()
}
