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
//! | 12 | `endpoints` | one function per endpoint: request in, outcome out |
//! | 11 | `export`, `reencrypt`, `verify`, `quota`, `resolve`, `workload`, `signin` | operations built on `secrets`; the console's OpenID Connect sign-in |
//! | 10 | `secrets`, `http`, `mint` | create, patch, delete, list, get; responses and error bodies; minting and its cache |
//! | 9 | `log` | the tenant's write log: slots, their consensus, applying them |
//! | 8 | `view` | the tenant's state after a slot |
//! | 7 | `audit` | the audit line |
//! | 6 | `identity`, `index`, `lease`, `readiness` | tokens; a secret's metadata; a lease on a stretch of time, one holder at a time; the store probe |
//! | 5 | `store` | the `KeyValue` trait and the key layout |
//! | 4 | `name`, `paging`, `crypto`, `dockerconfig`, `routes` | checked values, sealing, the route table |
//! | 3 | `provider`, `reread` | a provider identity (AWS, Google, Azure) and the secret kinds; the readers' one retry |
//! | 2 | `error` | the one error type |
//! | 1 | `check` | what a credential check found, as data (shared by `error`, `dockerconfig`, `index`, `verify`) |
//! | 0 | `clock`, `host`, `jwks`, `net`, `request_id`, `strict_json` | leaves: time, a registry's host, keys, the network seam, the request id, strict JSON |

pub mod audit;
pub mod check;
pub mod clock;
pub mod crypto;
pub mod dockerconfig;
pub mod endpoints;
pub mod error;
pub mod export;
pub mod host;
pub mod http;
pub mod identity;
pub mod index;
pub mod jwks;
pub mod lease;
pub mod log;
pub mod mint;
pub mod name;
pub mod net;
pub mod paging;
pub mod provider;
pub mod quota;
pub mod readiness;
pub mod reencrypt;
pub mod request_id;
pub mod reread;
pub mod resolve;
pub mod routes;
pub mod secrets;
pub mod signin;
pub mod store;
pub mod strict_json;
pub mod verify;
pub mod view;
pub mod workload;

pub use error::Error;
