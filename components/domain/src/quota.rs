//! Quotas: a tenant holds at most its limit of secrets. The limit is part of the tenant's view,
//! set by the operator through the write log like any write; `used` is the number of secrets in
//! the view, so it cannot drift from the secrets held. Each create is checked against the state
//! right before its slot, so two racing creates never both take the last place.

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::Error;
use crate::identity::{Need, Principal};
use crate::log::op::Op;
use crate::name::{TenantId, TenantIdError};
use crate::secrets::{commit, current, Env};
use crate::store::KeyValue;

pub use crate::view::DEFAULT_LIMIT;
/// Fermyon Cloud holds 1,024 keys per store; a secret costs one key.
pub const MAX_LIMIT: u32 = 1000;

/// SAP's resource-quota shape.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceQuota {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub quota: QuotaLimit,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub count: u32,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QuotaLimit {
    pub max_count: u32,
}

/// Reads SAP's `quotaOnly` query parameter, a boolean: `true` or `false` (any case, since SDKs send
/// Python's `True`), at most once. Anything else is refused as the list's `$` parameters are, so a
/// typo never silently gives the other answer. Other parameters are ignored.
pub fn quota_only(query: Option<&str>) -> Result<bool, Error> {
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "quotaOnly" {
            continue;
        }
        if found.is_some() {
            return Err(Error::InvalidQuery("`quotaOnly` is given more than once".into()));
        }
        found = Some(if value.eq_ignore_ascii_case("true") {
            true
        } else if value.eq_ignore_ascii_case("false") {
            false
        } else {
            return Err(Error::InvalidQuery("`quotaOnly` must be true or false".into()));
        });
    }
    Ok(found.unwrap_or(false))
}

pub fn resource_quota<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    quota_only: bool,
) -> Result<ResourceQuota, Error> {
    who.require(Need::ReadMetadata)?;
    let view = current(env, &who.tenant)?.view;
    let usage = if quota_only { None } else { Some(Usage { count: view.used() }) };
    Ok(ResourceQuota { usage, quota: QuotaLimit { max_count: view.limit() } })
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantQuota {
    pub tenant: String,
    pub limit: u32,
    pub used: u32,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    #[cfg_attr(feature = "openapi", schema(maximum = 1000))]
    pub limit: u32,
}

fn target_tenant(raw: &str) -> Result<TenantId, Error> {
    TenantId::parse(raw).map_err(TenantIdError::into_invalid_tenant)
}

pub fn get_tenant_quota<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    tenant: &str,
) -> Result<TenantQuota, Error> {
    who.require(Need::Operate)?;
    let tenant = target_tenant(tenant)?;
    let view = current(env, &tenant)?.view;
    Ok(TenantQuota { tenant: tenant.as_str().to_owned(), limit: view.limit(), used: view.used() })
}

pub fn set_tenant_quota<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    tenant: &str,
    request: SetQuota,
) -> Result<TenantQuota, Error> {
    who.require(Need::Operate)?;
    let tenant = target_tenant(tenant)?;
    if request.limit > MAX_LIMIT {
        return Err(Error::InvalidQuota(format!("The limit must be between 0 and {MAX_LIMIT}")));
    }
    let committed = commit(env, &tenant, Op::SetLimit { limit: request.limit }, None, |_| Ok(()))?;
    Ok(TenantQuota { tenant: tenant.as_str().to_owned(), limit: request.limit, used: committed.view.used() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_only_takes_true_or_false_once_and_nothing_else() {
        assert_eq!(quota_only(None), Ok(false));
        assert_eq!(quota_only(Some("")), Ok(false));
        assert_eq!(quota_only(Some("quotaOnly=true")), Ok(true));
        assert_eq!(quota_only(Some("quotaOnly=True")), Ok(true));
        assert_eq!(quota_only(Some("quotaOnly=false")), Ok(false));
        assert_eq!(quota_only(Some("other=1&quotaOnly=FALSE")), Ok(false));
        for bad in [
            "quotaOnly=null",
            "quotaOnly=",
            "quotaOnly",
            "quotaOnly=1",
            "quotaOnly=yes",
            "quotaOnly=true&quotaOnly=true",
        ] {
            assert!(matches!(quota_only(Some(bad)), Err(Error::InvalidQuery(_))), "{bad}");
        }
    }
}
