//! A camera's `/status` entry, built from its slot: settings, lifecycle, process and reports.

use super::Slot;
use crate::status::{percentile, CameraStatus, Latency, RestartRecord};
use nvr_config::redact_url;
use std::time::{Duration, Instant};

/// The wall clock of the manager's start, so instants can be shown as Unix milliseconds that stay
/// the same from one publish to the next.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub started: Instant,
    pub started_unix_ms: u64,
}

impl WallClock {
    pub fn now() -> Self {
        WallClock {
            started: Instant::now(),
            started_unix_ms: nvr_proto::unix_ns() / 1_000_000,
        }
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.started);
        self.started_unix_ms + u64::try_from(since.as_millis()).unwrap_or(u64::MAX / 2)
    }
}

pub fn camera_status(slot: &Slot, now: Instant, clock: WallClock) -> CameraStatus {
    let run = slot.life.run();
    let process = slot.process.as_ref();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let latencies: Vec<f64> = slot.latencies_ms.iter().copied().collect();
    CameraStatus {
        id: slot.cfg.id.to_string(),
        name: slot.cfg.name.clone(),
        enabled: slot.cfg.enabled,
        state: slot.life.state(),
        pid: run.map(|r| r.pid),
        uptime_s: run.map(|r| now.duration_since(r.started).as_secs_f64()),
        restarts: slot.life.restarts(),
        last_restart: slot.life.last_restart().map(|r| RestartRecord {
            reason: r.reason,
            detail: r.detail.clone(),
            at_unix_ms: clock.unix_ms(r.at),
        }),
        next_restart_in_s: slot
            .life
            .next_start()
            .map(|t| t.saturating_duration_since(now).as_secs_f64()),
        heartbeats: run.map_or(0, |r| r.heartbeats),
        heartbeat_age_ms: run
            .and_then(|r| r.last_heartbeat)
            .map(|t| ms(now.duration_since(t))),
        max_heartbeat_gap_ms: run.and_then(|r| r.max_gap).map(ms),
        heartbeat_latency: latencies.last().map(|last| Latency {
            last_ms: *last,
            p50_ms: percentile(&latencies, 50.0).unwrap_or(*last),
            p99_ms: percentile(&latencies, 99.0).unwrap_or(*last),
        }),
        cpu_percent: process.and_then(|p| p.cpu_percent),
        rss_mb: process.and_then(|p| p.rss_bytes).map(|b| b as f64 / 1e6),
        worker: slot.last_stats.clone(),
        last_error: slot.last_error.clone(),
        stderr_tail: slot
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default(),
        motion: slot.motion.clone(),
        recordings: slot.recordings.clone(),
        mode: slot.mode.clone(),
        main_url: redact_url(&slot.cfg.main_url),
        sub_url: slot.cfg.sub_url.as_deref().map(redact_url),
        recording_mode: slot.cfg.recording.mode,
        ptz: slot.cfg.onvif.is_some(),
        motion_preview: slot
            .motion_preview
            .as_ref()
            .map(|p| crate::status::MotionPreviewStatus {
                threshold: p.threshold.unwrap_or(slot.cfg.motion.threshold),
                min_area: p.min_area.unwrap_or(slot.cfg.motion.min_area),
                remaining_s: p.until.saturating_duration_since(now).as_secs_f64(),
            }),
        warnings: CameraStatus::warnings_of(slot.last_stats.as_ref()),
        totals: crate::status::Totals {
            cpu_s: slot.totals.cpu_s + process.map_or(0.0, |p| p.cpu_s),
            heartbeat_latency: slot.totals.heartbeat_latency.clone(),
        },
    }
}
