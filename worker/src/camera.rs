//! One camera's media runtime inside the worker: the SUB thread (decode → shared-memory frame ring →
//! motion detection on the slot just written), its status for heartbeats, and an orderly stop. Used
//! the same way supervised and standalone; events go to whatever [`EventSink`] the caller gives.

use crate::sub::{FrameSink, SharedStatus, StateChange, SubPipeline};
use ffmpeg_next as ffmpeg;
use nvr_config::CameraConfig;
use nvr_proto::{MotionStart, WorkerEvent, WorkerStats};
use shm_bus::monotonic_ns;
use shm_bus::{Geometry, PixelFormat, Writer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use worker::motion::{Detector, Event, Luma};

/// Where the runtime's events go: the supervisor link, or stdout when standalone.
pub type EventSink = Box<dyn Fn(WorkerEvent) + Send>;

/// Slots in the frame ring: about a quarter second at 30 fps, so a reader that wakes late still finds
/// the frame it was told about.
const RING_SLOTS: usize = 8;

pub struct CameraRuntime {
    stop: Arc<AtomicBool>,
    sub_status: SharedStatus,
    changed: Arc<StateChange>,
    sub_thread: Mutex<Option<JoinHandle<()>>>,
    started: Instant,
}

impl CameraRuntime {
    pub fn start(camera: CameraConfig, events: EventSink) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sub_status = SharedStatus::default();
        let changed = Arc::new(StateChange::default());
        let pipeline = SubPipeline {
            camera,
            stop: Arc::clone(&stop),
            status: Arc::clone(&sub_status),
            changed: Arc::clone(&changed),
        };
        let span = tracing::Span::current();
        let sub_thread = std::thread::Builder::new()
            .name("sub".into())
            .spawn(move || {
                let _entered = span.enter();
                let mut sink = BusSink {
                    camera_id: pipeline.camera.id.to_string(),
                    writer: None,
                    retry_at: None,
                    motion: pipeline.camera.motion.clone(),
                    detector: None,
                    events,
                };
                pipeline.run(&mut sink);
            })
            .map_err(|e| error!(error = %e, "cannot start the SUB thread"))
            .ok();
        CameraRuntime {
            stop,
            sub_status,
            changed,
            sub_thread: Mutex::new(sub_thread),
            started: Instant::now(),
        }
    }

    pub fn stats(&self, heartbeats_sent: u64) -> WorkerStats {
        WorkerStats {
            uptime_s: self.started.elapsed().as_secs_f64(),
            heartbeats_sent,
            sub: self.sub_status.lock().ok().map(|s| s.clone()),
        }
    }

    /// Waits up to `timeout` for a stream to change state after change number `seen`; returns the
    /// latest change number. The heartbeat thread paces itself with this.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        self.changed.wait(seen, timeout)
    }

    /// Stops the pipelines, waiting up to `deadline` for them to finish.
    pub fn stop(&self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let until = Instant::now() + deadline;
        let thread = self.sub_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                warn!("SUB thread did not stop in time");
            }
        }
    }
}

/// Publishes decoded frames into the camera's shared-memory frame ring (creating it on the first frame
/// and reconfiguring it when the resolution changes), then runs motion detection on the Y plane of the
/// slot just written, in place.
struct BusSink {
    camera_id: String,
    writer: Option<Writer>,
    motion: nvr_config::MotionConfig,
    detector: Option<Detector>,
    events: EventSink,
    /// After a failure to create the ring, when to try again (instead of failing on every frame).
    retry_at: Option<Instant>,
}

/// How long to wait before retrying to create a ring that could not be created.
const RING_RETRY: Duration = Duration::from_secs(10);

impl FrameSink for BusSink {
    fn frame(&mut self, frame: &ffmpeg::frame::Video, arrival_ns: u64, decoded_ns: u64) {
        let geometry = Geometry {
            width: frame.width(),
            height: frame.height(),
            format: PixelFormat::Yuv420p,
        };
        let writer = match &mut self.writer {
            Some(w) if w.geometry() == geometry => w,
            Some(w) => {
                if let Err(e) = w.reconfigure(geometry) {
                    error!(error = %e, "cannot resize the frame ring");
                    self.writer = None;
                    return;
                }
                w
            }
            None if self.retry_at.is_some_and(|t| Instant::now() < t) => return,
            None => match Writer::create(&self.camera_id, geometry, RING_SLOTS) {
                Ok(w) => self.writer.insert(w),
                Err(e) => {
                    error!(error = %e, "cannot create the frame ring; frames are decoded but not shared");
                    self.retry_at = Some(Instant::now() + RING_RETRY);
                    return;
                }
            },
        };
        let pts = frame.pts().unwrap_or(0);
        writer.publish(pts, arrival_ns, decoded_ns, |planes| {
            for (i, plane) in planes.iter_mut().enumerate() {
                let src = frame.data(i);
                let src_stride = frame.stride(i);
                let n = plane.width_bytes.min(src_stride);
                for row in 0..plane.rows {
                    let s = &src[row * src_stride..row * src_stride + n];
                    plane.data[row * plane.stride..row * plane.stride + n].copy_from_slice(s);
                }
            }
        });
        if !self.motion.enabled {
            return;
        }
        let Some(view) = writer.last_frame() else {
            return;
        };
        let (width, height) = (geometry.width as usize, geometry.height as usize);
        let detector = match &mut self.detector {
            Some(d) if d.source_size() == (width, height) => d,
            slot => slot.insert(Detector::new(self.motion.clone(), width, height)),
        };
        let (data, stride) = view.plane(0);
        let luma = Luma {
            data,
            stride,
            width,
            height,
        };
        let Some(event) = detector.process(luma, arrival_ns, pts).event else {
            return;
        };
        let decided_ns = monotonic_ns();
        let ms = |from: u64| decided_ns.saturating_sub(from) as f64 / 1e6;
        let event = match event {
            Event::Start {
                first_frame_ns,
                first_pts,
                score,
                bbox,
            } => {
                let onset_delay_ms = ms(first_frame_ns);
                let wall_unix_ms =
                    (nvr_proto::unix_ns() / 1_000_000).saturating_sub(onset_delay_ms as u64);
                info!(
                    score,
                    latency_ms = ms(arrival_ns),
                    onset_delay_ms,
                    "motion started"
                );
                WorkerEvent::MotionStart(MotionStart {
                    pts: first_pts,
                    wall_unix_ms,
                    first_frame_mono_ns: first_frame_ns,
                    score,
                    bbox: bbox.map(|b| [b.x0, b.y0, b.x1, b.y1]),
                    latency_ms: ms(arrival_ns),
                    decode_latency_ms: ms(decoded_ns),
                    onset_delay_ms,
                })
            }
            Event::End {
                duration_s,
                peak_score,
            } => {
                info!(duration_s, peak_score, "motion ended");
                WorkerEvent::MotionEnd {
                    duration_s,
                    peak_score,
                }
            }
        };
        (self.events)(event);
    }
}
