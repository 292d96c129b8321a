//! The Wasmtime engine as Spin 4.0.2 configures it (`crates/core/src/lib.rs`, `Config::default`):
//! the component model and the pooling instance allocator with Spin's limits, so that an
//! instantiation here costs what it costs under Spin (a fresh instance per request makes that
//! cost part of every request). As Spin, `SPIN_WASMTIME_POOLING=0` turns pooling off, and when
//! the pool's address space cannot be reserved the host falls back to on-demand allocation.

use anyhow::Result;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Spin's pool: sized from `SPIN_MAX_INSTANCE_COUNT` (1,000 instances by default).
fn pooling() -> PoolingAllocationConfig {
    let max_instances: u32 = env("SPIN_MAX_INSTANCE_COUNT", 1_000);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(env("SPIN_WASMTIME_INSTANCE_COUNT", max_instances))
        .total_memories(env("SPIN_WASMTIME_TOTAL_MEMORIES", max_instances))
        .total_tables(env("SPIN_WASMTIME_TOTAL_TABLES", 2 * max_instances))
        .total_stacks(env("SPIN_WASMTIME_TOTAL_STACKS", max_instances))
        .total_core_instances(env("SPIN_WASMTIME_TOTAL_CORE_INSTANCES", 4 * max_instances))
        .table_elements(env("SPIN_WASMTIME_INSTANCE_TABLE_ELEMENTS", 100_000))
        .max_component_instance_size(env("SPIN_WASMTIME_INSTANCE_SIZE", 10 * MB) as usize)
        .max_core_instance_size(env("SPIN_WASMTIME_CORE_INSTANCE_SIZE", 10 * MB) as usize)
        .max_core_instances_per_component(env("SPIN_WASMTIME_CORE_INSTANCE_COUNT", 200))
        .max_tables_per_component(env("SPIN_WASMTIME_INSTANCE_TABLES", 64))
        .max_memories_per_component(env("SPIN_WASMTIME_INSTANCE_MEMORIES", 32))
        .max_tables_per_module(env("SPIN_WASMTIME_MAX_TABLES_PER_MODULE", 2))
        .max_memories_per_module(env("SPIN_WASMTIME_MAX_MEMORIES_PER_MODULE", 2))
        .max_memory_size(4 * GB as usize)
        .linear_memory_keep_resident(env("SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT", 2 * MB) as usize)
        .table_keep_resident(env("SPIN_WASMTIME_TABLE_KEEP_RESIDENT", MB / 2) as usize);
    pool
}

fn config(pooled: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.parallel_compilation(true);
    if pooled {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
    }
    config
}

pub fn engine() -> Result<Engine> {
    let pooled = std::env::var("SPIN_WASMTIME_POOLING").map_or(true, |v| v != "0");
    let engine = match Engine::new(&config(pooled)) {
        Ok(engine) => Ok(engine),
        Err(_) if pooled => Engine::new(&config(false)),
        Err(e) => Err(e),
    };
    engine.map_err(|e| anyhow::anyhow!("{e:?}"))
}
