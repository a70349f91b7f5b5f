//! Rate limits shared by every gateway replica, and the token denylist, in
//! one Redis round trip, or none.
//!
//! The denylist is answered by this gateway's copy of it
//! (`platform::revocations`, docs/adr/0021-revocation-copies.md) while the
//! copy is current; the Redis checks below apply to it only otherwise.
//!
//! One Lua script (atomic) first answers whether the token's `jti` is on
//! identity's denylist (`<namespace>:identity:denylist:<jti>`), then runs
//! GCRA (the generic cell rate algorithm, as redis-cell and go-redis's
//! redis_rate do) on the caller's key
//! `<namespace>:gateway:rl:<policy>:<user or ip>`: one theoretical arrival
//! time per key, expiring when the key is idle. A refused request consumes
//! nothing. The checks waiting on a serving thread travel together: one
//! round trip carries all of them, the script applying the bucket checks in
//! order, each as its own call would (see [`run_batches`]). While a bucket
//! is at least half full a thread takes a few tokens ahead (a lease, see
//! [`lease_size`]); its requests on leased tokens ask Redis only for the
//! denylist, with a plain `MGET` (docs/adr/0020-gateway-hot-path.md).
//!
//! When Redis cannot be reached each replica falls back to its own
//! in-process limiter (governor, same rate and burst: with N replicas the
//! effective limit is up to N times higher while Redis is down), and the
//! denylist is not consulted unless `FEIRA_GATEWAY_DENYLIST_FAIL_MODE` is
//! `closed`; see docs/adr/0013-gateway.md.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use platform::revocations::{Names, Revocations};

use crate::routes::Policy;

/// A batch of checks, applied in order as if each were its own call: for
/// check `i` (from 0), `KEYS[2i+1]` is its rate-limit key and `KEYS[2i+2]`
/// its denylist key (or ""); `ARGV[3i+1]` the emission interval in
/// microseconds, `ARGV[3i+2]` the burst, `ARGV[3i+3]` how many tokens the
/// caller would like (1, or 1 plus a lease). Returns five numbers per check:
/// `verdict, remaining, retry_after_us, reset_us, granted`, where verdict is
/// 1 allowed, 0 limited, -1 revoked. More than one token is granted only
/// while the bucket stays at least half full; below that every request
/// takes its own token, exactly.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
-- Within a batch a key is read once and written once: the same caller's
-- checks see each other's effect through these tables, as sequential calls
-- would through Redis.
local revoked, tats, taken = {}, {}, {}
local n = 0
local function answer(a, b, c, d, e)
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = a, b, c, d, e
  n = n + 5
end
for i = 1, #KEYS / 2 do
  local rate_key, deny_key = KEYS[2 * i - 1], KEYS[2 * i]
  local is_revoked = false
  if deny_key ~= "" then
    is_revoked = revoked[deny_key]
    if is_revoked == nil then
      is_revoked = redis.call('EXISTS', deny_key) == 1
      revoked[deny_key] = is_revoked
    end
  end
  if is_revoked then
    answer(-1, 0, 0, 0, 0)
  else
    local interval = tonumber(ARGV[3 * i - 2])
    local burst = tonumber(ARGV[3 * i - 1])
    local want = tonumber(ARGV[3 * i])
    local tat = tats[rate_key]
    if tat == nil then tat = tonumber(redis.call('GET', rate_key) or now) end
    if tat < now then tat = now end
    -- Tokens in the bucket now.
    local avail = math.floor((now - tat) / interval) + burst
    if avail < 1 then
      tats[rate_key] = tat
      answer(0, 0, tat + interval - burst * interval - now, tat - now, 0)
    else
      local grant = 1
      if want > 1 and avail - want >= burst / 2 then grant = want end
      local new_tat = tat + grant * interval
      tats[rate_key] = new_tat
      taken[rate_key] = true
      answer(1, avail - grant, 0, new_tat - now, grant)
    end
  end
end
for key in pairs(taken) do
  local tat = tats[key]
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
return out
"#;

/// How long a thread may use the tokens it took ahead (a lease).
const LEASE_TTL: Duration = Duration::from_secs(5);

/// The tokens a thread takes ahead from a bucket: a sixteenth of the burst,
/// at most 64 (0: none; small limits are always checked one by one).
fn lease_size(p: &Policy) -> u32 {
    (p.burst / 16).min(64)
}

/// Tokens this thread took ahead from one bucket.
struct Lease {
    left: u32,
    /// What the bucket held after they were taken.
    remaining: u32,
    reset_secs: u64,
    until: Instant,
}

/// The most checks sent in one script call.
const MAX_BATCH: usize = 64;

