//! Who is calling: the bearer JWT of every request, verified against the configured JWKS, turned
//! into a [`Principal`] (tenant and scopes), and the contract's rules of what each scope may do.
//!
//! Every way a token can fail is an [`AuthFailure`] kind, which is logged; the client only ever
//! learns "invalid token". The token itself is never logged nor kept.
//!
//! Only RS256, ES256 and EdDSA are accepted, and only with a key of the matching type found by
//! `kid`: `alg: none`, every HMAC algorithm (the classic confusion where a public key is used as an
//! HMAC secret) and tokens without `kid` are refused before any key is built.

use std::collections::HashSet;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::{
    Duration, ECDSAP256PublicKeyLike, EdDSAPublicKeyLike, JWTClaims, RSAPublicKeyLike, Token, VerificationOptions,
};
use jwt_simple::JWTError;
use serde_json::{Map, Value};

use base64::Engine;

use crate::error::AuthFailure;
use crate::jwks::{Algorithm, Jwks, KeyLookupError, VerifyingKey};
use crate::name::TenantId;
use crate::Error;
use discovery::{Discovery, Issuer, KeySource};

/// The claim that names the tenant unless `auth_tenant_claim` says otherwise.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant";
/// Clock skew tolerated on `exp`, `nbf` and `iat` (jwt-simple's own default is 15 minutes).
pub const TIME_TOLERANCE_SECS: u64 = 60;
/// Longest token accepted. Identity providers' access tokens stay well below; this bounds work.
pub const MAX_TOKEN_LENGTH: usize = 16 * 1024;
/// Longest base64url header accepted, checked before it is decoded.
pub const MAX_HEADER_LENGTH: usize = 2 * 1024;

/// How tokens are verified: the Spin variables `auth_jwks`, `auth_issuer`, `auth_audience` and
/// `auth_tenant_claim` (one issuer with a key set given as is), and `auth_issuers` (any number
/// of issuers, each with its audience and tenant claim, whose keys are discovered or given: see
/// [`discovery::parse_issuers`]) with `auth_keys_stale_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The JWKS document (JSON text) holding the issuer's public keys.
    pub jwks: String,
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// A value `aud` must be or contain.
    pub audience: String,
    /// The name of the claim holding the tenant id.
    pub tenant_claim: String,
    /// `auth_issuers`: a JSON array of issuers (empty: none).
    pub issuers: String,
    /// How long discovered keys keep verifying past their freshness while their provider is down.
    pub keys_stale_secs: u64,
}

impl AuthSettings {
    /// Settings with the default tenant claim.
    pub fn new(jwks: impl Into<String>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        AuthSettings {
            jwks: jwks.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            tenant_claim: DEFAULT_TENANT_CLAIM.to_string(),
            issuers: String::new(),
            keys_stale_secs: discovery::DEFAULT_STALE_SECS,
        }
    }

    /// Every issuer whose tokens are accepted: the one of `auth_issuer` (when set) first, with
    /// `auth_jwks` as its keys, then those of `auth_issuers`. None, or an unusable
    /// `auth_issuers`, is a misconfiguration.
    pub fn issuers(&self) -> Result<Vec<Issuer>, AuthFailure> {
        let mut issuers = discovery::parse_issuers(&self.issuers, &self.tenant_claim)?;
        if !self.issuer.is_empty() || !self.jwks.is_empty() {
            if issuers.iter().any(|i| i.issuer == self.issuer) {
                return Err(AuthFailure::Misconfigured);
            }
            issuers.insert(
                0,
                Issuer {
                    issuer: self.issuer.clone(),
                    audience: self.audience.clone(),
                    tenant_claim: self.tenant_claim.clone(),
                    keys: KeySource::Static(self.jwks.clone()),
                },
            );
        }
        if issuers.is_empty() {
            return Err(AuthFailure::Misconfigured);
        }
        Ok(issuers)
    }
}

