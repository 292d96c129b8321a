//! Hello, world, the way spin-sdk's own template writes it: the cheapest answer a Spin component
//! gives (one instantiation, no store, no variables). `cargo bench -p e2e --bench latency` serves
//! it beside the app and reports every call as a multiple of it. Not part of the app's spin.toml.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::builder().status(200).header("content-type", "text/plain").body("Hello, world!").build())
}
