//! The id that ties a response to its log lines and its audit line. Its own small module so that
//! `audit` (which writes it) and `http` (which answers with it) both import it without a circle.

pub const REQUEST_ID: &str = "x-request-id";

/// The id that ties a response to its log lines: the caller's `x-request-id` when it is sane
/// (so ids flow through proxies and our own gateway), a fresh random one otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn of(headers: &http::HeaderMap) -> RequestId {
        headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(|v| RequestId(v.to_owned()))
            .unwrap_or_else(RequestId::fresh)
    }

    pub fn fresh() -> RequestId {
        let mut bytes = [0u8; 16];
        // Without randomness an id is still useful for logs: fall back to the clock.
        if getrandom::fill(&mut bytes).is_err() {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            bytes = now.to_le_bytes();
        }
        RequestId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