/// One permission a token may carry in its `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// List secrets and read their metadata.
    Viewer,
    /// Everything a viewer may, plus create, patch and delete.
    Admin,
    /// Read the credentials export of the tenant's own secrets. Nothing else.
    Puller,
    /// The platform itself: quotas of any tenant; create, patch and delete managed secrets.
    Operator,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Viewer, Scope::Admin, Scope::Puller, Scope::Operator];

    /// The scope's name in the `scope` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Viewer => "regsecrets.viewer",
            Scope::Admin => "regsecrets.admin",
            Scope::Puller => "regsecrets.puller",
            Scope::Operator => "regsecrets.operator",
        }
    }

    /// `None` for every name that is not ours: tokens commonly carry other services' scopes too.
    pub fn from_claim_value(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of our scopes a token carries.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub fn empty() -> Scopes {
        Scopes(0)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn with(mut self, scope: Scope) -> Scopes {
        self.insert(scope);
        self
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |scope| self.contains(*scope))
    }

    /// Reads a `scope` claim: a space-separated string or an array of strings. Names that are not
    /// ours are ignored.
    pub fn from_claim(claim: &Value) -> Result<Scopes, AuthFailure> {
        let mut scopes = Scopes::empty();
        match claim {
            Value::String(names) => names
                .split_ascii_whitespace()
                .filter_map(Scope::from_claim_value)
                .for_each(|scope| scopes.insert(scope)),
            Value::Array(items) => {
                for item in items {
                    let name = item.as_str().ok_or(AuthFailure::InvalidScopeClaim)?;
                    if let Some(scope) = Scope::from_claim_value(name) {
                        scopes.insert(scope);
                    }
                }
            }
            _ => return Err(AuthFailure::InvalidScopeClaim),
        }
        Ok(scopes)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Scopes {
        let mut scopes = Scopes::empty();
        iter.into_iter().for_each(|scope| scopes.insert(scope));
        scopes
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Scope::as_str)).finish()
    }
}

/// What an endpoint needs the caller to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// List secrets, get a secret's metadata, read the tenant's quota usage: viewer or admin.
    ReadMetadata,
    /// Create, patch, delete: admin, or operator (whose writes make managed secrets).
    WriteSecrets,
    /// The credentials export: puller only.
    ReadCredentials,
    /// Quotas of any tenant: operator only.
    Operate,
}

/// The verified caller: the tenant its token names and the scopes it carries.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub scopes: Scopes,
    /// The token's `sub`, for the audit trail only: it grants nothing.
    pub subject: Option<String>,
    /// The OAuth client the token was issued to (`azp`, else `client_id`), for the audit trail only.
    pub client: Option<String>,
}

impl Principal {
    pub fn may(&self, need: Need) -> bool {
        let any = |wanted: &[Scope]| wanted.iter().any(|scope| self.scopes.contains(*scope));
        match need {
            Need::ReadMetadata => any(&[Scope::Viewer, Scope::Admin]),
            Need::WriteSecrets => any(&[Scope::Admin, Scope::Operator]),
            Need::ReadCredentials => any(&[Scope::Puller]),
            Need::Operate => any(&[Scope::Operator]),
        }
    }

    /// `Err(Error::Forbidden)` unless the scopes grant `need`.
    pub fn require(&self, need: Need) -> Result<(), Error> {
        if self.may(need) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// Secrets written by an operator are managed: tenant admins cannot change or delete them.
    pub fn is_operator(&self) -> bool {
        self.scopes.contains(Scope::Operator)
    }
}

/// A verified token: who it names, and the times that bound its validity (Unix seconds).
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub expires_at: u64,
    pub not_before: Option<u64>,
    /// For a discovered key: until when its key set is fresh. Nothing verified with it may be
    /// remembered past that, so a key the provider removed stops being honoured.
    pub keys_fresh_until: Option<u64>,
}

/// The current wall-clock time in Unix seconds.
pub fn unix_now() -> u64 {
    // A clock before 1970 makes every token look issued in the future: refused, never accepted.
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0)
}

/// Verifies the `Authorization` header's bearer token at the current time.
pub fn authenticate(authorization: Option<&str>, settings: &AuthSettings) -> Result<Principal, Error> {
    authenticate_at(authorization, settings, unix_now())
}

