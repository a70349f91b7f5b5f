//! The floor of a hyper-based proxy, for `bench/gateway.sh`: the least a
//! reverse proxy built on hyper (the gateway's HTTP library) can do. One
//! thread per core, each with a single-threaded runtime serving the
//! connections one acceptor hands it (`platform::accept`, as the gateway's
//! shards), hyper's HTTP/1 server, the
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
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let (spread, inboxes) = platform::accept::spread(threads);
    let handles: Vec<_> = inboxes
        .into_iter()
        .map(|inbox| {
            let connections = connections.clone();
            std::thread::spawn(move || serve(inbox, connections, upstream))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        spread.run(listener, tokio_util::sync::CancellationToken::new()).await;
        anyhow::Ok(())
    })?;
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("a serving thread panicked"))??;
    }
    Ok(())
}

fn serve(
    mut inbox: platform::accept::Inbox,
    connections: Arc<Connections>,
    upstream: &'static str,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        while let Some((stream, _, open)) = inbox.next().await {
            let connections = connections.clone();
            tokio::spawn(async move {
                let _open = open;
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let connections = connections.clone();
                    async move { Ok::<_, Infallible>(forward(&connections, upstream, req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
        Ok(())
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
