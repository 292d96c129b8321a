//! The regsecrets domain: every rule of the API contract, once, with no dependency on Spin.
//!
//! Spin adapters (one per endpoint component) read a request into [`http::Request`], call the
//! matching function of [`endpoints`] with their platform, and write the [`http::Outcome`] back.
//! Storage is reached only through [`store::KeyValue`], so everything here is tested natively.

pub mod audit;
pub mod clock;
pub mod crypto;
pub mod dockerconfig;
pub mod endpoints;
pub mod error;
pub mod export;
pub mod http;
pub mod identity;
pub mod index;
pub mod jwks;
pub mod lock;
pub mod mint;
pub mod name;
pub mod paging;
pub mod provider;
pub mod quota;
pub mod reencrypt;
pub mod routes;
pub mod secrets;
pub mod store;
pub mod verify;

pub use error::Error;
