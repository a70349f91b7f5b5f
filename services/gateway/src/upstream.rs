//! Connections to the upstreams: hyper's HTTP/1 client connections, kept
//! alive in a pool per serving thread and per upstream.
//!
//! hyper-util's pooled client (`client::legacy`) cost about a sixth of the
//! proxy's throughput on this path (bench/gateway.sh's `floor` case, both
//! ways; docs/adr/0020-gateway-hot-path.md): a shared pool behind a lock, a
//! checkout future and a spawned task per request. A serving thread needs
//! none of that, so the pool is a plain list of idle connections that only
//! its own thread touches. What the legacy client did that a proxy relies
//! on is kept: `TCP_NODELAY`, a connect timeout, an idle timeout, and a
//! request that a reused connection refused before sending it (the upstream
//! closed it while idle) is sent again on a new connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Request, Response, header};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The idle connections one thread keeps per upstream, at most.
const MAX_IDLE: usize = 256;

/// Why a request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {authority}: {source}")]
    Connect { authority: String, source: std::io::Error },
    #[error("connect to {authority}: no connection within {timeout:?}")]
    ConnectTimeout { authority: String, timeout: Duration },
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Every serving thread's idle upstream connections.
pub struct Connections {
    per_thread: thread_local::ThreadLocal<RefCell<HashMap<String, Vec<Idle>>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

impl Connections {
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Connections { per_thread: thread_local::ThreadLocal::new(), connect_timeout, idle_timeout }
    }

    /// Sends `req` (origin-form URI: path and query) to `authority`
    /// (`host:port`) on an idle connection of this thread, else a new one.
    pub async fn send(&self, authority: &str, mut req: Request<Full<Bytes>>) -> Result<Response<Incoming>, SendError> {
        if let Ok(host) = HeaderValue::from_str(authority) {
            req.headers_mut().insert(header::HOST, host);
        }
        if let Some(mut sender) = self.take(authority) {
            match sender.try_send_request(req).await {
                Ok(res) => {
                    self.put(authority, sender);
                    return Ok(res);
                }
                // Not sent: the connection closed while idle. A new one.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        let res = sender.send_request(req).await?;
        self.put(authority, sender);
        Ok(res)
    }

    fn pool(&self) -> &RefCell<HashMap<String, Vec<Idle>>> {
        self.per_thread.get_or(Default::default)
    }

    /// An idle connection ready for a request. Connections still streaming
    /// an answer stay (they are ready again once it is read); closed or
    /// long-idle ones are dropped.
    fn take(&self, authority: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut pools = self.pool().borrow_mut();
        let idle = pools.get_mut(authority)?;
        let now = Instant::now();
        idle.retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < self.idle_timeout);
        let i = idle.iter().rposition(|c| c.sender.is_ready())?;
        Some(idle.swap_remove(i).sender)
    }

    fn put(&self, authority: &str, sender: SendRequest<Full<Bytes>>) {
        let mut pools = self.pool().borrow_mut();
        let idle = match pools.get_mut(authority) {
            Some(idle) => idle,
            None => pools.entry(authority.to_string()).or_default(),
        };
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: Instant::now() });
        }
    }

    async fn connect(&self, authority: &str) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let stream = match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(authority)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(SendError::Connect { authority: authority.to_string(), source }),
            Err(_) => {
                return Err(SendError::ConnectTimeout {
                    authority: authority.to_string(),
                    timeout: self.connect_timeout,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // Driven by this thread's runtime until the upstream or the pool
        // lets it go.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        sender.ready().await?;
        Ok(sender)
    }
}
