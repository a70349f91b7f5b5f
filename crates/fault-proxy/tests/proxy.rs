//! Behaviour tests for `FaultProxy`, against a tiny echo server.

#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fault_proxy::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// How long a blackholed read must stay silent.
const SILENCE: Duration = Duration::from_millis(300);
/// Generous upper bound for things that should happen "immediately".
const PROMPTLY: Duration = Duration::from_secs(1);

/// Starts an echo server on 127.0.0.1:0 and returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn start() -> FaultProxy {
    FaultProxy::start(echo_server().await).await.unwrap()
}

/// Sends `msg` and reads the echo back.
async fn round_trip(conn: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    conn.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    timeout(PROMPTLY, conn.read_exact(&mut buf)).await.expect("echo timed out").unwrap();
    buf
}

async fn connect_and_echo(addr: SocketAddr) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");
}

/// Asserts the connection is closed (EOF or reset) promptly.
async fn assert_closed(conn: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match timeout(PROMPTLY, conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected a closed connection, read {n} bytes"),
        Err(_) => panic!("connection was not closed"),
    }
}

/// Asserts a connect to `addr` either fails or yields a connection that is
/// closed straight away.
async fn assert_dropped_on_connect(addr: SocketAddr) {
    if let Ok(mut conn) = TcpStream::connect(addr).await {
        // Writing may already fail with a reset; what matters is that
        // nothing comes back.
        let _ = conn.write_all(b"ping").await;
        assert_closed(&mut conn).await;
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPTLY;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn passes_traffic_through() {
    let proxy = start().await;
    assert_eq!(proxy.mode(), Mode::Pass);
    assert!(proxy.addr().ip().is_loopback());

    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut b, b"world").await, b"world");
    assert_eq!(proxy.open_connections(), 2);

    // A payload much larger than one chunk, written while reading.
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = a.into_split();
    let expected = payload.clone();
    let writer = tokio::spawn(async move { w.write_all(&payload).await.unwrap() });
    let mut echoed = vec![0u8; expected.len()];
    timeout(Duration::from_secs(5), r.read_exact(&mut echoed)).await.unwrap().unwrap();
    writer.await.unwrap();
    assert!(echoed == expected, "large payload corrupted");

    drop(r);
    drop(b);
    eventually("connections to close", || proxy.open_connections() == 0).await;
}

#[tokio::test]
async fn latency_delays_round_trips() {
    let proxy = start().await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"warm").await, b"warm");

    let latency = Duration::from_millis(100);
    proxy.set_latency(latency);
    assert_eq!(proxy.latency(), latency);
    let started = Instant::now();
    assert_eq!(round_trip(&mut conn, b"slow").await, b"slow");
    // Delayed once on the way in and once on the way out.
    assert!(started.elapsed() >= latency * 2, "round trip took only {:?}", started.elapsed());

    // Back to no latency: still works (no upper bound asserted).
    proxy.set_latency(Duration::ZERO);
    assert_eq!(round_trip(&mut conn, b"fast").await, b"fast");
}

#[tokio::test]
async fn cut_closes_connections_until_restore() {
    let proxy = start().await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");

    proxy.cut();
    assert_eq!(proxy.mode(), Mode::Cut);
    // The idle open connection is closed without any traffic on it.
    assert_closed(&mut conn).await;
    eventually("cut connections to be gone", || proxy.open_connections() == 0).await;

    // New connections are dropped right away.
    assert_dropped_on_connect(proxy.addr()).await;
    assert_dropped_on_connect(proxy.addr()).await;

    proxy.restore();
    assert_eq!(proxy.mode(), Mode::Pass);
    connect_and_echo(proxy.addr()).await;
}

#[tokio::test]
async fn cut_then_immediate_restore_still_kills_old_connections() {
    let proxy = start().await;
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");

    proxy.cut();
    proxy.restore();
    assert_closed(&mut conn).await;
    connect_and_echo(proxy.addr()).await;
}

#[tokio::test]
async fn refuse_refuses_connects_and_restore_listens_on_the_same_port() {
    let proxy = start().await;
    let addr = proxy.addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");

    proxy.refuse();
    assert_eq!(proxy.mode(), Mode::Refused);
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // Open connections are cut as well.
    assert_closed(&mut conn).await;

    // Refusing twice is harmless.
    proxy.refuse();
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    proxy.restore();
    assert_eq!(proxy.mode(), Mode::Pass);
    assert_eq!(proxy.addr(), addr);
    connect_and_echo(addr).await;

    // And once more, to make sure the port can be re-bound repeatedly.
    proxy.refuse();
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    proxy.cut();
    assert_dropped_on_connect(addr).await;
    proxy.restore();
    connect_and_echo(addr).await;
}

#[tokio::test]
async fn blackhole_hangs_traffic_until_restore() {
    let proxy = start().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut old, b"ping").await, b"ping");

    proxy.blackhole();
    assert_eq!(proxy.mode(), Mode::Blackhole);

    // An existing connection stops forwarding...
    old.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(timeout(SILENCE, old.read_exact(&mut buf)).await.is_err(), "blackholed connection answered");

    // ...and a new one is accepted and held open, but silent.
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    new.write_all(b"void").await.unwrap();
    let mut buf2 = [0u8; 4];
    assert!(timeout(SILENCE, new.read_exact(&mut buf2)).await.is_err(), "blackholed connection answered");
    assert_eq!(proxy.open_connections(), 2);

    proxy.restore();
    connect_and_echo(proxy.addr()).await;
    // Held connections resume and deliver what was sent meanwhile.
    timeout(PROMPTLY, old.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"lost");
    timeout(PROMPTLY, new.read_exact(&mut buf2)).await.unwrap().unwrap();
    assert_eq!(&buf2, b"void");
}

#[tokio::test]
async fn cut_during_blackhole_closes_held_connections() {
    let proxy = start().await;
    proxy.blackhole();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    eventually("connection to be accepted", || proxy.open_connections() == 1).await;

    proxy.cut();
    assert_closed(&mut conn).await;
    proxy.restore();
    connect_and_echo(proxy.addr()).await;
}

#[tokio::test]
async fn drop_stops_listening_and_closes_connections() {
    let proxy = start().await;
    let addr = proxy.addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");

    drop(proxy);
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_closed(&mut conn).await;
}

#[tokio::test]
async fn drop_while_refused_releases_the_port() {
    let proxy = start().await;
    let addr = proxy.addr();
    proxy.refuse();
    drop(proxy);
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn unreachable_upstream_closes_client() {
    // Grab a free port and release it: nothing listens there.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(dead).await.unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_closed(&mut conn).await;
    eventually("connection to be released", || proxy.open_connections() == 0).await;
}

#[test]
fn switches_work_outside_the_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(start());
    // Called from a plain thread, not a runtime worker.
    proxy.refuse();
    proxy.restore();
    assert_eq!(proxy.mode(), Mode::Pass);
    rt.block_on(connect_and_echo(proxy.addr()));
    drop(proxy);
}
