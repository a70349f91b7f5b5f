//! Redis cache-aside for read paths. Redis makes reads cheaper; it is never
//! needed for a correct answer.
//!
//! - [`Cache::get_or_load`] answers from Redis, or runs the loader (the
//!   database query) and stores its JSON for a TTL.
//! - Entries are invalidated explicitly, by the service's own change events
//!   (several replicas of a service share one Redis, so one invalidation is
//!   seen by all), and the TTL bounds staleness when an invalidation is lost.
//!   One key: [`Cache::invalidate`]. Sets of keys that cannot be listed (list
//!   and search pages): the keys embed a per-scope generation
//!   ([`Cache::get_or_load_in`], or [`Cache::generation`] by hand) and
//!   [`Cache::bump`] moves the scope to a new generation at once; the old
//!   entries are never read again and expire by their TTL.
//! - A load that overlaps an invalidation does not store its (possibly stale)
//!   value: each key has a version, bumped by `invalidate`, and the value is
//!   stored only if the version is still the one seen before loading.
//!   Invalidate after the database transaction commits.
//! - When Redis is down, slow or hung, every call still answers: each Redis
//!   round trip is bounded by a short timeout (100 ms by default), and after a
//!   failure Redis is skipped for a cool-down (1 s by default) so requests do
//!   not each pay the timeout; one request per cool-down probes it again. An
//!   outage logs one warning and its end one info line. Invalidations that
//!   could not reach Redis are replayed when it is back (up to
//!   [`MAX_PENDING`]; beyond that the TTL bounds staleness).
//!
//! # Keys (all under the prefix, e.g. `feira:catalog:`)
//! - `<prefix>e:<key>`: an entry (JSON), with its TTL (minus up to 10 %
//!   jitter, so entries written together do not expire together);
//! - `<prefix>e:<scope>@g<generation>/<key>`: an entry of a scope
//!   ([`Cache::get_or_load_in`]);
//! - `<prefix>v:<key>`: the key's version, incremented by `invalidate`,
//!   expiring after an hour;
//! - `<prefix>g:<scope>`: a scope's generation. It starts at the current
//!   Unix time in milliseconds, so a generation key lost to eviction or a
//!   Redis restart never comes back to a number whose entries still exist.
//!
//! # Metrics (label `cache`: the name, by default the prefix without its
//! trailing `:`)
//! - `cache_requests_total{cache, result}`: `result` is `hit`, `miss`,
//!   `error` (Redis failed; answered by the loader) or `bypass` (Redis
//!   skipped during a cool-down; answered by the loader);
//! - `cache_errors_total{cache, op}`: failed Redis round trips;
//! - `cache_available{cache}`: 1 while Redis answers, 0 during an outage.
//!
//! Readiness reports [`Cache::is_available`] but does not fail on it: the
//! service answers from its database meanwhile.
//!
//! Values are JSON. One Redis (not Redis Cluster) is assumed: an entry and
//! its version are read with one `MGET`.
//!
//! # Example
//! ```no_run
//! # async fn example(pool: sqlx::PgPool, query: (String, u32)) -> Result<(), sqlx::Error> {
//! use std::time::Duration;
//! use platform::cache::{Cache, key_hash};
//!
//! let cache = Cache::new("redis://127.0.0.1:6379", "feira:catalog:");
//! let name: String = cache
//!     .get_or_load("product:42", Duration::from_secs(300), async {
//!         sqlx::query_scalar("SELECT name FROM products WHERE id = 42").fetch_one(&pool).await
//!     })
//!     .await?;
//! let page: Vec<String> = cache
//!     .get_or_load_in("products", &format!("list:{}", key_hash(&query)), Duration::from_secs(60), async {
//!         sqlx::query_scalar("SELECT name FROM products ORDER BY name").fetch_all(&pool).await
//!     })
//!     .await?;
//! // Once the change to product 42 is committed (or its event consumed):
//! cache.invalidate(&["product:42"]).await;
//! cache.bump("products").await;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The longest a Redis round trip may take before the request goes on without it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is skipped after a failure before one request probes it again.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
/// Invalidations kept for replay while Redis is unreachable.
pub const MAX_PENDING: usize = 10_000;
/// Time given to opening a connection (in the background; requests do not wait that long).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime of a key's version: longer than any load can take.
const VERSION_TTL: Duration = Duration::from_secs(3600);

