//! The supervisor ⇄ worker protocol.
//!
//! Every message is an [`Envelope`] `{schema, seq, sent_at_ns, body}` encoded as MessagePack with named
//! fields (`rmp_serde::to_vec_named`), so fields added later can default when an older peer omits them.
//! The bytes travel over ipc-channel byte channels; see [`link`] for the bootstrap. This crate is the only
//! one that knows MessagePack.
//!
//! Compatibility rule: within one [`SCHEMA`] version, fields may only be *added*, each with
//! `#[serde(default)]`. Anything else (a removed or retyped field, a new variant an older peer must
//! understand) bumps [`SCHEMA`]. The receiver checks the version before it decodes the body.

#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod probe;
pub mod ptz;
pub mod settings;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
pub use settings::CameraSettings;
use std::time::{SystemTime, UNIX_EPOCH};

/// The protocol version this build speaks.
/// 2: recording events and the MAIN stream and recorder in heartbeats.
/// 3: the protocol's own [`CameraSettings`] in `Configure`; `Update` and its `Reply`. Added within 3
///    under the compatibility rule: `RecordingSettings::keep_main` (schedules; decision 55).
/// 4: motion settings in seconds and picture fractions (`min_motion_s`, `min_object` replace
///    `min_frames`).
/// 5: pan-tilt-zoom: `ToWorker::Ptz` and `ToSupervisor::PtzReply` (new variants an older peer
///    cannot read), `CameraSettings::onvif`.
pub const SCHEMA: u16 = 5;

/// Exit codes of the worker, so the supervisor's restart policy can tell failures apart.
pub mod exit_code {
    /// Clean exit after `Shutdown`.
    pub const OK: i32 = 0;
    /// The config could not be used (standalone mode) or the camera is not in it.
    pub const BAD_CONFIG: i32 = 2;
    /// The channel to the supervisor broke: the supervisor died or closed it.
    pub const LOST_SUPERVISOR: i32 = 3;
    /// The supervisor sent something this worker cannot understand.
    pub const PROTOCOL: i32 = 4;
    /// `worker --probe` alone: a stream of the camera cannot be used.
    pub const PROBE_FAILED: i32 = 5;
    /// Rust's exit code for a panic that reached `main`.
    pub const PANIC: i32 = 101;

    /// A short word for an exit code, for `/status`.
    pub fn describe(code: i32) -> &'static str {
        match code {
            OK => "clean exit",
            BAD_CONFIG => "bad config",
            LOST_SUPERVISOR => "lost supervisor",
            PROTOCOL => "protocol error",
            PROBE_FAILED => "probe failed",
            PANIC => "panic",
            _ => "error",
        }
    }
}

/// The frame every message travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Protocol version of the sender (since 1).
    pub schema: u16,
    /// Per-sender sequence number, starting at 0 (since 1).
    pub seq: u64,
    /// Sender's wall clock, Unix nanoseconds; the receiver measures latency with it (since 1).
    pub sent_at_ns: u64,
    pub body: B,
}

/// Only the header, decoded first so a version mismatch is reported as such, not as a garbled body.
#[derive(Deserialize)]
struct Header {
    schema: u16,
    seq: u64,
}

/// Worker → supervisor.
// Heartbeats are the large variant and the common message; the supervisor boxes whole envelopes
// (`Msg::FromWorker`), so boxing the variant too would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToSupervisor {
    /// First message after connecting (since 1).
    Hello {
        camera_id: String,
        pid: u32,
        version: String,
    },
    /// Sent every `heartbeat_interval_s` by the worker's heartbeat thread (since 1).
    Heartbeat(WorkerStats),
    /// Something happened worth logging and showing (since 1).
    Event(WorkerEvent),
    /// The answer to the request `request_id` (`Update`): `error` is `None` when it was done (since 3).
    Reply {
        request_id: u64,
        error: Option<String>,
    },
    /// A probe worker's (`worker --probe`) only answer: what the camera's streams showed. Added
    /// within 4: only a probe worker sends it, and only to the supervisor that started it.
    Probed(probe::ProbeReport),
    /// The answer to the `Ptz` request `request_id` (since 5).
    PtzReply {
        request_id: u64,
        result: Result<ptz::PtzAnswer, ptz::PtzError>,
    },
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// The camera's settings, secrets included; sent right after `Hello` (since 1).
    Configure(Box<WorkerConfig>),
    /// Finish files and exit within `deadline_ms` (since 1).
    Shutdown { deadline_ms: u64 },
    /// New settings that differ from the running ones only where
    /// [`CameraSettings::live_only_change`] allows: applied in place, answered by a `Reply` with the
    /// same `request_id` (since 3).
    Update {
        request_id: u64,
        settings: Box<CameraSettings>,
    },
    /// A pan-tilt-zoom command for the camera, answered by a `PtzReply` with the same
    /// `request_id` (since 5). Run on the worker's PTZ thread: newer moves replace queued ones.
    Ptz {
        request_id: u64,
        command: ptz::PtzCommand,
    },
}