/// [`authenticate`] at a given time (seconds since the Unix epoch), for tests and benchmarks.
pub fn authenticate_at(
    authorization: Option<&str>,
    settings: &AuthSettings,
    now_unix_secs: u64,
) -> Result<Principal, Error> {
    verify_at(authorization, settings, now_unix_secs).map(|verified| verified.principal)
}

/// [`authenticate_at`], keeping the token's validity bounds (for the verified-token cache). Only
/// issuers with keys given as is: a discovered issuer's tokens need [`verify_with`].
pub fn verify_at(authorization: Option<&str>, settings: &AuthSettings, now_unix_secs: u64) -> Result<Verified, Error> {
    verify(authorization, settings, None, now_unix_secs)
}

/// [`verify_at`] for every configured issuer, fetching discovered keys through `discovery`.
pub fn verify_with(
    authorization: Option<&str>,
    settings: &AuthSettings,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<Verified, Error> {
    verify(authorization, settings, discovery, now_unix_secs)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235).
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthFailure> {
    let header = authorization.ok_or(AuthFailure::MissingHeader)?.trim();
    let (scheme, token) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LENGTH || token.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(AuthFailure::Malformed);
    }
    Ok(token)
}

fn verify(
    authorization: Option<&str>,
    settings: &AuthSettings,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<Verified, Error> {
    let refused = Error::Unauthenticated;
    let issuers = settings.issuers().map_err(refused)?;
    let token = bearer_token(authorization).map_err(refused)?;
    let issuer = pick_issuer(&issuers, token).map_err(refused)?;
    let tenant_claim = TenantClaim::of(issuer).map_err(refused)?;
    let (claims, keys_fresh_until) = match &issuer.keys {
        KeySource::Static(jwks) => {
            (verify_token(token, jwks, &issuer.issuer, &issuer.audience, now_unix_secs).map_err(refused)?, None)
        }
        KeySource::Discovered { .. } => {
            let (claims, fresh_until) = verify_discovered(token, issuer, discovery, now_unix_secs)?;
            (claims, Some(fresh_until))
        }
    };
    claims_to_verified(claims, &tenant_claim, keys_fresh_until).map_err(refused)
}

/// Verifies a token of an issuer whose keys are discovered: the checks of [`verify_token`], with
/// the key found through `discovery` (the service's own callers' issuers, and workload identity's
/// clusters given by issuer URL). Also answers until when that key set is fresh.
pub(crate) fn verify_discovered(
    token: &str,
    issuer: &Issuer,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<(JWTClaims<Map<String, Value>>, u64), Error> {
    let (algorithm, kid) = token_header(token).map_err(Error::Unauthenticated)?;
    let discovery = discovery.ok_or(Error::Unauthenticated(AuthFailure::Misconfigured))?;
    let found = discovery::key_for(discovery, issuer, kid.as_str(), algorithm)?;
    let claims = verify_signature_and_times(&found.key, token, &issuer.issuer, &issuer.audience, None, now_unix_secs)
        .map_err(Error::Unauthenticated)?;
    Ok((claims, found.fresh_until))
}

/// The issuer whose rules a token is checked by: the only one configured, else the one its
/// (not yet verified) `iss` names; which is then verified like every other claim.
fn pick_issuer<'i>(issuers: &'i [Issuer], token: &str) -> Result<&'i Issuer, AuthFailure> {
    if let [only] = issuers {
        return Ok(only);
    }
    #[derive(serde::Deserialize)]
    struct Iss {
        #[serde(default)]
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1).ok_or(AuthFailure::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| AuthFailure::Malformed)?;
    let iss: Iss = serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Malformed)?;
    let iss = iss.iss.ok_or(AuthFailure::WrongIssuer)?;
    issuers.iter().find(|i| i.issuer == iss).ok_or(AuthFailure::WrongIssuer)
}

