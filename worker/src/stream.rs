//! What the SUB and MAIN pipelines share: the reconnect-forever loop around one RTSP session, the
//! stream's status as heartbeats report it, and the signal that makes a heartbeat go out at once
//! when a stream changes state. An unreachable camera is a state, never a reason to exit.

use crate::rtsp::StreamError;
use nvr_config::redact_url;
use nvr_proto::{StreamState, StreamStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

/// First reconnect delay; doubles up to [`RECONNECT_MAX`] while attempts deliver nothing, and
/// starts over after any session that delivered frames: a camera that was streaming and dropped
/// (a reboot, a flapping link) is tried again at once, since every second away is footage lost.
/// The cap keeps a dead camera to one cheap attempt every 10 s.
const RECONNECT_INITIAL: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(30);

/// Shared view of a stream's state, read by the heartbeat thread.
pub type SharedStatus = Arc<Mutex<StreamStatus>>;

/// Rung when a stream changes state, so the heartbeat goes out now instead of at its next tick.
#[derive(Default)]
pub struct StateChange {
    count: Mutex<u64>,
    rung: Condvar,
}

impl StateChange {
    pub fn ring(&self) {
        if let Ok(mut n) = self.count.lock() {
            *n += 1;
            self.rung.notify_all();
        }
    }

    /// Waits up to `timeout` for a ring after `seen`; returns the latest count.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(guard) = self.count.lock() else {
            return seen;
        };
        match self.rung.wait_timeout_while(guard, timeout, |n| *n == seen) {
            Ok((n, _)) => *n,
            Err(_) => seen,
        }
    }
}

/// One stream's connection loop and status.
pub struct StreamRunner {
    /// `sub` or `main`, for logs.
    pub name: &'static str,
    /// The URL as configured (no credentials: validation rejects them in URLs).
    pub url: String,
    pub stop: Arc<AtomicBool>,
    pub status: SharedStatus,
    pub changed: Arc<StateChange>,
}

impl StreamRunner {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Runs `session` (one connection, until it fails or ends) again and again with backoff until
    /// `stop` is set, keeping the status up to date between sessions.
    pub fn run(&self, mut session: impl FnMut() -> Result<(), StreamError>) {
        let mut delay = RECONNECT_INITIAL;
        while !self.stopping() {
            self.update(|s| s.state = StreamState::Connecting);
            let result = session();
            if self.stopping() {
                break;
            }
            // Only a session that delivered frames resets the backoff: a camera that accepts the
            // connection and then stalls or sends garbage keeps backing off.
            let was_up = self.status.lock().is_ok_and(|s| s.state == StreamState::Up);
            if was_up {
                delay = RECONNECT_INITIAL;
            }
            let err = match result {
                Ok(()) => StreamError::Ended {
                    url: redact_url(&self.url),
                },
                Err(e) => e,
            };
            if matches!(err, StreamError::Stopped) {
                break;
            }
            let state = match err {
                StreamError::Unauthorized { .. } => StreamState::Unauthorized,
                _ => StreamState::Down,
            };
            // Cameras lock accounts after repeated failed logins: a refused password is retried
            // slowly (a fixed password comes with a config reload, which restarts the worker).
            let wait = match state {
                StreamState::Unauthorized => delay.max(UNAUTHORIZED_RETRY),
                _ => delay,
            };
            warn!(stream = self.name, error = %err, retry_in_s = wait.as_secs_f64(), "stream down");
            self.update(|s| {
                s.state = state;
                s.fps = 0.0;
                s.reconnects += 1;
                s.last_error = Some(err.to_string());
            });
            self.sleep(wait);
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }

    /// Applies `f` to the shared status; rings [`StateChange`] if the state changed.
    pub fn update(&self, f: impl FnOnce(&mut StreamStatus)) {
        let changed = match self.status.lock() {
            Ok(mut s) => {
                let before = s.state;
                f(&mut s);
                s.state != before
            }
            Err(_) => false,
        };
        if changed {
            self.changed.ring();
        }
    }

    /// Counts one frame (SUB) or packet (MAIN) of a `width`×`height` `codec` stream, marks the
    /// stream up, and updates its rate once `window` has run a second. Returns true when the stream
    /// has just come up (or changed size).
    pub fn count(&self, window: &mut (Instant, u32), width: u32, height: u32, codec: &str) -> bool {
        window.1 += 1;
        let elapsed = window.0.elapsed();
        let mut newly_up = false;
        self.update(|s| {
            s.frames += 1;
            if s.state != StreamState::Up || (s.width, s.height) != (width, height) {
                newly_up = true;
                s.state = StreamState::Up;
                s.last_error = None;
                s.width = width;
                s.height = height;
                s.codec = codec.to_string();
            }
            if elapsed >= Duration::from_secs(1) {
                s.fps = f64::from(window.1) / elapsed.as_secs_f64();
            }
        });
        if elapsed >= Duration::from_secs(1) {
            *window = (Instant::now(), 0);
        }
        newly_up
    }

    /// Sleeps up to `d`, waking early on stop.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
