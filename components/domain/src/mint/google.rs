//! Google: the OAuth 2.0 JWT-bearer grant (RFC 7523) with a service account key. The assertion is
//! signed RS256 with the key, `iss` the service account, `aud` the token endpoint, one hour long;
//! the access token is the password of `oauth2accesstoken`.
//!
//! The token endpoint is `<google_token_url>/token` when the operator set that variable (trusted as
//! given). At its default it is the key's `token_uri` (user-supplied): used only over https and under
//! the verification's SSRF rules (`net::refusal`), so a key naming
//! `http://169.254.169.254/…` is refused and nothing is sent.

use jwt_simple::prelude::*;
use url::Url;

use super::{failed, form, oauth_error, unusable, Minted, Providers};
use crate::error::Error;
use crate::net::refusal;
use crate::net::Outgoing;
use crate::net::PlainHttpRegistries;
use crate::provider::GoogleIdentity;

const PROVIDER: &str = "Google";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Artifact Registry and Container Registry accept tokens of this scope.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const USERNAME: &str = "oauth2accesstoken";

#[derive(Serialize, Deserialize)]
pub struct ScopeClaim {
    pub scope: String,
}

/// Where the grant goes, by the rules above.
pub fn token_url(providers: &Providers, google: &GoogleIdentity) -> Result<Url, Error> {
    if let Some(url) = &providers.endpoints.google_token_url {
        return Ok(url.clone());
    }
    let given = google.token_uri.as_deref().unwrap_or(crate::mint::ProviderEndpoints::GOOGLE_TOKEN_URL);
    let refused = || {
        Error::ProviderRefused(
            "The service account key's `token_uri` is not allowed: it must be an https URL of a public host (Google's key files name https://oauth2.googleapis.com/token)".into(),
        )
    };
    let url = Url::parse(given).map_err(|_| refused())?;
    if refusal(&url, &PlainHttpRegistries::default()).is_some() {
        return Err(refused());
    }
    Ok(url)
}

/// The signed assertion for `audience`, issued now by the providers' clock.
pub fn assertion(google: &GoogleIdentity, audience: &str, now_secs: u64) -> Result<String, Error> {
    let key = RS256KeyPair::from_pem(&google.private_key).map_err(|_| {
        Error::ProviderRefused("The service account key's `private_key` is not a usable RSA key".into())
    })?;
    let key = match &google.private_key_id {
        Some(id) => key.with_key_id(id),
        None => key,
    };
    let mut claims = Claims::with_custom_claims(ScopeClaim { scope: SCOPE.into() }, Duration::from_secs(3600))
        .with_issuer(&google.client_email)
        .with_audience(audience);
    claims.issued_at = Some(UnixTimeStamp::from_secs(now_secs));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now_secs + 3600));
    claims.invalid_before = None;
    key.sign(claims).map_err(|_| crate::error::Internal::Crypto("signing the Google assertion").into())
}

pub fn mint(providers: &Providers, google: &GoogleIdentity) -> Result<Minted, Error> {
    let url = token_url(providers, google)?;
    let now = providers.clock.now_ms();
    let jwt = assertion(google, url.as_str(), now / 1000)?;
    let body = form(&[("grant_type", GRANT_TYPE), ("assertion", &jwt)]);
    let request = Outgoing::post(url, "application/x-www-form-urlencoded", body);
    let answer = providers.send(PROVIDER, &request)?;
    if answer.status != 200 {
        if (400..500).contains(&answer.status) && answer.status != 429 {
            let code = oauth_error(&answer);
            let what = match code.as_deref() {
                Some("invalid_grant") => "Google refused the service account key (invalid_grant): the key may have been deleted or disabled, or its signature does not match; create a new key and patch the secret",
                Some("invalid_client") | Some("unauthorized_client") => "Google does not accept this service account (the account may be disabled or deleted)",
                _ => "Google refused the token request for this service account key",
            };
            return Err(Error::ProviderRefused(what.into()));
        }
        return Err(failed(PROVIDER, answer.status));
    }
    let unusable = |what: &str| unusable(PROVIDER, &format!("its token answer {what}"));
    let token: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| unusable("is not JSON"))?;
    let access = token
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unusable("holds no access_token"))?;
    let expires_in = token
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .filter(|e| *e > 0)
        .ok_or_else(|| unusable("holds no positive expires_in"))?;
    Ok(Minted::new(USERNAME, access.to_owned(), google.registries.clone(), now, now + expires_in * 1000))
}
