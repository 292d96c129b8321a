//! Provider identities: the long-lived credentials a secret of a minting kind holds (an AWS access
//! key, a Google service account key, an Azure service principal), from which a short-lived
//! registry credential is minted when the secret is read (see `mint`).
//!
//! No message built here contains any part of an identity's value: field names only. Registry and
//! region strings are echoed only after they passed their character rules. `Debug` redacts.

use std::fmt;

use jwt_simple::algorithms::RS256KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Internal};

/// What a secret holds: static registry credentials, or an identity to mint them from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    #[default]
    Static,
    AwsEcr,
    Google,
    Azure,
}

impl Kind {
    pub fn is_static(&self) -> bool {
        *self == Kind::Static
    }

    /// The provider's name as messages show it.
    pub fn provider(&self) -> &'static str {
        match self {
            Kind::Static => "registry",
            Kind::AwsEcr => "AWS",
            Kind::Google => "Google",
            Kind::Azure => "Microsoft Entra ID",
        }
    }
}

/// The body fields that carry an identity, one per minting kind.
pub const IDENTITY_FIELDS: [&str; 3] = ["aws", "google", "azure"];

/// One provider identity, validated. Its serialised form (tagged by `kind`) is what gets sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Identity {
    AwsEcr(AwsIdentity),
    Google(GoogleIdentity),
    Azure(AzureIdentity),
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsIdentity {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    pub region: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_ids: Vec<String>,
}

/// The parts of a service account key file minting needs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleIdentity {
    pub client_email: String,
    /// PEM (PKCS#8, as Google writes it).
    pub private_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// The key file's `token_uri`; used only when the operator set no `google_token_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    /// `host[:port]` of each registry the token is for (`europe-docker.pkg.dev`, `gcr.io`).
    pub registries: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureIdentity {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// `host[:port]`, e.g. `myregistry.azurecr.io`.
    pub registry: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?}, <redacted>)", self.kind())
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

/// The object's string field; `null` counts as absent.
fn string(fields: &Map<String, Value>, path: &str, field: &str) -> Result<Option<String>, Error> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("`{path}.{field}` must be a string"))),
    }
}

fn required(fields: &Map<String, Value>, path: &str, field: &str) -> Result<String, Error> {
    string(fields, path, field)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid(format!("`{path}.{field}` is required")))
}

fn strings(fields: &Map<String, Value>, path: &str, field: &str) -> Result<Vec<String>, Error> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(format!("`{path}.{field}` must be an array of strings"))),
            })
            .collect(),
        Some(_) => Err(invalid(format!("`{path}.{field}` must be an array of strings"))),
    }
}

fn only_fields(fields: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), Error> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) if unknown.len() <= 64 => Err(invalid(format!(
            "Unknown field {unknown:?} in `{path}`; it takes {}",
            allowed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ))),
        Some(_) => Err(invalid(format!("Unknown field in `{path}`"))),
        None => Ok(()),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(invalid(format!("`{path}` must be an object"))),
    }
}

/// `host[:port]`, lower-cased: letters, digits, `-` and `.` in the host, digits in the port.
pub fn parse_host(given: &str, path: &str) -> Result<String, Error> {
    let host = given.trim().to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !(name_ok && port_ok) {
        return Err(invalid(format!(
            "`{path}` must be a registry host name, optionally with :port (no scheme, no path), e.g. myregistry.azurecr.io"
        )));
    }
    Ok(host)
}

/// The directions AWS names its regions by.
const AWS_DIRECTIONS: [&str; 9] =
    ["central", "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"];

/// AWS regions: `<area>[-<partition or country>]-<direction>-<number>`, as every region is named
/// (`us-east-1`, `eu-central-2`, `ap-southeast-7`, `us-gov-west-1`, `us-isob-east-1`,
/// `cn-northwest-1`, `eusc-de-east-1`). A string of another shape names no region AWS could ever
/// answer for, so it is refused at create instead of failing every mint.
pub fn is_aws_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, rest)) = parts.split_last() else { return false };
    let Some((direction, prefix)) = rest.split_last() else { return false };
    let letters = |part: &str| (2..=4).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_lowercase());
    (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0')
        && AWS_DIRECTIONS.contains(direction)
        && (1..=2).contains(&prefix.len())
        && prefix.iter().all(|part| letters(part))
}

