//! Probe mode (`worker --probe`): a connectivity test of one camera, run by a short-lived worker so
//! a camera that crashes FFmpeg costs the probe, never the supervisor.
//!
//! Each stream (MAIN, and SUB when it has its own URL) is tested on its own thread, both within
//! [`STREAM_BUDGET`]: first a plain TCP connection to the URL's host and port (refused, no route or
//! no answer within [`CONNECT_TIMEOUT`]: *unreachable*), then FFmpeg opens the stream with the
//! camera's credentials and transport (401: *unauthorized*, 404: *not found*, silence or garbage:
//! *no valid RTSP answer*), then packets are read until two keyframes have passed, which gives the
//! GOP and a measured frame rate. MAIN must be H.264 or H.265 to be recordable.

use crate::ffi;
use crate::rtsp::{self, StreamError, Watchdog};
use ffmpeg_next as ffmpeg;
use nvr_config::redact_url;
use nvr_proto::probe::{recordable_codec, ProbeFailure, ProbeReport, StreamProbe, StreamRole};
use nvr_proto::CameraSettings;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a TCP connection to the camera may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one stream's probe takes, connection, handshake and packets included.
pub const STREAM_BUDGET: Duration = Duration::from_secs(8);
/// Reading packets for the GOP stops here (a GOP longer than this is reported as unknown).
const GOP_READ_LIMIT: Duration = Duration::from_secs(5);

/// Probes every stream of `camera` at once; returns within [`STREAM_BUDGET`] plus a little.
pub fn probe(camera: &CameraSettings) -> ProbeReport {
    let mut roles = vec![(StreamRole::Main, camera.main_url.clone())];
    if let Some(sub) = &camera.sub_url {
        roles.push((StreamRole::Sub, sub.clone()));
    }
    let threads: Vec<_> = roles
        .into_iter()
        .map(|(role, url)| {
            let camera = camera.clone();
            std::thread::Builder::new()
                .name(format!("probe-{}", role.as_str()))
                .spawn(move || probe_stream(role, &url, &camera))
        })
        .collect();
    let streams = threads
        .into_iter()
        .filter_map(|t| t.ok()?.join().ok())
        .collect();
    ProbeReport { streams }
}

fn probe_stream(role: StreamRole, url: &str, camera: &CameraSettings) -> StreamProbe {
    let shown = redact_url(url);
    let started = Instant::now();
    if let Err(detail) = tcp_check(url) {
        return StreamProbe::failed(role, shown, ProbeFailure::Unreachable, detail);
    }
    // The watchdog's stop flag is the deadline: set when the budget is spent, it interrupts
    // whatever FFmpeg call is blocking.
    let stop = Arc::new(AtomicBool::new(false));
    let timer_stop = Arc::clone(&stop);
    let remaining = STREAM_BUDGET.saturating_sub(started.elapsed());
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("probe-deadline".into())
        .spawn(move || {
            if done_rx.recv_timeout(remaining).is_err() {
                timer_stop.store(true, Ordering::Relaxed);
            }
        });
    let watchdog = Watchdog::new(Arc::clone(&stop));
    let result = open_and_measure(role, url, &shown, camera, &watchdog, &stop);
    let _ = done_tx.send(());
    result
}

/// Resolves the URL's host and tries a TCP connection to it.
fn tcp_check(url: &str) -> Result<(), String> {
    let (host, port) = host_port(url).ok_or_else(|| "the URL has no host".to_string())?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("cannot resolve {host}");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!(
                "no answer from {addr} within {} s; check the address and that the camera is on",
                CONNECT_TIMEOUT.as_secs()
            )
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}; check the address and port"),
        }
    }
    Err(last)
}

