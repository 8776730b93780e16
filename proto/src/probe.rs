//! A connectivity test's answer: what a probe worker (`worker --probe`) found on each of a camera's
//! streams. The supervisor starts the probe worker, sends it the camera's settings in `Configure`
//! (secrets over IPC, never on a command line) and reads one [`ToSupervisor::Probed`] back.
//!
//! [`ToSupervisor::Probed`]: crate::ToSupervisor::Probed

use serde::{Deserialize, Serialize};

/// Which of a camera's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamRole {
    /// The high-resolution stream that is recorded.
    Main,
    /// The low-resolution stream that is decoded for motion and preview.
    Sub,
}

impl StreamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamRole::Main => "main",
            StreamRole::Sub => "sub",
        }
    }
}

/// Why a stream cannot be used: the same classes `/status` shows for a stream that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    /// No connection: refused, no route, or no answer within the probe's time.
    Unreachable,
    /// The camera refused the user name or password (401).
    Unauthorized,
    /// The camera has no stream at that path (404).
    NotFound,
    /// Something answered, but not RTSP (silence or garbage).
    NoRtspAnswer,
    /// The MAIN stream plays, but its codec cannot be recorded without transcoding.
    NotRecordable,
    /// Anything else FFmpeg reported (the detail says what).
    Other,
}

impl ProbeFailure {
    /// The words `/status` and the probe's output use.
    pub fn describe(self) -> &'static str {
        match self {
            ProbeFailure::Unreachable => "unreachable",
            ProbeFailure::Unauthorized => "unauthorized",
            ProbeFailure::NotFound => "not found",
            ProbeFailure::NoRtspAnswer => "no valid RTSP answer",
            ProbeFailure::NotRecordable => "cannot be recorded without transcoding",
            ProbeFailure::Other => "error",
        }
    }
}

/// What one stream showed. Codec fields are set when the stream could be opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamProbe {
    pub role: StreamRole,
    /// The URL, credentials removed.
    pub url: String,
    /// The camera answered and described the stream.
    pub reachable: bool,
    /// Why the stream cannot be used; `None`: usable.
    pub failure: Option<ProbeFailure>,
    /// The error's words (never credentials).
    #[serde(default)]
    pub detail: Option<String>,
    /// FFmpeg's codec name (`h264`, `hevc`, `mjpeg`, ...).
    #[serde(default)]
    pub codec: Option<String>,
    /// The codec profile (`High`, `Main`, ...) when the codec has one.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    /// Frames per second the stream announces (or FFmpeg estimates).
    #[serde(default)]
    pub fps: Option<f64>,
    /// Seconds from one keyframe to the next, measured on the packets read.
    #[serde(default)]
    pub gop_s: Option<f64>,
    /// Frames from one keyframe to the next.
    #[serde(default)]
    pub gop_frames: Option<u32>,
    /// The audio codec, if the stream carries audio.
    #[serde(default)]
    pub audio: Option<String>,
    /// Whether the NVR can record this stream as it is (H.264 or H.265). Set for MAIN only.
    #[serde(default)]
    pub recordable: Option<bool>,
}

impl StreamProbe {
    /// A stream that could not be opened.
    pub fn failed(role: StreamRole, url: String, failure: ProbeFailure, detail: String) -> Self {
        StreamProbe {
            role,
            url,
            reachable: false,
            failure: Some(failure),
            detail: Some(detail),
            codec: None,
            profile: None,
            width: None,
            height: None,
            fps: None,
            gop_s: None,
            gop_frames: None,
            audio: None,
            recordable: None,
        }
    }

    pub fn usable(&self) -> bool {
        self.failure.is_none()
    }
}

/// Every stream of one camera: MAIN, then SUB when the camera has its own SUB URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub streams: Vec<StreamProbe>,
}

impl ProbeReport {
    /// Every probed stream can be used.
    pub fn usable(&self) -> bool {
        !self.streams.is_empty() && self.streams.iter().all(StreamProbe::usable)
    }
}

/// The codecs the recorder writes without transcoding (FFmpeg's names).
pub fn recordable_codec(codec: &str) -> bool {
    matches!(codec, "h264" | "hevc")
}
