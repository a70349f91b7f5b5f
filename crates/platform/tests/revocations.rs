//! identity's revocations and a gateway's copy of them, on the real Redis,
//! the copy's connections going through a fault proxy.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fault_proxy::FaultProxy;
use platform::revocations::{self, Names, Revocations};
use platform::testing::{RedisPrefix, eventually};
use tokio_util::sync::CancellationToken;

struct Setup {
    redis: RedisPrefix,
    names: Names,
    client: redis::Client,
    proxy: FaultProxy,
    copy: Revocations,
    stop: CancellationToken,
}

/// A namespace with one revoked token, `revoked`, then a copy following it.
async fn setup(revoked: &str) -> Setup {
    let redis = RedisPrefix::new();
    let namespace = redis.prefix.trim_end_matches(':').to_string();
    let names = Names::new(&namespace);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let addr = client.get_connection_info().addr().to_string();
    let addr = addr.trim_start_matches("redis://").parse().unwrap_or_else(|_| "127.0.0.1:6379".parse().unwrap());
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let early = revocations::revoke(&client, &mut con, &names, revoked, Duration::from_secs(60)).await.unwrap();
    assert_eq!(early, revocations::Revoked::default(), "no copy to wait for yet");
    let proxy = FaultProxy::start(addr).await.unwrap();
    let stop = CancellationToken::new();
    let proxied = redis::Client::open(format!("redis://{}", proxy.addr())).unwrap();
    let copy = Revocations::follow(proxied, names.clone(), stop.clone());
    Setup { redis, names, client, proxy, copy, stop }
}

impl Setup {
    async fn revoke(&self, jti: &str) -> revocations::Revoked {
        let mut con = self.client.get_multiplexed_async_connection().await.unwrap();
        revocations::revoke(&self.client, &mut con, &self.names, jti, Duration::from_secs(60)).await.unwrap()
    }

    async fn current(&self) {
        eventually(10, "the copy is current", || async { self.copy.is_current().then_some(()) }).await;
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = &self.redis;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_current_copy_holds_every_revoked_token_the_moment_revoke_returns() {
    let before = uuid::Uuid::now_v7().to_string();
    let s = setup(&before).await;
    s.current().await;
    // Revoked before the copy existed: loaded from the sorted set.
    assert_eq!(s.copy.check(&before), Some(true));

    for _ in 0..20 {
        let jti = uuid::Uuid::now_v7().to_string();
        assert_eq!(s.copy.check(&jti), Some(false));
        let revoked = s.revoke(&jti).await;
        assert_eq!((revoked.acknowledged, revoked.waited_out), (1, 0));
        assert_eq!(s.copy.check(&jti), Some(true));
    }

    // Two logouts of one token at once: each gets its own acknowledgement.
    let jti = uuid::Uuid::now_v7().to_string();
    let (first, second) = tokio::join!(s.revoke(&jti), s.revoke(&jti));
    assert_eq!((first.acknowledged, second.acknowledged), (1, 1), "{first:?} {second:?}");

    // A copy that stops stops trusting itself and leaves: logouts no longer
    // wait for it.
    s.stop.cancel();
    eventually(10, "the stopped copy has left", || async {
        (s.revoke(&uuid::Uuid::now_v7().to_string()).await == revocations::Revoked::default()).then_some(())
    })
    .await;
    assert_eq!(s.copy.check(&jti), None);
}

/// The copy's connections hang (no error, no answer): it cannot acknowledge,
/// so the revocation waits until the copy's window has closed; from then on
/// the copy does not answer for itself (the caller asks Redis). Once the
/// network is back the copy loads what it missed.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_cannot_hear_stops_answering_before_a_revocation_returns() {
    let s = setup("old").await;
    s.current().await;
    s.proxy.blackhole();
    let jti = uuid::Uuid::now_v7().to_string();
    let revoked = s.revoke(&jti).await;
    assert_eq!((revoked.acknowledged, revoked.waited_out), (0, 1));
    assert_eq!(s.copy.check(&jti), None, "a copy that missed a revocation must not answer");
    assert_eq!(s.copy.check("never-revoked"), None);

    s.proxy.restore();
    s.current().await;
    assert_eq!(s.copy.check(&jti), Some(true));
    assert_eq!(s.copy.check("never-revoked"), Some(false));
}
