//! The contract's calls and errors, one test per row, over HTTP against the built components.
//! After every refused request the tenant's raw store rows are exactly as before.

use e2e::{structured, unique_tenant, Reply, TestApp, SECRETS};
use serde_json::json;

const ADMIN: &[&str] = &["regsecrets.admin"];
const VIEWER: &[&str] = &["regsecrets.viewer"];

struct Tenant {
    app: &'static TestApp,
    id: String,
    admin: String,
    viewer: String,
}

impl Tenant {
    fn new(label: &str) -> Tenant {
        let app = TestApp::shared();
        let id = unique_tenant(label);
        Tenant { app, admin: app.token(&id, ADMIN), viewer: app.token(&id, VIEWER), id }
    }

    fn create(&self, body: serde_json::Value) -> Reply {
        self.app.create(&self.admin, &body)
    }

    fn get(&self, path: &str) -> Reply {
        self.app.call("GET", path).bearer(&self.viewer).send()
    }

    /// Runs a request that must be refused, and checks it changed nothing of this tenant's in
    /// the store (other tests write their own tenants' rows meanwhile).
    fn refused(&self, status: u16, code: &str, send: impl FnOnce() -> Reply) -> Reply {
        let before = self.app.tenant_rows(&self.id);
        let reply = send();
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.code(), code, "{}", reply.body);
        let error = &reply.json()["error"];
        assert!(!error["message"].as_str().unwrap().is_empty());
        assert_eq!(error["requestId"].as_str(), reply.header("x-request-id"));
        assert!(error["target"].as_str().unwrap().starts_with("/v2/"));
        assert_eq!(self.app.tenant_rows(&self.id), before, "a refused request changed the store");
        reply
    }
}

fn sap_body(name: &str, config: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "data": {".dockerconfigjson": config.to_string()}})
}

