//! The HTTP/1 listener: one task per connection, requests served concurrently.

use crate::app::AppShared;
use crate::dispatch::handle_external;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(app: Arc<AppShared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, client)) = accepted else {
            continue;
        };
        // A streamed response is written in pieces; without this the later pieces can wait ~40 ms
        // for a delayed ACK, which would swamp every latency figure taken through this host.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let req = req.map(|b| b.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
                    Ok::<_, Infallible>(handle_external(app, req, client).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