/// Stores `ARGV[2]` at `KEYS[1]` for `ARGV[3]` ms only if the version at
/// `KEYS[2]` is still `ARGV[1]` (no invalidation since the value was read).
const STORE_IF_UNCHANGED: &str = r"
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Tuning of a [`Cache`].
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Metrics label; `None`: the prefix without its trailing `:`.
    pub name: Option<String>,
    /// Bound of every Redis round trip.
    pub timeout: Duration,
    /// How long Redis is skipped after a failure.
    pub cooldown: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { name: None, timeout: DEFAULT_TIMEOUT, cooldown: DEFAULT_COOLDOWN }
    }
}

/// A Redis cache-aside handle. Cheap to clone; clones share the connection,
/// the circuit breaker and the pending invalidations.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    prefix: String,
    client: Result<redis::Client, String>,
    timeout: Duration,
    breaker: Breaker,
    connection: Mutex<Option<Connection>>,
    next_connection_id: AtomicU64,
    pending: Mutex<Pending>,
}

/// The shared connection manager (it reconnects by itself after a dropped
/// connection) and whether it has ever answered.
#[derive(Clone)]
struct Connection {
    id: u64,
    manager: ConnectionManager,
    answered: Arc<AtomicBool>,
}

/// Invalidations that failed while Redis was unreachable.
#[derive(Default)]
struct Pending {
    keys: BTreeSet<String>,
    scopes: BTreeSet<String>,
    overflowed: bool,
}

/// What happened to one Redis round trip.
enum Outcome<T> {
    Done(T),
    /// Redis was skipped: the breaker is open.
    Bypassed,
    /// Redis failed or timed out.
    Failed,
}

/// A command or a pipeline, run the same way.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
}

impl Request<'_> {
    async fn query<T: FromRedisValue>(self, con: &mut ConnectionManager) -> Result<T, RedisError> {
        match self {
            Request::Cmd(c) => c.query_async(con).await,
            Request::Pipeline(p) => p.query_async(con).await,
        }
    }
}

impl Cache {
    /// A cache whose keys all start with `prefix` (e.g. `feira:catalog:`).
    /// Never fails and opens nothing: the connection is made on first use,
    /// and an invalid URL behaves as a Redis that is down.
    pub fn new(redis_url: &str, prefix: impl Into<String>) -> Self {
        Self::with_options(redis_url, prefix, CacheOptions::default())
    }

    pub fn with_options(redis_url: &str, prefix: impl Into<String>, options: CacheOptions) -> Self {
        let prefix = prefix.into();
        let name = options.name.unwrap_or_else(|| default_name(&prefix));
        let client = redis::Client::open(redis_url).map_err(|e| e.to_string());
        Cache {
            inner: Arc::new(Inner {
                name,
                prefix,
                client,
                timeout: options.timeout,
                breaker: Breaker::new(options.cooldown),
                connection: Mutex::new(None),
                next_connection_id: AtomicU64::new(0),
                pending: Mutex::new(Pending::default()),
            }),
        }
    }