#[test]
fn create_answers_201_with_location_etag_and_message() {
    let t = Tenant::new("create");
    let reply = t.create(structured("ghcr-pull", "ghcr.io", "bot", "pw"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json(), json!({"id": "ghcr-pull", "message": "Secret has been created"}));
    assert_eq!(reply.header("location"), Some("/v2/admin/dockerRegistrySecrets/ghcr-pull"));
    let etag = reply.header("etag").unwrap().to_owned();
    let got = t.get(&format!("{SECRETS}/ghcr-pull"));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let meta = got.json();
    assert_eq!(meta["name"], "ghcr-pull");
    assert_eq!(meta["registries"], json!(["ghcr.io"]));
    assert_eq!(meta["managed"], false);
    assert_eq!(format!("\"{}\"", meta["version"]), etag);
    assert!(meta["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["createdAt"], meta["modifiedAt"]);
}

#[test]
fn create_accepts_the_sap_form_plain_and_base64() {
    use base64::Engine;
    let t = Tenant::new("sapform");
    let config = json!({"auths": {"docker.io": {"username": "me", "password": "pw"}}});
    assert_eq!(t.create(sap_body("plain", config.clone())).status, 201);
    let b64 = base64::engine::general_purpose::STANDARD.encode(config.to_string());
    let reply = t.create(json!({"name": "b64", "data": {".dockerconfigjson": b64}}));
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(t.get(&format!("{SECRETS}/b64")).json()["registries"], json!(["docker.io"]));
}

#[test]
fn create_refuses_a_taken_name_with_409() {
    let t = Tenant::new("taken");
    assert_eq!(t.create(structured("dup", "ghcr.io", "a", "b")).status, 201);
    t.refused(409, "SecretNameExists", || t.create(structured("dup", "quay.io", "c", "d")));
}

#[test]
fn create_refuses_invalid_names_and_configs_with_400() {
    let t = Tenant::new("invalid");
    for name in ["UPPER", "has_underscore", "-leading", "trailing.", &"a".repeat(254), ""] {
        t.refused(400, "InvalidSecretName", || t.create(structured(name, "ghcr.io", "a", "b")));
    }
    t.refused(400, "InvalidDockerConfig", || t.create(sap_body("empty", json!({"auths": {}}))));
    let reply =
        t.refused(400, "InvalidDockerConfig", || t.create(sap_body("helper", json!({"credsStore": "desktop"}))));
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("credential helper"), "{}", reply.body);
    t.refused(400, "InvalidDockerConfig", || {
        t.create(sap_body(
            "twice",
            json!({"auths": {"docker.io": {"auth": "YTpi"}, "https://index.docker.io/v1/": {"auth": "YTpi"}}}),
        ))
    });
    t.refused(400, "InvalidRequest", || {
        t.app
            .call("POST", SECRETS)
            .bearer(&t.admin)
            .header("content-type", "application/json")
            .raw(b"{oops".to_vec())
            .send()
    });
}

#[test]
fn create_refuses_bodies_over_64_kib_with_413_and_non_json_with_415() {
    let t = Tenant::new("limits");
    let big = json!({"name": "big", "registry": "ghcr.io", "username": "a", "password": "x".repeat(70 * 1024)});
    t.refused(413, "PayloadTooLarge", || t.create(big));
    t.refused(415, "UnsupportedMediaType", || {
        t.app.call("POST", SECRETS).bearer(&t.admin).header("content-type", "text/plain").raw(b"{}".to_vec()).send()
    });
}

#[test]
fn create_refuses_past_the_quota_with_403_and_details() {
    let t = Tenant::new("quota");
    let operator = t.app.token("platform", &["regsecrets.operator"]);
    let set = t
        .app
        .call("PUT", &format!("/v2/operator/tenants/{}/quota", t.id))
        .bearer(&operator)
        .json(&json!({"limit": 2}))
        .send();
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json(), json!({"tenant": t.id, "limit": 2, "used": 0}));
    for name in ["one", "two"] {
        assert_eq!(t.create(structured(name, "ghcr.io", "a", "b")).status, 201);
    }
    let reply = t.refused(403, "QuotaExceeded", || t.create(structured("three", "ghcr.io", "a", "b")));
    assert_eq!(reply.json()["error"]["details"], json!({"limit": 2, "used": 2}));
    let quota = t.get("/v2/admin/resourceQuota/dockerRegistrySecrets").json();
    assert_eq!(quota, json!({"usage": {"count": 2}, "quota": {"maxCount": 2}}));
    let quota_only = t.get("/v2/admin/resourceQuota/dockerRegistrySecrets?quotaOnly=true").json();
    assert_eq!(quota_only, json!({"quota": {"maxCount": 2}}));
}

#[test]
fn list_is_sorted_paged_searched_and_counted_as_sap_does() {
    let t = Tenant::new("list");
    for name in ["charlie", "alpha", "bravo-team", "delta-team"] {
        assert_eq!(t.create(structured(name, "ghcr.io", "a", "b")).status, 201);
    }
    let names = |reply: &Reply| -> Vec<String> {
        reply.json()["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = t.get(SECRETS);
    assert_eq!(names(&all), ["alpha", "bravo-team", "charlie", "delta-team"]);
    assert_eq!(all.json()["count"], 4);
    let page = t.get(&format!("{SECRETS}?$top=2&$skip=1"));
    assert_eq!(names(&page), ["bravo-team", "charlie"]);
    assert_eq!(page.json()["count"], 2, "count is the number returned unless $count=true");
    let counted = t.get(&format!("{SECRETS}?$top=1&$count=true"));
    assert_eq!(counted.json()["count"], 4);
    let searched = t.get(&format!("{SECRETS}?$search=TEAM&$count=true"));
    assert_eq!(names(&searched), ["bravo-team", "delta-team"]);
    assert_eq!(searched.json()["count"], 2);
    for item in all.json()["resources"].as_array().unwrap() {
        let mut keys: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["createdAt", "kind", "managed", "modifiedAt", "name", "registries", "version"]);
        assert_eq!(item["kind"], "static");
    }
}

#[test]
fn list_refuses_bad_paging_with_400() {
    let t = Tenant::new("paging");
    for query in ["$top=-1", "$top=abc", "$skip=x", "$top=1001", "$count=maybe", "$unknown=1"] {
        t.refused(400, "InvalidQueryParameter", || t.get(&format!("{SECRETS}?{query}")));
    }
}

#[test]
fn get_of_an_unknown_name_is_404() {
    let t = Tenant::new("missing");
    t.refused(404, "SecretNotFound", || t.get(&format!("{SECRETS}/nope")));
}

#[test]
fn patch_replaces_credentials_and_answers_a_new_etag() {
    let t = Tenant::new("patch");
    let created = t.create(structured("app", "ghcr.io", "a", "b"));
    let old_tag = created.header("etag").unwrap().to_owned();
    let reply = t
        .app
        .call("PATCH", &format!("{SECRETS}/app"))
        .bearer(&t.admin)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", &old_tag)
        .raw(serde_json::to_vec(&json!({"registry": "quay.io", "username": "c", "password": "d"})).unwrap())
        .send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"id": "app", "message": "Secret has been modified"}));
    let new_tag = reply.header("etag").unwrap().to_owned();
    assert_ne!(new_tag, old_tag);
    let meta = t.get(&format!("{SECRETS}/app")).json();
    assert_eq!(meta["registries"], json!(["quay.io"]));
    assert!(meta["version"].as_u64().unwrap() > old_tag.trim_matches('"').parse::<u64>().unwrap());
}

