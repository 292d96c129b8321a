//! The invariants a tenant's data must satisfy whenever it is quiet, checked through the API and
//! the raw store: shared by the consistency and node-death tests.

use std::collections::BTreeSet;

use crate::{tenant_prefix, TestApp, SECRETS};

/// The list shows exactly the secrets whose records are stored (no orphan `P:r:*` record, no
/// listed secret without one), the quota's `used` equals their number, and each one exports.
/// Returns the listed names.
pub fn assert_invariants(app: &TestApp, tenant: &str, context: &str) -> BTreeSet<String> {
    let token = app.token(tenant, &["regsecrets.viewer", "regsecrets.puller"]);
    let list = app.call("GET", SECRETS).bearer(&token).send();
    assert_eq!(list.status, 200, "{context}: {}", list.body);
    let resources = list.json()["resources"].as_array().unwrap().clone();
    let names: BTreeSet<String> = resources.iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), resources.len(), "{context}: names are unique");
    let versions: BTreeSet<u64> = resources.iter().map(|r| r["version"].as_u64().unwrap()).collect();
    let record_prefix = format!("{}:r:", tenant_prefix(tenant));
    let stored: BTreeSet<u64> =
        app.tenant_rows(tenant).iter().filter_map(|(k, _)| k.strip_prefix(&record_prefix)?.parse().ok()).collect();
    assert_eq!(stored, versions, "{context}: stored records vs. listed versions");
    let quota = app.call("GET", "/v2/admin/resourceQuota/dockerRegistrySecrets").bearer(&token).send().json();
    assert_eq!(quota["usage"]["count"].as_u64().unwrap() as usize, names.len(), "{context}: used = listed");
    for name in &names {
        let export = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send();
        assert_eq!(export.status, 200, "{context}: {name} exports: {}", export.body);
    }
    names
}
