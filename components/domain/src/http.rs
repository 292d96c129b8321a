//! HTTP in and out, on the `http` crate's types: request ids, bodies, content types, and the one
//! function that turns a `Result<Reply, Error>` into a response and a log line.

use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde::Serialize;

use crate::error::{Details, Error};

/// Bodies larger than this are refused with 413 before anything parses them.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const REQUEST_ID: &str = "x-request-id";

/// A request body as the adapter read it: whole, or cut off at [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Complete(Vec<u8>),
    TooLarge,
}

pub type Request = http::Request<Body>;
pub type Response = http::Response<Vec<u8>>;

/// The id that ties a response to its log lines: the caller's `x-request-id` when it is sane
/// (so ids flow through proxies and our own gateway), a fresh random one otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn of(headers: &http::HeaderMap) -> RequestId {
        headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(|v| RequestId(v.to_owned()))
            .unwrap_or_else(RequestId::fresh)
    }

    pub fn fresh() -> RequestId {
        let mut bytes = [0u8; 16];
        // Without randomness an id is still useful for logs: fall back to the clock.
        if getrandom::fill(&mut bytes).is_err() {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            bytes = now.to_le_bytes();
        }
        RequestId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A successful answer, before the request id is attached.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: Serialize>(status: u16, body: &T) -> Reply {
        let body = serde_json::to_vec(body).expect("response types serialize");
        Reply { status, headers: vec![(CONTENT_TYPE, "application/json".into())], body }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every error answer's body, SAP's `BckndErrorResponse`.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody<'a> {
    pub error: ErrorContent<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorContent<'a> {
    /// What went wrong, for programs: the same for every answer of that kind.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The id of the request, also in the `x-request-id` header.
    pub request_id: &'a str,
    /// The path that was called.
    pub target: &'a str,
    /// More about the error, for some codes (`QuotaExceeded`: `limit` and `used`); left out when empty.
    #[serde(skip_serializing_if = "Details::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Details,
}

/// A finished response and what to log about it (never secret material).
pub struct Outcome {
    pub response: Response,
    pub log: Option<String>,
    /// The audit line of a change or credential read, written to stdout (see `audit`).
    pub audit: Option<crate::audit::Event>,
}

/// How much of a request path an error log line quotes.
const MAX_LOGGED_PATH_CHARS: usize = 512;

/// The one place where results become responses.
pub fn finish(result: Result<Reply, Error>, id: &RequestId, target: &str) -> Outcome {
    let (reply, log) = match result {
        Ok(reply) => (reply, None),
        Err(error) => {
            // The path is cut so that a line stays one write (see spin-bridge's `log`), reason included.
            let shown: String = target.chars().take(MAX_LOGGED_PATH_CHARS).collect();
            let log = error.log_reason().map(|reason| {
                format!("request {} {shown}: {} {}: {reason}", id.as_str(), error.status(), error.code())
            });
            (error_reply(&error, id, target), log)
        }
    };
    let mut builder = http::Response::builder().status(reply.status).header(REQUEST_ID, id.as_str());
    for (name, value) in reply.headers {
        builder = builder.header(name, HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("")));
    }
    let response = builder.body(reply.body).expect("status and headers are valid");
    Outcome { response, log, audit: None }
}

fn error_reply(error: &Error, id: &RequestId, target: &str) -> Reply {
    let body = ErrorBody {
        error: ErrorContent {
            code: error.code(),
            message: error.message(),
            request_id: id.as_str(),
            target,
            details: error.details(),
        },
    };
    let mut reply = Reply::json(error.status(), &body);
    match error {
        Error::Unauthenticated(_) => reply.headers.push((WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"".into())),
        Error::MethodNotAllowed { allow } => reply.headers.push((ALLOW, (*allow).into())),
        Error::TenantBusy { retry_after_secs } | Error::ProviderUnavailable { retry_after_secs, .. } => {
            reply.headers.push((http::header::RETRY_AFTER, retry_after_secs.to_string()))
        }
        _ => {}
    }
    reply
}

/// Media types a body may be sent as.
pub const JSON: &[&str] = &["application/json"];
pub const JSON_OR_MERGE_PATCH: &[&str] = &["application/json", "application/merge-patch+json"];

/// The body as JSON, after the checks every write shares: size (413), media type (415), syntax (400).
pub fn json_body(request: &Request, accepted: &[&str]) -> Result<serde_json::Value, Error> {
    let bytes = match request.body() {
        Body::TooLarge => return Err(Error::PayloadTooLarge { limit: MAX_BODY_BYTES }),
        Body::Complete(bytes) => bytes,
    };
    let media_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if !media_type.is_some_and(|m| accepted.contains(&m.as_str())) {
        return Err(Error::UnsupportedMediaType);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::InvalidRequest(format!(
            "The body is not valid JSON ({} at line {}, column {})",
            classify(&e),
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(Error::InvalidRequest("The body must be a JSON object".into()));
    }
    Ok(value)
}

/// serde_json's messages can quote input; say only what kind of error it was.
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    }
}

