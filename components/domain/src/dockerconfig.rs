//! `.dockerconfigjson` in and out: the two body forms a secret is created from, the one
//! normalised [`DockerConfig`] they become, and the canonical JSON it is stored and exported as.
//!
//! No message built here ever contains a credential value (user name, password, `auth`, token):
//! they reach logs and clients. Registry keys and field names may appear; a registry string is
//! echoed only after it has been validated (so it cannot carry `user:password@`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::Internal;
use crate::provider::{Identity, Kind, IDENTITY_FIELDS};
use crate::Error;

mod gojson;
mod registry;

use gojson::{push_field, push_go_json_string};
pub(crate) use registry::host_of;
use registry::parse_registry;
pub use registry::server_key;
pub use registry::{DOCKER_HUB_HOST, DOCKER_HUB_SERVER};

/// The most registries one secret may hold. Far above any real pull secret; bounds the work a
/// single body can cause.
pub const MAX_REGISTRIES: usize = 64;

const HELPER_ONLY: &str = "This Docker config only names a credential helper (credsStore/credHelpers); it holds no credentials. Create the secret from a username and password instead ({\"registry\", \"username\", \"password\"}), or export a config with credentials inline: `DOCKER_CONFIG=$(mktemp -d) docker login REGISTRY` then use that folder's config.json";

// Docker writes padded standard base64, but hand-made and tool-made values come unpadded or
// URL-safe often enough that refusing them would only frustrate.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_LENIENT.decode(text).or_else(|_| URL_SAFE_LENIENT.decode(text)).ok()
}

fn invalid_config(message: impl Into<String>) -> Error {
    Error::InvalidDockerConfig(message.into())
}

fn invalid_request(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

/// A field name from the client, shown in a message: quoted, and cut so a huge key cannot
/// bloat the answer. Field names are not credentials; values never go through here.
fn field_name(name: &str) -> String {
    const SHOWN: usize = 64;
    if name.chars().count() <= SHOWN {
        format!("{name:?}")
    } else {
        let cut: String = name.chars().take(SHOWN).collect();
        format!("{cut:?}…")
    }
}

/// One registry's credentials, normalised. `auth` is not kept: it is derived from
/// username and password whenever it is written.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    username: String,
    password: String,
    email: Option<String>,
    identity_token: Option<String>,
}

impl RegistryAuth {
    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    pub fn identity_token(&self) -> Option<&str> {
        self.identity_token.as_deref()
    }

    /// Standard padded base64 of `username:password`, as kubectl and docker write it.
    pub fn auth(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password))
    }
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "<none>" };
        f.debug_struct("RegistryAuth")
            .field("username", &format_args!("<redacted>"))
            .field("password", &format_args!("<redacted>"))
            .field("email", &format_args!("{}", redacted(self.email.is_some())))
            .field("identity_token", &format_args!("{}", redacted(self.identity_token.is_some())))
            .finish()
    }
}

/// A validated, normalised Docker config: server key -> credentials. Holds at least one and
/// at most [`MAX_REGISTRIES`] registries, no two naming the same registry.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerConfig {
    auths: BTreeMap<String, RegistryAuth>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig").field("auths", &self.auths).finish()
    }
}

/// What a secret holds: registry credentials as given, or a provider identity to mint them from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Static(DockerConfig),
    Minting(Identity),
}

impl Credentials {
    pub fn kind(&self) -> Kind {
        match self {
            Credentials::Static(_) => Kind::Static,
            Credentials::Minting(identity) => identity.kind(),
        }
    }

    /// The registries for metadata (see [`DockerConfig::registries`], [`Identity::registries`]).
    pub fn registries(&self) -> Vec<String> {
        match self {
            Credentials::Static(config) => config.registries(),
            Credentials::Minting(identity) => identity.registries(),
        }
    }

