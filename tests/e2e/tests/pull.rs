//! Credentials at pull time, end to end: `GET /v2/pull/credentials` over HTTP, and the two native
//! binaries driven as their real clients drive them against the real registry of the verification
//! tests (Debian's distribution 2.8 with TLS and htpasswd, an image pushed by skopeo):
//!
//! - skopeo with a `REGISTRY_AUTH_FILE` holding only `credHelpers` → `docker-credential-regsecrets`
//!   (first on `PATH`): pulls; after a PATCH of the password (and the registry's htpasswd changed)
//!   pulls again untouched; after a DELETE is refused; and no credential is ever on disk.
//! - `regsecrets-credential-provider` as the kubelet runs it: a `CredentialProviderRequest` on
//!   stdin, the `CredentialProviderResponse` parsed and checked against the v1 schema, for each
//!   `cacheKeyType`, and the credentials it answers used for a real pull.
//!
//! - beside a stale secret with a refused password (newer, and first by name), the helper and the
//!   provider answer the verified one: the ranking of `resolve::rank`.
//!
//! Each test runs on every store backend this run reaches (SQLite, and Redis and DynamoDB when
//! configured), one app per backend.
//!
//! `cargo test -p e2e --test pull -- --nocapture` also prints what a pull costs through the helper.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use domain::resolve::keyring;
use domain::resolve::ImageRef;
use e2e::pull::{binaries, HELPER, PROVIDER};
use e2e::registry::{Pki, Registry};
use e2e::{structured, unique_tenant, Backend, TestApp, SECRETS};
use serde_json::{json, Value};
use testhost::Stdio as LogStream;

const PULL: &str = "/v2/pull/credentials";
const PULLER: &[&str] = &["regsecrets.puller"];
const ADMIN: &[&str] = &["regsecrets.admin"];
const USER: &str = "puller-bot";
const FIRST_PASSWORD: &str = "first-Pa55word-only-in-the-service";
const SECOND_PASSWORD: &str = "second-Pa55word-after-rotation";

/// One app per store backend for the binary, whose `verify` component trusts the test registries'
/// CA (the ranking test verifies secrets against them).
fn app_on(backend: &Backend) -> &'static TestApp {
    static APPS: [OnceLock<TestApp>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match backend {
        Backend::Sqlite => 0,
        Backend::Redis(_) => 1,
        Backend::Dynamo { .. } => 2,
    };
    APPS[slot].get_or_init(|| {
        TestApp::start(e2e::Options {
            backend: backend.clone(),
            network_config: Some(pki().client_tls_toml("verify")),
            ..Default::default()
        })
    })
}

thread_local! {
    /// The app the running test drives (see [`on_every_backend`]).
    static CURRENT: std::cell::Cell<Option<&'static TestApp>> = const { std::cell::Cell::new(None) };
}

/// The app of the backend the test is running on.
fn app() -> &'static TestApp {
    CURRENT.get().expect("tests run through on_every_backend")
}

/// Runs `test` on every store backend this run reaches: SQLite, and Redis and DynamoDB (moto's
/// server) when `REDIS_URL` and `REGSECRETS_DYNAMO_URL` are set; `app()` is that backend's app.
fn on_every_backend(test: fn()) {
    for backend in Backend::all() {
        eprintln!("== on {backend:?}");
        CURRENT.set(Some(app_on(&backend)));
        test();
    }
    CURRENT.set(None);
}

fn pki() -> Arc<Pki> {
    static PKI: OnceLock<Arc<Pki>> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("pull tests")).clone()
}

fn resolve(token: &str, query: &str) -> e2e::Reply {
    app().call("GET", &format!("{PULL}?{query}")).bearer(token).send()
}

#[test]
fn the_lookup_answers_the_callers_tenants_covering_credentials_and_audits_without_them() {
    on_every_backend(the_lookup_answers_the_callers_tenants_covering_credentials_and_audits_without_them_on);
}