/// The host and port of an `rtsp://` or `rtsps://` URL (default ports 554 and 322).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = if scheme.eq_ignore_ascii_case("rtsps") {
        322
    } else {
        554
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn classify(e: &StreamError) -> ProbeFailure {
    match e {
        StreamError::Unauthorized { .. } => ProbeFailure::Unauthorized,
        StreamError::NotFound { .. } => ProbeFailure::NotFound,
        // The TCP connection was taken: silence until the deadline is no RTSP answer.
        StreamError::NoRtspAnswer { .. } | StreamError::Stalled { .. } | StreamError::Stopped => {
            ProbeFailure::NoRtspAnswer
        }
        StreamError::Failed { .. } | StreamError::Ended { .. } => ProbeFailure::Other,
    }
}

fn open_and_measure(
    role: StreamRole,
    url: &str,
    shown: &str,
    camera: &CameraSettings,
    watchdog: &Watchdog,
    stop: &AtomicBool,
) -> StreamProbe {
    let mut input = match rtsp::open(url, camera, watchdog) {
        Ok(i) => i,
        Err(e) => {
            let detail = match &e {
                StreamError::Stopped => format!(
                    "connected, but no RTSP answer within {} s",
                    STREAM_BUDGET.as_secs()
                ),
                other => other.to_string(),
            };
            return StreamProbe::failed(role, shown.to_string(), classify(&e), detail);
        }
    };
    let mut report = StreamProbe {
        reachable: true,
        failure: None,
        detail: None,
        ..StreamProbe::failed(role, shown.to_string(), ProbeFailure::Other, String::new())
    };
    let Some(video) = input.streams().best(ffmpeg::media::Type::Video) else {
        report.failure = Some(ProbeFailure::Other);
        report.detail = Some("the stream has no video".into());
        return report;
    };
    let video_idx = video.index();
    let par = video.parameters();
    let codec = par.id().name().to_string();
    let (w, h) = ffi::video_size(&par);
    report.width = (w > 0).then_some(w);
    report.height = (h > 0).then_some(h);
    report.profile = ffi::profile_name(&par);
    let announced = [video.avg_frame_rate(), video.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(f64::from);
    let tb = f64::from(video.time_base());
    report.audio = input
        .streams()
        .find(|s| s.parameters().medium() == ffmpeg::media::Type::Audio)
        .map(|s| s.parameters().id().name().to_string());
    if role == StreamRole::Main {
        let recordable = recordable_codec(&codec);
        report.recordable = Some(recordable);
        if !recordable {
            report.failure = Some(ProbeFailure::NotRecordable);
            report.detail = Some(format!(
                "the stream is {codec}, which cannot be recorded without transcoding; set the camera's main stream to H.264 or H.265"
            ));
        }
    }
    report.codec = Some(codec);
    let gop = measure_gop(&mut input, video_idx, tb, watchdog, stop);
    if let Some((gop_s, gop_frames)) = gop {
        report.gop_s = Some(round3(gop_s));
        report.gop_frames = Some(gop_frames);
    }
    report.fps = match gop {
        Some((s, n)) if s > 0.0 => Some(round3(f64::from(n) / s)),
        _ => announced.map(round3),
    };
    report
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Reads packets until two keyframes of the video stream have passed: the distance between them in
/// seconds and in frames. `None` when no two keyframes came within [`GOP_READ_LIMIT`].
fn measure_gop(
    input: &mut ffmpeg::format::context::Input,
    video_idx: usize,
    time_base_s: f64,
    watchdog: &Watchdog,
    stop: &AtomicBool,
) -> Option<(f64, u32)> {
    let started = Instant::now();
    let mut first_key: Option<i64> = None;
    let mut frames = 0u32;
    while started.elapsed() < GOP_READ_LIMIT && !stop.load(Ordering::Relaxed) {
        let mut packet = ffmpeg::Packet::empty();
        if packet.read(input).is_err() {
            return None;
        }
        watchdog.progress();
        if packet.stream() != video_idx {
            continue;
        }
        let ts = packet.pts().or(packet.dts())?;
        match first_key {
            None if packet.is_key() => {
                first_key = Some(ts);
                frames = 1;
            }
            None => {}
            Some(k) if packet.is_key() => {
                return Some(((ts - k) as f64 * time_base_s, frames));
            }
            Some(_) => frames += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_come_from_the_authority() {
        for (url, want) in [
            ("rtsp://cam/s", Some(("cam", 554))),
            ("rtsp://cam:8554/s/t?x=1", Some(("cam", 8554))),
            ("rtsps://cam/s", Some(("cam", 322))),
            ("rtsp://u:p@10.0.0.2:1554/x", Some(("10.0.0.2", 1554))),
            ("rtsp://[::1]:9/x", Some(("::1", 9))),
            ("rtsp://[fe80::1]/x", Some(("fe80::1", 554))),
            ("rtsp://cam:notaport/x", None),
            ("rtsp:///x", None),
            ("nothing", None),
        ] {
            assert_eq!(
                host_port(url),
                want.map(|(h, p)| (h.to_string(), p)),
                "{url}"
            );
        }
    }
}
