//! Revoked access tokens (identity's denylist), known to every gateway
//! without a Redis round trip per request, and still failing at once after
//! a logout (docs/adr/0021-revocation-copies.md).
//!
//! - identity revokes a token with [`revoke`]: one script writes the key
//!   `<ns>:identity:denylist:<jti>` (expiring with the token) and adds the
//!   id to the sorted set `<ns>:identity:denylist` (scored with its
//!   expiry), publishes the token id on `<ns>:identity:revocations`, and
//!   reads which gateway copies may be current; then the logout waits until
//!   each of them has acknowledged the token or has stopped trusting
//!   itself, whichever comes first.
//! - Each gateway keeps a [`Revocations`] copy: filled from the sorted set
//!   at start, kept up to date from the channel, each token acknowledged (its
//!   copy's id pushed on `<ns>:identity:revocations:<nonce>`, the nonce of
//!   the logout's call) once applied.
//!
//! # When a copy trusts itself
//! A copy is *current* until [`FRESH`] after the moment it last opened a
//! window: every 100 ms it registers in the sorted set
//! `<ns>:identity:copies` (member: its id, score: Redis's clock plus
//! `FRESH`, in milliseconds), then sends a PING on its subscription, and
//! once the answer is back and every message that arrived before it is
//! applied, it is current until `FRESH` after it started. Redis sends a
//! connection's messages and replies in order, so everything published
//! before the PING is in the copy. While it is not current,
//! [`Revocations::check`] answers `None` and the caller asks Redis itself.
//!
//! Why a logged-out token can never pass a current copy: the revoke script
//! runs at one instant T. A copy that registered before T and whose window
//! may still be open (its registration ends after T minus a 2 s margin for
//! a step of Redis's clock) is in the set [`revoke`] reads: the logout
//! waits for its acknowledgement, or, if none comes (its subscription died
//! without its knowing, it is stuck), `FRESH` after T, when any window
//! opened before T has closed. A copy that registers after T pings after
//! T, so it holds the token (it got the message, or it subscribed after T
//! and loaded the sorted set) before its new window opens. A stopping copy
//! stops trusting itself, then leaves the set. A logout therefore waits at
//! most `FRESH` (500 ms), and only when a copy fails; normally a few
//! hundred microseconds.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

/// How long a copy trusts itself after opening a window.
pub const FRESH: Duration = Duration::from_millis(500);
/// How often a copy opens a new window.
const WINDOW_EVERY: Duration = Duration::from_millis(100);
/// Bound of a copy's Redis calls: a copy that cannot renew in time lets its
/// window close.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// Bound of connecting to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis names of identity's denylist in one namespace.
#[derive(Debug, Clone)]
pub struct Names {
    /// `<namespace>:identity:`.
    prefix: String,
}

impl Names {
    pub fn new(namespace: &str) -> Names {
        Names::with_prefix(format!("{namespace}:identity:"))
    }

    /// `prefix` is identity's key prefix, `<namespace>:identity:`.
    pub fn with_prefix(prefix: String) -> Names {
        Names { prefix }
    }

    /// The key that marks the token `jti` as revoked.
    pub fn denylist_key(&self, jti: &str) -> String {
        format!("{}denylist:{jti}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// Where the copies acknowledge one revocation (`nonce`: the call's).
    fn acks(&self, nonce: &str) -> String {
        format!("{}revocations:{nonce}", self.prefix)
    }

    fn copies(&self) -> String {
        format!("{}copies", self.prefix)
    }

    /// Every revoked token id, scored with when it expires (Redis time, ms):
    /// what a copy loads at start.
    fn index(&self) -> String {
        format!("{}denylist", self.prefix)
    }
}

/// Marks the token `ARGV[2]` for `ARGV[1]` ms, publishes `ARGV[3]`, and
/// answers the copies whose window may be open: every copy registered less
/// than `ARGV[4]` ms before its window's end (a margin for a step of
/// Redis's clock).
const REVOKE: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[4], ARGV[1]) end
redis.call('PUBLISH', KEYS[2], ARGV[3])
local since = now - tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', since)
return redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. since, '+inf')
";

