//! What the supervisor knows about itself and each camera, as published for the HTTP API: the
//! `/status` JSON, the `/health` verdict and the `/metrics` text all come from one [`Snapshot`].

use crate::mode::ModeStatus;
use nvr_config::RecordingMode;
use nvr_proto::{
    MotionStart, RecorderState, RecordingFinished, RecordingStarted, StreamState, StreamStatus,
    WorkerStats,
};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub supervisor: SupervisorInfo,
    /// In config order, disabled cameras included.
    pub cameras: Vec<CameraStatus>,
    /// The MQTT broker connection (written by the publisher's thread); absent without `mqtt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::notify::MqttStatus>,
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
    /// Things worth fixing that do not make the camera unhealthy: a packet ring holding less than
    /// two GOPs, packets dropped for being too large for their ring.
    pub warnings: Vec<String>,
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

    /// The figures in Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: &dyn Fn(&CameraStatus) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for c in &self.cameras {
                if let Some(v) = value(c) {
                    let _ = writeln!(out, "{name}{{camera=\"{}\"}} {v}", c.id);
                }
            }
        };
        gauge(
            "nvr_worker_up",
            "1 when the camera's worker is running",
            &|c| Some(f64::from(u8::from(c.state == WorkerState::Running))),
        );
        gauge(
            "nvr_worker_restarts_total",
            "Worker restarts since the supervisor started",
            &|c| Some(c.restarts as f64),
        );
        gauge(
            "nvr_worker_cpu_percent",
            "Worker CPU, percent of one core",
            &|c| c.cpu_percent.map(f64::from),
        );
        gauge("nvr_worker_rss_bytes", "Worker resident memory", &|c| {
            c.rss_mb.map(|m| m * 1e6)
        });
        gauge(
            "nvr_heartbeat_age_seconds",
            "Time since the last heartbeat",
            &|c| c.heartbeat_age_ms.map(|m| m / 1e3),
        );
        gauge(
            "nvr_heartbeat_latency_p99_seconds",
            "Heartbeat send-to-receive latency, p99",
            &|c| c.heartbeat_latency.as_ref().map(|l| l.p99_ms / 1e3),
        );
        for (stream, pick) in [
            (
                "sub",
                (|w: &WorkerStats| w.sub.as_ref()) as fn(&WorkerStats) -> Option<&StreamStatus>,
            ),
            ("main", |w: &WorkerStats| w.main.as_ref()),
        ] {
            gauge(
                &format!("nvr_{stream}_stream_up"),
                &format!("1 when the camera's {stream} stream is up"),
                &|c| {
                    let s = pick(c.worker.as_ref()?)?;
                    Some(f64::from(u8::from(s.state == StreamState::Up)))
                },
            );
            gauge(
                &format!("nvr_{stream}_stream_fps"),
                &format!("Frames (sub) or video packets (main) per second of the {stream} stream"),
                &|c| Some(pick(c.worker.as_ref()?)?.fps),
            );
        }
        gauge("nvr_motion_active", "1 while motion is detected", &|c| {
            Some(f64::from(u8::from(c.motion.active)))
        });
        gauge(
            "nvr_recording",
            "1 while the camera is writing a recording",
            &|c| {
                let r = c.worker.as_ref()?.recording.as_ref()?;
                Some(f64::from(u8::from(r.state == RecorderState::Recording)))
            },
        );
        gauge(
            "nvr_recordings_finished_total",
            "Recording files finished since the supervisor started",
            &|c| Some(c.recordings.finished as f64),
        );
        gauge(
            "nvr_recording_mode_override",
            "1 while a runtime override sets the camera's mode",
            &|c| Some(f64::from(u8::from(c.mode.source == "override"))),
        );
        let _ = writeln!(
            out,
            "# HELP nvr_recording_mode 1 for the recording mode in force (label mode), 0 for the others\n# TYPE nvr_recording_mode gauge"
        );
        for c in &self.cameras {
            for m in RecordingMode::ALL {
                let _ = writeln!(
                    out,
                    "nvr_recording_mode{{camera=\"{}\",mode=\"{m}\"}} {}",
                    c.id,
                    u8::from(c.mode.current == m)
                );
            }
        }
        if let Some(m) = &self.mqtt {
            m.prometheus(&mut out);
        }
        let _ = writeln!(
            out,
            "# HELP nvr_supervisor_uptime_seconds Supervisor uptime\n# TYPE nvr_supervisor_uptime_seconds gauge\nnvr_supervisor_uptime_seconds {}",
            self.supervisor.uptime_s
        );
        out
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