/// The header value as text, if present and readable.
pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A request method as the `http` crate types it. A name that is not a valid token takes no route:
/// CONNECT stands for it, so it is answered 405.
pub fn method(name: &str) -> http::Method {
    http::Method::from_bytes(name.as_bytes()).unwrap_or(http::Method::CONNECT)
}

/// Headers as the `http` crate types them; a name or value that is not valid HTTP is dropped.
pub fn header_map(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in entries {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// Percent-decodes a path segment (`+` stays `+`: this is a path, not a form).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/v2/admin/dockerRegistrySecrets");
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        b.body(body).unwrap()
    }

    #[test]
    fn body_checks_come_in_the_contract_order() {
        assert_eq!(
            json_body(&request(Some("application/json"), Body::TooLarge), JSON),
            Err(Error::PayloadTooLarge { limit: MAX_BODY_BYTES })
        );
        assert_eq!(
            json_body(&request(Some("text/plain"), Body::Complete(b"{}".to_vec())), JSON),
            Err(Error::UnsupportedMediaType)
        );
        assert_eq!(json_body(&request(None, Body::Complete(b"{}".to_vec())), JSON), Err(Error::UnsupportedMediaType));
        assert!(matches!(
            json_body(&request(Some("application/json"), Body::Complete(b"{\"a\":".to_vec())), JSON),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            json_body(&request(Some("application/json"), Body::Complete(b"[]".to_vec())), JSON),
            Err(Error::InvalidRequest(_))
        ));
        assert!(
            json_body(&request(Some("Application/JSON; charset=utf-8"), Body::Complete(b"{}".to_vec())), JSON).is_ok()
        );
        assert!(json_body(
            &request(Some("application/merge-patch+json"), Body::Complete(b"{}".to_vec())),
            JSON_OR_MERGE_PATCH
        )
        .is_ok());
    }

    #[test]
    fn syntax_errors_do_not_quote_the_body() {
        let secret = "hunter2-very-secret";
        let body = format!("{{\"password\": \"{secret}\" oops}}");
        let Err(Error::InvalidRequest(message)) =
            json_body(&request(Some("application/json"), Body::Complete(body.into_bytes())), JSON)
        else {
            panic!()
        };
        assert!(!message.contains(secret));
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_made_fresh_otherwise() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(RequestId::of(&headers).as_str(), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("a b<script>"));
        let fresh = RequestId::of(&headers);
        assert_eq!(fresh.as_str().len(), 32);
        assert_ne!(fresh, RequestId::fresh());
    }

    #[test]
    fn errors_become_the_contract_body_with_headers() {
        let id = RequestId::fresh();
        let out = finish(Err(Error::QuotaExceeded { limit: 50, used: 50 }), &id, "/v2/x");
        assert_eq!(out.response.status(), 403);
        assert_eq!(out.response.headers()[REQUEST_ID], id.as_str());
        let body: serde_json::Value = serde_json::from_slice(out.response.body()).unwrap();
        assert_eq!(body["error"]["code"], "QuotaExceeded");
        assert_eq!(body["error"]["requestId"], id.as_str());
        assert_eq!(body["error"]["target"], "/v2/x");
        assert_eq!(body["error"]["details"], serde_json::json!({"limit": 50, "used": 50}));
        let out = finish(Err(Error::Unauthenticated(crate::error::AuthFailure::Expired)), &id, "/");
        assert_eq!(out.response.headers()[WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        assert!(out.log.unwrap().contains("Expired"));
        let body = String::from_utf8(out.response.body().clone()).unwrap();
        assert!(!body.contains("Expired"), "the reason is logged, not returned");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body["error"].get("details").is_none(), "no details: the key is left out, {body}");
    }

    #[test]
    fn a_busy_tenant_is_a_503_with_retry_after_and_the_contract_body() {
        let id = RequestId::fresh();
        let out = finish(Err(Error::TenantBusy { retry_after_secs: 3 }), &id, "/v2/x");
        assert_eq!(out.response.status(), 503);
        assert_eq!(out.response.headers()[http::header::RETRY_AFTER], "3");
        let body: serde_json::Value = serde_json::from_slice(out.response.body()).unwrap();
        assert_eq!(body["error"]["code"], "TenantBusy");
        assert_eq!(body["error"]["requestId"], id.as_str());
        assert!(body["error"]["message"].as_str().unwrap().contains("retry"), "{body}");
        assert!(out.log.is_none(), "a busy tenant is not a fault of ours");
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("b%2Ec"), "b.c");
        assert_eq!(percent_decode("plain%"), "plain%");
        assert_eq!(percent_decode("x%zz"), "x%zz");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
