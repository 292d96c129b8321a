//! Requests that leave the process, sent as Spin 4.0.2's outbound-http factor sends them
//! (`factor-outbound-http/src/wasi.rs`), with the errors its guests see:
//! - timeouts from `wasi:http` request options, 600 s each when unset. `connect-timeout` bounds
//!   the TCP connect (`connection-timeout`); `first-byte-timeout` bounds everything from the DNS
//!   lookup to the response head, TLS handshake included (`connection-read-timeout`);
//!   `between-bytes-timeout` bounds each wait for the body (`connection-read-timeout`);
//! - the name is resolved, blocked networks are dropped (`destination-ip-prohibited` when none is
//!   left), a failed lookup is `dns-error` ("address not available"), a failed connect
//!   `connection-refused`;
//! - `https` goes over rustls with the component's `[[client_tls]]` roots for that host (or the
//!   default roots) and ALPN `h2`/`http/1.1`; any handshake failure, an untrusted certificate
//!   included, is `tls-protocol-error`; a host rustls cannot name is `dns-error` ("invalid dns
//!   name"), which includes bracketed IPv6 literals, as in Spin;
//! - HTTP errors are `http-protocol-error`; redirects are handed to the guest, never followed.
//!
//! Unlike Spin the host opens a connection per request (Spin pools them per host).

use crate::logs::LogBook;
use crate::loopback_only::is_loopback_destination;
use crate::network_config::NetworkPolicy;
use bytes::Bytes;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Spin's default for each of the three timeouts.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The three timeouts of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Timeouts {
    pub fn from_options(options: Option<RequestOptions>) -> Timeouts {
        let options = options.unwrap_or_default();
        Timeouts {
            connect: options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
            first_byte: options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT),
            between_bytes: options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

/// Who is sending, and under which rules.
pub struct Sender<'a> {
    pub policy: &'a NetworkPolicy,
    pub logs: &'a LogBook,
    pub component: &'a str,
}

impl Sender<'_> {
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let timeouts = Timeouts::from_options(options);
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default();
        if self.policy.loopback_only && !is_loopback_destination(host) {
            self.refused(&uri, "refused by the host's loopback-only safety net (tests may reach loopback only)");
            return Err(Error::ConnectionRefused);
        }
        let response = tokio::time::timeout(timeouts.first_byte, self.connect_and_send(request, timeouts.connect))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let response = response.map(|body| {
            BetweenBytesTimeout {
                body: body.map_err(Error::from).boxed_unsync(),
                wait: None,
                limit: timeouts.between_bytes,
            }
            .boxed_unsync()
        });
        // As Spin: connection errors reach the guest through the response body, not this future.
        Ok((response, Box::new(async { Ok(()) })))
    }

    async fn connect_and_send(
        &self,
        mut request: Request<WasiBody>,
        connect_timeout: Duration,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        let uri = request.uri().clone();
        let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let tcp = self.connect_tcp(&uri, if use_tls { 443 } else { 80 }, connect_timeout).await?;
        let (stream, h2): (Box<dyn Stream>, bool) = if use_tls {
            let tls = self.connect_tls(&uri, tcp).await?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Box::new(tls), h2)
        } else {
            (Box::new(tcp), false)
        };
        let io = TokioIo::new(stream);
        if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            *request.version_mut() = Version::HTTP_2;
            Ok(sender.send_request(request).await?)
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            to_origin_form(&mut request);
            Ok(sender.send_request(request).await?)
        }
    }

    async fn connect_tcp(&self, uri: &Uri, default_port: u16, limit: Duration) -> Result<TcpStream, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let host_and_port = match authority.port() {
            Some(_) => authority.as_str().to_string(),
            None => format!("{}:{default_port}", authority.as_str()),
        };
        let mut addrs: Vec<SocketAddr> =
            tokio::net::lookup_host(&host_and_port).await.map_err(|_| dns_error("address not available"))?.collect();
        let blocked = self.policy.blocked.remove_blocked(&mut addrs);
        if addrs.is_empty() && !blocked.is_empty() {
            self.refused(uri, "refused: every address is in the runtime config's block_networks");
            return Err(Error::DestinationIpProhibited);
        }
        match tokio::time::timeout(limit, TcpStream::connect(&*addrs)).await {
            Err(_) => Err(Error::ConnectionTimeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(dns_error("address not available")),
            Ok(Err(_)) => Err(Error::ConnectionRefused),
            Ok(Ok(stream)) => Ok(stream),
        }
    }

    async fn connect_tls(
        &self,
        uri: &Uri,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let host = uri.host().unwrap_or_default();
        let mut config = (*self.policy.tls.get(self.component, host)).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|_| dns_error("invalid dns name"))?.to_owned();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        connector.connect(name, tcp).await.map_err(|e| {
            self.logs.line(
                "host",
                &format!("component {:?}: TLS handshake with {} failed: {e}", self.component, origin(uri)),
            );
            Error::TlsProtocolError
        })
    }

    fn refused(&self, uri: &Uri, why: &str) {
        self.logs.line("host", &format!("component {:?}: outbound request to {} {why}", self.component, origin(uri)));
    }
}

/// `scheme://host:port` of a URI, for log lines: never a path, query or user info.
fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{}:{port}", uri.host().unwrap_or_default()),
        None => format!("{scheme}://{}", uri.host().unwrap_or_default()),
    }
}

fn dns_error(rcode: &str) -> Error {
    Error::DnsError { rcode: Some(rcode.to_string()), info_code: Some(0) }
}

/// HTTP/1 requests carry the path only, and `Host` from the URI (its port only when not the
/// scheme's default), as hyper-util's client that Spin uses sends them.
fn to_origin_form(request: &mut Request<WasiBody>) {
    let uri = request.uri().clone();
    if let Some(host) = uri.host() {
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 };
        let value = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            request.headers_mut().entry(http::header::HOST).or_insert(value);
        }
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Ok(origin_form) = path.parse() {
        *request.uri_mut() = origin_form;
    }
}

/// A response body that fails with `connection-read-timeout` when a wait for the next frame
/// exceeds the limit, as Spin's `BetweenBytesTimeoutBody`.
struct BetweenBytesTimeout {
    body: WasiBody,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
}

impl Body for BetweenBytesTimeout {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.wait = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let limit = this.limit;
                let wait = this.wait.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(wait.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