    /// The document that is sealed and stored: the canonical `.dockerconfigjson`, or the identity
    /// as JSON tagged with its `kind`.
    pub fn to_document(&self) -> Vec<u8> {
        match self {
            Credentials::Static(config) => config.to_dockerconfigjson(),
            Credentials::Minting(identity) => identity.to_document(),
        }
    }

    /// Reads back what [`Credentials::to_document`] wrote.
    pub fn from_document(bytes: &[u8]) -> Result<Credentials, Error> {
        if Identity::is_document(bytes) {
            Identity::from_document(bytes).map(Credentials::Minting)
        } else {
            DockerConfig::from_stored(bytes).map(Credentials::Static)
        }
    }
}

/// A create or modify body, parsed: the name it carries (not yet validated: the caller checks it
/// with `SecretName::parse` and, for PATCH, against the path) and the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    pub name: Option<String>,
    pub credentials: Credentials,
    /// Set by the endpoint when the caller asked to verify first (`?verify=true`) and every
    /// registry accepted; never read from the body. Kept in the metadata the write commits.
    pub verification: Option<crate::check::LastCheck>,
}

const BODY_FIELDS: [&str; 9] = ["name", "data", "registry", "username", "password", "email", "aws", "google", "azure"];
const STRUCTURED_FIELDS: [&str; 4] = ["registry", "username", "password", "email"];

/// A field's string value; `null` counts as absent, as JSON merge-patch and many SDKs use it.
fn optional_string<'a>(fields: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Error> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid_request(format!("`{field}` must be a string"))),
    }
}

