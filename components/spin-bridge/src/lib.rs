//! The Spin side of the domain's seam. An endpoint component is one line over [`serve`]:
//!
//! ```ignore
//! spin_bridge::endpoint_component!(CREDENTIALS, domain::endpoints::create);
//! ```
//!
//! Answers leave in one piece ([`answer`]); requests for other components are forwarded to them
//! through service chaining ([`gateway`]).

mod chain;
pub mod log;
mod outbound;
mod request;
mod response;
mod settings;
mod store;

pub use chain::{gateway, served_elsewhere};
pub use request::read_request;
pub use response::answer;
pub use settings::Grants;
pub use store::SpinStore;
// The macro below names it through this crate, so components need not depend on it.
pub use http;

use domain::clock::SystemClock;
use domain::endpoints::Context;
use domain::http::{Outcome, Request};
use domain::secrets::Env;
use domain::store::Retrying;
use domain::verify::Outbound;
use spin_sdk::http::IncomingRequest;

/// Reads the request, builds the endpoint's context from the store and the variables this
/// component was granted, runs the endpoint, logs what it says to log (and its audit line), and
/// returns the answer ([`answer`] sends it).
pub async fn serve(
    incoming: IncomingRequest,
    grants: Grants,
    endpoint: fn(&Context<Retrying<SpinStore>, SystemClock>, &Request) -> Outcome,
) -> http::Response<Vec<u8>> {
    let request = read_request(incoming).await;
    let settings = settings::Settings::load(grants);
    // A backend error is retried a few times within the request, a contended increment until the
    // request's deadline (the longest a write or read waits in all; see `Retrying`), then 503.
    let store = Retrying::within(SpinStore::open_default(), settings.policy.max_wait);
    let registries = outbound::RegistryClient::new(settings.check.timeout);
    let issuers = outbound::RegistryClient::for_keys();
    let context = Context {
        env: Env { store: &store, clock: &SystemClock, policy: settings.policy },
        auth: &settings.auth,
        keyring: settings.keyring.as_ref(),
        outbound: Some(Outbound {
            registries: &registries,
            verify_component: &outbound::ChainedVerify,
            policy: &settings.check,
            providers: &registries,
            endpoints: &settings.endpoints,
            mint_component: &outbound::ChainedMint,
        }),
        key_sender: Some(&issuers),
    };
    let outcome = endpoint(&context, &request);
    if let Some(line) = outcome.log {
        log::error(&line);
    }
    if let Some(event) = outcome.audit {
        log::audit(&event.line());
    }
    outcome.response
}

/// The console's sign-in (`domain::signin`): the store, `encryption_keys` (the provider's tokens
/// are sealed), the token settings, the `console_*` variables, and the way to the provider.
pub async fn serve_sign_in(incoming: IncomingRequest) -> http::Response<Vec<u8>> {
    let request = read_request(incoming).await;
    let settings = settings::Settings::load(Grants::CREDENTIALS);
    let sign_in = settings::sign_in();
    let store = Retrying::within(SpinStore::open_default(), settings.policy.max_wait);
    let keyring = settings.keyring.unwrap_or_else(|| Err(domain::error::Internal::Config("encryption_keys").into()));
    let provider = outbound::RegistryClient::for_keys();
    let context = domain::signin::SignIn {
        store: &store,
        keyring: &keyring,
        sender: &provider,
        clock: &SystemClock,
        auth: &settings.auth,
        settings: &sign_in,
    };
    let outcome = domain::endpoints::console_signin(&context, &request);
    if let Some(line) = outcome.log {
        log::error(&line);
    }
    if let Some(event) = outcome.audit {
        log::audit(&event.line());
    }
    outcome.response
}

/// The whole of an endpoint component: which secret variables it was granted, and which domain
/// endpoint it serves. With `forwarding_all_but = "<its id>"`, the component also takes public
/// routes whose other methods other components serve, and forwards those requests to them
/// (it needs their `http://<id>.spin.internal` in `allowed_outbound_hosts`).
#[macro_export]
macro_rules! endpoint_component {
    ($grants:ident, $endpoint:path, forwarding_all_but = $id:literal) => {
        #[::spin_sdk::http_component]
        async fn handle(request: ::spin_sdk::http::IncomingRequest, response_out: ::spin_sdk::http::ResponseOutparam) {
            if $crate::served_elsewhere(&request, $id).is_some() {
                $crate::gateway(request, response_out).await
            } else {
                $crate::answer($crate::serve(request, $crate::Grants::$grants, $endpoint).await, response_out)
            }
        }
    };
    ($grants:ident, $endpoint:path) => {
        #[::spin_sdk::http_component]
        async fn handle(request: ::spin_sdk::http::IncomingRequest, response_out: ::spin_sdk::http::ResponseOutparam) {
            $crate::answer($crate::serve(request, $crate::Grants::$grants, $endpoint).await, response_out)
        }
    };
}
