//! Credentials at pull time: `GET /v2/pull/credentials?image=<ref>` answers the caller's tenant's
//! credentials that cover an image, matched as the kubelet matches `.dockerconfigjson` keys
//! ([`keyring`]), so a kubelet credential provider or a Docker credential helper can ask at the
//! moment of the pull instead of a copied pull secret. When several credentials match, the answer
//! ranks them ([`rank`]: the most specific pattern, then the last verification, then the most
//! recently modified), and each says why it comes before the next; a helper or a provider answers
//! the first.
//!
//! Store calls: the tenant's view (`get P:seq`, `get P:v:<S>`), then `get P:r:<record>` of each secret that can cover the image or
//! registry by its metadata (the hosts of its keys, found through the view's host index, so a
//! lookup parses only those secrets' lines and a secret of other registries is never decrypted),
//! or of every secret for `all=true` (through [`open_entry`]); a secret replaced
//! between the two reads is read again with the view ([`crate::reread`]: a few rounds, then 503
//! `TenantBusy`), so an answer never mixes a secret's old and new credentials. A secret that mints answers its
//! current minted credential (`mint::current`: `get P:mint:<record>`, and on a miss the mint
//! through `source`), keyed by the registries of its identity.

pub mod keyring;
pub mod rank;
pub mod reference;

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, Clock};
use crate::crypto::Keyring;
use crate::error::{Error, Internal};
use crate::identity::{Need, Principal};
use crate::index::IndexEntry;
use crate::mint::{self, Source};
use crate::provider::Identity;
use crate::reread;
use crate::secrets::{current, open_entry, Env};
use crate::store::KeyValue;

pub use reference::ImageRef;

/// How long a client may keep an answer (`cacheSeconds`): a rotated or revoked credential reaches
/// every node within this long of its change. The kubelet provider passes it on as its
/// `cacheDuration` (shortened to the lifetime of its own token).
pub const CACHE_SECONDS: u64 = 300;

/// What a call asks for: the query string, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `image=<ref>`: the keys that cover this image, as the kubelet matches them.
    Image(ImageRef),
    /// `registry=<host[:port]>` (or a server URL): every key on that registry, whatever its path;
    /// for a client that caches one answer per registry, and for Docker credential helpers.
    Registry(String),
    /// `all=true`: every key of every secret; for a client that caches one answer for all images.
    All,
}

const USAGE: &str = "Give exactly one of `image` (an image reference), `registry` (host[:port]) or `all=true`";

impl Selector {
    pub fn parse(query: Option<&str>) -> Result<Selector, Error> {
        let mut selector = None;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let parsed = match name.as_ref() {
                "image" => Selector::Image(ImageRef::parse(&value).map_err(Error::InvalidQuery)?),
                "registry" => Selector::Registry(reference::parse_registry(&value).map_err(Error::InvalidQuery)?),
                "all" if value.eq_ignore_ascii_case("true") => Selector::All,
                "all" => return Err(Error::InvalidQuery("`all` may only be true".into())),
                _ => return Err(Error::InvalidQuery(format!("Unknown query parameter. {USAGE}"))),
            };
            if selector.replace(parsed).is_some() {
                return Err(Error::InvalidQuery(USAGE.into()));
            }
        }
        selector.ok_or_else(|| Error::InvalidQuery(USAGE.into()))
    }

    /// What the audit line records: the parsed image or registry, re-written (never raw input),
    /// or `*` for all.
    pub fn audit_text(&self) -> String {
        match self {
            Selector::Image(image) => image.to_string(),
            Selector::Registry(registry) => registry.clone(),
            Selector::All => "*".into(),
        }
    }
}

/// One key's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolvedCredential {
    /// The secret that holds them.
    pub secret: String,
    /// Its key in the secret's `.dockerconfigjson` (e.g. `https://index.docker.io/v1/`).
    pub server: String,
    /// The kubelet's pattern for that key (e.g. `index.docker.io`, `registry.example.com:5000/team`):
    /// a credential provider answers `auth` keyed by it.
    #[serde(rename = "match")]
    pub pattern: String,
    pub username: String,
    pub password: String,
    /// Base64 of `username:password`.
    pub auth: String,
    /// Where it stands among the matches, and why.
    pub rank: Rank,
}

/// What decided a credential's place in the answer: after its pattern (`match`), its secret's last
/// verification and when the secret was last modified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rank {
    /// The secret's last verification: `verified`, `unchecked` (never verified since its
    /// credentials were set) or `failed`.
    pub verification: rank::Standing,
    /// When the secret was last modified (RFC 3339).
    pub modified_at: String,
    /// Why this credential comes before the next one of the answer; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<rank::Reason>,
}

/// The answer: the credentials that apply, ranked (the most specific pattern first; among equal
/// patterns a verified secret first, then the most recently modified), and how long to keep them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resolved {
    /// The image asked for, normalised (`nginx` is `docker.io/library/nginx`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The registry asked for, normalised; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    pub cache_seconds: u64,
    pub credentials: Vec<ResolvedCredential>,
}

/// A stored `.dockerconfigjson` (`DockerConfig::to_dockerconfigjson`), as far as it is answered.
#[derive(Deserialize)]
struct Stored {
    auths: BTreeMap<String, StoredAuth>,
}

#[derive(Deserialize)]
struct StoredAuth {
    username: String,
    #[serde(default)]
    password: String,
}

