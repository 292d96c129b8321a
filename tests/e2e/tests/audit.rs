//! The audit trail: one JSON line on the component's stdout for every change, every credential
//! read and every refusal of those calls; nothing for metadata reads; never a credential or token.
//! Read from what `spin up` would write to `.spin/logs/<component>_stdout.txt`.

use std::collections::BTreeSet;

use base64::Engine;
use e2e::tokens::Alg;
use e2e::{structured, unique_tenant, Call, Reply, TestApp, SECRETS};
use serde_json::{json, Value};
use testhost::Stdio;

/// Every component the gateway routes to, and the gateway and console themselves.
const COMPONENTS: [&str; 10] =
    ["gateway", "console", "create", "patch", "delete", "list", "credentials", "quota", "reencrypt", "workload"];
const FIELDS: [&str; 11] =
    ["time", "requestId", "tenant", "subject", "client", "action", "name", "image", "workload", "status", "outcome"];

/// A token whose `sub` and client claims are set, as an identity provider's are.
fn token(app: &TestApp, tenant: &str, scopes: &[&str], subject: &str, client: Option<(&str, &str)>) -> String {
    let mut claims = app.tokens.claims(tenant, scopes);
    claims["sub"] = json!(subject);
    if let Some((claim, value)) = client {
        claims[claim] = json!(value);
    }
    app.tokens.sign(Alg::EdDsa, &claims)
}

/// Every audit line of the app so far, with the component whose stdout holds it.
fn audit_lines(app: &TestApp) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    for component in COMPONENTS {
        let stdout = app.app.component_log(component, Stdio::Stdout);
        assert!(stdout.is_empty() || stdout.ends_with('\n'), "{component}: a line without its newline: {stdout:?}");
        lines.extend(stdout.lines().map(|line| (component, line.to_owned())));
    }
    lines
}

fn parse(component: &str, line: &str) -> Value {
    let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{component}: not JSON ({e}): {line:?}"));
    let keys: BTreeSet<&str> = event.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS.into_iter().collect(), "{component}: {line}");
    event
}