fn the_lookup_answers_the_callers_tenants_covering_credentials_and_audits_without_them_on() {
    let app = app();
    let (acme, other) = (unique_tenant("pull-acme"), unique_tenant("pull-other"));
    let admin = app.token(&acme, ADMIN);
    assert_eq!(app.create(&admin, &structured("wide", "registry.example.com", "wide-user", "wide-Pa55")).status, 201);
    assert_eq!(
        app.create(&admin, &structured("team", "registry.example.com/team", "team-user", "team-Pa55")).status,
        201
    );
    assert_eq!(app.create(&admin, &structured("hub", "docker.io", "hub-user", "hub-Pa55")).status, 201);
    let theirs = app.token(&other, ADMIN);
    assert_eq!(
        app.create(&theirs, &structured("theirs", "registry.example.com", "their-user", "their-Pa55")).status,
        201
    );

    let puller = app.token(&acme, PULLER);
    let reply = resolve(&puller, "image=registry.example.com/team/app:v1");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["image"], "registry.example.com/team/app:v1");
    assert_eq!(body["cacheSeconds"], 300);
    let got: Vec<(&str, &str, &str, &str)> = body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["secret"].as_str().unwrap(),
                c["match"].as_str().unwrap(),
                c["username"].as_str().unwrap(),
                c["password"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("team", "registry.example.com/team", "team-user", "team-Pa55"),
            ("wide", "registry.example.com", "wide-user", "wide-Pa55")
        ]
    );
    // Docker Hub's short form reaches the Hub key.
    let hub = resolve(&puller, "image=nginx").json();
    assert_eq!(
        (hub["image"].as_str(), hub["credentials"][0]["secret"].as_str()),
        (Some("docker.io/library/nginx"), Some("hub"))
    );
    // The other tenant sees only its own.
    let their_answer = resolve(&app.token(&other, PULLER), "image=registry.example.com/team/app").json();
    assert_eq!(their_answer["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(their_answer["credentials"][0]["username"], "their-user");

    // Refusals.
    let none = resolve(&puller, "image=ghcr.io/org/app");
    assert_eq!((none.status, none.code().as_str()), (404, "NoMatchingCredentials"));
    assert!(none.json()["error"]["message"].as_str().unwrap().contains("pull anonymously"));
    assert_eq!(resolve(&puller, "image=Not%20An%20Image").status, 400);
    assert_eq!(resolve(&puller, "").status, 400);
    assert_eq!(resolve(&app.token(&acme, &["regsecrets.viewer", "regsecrets.admin"]), "image=nginx").status, 403);
    assert_eq!(app.call("GET", &format!("{PULL}?image=nginx")).send().status, 401);
    assert_eq!(app.call("POST", PULL).bearer(&puller).send().status, 405);

    // One audit line per call, the image re-written, never a credential.
    let stdout = app.app.component_log("credentials", LogStream::Stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == "secret.resolve" && e["tenant"] == acme.as_str())
        .collect();
    let success =
        lines.iter().find(|e| e["image"] == "registry.example.com/team/app:v1").expect("the lookup is audited");
    assert_eq!((success["name"].as_str(), success["status"].as_u64()), (Some("team"), Some(200)));
    assert!(lines.iter().any(|e| e["image"] == "ghcr.io/org/app" && e["status"] == 404));
    assert!(lines.iter().any(|e| e["status"] == 403 && e["image"].is_null()), "refused before the query was read");
    for secret in ["team-Pa55", "wide-Pa55", "hub-Pa55", "their-Pa55"] {
        assert!(!app.logs().contains(secret), "{secret} in the logs");
    }
}

// ---- the binaries, against the real registry ----

/// A scratch directory with a token file and what a client's environment needs.
struct Client {
    dir: tempfile::TempDir,
    token_file: PathBuf,
}

impl Client {
    fn new(token: &str) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Client { dir, token_file }
    }

    /// A clean environment: `PATH` with the binaries first, a scratch `HOME`, the service's URL
    /// and the token file, and an auth file that names only the credential helper.
    fn command(&self, program: &str, registry: &Registry) -> Command {
        let auth_file = self.dir.path().join("auth.json");
        std::fs::write(&auth_file, json!({"credHelpers": {registry.host(): "regsecrets"}}).to_string()).unwrap();
        let path = format!("{}:{}", binaries().display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("home"))
            .env("REGISTRY_AUTH_FILE", &auth_file)
            .env("REGSECRETS_URL", app().app.base_url())
            .env("REGSECRETS_TOKEN_FILE", &self.token_file);
        command
    }

    /// `skopeo copy` of the image into a scratch directory: a real pull, manifests and blobs.
    fn skopeo_pull(&self, registry: &Registry, image: &str) -> Output {
        let target = tempfile::tempdir().unwrap();
        self.command("skopeo", registry)
            .args(["--insecure-policy", "copy", "--quiet", "--src-cert-dir"])
            .arg(registry.pki().trust_dir())
            .arg(format!("docker://{image}"))
            .arg(format!("dir:{}", target.path().display()))
            .output()
            .expect("skopeo runs")
    }

    /// Every byte under the scratch directory except the token file: what a client left on disk.
    fn files_on_disk(&self) -> String {
        fn walk(dir: &Path, skip: &Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, skip, out);
                } else if path != skip {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()));
                }
            }
        }
        let mut out = String::new();
        walk(self.dir.path(), &self.token_file, &mut out);
        out
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn run_with_stdin(mut command: Command, input: &[u8]) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn registry_with_image() -> Option<Registry> {
    let registry = Registry::with_htpasswd(&pki(), &[(USER, FIRST_PASSWORD)])?;
    registry.push_image("org/app", "v1", (USER, FIRST_PASSWORD));
    Some(registry)
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed(n: usize, mut run: impl FnMut()) -> Duration {
    p50((0..n)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect())
}

#[test]
fn skopeo_pulls_through_the_helper_follows_a_rotation_and_is_refused_after_a_delete() {
    on_every_backend(skopeo_pulls_through_the_helper_follows_a_rotation_and_is_refused_after_a_delete_on);
}

fn skopeo_pulls_through_the_helper_follows_a_rotation_and_is_refused_after_a_delete_on() {
    let Some(mut registry) = registry_with_image() else { return };
    let app = app();
    let tenant = unique_tenant("pull-skopeo");
    let admin = app.token(&tenant, ADMIN);
    assert_eq!(app.create(&admin, &structured("ci-pull", &registry.host(), USER, FIRST_PASSWORD)).status, 201);
    let client = Client::new(&app.token(&tenant, PULLER));
    let image = format!("{}/org/app:v1", registry.host());

    // Without the helper (an empty auth file), the registry refuses: the pull needs credentials.
    let mut anonymous = client.command("skopeo", &registry);
    let empty = client.dir.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let anonymous = anonymous
        .env("REGISTRY_AUTH_FILE", &empty)
        .args(["--insecure-policy", "inspect", "--cert-dir"])
        .arg(registry.pki().trust_dir())
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "the registry lets anonymous pulls through");

    let pulled = client.skopeo_pull(&registry, &image);
    assert!(pulled.status.success(), "pull through the helper: {}", text(&pulled));

    // The helper as skopeo calls it.
    let get = run_with_stdin(
        {
            let mut c = client.command(&binaries().join(HELPER).display().to_string(), &registry);
            c.arg("get");
            c
        },
        registry.host().as_bytes(),
    );
    assert!(get.status.success(), "{}", text(&get));
    let answer: Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(answer, json!({"ServerURL": registry.host(), "Username": USER, "Secret": FIRST_PASSWORD}));

    // Rotation: the registry's password and the secret change; the client is not touched.
    registry.replace_users(&[(USER, SECOND_PASSWORD)]);
    assert!(!client.skopeo_pull(&registry, &image).status.success(), "the registry still takes the old password");
    let patch = app
        .call("PATCH", &format!("{SECRETS}/ci-pull"))
        .bearer(&admin)
        .json(&json!({"registry": registry.host(), "username": USER, "password": SECOND_PASSWORD}))
        .send();
    assert_eq!(patch.status, 200, "{}", patch.body);
    let pulled = client.skopeo_pull(&registry, &image);
    assert!(pulled.status.success(), "pull after the rotation: {}", text(&pulled));

    // What a pull costs (printed, not asserted).
    let through_helper = timed(5, || assert!(client.skopeo_pull(&registry, &image).status.success()));
    let creds_given = timed(5, || {
        let target = tempfile::tempdir().unwrap();
        let out = client
            .command("skopeo", &registry)
            .env("REGISTRY_AUTH_FILE", &empty)
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-creds",
                &format!("{USER}:{SECOND_PASSWORD}"),
                "--src-cert-dir",
            ])
            .arg(registry.pki().trust_dir())
            .arg(format!("docker://{image}"))
            .arg(format!("dir:{}", target.path().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    });
    let helper_alone = timed(21, || {
        let mut c = client.command(&binaries().join(HELPER).display().to_string(), &registry);
        c.arg("get");
        assert!(run_with_stdin(c, registry.host().as_bytes()).status.success());
    });
    let lookup_alone = timed(21, || {
        assert_eq!(
            resolve(&std::fs::read_to_string(&client.token_file).unwrap(), &format!("registry={}", registry.host()))
                .status,
            200
        )
    });
    eprintln!("\n| what (p50) | ms |\n|---|---|");
    eprintln!("| skopeo copy, credentials from the helper | {:.1} |", through_helper.as_secs_f64() * 1e3);
    eprintln!("| skopeo copy, --src-creds given | {:.1} |", creds_given.as_secs_f64() * 1e3);
    eprintln!(
        "| docker-credential-regsecrets get alone (process, token file, HTTP) | {:.1} |",
        helper_alone.as_secs_f64() * 1e3
    );
    eprintln!("| GET /v2/pull/credentials alone (kept-alive client) | {:.1} |", lookup_alone.as_secs_f64() * 1e3);

    // Delete: the helper finds nothing, skopeo falls back to anonymous, and the registry refuses.
    assert_eq!(app.call("DELETE", &format!("{SECRETS}/ci-pull")).bearer(&admin).send().status, 200);
    let get = run_with_stdin(
        {
            let mut c = client.command(&binaries().join(HELPER).display().to_string(), &registry);
            c.arg("get");
            c
        },
        registry.host().as_bytes(),
    );
    assert!(!get.status.success());
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "credentials not found in native keychain");
    let refused = client.skopeo_pull(&registry, &image);
    assert!(!refused.status.success(), "pulled after the delete");
    let said = text(&refused).to_lowercase();
    assert!(said.contains("unauthorized") || said.contains("authentication required"), "{said}");

    // Nothing the client wrote holds a credential; the auth file names only the helper.
    let on_disk = client.files_on_disk();
    for secret in [FIRST_PASSWORD, SECOND_PASSWORD] {
        assert!(!on_disk.contains(secret), "a password was written to disk");
    }
    let auth: Value =
        serde_json::from_str(&std::fs::read_to_string(client.dir.path().join("auth.json")).unwrap()).unwrap();
    assert_eq!(auth.as_object().unwrap().keys().collect::<Vec<_>>(), ["credHelpers"]);
}