#[test]
fn patch_refuses_a_stale_if_match_a_different_name_and_an_unknown_secret() {
    let t = Tenant::new("patcherr");
    let tag = t.create(structured("app", "ghcr.io", "a", "b")).header("etag").unwrap().to_owned();
    let patch = |path: &str, body: serde_json::Value, if_match: Option<&str>| {
        let mut call = t.app.call("PATCH", path).bearer(&t.admin).json(&body);
        if let Some(tag) = if_match {
            call = call.header("if-match", tag);
        }
        call.send()
    };
    let body = json!({"registry": "ghcr.io", "username": "x", "password": "y"});
    assert_eq!(patch(&format!("{SECRETS}/app"), body.clone(), Some(&tag)).status, 200);
    t.refused(412, "PreconditionFailed", || patch(&format!("{SECRETS}/app"), body.clone(), Some(&tag)));
    t.refused(404, "SecretNotFound", || patch(&format!("{SECRETS}/nope"), body.clone(), None));
    let renamed = json!({"name": "other", "registry": "ghcr.io", "username": "x", "password": "y"});
    t.refused(400, "SecretNameMismatch", || patch(&format!("{SECRETS}/app"), renamed, None));
    let same = json!({"name": "app", "registry": "ghcr.io", "username": "x", "password": "y"});
    assert_eq!(patch(&format!("{SECRETS}/app"), same, None).status, 200, "the path's own name is ignored");
}

#[test]
fn delete_answers_200_and_the_secret_is_gone() {
    let t = Tenant::new("delete");
    t.create(structured("gone", "ghcr.io", "a", "b"));
    let reply = t.app.call("DELETE", &format!("{SECRETS}/gone")).bearer(&t.admin).send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"id": "gone", "message": "Docker Registry Secret has been deleted"}));
    assert_eq!(t.get(&format!("{SECRETS}/gone")).status, 404);
    assert_eq!(t.get(SECRETS).json()["count"], 0);
    let rows = t.app.tenant_rows(&t.id);
    assert!(rows.iter().all(|(k, _)| !k.contains(":r:")), "the record key is removed: {rows:?}");
}

#[test]
fn delete_refuses_unknown_and_stale() {
    let t = Tenant::new("deleteerr");
    t.refused(404, "SecretNotFound", || t.app.call("DELETE", &format!("{SECRETS}/nope")).bearer(&t.admin).send());
    t.create(structured("kept", "ghcr.io", "a", "b"));
    t.refused(412, "PreconditionFailed", || {
        t.app.call("DELETE", &format!("{SECRETS}/kept")).bearer(&t.admin).header("if-match", "\"999\"").send()
    });
}

#[test]
fn managed_secrets_are_visible_but_not_writable_by_tenant_admins() {
    let t = Tenant::new("managed");
    let operator = t.app.token(&t.id, &["regsecrets.operator"]);
    let created = t.app.create(&operator, &structured("platform", "ghcr.io", "a", "b"));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(t.get(&format!("{SECRETS}/platform")).json()["managed"], true);
    let body = json!({"registry": "ghcr.io", "username": "x", "password": "y"});
    t.refused(403, "UpdateManagedSecretNotAllowed", || {
        t.app.call("PATCH", &format!("{SECRETS}/platform")).bearer(&t.admin).json(&body).send()
    });
    t.refused(403, "DeleteManagedSecretNotAllowed", || {
        t.app.call("DELETE", &format!("{SECRETS}/platform")).bearer(&t.admin).send()
    });
    assert_eq!(t.app.call("PATCH", &format!("{SECRETS}/platform")).bearer(&operator).json(&body).send().status, 200);
    assert_eq!(t.app.call("DELETE", &format!("{SECRETS}/platform")).bearer(&operator).send().status, 200);
}

#[test]
fn unknown_methods_get_405_with_allow_and_unknown_paths_404() {
    let t = Tenant::new("routes");
    let reply = t.refused(405, "MethodNotAllowed", || t.app.call("PUT", SECRETS).bearer(&t.admin).send());
    assert_eq!(reply.header("allow"), Some("GET, POST"));
    t.refused(404, "NotFound", || t.app.call("GET", "/v2/admin/somethingElse").bearer(&t.admin).send());
}

#[test]
fn request_ids_are_taken_from_the_request_when_sane() {
    let t = Tenant::new("reqid");
    let reply =
        t.app.call("GET", &format!("{SECRETS}/nope")).bearer(&t.viewer).header("x-request-id", "trace-42").send();
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));
    assert_eq!(reply.json()["error"]["requestId"], "trace-42");
}

#[test]
fn operator_quota_rejects_bad_tenants_and_limits() {
    let t = Tenant::new("opquota");
    let operator = t.app.token("platform", &["regsecrets.operator"]);
    t.refused(400, "InvalidQuota", || {
        t.app
            .call("PUT", &format!("/v2/operator/tenants/{}/quota", t.id))
            .bearer(&operator)
            .json(&json!({"limit": -1}))
            .send()
    });
    t.refused(400, "InvalidTenantId", || t.app.call("GET", "/v2/operator/tenants/a..b/quota").bearer(&operator).send());
    let got = t.app.call("GET", &format!("/v2/operator/tenants/{}/quota", t.id)).bearer(&operator).send();
    assert_eq!(got.json(), json!({"tenant": t.id, "limit": 50, "used": 0}));
}
