//! What the supervisor knows about itself and each camera, as published for the HTTP API: the
//! `/status` JSON, the `/health` verdict and the `/metrics` text all come from one [`Snapshot`].

use crate::mode::ModeStatus;
use nvr_proto::{
    MotionStart, RecorderState, RecordingFinished, RecordingStarted, StreamState, StreamStatus,
    WorkerStats,
};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub supervisor: SupervisorInfo,
    /// In config order, disabled cameras included.
    pub cameras: Vec<CameraStatus>,
    /// The MQTT broker connection (written by the publisher's thread); absent without `mqtt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::notify::MqttStatus>,
    /// Every webhook's deliveries (written by the sender's thread); absent without `webhooks`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<crate::notify::webhook::WebhookStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SupervisorInfo {
    pub version: &'static str,
    pub pid: u32,
    pub uptime_s: f64,
    pub config_path: String,
    pub listen: String,
    /// Set when the last reload was rejected; the running config stays in force.
    pub last_reload_error: Option<String>,
    /// Settings the last reload changed that take effect only at the next start (`api.listen`,
    /// `output_dir`, ...); the running values stay in force until then.
    pub restart_needed: Vec<String>,
}

/// A worker process's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Spawned, waiting for its `Hello`.
    Starting,
    Running,
    /// Exited; waiting out the restart delay.
    Backoff,
    /// Restarted too often (past the intensity limit); still retried every `restart.max_s`.
    Failed,
    /// Not running on purpose: disabled, or shutting down.
    Stopped,
}

/// Why the supervisor restarted or stopped a worker, as `/status`, `/health` and the logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartReason {
    /// It exited by itself, with any exit code.
    Exit,
    /// A signal the supervisor did not send ended it.
    Signal,
    /// It never connected, never said `Hello`, or missed three heartbeats.
    Hung,
    /// Its RSS went over `limits.max_rss_mb`.
    Memory,
    /// Its CPU stayed over `limits.max_cpu_percent` for `limits.cpu_grace_s`.
    Cpu,
    /// A reload changed or removed its camera.
    ConfigChanged,
    /// Someone asked for a restart (`POST /api/cameras/<id>/restart`).
    Manual,
    /// Its process could not be started.
    Spawn,
    /// The supervisor is shutting down.
    Shutdown,
}

impl RestartReason {
    /// The word `/status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exit => "exit",
            RestartReason::Signal => "signal",
            RestartReason::Hung => "hung",
            RestartReason::Memory => "memory",
            RestartReason::Cpu => "cpu",
            RestartReason::ConfigChanged => "config_changed",
            RestartReason::Manual => "manual",
            RestartReason::Spawn => "spawn",
            RestartReason::Shutdown => "shutdown",
        }
    }
}

impl std::fmt::Display for RestartReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartRecord {
    pub reason: RestartReason,
    pub detail: String,
    pub at_unix_ms: u64,
}

/// Motion as the worker last reported it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MotionStatus {
    /// In motion now.
    pub active: bool,
    /// Motion starts since the supervisor started.
    pub events: u64,
    pub last_start: Option<MotionStart>,
    pub last_end: Option<MotionEnd>,
}

/// Recordings as the worker reported them (the file being written is in `worker.recording`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordingLog {
    /// Files finished since the supervisor started (including `.part` files recovered after a crash).
    pub finished: u64,
    pub last_started: Option<RecordingStarted>,
    pub last_finished: Option<RecordingFinished>,
    /// The last recording error (e.g. `disk full`) and when, Unix ms.
    pub last_error: Option<(String, u64)>,
    /// Bytes of the files finished since the supervisor started.
    #[serde(default)]
    pub bytes: u64,
    /// Recording errors reported since the supervisor started.
    #[serde(default)]
    pub errors: u64,
}

/// Upper bounds (seconds) of the heartbeat latency histogram's buckets; `+Inf` follows.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram of latencies since the supervisor started, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// Observations at or under each bound of [`LATENCY_BUCKETS_S`] (not cumulative), then those over the last.
    pub counts: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub sum_s: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.counts[i] += 1;
        self.sum_s += seconds;
        self.count += 1;
    }
}

/// Running totals of a camera since the supervisor started, summed across its worker restarts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// CPU seconds (user and system) of every worker process of this camera.
    pub cpu_s: f64,
    /// Heartbeat send-to-receive latency.
    #[serde(skip)]
    pub heartbeat_latency: LatencyHistogram,
}

