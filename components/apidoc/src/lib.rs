//! The API's OpenAPI 3.1 document, built from `domain::routes::ROUTES` (one operation per route,
//! and nothing else) and the domain's response types (their `utoipa::ToSchema` derives, behind
//! domain's `openapi` feature). Native only: the console serves the committed copy,
//! `components/console/assets/openapi.json`, which `tests/document.rs` keeps equal to this.
//!
//! To describe a new route: add it to `ROUTES`, then give its operation an entry in
//! [`operations::describe`] (summary, scopes, body, success, the statuses it answers); the build
//! of the document panics on a route without one.

mod operations;
mod responses;
mod schemas;

use domain::routes::ROUTES;
use utoipa::openapi::path::{HttpMethod, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, PathsBuilder};

pub use operations::{describe, Description};

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearerJwt";

const ABOUT: &str = "Docker registry credentials (image pull secrets) as a multi-tenant API, \
wire-compatible with SAP AI Core's admin API for Docker registry secrets (`/v2/admin/dockerRegistrySecrets`). \
Deliberate differences from SAP: writes answer 201 and 200 (SAP: 202), a taken name is 409, and names are \
Kubernetes DNS-1123 subdomains (SAP: 63 characters, `_` allowed).\n\n\
Every error is `{\"error\": {\"code\", \"message\", \"requestId\", \"target\", \"details\"}}` with the request id \
also in `x-request-id`. A path answers 405 with `Allow` to a method it does not take, and an unknown path \
under `/v2` answers 404 `NotFound`.";

fn method(name: &str) -> HttpMethod {
    match name {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => panic!("ROUTES has a method the document cannot describe: {other}"),
    }
}

/// The whole document, as utoipa builds it (see [`json`] for what is served).
fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let operation = operations::operation(route, &describe(route.operation));
        paths = paths.path(route.path, PathItem::new(method(route.method), operation));
    }
    let bearer = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "A JWT signed by a key of the `auth_jwks` JWKS (RS256, ES256 or EdDSA, chosen by `kid`), with `iss`, \
`aud`, `exp` and a tenant claim. Scopes (`scope`: space-separated or an array): `regsecrets.viewer` (list, get, \
quota), `regsecrets.admin` (that, plus create, modify, delete), `regsecrets.puller` (the credentials export and the lookup at pull time), \
`regsecrets.operator` (tenant quotas, re-encryption, managed secrets). Each operation's security requirement \
lists the scopes that let a token call it (any one of them).",
        ))
        .build();
    let components = schemas::register(ComponentsBuilder::new())
        .responses_from_iter(responses::components())
        .security_scheme(BEARER, SecurityScheme::Http(bearer));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("regsecrets")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(ABOUT))
                .license(Some(LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build()))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some([
            TagBuilder::new().name(operations::SECRETS_TAG).build(),
            TagBuilder::new().name(operations::QUOTA_TAG).build(),
            TagBuilder::new().name(operations::OPERATOR_TAG).build(),
            TagBuilder::new().name(operations::PULL_TAG).build(),
            TagBuilder::new().name(operations::PROBES_TAG).build(),
        ]))
        .build()
}

/// The document as the console serves it: pretty JSON, ending in a newline.
pub fn json() -> String {
    let mut value = serde_json::to_value(document()).expect("the document serializes");
    fix_link_field_names(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("the document serializes");
    text.push('\n');
    text
}

/// utoipa 5 serializes a Link's fields in snake case (`operation_id`); OpenAPI spells them
/// `operationId`, `operationRef` and `requestBody`, and clients ignore the others.
fn fix_link_field_names(document: &mut serde_json::Value) {
    let Some(paths) = document["paths"].as_object_mut() else { return };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in
            [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
        {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}
