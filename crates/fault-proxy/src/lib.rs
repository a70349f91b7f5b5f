//! A tiny in-process TCP fault-injection proxy for integration tests.
//!
//! feira's integration tests need to check how a service behaves when one of
//! its dependencies (Postgres, RabbitMQ, another service) becomes slow, drops
//! its connections, refuses new ones or hangs. [Toxiproxy] is the usual tool
//! for that, but it is not available in every environment, so this crate
//! provides the handful of faults the tests need, in-process and with no
//! external binary:
//!
//! * [`FaultProxy::set_latency`] — delay every forwarded chunk, both ways;
//! * [`FaultProxy::cut`] — reset every open connection and drop new ones as
//!   soon as they are accepted (a network cut);
//! * [`FaultProxy::refuse`] — stop listening, so connects fail with
//!   `ECONNREFUSED` (the dependency is down); open connections are cut too;
//! * [`FaultProxy::blackhole`] — accept connections but forward nothing in
//!   either direction (a hung dependency);
//! * [`FaultProxy::restore`] — back to normal forwarding, on the same port.
//!
//! Point the code under test at [`FaultProxy::addr`] instead of the real
//! dependency, then flip faults on and off from the test. The proxy listens
//! on `127.0.0.1` on an ephemeral port that stays the same for the whole life
//! of the proxy (also across [`FaultProxy::refuse`] / [`FaultProxy::restore`]),
//! so connection strings built from it stay valid.
//!
//! Fault changes take effect immediately: every connection task watches the
//! proxy's mode, so a cut closes connections even while they are idle, and a
//! blackhole pauses them mid-stream. Dropping the [`FaultProxy`] closes the
//! listener and ends every connection task.
//!
//! The proxy must be started from inside a Tokio runtime; the fault switches
//! are plain synchronous methods and may be called from anywhere.
//!
//! [Toxiproxy]: https://github.com/Shopify/toxiproxy
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use fault_proxy::{FaultProxy, Mode};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! # fn main() -> std::io::Result<()> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // A dependency that answers "pong" to everything.
//! let upstream = TcpListener::bind("127.0.0.1:0").await?;
//! let upstream_addr = upstream.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut conn, _)) = upstream.accept().await {
//!         tokio::spawn(async move {
//!             let mut buf = [0u8; 4];
//!             while conn.read_exact(&mut buf).await.is_ok() {
//!                 if conn.write_all(b"pong").await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! let proxy = FaultProxy::start(upstream_addr).await?;
//! proxy.set_latency(Duration::from_millis(20));
//!
//! // The code under test connects to the proxy instead of the dependency.
//! let mut conn = TcpStream::connect(proxy.addr()).await?;
//! conn.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! conn.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"pong");
//!
//! // The dependency goes down: connects are refused...
//! proxy.refuse();
//! assert_eq!(proxy.mode(), Mode::Refused);
//! let err = TcpStream::connect(proxy.addr()).await.err();
//! assert_eq!(err.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
//!
//! // ...and comes back on the same address.
//! proxy.restore();
//! let mut conn = TcpStream::connect(proxy.addr()).await?;
//! conn.write_all(b"ping").await?;
//! conn.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"pong");
//! # Ok(())
//! # })
//! # }
//! ```

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// Listen backlog of the proxy socket.
const BACKLOG: u32 = 1024;
/// Size of the per-direction copy buffer (one "chunk").
const CHUNK: usize = 16 * 1024;
/// How often the listener task retries re-binding if `restore` could not.
const REBIND_RETRY: Duration = Duration::from_millis(50);

/// What the proxy currently does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Normal forwarding (plus the configured latency, if any).
    Pass,
    /// Open connections were reset; new connections are accepted and
    /// immediately reset.
    Cut,
    /// Not listening: new connects fail with `ECONNREFUSED`. Open
    /// connections were reset.
    Refused,
    /// Connections are accepted and kept open, but nothing is forwarded in
    /// either direction until [`FaultProxy::restore`].
    Blackhole,
}

/// State broadcast to the listener and every connection task.
#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by every `cut`/`refuse`: a connection that was opened under an
    /// older epoch must die, even if the mode has already been restored by
    /// the time its task looks.
    cut_epoch: u64,
    /// Set when the [`FaultProxy`] is dropped.
    shutdown: bool,
}

/// The proxy's socket: listening, or (while refusing) only bound, which
/// keeps the port reserved while the kernel refuses connects to it.
#[derive(Default)]
struct Slot {
    listener: Option<TcpListener>,
    reserved: Option<TcpSocket>,
}

struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    runtime: Handle,
    state: watch::Sender<State>,
    latency_nanos: AtomicU64,
    open: AtomicUsize,
    slot: Mutex<Slot>,
}

