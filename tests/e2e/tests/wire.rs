//! How answers travel: on one kept-alive connection, as SDK sessions and proxies talk, every
//! answer of the API (successes and refusals, direct, chained, and from the gateway) comes with a
//! `Content-Length` and never chunked, which is what lets it leave Spin in one write instead of
//! stalling on Nagle and a delayed ACK (see `spin_bridge::answer`). And reads of the quota share
//! the reads' verified-token cache.

use e2e::wire::{Answer, Connection};
use e2e::{structured, unique_tenant, TestApp, SECRETS};

const QUOTA: &str = "/v2/admin/resourceQuota/dockerRegistrySecrets";

fn assert_in_one_piece(what: &str, answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{what}: {}", String::from_utf8_lossy(&answer.body));
    assert!(!answer.chunked, "{what}: answered chunked");
    let length = answer.header("content-length").unwrap_or_else(|| panic!("{what}: no Content-Length"));
    assert_eq!(length, answer.body.len().to_string(), "{what}");
}

/// What, method, path, headers, body, expected status.
type Case<'a> = (&'a str, &'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

#[test]
fn every_answer_comes_whole_with_a_content_length_on_one_kept_alive_connection() {
    let app = TestApp::shared();
    let tenant = unique_tenant("wire");
    let admin = format!("Bearer {}", app.token(&tenant, &["regsecrets.admin"]));
    let puller = format!("Bearer {}", app.token(&tenant, &["regsecrets.puller"]));
    let operator = format!("Bearer {}", app.token("platform", &["regsecrets.operator"]));
    let tenant_quota = format!("/v2/operator/tenants/{tenant}/quota");
    let mut conn = Connection::open(app.app.addr()).unwrap();
    let json = [("authorization", admin.as_str()), ("content-type", "application/json")];
    let one = format!("{SECRETS}/wired");
    let body = structured("wired", "ghcr.io", "bot", "pw").to_string();
    let patch = structured("wired", "ghcr.io", "bot", "pw2").to_string();
    let admin_only = [("authorization", admin.as_str())];
    let calls: Vec<Case> = vec![
        ("create", "POST", SECRETS.into(), json.to_vec(), body.clone().into_bytes(), 201),
        ("create again (409)", "POST", SECRETS.into(), json.to_vec(), body.into_bytes(), 409),
        ("list", "GET", SECRETS.into(), admin_only.to_vec(), vec![], 200),
        ("get", "GET", one.clone(), admin_only.to_vec(), vec![], 200),
        ("quota", "GET", QUOTA.into(), admin_only.to_vec(), vec![], 200),
        ("export", "GET", format!("{one}/credentials"), vec![("authorization", puller.as_str())], vec![], 200),
        ("modify", "PATCH", one.clone(), json.to_vec(), patch.into_bytes(), 200),
        ("no token (401)", "GET", SECRETS.into(), vec![], vec![], 401),
        ("unknown name (404)", "GET", format!("{SECRETS}/absent"), admin_only.to_vec(), vec![], 404),
        ("wrong method (405)", "PUT", SECRETS.into(), admin_only.to_vec(), vec![], 405),
        (
            "through the gateway to an endpoint",
            "GET",
            tenant_quota,
            vec![("authorization", operator.as_str())],
            vec![],
            200,
        ),
        ("unknown path, from the gateway (404)", "GET", "/v2/nowhere".into(), vec![], vec![], 404),
        ("delete", "DELETE", one, admin_only.to_vec(), vec![], 200),
    ];
    for (what, method, path, headers, body, status) in calls {
        let answer = conn.send(method, &path, &headers, &body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_in_one_piece(what, &answer, status);
    }
}

#[test]
fn quota_reads_are_answered_through_the_verified_token_cache() {
    // An app of its own: in the shared one other tests' live tokens may hold this token's slot.
    let app = &TestApp::start(e2e::Options::default());
    let tenant = unique_tenant("quota-cache");
    let token = app.token(&tenant, &["regsecrets.viewer"]);
    let remembered = || app.cached_token_entries(&token);
    assert_eq!(remembered(), 0);
    let quota = app.call("GET", QUOTA).bearer(&token).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    assert_eq!(remembered(), 1, "a successful quota read remembers the verified token");
    let again = app.call("GET", QUOTA).bearer(&token).send();
    assert_eq!((again.status, again.body), (200, quota.body), "answered the same from the cache");
    let refused = app.call("GET", &format!("/v2/operator/tenants/{tenant}/quota")).bearer(&token).send();
    assert_eq!(refused.status, 403, "a viewer answered from the cache is still no operator");
}