    /// The metrics label of this cache.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The value cached at `key`, or `load`'s value, stored for `ttl`. An
    /// error of `load` is returned and nothing is stored. Redis failing never
    /// fails the call: the value is loaded instead.
    #[tracing::instrument(name = "cache.get_or_load", level = "debug", skip_all, fields(cache = %self.inner.name, key = %key))]
    pub async fn get_or_load<T, E>(
        &self,
        key: &str,
        ttl: Duration,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
    {
        self.lookup_or_load(key, ttl, load).await
    }

    /// [`get_or_load`](Self::get_or_load) for a key that belongs to `scope`
    /// (a list or search page): the key is stored under the scope's current
    /// generation, so [`bump`](Self::bump) invalidates every key of the
    /// scope. When the generation cannot be read, `load` answers and nothing
    /// is cached.
    #[tracing::instrument(name = "cache.get_or_load_in", level = "debug", skip_all, fields(cache = %self.inner.name, scope = %scope, key = %key))]
    pub async fn get_or_load_in<T, E>(
        &self,
        scope: &str,
        key: &str,
        ttl: Duration,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
    {
        match self.read_generation(scope).await {
            Outcome::Done(generation) => {
                self.lookup_or_load(&generational_key(scope, key, generation), ttl, load).await
            }
            Outcome::Bypassed => {
                self.count("bypass");
                load.await
            }
            Outcome::Failed => {
                self.count("error");
                load.await
            }
        }
    }

    /// Removes `keys`, and makes loads that started before this call not
    /// store their value. Call it after the change is committed. When Redis
    /// is unreachable the keys are invalidated once it is back.
    #[tracing::instrument(name = "cache.invalidate", level = "debug", skip_all, fields(cache = %self.inner.name, keys = keys.len()))]
    pub async fn invalidate(&self, keys: &[&str]) {
        if keys.is_empty() {
            return;
        }
        let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        if !self.try_invalidate(&owned).await {
            self.remember(owned, Vec::new());
        }
    }

    /// The current generation of `scope`, to embed with the scope in the keys
    /// of its entries (`products:list:g{generation}:{hash}` for the scope
    /// `products`); `None` when Redis is unavailable, and then nothing should
    /// be cached (the loader answers). [`get_or_load_in`](Self::get_or_load_in)
    /// does all of this.
    pub async fn generation(&self, scope: &str) -> Option<u64> {
        match self.read_generation(scope).await {
            Outcome::Done(generation) => Some(generation),
            Outcome::Bypassed | Outcome::Failed => None,
        }
    }

    /// Moves `scope` to a new generation: every entry cached under an older
    /// one is never read again (and expires by its TTL). When Redis is
    /// unreachable the scope is bumped once it is back.
    #[tracing::instrument(name = "cache.bump", level = "debug", skip_all, fields(cache = %self.inner.name, scope = %scope))]
    pub async fn bump(&self, scope: &str) {
        if !self.try_bump(scope).await {
            self.remember(Vec::new(), vec![scope.to_string()]);
        }
    }

    /// Whether Redis answers now (a `PING`, within the timeout; false without
    /// asking during a cool-down). For readiness reports, which must not fail
    /// because of it.
    pub async fn is_available(&self) -> bool {
        matches!(self.run::<String>("ping", Request::Cmd(&redis::cmd("PING"))).await, Outcome::Done(_))
    }

    async fn lookup_or_load<T, E>(
        &self,
        key: &str,
        ttl: Duration,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
    {
        let entry = self.entry_key(key);
        let version_key = self.version_key(key);
        let mut read = redis::cmd("MGET");
        read.arg(&entry).arg(&version_key);
        let version = match self.run::<(Option<Vec<u8>>, Option<String>)>("get", Request::Cmd(&read)).await {
            Outcome::Done((Some(bytes), version)) => match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    self.count("hit");
                    return Ok(value);
                }
                Err(error) => {
                    // Written by an older shape of the type: replaced below.
                    tracing::debug!(%error, key, "cached value does not decode; loading it again");
                    self.count("miss");
                    version
                }
            },
            Outcome::Done((None, version)) => {
                self.count("miss");
                version
            }
            Outcome::Bypassed => {
                self.count("bypass");
                return load.await;
            }
            Outcome::Failed => {
                self.count("error");
                return load.await;
            }
        };
        let value = load.await?;
        match serde_json::to_vec(&value) {
            Ok(json) => {
                let mut store = redis::cmd("EVAL");
                store
                    .arg(STORE_IF_UNCHANGED)
                    .arg(2)
                    .arg(&entry)
                    .arg(&version_key)
                    .arg(version.as_deref().unwrap_or("0"))
                    .arg(json)
                    .arg(jittered_ttl(ttl, fastrand::f64()).as_millis().max(1) as u64);
                // Stored or not (an invalidation came first), the answer is `value`.
                let _ = self.run::<i64>("set", Request::Cmd(&store)).await;
            }
            Err(error) => tracing::warn!(%error, key, "value cannot be cached as JSON"),
        }
        Ok(value)
    }

    async fn read_generation(&self, scope: &str) -> Outcome<u64> {
        let key = self.generation_key(scope);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg(unix_millis()).arg("NX").ignore().cmd("GET").arg(&key);
        match self.run::<(Option<u64>,)>("generation", Request::Pipeline(&pipe)).await {
            Outcome::Done((Some(generation),)) => Outcome::Done(generation),
            // Deleted between the two commands: treat as unavailable once.
            Outcome::Done((None,)) | Outcome::Failed => Outcome::Failed,
            Outcome::Bypassed => Outcome::Bypassed,
        }
    }

    async fn try_invalidate(&self, keys: &[String]) -> bool {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            let version = self.version_key(key);
            pipe.cmd("INCR").arg(&version).ignore();
            pipe.cmd("PEXPIRE").arg(&version).arg(VERSION_TTL.as_millis() as u64).ignore();
            pipe.cmd("DEL").arg(self.entry_key(key)).ignore();
        }
        matches!(self.run::<()>("invalidate", Request::Pipeline(&pipe)).await, Outcome::Done(()))
    }

