//! Restart policy: a worker that ran healthily (at least `reset_after_s`) and then exited is
//! restarted at once; one that exits sooner waits an exponential backoff with jitter, and an
//! OTP-style intensity limit marks a crash loop `failed`. Pure code: time comes in as seconds on any monotonic clock, jitter as a number, so
//! the policy is tested with tables and a simulated clock.

use nvr_config::RestartConfig;
use std::collections::VecDeque;

/// Jitter spreads restarts of several failing workers apart: the delay is scaled by 1 ± this fraction.
const JITTER: f64 = 0.1;

/// What to do after a worker exited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Wait this long before starting it again.
    pub delay_s: f64,
    /// More than `intensity` restarts within `period_s`: show the camera as `failed` (it is still
    /// retried, every `max_s`).
    pub failed: bool,
}

/// One camera's restart history.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RestartConfig,
    /// Failures since the last healthy run; the delay doubles with each.
    consecutive: u32,
    /// When recent restarts were decided, for the intensity limit.
    recent: VecDeque<f64>,
}

impl Backoff {
    pub fn new(policy: RestartConfig) -> Self {
        Backoff {
            policy,
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }

    pub fn set_policy(&mut self, policy: RestartConfig) {
        self.policy = policy;
    }

    /// Decides the restart of a worker that exited at `now_s` after running for `ran_for_s`.
    /// `jitter` is a uniform random number in 0..1. A healthy run (`reset_after_s` or longer) has
    /// earned an immediate restart and clears the backoff; the n-th exit in a row before that waits
    /// `initial_s · 2^(n-1)` (capped at `max_s`).
    pub fn on_exit(&mut self, now_s: f64, ran_for_s: f64, jitter: f64) -> Decision {
        let p = &self.policy;
        let base = if ran_for_s >= p.reset_after_s {
            self.consecutive = 0;
            0.0
        } else {
            let base = (p.initial_s * 2f64.powi(self.consecutive.min(30) as i32)).min(p.max_s);
            self.consecutive = self.consecutive.saturating_add(1);
            base
        };

        self.recent.push_back(now_s);
        while self.recent.front().is_some_and(|t| now_s - t > p.period_s) {
            self.recent.pop_front();
        }
        let failed = self.recent.len() > p.intensity as usize;
        let delay = if failed { p.max_s } else { base };
        Decision {
            delay_s: delay * (1.0 + JITTER * (2.0 * jitter.clamp(0.0, 1.0) - 1.0)),
            failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped defaults: 1 s doubling to 60 s, reset after 60 s, five restarts in 300 s.
    fn policy() -> RestartConfig {
        RestartConfig::default()
    }

    #[test]
    fn doubles_to_the_cap_then_resets_after_a_healthy_run() {
        let mut b = Backoff::new(RestartConfig {
            intensity: 100,
            ..policy()
        });
        let mut now = 0.0;
        // (ran_for_s, expected delay without jitter)
        let table = [
            (0.1, 1.0),
            (0.1, 2.0),
            (0.1, 4.0),
            (0.1, 8.0),
            (0.1, 16.0),
            (0.1, 32.0),
            (0.1, 60.0),
            (0.1, 60.0),
            (61.0, 0.0), // a healthy run: restarted at once, backoff cleared
            (0.1, 1.0),  // the next quick exit backs off from the start
            (0.1, 2.0),
            (60.0, 0.0), // exactly reset_after_s is healthy
            (59.9, 1.0),
        ];
        for (i, (ran_for, want)) in table.into_iter().enumerate() {
            now += ran_for;
            let d = b.on_exit(now, ran_for, 0.5);
            assert_eq!(d.delay_s, want, "step {i}");
            assert!(!d.failed);
            now += d.delay_s;
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for (jitter, want) in [(0.0, 0.9), (0.5, 1.0), (1.0, 1.1), (7.0, 1.1)] {
            let d = Backoff::new(policy()).on_exit(0.0, 0.0, jitter);
            assert!((d.delay_s - want).abs() < 1e-9, "{jitter}: {}", d.delay_s);
        }
    }

    #[test]
    fn intensity_limit_marks_failed_and_retries_at_the_cap() {
        let mut b = Backoff::new(RestartConfig {
            intensity: 3,
            period_s: 100.0,
            ..policy()
        });
        let decisions: Vec<Decision> = (0..5).map(|i| b.on_exit(f64::from(i), 0.1, 0.5)).collect();
        assert_eq!(
            decisions.iter().map(|d| d.failed).collect::<Vec<_>>(),
            [false, false, false, true, true]
        );
        assert_eq!(decisions[3].delay_s, 60.0);
        // Once the burst is older than the period, the camera is no longer failed.
        let later = b.on_exit(500.0, 0.1, 0.5);
        assert!(!later.failed);
    }
}