/// A TCP proxy in front of one upstream address, with switchable faults.
///
/// See the [crate documentation](crate) for an overview and an example.
pub struct FaultProxy {
    shared: Arc<Shared>,
    listener_task: AbortHandle,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every accepted connection to
    /// `upstream`.
    ///
    /// Must be called from within a Tokio runtime; the proxy's tasks run on
    /// that runtime.
    ///
    /// # Errors
    ///
    /// Fails if the listening socket cannot be created.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let socket = bind_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let listener = socket.listen(BACKLOG)?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(State { mode: Mode::Pass, cut_epoch: 0, shutdown: false });
        let shared = Arc::new(Shared {
            addr,
            upstream,
            runtime: Handle::current(),
            state,
            latency_nanos: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            slot: Mutex::new(Slot { listener: Some(listener), reserved: None }),
        });
        let listener_task = tokio::spawn(accept_loop(Arc::clone(&shared))).abort_handle();
        tracing::debug!(%addr, %upstream, "fault proxy started");
        Ok(FaultProxy { shared, listener_task })
    }

    /// The proxy's listen address (always `127.0.0.1:<port>`; the port never
    /// changes for the life of the proxy).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The upstream address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Sets the delay added to every forwarded chunk, in both directions
    /// (so a request/response round-trip takes at least twice as long).
    /// `Duration::ZERO` disables it. Applies to open connections too.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The current per-chunk latency.
    pub fn latency(&self) -> Duration {
        self.shared.latency()
    }

    /// Abruptly closes (resets) every open proxied connection, on both
    /// sides, and makes new connections be accepted and immediately reset,
    /// until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.transition(Mode::Cut, true);
    }

    /// Stops listening, so new connects get `ECONNREFUSED`; open connections
    /// are cut too. [`restore`](Self::restore) listens again on the same
    /// port.
    pub fn refuse(&self) {
        self.shared.transition(Mode::Refused, true);
    }

    /// Accepts new connections and keeps them open but forwards nothing in
    /// either direction (a hung dependency); open connections stop
    /// forwarding too. After [`restore`](Self::restore) every surviving
    /// connection resumes, including the ones accepted while blackholed.
    pub fn blackhole(&self) {
        self.shared.transition(Mode::Blackhole, false);
    }

    /// Back to normal forwarding (latency is kept; reset it with
    /// [`set_latency`](Self::set_latency)). After [`refuse`](Self::refuse),
    /// listens again on the same port.
    pub fn restore(&self) {
        self.shared.transition(Mode::Pass, false);
    }

    /// Number of client connections the proxy currently holds open.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.state.borrow().mode
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr())
            .field("upstream", &self.upstream())
            .field("mode", &self.mode())
            .field("latency", &self.latency())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Stop listening right away (synchronously), so connects are refused
        // as soon as the proxy is gone.
        {
            let mut slot = self.shared.lock_slot();
            slot.listener = None;
            slot.reserved = None;
        }
        // Tell every task to stop, then abort the listener task; its JoinSet
        // owns the connection tasks, so they are aborted with it.
        self.shared.state.send_modify(|s| s.shutdown = true);
        self.listener_task.abort();
        tracing::debug!(addr = %self.shared.addr, "fault proxy stopped");
    }
}

impl Shared {
    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    fn transition(&self, mode: Mode, cut_existing: bool) {
        if self.state.borrow().shutdown {
            return;
        }
        if mode == Mode::Refused {
            let mut slot = self.lock_slot();
            // Closing the listener makes the kernel refuse connects (and
            // reset any connection still waiting in the accept backlog).
            slot.listener = None;
            if slot.reserved.is_none() {
                // Keep the port bound (not listening) so nobody else takes it
                // before `restore`; connects to it are still refused.
                match bind_socket(self.addr) {
                    Ok(socket) => slot.reserved = Some(socket),
                    Err(error) => {
                        tracing::debug!(addr = %self.addr, %error, "could not reserve proxy port");
                    }
                }
            }
        } else if let Err(error) = self.ensure_listening() {
            // The listener task keeps retrying while the mode wants a listener.
            tracing::warn!(addr = %self.addr, %error, "fault proxy could not listen again; retrying");
        }
        self.state.send_modify(|s| {
            s.mode = mode;
            if cut_existing {
                s.cut_epoch = s.cut_epoch.wrapping_add(1);
            }
        });
        tracing::debug!(addr = %self.addr, ?mode, "fault proxy mode changed");
    }

    /// Listens on the proxy's port again if it is not listening.
    fn ensure_listening(&self) -> io::Result<()> {
        let mut slot = self.lock_slot();
        if slot.listener.is_some() {
            return Ok(());
        }
        let socket = match slot.reserved.take() {
            Some(socket) => socket,
            None => bind_socket(self.addr)?,
        };
        // Registering the listener with the reactor needs the runtime context;
        // this method may be called from outside of it.
        let _guard = self.runtime.enter();
        slot.listener = Some(socket.listen(BACKLOG)?);
        Ok(())
    }

