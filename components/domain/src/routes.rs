//! Which endpoint a method and path mean, and which component serves it. Spin routes by path
//! only, so the gateway asks this table; endpoint components ask it too, to read the path's
//! parameters, so the path grammar lives here once.

use http::Method;

use crate::error::Error;

pub const SECRETS: &str = "/v2/admin/dockerRegistrySecrets";
pub const RESOURCE_QUOTA: &str = "/v2/admin/resourceQuota/dockerRegistrySecrets";
pub const OPERATOR_TENANTS: &str = "/v2/operator/tenants/";
/// Credentials at pull time (`crate::resolve`): outside `/v2/admin/dockerRegistrySecrets/`, so no
/// secret name can collide with it.
pub const PULL_CREDENTIALS: &str = "/v2/pull/credentials";
/// A tenant's workload-identity trust (`crate::workload`).
pub const WORKLOAD_IDENTITY: &str = "/v2/admin/workloadIdentity";
/// The probes for orchestrators: no token, outside `/v2` (Spin routes them straight to their
/// components; the gateway never sees them).
pub const LIVENESS: &str = "/healthz";
pub const READINESS: &str = "/readyz";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    CreateSecret,
    ListSecrets,
    GetSecret { name: String },
    ModifySecret { name: String },
    DeleteSecret { name: String },
    ExportCredentials { name: String },
    ResolveCredentials,
    GetWorkloadIdentity,
    SetWorkloadIdentity,
    VerifySecret { name: String },
    ResourceQuota,
    GetTenantQuota { tenant: String },
    SetTenantQuota { tenant: String },
    ReencryptTenant { tenant: String },
    Liveness,
    Readiness,
}

impl Endpoint {
    /// The id of the private Spin component that serves it (see spin.toml).
    pub fn component(&self) -> &'static str {
        match self {
            Endpoint::CreateSecret => "create",
            Endpoint::ListSecrets | Endpoint::GetSecret { .. } => "list",
            Endpoint::ModifySecret { .. } => "patch",
            Endpoint::DeleteSecret { .. } => "delete",
            Endpoint::ExportCredentials { .. } | Endpoint::ResolveCredentials => "credentials",
            Endpoint::ResourceQuota | Endpoint::GetTenantQuota { .. } | Endpoint::SetTenantQuota { .. } => "quota",
            Endpoint::ReencryptTenant { .. } => "reencrypt",
            Endpoint::VerifySecret { .. } => "verify",
            Endpoint::GetWorkloadIdentity | Endpoint::SetWorkloadIdentity => "workload",
            Endpoint::Liveness => "live",
            Endpoint::Readiness => "ready",
        }
    }
}

/// One call of the API: what `resolve` answers for a method and a path of this template. This
/// table is what the OpenAPI document (`components/apidoc`) is built from and checked against, and
/// `resolve` is checked against it, so a route cannot exist in one and not in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The operation's id in the OpenAPI document; [`Endpoint::operation`] names the same.
    pub operation: &'static str,
    pub method: &'static str,
    /// In OpenAPI's syntax: `{name}` is a secret name, `{tenant}` a tenant id (one path segment each).
    pub path: &'static str,
    /// The private Spin component that serves it; [`Endpoint::component`] names the same.
    pub component: &'static str,
}

pub const ROUTES: &[Route] = &[
    Route { operation: "createSecret", method: "POST", path: SECRETS, component: "create" },
    Route { operation: "listSecrets", method: "GET", path: SECRETS, component: "list" },
    Route { operation: "getSecret", method: "GET", path: "/v2/admin/dockerRegistrySecrets/{name}", component: "list" },
    Route {
        operation: "modifySecret",
        method: "PATCH",
        path: "/v2/admin/dockerRegistrySecrets/{name}",
        component: "patch",
    },
    Route {
        operation: "deleteSecret",
        method: "DELETE",
        path: "/v2/admin/dockerRegistrySecrets/{name}",
        component: "delete",
    },
    Route {
        operation: "exportCredentials",
        method: "GET",
        path: "/v2/admin/dockerRegistrySecrets/{name}/credentials",
        component: "credentials",
    },
    Route { operation: "resolveCredentials", method: "GET", path: PULL_CREDENTIALS, component: "credentials" },
    Route { operation: "getWorkloadIdentity", method: "GET", path: WORKLOAD_IDENTITY, component: "workload" },
    Route { operation: "setWorkloadIdentity", method: "PUT", path: WORKLOAD_IDENTITY, component: "workload" },
    Route {
        operation: "verifySecret",
        method: "POST",
        path: "/v2/admin/dockerRegistrySecrets/{name}/verification",
        component: "verify",
    },
    Route { operation: "getResourceQuota", method: "GET", path: RESOURCE_QUOTA, component: "quota" },
    Route {
        operation: "getTenantQuota",
        method: "GET",
        path: "/v2/operator/tenants/{tenant}/quota",
        component: "quota",
    },
    Route {
        operation: "setTenantQuota",
        method: "PUT",
        path: "/v2/operator/tenants/{tenant}/quota",
        component: "quota",
    },
    Route {
        operation: "reencryptTenant",
        method: "POST",
        path: "/v2/operator/tenants/{tenant}/reencrypt",
        component: "reencrypt",
    },
    Route { operation: "getLiveness", method: "GET", path: LIVENESS, component: "live" },
    Route { operation: "getReadiness", method: "GET", path: READINESS, component: "ready" },
];

