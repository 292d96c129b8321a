//! One function per endpoint: request in, response and log line out. Each Spin adapter calls
//! exactly one of these with its platform (store, clock, settings).

use http::header::{CACHE_CONTROL, ETAG, LOCATION};
use serde::Serialize;

use crate::audit::Trail;
use crate::check::LastCheck;
use crate::clock::Clock;
use crate::crypto::Keyring;
use crate::dockerconfig::{Credentials, DockerConfig, SecretRequest};
use crate::error::{Error, Internal};
use crate::http::{finish, header, json_body, Body, Outcome, Reply, Request, RequestId, JSON, JSON_OR_MERGE_PATCH};
use crate::identity::cache::{authenticate_cached, Lookup};
use crate::identity::discovery::Discovery;
use crate::identity::session;
use crate::identity::{unix_now, AuthSettings, Need, Principal};
use crate::index::{etag, IfMatch, SecretMetadata};
use crate::mint::{self, Minted, Providers, Source, MINT_PATH};
use crate::net::Sender;
use crate::paging::ListQuery;
use crate::quota::{self, SetQuota};
use crate::resolve::Selector;
use crate::routes::{resolve, Endpoint, SECRETS};
use crate::secrets::{self, Env};
use crate::store::KeyValue;
use crate::verify::{Outbound, CREDENTIAL_CHECK_PATH};
use crate::workload::WorkloadTrust;
use crate::{export, reencrypt, resolve, verify, workload};

/// What an endpoint gets from its component.
pub struct Context<'a, S: KeyValue, C: Clock> {
    pub env: Env<'a, S, C>,
    pub auth: &'a AuthSettings,
    /// Only the components that read or write credentials are given `encryption_keys`;
    /// a missing or malformed value is an error here, never a plaintext fallback.
    pub keyring: Option<&'a Result<Keyring, Error>>,
    /// Verifying credentials: the registries (the `verify` component) or the `verify` component.
    pub outbound: Option<Outbound<'a>>,
    /// The way to the issuers whose keys are discovered (`identity::discovery`); `None` in a
    /// component that has none (tokens of such issuers are then refused as misconfiguration).
    pub key_sender: Option<&'a dyn Sender>,
}

impl<S: KeyValue, C: Clock> Context<'_, S, C> {
    fn keyring(&self) -> Result<&Keyring, Error> {
        match self.keyring {
            Some(Ok(keyring)) => Ok(keyring),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Internal::Config("encryption_keys").into()),
        }
    }

    fn discovery(&self) -> Option<Discovery<'_>> {
        self.key_sender.map(|sender| Discovery {
            store: self.env.store,
            sender,
            clock: self.env.clock,
            stale_secs: self.auth.keys_stale_secs,
        })
    }

    /// Every call runs as its verified caller. The token may come from the verified-token cache
    /// (bounded by the token's times and by the freshness of the key set that verified it), and a
    /// newly verified one is remembered only once `answer` has succeeded, so a refused request
    /// still stores nothing.
    fn as_caller<R>(&self, request: &Request, answer: impl FnOnce(&Principal) -> Result<R, Error>) -> Result<R, Error> {
        let discovery = self.discovery();
        let authorization = header(request, "authorization");
        // Without a bearer token, the console's session cookie may name the caller (its record
        // holds what verifying the provider's access token concluded; `identity::session`).
        let console = session::Request { method: request.method(), headers: request.headers() };
        let from_session = authorization.is_none().then(|| session::caller(self.env.store, &console, unix_now()));
        let (who, lookup) = match from_session.flatten() {
            Some(found) => (found?, Lookup::Hit),
            None => authenticate_cached(self.env.store, authorization, self.auth, discovery.as_ref(), unix_now())?,
        };
        let reply = answer(&who)?;
        if let Lookup::Verified(Some(remember)) = lookup {
            remember.save(self.env.store);
        }
        Ok(reply)
    }
}

