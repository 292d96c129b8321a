//! Spin's AWS DynamoDB key-value store (`type = "aws_dynamo"`, key-value-aws, Spin 4.0.2), over
//! DynamoDB's JSON API with SigV4, sending the requests Spin's AWS SDK client sends:
//!
//! - one table for every store label (the label is ignored); an item is `PK` (S, the key) and
//!   `VAL` (B, the value); compare-and-swap adds a version `VER` (N);
//! - `get` is `GetItem` projecting `VAL`, `exists` is `GetItem` projecting `PK`, both with
//!   `ConsistentRead` as configured (`consistent_read`, default `false`: eventually consistent);
//! - `set` is `PutItem`, `delete` is `DeleteItem`, `get_keys` a `Scan` of the whole table projecting
//!   `PK` (following `LastEvaluatedKey`), `get_many` one `BatchGetItem` (only the keys found come
//!   back; more than 100 keys is DynamoDB's error), `set_many`/`delete_many` one `BatchWriteItem`
//!   (more than 25 is DynamoDB's error), each repeated for what comes back unprocessed;
//! - `increment` is a consistent `GetItem`, then a `TransactWriteItems` with one `Update`
//!   `SET #VAL = :new_val` conditioned on `#VAL = :old_val` (or `attribute_not_exists (#VAL)`):
//!   counters are decimal text in a binary attribute, and when another writer moved the counter
//!   in between, the transaction is cancelled (`ConditionalCheckFailed`) and the call fails,
//!   with no retry;
//! - errors reach the guest as `other(<text>)`, the text shaped as the AWS SDK's Debug form
//!   (`ServiceError(ServiceError { source: TransactionCanceledException(...) })`), naming the
//!   exception, its message and each cancellation reason's code.
//!
//! Credentials: `access_key` and `secret_key` (and `token`) from the runtime config, with its
//! `region`; else the environment as the SDK's default chain reads it (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, and the
//! endpoint `AWS_ENDPOINT_URL_DYNAMODB`/`AWS_ENDPOINT_URL`; the runtime config's `region` is then
//! not used, as in Spin). Profiles, SSO and instance metadata are not read.

use super::{KvError, KvResult, SwapError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PK: &str = "PK";
const VAL: &str = "VAL";
const VER: &str = "VER";

/// The `[key_value_store.<label>]` table with `type = "aws_dynamo"`, as Spin reads it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DynamoConfig {
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub token: Option<String>,
    pub region: String,
    pub consistent_read: Option<bool>,
    pub table: String,
}

#[derive(Clone)]
struct Credentials {
    access_key: String,
    secret_key: String,
    token: Option<String>,
}

pub struct DynamoKv {
    endpoint: url::Url,
    region: String,
    table: String,
    consistent_read: bool,
    credentials: Option<Credentials>,
    stale: Option<StaleReads>,
    pub(crate) calls: super::calls::Calls,
}