#[test]
fn beside_a_stale_secret_the_helper_and_the_provider_answer_the_working_one() {
    on_every_backend(beside_a_stale_secret_the_helper_and_the_provider_answer_the_working_one_on);
}

fn beside_a_stale_secret_the_helper_and_the_provider_answer_the_working_one_on() {
    let Some(registry) = registry_with_image() else { return };
    let app = app();
    let tenant = unique_tenant("pull-rank");
    let admin = app.token(&tenant, ADMIN);
    // The working secret, verified when created; then a stale one for the same registry, newer and
    // first by name, whose password the registry refuses: neither the time nor the name may decide.
    let fresh = app
        .call("POST", &format!("{SECRETS}?verify=true"))
        .bearer(&admin)
        .json(&structured("z-fresh", &registry.host(), USER, FIRST_PASSWORD))
        .send();
    assert_eq!(fresh.status, 201, "{}", fresh.body);
    std::thread::sleep(Duration::from_millis(1100)); // `modifiedAt` has whole seconds
    let stale = structured("a-stale", &registry.host(), USER, "an-0ld-Pa55word-the-registry-refuses");
    assert_eq!(app.create(&admin, &stale).status, 201);

    let client = Client::new(&app.token(&tenant, PULLER));
    let image = format!("{}/org/app", registry.host());
    let ranked = |query: &str| {
        let reply = resolve(&std::fs::read_to_string(&client.token_file).unwrap(), query);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        body["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["secret"].as_str().unwrap().to_owned(), c["rank"].clone()))
            .collect::<Vec<_>>()
    };
    let check = |stale_standing: &str| {
        for query in [format!("image={image}:v1"), format!("registry={}", registry.host())] {
            let answer = ranked(&query);
            let names: Vec<&str> = answer.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, ["z-fresh", "a-stale"], "{query}");
            assert_eq!(answer[0].1["verification"], "verified", "{query}");
            assert_eq!(answer[0].1["reason"], "verified", "{query}");
            assert_eq!(answer[1].1["verification"], stale_standing, "{query}");
            assert!(answer[1].1.get("reason").is_none(), "{query}: the last has no reason");
        }
        // skopeo pulls through the helper, which answers the first.
        let pulled = client.skopeo_pull(&registry, &format!("{image}:v1"));
        assert!(pulled.status.success(), "pull through the helper beside a stale secret: {}", text(&pulled));
        // The kubelet's provider answers one credential per pattern: the working one.
        for cache_key_type in ["Image", "Registry"] {
            let mut c = client.command(&binaries().join(PROVIDER).display().to_string(), &registry);
            c.args(["--cache-key-type", cache_key_type]);
            let request = json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                "kind": "CredentialProviderRequest", "image": format!("{image}:v1")});
            let out = run_with_stdin(c, request.to_string().as_bytes());
            assert!(out.status.success(), "{}", text(&out));
            let response: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                response["auth"][registry.host()],
                json!({"username": USER, "password": FIRST_PASSWORD}),
                "{cache_key_type}"
            );
        }
    };
    check("unchecked");
    // Once verified, the stale one is `failed`, and still second.
    let verified = app.call("POST", &format!("{SECRETS}/a-stale/verification")).bearer(&admin).json(&json!({})).send();
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.json()["ok"], false, "{}", verified.body);
    check("failed");
}