/// What the rate limit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub allowed: bool,
    /// The burst: requests that may be sent at once.
    pub limit: u32,
    /// Requests left right now (unknown from the local fallback).
    pub remaining: Option<u32>,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a refused request may be sent again.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub revoked: bool,
    pub rate: Option<Rate>,
}

type Local = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

pub struct Limits {
    /// The connection made at start, used until a thread has its own.
    redis: Arc<OnceLock<ConnectionManager>>,
    /// One batcher per serving thread (with its own connection, made by a
    /// task on that thread's runtime), so a request's round trip wakes no
    /// other thread.
    per_thread: thread_local::ThreadLocal<Batcher>,
    client: redis::Client,
    shutdown: tokio_util::sync::CancellationToken,
    script: Arc<redis::Script>,
    rate_prefix: String,
    /// identity's denylist, copied here (see platform::revocations).
    revocations: Revocations,
    names: Names,
    local: HashMap<String, Local>,
    deny_fail_closed: bool,
}

impl Limits {
    /// `namespace` is `config.messaging.namespace`. Connects to Redis in the
    /// background (the gateway starts and serves without it).
    pub fn new(
        namespace: &str,
        redis_url: &str,
        policies: &[Arc<Policy>],
        deny_fail_closed: bool,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut local = HashMap::new();
        for p in policies {
            let period = p.per / p.rate;
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .ok_or_else(|| anyhow::anyhow!("rate limit {}: period too small", p.name))?
                .allow_burst(NonZeroU32::new(p.burst).unwrap_or(NonZeroU32::MIN));
            local.insert(p.name.clone(), DefaultKeyedRateLimiter::keyed(quota).with_middleware());
        }
        let redis = Arc::new(OnceLock::new());
        let client = redis::Client::open(redis_url)?;
        tokio::spawn(connect(client.clone(), redis.clone(), shutdown.clone()));
        Ok(Limits {
            redis,
            per_thread: thread_local::ThreadLocal::new(),
            revocations: Revocations::follow(client.clone(), Names::new(namespace), shutdown.clone()),
            names: Names::new(namespace),
            client,
            shutdown,
            script: Arc::new(redis::Script::new(SCRIPT)),
            rate_prefix: format!("{namespace}:gateway:rl:"),
            local,
            deny_fail_closed,
        })
    }

    /// Forgets idle keys of the local limiters (call now and then).
    pub fn retain_recent(&self) {
        for l in self.local.values() {
            l.retain_recent();
        }
    }

    /// This thread's batcher, started on first use.
    fn batcher(&self) -> &Batcher {
        self.per_thread.get_or(|| {
            let own = Arc::new(OnceLock::new());
            tokio::spawn(connect(self.client.clone(), own.clone(), self.shutdown.clone()));
            let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(run_batches(queue, own, self.redis.clone(), self.script.clone()));
            Batcher { jobs, leases: Mutex::new(HashMap::new()) }
        })
    }