impl<S: KeyValue, C: Clock> Context<'_, S, C> {
    fn outbound(&self) -> Result<&Outbound<'_>, Error> {
        self.outbound.as_ref().ok_or_else(|| Internal::Platform("no outbound HTTP in this component").into())
    }

    /// With `?verify=true`, asks the `verify` component to check the credentials before anything
    /// is stored: a registry that does not accept them refuses the write (422).
    fn verify_first(&self, request: &Request, credentials: &Credentials) -> Result<Option<LastCheck>, Error> {
        if !verify::wants_verification(request.uri().query())? {
            return Ok(None);
        }
        let Credentials::Static(credentials) = credentials else {
            return Err(Error::InvalidQuery(
                "`verify=true` checks registry credentials as given; for a provider identity, create the secret, then POST …/{name}/verification".into(),
            ));
        };
        let credential = session::chained_credential(request.headers());
        let id = RequestId::of(request.headers());
        let checked = self.outbound()?.verify_component.check(&credential, id.as_str(), credentials)?;
        verify::run::accepted(checked, self.env.clock.now_ms()).map(Some)
    }
}

/// What a create, modify or delete answers: SAP's `{"id", "message"}`.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Done<'a> {
    /// The secret's name.
    pub id: &'a str,
    pub message: &'static str,
}

/// Runs `handle` with the endpoint the path names and its audit trail, and finishes the
/// response; an audited call gets its event whatever the answer (refusals are audited too).
fn serve<C: Clock>(
    clock: &C,
    request: &Request,
    handle: impl FnOnce(Endpoint, &mut Trail) -> Result<Reply, Error>,
) -> Outcome {
    let id = RequestId::of(request.headers());
    let mut trail = Trail::default();
    let result = resolve(request.method(), request.uri().path()).and_then(|endpoint| {
        trail = Trail::of(&endpoint);
        handle(endpoint, &mut trail)
    });
    let mut outcome = finish(result, &id, request.uri().path());
    outcome.audit = trail.finish(&id, outcome.response.status().as_u16(), clock.now_ms());
    outcome
}

fn if_match(request: &Request) -> Option<IfMatch> {
    header(request, "if-match").map(IfMatch::parse)
}

fn wrong_component() -> Error {
    // The gateway sent a request this component does not serve: a deployment fault.
    Internal::Platform("request routed to the wrong component").into()
}

pub fn create<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| {
        let Endpoint::CreateSecret = endpoint else { return Err(wrong_component()) };
        ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::WriteSecrets)?;
            let mut body = SecretRequest::from_json(json_body(request, JSON)?, true)?;
            body.verification = ctx.verify_first(request, &body.credentials)?;
            trail.name(body.name.as_deref().unwrap_or_default());
            let written = secrets::create(&ctx.env, who, ctx.keyring()?, body)?;
            let name = written.name.as_str();
            Ok(Reply::json(201, &Done { id: name, message: "Secret has been created" })
                .with_header(LOCATION, format!("{SECRETS}/{name}"))
                .with_header(ETAG, etag(written.version)))
        })
    })
}

pub fn modify<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| {
        let Endpoint::ModifySecret { name } = endpoint else { return Err(wrong_component()) };
        ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::WriteSecrets)?;
            let mut body = SecretRequest::from_json(json_body(request, JSON_OR_MERGE_PATCH)?, false)?;
            body.verification = ctx.verify_first(request, &body.credentials)?;
            let written = secrets::modify(&ctx.env, who, ctx.keyring()?, &name, body, if_match(request))?;
            Ok(Reply::json(200, &Done { id: written.name.as_str(), message: "Secret has been modified" })
                .with_header(ETAG, etag(written.version)))
        })
    })
}

pub fn delete<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| {
        let Endpoint::DeleteSecret { name } = endpoint else { return Err(wrong_component()) };
        ctx.as_caller(request, |who| {
            trail.caller(who);
            let deleted = secrets::delete(&ctx.env, who, &name, if_match(request))?;
            Ok(Reply::json(
                200,
                &Done { id: deleted.name.as_str(), message: "Docker Registry Secret has been deleted" },
            ))
        })
    })
}