#[test]
fn the_helper_refuses_store_and_erase_and_lists_without_secrets() {
    on_every_backend(the_helper_refuses_store_and_erase_and_lists_without_secrets_on);
}

fn the_helper_refuses_store_and_erase_and_lists_without_secrets_on() {
    let Some(registry) = registry_with_image() else { return };
    let app = app();
    let tenant = unique_tenant("pull-helper");
    let admin = app.token(&tenant, ADMIN);
    assert_eq!(app.create(&admin, &structured("one", &registry.host(), USER, FIRST_PASSWORD)).status, 201);
    let client = Client::new(&app.token(&tenant, PULLER));
    let helper = |command: &str, input: &str| {
        let mut c = client.command(&binaries().join(HELPER).display().to_string(), &registry);
        c.arg(command);
        run_with_stdin(c, input.as_bytes())
    };
    for command in ["store", "erase"] {
        let out = helper(command, &json!({"ServerURL": registry.host(), "Username": "u", "Secret": "s"}).to_string());
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("regsecrets manages these credentials"));
    }
    let list = helper("list", "");
    assert!(list.status.success(), "{}", text(&list));
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap(), json!({registry.host(): USER}));
    assert!(!text(&list).contains(FIRST_PASSWORD));
    // A registry it holds nothing for: the not-found message, exactly.
    let other = helper("get", "ghcr.io");
    assert_eq!(
        (other.status.code(), String::from_utf8_lossy(&other.stdout).trim()),
        (Some(1), "credentials not found in native keychain")
    );
    // A service that refuses the token: an error, not "not found" (which would mean: pull anonymously).
    std::fs::write(&client.token_file, app.token(&tenant, &["regsecrets.viewer"])).unwrap();
    let refused = helper("get", &registry.host());
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(said.contains("403 Forbidden") && !said.contains("not found in native keychain"), "{said}");
}

