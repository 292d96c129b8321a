//! Host-side bindings of `wit/` (the Spin interfaces beyond WASI and wasi:http).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "regsecrets:testhost/spin-host",
    imports: { default: async | trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::kv::Store,
        "wasi:keyvalue/atomics.cas": crate::kv_host::CasEntry,
        "fermyon:spin/key-value.store": crate::kv_host::LegacyStore,
    },
});