/// Everything a supervised worker needs to run its camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The camera's settings, secrets included (since 1; the protocol's own type since 3).
    pub camera: CameraSettings,
    pub heartbeat_interval_s: f64,
    pub output_dir: String,
}

/// What a worker reports in each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Seconds since the worker process started (since 1).
    pub uptime_s: f64,
    /// Heartbeats sent before this one (since 1).
    pub heartbeats_sent: u64,
    /// The SUB stream (decoded for motion and preview); `None` before the pipeline starts (since 1).
    #[serde(default)]
    pub sub: Option<StreamStatus>,
    /// The MAIN stream (recorded, never decoded); `None` when the camera does not record (since 2).
    #[serde(default)]
    pub main: Option<StreamStatus>,
    /// The recorder; `None` when the camera does not record (since 2).
    #[serde(default)]
    pub recording: Option<RecordingStatus>,
    /// The motion level of the latest frame; `None` before the detector has seen one, or with
    /// motion detection off (added within schema 4 under the compatibility rule).
    #[serde(default)]
    pub motion: Option<MotionLevel>,
}

/// How much of the picture changed in the latest frame: the zone editor's live readout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MotionLevel {
    /// Percent of the watched area (zones minus masks) that changed.
    pub score: f64,
    /// The same per named zone (empty without zones).
    pub zones: Vec<ZoneLevel>,
}

/// One zone's share of [`MotionLevel`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneLevel {
    pub name: String,
    /// Percent of the zone's watched pixels that changed.
    pub score: f64,
}

/// What the recorder is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderState {
    /// Waiting for motion (or for the MAIN stream).
    #[default]
    Idle,
    /// A file is open.
    Recording,
    /// The last attempt to open or write a file failed (`last_error` says why); retrying.
    Error,
}

/// The recorder's figures, reported in every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingStatus {
    pub state: RecorderState,
    /// The file being written, relative to the output directory.
    #[serde(default)]
    pub current_file: Option<String>,
    /// Files finished since the worker started.
    #[serde(default)]
    pub files: u64,
    /// Seconds of MAIN video held in the pre-roll buffer.
    #[serde(default)]
    pub pre_roll_s: f64,
    /// Why recording failed last (e.g. `disk full`), cleared by the next file that opens.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A camera stream's connection state, as the worker sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Opening the stream (first attempt or a reconnect).
    #[default]
    Connecting,
    /// Frames (or packets) are flowing.
    Up,
    /// The last attempt failed or the stream stopped; retrying with backoff.
    Down,
    /// The camera refused the credentials; retrying slowly.
    Unauthorized,
}

/// One stream's figures, reported in every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub state: StreamState,
    /// Frames decoded (SUB) or packets received (MAIN) since the worker started.
    #[serde(default)]
    pub frames: u64,
    /// Frames per second over the last second or so.
    #[serde(default)]
    pub fps: f64,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub codec: String,
    /// Connection attempts that failed or ended, since the worker started.
    #[serde(default)]
    pub reconnects: u64,
    /// Bytes of the stream's packets received since the worker started (video and audio; the
    /// bitrate is its rate of change). Added within schema 4: 0 from an older worker.
    #[serde(default)]
    pub bytes: u64,
    /// Why the stream is not up (never contains credentials).
    #[serde(default)]
    pub last_error: Option<String>,
    /// The stream's shared-memory packet ring, while it exists (added within schema 3; boxed so
    /// a heartbeat stays small on the stack).
    #[serde(default)]
    pub packet_ring: Option<Box<PacketRingStatus>>,
}

/// A stream's packet ring (encoded packets for live view), as its writer sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketRingStatus {
    /// Payload bytes the ring holds.
    pub capacity_bytes: u64,
    /// The ring's generation (changes on worker restart, reconnect, codec or size change).
    pub generation: u64,
    /// Packets published since the worker started.
    pub packets: u64,
    /// Packets dropped for being over a quarter of the ring.
    pub oversize_drops: u64,
    /// The stream's bitrate, bytes per second (0 until measured).
    pub bytes_per_s: f64,
    /// Seconds between the last two keyframes (0 until measured).
    pub gop_s: f64,
    /// Seconds of the stream the ring holds at this rate (0 until measured).
    pub holds_s: f64,
    /// Whether codec parameters (SPS/PPS/VPS) have been seen, so a viewer can start.
    pub has_params: bool,
}

