//! Real and faithful peers for minting (issue 19): moto's server for AWS (ECR and STS) with its
//! IAM authentication on, so an unknown key, a bad signature or a missing permission is refused as
//! AWS refuses it; and token endpoints for Google and Azure written for the tests, which check
//! what the real ones check and answer in their documented formats. All on loopback; stopped on
//! drop. Also a native [`Sender`] over ureq, so the domain's minting runs against the peers with a
//! controllable clock.
//!
//! moto: `.ci/run` installs `moto[server]` (pinned) into `.ci/venv-moto` and names its
//! `moto_server` in `REGSECRETS_MOTO_SERVER`; without it [`Moto::start`] says why and returns `None`
//! (under `CI=true` it panics instead).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use domain::verify::fetch::{Outgoing, Sender};
use domain::verify::{FetchError, Fetched};
use jwt_simple::prelude::*;
use serde_json::json;

use crate::registry::{Reply, Server};

/// moto's server with IAM authentication on, and two IAM users made before it was switched on:
/// `puller` (allowed `ecr:GetAuthorizationToken`) and `nobody` (no permission).
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    pub puller: (String, String),
    pub nobody: (String, String),
}

/// The AWS actions the bootstrap script calls, exactly: moto authenticates every later request.
const BOOTSTRAP_ACTIONS: usize = 5;

