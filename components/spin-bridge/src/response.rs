//! Answers leave in one piece. Spin (4.0.2) never sets `TCP_NODELAY`, and hyper writes whatever
//! it holds when it gets the response: if the body is not there yet, the headers go out alone and
//! the body follows in a second small write, which Nagle's algorithm holds back until the client
//! ACKs the first; a kept-alive client delays that ACK ~40 ms. spin-sdk's own conversion does
//! exactly that (it sets the response, then writes the body, without `Content-Length`, so hyper
//! also sends a chunk terminator later still).
//!
//! So the body is written and finished *before* the response is handed over, under a
//! `Content-Length`: hyper then finds headers and body together and sends them in one write.
//! wasmtime-wasi-http buffers a response body in a channel until hyper takes it; `check_write`
//! says how much it takes now (one chunk, 1 MiB under Spin). A larger body is streamed after the
//! response is set, as before.

use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Statuses that carry no body, so no `Content-Length` either.
fn bodiless(status: http::StatusCode) -> bool {
    status.is_informational() || status == http::StatusCode::NO_CONTENT || status == http::StatusCode::NOT_MODIFIED
}

fn fields(headers: &http::HeaderMap, content_length: Option<usize>) -> Fields {
    let mut list: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| *name != http::header::CONTENT_LENGTH && *name != http::header::TRANSFER_ENCODING)
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    if let Some(length) = content_length {
        list.push((http::header::CONTENT_LENGTH.as_str().to_owned(), length.to_string().into_bytes()));
    }
    Fields::from_list(&list).expect("headers of an http::HeaderMap are valid")
}

/// Sends `response` through `response_out`: headers, `Content-Length` and body in one piece when
/// the host takes the whole body at once (every answer of this API), streamed otherwise.
pub fn answer(response: http::Response<Vec<u8>>, response_out: ResponseOutparam) {
    let (parts, body) = response.into_parts();
    if bodiless(parts.status) {
        let outgoing = OutgoingResponse::new(fields(&parts.headers, None));
        let _ = outgoing.set_status_code(parts.status.as_u16());
        response_out.set(outgoing);
        return;
    }
    let outgoing = OutgoingResponse::new(fields(&parts.headers, Some(body.len())));
    let _ = outgoing.set_status_code(parts.status.as_u16());
    let Some((outgoing_body, stream)) = outgoing.body().ok().and_then(|b| b.write().ok().map(|s| (b, s))) else {
        response_out.set(outgoing);
        return;
    };
    if stream.check_write().is_ok_and(|budget| budget >= body.len() as u64) {
        let _ = stream.write(&body);
        drop(stream);
        let _ = OutgoingBody::finish(outgoing_body, None);
        response_out.set(outgoing);
        return;
    }
    response_out.set(outgoing);
    // `blocking-write-and-flush` takes at most 4096 bytes a call.
    for piece in body.chunks(4096) {
        if stream.blocking_write_and_flush(piece).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing_body, None);
}
