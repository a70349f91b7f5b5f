//! One acceptor handing each new connection to the serving thread with the
//! fewest open connections.
//!
//! Threads that all accept from one socket share connections by luck: the
//! thread that wakes first takes every connection waiting, so a burst of
//! new clients (a load balancer's pool, a benchmark's connections) can land
//! on one thread while the others idle; measured here, 64 connections all
//! on one of two threads cost ≈ 10 % of the throughput. Counting each
//! thread's open connections and always choosing the least loaded keeps
//! them even (docs/adr/0020-gateway-hot-path.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Handoff = (std::net::TcpStream, SocketAddr);

/// The acceptor's side: where each serving thread gets its connections.
pub struct Spread {
    shards: Vec<(mpsc::UnboundedSender<Handoff>, Arc<AtomicUsize>)>,
    next: usize,
}

/// A serving thread's side: the connections handed to it.
pub struct Inbox {
    handed: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
}

/// Held by a connection while it is open; counts it on its thread.
pub struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An acceptor and the inboxes of `threads` serving threads.
pub fn spread(threads: usize) -> (Spread, Vec<Inbox>) {
    let (mut shards, mut inboxes) = (Vec::new(), Vec::new());
    for _ in 0..threads.max(1) {
        let (tx, handed) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        shards.push((tx, open.clone()));
        inboxes.push(Inbox { handed, open });
    }
    (Spread { shards, next: 0 }, inboxes)
}

impl Spread {
    /// Accepts from `listener` until `stop`, handing each connection to the
    /// thread with the fewest open (ties in turn). Returns when stopped or
    /// when every thread is gone; the listener is closed then.
    pub async fn run(mut self, listener: tokio::net::TcpListener, stop: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait, as
                        // axum::serve does, instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "an accepted connection could not be handed over");
                    continue;
                }
            };
            if !self.hand(stream, peer) {
                return;
            }
        }
    }

    /// Hands the connection over; false when no thread is left.
    fn hand(&mut self, mut stream: std::net::TcpStream, peer: SocketAddr) -> bool {
        while !self.shards.is_empty() {
            let n = self.shards.len();
            let least = (0..n)
                .map(|k| (self.next + k) % n)
                .min_by_key(|&i| self.shards[i].1.load(Ordering::Relaxed))
                .unwrap_or(0);
            self.next = (least + 1) % n;
            let (tx, open) = &self.shards[least];
            open.fetch_add(1, Ordering::Relaxed);
            match tx.send((stream, peer)) {
                Ok(()) => return true,
                Err(mpsc::error::SendError((back, _))) => {
                    // That thread stopped: the others take its share.
                    stream = back;
                    self.shards.remove(least);
                }
            }
        }
        false
    }
}

impl Inbox {
    /// The next connection handed to this thread (registered with this
    /// thread's runtime), with its count; None once the acceptor is gone.
    pub async fn next(&mut self) -> Option<(tokio::net::TcpStream, SocketAddr, Open)> {
        loop {
            let (stream, peer) = self.handed.recv().await?;
            let open = Open(self.open.clone());
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => return Some((stream, peer, open)),
                Err(e) => tracing::warn!(error = %e, "a handed connection could not be served"),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Ten clients connecting at once are served five per thread, and a
    /// thread whose connections closed gets the next ones.
    #[tokio::test]
    async fn connections_go_to_the_thread_with_the_fewest_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (spread, mut inboxes) = spread(2);
        tokio::spawn(spread.run(listener, stop.clone()));
        let clients: Vec<_> =
            futures_util::future::join_all((0..10).map(|_| tokio::net::TcpStream::connect(addr))).await;
        let mut held = [Vec::new(), Vec::new()];
        for _ in 0..5 {
            for (i, inbox) in inboxes.iter_mut().enumerate() {
                held[i].push(inbox.next().await.unwrap());
            }
        }
        assert!(inboxes.iter_mut().all(|inbox| inbox.handed.is_empty()), "five each, none left over");

        // The first thread's connections close: the next two go there.
        held[0].clear();
        let _more: Vec<_> = futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(addr))).await;
        for _ in 0..2 {
            held[0].push(inboxes[0].next().await.unwrap());
        }
        assert!(inboxes[1].handed.is_empty());
        drop(clients);
        stop.cancel();
    }
}