/// Opens a copy's window: its id with Redis's clock plus `ARGV[2]` ms.
const REGISTER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
";

/// What a revocation waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Revoked {
    /// Current copies that acknowledged the token.
    pub acknowledged: usize,
    /// Current copies that did not, whose windows the call waited out.
    pub waited_out: usize,
}

/// How far Redis's clock may step forward between a copy's registration
/// and a revocation without a copy being missed (NTP, a VM resumed).
const CLOCK_MARGIN: Duration = Duration::from_secs(2);

/// Revokes the token `jti` for `ttl` (until it expires): from the moment
/// this returns, no gateway lets it through (see the module's doc).
/// `con` runs the script; a separate connection of `client` waits for the
/// acknowledgements (a blocking pop).
pub async fn revoke(
    client: &redis::Client,
    con: &mut impl redis::aio::ConnectionLike,
    names: &Names,
    jti: &str,
    ttl: Duration,
) -> redis::RedisResult<Revoked> {
    // Acknowledgements of this call only (a second logout of the same
    // token waits for its own).
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let ttl_ms = ttl.as_millis().max(1) as u64;
    let open: Vec<String> = redis::Script::new(REVOKE)
        .key(names.denylist_key(jti))
        .key(names.channel())
        .key(names.copies())
        .key(names.index())
        .arg(ttl_ms)
        .arg(jti)
        .arg(format!("{jti} {ttl_ms} {nonce}"))
        .arg(CLOCK_MARGIN.as_millis() as u64)
        .invoke_async(con)
        .await?;
    if open.is_empty() {
        return Ok(Revoked::default());
    }
    // No window opened before the script ran lasts longer than FRESH from
    // now (on any clock that runs at the same rate as Redis's).
    let deadline = Instant::now() + FRESH;
    let copies = open.len();
    let mut waiting: HashSet<String> = open.into_iter().collect();
    let acks = names.acks(&nonce);
    let config =
        redis::AsyncConnectionConfig::new().set_connection_timeout(Some(FRESH)).set_response_timeout(Some(FRESH * 2));
    let connecting = client.get_multiplexed_async_connection_with_config(&config);
    match tokio::time::timeout_at(deadline.into(), connecting).await {
        Ok(Ok(mut waiter)) => {
            while !waiting.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // BLPOP's timeout is in seconds; 0 would block for ever.
                let mut blpop = redis::cmd("BLPOP");
                blpop.arg(&acks).arg(left.as_secs_f64().max(0.001));
                let popped: RedisPop =
                    tokio::time::timeout(left + Duration::from_millis(100), blpop.query_async(&mut waiter))
                        .await
                        .unwrap_or_else(|_| Ok(None));
                match popped {
                    Ok(Some((_, id))) => {
                        waiting.remove(&id);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for revocation acknowledgements failed");
                        break;
                    }
                }
            }
            // The acknowledgements left expire by themselves (10 s).
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "no connection to wait for revocation acknowledgements"),
        Err(_) => tracing::warn!("no connection to wait for revocation acknowledgements within {FRESH:?}"),
    }
    if !waiting.is_empty() {
        // A copy that did not answer may still trust itself until its
        // window closes: wait that out.
        tokio::time::sleep_until(deadline.into()).await;
        metrics::counter!("revocations_waited_out_total").increment(waiting.len() as u64);
        tracing::warn!(copies = ?waiting, "gateway copies did not acknowledge a revocation; waited their windows out");
    }
    Ok(Revoked { acknowledged: copies - waiting.len(), waited_out: waiting.len() })
}

type RedisPop = redis::RedisResult<Option<(String, String)>>;

/// A gateway's copy of the revoked tokens. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: Instant,
    /// Nanoseconds after `epoch` until which the copy is current; 0: not.
    current_until: AtomicU64,
    /// Revoked token ids and when they expire.
    tokens: Mutex<foldhash::HashMap<Box<str>, Instant>>,
    /// A read copy of their ids per thread that checks tokens: each thread
    /// reads only its own, so checks on different threads share no lock
    /// word. Written with `tokens` held (see [`Inner::local`]).
    per_thread: thread_local::ThreadLocal<RwLock<foldhash::HashSet<Box<str>>>>,
}

