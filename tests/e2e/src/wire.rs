//! HTTP/1.1 over one plain socket, as a kept-alive client uses it: no pool, no client-side
//! `TCP_NODELAY` games, and the answer's framing (`Content-Length` or chunked) kept for checks.
//! The latency benchmark times requests with it; tests read how answers are framed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One connection; requests on it are sent one after the other.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

/// An answer as it came over the wire.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body came chunked (`Transfer-Encoding: chunked`) rather than with a length.
    pub chunked: bool,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        Ok(Connection { reader: BufReader::new(TcpStream::connect(addr)?) })
    }

    /// Sends one request (`headers` as `name: value` lines) and reads its whole answer.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Answer> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            request.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        // One write, as clients send small requests.
        self.reader.get_mut().write_all(&bytes)?;
        self.read_answer()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let status_line = self.line()?;
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status"))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| invalid("header"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let find = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.line()?.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| invalid("chunk size"))?;
                if size == 0 {
                    // Trailers, if any, end with an empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                self.line()?;
            }
        } else if let Some(length) = find("content-length") {
            let length: usize = length.parse().map_err(|_| invalid("content-length"))?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Answer { status, headers, body, chunked })
    }
}
