//! `/metrics`: the supervisor's figures in the Prometheus text format (0.0.4), following its
//! conventions: counters end in `_total`, values are in base units (seconds, bytes, 0-1 ratios),
//! latencies are histograms, `process_*` describe the supervisor itself and `nvr_build_info` its
//! build. Disabled cameras have no `up` series (they are not down, they are off).
//!
//! Written by hand through the small typed writer below rather than with the `prometheus-client`
//! crate (decision 71): every figure here is read from a snapshot the manager publishes, so there is
//! no metric state to register, and that crate writes OpenMetrics rather than the 0.0.4 text format
//! `promtool check metrics` and every Prometheus version read. The tests run `promtool` on real
//! output.

use crate::status::{CameraStatus, LatencyHistogram, Snapshot, WorkerState, LATENCY_BUCKETS_S};
use nvr_config::RecordingMode;
use nvr_proto::{RecorderState, StreamState, StreamStatus, WorkerStats};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Figures that do not come from the manager's snapshot, gathered when `/metrics` is asked for.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// (free bytes available to the supervisor, size in bytes) of the output file system.
    pub disk: Option<(u64, u64)>,
    /// Bytes of finished and open recordings in the index, per camera.
    pub stored_bytes: BTreeMap<String, u64>,
    /// Recordings retention deleted since the start: (camera, reason) → (files, bytes).
    pub retention: BTreeMap<(String, &'static str), (u64, u64)>,
    /// The supervisor process itself.
    pub process: Option<ProcessFigures>,
}

/// The supervisor's own `process_*` figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessFigures {
    pub start_time_s: f64,
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// One metric family being written: its samples follow its `# HELP` and `# TYPE` lines.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Exposition {
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        debug_assert!(
            (kind == Kind::Counter) == name.ends_with("_total"),
            "{name}: counters and only counters end in _total"
        );
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        write_sample(self.out, self.name, "", labels, value);
    }

    /// A histogram's `_bucket` (cumulative, with `le`), `_sum` and `_count` series.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &LatencyHistogram) {
        let mut cumulative = 0;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = LATENCY_BUCKETS_S
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            write_sample(self.out, self.name, "_bucket", &with_le, cumulative as f64);
        }
        write_sample(self.out, self.name, "_sum", labels, h.sum_s);
        write_sample(self.out, self.name, "_count", labels, h.count as f64);
    }
}

fn write_sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&number(value));
    out.push('\n');
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

type Pick = fn(&WorkerStats) -> Option<&StreamStatus>;
const STREAMS: [(&str, Pick); 2] = [("sub", |w| w.sub.as_ref()), ("main", |w| w.main.as_ref())];

