//! The listener, serving connections as Spin 4.0.2's HTTP trigger does
//! (`crates/trigger-http/src/server.rs`, `serve_http` and `serve_connection`): each accepted stream
//! goes as it is to a task of its own running hyper-util's `auto` builder (HTTP/1.1, or HTTP/2 with
//! prior knowledge) with its default options, `SPIN_HTTP1_MAX_BUF_SIZE` aside.
//!
//! Spin never sets `TCP_NODELAY` on accepted connections, so neither does this host: an answer that
//! leaves in two writes (headers, then a body that was not ready yet) meets Nagle's algorithm and
//! the client's delayed ACK on a kept-alive connection, and stalls ~40 ms there, as under Spin.
//! A host that hid that would hide exactly what clients of a real deployment see.

use crate::app::AppShared;
use crate::dispatch::handle_external;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub async fn serve(app: Arc<AppShared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let max_buf_size = http1_max_buf_size();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, client)) = accepted else {
            continue;
        };
        serve_connection(app.clone(), stream, client, max_buf_size);
    }
}

/// Spin's `--http1-max-buf-size`, which it also reads from this variable.
fn http1_max_buf_size() -> Option<usize> {
    std::env::var("SPIN_HTTP1_MAX_BUF_SIZE").ok()?.parse().ok()
}

fn serve_connection(app: Arc<AppShared>, stream: TcpStream, client: SocketAddr, max_buf_size: Option<usize>) {
    tokio::spawn(async move {
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let req = req.map(|b| b.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
                Ok::<_, Infallible>(handle_external(app, req, client).await)
            }
        });
        let mut builder = Builder::new(TokioExecutor::new());
        if let Some(size) = max_buf_size {
            builder.http1().max_buf_size(size);
        }
        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
    });
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    //! Over the real listener and an app without components (every path 404s): what a client's
    //! connection meets on the server's side of the socket, and which protocols it may speak.

    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::BorrowedFd;

    fn empty_app(dir: &std::path::Path) -> Arc<AppShared> {
        let manifest = dir.join("spin.toml");
        std::fs::write(&manifest, "spin_manifest_version = 2\n[application]\nname = \"empty\"\n").unwrap();
        let mut cfg = crate::HostConfig::new(&manifest);
        cfg.sqlite_path = Some(dir.join("kv.db"));
        Arc::new(AppShared::load(&cfg, crate::logs::LogBook::new(false, None).unwrap()).unwrap())
    }

    fn start(rt: &tokio::runtime::Runtime, app: Arc<AppShared>) -> (SocketAddr, watch::Sender<bool>) {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        rt.spawn(serve(app, listener, stop_rx));
        (addr, stop)
    }

    /// Whether the server's end of a connection has TCP_NODELAY, found among this process's
    /// descriptors by its addresses (the client cannot see the server's socket options).
    fn server_side_nodelay(server: SocketAddr, client: SocketAddr) -> bool {
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            // SAFETY: only getsockopt/getsockname/getpeername on a descriptor of this process,
            // while the test holds the connection open; a descriptor closed meanwhile just fails.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            let local = sock.local_addr().ok().and_then(|a| a.as_socket());
            let peer = sock.peer_addr().ok().and_then(|a| a.as_socket());
            if local == Some(server) && peer == Some(client) {
                return sock.tcp_nodelay().unwrap();
            }
        }
        panic!("no server-side socket for {client} -> {server}");
    }

    fn exchange(conn: &mut std::net::TcpStream, request: &[u8]) -> String {
        conn.write_all(request).unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn accepted_connections_keep_nagle_on_as_spin_leaves_them() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (addr, _stop) = start(&rt, empty_app(dir.path()));
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        // Two requests on one connection: kept alive, and served by the code under test.
        for _ in 0..2 {
            let answer = exchange(&mut conn, b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n");
            assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        }
        assert!(
            !server_side_nodelay(addr, conn.local_addr().unwrap()),
            "the host set TCP_NODELAY on an accepted connection, which Spin 4.0.2 never does"
        );
    }

    #[test]
    fn http2_with_prior_knowledge_is_served_as_spin_serves_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (addr, _stop) = start(&rt, empty_app(dir.path()));
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        // The HTTP/2 connection preface and an empty SETTINGS frame: hyper's auto builder answers
        // with a SETTINGS frame of its own (type 4) instead of an HTTP/1 400.
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        conn.write_all(&preface).unwrap();
        let mut frame_header = [0u8; 9];
        conn.read_exact(&mut frame_header).unwrap();
        assert_eq!(frame_header[3], 4, "expected an HTTP/2 SETTINGS frame, got {frame_header:?}");
    }
}