impl SecretRequest {
    /// Reads a create (`require_name`) or modify body in any accepted form:
    /// SAP's `{"name", "data": {".dockerconfigjson": "..."}}`, kubectl's
    /// `{"name", "registry"?, "username", "password", "email"?}`, or one provider identity
    /// `{"name", "aws" | "google" | "azure": {...}}` (see [`Identity`]).
    pub fn from_json(body: Value, require_name: bool) -> Result<SecretRequest, Error> {
        let Value::Object(fields) = body else {
            return Err(invalid_request("The request body must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|key| !BODY_FIELDS.contains(&key.as_str())) {
            return Err(invalid_request(format!(
                "Unknown field {}; a secret takes `name` and either `data`, or `registry`, `username`, `password` and `email`, or one of `aws`, `google`, `azure`",
                field_name(unknown)
            )));
        }
        let name = optional_string(&fields, "name")?.map(str::to_owned);
        if require_name && name.is_none() {
            return Err(invalid_request("`name` is required"));
        }
        let present = |field: &str| !matches!(fields.get(field), None | Some(Value::Null));
        let identities: Vec<&str> = IDENTITY_FIELDS.iter().copied().filter(|field| present(field)).collect();
        if let Some(identity) = identities.first() {
            if identities.len() > 1 {
                return Err(invalid_request(format!(
                    "The body carries `{}` and `{}`: a secret holds exactly one provider identity",
                    identities[0], identities[1]
                )));
            }
            if let Some(other) = ["data"].iter().chain(STRUCTURED_FIELDS.iter()).find(|field| present(field)) {
                return Err(invalid_request(format!(
                    "The body mixes two forms: `{identity}` cannot come with `{other}`; give either a provider identity or registry credentials"
                )));
            }
            let credentials = Credentials::Minting(Identity::from_body(identity, &fields[*identity], MAX_REGISTRIES)?);
            return Ok(SecretRequest { name, credentials, verification: None });
        }
        let structured = STRUCTURED_FIELDS.iter().find(|field| present(field));
        let credentials = match (present("data"), structured) {
            (true, Some(field)) => {
                return Err(invalid_request(format!(
                    "The body mixes two forms: `data` cannot come with `{field}`; give either `data` with `.dockerconfigjson`, or `username` and `password` (with optional `registry` and `email`)"
                )))
            }
            (false, None) => {
                return Err(invalid_request(
                    "The body holds no credentials: give either `data` with `.dockerconfigjson`, or `username` and `password` (with optional `registry` and `email`), or one provider identity (`aws`, `google` or `azure`)",
                ))
            }
            (true, None) => Self::sap_form(&fields["data"])?,
            (false, Some(_)) => {
                let required = |field: &str| {
                    optional_string(&fields, field)?
                        .ok_or_else(|| invalid_request(format!("`{field}` is required")))
                };
                DockerConfig::from_credentials(
                    optional_string(&fields, "registry")?,
                    required("username")?,
                    required("password")?,
                    optional_string(&fields, "email")?,
                )?
            }
        };
        Ok(SecretRequest { name, credentials: Credentials::Static(credentials), verification: None })
    }

    fn sap_form(data: &Value) -> Result<DockerConfig, Error> {
        let Value::Object(data) = data else {
            return Err(invalid_request("`data` must be an object holding `.dockerconfigjson`"));
        };
        if let Some(unknown) = data.keys().find(|key| *key != ".dockerconfigjson") {
            return Err(invalid_request(format!(
                "Unknown field {} in `data`; it takes only `.dockerconfigjson`",
                field_name(unknown)
            )));
        }
        match data.get(".dockerconfigjson") {
            Some(Value::String(text)) => DockerConfig::from_dockerconfigjson(text),
            None | Some(Value::Null) => Err(invalid_request("`data..dockerconfigjson` is required")),
            Some(_) => Err(invalid_request(
                "`data..dockerconfigjson` must be a string: the Docker config's JSON, or that JSON base64-encoded",
            )),
        }
    }
}

fn reject_duplicates(json: &[u8]) -> Result<(), Error> {
    match crate::strict_json::duplicate_key(json) {
        Some(key) => Err(invalid_config(format!("The `.dockerconfigjson` names the key {key:?} twice in one object"))),
        None => Ok(()),
    }
}

fn check_username(username: &str, whose: &str) -> Result<(), Error> {
    if username.is_empty() {
        return Err(invalid_config(format!("The username {whose}must not be empty")));
    }
    if username.contains(':') {
        return Err(invalid_config(format!(
            "The username {whose}must not contain ':': the `auth` field separates user name and password at the first ':'"
        )));
    }
    check_printable("username", username, whose)
}

/// No control characters (NUL, newlines, escapes): no registry takes them in a user name or an
/// email address, and they would travel into headers and logs of whoever reads the config.
fn check_printable(field: &str, value: &str, whose: &str) -> Result<(), Error> {
    if value.chars().any(char::is_control) {
        return Err(invalid_config(format!("The {field} {whose}must not contain control characters")));
    }
    Ok(())
}

/// The credentials of one `auths` entry. `has_helper` says the config names a credential
/// helper, which is why an entry is empty more often than not (Docker Desktop writes `{}`).
fn parse_entry(key: &str, entry: &Value, has_helper: bool) -> Result<RegistryAuth, Error> {
    let Value::Object(entry) = entry else {
        return Err(invalid_config(format!("The auths entry for {key:?} must be an object")));
    };
    // Docker reads these field names case-insensitively (Go's JSON decoding); so do we.
    let mut fields: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in entry {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "auth" | "username" | "password" | "email" | "identitytoken" => {}
            // Old docker versions wrote the registry again here; it adds nothing to the key.
            "serveraddress" => continue,
            _ => {
                return Err(invalid_config(format!(
                    "The auths entry for {key:?} has an unknown field {}; an entry takes auth, username, password, email and identitytoken",
                    field_name(name)
                )))
            }
        }
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.as_str(),
            _ => return Err(invalid_config(format!("`{lower}` in the auths entry for {key:?} must be a string"))),
        };
        if fields.insert(lower.clone(), text).is_some() {
            return Err(invalid_config(format!("The auths entry for {key:?} gives `{lower}` twice")));
        }
    }
    // Empty strings are what omitempty-less writers put for "not set".
    let field = |name: &str| fields.get(name).copied().filter(|text| !text.is_empty());
    let identity_token = field("identitytoken").map(str::to_owned);
    let email = field("email").map(str::to_owned);
    let whose = format!("in the auths entry for {key:?} ");
    if let Some(email) = &email {
        check_printable("email", email, &whose)?;
    }

