//! One request budget for every GitHub collector of a run that uses the same API and the same
//! credential: an organisation's collectors share one token, so they share its limits.
//!
//! GitHub enforces a primary limit (5,000 requests an hour for a token, more for a GitHub App
//! installation; a 304 answer to a conditional request costs nothing) and secondary limits
//! (at most 100 concurrent requests, about 900 REST points a minute, GET = 1 point). A run
//! - sends at most [`BudgetSettings::max_in_flight`] requests at once;
//! - sends at most [`BudgetSettings::per_minute`] requests in any 60 seconds, waiting for the
//!   window rather than being told off by GitHub;
//! - spends at most `1 − reserve` of the primary limit it finds left (read from the first
//!   answer's `x-ratelimit-remaining`), keeping the rest for the next runs and for whatever
//!   else uses the token. Past it, requests fail with [`GithubError::BudgetSpent`] without
//!   being sent: a repository cut off that way is backfilled by the next runs;
//! - waits out a secondary limit or a `Retry-After` once for everyone: the pause is shared.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::error::GithubError;

/// The limits a run keeps to (the `github_*` collectors' `rate_limit_reserve`,
/// `max_in_flight` and `max_requests_per_minute`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Share of the primary limit left at the start of the run that the run leaves unspent.
    pub reserve: f64,
    pub max_in_flight: usize,
    pub per_minute: u32,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            reserve: 0.2,
            max_in_flight: 100,
            per_minute: 900,
        }
    }
}

/// What the budget saw, for self-metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Requests that cost primary points (non-304 answers).
    pub spent: u64,
    /// The most this run may spend, once GitHub said how much is left.
    pub allowance: Option<u64>,
    /// The most requests that were in flight at once.
    pub peak_in_flight: usize,
    /// The most requests sent in one 60-second window.
    pub peak_per_minute: usize,
    /// Requests refused because the allowance was spent.
    pub refused: u64,
}

/// The shared budget of one API and credential.
pub struct Budget {
    settings: BudgetSettings,
    /// The per-minute window (a minute; shorter in unit tests).
    window: Duration,
    in_flight: Semaphore,
    sent: Mutex<VecDeque<Instant>>,
    /// `(spent when the limit was first read, allowance from then)`.
    allowance: Mutex<Option<(u64, u64)>>,
    spent: AtomicU64,
    refused: AtomicU64,
    current: AtomicUsize,
    peak: AtomicUsize,
    peak_minute: AtomicUsize,
    paused_until: tokio::sync::Mutex<Option<Instant>>,
    /// Some request has completed: until then one goes alone, so the allowance is known
    /// (from its `x-ratelimit-remaining`) before the others start.
    answered: std::sync::atomic::AtomicBool,
}

/// A request's place in flight; dropping it frees the place.
pub struct InFlight<'a> {
    _permit: SemaphorePermit<'a>,
    budget: &'a Budget,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.budget.answered.store(true, Ordering::Relaxed);
        self.budget.current.fetch_sub(1, Ordering::Relaxed);
    }
}

const MINUTE: Duration = Duration::from_secs(60);

impl Budget {
    pub fn new(settings: BudgetSettings) -> Budget {
        Budget::with_window(settings, MINUTE)
    }

