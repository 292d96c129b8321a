//! The invariants a tenant's data must satisfy whenever it is quiet, checked through the API and
//! the raw store: shared by the consistency and node-death tests.

use std::collections::BTreeSet;

use crate::{tenant_prefix, TestApp, SECRETS};

/// The list shows exactly the secrets of the tenant's latest view, whose records are exactly the
/// stored ones (no orphan `P:r:*` record, no listed secret without one); no slot's registers are
/// left (`P:s:*`) and at most the window of views is kept; no minted credential is cached
/// (`P:mint:<r>`) for a record `r` the view does not name as a minting secret's; the quota's `used`
/// equals the number listed, and each one exports. Returns the listed names.
pub fn assert_invariants(app: &TestApp, tenant: &str, context: &str) -> BTreeSet<String> {
    let (names, late) = assert_invariants_but_late_writes(app, tenant, context);
    assert!(late.orphan_records.is_empty(), "{context}: records no view names (orphans): {:?}", late.orphan_records);
    assert!(late.registers.is_empty(), "{context}: slot registers left behind: {:?}", late.registers);
    names
}

/// What a writer that was overtaken while paused and then failed (a store call that failed is a
/// death at that point) may have written late and left for the sweep (`domain::log`, "What is
/// left behind"): records no view names, and slot registers.
#[derive(Debug, Default)]
pub struct LateWrites {
    pub orphan_records: Vec<u64>,
    pub registers: Vec<String>,
}

/// [`assert_invariants`], except that keys written late and left for the sweep are returned, not
/// refused (every stored record the view names is still required, and every other invariant).
pub fn assert_invariants_but_late_writes(app: &TestApp, tenant: &str, context: &str) -> (BTreeSet<String>, LateWrites) {
    let token = app.token(tenant, &["regsecrets.viewer", "regsecrets.puller"]);
    let list = app.call("GET", SECRETS).bearer(&token).send();
    assert_eq!(list.status, 200, "{context}: {}", list.body);
    let resources = list.json()["resources"].as_array().unwrap().clone();
    let names: BTreeSet<String> = resources.iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), resources.len(), "{context}: names are unique");
    let rows = app.tenant_rows(tenant);
    let under = |part: &str| -> Vec<(String, Vec<u8>)> {
        let prefix = format!("{}:{part}:", tenant_prefix(tenant));
        rows.iter().filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone()))).collect()
    };
    let views = under("v");
    // The window and the view before it (see `domain::log`, "What is left behind").
    assert!(views.len() as u64 <= domain::store::WINDOW + 1, "{context}: {} views kept", views.len());
    let latest = views.iter().max_by_key(|(slot, _)| slot.parse::<u64>().unwrap()).expect("a view");
    let view = domain::view::View::decode(latest.1.clone()).unwrap();
    let in_view: BTreeSet<String> = view.names().map(str::to_owned).collect();
    assert_eq!(in_view, names, "{context}: the list is the latest view");
    let records: BTreeSet<u64> = view.records().unwrap().into_iter().collect();
    let stored: BTreeSet<u64> = under("r").iter().map(|(id, _)| id.parse().unwrap()).collect();
    let missing: Vec<&u64> = records.difference(&stored).collect();
    assert!(missing.is_empty(), "{context}: records the view names but the store lacks: {missing:?}");
    let orphan_records: Vec<u64> = stored.difference(&records).copied().collect();
    let minting: BTreeSet<u64> =
        view.entries().unwrap().into_iter().filter(|e| !e.kind.is_static()).map(|e| e.record).collect();
    let cached: BTreeSet<u64> = under("mint").iter().map(|(id, _)| id.parse().unwrap()).collect();
    let orphans: Vec<&u64> = cached.difference(&minting).collect();
    assert!(orphans.is_empty(), "{context}: minted credentials cached for records no secret names: {orphans:?}");
    let registers: Vec<String> = under("s").into_iter().map(|(k, _)| k).collect();
    let quota = app.call("GET", "/v2/admin/resourceQuota/dockerRegistrySecrets").bearer(&token).send().json();
    assert_eq!(quota["usage"]["count"].as_u64().unwrap() as usize, names.len(), "{context}: used = listed");
    for name in &names {
        let export = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send();
        assert_eq!(export.status, 200, "{context}: {name} exports: {}", export.body);
    }
    (names, LateWrites { orphan_records, registers })
}
