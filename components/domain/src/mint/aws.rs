//! AWS ECR: `GetAuthorizationToken` (JSON 1.1 protocol) signed with SigV4, after STS `AssumeRole`
//! (query protocol) when the identity names a role. The answer holds one token per registry (each
//! base64 of `AWS:<password>`, for the registry of its `proxyEndpoint`); they last 12 hours.

use base64::Engine as _;
use url::Url;

use super::sigv4::{amz_date, Signer};
use super::{code_shown, failed, form, throttled, unusable, AwsEndpoint, Login, Minted, Providers};
use crate::error::Error;
use crate::net::{Fetched, Outgoing};
use crate::provider::AwsIdentity;

const PROVIDER: &str = "AWS";
/// How long ECR's authorization tokens last, as documented.
pub const TOKEN_LIFE_MS: u64 = 12 * 3600 * 1000;
pub const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// The endpoint of `service` (`api.ecr`, `sts`) in `region`: the operator's fixed `aws_endpoint_url`
/// for every service, else the regional endpoint under its domain (China's regions under
/// `amazonaws.com.cn` while the domain is the default).
pub fn endpoint(providers: &Providers, service: &str, region: &str) -> Url {
    let suffix = match &providers.endpoints.aws {
        AwsEndpoint::Fixed(url) => return url.clone(),
        AwsEndpoint::Regional { suffix } if suffix == "amazonaws.com" && region.starts_with("cn-") => {
            "amazonaws.com.cn"
        }
        AwsEndpoint::Regional { suffix } => suffix.as_str(),
    };
    Url::parse(&format!("https://{service}.{region}.{suffix}/")).expect("regions are validated")
}

fn host_header(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

struct Keys<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
}

/// A POST signed for `service`, with `x-amz-date` from the providers' clock.
fn signed_post(
    providers: &Providers,
    keys: &Keys,
    region: &str,
    service: &str,
    url: Url,
    mut headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Outgoing {
    headers.push(("host".into(), host_header(&url)));
    headers.push(("x-amz-date".into(), amz_date(providers.clock.now_ms())));
    if let Some(token) = keys.session_token {
        headers.push(("x-amz-security-token".into(), token.to_owned()));
    }
    let signer =
        Signer { access_key_id: keys.access_key_id, secret_access_key: keys.secret_access_key, region, service };
    let authorization = signer.authorization("POST", &url, &headers, &body);
    headers.retain(|(n, _)| n != "host");
    headers.push(("authorization".into(), authorization));
    Outgoing { method: "POST", url, headers, body }
}

/// What AWS's answer other than 200 means: its refusal in our words, or an outage (5xx, 429, a
/// throttling code) to retry.
fn refusal(answer: &Fetched, code: Option<&str>, action: &str) -> Error {
    // An outage, or a status no refusal comes with (a redirect): `failed` tells them apart.
    if answer.status >= 500 || answer.status == 429 || answer.status < 400 {
        return failed(PROVIDER, answer.status);
    }
    let code = code_shown(code).unwrap_or("");
    let bare = code.rsplit('#').next().unwrap_or(code);
    if bare.contains("Throttl") || bare == "RequestLimitExceeded" || bare == "ServiceUnavailable" {
        return throttled(PROVIDER);
    }
    let what = match bare {
        "UnrecognizedClientException" | "InvalidClientTokenId" => {
            "AWS does not know the access key: check `aws.accessKeyId` (and `aws.sessionToken` for temporary keys)"
                .to_owned()
        }
        "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignature" => {
            "AWS refused the request's signature: `aws.secretAccessKey` does not belong to `aws.accessKeyId`".to_owned()
        }
        "AccessDeniedException" | "AccessDenied" => format!(
            "AWS refused {action}: the identity lacks the permission; grant it `{action}`{}",
            if action == "sts:AssumeRole" {
                " on `aws.roleArn` (and the role's trust policy must allow it)"
            } else {
                ""
            }
        ),
        "ExpiredTokenException" | "ExpiredToken" => {
            "AWS says the temporary credentials have expired: give a current `aws.sessionToken` or a long-lived key"
                .to_owned()
        }
        "" => format!("AWS refused {action} (HTTP {})", answer.status),
        other => format!("AWS refused {action} ({other})"),
    };
    Error::ProviderRefused(what)
}

/// The JSON 1.1 protocol's error type (`__type` or `x-amzn-errortype`, either may carry a prefix).
fn json_error_code(answer: &Fetched) -> Option<String> {
    let from_body = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("__type").and_then(|t| t.as_str()).map(str::to_owned));
    from_body.or_else(|| answer.header("x-amzn-errortype").map(|v| v.split(':').next().unwrap_or(v).to_owned()))
}

/// The text of the first `<tag>…</tag>` of an XML answer (STS answers are flat enough for this).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

