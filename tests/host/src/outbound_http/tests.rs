//! Real connections over loopback: a throwaway CA, TLS servers that answer, stall or redirect,
//! and the errors a guest would see.

use super::*;
use crate::client_tls::{ClientTlsConfigs, ClientTlsToml};
use crate::network_config::NetworkPolicy;
use http_body_util::{Empty, Full};
use std::convert::Infallible;
use std::path::Path;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "host test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &*ca).unwrap();
    Pki { ca_pem: ca.pem(), chain: vec![cert.der().clone()], key_der: key.serialize_der() }
}

fn acceptor(pki: &Pki, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let key = rustls::pki_types::PrivateKeyDer::try_from(pki.key_der.clone()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(crate::client_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A policy whose component `verify` trusts the test CA for `127.0.0.1` and `localhost`.
fn trusting(pki: &Pki, dir: &Path) -> NetworkPolicy {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let entry: ClientTlsToml = toml::from_str(
        "component_ids = [\"verify\"]\nhosts = [\"127.0.0.1\", \"localhost\"]\nca_roots_file = \"ca.pem\"\n",
    )
    .unwrap();
    NetworkPolicy { tls: ClientTlsConfigs::new(vec![entry], dir).unwrap(), ..Default::default() }
}

/// Serves each connection with `answer(request head) -> raw HTTP/1.1 bytes`, over TLS when given.
async fn raw_server(tls: Option<tokio_rustls::TlsAcceptor>, answer: fn(&str) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut stream: Box<dyn Stream> = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(tcp),
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = answer(&String::from_utf8_lossy(&head));
                let _ = stream.write_all(&reply).await;
                let _ = stream.flush().await;
                // Hold the connection open (a stalling answer stops mid-body).
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn get(url: &str) -> Request<WasiBody> {
    Request::get(url).body(Empty::<Bytes>::new().map_err(|e: Infallible| match e {}).boxed_unsync()).unwrap()
}

fn options(connect: u64, first_byte: u64, between: u64) -> Option<RequestOptions> {
    Some(RequestOptions {
        connect_timeout: Some(Duration::from_millis(connect)),
        first_byte_timeout: Some(Duration::from_millis(first_byte)),
        between_bytes_timeout: Some(Duration::from_millis(between)),
    })
}

async fn send(
    policy: &NetworkPolicy,
    component: &str,
    url: &str,
    opts: Option<RequestOptions>,
) -> Result<Response<WasiBody>, Error> {
    let logs = LogBook::new(false, None).unwrap();
    Sender { policy, logs: &logs, component }.send(get(url), opts).await.map(|(r, _)| r)
}

fn answer_ok(head: &str) -> Vec<u8> {
    // Echo the Host header the server saw, so the test can check what was sent.
    let host = head.lines().find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: "))).unwrap_or("");
    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{host}", host.len()).into_bytes()
}

fn answer_redirect(_: &str) -> Vec<u8> {
    b"HTTP/1.1 302 Found\r\nlocation: https://ghcr.io/elsewhere\r\ncontent-length: 0\r\n\r\n".to_vec()
}

fn answer_stall_body(_: &str) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec()
}

fn answer_nothing(_: &str) -> Vec<u8> {
    Vec::new()
}

#[tokio::test]
async fn https_with_the_components_client_tls_roots() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let policy = trusting(&pki, dir.path());
    let addr = raw_server(Some(acceptor(&pki, &[b"http/1.1"])), answer_ok).await;
    let resp = send(&policy, "verify", &format!("https://127.0.0.1:{}/v2/", addr.port()), None).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("127.0.0.1:{}", addr.port()), "Host carries the non-default port");
    let resp = send(&policy, "verify", &format!("https://localhost:{}/v2/", addr.port()), None).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn https_negotiates_h2_when_the_server_offers_it() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let policy = trusting(&pki, dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = acceptor(&pki, &[b"h2", b"http/1.1"]);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = tls.accept(tcp).await.unwrap();
        let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
            let body = format!("{:?} {}", req.version(), req.uri());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let url = format!("https://127.0.0.1:{}/v2/?x=1", addr.port());
    let resp = send(&policy, "verify", &url, None).await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("HTTP/2.0 {url}"));
}

#[tokio::test]
async fn an_untrusted_ca_is_a_tls_protocol_error() {
    let pki = pki();
    let addr = raw_server(Some(acceptor(&pki, &[])), answer_ok).await;
    let url = format!("https://127.0.0.1:{}/v2/", addr.port());
    // No [[client_tls]] at all: the default roots do not know the test CA.
    let err = send(&NetworkPolicy::default(), "verify", &url, None).await.unwrap_err();
    assert!(matches!(err, Error::TlsProtocolError), "{err:?}");
    // An entry for another component does not help this one.
    let dir = tempfile::tempdir().unwrap();
    let policy = trusting(&pki, dir.path());
    let err = send(&policy, "create", &url, None).await.unwrap_err();
    assert!(matches!(err, Error::TlsProtocolError), "{err:?}");
    // A server certificate signed by another CA fails even with the entry.
    let other = self::pki();
    let addr = raw_server(Some(acceptor(&other, &[])), answer_ok).await;
    let err = send(&policy, "verify", &format!("https://127.0.0.1:{}/", addr.port()), None).await.unwrap_err();
    assert!(matches!(err, Error::TlsProtocolError), "{err:?}");
}

#[tokio::test]
async fn tls_to_a_plain_http_server_is_a_tls_protocol_error() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let policy = trusting(&pki, dir.path());
    // What a plain HTTP server says to a ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let err =
        send(&policy, "verify", &format!("https://127.0.0.1:{port}/"), options(1000, 2000, 1000)).await.unwrap_err();
    assert!(matches!(err, Error::TlsProtocolError), "{err:?}");
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let port = closed_port().await;
    let err = send(&NetworkPolicy::default(), "verify", &format!("http://127.0.0.1:{port}/"), None).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused), "{err:?}");
}