/// The pattern of [`is_aws_region`], for the OpenAPI document.
pub const AWS_REGION_PATTERN: &str =
    "^[a-z]{2,4}(-[a-z]{2,4})?-(central|north|south|east|west|northeast|northwest|southeast|southwest)-[1-9][0-9]?$";

fn parse_region(region: &str) -> Result<String, Error> {
    if is_aws_region(region) {
        Ok(region.to_owned())
    } else {
        Err(invalid(
            "`aws.region` must be an AWS region such as `eu-central-1` (<area>-<direction>-<number>, e.g. us-gov-west-1)",
        ))
    }
}

impl Identity {
    pub fn kind(&self) -> Kind {
        match self {
            Identity::AwsEcr(_) => Kind::AwsEcr,
            Identity::Google(_) => Kind::Google,
            Identity::Azure(_) => Kind::Azure,
        }
    }

    /// The one identity field of a create or patch body (`aws`, `google` or `azure`) and its value.
    pub fn from_body(field: &str, value: &Value, max_registries: usize) -> Result<Identity, Error> {
        match field {
            "aws" => AwsIdentity::parse(object(value, "aws")?).map(Identity::AwsEcr),
            "google" => GoogleIdentity::parse(object(value, "google")?, max_registries).map(Identity::Google),
            "azure" => AzureIdentity::parse(object(value, "azure")?).map(Identity::Azure),
            _ => Err(invalid(format!("`{field}` is not a provider identity"))),
        }
    }

    /// The registries for metadata (`host[:port]`), sorted; an AWS identity without
    /// `registryIds` names its registry only once minted (the caller's account's).
    pub fn registries(&self) -> Vec<String> {
        let mut hosts = match self {
            Identity::AwsEcr(aws) => aws.registry_hosts(),
            Identity::Google(google) => google.registries.clone(),
            Identity::Azure(azure) => vec![azure.registry.clone()],
        };
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The sealed document: this identity as tagged JSON.
    pub fn to_document(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an identity serialises")
    }

    /// Reads back what [`Identity::to_document`] wrote; anything else is a corrupt record.
    pub fn from_document(bytes: &[u8]) -> Result<Identity, Error> {
        serde_json::from_slice(bytes).map_err(|_| Internal::CorruptRecord.into())
    }

    /// Whether a stored document is an identity (tagged with `kind`) rather than a `.dockerconfigjson`.
    pub fn is_document(bytes: &[u8]) -> bool {
        matches!(serde_json::from_slice::<Map<String, Value>>(bytes), Ok(fields) if fields.contains_key("kind"))
    }
}

impl AwsIdentity {
    const FIELDS: [&'static str; 6] =
        ["accessKeyId", "secretAccessKey", "sessionToken", "roleArn", "region", "registryIds"];

    fn parse(fields: &Map<String, Value>) -> Result<AwsIdentity, Error> {
        only_fields(fields, "aws", &Self::FIELDS)?;
        let access_key_id = required(fields, "aws", "accessKeyId")?;
        if !(16..=128).contains(&access_key_id.len()) || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                "`aws.accessKeyId` must be an AWS access key id (16 to 128 letters and digits, e.g. AKIA…)",
            ));
        }
        let secret_access_key = required(fields, "aws", "secretAccessKey")?;
        if secret_access_key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("`aws.secretAccessKey` must not contain spaces or control characters"));
        }
        let session_token = string(fields, "aws", "sessionToken")?.filter(|s| !s.is_empty());
        let role_arn = string(fields, "aws", "roleArn")?.filter(|s| !s.is_empty());
        if let Some(arn) = &role_arn {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == "iam"
                && parts[4].len() == 12
                && parts[4].bytes().all(|b| b.is_ascii_digit())
                && parts[5].starts_with("role/")
                && parts[5].len() > 5
                && arn.is_ascii()
                && !arn.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(invalid(
                    "`aws.roleArn` must be an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>",
                ));
            }
        }
        let region = parse_region(&required(fields, "aws", "region")?)?;
        let registry_ids = strings(fields, "aws", "registryIds")?;
        if registry_ids.iter().any(|id| id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(invalid("`aws.registryIds` must hold 12-digit AWS account ids"));
        }
        if registry_ids.len() > 10 {
            return Err(invalid("`aws.registryIds` may name at most 10 registries"));
        }
        Ok(AwsIdentity { access_key_id, secret_access_key, session_token, role_arn, region, registry_ids })
    }

    /// `<account>.dkr.ecr.<region>.amazonaws.com` of each `registryIds` entry.
    pub fn registry_hosts(&self) -> Vec<String> {
        let suffix = if self.region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
        self.registry_ids.iter().map(|id| format!("{id}.dkr.ecr.{}.{suffix}", self.region)).collect()
    }
}

