//! The audit trail: one JSON object per line for every change and every credential read, and for
//! every refusal of those calls. Metadata reads (list, get, quotas read) are not audited.
//!
//! A line says who (`tenant`, `subject`, `client` from the verified token), what (`action`,
//! `name`), when (`time`), and how it ended (`status`, `outcome`), tied to the response by
//! `requestId`. A credential lookup at pull time (`secret.resolve`) also names the `image` (or
//! registry) asked about, as the domain re-wrote it after parsing, and, when a pod's
//! service-account token was verified, its service account as `workload`
//! (`system:serviceaccount:<namespace>:<name>`); other lines have `null` there.
//! It never holds a credential, a token or a request body: every field is either
//! chosen here from a fixed set or is a value that has already been validated (a tenant id, a
//! secret name) or that the identity provider signed (`sub`, `azp`/`client_id`, bounded in length).
//!
//! Outcomes: `success` for 2xx; `refused` for every 4xx (the caller was turned away: no or bad
//! token 401, missing scope or full quota 403, unknown secret 404, taken name 409, stale
//! `If-Match` 412, bad body 400/413/415, rejected credentials 422); `failed` for 5xx (the
//! service could not do it: store, configuration, a busy tenant log).
//!
//! Each line fits in [`MAX_LINE_BYTES`] so that the Spin bridge can hand it to the host in one
//! `blocking-write-and-flush` call (whose limit is 4096 bytes), which is what keeps concurrent
//! instances' lines from interleaving in Spin's log file.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::identity::Principal;
use crate::name::{SecretName, TenantId};
use crate::request_id::RequestId;
use crate::routes::Endpoint;

/// The longest line [`Event::line`] makes, newline included: WASI's per-call write limit.
pub const MAX_LINE_BYTES: usize = 4096;
/// Token-supplied strings (`sub`, `client`) are cut to this many characters. Escaped as JSON a
/// character is at most 6 bytes, so two of them stay under 2,400 bytes and the line under 4096.
pub const MAX_CLAIM_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    #[serde(rename = "secret.create")]
    SecretCreate,
    #[serde(rename = "secret.modify")]
    SecretModify,
    #[serde(rename = "secret.delete")]
    SecretDelete,
    #[serde(rename = "secret.export")]
    SecretExport,
    #[serde(rename = "secret.verify")]
    SecretVerify,
    #[serde(rename = "secret.resolve")]
    SecretResolve,
    #[serde(rename = "workload.set")]
    WorkloadSet,
    #[serde(rename = "quota.set")]
    QuotaSet,
    #[serde(rename = "tenant.reencrypt")]
    TenantReencrypt,
    /// The console's OpenID Connect callback: a session made (success) or refused (`signin`).
    #[serde(rename = "console.signin")]
    ConsoleSignIn,
    /// A console session ended by its user.
    #[serde(rename = "console.signout")]
    ConsoleSignOut,
}

impl Endpoint {
    /// The audited action of an endpoint; `None` for reads of metadata, which are not audited.
    pub fn audit_action(&self) -> Option<Action> {
        match self {
            Endpoint::CreateSecret => Some(Action::SecretCreate),
            Endpoint::ModifySecret { .. } => Some(Action::SecretModify),
            Endpoint::DeleteSecret { .. } => Some(Action::SecretDelete),
            Endpoint::ExportCredentials { .. } => Some(Action::SecretExport),
            Endpoint::VerifySecret { .. } => Some(Action::SecretVerify),
            Endpoint::ResolveCredentials => Some(Action::SecretResolve),
            Endpoint::SetWorkloadIdentity => Some(Action::WorkloadSet),
            Endpoint::SetTenantQuota { .. } => Some(Action::QuotaSet),
            Endpoint::ReencryptTenant { .. } => Some(Action::TenantReencrypt),
            Endpoint::ListSecrets
            | Endpoint::GetSecret { .. }
            | Endpoint::ResourceQuota
            | Endpoint::GetTenantQuota { .. }
            | Endpoint::GetWorkloadIdentity
            | Endpoint::Liveness
            | Endpoint::Readiness => None,
        }
    }