    /// Checks the denylist for `jti` and takes one request from `caller`'s
    /// bucket of `policy`, whichever apply.
    ///
    /// The denylist is checked on every request (a logged-out token fails
    /// at once): in this gateway's copy while it is current
    /// (platform::revocations), else in Redis. The bucket is asked for a
    /// lease along with the request's own token (see [`lease_size`]); while
    /// this thread holds leased tokens of the bucket, its requests use them,
    /// and Redis is asked nothing unless the copy is not current.
    pub async fn check(&self, jti: Option<&str>, policy: Option<&Policy>, caller: &str) -> Verdict {
        // The copy of the denylist answers while it is current; else Redis.
        let copied = jti.and_then(|j| self.revocations.check(j));
        if copied == Some(true) {
            return Verdict { revoked: true, rate: None };
        }
        let jti = jti.filter(|_| copied.is_none());
        if jti.is_none() && policy.is_none() {
            return Verdict { revoked: false, rate: None };
        }
        let batcher = self.batcher();
        let rate_key = policy.map(|p| format!("{}{}:{caller}", self.rate_prefix, p.name));
        let leased = policy.zip(rate_key.as_deref()).and_then(|(p, key)| batcher.take_leased(key, p));
        if leased.is_some() && jti.is_none() {
            return Verdict { revoked: false, rate: leased };
        }
        let deny_key = jti.map(|j| self.names.denylist_key(j)).unwrap_or_default();
        let (interval_us, burst, want) = match policy.filter(|_| leased.is_none()) {
            Some(p) => (interval_us(p), p.burst, 1 + lease_size(p)),
            None => (1, 1, 0),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let asks_bucket = want > 0;
        let job = Job {
            rate_key: if asks_bucket { rate_key.clone().unwrap_or_default() } else { String::new() },
            deny_key,
            interval_us,
            burst,
            want,
            reply,
        };
        if batcher.jobs.send(job).is_ok()
            && let Ok(Ok([verdict, remaining, retry_after_us, reset_us, granted])) = answer.await
        {
            if verdict < 0 {
                return Verdict { revoked: true, rate: None };
            }
            if !asks_bucket {
                return Verdict { revoked: false, rate: leased };
            }
            let mut remaining = remaining.max(0) as u32;
            let reset_secs = secs_ceil(reset_us);
            if granted > 1
                && let Some(key) = rate_key
            {
                batcher.lease(key, granted as u32 - 1, remaining, reset_secs);
                // The caller may still send what the bucket holds plus what
                // this thread took ahead.
                remaining = remaining.saturating_add(granted as u32 - 1);
            }
            return Verdict {
                revoked: false,
                rate: policy.map(|p| Rate {
                    allowed: verdict == 1,
                    limit: p.burst,
                    remaining: Some(remaining),
                    reset_secs,
                    retry_after_secs: secs_ceil(retry_after_us).max(u64::from(verdict == 0)),
                }),
            };
        }
        // Redis was unavailable (or the batcher stopped): the local limiter.
        metrics::counter!("gateway_redis_fallbacks_total").increment(1);
        let revoked = jti.is_some() && self.deny_fail_closed;
        let rate = policy.and_then(|p| {
            let local = self.local.get(&p.name)?;
            Some(match local.check_key(rate_key.as_ref()?) {
                Ok(snapshot) => Rate {
                    allowed: true,
                    limit: p.burst,
                    remaining: Some(snapshot.remaining_burst_capacity()),
                    reset_secs: 0,
                    retry_after_secs: 0,
                },
                Err(not_until) => {
                    let wait = not_until
                        .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                    Rate {
                        allowed: false,
                        limit: p.burst,
                        remaining: Some(0),
                        reset_secs: wait.as_secs().max(1),
                        retry_after_secs: wait.as_secs().max(1),
                    }
                }
            })
        });
        Verdict { revoked, rate }
    }
}

/// One check waiting for Redis.
struct Job {
    /// "" when the bucket is not asked (a leased token, or no rate limit).
    rate_key: String,
    /// "" when there is no token to check.
    deny_key: String,
    interval_us: u64,
    burst: u32,
    /// Tokens wanted: 1 plus the lease; 0 when the bucket is not asked.
    want: u32,
    reply: tokio::sync::oneshot::Sender<Result<[i64; 5], Unavailable>>,
}

/// Redis did not answer (down, slow, or not connected yet).
struct Unavailable;

struct Batcher {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// Tokens taken ahead, by rate-limit key (only this thread uses them;
    /// the lock is never contended).
    leases: Mutex<HashMap<String, Lease>>,
}

impl Batcher {
    /// One of this thread's leased tokens of the bucket `key`, if any.
    fn take_leased(&self, key: &str, p: &Policy) -> Option<Rate> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let lease = leases.get_mut(key)?;
        if lease.left == 0 || lease.until <= Instant::now() {
            leases.remove(key);
            return None;
        }
        lease.left -= 1;
        Some(Rate {
            allowed: true,
            limit: p.burst,
            remaining: Some(lease.remaining.saturating_add(lease.left)),
            reset_secs: lease.reset_secs,
            retry_after_secs: 0,
        })
    }

    /// Keeps `tokens` taken ahead from the bucket `key` (added to those
    /// still held: concurrent requests may each have brought some).
    fn lease(&self, key: String, tokens: u32, remaining: u32, reset_secs: u64) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if leases.len() >= 4096 {
            leases.retain(|_, l| l.until > now && l.left > 0);
        }
        let lease = leases.entry(key).or_insert(Lease { left: 0, remaining, reset_secs, until: now });
        lease.left += tokens;
        lease.until = now + LEASE_TTL;
        lease.remaining = remaining;
        lease.reset_secs = reset_secs;
    }
}

/// Sends the checks waiting on this thread to Redis, all of them in one
/// round trip, as soon as the previous one answered: while a call is out,
/// the next requests queue, so the busier the thread, the bigger the batch,
/// and no request ever waits for a timer. Checks that ask a bucket go in
/// one script call, applied in order, each as its own call would be; checks
/// that only ask the denylist go in one MGET beside it (no script, the
/// cheapest Redis command for them).
async fn run_batches(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>,
    own: Arc<OnceLock<ConnectionManager>>,
    shared: Arc<OnceLock<ConnectionManager>>,
    script: Arc<redis::Script>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let sizes = metrics::histogram!("gateway_redis_batch_size");
    loop {
        // Until the gateway is gone (not at shutdown: requests still in
        // flight then must be checked, not waved through by the fallback).
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // Let the requests that are ready on this thread run first: those
        // about to queue a check join this round trip instead of the next.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        sizes.record(batch.len() as f64);
        // This thread's connection, else the one made at start while this
        // thread's is being made (or Redis is down).
        let answers = match own.get().or_else(|| shared.get()) {
            Some(con) => call(&script, con.clone(), &batch).await,
            None => Err(Unavailable),
        };
        match answers {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(Unavailable) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(Unavailable));
                }
            }
        }
    }
}