impl DynamoKv {
    /// As Spin's `make_store`: explicit credentials when both keys are given, else the
    /// environment (`env` stands for the process environment).
    pub fn new(config: &DynamoConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<DynamoKv> {
        let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
        let (credentials, region, endpoint) = match (&config.access_key, &config.secret_key) {
            (Some(access_key), Some(secret_key)) => (
                Some(Credentials {
                    access_key: access_key.clone(),
                    secret_key: secret_key.clone(),
                    token: config.token.clone(),
                }),
                config.region.clone(),
                None,
            ),
            _ => {
                let credentials = match (from_env("AWS_ACCESS_KEY_ID"), from_env("AWS_SECRET_ACCESS_KEY")) {
                    (Some(access_key), Some(secret_key)) => {
                        Some(Credentials { access_key, secret_key, token: from_env("AWS_SESSION_TOKEN") })
                    }
                    _ => None,
                };
                // Without a region in the environment the SDK fails every call; so does the host.
                let region = from_env("AWS_REGION").or_else(|| from_env("AWS_DEFAULT_REGION")).unwrap_or_default();
                (credentials, region, from_env("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| from_env("AWS_ENDPOINT_URL")))
            }
        };
        let endpoint = match endpoint {
            Some(url) => url::Url::parse(&url)?,
            None => url::Url::parse(&format!("https://dynamodb.{region}.amazonaws.com"))?,
        };
        let consistent_read = config.consistent_read.unwrap_or(false);
        Ok(DynamoKv {
            endpoint,
            region,
            table: config.table.clone(),
            consistent_read,
            credentials,
            stale: (!consistent_read).then(StaleReads::default),
            calls: Default::default(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn consistent_read(&self) -> bool {
        self.consistent_read
    }

    /// One call of DynamoDB's JSON API: `Ok` with the answer's JSON, or the error text the guest
    /// gets. Counted in [`DynamoKv::calls`] as `dynamodb:<operation>` with the capacity units it
    /// consumed, unless it is the harness's own (a table's creation, a dump).
    async fn call(&self, operation: &str, body: Value) -> KvResult<Value> {
        self.call_counted(operation, body, true).await
    }

    async fn call_counted(&self, operation: &str, body: Value, counted: bool) -> KvResult<Value> {
        let request = serde_json::to_vec(&body).map_err(super::other)?;
        let result = match self.send(operation, request).await {
            Err(e) => Err(KvError::Other(format!(
                "DispatchFailure(DispatchFailure {{ source: ConnectorError {{ kind: Io, source: {e:?} }} }})"
            ))),
            Ok((status, answer)) => {
                let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                if status == 200 {
                    Ok(value)
                } else {
                    Err(KvError::Other(service_error(status, &value)))
                }
            }
        };
        if counted {
            use super::calls::Outcome;
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(KvError::Other(m)) if m.contains("TransactionCanceledException") => Outcome::Contended,
                Err(_) => Outcome::Failed,
            };
            let (read, write) = capacity(operation, &body, result.as_ref().ok());
            self.calls.add(&format!("dynamodb:{operation}"), String::new(), outcome, read, write);
        }
        result
    }

    async fn send(&self, operation: &str, body: Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
        let host = self.endpoint.host_str().ok_or_else(|| anyhow::anyhow!("endpoint without a host"))?.to_owned();
        let port = self.endpoint.port_or_known_default().unwrap_or(443);
        let authority = match self.endpoint.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut request = http::Request::builder()
            .method("POST")
            .uri(self.endpoint.as_str())
            .header("host", &authority)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"));
        if let Some(credentials) = &self.credentials {
            for (name, value) in sign(credentials, &self.region, &authority, operation, &body, SystemTime::now()) {
                request = request.header(name, value);
            }
        }
        let request = request.body(Full::new(bytes::Bytes::from(body)))?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let response = if self.endpoint.scheme() == "https" {
            let config = crate::client_tls::default_client_config()?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
            exchange(tls, request).await?
        } else {
            exchange(tcp, request).await?
        };
        Ok(response)
    }

    fn key(key: &str) -> Value {
        json!({ PK: { "S": key } })
    }

    async fn get_item(&self, key: &str, consistent: bool, projection: &str) -> KvResult<Option<Map<String, Value>>> {
        let answer = self
            .call(
                "GetItem",
                json!({
                    "TableName": self.table,
                    "Key": Self::key(key),
                    "ConsistentRead": consistent,
                    "ProjectionExpression": projection,
                }),
            )
            .await?;
        Ok(answer.get("Item").and_then(Value::as_object).cloned())
    }

    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        let item = self.get_item(key, self.consistent_read, VAL).await?;
        let value = item.as_ref().and_then(|item| binary(item.get(VAL)));
        Ok(match &self.stale {
            Some(stale) => stale.read(key, value),
            None => value,
        })
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        self.call("PutItem", json!({ "TableName": self.table, "Item": item(key, value) })).await?;
        self.wrote(key, Some(value.to_vec()));
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> KvResult<()> {
        self.call("DeleteItem", json!({ "TableName": self.table, "Key": Self::key(key) })).await?;
        self.wrote(key, None);
        Ok(())
    }

    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        let item = self.get_item(key, self.consistent_read, PK).await?;
        let present = item.is_some_and(|item| item.contains_key(PK));
        Ok(match &self.stale {
            Some(stale) => stale.read(key, present.then(Vec::new)).is_some(),
            None => present,
        })
    }

    pub async fn get_keys(&self) -> KvResult<Vec<String>> {
        Ok(self.scan(PK, true).await?.into_iter().map(|(k, _)| k).collect())
    }

    /// Every item's key and (when projected) value: a `Scan` of the whole table, page by page.
    async fn scan(&self, projection: &str, counted: bool) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let mut out = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({ "TableName": self.table, "ProjectionExpression": projection });
            if let Some(start) = start.take() {
                body["ExclusiveStartKey"] = start;
            }
            let answer = self.call_counted("Scan", body, counted).await?;
            for item in answer.get("Items").and_then(Value::as_array).into_iter().flatten() {
                if let Some(pk) = item.get(PK).and_then(|v| v.get("S")).and_then(Value::as_str) {
                    out.push((pk.to_owned(), binary(item.get(VAL))));
                }
            }
            match answer.get("LastEvaluatedKey") {
                Some(last) if !last.is_null() => start = Some(last.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Every item of the table, for tests that check what a request left behind.
    pub async fn dump(&self) -> KvResult<Vec<(String, Vec<u8>)>> {
        let mut rows: Vec<_> = self
            .scan(&format!("{PK},{VAL}"), false)
            .await?
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        rows.sort();
        Ok(rows)
    }

    pub async fn get_many(&self, keys: Vec<String>) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let keys: Vec<Value> = keys.iter().map(|k| Self::key(k)).collect();
        let mut request = Some(json!({ self.table.clone(): {
            "Keys": keys,
            "ProjectionExpression": format!("{PK},{VAL}"),
            "ConsistentRead": self.consistent_read,
        }}));
        let mut out = Vec::new();
        while let Some(items) = request.take() {
            let answer = self.call("BatchGetItem", json!({ "RequestItems": items })).await?;
            let found = answer.get("Responses").and_then(|r| r.get(&self.table)).and_then(Value::as_array);
            for item in found.into_iter().flatten() {
                if let Some(pk) = item.get(PK).and_then(|v| v.get("S")).and_then(Value::as_str) {
                    out.push((pk.to_owned(), binary(item.get(VAL))));
                }
            }
            request = answer.get("UnprocessedKeys").filter(|u| u.as_object().is_some_and(|o| !o.is_empty())).cloned();
        }
        Ok(out)
    }

    async fn batch_write(&self, requests: Vec<Value>) -> KvResult<()> {
        let mut request = Some(json!({ self.table.clone(): requests }));
        while let Some(items) = request.take() {
            let answer = self.call("BatchWriteItem", json!({ "RequestItems": items })).await?;
            request = answer.get("UnprocessedItems").filter(|u| u.as_object().is_some_and(|o| !o.is_empty())).cloned();
        }
        Ok(())
    }

    pub async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        let requests = key_values.iter().map(|(k, v)| json!({ "PutRequest": { "Item": item(k, v) } })).collect();
        self.batch_write(requests).await?;
        for (k, v) in key_values {
            self.wrote(&k, Some(v));
        }
        Ok(())
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        let requests = keys.iter().map(|k| json!({ "DeleteRequest": { "Key": Self::key(k) } })).collect();
        self.batch_write(requests).await?;
        for k in keys {
            self.wrote(&k, None);
        }
        Ok(())
    }

    /// Spin's increment: a consistent read, then a write conditioned on what was read. It fails
    /// (`TransactionCanceledException`, `ConditionalCheckFailed`) when another writer moved the
    /// counter in between; Spin does not retry.
    pub async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let item = self.get_item(key, true, VAL).await?;
        let old = match item.as_ref().and_then(|item| binary(item.get(VAL))) {
            Some(bytes) => {
                Some(std::str::from_utf8(&bytes).map_err(super::other)?.parse::<i64>().map_err(super::other)?)
            }
            None => None,
        };
        let new = old.unwrap_or(0) + delta;
        let mut update = json!({
            "TableName": self.table,
            "Key": Self::key(key),
            "UpdateExpression": "SET #VAL = :new_val",
            "ExpressionAttributeNames": { "#VAL": VAL },
            "ExpressionAttributeValues": { ":new_val": { "B": B64.encode(new.to_string()) } },
        });
        match old {
            Some(old) => {
                update["ConditionExpression"] = json!("#VAL = :old_val");
                update["ExpressionAttributeValues"][":old_val"] = json!({ "B": B64.encode(old.to_string()) });
            }
            None => update["ConditionExpression"] = json!("attribute_not_exists (#VAL)"),
        }
        self.transact(update).await?;
        self.wrote(key, Some(new.to_string().into_bytes()));
        Ok(new)
    }

    /// One `TransactWriteItems` with one `Update`, with a client request token as the SDK fills in.
    async fn transact(&self, update: Value) -> KvResult<Value> {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(super::other)?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        self.call("TransactWriteItems", json!({ "TransactItems": [{ "Update": update }], "ClientRequestToken": token }))
            .await
    }

    pub fn new_cas(&self, key: &str) -> DynamoCas {
        DynamoCas { key: key.to_owned(), state: CasState::Unknown }
    }

    /// Spin's `current`: a consistent read of the value and its version.
    pub async fn cas_current(&self, cas: &mut DynamoCas) -> KvResult<Option<Vec<u8>>> {
        let item = self.get_item(&cas.key, true, &format!("{VAL},{VER}")).await?;
        let (value, state) = match item {
            Some(item) => match (binary(item.get(VAL)), item.get(VER).and_then(|v| v.get("N")).and_then(Value::as_str))
            {
                (Some(value), Some(version)) => (Some(value), CasState::Versioned(version.to_owned())),
                (Some(value), None) => (Some(value.clone()), CasState::Unversioned(value)),
                (None, _) => (None, CasState::Unset),
            },
            None => (None, CasState::Unset),
        };
        cas.state = state;
        Ok(value)
    }

    /// Spin's `swap`: a versioned conditional update; any failure is `cas-failed`.
    pub async fn cas_swap(&self, cas: &DynamoCas, value: Vec<u8>) -> Result<(), SwapError> {
        let mut update = json!({
            "TableName": self.table,
            "Key": Self::key(&cas.key),
            "UpdateExpression": "SET #VAL = :val ADD #VER :increment",
            "ExpressionAttributeNames": { "#VAL": VAL, "#VER": VER },
            "ExpressionAttributeValues": { ":val": { "B": B64.encode(&value) }, ":increment": { "N": "1" } },
        });
        match &cas.state {
            CasState::Versioned(version) => {
                update["ConditionExpression"] = json!("#VER = :ver");
                update["ExpressionAttributeValues"][":ver"] = json!({ "N": version });
            }
            CasState::Unversioned(old) => {
                update["ConditionExpression"] = json!("#VAL = :old_val");
                update["ExpressionAttributeValues"][":old_val"] = json!({ "B": B64.encode(old) });
            }
            CasState::Unset => update["ConditionExpression"] = json!("attribute_not_exists (#VAL)"),
            CasState::Unknown => {}
        }
        self.transact(update).await.map_err(|e| match e {
            KvError::Other(m) => SwapError::CasFailed(m),
            other => SwapError::CasFailed(format!("{other:?}")),
        })?;
        self.wrote(&cas.key, Some(value));
        Ok(())
    }

    fn wrote(&self, key: &str, value: Option<Vec<u8>>) {
        if let Some(stale) = &self.stale {
            stale.wrote(key, value);
        }
    }

    /// Creates the table as `docs/deployment.md` defines it (key `PK`, a string; on-demand
    /// capacity), unless it exists. Spin never creates tables; tests and `testhost` do.
    pub async fn create_table(&self) -> KvResult<()> {
        let created = self
            .call_counted(
                "CreateTable",
                json!({
                    "TableName": self.table,
                    "AttributeDefinitions": [{ "AttributeName": PK, "AttributeType": "S" }],
                    "KeySchema": [{ "AttributeName": PK, "KeyType": "HASH" }],
                    "BillingMode": "PAY_PER_REQUEST",
                }),
                false,
            )
            .await;
        match created {
            Err(KvError::Other(m)) if m.contains("ResourceInUseException") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// What Spin's `current` learned, for its `swap`'s condition.
#[derive(Debug, Clone)]
enum CasState {
    Versioned(String),
    Unversioned(Vec<u8>),
    Unset,
    Unknown,
}

pub struct DynamoCas {
    pub(crate) key: String,
    state: CasState,
}

/// Eventually consistent reads (`consistent_read = false`): DynamoDB may answer a read with a
/// value older than the last acknowledged write for up to about a second. The server the host
/// talks to (moto) always answers with the latest, so the host makes reads stale itself: for
/// [`StaleReads::WINDOW`] after this host changed a key, a read of it answers the value before
/// the change, the worst DynamoDB allows. (Changes made by other hosts are not tracked.)
#[derive(Default)]
struct StaleReads {
    changes: Mutex<BTreeMap<String, Change>>,
}

/// When a key last changed through this host, its value at the start of that window, and now.
type Change = (Instant, Option<Vec<u8>>, Option<Vec<u8>>);

impl StaleReads {
    const WINDOW: Duration = Duration::from_millis(1000);

    /// `value` is what the server answered; the answer is the previous value while the last
    /// change is recent.
    fn read(&self, key: &str, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let mut changes = self.changes.lock().unwrap();
        changes.retain(|_, (at, _, _)| at.elapsed() < Self::WINDOW);
        match changes.get(key) {
            Some((_, before, after)) if *after == value => before.clone(),
            _ => value,
        }
    }

    fn wrote(&self, key: &str, value: Option<Vec<u8>>) {
        let mut changes = self.changes.lock().unwrap();
        let before = match changes.remove(key) {
            // Still within the window: a reader may see the oldest value of the window.
            Some((at, before, _)) if at.elapsed() < Self::WINDOW => before,
            Some((_, _, after)) => after,
            None => None,
        };
        changes.insert(key.to_owned(), (Instant::now(), before, value));
    }
}

/// The read and write capacity units DynamoDB bills for one request (see
/// [`super::calls::Tally`]), from what the host sent and got back: an item's size is its
/// attributes' names and values; an item read but not found costs one unit, as does a delete (the
/// deleted item's size is not seen). A `Scan` is billed by the size of what it read, here only the
/// keys it returned: an underestimate (it reads whole items).
fn capacity(operation: &str, body: &Value, answer: Option<&Value>) -> (f64, f64) {
    use super::calls::units;
    let reads = |consistent: bool, sizes: &mut dyn Iterator<Item = usize>| {
        let factor = if consistent { 1.0 } else { 0.5 };
        sizes.map(|size| units(size, 4096) * factor).sum::<f64>()
    };
    let consistent = |b: &Value| b.get("ConsistentRead").and_then(Value::as_bool).unwrap_or(false);
    match operation {
        "GetItem" => {
            let size = answer.and_then(|a| a.get("Item")).map_or(0, item_size);
            (reads(consistent(body), &mut std::iter::once(size)), 0.0)
        }
        "BatchGetItem" => {
            let mut total = 0.0;
            for (table, request) in body["RequestItems"].as_object().into_iter().flatten() {
                let asked = request["Keys"].as_array().map_or(0, Vec::len);
                let found: Vec<usize> = answer
                    .and_then(|a| a["Responses"][table].as_array())
                    .map(|items| items.iter().map(item_size).collect())
                    .unwrap_or_default();
                let missing = asked.saturating_sub(found.len());
                let sizes = found.into_iter().chain(std::iter::repeat_n(0, missing));
                total += reads(consistent(request), &mut sizes.into_iter());
            }
            (total, 0.0)
        }
        "Scan" => {
            let size: usize = answer.and_then(|a| a["Items"].as_array()).map_or(0, |i| i.iter().map(item_size).sum());
            (reads(consistent(body), &mut std::iter::once(size)), 0.0)
        }
        "PutItem" => (0.0, units(item_size(&body["Item"]), 1024)),
        "DeleteItem" => (0.0, 1.0),
        "BatchWriteItem" => {
            let requests =
                body["RequestItems"].as_object().into_iter().flatten().flat_map(|(_, r)| r.as_array()).flatten();
            let write = requests
                .map(|r| match r.get("PutRequest") {
                    Some(put) => units(item_size(&put["Item"]), 1024),
                    None => 1.0,
                })
                .sum();
            (0.0, write)
        }
        "TransactWriteItems" => {
            let items = body["TransactItems"].as_array().into_iter().flatten();
            let write = items
                .map(|i| {
                    let update = &i["Update"];
                    let value = &update["ExpressionAttributeValues"][":new_val"];
                    let size = item_size(&update["Key"]) + VAL.len() + attribute_size(value);
                    2.0 * units(size, 1024)
                })
                .sum();
            (0.0, write)
        }
        _ => (0.0, 0.0),
    }
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |attributes| attributes.iter().map(|(name, v)| name.len() + attribute_size(v)).sum())
}

fn attribute_size(value: &Value) -> usize {
    match (value.get("S"), value.get("N"), value.get("B")) {
        (Some(s), _, _) | (_, Some(s), _) => s.as_str().map_or(0, str::len),
        (_, _, Some(b)) => b.as_str().map_or(0, |b| B64.decode(b).map_or(0, |d| d.len())),
        _ => 0,
    }
}

fn item(key: &str, value: &[u8]) -> Value {
    json!({ PK: { "S": key }, VAL: { "B": B64.encode(value) } })
}

fn binary(attribute: Option<&Value>) -> Option<Vec<u8>> {
    attribute.and_then(|v| v.get("B")).and_then(Value::as_str).and_then(|b| B64.decode(b).ok())
}

/// The text the guest gets for DynamoDB's error answer, shaped as the SDK's Debug form.
fn service_error(status: u16, answer: &Value) -> String {
    let kind = answer
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message = answer.get("message").or_else(|| answer.get("Message")).and_then(Value::as_str).unwrap_or("");
    let reasons = match answer.get("CancellationReasons").and_then(Value::as_array) {
        Some(reasons) => {
            let reasons: Vec<String> = reasons
                .iter()
                .map(|r| {
                    let code = r.get("Code").and_then(Value::as_str).unwrap_or("None");
                    let message = r.get("Message").and_then(Value::as_str).map(|m| format!("Some({m:?})"));
                    format!(
                        "CancellationReason {{ item: None, code: Some({code:?}), message: {} }}",
                        message.unwrap_or_else(|| "None".to_owned())
                    )
                })
                .collect();
            format!(", cancellation_reasons: Some([{}])", reasons.join(", "))
        }
        None => String::new(),
    };
    format!(
        "ServiceError(ServiceError {{ source: {kind}({kind} {{ message: Some({message:?}){reasons}, \
         meta: ErrorMetadata {{ code: Some({kind:?}) }} }}), raw: Response {{ status: {status} }} }})"
    )
}

async fn exchange<S>(stream: S, request: http::Request<Full<bytes::Bytes>>) -> anyhow::Result<(u16, Vec<u8>)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    driver.abort();
    Ok((status, body))
}

/// SigV4 headers for one DynamoDB call (service `dynamodb`, the signed headers the SDK signs).
fn sign(
    credentials: &Credentials,
    region: &str,
    host: &str,
    operation: &str,
    body: &[u8],
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let (date, amz_date) = amz_dates(now);
    let target = format!("DynamoDB_20120810.{operation}");
    let payload_hash = hex(&Sha256::digest(body));
    let mut headers = vec![
        ("content-type", "application/x-amz-json-1.0".to_owned()),
        ("host", host.to_owned()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &credentials.token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.push(("x-amz-target", target));
    let signed_headers = headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
    let canonical_request = format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let scope = format!("{date}/{region}/dynamodb/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical_request)));
    let mut key = hmac(format!("AWS4{}", credentials.secret_key).as_bytes(), date.as_bytes());
    for part in [region, "dynamodb", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let mut out = vec![
        ("x-amz-date", amz_date),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                credentials.access_key
            ),
        ),
    ];
    if let Some(token) = &credentials.token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` in UTC.
fn amz_dates(now: SystemTime) -> (String, String) {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    (date.clone(), format!("{date}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(amz_dates(UNIX_EPOCH), ("19700101".into(), "19700101T000000Z".into()));
        let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // AWS's SigV4 example moment
        assert_eq!(amz_dates(t), ("20150830".into(), "20150830T123600Z".into()));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399); // 2000-02-29 23:59:59
        assert_eq!(amz_dates(leap).1, "20000229T235959Z");
    }

    #[test]
    fn the_signing_key_and_signature_follow_sigv4() {
        // AWS's documented derivation example: secret, 20150830, us-east-1, iam.
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        assert_eq!(hex(&key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
        let credentials = Credentials { access_key: "AKID".into(), secret_key: "s".into(), token: Some("t".into()) };
        let headers = sign(&credentials, "eu-west-1", "h:1", "GetItem", b"{}", UNIX_EPOCH);
        let auth = &headers.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/19700101/eu-west-1/dynamodb/aws4_request, "));
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"));
        assert!(headers.iter().any(|(n, v)| *n == "x-amz-security-token" && v == "t"));
    }

    #[test]
    fn a_cancelled_transaction_reads_as_the_sdk_shows_it() {
        let answer = json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed]",
            "CancellationReasons": [{ "Code": "ConditionalCheckFailed", "Message": "The conditional request failed" }],
        });
        let text = service_error(400, &answer);
        assert!(text.starts_with("ServiceError(ServiceError { source: TransactionCanceledException("), "{text}");
        assert!(text.contains("code: Some(\"ConditionalCheckFailed\")"), "{text}");
    }

    #[test]
    fn eventually_consistent_reads_answer_the_previous_value_for_a_while() {
        let stale = StaleReads::default();
        stale.wrote("k", Some(b"1".to_vec()));
        assert_eq!(stale.read("k", Some(b"1".to_vec())), None, "a fresh key may still read as absent");
        stale.wrote("k", Some(b"2".to_vec()));
        assert_eq!(stale.read("k", Some(b"2".to_vec())), None, "the oldest value of the window");
        assert_eq!(stale.read("other", Some(b"x".to_vec())), Some(b"x".to_vec()));
        assert_eq!(stale.read("k", Some(b"3".to_vec())), Some(b"3".to_vec()), "another host's write: as served");
    }

    fn moto_config() -> Option<(DynamoConfig, BTreeMap<String, String>)> {
        let url = std::env::var("REGSECRETS_DYNAMO_URL").ok().filter(|u| !u.is_empty())?;
        let table = format!("host-test-{}", std::process::id());
        let config = DynamoConfig {
            access_key: None,
            secret_key: None,
            token: None,
            region: "ignored-in-environmental-mode".into(),
            consistent_read: Some(true),
            table,
        };
        let env = BTreeMap::from([
            ("AWS_ENDPOINT_URL".to_owned(), url),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ]);
        Some((config, env))
    }

    /// Runs against a DynamoDB endpoint only when REGSECRETS_DYNAMO_URL is set (.ci/run starts moto).
    #[tokio::test(flavor = "multi_thread")]
    async fn dynamo_semantics_match_spin() {
        let Some((config, env)) = moto_config() else {
            eprintln!("note: REGSECRETS_DYNAMO_URL is unset; skipping the DynamoDB backend test");
            return;
        };
        let kv = DynamoKv::new(&config, &|k| env.get(k).cloned()).unwrap();
        kv.create_table().await.unwrap();
        kv.set("a", b"1").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(kv.exists("a").await.unwrap());
        assert!(!kv.exists("nope").await.unwrap());
        assert_eq!(kv.increment("n", 5).await.unwrap(), 5);
        assert_eq!(kv.increment("n", 2).await.unwrap(), 7);
        assert_eq!(kv.get("n").await.unwrap(), Some(b"7".to_vec()), "counters are decimal text");
        assert!(kv.increment("a", 1).await.is_ok(), "\"1\" is a counter too");
        kv.set("t", b"text").await.unwrap();
        assert!(kv.increment("t", 1).await.is_err());
        let mut keys = kv.get_keys().await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["a", "n", "t"]);
        kv.set_many(vec![("b".into(), b"2".to_vec()), ("c".into(), b"3".to_vec())]).await.unwrap();
        let mut many = kv.get_many(vec!["b".into(), "c".into(), "absent".into()]).await.unwrap();
        many.sort();
        assert_eq!(many, vec![("b".into(), Some(b"2".to_vec())), ("c".into(), Some(b"3".to_vec()))], "found keys only");
        kv.delete_many(vec!["b".into(), "c".into()]).await.unwrap();
        kv.delete("t").await.unwrap();
        assert!(!kv.exists("b").await.unwrap());

        let mut cas = kv.new_cas("k");
        assert_eq!(kv.cas_current(&mut cas).await.unwrap(), None);
        kv.cas_swap(&cas, b"v".to_vec()).await.unwrap();
        let swapped_again = kv.cas_swap(&cas, b"w".to_vec()).await;
        assert!(matches!(swapped_again, Err(SwapError::CasFailed(_))), "{swapped_again:?}");
        assert_eq!(kv.get("k").await.unwrap(), Some(b"v".to_vec()));

        // Another writer moves the counter between increment's read and its write: the write is refused.
        let moved = kv.get_item("n", true, VAL).await.unwrap();
        assert_eq!(moved.as_ref().and_then(|i| binary(i.get(VAL))), Some(b"7".to_vec()));
        kv.set("n", b"9").await.unwrap();
        let stale = json!({
            "TableName": kv.table, "Key": DynamoKv::key("n"), "UpdateExpression": "SET #VAL = :new_val",
            "ConditionExpression": "#VAL = :old_val", "ExpressionAttributeNames": { "#VAL": VAL },
            "ExpressionAttributeValues": { ":new_val": { "B": B64.encode("8") }, ":old_val": { "B": B64.encode("7") } },
        });
        let refused = kv.transact(stale).await.unwrap_err();
        let KvError::Other(text) = refused else { panic!("{refused:?}") };
        assert!(text.contains("TransactionCanceledException") && text.contains("ConditionalCheckFailed"), "{text}");
        assert_eq!(kv.get("n").await.unwrap(), Some(b"9".to_vec()), "a cancelled transaction wrote nothing");

        // Many concurrent increments: some are refused, none is counted twice.
        let kv = Arc::new(kv);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.increment("race", 1).await })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await.unwrap() {
                won.push(v);
            }
        }
        let total = won.len() as i64;
        won.sort();
        won.dedup();
        assert_eq!(won.len() as i64, total, "every success has a value of its own");
        assert_eq!(kv.get("race").await.unwrap(), Some(total.to_string().into_bytes()));
        eprintln!("{total} of 16 concurrent increments succeeded");
    }
}