/// The `CredentialProviderResponse` of `credentialprovider.kubelet.k8s.io/v1`, field by field: no
/// field besides these, `cacheKeyType` one of the three, `cacheDuration` a Go duration, `auth` a
/// map of `{username, password}`.
fn check_v1_schema(response: &Value, api_version: &str) {
    let fields: BTreeSet<&str> = response.as_object().expect("an object").keys().map(String::as_str).collect();
    let allowed: BTreeSet<&str> = ["apiVersion", "kind", "cacheKeyType", "cacheDuration", "auth"].into();
    assert!(fields.is_subset(&allowed), "{fields:?}");
    assert!(fields.contains("cacheKeyType"), "cacheKeyType is required");
    assert_eq!(response["apiVersion"], api_version);
    assert_eq!(response["kind"], "CredentialProviderResponse");
    assert!(["Image", "Registry", "Global"].contains(&response["cacheKeyType"].as_str().unwrap()));
    let duration = response["cacheDuration"].as_str().unwrap();
    assert!(
        duration.strip_suffix('s').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        "{duration}"
    );
    for (key, auth) in response["auth"].as_object().unwrap() {
        let keys: BTreeSet<&str> = auth.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["password", "username"].into(), "{key}");
    }
}

fn seconds(duration: &Value) -> u64 {
    duration.as_str().unwrap().trim_end_matches('s').parse().unwrap()
}

#[test]
fn the_provider_answers_the_kubelet_for_each_cache_key_type_with_credentials_that_pull() {
    on_every_backend(the_provider_answers_the_kubelet_for_each_cache_key_type_with_credentials_that_pull_on);
}

