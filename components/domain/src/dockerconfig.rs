//! `.dockerconfigjson` in and out: the two body forms a secret is created from, the one
//! normalised [`DockerConfig`] they become, and the canonical JSON it is stored and exported as.
//!
//! No message built here ever contains a credential value (user name, password, `auth`, token):
//! they reach logs and clients. Registry keys and field names may appear; a registry string is
//! echoed only after it has been validated (so it cannot carry `user:password@`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fmt::Write as _;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::Internal;
use crate::Error;

/// The server key Docker Hub is stored under: the one `kubectl create secret docker-registry`,
/// `docker login` and the kubelet agree on.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// How Docker Hub appears in metadata ([`DockerConfig::registries`]).
pub const DOCKER_HUB_HOST: &str = "docker.io";
/// The most registries one secret may hold. Far above any real pull secret; bounds the work a
/// single body can cause.
pub const MAX_REGISTRIES: usize = 64;

const DOCKER_HUB_SPELLINGS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_PATHS: [&str; 4] = ["", "/", "/v1", "/v1/"];
/// Long enough for a 253-character host, a port and a path; short enough to keep messages small.
const MAX_REGISTRY_LEN: usize = 512;

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

/// A create or modify body, parsed: the name it carries (not yet validated: the caller checks it
/// with `SecretName::parse` and, for PATCH, against the path) and the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    pub name: Option<String>,
    pub credentials: DockerConfig,
}