    async fn try_bump(&self, scope: &str) -> bool {
        let key = self.generation_key(scope);
        let mut pipe = redis::pipe();
        // A lost generation key restarts from the clock, never from 1.
        pipe.atomic().cmd("SET").arg(&key).arg(unix_millis()).arg("NX").ignore().cmd("INCR").arg(&key).ignore();
        matches!(self.run::<()>("bump", Request::Pipeline(&pipe)).await, Outcome::Done(()))
    }

    fn remember(&self, keys: Vec<String>, scopes: Vec<String>) {
        let mut pending = lock(&self.inner.pending);
        for key in keys {
            if pending.keys.len() + pending.scopes.len() >= MAX_PENDING {
                pending.overflowed = true;
                break;
            }
            pending.keys.insert(key);
        }
        for scope in scopes {
            if pending.keys.len() + pending.scopes.len() >= MAX_PENDING {
                pending.overflowed = true;
                break;
            }
            pending.scopes.insert(scope);
        }
    }

    /// Replays the invalidations that failed during an outage.
    async fn replay_pending(self) {
        let Pending { keys, scopes, overflowed } = std::mem::take(&mut *lock(&self.inner.pending));
        if overflowed {
            tracing::warn!(
                cache = %self.inner.name,
                max = MAX_PENDING,
                "more invalidations failed during the redis outage than are kept; some entries stay stale until their ttl"
            );
        }
        if keys.is_empty() && scopes.is_empty() {
            return;
        }
        tracing::info!(cache = %self.inner.name, keys = keys.len(), scopes = scopes.len(), "replaying invalidations missed during the redis outage");
        let keys: Vec<String> = keys.into_iter().collect();
        for chunk in keys.chunks(100) {
            if !self.try_invalidate(chunk).await {
                self.remember(chunk.to_vec(), Vec::new());
            }
        }
        for scope in scopes {
            if !self.try_bump(&scope).await {
                self.remember(Vec::new(), vec![scope]);
            }
        }
    }

