//! Running one request through one fresh instance, the way Spin's HTTP trigger does: route,
//! add the `spin-*` headers, instantiate, call `wasi:http/incoming-handler`, and answer 500 with an
//! empty body when the guest traps before it has produced a response.

use crate::app::AppShared;
use crate::kv_host::KvState;
use crate::logs::Stdio;
use crate::outbound::OutboundHooks;
use crate::routes::RouteMatch;
use crate::state::InstanceState;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};

pub const TRAP_HEADER: &str = "spin-test-trap-after-store-calls";

pub fn empty(status: StatusCode) -> Response<WasiBody> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r
}

fn text(body: &'static str) -> Response<WasiBody> {
    Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed_unsync())
}

fn is_service_chaining_host(host: &str) -> bool {
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    host.split_once('.').is_some_and(|(_, rest)| rest == "spin.internal")
}

/// A request from outside (or a relative self-request).
pub async fn handle_external(
    app: Arc<AppShared>,
    mut req: Request<WasiBody>,
    client: SocketAddr,
) -> Response<WasiBody> {
    // As Spin: a client may not pose as a chained request.
    if req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).is_some_and(is_service_chaining_host) {
        req.headers_mut().remove(http::header::HOST);
    }
    let path = req.uri().path().to_string();
    if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
        return match well_known {
            "health" => text("OK"),
            _ => empty(StatusCode::NOT_FOUND),
        };
    }
    let Some(route) = app.router.route(&path) else {
        return empty(StatusCode::NOT_FOUND);
    };
    handle_component(app, route, req, client).await
}

/// Spin's `set_req_uri`: the URI gets the server's scheme and the authority of the Host header.
fn set_req_uri(req: &mut Request<WasiBody>) -> anyhow::Result<()> {
    let mut parts = req.uri().clone().into_parts();
    let header_authority = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> anyhow::Result<http::uri::Authority> { Ok(h.to_str()?.parse()?) })
        .transpose()?;
    let authority = match (header_authority, parts.authority.take()) {
        (None, None) => anyhow::bail!("no 'Host' header present in request"),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) if a == b => a,
        _ => anyhow::bail!("authority in 'Host' header does not match authority in URI"),
    };
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some("/".parse()?);
    }
    *req.uri_mut() = http::Uri::from_parts(parts)?;
    Ok(())
}

/// Spin's `prepare_request_headers`: the request's own headers, then the `spin-*` ones appended.
pub fn spin_headers(req: &Request<WasiBody>, route: &RouteMatch, client: SocketAddr) -> Vec<(String, String)> {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = req.uri().scheme_str().unwrap_or("http");
    let mut out = vec![
        ("spin-path-info".to_string(), route.path_info.clone()),
        ("spin-full-url".to_string(), format!("{scheme}://{host}{path_and_query}")),
        ("spin-matched-route".to_string(), route.based_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        ("spin-raw-component-route".to_string(), route.raw_route.clone()),
        ("spin-component-route".to_string(), route.raw_route_or_prefix().to_string()),
        ("spin-client-addr".to_string(), client.to_string()),
    ];
    for (name, value) in &route.named {
        out.push((format!("spin-path-match-{}", name.to_ascii_lowercase()), value.clone()));
    }
    out
}

pub async fn handle_component(
    app: Arc<AppShared>,
    route: RouteMatch,
    mut req: Request<WasiBody>,
    client: SocketAddr,
) -> Response<WasiBody> {
    if let Err(e) = set_req_uri(&mut req) {
        app.logs.line("host", &format!("bad request for {:?}: {e}", route.component));
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    for (name, value) in spin_headers(&req, &route, client) {
        if let (Ok(n), Ok(v)) = (name.parse::<HeaderName>(), HeaderValue::from_str(&value)) {
            req.headers_mut().append(n, v);
        }
    }
    match run_instance(&app, &route.component, req).await {
        Ok(resp) => resp,
        Err(e) => {
            app.logs.line("host", &format!("Error processing request for component {:?}: {e:#}", route.component));
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn trap_after(app: &AppShared, req: &Request<WasiBody>) -> Option<u32> {
    if !app.allow_trap_injection {
        return None;
    }
    req.headers().get(TRAP_HEADER)?.to_str().ok()?.trim().parse().ok()
}

async fn run_instance(
    app: &Arc<AppShared>,
    component: &str,
    req: Request<WasiBody>,
) -> anyhow::Result<Response<WasiBody>> {
    let loaded =
        app.components.get(component).ok_or_else(|| anyhow::anyhow!("unknown routing destination '{component}'"))?;
    let info = loaded.info.clone();
    let wasi = WasiCtxBuilder::new()
        .stdout(app.logs.sink(&info.id, Stdio::Stdout))
        .stderr(app.logs.sink(&info.id, Stdio::Stderr))
        .envs(&info.environment)
        .build();
    let state = InstanceState {
        wasi,
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        hooks: OutboundHooks::new(app.clone(), info.clone()),
        kv: KvState {
            allowed: info.allowed_stores.clone(),
            backends: app.backends.clone(),
            trap_after: trap_after(app, &req),
            calls: 0,
        },
        app: app.clone(),
        component: info.clone(),
    };
    let mut store = Store::new(&app.engine, state);
    let err = |e: wasmtime::Error| anyhow::anyhow!("{e:?}");
    let proxy = loaded.pre.instantiate_async(&mut store).await.map_err(err)?;
    let request = store.data_mut().http().new_incoming_request(Scheme::Http, req).map_err(err)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let outparam = store.data_mut().http().new_response_outparam(tx).map_err(err)?;
    let logs = app.logs.clone();
    let id = info.id.clone();
    let call =
        tokio::spawn(
            async move { proxy.wasi_http_incoming_handler().call_handle(&mut store, request, outparam).await },
        );
    match rx.await {
        Ok(resp) => {
            // The guest may still fail while its body streams; Spin only logs that.
            tokio::spawn(async move {
                match call.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => logs.line("host", &format!("Component {id:?} error after response started: {e:?}")),
                    Err(e) => logs.line("host", &format!("Component {id:?} panicked after response started: {e}")),
                }
            });
            resp.map_err(|code| anyhow::anyhow!("guest failed to produce a response: {code:?}"))
        }
        Err(_) => match call.await {
            Ok(Ok(())) => anyhow::bail!("guest failed to produce a response"),
            Ok(Err(e)) => anyhow::bail!("guest invocation failed: {e:?}"),
            Err(e) => anyhow::bail!("guest invocation panicked: {e}"),
        },
    }
}