/// request id, status, component, tenant, subject, client, action, name, outcome
type Row = (String, u16, &'static str, Value, Value, Value, String, Value, String);

struct Tour {
    run: String,
    sent: usize,
}

impl Tour {
    /// Sends the call with a request id of this run, so its lines can be told from other tests'.
    fn send(&mut self, call: Call) -> (String, Reply) {
        self.sent += 1;
        let id = format!("{}-{:02}", self.run, self.sent);
        let reply = call.header("x-request-id", &id).send();
        (id, reply)
    }
}

#[test]
fn a_tour_of_the_api_leaves_exactly_the_expected_audit_lines_and_no_secret() {
    let app = TestApp::shared();
    let tenant = unique_tenant("audit");
    let operator_tenant = unique_tenant("audit-platform");
    let admin = token(app, &tenant, &["regsecrets.admin", "regsecrets.viewer"], "alice", Some(("azp", "console")));
    let puller = token(app, &tenant, &["regsecrets.puller"], "ci", Some(("client_id", "ci-bot")));
    let viewer = token(app, &tenant, &["regsecrets.viewer"], "victor", None);
    let operator = token(app, &operator_tenant, &["regsecrets.operator"], "platform-op", Some(("azp", "ops")));
    let forged = app.tokens.tamper(&operator);
    let secrets = ["audit-pw-one-7c1f", "audit-pw-two-93ab", "audit-pw-three-5d20", "audit-pw-four-e611"];
    let hub_b = json!({"auths": {"docker.io": {"username": "bob", "password": secrets[1]}}}).to_string();
    let quota = format!("/v2/operator/tenants/{tenant}/quota");
    let reencrypt = format!("/v2/operator/tenants/{tenant}/reencrypt");
    let (hub_a, hub_b_path) = (format!("{SECRETS}/hub-a"), format!("{SECRETS}/hub-b"));

    let before = domain::clock::rfc3339(domain::clock::Clock::now_ms(&domain::clock::SystemClock));
    let mut tour = Tour { run: unique_tenant("tour"), sent: 0 };
    let a = |m: &str, p: &str| app.call(m, p);
    let mut expected: Vec<Row> = Vec::new();
    let (t, op) = (json!(tenant), json!(operator_tenant));
    let (alice, console, ci, bot) = (json!("alice"), json!("console"), json!("ci"), json!("ci-bot"));
    let mut expect = |(id, reply): (String, Reply),
                      status: u16,
                      component: &'static str,
                      who: (&Value, &Value, &Value),
                      action: &str,
                      name: Value,
                      outcome: &str| {
        assert_eq!(reply.status, status, "{id}: {}", reply.body);
        let (tenant, subject, client) = (who.0.clone(), who.1.clone(), who.2.clone());
        expected.push((id, status, component, tenant, subject, client, action.into(), name, outcome.into()));
    };
    let null = Value::Null;
    let nobody = (&null, &null, &null);
    let as_admin = (&t, &alice, &console);

    let create_a = a("POST", SECRETS).bearer(&admin).json(&structured("hub-a", "ghcr.io", "bot", secrets[0]));
    expect(tour.send(create_a), 201, "create", as_admin, "secret.create", json!("hub-a"), "success");
    let create_b =
        a("POST", SECRETS).bearer(&admin).json(&json!({"name": "hub-b", "data": {".dockerconfigjson": hub_b}}));
    expect(tour.send(create_b), 201, "create", as_admin, "secret.create", json!("hub-b"), "success");
    let taken = a("POST", SECRETS).bearer(&admin).json(&structured("hub-a", "ghcr.io", "bot", secrets[2]));
    expect(tour.send(taken), 409, "create", as_admin, "secret.create", json!("hub-a"), "refused");
    let by_viewer = a("POST", SECRETS).bearer(&viewer).json(&structured("hub-c", "ghcr.io", "bot", secrets[2]));
    expect(
        tour.send(by_viewer),
        403,
        "create",
        (&t, &json!("victor"), &Value::Null),
        "secret.create",
        Value::Null,
        "refused",
    );
    let no_token = a("POST", SECRETS).json(&structured("hub-c", "ghcr.io", "bot", secrets[2]));
    expect(tour.send(no_token), 401, "create", nobody, "secret.create", Value::Null, "refused");
    let broken = a("POST", SECRETS).bearer(&admin).header("content-type", "application/json");
    let broken = broken.raw(format!("{{\"name\": \"hub-d\", \"password\": \"{}\"", secrets[3]).into_bytes());
    expect(tour.send(broken), 400, "create", as_admin, "secret.create", Value::Null, "refused");
    let stale = a("PATCH", &hub_a).bearer(&admin).header("if-match", "\"999999\"");
    let stale = stale.json(&structured("hub-a", "ghcr.io", "bot", secrets[2]));
    expect(tour.send(stale), 412, "patch", as_admin, "secret.modify", json!("hub-a"), "refused");
    let patch = a("PATCH", &hub_a).bearer(&admin).json(&structured("hub-a", "ghcr.io", "bot", secrets[2]));
    expect(tour.send(patch), 200, "patch", as_admin, "secret.modify", json!("hub-a"), "success");
    // Reads of metadata are not audited.
    for path in [SECRETS.to_owned(), hub_a.clone(), "/v2/admin/resourceQuota/dockerRegistrySecrets".to_owned()] {
        assert_eq!(tour.send(a("GET", &path).bearer(&admin)).1.status, 200, "{path}");
    }
    let export = a("GET", &format!("{hub_a}/credentials")).bearer(&puller);
    expect(tour.send(export), 200, "credentials", (&t, &ci, &bot), "secret.export", json!("hub-a"), "success");
    let export_again = a("GET", &format!("{hub_a}/credentials")).bearer(&puller);
    expect(tour.send(export_again), 200, "credentials", (&t, &ci, &bot), "secret.export", json!("hub-a"), "success");
    let not_puller = a("GET", &format!("{hub_a}/credentials")).bearer(&admin);
    expect(tour.send(not_puller), 403, "credentials", as_admin, "secret.export", json!("hub-a"), "refused");
    let unknown = a("GET", &format!("{SECRETS}/nosuch/credentials")).bearer(&puller);
    expect(tour.send(unknown), 404, "credentials", (&t, &ci, &bot), "secret.export", json!("nosuch"), "refused");
    expect(
        tour.send(a("DELETE", &hub_b_path).bearer(&admin)),
        200,
        "delete",
        as_admin,
        "secret.delete",
        json!("hub-b"),
        "success",
    );
    expect(
        tour.send(a("DELETE", &hub_b_path).bearer(&admin)),
        404,
        "delete",
        as_admin,
        "secret.delete",
        json!("hub-b"),
        "refused",
    );
    let as_operator = (&op, &json!("platform-op"), &json!("ops"));
    let set = a("PUT", &quota).bearer(&operator).json(&json!({"limit": 80}));
    expect(tour.send(set), 200, "quota", as_operator, "quota.set", json!(tenant), "success");
    let set_by_admin = a("PUT", &quota).bearer(&admin).json(&json!({"limit": 1000}));
    expect(tour.send(set_by_admin), 403, "quota", as_admin, "quota.set", json!(tenant), "refused");
    assert_eq!(tour.send(a("GET", &quota).bearer(&operator)).1.status, 200, "reading a quota is not audited");
    expect(
        tour.send(a("POST", &reencrypt).bearer(&operator)),
        200,
        "reencrypt",
        as_operator,
        "tenant.reencrypt",
        json!(tenant),
        "success",
    );
    expect(
        tour.send(a("POST", &reencrypt).bearer(&forged)),
        401,
        "reencrypt",
        nobody,
        "tenant.reencrypt",
        json!(tenant),
        "refused",
    );
    let after = domain::clock::rfc3339(domain::clock::Clock::now_ms(&domain::clock::SystemClock));

    let mut seen: Vec<_> = audit_lines(app)
        .into_iter()
        .map(|(component, line)| (component, parse(component, &line)))
        .filter(|(_, event)| event["requestId"].as_str().is_some_and(|id| id.starts_with(&format!("{}-", tour.run))))
        .collect();
    seen.sort_by_key(|(_, event)| event["requestId"].as_str().unwrap().to_owned());
    for (_, event) in &seen {
        let time = event["time"].as_str().unwrap();
        assert!(time.len() == 24 && time.ends_with('Z'), "RFC 3339 UTC with milliseconds: {time}");
        assert!(before[..19] <= time[..19] && time[..19] <= after[..19], "{time} within the tour");
    }
    let seen: Vec<Row> = seen
        .into_iter()
        .map(|(component, e)| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            let status = e["status"].as_u64().unwrap() as u16;
            let who = (e["tenant"].clone(), e["subject"].clone(), e["client"].clone());
            (
                text("requestId"),
                status,
                component,
                who.0,
                who.1,
                who.2,
                text("action"),
                e["name"].clone(),
                text("outcome"),
            )
        })
        .collect();
    assert_eq!(seen, expected);

    // Nothing secret anywhere the components wrote: audit lines, error lines, host lines.
    let mut everything = app.logs();
    for component in COMPONENTS {
        everything += &app.app.component_log(component, Stdio::Stdout);
        everything += &app.app.component_log(component, Stdio::Stderr);
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in secrets.iter().map(|s| s.to_string()).chain([b64(&format!("bot:{}", secrets[0])), b64(&hub_b)]) {
        assert!(!everything.contains(&secret), "a credential in the logs: {secret}");
    }
    for token in [&admin, &puller, &viewer, &operator, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!everything.contains(signature), "a token in the logs");
    }
}

