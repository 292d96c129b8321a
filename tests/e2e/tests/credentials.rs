//! Credentials: encrypted at rest under rotating keys, exported in Kubernetes form to pullers,
//! and never leaked into any other response, error, log line or stored byte.

use base64::Engine;
use e2e::{structured, test_encryption_keys, unique_tenant, Backend, Options, TestApp, SECRETS};
use serde_json::json;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn decoded_config(export: &serde_json::Value) -> serde_json::Value {
    let bytes = B64.decode(export["data"][".dockerconfigjson"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn the_export_is_the_manifest_kubectl_create_secret_docker_registry_builds() {
    let app = TestApp::shared();
    let tenant = unique_tenant("export");
    let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.puller"]);
    let body = json!({"name": "regcred", "registry": "registry.example.com:5000", "username": "jane", "password": "p@ss w0rd", "email": "jane@example.com"});
    assert_eq!(app.create(&token, &body).status, 201);
    let export = app.call("GET", &format!("{SECRETS}/regcred/credentials")).bearer(&token).send();
    assert_eq!(export.status, 200, "{}", export.body);
    assert_eq!(export.header("cache-control"), Some("no-store"));
    let manifest = export.json();
    assert_eq!(manifest["apiVersion"], "v1");
    assert_eq!(manifest["kind"], "Secret");
    assert_eq!(manifest["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(manifest["metadata"], json!({"name": "regcred"}));
    // What `kubectl create secret docker-registry regcred --docker-server=registry.example.com:5000
    // --docker-username=jane --docker-password='p@ss w0rd' --docker-email=jane@example.com` stores:
    let kubectl = r#"{"auths":{"registry.example.com:5000":{"username":"jane","password":"p@ss w0rd","email":"jane@example.com","auth":"amFuZTpwQHNzIHcwcmQ="}}}"#;
    let bytes = B64.decode(manifest["data"][".dockerconfigjson"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), kubectl);
}

#[test]
fn docker_hub_spellings_are_exported_under_the_key_the_kubelet_uses() {
    let app = TestApp::shared();
    let tenant = unique_tenant("hub");
    let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.puller", "regsecrets.viewer"]);
    for (i, registry) in
        ["docker.io", "https://index.docker.io/v1/", "registry-1.docker.io", "index.docker.io"].iter().enumerate()
    {
        let name = format!("hub-{i}");
        assert_eq!(app.create(&token, &structured(&name, registry, "me", "pw")).status, 201);
        let export = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send().json();
        let auths = decoded_config(&export)["auths"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(auths, ["https://index.docker.io/v1/"], "{registry}");
        assert_eq!(
            app.call("GET", &format!("{SECRETS}/{name}")).bearer(&token).send().json()["registries"],
            json!(["docker.io"])
        );
    }
    let default = json!({"name": "hub-default", "username": "me", "password": "pw"});
    assert_eq!(app.create(&token, &default).status, 201);
    let export = app.call("GET", &format!("{SECRETS}/hub-default/credentials")).bearer(&token).send().json();
    assert!(decoded_config(&export)["auths"]["https://index.docker.io/v1/"].is_object());
}

/// A whole tour of the API with known credential strings, on an app of its own: they appear in
/// the export and nowhere else: no other response, no error body, no log line, no stored byte.
#[test]
fn known_credentials_leak_nowhere_but_the_export() {
    let app = TestApp::start(Options::default());
    let tenant = unique_tenant("leak");
    let admin = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);
    let puller = app.token(&tenant, &["regsecrets.puller"]);
    let (user, password, email, token) =
        ("leak-user-7f3a", "leak-password-9c2e", "leak-mail-1b4d@example.com", "leak-idtoken-5e8f");
    let basic = B64.encode(format!("{user}:{password}"));
    let markers = [user, password, email, token, basic.as_str()];
    let sap = json!({"name": "sap", "data": {".dockerconfigjson": json!({"auths": {"quay.io": {"username": user, "password": password, "email": email, "identitytoken": token}}}).to_string()}});
    let mut replies = vec![
        app.create(&admin, &sap),
        app.create(&admin, &json!({"name": "kube", "registry": "ghcr.io", "username": user, "password": password, "email": email})),
        // Refusals that carry the credentials in their bodies:
        app.create(&admin, &json!({"name": "sap", "registry": "ghcr.io", "username": user, "password": password})),
        app.create(&admin, &json!({"name": "Bad_Name", "registry": "ghcr.io", "username": user, "password": password})),
        app.create(&admin, &json!({"name": "x", "registry": format!("https://{user}:{password}@ghcr.io"), "username": user, "password": password})),
        app.create(&admin, &json!({"name": "x", "data": {".dockerconfigjson": format!("{{\"auths\": {{\"a.io\": {{\"auth\": \"{password}\"}}}}}}")}})),
        app.call("POST", SECRETS).bearer(&admin).header("content-type", "application/json").raw(format!("{{\"password\": \"{password}\"").into_bytes()).send(),
        app.create(&puller, &json!({"name": "y", "registry": "ghcr.io", "username": user, "password": password})),
        app.call("POST", SECRETS).header("authorization", &format!("Bearer {password}")).json(&sap).send(),
        app.call("PATCH", &format!("{SECRETS}/sap")).bearer(&admin).json(&json!({"name": "other", "registry": "ghcr.io", "username": user, "password": password})).send(),
        app.call("PATCH", &format!("{SECRETS}/kube")).bearer(&admin).json(&json!({"registry": "ghcr.io", "username": user, "password": password})).send(),
        app.call("GET", SECRETS).bearer(&admin).send(),
        app.call("GET", &format!("{SECRETS}/sap")).bearer(&admin).send(),
        app.call("GET", &format!("{SECRETS}/sap/credentials")).bearer(&admin).send(),
    ];
    assert_eq!(replies[0].status, 201, "{}", replies[0].body);
    assert_eq!(replies[1].status, 201, "{}", replies[1].body);
    let export = app.call("GET", &format!("{SECRETS}/sap/credentials")).bearer(&puller).send();
    assert_eq!(export.status, 200);
    let exported = decoded_config(&export.json());
    assert_eq!(exported["auths"]["quay.io"]["password"], password, "the export carries them");
    replies.push(app.call("DELETE", &format!("{SECRETS}/kube")).bearer(&admin).send());
    for reply in &replies {
        let everything = format!("{:?} {}", reply.headers, reply.body);
        for marker in markers {
            assert!(!everything.contains(marker), "{marker} in a {} response: {everything}", reply.status);
        }
    }
    let logs = app.logs();
    let stored: Vec<String> =
        app.raw_store().into_iter().map(|(_, k, v)| format!("{k}={}", String::from_utf8_lossy(&v))).collect();
    for marker in markers {
        assert!(!logs.contains(marker), "{marker} in the components' output");
        assert!(!stored.iter().any(|row| row.contains(marker)), "{marker} stored in plaintext");
    }
}

#[test]
fn without_encryption_keys_writes_and_exports_fail_closed_but_metadata_still_reads() {
    let app = TestApp::start(Options { encryption_keys: None, ..Options::default() });
    let tenant = unique_tenant("nokeys");
    let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"]);
    let before = app.raw_store();
    let created = app.create(&token, &structured("x", "ghcr.io", "u", "nokeys-pw"));
    assert_eq!(created.status, 500, "{}", created.body);
    assert_eq!(created.code(), "InternalError");
    assert_eq!(created.json()["error"]["message"], "The service could not complete the request; try again later");
    assert_eq!(app.raw_store(), before, "nothing stored, in plaintext or otherwise");
    assert!(app.logs().contains("encryption_keys"), "the cause is logged: {}", app.logs());
    assert_eq!(app.call("GET", SECRETS).bearer(&token).send().status, 200);
    let malformed = TestApp::start(Options { encryption_keys: Some("k1:not-base64!".into()), ..Options::default() });
    let token = malformed.token(&tenant, &["regsecrets.admin"]);
    assert_eq!(malformed.create(&token, &structured("x", "ghcr.io", "u", "p")).status, 500);
}

#[test]
fn rotating_keys_keeps_old_secrets_readable_and_patch_or_reencrypt_moves_them_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kv.db");
    let tenant = unique_tenant("rotate");
    let start = |keys: String, tokens: Option<e2e::Tokens>| {
        let options = Options {
            backend: Backend::Sqlite,
            sqlite_path: Some(db.clone()),
            encryption_keys: Some(keys),
            ..Options::default()
        };
        TestApp::start_with(options, tokens.unwrap_or_default(), Default::default())
    };
    let k1 = test_encryption_keys("k1");
    let k2 = test_encryption_keys("k2");
    let first = start(k1.clone(), None);
    let tokens = first.tokens.clone();
    let token = first.token(&tenant, &["regsecrets.admin", "regsecrets.puller"]);
    for name in ["old", "patched"] {
        assert_eq!(first.create(&token, &structured(name, "ghcr.io", "u", "p1")).status, 201);
    }
    drop(first);
    let rotated = start(format!("{k2},{k1}"), Some(tokens.clone()));
    for name in ["old", "patched"] {
        assert_eq!(rotated.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send().status, 200);
    }
    let patch = json!({"registry": "ghcr.io", "username": "u", "password": "p2"});
    assert_eq!(rotated.call("PATCH", &format!("{SECRETS}/patched")).bearer(&token).json(&patch).send().status, 200);
    let kids: Vec<String> = rotated
        .tenant_rows(&tenant)
        .iter()
        .filter(|(k, _)| k.contains(":r:"))
        .map(|(_, v)| {
            serde_json::from_slice::<serde_json::Value>(v).unwrap()["sealed"]["kid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kids.iter().filter(|k| *k == "k2").count(), 1, "{kids:?}");
    drop(rotated);
    let only_new = start(k2.clone(), Some(tokens.clone()));
    assert_eq!(only_new.call("GET", &format!("{SECRETS}/patched/credentials")).bearer(&token).send().status, 200);
    let stale = only_new.call("GET", &format!("{SECRETS}/old/credentials")).bearer(&token).send();
    assert_eq!(stale.status, 500, "k1 is gone and `old` was never re-encrypted");
    drop(only_new);
    let both = start(format!("{k2},{k1}"), Some(tokens.clone()));
    let operator = both.token("platform", &["regsecrets.operator"]);
    let done = both.call("POST", &format!("/v2/operator/tenants/{tenant}/reencrypt")).bearer(&operator).send();
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json(), json!({"tenant": tenant, "key": "k2", "reencrypted": 1, "secrets": 2}));
    drop(both);
    let only_new = start(k2, Some(tokens));
    for name in ["old", "patched"] {
        assert_eq!(
            only_new.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send().status,
            200,
            "{name}"
        );
    }
}