/// The algorithm and `kid` a token's header names, checked before any key is looked up.
fn token_header(token: &str) -> Result<(Algorithm, String), AuthFailure> {
    let header_length = token.find('.').ok_or(AuthFailure::Malformed)?;
    if header_length > MAX_HEADER_LENGTH {
        return Err(AuthFailure::Malformed);
    }
    let metadata = Token::decode_metadata(token).map_err(|_| AuthFailure::Malformed)?;
    let algorithm = Algorithm::from_jws_name(metadata.algorithm()).ok_or(AuthFailure::UnsupportedAlgorithm)?;
    let kid = metadata.key_id().ok_or(AuthFailure::UnknownKey)?;
    Ok((algorithm, kid.to_owned()))
}

fn claims_to_verified(
    claims: JWTClaims<Map<String, Value>>,
    tenant_claim: &TenantClaim<'_>,
    keys_fresh_until: Option<u64>,
) -> Result<Verified, AuthFailure> {
    let expires_at = claims.expires_at.ok_or(AuthFailure::MissingExpiry)?.as_secs();
    let tenant = tenant_claim.read(&claims)?;
    let scopes = match claims.custom.get("scope") {
        None => Scopes::empty(),
        Some(claim) => Scopes::from_claim(claim)?,
    };
    let not_before = claims.invalid_before.map(|t| t.as_secs());
    let subject = claims.subject.clone();
    let client = ["azp", "client_id"].iter().find_map(|c| claims.custom.get(*c)?.as_str().map(str::to_owned));
    Ok(Verified { principal: Principal { tenant, scopes, subject, client }, expires_at, not_before, keys_fresh_until })
}

/// Verifies a JWT against a JWKS (the key its `kid` names), an exact issuer and an audience, at
/// `now`: the checks of every token this service accepts, its own callers' and (`workload`) the
/// service-account tokens of trusted clusters.
pub(crate) fn verify_token(
    token: &str,
    jwks: &str,
    issuer: &str,
    audience: &str,
    now_unix_secs: u64,
) -> Result<JWTClaims<Map<String, Value>>, AuthFailure> {
    let (algorithm, kid) = token_header(token)?;
    let jwks = Jwks::parse(jwks).map_err(|_| AuthFailure::Misconfigured)?;
    let key = jwks.key_for(&kid, algorithm).map_err(|failure| match failure {
        KeyLookupError::UnknownKey => AuthFailure::UnknownKey,
        KeyLookupError::AlgorithmMismatch => AuthFailure::UnsupportedAlgorithm,
        KeyLookupError::BadKeyMaterial => AuthFailure::Misconfigured,
    })?;
    verify_signature_and_times(&key, token, issuer, audience, None, now_unix_secs)
}