impl Inner {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// This thread's read copy, made from `tokens` on first use. Made and
    /// registered with `tokens` held, so no insert can fall between.
    fn local(&self) -> &RwLock<foldhash::HashSet<Box<str>>> {
        if let Some(local) = self.per_thread.get() {
            return local;
        }
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        self.per_thread.get_or(|| RwLock::new(tokens.keys().cloned().collect()))
    }

    /// Adds revoked tokens to the copy and to every thread's read copy.
    fn insert(&self, revoked: impl IntoIterator<Item = (Box<str>, Instant)>) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let added: Vec<Box<str>> = revoked
            .into_iter()
            .filter_map(|(jti, expires)| tokens.insert(jti.clone(), expires).is_none().then_some(jti))
            .collect();
        for local in self.per_thread.iter() {
            local.write().unwrap_or_else(|p| p.into_inner()).extend(added.iter().cloned());
        }
    }

    /// Forgets the tokens that have expired; answers how many are left.
    fn prune(&self, now: Instant) -> usize {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, expires| *expires > now);
        for local in self.per_thread.iter() {
            local.write().unwrap_or_else(|p| p.into_inner()).retain(|jti| tokens.contains_key(jti));
        }
        tokens.len()
    }
}

impl Revocations {
    /// Starts following identity's revocations on `client` until `stop`.
    /// The copy is not current until it has loaded the denylist and opened
    /// its first window.
    pub fn follow(client: redis::Client, names: Names, stop: CancellationToken) -> Revocations {
        let inner = Arc::new(Inner {
            epoch: Instant::now(),
            current_until: AtomicU64::new(0),
            tokens: Mutex::new(foldhash::HashMap::default()),
            per_thread: thread_local::ThreadLocal::new(),
        });
        tokio::spawn(follow(inner.clone(), client, names, stop));
        Revocations { inner }
    }

    /// Whether the token `jti` is revoked, when the copy is current; `None`
    /// when it is not, and Redis must be asked.
    pub fn check(&self, jti: &str) -> Option<bool> {
        if !self.is_current() {
            return None;
        }
        Some(self.inner.local().read().unwrap_or_else(|p| p.into_inner()).contains(jti))
    }

    /// Whether the copy is current now.
    pub fn is_current(&self) -> bool {
        self.inner.nanos(Instant::now()) < self.inner.current_until.load(Ordering::Acquire)
    }
}

