//! GET /healthz (liveness) and GET /readyz (readiness), without a token, for orchestrators.
//!
//! One wasm, two Spin components with different grants (spin.toml): `live` answers `/healthz` and
//! has nothing (no store, no variable, no network); `ready` answers `/readyz` and has the store
//! only. The store is opened for `/readyz` alone, so `live` never touches it.

use domain::routes::READINESS;

#[spin_sdk::http_component]
async fn handle(request: spin_sdk::http::IncomingRequest, response_out: spin_sdk::http::ResponseOutparam) {
    let request = spin_bridge::read_request(request).await;
    let outcome = if request.uri().path() == READINESS {
        domain::endpoints::readiness(&spin_bridge::SpinStore::open_default(), &request)
    } else {
        domain::endpoints::liveness(&request)
    };
    if let Some(line) = outcome.log {
        spin_bridge::log::error(&line);
    }
    spin_bridge::answer(outcome.response, response_out)
}
