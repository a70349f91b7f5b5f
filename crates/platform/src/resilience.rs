//! Calling what may fail: a circuit breaker and retries with backoff and
//! jitter.
//!
//! # Circuit breaker
//! [`CircuitBreaker`] counts consecutive failures of calls to one dependency.
//! At `failure_threshold` it opens: calls are refused at once (no waiting on
//! a dead dependency) for `open_for`. Then it is half-open: up to
//! `half_open_probes` calls go through; a success closes it, a failure opens
//! it again. Its state is the gauge `circuit_breaker_state{breaker}` (0
//! closed, 1 open, 2 half-open), its changes the counter
//! `circuit_breaker_transitions_total{breaker,to}`, refusals
//! `circuit_breaker_rejected_total{breaker}`.
//!
//! What counts as a failure is the caller's decision: a declined card or a
//! 404 is an answer, not a failure of the dependency; a timeout, a refused
//! connection or a 5xx is.
//!
//! ```
//! # async fn example() {
//! use platform::resilience::{BreakerConfig, CircuitBreaker};
//! let breaker = CircuitBreaker::new("carrier", BreakerConfig::default());
//! match breaker.call(async { Ok::<_, std::io::Error>(42) }).await {
//!     Ok(Ok(n)) => assert_eq!(n, 42),
//!     Ok(Err(_call_failed)) => {}
//!     Err(_open) => {} // answer from a fallback
//! }
//! # }
//! ```
//!
//! # Retries
//! [`Backoff`] gives the delay before each retry: exponential, capped, with
//! full jitter so that many clients retrying together spread out.
//! [`retry`] runs an operation until it succeeds, fails for good, or the
//! attempts run out.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Calls let through while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, open_for: Duration::from_secs(10), half_open_probes: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

/// The breaker refused the call: the dependency is considered down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {0} is open")]
pub struct Open(pub &'static str);

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probes_in_flight: u32,
}

/// A circuit breaker for one dependency; clones share the state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Arc<Mutex<Inner>>,
}

/// Leave to make one call; report its outcome with [`Permit::success`] or
/// [`Permit::failure`]. Dropped without a verdict (the caller was cancelled),
/// it counts as neither.
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    done: bool,
}

impl CircuitBreaker {
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        let breaker = CircuitBreaker {
            name,
            config,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probes_in_flight: 0,
            })),
        };
        metrics::gauge!("circuit_breaker_state", "breaker" => name).set(BreakerState::Closed.gauge());
        breaker
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current state (an open breaker whose time is up reads half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner);
        inner.state
    }

    /// Leave to call the dependency, or [`Open`].
    pub fn try_acquire(&self) -> Result<Permit, Open> {
        let mut inner = self.lock();
        self.advance(&mut inner);
        match inner.state {
            BreakerState::Closed => Ok(Permit { breaker: self.clone(), probe: false, done: false }),
            BreakerState::HalfOpen if inner.probes_in_flight < self.config.half_open_probes => {
                inner.probes_in_flight += 1;
                Ok(Permit { breaker: self.clone(), probe: true, done: false })
            }
            _ => {
                metrics::counter!("circuit_breaker_rejected_total", "breaker" => self.name).increment(1);
                Err(Open(self.name))
            }
        }
    }

    /// Runs `call` if the breaker lets it; any `Err` counts as a failure.
    /// Map answers that are not failures of the dependency (a decline, a 404)
    /// to `Ok` inside `call`.
    pub async fn call<T, E, F>(&self, call: F) -> Result<Result<T, E>, Open>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        match &result {
            Ok(_) => permit.success(),
            Err(_) => permit.failure(),
        }
        Ok(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a few counters: a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open && inner.opened_at.is_some_and(|at| at.elapsed() >= self.config.open_for) {
            self.transition(inner, BreakerState::HalfOpen);
            inner.probes_in_flight = 0;
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        if inner.state == to {
            return;
        }
        tracing::warn!(breaker = self.name, from = inner.state.as_str(), to = to.as_str(), "circuit breaker changed");
        inner.state = to;
        metrics::gauge!("circuit_breaker_state", "breaker" => self.name).set(to.gauge());
        metrics::counter!("circuit_breaker_transitions_total", "breaker" => self.name, "to" => to.as_str())
            .increment(1);
    }

    fn record(&self, probe: bool, ok: bool) {
        let mut inner = self.lock();
        if probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        if ok {
            inner.consecutive_failures = 0;
            if inner.state != BreakerState::Closed {
                self.transition(&mut inner, BreakerState::Closed);
                inner.opened_at = None;
            }
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let reopen = inner.state == BreakerState::HalfOpen;
        if reopen
            || (inner.state == BreakerState::Closed && inner.consecutive_failures >= self.config.failure_threshold)
        {
            self.transition(&mut inner, BreakerState::Open);
            inner.opened_at = Some(Instant::now());
        }
    }
}

impl Permit {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.probe, true);
    }

    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut inner = self.breaker.lock();
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
    }
}

