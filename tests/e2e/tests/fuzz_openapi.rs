//! Schemathesis fuzzes the running app with SAP's OpenAPI document (four checks: every status
//! difference from SAP is a deliberate one, 201/200 where SAP answers 202) and with our own
//! `/openapi.json` (every check, through its stateful phase), and finds nothing.
//!
//! SAP's document is not part of this repository (the contract the tests are held to is
//! `docs/api-contract.md`): CI provides it beside the repository, at
//! `../shared/peers/sap-aicore-docker-registry-secrets.yaml`. Without it, the SAP half (and the
//! compatibility check) is skipped with a message, except under `CI=true`, where it fails.
//!
//! First `fuzz/compat.py` checks that our document is compatible with SAP's for SAP's calls (paths,
//! methods, query parameters, required fields and types of bodies and answers).
//!
//! The app mints against real provider doubles, as `minting.rs` does: moto's server for AWS (IAM
//! checking every signature) and the test token endpoints for Google and Microsoft Entra ID (with an
//! Azure registry's exchange). `fuzz/providers.py` (schemathesis hooks) gives every other fuzzed
//! identity one the double accepts, so fuzzed secrets that mint are minted as well as refused, and
//! holds the one exception to "no server error" to the truth: 502 `ProviderAnswerUnusable` without
//! `Retry-After`, 503 `ProviderUnavailable` with `Retry-After` for a provider the test stopped, and
//! only from the calls that mint. Then every double is stopped, the provider really down: three
//! secrets that mint answer 503 with `Retry-After` naming their provider on export, verification and
//! lookup, and a short fuzz of the secrets' and lookup's calls finds nothing else (no 500).
//!
//! `.ci/run` installs schemathesis and moto (pinned) in virtual environments and names them in
//! `REGSECRETS_SCHEMATHESIS_PYTHON` and `REGSECRETS_MOTO_SERVER`. Without either the test is skipped
//! with a message, except under `CI=true`, where it fails. Each run is bounded by examples per
//! operation, a seed and a hard time limit; the counts, and the statuses of every response, are
//! printed (`cargo test -p e2e --test fuzz_openapi -- --nocapture`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;

use e2e::minting::{google_key_file, AzurePeers, GoogleTokens, Moto, AZURE_CLIENT, AZURE_TENANT};
use e2e::tokens::Tokens;
use e2e::{repo_root, unique_tenant, Options, TestApp, SECRETS};
use jwt_simple::prelude::RS256KeyPair;
use serde_json::{json, Value};

const SAP_DOCUMENT: &str = "shared/peers/sap-aicore-docker-registry-secrets.yaml";
const SAP_CHECKS: &str =
    "not_a_server_error,response_schema_conformance,content_type_conformance,negative_data_rejection";
/// Fixed, so a failure reproduces; changing it is a new sample of inputs.
const SEED: &str = "20261130";

fn schemathesis() -> Option<String> {
    match std::env::var("REGSECRETS_SCHEMATHESIS_PYTHON").ok().filter(|p| !p.is_empty()) {
        Some(python) => Some(python),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but REGSECRETS_SCHEMATHESIS_PYTHON is not set: .ci/run installs schemathesis and sets it")
        }
        None => {
            eprintln!(
                "skipped: REGSECRETS_SCHEMATHESIS_PYTHON is not set (.ci/run sets it after installing schemathesis)"
            );
            None
        }
    }
}

fn config(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz").join(name)
}

/// What `fuzz/providers.py` (schemathesis hooks) is told through a run's environment: the identities
/// the doubles accept (JSON, kind to fields), and the providers the test stopped (comma-separated, as
/// our messages name them).
struct Hooks {
    identities: String,
    down: &'static str,
}