impl Endpoint {
    /// The operation id of its entry in [`ROUTES`].
    pub fn operation(&self) -> &'static str {
        match self {
            Endpoint::CreateSecret => "createSecret",
            Endpoint::ListSecrets => "listSecrets",
            Endpoint::GetSecret { .. } => "getSecret",
            Endpoint::ModifySecret { .. } => "modifySecret",
            Endpoint::DeleteSecret { .. } => "deleteSecret",
            Endpoint::ExportCredentials { .. } => "exportCredentials",
            Endpoint::ResolveCredentials => "resolveCredentials",
            Endpoint::GetWorkloadIdentity => "getWorkloadIdentity",
            Endpoint::SetWorkloadIdentity => "setWorkloadIdentity",
            Endpoint::VerifySecret { .. } => "verifySecret",
            Endpoint::ResourceQuota => "getResourceQuota",
            Endpoint::GetTenantQuota { .. } => "getTenantQuota",
            Endpoint::SetTenantQuota { .. } => "setTenantQuota",
            Endpoint::ReencryptTenant { .. } => "reencryptTenant",
            Endpoint::Liveness => "getLiveness",
            Endpoint::Readiness => "getReadiness",
        }
    }
}

fn by_method(method: &Method, allow: &'static str, choices: Vec<(Method, Endpoint)>) -> Result<Endpoint, Error> {
    choices.into_iter().find(|(m, _)| m == method).map(|(_, e)| e).ok_or(Error::MethodNotAllowed { allow })
}

/// A single non-empty path segment.
fn segment(raw: &str) -> Option<String> {
    (!raw.is_empty() && !raw.contains('/')).then(|| percent_decode(raw))
}

