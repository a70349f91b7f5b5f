//! Rate limits shared by every gateway replica, and the token denylist, in
//! one Redis round trip, or none.
//!
//! The denylist is answered by this gateway's copy of it
//! (`platform::revocations`, docs/adr/0021-revocation-copies.md) while the
//! copy is current; the Redis checks below apply to it only otherwise.
//!
//! One Lua script (atomic) runs GCRA (the generic cell rate algorithm, as
//! redis-cell and go-redis's redis_rate do) on the caller's key
//! `<namespace>:gateway:rl:<policy>:<user or ip>`: one theoretical arrival
//! time per key, expiring when the key is idle; when the copy is not
//! current it first asks whether each token's `jti` is on identity's
//! denylist (`<namespace>:identity:denylist:<jti>`). A refused request
//! consumes nothing. The checks waiting on a serving thread travel
//! together: one round trip carries all of them, the script taking a
//! bucket's checks together, in order, each as its own call would (see
//! [`run_batches`]). While a bucket is at least half full a thread takes
//! tokens ahead (a lease, see [`lease_size`]) and renews them in the
//! background once half are spent; its requests on leased tokens ask Redis
//! nothing, or, without a current copy, only for the denylist with a plain
//! `MGET` (docs/adr/0020-gateway-hot-path.md).
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