/// Exponential backoff with full jitter: before retry `n` (0-based), wait a
/// random time in `[0, min(max, base * 2^n)]`, but at least `base / 2`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5), attempts: 5 }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.base.saturating_mul(2u32.saturating_pow(retry.min(20))).min(self.max);
        let floor = (self.base / 2).min(ceiling);
        let span = ceiling.saturating_sub(floor).as_millis() as u64;
        floor + Duration::from_millis(fastrand::u64(0..=span))
    }
}

/// Runs `op` (given the attempt number, from 0) until it succeeds, returns
/// an error `retryable` refuses, or `backoff.attempts` are spent; the last
/// error is returned.
pub async fn retry<T, E, F, Fut>(backoff: Backoff, retryable: impl Fn(&E) -> bool, mut op: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) if attempt + 1 >= backoff.attempts.max(1) || !retryable(&e) => return Err(e),
            Err(_) => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_for_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::from_millis(open_for_ms),
                half_open_probes: 1,
            },
        )
    }

    #[tokio::test]
    async fn consecutive_failures_open_it_and_it_refuses_at_once() {
        let b = breaker(3, 60_000);
        for _ in 0..2 {
            b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.call(async { Ok::<_, ()>(1) }).await, Err(Open("test")));
    }

    #[tokio::test]
    async fn a_success_resets_the_count() {
        let b = breaker(2, 60_000);
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        b.call(async { Ok::<_, ()>(()) }).await.unwrap().unwrap();
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn after_open_for_one_probe_goes_through_and_closes_it() {
        let b = breaker(1, 30);
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_failed_probe_opens_it_again() {
        let b = breaker(1, 30);
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        tokio::time::sleep(Duration::from_millis(40)).await;
        b.call(async { Err::<(), _>("still down") }).await.unwrap().unwrap_err();
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn a_probe_dropped_without_a_verdict_frees_its_place() {
        let b = breaker(1, 30);
        b.call(async { Err::<(), _>("down") }).await.unwrap().unwrap_err();
        tokio::time::sleep(Duration::from_millis(40)).await;
        drop(b.try_acquire().unwrap());
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1), attempts: 10 };
        for retry in 0..10 {
            let d = b.delay(retry);
            assert!(d >= Duration::from_millis(50), "{d:?}");
            assert!(d <= Duration::from_secs(1), "{d:?}");
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| b.delay(5)).collect();
        assert!(spread.len() > 5, "jitter spreads the delays");
    }

    #[tokio::test]
    async fn retry_stops_at_success_or_a_final_error() {
        let quick = Backoff { base: Duration::from_millis(1), max: Duration::from_millis(2), attempts: 5 };
        let mut calls = 0;
        let r: Result<u32, &str> = retry(
            quick,
            |_| true,
            |n| {
                calls += 1;
                async move { if n < 2 { Err("timeout") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!((r, calls), (Ok(2), 3));
        let mut calls = 0;
        let r: Result<u32, &str> = retry(
            quick,
            |e| *e != "declined",
            |_| {
                calls += 1;
                async { Err("declined") }
            },
        )
        .await;
        assert_eq!((r, calls), (Err("declined"), 1));
        let mut calls = 0;
        let r: Result<u32, &str> = retry(
            quick,
            |_| true,
            |_| {
                calls += 1;
                async { Err("timeout") }
            },
        )
        .await;
        assert_eq!((r, calls), (Err("timeout"), 5));
    }
}