#[derive(Debug, Clone, Serialize)]
pub struct MotionEnd {
    pub duration_s: f64,
    pub peak_score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub last_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub state: WorkerState,
    pub pid: Option<u32>,
    pub uptime_s: Option<f64>,
    /// Restarts since the supervisor started.
    pub restarts: u64,
    pub last_restart: Option<RestartRecord>,
    pub next_restart_in_s: Option<f64>,
    pub heartbeats: u64,
    pub heartbeat_age_ms: Option<f64>,
    /// Longest time between two heartbeats of the current worker process.
    pub max_heartbeat_gap_ms: Option<f64>,
    pub heartbeat_latency: Option<Latency>,
    pub cpu_percent: Option<f32>,
    pub rss_mb: Option<f64>,
    /// The worker's own figures from its last heartbeat.
    pub worker: Option<WorkerStats>,
    /// The last IPC or spawn problem, if any.
    pub last_error: Option<String>,
    pub stderr_tail: Vec<String>,
    pub motion: MotionStatus,
    pub recordings: RecordingLog,
    /// The recording mode in force, where it comes from, and its next change.
    pub mode: ModeStatus,
    /// Stream URLs with any credentials removed.
    pub main_url: String,
    pub sub_url: Option<String>,
    /// The configured recording mode. With `off` the worker does not connect MAIN at all, so
    /// there is no MAIN live view (`live?stream=main` closes with `main_not_connected`).
    pub recording_mode: nvr_config::RecordingMode,
    /// Motion sensitivity being tried on the running worker, not saved (the set-up page's
    /// sliders); `None` when the config's settings are in force.
    pub motion_preview: Option<MotionPreviewStatus>,
    /// Whether the camera has an `onvif` section: the UI shows PTZ controls (what the camera can
    /// do is `GET /api/cameras/{id}/ptz`).
    pub ptz: bool,
    /// Things worth fixing that do not make the camera unhealthy: a packet ring holding less than
    /// two GOPs, packets dropped for being too large for their ring.
    pub warnings: Vec<String>,
    /// Counters since the supervisor started (for `/metrics` and the metrics history).
    pub totals: Totals,
}

/// A motion preview in force: the sensitivity tried and how long it still lasts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotionPreviewStatus {
    pub threshold: u8,
    pub min_area: f64,
    pub remaining_s: f64,
}

impl CameraStatus {
    /// The warnings of a worker's report (see [`CameraStatus::warnings`]).
    pub fn warnings_of(worker: Option<&WorkerStats>) -> Vec<String> {
        let Some(w) = worker else {
            return Vec::new();
        };
        [("sub", w.sub.as_ref()), ("main", w.main.as_ref())]
            .into_iter()
            .filter_map(|(name, s)| s?.packet_ring.as_ref()?.warning(name))
            .collect()
    }

    /// Why this camera is not healthy, or `None` if it is.
    pub fn problem(&self) -> Option<String> {
        if self.state != WorkerState::Running {
            let state = format!("{:?}", self.state).to_lowercase();
            return Some(match &self.last_restart {
                Some(r) => format!("worker {state}: {} ({})", r.reason, r.detail),
                None => format!("worker {state}"),
            });
        }
        let Some(worker) = &self.worker else {
            return Some("no stream report from the worker yet".into());
        };
        let stream_problem = |name: &str, s: &StreamStatus| {
            (s.state != StreamState::Up).then(|| {
                format!(
                    "{name} stream {}{}",
                    serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    s.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            })
        };
        let Some(sub) = &worker.sub else {
            return Some("no stream report from the worker yet".into());
        };
        stream_problem("sub", sub)
            .or_else(|| worker.main.as_ref().and_then(|m| stream_problem("main", m)))
            .or_else(|| {
                let r = worker.recording.as_ref()?;
                (r.state == RecorderState::Error).then(|| {
                    format!(
                        "recording error: {}",
                        r.last_error.as_deref().unwrap_or("unknown")
                    )
                })
            })
    }
}

impl Snapshot {
    /// Enabled cameras that are not healthy (worker not running, or its stream not up), each with why.
    pub fn unhealthy(&self) -> Vec<(String, String)> {
        self.cameras
            .iter()
            .filter(|c| c.enabled)
            .filter_map(|c| c.problem().map(|why| (c.id.clone(), why)))
            .collect()
    }
}

/// The p-th percentile (0..=100) of `values` by nearest rank; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_packet_rings_and_oversize_drops_are_warnings() {
        use nvr_proto::PacketRingStatus;
        let stream = |ring: Option<PacketRingStatus>| StreamStatus {
            packet_ring: ring.map(Box::new),
            ..Default::default()
        };
        let ring = |holds_s, drops| PacketRingStatus {
            capacity_bytes: 4 << 20,
            bytes_per_s: 500_000.0,
            gop_s: 2.0,
            holds_s,
            oversize_drops: drops,
            ..Default::default()
        };
        assert!(CameraStatus::warnings_of(None).is_empty());
        let w = WorkerStats {
            sub: Some(stream(Some(ring(8.0, 0)))),
            main: Some(stream(None)),
            ..Default::default()
        };
        assert!(CameraStatus::warnings_of(Some(&w)).is_empty());
        let w = WorkerStats {
            sub: Some(stream(Some(ring(8.0, 2)))),
            main: Some(stream(Some(ring(3.0, 0)))),
            ..Default::default()
        };
        let warnings = CameraStatus::warnings_of(Some(&w));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("the sub packet ring dropped 2"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("live.main_ring_mb"), "{warnings:?}");
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
