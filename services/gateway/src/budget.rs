//! A retry budget (Finagle's and Linkerd's idea): retries may add at most
//! `ratio` of the requests seen over a sliding window, plus `min_retries`,
//! so an upstream in trouble sees a little more traffic, never a retry storm.

use std::sync::Mutex;
use std::time::Instant;

use crate::routes::BudgetConfig;

/// Counts per one-second slot over the window.
pub struct RetryBudget {
    config: BudgetConfig,
    started: Instant,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    second: u64,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    pub fn new(config: BudgetConfig) -> Self {
        let n = config.window.as_secs().max(1) as usize;
        RetryBudget { config, started: Instant::now(), slots: Mutex::new(vec![Slot::default(); n]) }
    }

    /// Records one request (not a retry).
    pub fn request(&self) {
        self.with_slot(|slot| slot.requests += 1);
    }

    /// Takes a retry from the budget; false when it is spent.
    pub fn try_retry(&self) -> bool {
        let now = self.started.elapsed().as_secs();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let n = slots.len() as u64;
        let (requests, retries) =
            slots.iter().filter(|s| s.second + n > now).fold((0u64, 0u64), |(q, r), s| (q + s.requests, r + s.retries));
        let allowed = u64::from(self.config.min_retries) + (requests as f64 * self.config.ratio) as u64;
        if retries >= allowed {
            return false;
        }
        let slot = current(&mut slots, now);
        slot.retries += 1;
        true
    }

    fn with_slot(&self, f: impl FnOnce(&mut Slot)) {
        let now = self.started.elapsed().as_secs();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        f(current(&mut slots, now));
    }
}

fn current(slots: &mut [Slot], now: u64) -> &mut Slot {
    let i = (now % slots.len() as u64) as usize;
    let slot = &mut slots[i];
    if slot.second != now {
        *slot = Slot { second: now, requests: 0, retries: 0 };
    }
    slot
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_stay_within_the_ratio_plus_the_minimum() {
        let b = RetryBudget::new(BudgetConfig { ratio: 0.2, min_retries: 2, window: Duration::from_secs(10) });
        for _ in 0..50 {
            b.request();
        }
        let granted = (0..100).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 2 + 10);
    }
}