impl Selector {
    /// The registry (`host[:port]`) the answer is about; `None` for all.
    fn registry(&self) -> Option<&str> {
        match self {
            Selector::Image(image) => Some(&image.registry),
            Selector::Registry(registry) => Some(registry),
            Selector::All => None,
        }
    }
}

/// Whether a secret may hold a key for the registry, by its metadata (`host[:port]` of each key,
/// Docker Hub's as `docker.io`): a host pattern that matches the registry's host and port.
fn may_cover(entry: &IndexEntry, registry: Option<&str>) -> bool {
    registry.is_none_or(|registry| entry.registries.iter().any(|host| keyring::matches(host, registry)))
}

/// Every key of every secret that may cover the registry, with the pattern it is matched by, and
/// its secret's `modified` (for the order, [`rank`]).
fn candidates<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    registry: Option<&str>,
    source: &Source,
) -> Result<Vec<(ResolvedCredential, u64)>, Error> {
    reread::settled(env.clock, || {
        let view = current(env, &who.tenant)?.view;
        // Through the view's host index: only the secrets filed under the registry's host (and
        // those with a glob host) are parsed, whatever the tenant holds.
        let mut entries: Vec<IndexEntry> = match registry {
            Some(registry) => view.entries_on(registry)?,
            None => view.entries()?,
        };
        // By name, so that candidates equal on every rule of `rank` come in the same order.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut all = Vec::new();
        for entry in entries.iter().filter(|entry| may_cover(entry, registry)) {
            let Some(plain) = open_entry(env.store, keyring, &who.tenant, entry)? else { return Ok(None) };
            // The stored form was validated when written; only what is answered is read back (the
            // full parser would make this component a third larger).
            let stored: Stored = if entry.kind.is_static() {
                serde_json::from_slice(&plain).map_err(|_| Internal::CorruptRecord)?
            } else {
                let identity = Identity::from_document(&plain)?;
                let now_ms = env.clock.now_ms();
                let minted = mint::current(env.store, keyring, &who.tenant, entry, &identity, source, now_ms);
                let Some(minted) = reread::gone_is_a_lost_round(minted)? else { return Ok(None) };
                let auths = minted
                    .logins
                    .into_iter()
                    .map(|l| (l.registry, StoredAuth { username: l.username, password: l.password }));
                Stored { auths: auths.collect() }
            };
            for (server, auth) in stored.auths {
                let rank = Rank {
                    verification: rank::Standing::of(entry.verification),
                    modified_at: rfc3339(entry.modified),
                    reason: None,
                };
                let credential = ResolvedCredential {
                    secret: entry.name.clone(),
                    pattern: keyring::pattern(&server),
                    server,
                    auth: STANDARD.encode(format!("{}:{}", auth.username, auth.password)),
                    username: auth.username,
                    password: auth.password,
                    rank,
                };
                all.push((credential, entry.modified));
            }
        }
        Ok(Some(all))
    })
}

/// The caller's tenant's credentials the selector covers; `NoMatchingCredentials` (404) when none.
/// Secrets that mint are minted through `source` when nothing fresh is cached.
pub fn resolve<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    selector: &Selector,
    source: &Source,
) -> Result<Resolved, Error> {
    resolve_among(env, who, keyring, selector, None, source)
}

/// [`resolve`] among the named secrets only (those bound to a verified workload, `crate::workload`).
pub fn resolve_among<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    selector: &Selector,
    only: Option<&BTreeSet<String>>,
    source: &Source,
) -> Result<Resolved, Error> {
    who.require(Need::ReadCredentials)?;
    let mut all = candidates(env, who, keyring, selector.registry(), source)?;
    if let Some(names) = only {
        all.retain(|(c, _)| names.contains(&c.secret));
    }
    let patterns: Vec<String> = all.iter().map(|(c, _)| c.pattern.clone()).collect();
    let mut chosen: Vec<usize> = match selector {
        Selector::Image(image) => keyring::lookup(&patterns, &image.repository()),
        Selector::Registry(registry) => (0..all.len())
            .filter(|&i| {
                keyring::on_registry(&patterns[i], registry)
                    || (registry == reference::DOCKER_HUB && patterns[i] == keyring::DOCKER_HUB_PATTERN)
            })
            .collect(),
        Selector::All => (0..all.len()).collect(),
    };
    if chosen.is_empty() {
        return Err(Error::NoMatchingCredentials);
    }
    let ranked: Vec<rank::Candidate> = all
        .iter()
        .map(|(c, modified)| rank::Candidate {
            pattern: &c.pattern,
            standing: c.rank.verification,
            modified: *modified,
            secret: &c.secret,
        })
        .collect();
    rank::order(&ranked, &mut chosen);
    let reasons: Vec<rank::Reason> = chosen.windows(2).map(|w| rank::reason(&ranked[w[0]], &ranked[w[1]])).collect();
    drop(ranked);
    let mut all: Vec<Option<ResolvedCredential>> = all.into_iter().map(|(c, _)| Some(c)).collect();
    let credentials = chosen
        .iter()
        .enumerate()
        .filter_map(|(at, &i)| {
            let mut credential = all[i].take()?;
            credential.rank.reason = reasons.get(at).copied();
            Some(credential)
        })
        .collect();
    Ok(Resolved {
        image: match selector {
            Selector::Image(image) => Some(image.to_string()),
            _ => None,
        },
        registry: match selector {
            Selector::Registry(registry) => Some(registry.clone()),
            _ => None,
        },
        cache_seconds: CACHE_SECONDS,
        credentials,
    })
}

#[cfg(test)]
mod tests;