    /// One Redis round trip through the breaker, within the timeout.
    async fn run<T: FromRedisValue>(&self, op: &'static str, request: Request<'_>) -> Outcome<T> {
        let inner = &self.inner;
        if !inner.breaker.admit(inner.breaker.now_ms()) {
            return Outcome::Bypassed;
        }
        let Some(connection) = self.connection() else {
            self.failed(op, "the redis url is invalid or no connection can be made", false);
            return Outcome::Failed;
        };
        let mut manager = connection.manager.clone();
        let attempt = async {
            match request.query::<T>(&mut manager).await {
                // The manager has started reconnecting: one more try, within the same timeout.
                Err(e) if e.is_connection_dropped() || e.is_connection_refusal() => request.query(&mut manager).await,
                other => other,
            }
        };
        match tokio::time::timeout(inner.timeout, attempt).await {
            Ok(Ok(value)) => {
                connection.answered.store(true, Ordering::Relaxed);
                self.succeeded();
                Outcome::Done(value)
            }
            Ok(Err(error)) => {
                let timed_out = error.is_timeout();
                self.failed(op, &error.to_string(), timed_out);
                if timed_out {
                    self.forget_connection(&connection);
                }
                Outcome::Failed
            }
            Err(_) => {
                self.failed(op, "timed out", true);
                self.forget_connection(&connection);
                Outcome::Failed
            }
        }
    }

    /// The shared connection manager, made on first use.
    fn connection(&self) -> Option<Connection> {
        let inner = &self.inner;
        let client = inner.client.as_ref().ok()?;
        let mut slot = lock(&inner.connection);
        if let Some(connection) = &*slot {
            return Some(connection.clone());
        }
        // No retries inside the manager: the breaker paces reconnection.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(inner.timeout));
        let manager = match ConnectionManager::new_lazy_with_config(client.clone(), config) {
            Ok(manager) => manager,
            Err(error) => {
                tracing::debug!(cache = %inner.name, %error, "cannot make a redis connection manager");
                return None;
            }
        };
        // Connect in the background, so a connection slower than the request
        // timeout still completes.
        let mut warm = manager.clone();
        tokio::spawn(async move {
            let _ = redis::cmd("PING").query_async::<String>(&mut warm).await;
        });
        let connection = Connection {
            id: inner.next_connection_id.fetch_add(1, Ordering::Relaxed),
            manager,
            answered: Arc::new(AtomicBool::new(false)),
        };
        *slot = Some(connection.clone());
        Some(connection)
    }

    /// Drops a connection that answered before and now times out (a hung
    /// server or a silently dead link): the next probe connects afresh. A
    /// connection still being made is kept, so a slow one can complete.
    fn forget_connection(&self, connection: &Connection) {
        if !connection.answered.load(Ordering::Relaxed) {
            return;
        }
        let mut slot = lock(&self.inner.connection);
        if slot.as_ref().is_some_and(|c| c.id == connection.id) {
            *slot = None;
        }
    }

    fn succeeded(&self) {
        let inner = &self.inner;
        match inner.breaker.succeed() {
            Transition::Recovered => {
                tracing::info!(cache = %inner.name, "redis is available again; caching resumes");
                metrics::gauge!("cache_available", "cache" => inner.name.clone()).set(1.0);
                tokio::spawn(self.clone().replay_pending());
            }
            Transition::First => metrics::gauge!("cache_available", "cache" => inner.name.clone()).set(1.0),
            Transition::Lost | Transition::Same => {}
        }
    }

    fn failed(&self, op: &'static str, error: &str, timed_out: bool) {
        let inner = &self.inner;
        metrics::counter!("cache_errors_total", "cache" => inner.name.clone(), "op" => op).increment(1);
        match inner.breaker.fail(inner.breaker.now_ms()) {
            Transition::Lost => {
                tracing::warn!(
                    cache = %inner.name,
                    op,
                    error,
                    timed_out,
                    cooldown_ms = inner.breaker.cooldown_ms,
                    "redis is unavailable; answering from the database until it is back"
                );
                metrics::gauge!("cache_available", "cache" => inner.name.clone()).set(0.0);
            }
            _ => tracing::debug!(cache = %inner.name, op, error, "redis still unavailable"),
        }
    }

