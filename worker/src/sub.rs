//! The SUB pipeline: connect to the camera's low-resolution stream, decode it, and hand every frame
//! (as planar YUV 4:2:0) to a [`FrameSink`] — the shared-memory frame ring and motion detection.
//! Reconnects with backoff forever; an unreachable camera is a state, never a reason to exit.

use crate::rtsp::{self, StreamError, Watchdog};
use ffmpeg_next as ffmpeg;
use nvr_config::{redact_url, CameraConfig};
use nvr_proto::{StreamState, StreamStatus};
use shm_bus::monotonic_ns;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// First reconnect delay; doubles up to [`RECONNECT_MAX`], and resets after a session that was up
/// for [`HEALTHY_SESSION`].
const RECONNECT_INITIAL: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// Receives decoded frames, always `YUV420P`.
pub trait FrameSink {
    fn frame(&mut self, frame: &ffmpeg::frame::Video, arrival_ns: u64, decoded_ns: u64);
}

/// Shared view of the stream's state, read by the heartbeat thread.
pub type SharedStatus = Arc<Mutex<StreamStatus>>;

/// Rung when a stream changes state, so the heartbeat goes out now instead of at its next tick.
#[derive(Default)]
pub struct StateChange {
    count: Mutex<u64>,
    rung: Condvar,
}

impl StateChange {
    pub fn ring(&self) {
        if let Ok(mut n) = self.count.lock() {
            *n += 1;
            self.rung.notify_all();
        }
    }

    /// Waits up to `timeout` for a ring after `seen`; returns the latest count.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(guard) = self.count.lock() else {
            return seen;
        };
        match self.rung.wait_timeout_while(guard, timeout, |n| *n == seen) {
            Ok((n, _)) => *n,
            Err(_) => seen,
        }
    }
}

pub struct SubPipeline {
    pub camera: CameraConfig,
    pub stop: Arc<AtomicBool>,
    pub status: SharedStatus,
    pub changed: Arc<StateChange>,
}

impl SubPipeline {
    /// The URL this pipeline decodes: SUB, or MAIN for a camera with one stream.
    fn url(&self) -> &str {
        self.camera
            .sub_url
            .as_deref()
            .unwrap_or(&self.camera.main_url)
    }