fn the_provider_answers_the_kubelet_for_each_cache_key_type_with_credentials_that_pull_on() {
    let Some(registry) = registry_with_image() else { return };
    let app = app();
    let tenant = unique_tenant("pull-kubelet");
    let admin = app.token(&tenant, ADMIN);
    assert_eq!(app.create(&admin, &structured("node-pull", &registry.host(), USER, FIRST_PASSWORD)).status, 201);
    assert_eq!(app.create(&admin, &structured("elsewhere", "quay.example.com", "q", "q-Pa55")).status, 201);
    // A token that expires in 100 s: no answer may be cached longer.
    let mut claims = app.tokens.claims(&tenant, PULLER);
    claims["exp"] = json!(e2e::Tokens::now() + 100);
    let client = Client::new(&app.tokens.sign(e2e::tokens::Alg::EdDsa, &claims));
    let image = format!("{}/org/app", registry.host());
    let provider = |args: &[&str], request: &Value| {
        let mut c = client.command(&binaries().join(PROVIDER).display().to_string(), &registry);
        c.args(args);
        run_with_stdin(c, request.to_string().as_bytes())
    };
    let request = |api_version: &str, image: &str| json!({"apiVersion": api_version, "kind": "CredentialProviderRequest", "image": image});
    let v1 = "credentialprovider.kubelet.k8s.io/v1";

    for (cache_key_type, expected_keys) in [
        ("Image", vec![registry.host()]),
        ("Registry", vec![registry.host()]),
        ("Global", vec![registry.host(), "quay.example.com".to_owned()]),
    ] {
        let out = provider(&["--cache-key-type", cache_key_type], &request(v1, &image));
        assert!(out.status.success(), "{cache_key_type}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{}", text(&out));
        let response: Value = serde_json::from_slice(&out.stdout).unwrap();
        check_v1_schema(&response, v1);
        assert_eq!(response["cacheKeyType"], cache_key_type);
        let cached = seconds(&response["cacheDuration"]);
        assert!((90..=100).contains(&cached), "{cache_key_type}: cached {cached} s with a token valid 100 s");
        let auth = response["auth"].as_object().unwrap();
        let mut keys: Vec<String> = auth.keys().cloned().collect();
        keys.sort();
        let mut expected = expected_keys.clone();
        expected.sort();
        assert_eq!(keys, expected, "{cache_key_type}");
        // The kubelet picks the key that matches the image, and pulls with it.
        let repository = ImageRef::parse(&image).unwrap().repository();
        let patterns: Vec<String> = auth.keys().cloned().collect();
        let chosen = &patterns[keyring::lookup(&patterns, &repository)[0]];
        let (user, password) = (auth[chosen]["username"].as_str().unwrap(), auth[chosen]["password"].as_str().unwrap());
        let target = tempfile::tempdir().unwrap();
        let pulled = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-creds",
                &format!("{user}:{password}"),
                "--src-cert-dir",
            ])
            .arg(registry.pki().trust_dir())
            .arg(format!("docker://{image}:v1"))
            .arg(format!("dir:{}", target.path().display()))
            .output()
            .unwrap();
        assert!(pulled.status.success(), "{cache_key_type}: {}", text(&pulled));
    }

    // Answered in the version asked.
    let beta = "credentialprovider.kubelet.k8s.io/v1beta1";
    let out = provider(&[], &request(beta, &format!("{image}:v1")));
    assert!(out.status.success(), "{}", text(&out));
    check_v1_schema(&serde_json::from_slice(&out.stdout).unwrap(), beta);

    // Nothing covers the image: an empty, uncached answer, so the kubelet pulls without credentials.
    let out = provider(&[], &request(v1, "ghcr.io/org/public"));
    assert!(out.status.success(), "{}", text(&out));
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_v1_schema(&response, v1);
    assert_eq!((response["cacheDuration"].as_str(), response["auth"].as_object().unwrap().len()), (Some("0s"), 0));

    // Failures: stderr and a non-zero exit, never a credential or the token.
    let token = std::fs::read_to_string(&client.token_file).unwrap();
    for (why, args, request) in [
        ("an unknown apiVersion", vec![], request("credentialprovider.kubelet.k8s.io/v2", &image)),
        ("an unreachable service", vec!["--url", "http://127.0.0.1:9"], request(v1, &image)),
        ("a missing token file", vec!["--token-file", "/nonexistent/token"], request(v1, &image)),
    ] {
        let out = provider(&args, &request);
        assert!(!out.status.success(), "{why}");
        assert!(out.stdout.is_empty(), "{why}: {}", text(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.starts_with("regsecrets-credential-provider: "), "{why}: {said}");
        assert!(!said.contains(FIRST_PASSWORD) && !said.contains(token.trim()), "{why}: {said}");
    }
    let viewer = Client::new(&app.token(&tenant, &["regsecrets.viewer"]));
    let mut c = viewer.command(&binaries().join(PROVIDER).display().to_string(), &registry);
    c.arg("--cache-key-type=Image");
    let out = run_with_stdin(c, request(v1, &image).to_string().as_bytes());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 Forbidden"), "{}", text(&out));

    // What one provider call costs (printed, not asserted).
    let cost = timed(21, || assert!(provider(&[], &request(v1, &image)).status.success()));
    eprintln!(
        "| regsecrets-credential-provider, one call (process, token file, HTTP) p50 | {:.1} ms |",
        cost.as_secs_f64() * 1e3
    );
}

// ---- workload identity: the pod's service-account token, passed through by the provider ----

