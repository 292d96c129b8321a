//! The seam to the network, as the checks use it: see [`crate::net`], where it lives so that
//! minting (`mint`, below `verify`) shares it.

pub use crate::net::{FetchError, Fetched, Fetcher, Outgoing, Sender, MAX_RESPONSE_BYTES};
