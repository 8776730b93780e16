//! Opening a camera's RTSP stream with FFmpeg: transport and timeouts set, credentials added from the
//! config (never logged), and an interrupt callback so no FFmpeg call can block past a stall deadline
//! or a shutdown request.

use ffmpeg_next as ffmpeg;
use nvr_config::redact_url;
use nvr_proto::settings::{CameraSettings, Transport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest an open or a read may make no progress before it is abandoned.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a stream could not be opened or stopped flowing. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the camera refused the credentials (401) for {url}; check username and password")]
    Unauthorized { url: String },
    #[error("{url}: not found (404); check the stream path")]
    NotFound { url: String },
    #[error("{url}: no valid RTSP answer (silence or garbage); check the host, port and path")]
    NoRtspAnswer { url: String },
    #[error("{url}: {detail}")]
    Failed { url: String, detail: String },
    #[error("{url}: no data for {secs} s", secs = STALL_TIMEOUT.as_secs())]
    Stalled { url: String },
    #[error("{url}: the stream ended")]
    Ended { url: String },
    #[error("stopping")]
    Stopped,
}

impl StreamError {
    /// Classifies an FFmpeg error on `url` (already redacted).
    pub fn from_ffmpeg(e: ffmpeg::Error, url: &str, watchdog: &Watchdog) -> Self {
        let url = url.to_string();
        if watchdog.stop.load(Ordering::Relaxed) {
            return StreamError::Stopped;
        }
        match e {
            ffmpeg::Error::HttpUnauthorized => StreamError::Unauthorized { url },
            ffmpeg::Error::Exit if watchdog.stalled() => StreamError::Stalled { url },
            ffmpeg::Error::Eof => StreamError::Ended { url },
            ffmpeg::Error::HttpNotFound => StreamError::NotFound { url },
            other => StreamError::Failed {
                url,
                detail: other.to_string(),
            },
        }
    }
}

/// Decides when FFmpeg's interrupt callback aborts a blocking call: on shutdown, or when nothing has
/// progressed for [`STALL_TIMEOUT`]. The pipeline calls [`Watchdog::progress`] after every packet.
#[derive(Clone)]
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    last_progress_ms: Arc<AtomicU64>,
}

impl Watchdog {
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        let w = Watchdog {
            stop,
            last_progress_ms: Arc::new(AtomicU64::new(0)),
        };
        w.progress();
        w
    }

    pub fn progress(&self) {
        self.last_progress_ms
            .store(shm_bus::monotonic_ns() / 1_000_000, Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        let now_ms = shm_bus::monotonic_ns() / 1_000_000;
        now_ms.saturating_sub(self.last_progress_ms.load(Ordering::Relaxed))
            > STALL_TIMEOUT.as_millis() as u64
    }

    fn should_interrupt(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.stalled()
    }
}

/// The URL handed to FFmpeg: the configured one with the credentials inserted, percent-encoded.
/// Never log it; log [`redact_url`] of the configured URL instead.
fn url_with_credentials(url: &str, camera: &CameraSettings) -> String {
    let Some(user) = &camera.username else {
        return url.to_string();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let pass = camera.password.as_ref().map(|p| p.expose()).unwrap_or("");
    format!(
        "{scheme}://{}:{}@{rest}",
        percent_encode(user),
        percent_encode(pass)
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How much of the stream FFmpeg reads to learn its parameters, in microseconds. An RTSP camera
/// announces its codec, size and parameter sets in the SDP, so a short look is enough; FFmpeg's
/// default (5 s, or until it has estimated the frame rate) cost about a second on every
/// (re)connection. A stream whose SDP lacks them is opened again with the default.
const QUICK_ANALYZE_US: &str = "200000";

/// Opens `url` (one of the camera's stream URLs) and reads its stream info.
pub fn open(
    url: &str,
    camera: &CameraSettings,
    watchdog: &Watchdog,
) -> Result<ffmpeg::format::context::Input, StreamError> {
    let input = open_with(url, camera, watchdog, Some(QUICK_ANALYZE_US))?;
    if parameters_known(&input) {
        return Ok(input);
    }
    tracing::info!(url = %redact_url(url), "stream parameters not in the SDP; probing the stream longer");
    drop(input);
    open_with(url, camera, watchdog, None)
}

/// Every stream's codec is known, and every video stream's size.
fn parameters_known(input: &ffmpeg::format::context::Input) -> bool {
    input.streams().all(|s| {
        let par = s.parameters();
        par.id() != ffmpeg::codec::Id::None
            && (par.medium() != ffmpeg::media::Type::Video || crate::ffi::video_size(&par).0 > 0)
    })
}

fn open_with(
    url: &str,
    camera: &CameraSettings,
    watchdog: &Watchdog,
    analyze_us: Option<&str>,
) -> Result<ffmpeg::format::context::Input, StreamError> {
    let mut opts = ffmpeg::Dictionary::new();
    let transport = match camera.transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    opts.set("rtsp_transport", transport);
    // Socket I/O timeout in microseconds (FFmpeg 5: `timeout`; `stimeout` is gone).
    opts.set("timeout", &STALL_TIMEOUT.as_micros().to_string());
    // Over UDP, wait at most 0.5 s to reorder packets. (No `fflags nobuffer`: it throws away the
    // packets read while probing, the first key frame among them, which cost a whole GOP.)
    opts.set("max_delay", "500000");
    if let Some(us) = analyze_us {
        opts.set("analyzeduration", us);
    }
    watchdog.progress();
    let wd = watchdog.clone();
    ffmpeg::format::input_with_interrupt_and_dictionary(
        &url_with_credentials(url, camera),
        move || wd.should_interrupt(),
        opts,
    )
    .map_err(|e| match e {
        // What FFmpeg says when the RTSP handshake read silence until the timeout, or bytes that
        // are not RTSP: the same error either way.
        ffmpeg::Error::InvalidData if !watchdog.stop.load(Ordering::Relaxed) => {
            StreamError::NoRtspAnswer {
                url: redact_url(url),
            }
        }
        e => StreamError::from_ffmpeg(e, &redact_url(url), watchdog),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_percent_encoded_into_the_url() {
        let mut cam = CameraSettings::from(
            &nvr_config::parse(
                r#"{"cameras": [{"id": "a", "main_url": "rtsp://h:554/s", "username": "ad min", "password": "p@ss:w/rd"}]}"#,
                std::path::Path::new("t"),
                &|_| None,
            )
            .unwrap()
            .cameras[0],
        );
        assert_eq!(
            url_with_credentials("rtsp://h:554/s", &cam),
            "rtsp://ad%20min:p%40ss%3Aw%2Frd@h:554/s"
        );
        cam.username = None;
        assert_eq!(
            url_with_credentials("rtsp://h:554/s", &cam),
            "rtsp://h:554/s"
        );
    }
}