/// Percent-decodes a path segment (`+` stays `+`: this is a path, not a form).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn resolve(method: &Method, path: &str) -> Result<Endpoint, Error> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    if path == SECRETS {
        return by_method(
            method,
            "GET, POST",
            vec![(Method::GET, Endpoint::ListSecrets), (Method::POST, Endpoint::CreateSecret)],
        );
    }
    if path == PULL_CREDENTIALS {
        return by_method(method, "GET", vec![(Method::GET, Endpoint::ResolveCredentials)]);
    }
    if path == WORKLOAD_IDENTITY {
        return by_method(
            method,
            "GET, PUT",
            vec![(Method::GET, Endpoint::GetWorkloadIdentity), (Method::PUT, Endpoint::SetWorkloadIdentity)],
        );
    }
    if path == RESOURCE_QUOTA {
        return by_method(method, "GET", vec![(Method::GET, Endpoint::ResourceQuota)]);
    }
    if path == LIVENESS {
        return by_method(method, "GET", vec![(Method::GET, Endpoint::Liveness)]);
    }
    if path == READINESS {
        return by_method(method, "GET", vec![(Method::GET, Endpoint::Readiness)]);
    }
    if let Some(rest) = path.strip_prefix(SECRETS).and_then(|r| r.strip_prefix('/')) {
        if let Some(name) = rest.strip_suffix("/credentials").and_then(segment) {
            return by_method(method, "GET", vec![(Method::GET, Endpoint::ExportCredentials { name })]);
        }
        if let Some(name) = rest.strip_suffix("/verification").and_then(segment) {
            return by_method(method, "POST", vec![(Method::POST, Endpoint::VerifySecret { name })]);
        }
        if let Some(name) = segment(rest) {
            return by_method(
                method,
                "GET, PATCH, DELETE",
                vec![
                    (Method::GET, Endpoint::GetSecret { name: name.clone() }),
                    (Method::PATCH, Endpoint::ModifySecret { name: name.clone() }),
                    (Method::DELETE, Endpoint::DeleteSecret { name }),
                ],
            );
        }
    }
    if let Some(tenant) = path.strip_prefix(OPERATOR_TENANTS).and_then(|r| r.strip_suffix("/quota")).and_then(segment) {
        return by_method(
            method,
            "GET, PUT",
            vec![
                (Method::GET, Endpoint::GetTenantQuota { tenant: tenant.clone() }),
                (Method::PUT, Endpoint::SetTenantQuota { tenant }),
            ],
        );
    }
    if let Some(tenant) =
        path.strip_prefix(OPERATOR_TENANTS).and_then(|r| r.strip_suffix("/reencrypt")).and_then(segment)
    {
        return by_method(method, "POST", vec![(Method::POST, Endpoint::ReencryptTenant { tenant })]);
    }
    Err(Error::RouteNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_of_the_contract_reaches_its_component() {
        let cases = [
            (Method::POST, "/v2/admin/dockerRegistrySecrets", "create"),
            (Method::GET, "/v2/admin/dockerRegistrySecrets", "list"),
            (Method::GET, "/v2/admin/dockerRegistrySecrets/", "list"),
            (Method::GET, "/v2/admin/dockerRegistrySecrets/my-secret", "list"),
            (Method::PATCH, "/v2/admin/dockerRegistrySecrets/my-secret", "patch"),
            (Method::DELETE, "/v2/admin/dockerRegistrySecrets/my-secret", "delete"),
            (Method::GET, "/v2/admin/dockerRegistrySecrets/my-secret/credentials", "credentials"),
            (Method::GET, "/v2/admin/resourceQuota/dockerRegistrySecrets", "quota"),
            (Method::GET, "/v2/operator/tenants/acme/quota", "quota"),
            (Method::PUT, "/v2/operator/tenants/acme/quota", "quota"),
            (Method::POST, "/v2/operator/tenants/acme/reencrypt", "reencrypt"),
            (Method::POST, "/v2/admin/dockerRegistrySecrets/my-secret/verification", "verify"),
            (Method::GET, "/v2/pull/credentials", "credentials"),
            (Method::GET, "/v2/admin/workloadIdentity", "workload"),
            (Method::PUT, "/v2/admin/workloadIdentity", "workload"),
        ];
        for (method, path, component) in cases {
            assert_eq!(resolve(&method, path).unwrap().component(), component, "{method} {path}");
        }
        assert_eq!(
            resolve(&Method::GET, "/v2/admin/dockerRegistrySecrets/a%2Eb").unwrap(),
            Endpoint::GetSecret { name: "a.b".into() }
        );
    }

    /// A path of the template with a sample value in each parameter.
    fn sample_path(template: &str) -> String {
        template.replace("{name}", "my-secret").replace("{tenant}", "acme")
    }

    #[test]
    fn every_route_of_the_table_resolves_to_its_operation_and_component() {
        for route in ROUTES {
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let endpoint = resolve(&method, &sample_path(route.path)).unwrap_or_else(|e| panic!("{route:?}: {e}"));
            assert_eq!(endpoint.operation(), route.operation, "{route:?}");
            assert_eq!(endpoint.component(), route.component, "{route:?}");
        }
        let mut operations: Vec<_> = ROUTES.iter().map(|r| r.operation).collect();
        operations.sort();
        operations.dedup();
        assert_eq!(operations.len(), ROUTES.len(), "operation ids are unique");
    }

    #[test]
    fn every_path_of_the_table_refuses_the_other_methods_with_exactly_its_methods_in_allow() {
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"];
        for route in ROUTES {
            let path = sample_path(route.path);
            let mut table: Vec<&str> = ROUTES.iter().filter(|r| r.path == route.path).map(|r| r.method).collect();
            table.sort();
            for method in methods.iter().filter(|m| !table.contains(m)) {
                let Err(Error::MethodNotAllowed { allow }) =
                    resolve(&Method::from_bytes(method.as_bytes()).unwrap(), &path)
                else {
                    panic!("{method} {path} is not refused with 405");
                };
                let mut allowed: Vec<&str> = allow.split(", ").collect();
                allowed.sort();
                assert_eq!(allowed, table, "Allow of {path}");
            }
        }
    }

    #[test]
    fn wrong_methods_get_405_with_allow_and_unknown_paths_404() {
        assert_eq!(resolve(&Method::DELETE, SECRETS), Err(Error::MethodNotAllowed { allow: "GET, POST" }));
        assert_eq!(
            resolve(&Method::POST, "/v2/admin/dockerRegistrySecrets/x"),
            Err(Error::MethodNotAllowed { allow: "GET, PATCH, DELETE" })
        );
        assert_eq!(
            resolve(&Method::PUT, "/v2/admin/dockerRegistrySecrets/x/credentials"),
            Err(Error::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(resolve(&Method::GET, "/v2/admin/dockerRegistrySecrets/x/y"), Err(Error::RouteNotFound));
        assert_eq!(
            resolve(&Method::GET, "/v2/admin/dockerRegistrySecrets/x/verification"),
            Err(Error::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(resolve(&Method::POST, crate::verify::CREDENTIAL_CHECK_PATH), Err(Error::RouteNotFound));
        assert_eq!(resolve(&Method::GET, "/v2/admin/dockerRegistrySecretsX"), Err(Error::RouteNotFound));
        assert_eq!(resolve(&Method::GET, "/v2/operator/tenants//quota"), Err(Error::RouteNotFound));
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("b%2Ec"), "b.c");
        assert_eq!(percent_decode("plain%"), "plain%");
        assert_eq!(percent_decode("x%zz"), "x%zz");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