/// Verifies an OpenID Connect ID token (Core 1.0 section 3.1.3.7) from `issuer`: its key found as
/// the issuer's access tokens' keys are (given, or discovered through the shared cache), the exact
/// issuer, the audience `client_id`, the login's `nonce`, and the times. Answers its `sub`.
pub fn verify_id_token(
    token: &str,
    issuer: &Issuer,
    client_id: &str,
    nonce: &str,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<String, Error> {
    if token.len() > MAX_TOKEN_LENGTH || client_id.is_empty() || nonce.is_empty() {
        return Err(Error::Unauthenticated(AuthFailure::Malformed));
    }
    let (algorithm, kid) = token_header(token).map_err(Error::Unauthenticated)?;
    let key = match &issuer.keys {
        KeySource::Static(jwks) => {
            let jwks = Jwks::parse(jwks).map_err(|_| Error::Unauthenticated(AuthFailure::Misconfigured))?;
            jwks.key_for(&kid, algorithm).map_err(|failure| {
                Error::Unauthenticated(match failure {
                    KeyLookupError::UnknownKey => AuthFailure::UnknownKey,
                    KeyLookupError::AlgorithmMismatch => AuthFailure::UnsupportedAlgorithm,
                    KeyLookupError::BadKeyMaterial => AuthFailure::Misconfigured,
                })
            })?
        }
        KeySource::Discovered { .. } => {
            let discovery = discovery.ok_or(Error::Unauthenticated(AuthFailure::Misconfigured))?;
            discovery::key_for(discovery, issuer, kid.as_str(), algorithm)?.key
        }
    };
    let claims = verify_signature_and_times(&key, token, &issuer.issuer, client_id, Some(nonce), now_unix_secs)
        .map_err(Error::Unauthenticated)?;
    if claims.expires_at.is_none() {
        return Err(Error::Unauthenticated(AuthFailure::MissingExpiry));
    }
    claims.subject.filter(|s| !s.is_empty()).ok_or(Error::Unauthenticated(AuthFailure::Malformed))
}

fn verify_signature_and_times(
    key: &VerifyingKey,
    token: &str,
    issuer: &str,
    audience: &str,
    nonce: Option<&str>,
    now_unix_secs: u64,
) -> Result<JWTClaims<Map<String, Value>>, AuthFailure> {
    let options = VerificationOptions {
        required_nonce: nonce.map(str::to_owned),
        allowed_issuers: Some(HashSet::from([issuer.to_owned()])),
        allowed_audiences: Some(HashSet::from([audience.to_owned()])),
        time_tolerance: Some(Duration::from_secs(TIME_TOLERANCE_SECS)),
        max_token_length: Some(MAX_TOKEN_LENGTH),
        max_header_length: Some(MAX_HEADER_LENGTH),
        // The time is ours to give (wall clock of the host), so tests can place it anywhere.
        artificial_time: Some(Duration::from_secs(now_unix_secs)),
        ..VerificationOptions::default()
    };
    let verified = match key {
        VerifyingKey::Rs256(key) => key.verify_token(token, Some(options)),
        VerifyingKey::Es256(key) => key.verify_token(token, Some(options)),
        VerifyingKey::EdDsa(key) => key.verify_token(token, Some(options)),
    };
    verified.map_err(|error| match error.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature) => AuthFailure::BadSignature,
        Some(JWTError::TokenHasExpired) => AuthFailure::Expired,
        Some(JWTError::TokenNotValidYet) => AuthFailure::NotYetValid,
        Some(JWTError::ClockDrift) => AuthFailure::IssuedInFuture,
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => AuthFailure::WrongIssuer,
        Some(JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing) => AuthFailure::WrongAudience,
        Some(JWTError::AlgorithmMismatch) => AuthFailure::UnsupportedAlgorithm,
        Some(JWTError::RequiredNonceMismatch | JWTError::RequiredNonceMissing) => AuthFailure::WrongNonce,
        // Bad encodings, oversize parts, unknown `crit`, a `typ` that is not a JWT, claims that
        // are not JSON of the right shape.
        _ => AuthFailure::Malformed,
    })
}

/// Where the tenant id is read from. A few registered claim names are parsed by jwt-simple into
/// fields of their own rather than left among the custom claims.
enum TenantClaim<'s> {
    Subject,
    Custom(&'s str),
}

impl<'s> TenantClaim<'s> {
    fn of(settings: &'s Issuer) -> Result<TenantClaim<'s>, AuthFailure> {
        if settings.issuer.is_empty() || settings.audience.is_empty() {
            return Err(AuthFailure::Misconfigured);
        }
        match settings.tenant_claim.as_str() {
            "sub" => Ok(TenantClaim::Subject),
            // Issuer, audience, times and ids say nothing about a tenant.
            "" | "iss" | "aud" | "exp" | "nbf" | "iat" | "jti" | "nonce" => Err(AuthFailure::Misconfigured),
            name => Ok(TenantClaim::Custom(name)),
        }
    }

    fn read(&self, claims: &JWTClaims<Map<String, Value>>) -> Result<TenantId, AuthFailure> {
        let value = match self {
            TenantClaim::Subject => claims.subject.as_deref().ok_or(AuthFailure::MissingTenant)?,
            TenantClaim::Custom(name) => match claims.custom.get(*name) {
                None | Some(Value::Null) => return Err(AuthFailure::MissingTenant),
                Some(Value::String(value)) => value,
                Some(_) => return Err(AuthFailure::InvalidTenant),
            },
        };
        TenantId::parse(value).map_err(|_| AuthFailure::InvalidTenant)
    }
}

pub mod cache;
pub mod discovery;
pub mod session;

#[cfg(test)]
mod tests;