const BODY_FIELDS: [&str; 6] = ["name", "data", "registry", "username", "password", "email"];
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
    /// Reads a create (`require_name`) or modify body in either accepted form:
    /// SAP's `{"name", "data": {".dockerconfigjson": "..."}}` or kubectl's
    /// `{"name", "registry"?, "username", "password", "email"?}`.
    pub fn from_json(body: Value, require_name: bool) -> Result<SecretRequest, Error> {
        let Value::Object(fields) = body else {
            return Err(invalid_request("The request body must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|key| !BODY_FIELDS.contains(&key.as_str())) {
            return Err(invalid_request(format!(
                "Unknown field {}; a secret takes `name` and either `data` or `registry`, `username`, `password` and `email`",
                field_name(unknown)
            )));
        }
        let name = optional_string(&fields, "name")?.map(str::to_owned);
        if require_name && name.is_none() {
            return Err(invalid_request("`name` is required"));
        }
        let present = |field: &str| !matches!(fields.get(field), None | Some(Value::Null));
        let structured = STRUCTURED_FIELDS.iter().find(|field| present(field));
        let credentials = match (present("data"), structured) {
            (true, Some(field)) => {
                return Err(invalid_request(format!(
                    "The body mixes two forms: `data` cannot come with `{field}`; give either `data` with `.dockerconfigjson`, or `username` and `password` (with optional `registry` and `email`)"
                )))
            }
            (false, None) => {
                return Err(invalid_request(
                    "The body holds no credentials: give either `data` with `.dockerconfigjson`, or `username` and `password` (with optional `registry` and `email`)",
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
        Ok(SecretRequest { name, credentials })
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

/// A registry as given, validated: its server key and what identifies it for duplicate checks.
struct Registry {
    /// The key in `auths`: Docker Hub's canonical one, or the given string with the host
    /// lower-cased and trailing '/' removed.
    key: String,
    /// `host[:port]` plus path: two spellings that differ only in scheme or trailing '/' name the
    /// same registry to the kubelet, so they count as the same.
    identity: String,
}

fn host_of(key: &str) -> &str {
    if key == DOCKER_HUB_SERVER {
        return DOCKER_HUB_HOST;
    }
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

fn parse_registry(given: &str) -> Result<Registry, Error> {
    let refuse = |rule: &str| Err(invalid_config(format!("A registry {rule}")));
    if given.is_empty() {
        return refuse("must not be empty");
    }
    if given.len() > MAX_REGISTRY_LEN {
        return refuse("must be at most 512 characters");
    }
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    if !given.is_ascii() {
        return refuse("must be ASCII (write an internationalised host name in its xn-- form)");
    }
    let (scheme, rest) = match given.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, given),
    };
    if scheme.as_deref().is_some_and(|scheme| scheme != "http" && scheme != "https") {
        return refuse("may only have the scheme http:// or https://");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return refuse("must not carry a user name or password; give them as the credentials");
    }
    if authority.is_empty()
        || authority.ends_with(':')
        || !authority.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']'))
    {
        return refuse("must be a host name or IP address, optionally with :port");
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')) {
        return refuse("may have a path only of letters, digits, '-', '.', '_', '~' and '/'");
    }
    let authority = authority.to_ascii_lowercase();
    let url = url::Url::parse(&format!("{}://{authority}{path}", scheme.as_deref().unwrap_or("https")))
        .map_err(|_| invalid_config("A registry must be a host name or IP address, optionally with :port"))?;
    let Some(host) = url.host_str() else {
        return refuse("must name a host");
    };
    if DOCKER_HUB_SPELLINGS.contains(&host) && url.port().is_none() && DOCKER_HUB_PATHS.contains(&path) {
        return Ok(Registry { key: DOCKER_HUB_SERVER.to_owned(), identity: DOCKER_HUB_HOST.to_owned() });
    }
    let path = path.trim_end_matches('/');
    let key = match &scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    };
    Ok(Registry { key, identity: format!("{authority}{path}") })
}

/// The server key a registry is stored under; see [`DockerConfig`] for the normalisation.
pub fn server_key(registry: &str) -> Result<String, Error> {
    parse_registry(registry).map(|registry| registry.key)
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

/// Writes a JSON string as Go's encoding/json does (kubectl's encoder), so that our output is
/// byte-identical to kubectl's: HTML-sensitive characters and U+2028/9 escaped as `\u....`.
fn push_go_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_field(out: &mut String, name: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    push_go_json_string(out, name);
    out.push(':');
    push_go_json_string(out, value);
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
            serde_json::from_str(text).map_err(|e| syntax(e, "is not valid JSON"))?
        } else {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let decoded = decode_base64(&compact)
                .ok_or_else(|| invalid_config("`.dockerconfigjson` is neither JSON nor base64-encoded JSON"))?;
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
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use serde_json::json;

    const PASSWORD: &str = "hunter2-Sup3r";
    const USER: &str = "alice";

    fn sap(config: &str) -> Value {
        json!({"name": "pull", "data": {".dockerconfigjson": config}})
    }

    fn parse(body: Value) -> Result<DockerConfig, Error> {
        SecretRequest::from_json(body, true).map(|request| request.credentials)
    }

    fn message(result: Result<DockerConfig, Error>) -> (String, &'static str) {
        let error = result.expect_err("should be refused");
        assert_eq!(error.status(), 400);
        let message = error.message();
        for secret in [PASSWORD, USER, "aHVudGVy", &STANDARD.encode(format!("{USER}:{PASSWORD}"))] {
            assert!(!message.contains(secret), "message leaks a credential: {message}");
        }
        (message, error.code())
    }

    fn only(config: &DockerConfig) -> (&str, &RegistryAuth) {
        assert_eq!(config.auths().len(), 1);
        let (key, auth) = config.auths().iter().next().unwrap();
        (key, auth)
    }

    fn auth_of(user: &str, pass: &str) -> String {
        STANDARD.encode(format!("{user}:{pass}"))
    }

    #[test]
    fn structured_form_builds_what_kubectl_builds() {
        let config = parse(json!({
            "name": "pull", "registry": "ghcr.io", "username": "alice",
            "password": "p@ss", "email": "a@example.com"
        }))
        .unwrap();
        assert_eq!(
            String::from_utf8(config.to_dockerconfigjson()).unwrap(),
            r#"{"auths":{"ghcr.io":{"username":"alice","password":"p@ss","email":"a@example.com","auth":"YWxpY2U6cEBzcw=="}}}"#
        );
    }

    #[test]
    fn structured_form_defaults_to_docker_hub_and_omits_empty_email() {
        for body in [
            json!({"name": "pull", "username": "alice", "password": "hunter2"}),
            json!({"name": "pull", "username": "alice", "password": "hunter2", "email": ""}),
            json!({"name": "pull", "username": "alice", "password": "hunter2", "registry": null, "email": null}),
        ] {
            let config = parse(body).unwrap();
            assert_eq!(
                String::from_utf8(config.to_dockerconfigjson()).unwrap(),
                r#"{"auths":{"https://index.docker.io/v1/":{"username":"alice","password":"hunter2","auth":"YWxpY2U6aHVudGVyMg=="}}}"#
            );
            assert_eq!(config.registries(), vec!["docker.io"]);
        }
    }

    #[test]
    fn output_escapes_strings_as_go_does() {
        let config =
            DockerConfig::from_credentials(Some("ghcr.io"), "bob", "s3cr3t&<>\"\\\n\u{1}\u{2028}é", None).unwrap();
        let expected_auth = auth_of("bob", "s3cr3t&<>\"\\\n\u{1}\u{2028}é");
        assert_eq!(
            String::from_utf8(config.to_dockerconfigjson()).unwrap(),
            format!(
                r#"{{"auths":{{"ghcr.io":{{"username":"bob","password":"s3cr3t\u0026\u003c\u003e\"\\\n\u0001\u2028é","auth":"{expected_auth}"}}}}}}"#
            )
        );
        assert_eq!(DockerConfig::from_stored(&config.to_dockerconfigjson()).unwrap(), config);
    }

    #[test]
    fn structured_form_refusals() {
        let cases = [
            (json!({"name": "p", "username": "a:b", "password": "hunter2"}), "must not contain ':'"),
            (json!({"name": "p", "username": "", "password": "hunter2"}), "username must not be empty"),
            (json!({"name": "p", "username": USER, "password": ""}), "password must not be empty"),
            (json!({"name": "p", "username": USER}), "`password` is required"),
            (json!({"name": "p", "password": PASSWORD}), "`username` is required"),
            (json!({"name": "p", "registry": "ghcr.io"}), "`username` is required"),
            (json!({"name": "p", "username": USER, "password": 42}), "`password` must be a string"),
            (json!({"name": "p", "username": ["alice"], "password": PASSWORD}), "`username` must be a string"),
            (json!({"name": "p", "username": USER, "password": PASSWORD, "email": false}), "`email` must be a string"),
            (json!({"name": "p", "username": USER, "password": PASSWORD, "registry": "ftp://x.io"}), "scheme"),
        ];
        for (body, expected) in cases {
            let (message, _) = message(parse(body.clone()));
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn body_shape_refusals() {
        let config = r#"{"auths":{"ghcr.io":{"auth":"YWxpY2U6aHVudGVyMg=="}}}"#;
        let cases = [
            (json!([1]), "must be a JSON object", "InvalidRequest"),
            (json!("text"), "must be a JSON object", "InvalidRequest"),
            (json!({"data": {".dockerconfigjson": config}}), "`name` is required", "InvalidRequest"),
            (json!({"name": 7, "data": {".dockerconfigjson": config}}), "`name` must be a string", "InvalidRequest"),
            (
                json!({"name": "p", "data": {".dockerconfigjson": config}, "username": USER}),
                "mixes two forms",
                "InvalidRequest",
            ),
            (
                json!({"name": "p", "data": {".dockerconfigjson": config}, "extra": 1}),
                "Unknown field \"extra\"",
                "InvalidRequest",
            ),
            (json!({"name": "p"}), "holds no credentials", "InvalidRequest"),
            (json!({"name": "p", "data": {}}), "`data..dockerconfigjson` is required", "InvalidRequest"),
            (json!({"name": "p", "data": config}), "`data` must be an object", "InvalidRequest"),
            (json!({"name": "p", "data": {".dockerconfigjson": {"auths": {}}}}), "must be a string", "InvalidRequest"),
            (
                json!({"name": "p", "data": {".dockerconfigjson": config, "other": "x"}}),
                "Unknown field \"other\" in `data`",
                "InvalidRequest",
            ),
        ];
        for (body, expected, code) in cases {
            let (message, actual_code) = message(parse(body.clone()));
            assert!(message.contains(expected), "{body}: {message}");
            assert_eq!(actual_code, code, "{body}");
        }
    }

    #[test]
    fn name_is_optional_for_modify_and_passed_through() {
        let body = json!({"username": USER, "password": PASSWORD});
        assert_eq!(SecretRequest::from_json(body.clone(), false).unwrap().name, None);
        let named = json!({"name": "Whatever", "username": USER, "password": PASSWORD});
        assert_eq!(SecretRequest::from_json(named, false).unwrap().name.as_deref(), Some("Whatever"));
    }

    #[test]
    fn huge_unknown_field_names_are_cut_in_messages() {
        let long = "x".repeat(10_000);
        let mut body = json!({"name": "p", "username": USER, "password": PASSWORD});
        body[&long] = json!(1);
        let (message, _) = message(parse(body));
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn sap_form_takes_plain_json() {
        let text = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, auth_of(USER, PASSWORD));
        let config = parse(sap(&text)).unwrap();
        let (key, auth) = only(&config);
        assert_eq!(key, "ghcr.io");
        assert_eq!((auth.username(), auth.password()), (USER, PASSWORD));
        assert_eq!(auth.email(), None);
    }

    #[test]
    fn sap_form_takes_base64_wrapped_json_in_every_alphabet_and_padding() {
        // '?' and '>' make the encodings differ between the alphabets.
        let text = format!(r#"{{"auths":{{"ghcr.io":{{"username":"{USER}","password":"{PASSWORD}??>>"}}}}}}"#);
        let standard = STANDARD.encode(&text);
        assert!(standard.contains('/') || standard.contains('+'));
        let wrapped: String =
            standard.as_bytes().chunks(76).map(|line| format!("{}\n", std::str::from_utf8(line).unwrap())).collect();
        for encoded in [
            standard.clone(),
            STANDARD_NO_PAD.encode(&text),
            URL_SAFE.encode(&text),
            URL_SAFE_NO_PAD.encode(&text),
            wrapped,
        ] {
            let config = parse(sap(&encoded)).unwrap();
            let (key, auth) = only(&config);
            assert_eq!(key, "ghcr.io");
            assert_eq!(auth.password(), format!("{PASSWORD}??>>"));
        }
    }

    #[test]
    fn sap_form_refuses_what_is_neither_json_nor_base64_json() {
        let cases = [
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("not base64 !!", "neither JSON nor base64"),
            (r#"{"auths": "#, "is not valid JSON"),
            (&STANDARD.encode(format!("{USER}:{PASSWORD}")), "does not decode to valid JSON"),
            ("[]", "neither JSON nor base64"),
            (&STANDARD.encode("[]"), "must be a JSON object"),
        ];
        for (text, expected) in cases {
            let (message, code) = message(parse(sap(text)));
            assert!(message.contains(expected), "{text}: {message}");
            assert_eq!(code, "InvalidDockerConfig");
        }
    }

    #[test]
    fn auth_is_accepted_padded_and_unpadded() {
        // "u:p" has no padding; "alice:hunter2" needs "==".
        for (user, pass) in [(USER, "hunter2"), ("u", "p"), ("user", "pa:ss")] {
            for auth in [STANDARD.encode(format!("{user}:{pass}")), STANDARD_NO_PAD.encode(format!("{user}:{pass}"))] {
                let text = json!({"auths": {"ghcr.io": {"auth": auth}}}).to_string();
                let config = parse(sap(&text)).unwrap();
                let (_, credentials) = only(&config);
                assert_eq!((credentials.username(), credentials.password()), (user, pass));
                assert_eq!(credentials.auth(), STANDARD.encode(format!("{user}:{pass}")));
            }
        }
    }

    #[test]
    fn auth_that_is_not_user_colon_password_is_refused() {
        let cases = [
            ("%%%notbase64", "must be the base64 of user:password"),
            (&STANDARD.encode(format!("{USER}{PASSWORD}")), "must be the base64 of user:password"),
            (&STANDARD.encode([0xff, 0xfe, b':', b'x']), "must be the base64 of user:password"),
            (&STANDARD.encode(format!(":{PASSWORD}")), "empty user name"),
            (&STANDARD.encode(format!("{USER}:")), "password in the auths entry for \"ghcr.io\" must not be empty"),
        ];
        for (auth, expected) in cases {
            let text = json!({"auths": {"ghcr.io": {"auth": auth}}}).to_string();
            let (message, _) = message(parse(sap(&text)));
            assert!(message.contains(expected), "{auth}: {message}");
        }
    }

    #[test]
    fn auth_and_username_password_must_agree() {
        let auth = auth_of(USER, PASSWORD);
        let agreeing =
            json!({"auths": {"ghcr.io": {"auth": auth, "username": USER, "password": PASSWORD, "email": "a@b.c"}}});
        let config = parse(sap(&agreeing.to_string())).unwrap();
        assert_eq!(only(&config).1.email(), Some("a@b.c"));
        for (field, value) in [("username", "mallory"), ("password", "other-pass")] {
            let mut entry = json!({"auth": auth});
            entry[field] = json!(value);
            let text = json!({"auths": {"ghcr.io": entry}}).to_string();
            let (message, _) = message(parse(sap(&text)));
            assert!(message.contains(&format!("`auth` and `{field}`")), "{message}");
            assert!(!message.contains(value));
        }
    }

    #[test]
    fn entry_with_username_and_password_only() {
        let text = json!({"auths": {"quay.io": {"username": USER, "password": PASSWORD}}}).to_string();
        let config = parse(sap(&text)).unwrap();
        assert_eq!(only(&config).1.auth(), auth_of(USER, PASSWORD));
        let exported = String::from_utf8(config.to_dockerconfigjson()).unwrap();
        assert!(exported.contains(&format!(r#""auth":"{}""#, auth_of(USER, PASSWORD))));
    }

    #[test]
    fn entry_field_names_are_case_insensitive_like_docker() {
        let text = json!({"auths": {"quay.io": {"Username": USER, "Password": PASSWORD}}}).to_string();
        assert_eq!(only(&parse(sap(&text)).unwrap()).1.username(), USER);
        let twice = json!({"auths": {"quay.io": {"auth": auth_of(USER, PASSWORD), "Auth": auth_of(USER, PASSWORD)}}});
        let (message, _) = message(parse(sap(&twice.to_string())));
        assert!(message.contains("gives `auth` twice"), "{message}");
    }

    #[test]
    fn identity_token_may_accompany_and_survives_storage() {
        let text = json!({"auths": {"myacr.azurecr.io": {
            "auth": STANDARD.encode("00000000-0000-0000-0000-000000000000:"),
            "identitytoken": "token-value"
        }}})
        .to_string();
        let config = parse(sap(&text)).unwrap();
        let (_, credentials) = only(&config);
        assert_eq!(credentials.identity_token(), Some("token-value"));
        assert_eq!(credentials.password(), "");
        let stored = config.to_dockerconfigjson();
        assert_eq!(
            String::from_utf8(stored.clone()).unwrap(),
            r#"{"auths":{"myacr.azurecr.io":{"username":"00000000-0000-0000-0000-000000000000","auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"token-value"}}}"#
        );
        assert_eq!(DockerConfig::from_stored(&stored).unwrap(), config);
    }

    #[test]
    fn incomplete_entries_are_refused() {
        let cases = [
            (json!({"username": USER}), "a username but no password"),
            (json!({"password": PASSWORD}), "a password but no username"),
            (json!({}), "holds no credentials"),
            (json!({"email": "a@b.c"}), "holds no credentials"),
            (json!("x"), "must be an object"),
            (json!({"auth": 5}), "`auth` in the auths entry for \"ghcr.io\" must be a string"),
            (json!({"username": USER, "password": PASSWORD, "registrytoken": "t"}), "unknown field \"registrytoken\""),
            (json!({"username": "a:b", "password": PASSWORD}), "must not contain ':'"),
        ];
        for (entry, expected) in cases {
            let text = json!({"auths": {"ghcr.io": entry}}).to_string();
            let (message, _) = message(parse(sap(&text)));
            assert!(message.contains(expected), "{entry}: {message}");
        }
    }

    #[test]
    fn empty_or_missing_auths_are_refused() {
        for config in [json!({}), json!({"auths": {}}), json!({"auths": null}), json!({"HttpHeaders": {"a": "b"}})] {
            let (message, _) = message(parse(sap(&config.to_string())));
            assert!(message.contains("at least one registry"), "{config}: {message}");
        }
        let (message, _) = message(parse(sap(r#"{"auths": []}"#)));
        assert!(message.contains("`auths` must be an object"));
    }

    #[test]
    fn helper_only_configs_are_refused_with_the_way_out() {
        for config in [
            json!({"credsStore": "desktop"}),
            json!({"auths": {}, "credsStore": "osxkeychain"}),
            json!({"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"}),
            json!({"credHelpers": {"gcr.io": "gcloud"}}),
            json!({"auths": {"gcr.io": {}}, "credHelpers": {"gcr.io": "gcloud"}}),
        ] {
            let (message, _) = message(parse(sap(&config.to_string())));
            assert_eq!(message, HELPER_ONLY, "{config}");
            assert!(message.contains("docker login"));
        }
    }

    #[test]
    fn docker_hub_spellings_all_become_the_canonical_key() {
        let mut spellings = Vec::new();
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"] {
            for scheme in ["", "http://", "https://", "HTTPS://"] {
                for path in ["", "/", "/v1", "/v1/"] {
                    spellings.push(format!("{scheme}{host}{path}"));
                }
            }
        }
        for spelling in spellings {
            assert_eq!(server_key(&spelling).unwrap(), DOCKER_HUB_SERVER, "{spelling}");
            let config = DockerConfig::from_credentials(Some(&spelling), USER, PASSWORD, None).unwrap();
            assert_eq!(only(&config).0, DOCKER_HUB_SERVER);
            assert_eq!(config.registries(), vec!["docker.io"]);
        }
    }

    #[test]
    fn other_registries_keep_their_spelling_with_host_lower_cased() {
        let cases = [
            ("ghcr.io", "ghcr.io", "ghcr.io"),
            ("GHCR.io/", "ghcr.io", "ghcr.io"),
            ("https://My.Registry:5000", "https://my.registry:5000", "my.registry:5000"),
            ("https://my.registry:5000/", "https://my.registry:5000", "my.registry:5000"),
            ("HTTP://localhost:5000", "http://localhost:5000", "localhost:5000"),
            ("gcr.io/My-Project/", "gcr.io/My-Project", "gcr.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"),
            ("[::1]:5000", "[::1]:5000", "[::1]:5000"),
            ("docker.io:5000", "docker.io:5000", "docker.io:5000"),
            ("docker.io/other", "docker.io/other", "docker.io"),
        ];
        for (given, key, host) in cases {
            let config = DockerConfig::from_credentials(Some(given), USER, PASSWORD, None).unwrap();
            assert_eq!(only(&config).0, key, "{given}");
            assert_eq!(config.registries(), vec![host], "{given}");
        }
    }

    #[test]
    fn malformed_registries_are_refused() {
        let cases = [
            ("", "must not be empty"),
            ("ghcr .io", "spaces"),
            (" ghcr.io", "spaces"),
            ("ftp://ghcr.io", "scheme"),
            ("oci://ghcr.io", "scheme"),
            ("https://", "host name or IP address"),
            ("/path-only", "host name or IP address"),
            ("ghcr.io:", "host name or IP address"),
            ("ghcr.io:99999", "host name or IP address"),
            ("ghcr.io:port", "host name or IP address"),
            ("https://alice:hunter2-Sup3r@ghcr.io", "must not carry a user name or password"),
            ("ghcr.io/a?b=c", "path only"),
            ("ghcr.io/a#b", "path only"),
            ("gh%63r.io", "host name or IP address"),
            ("münchen.de", "ASCII"),
            (&"a".repeat(600), "at most 512"),
        ];
        for (given, expected) in cases {
            let (message, code) = message(DockerConfig::from_credentials(Some(given), USER, PASSWORD, None));
            assert!(message.contains(expected), "{given}: {message}");
            assert_eq!(code, "InvalidDockerConfig");
        }
    }

    #[test]
    fn two_spellings_of_one_registry_are_refused() {
        let auth = auth_of(USER, PASSWORD);
        for (a, b) in [
            ("docker.io", "https://index.docker.io/v1/"),
            ("registry-1.docker.io", "index.docker.io"),
            ("ghcr.io", "https://ghcr.io/"),
            ("GHCR.IO", "ghcr.io"),
            ("http://quay.io", "https://quay.io"),
        ] {
            let text = json!({"auths": {a: {"auth": auth}, b: {"auth": auth}}}).to_string();
            let (message, _) = message(parse(sap(&text)));
            assert!(message.contains("twice"), "{a} {b}: {message}");
        }
    }

    #[test]
    fn several_registries_are_kept_sorted() {
        let auth = auth_of(USER, PASSWORD);
        let text = json!({"auths": {
            "quay.io": {"auth": auth}, "docker.io": {"auth": auth},
            "https://ghcr.io": {"auth": auth}, "ghcr.io/org": {"auth": auth}
        }})
        .to_string();
        let config = parse(sap(&text)).unwrap();
        let keys: Vec<&String> = config.auths().keys().collect();
        assert_eq!(keys, ["ghcr.io/org", "https://ghcr.io", "https://index.docker.io/v1/", "quay.io"]);
        assert_eq!(config.registries(), vec!["docker.io", "ghcr.io", "quay.io"]);
        assert_eq!(DockerConfig::from_stored(&config.to_dockerconfigjson()).unwrap(), config);
    }

    #[test]
    fn at_most_64_registries() {
        let auth = auth_of(USER, PASSWORD);
        let config_of = |n: usize| {
            let auths: Map<String, Value> =
                (0..n).map(|i| (format!("r{i}.example.com"), json!({"auth": auth}))).collect();
            json!({"auths": auths}).to_string()
        };
        assert_eq!(parse(sap(&config_of(64))).unwrap().auths().len(), 64);
        let (message, _) = message(parse(sap(&config_of(65))));
        assert!(message.contains("at most 64"), "{message}");
    }

    #[test]
    fn other_docker_config_fields_are_ignored() {
        let text = json!({
            "auths": {"ghcr.io": {"auth": auth_of(USER, PASSWORD), "serveraddress": "ghcr.io"}},
            "HttpHeaders": {"User-Agent": "x"}, "psFormat": "table"
        })
        .to_string();
        let config = parse(sap(&text)).unwrap();
        assert_eq!(
            String::from_utf8(config.to_dockerconfigjson()).unwrap(),
            format!(
                r#"{{"auths":{{"ghcr.io":{{"username":"{USER}","password":"{PASSWORD}","auth":"{}"}}}}}}"#,
                auth_of(USER, PASSWORD)
            )
        );
    }

    #[test]
    fn stored_garbage_is_a_corrupt_record() {
        for bytes in [&b"not json"[..], b"{}", br#"{"auths":{"x y":{}}}"#] {
            assert_eq!(DockerConfig::from_stored(bytes), Err(Error::Internal(Internal::CorruptRecord)));
        }
    }

    #[test]
    fn debug_redacts_credentials() {
        let body = json!({"name": "p", "registry": "ghcr.io", "username": USER, "password": PASSWORD, "email": "mail@example.com"});
        let request = SecretRequest::from_json(body, true).unwrap();
        let shown = format!("{request:?} {:#?}", request.credentials);
        assert!(shown.contains("ghcr.io"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        for secret in [USER, PASSWORD, "mail@example.com", &auth_of(USER, PASSWORD)] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
