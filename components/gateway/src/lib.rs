//! The public face of the API for every path no other component takes: it forwards each request
//! to the private component that serves its method and path (`domain::routes`), through service
//! chaining, and answers unknown paths and methods itself (404, 405 with `Allow`). See
//! `spin_bridge::gateway`.

#[spin_sdk::http_component]
async fn handle(request: spin_sdk::http::IncomingRequest, response_out: spin_sdk::http::ResponseOutparam) {
    spin_bridge::gateway(request, response_out).await
}