struct Assumed {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

fn assume_role(providers: &Providers, aws: &AwsIdentity, role_arn: &str) -> Result<Assumed, Error> {
    let keys = Keys {
        access_key_id: &aws.access_key_id,
        secret_access_key: &aws.secret_access_key,
        session_token: aws.session_token.as_deref(),
    };
    let body = form(&[
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", "regsecrets"),
        ("DurationSeconds", "3600"),
    ]);
    let headers = vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())];
    let request =
        signed_post(providers, &keys, &aws.region, "sts", endpoint(providers, "sts", &aws.region), headers, body);
    let answer = providers.send(PROVIDER, &request)?;
    let xml = String::from_utf8_lossy(&answer.body);
    if answer.status != 200 {
        return Err(refusal(&answer, xml_text(&xml, "Code"), "sts:AssumeRole"));
    }
    let field = |tag| xml_text(&xml, tag).filter(|v| !v.is_empty()).map(str::to_owned);
    match (field("AccessKeyId"), field("SecretAccessKey"), field("SessionToken")) {
        (Some(access_key_id), Some(secret_access_key), Some(session_token)) => {
            Ok(Assumed { access_key_id, secret_access_key, session_token })
        }
        _ => Err(unusable(PROVIDER, "sts:AssumeRole's answer holds no complete set of temporary credentials")),
    }
}

/// `GetAuthorizationToken` with the identity's keys (or the role's, when it names one).
pub fn mint(providers: &Providers, aws: &AwsIdentity) -> Result<Minted, Error> {
    let assumed = aws.role_arn.as_deref().map(|arn| assume_role(providers, aws, arn)).transpose()?;
    let keys = match &assumed {
        Some(a) => Keys {
            access_key_id: &a.access_key_id,
            secret_access_key: &a.secret_access_key,
            session_token: Some(&a.session_token),
        },
        None => Keys {
            access_key_id: &aws.access_key_id,
            secret_access_key: &aws.secret_access_key,
            session_token: aws.session_token.as_deref(),
        },
    };
    let body = if aws.registry_ids.is_empty() {
        b"{}".to_vec()
    } else {
        serde_json::to_vec(&serde_json::json!({ "registryIds": aws.registry_ids })).expect("serialises")
    };
    let headers =
        vec![("content-type".into(), "application/x-amz-json-1.1".into()), ("x-amz-target".into(), ECR_TARGET.into())];
    let url = endpoint(providers, "api.ecr", &aws.region);
    let request = signed_post(providers, &keys, &aws.region, "ecr", url, headers, body);
    let answer = providers.send(PROVIDER, &request)?;
    if answer.status != 200 {
        // AWS answers JSON here; IAM's refusals (and emulators) may come as the query protocol's XML.
        let code = json_error_code(&answer)
            .or_else(|| xml_text(&String::from_utf8_lossy(&answer.body), "Code").map(str::to_owned));
        return Err(refusal(&answer, code.as_deref(), "ecr:GetAuthorizationToken"));
    }
    read_token(providers, aws, &answer)
}

/// ECR's answer: one `authorizationData` item per registry, each with its own token (base64 of
/// `AWS:<password>`), endpoint and expiry. Each becomes that registry's login; every registry the
/// identity names (`registryIds`) must have one.
fn read_token(providers: &Providers, aws: &AwsIdentity, answer: &Fetched) -> Result<Minted, Error> {
    let unusable = |what: &str| unusable(PROVIDER, &format!("ecr:GetAuthorizationToken's answer {what}"));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| unusable("is not JSON"))?;
    let data = body
        .get("authorizationData")
        .and_then(|d| d.as_array())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| unusable("holds no authorizationData"))?;
    let mut logins: Vec<Login> = Vec::new();
    let mut expires_at = u64::MAX;
    for item in data {
        let token = item
            .get("authorizationToken")
            .and_then(|t| t.as_str())
            .ok_or_else(|| unusable("has an item without authorizationToken"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| unusable("has a token that is not base64 of text"))?;
        let (user, password) = decoded
            .split_once(':')
            .filter(|(user, password)| !user.is_empty() && !password.is_empty())
            .ok_or_else(|| unusable("has a token that is not user:password"))?;
        let endpoint = item
            .get("proxyEndpoint")
            .and_then(|e| e.as_str())
            .ok_or_else(|| unusable("has an item without proxyEndpoint"))?;
        let registry = Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .ok_or_else(|| unusable("has a proxyEndpoint that is not a URL"))?;
        if logins.iter().any(|l| l.registry == registry && (l.username != user || l.password != password)) {
            return Err(unusable("gives one registry two different tokens"));
        }
        logins.push(Login { registry, username: user.to_owned(), password: password.to_owned() });
        // JSON 1.1 timestamps are seconds since the epoch, with a fraction.
        let expires =
            item.get("expiresAt").and_then(|e| e.as_f64()).ok_or_else(|| unusable("has an item without expiresAt"))?;
        expires_at = expires_at.min((expires * 1000.0) as u64);
    }
    if let Some(missing) = aws.registry_hosts().into_iter().find(|host| logins.iter().all(|l| &l.registry != host)) {
        return Err(unusable(&format!("holds no token for {missing}, one of `aws.registryIds`")));
    }
    let now = providers.clock.now_ms();
    // An expiry that is not ahead (a skewed clock, or an emulator's fixed date) is not trusted:
    // ECR documents 12 hours, and the cache takes no more than that.
    if expires_at <= now || expires_at > now + TOKEN_LIFE_MS {
        expires_at = now + TOKEN_LIFE_MS;
    }
    Ok(Minted::per_registry(logins, now, expires_at))
}
