//! A trivial upstream for `bench/gateway.sh`: answers `200 ok` to anything.
//!
//! `cargo run --release -p gateway --example upstream -- 127.0.0.1:9100`

use axum::Router;
use axum::routing::any;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = Router::new().route("/", any(|| async { "ok" })).route("/{*path}", any(|| async { "ok" }));
    axum::serve(listener, app).await?;
    Ok(())
}
