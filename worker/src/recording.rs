//! The MAIN pipeline: keep the camera's high-resolution stream connected (never decoded), hold its
//! last seconds in the [`PreRoll`] buffer, and write clips when the [`Trigger`] says so. Motion
//! decisions come from the SUB thread as [`RecorderSignal`]s stamped with capture times (the
//! monotonic instant a frame was filmed), which is how a SUB onset maps to MAIN packets.
//!
//! Inside, everything runs on the MAIN stream's content time ([`StreamClock`]): the pre-roll, the
//! trigger and the clip's timestamps. A clip's start is the capture time of its first packet, found
//! when the clip is finished (by then the packets read while probing the stream at connect have been
//! back-dated), not the moment its first packet was read.
//!
//! A failed write (disk full, read-only file system) closes the clip at its last fragment, reports
//! the error, and retries after [`RETRY_AFTER`]; a lost stream closes the clip and a new one starts
//! when the stream is back. Neither ever ends the process.

use crate::live::LiveRing;
use crate::mp4::{Clip, ClipError, Finished, Tracks};
use crate::recovery::{self, Recovered};
use crate::rtsp::{self, StreamError, Watchdog};
use crate::stream::StreamRunner;
use ffmpeg_next as ffmpeg;
use nvr_config::layout::{clip_path, part_of};
use nvr_config::redact_url;
use nvr_proto::settings::{CameraSettings, RecordingSettings};
use nvr_proto::{RecorderState, RecordingFinished, RecordingStarted, RecordingStatus, WorkerEvent};
use shm_bus::monotonic_ns;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use worker::clock::StreamClock;
use worker::preroll::PreRoll;
use worker::timeline::TimeBase;
use worker::trigger::{Action, Trigger};

/// After a failure to open or write a clip, how long before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// The pre-roll buffer keeps this much more than `pre_roll_s`, so the motion decision (a few SUB
/// frames after the onset) still finds the onset's pre-roll in it.
const PRE_ROLL_SLACK_S: f64 = 2.0;

/// What reaches the MAIN thread while it runs: motion decisions from the SUB thread, stamped with
/// capture times on the worker's monotonic clock, and new settings from the supervisor.
#[derive(Debug, Clone)]
pub enum RecorderSignal {
    Start {
        first_frame_ns: u64,
        decided_ns: u64,
    },
    End {
        last_moving_ns: u64,
    },
    /// Applied in place (`Update`): mode, post-roll, segment length.
    Settings(RecordingSettings),
}

pub type SharedRecording = Arc<Mutex<RecordingStatus>>;

/// Where recording events go (shared with the SUB thread).
pub type Events = Arc<dyn Fn(WorkerEvent) + Send + Sync>;

pub struct MainPipeline {
    pub camera: CameraSettings,
    pub output_dir: PathBuf,
    pub runner: StreamRunner,
    /// Motion decisions and new settings.
    pub signals: Receiver<RecorderSignal>,
    pub status: SharedRecording,
    pub events: Events,
}

/// What lives across connections.
struct Recorder<'a> {
    p: &'a MainPipeline,
    trigger: Trigger,
    preroll: PreRoll<ffmpeg::Packet>,
    clip: Option<Clip>,
    /// The motion onset waiting for its clip: (first moving frame, decision), monotonic ns.
    onset: Option<(u64, u64)>,
    /// Content time of the open clip's first packet.
    clip_start_ns: u64,
    /// The connection's clock (a new one per connection).
    clock: StreamClock,
    /// No new clip before this (after a failure).
    retry_at: Option<Instant>,
    /// MAIN's packet ring (live view at full resolution).
    live: LiveRing,
}

impl MainPipeline {
    /// Runs until `stop` is set.
    pub fn run(&self) {
        self.recover();
        let keep_s = self.camera.recording.pre_roll_s + PRE_ROLL_SLACK_S;
        let mut rec = Recorder {
            p: self,
            trigger: Trigger::new(&self.camera.recording),
            preroll: PreRoll::new((keep_s * 1e9) as u64),
            clip: None,
            onset: None,
            clip_start_ns: 0,
            clock: StreamClock::new(TimeBase {
                num: 1,
                den: 90_000,
            }),
            retry_at: None,
            live: LiveRing::new(
                &self.camera.id,
                shm_bus::StreamKind::Main,
                self.camera.live.main_ring_mb,
                Arc::clone(&self.runner.status),
            ),
        };
        self.runner.run(|| {
            let result = rec.session();
            rec.close("stream ended");
            result
        });
        rec.close("stopping");
    }