#[tokio::test]
async fn a_connect_that_hangs_hits_the_connect_timeout() {
    // A listener whose accept queue is full: Linux drops further SYNs, so a connect hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    let full = loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) if queued.len() < 16 => queued.push(stream),
            Ok(_) => break false,
            Err(_) => break true,
        }
    };
    assert!(full, "the accept queue never filled ({} connections queued)", queued.len());
    let started = Instant::now();
    let err = send(&NetworkPolicy::default(), "verify", &format!("http://{addr}/"), options(300, 5000, 5000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionTimeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_first_byte_timeout() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let policy = trusting(&pki, dir.path());
    // Plain: accepts, reads the request, never answers.
    let silent = raw_server(None, answer_nothing).await;
    let started = Instant::now();
    let err = send(&policy, "verify", &format!("http://127.0.0.1:{}/", silent.port()), options(5000, 300, 5000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionReadTimeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // TCP accepted but no TLS handshake ever: the first-byte timeout covers the handshake too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let err =
        send(&policy, "verify", &format!("https://127.0.0.1:{port}/"), options(5000, 300, 5000)).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionReadTimeout), "{err:?}");
}

#[tokio::test]
async fn a_stalled_body_hits_the_between_bytes_timeout() {
    let addr = raw_server(None, answer_stall_body).await;
    let resp = send(
        &NetworkPolicy::default(),
        "verify",
        &format!("http://127.0.0.1:{}/", addr.port()),
        options(5000, 5000, 300),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let err = resp.into_body().collect().await.unwrap_err();
    assert!(matches!(err, Error::ConnectionReadTimeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn redirects_reach_the_guest_unfollowed() {
    let addr = raw_server(None, answer_redirect).await;
    let resp = send(&NetworkPolicy::default(), "verify", &format!("http://127.0.0.1:{}/v2/", addr.port()), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://ghcr.io/elsewhere");
}

#[tokio::test]
async fn blocked_networks_refuse_after_resolving() {
    let addr = raw_server(None, answer_ok).await;
    let policy =
        NetworkPolicy::parse("[outbound_networking]\nblock_networks = [\"private\"]\n", Path::new("."), false).unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let err = send(&policy, "verify", &format!("http://{host}:{}/", addr.port()), None).await.unwrap_err();
        assert!(matches!(err, Error::DestinationIpProhibited), "{host}: {err:?}");
    }
    let policy =
        NetworkPolicy::parse("[outbound_networking]\nblock_networks = [\"10.0.0.0/8\"]\n", Path::new("."), false)
            .unwrap();
    let resp = send(&policy, "verify", &format!("http://127.0.0.1:{}/", addr.port()), None).await.unwrap();
    assert_eq!(resp.status(), 200, "loopback is not in 10/8");
}

#[tokio::test]
async fn the_safety_net_refuses_other_hosts_before_any_lookup() {
    let policy = NetworkPolicy { loopback_only: true, ..Default::default() };
    let logs = LogBook::new(false, None).unwrap();
    let sender = Sender { policy: &policy, logs: &logs, component: "verify" };
    // `.invalid` names never resolve: a lookup would give dns-error, the net gives connection-refused.
    for url in
        ["https://ghcr.io/v2/", "https://registry-1.docker.io/v2/", "http://nothing.invalid/", "https://10.0.0.1/"]
    {
        let err = sender.send(get(url), None).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::ConnectionRefused), "{url}: {err:?}");
    }
    assert!(logs.text().contains("loopback-only safety net"), "{}", logs.text());
    assert!(!logs.text().contains("/v2/"), "log lines name the origin only");
    // Loopback still works under the net.
    let addr = raw_server(None, answer_ok).await;
    let resp = sender.send(get(&format!("http://localhost:{}/", addr.port())), None).await.unwrap().0;
    assert_eq!(resp.status(), 200);
}

#[test]
fn spin_defaults_when_options_are_unset() {
    let t = Timeouts::from_options(None);
    assert_eq!(t, Timeouts { connect: DEFAULT_TIMEOUT, first_byte: DEFAULT_TIMEOUT, between_bytes: DEFAULT_TIMEOUT });
    let t = Timeouts::from_options(Some(RequestOptions {
        connect_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    }));
    assert_eq!(t.connect, Duration::from_secs(2));
    assert_eq!(t.first_byte, DEFAULT_TIMEOUT);
}
