//! Runs the gateway alone, as `feira run gateway` does, for `bench/gateway.sh`
//! (building this example takes the gateway's crates only, not all of feira).
//!
//! `cargo run --release -p gateway --example serve` (FEIRA_* variables apply).

use std::sync::Arc;

/// The allocator of the `feira` binary (apps/feira/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spec = gateway::SPEC;
    let config = platform::config::Config::from_env(&[(spec.name, spec.default_port)], spec.vars)?;
    let _telemetry = platform::telemetry::init(spec.name, config.log_format)?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    platform::service::cancel_on_signal(shutdown.clone());
    let svc = platform::service::start(&spec, Arc::new(config), shutdown).await?;
    (spec.run)(svc).await
}