/// One round trip for `batch`: the script call for the checks that ask a
/// bucket, one MGET of the distinct denylist keys of the others.
async fn call(script: &redis::Script, mut con: ConnectionManager, batch: &[Job]) -> Result<Vec<[i64; 5]>, Unavailable> {
    let mut deny_keys: Vec<&str> = Vec::new();
    let (mut keys, mut argv): (Vec<&str>, Vec<u64>) = (Vec::new(), Vec::new());
    // Within a batch only the first check of a bucket asks for a lease.
    let mut leasing: Vec<&str> = Vec::new();
    for job in batch {
        if job.want > 0 {
            let first = !leasing.contains(&job.rate_key.as_str());
            if first {
                leasing.push(&job.rate_key);
            }
            keys.extend([job.rate_key.as_str(), job.deny_key.as_str()]);
            argv.extend([job.interval_us, u64::from(job.burst), u64::from(if first { job.want } else { 1 })]);
        } else if !job.deny_key.is_empty() && !deny_keys.contains(&job.deny_key.as_str()) {
            deny_keys.push(&job.deny_key);
        }
    }
    let mut pipe = redis::pipe();
    if !deny_keys.is_empty() {
        pipe.cmd("MGET").arg(&deny_keys);
    }
    if !keys.is_empty() {
        pipe.cmd("EVALSHA").arg(script.get_hash()).arg(keys.len()).arg(&keys).arg(&argv);
    }
    let replies = match round_trip(&pipe, &mut con).await {
        // Redis restarted (or its scripts were flushed): load it, once.
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            match script.load_async(&mut con).await {
                Ok(_) => round_trip(&pipe, &mut con).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    let mut replies = match replies {
        Ok(replies) => replies.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "redis unavailable for rate limits and denylist");
            return Err(Unavailable);
        }
    };
    let revoked: Vec<bool> = if deny_keys.is_empty() {
        Vec::new()
    } else {
        match replies.next() {
            Some(redis::Value::Array(values)) if values.len() == deny_keys.len() => {
                values.iter().map(|v| !matches!(v, redis::Value::Nil)).collect()
            }
            other => return Err(wrong_answer("MGET", &other)),
        }
    };
    let scripted: Vec<i64> = if keys.is_empty() {
        Vec::new()
    } else {
        match replies.next().map(redis::from_redis_value::<Vec<i64>>) {
            Some(Ok(flat)) if flat.len() == keys.len() / 2 * 5 => flat,
            other => return Err(wrong_answer("the rate-limit script", &other)),
        }
    };
    let mut scripted = scripted.chunks_exact(5);
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        answers.push(if job.want > 0 {
            match scripted.next() {
                Some(c) => [c[0], c[1], c[2], c[3], c[4]],
                None => return Err(Unavailable),
            }
        } else {
            let i = deny_keys.iter().position(|k| *k == job.deny_key);
            let is_revoked = i.is_some_and(|i| revoked[i]);
            [if is_revoked { -1 } else { 1 }, 0, 0, 0, 0]
        });
    }
    Ok(answers)
}

/// The pipeline's replies, within 500 ms.
async fn round_trip(pipe: &redis::Pipeline, con: &mut ConnectionManager) -> redis::RedisResult<Vec<redis::Value>> {
    match tokio::time::timeout(Duration::from_millis(500), pipe.query_async(con)).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "no answer within 500ms"))),
    }
}

fn wrong_answer(what: &str, got: &dyn std::fmt::Debug) -> Unavailable {
    tracing::warn!(got = ?got, "redis answered {what} wrongly");
    Unavailable
}

fn interval_us(p: &Policy) -> u64 {
    (p.per.as_micros() as u64 / u64::from(p.rate)).max(1)
}

fn secs_ceil(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}

/// Connects once Redis is reachable; the connection manager reconnects by
/// itself afterwards.
async fn connect(
    client: redis::Client,
    slot: Arc<OnceLock<ConnectionManager>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(con) => {
                let _ = slot.set(con);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "redis unreachable; rate limits are local until it answers"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
