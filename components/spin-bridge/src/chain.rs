//! Service chaining: a request forwarded, untouched, to the private component that serves its
//! method and path (`domain::routes`): method, path, query, headers (the `Authorization` header
//! too: a forwarder verifies and grants nothing) and body; the answer comes back whole and leaves
//! in one write ([`crate::answer`]). Spin routes by path only, so where one path has several
//! methods served by different components, something must pick: the gateway for most paths, and
//! the read component for the paths it shares with writes (reads then cost one instance).

use domain::http::{finish, header_map, method, RequestId, REQUEST_ID};
use domain::routes::resolve;
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

use crate::answer;

/// The component that serves this request, when it is not `here`: where to forward it.
pub fn served_elsewhere(request: &IncomingRequest, here: &str) -> Option<&'static str> {
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = path_with_query.split('?').next().unwrap_or("/");
    resolve(&method(&request.method().to_string()), path).ok().map(|e| e.component()).filter(|c| *c != here)
}

/// The gateway: forwards the request to the component that serves its method and path, or answers
/// the refusal (404, 405 with `Allow`) itself.
pub async fn gateway(request: IncomingRequest, response_out: ResponseOutparam) {
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
        crate::log::error(&line);
    }
    answer(outcome.response, response_out);
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

/// The largest chained answer sent in one piece; the API's answers are far smaller.
const MAX_WHOLE_ANSWER: usize = 1 << 20;

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
    let status = match http::StatusCode::from_u16(response.status()) {
        Ok(status) => status,
        Err(_) => return Err((Fault::Platform("the endpoint answered an invalid status"), response_out)),
    };
    let headers = header_map(response.headers().entries());
    let mut body_in = response.take_body_stream();
    // Every answer of the API is small: read it whole, so it leaves in one write
    // (`crate::answer`). Past the cap, stream the rest as it comes.
    let mut body = Vec::new();
    while body.len() <= MAX_WHOLE_ANSWER {
        match body_in.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            Some(Err(_)) => return Err((Fault::Platform("the endpoint's answer broke off"), response_out)),
            None => {
                let mut answer = http::Response::new(body);
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                crate::answer(answer, response_out);
                return Ok(());
            }
        }
    }
    let answer = OutgoingResponse::new(fields(&headers));
    if answer.set_status_code(status.as_u16()).is_err() {
        return Err((Fault::Platform("the endpoint answered an invalid status"), response_out));
    }
    let mut answer_body = answer.take_body();
    response_out.set(answer);
    if answer_body.send(body).await.is_err() {
        return Ok(());
    }
    while let Some(Ok(chunk)) = body_in.next().await {
        if answer_body.send(chunk).await.is_err() {
            break;
        }
    }
    Ok(())
}