const BOOTSTRAP: &str = r#"
import json, os, boto3
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_URL"], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}
iam.create_user(UserName="puller")
iam.put_user_policy(UserName="puller", PolicyName="pull", PolicyDocument=json.dumps(policy))
p = iam.create_access_key(UserName="puller")["AccessKey"]
iam.create_user(UserName="nobody")
n = iam.create_access_key(UserName="nobody")["AccessKey"]
print(json.dumps({"puller": [p["AccessKeyId"], p["SecretAccessKey"]], "nobody": [n["AccessKeyId"], n["SecretAccessKey"]]}))
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    pub fn start() -> Option<Moto> {
        let Ok(server) = std::env::var("REGSECRETS_MOTO_SERVER") else {
            let message =
                "REGSECRETS_MOTO_SERVER is not set (.ci/run installs moto[server] into .ci/venv-moto and sets it)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message}");
            }
            eprintln!("skipping: {message}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", BOOTSTRAP_ACTIONS.to_string())
            .stdout(Stdio::from(std::fs::File::create(dir.path().join("moto.out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("{server}: {e}"));
        let mut moto = Moto { child, port, log, _dir: dir, puller: Default::default(), nobody: Default::default() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let python = PathBuf::from(&server).with_file_name("python");
        let output = Command::new(&python)
            .args(["-c", BOOTSTRAP])
            .env("MOTO_URL", moto.url())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(output.status.success(), "moto bootstrap: {}", String::from_utf8_lossy(&output.stderr));
        let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let pair = |who: &str| (keys[who][0].as_str().unwrap().to_owned(), keys[who][1].as_str().unwrap().to_owned());
        moto.puller = pair("puller");
        moto.nobody = pair("nobody");
        Some(moto)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests moto has answered so far (its access log, one line each).
    pub fn requests(&self) -> usize {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        // Error lines are coloured (ANSI escapes around the request line).
        text.lines().filter(|l| l.contains("POST / HTTP/1.1")).count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The domain's network seam over ureq, natively (for the domain's minting with a test clock).
pub struct UreqSender;

impl Sender for UreqSender {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut builder = http::Request::builder().method(request.method).uri(request.url.as_str());
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        let built = builder.body(request.body.clone()).map_err(|_| FetchError::Unreachable)?;
        let mut response = agent.run(built).map_err(|_| FetchError::Unreachable)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.body_mut().read_to_vec().map_err(|_| FetchError::Unreachable)?;
        Ok(Fetched { status, headers, body })
    }
}

/// Google's token endpoint (`POST /token`) for one service account: checks the JWT-bearer grant
/// as Google does (RS256 signature with the key's public half, `iss`, `aud` = this endpoint's
/// URL, `exp` in the future and at most an hour after `iat`), and answers an access token.
pub struct GoogleTokens {
    server: Server,
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<Mutex<Vec<String>>>,
}

pub const GOOGLE_ACCOUNT: &str = "puller@project.iam.gserviceaccount.com";

impl GoogleTokens {
    pub fn start(public: RS256PublicKey) -> GoogleTokens {
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let port = Arc::new(Mutex::new(0u16));
        let (count, refusals, own_port) = (issued.clone(), refused.clone(), port.clone());
        let server = Server::start(
            None,
            Arc::new(move |request| {
                let form = request.form();
                let audience = format!("http://127.0.0.1:{}/token", own_port.lock().unwrap());
                let refuse = |why: &str| {
                    refusals.lock().unwrap().push(why.to_owned());
                    Reply::json(400, &json!({"error": "invalid_grant", "error_description": why}))
                };
                if request.method != "POST" || request.path() != "/token" {
                    return Reply::json(404, &json!({"error": "not_found"}));
                }
                if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
                    return Reply::json(400, &json!({"error": "unsupported_grant_type"}));
                }
                let options = VerificationOptions {
                    allowed_issuers: Some(HashSet::from_strings(&[GOOGLE_ACCOUNT])),
                    allowed_audiences: Some(HashSet::from_strings(&[audience.as_str()])),
                    time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(0)),
                    ..Default::default()
                };
                let assertion = form.get("assertion").cloned().unwrap_or_default();
                let claims = match public.verify_token::<serde_json::Value>(&assertion, Some(options)) {
                    Ok(claims) => claims,
                    Err(e) => return refuse(&format!("Invalid JWT: {e}")),
                };
                let (Some(iat), Some(exp)) = (claims.issued_at, claims.expires_at) else {
                    return refuse("iat and exp");
                };
                if exp.as_secs() <= iat.as_secs() || exp.as_secs() - iat.as_secs() > 3600 {
                    return refuse("Invalid JWT: the lifetime exceeds one hour");
                }
                if claims.custom["scope"].as_str().is_none_or(str::is_empty) {
                    return refuse("Invalid JWT: no scope");
                }
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::json(
                    200,
                    &json!({"access_token": format!("ya29.test-{n}"), "expires_in": 3599, "token_type": "Bearer"}),
                )
            }),
        );
        *port.lock().unwrap() = server.port();
        GoogleTokens { server, issued, refused }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }
}

/// A service account key file's JSON text for `key`.
pub fn google_key_file(key: &RS256KeyPair) -> String {
    json!({
        "type": "service_account", "project_id": "project", "private_key_id": "key-1",
        "private_key": key.to_pem().unwrap(), "client_email": GOOGLE_ACCOUNT, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

/// Microsoft Entra ID (`POST /{tenant}/oauth2/v2.0/token`, client credentials) and an Azure
/// registry's `POST /oauth2/exchange` on one loopback server (the tests name it `localhost:<port>`):
/// each checks its form fields and answers as documented; the refresh token is a JWT with `exp`.
pub struct AzurePeers {
    server: Server,
    pub exchanged: Arc<AtomicUsize>,
}

pub const AZURE_TENANT: &str = "contoso.onmicrosoft.com";
pub const AZURE_CLIENT: &str = "app-1";

impl AzurePeers {
    pub fn start(client_secret: &'static str) -> AzurePeers {
        let exchanged = Arc::new(AtomicUsize::new(0));
        let issued: Arc<Mutex<Vec<String>>> = Arc::default();
        let port = Arc::new(Mutex::new(0u16));
        let (count, own_port) = (exchanged.clone(), port.clone());
        let server = Server::start(
            None,
            Arc::new(move |request| {
                let form: BTreeMap<String, String> = request.form();
                let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
                if request.path() == format!("/{AZURE_TENANT}/oauth2/v2.0/token") {
                    if field("grant_type") != "client_credentials"
                        || field("scope") != "https://containerregistry.azure.net/.default"
                    {
                        return Reply::json(400, &json!({"error": "invalid_request"}));
                    }
                    if field("client_id") != AZURE_CLIENT || field("client_secret") != client_secret {
                        return Reply::json(
                            401,
                            &json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                        );
                    }
                    let token = format!("aad-{}", issued.lock().unwrap().len() + 1);
                    issued.lock().unwrap().push(token.clone());
                    return Reply::json(
                        200,
                        &json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}),
                    );
                }
                if request.path() == "/oauth2/exchange" {
                    let service = format!("localhost:{}", own_port.lock().unwrap());
                    let known = issued.lock().unwrap().iter().any(|t| t == field("access_token"));
                    if field("grant_type") != "access_token"
                        || field("service") != service
                        || field("tenant") != AZURE_TENANT
                        || !known
                    {
                        return Reply::json(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}));
                    }
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    return Reply::json(200, &json!({"refresh_token": refresh_token(n)}));
                }
                Reply::json(404, &json!({}))
            }),
        );
        *port.lock().unwrap() = server.port();
        AzurePeers { server, exchanged }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }
}

/// An ACR-like refresh token: a JWT whose `exp` is three hours from now.
fn refresh_token(n: usize) -> String {
    let part = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3 * 3600;
    format!("{}.{}.sig", part(json!({"alg": "RS256", "typ": "JWT"})), part(json!({"exp": exp, "jti": n})))
}
