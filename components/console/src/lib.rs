//! Serves the console's page and assets, and the API's OpenAPI document at `/openapi.json`.
//! Everything the console shows comes from the public API, which the browser calls itself with the
//! user's token: this component holds no store, variable or secret.

mod assets;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
#[cfg(target_arch = "wasm32")]
use spin_sdk::http_component;

/// The page loads only its own files and talks only to its own origin; no inline script or style,
/// so an injected string in a secret name can never run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Exported only in the wasm: natively the export's symbol name cannot be linked, and the unit
/// tests call `handle` directly.
#[cfg_attr(target_arch = "wasm32", http_component)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn handle(req: Request) -> impl IntoResponse {
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        _ => return with_security_headers(method_not_allowed()),
    };
    let response = match assets::resolve(req.path()) {
        None => error(404, "NotFound", "No such page or asset in the console."),
        Some(asset) if matches(req.header("if-none-match"), asset.etag) => serve(304, asset, Vec::new()),
        Some(asset) => serve(200, asset, if head { Vec::new() } else { asset.body.to_vec() }),
    };
    let mut response = with_security_headers(response);
    if req.path() == assets::OPENAPI {
        // Public and credential-free: let OpenAPI viewers on other origins load it.
        response.set_header("access-control-allow-origin", "*");
    }
    response
}

/// Files are not fingerprinted, so the browser must revalidate each time; the strong ETag makes
/// that a 304 without a body.
fn serve(status: u16, asset: &assets::Asset, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", asset.content_type)
        .header("etag", asset.etag)
        .header("cache-control", "no-cache")
        .body(body)
        .build()
}

fn matches(if_none_match: Option<&spin_sdk::http::HeaderValue>, etag: &str) -> bool {
    if_none_match
        .and_then(|value| value.as_str())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"))
}

fn method_not_allowed() -> Response {
    let mut response = error(405, "MethodNotAllowed", "The console serves GET and HEAD only.");
    response.set_header("allow", "GET, HEAD");
    response
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}

fn with_security_headers(mut response: Response) -> Response {
    response.set_header("content-security-policy", CSP);
    response.set_header("x-content-type-options", "nosniff");
    response.set_header("referrer-policy", "no-referrer");
    response.set_header("x-frame-options", "DENY");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response {
        handle(Request::new(Method::Get, path)).into_response()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response.header(name).and_then(|value| value.as_str()).unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn the_page_is_served_with_validators_and_security_headers() {
        let response = get("/");
        assert_eq!(*response.status(), 200);
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(header(&response, "etag").starts_with('"'));
        assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
        assert!(!header(&response, "content-security-policy").contains("unsafe-inline"));
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    }

    #[test]
    fn an_absolute_uri_with_a_query_is_routed_by_its_path() {
        let response = get("http://127.0.0.1:3000/assets/console.css?v=1");
        assert_eq!(*response.status(), 200);
        assert_eq!(header(&response, "content-type"), "text/css; charset=utf-8");
    }

    #[test]
    fn a_matching_if_none_match_gets_304_without_body() {
        let etag = header(&get("/assets/app.js"), "etag").to_owned();
        let mut request = Request::new(Method::Get, "/assets/app.js");
        request.set_header("if-none-match", etag);
        let response = handle(request).into_response();
        assert_eq!(*response.status(), 304);
        assert!(response.body().is_empty());
    }

    #[test]
    fn unknown_paths_get_the_api_error_shape() {
        let response = get("/nope");
        assert_eq!(*response.status(), 404);
        assert_eq!(header(&response, "content-type"), "application/json");
        let body = String::from_utf8(response.into_body()).expect("utf-8");
        assert!(body.starts_with(r#"{"error":{"code":"NotFound","message":""#));
    }

    #[test]
    fn the_openapi_document_needs_no_token_and_other_origins_may_read_it() {
        let response = get("/openapi.json");
        assert_eq!(*response.status(), 200);
        assert_eq!(header(&response, "content-type"), "application/json");
        assert_eq!(header(&response, "access-control-allow-origin"), "*");
        assert!(header(&response, "etag").starts_with('"'));
        let document: &[u8] = response.body();
        assert!(String::from_utf8_lossy(document).contains("\"openapi\": \"3.1.0\""));
        assert!(get("/").header("access-control-allow-origin").is_none(), "only the document is shared");
    }

    #[test]
    fn writes_are_refused() {
        let response = handle(Request::new(Method::Post, "/")).into_response();
        assert_eq!(*response.status(), 405);
        assert_eq!(header(&response, "allow"), "GET, HEAD");
    }
}
