//! Peers that are not a working registry, for the failure cases: a closed port, HTTPS with a CA
//! the app does not trust, a web server that is not a registry, and one that never answers.

use super::pki::Pki;
use super::serve::{Reply, Server};
use std::sync::Arc;

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// HTTPS (certificate from a CA of its own, which no runtime config trusts) answering like a
/// registry's `/v2/` would: 401 with a Basic challenge.
pub fn untrusted_https() -> Server {
    let stranger = Pki::new("a CA nobody trusts");
    Server::start(
        Some(stranger.server_config()),
        Arc::new(|_| Reply::json(401, &serde_json::json!({})).header("WWW-Authenticate", "Basic realm=\"x\"")),
    )
}

/// A web server that is not a registry: `200 text/html` for every path, `/v2/` included. Over
/// HTTPS with `pki`'s certificate when given (so TLS succeeds and only the answer is wrong).
pub fn not_a_registry(pki: Option<&Pki>) -> Server {
    Server::start(
        pki.map(|p| p.server_config()),
        Arc::new(|_| Reply::new(200, "text/html; charset=utf-8", "<!doctype html><title>Welcome</title><p>It works!")),
    )
}

/// Accepts TCP connections and never sends a byte (no TLS handshake, no answer).
pub fn never_answers() -> Server {
    Server::silent()
}