/// The whole `/metrics` text.
pub fn render(snap: &Snapshot, extra: &Extra) -> String {
    let mut x = Exposition::default();
    let cams = &snap.cameras;
    let enabled = || cams.iter().filter(|c| c.enabled);
    let per_camera = |x: &mut Exposition,
                      name: &str,
                      kind: Kind,
                      help: &str,
                      value: &dyn Fn(&CameraStatus) -> Option<f64>| {
        let mut f = x.family(name, kind, help);
        for c in cams {
            if let Some(v) = value(c) {
                f.sample(&[("camera", &c.id)], v);
            }
        }
    };

    let commit = nvr_cli::VERSION
        .split_once("(commit ")
        .map_or("unknown", |(_, c)| c.trim_end_matches(')'));
    x.family(
        "nvr_build_info",
        Kind::Gauge,
        "The running build: always 1, with its version, commit and IPC schema as labels",
    )
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", commit),
            ("ipc_schema", &nvr_proto::SCHEMA.to_string()),
        ],
        1.0,
    );
    if let Some(p) = extra.process {
        x.family(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the supervisor process since the Unix epoch, in seconds",
        )
        .sample(&[], p.start_time_s);
        x.family(
            "process_cpu_seconds_total",
            Kind::Counter,
            "CPU time (user and system) of the supervisor process, in seconds",
        )
        .sample(&[], p.cpu_s);
        x.family(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory of the supervisor process, in bytes",
        )
        .sample(&[], p.rss_bytes as f64);
    }

    per_camera(
        &mut x,
        "nvr_camera_enabled",
        Kind::Gauge,
        "1 for a camera enabled in the config, 0 for a disabled one (which has no up series)",
        &|c| Some(flag(c.enabled)),
    );
    let mut f = x.family(
        "nvr_worker_up",
        Kind::Gauge,
        "1 when the enabled camera's worker is running, 0 when it is not",
    );
    for c in enabled() {
        f.sample(&[("camera", &c.id)], flag(c.state == WorkerState::Running));
    }
    per_camera(
        &mut x,
        "nvr_worker_restarts_total",
        Kind::Counter,
        "Worker restarts since the supervisor started",
        &|c| Some(c.restarts as f64),
    );
    per_camera(
        &mut x,
        "nvr_worker_cpu_seconds_total",
        Kind::Counter,
        "CPU time of the camera's worker processes since the supervisor started (summed across restarts), in seconds",
        &|c| Some(c.totals.cpu_s),
    );
    per_camera(
        &mut x,
        "nvr_worker_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of the camera's worker, in bytes",
        &|c| c.rss_mb.map(|m| (m * 1e6).round()),
    );
    per_camera(
        &mut x,
        "nvr_heartbeat_age_seconds",
        Kind::Gauge,
        "Time since the worker's last heartbeat, in seconds",
        &|c| c.heartbeat_age_ms.map(|m| m / 1e3),
    );
    let mut f = x.family(
        "nvr_heartbeat_latency_seconds",
        Kind::Histogram,
        "Heartbeat latency from the worker's send to the supervisor's receipt, in seconds",
    );
    for c in cams {
        f.histogram(&[("camera", &c.id)], &c.totals.heartbeat_latency);
    }

    fn streams(c: &CameraStatus) -> Vec<(&'static str, &StreamStatus)> {
        let w = c.worker.as_ref();
        STREAMS
            .iter()
            .filter_map(move |(name, pick)| Some((*name, pick(w?)?)))
            .collect()
    }
    let per_stream = |x: &mut Exposition,
                      name: &str,
                      kind: Kind,
                      help: &str,
                      value: &dyn Fn(&StreamStatus) -> f64| {
        let mut f = x.family(name, kind, help);
        for c in enabled() {
            for (stream, s) in streams(c) {
                f.sample(&[("camera", &c.id), ("stream", stream)], value(s));
            }
        }
    };
    per_stream(
        &mut x,
        "nvr_stream_up",
        Kind::Gauge,
        "1 when the camera's stream (sub or main) is up",
        &|s| flag(s.state == StreamState::Up),
    );
    per_stream(
        &mut x,
        "nvr_stream_fps",
        Kind::Gauge,
        "Frames (sub) or video packets (main) per second over the last second",
        &|s| s.fps,
    );
    per_stream(
        &mut x,
        "nvr_stream_frames_total",
        Kind::Counter,
        "Frames decoded (sub) or video packets received (main) by the current worker",
        &|s| s.frames as f64,
    );
    per_stream(
        &mut x,
        "nvr_stream_received_bytes_total",
        Kind::Counter,
        "Bytes of the stream's packets received by the current worker (its rate is the bitrate)",
        &|s| s.bytes as f64,
    );
    per_stream(
        &mut x,
        "nvr_stream_reconnects_total",
        Kind::Counter,
        "Connection attempts of the stream that failed or ended, by the current worker",
        &|s| s.reconnects as f64,
    );

    per_camera(
        &mut x,
        "nvr_motion_active",
        Kind::Gauge,
        "1 while motion is detected",
        &|c| Some(flag(c.motion.active)),
    );
    per_camera(
        &mut x,
        "nvr_motion_events_total",
        Kind::Counter,
        "Motion events started since the supervisor started",
        &|c| Some(c.motion.events as f64),
    );
    per_camera(
        &mut x,
        "nvr_recording_active",
        Kind::Gauge,
        "1 while the camera is writing a recording",
        &|c| {
            let r = c.worker.as_ref()?.recording.as_ref()?;
            Some(flag(r.state == RecorderState::Recording))
        },
    );
    per_camera(
        &mut x,
        "nvr_recordings_finished_total",
        Kind::Counter,
        "Recording files finished since the supervisor started",
        &|c| Some(c.recordings.finished as f64),
    );
    per_camera(
        &mut x,
        "nvr_recorded_bytes_total",
        Kind::Counter,
        "Bytes of the recording files finished since the supervisor started",
        &|c| Some(c.recordings.bytes as f64),
    );
    per_camera(
        &mut x,
        "nvr_recording_errors_total",
        Kind::Counter,
        "Recording errors (disk full, cannot write) since the supervisor started",
        &|c| Some(c.recordings.errors as f64),
    );
    per_camera(
        &mut x,
        "nvr_recording_mode_override",
        Kind::Gauge,
        "1 while a runtime override sets the camera's mode",
        &|c| Some(flag(c.mode.source == "override")),
    );
    let mut f = x.family(
        "nvr_recording_mode",
        Kind::Gauge,
        "1 for the recording mode in force (label mode), 0 for the others",
    );
    for c in cams {
        for m in RecordingMode::ALL {
            f.sample(
                &[("camera", &c.id), ("mode", &m.to_string())],
                flag(c.mode.current == m),
            );
        }
    }

    let mut f = x.family(
        "nvr_recordings_stored_bytes",
        Kind::Gauge,
        "Bytes of the camera's recordings on disk, as the index knows them",
    );
    for (camera, bytes) in &extra.stored_bytes {
        f.sample(&[("camera", camera)], *bytes as f64);
    }
    let mut f = x.family(
        "nvr_retention_deletions_total",
        Kind::Counter,
        "Recordings deleted by retention since the supervisor started, by camera and reason",
    );
    for ((camera, reason), (n, _)) in &extra.retention {
        f.sample(&[("camera", camera), ("reason", reason)], *n as f64);
    }
    let mut f = x.family(
        "nvr_retention_deleted_bytes_total",
        Kind::Counter,
        "Bytes of the recordings deleted by retention since the supervisor started",
    );
    for ((camera, reason), (_, b)) in &extra.retention {
        f.sample(&[("camera", camera), ("reason", reason)], *b as f64);
    }
    if let Some((free, size)) = extra.disk {
        x.family(
            "nvr_disk_free_bytes",
            Kind::Gauge,
            "Free bytes the supervisor may use on the output file system",
        )
        .sample(&[], free as f64);
        x.family(
            "nvr_disk_size_bytes",
            Kind::Gauge,
            "Size of the output file system, in bytes",
        )
        .sample(&[], size as f64);
    }
    if let Some(m) = &snap.mqtt {
        m.prometheus(&mut x);
    }
    if !snap.webhooks.is_empty() {
        crate::notify::webhook::WebhookStatus::prometheus(&snap.webhooks, &mut x);
    }
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_labels_and_histograms_are_cumulative() {
        let mut x = Exposition::default();
        x.family("a_total", Kind::Counter, "help with \\ and\nnewline")
            .sample(&[("camera", "x\"y\\z")], 3.0);
        let mut h = LatencyHistogram::default();
        for s in [0.0004, 0.002, 0.002, 7.0] {
            h.observe(s);
        }
        x.family("lat_seconds", Kind::Histogram, "l")
            .histogram(&[("camera", "c")], &h);
        x.family("g", Kind::Gauge, "g").sample(&[], f64::INFINITY);
        let text = x.finish();
        assert!(
            text.contains("# HELP a_total help with \\\\ and\\nnewline\n"),
            "{text}"
        );
        assert!(
            text.contains("a_total{camera=\"x\\\"y\\\\z\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{camera=\"c\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{camera=\"c\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{camera=\"c\",le=\"0.0025\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{camera=\"c\",le=\"2.5\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{camera=\"c\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_count{camera=\"c\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("g +Inf\n"), "{text}");
    }
}