    /// Finishes the `.part` files a crashed worker left behind.
    fn recover(&self) {
        let dir = self.output_dir.join(&self.camera.id);
        for r in recovery::recover_parts(&dir) {
            match r {
                Recovered::Finished(f) => {
                    info!(path = %f.path.display(), duration_s = f.duration_s, "finished a recording left by a crash");
                    let start_unix_ms = f
                        .path
                        .file_name()
                        .and_then(|n| nvr_config::layout::parse_clip_name(&n.to_string_lossy()))
                        .map_or(0, |(_, unix_s)| unix_s.max(0) as u64 * 1000);
                    self.finished(&f, start_unix_ms, true);
                }
                Recovered::Broken { path, why } => {
                    warn!(path = %path.display(), %why, "a recording left by a crash holds no playable video; kept aside")
                }
            }
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut RecordingStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.output_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn finished(&self, f: &Finished, start_unix_ms: u64, recovered: bool) {
        let path = self.relative(&f.path);
        self.set_status(|s| s.files += 1);
        (self.events)(WorkerEvent::RecordingFinished(RecordingFinished {
            path,
            start_unix_ms,
            duration_s: f.duration_s,
            bytes: f.bytes,
            frames: f.frames,
            recovered,
        }));
    }
}

impl Recorder<'_> {
    /// One connection: read packets until the stream fails or ends.
    fn session(&mut self) -> Result<(), StreamError> {
        let runner = &self.p.runner;
        let url = redact_url(&runner.url);
        let watchdog = Watchdog::new(Arc::clone(&runner.stop));
        let fferr = |e| StreamError::from_ffmpeg(e, &url, &watchdog);
        let mut input = rtsp::open(&runner.url, &self.p.camera, &watchdog)?;
        let tracks = Tracks::of(&input).ok_or_else(|| StreamError::Failed {
            url: url.clone(),
            detail: "no video stream".into(),
        })?;
        let (width, height) = tracks.video_size();
        let codec = tracks.video_codec_name();
        if !tracks.recordable() {
            return Err(StreamError::Failed {
                url,
                detail: format!(
                    "the stream is {codec}, which cannot be recorded without transcoding; \
                     set the camera's main stream to H.264 or H.265"
                ),
            });
        }
        info!(stream = "main", %url, %codec, width, height, audio = tracks.audio.is_some(), "connected");
        // Packets of an earlier connection belong to another timeline.
        self.preroll.clear();
        let tb = tracks.video.time_base;
        self.clock = StreamClock::new(TimeBase {
            num: tb.numerator(),
            den: tb.denominator(),
        });
        self.live.connected(
            &input,
            tracks.video.in_index,
            tracks.audio.as_ref().map(|a| a.in_index),
        );
        let mut window = (Instant::now(), 0u32);
        // Packet bytes not yet added to the stream's status (added with the next video packet).
        let mut received = 0u64;
        loop {
            if runner.stopping() {
                return Err(StreamError::Stopped);
            }
            let mut packet = ffmpeg::Packet::empty();
            packet.read(&mut input).map_err(fferr)?;
            watchdog.progress();
            let arrival_ns = monotonic_ns();
            let is_video = packet.stream() == tracks.video.in_index;
            let is_audio = tracks
                .audio
                .as_ref()
                .is_some_and(|a| a.in_index == packet.stream());
            if !is_video && !is_audio {
                continue;
            }
            self.live.packet(&packet, arrival_ns);
            received += packet.size() as u64;
            if is_video && runner.count(&mut window, width, height, &codec, &mut received) {
                info!(stream = "main", "packets flowing");
            }
            self.take_signals();
            let key = is_video && packet.is_key();
            let at_ns = if is_video {
                self.clock
                    .stamp(packet.dts().or(packet.pts()), arrival_ns)
                    .content_ns
            } else {
                self.clock.content_of(arrival_ns)
            };
            self.preroll.push(at_ns, key, packet);
            if key {
                // Once a GOP is enough for the heartbeat's figure.
                let span = self.preroll.span_ns() as f64 / 1e9;
                self.p.set_status(|s| s.pre_roll_s = span);
            }
            let action = if is_video {
                let can_start = self.retry_at.is_none_or(|t| Instant::now() >= t)
                    && self.preroll.has_keyframe();
                self.trigger.packet(at_ns, key, can_start)
            } else if self.clip.is_some() {
                Action::Write
            } else {
                Action::Idle
            };
            match action {
                Action::Idle => {}
                Action::Open { preroll_from_ns } => {
                    self.open(&tracks, preroll_from_ns);
                }
                Action::Write => self.write_newest(),
                Action::Rotate => {
                    // The trigger already counts the next file as open: only finish this one.
                    self.finish_clip("segment length reached");
                    self.open(&tracks, at_ns);
                }
                Action::Close => self.close("motion over"),
            }
        }
    }

    /// Passes motion decisions and new settings to the trigger.
    fn take_signals(&mut self) {
        while let Ok(signal) = self.p.signals.try_recv() {
            match signal {
                RecorderSignal::Start {
                    first_frame_ns,
                    decided_ns,
                } => {
                    if !self.trigger.recording() {
                        self.onset = Some((first_frame_ns, decided_ns));
                    }
                    self.trigger
                        .motion_start(self.clock.content_of(first_frame_ns));
                }
                RecorderSignal::End { last_moving_ns } => self
                    .trigger
                    .motion_end(self.clock.content_of(last_moving_ns)),
                RecorderSignal::Settings(settings) => {
                    info!(mode = %format!("{:?}", settings.mode).to_lowercase(), post_roll_s = settings.post_roll_s, max_segment_s = settings.max_segment_s, "recording settings updated");
                    self.trigger.set_settings(&settings);
                }
            }
        }
    }

    /// Opens a clip and writes the buffered packets from the keyframe at or before
    /// `preroll_from_ns` (content time; they include the newest packet).
    fn open(&mut self, tracks: &Tracks, preroll_from_ns: u64) {
        if self.clip.is_some() {
            warn!("a clip was still open when the next one started; finishing it first");
            self.finish_clip("superseded");
        }
        let Some((first_ns, _)) = self.preroll.since(preroll_from_ns).next() else {
            return;
        };
        let first_capture_ns = self.clock.capture_of(first_ns);
        let first_unix_ms = unix_ms_of(first_capture_ns);
        let p = self.p;
        let rel = clip_path(&p.camera.id, (first_unix_ms / 1000) as i64, |rel| {
            let path = p.output_dir.join(rel);
            path.exists() || part_of(&path).exists()
        });
        let mut clip = match Clip::create(&p.output_dir.join(&rel), tracks) {
            Ok(c) => c,
            Err(e) => return self.failed(e),
        };
        let written = self
            .preroll
            .since(preroll_from_ns)
            .try_for_each(|(arrival_ns, packet)| clip.write(packet, arrival_ns));
        self.clip = Some(clip);
        self.clip_start_ns = first_ns;
        if let Err(e) = written {
            return self.failed(e);
        }
        let onset = self.onset.take();
        let first_frame_offset_ms =
            onset.map(|(onset_ns, _)| (first_capture_ns as f64 - onset_ns as f64) / 1e6);
        let open_ms =
            onset.map(|(_, decided_ns)| monotonic_ns().saturating_sub(decided_ns) as f64 / 1e6);
        let rel = rel.display().to_string();
        info!(path = %rel, first_frame_offset_ms, open_ms, "recording started");
        p.set_status(|s| {
            s.state = RecorderState::Recording;
            s.current_file = Some(rel.clone());
            s.last_error = None;
        });
        (p.events)(WorkerEvent::RecordingStarted(RecordingStarted {
            path: rel,
            first_frame_offset_ms,
            open_ms,
            start_unix_ms: first_unix_ms,
            codec: tracks.video_codec_name(),
        }));
    }

    /// Writes the packet just pushed into the pre-roll buffer to the open clip.
    fn write_newest(&mut self) {
        let (Some(clip), Some((arrival_ns, packet))) = (&mut self.clip, self.preroll.newest())
        else {
            return;
        };
        if let Err(e) = clip.write(packet, arrival_ns) {
            self.failed(e);
        }
    }

    /// Finishes the open clip, if any, and tells the trigger.
    fn close(&mut self, why: &str) {
        self.trigger.file_closed();
        self.finish_clip(why);
    }

    /// Finishes the open clip, if any.
    fn finish_clip(&mut self, why: &str) {
        let Some(clip) = self.clip.take() else {
            return;
        };
        let (finished, error) = clip.finish();
        if let Some(f) = &finished {
            info!(path = %self.p.relative(&f.path), duration_s = f.duration_s, bytes = f.bytes, frames = f.frames, why, "recording finished");
            // The start as known now: a clip opened while the stream was settling (the first one
            // after a connect) has had its first packets back-dated since.
            let start_unix_ms = unix_ms_of(self.clock.capture_of(self.clip_start_ns));
            self.p.finished(f, start_unix_ms, false);
        }
        self.p.set_status(|s| {
            s.state = RecorderState::Idle;
            s.current_file = None;
        });
        if let Some(e) = error {
            self.failed(e);
        }
    }

    /// A clip could not be opened or written: close what there is, report, retry later.
    fn failed(&mut self, e: ClipError) {
        error!(error = %e, retry_in_s = RETRY_AFTER.as_secs(), "recording failed");
        self.close("write failed");
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
        let reason = e.reason();
        self.p.set_status(|s| {
            s.state = RecorderState::Error;
            s.last_error = Some(reason.clone());
        });
        (self.p.events)(WorkerEvent::RecordingError {
            detail: reason,
            kind: e.kind(),
        });
    }
}

/// The wall clock (Unix ms) of a monotonic timestamp in the past.
fn unix_ms_of(mono_ns: u64) -> u64 {
    let ago_ns = monotonic_ns().saturating_sub(mono_ns);
    nvr_proto::unix_ns().saturating_sub(ago_ns) / 1_000_000
}

/// Whether this camera's worker runs a MAIN pipeline at all.
pub fn records(camera: &CameraSettings) -> bool {
    camera.recording.runs_main()
}