/// List and get one: both read metadata only, so one component serves them.
pub fn read<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, _| match endpoint {
        Endpoint::ListSecrets => ctx.as_caller(request, |who| {
            let query = ListQuery::parse(request.uri().query())?;
            let mut page = secrets::list(&ctx.env, who, &query)?;
            for metadata in &mut page.resources {
                with_expiry(ctx, who, metadata)?;
            }
            Ok(Reply::json(200, &page))
        }),
        Endpoint::GetSecret { name } => ctx.as_caller(request, |who| {
            let mut metadata = secrets::get(&ctx.env, who, &name)?;
            with_expiry(ctx, who, &mut metadata)?;
            let tag = etag(metadata.version);
            Ok(Reply::json(200, &metadata).with_header(ETAG, tag))
        }),
        _ => Err(wrong_component()),
    })
}

/// For a secret that mints, when its current credential expires (from the mint cache: one more read
/// for such a secret only).
fn with_expiry<S: KeyValue, C: Clock>(
    ctx: &Context<S, C>,
    who: &Principal,
    metadata: &mut SecretMetadata,
) -> Result<(), Error> {
    if metadata.kind.is_static() {
        return Ok(());
    }
    let expiry = mint::cache::expiry(ctx.env.store, &who.tenant, metadata.record, ctx.env.clock.now_ms())?;
    metadata.expires_at = expiry.map(crate::clock::rfc3339);
    Ok(())
}

/// Where a read that meets a secret that mints has it minted: the `verify` component, as the caller.
fn mint_source<'a>(outbound: &'a Outbound<'a>, credential: &'a str, id: &'a RequestId) -> Source<'a> {
    Source::Component { component: outbound.mint_component, authorization: credential, request_id: id.as_str() }
}

/// The two calls that answer credentials to pullers: the export of one secret, and the lookup
/// of those that cover an image at pull time.
pub fn credentials<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| match endpoint {
        Endpoint::ExportCredentials { name } => ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::ReadCredentials)?;
            // A tenant that requires pod tokens at pull time: the export too, of a bound secret only.
            let pod_token = header(request, workload::WORKLOAD_TOKEN_HEADER);
            let scope = workload::pull_scope(&ctx.env, who, pod_token, ctx.discovery().as_ref(), unix_now())?;
            if let Some((workload, secrets)) = scope {
                trail.workload(workload.subject);
                if !secrets.contains(&name) {
                    return Err(Error::WorkloadNotPermitted(workload::WorkloadFailure::NotBound));
                }
            }
            let id = RequestId::of(request.headers());
            let credential = session::chained_credential(request.headers());
            let source = mint_source(ctx.outbound()?, &credential, &id);
            let manifest = export::export(&ctx.env, who, ctx.keyring()?, &name, &source)?;
            Ok(Reply::json(200, &manifest).with_header(CACHE_CONTROL, "no-store"))
        }),
        Endpoint::ResolveCredentials => ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::ReadCredentials)?;
            let selector = Selector::parse(request.uri().query())?;
            trail.image(selector.audit_text());
            let pod_token = header(request, workload::WORKLOAD_TOKEN_HEADER);
            let bound = match workload::pull_scope(&ctx.env, who, pod_token, ctx.discovery().as_ref(), unix_now())? {
                Some((workload, secrets)) => {
                    trail.workload(workload.subject);
                    Some(secrets)
                }
                None => None,
            };
            let id = RequestId::of(request.headers());
            let credential = session::chained_credential(request.headers());
            let source = mint_source(ctx.outbound()?, &credential, &id);
            let keyring = ctx.keyring()?;
            let resolved = resolve::resolve_among(&ctx.env, who, keyring, &selector, bound.as_ref(), &source)?;
            if let Some(first) = resolved.credentials.first() {
                trail.name(&first.secret);
            }
            Ok(Reply::json(200, &resolved).with_header(CACHE_CONTROL, "no-store"))
        }),
        _ => Err(wrong_component()),
    })
}