/// One schemathesis run; with `hooks`, it answers one JSON object per response
/// (`operation`, `status`, `code`, and for an export `minted`: the provider that minted it). Killed,
/// and failed, past `limit`.
fn run(
    python: &str,
    label: &str,
    config_file: &Path,
    args: &[&str],
    hooks: Option<&Hooks>,
    limit: Duration,
) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let log = dir.path().join("responses.jsonl");
    let mut command = Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(config_file)
        .arg("run")
        .args(args)
        .args(["--seed", SEED, "--report", "json", "--report-json-path"])
        .arg(&report)
        .current_dir(dir.path())
        .env_remove("SCHEMATHESIS_HOOKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(hooks) = hooks {
        command
            .env("SCHEMATHESIS_HOOKS", config("providers.py"))
            .env("REGSECRETS_FUZZ_IDENTITIES", &hooks.identities)
            .env("REGSECRETS_FUZZ_PROVIDERS_DOWN", hooks.down)
            .env("REGSECRETS_FUZZ_LOG", &log);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("schemathesis starts");
    // Read the output on threads so a full pipe never stalls the child.
    let pipe = |mut reader: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            text
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!("{label}: schemathesis ran past {limit:?} and was stopped\n{stdout}\n{stderr}");
    };
    let report: Value = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("{label}: no report ({status})\n{stdout}\n{stderr}"));
    let responses: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("providers.py logs JSON lines"))
        .collect();
    let cases = &report["test_cases"];
    println!(
        "{label}: {} cases generated, {} with failures, {} errored, {} failures, {} errors, {:.0} s",
        cases["generated"],
        cases["with_failures"],
        cases["errored"],
        report["failures"].as_array().map_or(0, Vec::len),
        report["errors"].as_array().map_or(0, Vec::len),
        started.elapsed().as_secs_f64()
    );
    if hooks.is_some() {
        print!("{}", statuses(&responses));
    }
    assert!(
        status.success() && report["failures"] == Value::Array(vec![]) && report["errors"] == Value::Array(vec![]),
        "{label}: schemathesis found problems ({status})\n{stdout}\n{stderr}"
    );
    assert!(cases["generated"].as_u64().unwrap_or(0) > 0, "{label}: nothing was generated\n{stdout}");
    if let Some(hooks) = hooks {
        assert!(!responses.is_empty(), "{label}: providers.py logged no response (were its hooks loaded?)\n{stdout}");
        assert_justified(label, &responses, hooks.down);
    }
    responses
}

/// The responses' statuses per operation, one line each: `  exportCredentials (120): 200 ×9 (minted
/// by AWS 4, Azure 2, Google 1), 404 ×80, 422 ProviderRefused ×31`; a write's 2xx counted by the kind
/// of identity it carried.
fn statuses(responses: &[Value]) -> String {
    let mut seen: BTreeMap<&str, BTreeMap<(u64, &str), usize>> = BTreeMap::new();
    let mut by: BTreeMap<(&str, u64), BTreeMap<&str, usize>> = BTreeMap::new();
    for response in responses {
        let operation = response["operation"].as_str().unwrap_or("?");
        let status = response["status"].as_u64().unwrap_or(0);
        *seen.entry(operation).or_default().entry((status, response["code"].as_str().unwrap_or(""))).or_default() += 1;
        if let Some(what) = response["minted"].as_str().or(response["kind"].as_str()).filter(|_| status < 300) {
            *by.entry((operation, status)).or_default().entry(what).or_default() += 1;
        }
    }
    let mut out = format!("  {} responses\n", responses.len());
    for (operation, counts) in &seen {
        let total: usize = counts.values().sum();
        let each: Vec<String> = counts
            .iter()
            .map(|((status, code), n)| {
                let code = if code.is_empty() { String::new() } else { format!(" {code}") };
                let by = match by.get(&(*operation, *status)) {
                    Some(by) => {
                        let what = if *operation == "exportCredentials" { "minted by" } else { "of kind" };
                        let by: Vec<String> = by.iter().map(|(p, n)| format!("{p} {n}")).collect();
                        format!(" ({what} {})", by.join(", "))
                    }
                    None => String::new(),
                };
                format!("{status}{code} ×{n}{by}")
            })
            .collect();
        out += &format!("  {operation} ({total}): {}\n", each.join(", "));
    }
    out
}

/// The calls that mint, and how our messages name each provider (`domain::mint`).
const MINTING: &[&str] = &["exportCredentials", "verifySecret", "resolveCredentials"];
const PROVIDERS: &[&str] = &["AWS", "Google", "Microsoft Entra ID", "The registry"];

/// `providers.py`'s check, again over its log (should schemathesis not have run it): every 5xx is
/// from a call that mints and tells the truth about its provider: 502 `ProviderAnswerUnusable`
/// without `Retry-After` from a provider that answered; 503 `ProviderUnavailable` with
/// `Retry-After`, naming a provider the test stopped (`down`), as unreachable.
fn assert_justified(label: &str, responses: &[Value], down: &str) {
    let down: Vec<&str> = down.split(',').filter(|p| !p.is_empty()).collect();
    for response in responses.iter().filter(|r| r["status"].as_u64().unwrap_or(0) >= 500) {
        let message = response["message"].as_str().unwrap_or_default();
        let provider = PROVIDERS.iter().find(|p| message.starts_with(&format!("{p} ")));
        let retry_after = response["retryAfter"].as_str().and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0);
        let operation = response["operation"].as_str().unwrap_or_default();
        let justified = MINTING.contains(&operation)
            && match (response["status"].as_u64(), response["code"].as_str(), provider) {
                (Some(502), Some("ProviderAnswerUnusable"), Some(p)) => {
                    response["retryAfter"].is_null() && !down.contains(p)
                }
                (Some(503), Some("ProviderUnavailable"), Some(p)) => {
                    retry_after.is_some() && down.contains(p) && message.contains("could not be reached")
                }
                _ => false,
            };
        assert!(justified, "{label}: a server error that is not the truth about a provider: {response}");
    }
}