async fn follow(inner: Arc<Inner>, client: redis::Client, names: Names, stop: CancellationToken) {
    let id = uuid::Uuid::now_v7().to_string();
    let current = metrics::gauge!("revocations_copy_current");
    let mut pause = Duration::from_millis(500);
    loop {
        let mut was_current = false;
        // It watches `stop` itself, so it can say it stopped.
        let result = follow_once(&inner, &client, &names, &id, &stop, &mut was_current).await;
        inner.current_until.store(0, Ordering::Release);
        current.set(0.0);
        if stop.is_cancelled() {
            return;
        }
        // A copy that had been current starts again after a second; one
        // that keeps failing (Redis down, SUBSCRIBE refused) less and less
        // often.
        pause = if was_current { Duration::from_secs(1) } else { (pause * 2).min(Duration::from_secs(30)) };
        if let Err(e) = result {
            tracing::warn!(
                error = format!("{e:#}"),
                retry_in = ?pause,
                "revocation copy interrupted; tokens are checked in redis meanwhile"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One subscription, from connecting until it fails.
async fn follow_once(
    inner: &Inner,
    client: &redis::Client,
    names: &Names,
    id: &str,
    stop: &CancellationToken,
    was_current: &mut bool,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = bounded(CONNECT_TIMEOUT, client.get_async_pubsub()).await?.split();
    bounded(CALL_TIMEOUT, sink.subscribe(names.channel())).await?;
    let mut con = bounded(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await?;
    load(inner, &mut con, names).await?;
    let register = redis::Script::new(REGISTER);
    let current = metrics::gauge!("revocations_copy_current");
    let size = metrics::gauge!("revocations_copy_tokens");
    let mut tick = tokio::time::interval(WINDOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                // Not trusted any more, then logouts need not wait for it.
                inner.current_until.store(0, Ordering::Release);
                let mut zrem = redis::cmd("ZREM");
                zrem.arg(names.copies()).arg(id);
                let _ = bounded(CALL_TIMEOUT, zrem.query_async::<()>(&mut con)).await;
                return Ok(());
            }
            msg = stream.next() => {
                let first = msg.ok_or_else(|| anyhow::anyhow!("the subscription was closed"))?;
                let mut msgs = vec![first];
                msgs.extend(ready(&mut stream)?);
                apply(inner, &mut con, names, id, &msgs).await?;
            }
            _ = tick.tick() => {
                let opened = Instant::now();
                bounded(CALL_TIMEOUT, register.key(names.copies()).arg(id).arg(FRESH.as_millis() as u64).invoke_async::<()>(&mut con))
                    .await?;
                bounded(CALL_TIMEOUT, sink.ping::<redis::Value>()).await?;
                // Whatever arrived before the answer is queued by now.
                let msgs = ready(&mut stream)?;
                apply(inner, &mut con, names, id, &msgs).await?;
                inner.current_until.store(inner.nanos(opened + FRESH), Ordering::Release);
                current.set(1.0);
                *was_current = true;
                if pruned.elapsed() > Duration::from_secs(10) {
                    pruned = Instant::now();
                    size.set(inner.prune(pruned) as f64);
                }
            }
        }
    }
}

/// Adds every revoked token in Redis to the copy (entries already there
/// stay: a token is never un-revoked).
async fn load(inner: &Inner, con: &mut redis::aio::MultiplexedConnection, names: &Names) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME").cmd("ZRANGE").arg(names.index()).arg(0).arg(-1).arg("WITHSCORES");
    let ((secs, micros), listed): ((u64, u64), Vec<(String, u64)>) =
        bounded(CONNECT_TIMEOUT, pipe.query_async(con)).await?;
    let (now, redis_now) = (Instant::now(), secs * 1000 + micros / 1000);
    inner.insert(
        listed
            .into_iter()
            .filter(|(_, expires_ms)| *expires_ms > redis_now)
            .map(|(jti, expires_ms)| (jti.into_boxed_str(), now + Duration::from_millis(expires_ms - redis_now))),
    );
    Ok(())
}

/// The messages already queued on the subscription, all of them (outside
/// tokio's cooperative budget, which could otherwise say "none" while some
/// are queued).
fn ready(stream: &mut redis::aio::PubSubStream) -> anyhow::Result<Vec<redis::Msg>> {
    let mut msgs = Vec::new();
    while let Some(next) = tokio::task::unconstrained(stream.next()).now_or_never() {
        msgs.push(next.ok_or_else(|| anyhow::anyhow!("the subscription was closed"))?);
    }
    Ok(msgs)
}

/// Adds published tokens to the copy, then acknowledges them, in one
/// round trip.
async fn apply(
    inner: &Inner,
    con: &mut redis::aio::MultiplexedConnection,
    names: &Names,
    id: &str,
    msgs: &[redis::Msg],
) -> anyhow::Result<()> {
    let now = Instant::now();
    let mut revoked = Vec::with_capacity(msgs.len());
    let mut pipe = redis::pipe();
    for msg in msgs {
        let payload: String = msg.get_payload()?;
        let mut fields = payload.split(' ');
        let (Some(jti), Some(Ok(ttl_ms)), Some(nonce)) =
            (fields.next(), fields.next().map(str::parse::<u64>), fields.next())
        else {
            tracing::warn!(payload, "unreadable revocation message ignored");
            continue;
        };
        revoked.push((Box::<str>::from(jti), now + Duration::from_millis(ttl_ms)));
        let acks = names.acks(nonce);
        pipe.rpush(&acks, id).ignore().pexpire(&acks, 10_000).ignore();
    }
    if revoked.is_empty() {
        return Ok(());
    }
    inner.insert(revoked);
    bounded(CALL_TIMEOUT, pipe.query_async::<()>(con)).await?;
    Ok(())
}

/// `call` within `limit`.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("redis did not answer within {limit:?}"),
    }
}
