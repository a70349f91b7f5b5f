//! Rate limits shared by every gateway replica, and the token denylist, in
//! one Redis round trip.
//!
//! One Lua script (atomic) first answers whether the token's `jti` is on
//! identity's denylist (`<namespace>:identity:denylist:<jti>`), then runs
//! GCRA (the generic cell rate algorithm, as redis-cell and go-redis's
//! redis_rate do) on the caller's key
//! `<namespace>:gateway:rl:<policy>:<user or ip>`: one theoretical arrival
//! time per key, expiring when the key is idle. A refused request consumes
//! nothing.
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

/// Keys `KEYS[1]` (rate limit, or "") and `KEYS[2]` (denylist, or "");
/// `ARGV[1]` the emission interval in microseconds, `ARGV[2]` the burst.
/// Returns `{verdict, remaining, retry_after_us, reset_us}` where verdict is
/// 1 allowed, 0 limited, -1 revoked.
const SCRIPT: &str = r#"
if KEYS[2] ~= "" and redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, 0, 0, 0}
end
if KEYS[1] == "" then
  return {1, 0, 0, 0}
end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local remaining = math.floor((now - allow_at) / interval)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, remaining, 0, new_tat - now}
"#;

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
    /// One connection per serving thread, made by a task on that thread's
    /// runtime, so a request's round trip wakes no other thread.
    per_thread: thread_local::ThreadLocal<Arc<OnceLock<ConnectionManager>>>,
    client: redis::Client,
    shutdown: tokio_util::sync::CancellationToken,
    script: redis::Script,
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
            script: redis::Script::new(SCRIPT),
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

    /// Checks the denylist for `jti` and takes one request from `caller`'s
    /// bucket of `policy`, whichever apply.
    pub async fn check(&self, jti: Option<&str>, policy: Option<&Policy>, caller: &str) -> Verdict {
        if jti.is_none() && policy.is_none() {
            return Verdict { revoked: false, rate: None };
        }
        let rate_key = policy.map(|p| format!("{}{}:{caller}", self.rate_prefix, p.name)).unwrap_or_default();
        let deny_key = jti.map(|j| format!("{}{j}", self.deny_prefix)).unwrap_or_default();
        let (interval_us, burst) = policy.map(|p| (interval_us(p), p.burst)).unwrap_or((1, 1));
        if let Some(con) = self.connection() {
            let mut con = con.clone();
            let mut call = self.script.key(&rate_key);
            call.key(&deny_key).arg(interval_us).arg(burst);
            let answer =
                tokio::time::timeout(Duration::from_millis(500), call.invoke_async::<[i64; 4]>(&mut con)).await;
            match answer {
                Ok(Ok([verdict, remaining, retry_after_us, reset_us])) => {
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
                Ok(Err(e)) => tracing::warn!(error = %e, "redis unavailable for rate limits and denylist"),
                Err(_) => tracing::warn!("redis did not answer within 500ms for rate limits and denylist"),
            }
        }
        metrics::counter!("gateway_redis_fallbacks_total").increment(1);
        let revoked = jti.is_some() && self.deny_fail_closed;
        let rate = policy.and_then(|p| {
            let local = self.local.get(&p.name)?;
            Some(match local.check_key(&rate_key) {
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

impl Limits {
    /// This thread's Redis connection, else the shared one while this
    /// thread's is being made (or Redis is down); `None` before any is up.
    fn connection(&self) -> Option<&ConnectionManager> {
        let own = self.per_thread.get_or(|| {
            let slot = Arc::new(OnceLock::new());
            tokio::spawn(connect(self.client.clone(), slot.clone(), self.shutdown.clone()));
            slot
        });
        own.get().or_else(|| self.redis.get())
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
