//! The service describes itself: `GET /openapi.json` needs no token and is the committed document,
//! cached like the console's files. And SAP's typed query parameters take only their type.

use e2e::{repo_root, unique_tenant, TestApp};
use serde_json::json;

const QUOTA: &str = "/v2/admin/resourceQuota/dockerRegistrySecrets";

#[test]
fn openapi_json_is_served_without_a_token_with_a_strong_etag() {
    let app = TestApp::shared();
    let reply = app.call("GET", "/openapi.json").send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let committed = std::fs::read_to_string(repo_root().join("components/console/assets/openapi.json")).unwrap();
    assert_eq!(reply.body, committed, "the app serves the committed document");
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/v2/admin/dockerRegistrySecrets/{name}"]["patch"].is_object());
    let etag = reply.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with('"'), "a strong validator: {etag}");
    let again = app.call("GET", "/openapi.json").header("if-none-match", &etag).send();
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

#[test]
fn quota_only_takes_true_or_false_and_refuses_anything_else_with_400() {
    let app = TestApp::shared();
    let viewer = app.token(&unique_tenant("quota-only"), &["regsecrets.viewer"]);
    let get = |query: &str| app.call("GET", &format!("{QUOTA}{query}")).bearer(&viewer).send();
    assert_eq!(get("?quotaOnly=true").json(), json!({"quota": {"maxCount": 50}}));
    assert_eq!(get("?quotaOnly=True").json(), json!({"quota": {"maxCount": 50}}));
    assert_eq!(get("?quotaOnly=false").json(), json!({"usage": {"count": 0}, "quota": {"maxCount": 50}}));
    for query in ["?quotaOnly=null", "?quotaOnly=", "?quotaOnly=1", "?quotaOnly=true&quotaOnly=false"] {
        let reply = get(query);
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.code(), "InvalidQueryParameter", "{query}");
        assert!(reply.json()["error"]["message"].as_str().unwrap().contains("quotaOnly"));
    }
}
