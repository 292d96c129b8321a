//! The build script every component shares (`build = "../spin-bridge/wasm-stack.rs"` in its
//! `Cargo.toml`): it links the component with a 256 KiB stack instead of Rust's 1 MiB default.
//!
//! Why: Spin runs a fresh instance per request in Wasmtime's pooling allocator, which on every
//! instance's teardown zeroes the linear memory it keeps resident (up to 2 MiB,
//! `SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT`). The stack sits at the start of that memory, so a
//! 1 MiB stack is 1 MiB zeroed per request whether or not it was used. Measured in the
//! `throughput` bench (16 clients): the liveness probe went from 95 % to 111 % of a hello-world
//! built with the default stack, and a get refused before any store call from 67 % to 70 %.
//!
//! Is 256 KiB enough: the deepest recursion in a component is `serde_json`'s, which stops at 128
//! levels of nesting, on request bodies and token claims alike; the e2e security suite sends both
//! at that depth (`deeply_nested_bodies_and_claims_are_refused_not_crashed`). That test passes
//! with a 64 KiB stack and fails (500) with 24 KiB, so 256 KiB leaves four times the measured need;
//! every other suite runs on it too. A stack overflow traps (the stack is first in memory and grows
//! down towards address 0), so it answers 500 and never corrupts the heap.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=262144");
    }
}
