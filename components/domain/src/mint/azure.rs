//! Azure Container Registry: the client-credentials grant at
//! `{azure_authority_url}/{tenant}/oauth2/v2.0/token` for a Microsoft Entra ID access token, then
//! the registry's `/oauth2/exchange` for an ACR refresh token, which `docker login` takes as the
//! password of the all-zero user. The refresh token is a JWT whose `exp` says when it expires.

use base64::Engine as _;
use url::Url;

use super::{failed, form, oauth_error, unusable, Minted, Providers};
use crate::error::Error;
use crate::net::refusal;
use crate::net::Outgoing;
use crate::provider::AzureIdentity;

const PROVIDER: &str = "Microsoft Entra ID";
pub const USERNAME: &str = "00000000-0000-0000-0000-000000000000";
pub const SCOPE: &str = "https://containerregistry.azure.net/.default";

/// `{authority}/{tenant}/oauth2/v2.0/token`.
pub fn token_url(providers: &Providers, azure: &AzureIdentity) -> Url {
    let base = providers.endpoints.azure_authority_url.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{}/oauth2/v2.0/token", azure.tenant_id)).expect("tenant ids are validated")
}

/// The registry's exchange endpoint: https (or http for a registry the operator listed), under the
/// verification's SSRF rules: the registry is user-supplied.
pub fn exchange_url(providers: &Providers, azure: &AzureIdentity) -> Result<Url, Error> {
    let refused = || {
        Error::ProviderRefused(
            "`azure.registry` is not allowed: it must be a public registry host reachable over https".into(),
        )
    };
    let plain = &providers.endpoints.plain_http;
    let https = Url::parse(&format!("https://{}/oauth2/exchange", azure.registry)).map_err(|_| refused())?;
    let http = Url::parse(&format!("http://{}/oauth2/exchange", azure.registry)).map_err(|_| refused())?;
    let url = if refusal(&http, plain).is_none() { http } else { https };
    if refusal(&url, plain).is_some() {
        return Err(refused());
    }
    Ok(url)
}

/// The `exp` of a JWT, read without checking its signature (the registry made it; we only need
/// to know when it stops working).
fn jwt_expiry_ms(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64().map(|s| s * 1000)
}

pub fn mint(providers: &Providers, azure: &AzureIdentity) -> Result<Minted, Error> {
    let exchange = exchange_url(providers, azure)?;
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &azure.client_id),
        ("client_secret", &azure.client_secret),
        ("scope", SCOPE),
    ]);
    let request = Outgoing::post(token_url(providers, azure), "application/x-www-form-urlencoded", body);
    let answer = providers.send(PROVIDER, &request)?;
    if answer.status != 200 {
        if (400..500).contains(&answer.status) && answer.status != 429 {
            let what = match oauth_error(&answer).as_deref() {
                Some("invalid_client") => "Microsoft Entra ID refused the service principal: check `azure.clientSecret` (it may have expired) and `azure.clientId`",
                Some("unauthorized_client") => "Microsoft Entra ID does not know `azure.clientId` in `azure.tenantId`",
                Some("invalid_request") => "Microsoft Entra ID refused the request: check `azure.tenantId`",
                _ => "Microsoft Entra ID refused the service principal's token request",
            };
            return Err(Error::ProviderRefused(what.into()));
        }
        return Err(failed(PROVIDER, answer.status));
    }
    let token: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|_| unusable(PROVIDER, "its token answer is not JSON"))?;
    let access = token
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unusable(PROVIDER, "its token answer holds no access_token"))?;

    let body = form(&[
        ("grant_type", "access_token"),
        ("service", &azure.registry),
        ("tenant", &azure.tenant_id),
        ("access_token", access),
    ]);
    let answer =
        providers.send("The registry", &Outgoing::post(exchange, "application/x-www-form-urlencoded", body))?;
    if answer.status != 200 {
        if (400..500).contains(&answer.status) && answer.status != 429 {
            return Err(Error::ProviderRefused(
                "The registry refused the service principal's token at /oauth2/exchange: check `azure.registry` and give the service principal the AcrPull role on it".into(),
            ));
        }
        return Err(failed("The registry", answer.status));
    }
    let exchanged: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|_| unusable("The registry", "its /oauth2/exchange answer is not JSON"))?;
    let refresh = exchanged
        .get("refresh_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unusable("The registry", "its /oauth2/exchange answer holds no refresh_token"))?;
    let now = providers.clock.now_ms();
    // ACR's refresh tokens last three hours; the token's own `exp` says exactly.
    let expires_at = jwt_expiry_ms(refresh).unwrap_or(now + 3 * 3600 * 1000);
    if expires_at <= now {
        return Err(unusable("The registry", "the refresh token from /oauth2/exchange has already expired"));
    }
    Ok(Minted::new(USERNAME, refresh.to_owned(), vec![azure.registry.clone()], now, expires_at))
}