    let (username, password) = match field("auth") {
        Some(auth) => {
            let broken = || {
                invalid_config(format!("The `auth` of the auths entry for {key:?} must be the base64 of user:password"))
            };
            let decoded = decode_base64(auth).ok_or_else(broken)?;
            let decoded = String::from_utf8(decoded).map_err(|_| broken())?;
            let (user, pass) = decoded.split_once(':').ok_or_else(broken)?;
            if user.is_empty() {
                return Err(invalid_config(format!(
                    "The `auth` of the auths entry for {key:?} has an empty user name"
                )));
            }
            for (name, from_auth) in [("username", user), ("password", pass)] {
                if field(name).is_some_and(|given| given != from_auth) {
                    return Err(invalid_config(format!(
                        "The `auth` and `{name}` of the auths entry for {key:?} disagree; give one or make them match"
                    )));
                }
            }
            (user.to_owned(), pass.to_owned())
        }
        None => match (field("username"), field("password")) {
            (Some(user), Some(pass)) => (user.to_owned(), pass.to_owned()),
            (Some(user), None) if identity_token.is_some() => (user.to_owned(), String::new()),
            (Some(_), None) => {
                return Err(invalid_config(format!("The auths entry for {key:?} has a username but no password")))
            }
            (None, Some(_)) => {
                return Err(invalid_config(format!("The auths entry for {key:?} has a password but no username")))
            }
            (None, None) if has_helper => return Err(invalid_config(HELPER_ONLY)),
            (None, None) => {
                return Err(invalid_config(format!(
                    "The auths entry for {key:?} holds no credentials: give `auth`, or `username` and `password`"
                )))
            }
        },
    };
    check_username(&username, &whose)?;
    if password.is_empty() && identity_token.is_none() {
        return Err(invalid_config(format!("The password {whose}must not be empty")));
    }
    Ok(RegistryAuth { username, password, email, identity_token })
}

fn names_a_helper(config: &Map<String, Value>) -> bool {
    let store = matches!(config.get("credsStore"), Some(Value::String(s)) if !s.is_empty());
    let helpers = matches!(config.get("credHelpers"), Some(Value::Object(m)) if !m.is_empty());
    store || helpers
}

fn parse_config(config: &Value) -> Result<DockerConfig, Error> {
    let Value::Object(config) = config else {
        return Err(invalid_config("The .dockerconfigjson must be a JSON object"));
    };
    let has_helper = names_a_helper(config);
    let auths = match config.get("auths") {
        None | Some(Value::Null) => None,
        Some(Value::Object(auths)) => Some(auths).filter(|auths| !auths.is_empty()),
        Some(_) => return Err(invalid_config("`auths` must be an object")),
    };
    let Some(auths) = auths else {
        return Err(invalid_config(if has_helper {
            HELPER_ONLY
        } else {
            "The .dockerconfigjson must hold an `auths` object with at least one registry (the legacy .dockercfg format without `auths` is not accepted)"
        }));
    };
    if auths.len() > MAX_REGISTRIES {
        return Err(invalid_config(format!(
            "The .dockerconfigjson names {} registries; at most {MAX_REGISTRIES} are allowed",
            auths.len()
        )));
    }
    let mut normalised = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (given, entry) in auths {
        let registry = parse_registry(given)?;
        let credentials = parse_entry(&registry.key, entry, has_helper)?;
        if !seen.insert(registry.identity) {
            return Err(invalid_config(format!("The .dockerconfigjson names the registry {:?} twice", registry.key)));
        }
        normalised.insert(registry.key, credentials);
    }
    Ok(DockerConfig { auths: normalised })
}

