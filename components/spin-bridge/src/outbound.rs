//! Outgoing HTTP for verification, over `wasi:http` directly and synchronously (the domain's
//! seams are synchronous): the registries, for the `verify` component, with connect, first-byte and
//! between-bytes timeouts from `request-options` and a cap on what is read; and the `verify`
//! component itself, for create and patch, through service chaining.
//!
//! Spin decides where a component may connect (`allowed_outbound_hosts`), what it trusts
//! (`[[client_tls]]`) and which addresses are off limits (`block_networks`); its refusals come back
//! as error codes, mapped here to the domain's [`FetchError`]. Nothing of a request or an answer is
//! logged.

use std::time::{Duration, Instant};

use domain::dockerconfig::DockerConfig;
use domain::endpoints::MintRequest;
use domain::error::{Error, Internal};
use domain::mint::{MintComponent, Minted, MINT_PATH};
use domain::verify::fetch::{Outgoing, Sender, MAX_RESPONSE_BYTES};
use domain::verify::{Checked, FetchError, Fetched, Fetcher, VerifyComponent, CREDENTIAL_CHECK_PATH};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use url::Url;

/// The registries, as the `verify` component reaches them; and the identity providers' keys.
pub struct RegistryClient {
    timeout: Duration,
    /// The whole exchange, answer read to its end.
    total: Duration,
}

impl RegistryClient {
    pub fn new(timeout: Duration) -> RegistryClient {
        RegistryClient { timeout, total: timeout * 3 }
    }

    /// For the issuers' discovery documents and key sets: each exchange within
    /// `domain::identity::discovery::FETCH_TIMEOUT`, all of it.
    pub fn for_keys() -> RegistryClient {
        let bound = domain::identity::discovery::FETCH_TIMEOUT;
        RegistryClient { timeout: bound, total: bound }
    }

    fn options(&self) -> Option<RequestOptions> {
        let options = RequestOptions::new();
        let nanos = u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX);
        let set = options.set_connect_timeout(Some(nanos)).is_ok()
            && options.set_first_byte_timeout(Some(nanos)).is_ok()
            && options.set_between_bytes_timeout(Some(nanos)).is_ok();
        // A platform that takes no timeouts still bounds the check by the domain's deadline.
        set.then_some(options)
    }
}

fn classify(code: &ErrorCode) -> FetchError {
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => FetchError::Timeout,
        ErrorCode::TlsProtocolError | ErrorCode::TlsCertificateError | ErrorCode::TlsAlertReceived(_) => {
            FetchError::Tls
        }
        ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => FetchError::Blocked,
        _ => FetchError::Unreachable,
    }
}

fn authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

fn path_with_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Sends `request` (with `body`, if any) and waits for the answer's head.
fn send(request: OutgoingRequest, body: &[u8], options: Option<RequestOptions>) -> Result<IncomingResponse, ErrorCode> {
    let outgoing_body = request.body().map_err(|()| ErrorCode::InternalError(None))?;
    let future = outgoing_handler::handle(request, options)?;
    if !body.is_empty() {
        let stream = outgoing_body.write().map_err(|()| ErrorCode::InternalError(None))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|_| ErrorCode::HttpRequestBodySize(None))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None)?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(answer)) => answer,
        _ => Err(ErrorCode::InternalError(None)),
    }
}

/// At most `cap` bytes of the answer's body, read until `deadline`.
fn read_body(response: &IncomingResponse, cap: usize, deadline: Instant) -> Result<Vec<u8>, FetchError> {
    let body = response.consume().map_err(|()| FetchError::Unreachable)?;
    let stream = body.stream().map_err(|()| FetchError::Unreachable)?;
    let mut bytes = Vec::new();
    while bytes.len() < cap {
        if Instant::now() > deadline {
            return Err(FetchError::Timeout);
        }
        match stream.blocking_read((cap - bytes.len()).min(16 * 1024) as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(_) => return Err(FetchError::Unreachable),
        }
    }
    drop(stream);
    Ok(bytes)
}

impl RegistryClient {
    fn exchange(
        &self,
        method: &Method,
        url: &Url,
        mut headers: Vec<(String, Vec<u8>)>,
        body: &[u8],
    ) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        headers.push(("user-agent".into(), b"regsecrets-verify/1".to_vec()));
        if !headers.iter().any(|(n, _)| n == "accept") {
            headers.push(("accept".into(), b"application/json".to_vec()));
        }
        if !body.is_empty() {
            headers.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        let fields = Fields::from_list(&headers).map_err(|_| FetchError::Unreachable)?;
        let request = OutgoingRequest::new(fields);
        let scheme = if url.scheme() == "http" { Scheme::Http } else { Scheme::Https };
        let built = request.set_method(method).is_ok()
            && request.set_scheme(Some(&scheme)).is_ok()
            && request.set_authority(authority(url).as_deref()).is_ok()
            && request.set_path_with_query(Some(&path_with_query(url))).is_ok();
        if !built {
            return Err(FetchError::Unreachable);
        }
        let response = send(request, body, self.options()).map_err(|code| classify(&code))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
            .collect();
        // Connect, first byte and the rest of the answer: each bounded by the timeout.
        let body = read_body(&response, MAX_RESPONSE_BYTES, started + self.total)?;
        Ok(Fetched { status, headers, body })
    }
}

