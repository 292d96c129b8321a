//! The document's schemas: the response types' own (`utoipa::ToSchema` derives in the domain),
//! and, for what the domain parses by hand (request bodies, names in paths), schemas written here
//! to say exactly what the parser takes.

use domain::endpoints::Done;
use domain::export::KubernetesSecret;
use domain::http::ErrorBody;
use domain::index::SecretMetadata;
use domain::paging::Page;
use domain::quota::{ResourceQuota, SetQuota, TenantQuota};
use domain::readiness::ProbeStatus;
use domain::reencrypt::Reencrypted;
use domain::resolve::Resolved;
use domain::verify::Report;
use domain::workload::WorkloadTrust;
use serde_json::{json, Value};
use utoipa::openapi::{ComponentsBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub const SECRET_NAME: &str = "SecretName";
pub const TENANT_ID: &str = "TenantId";
pub const CREATE: &str = "CreateSecret";
pub const MODIFY: &str = "ModifySecret";
pub const DONE: &str = "Done";
pub const METADATA: &str = "SecretMetadata";
pub const PAGE: &str = "SecretMetadataPage";
pub const MANIFEST: &str = "KubernetesSecret";
pub const RESOURCE_QUOTA: &str = "ResourceQuota";
pub const TENANT_QUOTA: &str = "TenantQuota";
pub const SET_QUOTA: &str = "SetQuota";
pub const REENCRYPTED: &str = "Reencrypted";
pub const ERROR: &str = "ErrorBody";
pub const VERIFY: &str = "VerifySecret";
pub const REPORT: &str = "Report";
pub const RESOLVED: &str = "Resolved";
pub const WORKLOAD_TRUST: &str = "WorkloadTrust";
pub const PROBE: &str = "ProbeStatus";

/// A schema written as JSON.
pub fn inline(schema: Value) -> RefOr<Schema> {
    RefOr::T(serde_json::from_value(schema).expect("a valid schema"))
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The two forms a secret's credentials come in. `create`: `name` is required; a modify takes it
/// optionally (it must equal the path's). As the parser reads them, a field that is `null` is
/// absent: so each form allows the other form's fields as `null`, and the optional ones as `null`.
fn secret_forms(create: bool) -> Value {
    let required = |fields: &[&str]| -> Vec<String> {
        create.then_some("name").into_iter().chain(fields.iter().copied()).map(str::to_owned).collect()
    };
    let name =
        if create { reference(SECRET_NAME) } else { json!({"anyOf": [reference(SECRET_NAME), {"type": "null"}]}) };
    let absent = json!({"type": "null", "description": "Belongs to the other form; `null` is taken as absent."});
    let docker_config = json!({
        "type": "object",
        "title": "SAP form",
        "description": "SAP's form: `.dockerconfigjson` is the Docker config's JSON text, or that text base64-encoded. \
    It must hold `auths` with at least one registry, each with `auth` (base64 of `user:password`) or `username` and \
    `password`. A config that only names a `credsStore` or `credHelpers` holds no credentials and is refused.",
        "required": required(&["data"]),
        "additionalProperties": false,
        "properties": {
            "name": name,
            "data": {
                "type": "object",
                "required": [".dockerconfigjson"],
                "additionalProperties": false,
                "properties": {".dockerconfigjson": {"type": "string", "writeOnly": true}}
            },
            "registry": absent,
            "username": absent,
            "password": absent,
            "email": absent,
            "aws": absent,
            "google": absent,
            "azure": absent
        }
    });
    let credentials = json!({
        "type": "object",
        "title": "kubectl form",
        "description": "As `kubectl create secret docker-registry` takes it; stored as the `.dockerconfigjson` kubectl \
    builds. `registry` defaults to Docker Hub, whose spellings are stored as `https://index.docker.io/v1/`.",
        "required": required(&["username", "password"]),
        "additionalProperties": false,
        "properties": {
            "name": name,
            "registry": {"type": ["string", "null"], "description": "A URL or `host[:port]`; absent or `null`: Docker Hub.",
                "example": "ghcr.io"},
            "username": {"type": "string", "writeOnly": true},
            "password": {"type": "string", "writeOnly": true},
            "email": {"type": ["string", "null"], "writeOnly": true},
            "data": absent,
            "aws": absent,
            "google": absent,
            "azure": absent
        }
    });
    let others = |own: &str| -> serde_json::Map<String, Value> {
        ["data", "registry", "username", "password", "email", "aws", "google", "azure"]
            .into_iter()
            .filter(|f| *f != own)
            .map(|f| (f.to_owned(), absent.clone()))
            .collect()
    };
    let identity = |field: &str, title: &str, description: &str, schema: Value| {
        let mut properties = others(field);
        properties.insert("name".into(), name.clone());
        properties.insert(field.into(), schema);
        json!({"type": "object", "title": title, "description": description, "required": required(&[field]),
            "additionalProperties": false, "properties": properties})
    };
    let text = |description: &str| json!({"type": "string", "minLength": 1, "description": description});
    let secret =
        |description: &str| json!({"type": "string", "minLength": 1, "writeOnly": true, "description": description});
    let optional = |description: &str, write_only: bool| json!({"type": ["string", "null"], "writeOnly": write_only, "description": description});
    let aws = identity(
        "aws",
        "AWS ECR identity",
        "An AWS access key; the registry credential (user `AWS`, 12 hours) is minted with ECR's \
    `GetAuthorizationToken` when the secret is exported or verified. Needs `ecr:GetAuthorizationToken` \
    (and `sts:AssumeRole` on `roleArn` when given).",
        json!({"type": "object", "additionalProperties": false, "required": ["accessKeyId", "secretAccessKey", "region"],
        "properties": {
            "accessKeyId": {"type": "string", "pattern": "^[A-Za-z0-9]{16,128}$", "writeOnly": true},
            "secretAccessKey": secret("The access key's secret."),
            "sessionToken": optional("For temporary keys.", true),
            "roleArn": optional("A role to assume first: `arn:aws:iam::<account>:role/<name>`.", true),
            "region": {"type": "string", "pattern": domain::provider::AWS_REGION_PATTERN, "example": "eu-central-1"},
            "registryIds": {"type": ["array", "null"], "maxItems": 10,
                "items": {"type": "string", "pattern": "^[0-9]{12}$"},
                "description": "Account ids of the registries; absent: the caller's account's."}
        }}),
    );
    let google = identity(
        "google",
        "Google identity",
        "A service account key; the registry credential (user `oauth2accesstoken`, one hour) is an OAuth access \
    token minted with the JWT-bearer grant when the secret is exported or verified.",
        json!({"type": "object", "additionalProperties": false, "required": ["serviceAccountKey", "registries"],
        "properties": {
            "serviceAccountKey": secret("The key file's JSON text, as `gcloud iam service-accounts keys create` writes it."),
            "registries": {"type": "array", "minItems": 1, "maxItems": 64,
                "items": {"type": "string", "example": "europe-docker.pkg.dev"}}
        }}),
    );
    let azure = identity(
        "azure",
        "Azure identity",
        "A service principal with AcrPull on the registry; the registry credential (user \
    `00000000-0000-0000-0000-000000000000`, about three hours) is a refresh token from the registry's \
    `/oauth2/exchange`, minted when the secret is exported or verified.",
        json!({"type": "object", "additionalProperties": false,
        "required": ["tenantId", "clientId", "clientSecret", "registry"],
        "properties": {
            "tenantId": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,128}$"},
            "clientId": text("The application (client) id."),
            "clientSecret": secret("The client secret."),
            "registry": {"type": "string", "example": "myregistry.azurecr.io"}
        }}),
    );
    json!({"oneOf": [docker_config, credentials, aws, google, azure]})
}

/// Adds every schema the operations refer to.
pub fn register(components: ComponentsBuilder) -> ComponentsBuilder {
    let written = [
        (
            SECRET_NAME,
            json!({"type": "string", "minLength": 1, "maxLength": 253,
                "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                "description": "A Kubernetes DNS-1123 subdomain: it becomes an `imagePullSecrets` name.",
                "example": "ghcr-pull"}),
        ),
        (
            TENANT_ID,
            json!({"type": "string", "minLength": 1, "maxLength": 128,
                "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.?$",
                "description": "ASCII letters, digits, `-`, `_` and `.`, not starting with `.` and without `..`.",
                "example": "acme"}),
        ),
        (CREATE, secret_forms(true)),
        (MODIFY, secret_forms(false)),
        (
            VERIFY,
            json!({"type": "object", "additionalProperties": false,
                "description": "Optional: also check that the credentials may pull this repository.",
                "properties": {"repository": {"type": ["string", "null"], "example": "org/app", "minLength": 1, "maxLength": 255,
                    "pattern": "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
                    "description": "A Docker repository name (`org/app`), checked with `scope=repository:<it>:pull`."}}}),
        ),
    ];
    let derived: [(&str, RefOr<Schema>); 13] = [
        (DONE, Done::schema()),
        (METADATA, SecretMetadata::schema()),
        (PAGE, Page::<SecretMetadata>::schema()),
        (MANIFEST, KubernetesSecret::schema()),
        (RESOURCE_QUOTA, ResourceQuota::schema()),
        (TENANT_QUOTA, TenantQuota::schema()),
        (SET_QUOTA, SetQuota::schema()),
        (REENCRYPTED, Reencrypted::schema()),
        (ERROR, ErrorBody::schema()),
        (REPORT, Report::schema()),
        (RESOLVED, Resolved::schema()),
        (WORKLOAD_TRUST, WorkloadTrust::schema()),
        (PROBE, ProbeStatus::schema()),
    ];
    // Schemas the derived ones refer to (nested types), under the names the derives gave them.
    let mut nested = Vec::new();
    Page::<SecretMetadata>::schemas(&mut nested);
    ResourceQuota::schemas(&mut nested);
    KubernetesSecret::schemas(&mut nested);
    ErrorBody::schemas(&mut nested);
    Report::schemas(&mut nested);
    Resolved::schemas(&mut nested);
    WorkloadTrust::schemas(&mut nested);
    components
        .schemas_from_iter(written.into_iter().map(|(name, schema)| (name, inline(schema))))
        .schemas_from_iter(derived)
        .schemas_from_iter(nested)
}
