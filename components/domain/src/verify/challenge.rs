//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1): several per header and several headers,
//! parameters as tokens or quoted strings (with escapes, and commas inside quotes).

/// One challenge: the scheme lower-cased, the parameters with lower-cased names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Every challenge of every header, in order. Garbage is skipped, never an error: a registry
/// that sends none we understand is told apart by the caller.
pub fn parse_all<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    headers.into_iter().flat_map(parse).collect()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
    }

    /// A quoted string (the opening quote already seen), unescaped.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.at += 1;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A token68 (`abc+/=`) or anything else we do not understand, up to the next comma.
    fn skip_item(&mut self) {
        while self.peek().is_some_and(|b| b != b',') {
            self.at += 1;
        }
    }
}

fn parse(header: &str) -> Vec<Challenge> {
    let mut cursor = Cursor { bytes: header.as_bytes(), at: 0 };
    let mut challenges = Vec::new();
    loop {
        cursor.skip_separators();
        if cursor.peek().is_none() {
            break;
        }
        let Some(scheme) = cursor.token() else {
            cursor.at += 1;
            cursor.skip_item();
            continue;
        };
        let mut challenge = Challenge { scheme: scheme.to_ascii_lowercase(), params: Vec::new() };
        // Parameters follow until an item that is not `name=value`: that starts the next challenge.
        loop {
            cursor.skip_separators();
            let before = cursor.at;
            let Some(name) = cursor.token() else {
                cursor.skip_item();
                break;
            };
            cursor.skip_spaces();
            if cursor.peek() != Some(b'=') {
                cursor.at = before;
                break;
            }
            cursor.at += 1;
            cursor.skip_spaces();
            let value = match cursor.peek() {
                Some(b'"') => cursor.quoted(),
                _ => cursor.token().unwrap_or_default(),
            };
            if value.is_empty() && cursor.peek() == Some(b'=') {
                // A token68 ending in '=' (`Basic abc==`): not parameters.
                cursor.skip_item();
                continue;
            }
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        challenges.push(challenge);
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[test]
    fn docker_hubs_bearer_challenge() {
        let c = parse_all([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/ubuntu:pull"));
    }

    #[test]
    fn commas_and_escapes_inside_quotes_and_spaces_around_equals() {
        let c = parse_all([
            r#"Bearer realm = "https://a.example/t?x=1,2" , scope="repository:a/b:pull,push", error="say \"hi\"""#,
        ]);
        assert_eq!(
            params(&c[0]),
            [("realm", "https://a.example/t?x=1,2"), ("scope", "repository:a/b:pull,push"), ("error", "say \"hi\"")]
        );
    }

    #[test]
    fn several_challenges_in_one_header_and_across_headers() {
        let c = parse_all([
            r#"Basic realm="Registry Realm", charset="UTF-8", Bearer realm="https://t.example/token",service=reg"#,
            "Negotiate abc123==, Digest realm=\"x\", nonce=\"n\"",
        ]);
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate", "digest"]);
        assert_eq!(params(&c[0]), [("realm", "Registry Realm"), ("charset", "UTF-8")]);
        assert_eq!(params(&c[1]), [("realm", "https://t.example/token"), ("service", "reg")]);
        assert!(c[2].params.is_empty());
        assert_eq!(c[3].param("nonce"), Some("n"));
    }

    #[test]
    fn bare_schemes_case_and_garbage() {
        let c = parse_all(["BASIC", "", ",,, ", "\"unterminated", "bEaReR REALM=\"r\""]);
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer"]);
        assert_eq!(c[1].param("realm"), Some("r"));
        assert!(parse_all([r#"Bearer realm="never closed"#]).first().is_some_and(|c| c.param("realm").is_some()));
    }
}
