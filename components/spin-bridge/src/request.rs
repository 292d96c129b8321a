use domain::http::{Body, Request, MAX_BODY_BYTES};
use futures::StreamExt;
use spin_sdk::http::IncomingRequest;

/// The request as the domain takes it. The body is read only up to the limit: a larger one is
/// never buffered, whatever its Content-Length claims.
pub async fn read_request(incoming: IncomingRequest) -> Request {
    let mut builder = http::Request::builder()
        .method(incoming.method().to_string().as_str())
        .uri(incoming.path_with_query().unwrap_or_else(|| "/".into()));
    for (name, value) in incoming.headers().entries() {
        builder = builder.header(name, value);
    }
    let declared = builder
        .headers_ref()
        .and_then(|h| h.get(http::header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY_BYTES) { Body::TooLarge } else { read_limited(incoming).await };
    builder.body(body).unwrap_or_else(|_| http::Request::new(Body::TooLarge))
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