/// A cluster's service-account issuer, as the test's: an ES256 key, tokens shaped as the
/// kubelet's projected tokens (`sub`, `kubernetes.io` claims, audience, expiry).
struct TestIssuer {
    issuer: String,
    key: jwt_simple::algorithms::ES256KeyPair,
}

impl TestIssuer {
    fn new(issuer: &str) -> TestIssuer {
        use jwt_simple::prelude::*;
        TestIssuer { issuer: issuer.into(), key: ES256KeyPair::generate().with_key_id("sa-1") }
    }

    fn jwks(&self) -> Value {
        use jwt_simple::prelude::*;
        let point = self.key.public_key().public_key().to_bytes_uncompressed();
        let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "sa-1", "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..])}]})
    }

    fn token(&self, namespace: &str, name: &str, expires_in: i64) -> String {
        use jwt_simple::prelude::*;
        let now = e2e::Tokens::now();
        let custom = json!({"kubernetes.io": {"namespace": namespace,
            "serviceaccount": {"name": name, "uid": "6f1c2a8e-0000-4000-8000-000000000001"},
            "pod": {"name": format!("{name}-5d8f7"), "uid": "6f1c2a8e-0000-4000-8000-000000000002"}}});
        let claims = JWTClaims {
            issued_at: Some(Duration::from_secs((now - 5) as u64)),
            expires_at: Some(Duration::from_secs((now + expires_in) as u64)),
            invalid_before: Some(Duration::from_secs((now - 5) as u64)),
            issuer: Some(self.issuer.clone()),
            subject: Some(format!("system:serviceaccount:{namespace}:{name}")),
            audiences: Some(Audiences::AsString("regsecrets".into())),
            jwt_id: None,
            nonce: None,
            custom,
        };
        self.key.sign(claims).unwrap()
    }
}

#[test]
fn with_a_pods_token_the_provider_gets_only_the_secrets_bound_to_its_service_account() {
    on_every_backend(with_a_pods_token_the_provider_gets_only_the_secrets_bound_to_its_service_account_on);
}

fn with_a_pods_token_the_provider_gets_only_the_secrets_bound_to_its_service_account_on() {
    let Some(registry) = registry_with_image() else { return };
    let app = app();
    let tenant = unique_tenant("pull-workload");
    let admin = app.token(&tenant, ADMIN);
    assert_eq!(app.create(&admin, &structured("payments", &registry.host(), USER, FIRST_PASSWORD)).status, 201);
    let org_key = format!("{}/org", registry.host());
    assert_eq!(app.create(&admin, &structured("org-wide", &org_key, "org-user", "org-Pa55")).status, 201);
    let cluster = TestIssuer::new("https://oidc.cluster-a.test");
    let trust = json!({
        "issuers": [{"issuer": cluster.issuer, "audience": "regsecrets", "jwks": cluster.jwks()}],
        "bindings": [{"issuer": cluster.issuer, "subject": "system:serviceaccount:shop:checkout", "secrets": ["payments"]}],
    });
    let put = app.call("PUT", "/v2/admin/workloadIdentity").bearer(&admin).json(&trust).send();
    assert_eq!(put.status, 200, "{}", put.body);
    let read = app.call("GET", "/v2/admin/workloadIdentity").bearer(&app.token(&tenant, &["regsecrets.viewer"])).send();
    assert_eq!(read.json(), trust);

    // The node's own token (puller) identifies the tenant; the pod's narrows the answer.
    let node = Client::new(&app.token(&tenant, PULLER));
    let image = format!("{}/org/app", registry.host());
    let provider = |service_account_token: Option<String>| {
        let mut request = json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
            "image": image, "serviceAccountAnnotations": {}});
        if let Some(token) = service_account_token {
            request["serviceAccountToken"] = json!(token);
        }
        let command = node.command(&binaries().join(PROVIDER).display().to_string(), &registry);
        run_with_stdin(command, request.to_string().as_bytes())
    };
    let keys = |out: &Output| -> Vec<String> {
        assert!(out.status.success(), "{}", text(out));
        let response: Value = serde_json::from_slice(&out.stdout).unwrap();
        check_v1_schema(&response, "credentialprovider.kubelet.k8s.io/v1");
        response["auth"].as_object().unwrap().keys().cloned().collect()
    };
    // Without a pod token the node gets everything that covers the image.
    let mut everything = keys(&provider(None));
    everything.sort();
    assert_eq!(everything, [registry.host(), org_key.clone()]);
    // Bound: only the bound secret, and its credentials pull.
    let bound = provider(Some(cluster.token("shop", "checkout", 600)));
    assert_eq!(keys(&bound), [registry.host()]);
    let response: Value = serde_json::from_slice(&bound.stdout).unwrap();
    assert_eq!(response["auth"][registry.host()]["password"], FIRST_PASSWORD);

    // Refused, each: non-zero exit, the service's 403 on stderr, nothing on stdout.
    let untrusted = TestIssuer::new("https://oidc.cluster-b.test");
    for (why, token) in [
        ("unbound", cluster.token("shop", "cart", 600)),
        ("other namespace", cluster.token("staging", "checkout", 600)),
        ("untrusted issuer", untrusted.token("shop", "checkout", 600)),
        ("expired", cluster.token("shop", "checkout", -300)),
    ] {
        let out = provider(Some(token));
        assert!(!out.status.success(), "{why}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{why}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("403 WorkloadNotPermitted"), "{why}: {}", text(&out));
    }

    // Audited: the bound lookup names the service account; the refusals are there, never a credential.
    let lines: Vec<Value> = app
        .app
        .component_log("credentials", LogStream::Stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == "secret.resolve" && e["tenant"] == tenant.as_str())
        .collect();
    assert!(lines.iter().any(|e| e["workload"] == "system:serviceaccount:shop:checkout" && e["status"] == 200));
    assert_eq!(lines.iter().filter(|e| e["status"] == 403).count(), 4, "{lines:?}");
    assert!(!app.logs().contains(FIRST_PASSWORD) && !app.logs().contains("org-Pa55"));
    let workload_lines = app.app.component_log("workload", LogStream::Stdout);
    assert!(workload_lines.contains("\"action\":\"workload.set\"") && workload_lines.contains(&tenant));
}