#[test]
fn a_concurrent_storm_leaves_every_log_line_whole() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 6;
    let app = TestApp::shared();
    let run = unique_tenant("storm");
    let audited = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let run = &run;
                scope.spawn(move || {
                    let tenant = format!("{run}-{client}");
                    let admin = token(app, &tenant, &["regsecrets.admin"], &"s".repeat(150), Some(("azp", "storm")));
                    let puller = app.token(&tenant, &["regsecrets.puller"]);
                    let mut audited = 0;
                    for round in 0..ROUNDS {
                        // Long names make long lines: the likelier to be torn if written in pieces.
                        let name = format!("{}-{round}", "n".repeat(200));
                        let id = |what: &str| format!("{run}-{client}-{round}-{what}");
                        let created = app.create(&admin, &structured(&name, "ghcr.io", "u", "storm-secret-pw"));
                        assert_eq!(created.status, 201, "{}", created.body);
                        let export = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&puller);
                        assert_eq!(export.header("x-request-id", &id("export")).send().status, 200);
                        // Refused before the token is read: an audit line and an error line each.
                        let refused =
                            app.call("DELETE", &format!("{SECRETS}/{name}")).header("x-request-id", &id("401"));
                        assert_eq!(refused.send().status, 401);
                        audited += 3;
                    }
                    audited
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum::<usize>()
    });
    assert_eq!(audited, CLIENTS * ROUNDS * 3);

    let lines = audit_lines(app);
    for (component, line) in &lines {
        parse(component, line);
    }
    let ours = lines
        .iter()
        .filter(|(_, line)| {
            line.contains(&format!("\"tenant\":\"{run}-")) || line.contains(&format!("\"requestId\":\"{run}-"))
        })
        .count();
    assert_eq!(ours, audited, "one line per audited request");
    for component in COMPONENTS {
        let stderr = app.app.component_log(component, Stdio::Stderr);
        for line in stderr.lines() {
            assert!(
                line.starts_with("request ") && line.matches("request ").count() == 1,
                "{component}: torn line {line:?}"
            );
        }
    }
}