/// A tenant's workload-identity trust: read (viewer, admin) and replaced (admin).
pub fn workload<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| {
        match endpoint {
        Endpoint::GetWorkloadIdentity => {
            ctx.as_caller(request, |who| Ok(Reply::json(200, &workload::get(&ctx.env, who)?)))
        }
        Endpoint::SetWorkloadIdentity => ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::WriteSecrets)?;
            let body: WorkloadTrust = serde_json::from_value(json_body(request, JSON)?).map_err(|_| {
                Error::InvalidRequest(
                    "The body must be {\"issuers\": [{\"issuer\", \"audience\", \"jwks\"?}], \"bindings\": [{\"issuer\", \"subject\", \"secrets\"}]}".into(),
                )
            })?;
            Ok(Reply::json(200, &workload::put(&ctx.env, who, body)?))
        }),
        _ => Err(wrong_component()),
    }
    })
}

/// The quota reads share the reads' cheap path (the verified-token cache); setting a limit is a
/// write and verifies in full.
pub fn quota<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| match endpoint {
        Endpoint::ResourceQuota => ctx.as_caller(request, |who| {
            let quota_only = quota::quota_only(request.uri().query())?;
            Ok(Reply::json(200, &quota::resource_quota(&ctx.env, who, quota_only)?))
        }),
        Endpoint::GetTenantQuota { tenant } => {
            ctx.as_caller(request, |who| Ok(Reply::json(200, &quota::get_tenant_quota(&ctx.env, who, &tenant)?)))
        }
        Endpoint::SetTenantQuota { tenant } => ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::Operate)?;
            let body: SetQuota = serde_json::from_value(json_body(request, JSON)?).map_err(|_| {
                Error::InvalidQuota(format!("The body must be {{\"limit\": N}} with N from 0 to {}", quota::MAX_LIMIT))
            })?;
            Ok(Reply::json(200, &quota::set_tenant_quota(&ctx.env, who, &tenant, body)?))
        }),
        _ => Err(wrong_component()),
    })
}

pub fn reencrypt<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    serve(ctx.env.clock, request, |endpoint, trail| {
        let Endpoint::ReencryptTenant { tenant } = endpoint else { return Err(wrong_component()) };
        ctx.as_caller(request, |who| {
            trail.caller(who);
            Ok(Reply::json(200, &reencrypt::reencrypt(&ctx.env, who, ctx.keyring()?, &tenant)?))
        })
    })
}

/// `POST …/{name}/verification`, and the check of not yet stored credentials that create and patch
/// ask for on [`CREDENTIAL_CHECK_PATH`] (service chaining only: the gateway never routes it).
pub fn verify<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Outcome {
    if request.uri().path() == CREDENTIAL_CHECK_PATH {
        let id = RequestId::of(request.headers());
        return finish(check_credentials(ctx, request), &id, CREDENTIAL_CHECK_PATH);
    }
    if request.uri().path() == MINT_PATH {
        let id = RequestId::of(request.headers());
        return finish(mint_for_export(ctx, request), &id, MINT_PATH);
    }
    serve(ctx.env.clock, request, |endpoint, trail| {
        let Endpoint::VerifySecret { name } = endpoint else { return Err(wrong_component()) };
        ctx.as_caller(request, |who| {
            trail.caller(who);
            who.require(Need::WriteSecrets)?;
            let body: verify::VerifyRequest = match request.body() {
                Body::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Default::default(),
                _ => serde_json::from_value(json_body(request, JSON)?).map_err(|_| {
                    Error::InvalidRequest("The body must be empty or {\"repository\": \"org/app\"}".into())
                })?,
            };
            let repository = body.repository()?;
            let outbound = ctx.outbound()?;
            let checker =
                verify::Checker { fetcher: outbound.registries, clock: ctx.env.clock, policy: outbound.policy };
            let providers =
                Providers { sender: outbound.providers, clock: ctx.env.clock, endpoints: outbound.endpoints };
            let source = Source::Providers(&providers);
            let report = verify::run::verify_secret(
                &ctx.env,
                who,
                ctx.keyring()?,
                &checker,
                &source,
                &name,
                repository.as_ref(),
            )?;
            Ok(Reply::json(200, &report).with_header(CACHE_CONTROL, "no-store"))
        })
    })
}

