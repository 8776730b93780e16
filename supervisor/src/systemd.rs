//! systemd's notify protocol (`Type=notify`): `READY=1` once the API is bound, `STOPPING=1` at a
//! stop signal, and `WATCHDOG=1` from the manager's loop, so a manager that stops turning gets the
//! service restarted (`WatchdogSec=`). Outside systemd (`NOTIFY_SOCKET` unset) all of it is a no-op.
//!
//! The messages go through the `sd-notify` crate (decision 62). Workers never see `NOTIFY_SOCKET`
//! (the process module removes it), so only the supervisor speaks for the service.
//!
//! Test-only fault: when `NVR_TEST_STALL_MANAGER_FILE` names a file that exists, the manager stops
//! at its next watchdog ping until the file is gone — a stuck manager, for the test that shows the
//! pings stop.

use sd_notify::NotifyState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The variables that belong to the supervisor alone; removed from each worker's environment.
pub const SUPERVISOR_ONLY_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Tells systemd the service is up (the API is bound and the manager runs).
pub fn ready() {
    let _ = sd_notify::notify(&[NotifyState::Ready]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// The watchdog pings the manager's loop sends: every half of `WATCHDOG_USEC`.
#[derive(Debug)]
pub struct Watchdog {
    every: Duration,
    next: Instant,
    stall_file: Option<PathBuf>,
}

impl Watchdog {
    /// The watchdog systemd asked for, if any.
    pub fn from_env() -> Option<Watchdog> {
        let timeout = sd_notify::watchdog_enabled().filter(|t| !t.is_zero())?;
        let every = timeout / 2;
        Some(Watchdog {
            every,
            next: Instant::now(),
            stall_file: std::env::var_os("NVR_TEST_STALL_MANAGER_FILE").map(PathBuf::from),
        })
    }

    /// When the next ping is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Sends a ping if one is due.
    pub fn tick(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        if let Some(f) = &self.stall_file {
            while f.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        self.next = now + self.every;
    }
}