impl Fetcher for RegistryClient {
    fn get(&self, url: &Url, authorization: Option<&str>) -> Result<Fetched, FetchError> {
        let headers =
            authorization.map(|value| ("authorization".into(), value.as_bytes().to_vec())).into_iter().collect();
        self.exchange(&Method::Get, url, headers, &[])
    }
}

/// The providers' token endpoints (minting), with the same timeouts and caps as the registries.
impl Sender for RegistryClient {
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError> {
        let method = match request.method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            _ => return Err(FetchError::Unreachable),
        };
        let headers = request.headers.iter().map(|(n, v)| (n.clone(), v.as_bytes().to_vec())).collect();
        self.exchange(&method, &request.url, headers, &request.body)
    }
}

/// POSTs `body` (JSON) to the `verify` component at `path` (service chaining, in process), as the
/// caller (`authorization`) and under the caller's request id. `what` names the request in errors.
fn post_to_verify(
    authorization: &str,
    request_id: &str,
    path: &str,
    body: &[u8],
    what: &'static str,
) -> Result<IncomingResponse, Error> {
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (domain::http::REQUEST_ID.into(), request_id.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    // The caller's bearer token, or the console's session cookie (`identity::session`).
    for (name, value) in domain::identity::session::chained_headers(authorization) {
        headers.push((name.into(), value.into_bytes()));
    }
    let not_built = || Error::from(Internal::Platform(what));
    let fields = Fields::from_list(&headers).map_err(|_| not_built())?;
    let request = OutgoingRequest::new(fields);
    let built = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&Scheme::Http)).is_ok()
        && request.set_authority(Some("verify.spin.internal")).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !built {
        return Err(not_built());
    }
    send(request, body, None).map_err(|_| Internal::Platform("the verify component is unreachable").into())
}

/// The `verify` component, as create and patch reach it (service chaining, in process).
pub struct ChainedVerify;

/// The most a check of up to 64 registries answers, with room to spare.
const MAX_CHECKED_BYTES: usize = 256 * 1024;

impl VerifyComponent for ChainedVerify {
    fn check(&self, authorization: &str, request_id: &str, config: &DockerConfig) -> Result<Checked, Error> {
        let failed = |what: &'static str| Error::from(Internal::Platform(what));
        let response = post_to_verify(
            authorization,
            request_id,
            CREDENTIAL_CHECK_PATH,
            &config.to_dockerconfigjson(),
            "could not build the verification request",
        )?;
        if response.status() != 200 {
            return Err(failed("the verify component refused the check"));
        }
        // The verify component bounds its own time; this only keeps a wedged one from holding us forever.
        let deadline = Instant::now() + Duration::from_secs(600);
        let body = read_body(&response, MAX_CHECKED_BYTES, deadline)
            .map_err(|_| failed("the verify component's answer was cut off"))?;
        serde_json::from_slice(&body).map_err(|_| failed("the verify component's answer is not a check result"))
    }
}

/// The `verify` component, as the export reaches it to mint (service chaining, in process).
pub struct ChainedMint;

/// A minted credential's answer is a few KiB at most.
const MAX_MINTED_BYTES: usize = 64 * 1024;

impl MintComponent for ChainedMint {
    fn mint(&self, authorization: &str, request_id: &str, name: &str) -> Result<Minted, Error> {
        let failed = |what: &'static str| Error::from(Internal::Platform(what));
        let body = serde_json::to_vec(&MintRequest { name: name.to_owned() }).map_err(|_| failed("mint request"))?;
        let response = post_to_verify(authorization, request_id, MINT_PATH, &body, "could not build the mint request")?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .first()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        let deadline = Instant::now() + Duration::from_secs(600);
        let body = read_body(&response, MAX_MINTED_BYTES, deadline)
            .map_err(|_| failed("the verify component's answer was cut off"))?;
        if status == 200 {
            return serde_json::from_slice(&body)
                .map_err(|_| failed("the verify component's answer is not a credential"));
        }
        // The provider's refusal or outage, as the verify component worded it, passed on.
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or_default().to_owned();
        match (status, error["error"]["code"].as_str()) {
            (422, Some("ProviderRefused")) => Err(Error::ProviderRefused(message)),
            (502, Some("ProviderAnswerUnusable")) => Err(Error::ProviderAnswerUnusable(message)),
            (503, Some("ProviderUnavailable")) => Err(Error::ProviderUnavailable {
                message,
                retry_after_secs: retry_after.unwrap_or(domain::mint::RETRY_AFTER_SECS),
            }),
            // The secret changed under the verify component's read as well: the reader's own retry
            // (`domain::reread`) reads again, or passes the 503 on.
            (503, Some("TenantBusy")) => {
                Err(Error::TenantBusy { retry_after_secs: retry_after.unwrap_or(domain::reread::RETRY_AFTER_SECS) })
            }
            (404, _) => Err(Error::SecretNotFound),
            (401, _) => Err(Error::Unauthenticated(domain::error::AuthFailure::Misconfigured)),
            (403, _) => Err(Error::Forbidden),
            _ => Err(failed("the verify component could not mint")),
        }
    }
}
