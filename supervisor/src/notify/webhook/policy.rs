//! The webhook sender's decisions, pure (no IO; time is a Unix ms the caller passes): what
//! happens to a delivery after an attempt, and when a camera counts as down or up again.

use std::collections::HashMap;

/// The wait after the first failed attempt; it doubles after each further one, up to [`WAIT_MAX_MS`].
pub const WAIT_FIRST_MS: i64 = 1_000;
pub const WAIT_MAX_MS: i64 = 5 * 60 * 1_000;
/// A camera unhealthy this long (continuously) is reported `camera_down`, unless its
/// `notify.down_after_s` says otherwise.
pub const DOWN_AFTER_MS: i64 = 30_000;

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver answered 2xx: done.
    Delivered,
    /// Failed; try again at this Unix ms.
    RetryAt(i64),
    /// Failed `tries` times: dropped, and counted.
    Drop,
}

/// After attempt number `attempts` (1 for the first) of a delivery allowed `tries` attempts, which
/// succeeded or not, at `now_ms`: the wait before attempt n+1 is 1 s × 2^(n-1), at most 5 min.
pub fn after_attempt(ok: bool, attempts: u32, tries: u32, now_ms: i64) -> Verdict {
    if ok {
        return Verdict::Delivered;
    }
    if attempts >= tries {
        return Verdict::Drop;
    }
    let doublings = attempts.saturating_sub(1).min(20);
    let wait = (WAIT_FIRST_MS << doublings).min(WAIT_MAX_MS);
    Verdict::RetryAt(now_ms + wait)
}

/// A camera's health turning into a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Unhealthy for its delay ([`DOWN_AFTER_MS`] by default): since when, and the latest reason.
    Down { since_ms: i64, problem: String },
    /// Healthy again after a `Down`; how long it was unhealthy.
    Up { down_ms: i64 },
}

#[derive(Debug, Default)]
struct CameraHealth {
    /// Unhealthy since (Unix ms) and why, while it is.
    unhealthy: Option<(i64, String)>,
    /// A `Down` went out and no `Up` yet.
    reported_down: bool,
}

/// Tracks every camera's health: `camera_down` only after [`DOWN_AFTER_MS`] unhealthy (a worker
/// restart or a stream's short reconnect says nothing), `camera_up` only after a `camera_down`.
#[derive(Debug, Default)]
pub struct Health {
    cameras: HashMap<String, CameraHealth>,
    /// Per camera, how long unhealthy before `Down` when not [`DOWN_AFTER_MS`].
    down_after: HashMap<String, i64>,
}

impl Health {
    /// Each camera's delay before `Down` (from its `notify.down_after_s`).
    pub fn set_down_after(&mut self, delays: impl IntoIterator<Item = (String, i64)>) {
        self.down_after = delays.into_iter().collect();
    }

    /// The camera's health now (`problem`: why it is unhealthy, `None` when healthy); a camera
    /// reported down that is healthy again yields `Up`.
    pub fn observe(
        &mut self,
        camera: &str,
        problem: Option<String>,
        now_ms: i64,
    ) -> Option<Change> {
        let c = self.cameras.entry(camera.to_string()).or_default();
        match problem {
            Some(why) => {
                match &mut c.unhealthy {
                    Some((_, reason)) => *reason = why,
                    None => c.unhealthy = Some((now_ms, why)),
                }
                None
            }
            None => {
                let since = c.unhealthy.take().map(|(since, _)| since);
                if std::mem::take(&mut c.reported_down) {
                    Some(Change::Up {
                        down_ms: since.map_or(0, |s| now_ms - s),
                    })
                } else {
                    None
                }
            }
        }
    }

