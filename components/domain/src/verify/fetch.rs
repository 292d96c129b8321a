//! The seam to the network: "send this GET, get the status, the headers and at most
//! [`MAX_RESPONSE_BYTES`] of the body". Spin's outgoing HTTP implements it in `spin-bridge`; the
//! tests implement it with a scripted fake, so the handshake is tested natively.

use url::Url;

/// The most a check reads of any answer: a token answer is a few KiB; anything longer is cut.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An answer, with header names lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why no answer came, as far as the platform tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// DNS failed, the connection was refused or reset, or it closed without an answer.
    Unreachable,
    /// The TLS handshake failed: untrusted or invalid certificate, protocol error.
    Tls,
    /// No connection or no first byte within the timeout.
    Timeout,
    /// The platform refused the destination (Spin's `block_networks`, or a host not allowed).
    Blocked,
}

pub trait Fetcher {
    /// GET `url`, with this `Authorization` header when given. Redirects are not followed here.
    fn get(&self, url: &Url, authorization: Option<&str>) -> Result<Fetched, FetchError>;
}

/// A request with a method and a body, for the token endpoints minting calls (`mint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub method: &'static str,
    pub url: Url,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Outgoing {
    pub fn post(url: Url, content_type: &str, body: Vec<u8>) -> Outgoing {
        Outgoing { method: "POST", url, headers: vec![("content-type".into(), content_type.into())], body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub trait Sender {
    /// Sends `request` and returns the answer (at most [`MAX_RESPONSE_BYTES`] of its body).
    /// Redirects are not followed.
    fn send(&self, request: &Outgoing) -> Result<Fetched, FetchError>;
}
