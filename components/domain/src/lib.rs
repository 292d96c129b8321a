//! The regsecrets domain: every rule of the API contract, once, with no dependency on Spin.
//!
//! Spin adapters (one per endpoint component) read a request into [`http::Request`], call the
//! matching function of [`endpoints`] with their platform, and write the [`http::Outcome`] back.
//! Storage is reached only through [`store::KeyValue`], so everything here is tested natively.
//!
//! ## Floors
//!
//! Each module imports only from floors below its own, never from its own floor or above, so the
//! imports have no circle. Test code (`mod tests`) may reach up to drive what it tests.
//! `tests/import_floors.rs` reads this table and fails on any import that breaks it, on a
//! module missing from it, and on any circle between files.
//!
//! | floor | modules | what they are |
//! |---|---|---|
//! | 9 | `endpoints` | one function per endpoint: request in, outcome out |
//! | 8 | `export`, `reencrypt`, `verify` | operations built on `secrets` |
//! | 7 | `secrets`, `http` | create, patch, delete, list, get; responses and error bodies |
//! | 6 | `quota`, `audit` | the tenant's limit; the audit line |
//! | 5 | `identity`, `index`, `lock`, `readiness` | tokens; the tenant index; the tenant lock; the store probe |
//! | 4 | `store` | the `KeyValue` trait and the key layout |
//! | 3 | `name`, `paging`, `crypto`, `dockerconfig`, `routes` | checked values, sealing, the route table |
//! | 2 | `error` | the one error type |
//! | 1 | `check` | what a credential check found, as data (shared by `error`, `dockerconfig`, `index`, `verify`) |
//! | 0 | `clock`, `jwks`, `request_id` | leaves: time, keys, the request id |

pub mod audit;
pub mod check;
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
pub mod name;
pub mod paging;
pub mod quota;
pub mod readiness;
pub mod reencrypt;
pub mod request_id;
pub mod routes;
pub mod secrets;
pub mod store;
pub mod verify;

pub use error::Error;