    /// Cameras unhealthy for their delay by `now_ms` and not reported yet: `Down`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<(String, Change)> {
        let mut out = Vec::new();
        for (camera, c) in &mut self.cameras {
            let after = self
                .down_after
                .get(camera)
                .copied()
                .unwrap_or(DOWN_AFTER_MS);
            if let Some((since, why)) = &c.unhealthy {
                if !c.reported_down && now_ms - since >= after {
                    c.reported_down = true;
                    out.push((
                        camera.clone(),
                        Change::Down {
                            since_ms: *since,
                            problem: why.clone(),
                        },
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets cameras no longer configured.
    pub fn retain(&mut self, cameras: &[String]) {
        self.cameras.retain(|id, _| cameras.contains(id));
    }
}

/// A webhook's per-camera quiet time after a `motion_start`: further motion events of that camera
/// within `cooldown_ms` are not sent (nor the `motion_end` of one that was not), so a busy camera
/// does not flood the receiver. Other events are never held back.
#[derive(Debug, Default)]
pub struct Cooldown {
    /// Per camera: when its last sent `motion_start` was.
    last_start: HashMap<String, i64>,
    /// Events whose start was held back, so their end is too.
    held: Vec<String>,
}

impl Cooldown {
    /// Whether a motion event's `start` (or its end, `start == false`) with index id `event_id` is
    /// sent, at `now_ms`, with `cooldown_ms` (0: everything is sent).
    pub fn admit(
        &mut self,
        camera: &str,
        event_id: &str,
        start: bool,
        cooldown_ms: i64,
        now_ms: i64,
    ) -> bool {
        if !start {
            let held = self.held.iter().position(|e| e == event_id);
            if let Some(i) = held {
                self.held.swap_remove(i);
            }
            return held.is_none();
        }
        match self.last_start.get(camera) {
            Some(&last) if cooldown_ms > 0 && now_ms - last < cooldown_ms => {
                // Bounded: an end that never comes must not make this grow forever.
                if self.held.len() >= 1000 {
                    self.held.remove(0);
                }
                self.held.push(event_id.to_string());
                false
            }
            _ => {
                self.last_start.insert(camera.to_string(), now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_wait_twice_as_long_each_time_then_the_delivery_is_dropped() {
        let mut now = 0;
        let mut waits = Vec::new();
        for attempt in 1.. {
            match after_attempt(false, attempt, 10, now) {
                Verdict::RetryAt(at) => {
                    waits.push((at - now) / 1000);
                    now = at;
                }
                Verdict::Drop => {
                    assert_eq!(attempt, 10, "dropped after exactly `tries` attempts");
                    break;
                }
                Verdict::Delivered => unreachable!(),
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
        assert_eq!(after_attempt(true, 10, 10, now), Verdict::Delivered);
        assert_eq!(after_attempt(false, 1, 1, now), Verdict::Drop);
        // The wait stops growing at 5 min, however many tries are allowed.
        assert_eq!(
            after_attempt(false, 30, 100, 0),
            Verdict::RetryAt(WAIT_MAX_MS)
        );
        assert_eq!(
            after_attempt(false, u32::MAX - 1, u32::MAX, 0),
            Verdict::RetryAt(WAIT_MAX_MS)
        );
    }

    #[test]
    fn a_camera_is_down_after_30_s_unhealthy_and_up_only_after_a_down() {
        let mut h = Health::default();
        let bad = || Some("stream sub is connecting".to_string());
        assert_eq!(h.observe("a", None, 0), None);
        // A short outage (a worker restart) says nothing.
        assert_eq!(h.observe("a", bad(), 1_000), None);
        assert!(h.tick(20_000).is_empty());
        assert_eq!(h.observe("a", None, 25_000), None);
        assert!(h.tick(60_000).is_empty());
        // A long one: down once, at 30 s, with the latest reason; then up.
        assert_eq!(h.observe("a", bad(), 100_000), None);
        assert_eq!(h.observe("a", Some("worker backoff".into()), 110_000), None);
        assert!(h.tick(129_999).is_empty());
        assert_eq!(
            h.tick(130_000),
            [(
                "a".to_string(),
                Change::Down {
                    since_ms: 100_000,
                    problem: "worker backoff".into()
                }
            )]
        );
        assert!(h.tick(200_000).is_empty(), "reported once");
        assert_eq!(
            h.observe("a", None, 205_000),
            Some(Change::Up { down_ms: 105_000 })
        );
        assert_eq!(h.observe("a", None, 206_000), None);
        // A camera with its own delay.
        h.set_down_after([("a".to_string(), 2_000)]);
        assert_eq!(h.observe("a", bad(), 210_000), None);
        assert!(h.tick(211_999).is_empty());
        assert_eq!(h.tick(212_000).len(), 1);
        // A camera removed from the config is forgotten.
        h.observe("b", bad(), 300_000);
        h.retain(&["a".to_string()]);
        assert!(h.tick(400_000).is_empty());
    }

    #[test]
    fn a_cooldown_holds_back_a_cameras_motion_events_and_their_ends() {
        let mut c = Cooldown::default();
        let min = 60_000;
        assert!(c.admit("a", "e1", true, min, 0));
        assert!(c.admit("b", "f1", true, min, 1_000), "per camera");
        assert!(!c.admit("a", "e2", true, min, 30_000), "within a minute");
        assert!(
            c.admit("a", "e1", false, min, 31_000),
            "a sent start's end is sent"
        );
        assert!(
            !c.admit("a", "e2", false, min, 32_000),
            "a held start's end is held"
        );
        // The quiet time counts from the last sent start, not from held ones.
        assert!(c.admit("a", "e3", true, min, 60_000));
        assert!(c.admit("a", "e3", false, min, 61_000));
        // Without a cooldown everything goes.
        let mut none = Cooldown::default();
        assert!(none.admit("a", "e1", true, 0, 0) && none.admit("a", "e2", true, 0, 1));
    }
}
