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
//! `.ci/run` installs schemathesis (pinned) in a virtual environment and names its interpreter in
//! `REGSECRETS_SCHEMATHESIS_PYTHON`. Without it the test is skipped with a message, except under
//! `CI=true`, where it fails. Each run is bounded by examples per operation, a seed and a hard time
//! limit; the counts are printed (`cargo test -p e2e --test fuzz_openapi -- --nocapture`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use e2e::registry::{Reply, Server};
use e2e::tokens::Tokens;
use e2e::{repo_root, unique_tenant, Options, TestApp};
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

/// One schemathesis run; returns its JSON report. Killed, and failed, past `limit`.
fn run(python: &str, label: &str, config_file: &Path, args: &[&str], limit: Duration) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let mut command = Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(config_file)
        .arg("run")
        .args(args)
        .args(["--seed", SEED, "--report", "json", "--report-json-path"])
        .arg(&report)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
    assert!(
        status.success() && report["failures"] == Value::Array(vec![]) && report["errors"] == Value::Array(vec![]),
        "{label}: schemathesis found problems ({status})\n{stdout}\n{stderr}"
    );
    assert!(cases["generated"].as_u64().unwrap_or(0) > 0, "{label}: nothing was generated\n{stdout}");
    report
}

/// SAP's OpenAPI document, where CI provides it: beside the repository (not in it).
fn sap_document() -> Option<PathBuf> {
    repo_root().ancestors().skip(1).map(|dir| dir.join(SAP_DOCUMENT)).find(|p| p.exists())
}

/// Every provider that mints (AWS, Google, Azure) as one loopback endpoint that refuses every
/// identity with a 400 in AWS's error shape, as each provider refuses an unknown key: fuzzed secrets
/// of the minting kinds then meet a refusal (422) on export, not an unreachable provider (503, which
/// schemathesis counts as a server error). The minting tests cover real refusals and outages.
fn refusing_providers() -> Server {
    Server::start(
        None,
        Arc::new(|_| {
            Reply::json(
                400,
                &json!({"__type": "UnrecognizedClientException", "error": "invalid_client",
                        "message": "The security token included in the request is invalid."}),
            )
        }),
    )
}

#[test]
fn schemathesis_finds_nothing_with_sap_document_and_with_ours() {
    let Some(python) = schemathesis() else { return };
    let providers = refusing_providers();
    let at = format!("http://127.0.0.1:{}", providers.port());
    let variables: BTreeMap<String, String> = ["aws_endpoint_url", "google_token_url", "azure_authority_url"]
        .into_iter()
        .map(|name| (name.to_owned(), at.clone()))
        .collect();
    let app = TestApp::start_with(Options::default(), Tokens::default(), variables);
    let base = app.app.base_url();
    let tenant_token = |label: &str| {
        let tenant = unique_tenant(label);
        format!(
            "Authorization: Bearer {}",
            app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"])
        )
    };

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
    run(
        &python,
        "our document, tenant calls",
        &config("ours.toml"),
        &[&ours, "--checks", "all", "--include-path-regex", "^/v2/admin/", "-H", &header],
        Duration::from_secs(120),
    );
    let header = tenant_token("fuzz-pull");
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
        Duration::from_secs(90),
    );
    let operator = format!("Authorization: Bearer {}", app.token(&unique_tenant("fuzz-op"), &["regsecrets.operator"]));
    run(
        &python,
        "our document, operator calls",
        &config("ours.toml"),
        &[&ours, "--checks", "all", "--include-path-regex", "^/v2/operator/", "-H", &operator],
        Duration::from_secs(90),
    );
}