impl PacketRingStatus {
    /// Why this ring is too small or drops packets, as `/status` words it; `None` if it is fine.
    /// `stream` is `sub` or `main`.
    pub fn warning(&self, stream: &str) -> Option<String> {
        let mib = self.capacity_bytes as f64 / (1024.0 * 1024.0);
        let mut out = Vec::new();
        if self.gop_s > 0.0 && self.holds_s > 0.0 && self.holds_s < 2.0 * self.gop_s {
            let need_mib = (2.0 * self.gop_s * self.bytes_per_s / (1024.0 * 1024.0)).ceil() + 1.0;
            out.push(format!(
                "the {stream} packet ring ({mib:.0} MiB) holds {:.1} s, less than two GOPs ({:.1} s each) at {:.2} Mbit/s; raise live.{stream}_ring_mb to at least {need_mib:.0}",
                self.holds_s,
                self.gop_s,
                self.bytes_per_s * 8.0 / 1e6
            ));
        }
        if self.oversize_drops > 0 {
            out.push(format!(
                "the {stream} packet ring dropped {} packets over a quarter of its {mib:.0} MiB; raise live.{stream}_ring_mb",
                self.oversize_drops
            ));
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

/// Things a worker reports as they happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerEvent {
    /// A message from the supervisor could not be understood (since 1).
    ProtocolError { detail: String },
    /// Motion started (since 1).
    MotionStart(MotionStart),
    /// Motion ended (since 1).
    MotionEnd {
        duration_s: f64,
        peak_score: f64,
        /// The named zones a moving object touched during the event; empty without zones (added
        /// within schema 4 under the compatibility rule).
        #[serde(default)]
        zones: Vec<String>,
    },
    /// A recording file was opened and its pre-roll written (since 2).
    RecordingStarted(RecordingStarted),
    /// A recording file was finished: fsynced and renamed to its final name (since 2).
    RecordingFinished(RecordingFinished),
    /// Recording failed (could not open or write a file); the worker retries (since 2).
    RecordingError {
        /// What failed, for logs and `/status`.
        detail: String,
        /// What kind of failure, so the receiver need not parse `detail` (since 2, added within it
        /// under the compatibility rule: an event without it decodes as
        /// [`RecordingErrorKind::Other`]).
        #[serde(default)]
        kind: RecordingErrorKind,
    },
}

/// What kind of failure a [`WorkerEvent::RecordingError`] reports: the ones a user has to act on,
/// and the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingErrorKind {
    /// The output file system is full (or the quota is used up).
    DiskFull,
    /// The output file system is read-only.
    ReadOnly,
    /// Anything else (an I/O error, a muxer error).
    #[default]
    Other,
}

/// A new recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingStarted {
    /// Final path relative to the output directory (written as `<path>.part` until finished).
    pub path: String,
    /// Arrival of the clip's first frame relative to the motion onset, ms (negative: before it).
    /// `None` for continuous recording and for a segment that continues a recording.
    pub first_frame_offset_ms: Option<f64>,
    /// Motion decision → file open with the pre-roll written, ms (`None` without motion).
    pub open_ms: Option<f64>,
    /// Wall clock of the first frame, Unix ms.
    pub start_unix_ms: u64,
    /// `h264` or `hevc`.
    pub codec: String,
}

/// A finished recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingFinished {
    /// Path relative to the output directory.
    pub path: String,
    pub start_unix_ms: u64,
    pub duration_s: f64,
    pub bytes: u64,
    /// Video frames written.
    pub frames: u64,
    /// Finished at start-up from a `.part` left by a crash, rather than closed normally.
    #[serde(default)]
    pub recovered: bool,
}

/// A motion onset, stamped with the first moving frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionStart {
    /// PTS of the first moving frame, in the SUB stream's time base.
    pub pts: i64,
    /// Wall clock of the first moving frame's arrival, Unix ms.
    pub wall_unix_ms: u64,
    /// CLOCK_MONOTONIC of the first moving frame's arrival, ns (comparable with the frame ring's stamps).
    pub first_frame_mono_ns: u64,
    /// Percent of the watched area that changed in the deciding frame.
    pub score: f64,
    /// Changed region, 0..1 coordinates: [x0, y0, x1, y1].
    pub bbox: Option<[f64; 4]>,
    /// Processing latency: arrival of the packet that completed the deciding frame → decision, ms.
    pub latency_ms: f64,
    /// Decode-done of the deciding frame → decision, ms.
    pub decode_latency_ms: f64,
    /// Arrival of the first moving frame → decision, ms: includes waiting for `min_frames` frames.
    pub onset_delay_ms: f64,
    /// The named zones the deciding frame's moving objects touch; empty without zones (added within
    /// schema 4 under the compatibility rule).
    #[serde(default)]
    pub zones: Vec<String>,
}

/// Why a received message was rejected. Never a panic: the caller logs it and shows it in `/status`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("peer speaks protocol schema {got}, this build speaks {SCHEMA}; run matching supervisor and worker builds")]
    UnsupportedSchema { got: u16 },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("malformed body in message seq {seq}: {detail}")]
    MalformedBody { seq: u64, detail: String },
}

/// Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Encodes `body` as an envelope with the given sequence number, stamped now.
pub fn encode<B: Serialize>(seq: u64, body: &B) -> Vec<u8> {
    let env = Envelope {
        schema: SCHEMA,
        seq,
        sent_at_ns: unix_ns(),
        body,
    };
    // Encoding our own plain data types into a Vec cannot fail.
    rmp_serde::to_vec_named(&env).expect("MessagePack encoding of protocol types")
}

/// Decodes an envelope, checking the schema version before the body.
pub fn decode<B: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<B>, DecodeError> {
    let header: Header =
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if header.schema != SCHEMA {
        return Err(DecodeError::UnsupportedSchema { got: header.schema });
    }
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError::MalformedBody {
        seq: header.seq,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