    fn count(&self, result: &'static str) {
        metrics::counter!("cache_requests_total", "cache" => self.inner.name.clone(), "result" => result).increment(1);
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}e:{key}", self.inner.prefix)
    }

    fn version_key(&self, key: &str) -> String {
        format!("{}v:{key}", self.inner.prefix)
    }

    fn generation_key(&self, scope: &str) -> String {
        format!("{}g:{scope}", self.inner.prefix)
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A short, stable digest of a query's parameters, for keys of list pages:
/// `format!("products:list:{}", key_hash(&query))`. Equal values give equal
/// hashes when their JSON is equal (structs serialize in field order; a
/// `HashMap` does not, which costs misses, never wrong answers).
pub fn key_hash(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..12])
}

/// The key of an entry of `scope` at `generation` (scopes start at the same
/// clock reading, so the scope is part of the key).
fn generational_key(scope: &str, key: &str, generation: u64) -> String {
    format!("{scope}@g{generation}/{key}")
}

fn default_name(prefix: &str) -> String {
    let name = prefix.trim_end_matches(':');
    if name.is_empty() { "cache".to_string() } else { name.to_string() }
}

/// `ttl` less up to 10 % (`unit` in `0..1`), so entries stored together do
/// not all expire together; never longer than `ttl`.
fn jittered_ttl(ttl: Duration, unit: f64) -> Duration {
    ttl.mul_f64(1.0 - 0.1 * unit.clamp(0.0, 1.0))
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

#[derive(Debug, PartialEq, Eq)]
enum Transition {
    /// First answer ever.
    First,
    /// Redis answers again after an outage.
    Recovered,
    /// An outage starts.
    Lost,
    Same,
}

/// A tiny circuit breaker: after a failure, calls are refused for a
/// cool-down; then one call (the probe) is let through while the others
/// still wait, and its result closes or reopens the breaker.
struct Breaker {
    started: Instant,
    cooldown_ms: u64,
    /// Milliseconds since `started` before which calls are refused; 0: closed.
    open_until: AtomicU64,
    state: AtomicU8,
}

impl Breaker {
    fn new(cooldown: Duration) -> Self {
        Breaker {
            started: Instant::now(),
            cooldown_ms: cooldown.as_millis() as u64,
            open_until: AtomicU64::new(0),
            state: AtomicU8::new(UNKNOWN),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether a call may go to Redis at `now`.
    fn admit(&self, now: u64) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now < until {
            return false;
        }
        // Cool-down over: the caller that wins this swap probes; the others
        // keep bypassing for another cool-down unless the probe succeeds.
        self.open_until.compare_exchange(until, self.deadline(now), Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn succeed(&self) -> Transition {
        self.open_until.store(0, Ordering::Release);
        match self.state.swap(UP, Ordering::AcqRel) {
            UNKNOWN => Transition::First,
            DOWN => Transition::Recovered,
            _ => Transition::Same,
        }
    }

    fn fail(&self, now: u64) -> Transition {
        self.open_until.store(self.deadline(now), Ordering::Release);
        match self.state.swap(DOWN, Ordering::AcqRel) {
            DOWN => Transition::Same,
            _ => Transition::Lost,
        }
    }

    fn deadline(&self, now: u64) -> u64 {
        (now + self.cooldown_ms).max(1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn assert_send<F: Future + Send>(_: F) {}

    #[test]
    fn the_calls_can_be_awaited_in_axum_handlers_and_spawned_tasks() {
        let cache = Cache::new("redis://127.0.0.1:6379", "x:");
        assert_send(cache.get_or_load("k", Duration::from_secs(1), async { Ok::<_, ()>(1) }));
        assert_send(cache.get_or_load_in("s", "k", Duration::from_secs(1), async { Ok::<_, ()>(1) }));
        assert_send(cache.invalidate(&["k"]));
        assert_send(cache.bump("s"));
        assert_send(cache.generation("s"));
        assert_send(cache.is_available());
    }

    #[test]
    fn keys_are_namespaced_by_prefix_and_kind() {
        let cache = Cache::new("redis://127.0.0.1:6379", "feira:catalog:");
        assert_eq!(cache.entry_key("product:1"), "feira:catalog:e:product:1");
        assert_eq!(cache.version_key("product:1"), "feira:catalog:v:product:1");
        assert_eq!(cache.generation_key("products"), "feira:catalog:g:products");
        assert_eq!(generational_key("products", "list:ab12", 7), "products@g7/list:ab12");
        assert_ne!(generational_key("owner:1", "list", 7), generational_key("owner:2", "list", 7));
        assert_eq!(cache.name(), "feira:catalog");
    }

    #[test]
    fn an_invalid_url_makes_a_cache_that_never_connects() {
        let cache = Cache::new("not a url", "x:");
        assert!(cache.inner.client.is_err());
        assert_eq!(default_name(":::"), "cache");
    }

    #[test]
    fn jitter_only_shortens_the_ttl_by_at_most_a_tenth() {
        let ttl = Duration::from_secs(100);
        assert_eq!(jittered_ttl(ttl, 0.0), ttl);
        assert_eq!(jittered_ttl(ttl, 1.0), Duration::from_secs(90));
        for unit in [0.25, 0.5, 0.99, 7.0, -1.0] {
            let t = jittered_ttl(ttl, unit);
            assert!(t <= ttl && t >= Duration::from_secs(90), "{t:?}");
        }
    }

    #[test]
    fn key_hashes_are_stable_and_tell_queries_apart() {
        #[derive(Serialize)]
        struct Query<'a> {
            owner: &'a str,
            page: u32,
        }
        let a = key_hash(&Query { owner: "o1", page: 1 });
        assert_eq!(a, key_hash(&Query { owner: "o1", page: 1 }));
        assert_ne!(a, key_hash(&Query { owner: "o1", page: 2 }));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn the_breaker_skips_redis_during_the_cooldown_then_lets_one_probe_through() {
        let b = Breaker::new(Duration::from_millis(1000));
        assert!(b.admit(5));
        assert_eq!(b.succeed(), Transition::First);
        assert!(b.admit(10));

        assert_eq!(b.fail(100), Transition::Lost);
        assert!(!b.admit(500));
        assert!(!b.admit(1099));
        // One probe after the cool-down; concurrent callers keep bypassing.
        assert!(b.admit(1100));
        assert!(!b.admit(1101));
        // The probe fails: another cool-down, without a second warning.
        assert_eq!(b.fail(1150), Transition::Same);
        assert!(!b.admit(2000));
        assert!(b.admit(2150));
        // The probe succeeds: closed again, and the recovery is reported once.
        assert_eq!(b.succeed(), Transition::Recovered);
        assert!(b.admit(2151));
        assert_eq!(b.succeed(), Transition::Same);
    }

    #[test]
    fn a_zero_cooldown_still_reports_the_outage_once() {
        let b = Breaker::new(Duration::ZERO);
        assert_eq!(b.fail(0), Transition::Lost);
        assert!(b.admit(1));
        assert_eq!(b.fail(1), Transition::Same);
    }

    #[test]
    fn failed_invalidations_are_kept_up_to_a_bound() {
        let cache = Cache::new("redis://127.0.0.1:1", "x:");
        cache.remember(vec!["a".into(), "a".into(), "b".into()], vec!["s".into()]);
        {
            let p = lock(&cache.inner.pending);
            assert_eq!(p.keys.len(), 2);
            assert_eq!(p.scopes.len(), 1);
            assert!(!p.overflowed);
        }
        cache.remember((0..MAX_PENDING).map(|i| i.to_string()).collect(), Vec::new());
        let p = lock(&cache.inner.pending);
        assert_eq!(p.keys.len() + p.scopes.len(), MAX_PENDING);
        assert!(p.overflowed);
    }
}
