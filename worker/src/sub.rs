//! The SUB pipeline: connect to the camera's low-resolution stream, decode it, and hand every frame
//! (as planar YUV 4:2:0) to a [`FrameSink`] — the shared-memory frame ring and motion detection.
//! Reconnects with backoff forever; an unreachable camera is a state, never a reason to exit.

use crate::live::LiveRing;
use crate::rtsp::{self, StreamError, Watchdog};
use crate::stream::StreamRunner;
use ffmpeg_next as ffmpeg;
use nvr_config::redact_url;
use nvr_proto::CameraSettings;
use shm_bus::monotonic_ns;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};
use worker::clock::{Stamp, StreamClock};
use worker::timeline::TimeBase;

/// Receives decoded frames, always `YUV420P`.
pub trait FrameSink {
    /// `stamp` is the frame's content and capture time on `clock` (the connection's: it turns the
    /// sink's content times into capture times later, once the stream has settled).
    fn frame(&mut self, frame: &ffmpeg::frame::Video, at: FrameTimes, clock: &StreamClock);
}

/// When a decoded frame was filmed, arrived and was decoded.
#[derive(Debug, Clone, Copy)]
pub struct FrameTimes {
    pub stamp: Stamp,
    /// Arrival of the packet that completed the frame (monotonic ns).
    pub arrival_ns: u64,
    pub decoded_ns: u64,
}

pub struct SubPipeline {
    pub camera: CameraSettings,
    pub runner: StreamRunner,
}

impl SubPipeline {
    /// Runs until `stop` is set.
    pub fn run(&self, sink: &mut dyn FrameSink) {
        let mut live = LiveRing::new(
            &self.camera.id,
            shm_bus::StreamKind::Sub,
            self.camera.live.sub_ring_mb,
            Arc::clone(&self.runner.status),
        );
        self.runner.run(|| self.session(sink, &mut live));
    }

    /// One connection: open, publish every packet into the packet ring, decode until error or end
    /// of stream.
    fn session(&self, sink: &mut dyn FrameSink, live: &mut LiveRing) -> Result<(), StreamError> {
        let url = redact_url(&self.runner.url);
        let watchdog = Watchdog::new(Arc::clone(&self.runner.stop));
        let fferr = |e| StreamError::from_ffmpeg(e, &url, &watchdog);
        let mut input = rtsp::open(&self.runner.url, &self.camera, &watchdog)?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| StreamError::Failed {
                url: url.clone(),
                detail: "no video stream".into(),
            })?;
        let stream_idx = stream.index();
        let tb = stream.time_base();
        let mut clock = StreamClock::new(TimeBase {
            num: tb.numerator(),
            den: tb.denominator(),
        });
        live.connected(&input, stream_idx, None);
        let mut ctx =
            ffmpeg::codec::Context::from_parameters(stream.parameters()).map_err(fferr)?;
        // One thread: frame threading would delay every frame by one frame per thread, which motion
        // latency cannot afford; a 640×360 stream decodes comfortably on one core.
        ctx.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Slice,
            count: 1,
            ..Default::default()
        });
        let mut opening = ctx.decoder();
        // No deblocking: motion detection works on a blurred 100-row image and the previews are
        // small, neither needs it, and it is a large part of H.264/H.265 decoding (BENCHMARKS.md).
        opening.skip_loop_filter(ffmpeg::codec::discard::Discard::All);
        let mut decoder = opening.video().map_err(fferr)?;
        let codec = decoder
            .codec()
            .map(|c| c.name().to_string())
            .unwrap_or_default();
        info!(stream = "sub", %url, %codec, "connected");

        let mut converter: Option<(ffmpeg::software::scaling::Context, ffmpeg::frame::Video)> =
            None;
        let mut frame = ffmpeg::frame::Video::empty();
        let mut waiting_for_keyframe = true;
        let mut fps_window = (Instant::now(), 0u32);
        // Packet bytes not yet added to the stream's status (added with the next frame).
        let mut received = 0u64;
        loop {
            if self.runner.stopping() {
                return Err(StreamError::Stopped);
            }
            // A new packet each time: `av_read_frame` does not release what a reused packet held,
            // which leaked the whole SUB bitrate (about 3 MB a minute).
            let mut packet = ffmpeg::Packet::empty();
            packet.read(&mut input).map_err(fferr)?;
            watchdog.progress();
            if packet.stream() != stream_idx {
                continue;
            }
            let arrival_ns = monotonic_ns();
            received += packet.size() as u64;
            live.packet(&packet, arrival_ns);
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
                let ts = frame.timestamp().or(frame.pts());
                let stamp = clock.stamp(ts, arrival_ns);
                tracing::debug!(
                    ts,
                    arrival_ns,
                    content_ns = stamp.content_ns,
                    capture_ns = stamp.capture_ns,
                    "frame stamped"
                );
                let at = FrameTimes {
                    stamp,
                    arrival_ns,
                    decoded_ns,
                };
                sink.frame(yuv, at, &clock);
                let (w, h) = (frame.width(), frame.height());
                if self
                    .runner
                    .count(&mut fps_window, w, h, &codec, &mut received)
                {
                    info!(stream = "sub", width = w, height = h, "frames flowing");
                }
            }
        }
    }
}
