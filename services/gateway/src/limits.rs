//! Rate limits shared by every gateway replica, and the token denylist, in
//! one Redis round trip.
//!
//! One Lua script (atomic) first answers whether the token's `jti` is on
//! identity's denylist (`<namespace>:identity:denylist:<jti>`), then runs
//! GCRA (the generic cell rate algorithm, as redis-cell and go-redis's
//! redis_rate do) on the caller's key
//! `<namespace>:gateway:rl:<policy>:<user or ip>`: one theoretical arrival
//! time per key, expiring when the key is idle. A refused request consumes
//! nothing. The checks waiting on a serving thread travel together: one
//! script call carries all of them and applies them in order, each as its
//! own call would (see [`run_batches`]).
//!
//! When Redis cannot be reached each replica falls back to its own
//! in-process limiter (governor, same rate and burst: with N replicas the
//! effective limit is up to N times higher while Redis is down), and the
//! denylist is not consulted unless `FEIRA_GATEWAY_DENYLIST_FAIL_MODE` is
//! `closed`; see docs/adr/0013-gateway.md.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::routes::Policy;

/// A batch of checks, applied in order as if each were its own call: for
/// check `i` (from 0), `KEYS[2i+1]` is its rate-limit key (or "") and
/// `KEYS[2i+2]` its denylist key (or ""); `ARGV[2i+1]` the emission interval
/// in microseconds, `ARGV[2i+2]` the burst. Returns four numbers per check:
/// `verdict, remaining, retry_after_us, reset_us`, where verdict is 1
/// allowed, 0 limited, -1 revoked.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
-- Within a batch a key is read once and written once: the same caller's
-- checks see each other's effect through these tables, as sequential calls
-- would through Redis.
local revoked, tats, taken = {}, {}, {}
local n = 0
local function answer(a, b, c, d)
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = a, b, c, d
  n = n + 4
end
for i = 1, #KEYS, 2 do
  local rate_key, deny_key = KEYS[i], KEYS[i + 1]
  local is_revoked = false
  if deny_key ~= "" then
    is_revoked = revoked[deny_key]
    if is_revoked == nil then
      is_revoked = redis.call('EXISTS', deny_key) == 1
      revoked[deny_key] = is_revoked
    end
  end
  if is_revoked then
    answer(-1, 0, 0, 0)
  elseif rate_key == "" then
    answer(1, 0, 0, 0)
  else
    local interval = tonumber(ARGV[i])
    local burst = tonumber(ARGV[i + 1])
    local tat = tats[rate_key]
    if tat == nil then tat = tonumber(redis.call('GET', rate_key) or now) end
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if now < allow_at then
      tats[rate_key] = tat
      answer(0, 0, allow_at - now, tat - now)
    else
      tats[rate_key] = new_tat
      taken[rate_key] = true
      answer(1, math.floor((now - allow_at) / interval), 0, new_tat - now)
    end
  end
end
for key in pairs(taken) do
  local tat = tats[key]
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
return out
"#;

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
    deny_prefix: String,
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
            client,
            shutdown,
            script: Arc::new(redis::Script::new(SCRIPT)),
            rate_prefix: format!("{namespace}:gateway:rl:"),
            deny_prefix: format!("{namespace}:identity:denylist:"),
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
            Batcher { jobs }
        })
    }

    /// Checks the denylist for `jti` and takes one request from `caller`'s
    /// bucket of `policy`, whichever apply.
    pub async fn check(&self, jti: Option<&str>, policy: Option<&Policy>, caller: &str) -> Verdict {
        if jti.is_none() && policy.is_none() {
            return Verdict { revoked: false, rate: None };
        }
        let rate_key = |p: &Policy| format!("{}{}:{caller}", self.rate_prefix, p.name);
        let deny_key = jti.map(|j| format!("{}{j}", self.deny_prefix)).unwrap_or_default();
        let (interval_us, burst) = policy.map(|p| (interval_us(p), p.burst)).unwrap_or((1, 1));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job { rate_key: policy.map(rate_key).unwrap_or_default(), deny_key, interval_us, burst, reply };
        if self.batcher().jobs.send(job).is_ok()
            && let Ok(Ok([verdict, remaining, retry_after_us, reset_us])) = answer.await
        {
            return Verdict {
                revoked: verdict < 0,
                rate: policy.filter(|_| verdict >= 0).map(|p| Rate {
                    allowed: verdict == 1,
                    limit: p.burst,
                    remaining: Some(remaining.max(0) as u32),
                    reset_secs: secs_ceil(reset_us),
                    retry_after_secs: secs_ceil(retry_after_us).max(u64::from(verdict == 0)),
                }),
            };
        }
        // Redis was unavailable (or the batcher stopped): the local limiter.
        metrics::counter!("gateway_redis_fallbacks_total").increment(1);
        let revoked = jti.is_some() && self.deny_fail_closed;
        let rate = policy.and_then(|p| {
            let local = self.local.get(&p.name)?;
            Some(match local.check_key(&rate_key(p)) {
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
    rate_key: String,
    deny_key: String,
    interval_us: u64,
    burst: u32,
    reply: tokio::sync::oneshot::Sender<Result<[i64; 4], Unavailable>>,
}

/// Redis did not answer (down, slow, or not connected yet).
struct Unavailable;

struct Batcher {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

/// Sends the checks waiting on this thread to Redis, all of them in one
/// script call, as soon as the previous call answered: while a call is out,
/// the next requests queue, so the busier the thread, the bigger the batch,
/// and no request ever waits for a timer. Redis applies the checks in order,
/// each as its own call would.
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
        let received = queue.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        sizes.record(received as f64);
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

/// One script call for `batch`.
async fn call(script: &redis::Script, mut con: ConnectionManager, batch: &[Job]) -> Result<Vec<[i64; 4]>, Unavailable> {
    let mut invocation = script.prepare_invoke();
    for job in batch {
        invocation.key(&job.rate_key).key(&job.deny_key).arg(job.interval_us).arg(job.burst);
    }
    match tokio::time::timeout(Duration::from_millis(500), invocation.invoke_async::<Vec<i64>>(&mut con)).await {
        Ok(Ok(flat)) if flat.len() == batch.len() * 4 => {
            Ok(flat.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect())
        }
        Ok(Ok(flat)) => {
            tracing::warn!(
                expected = batch.len() * 4,
                got = flat.len(),
                "redis answered the rate-limit script wrongly"
            );
            Err(Unavailable)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "redis unavailable for rate limits and denylist");
            Err(Unavailable)
        }
        Err(_) => {
            tracing::warn!("redis did not answer within 500ms for rate limits and denylist");
            Err(Unavailable)
        }
    }
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