    fn needs_rebind(&self) -> bool {
        let state = *self.state.borrow();
        !state.shutdown && state.mode != Mode::Refused && self.lock_slot().listener.is_none()
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match &self.lock_slot().listener {
            Some(listener) => listener.poll_accept(cx),
            // Not listening: the state change that installs a new listener
            // wakes the accept loop, which polls again.
            None => Poll::Pending,
        }
    }
}

fn bind_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Decrements the open-connection count when a connection task ends,
/// however it ends (including being aborted).
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(Arc::clone(shared))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut state_rx = shared.state.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let needs_rebind = shared.needs_rebind();
        let accepted = tokio::select! {
            biased;
            changed = state_rx.changed() => {
                if changed.is_err() || state_rx.borrow_and_update().shutdown {
                    return;
                }
                continue;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = tokio::time::sleep(REBIND_RETRY), if needs_rebind => {
                if let Err(error) = shared.ensure_listening() {
                    tracing::debug!(addr = %shared.addr, %error, "fault proxy rebind failed");
                }
                continue;
            }
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => accepted,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // E.g. EMFILE or a connection reset while in the backlog; do
                // not spin on persistent errors.
                tracing::debug!(addr = %shared.addr, %error, "fault proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = *shared.state.borrow();
        match state.mode {
            Mode::Cut | Mode::Refused => {
                tracing::trace!(%peer, "fault proxy dropping new connection (cut)");
                reset(&client);
            }
            Mode::Pass | Mode::Blackhole => {
                let guard = OpenGuard::new(&shared);
                connections.spawn(run_connection(Arc::clone(&shared), client, state.cut_epoch, guard));
            }
        }
    }
}

/// Closes `stream` with a RST instead of a FIN when it is dropped.
fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::trace!(%error, "could not set SO_LINGER=0");
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "fault proxy stopped forwarding")
}

/// Resolves once this connection must die: a cut/refuse happened after it
/// was opened, or the proxy is gone.
async fn wait_cut(rx: &mut watch::Receiver<State>, epoch: u64) {
    // An error means the sender is gone, i.e. the proxy is gone: die too.
    let _ = rx.wait_for(|s| s.shutdown || s.cut_epoch != epoch).await;
}

/// Resolves once traffic may flow; errors if it never will again.
async fn wait_pass(rx: &mut watch::Receiver<State>) -> io::Result<()> {
    let state = *rx.wait_for(|s| s.shutdown || s.mode != Mode::Blackhole).await.map_err(|_| aborted())?;
    if state.mode == Mode::Pass && !state.shutdown { Ok(()) } else { Err(aborted()) }
}

/// Resolves once traffic must stop flowing.
async fn wait_not_pass(rx: &mut watch::Receiver<State>) {
    let _ = rx.wait_for(|s| s.shutdown || s.mode != Mode::Pass).await;
}

async fn run_connection(shared: Arc<Shared>, mut client: TcpStream, epoch: u64, _guard: OpenGuard) {
    let mut cut_rx = shared.state.subscribe();
    let cut = wait_cut(&mut cut_rx, epoch);
    tokio::pin!(cut);

    // While blackholed, hold the client without even connecting upstream.
    let mut rx = shared.state.subscribe();
    let connect = async {
        wait_pass(&mut rx).await?;
        TcpStream::connect(shared.upstream).await
    };
    let mut upstream = tokio::select! {
        () = &mut cut => {
            reset(&client);
            return;
        }
        connected = connect => match connected {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::debug!(upstream = %shared.upstream, %error, "fault proxy could not reach upstream");
                reset(&client);
                return;
            }
        },
    };
    // Latency is injected deliberately; do not let Nagle add more.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let was_cut = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let to_upstream = pipe(client_read, upstream_write, &shared);
        let to_client = pipe(upstream_read, client_write, &shared);
        tokio::select! {
            () = &mut cut => true,
            result = async { tokio::try_join!(to_upstream, to_client) } => {
                if let Err(error) = result {
                    tracing::trace!(%error, "fault proxy connection ended");
                }
                // Stopped forwarding for good (cut, refused or error): reset.
                let state = *shared.state.borrow();
                state.shutdown || state.cut_epoch != epoch || state.mode != Mode::Pass
            }
        }
    };
    if was_cut {
        reset(&client);
        reset(&upstream);
    }
}

/// Copies one direction until EOF (then half-closes the writer) or error.
async fn pipe(mut reader: ReadHalf<'_>, mut writer: WriteHalf<'_>, shared: &Shared) -> io::Result<()> {
    let mut rx = shared.state.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        wait_pass(&mut rx).await?;
        // Reading is cancel-safe: if forwarding stops mid-read, no data is
        // lost; it stays in the kernel buffer until forwarding resumes.
        let n = tokio::select! {
            read = reader.read(&mut buf) => read?,
            () = wait_not_pass(&mut rx) => continue,
        };
        if n == 0 {
            writer.shutdown().await?;
            return Ok(());
        }
        let latency = shared.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // A chunk already read is held back while blackholed.
        wait_pass(&mut rx).await?;
        writer.write_all(&buf[..n]).await?;
    }
}
