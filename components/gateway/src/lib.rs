//! The public face of the API. Spin routes by path only, so this component picks the private
//! component for a method and path (`domain::routes`) and forwards the request to it through
//! service chaining, untouched: method, path, query, headers (the `Authorization` header too: the
//! gateway verifies and grants nothing) and body, streaming the answer back. Unknown paths and
//! methods are answered here (404, 405 with `Allow`).

use domain::http::{finish, header_map, method, RequestId, REQUEST_ID};
use domain::routes::resolve;
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = path_with_query.split('?').next().unwrap_or("/");
    let method = method(&request.method().to_string());
    let mut headers = forwarded_headers(&request);
    let request_id = RequestId::of(&headers);
    headers.insert(REQUEST_ID, http::HeaderValue::from_str(request_id.as_str()).expect("request ids are header-safe"));

    let (refusal, response_out) = match resolve(&method, path) {
        Ok(endpoint) => match forward(request, &path_with_query, &headers, endpoint.component(), response_out).await {
            Ok(()) => return,
            Err((fault, response_out)) => (fault.into(), response_out),
        },
        Err(refusal) => (refusal, response_out),
    };
    let outcome = finish(Err(refusal), &request_id, path);
    if let Some(line) = outcome.log {
        spin_bridge::log::error(&line);
    }
    send(outcome.response, response_out).await;
}

/// The headers Spin sets on every request it hands a component; it sets them anew on the chained
/// request, so they are not forwarded.
const SET_BY_SPIN: &[&str] = &[
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-base-path",
    "spin-client-addr",
];

/// Everything but the headers Spin sets itself for each hop, and `host`.
fn forwarded_headers(request: &IncomingRequest) -> http::HeaderMap {
    header_map(request.headers().entries().into_iter().filter(|(name, _)| {
        let name = name.to_ascii_lowercase();
        !(SET_BY_SPIN.contains(&name.as_str()) || name.starts_with("spin-path-match-") || name == "host")
    }))
}

fn fields(headers: &http::HeaderMap) -> Fields {
    let list: Vec<(String, Vec<u8>)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    Fields::from_list(&list).expect("headers from a valid request are valid")
}

type Fault = domain::error::Internal;

async fn forward(
    request: IncomingRequest,
    path_with_query: &str,
    headers: &http::HeaderMap,
    component: &str,
    response_out: ResponseOutparam,
) -> Result<(), (Fault, ResponseOutparam)> {
    let outgoing = OutgoingRequest::new(fields(headers));
    let wit_method = request.method();
    let chained = (|| {
        outgoing.set_method(&wit_method).ok()?;
        outgoing.set_scheme(Some(&Scheme::Http)).ok()?;
        outgoing.set_authority(Some(&format!("{component}.spin.internal"))).ok()?;
        outgoing.set_path_with_query(Some(path_with_query)).ok()
    })();
    if chained.is_none() {
        return Err((Fault::Platform("could not build the chained request"), response_out));
    }
    let mut body_out = outgoing.take_body();
    let response = spin_sdk::http::send::<_, IncomingResponse>(outgoing);
    let pump = async move {
        let mut body_in = request.into_body_stream();
        while let Some(Ok(chunk)) = body_in.next().await {
            if body_out.send(chunk).await.is_err() {
                break;
            }
        }
    };
    // The endpoint may answer (e.g. 413) without reading the whole body: stop pumping then.
    futures::pin_mut!(pump);
    futures::pin_mut!(response);
    let response = match futures::future::select(pump, response).await {
        futures::future::Either::Left(((), response)) => response.await,
        futures::future::Either::Right((response, _unfinished_pump)) => response,
    };
    let response = match response {
        Ok(response) => response,
        Err(_) => return Err((Fault::Platform("service chaining failed"), response_out)),
    };
    let answer = OutgoingResponse::new(response.headers().clone());
    if answer.set_status_code(response.status()).is_err() {
        return Err((Fault::Platform("the endpoint answered an invalid status"), response_out));
    }
    let mut answer_body = answer.take_body();
    response_out.set(answer);
    let mut body_in = response.take_body_stream();
    while let Some(Ok(chunk)) = body_in.next().await {
        if answer_body.send(chunk).await.is_err() {
            break;
        }
    }
    Ok(())
}

async fn send(response: http::Response<Vec<u8>>, response_out: ResponseOutparam) {
    let (parts, body) = response.into_parts();
    let answer = OutgoingResponse::new(fields(&parts.headers));
    let _ = answer.set_status_code(parts.status.as_u16());
    let _ = response_out.set_with_body(answer, body).await;
}