/// How many `responses` match: `operation` (any when empty), `status`, `code` (any when empty).
fn count(responses: &[Value], operation: &str, status: u64, code: &str) -> usize {
    responses
        .iter()
        .filter(|r| operation.is_empty() || r["operation"] == operation)
        .filter(|r| r["status"] == status && (code.is_empty() || r["code"] == code))
        .count()
}

/// SAP's OpenAPI document, where CI provides it: beside the repository (not in it).
fn sap_document() -> Option<PathBuf> {
    repo_root().ancestors().skip(1).map(|dir| dir.join(SAP_DOCUMENT)).find(|p| p.exists())
}

const AZURE_SECRET: &str = "client~secret";
const ALL_SCOPES: &[&str] = &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"];

#[test]
fn schemathesis_finds_nothing_with_sap_document_and_with_ours() {
    let Some(python) = schemathesis() else { return };
    let Some(moto) = Moto::start() else { return };
    let started = Instant::now();
    let key = RS256KeyPair::generate(2048).unwrap();
    let google = GoogleTokens::start(key.public_key());
    let azure = AzurePeers::start(AZURE_SECRET);
    let azure_host = format!("localhost:{}", azure.port());
    let variables: BTreeMap<String, String> = [
        ("aws_endpoint_url", moto.url()),
        ("google_token_url", google.url()),
        ("azure_authority_url", format!("http://{azure_host}")),
        ("verify_insecure_registries", azure_host.clone()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let app = TestApp::start_with(Options::default(), Tokens::default(), variables);
    let base = app.app.base_url();
    let tenant_token = |label: &str| {
        let tenant = unique_tenant(label);
        format!("Authorization: Bearer {}", app.token(&tenant, ALL_SCOPES))
    };
    // The identities each double accepts (moto's `puller` may call ecr:GetAuthorizationToken).
    let accepted = json!({
        "aws": {"accessKeyId": moto.puller.0, "secretAccessKey": moto.puller.1},
        "google": {"serviceAccountKey": google_key_file(&key), "registries": ["europe-docker.pkg.dev"]},
        "azure": {"tenantId": AZURE_TENANT, "clientId": AZURE_CLIENT, "clientSecret": AZURE_SECRET,
                  "registry": azure_host},
    });
    let up = Hooks { identities: accepted.to_string(), down: "" };

    match sap_document() {
        Some(sap) => {
            let sap = sap.to_string_lossy().into_owned();
            let compat = Command::new(&python)
                .arg(config("compat.py"))
                .arg(&sap)
                .arg(format!("{base}/openapi.json"))
                .output()
                .expect("python runs");
            let said = String::from_utf8_lossy(&compat.stdout).into_owned() + &String::from_utf8_lossy(&compat.stderr);
            assert!(compat.status.success(), "our document is not compatible with SAP's:\n{said}");
            print!("{said}");
            let url = format!("{base}/v2");
            let header = tenant_token("fuzz-sap");
            run(
                &python,
                "SAP's document",
                &config("sap.toml"),
                &[&sap, "--url", &url, "--checks", SAP_CHECKS, "-H", &header],
                None,
                Duration::from_secs(90),
            );
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but ../{SAP_DOCUMENT} is not beside the repository")
        }
        None => eprintln!("SAP's document skipped: ../{SAP_DOCUMENT} is not beside the repository"),
    }

    let ours = format!("{base}/openapi.json");
    let header = tenant_token("fuzz-ours");
    let moto_before = moto.requests();
    let responses = run(
        &python,
        "our document, tenant calls",
        &config("ours.toml"),
        &[&ours, "--checks", "all", "--include-path-regex", "^/v2/admin/", "-H", &header],
        Some(&up),
        Duration::from_secs(120),
    );
    let moto_answered = moto.requests() - moto_before;
    let (google_minted, azure_minted) = (google.issued.load(SeqCst), azure.exchanged.load(SeqCst));
    println!(
        "  the doubles: moto answered {moto_answered} requests, Google issued {google_minted} tokens, \
         Azure's registry exchanged {azure_minted}"
    );
    assert!(moto_answered > 0, "no fuzzed secret of kind awsEcr reached moto");
    let minted_by = |provider: &str| responses.iter().filter(|r| r["minted"] == provider).count();
    assert!(minted_by("AWS") > 0, "no export answered a credential minted by moto");
    assert!(count(&responses, "exportCredentials", 422, "ProviderRefused") > 0, "no export met a refusal");

    // The lookup on the same tenant: its secrets left by the fuzz, some of which mint, match
    // `all=true` and the registries drawn from the document's examples.
    run(
        &python,
        "our document, pull-time calls",
        &config("ours.toml"),
        // One operation and no links between operations: nothing for the stateful phase.
        &[
            &ours,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--include-path-regex",
            "^/v2/pull/",
            "-H",
            &header,
        ],
        Some(&up),
        Duration::from_secs(90),
    );
    let operator = format!("Authorization: Bearer {}", app.token(&unique_tenant("fuzz-op"), &["regsecrets.operator"]));
    run(
        &python,
        "our document, operator calls",
        &config("ours.toml"),
        &[&ours, "--checks", "all", "--include-path-regex", "^/v2/operator/", "-H", &operator],
        Some(&up),
        Duration::from_secs(90),
    );

    // Every provider really down: three secrets that mint, created while their providers are up but
    // never minted (nothing cached), then every double stopped.
    let tenant = unique_tenant("fuzz-down");
    let token = app.token(&tenant, ALL_SCOPES);
    let ecr_registry = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    let secrets = [
        (
            "down-ecr",
            "AWS",
            ecr_registry.to_owned(),
            json!({"aws": {"accessKeyId": moto.puller.0, "secretAccessKey": moto.puller.1, "region": "us-east-1",
                        "registryIds": ["111111111111"]}}),
        ),
        (
            "down-gar",
            "Google",
            "europe-docker.pkg.dev".to_owned(),
            json!({"google": {"serviceAccountKey": google_key_file(&key), "registries": ["europe-docker.pkg.dev"]}}),
        ),
        ("down-acr", "Microsoft Entra ID", azure_host.clone(), json!({"azure": accepted["azure"]})),
    ];
    for (name, _, _, identity) in &secrets {
        let mut body = identity.clone();
        body["name"] = json!(name);
        let created = app.create(&token, &body);
        assert_eq!(created.status, 201, "{name}: {}", created.body);
    }
    drop((moto, google, azure));
    for (name, provider, registry, _) in &secrets {
        let export = app.call("GET", &format!("{SECRETS}/{name}/credentials")).bearer(&token).send();
        let verify = app.call("POST", &format!("{SECRETS}/{name}/verification")).bearer(&token).json(&json!({})).send();
        let resolve = app.call("GET", &format!("/v2/pull/credentials?registry={registry}")).bearer(&token).send();
        for (call, reply) in [("export", export), ("verification", verify), ("lookup", resolve)] {
            let message = reply.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                (reply.status, reply.code().as_str(), reply.header("retry-after")),
                (503, "ProviderUnavailable", Some("30")),
                "{name}, {call}, {provider} stopped: {}",
                reply.body
            );
            assert!(
                message.starts_with(&format!("{provider} could not be reached")),
                "{name}, {call}: the stopped provider, named: {message}"
            );
        }
    }
    println!("providers down: export, verification and lookup of an ECR, a Google and an Azure secret: 503 ProviderUnavailable, Retry-After: 30");

    // A short fuzz of the secrets' and lookup's calls on that tenant, providers still down.
    let down = Hooks { identities: accepted.to_string(), down: "AWS,Google,Microsoft Entra ID,The registry" };
    let header = format!("Authorization: Bearer {token}");
    let responses = run(
        &python,
        "our document, providers down",
        &config("ours.toml"),
        &[
            &ours,
            "--checks",
            "all",
            "--phases",
            "fuzzing,stateful",
            "--max-examples",
            "10",
            "--include-path-regex",
            "^/v2/(admin/dockerRegistrySecrets|pull/)",
            "-H",
            &header,
        ],
        Some(&down),
        Duration::from_secs(90),
    );
    assert!(
        count(&responses, "", 503, "ProviderUnavailable") > 0,
        "the fuzz with the providers down never reached a secret that mints"
    );
    println!("fuzz_openapi: {:.0} s from moto's start", started.elapsed().as_secs_f64());
}