#[test]
fn the_provider_can_get_its_token_by_oauth2_client_credentials_instead_of_a_file() {
    on_every_backend(the_provider_can_get_its_token_by_oauth2_client_credentials_instead_of_a_file_on);
}

fn the_provider_can_get_its_token_by_oauth2_client_credentials_instead_of_a_file_on() {
    use e2e::registry::{Reply as PeerReply, Server};
    let app = app();
    let tenant = unique_tenant("pull-oauth");
    let admin = app.token(&tenant, ADMIN);
    assert_eq!(app.create(&admin, &structured("ci", "registry.example.com", "ci-user", "ci-Pa55")).status, 201);
    // A token endpoint (RFC 6749 §4.4): HTTP Basic client authentication, a form body, a JSON answer.
    let puller = app.token(&tenant, PULLER);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (issued, log) = (puller.clone(), seen.clone());
    let endpoint = Server::start(
        None,
        Arc::new(move |request: &e2e::registry::Request| {
            log.lock().unwrap().push((request.header("authorization").map(str::to_owned), request.body.clone()));
            let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "node-a:client%2Bsecret");
            if request.method != "POST" || request.header("authorization") != Some(&format!("Basic {basic}")) {
                return PeerReply::json(401, &json!({"error": "invalid_client"}));
            }
            PeerReply::json(200, &json!({"access_token": issued, "token_type": "Bearer", "expires_in": 42}))
        }),
    );
    let token_url = format!("http://127.0.0.1:{}/token", endpoint.port());
    let provider = |secret: &str| {
        let mut command = Command::new(binaries().join(PROVIDER));
        command
            .env_clear()
            .env("REGSECRETS_URL", app.app.base_url())
            .env("REGSECRETS_CLIENT_ID", "node-a")
            .env("REGSECRETS_CLIENT_SECRET", secret)
            .env("REGSECRETS_TOKEN_URL", &token_url)
            .env("REGSECRETS_SCOPE", "regsecrets.puller");
        let request = json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
            "image": "registry.example.com/ci/app:v1"});
        run_with_stdin(command, request.to_string().as_bytes())
    };
    let out = provider("client+secret");
    assert!(out.status.success(), "{}", text(&out));
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_v1_schema(&response, "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(response["auth"]["registry.example.com"]["password"], "ci-Pa55");
    let cached = seconds(&response["cacheDuration"]);
    assert!((40..=42).contains(&cached), "cached {cached} s with a token that expires in 42 s");
    let (authorization, body) = seen.lock().unwrap()[0].clone();
    assert!(authorization.is_some());
    let form = String::from_utf8(body).unwrap();
    assert!(form.contains("grant_type=client_credentials") && form.contains("scope=regsecrets.puller"), "{form}");
    assert!(!form.contains("client+secret") && !form.contains("client%2Bsecret"), "the secret goes in the header only");
    // A wrong secret: the token endpoint refuses; stderr says so, without the secret.
    let out = provider("wrong-secret");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("token endpoint answered 401") && !said.contains("wrong-secret"), "{said}");
}