    /// Runs until `stop` is set.
    pub fn run(&self, sink: &mut dyn FrameSink) {
        let mut delay = RECONNECT_INITIAL;
        while !self.stop.load(Ordering::Relaxed) {
            self.update(|s| s.state = StreamState::Connecting);
            let started = Instant::now();
            let result = self.session(sink);
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if started.elapsed() >= HEALTHY_SESSION {
                delay = RECONNECT_INITIAL;
            }
            let err = match result {
                Ok(()) => StreamError::Ended {
                    url: redact_url(self.url()),
                },
                Err(e) => e,
            };
            if matches!(err, StreamError::Stopped) {
                break;
            }
            let state = match err {
                StreamError::Unauthorized { .. } => StreamState::Unauthorized,
                _ => StreamState::Down,
            };
            warn!(stream = "sub", error = %err, retry_in_s = delay.as_secs_f64(), "stream down");
            self.update(|s| {
                s.state = state;
                s.fps = 0.0;
                s.reconnects += 1;
                s.last_error = Some(err.to_string());
            });
            self.sleep(delay);
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }

    /// Applies `f` to the shared status; rings [`StateChange`] if the state changed.
    fn update(&self, f: impl FnOnce(&mut StreamStatus)) {
        let changed = match self.status.lock() {
            Ok(mut s) => {
                let before = s.state;
                f(&mut s);
                s.state != before
            }
            Err(_) => false,
        };
        if changed {
            self.changed.ring();
        }
    }

    /// Sleeps up to `d`, waking early on stop.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One connection: open, decode until error or end of stream.
    fn session(&self, sink: &mut dyn FrameSink) -> Result<(), StreamError> {
        let url = redact_url(self.url());
        let watchdog = Watchdog::new(Arc::clone(&self.stop));
        let fferr = |e| StreamError::from_ffmpeg(e, &url, &watchdog);
        let mut input = rtsp::open(self.url(), &self.camera, &watchdog)?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| StreamError::Failed {
                url: url.clone(),
                detail: "no video stream".into(),
            })?;
        let stream_idx = stream.index();
        let mut ctx =
            ffmpeg::codec::Context::from_parameters(stream.parameters()).map_err(fferr)?;
        // One thread: frame threading would delay every frame by one frame per thread, which motion
        // latency cannot afford; a 640×360 stream decodes comfortably on one core.
        ctx.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Slice,
            count: 1,
            ..Default::default()
        });
        let mut decoder = ctx.decoder().video().map_err(fferr)?;
        let codec = decoder
            .codec()
            .map(|c| c.name().to_string())
            .unwrap_or_default();
        info!(stream = "sub", %url, %codec, "connected");

        let mut converter: Option<(ffmpeg::software::scaling::Context, ffmpeg::frame::Video)> =
            None;
        let mut frame = ffmpeg::frame::Video::empty();
        let mut packet = ffmpeg::Packet::empty();
        let mut waiting_for_keyframe = true;
        let mut fps_window = (Instant::now(), 0u32);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(StreamError::Stopped);
            }
            packet.read(&mut input).map_err(fferr)?;
            watchdog.progress();
            if packet.stream() != stream_idx {
                continue;
            }
            let arrival_ns = monotonic_ns();
            // Joining mid-GOP gives reference errors (H.265 especially): start at a keyframe.
            if waiting_for_keyframe && !packet.is_key() {
                continue;
            }
            waiting_for_keyframe = false;
            if let Err(e) = decoder.send_packet(&packet) {
                warn!(stream = "sub", error = %e, "decode error; waiting for the next keyframe");
                waiting_for_keyframe = true;
                continue;
            }
            while decoder.receive_frame(&mut frame).is_ok() {
                let decoded_ns = monotonic_ns();
                let yuv = match frame.format() {
                    ffmpeg::format::Pixel::YUV420P | ffmpeg::format::Pixel::YUVJ420P => &frame,
                    other => {
                        let (scaler, out) = match &mut converter {
                            Some(c)
                                if c.0.input().width == frame.width()
                                    && c.0.input().height == frame.height() =>
                            {
                                c
                            }
                            slot => {
                                warn!(stream = "sub", format = ?other, "converting to YUV420P");
                                let scaler = ffmpeg::software::scaling::Context::get(
                                    other,
                                    frame.width(),
                                    frame.height(),
                                    ffmpeg::format::Pixel::YUV420P,
                                    frame.width(),
                                    frame.height(),
                                    ffmpeg::software::scaling::Flags::FAST_BILINEAR,
                                )
                                .map_err(fferr)?;
                                slot.insert((scaler, ffmpeg::frame::Video::empty()))
                            }
                        };
                        scaler.run(&frame, out).map_err(fferr)?;
                        out.set_pts(frame.pts());
                        &*out
                    }
                };
                sink.frame(yuv, arrival_ns, decoded_ns);
                fps_window.1 += 1;
                let elapsed = fps_window.0.elapsed();
                let (w, h) = (frame.width(), frame.height());
                let mut newly_up = false;
                self.update(|s| {
                    s.frames += 1;
                    if s.state != StreamState::Up || (s.width, s.height) != (w, h) {
                        newly_up = true;
                        s.state = StreamState::Up;
                        s.last_error = None;
                        s.width = w;
                        s.height = h;
                        s.codec = codec.clone();
                    }
                    if elapsed >= Duration::from_secs(1) {
                        s.fps = f64::from(fps_window.1) / elapsed.as_secs_f64();
                    }
                });
                if newly_up {
                    info!(stream = "sub", width = w, height = h, "frames flowing");
                }
                if elapsed >= Duration::from_secs(1) {
                    fps_window = (Instant::now(), 0);
                }
            }
        }
    }
}