impl DockerConfig {
    /// The structured form, as `kubectl create secret docker-registry` takes it. `registry`
    /// defaults to Docker Hub; an empty `email` is left out, as kubectl does.
    pub fn from_credentials(
        registry: Option<&str>,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<DockerConfig, Error> {
        let registry = parse_registry(registry.unwrap_or(DOCKER_HUB_SERVER))?;
        check_username(username, "")?;
        if let Some(email) = email {
            check_printable("email", email, "")?;
        }
        if password.is_empty() {
            return Err(invalid_config("The password must not be empty"));
        }
        let credentials = RegistryAuth {
            username: username.to_owned(),
            password: password.to_owned(),
            email: email.filter(|email| !email.is_empty()).map(str::to_owned),
            identity_token: None,
        };
        Ok(DockerConfig { auths: BTreeMap::from([(registry.key, credentials)]) })
    }

    /// SAP's `.dockerconfigjson` string: a Docker config's JSON, or that JSON base64-encoded
    /// (standard or URL-safe alphabet, padded or not, line breaks allowed).
    pub fn from_dockerconfigjson(text: &str) -> Result<DockerConfig, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid_config("`.dockerconfigjson` must not be empty"));
        }
        let syntax = |error: serde_json::Error, what: &str| {
            // Only the position: serde_json's messages are about syntax, but a position is all
            // a user needs and is certain to hold nothing of the value.
            invalid_config(format!(
                "`.dockerconfigjson` {what} (syntax error at line {}, column {})",
                error.line(),
                error.column()
            ))
        };
        let config: Value = if text.starts_with('{') {
            reject_duplicates(text.as_bytes())?;
            serde_json::from_str(text).map_err(|e| syntax(e, "is not valid JSON"))?
        } else {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let decoded = decode_base64(&compact)
                .ok_or_else(|| invalid_config("`.dockerconfigjson` is neither JSON nor base64-encoded JSON"))?;
            reject_duplicates(&decoded)?;
            serde_json::from_slice(&decoded).map_err(|e| syntax(e, "is base64 but does not decode to valid JSON"))?
        };
        parse_config(&config)
    }

    /// Reads back what [`DockerConfig::to_dockerconfigjson`] wrote. Anything unreadable is a
    /// corrupt record (500), not the client's fault.
    pub fn from_stored(bytes: &[u8]) -> Result<DockerConfig, Error> {
        let config: Value = serde_json::from_slice(bytes).map_err(|_| Error::Internal(Internal::CorruptRecord))?;
        parse_config(&config).map_err(|_| Error::Internal(Internal::CorruptRecord))
    }

    pub fn auths(&self) -> &BTreeMap<String, RegistryAuth> {
        &self.auths
    }

    /// The registries for metadata: `host[:port]` of each server key, lower-case, without scheme
    /// or path; Docker Hub as `docker.io` (the name users write in image references).
    /// Sorted and deduplicated.
    pub fn registries(&self) -> Vec<String> {
        let hosts: BTreeSet<&str> = self.auths.keys().map(|key| host_of(key)).collect();
        hosts.into_iter().map(str::to_owned).collect()
    }

    /// The canonical `.dockerconfigjson`: compact, keys sorted, each entry
    /// `{"username","password","email"?,"auth","identitytoken"?}`. For the structured form this
    /// is byte for byte what `kubectl create secret docker-registry` builds.
    pub fn to_dockerconfigjson(&self) -> Vec<u8> {
        let mut out = String::from("{\"auths\":{");
        for (server, credentials) in &self.auths {
            if !out.ends_with('{') {
                out.push(',');
            }
            push_go_json_string(&mut out, server);
            out.push_str(":{");
            push_field(&mut out, "username", &credentials.username);
            // Go's omitempty: only an identity-token entry has no password.
            if !credentials.password.is_empty() {
                push_field(&mut out, "password", &credentials.password);
            }
            if let Some(email) = &credentials.email {
                push_field(&mut out, "email", email);
            }
            push_field(&mut out, "auth", &credentials.auth());
            if let Some(token) = &credentials.identity_token {
                push_field(&mut out, "identitytoken", token);
            }
            out.push('}');
        }
        out.push_str("}}");
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests;
