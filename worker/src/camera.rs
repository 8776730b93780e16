//! One camera's media runtime inside the worker: the SUB thread (decode → shared-memory frame ring →
//! motion detection on the slot just written), the MAIN thread (pre-roll buffer → clips, see
//! [`crate::recording`]), their status for heartbeats, and an orderly stop. Used the same way
//! supervised and standalone; events go to whatever [`EventSink`] the caller gives.

use crate::ptz::{self, Pushed, ReplySink};
use crate::recording::{self, MainPipeline, RecorderSignal, SharedRecording};
use crate::stream::{SharedStatus, StateChange, StreamRunner};
use crate::sub::{FrameSink, FrameTimes, SubPipeline};
use ffmpeg_next as ffmpeg;
use nvr_proto::ptz::{PtzAnswer, PtzCommand, PtzError, PtzErrorKind};
use nvr_proto::settings::{CameraSettings, MotionSettings};
use nvr_proto::{MotionLevel, MotionStart, WorkerEvent, WorkerStats, ZoneLevel};
use shm_bus::monotonic_ns;
use shm_bus::{Geometry, PixelFormat, Writer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use worker::clock::StreamClock;
use worker::motion::{zone_names, Detector, Event, Luma};

/// Where the runtime's events go: the supervisor link, or stdout when standalone.
pub type EventSink = recording::Events;

/// Slots in the frame ring: about a quarter second at 30 fps, so a reader that wakes late still finds
/// the frame it was told about.
const RING_SLOTS: usize = 8;

pub struct CameraRuntime {
    stop: Arc<AtomicBool>,
    sub_status: SharedStatus,
    /// `None` when the camera does not record.
    main_status: Option<(SharedStatus, SharedRecording)>,
    changed: Arc<StateChange>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
    /// Where new motion settings go (the SUB thread takes them before its next frame).
    motion_settings: Sender<MotionSettings>,
    /// Where new recording settings go (`None` when the camera does not record).
    recorder: Option<Sender<RecorderSignal>>,
    /// The settings in force, to check that an update changes only what can change in place.
    settings: Mutex<CameraSettings>,
    /// The latest frame's motion level, written by the SUB thread, read by heartbeats.
    motion_level: SharedLevel,
    /// The PTZ thread's commands (`None`: no `onvif` in the settings, or standalone).
    ptz: Option<Arc<ptz::Queue>>,
    ptz_replies: Option<ReplySink>,
}

/// The latest frame's motion level (`None`: no frame judged yet, or detection off).
type SharedLevel = Arc<Mutex<Option<MotionLevel>>>;

impl CameraRuntime {
    /// Starts the pipelines; with `ptz_replies` (supervised) and `onvif` in the settings, the PTZ
    /// thread too, whose answers go to `ptz_replies`.
    pub fn start(
        camera: CameraSettings,
        output_dir: PathBuf,
        events: EventSink,
        ptz_replies: Option<ReplySink>,
    ) -> Self {
        let settings = Mutex::new(camera.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let changed = Arc::new(StateChange::default());
        let runner = |name, url: &str| StreamRunner {
            name,
            url: url.to_string(),
            stop: Arc::clone(&stop),
            status: SharedStatus::default(),
            changed: Arc::clone(&changed),
        };
        let mut threads = Vec::new();
        let span = tracing::Span::current();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            let span = span.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _entered = span.enter();
                    f()
                })
                .map_err(|e| error!(error = %e, thread = name, "cannot start a pipeline thread"))
                .ok()
        };
        let (motion_tx, main_status) = if recording::records(&camera) {
            let (tx, rx) = std::sync::mpsc::channel();
            let main = MainPipeline {
                camera: camera.clone(),
                output_dir,
                runner: runner("main", &camera.main_url),
                signals: rx,
                status: SharedRecording::default(),
                events: Arc::clone(&events),
            };
            let status = (Arc::clone(&main.runner.status), Arc::clone(&main.status));
            threads.extend(spawn("main", Box::new(move || main.run())));
            (Some(tx), Some(status))
        } else {
            (None, None)
        };
        let ptz_paused = Arc::new(AtomicBool::new(false));
        let ptz = match (&camera.onvif, &ptz_replies) {
            (Some(onvif), Some(replies)) => {
                let queue = Arc::new(ptz::Queue::default());
                let thread = ptz::Ptz::new(
                    ptz::onvif_connector(onvif.clone()),
                    Duration::from_secs_f64(onvif.move_timeout_s),
                    Duration::from_secs_f64(onvif.settle_s),
                    Arc::clone(&ptz_paused),
                    Arc::clone(replies),
                );
                let q = Arc::clone(&queue);
                threads.extend(spawn("ptz", Box::new(move || thread.run(&q))));
                Some(queue)
            }
            _ => None,
        };
        // A camera with one stream decodes it for motion and preview too (at MAIN's resolution).
        let sub_url = camera
            .sub_url
            .clone()
            .unwrap_or_else(|| camera.main_url.clone());
        let sub = SubPipeline {
            runner: runner("sub", &sub_url),
            camera,
        };
        let (motion_settings, new_motion) = std::sync::mpsc::channel();
        let recorder = motion_tx.clone();
        let sub_status = Arc::clone(&sub.runner.status);
        let motion_level = SharedLevel::default();
        let level = Arc::clone(&motion_level);
        threads.extend(spawn(
            "sub",
            Box::new(move || {
                let mut sink = BusSink {
                    camera_id: sub.camera.id.clone(),
                    writer: None,
                    retry_at: None,
                    motion: sub.camera.motion.clone(),
                    new_motion,
                    detector: None,
                    level,
                    events,
                    recorder: motion_tx,
                    ptz_paused,
                };
                sub.run(&mut sink);
            }),
        ));
        CameraRuntime {
            stop,
            sub_status,
            main_status,
            changed,
            threads: Mutex::new(threads),
            started: Instant::now(),
            motion_settings,
            recorder,
            settings,
            motion_level,
            ptz,
            ptz_replies,
        }
    }

    /// Hands a PTZ command to the PTZ thread; the answer goes to the reply sink, now (no PTZ,
    /// too many waiting, superseded moves) or when the camera answered.
    pub fn ptz(&self, request_id: u64, command: PtzCommand) {
        let Some(replies) = &self.ptz_replies else {
            return;
        };
        let Some(queue) = &self.ptz else {
            replies(
                request_id,
                Err(PtzError::new(
                    PtzErrorKind::NoOnvif,
                    "the camera has no \"onvif\" section in the config",
                )),
            );
            return;
        };
        match queue.push(request_id, command) {
            Pushed::Queued { superseded } => {
                for id in superseded {
                    replies(id, Ok(PtzAnswer::Done));
                }
            }
            Pushed::Refused(e) => replies(request_id, Err(e)),
        }
    }

    /// Applies new settings in place: motion settings from the SUB thread's next frame, recording
    /// settings from the MAIN thread's next packet. Refused (nothing changes) when they differ in
    /// something only a new worker can take.
    pub fn update(&self, new: CameraSettings) -> Result<(), String> {
        let mut settings = self.settings.lock().map_err(|_| "settings lock poisoned")?;
        if !settings.live_only_change(&new) {
            return Err("these settings need a worker restart".into());
        }
        self.motion_settings
            .send(new.motion.clone())
            .map_err(|_| "the SUB thread has stopped")?;
        if let Some(recorder) = &self.recorder {
            recorder
                .send(RecorderSignal::Settings(new.recording.clone()))
                .map_err(|_| "the MAIN thread has stopped")?;
        }
        *settings = new;
        Ok(())
    }

    pub fn stats(&self, heartbeats_sent: u64) -> WorkerStats {
        WorkerStats {
            uptime_s: self.started.elapsed().as_secs_f64(),
            heartbeats_sent,
            sub: self.sub_status.lock().ok().map(|s| s.clone()),
            main: self
                .main_status
                .as_ref()
                .and_then(|(m, _)| m.lock().ok().map(|s| s.clone())),
            recording: self
                .main_status
                .as_ref()
                .and_then(|(_, r)| r.lock().ok().map(|s| s.clone())),
            motion: self.motion_level.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Waits up to `timeout` for a stream to change state after change number `seen`; returns the
    /// latest change number. The heartbeat thread paces itself with this.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        self.changed.wait(seen, timeout)
    }

    /// Stops the pipelines (the MAIN one finishes its clip), waiting up to `deadline` for them.
    pub fn stop(&self, deadline: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(queue) = &self.ptz {
            queue.close();
        }
        let until = Instant::now() + deadline;
        // Held until the threads are joined: a second caller (the heartbeat thread and the main
        // thread may both see the supervisor go) waits here instead of returning at once and
        // letting the process exit under the first one's joins.
        let Ok(mut threads) = self.threads.lock() else {
            return;
        };
        for t in std::mem::take(&mut *threads) {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                warn!(
                    thread = t.thread().name().unwrap_or("?"),
                    "pipeline thread did not stop in time"
                );
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
    motion: MotionSettings,
    /// New motion settings (`Update`), taken before the next frame.
    new_motion: Receiver<MotionSettings>,
    detector: Option<Detector>,
    /// Where the latest frame's motion level goes (for heartbeats).
    level: SharedLevel,
    events: EventSink,
    /// The MAIN pipeline's ear for motion decisions (`None` when not recording).
    recorder: Option<Sender<RecorderSignal>>,
    /// After a failure to create the ring, when to try again (instead of failing on every frame).
    retry_at: Option<Instant>,
    /// Set by the PTZ thread while the camera moves or settles: detection pauses, any event ends,
    /// and the background is learned afresh afterwards.
    ptz_paused: Arc<AtomicBool>,
}

/// How long to wait before retrying to create a ring that could not be created.
const RING_RETRY: Duration = Duration::from_secs(10);

impl BusSink {
    /// Copies the frame into the ring (creating or resizing it first); false when there is no ring
    /// to write to. Detection goes on without one: it then reads the decoder's own picture.
    fn publish(
        &mut self,
        frame: &ffmpeg::frame::Video,
        geometry: Geometry,
        pts: i64,
        arrival_ns: u64,
        decoded_ns: u64,
    ) -> bool {
        let writer = match &mut self.writer {
            Some(w) if w.geometry() == geometry => w,
            Some(w) => {
                if let Err(e) = w.reconfigure(geometry) {
                    error!(error = %e, "cannot resize the frame ring");
                    self.writer = None;
                    return false;
                }
                w
            }
            None if self.retry_at.is_some_and(|t| Instant::now() < t) => return false,
            None => match Writer::create(&self.camera_id, geometry, RING_SLOTS) {
                Ok(w) => self.writer.insert(w),
                Err(e) => {
                    error!(error = %e, "cannot create the frame ring; frames are decoded but not shared");
                    self.retry_at = Some(Instant::now() + RING_RETRY);
                    return false;
                }
            },
        };
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
        true
    }
}

impl FrameSink for BusSink {
    fn frame(&mut self, frame: &ffmpeg::frame::Video, at: FrameTimes, clock: &StreamClock) {
        let FrameTimes {
            stamp,
            arrival_ns,
            decoded_ns,
        } = at;
        let geometry = Geometry {
            width: frame.width(),
            height: frame.height(),
            format: PixelFormat::Yuv420p,
        };
        let pts = frame.pts().unwrap_or(0);
        let published = self.publish(frame, geometry, pts, arrival_ns, decoded_ns);
        while let Ok(motion) = self.new_motion.try_recv() {
            info!(
                threshold = motion.threshold,
                min_area = motion.min_area,
                zones = motion.zones.len(),
                masks = motion.masks.len(),
                "motion settings updated"
            );
            if let Some(d) = &mut self.detector {
                d.set_settings(motion.clone());
            }
            self.motion = motion;
            // Zone names may have changed: the next frame writes the level afresh.
            if let Ok(mut level) = self.level.lock() {
                *level = None;
            }
        }
        let ptz_paused = self.ptz_paused.load(Ordering::Relaxed);
        if !self.motion.enabled || ptz_paused {
            if let Ok(mut level) = self.level.lock() {
                *level = None;
            }
            // A moving camera changes the whole picture: end any event now, and learn the
            // background afresh once it has settled.
            if let Some(end) = self.detector.as_mut().and_then(Detector::interrupt) {
                info!("motion event ended: the camera is moving");
                self.emit(end, arrival_ns, decoded_ns, clock);
            }
            return;
        }
        let (width, height) = (geometry.width as usize, geometry.height as usize);
        let detector = match &mut self.detector {
            Some(d) if d.source_size() == (width, height) => d,
            slot => slot.insert(Detector::new(self.motion.clone(), width, height)),
        };
        // In place in the ring's slot when there is one; a full or missing /dev/shm costs the
        // previews, never the detection.
        let view = self
            .writer
            .as_ref()
            .filter(|_| published)
            .and_then(|w| w.last_frame());
        let (data, stride) = match &view {
            Some(view) => view.plane(0),
            None => (frame.data(0), frame.stride(0)),
        };
        let luma = Luma {
            data,
            stride,
            width,
            height,
        };
        // The detector runs on the stream's own time; its decisions are turned into capture times
        // (the monotonic instant a frame was filmed) as they come out.
        let result = detector.process(luma, stamp.content_ns, pts);
        if let Ok(mut level) = self.level.lock() {
            let level = level.get_or_insert_with(MotionLevel::default);
            level.score = result.score;
            let zones = detector.zone_levels();
            if level.zones.len() != zones.len() {
                level.zones = (0..zones.len())
                    .map(|z| ZoneLevel {
                        name: self.motion.zone_name(z),
                        score: 0.0,
                    })
                    .collect();
            }
            for (l, &score) in level.zones.iter_mut().zip(zones) {
                l.score = score;
            }
        }
        if let Some(event) = result.event {
            self.emit(event, arrival_ns, decoded_ns, clock);
        }
    }
}

impl BusSink {
    /// Tells the recorder and the supervisor about a motion decision on the frame that arrived at
    /// `arrival_ns`.
    fn emit(&mut self, event: Event, arrival_ns: u64, decoded_ns: u64, clock: &StreamClock) {
        let decided_ns = monotonic_ns();
        let ms = |from: u64| decided_ns.saturating_sub(from) as f64 / 1e6;
        let event = match event {
            Event::Start {
                first_frame_ns,
                first_pts,
                score,
                bbox,
                zones,
            } => {
                let first_frame_ns = clock.capture_of(first_frame_ns).min(arrival_ns);
                if let Some(r) = &self.recorder {
                    let _ = r.send(RecorderSignal::Start {
                        first_frame_ns,
                        decided_ns,
                    });
                }
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
                    zones: zone_names(&self.motion, zones),
                })
            }
            Event::End {
                duration_s,
                peak_score,
                last_moving_ns,
                zones,
            } => {
                let last_moving_ns = clock.capture_of(last_moving_ns).min(arrival_ns);
                if let Some(r) = &self.recorder {
                    let _ = r.send(RecorderSignal::End { last_moving_ns });
                }
                info!(duration_s, peak_score, "motion ended");
                WorkerEvent::MotionEnd {
                    duration_s,
                    peak_score,
                    zones: zone_names(&self.motion, zones),
                }
            }
        };
        (self.events)(event);
    }
}
