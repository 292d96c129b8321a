//! What each operation of `ROUTES` takes and answers. One entry per operation id; adding a
//! route means adding its entry to [`describe`], and a response it can give means adding its
//! status to `errors` (the component responses of `responses.rs` say what each status means).

use domain::routes::Route;
use serde_json::{json, Value};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder, ResponsesBuilder};

use crate::responses::{self, header};
use crate::{schemas, BEARER};

pub const SECRETS_TAG: &str = "Docker registry secrets";
pub const QUOTA_TAG: &str = "Resource quota";
pub const OPERATOR_TAG: &str = "Operator";
pub const PULL_TAG: &str = "Pulling";
pub const PROBES_TAG: &str = "Probes";

const VIEWER: &str = "regsecrets.viewer";
const ADMIN: &str = "regsecrets.admin";
const PULLER: &str = "regsecrets.puller";
const OPERATOR: &str = "regsecrets.operator";

/// The media types a body is taken as.
const JSON: &[&str] = &["application/json"];
const JSON_OR_MERGE_PATCH: &[&str] = &["application/json", "application/merge-patch+json"];

pub struct Body {
    pub schema: &'static str,
    /// Whether a body must be sent (the verification's is optional).
    pub required: bool,
    pub media_types: &'static [&'static str],
    pub examples: Vec<(&'static str, Value)>,
}

pub struct Success {
    pub status: u16,
    pub description: &'static str,
    pub schema: &'static str,
    /// Response headers besides `x-request-id` (which every answer carries).
    pub headers: &'static [&'static str],
    pub example: Value,
    /// Links for stateful clients: (name, operation id), the secret's name from this answer's `id`.
    pub links: &'static [(&'static str, &'static str)],
}

pub struct Description {
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    /// Any one of these scopes lets a token call it.
    pub scopes: &'static [&'static str],
    /// Query and header parameters (path parameters come from the route's template).
    pub parameters: Vec<Parameter>,
    pub body: Option<Body>,
    pub success: Success,
    /// Every other status the call can answer; each is a component response of `responses.rs`.
    pub errors: &'static [u16],
}

fn query(name: &str, description: &str, schema: Value, example: Value) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schemas::inline(schema)))
        .example(Some(example))
        .build()
}

fn verify_first() -> Parameter {
    query(
        "verify",
        "`true`: check the credentials against each registry first, and store nothing (422 \
`CredentialsRejected`) unless every registry accepts them.",
        json!({"type": "boolean"}),
        json!(true),
    )
}

fn if_match() -> Parameter {
    ParameterBuilder::new()
        .name("If-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Only if the secret is still at this version: its `ETag` (`\"7\"`), a list of them, or `*`. Otherwise 412.",
        ))
        .schema(Some(schemas::inline(json!({"type": "string"}))))
        .example(Some(json!("\"7\"")))
        .build()
}

const CREATED: &str = "Secret has been created";
const MODIFIED: &str = "Secret has been modified";
const DELETED: &str = "Docker Registry Secret has been deleted";

fn metadata_example(name: &str, version: u64) -> Value {
    json!({"name": name, "registries": ["ghcr.io"], "managed": false, "createdAt": "2026-01-05T09:30:00Z",
        "modifiedAt": "2026-01-05T09:30:00Z", "version": version})
}

fn secret_body_examples(with_name: bool) -> Vec<(&'static str, Value)> {
    let mut structured = json!({"registry": "ghcr.io", "username": "bot", "password": "s3cret"});
    let mut sap = json!({"data": {".dockerconfigjson": "{\"auths\":{\"ghcr.io\":{\"username\":\"bot\",\"password\":\"s3cret\"}}}"}});
    if with_name {
        structured["name"] = json!("ghcr-pull");
        sap["name"] = json!("ghcr-pull");
    }
    vec![("kubectl form", structured), ("SAP form", sap)]
}

