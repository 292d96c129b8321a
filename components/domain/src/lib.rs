//! The regsecrets domain: every rule of the API contract, once, with no dependency on Spin.
//!
//! Spin adapters (one per endpoint component) turn a Spin request into an [`http::ApiRequest`],
//! call the matching function of [`endpoints`], and turn the [`http::ApiResponse`] back.
//! Storage is reached only through [`store::KeyValue`], so everything here is tested natively.

pub mod crypto;
pub mod error;
pub mod identity;
pub mod jwks;
pub mod name;

pub use error::Error;
