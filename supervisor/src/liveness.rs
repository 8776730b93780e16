//! Liveness: the manager loop's pulse. The loop beats once per pass (at least every half second
//! when idle); `/health` answers 200 while the last beat is younger than [`STALE_AFTER`], the
//! same signal the systemd watchdog's pings follow. Camera health is `/ready`'s business, so one
//! unplugged camera never gets the whole NVR restarted by an orchestrator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pass older than this means the manager is stuck.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// The manager's last pass, shared with the API.
#[derive(Debug, Clone)]
pub struct Pulse {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last beat.
    last_ms: Arc<AtomicU64>,
}

impl Default for Pulse {
    fn default() -> Self {
        Pulse {
            epoch: Instant::now(),
            last_ms: Arc::default(),
        }
    }
}

impl Pulse {
    /// A pulse whose first beat was at `at`.
    pub fn started_at(at: Instant) -> Self {
        Pulse {
            epoch: at,
            last_ms: Arc::default(),
        }
    }

    /// The manager finished a pass at `now`.
    pub fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Time since the last pass, at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// Whether the manager made a pass within [`STALE_AFTER`] of `now`.
    pub fn alive(&self, now: Instant) -> bool {
        self.age(now) < STALE_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_until_the_last_pass_is_stale() {
        let p = Pulse::default();
        let t0 = p.epoch;
        p.beat(t0 + Duration::from_secs(5));
        assert!(p.alive(t0 + Duration::from_secs(5)));
        assert!(p.alive(t0 + Duration::from_secs(34)));
        assert!(!p.alive(t0 + Duration::from_secs(35)));
        p.beat(t0 + Duration::from_secs(40));
        assert!(p.alive(t0 + Duration::from_secs(41)));
        assert_eq!(p.age(t0 + Duration::from_secs(41)), Duration::from_secs(1));
        // A clone shares the beat.
        let q = p.clone();
        p.beat(t0 + Duration::from_secs(100));
        assert!(q.alive(t0 + Duration::from_secs(101)));
    }
}
