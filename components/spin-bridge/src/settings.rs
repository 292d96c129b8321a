use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use domain::crypto::Keyring;
use domain::error::{Error, Internal};
use domain::identity::AuthSettings;
use domain::log::WritePolicy;
use domain::mint::ProviderEndpoints;
use domain::signin::SignInSettings;
use domain::verify::{CheckPolicy, PlainHttpRegistries};
use spin_sdk::variables;
use spin_sdk::wit::wasi::config::store as config;

/// Which variables a component was given in spin.toml beyond the token settings (least
/// privilege): asking for one it was not given finds nothing, and what a component reads it also
/// parses on every request, so the adapter says up front what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Grants {
    pub encryption_keys: bool,
    /// The `verify` component's: `verify_timeout_ms`, `verify_insecure_registries` and the
    /// minting endpoints. Other components reach registries and providers only through it.
    pub outbound: bool,
}

impl Grants {
    pub const METADATA: Grants = Grants { encryption_keys: false, outbound: false };
    pub const CREDENTIALS: Grants = Grants { encryption_keys: true, outbound: false };
    pub const VERIFY: Grants = Grants { encryption_keys: true, outbound: true };
}

pub struct Settings {
    pub auth: AuthSettings,
    pub keyring: Option<Result<Keyring, Error>>,
    /// `tenant_lock_lease_ms`: how long a stalled write may hold up its tenant's log.
    pub policy: WritePolicy,
    /// Verification: `verify_timeout_ms`, `verify_insecure_registries` (the `verify` component's).
    pub check: CheckPolicy,
    /// Minting: `aws_endpoint_url`, `google_token_url`, `azure_authority_url` (the `verify`
    /// component's; empty or absent means the providers' own endpoints). A malformed value leaves
    /// the defaults and is reported when minting is asked for.
    pub endpoints: ProviderEndpoints,
}

/// The component's variables, asked for in one host call (`wasi:config/store`'s `get-all`, which
/// Spin answers with exactly the variables the component was granted, each resolved as a `get`
/// would) rather than one call per variable on every request. The instance serves one request,
/// so nothing outlives it; if `get-all` fails, each variable is asked for on its own.
fn all_variables() -> Option<&'static HashMap<String, String>> {
    static ALL: OnceLock<Option<HashMap<String, String>>> = OnceLock::new();
    ALL.get_or_init(|| config::get_all().ok().map(|all| all.into_iter().collect())).as_ref()
}

fn variable(name: &str) -> Option<String> {
    let value = match all_variables() {
        Some(all) => all.get(name).cloned(),
        None => variables::get(name).ok(),
    };
    value.filter(|v| !v.trim().is_empty())
}

/// The console's sign-in (the `session` component): `console_oidc_issuer`, `console_oidc_client_id`,
/// `console_oidc_client_secret`, `console_oidc_redirect_uri`, `console_oidc_scopes`,
/// `console_oidc_resource` and `console_token_paste` (anything but `false` offers pasting).
pub fn sign_in() -> SignInSettings {
    SignInSettings {
        issuer: variable("console_oidc_issuer").unwrap_or_default(),
        client_id: variable("console_oidc_client_id").unwrap_or_default(),
        client_secret: variable("console_oidc_client_secret").unwrap_or_default(),
        redirect_uri: variable("console_oidc_redirect_uri").unwrap_or_default(),
        scopes: variable("console_oidc_scopes").unwrap_or_default(),
        resource: variable("console_oidc_resource").unwrap_or_default(),
        paste: !variable("console_token_paste").is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
    }
}

impl Settings {
    pub fn load(grants: Grants) -> Settings {
        let auth = AuthSettings {
            jwks: variable("auth_jwks").unwrap_or_default(),
            issuer: variable("auth_issuer").unwrap_or_default(),
            audience: variable("auth_audience").unwrap_or_default(),
            tenant_claim: variable("auth_tenant_claim").unwrap_or_else(|| "tenant".into()),
            issuers: variable("auth_issuers").unwrap_or_default(),
            keys_stale_secs: variable("auth_keys_stale_secs")
                .and_then(|s| s.parse().ok())
                .unwrap_or(domain::identity::discovery::DEFAULT_STALE_SECS),
        };
        let keyring = grants.encryption_keys.then(|| match variable("encryption_keys") {
            Some(value) => Keyring::parse(&value),
            None => Err(Internal::Config("encryption_keys").into()),
        });
        let policy = variable("tenant_lock_lease_ms")
            .and_then(|ms| ms.parse().ok())
            .map(|ms| WritePolicy::with_lease(Duration::from_millis(ms)))
            .unwrap_or_default();
        let (check, endpoints) =
            if grants.outbound { outbound() } else { (CheckPolicy::default(), ProviderEndpoints::default()) };
        Settings { auth, keyring, policy, check, endpoints }
    }
}

/// The `verify` component's variables ([`Grants::outbound`]): verification and minting.
fn outbound() -> (CheckPolicy, ProviderEndpoints) {
    let check = CheckPolicy {
        timeout: variable("verify_timeout_ms")
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(CheckPolicy::default().timeout),
        plain_http: PlainHttpRegistries::parse(&variable("verify_insecure_registries").unwrap_or_default()),
    };
    let endpoints = ProviderEndpoints::parse(
        &variable("aws_endpoint_url").unwrap_or_default(),
        &variable("google_token_url").unwrap_or_default(),
        &variable("azure_authority_url").unwrap_or_default(),
        check.plain_http.clone(),
    )
    .unwrap_or_else(|_| {
        crate::log::error("a minting endpoint variable is not an http(s) URL; the providers' defaults apply");
        ProviderEndpoints { plain_http: check.plain_http.clone(), ..ProviderEndpoints::default() }
    });
    (check, endpoints)
}
