//! The floor of a hyper-based proxy, for `bench/gateway.sh`: the least a
//! reverse proxy built on hyper (the gateway's HTTP library) can do. One
//! thread per core, each with a single-threaded runtime accepting from the
//! same socket (as the gateway's shards), hyper's HTTP/1 server, the
//! gateway's upstream connections (`gateway::upstream`), the request
//! forwarded as it came: no routing, checks, header rewriting, metrics or
//! logs. What the gateway costs above this is the gateway's own work; what
//! this costs above nginx is the library's.
//!
//! `cargo run --release -p gateway --example floor -- 127.0.0.1:9103 127.0.0.1:9100`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway::upstream::Connections;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9103".to_string());
    let upstream: &'static str = std::env::args().nth(2).unwrap_or_else(|| "127.0.0.1:9100".to_string()).leak();
    let connections = Arc::new(Connections::new(Duration::from_secs(2), Duration::from_secs(60)));
    let listener = std::net::TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (listener, connections) = (listener.try_clone()?, connections.clone());
            Ok(std::thread::spawn(move || serve(listener, connections, upstream)))
        })
        .collect::<anyhow::Result<_>>()?;
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("a serving thread panicked"))??;
    }
    Ok(())
}

fn serve(listener: std::net::TcpListener, connections: Arc<Connections>, upstream: &'static str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            let connections = connections.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let connections = connections.clone();
                    async move { Ok::<_, Infallible>(forward(&connections, upstream, req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

/// The request as it came (its body read first, as the gateway does); the
/// answer's body streams back as it comes, as the gateway's does.
async fn forward(
    connections: &Connections,
    upstream: &str,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Either<Incoming, Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match connections.send(upstream, hyper::Request::from_parts(parts, Full::new(body))).await {
        Ok(res) => res.map(Either::Left),
        Err(_) => {
            let mut res = hyper::Response::new(Either::Right(Full::new(Bytes::new())));
            *res.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            res
        }
    }
}
