//! Connectivity tests of cameras, each in a short-lived probe worker (`worker --probe`), so a
//! camera that crashes FFmpeg costs the probe, never the supervisor. The camera's settings,
//! password included, travel over IPC in `Configure`, never on a command line. Used by
//! `supervisor probe` and `POST /api/probe`.

use crate::manager::process;
use nvr_proto::link::{LinkError, Listener};
use nvr_proto::probe::{ProbeReport, StreamProbe};
use nvr_proto::{CameraSettings, ToSupervisor, ToWorker, WorkerConfig};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest a probe worker may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole probe may take, from spawn to answer: the worker's own budget per stream (8 s,
/// streams in parallel) plus its start. A worker that has not answered by then is killed.
pub const DEADLINE: Duration = Duration::from_secs(12);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot start the probe worker {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("probe worker: {0}")]
    Link(#[from] LinkError),
    #[error("the probe worker sent something unexpected")]
    Protocol,
    #[error("the probe worker did not answer within {} s and was killed", DEADLINE.as_secs())]
    Timeout,
    #[error("the probe worker exited without an answer ({0})")]
    Exited(String),
}

/// Probes one camera in a probe worker started from `worker_bin`; blocks up to [`DEADLINE`].
pub fn probe(worker_bin: &Path, camera: CameraSettings) -> Result<ProbeReport, ProbeError> {
    let started = Instant::now();
    let listener = Listener::new()?;
    let mut child =
        process::spawn_probe(worker_bin, listener.name()).map_err(|source| ProbeError::Spawn {
            bin: worker_bin.display().to_string(),
            source,
        })?;
    let answer = converse(listener, camera, started);
    let answer = match answer {
        Ok(report) => Ok(report),
        Err(e) => {
            let _ = child.kill();
            Err(e)
        }
    };
    let status = child.wait();
    match (answer, status) {
        (Err(ProbeError::Link(LinkError::Disconnected)), Ok(st)) => {
            Err(ProbeError::Exited(st.to_string()))
        }
        (answer, _) => answer,
    }
}

/// Hello, Configure, then the answer; the waiting for the answer is bounded by the deadline.
fn converse(
    listener: Listener,
    camera: CameraSettings,
    started: Instant,
) -> Result<ProbeReport, ProbeError> {
    let (_pid, rx, mut tx) = listener.accept(CONNECT_TIMEOUT)?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // `recv` blocks; it ends when the answer comes or the worker dies (killed at the deadline).
    std::thread::Builder::new()
        .name("probe-link".into())
        .spawn(move || loop {
            let msg = rx.recv().map(|m| m.body);
            let last = !matches!(msg, Ok(ToSupervisor::Hello { .. }));
            if done_tx.send(msg).is_err() || last {
                break;
            }
        })
        .map_err(|source| ProbeError::Spawn {
            bin: "probe-link thread".into(),
            source,
        })?;
    let mut configured = false;
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let msg = done_rx
            .recv_timeout(left)
            .map_err(|_| ProbeError::Timeout)?;
        match msg? {
            ToSupervisor::Hello { .. } if !configured => {
                tx.send(&ToWorker::Configure(Box::new(WorkerConfig {
                    camera: camera.clone(),
                    heartbeat_interval_s: 5.0,
                    output_dir: String::new(),
                })))?;
                configured = true;
            }
            ToSupervisor::Probed(report) => return Ok(report),
            _ => return Err(ProbeError::Protocol),
        }
    }
}

/// One line per stream for a terminal: `front main rtsp://...: ok: h264 High 1920x1080 30 fps,
/// GOP 2 s (60 frames), no audio, recordable`, or the failure's class and words.
pub fn describe(camera_id: &str, s: &StreamProbe) -> String {
    let mut line = format!("{camera_id} {} {}: ", s.role.as_str(), s.url);
    match s.failure {
        None => line.push_str("ok: "),
        Some(f) => {
            let _ = write!(line, "{}: ", f.describe());
        }
    }
    let mut parts = Vec::new();
    if let Some(codec) = &s.codec {
        let mut p = codec.clone();
        if let Some(profile) = &s.profile {
            let _ = write!(p, " {profile}");
        }
        if let (Some(w), Some(h)) = (s.width, s.height) {
            let _ = write!(p, " {w}x{h}");
        }
        if let Some(fps) = s.fps {
            let _ = write!(p, " {fps} fps");
        }
        parts.push(p);
        parts.push(match (s.gop_s, s.gop_frames) {
            (Some(g), Some(n)) => format!("GOP {g} s ({n} frames)"),
            _ => "GOP unknown".into(),
        });
        parts.push(match &s.audio {
            Some(a) => format!("audio {a}"),
            None => "no audio".into(),
        });
        match s.recordable {
            Some(true) => parts.push("recordable".into()),
            Some(false) => parts.push("not recordable".into()),
            None => {}
        }
    }
    if let Some(d) = &s.detail {
        parts.push(d.clone());
    }
    line.push_str(&parts.join(", "));
    line
}
