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
use worker::reconnect::{Reconnect, SessionEnd};

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

    /// Runs `session` (one connection, until it fails or ends) again and again until `stop` is set,
    /// waiting between sessions as [`Reconnect`] says and keeping the status up to date.
    pub fn run(&self, mut session: impl FnMut() -> Result<(), StreamError>) {
        let mut reconnect = Reconnect::default();
        while !self.stopping() {
            self.update(|s| s.state = StreamState::Connecting);
            let result = session();
            if self.stopping() {
                break;
            }
            let delivered = self.status.lock().is_ok_and(|s| s.state == StreamState::Up);
            let err = match result {
                Ok(()) => StreamError::Ended {
                    url: redact_url(&self.url),
                },
                Err(e) => e,
            };
            if matches!(err, StreamError::Stopped) {
                break;
            }
            let refused = matches!(err, StreamError::Unauthorized { .. });
            let wait = reconnect.after(SessionEnd { delivered, refused });
            let state = if refused {
                StreamState::Unauthorized
            } else {
                StreamState::Down
            };
            warn!(stream = self.name, error = %err, retry_in_s = wait.as_secs_f64(), "stream down");
            self.update(|s| {
                s.state = state;
                s.fps = 0.0;
                s.reconnects += 1;
                s.last_error = Some(err.to_string());
            });
            self.sleep(wait);
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
    /// has just come up (or changed size). `bytes` (packet bytes received since the last count)
    /// are added to the stream's total and zeroed.
    pub fn count(
        &self,
        window: &mut (Instant, u32),
        width: u32,
        height: u32,
        codec: &str,
        bytes: &mut u64,
    ) -> bool {
        window.1 += 1;
        let elapsed = window.0.elapsed();
        let mut newly_up = false;
        let received = std::mem::take(bytes);
        self.update(|s| {
            s.frames += 1;
            s.bytes += received;
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