/// A batch of checks grouped by bucket, applied in order as if each were its
/// own call. For each group: `KEYS` holds its rate-limit key, then the
/// denylist key of each of its checks (or ""); `ARGV` holds the emission
/// interval in microseconds, the burst, the number of checks and the tokens
/// wanted ahead (a lease, or 0). Returns, per group, `avail` (tokens in the
/// bucket before the batch), `leased` (tokens granted ahead),
/// `retry_after_us` and `reset_us` (after the batch), then one verdict per
/// check: 1 allowed, 0 limited, -1 revoked. A revoked or limited check
/// takes nothing. Tokens are leased only while the bucket stays at least
/// half full; below that every request takes its own token, exactly.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local k, a = 1, 1
while a <= #ARGV do
  local rate_key = KEYS[k]
  local interval, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local checks, lease = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  local tat = tonumber(redis.call('GET', rate_key) or now)
  if tat < now then tat = now end
  local avail = math.floor((now - tat) / interval) + burst
  local verdicts, passes = {}, 0
  for i = 1, checks do
    local deny_key = KEYS[k + i]
    if deny_key ~= "" and redis.call('EXISTS', deny_key) == 1 then
      verdicts[i] = -1
    elseif passes < avail then
      passes = passes + 1
      verdicts[i] = 1
    else
      verdicts[i] = 0
    end
  end
  k = k + 1 + checks
  local leased = 0
  if lease > 0 and avail - passes - lease >= burst / 2 then leased = lease end
  local taken = passes + leased
  local new_tat = tat + taken * interval
  if taken > 0 then
    redis.call('SET', rate_key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
  end
  out[#out + 1] = avail
  out[#out + 1] = leased
  out[#out + 1] = new_tat + interval - burst * interval - now
  out[#out + 1] = new_tat - now
  for i = 1, checks do out[#out + 1] = verdicts[i] end
end
return out
"#;

/// How long a thread may use the tokens it took ahead (a lease).
const LEASE_TTL: Duration = Duration::from_secs(5);

/// The tokens a thread takes ahead from a bucket: a sixteenth of the burst,
/// at most 256 (0: none; small limits are always checked one by one).
fn lease_size(burst: u32) -> u32 {
    (burst / 16).min(256)
}

/// Tokens this thread took ahead from one bucket.
struct Lease {
    left: u32,
    /// What the bucket held after they were taken.
    remaining: u32,
    reset_secs: u64,
    until: Instant,
    /// More were asked for and have not come (or were refused: then no
    /// more are asked for until these run out).
    renewing: bool,
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
        let names = Names::new(namespace);
        Ok(Limits {
            redis,
            per_thread: thread_local::ThreadLocal::new(),
            revocations: Revocations::follow(client.clone(), names.clone(), shutdown.clone()),
            names,
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
            let leases = Leases::default();
            tokio::spawn(run_batches(queue, own, self.redis.clone(), self.script.clone(), leases.clone()));
            Batcher { jobs, leases }
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
        let leased = match policy.zip(rate_key.as_deref()) {
            Some((p, key)) => batcher.take_leased(key, p),
            None => None,
        };
        if leased.is_some() && jti.is_none() {
            return Verdict { revoked: false, rate: leased };
        }
        let deny_key = jti.map(|j| self.names.denylist_key(j)).unwrap_or_default();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = match policy.filter(|_| leased.is_none()).zip(rate_key.clone()) {
            Some((p, rate_key)) => Job::take(rate_key, p, deny_key, reply),
            None => Job { deny_key, reply: Some(reply), ..Job::default() },
        };
        if batcher.jobs.send(job).is_ok()
            && let Ok(Ok(answer)) = answer.await
        {
            return match answer {
                Answer::Revoked => Verdict { revoked: true, rate: None },
                Answer::NotRevoked => Verdict { revoked: false, rate: leased },
                Answer::Rate { allowed, remaining, retry_after_us, reset_us } => Verdict {
                    revoked: false,
                    rate: policy.map(|p| Rate {
                        allowed,
                        limit: p.burst,
                        remaining: Some(remaining),
                        reset_secs: secs_ceil(reset_us),
                        retry_after_secs: if allowed { 0 } else { secs_ceil(retry_after_us).max(1) },
                    }),
                },
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

/// One check waiting for Redis, or a lease renewal.
#[derive(Default)]
struct Job {
    /// "" when the bucket is not asked (a leased token, or no rate limit).
    rate_key: String,
    /// "" when there is no token to check.
    deny_key: String,
    interval_us: u64,
    burst: u32,
    /// Whether the check takes a token (false for a lease renewal).
    takes: bool,
    /// Tokens wanted ahead for this thread's lease.
    lease: u32,
    /// None for a lease renewal: nobody waits for it.
    reply: Option<tokio::sync::oneshot::Sender<Result<Answer, Unavailable>>>,
}

impl Job {
    /// A check that takes a token from `rate_key` (and a lease, when the
    /// policy leases).
    fn take(
        rate_key: String,
        p: &Policy,
        deny_key: String,
        reply: tokio::sync::oneshot::Sender<Result<Answer, Unavailable>>,
    ) -> Job {
        Job {
            rate_key,
            deny_key,
            interval_us: interval_us(p),
            burst: p.burst,
            takes: true,
            lease: lease_size(p.burst),
            reply: Some(reply),
        }
    }
}

/// What Redis said about one check.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Revoked,
    /// A denylist-only check that passed.
    NotRevoked,
    Rate {
        allowed: bool,
        remaining: u32,
        retry_after_us: i64,
        reset_us: i64,
    },
}

/// Redis did not answer (down, slow, or not connected yet).
struct Unavailable;

/// Tokens taken ahead, by rate-limit key. Only this thread uses them (the
/// lock is never contended); the batcher adds what Redis granted.
type Leases = Arc<Mutex<foldhash::HashMap<String, Lease>>>;

struct Batcher {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    leases: Leases,
}

impl Batcher {
    /// One of this thread's leased tokens of the bucket `key`, if any. When
    /// half of the lease is spent, more are asked for in the background, so
    /// a steady caller never waits for Redis.
    fn take_leased(&self, key: &str, p: &Policy) -> Option<Rate> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let lease = leases.get_mut(key)?;
        if lease.left == 0 || lease.until <= Instant::now() {
            leases.remove(key);
            return None;
        }
        lease.left -= 1;
        let size = lease_size(p.burst);
        let rate = Rate {
            allowed: true,
            limit: p.burst,
            remaining: Some(lease.remaining.saturating_add(lease.left)),
            reset_secs: lease.reset_secs,
            retry_after_secs: 0,
        };
        if size >= 2 && lease.left <= size / 2 && !lease.renewing {
            lease.renewing = true;
            let renewal = Job {
                rate_key: key.to_string(),
                interval_us: interval_us(p),
                burst: p.burst,
                // Back to one lease at most: never more held than that.
                lease: size - lease.left,
                ..Job::default()
            };
            let _ = self.jobs.send(renewal);
        }
        Some(rate)
    }
}

/// Adds `tokens` taken ahead from the bucket `key` to those this thread
/// still holds.
///
/// A thread never holds more than one lease of a bucket: a renewal that
/// lands after a request brought a new lease adds only up to that (the
/// rest was taken from the bucket and goes unused, as expired leases do).
fn add_lease(leases: &Leases, key: &str, tokens: u32, remaining: u32, reset_secs: u64, burst: u32) {
    let mut leases = leases.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if leases.len() >= 4096 {
        leases.retain(|_, l| l.until > now && l.left > 0);
    }
    if tokens == 0 {
        // Refused (the bucket is below half full): ask no more until the
        // ones held run out.
        return;
    }
    let lease = match leases.get_mut(key) {
        Some(l) => l,
        None => leases.entry(key.to_string()).or_insert(Lease {
            left: 0,
            remaining,
            reset_secs,
            until: now,
            renewing: false,
        }),
    };
    lease.left = (lease.left + tokens).min(lease_size(burst));
    lease.until = now + LEASE_TTL;
    lease.remaining = remaining;
    lease.reset_secs = reset_secs;
    lease.renewing = false;
}

/// Sends the checks waiting on this thread to Redis, all of them in one
/// round trip, as soon as the previous one answered: while a call is out,
/// the next requests queue, so the busier the thread, the bigger the batch,
/// and no request ever waits for a timer. Checks that ask a bucket go in
/// one script call, one entry per bucket, applied in order, each as its
/// own call would be; checks that only ask the denylist go in one MGET
/// beside it (no script, the cheapest Redis command for them).
async fn run_batches(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>,
    own: Arc<OnceLock<ConnectionManager>>,
    shared: Arc<OnceLock<ConnectionManager>>,
    script: Arc<redis::Script>,
    leases: Leases,
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
            Some(con) => call(&script, con.clone(), &batch, &leases).await,
            None => Err(Unavailable),
        };
        match answers {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    if let (Some(reply), Some(answer)) = (job.reply, answer) {
                        let _ = reply.send(Ok(answer));
                    }
                }
            }
            Err(Unavailable) => {
                for job in batch.drain(..) {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Err(Unavailable));
                    }
                }
            }
        }
    }
}

/// The checks of one bucket in a batch.
struct Group<'a> {
    key: &'a str,
    interval_us: u64,
    burst: u32,
    /// Indexes in the batch of the checks that take a token, in order.
    checks: Vec<usize>,
    lease: u32,
}

/// One round trip for `batch`: one script call for the buckets, one MGET
/// of the distinct denylist keys of the others. Tokens granted ahead go to
/// `leases`. Answers in the batch's order (None for a lease renewal).
async fn call(
    script: &redis::Script,
    mut con: ConnectionManager,
    batch: &[Job],
    leases: &Leases,
) -> Result<Vec<Option<Answer>>, Unavailable> {
    let mut deny_keys: Vec<&str> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        if !job.rate_key.is_empty() {
            let g = match groups.iter().position(|g| g.key == job.rate_key) {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        key: &job.rate_key,
                        interval_us: job.interval_us,
                        burst: job.burst,
                        checks: Vec::new(),
                        lease: 0,
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[g];
            if job.takes {
                group.checks.push(i);
            }
            group.lease = group.lease.max(job.lease);
        } else if !job.deny_key.is_empty() && !deny_keys.contains(&job.deny_key.as_str()) {
            deny_keys.push(&job.deny_key);
        }
    }
    let (mut keys, mut argv): (Vec<&str>, Vec<u64>) = (Vec::new(), Vec::new());
    for g in &groups {
        keys.push(g.key);
        keys.extend(g.checks.iter().map(|&i| batch[i].deny_key.as_str()));
        argv.extend([g.interval_us, u64::from(g.burst), g.checks.len() as u64, u64::from(g.lease)]);
    }
    let mut pipe = redis::pipe();
    if !deny_keys.is_empty() {
        pipe.cmd("MGET").arg(&deny_keys);
    }
    if !groups.is_empty() {
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
    let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
    for (job, answer) in batch.iter().zip(answers.iter_mut()) {
        if job.rate_key.is_empty() && job.reply.is_some() {
            let i = deny_keys.iter().position(|k| *k == job.deny_key);
            let is_revoked = i.is_some_and(|i| revoked[i]);
            *answer = Some(if is_revoked { Answer::Revoked } else { Answer::NotRevoked });
        }
    }
    if groups.is_empty() {
        return Ok(answers);
    }
    let expected = groups.iter().map(|g| 4 + g.checks.len()).sum::<usize>();
    let flat: Vec<i64> = match replies.next().map(redis::from_redis_value::<Vec<i64>>) {
        Some(Ok(flat)) if flat.len() == expected => flat,
        other => return Err(wrong_answer("the rate-limit script", &other)),
    };
    let mut at = 0;
    for g in &groups {
        let [avail, leased, retry_after_us, reset_us] = [flat[at], flat[at + 1], flat[at + 2], flat[at + 3]];
        let verdicts = &flat[at + 4..at + 4 + g.checks.len()];
        at += 4 + g.checks.len();
        let mut passed = 0;
        for (&i, &verdict) in g.checks.iter().zip(verdicts) {
            answers[i] = Some(match verdict {
                -1 => Answer::Revoked,
                1 => {
                    passed += 1;
                    // As if this check were alone: what it left in the
                    // bucket (tokens leased ahead count as remaining).
                    let remaining = (avail - passed).max(0) as u32;
                    Answer::Rate { allowed: true, remaining, retry_after_us: 0, reset_us }
                }
                _ => Answer::Rate { allowed: false, remaining: 0, retry_after_us, reset_us },
            });
        }
        if g.lease > 0 {
            let left = (avail - passed - leased).max(0) as u32;
            add_lease(leases, g.key, leased.max(0) as u32, left, secs_ceil(reset_us), g.burst);
        }
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
