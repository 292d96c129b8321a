//! /auth/login, /auth/callback, /auth/session, /auth/logout: the console's sign-in with OpenID
//! Connect, run server-side (`domain::signin`); the browser holds only the session cookie.

#[spin_sdk::http_component]
async fn handle(request: spin_sdk::http::IncomingRequest, response_out: spin_sdk::http::ResponseOutparam) {
    spin_bridge::answer(spin_bridge::serve_sign_in(request).await, response_out)
}
