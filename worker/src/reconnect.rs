//! Reconnect policy: how long a stream waits before the next connection attempt. Pure code (the
//! supervisor's restart backoff in `supervisor/src/manager/backoff.rs` is its counterpart for processes):
//! what a session ended with comes in, a wait goes out, so the policy is tested with tables and
//! simulated time.

use std::time::Duration;

/// The wait after a session that delivered frames, and the first wait of a stream.
pub const INITIAL: Duration = Duration::from_secs(1);
/// The longest wait while attempts deliver nothing: a dead camera costs one cheap attempt (a TCP
/// connection) every 10 s.
pub const MAX: Duration = Duration::from_secs(10);
/// The shortest wait after the camera refused the credentials: cameras lock accounts after
/// repeated failed logins. (A fixed password comes with a config reload, which restarts the worker.)
pub const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(30);

/// How one connection attempt (a session) ended, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnd {
    /// The stream was up: frames (SUB) or packets (MAIN) flowed.
    pub delivered: bool,
    /// The camera refused the credentials (401).
    pub refused: bool,
}

/// One stream's reconnect backoff: 1 s, doubling up to [`MAX`] while attempts deliver nothing,
/// back to 1 s after any session that delivered frames (a camera that was streaming and dropped,
/// a reboot or a flapping link, is tried again 1 s later, since every second away is footage
/// lost), and at least [`UNAUTHORIZED_RETRY`] after a refused password. A camera that accepts the
/// connection and then stalls or sends garbage delivered nothing, so it keeps backing off.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The wait after the next session, unless that one delivered frames (then [`INITIAL`]).
    delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect { delay: INITIAL }
    }
}

impl Reconnect {
    /// How long to wait before the next attempt, after a session that ended as `end`.
    pub fn after(&mut self, end: SessionEnd) -> Duration {
        if end.delivered {
            self.delay = INITIAL;
        }
        let wait = if end.refused {
            self.delay.max(UNAUTHORIZED_RETRY)
        } else {
            self.delay
        };
        self.delay = (self.delay * 2).min(MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: SessionEnd = SessionEnd {
        delivered: false,
        refused: false,
    };
    const DELIVERED: SessionEnd = SessionEnd {
        delivered: true,
        refused: false,
    };
    const REFUSED: SessionEnd = SessionEnd {
        delivered: false,
        refused: true,
    };

    #[test]
    fn waits_double_to_the_cap_and_start_over_after_a_session_that_delivered_frames() {
        let mut r = Reconnect::default();
        // (how the session ended, wait in seconds)
        let table = [
            (NOTHING, 1),
            (NOTHING, 2),
            (NOTHING, 4),
            (NOTHING, 8),
            (NOTHING, 10), // the cap
            (NOTHING, 10),
            (DELIVERED, 1), // the stream was up: start over
            (NOTHING, 2),
            (NOTHING, 4),
            (DELIVERED, 1),
            (DELIVERED, 1), // a flapping camera is retried after 1 s every time
        ];
        for (step, (end, want_s)) in table.into_iter().enumerate() {
            assert_eq!(r.after(end), Duration::from_secs(want_s), "step {step}");
        }
    }

    #[test]
    fn a_refused_password_waits_at_least_30_s_and_still_advances_the_backoff() {
        let mut r = Reconnect::default();
        let table = [
            (REFUSED, 30),
            (REFUSED, 30),
            (NOTHING, 4),
            (NOTHING, 8),
            (REFUSED, 30),
            (NOTHING, 10),
            (DELIVERED, 1),
            (REFUSED, 30),
        ];
        for (step, (end, want_s)) in table.into_iter().enumerate() {
            assert_eq!(r.after(end), Duration::from_secs(want_s), "step {step}");
        }
        // A session that was up and then ended refused (a password changed on the camera): the
        // backoff starts over, the 30 s floor still holds.
        let mut r = Reconnect::default();
        let up_then_refused = SessionEnd {
            delivered: true,
            refused: true,
        };
        assert_eq!(r.after(up_then_refused), UNAUTHORIZED_RETRY);
        assert_eq!(r.after(NOTHING), Duration::from_secs(2));
    }

    /// How long a failing connection attempt takes in the simulations.
    const ATTEMPT: Duration = Duration::from_millis(100);

    /// Simulated time: a stream whose camera went away at 0 s and is back at `back_at`. The first
    /// wait is `first`, the policy's answer to how the lost session ended; every attempt takes
    /// [`ATTEMPT`] and fails until the camera is back. Returns how long the stream stayed away after
    /// the camera was back.
    fn away_after_back(r: &mut Reconnect, first: Duration, back_at: Duration) -> Duration {
        let mut now = first;
        loop {
            now += ATTEMPT;
            if now >= back_at {
                return now - back_at;
            }
            now += r.after(NOTHING);
        }
    }

    #[test]
    fn a_dead_camera_that_comes_back_is_reached_within_the_cap() {
        for back_at_s in [0.5, 3.0, 14.0, 60.0, 600.0, 3600.0] {
            let mut r = Reconnect::default();
            let first = r.after(NOTHING);
            let away = away_after_back(&mut r, first, Duration::from_secs_f64(back_at_s));
            // The camera may come back just after an attempt failed: one more wait, one attempt.
            assert!(away <= MAX + ATTEMPT, "back at {back_at_s} s: {away:?}");
        }
    }

    #[test]
    fn a_server_restarted_twenty_times_in_a_row_costs_the_same_each_time() {
        // The fault-injection run behind decision 28: the camera server restarted 20 times, each
        // time down for 3 s. Every session delivered frames, so no restart leaves the backoff
        // doubling toward the cap: the last restart costs what the first did.
        let mut r = Reconnect::default();
        let back_at = Duration::from_secs(3);
        let away: Vec<Duration> = (0..20)
            .map(|_| {
                let first = r.after(DELIVERED);
                away_after_back(&mut r, first, back_at)
            })
            .collect();
        assert!(away.iter().all(|a| *a == away[0]), "{away:?}");
        assert!(away[0] < Duration::from_secs(1), "{away:?}");
    }
}