fn check_credentials<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Result<Reply, Error> {
    ctx.as_caller(request, |who| {
        let text = match request.body() {
            Body::Complete(bytes) => std::str::from_utf8(bytes).map_err(|_| Error::UnsupportedMediaType)?,
            Body::TooLarge => return Err(Error::PayloadTooLarge { limit: crate::http::MAX_BODY_BYTES }),
        };
        let config = DockerConfig::from_dockerconfigjson(text)?;
        let outbound = ctx.outbound()?;
        let checker = verify::Checker { fetcher: outbound.registries, clock: ctx.env.clock, policy: outbound.policy };
        Ok(Reply::json(200, &verify::run::check_credentials(who, &checker, &config)?))
    })
}

/// The console's sign-in routes (`/auth/login`, `/auth/callback`, `/auth/session`, `/auth/logout`):
/// see [`crate::signin`].
pub fn console_signin(ctx: &crate::signin::SignIn<'_>, request: &Request) -> Outcome {
    crate::signin::handle(ctx, request)
}

/// `GET /healthz`: the node runs components and answers. No token, no store, no variable: the
/// `live` component has no grants at all.
pub fn liveness(request: &Request) -> Outcome {
    probe(request, Endpoint::Liveness, || Ok("alive"))
}

/// `GET /readyz`: as liveness, and the store answered one read ([`crate::readiness::readiness`]):
/// 200, or 503 `NotReady` with `Retry-After`. A store that hangs makes this hang too; the
/// orchestrator's probe timeout bounds it (docs/deployment.md).
pub fn readiness<S: KeyValue>(store: &S, request: &Request) -> Outcome {
    probe(request, Endpoint::Readiness, || crate::readiness::readiness(store).map(|()| "ready"))
}

fn probe(request: &Request, serves: Endpoint, check: impl FnOnce() -> Result<&'static str, Error>) -> Outcome {
    let id = RequestId::of(request.headers());
    let result = resolve(request.method(), request.uri().path())
        .and_then(|endpoint| if endpoint == serves { check() } else { Err(wrong_component()) })
        .map(|status| {
            Reply::json(200, &crate::readiness::ProbeStatus { status }).with_header(CACHE_CONTROL, "no-store")
        });
    finish(result, &id, request.uri().path())
}

/// The body of the export's chained request on [`MINT_PATH`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MintRequest {
    pub name: String,
}

/// The current credential of a stored minting secret, for the `credentials` component (service
/// chaining only): the caller must be a puller of the secret's tenant, as for the export itself.
fn mint_for_export<S: KeyValue, C: Clock>(ctx: &Context<S, C>, request: &Request) -> Result<Reply, Error> {
    ctx.as_caller(request, |who| {
        who.require(Need::ReadCredentials)?;
        let body: MintRequest = serde_json::from_value(json_body(request, JSON)?)
            .map_err(|_| Error::InvalidRequest("The body must be {\"name\": \"…\"}".into()))?;
        let keyring = ctx.keyring()?;
        let outbound = ctx.outbound()?;
        let providers = Providers { sender: outbound.providers, clock: ctx.env.clock, endpoints: outbound.endpoints };
        crate::reread::settled(ctx.env.clock, || {
            let entry = secrets::current(&ctx.env, &who.tenant)?.view.find(&body.name)?.ok_or(Error::SecretNotFound)?;
            let Some(plain) = secrets::open_entry(ctx.env.store, keyring, &who.tenant, &entry)? else {
                return Ok(None);
            };
            let Credentials::Minting(identity) = Credentials::from_document(&plain)? else {
                return Err(Error::InvalidRequest("This secret holds static credentials; nothing to mint".into()));
            };
            let now = ctx.env.clock.now_ms();
            let minted: Minted = mint::current(
                ctx.env.store,
                keyring,
                &who.tenant,
                &entry,
                &identity,
                &Source::Providers(&providers),
                now,
            )?;
            Ok(Some(Reply::json(200, &minted).with_header(CACHE_CONTROL, "no-store")))
        })
    })
}
