//! Outgoing wasi:http requests as Spin's outbound-http factor handles them: the component's
//! `allowed_outbound_hosts` decides (refusal is `HttpRequestDenied`), `http://<id>.spin.internal`
//! runs the named component in process with a synthetic route, relative URLs go to the app itself,
//! and everything else leaves the process as Spin sends it (`outbound_http`).

use crate::allowed_hosts::service_chaining_target;
use crate::app::{AppShared, ComponentInfo};
use crate::dispatch::{handle_component, handle_external};
use crate::outbound_http::Sender;
use crate::routes::RouteMatch;
use http::{Request, Response};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Spin hands chained requests this client address.
const CHAINED_CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

pub struct OutboundHooks {
    app: Arc<AppShared>,
    component: Arc<ComponentInfo>,
}

impl OutboundHooks {
    pub fn new(app: Arc<AppShared>, component: Arc<ComponentInfo>) -> OutboundHooks {
        OutboundHooks { app, component }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendResult = Result<(Response<WasiBody>, IoFuture), Error>;

fn done() -> IoFuture {
    Box::new(async { Ok(()) })
}

async fn send(
    app: Arc<AppShared>,
    component: Arc<ComponentInfo>,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let host = uri.host().unwrap_or("");
    let relative = host.is_empty() || host == "self.alt";
    let allowed =
        if relative { component.allowed_hosts.allows_relative() } else { component.allowed_hosts.allows_url(&uri) };
    if !allowed {
        app.logs.line(
            "host",
            &format!("component {:?}: outbound request to {uri} denied by allowed_outbound_hosts", component.id),
        );
        return Err(Error::HttpRequestDenied);
    }
    // Spin drops the guest's Host header before dispatch.
    request.headers_mut().remove(http::header::HOST);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();

    if relative {
        let Some(origin) = app.origin.get().copied() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        let host = http::HeaderValue::from_str(&origin.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, host);
        let resp = handle_external(app, request, CHAINED_CLIENT_ADDR).await;
        return Ok((resp, done()));
    }

    if let Some(target) = service_chaining_target(&uri) {
        if !app.components.contains_key(&target) {
            return Err(Error::InternalError(Some(format!("unknown routing destination '{target}'"))));
        }
        let route = RouteMatch::synthetic(&target, uri.path());
        let resp = handle_component(app, route, request, CHAINED_CLIENT_ADDR).await;
        return Ok((resp, done()));
    }

    let sender = Sender { policy: &app.network, logs: &app.logs, component: &component.id };
    sender.send(request, options).await
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(send(self.app.clone(), self.component.clone(), request, options))
    }
}
