//! The archive thread: the one writer of the recordings index. It takes the workers' recording and
//! motion events from the manager (so index writes never hold up the manager or a worker), saves a
//! thumbnail of the live frame for each motion event, and runs retention every
//! `retention.check_every_s` and at once when a worker reports a full disk.

use crate::index::{ClipState, EventFacts, Index, Recording};
use crate::preview::PreviewHub;
use crate::retention::{self, Clip, Limits};
use nvr_config::{Config, RetentionConfig};
use nvr_proto::{MotionStart, RecordingFinished, RecordingStarted};
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

pub enum ArchiveOp {
    /// The retention settings (at start and after every reload).
    Settings {
        limits: HashMap<String, Limits>,
        retention: RetentionConfig,
    },
    RecordingStarted {
        camera_id: String,
        r: RecordingStarted,
    },
    RecordingFinished {
        camera_id: String,
        r: RecordingFinished,
    },
    MotionStart {
        camera_id: String,
        m: MotionStart,
    },
    MotionEnd {
        camera_id: String,
        duration_s: f64,
        peak_score: f64,
    },
    /// A worker could not write: make room now.
    DiskFull,
}

pub type Archive = Sender<ArchiveOp>;

/// The retention settings of a config.
pub fn settings(config: &Config) -> ArchiveOp {
    ArchiveOp::Settings {
        limits: config
            .cameras
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    Limits {
                        keep_days: c.recording.keep_days,
                        max_gb: c.recording.max_gb,
                    },
                )
            })
            .collect(),
        retention: config.retention.clone(),
    }
}

/// Starts the archive thread on an opened index.
pub fn spawn(index: Index, preview: Arc<PreviewHub>) -> std::io::Result<Archive> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("archive".into())
        .spawn(move || run(index, preview, rx))?;
    Ok(tx)
}

fn run(index: Index, preview: Arc<PreviewHub>, rx: Receiver<ArchiveOp>) {
    let mut limits = HashMap::new();
    let mut retention = RetentionConfig::default();
    // The open motion event of each camera.
    let mut open_events: HashMap<String, (String, i64)> = HashMap::new();
    let mut next_check = Instant::now();
    loop {
        let timeout = next_check.saturating_duration_since(Instant::now());
        let op = match rx.recv_timeout(timeout) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let logged = |what: &str, r: Result<(), crate::index::IndexError>| {
            if let Err(e) = r {
                error!(error = %e, "recordings index: cannot record {what}");
            }
        };
        match op {
            None => {
                enforce(&index, &limits, &retention);
                next_check = Instant::now() + Duration::from_secs_f64(retention.check_every_s);
            }
            Some(ArchiveOp::Settings {
                limits: l,
                retention: r,
            }) => {
                limits = l;
                retention = r;
                next_check = Instant::now();
            }
            Some(ArchiveOp::DiskFull) => {
                enforce(&index, &limits, &retention);
            }
            Some(
                ArchiveOp::RecordingStarted {
                    ref camera_id,
                    r: RecordingStarted { ref path, .. },
                }
                | ArchiveOp::RecordingFinished {
                    ref camera_id,
                    r: RecordingFinished { ref path, .. },
                },
            ) if !nvr_config::layout::is_clip_path_of(camera_id, path) => {
                error!(
                    camera_id,
                    path, "ignoring a clip path that is not this camera's"
                );
            }
            Some(ArchiveOp::RecordingStarted { camera_id, r }) => logged(
                "a clip's start",
                index.recording_started(&camera_id, &r.path, r.start_unix_ms as i64, &r.codec),
            ),
            Some(ArchiveOp::RecordingFinished { camera_id, r }) => logged(
                "a finished clip",
                index.recording_finished(
                    &camera_id,
                    &r.path,
                    r.start_unix_ms as i64,
                    r.duration_s,
                    r.bytes,
                ),
            ),
            Some(ArchiveOp::MotionStart { camera_id, m }) => {
                // The thumbnail is the live frame now, a few frames after the onset.
                let thumb = preview.snapshot(&camera_id).ok();
                let facts = EventFacts {
                    camera_id: camera_id.clone(),
                    start: m.wall_unix_ms as i64,
                    end: None,
                    score: m.score,
                };
                match index.motion_started(&facts, thumb.as_ref().map(|p| p.jpeg.as_slice())) {
                    Ok(id) => {
                        open_events.insert(camera_id, (id, facts.start));
                    }
                    Err(e) => error!(error = %e, "recordings index: cannot record a motion event"),
                }
            }
            Some(ArchiveOp::MotionEnd {
                camera_id,
                duration_s,
                peak_score,
            }) => {
                if let Some((id, start)) = open_events.remove(&camera_id) {
                    let end = start + (duration_s * 1000.0) as i64;
                    logged(
                        "a motion event's end",
                        index.motion_ended(&id, end, peak_score),
                    );
                }
            }
        }
    }
}

/// Deletes what the retention policy says must go.
fn enforce(index: &Index, limits: &HashMap<String, Limits>, retention: &RetentionConfig) {
    let finished: Vec<Recording> = match index.recordings(None, None, None) {
        Ok(all) => all
            .into_iter()
            .filter(|r| r.state == ClipState::Finished)
            .collect(),
        Err(e) => {
            error!(error = %e, "retention: cannot list recordings");
            return;
        }
    };
    let clips: Vec<Clip> = finished
        .iter()
        .map(|r| Clip {
            id: r.id.clone(),
            camera_id: r.camera_id.clone(),
            start: r.start,
            end: r.end.unwrap_or(r.start),
            bytes: r.bytes.max(0) as u64,
        })
        .collect();
    let (free, total) = match free_space(index.output_dir()) {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "retention: cannot read free space; only age and size limits apply");
            (u64::MAX / 2, u64::MAX / 2)
        }
    };
    let need = ((retention.min_free_gb * 1e9) as u64)
        .max((total as f64 * retention.min_free_percent / 100.0) as u64);
    let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
    for (id, reason) in retention::plan(&clips, limits, now_ms, free, need) {
        let Some(r) = finished.iter().find(|r| r.id == id) else {
            continue;
        };
        match index.delete_recording(r) {
            Ok(()) => {
                info!(camera_id = %r.camera_id, path = %r.path, bytes = r.bytes, reason = reason.as_str(), "retention: deleted a recording")
            }
            Err(e) => error!(error = %e, "retention: cannot delete a recording"),
        }
    }
}

/// (free bytes available to us, total bytes) of the file system holding `dir`.
fn free_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(dir)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}