    /// What the action is about, as the path names it: the secret's name, or the tenant an
    /// operator acts on. Only a valid name or tenant id is kept (so its length is bounded and it
    /// cannot carry anything else); the create's name comes from its body, see [`Audit::name`].
    fn audit_subject(&self) -> Option<String> {
        match self {
            Endpoint::ModifySecret { name }
            | Endpoint::DeleteSecret { name }
            | Endpoint::ExportCredentials { name }
            | Endpoint::VerifySecret { name } => SecretName::parse(name).ok().map(SecretName::into_string),
            Endpoint::SetTenantQuota { tenant } | Endpoint::ReencryptTenant { tenant } => {
                TenantId::parse(tenant).ok().map(|t| t.as_str().to_owned())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Success,
    Refused,
    Failed,
}

impl Verdict {
    pub fn of_status(status: u16) -> Verdict {
        match status {
            400..=499 => Verdict::Refused,
            500..=599 => Verdict::Failed,
            _ => Verdict::Success,
        }
    }
}

/// What an endpoint learns while it serves an audited call, filled in as it goes: a request
/// refused before the token is verified has no caller, one refused before its body is read has
/// no name from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    action: Action,
    name: Option<String>,
    image: Option<String>,
    workload: Option<String>,
    caller: Option<Caller>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Caller {
    tenant: String,
    subject: Option<String>,
    client: Option<String>,
}

impl Audit {
    /// `None` when the endpoint is not audited.
    pub fn start(endpoint: &Endpoint) -> Option<Audit> {
        endpoint.audit_action().map(|action| Audit {
            action,
            name: endpoint.audit_subject(),
            image: None,
            workload: None,
            caller: None,
        })
    }

    /// The verified caller.
    pub fn caller(&mut self, who: &Principal) {
        self.caller = Some(Caller {
            tenant: who.tenant.as_str().to_owned(),
            subject: who.subject.as_deref().map(bounded),
            client: who.client.as_deref().map(bounded),
        });
    }

    /// The secret's name from the create's body, kept only if it is a valid name.
    pub fn name(&mut self, candidate: &str) {
        if let Ok(name) = SecretName::parse(candidate) {
            self.name = Some(name.into_string());
        }
    }

    /// The image or registry a lookup was about: parsed and re-written by `resolve::Selector`, so
    /// it is bounded (at most 585 characters) and holds nothing else.
    pub fn image(&mut self, image: String) {
        self.image = Some(image);
    }

    /// The verified service account a lookup was made for (validated by `workload::verify`).
    pub fn workload(&mut self, subject: String) {
        self.workload = Some(subject);
    }

    /// The finished event.
    pub fn finish(self, id: &RequestId, status: u16, now_ms: u64) -> Event {
        let caller = self.caller;
        Event {
            time: rfc3339_millis(now_ms),
            request_id: id.as_str().to_owned(),
            tenant: caller.as_ref().map(|c| c.tenant.clone()),
            subject: caller.as_ref().and_then(|c| c.subject.clone()),
            client: caller.and_then(|c| c.client),
            action: self.action,
            name: self.name,
            image: self.image,
            workload: self.workload,
            status,
            outcome: Verdict::of_status(status),
        }
    }
}

/// The audit of one request as an endpoint serves it: empty for calls that are not audited, so
/// handlers note what they learn without asking whether anyone listens.
#[derive(Debug, Default)]
pub struct Trail(Option<Audit>);

impl Trail {
    pub fn of(endpoint: &Endpoint) -> Trail {
        Trail(Audit::start(endpoint))
    }

    /// The trail of an action outside the API's route table (the console's sign-in and sign-out).
    pub fn for_action(action: Action) -> Trail {
        Trail(Some(Audit { action, name: None, image: None, workload: None, caller: None }))
    }

    pub fn caller(&mut self, who: &Principal) {
        if let Some(audit) = &mut self.0 {
            audit.caller(who);
        }
    }

    pub fn name(&mut self, candidate: &str) {
        if let Some(audit) = &mut self.0 {
            audit.name(candidate);
        }
    }

    pub fn image(&mut self, image: String) {
        if let Some(audit) = &mut self.0 {
            audit.image(image);
        }
    }

    pub fn workload(&mut self, subject: String) {
        if let Some(audit) = &mut self.0 {
            audit.workload(subject);
        }
    }

    pub fn finish(self, id: &RequestId, status: u16, now_ms: u64) -> Option<Event> {
        self.0.map(|audit| audit.finish(id, status, now_ms))
    }
}

/// One audit line. Absent values are `null`, so every line has the same keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    pub request_id: String,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub client: Option<String>,
    pub action: Action,
    pub name: Option<String>,
    pub image: Option<String>,
    pub workload: Option<String>,
    pub status: u16,
    pub outcome: Verdict,
}

impl Event {
    /// The JSON object and its `\n`, ready for a single write; at most [`MAX_LINE_BYTES`].
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("audit events serialize");
        line.push('\n');
        debug_assert!(line.len() <= MAX_LINE_BYTES, "audit line of {} bytes", line.len());
        line
    }
}

fn bounded(value: &str) -> String {
    value.chars().take(MAX_CLAIM_CHARS).collect()
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-30T23:05:00.123Z`.
fn rfc3339_millis(unix_ms: u64) -> String {
    let seconds = rfc3339(unix_ms);
    format!("{}.{:03}Z", seconds.trim_end_matches('Z'), unix_ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Scopes;

    fn principal(subject: Option<&str>, client: Option<&str>) -> Principal {
        Principal {
            tenant: TenantId::parse("acme").unwrap(),
            scopes: Scopes::empty(),
            subject: subject.map(str::to_owned),
            client: client.map(str::to_owned),
        }
    }

    fn id() -> RequestId {
        let mut headers = http::HeaderMap::new();
        headers.insert(crate::request_id::REQUEST_ID, http::HeaderValue::from_static("req-1"));
        RequestId::of(&headers)
    }

    #[test]
    fn changes_and_credential_reads_are_audited_metadata_reads_are_not() {
        let name = || "hub".to_string();
        let tenant = || "acme".to_string();
        let cases = [
            (Endpoint::CreateSecret, Some(Action::SecretCreate)),
            (Endpoint::ModifySecret { name: name() }, Some(Action::SecretModify)),
            (Endpoint::DeleteSecret { name: name() }, Some(Action::SecretDelete)),
            (Endpoint::ExportCredentials { name: name() }, Some(Action::SecretExport)),
            (Endpoint::VerifySecret { name: name() }, Some(Action::SecretVerify)),
            (Endpoint::ResolveCredentials, Some(Action::SecretResolve)),
            (Endpoint::SetWorkloadIdentity, Some(Action::WorkloadSet)),
            (Endpoint::GetWorkloadIdentity, None),
            (Endpoint::SetTenantQuota { tenant: tenant() }, Some(Action::QuotaSet)),
            (Endpoint::ReencryptTenant { tenant: tenant() }, Some(Action::TenantReencrypt)),
            (Endpoint::ListSecrets, None),
            (Endpoint::GetSecret { name: name() }, None),
            (Endpoint::ResourceQuota, None),
            (Endpoint::GetTenantQuota { tenant: tenant() }, None),
        ];
        for (endpoint, action) in cases {
            assert_eq!(endpoint.audit_action(), action, "{endpoint:?}");
        }
    }

    #[test]
    fn a_success_names_the_caller_the_action_and_the_secret() {
        let mut audit = Audit::start(&Endpoint::DeleteSecret { name: "hub".into() }).unwrap();
        audit.caller(&principal(Some("alice@example.com"), Some("console")));
        let line = audit.finish(&id(), 200, 1_795_370_399_123).line();
        assert_eq!(
            line,
            "{\"time\":\"2026-11-22T17:59:59.123Z\",\"requestId\":\"req-1\",\"tenant\":\"acme\",\
             \"subject\":\"alice@example.com\",\"client\":\"console\",\"action\":\"secret.delete\",\
             \"name\":\"hub\",\"image\":null,\"workload\":null,\"status\":200,\"outcome\":\"success\"}\n"
        );
    }

    #[test]
    fn an_unauthenticated_refusal_has_no_caller_and_outcomes_follow_the_status_class() {
        let audit = Audit::start(&Endpoint::ExportCredentials { name: "hub".into() }).unwrap();
        let event = audit.finish(&id(), 401, 0);
        assert_eq!((event.tenant, event.subject, event.client), (None, None, None));
        assert_eq!(event.outcome, Verdict::Refused);
        assert_eq!(event.name.as_deref(), Some("hub"));
        for (status, verdict) in [(201, Verdict::Success), (412, Verdict::Refused), (503, Verdict::Failed)] {
            assert_eq!(Verdict::of_status(status), verdict);
        }
    }

    #[test]
    fn operator_calls_name_the_tenant_acted_on_and_invalid_path_values_are_left_out() {
        let audit = Audit::start(&Endpoint::SetTenantQuota { tenant: "other-tenant".into() }).unwrap();
        assert_eq!(audit.finish(&id(), 200, 0).name.as_deref(), Some("other-tenant"));
        let audit = Audit::start(&Endpoint::DeleteSecret { name: "Not A Name\"}\n".into() }).unwrap();
        assert_eq!(audit.finish(&id(), 400, 0).name, None);
        let mut audit = Audit::start(&Endpoint::CreateSecret).unwrap();
        audit.name("from-the-body");
        assert_eq!(audit.clone().finish(&id(), 201, 0).name.as_deref(), Some("from-the-body"));
        audit.name("../../etc/passwd");
        assert_eq!(audit.finish(&id(), 400, 0).name.as_deref(), Some("from-the-body"), "invalid names are not kept");
    }

    #[test]
    fn the_longest_possible_line_fits_one_wasi_write() {
        // Control characters escape to six bytes each: the worst case for token-supplied claims.
        let hostile = "\u{1}".repeat(10_000);
        let mut audit = Audit::start(&Endpoint::DeleteSecret { name: "a".repeat(253) }).unwrap();
        let longest_image =
            format!("{}/{}:{}@sha256:{}", "h".repeat(127), "p".repeat(127), "t".repeat(128), "f".repeat(193));
        audit.image(longest_image);
        audit.workload(format!("system:serviceaccount:{}:{}", "n".repeat(63), "s".repeat(253)));
        let mut who = principal(Some(hostile.as_str()), Some(hostile.as_str()));
        who.tenant = TenantId::parse(&"t".repeat(128)).unwrap();
        audit.caller(&who);
        let mut headers = http::HeaderMap::new();
        headers.insert(crate::request_id::REQUEST_ID, http::HeaderValue::from_str(&"r".repeat(128)).unwrap());
        let line = audit.finish(&RequestId::of(&headers), 503, u64::MAX / 1000).line();
        assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
        assert_eq!(line.matches('\n').count(), 1, "one line, its newline at the end");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["subject"].as_str().unwrap().chars().count(), MAX_CLAIM_CHARS);
    }
}