    fn with_window(settings: BudgetSettings, window: Duration) -> Budget {
        Budget {
            settings,
            window,
            in_flight: Semaphore::new(settings.max_in_flight.clamp(1, 100)),
            sent: Mutex::new(VecDeque::new()),
            allowance: Mutex::new(None),
            spent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            current: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            peak_minute: AtomicUsize::new(0),
            paused_until: tokio::sync::Mutex::new(None),
            answered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Wait for a place in flight and in the minute's window; refuse when the allowance is
    /// spent. `key` names the request in the error.
    pub async fn acquire(&self, key: &str) -> Result<InFlight<'_>, GithubError> {
        self.check_allowance(key, 0)?;
        let permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| GithubError::closed(key))?;
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.settings.per_minute.max(1) as usize {
                    sent.push_back(now);
                    self.peak_minute.fetch_max(sent.len(), Ordering::Relaxed);
                    None
                } else {
                    sent.front()
                        .map(|t| self.window.saturating_sub(now.duration_since(*t)))
                }
            };
            match wait {
                None => break,
                Some(w) => {
                    out_of_time(key, w)?;
                    tokio::time::sleep(w.max(Duration::from_millis(1))).await
                }
            }
        }
        // Checked again with the requests in flight counted as spent, under the allowance's
        // lock, so concurrent requests cannot together pass it; and the first request of the
        // run goes alone, so the allowance is known before the others are sent.
        let now = loop {
            {
                let guard = self.allowance.lock().unwrap_or_else(|p| p.into_inner());
                let in_flight = self.current.load(Ordering::Relaxed);
                if self.answered.load(Ordering::Relaxed) || in_flight == 0 {
                    self.check_spent(key, *guard, in_flight as u64)?;
                    break self.current.fetch_add(1, Ordering::Relaxed) + 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(InFlight {
            _permit: permit,
            budget: self,
        })
    }

    fn check_allowance(&self, key: &str, in_flight: u64) -> Result<(), GithubError> {
        let allowance = *self.allowance.lock().unwrap_or_else(|p| p.into_inner());
        self.check_spent(key, allowance, in_flight)
    }

    fn check_spent(
        &self,
        key: &str,
        allowance: Option<(u64, u64)>,
        in_flight: u64,
    ) -> Result<(), GithubError> {
        let spent = self.spent.load(Ordering::Relaxed);
        if let Some((at, allowed)) = allowance
            && spent.saturating_sub(at) + in_flight >= allowed
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(GithubError::BudgetSpent {
                key: key.into(),
                spent: spent.saturating_sub(at),
                reserve_percent: (self.settings.reserve * 100.0).round() as u32,
            });
        }
        Ok(())
    }

    /// GitHub said how much of the primary limit is left: the first time, fix this run's
    /// allowance from it.
    pub fn saw_remaining(&self, remaining: i64) {
        let mut a = self.allowance.lock().unwrap_or_else(|p| p.into_inner());
        if a.is_none() {
            let share = (1.0 - self.settings.reserve).clamp(0.0, 1.0);
            let allowed = (remaining.max(0) as f64 * share).floor() as u64;
            *a = Some((self.spent.load(Ordering::Relaxed), allowed));
        }
    }

    /// One request cost a primary point.
    pub fn charge(&self) {
        self.spent.fetch_add(1, Ordering::Relaxed);
    }

    /// Wait out a shared pause (a secondary limit, `Retry-After`, a spent primary limit).
    pub async fn wait_for_pause(&self, key: &str, longest: Duration) -> Result<(), GithubError> {
        let until = *self.paused_until.lock().await;
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                let wait = until - now;
                if wait > longest {
                    return Err(GithubError::RateLimited {
                        key: key.into(),
                        wait,
                    });
                }
                out_of_time(key, wait)?;
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    /// Pause every request of this budget for `wait` (refused when longer than `longest`).
    pub async fn pause(
        &self,
        key: &str,
        wait: Duration,
        longest: Duration,
    ) -> Result<(), GithubError> {
        if wait > longest {
            return Err(GithubError::RateLimited {
                key: key.into(),
                wait,
            });
        }
        let until = Instant::now() + wait;
        let mut p = self.paused_until.lock().await;
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
        Ok(())
    }

    pub fn stats(&self) -> BudgetStats {
        let allowance = *self.allowance.lock().unwrap_or_else(|p| p.into_inner());
        BudgetStats {
            spent: self.spent.load(Ordering::Relaxed),
            allowance: allowance.map(|(_, a)| a),
            peak_in_flight: self.peak.load(Ordering::Relaxed),
            peak_per_minute: self.peak_minute.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Refuse to wait `wait` when the task's requests stop before it ends
/// ([`super::client::stop_requests_at`]): waiting would only be cut off.
fn out_of_time(key: &str, wait: Duration) -> Result<(), GithubError> {
    match super::client::stop_at() {
        Some((at, limit)) if Instant::now() + wait >= at => Err(GithubError::OutOfTime {
            key: key.into(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// The budgets of one run, one per API and credential (the key never holds a secret: see
/// [`crate::github::client::Settings::budget_key`]).
#[derive(Default)]
pub struct Budgets {
    by_key: Mutex<HashMap<String, Arc<Budget>>>,
}

impl Budgets {
    /// The budget for `key`, made with `settings` by the first collector that asks.
    pub fn get(&self, key: &str, settings: BudgetSettings) -> Arc<Budget> {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(Budget::new(settings)))
            .clone()
    }

    /// Every budget's figures (the benchmark sums them).
    pub fn stats(&self) -> Vec<BudgetStats> {
        let map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(|b| b.stats()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_minute_window_holds_requests_back() {
        // A 200 ms "minute" of 3 requests.
        let b = Budget::with_window(
            BudgetSettings {
                per_minute: 3,
                ..BudgetSettings::default()
            },
            Duration::from_millis(200),
        );
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            drop(b.acquire("/x").await.expect("acquire"));
            at.push(start.elapsed());
        }
        // 3 at once, 3 a window later, 1 two windows later: no 4 within any window.
        for w in at.windows(4) {
            assert!(w[3] - w[0] >= Duration::from_millis(195), "{at:?}");
        }
        assert!(at[6] >= Duration::from_millis(395), "{at:?}");
        assert_eq!(b.stats().peak_per_minute, 3);
    }

    #[tokio::test]
    async fn the_allowance_is_a_share_of_what_is_left() {
        let b = Budget::new(BudgetSettings::default());
        b.charge();
        b.saw_remaining(10);
        for _ in 0..8 {
            drop(b.acquire("/x").await.expect("within the allowance"));
            b.charge();
        }
        let e = b.acquire("/y").await.err().expect("spent");
        assert!(
            matches!(e, GithubError::BudgetSpent { spent: 8, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("20 %"), "{e}");
        assert_eq!(b.stats().allowance, Some(8));
        assert_eq!(b.stats().refused, 1);
    }

    #[tokio::test]
    async fn the_first_request_goes_alone() {
        let b = Arc::new(Budget::new(BudgetSettings::default()));
        let first = b.acquire("/first").await.expect("first");
        let b2 = b.clone();
        let second = tokio::spawn(async move {
            let _p = b2.acquire("/second").await.expect("second");
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!second.is_finished(), "sent before the first answer");
        b.saw_remaining(100);
        drop(first);
        second.await.expect("join");
        assert_eq!(b.stats().allowance, Some(80));
    }

    #[tokio::test]
    async fn in_flight_is_bounded() {
        let b = Arc::new(Budget::new(BudgetSettings {
            max_in_flight: 2,
            ..BudgetSettings::default()
        }));
        // The run's first request goes alone; once it is answered, the limit is the setting.
        drop(b.acquire("/first").await.expect("first"));
        let one = b.acquire("/a").await.expect("a");
        let two = b.acquire("/b").await.expect("b");
        let b2 = b.clone();
        let third = tokio::spawn(async move {
            let _p = b2.acquire("/c").await.expect("c");
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished());
        drop(one);
        third.await.expect("join");
        drop(two);
        assert_eq!(b.stats().peak_in_flight, 2);
    }
}
