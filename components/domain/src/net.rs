//! The seam to the network, shared by the registry checks (`verify`) and minting (`mint`): a
//! request and its answer ([`Fetcher`] for a GET, [`Sender`] for a request with a body; Spin's
//! outgoing HTTP implements both in `spin-bridge`, the tests implement them with scripted fakes),
//! and the rule that refuses a destination before any connection ([`refusal`]: plain http unless
//! the operator listed the host, IP literals in private and reserved ranges).
//!
//! Host *names* are not resolved here: a component cannot see what a name resolves to, so names are
//! left to Spin's `[outbound_networking] block_networks` (the production runtime config blocks
//! private networks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

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

/// The operator's plain-http registries (`host[:port]`, lower-case), from a Spin variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainHttpRegistries(Vec<String>);

impl PlainHttpRegistries {
    /// A comma- or space-separated list of `host[:port]`.
    pub fn parse(list: &str) -> PlainHttpRegistries {
        PlainHttpRegistries(
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        )
    }

    pub fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        self.0.iter().any(|entry| entry == host || Some(entry) == with_port.as_ref())
    }
}

/// Why a destination is refused before any connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Plain http to a host the operator did not list.
    PlainHttp,
    /// An IP literal in a private, local or reserved range (or no host at all).
    PrivateAddress,
}

/// Whether anything may be sent to `url`: https (or http for a host the operator listed), and not
/// an IP literal in a private or reserved range. `None`: it may.
pub fn refusal(url: &Url, plain_http: &PlainHttpRegistries) -> Option<Refused> {
    match url.scheme() {
        "https" => {}
        "http" if plain_http.allows(url) => {}
        _ => return Some(Refused::PlainHttp),
    }
    let refused = match url.host() {
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => false,
        None => true,
    };
    refused.then_some(Refused::PrivateAddress)
}

/// False for loopback, link-local, RFC 1918, CGNAT, unique-local, unspecified, multicast,
/// broadcast and reserved addresses (IPv4-mapped and -compatible IPv6 as their IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| embedded_v4(v6)) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    let reserved = a >= 240 || a == 0;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || cgnat
        || reserved)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// `::a.b.c.d` (IPv4-compatible, deprecated but still parsed) and NAT64's `64:ff9b::a.b.c.d`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(tail)
}