fn workload_example() -> Value {
    json!({"issuers": [{"issuer": "https://oidc.cluster-a.example.com", "audience": "regsecrets",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "sa-key-1", "use": "sig", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}],
        "bindings": [{"issuer": "https://oidc.cluster-a.example.com", "subject": "system:serviceaccount:shop:checkout",
            "secrets": ["payments-registry"]}]})
}

/// The entry of an operation id of `ROUTES`.
pub fn describe(operation: &str) -> Description {
    match operation {
        "createSecret" => Description {
            tag: SECRETS_TAG,
            summary: "Create a secret",
            description: "Stores a registry's credentials under a name unique in the tenant, from SAP's form (`data` \
with a `.dockerconfigjson`: the Docker config's JSON, or that base64-encoded) or kubectl's (`registry`, `username`, \
`password`, `email`). A token with `regsecrets.operator` creates a *managed* secret. Refused with 403 \
`QuotaExceeded` when the tenant holds its limit.",
            scopes: &[ADMIN, OPERATOR],
            parameters: vec![verify_first()],
            body: Some(Body {
                required: true,
                schema: schemas::CREATE,
                media_types: JSON,
                examples: secret_body_examples(true),
            }),
            success: Success {
                status: 201,
                description: "Created (SAP answers 202).",
                schema: schemas::DONE,
                headers: &["Location", "ETag"],
                example: json!({"id": "ghcr-pull", "message": CREATED}),
                links: &[
                    ("GetSecret", "getSecret"),
                    ("ModifySecret", "modifySecret"),
                    ("DeleteSecret", "deleteSecret"),
                    ("ExportCredentials", "exportCredentials"),
                    ("VerifySecret", "verifySecret"),
                ],
            },
            errors: &[400, 401, 403, 409, 413, 415, 422, 500, 503],
        },
        "listSecrets" => Description {
            tag: SECRETS_TAG,
            summary: "List secrets' metadata",
            description: "The tenant's secrets sorted by name: metadata only, never credentials. `count` is the \
number returned, or with `$count=true` the number that match.",
            scopes: &[VIEWER, ADMIN],
            parameters: vec![
                query(
                    "$top",
                    "At most this many (default and maximum 1000).",
                    json!({"type": "integer", "minimum": 0, "maximum": 1000}),
                    json!(10),
                ),
                query(
                    "$skip",
                    "Pass over this many first.",
                    json!({"type": "integer", "minimum": 0, "maximum": 4294967295u64}),
                    json!(0),
                ),
                query(
                    "$count",
                    "`count` is the total that matches, not the number returned.",
                    json!({"type": "boolean"}),
                    json!(true),
                ),
                query(
                    "$search",
                    "Only names containing this, ignoring case.",
                    json!({"type": "string", "maxLength": 253}),
                    json!("ghcr"),
                ),
            ],
            body: None,
            success: Success {
                status: 200,
                description: "A page of metadata.",
                schema: schemas::PAGE,
                headers: &[],
                example: json!({"count": 1, "resources": [metadata_example("ghcr-pull", 7)]}),
                links: &[],
            },
            errors: &[400, 401, 403, 500, 503],
        },
        "getSecret" => Description {
            tag: SECRETS_TAG,
            summary: "Get a secret's metadata",
            description: "Name, registries (hosts), managed, times and version; never a username, password or \
token. `ETag` is the version, for `If-Match`.",
            scopes: &[VIEWER, ADMIN],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "The secret's metadata.",
                schema: schemas::METADATA,
                headers: &["ETag"],
                example: metadata_example("ghcr-pull", 7),
                links: &[],
            },
            errors: &[401, 403, 404, 500, 503],
        },
        "modifySecret" => Description {
            tag: SECRETS_TAG,
            summary: "Replace a secret's credentials",
            description: "Takes either form, without `name` (or with the path's). With `If-Match`, only if the \
secret is still at that version. Managed secrets are modified by operators only (403 \
`UpdateManagedSecretNotAllowed`).",
            scopes: &[ADMIN, OPERATOR],
            parameters: vec![if_match(), verify_first()],
            body: Some(Body {
                required: true,
                schema: schemas::MODIFY,
                media_types: JSON_OR_MERGE_PATCH,
                examples: secret_body_examples(false),
            }),
            success: Success {
                status: 200,
                description: "Modified (SAP answers 202); `ETag` is the new version.",
                schema: schemas::DONE,
                headers: &["ETag"],
                example: json!({"id": "ghcr-pull", "message": MODIFIED}),
                links: &[("GetSecret", "getSecret")],
            },
            errors: &[400, 401, 403, 404, 412, 413, 415, 422, 500, 503],
        },
        "deleteSecret" => Description {
            tag: SECRETS_TAG,
            summary: "Delete a secret",
            description: "With `If-Match`, only if the secret is still at that version. Managed secrets are deleted \
by operators only (403 `DeleteManagedSecretNotAllowed`).",
            scopes: &[ADMIN, OPERATOR],
            parameters: vec![if_match()],
            body: None,
            success: Success {
                status: 200,
                description: "Deleted (SAP answers 202).",
                schema: schemas::DONE,
                headers: &[],
                example: json!({"id": "ghcr-pull", "message": DELETED}),
                links: &[],
            },
            errors: &[401, 403, 404, 412, 500, 503],
        },
        "exportCredentials" => Description {
            tag: SECRETS_TAG,
            summary: "Export the credentials as a Kubernetes Secret",
            description: "A `kubernetes.io/dockerconfigjson` Secret manifest, for `kubectl apply -f -`. The only \
call that answers credentials; `Cache-Control: no-store`. For a secret that mints (`kind` `awsEcr`, `google` or \
`azure`), the manifest holds the current registry credential, minted from the stored identity when none is cached \
or the cached one nears its expiry, and the annotation `regsecrets.dev/expires-at` says when it expires: export \
again before then. A provider refusing the identity is 422 `ProviderRefused`; an answer of the provider that \
cannot be used as a credential is 502 `ProviderAnswerUnusable` (no `Retry-After`: asking again gets the same); a \
provider that cannot be reached, or answers 5xx or 429, is 503 `ProviderUnavailable` with `Retry-After`.",
            scopes: &[PULLER],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "The manifest.",
                schema: schemas::MANIFEST,
                headers: &["Cache-Control"],
                example: json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                    "metadata": {"name": "ghcr-pull"}, "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}),
                links: &[],
            },
            errors: &[401, 403, 404, 422, 500, 502, 503],
        },
        "resolveCredentials" => Description {
            tag: PULL_TAG,
            summary: "The credentials that cover an image, at pull time",
            description:
                "For kubelet credential providers and Docker credential helpers (`regsecrets-credential-provider`, \
`docker-credential-regsecrets`): the tenant's credentials that cover an image, matched as the kubelet matches \
`.dockerconfigjson` keys (host globs per part, equal ports, path prefix; Docker Hub's key for Docker Hub images \
when nothing else matched). Give exactly one of `image`, `registry` or `all=true`. Every match is answered, \
ranked: the most specific pattern first; among equal patterns a secret whose last verification succeeded, then \
one never verified, then one whose verification failed; then the most recently modified; then by name. A helper \
or provider uses the first; each match's `rank` says why it comes before the next. `match` is the kubelet's \
pattern for the key, to key a provider's `auth` by; `cacheSeconds` is how long the answer may be kept. 404 `NoMatchingCredentials` when nothing covers it. A secret that mints (`awsEcr`, \
`google`, `azure`) answers its current minted credential, as the export does: 422 `ProviderRefused` when the \
provider refuses its identity, 502 `ProviderAnswerUnusable` when its answer cannot be used, 503 \
`ProviderUnavailable` when the provider cannot be reached. Audited as \
`secret.resolve`; `Cache-Control: no-store`.",
            scopes: &[PULLER],
            parameters: vec![
                query(
                    "image",
                    "An image reference, `registry[:port]/path[:tag][@digest]`; Docker Hub's short forms (`nginx`, \
`library/nginx`, `docker.io/...`) too.",
                    json!({"type": "string", "maxLength": 585}),
                    json!("registry.example.com:5000/team/app:v1"),
                ),
                query(
                    "registry",
                    "`host[:port]`, or a server URL (`https://index.docker.io/v1/`): every key on that registry, \
whatever its path.",
                    json!({"type": "string", "maxLength": 255}),
                    json!("registry.example.com:5000"),
                ),
                query(
                    "all",
                    "`true`: every key of every secret.",
                    json!({"type": "boolean", "enum": [true]}),
                    json!(true),
                ),
            ],
            body: None,
            success: Success {
                status: 200,
                description: "The covering credentials, ranked.",
                schema: schemas::RESOLVED,
                headers: &["Cache-Control"],
                example: json!({"image": "registry.example.com:5000/team/app:v1", "cacheSeconds": 300,
                    "credentials": [{"secret": "team-pull", "server": "registry.example.com:5000/team",
                        "match": "registry.example.com:5000/team", "username": "bot", "password": "s3cret",
                        "auth": "Ym90OnMzY3JldA==", "rank": {"verification": "verified",
                        "modifiedAt": "2026-12-01T09:00:00Z", "reason": "moreSpecificMatch"}},
                        {"secret": "registry-wide", "server": "registry.example.com:5000",
                        "match": "registry.example.com:5000", "username": "ci", "password": "0ther",
                        "auth": "Y2k6MHRoZXI=", "rank": {"verification": "unchecked",
                        "modifiedAt": "2026-11-20T17:30:00Z"}}]}),
                links: &[],
            },
            errors: &[400, 401, 403, 404, 422, 500, 502, 503],
        },
        "getWorkloadIdentity" => Description {
            tag: PULL_TAG,
            summary: "The tenant's workload identity: trusted issuers and bindings",
            description: "The clusters whose service-account tokens the tenant trusts (issuer, audience, JWKS) and \
which service accounts may pull with which secrets. Empty until set.",
            scopes: &[VIEWER, ADMIN],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "The trust.",
                schema: schemas::WORKLOAD_TRUST,
                headers: &[],
                example: workload_example(),
                links: &[],
            },
            errors: &[401, 403, 500],
        },
        "setWorkloadIdentity" => Description {
            tag: PULL_TAG,
            summary: "Replace the tenant's workload identity",
            description: "Trust up to 8 service-account issuers (an `https` issuer URL, the audience the kubelet \
asks tokens for with `tokenAttributes.serviceAccountTokenAudience`, and the issuer's JWKS as served at \
`/openid/v1/jwks`) and bind service accounts (`system:serviceaccount:<namespace>:<name>`, or `...:<namespace>:*`) of \
an issuer to secrets. A lookup at pull time that carries a pod's token in `x-regsecrets-service-account-token` \
then answers only the secrets bound to its service account; the token must verify (signature, `iss`, `aud`, \
`exp`, its `kubernetes.io` claims naming its `sub`), else 403 `WorkloadNotPermitted`. Replaces the whole trust; \
audited as `workload.set`.",
            scopes: &[ADMIN],
            parameters: Vec::new(),
            body: Some(Body {
                required: true,
                schema: schemas::WORKLOAD_TRUST,
                media_types: JSON,
                examples: vec![("one cluster", workload_example())],
            }),
            success: Success {
                status: 200,
                description: "The trust as stored.",
                schema: schemas::WORKLOAD_TRUST,
                headers: &[],
                example: workload_example(),
                links: &[],
            },
            errors: &[400, 401, 403, 413, 415, 500],
        },
        "verifySecret" => Description {
            tag: SECRETS_TAG,
            summary: "Check the credentials against the registries",
            description: "Performs the Docker Registry v2 login handshake with each registry of the secret, as \
`docker login` does (Basic, or a Bearer token from the registry's realm), and with a `repository` also checks that \
the credentials may pull it. `ok` is true only when every registry answered `ok`; the outcome is kept in the \
metadata (`verification`). At most one check of a secret runs at a time (409 `VerificationInProgress`). \
Managed secrets are checked by operators only. A secret that mints is checked with its current minted credential \
(422 `ProviderRefused` when the provider refuses the identity, 502 `ProviderAnswerUnusable` when its answer cannot be \
used, 503 `ProviderUnavailable` when it cannot be reached).",
            scopes: &[ADMIN, OPERATOR],
            parameters: Vec::new(),
            body: Some(Body {
                required: false,
                schema: schemas::VERIFY,
                media_types: JSON,
                examples: vec![("a repository", json!({"repository": "org/app"}))],
            }),
            success: Success {
                status: 200,
                description: "What each registry answered.",
                schema: schemas::REPORT,
                headers: &["Cache-Control"],
                example: json!({"name": "ghcr-pull", "checkedAt": "2026-01-05T09:30:00Z", "ok": false,
                    "registries": [{"registry": "ghcr.io", "result": "unauthorized", "httpStatus": 401,
                        "message": "The registry refused the username and password: correct them and verify again."}]}),
                links: &[],
            },
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 500, 502, 503],
        },
        "getResourceQuota" => Description {
            tag: QUOTA_TAG,
            summary: "The tenant's quota and usage",
            description: "SAP's resource-quota shape; `usage` is left out with `quotaOnly=true`.",
            scopes: &[VIEWER, ADMIN],
            parameters: vec![query(
                "quotaOnly",
                "Only the quota, not the usage: `true` or `false`.",
                json!({"type": "boolean"}),
                json!(true),
            )],
            body: None,
            success: Success {
                status: 200,
                description: "Quota and usage.",
                schema: schemas::RESOURCE_QUOTA,
                headers: &[],
                example: json!({"usage": {"count": 16}, "quota": {"maxCount": 50}}),
                links: &[],
            },
            errors: &[400, 401, 403, 500, 503],
        },
        "getTenantQuota" => Description {
            tag: OPERATOR_TAG,
            summary: "A tenant's limit and usage",
            description: "Any tenant's; the limit is 50 unless an operator set another.",
            scopes: &[OPERATOR],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "Limit and usage.",
                schema: schemas::TENANT_QUOTA,
                headers: &[],
                example: json!({"tenant": "acme", "limit": 50, "used": 16}),
                links: &[],
            },
            errors: &[400, 401, 403, 500, 503],
        },
        "setTenantQuota" => Description {
            tag: OPERATOR_TAG,
            summary: "Set a tenant's limit",
            description: "From 0 to 1000. A limit below the usage refuses new secrets; none is removed.",
            scopes: &[OPERATOR],
            parameters: Vec::new(),
            body: Some(Body {
                required: true,
                schema: schemas::SET_QUOTA,
                media_types: JSON,
                examples: vec![("a limit", json!({"limit": 80}))],
            }),
            success: Success {
                status: 200,
                description: "The new limit and the usage.",
                schema: schemas::TENANT_QUOTA,
                headers: &[],
                example: json!({"tenant": "acme", "limit": 80, "used": 16}),
                links: &[],
            },
            errors: &[400, 401, 403, 413, 415, 500, 503],
        },
        "reencryptTenant" => Description {
            tag: OPERATOR_TAG,
            summary: "Re-encrypt a tenant's secrets under the newest key",
            description: "After a key rotation: rewrites every secret still sealed with an older key of \
`encryption_keys`. Versions and ETags do not change. Safe to repeat.",
            scopes: &[OPERATOR],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "What was rewritten.",
                schema: schemas::REENCRYPTED,
                headers: &[],
                example: json!({"tenant": "acme", "key": "k2", "reencrypted": 12, "secrets": 12}),
                links: &[],
            },
            errors: &[400, 401, 403, 500, 503],
        },
        "getLiveness" => Description {
            tag: PROBES_TAG,
            summary: "Liveness: the node answers",
            description: "For an orchestrator's liveness or startup probe. No token; touches no store. A node that \
runs a component at all answers 200.",
            scopes: &[],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "Alive.",
                schema: schemas::PROBE,
                headers: &[],
                example: json!({"status": "alive"}),
                links: &[],
            },
            errors: &[],
        },
        "getReadiness" => Description {
            tag: PROBES_TAG,
            summary: "Readiness: the node can read the store",
            description: "For an orchestrator's readiness probe (and liveness, to restart a node whose store \
client is wedged: see docs/deployment.md). No token. One read of the store, as every read makes: 200 when it \
answered, 503 `NotReady` when it failed. A store that hangs makes this hang: the probe's timeout is the bound.",
            scopes: &[],
            parameters: Vec::new(),
            body: None,
            success: Success {
                status: 200,
                description: "Ready: the store answered.",
                schema: schemas::PROBE,
                headers: &[],
                example: json!({"status": "ready"}),
                links: &[],
            },
            errors: &[503],
        },
        other => panic!("ROUTES names an operation the document does not describe: {other}"),
    }
}

