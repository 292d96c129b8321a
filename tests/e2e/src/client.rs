use std::time::Duration;

/// A request being built.
pub struct Call {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(64)
            .build()
            .into()
    })
}

/// An agent that answers redirects as they are, for flows that follow them by hand (sign-in).
fn agent_without_redirects() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .max_redirects(0)
            .build()
            .into()
    })
}

impl Call {
    pub fn new(method: &str, url: String) -> Call {
        Call { method: method.to_owned(), url, headers: Vec::new(), body: None }
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Call {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &serde_json::Value) -> Call {
        self.header("content-type", "application/json").raw(serde_json::to_vec(body).unwrap())
    }

    pub fn raw(mut self, body: Vec<u8>) -> Call {
        self.body = Some(body);
        self
    }

    pub fn send(self) -> Reply {
        self.send_with(agent())
    }

    /// As [`Call::send`], answering a redirect (3xx with `Location`) instead of following it.
    pub fn send_without_redirects(self) -> Reply {
        self.send_with(agent_without_redirects())
    }

    fn send_with(self, agent: &ureq::Agent) -> Reply {
        let mut builder = http::Request::builder().method(self.method.as_str()).uri(&self.url);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let request = builder.body(self.body.unwrap_or_default()).expect("valid request");
        let mut response = agent.run(request).unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.url));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Reply { status, headers, body }
    }
}
