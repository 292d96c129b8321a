//! AWS Signature Version 4 over headers, as AWS documents it ("Create a signed AWS API request"):
//! canonical request, string to sign, the derived signing key, and the `Authorization` header.
//! Checked against AWS's published test suite (get-vanilla, get-vanilla-query-order-key-case,
//! post-vanilla) in the tests below.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use url::Url;

/// What signs: the access key, and the scope's region and service.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// AWS's URI encoding: unreserved characters as they are, everything else `%XX` in upper case.
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDD'T'HHMMSS'Z'` of a Unix time in milliseconds.
pub fn amz_date(unix_ms: u64) -> String {
    let rfc = crate::clock::rfc3339(unix_ms); // 2015-08-30T12:36:00Z
    rfc.replace(['-', ':'], "")
}

impl Signer<'_> {
    /// The `Authorization` header for a request whose headers (names in any case) include `host`
    /// and `x-amz-date` and every other header to sign.
    pub fn authorization(&self, method: &str, url: &Url, headers: &[(String, String)], body: &[u8]) -> String {
        let (canonical, signed_headers) = canonical_request(method, url, headers, body);
        let date_time =
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date")).map(|(_, v)| v.trim()).unwrap_or("");
        let date = &date_time[..date_time.len().min(8)];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
        let key = [date, self.region, self.service, "aws4_request"]
            .iter()
            .fold(format!("AWS4{}", self.secret_access_key).into_bytes(), |key, part| hmac(&key, part.as_bytes()));
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key_id
        )
    }
}

/// The canonical request and the signed headers' list.
pub fn canonical_request(method: &str, url: &Url, headers: &[(String, String)], body: &[u8]) -> (String, String) {
    let path = if url.path().is_empty() { "/" } else { url.path() };
    let mut query: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (uri_encode(&k), uri_encode(&v))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    canonical_headers.sort();
    let signed = canonical_headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let header_block: String = canonical_headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!("{method}\n{path}\n{query}\n{header_block}\n{signed}\n{}", sha256_hex(body));
    (canonical, signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's SigV4 test suite: these credentials, scope and date sign every request of the suite.
    const SUITE: Signer = Signer {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "service",
    };

    fn suite(method: &str, url: &str) -> String {
        let headers = [
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
        ];
        SUITE.authorization(method, &Url::parse(url).unwrap(), &headers, b"")
    }

    const PREFIX: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";

    #[test]
    fn get_vanilla() {
        let (canonical, _) = canonical_request(
            "GET",
            &Url::parse("https://example.amazonaws.com/").unwrap(),
            &[("Host".into(), "example.amazonaws.com".into()), ("X-Amz-Date".into(), "20150830T123600Z".into())],
            b"",
        );
        // get-vanilla.creq
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // get-vanilla.sts's last line, then get-vanilla.authz
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            suite("GET", "https://example.amazonaws.com/"),
            format!("{PREFIX}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            suite("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1"),
            format!("{PREFIX}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            suite("POST", "https://example.amazonaws.com/"),
            format!("{PREFIX}5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
    }

    #[test]
    fn a_different_secret_or_body_changes_the_signature() {
        let other = Signer { secret_access_key: "another", ..SUITE };
        let headers = [
            ("host".to_owned(), "example.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
        ];
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        assert_ne!(other.authorization("GET", &url, &headers, b""), suite("GET", "https://example.amazonaws.com/"));
        assert_ne!(SUITE.authorization("POST", &url, &headers, b"x"), suite("POST", "https://example.amazonaws.com/"));
    }

    #[test]
    fn amz_dates_are_compact_utc() {
        assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
    }
}