fn path_parameter(template: &str) -> Option<Parameter> {
    let (name, description, schema) = if template.contains("{name}") {
        ("name", "The secret's name.", schemas::SECRET_NAME)
    } else if template.contains("{tenant}") {
        ("tenant", "A tenant id.", schemas::TENANT_ID)
    } else {
        return None;
    };
    Some(
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    )
}

fn success(route: &Route, success: &Success) -> utoipa::openapi::Response {
    let mut response = ResponseBuilder::new().description(success.description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(success.schema)))
            .example(Some(success.example.clone()))
            .build(),
    );
    for name in success.headers.iter().copied().chain([domain::http::REQUEST_ID]) {
        response = response.header(name, header(name));
    }
    for (name, operation) in success.links {
        let link = LinkBuilder::new()
            .operation_id(*operation)
            .parameter("name", "$response.body#/id")
            .description(format!("The secret this {} answered for.", route.operation))
            .build();
        response = response.link(*name, link);
    }
    response.build()
}

/// The OpenAPI operation of a route.
pub fn operation(route: &Route, description: &Description) -> Operation {
    let mut responses =
        ResponsesBuilder::new().response(description.success.status.to_string(), success(route, &description.success));
    for status in description.errors {
        responses = responses.response(status.to_string(), Ref::from_response_name(responses::name(*status)));
    }
    let mut builder = OperationBuilder::new()
        .operation_id(Some(route.operation))
        .tag(description.tag)
        .summary(Some(description.summary))
        .description(Some(description.description))
        .responses(responses.build())
        .securities(Some(description.scopes.iter().map(|scope| SecurityRequirement::new(BEARER, [*scope]))));
    for parameter in path_parameter(route.path).into_iter().chain(description.parameters.iter().cloned()) {
        builder = builder.parameter(parameter);
    }
    if let Some(body) = &description.body {
        let required = if body.required { Required::True } else { Required::False };
        let mut request = RequestBodyBuilder::new().required(Some(required));
        for media_type in body.media_types {
            let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name(body.schema)));
            for (name, example) in &body.examples {
                content = content.examples_from_iter([(
                    *name,
                    utoipa::openapi::example::ExampleBuilder::new().value(Some(example.clone())).build(),
                )]);
            }
            request = request.content(*media_type, content.build());
        }
        builder = builder.request_body(Some(request.build()));
    }
    builder.build()
}
