use domain::http::{header_map, method, Body, Request, MAX_BODY_BYTES};
use futures::StreamExt;
use spin_sdk::http::IncomingRequest;

/// The request as the domain takes it. The body is read only up to the limit: a larger one is
/// never buffered, whatever its Content-Length claims.
pub async fn read_request(incoming: IncomingRequest) -> Request {
    let method = method(&incoming.method().to_string());
    let uri = incoming.path_with_query().and_then(|p| p.parse().ok()).unwrap_or_else(|| http::Uri::from_static("/"));
    let headers = header_map(incoming.headers().entries());
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY_BYTES) { Body::TooLarge } else { read_limited(incoming).await };
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
}

async fn read_limited(incoming: IncomingRequest) -> Body {
    let mut stream = incoming.into_body_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            // A body cut off mid-way is no body we can trust: treat it as empty (400 downstream).
            Err(_) => return Body::Complete(Vec::new()),
        }
        if bytes.len() > MAX_BODY_BYTES {
            return Body::TooLarge;
        }
    }
    Body::Complete(bytes)
}