impl GoogleIdentity {
    const FIELDS: [&'static str; 2] = ["serviceAccountKey", "registries"];

    fn parse(fields: &Map<String, Value>, max_registries: usize) -> Result<GoogleIdentity, Error> {
        only_fields(fields, "google", &Self::FIELDS)?;
        let text = required(fields, "google", "serviceAccountKey")?;
        let key: Map<String, Value> = serde_json::from_str(&text).map_err(|_| {
            invalid("`google.serviceAccountKey` must be the service account key file's JSON text (`gcloud iam service-accounts keys create`)")
        })?;
        let path = "google.serviceAccountKey";
        if string(&key, path, "type")?.as_deref() != Some("service_account") {
            return Err(invalid("`google.serviceAccountKey.type` must be \"service_account\""));
        }
        let client_email = required(&key, path, "client_email")?;
        if !client_email.contains('@') || client_email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "`google.serviceAccountKey.client_email` must be the service account's e-mail address",
            ));
        }
        let private_key = required(&key, path, "private_key")?;
        if RS256KeyPair::from_pem(&private_key).is_err() {
            return Err(invalid("`google.serviceAccountKey.private_key` must be the key file's RSA private key (PEM)"));
        }
        let private_key_id = string(&key, path, "private_key_id")?.filter(|s| !s.is_empty());
        let token_uri = string(&key, path, "token_uri")?.filter(|s| !s.is_empty());
        if let Some(uri) = &token_uri {
            if url::Url::parse(uri).map(|u| u.scheme() != "https").unwrap_or(true) {
                return Err(invalid("`google.serviceAccountKey.token_uri` must be an https URL"));
            }
        }
        let registries = strings(fields, "google", "registries")?;
        if registries.is_empty() {
            return Err(invalid(
                "`google.registries` is required: the registries the token is for, e.g. [\"europe-docker.pkg.dev\"]",
            ));
        }
        if registries.len() > max_registries {
            return Err(invalid("`google.registries` names too many registries"));
        }
        let registries =
            registries.iter().map(|r| parse_host(r, "google.registries")).collect::<Result<Vec<_>, _>>()?;
        Ok(GoogleIdentity { client_email, private_key, private_key_id, token_uri, registries })
    }
}

impl AzureIdentity {
    const FIELDS: [&'static str; 4] = ["tenantId", "clientId", "clientSecret", "registry"];

    fn parse(fields: &Map<String, Value>) -> Result<AzureIdentity, Error> {
        only_fields(fields, "azure", &Self::FIELDS)?;
        let tenant_id = required(fields, "azure", "tenantId")?;
        // It becomes a path segment of the authority's URL.
        if tenant_id.len() > 128 || !tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')) {
            return Err(invalid("`azure.tenantId` must be a directory (tenant) id or domain, e.g. a GUID"));
        }
        let client_id = required(fields, "azure", "clientId")?;
        if client_id.len() > 128 || client_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("`azure.clientId` must be the application (client) id"));
        }
        let client_secret = required(fields, "azure", "clientSecret")?;
        let registry = parse_host(&required(fields, "azure", "registry")?, "azure.registry")?;
        Ok(AzureIdentity { tenant_id, client_id, client_secret, registry })
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
pub(crate) mod tests;
