//! One fMP4 viewer: a reader thread of its own on the camera's packet ring (blocking waits on
//! shared memory stay off the async runtime), its own muxer, and the queue to the viewer's socket,
//! bounded in messages and in bytes ([`Backlog`]).

use super::{Backlog, Stream, DOWN_AFTER};
use crate::api::ws::{Close, Outgoing, Source};
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use shm_bus::{PacketMeta, PacketReader, Read, StreamKind, StreamParams};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most messages waiting for one viewer's socket.
const QUEUE_MESSAGES: usize = 256;
/// Most bytes waiting for one viewer's socket (beyond them it skips to the next keyframe): about
/// 15 s of a 512 kbit/s SUB stream, 2 s of an 16 Mbit/s MAIN stream.
pub const SUB_BUDGET: usize = 1 << 20;
pub const MAIN_BUDGET: usize = 4 << 20;
/// How long the reader sleeps in one wait for the writer.
const WAIT: Duration = Duration::from_millis(200);
/// A frame interval to assume before two frames have been seen (30 fps at 90 kHz).
const FIRST_INTERVAL: u32 = 3000;
/// Video timestamps are 90 kHz.
const VIDEO_HZ: i64 = 90_000;

enum Piece {
    Text(String),
    Data(Bytes),
}

/// The socket's side of one viewer: what its thread queued.
pub struct Relay {
    rx: mpsc::Receiver<Piece>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Why the thread stopped, read once its queue is empty.
    why: Arc<Mutex<Option<Close>>>,
}

impl Relay {
    /// Starts the reader thread of a viewer of `camera`'s `stream`.
    pub fn start(camera: &str, stream: Stream) -> Relay {
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let relay = Relay {
            rx,
            queued: Arc::default(),
            stop: Arc::default(),
            why: Arc::default(),
        };
        let viewer = Viewer {
            camera: camera.to_string(),
            stream,
            tx,
            queued: Arc::clone(&relay.queued),
            stop: Arc::clone(&relay.stop),
            backlog: Backlog::new(match stream {
                Stream::Sub => SUB_BUDGET,
                Stream::Main => MAIN_BUDGET,
            }),
        };
        let why = Arc::clone(&relay.why);
        let spawned = std::thread::Builder::new()
            .name(format!("live-{camera}"))
            // It reads, muxes and queues: no deep calls. (The default is 2 MiB.)
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut viewer = viewer;
                let reason = viewer.run();
                tracing::debug!(camera_id = %viewer.camera, reason = reason.reason(), "live viewer thread ends");
                // The reason first: the socket's side reads it when the queue closes, which
                // happens when `viewer` (its sender) is dropped below.
                *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                drop(viewer);
            });
        if let Err(e) = spawned {
            tracing::warn!(camera_id = camera, error = %e, "cannot start a live viewer thread");
            *relay.why.lock().unwrap_or_else(|p| p.into_inner()) = Some(Close::GoingAway);
        }
        relay
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Source for Relay {
    async fn next(&mut self) -> Outgoing {
        match self.rx.recv().await {
            Some(Piece::Text(t)) => Outgoing::Send(Message::Text(Utf8Bytes::from(t))),
            Some(Piece::Data(b)) => {
                self.queued.fetch_sub(b.len(), Ordering::AcqRel);
                Outgoing::Send(Message::Binary(b))
            }
            None => Outgoing::Close(
                self.why
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or(Close::CameraDown),
            ),
        }
    }
}

/// The thread's side of one viewer.
struct Viewer {
    camera: String,
    stream: Stream,
    tx: mpsc::Sender<Piece>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    backlog: Backlog,
}

/// What ended one attachment to the ring.
enum Detach {
    /// The writer restarted (or the ring went): attach again.
    Again,
    /// The viewer is done, for this reason.
    End(Close),
}

impl Viewer {
    fn kind(&self) -> StreamKind {
        match self.stream {
            Stream::Sub => StreamKind::Sub,
            Stream::Main => StreamKind::Main,
        }
    }

    fn gone(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    fn run(&mut self) -> Close {
        let mut since = Instant::now();
        loop {
            if self.gone() {
                return Close::Normal;
            }
            let reader = match PacketReader::attach(&self.camera, self.kind()) {
                Ok(r) => r,
                Err(_) if since.elapsed() < DOWN_AFTER => {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(_) => return Close::CameraDown,
            };
            match self.follow(reader, since) {
                Detach::Again => since = Instant::now(),
                Detach::End(why) => return why,
            }
        }
    }

    /// Relays one writer's packets: waits for its parameters and a keyframe, sends the init
    /// segment, then a fragment per frame.
    fn follow(&mut self, mut reader: PacketReader, since: Instant) -> Detach {
        let generation = reader.generation();
        // Parameters and a keyframe to start from.
        let (version, params, mut seq) = loop {
            if self.gone() {
                return Detach::End(Close::Normal);
            }
            if reader.restarted() || reader.generation() != generation {
                return Detach::Again;
            }
            if let (Some((v, p)), Some(k)) = (reader.params(), reader.newest_keyframe_seq()) {
                break (v, p, k);
            }
            if since.elapsed() > DOWN_AFTER {
                return Detach::End(Close::CameraDown);
            }
            if let Ok(shm_bus::PacketWait::Restarted) | Err(_) = reader.wait(WAIT) {
                return Detach::Again;
            }
        };
        let mut mux = match Mux::new(&params) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(camera_id = %self.camera, error = %e, "live: cannot mux this stream");
                return Detach::End(Close::Unsupported);
            }
        };
        let mut version = version;
        if !self.send_init(&mux) {
            return Detach::End(Close::Normal);
        }
        let mut buf = Vec::new();
        let mut last_packet = Instant::now();
        loop {
            if self.gone() {
                return Detach::End(Close::Normal);
            }
            match reader.read(seq, &mut buf) {
                Ok(Read::Packet(meta)) => {
                    seq = meta.seq + 1;
                    last_packet = Instant::now();
                    if meta.keyframe && meta.track == shm_bus::Track::Video {
                        // New codec parameters (a reconfigured camera): a new init segment.
                        if let Some((v, p)) = reader.params().filter(|(v, _)| *v != version) {
                            version = v;
                            match Mux::new(&p) {
                                Ok(m) => mux = m,
                                Err(_) => return Detach::End(Close::Unsupported),
                            }
                            if !self.send_init(&mux) {
                                return Detach::End(Close::Normal);
                            }
                        }
                    }
                    match mux.push(&meta, &buf) {
                        Ok(Some(fragment)) => {
                            if !self.offer(fragment, meta.keyframe) {
                                mux.skipped();
                            }
                        }
                        Ok(None) => {}
                        // A parameter-set-only access unit and the like: skipped.
                        Err(e) => {
                            tracing::debug!(camera_id = %self.camera, error = %e, "live: packet not muxed");
                        }
                    }
                }
                Ok(Read::NotYet) => {
                    if last_packet.elapsed() > DOWN_AFTER {
                        return Detach::End(Close::CameraDown);
                    }
                    if let Ok(shm_bus::PacketWait::Restarted) | Err(_) = reader.wait(WAIT) {
                        return Detach::Again;
                    }
                }
                Ok(Read::Overwritten) => {
                    // This reader fell a whole ring behind (it cannot, unless starved): go on at
                    // the newest keyframe.
                    match reader.newest_keyframe_seq() {
                        Some(k) => seq = k,
                        None => seq = reader.next_seq(),
                    }
                    mux.skipped();
                    self.backlog.restart();
                }
                Ok(Read::Restarted) | Err(_) => return Detach::Again,
            }
        }
    }

    /// Queues the init message and segment, waiting for room if need be (a viewer that never
    /// drains is closed by its socket's timeout, which ends the wait).
    fn send_init(&mut self, mux: &Mux) -> bool {
        self.backlog.restart();
        let segment = Bytes::from(mux.init_segment());
        self.queued.fetch_add(segment.len(), Ordering::AcqRel);
        self.tx
            .blocking_send(Piece::Text(mux.info(self.stream)))
            .is_ok()
            && self.tx.blocking_send(Piece::Data(segment)).is_ok()
    }

    /// Queues one fragment unless the viewer is too far behind (see [`Backlog`]); false if it was
    /// dropped (the muxer then waits for the next keyframe).
    fn offer(&mut self, fragment: Vec<u8>, keyframe: bool) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        if self.backlog.admit(queued, fragment.len(), keyframe) == super::Admit::Drop {
            return false;
        }
        let len = fragment.len();
        self.queued.fetch_add(len, Ordering::AcqRel);
        if self
            .tx
            .try_send(Piece::Data(Bytes::from(fragment)))
            .is_err()
        {
            // The message count is full: as over budget.
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.backlog.restart();
            return false;
        }
        true
    }
}

/// One viewer's muxer: the tracks of one set of parameters, timestamps rebased to the first frame
/// it sends, audio carried with the next video frame.
struct Mux {
    video: fmp4::VideoTrack,
    audio: Option<fmp4::AudioTrack>,
    fragmenter: fmp4::Fragmenter,
    /// Video DTS (90 kHz) at decode time 0; set by the first keyframe.
    base: Option<i64>,
    /// Decode time of the last video frame sent.
    last_decode: Option<i64>,
    /// The last interval between two frames (90 kHz).
    interval: u32,
    /// Audio frames waiting for the next video frame: (decode time, data).
    audio_pending: Vec<(u64, Vec<u8>)>,
    last_audio: Option<u64>,
    /// Video frames are dropped until the next keyframe (at the start, after a skip).
    need_keyframe: bool,
}

/// A DTS step larger than this is a camera clock jump, not time that passed.
const MAX_STEP: i64 = 10 * VIDEO_HZ;

impl Mux {
    fn new(p: &StreamParams) -> Result<Mux, fmp4::Error> {
        let codec = match p.codec {
            shm_bus::Codec::H264 => fmp4::VideoCodec::H264,
            shm_bus::Codec::H265 => fmp4::VideoCodec::H265,
        };
        let sets: Vec<&[u8]> = p.parameter_sets.iter().map(Vec::as_slice).collect();
        let video = fmp4::VideoTrack::new(codec, &sets)?;
        let audio = match &p.audio {
            Some(a) => Some(fmp4::AudioTrack::new(&a.config)?),
            None => None,
        };
        Ok(Mux {
            fragmenter: fmp4::Fragmenter::new(&video, audio.as_ref()),
            video,
            audio,
            base: None,
            last_decode: None,
            interval: FIRST_INTERVAL,
            audio_pending: Vec::new(),
            last_audio: None,
            need_keyframe: true,
        })
    }

    fn init_segment(&self) -> Vec<u8> {
        fmp4::init_segment(&self.video, self.audio.as_ref())
    }

    /// The `init` text message: what the page needs to ask `MediaSource.isTypeSupported`.
    fn info(&self, stream: Stream) -> String {
        serde_json::json!({
            "type": "init",
            "stream": match stream { Stream::Sub => "sub", Stream::Main => "main" },
            "codec": match self.video.codec() {
                fmp4::VideoCodec::H264 => "h264",
                fmp4::VideoCodec::H265 => "h265",
            },
            "mime": fmp4::mime_type(&self.video, self.audio.as_ref()),
            "width": self.video.width(),
            "height": self.video.height(),
            "audio": self.audio.is_some(),
        })
        .to_string()
    }

    /// After a skip: nothing until the next keyframe.
    fn skipped(&mut self) {
        self.need_keyframe = true;
        self.audio_pending.clear();
    }

    /// The fragment of one video packet (with the audio since the last one), or `None`.
    fn push(&mut self, meta: &PacketMeta, data: &[u8]) -> Result<Option<Vec<u8>>, fmp4::Error> {
        if meta.track == shm_bus::Track::Audio {
            self.push_audio(meta, data);
            return Ok(None);
        }
        if self.need_keyframe && !meta.keyframe {
            return Ok(None);
        }
        let resumed = std::mem::take(&mut self.need_keyframe);
        let base = *self.base.get_or_insert(meta.dts);
        let raw = meta.dts.saturating_sub(base);
        let decode = match self.last_decode {
            None => raw.max(0),
            Some(last) => {
                let expected = last + i64::from(self.interval);
                if resumed || raw <= last || raw > last + MAX_STEP {
                    // After a skip the timeline goes on without a hole (a hole in `buffered`
                    // stalls the player); a camera clock that steps back or far ahead is rebased
                    // the same way: decode times only increase.
                    self.base = Some(meta.dts - expected);
                    expected
                } else {
                    self.interval = u32::try_from(raw - last).unwrap_or(FIRST_INTERVAL);
                    raw
                }
            }
        };
        let video = [fmp4::Sample {
            decode_time: decode as u64,
            composition_offset: i32::try_from(meta.pts.saturating_sub(meta.dts)).unwrap_or(0),
            // Twice the last interval: the next fragment's decode time is what counts, and
            // Chromium drops frames after a step of more than twice the last duration.
            duration: self.interval.saturating_mul(2),
            keyframe: meta.keyframe,
            data,
        }];
        let pending = std::mem::take(&mut self.audio_pending);
        // Durations that make the frames contiguous (a lost AAC frame leaves a longer one).
        let audio: Vec<fmp4::Sample> = pending
            .iter()
            .enumerate()
            .map(|(i, (t, d))| fmp4::Sample {
                decode_time: *t,
                composition_offset: 0,
                duration: pending
                    .get(i + 1)
                    .and_then(|(next, _)| u32::try_from(next - t).ok())
                    .unwrap_or(AAC_FRAME),
                keyframe: true,
                data: d,
            })
            .collect();
        let fragment = self.fragmenter.fragment(&video, &audio)?;
        self.last_decode = Some(decode);
        Ok(Some(fragment))
    }

    fn push_audio(&mut self, meta: &PacketMeta, data: &[u8]) {
        let (Some(base), Some(audio), false) = (self.base, &self.audio, self.need_keyframe) else {
            return;
        };
        let rate = i64::from(audio.sample_rate());
        let Ok(t) = u64::try_from(
            meta.dts
                .saturating_sub(base.saturating_mul(rate) / VIDEO_HZ),
        ) else {
            return;
        };
        let after = self
            .audio_pending
            .last()
            .map(|(t, _)| *t)
            .or(self.last_audio);
        // Bounded: a camera sending audio but no video for long is no live view.
        if after.is_none_or(|a| t > a) && self.audio_pending.len() < 256 {
            self.audio_pending.push((t, data.to_vec()));
            self.last_audio = Some(t);
        }
    }
}

/// An AAC-LC frame: 1024 samples.
const AAC_FRAME: u32 = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's SPS and PPS for 1280x720 (from the fmp4 crate's tests).
    const SPS: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x62, 0xd9, 0x60,
    ];
    const PPS: [u8; 6] = [0x68, 0xea, 0xe3, 0xcb, 0x22, 0xc0];

    fn mux() -> Mux {
        Mux::new(&StreamParams {
            codec: shm_bus::Codec::H264,
            width: 1280,
            height: 720,
            parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
            audio: None,
        })
        .unwrap()
    }

    fn packet(seq: u64, dts: i64, keyframe: bool) -> PacketMeta {
        PacketMeta {
            seq,
            track: shm_bus::Track::Video,
            pts: dts,
            dts,
            keyframe,
            arrival_ns: 0,
            len: 8,
        }
    }

    /// One video packet: its DTS, whether it is a keyframe, whether the viewer skipped just before.
    type Step = (i64, bool, bool);
    /// What a case is about, its steps, and the decode times they must give.
    type Case<'a> = (&'a str, &'a [Step], &'a [Option<u64>]);

    /// The decode time each step's fragment was sent with, or None (not sent).
    fn run(steps: &[Step]) -> Vec<Option<u64>> {
        let mut m = mux();
        // An IDR slice (NAL type 5) or a non-IDR one (type 1), Annex B.
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00];
        let p = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x00];
        steps
            .iter()
            .enumerate()
            .map(|(i, &(dts, key, skip))| {
                if skip {
                    m.skipped();
                }
                let data: &[u8] = if key { &idr } else { &p };
                m.push(&packet(i as u64, dts, key), data)
                    .unwrap()
                    .map(|f| tfdt(&f))
            })
            .collect()
    }

    /// The `tfdt` of a fragment (version 1: 64 bits).
    fn tfdt(f: &[u8]) -> u64 {
        let at = f.windows(4).position(|w| w == b"tfdt").unwrap();
        match f[at + 4] {
            1 => u64::from_be_bytes(f[at + 8..at + 16].try_into().unwrap()),
            _ => u64::from(u32::from_be_bytes(f[at + 8..at + 12].try_into().unwrap())),
        }
    }

    #[test]
    fn decode_times_start_at_the_first_keyframe_and_never_leave_a_hole() {
        let cases: [Case; 4] = [
            (
                "starts at the first keyframe, at 0",
                &[
                    (100, false, false),
                    (3100, true, false),
                    (6100, false, false),
                ],
                &[None, Some(0), Some(3000)],
            ),
            (
                "a skip: the frames up to the next keyframe are dropped, the timeline goes on",
                &[
                    (0, true, false),
                    (3000, false, false),
                    (6000, false, true),
                    (9000, false, false),
                    (90_000, true, false),
                    (93_000, false, false),
                ],
                &[Some(0), Some(3000), None, None, Some(6000), Some(9000)],
            ),
            (
                "a clock that steps back is rebased",
                &[
                    (900_000, true, false),
                    (903_000, false, false),
                    (3000, true, false),
                ],
                &[Some(0), Some(3000), Some(6000)],
            ),
            (
                "a jump of over 10 s is a clock jump, not time",
                &[
                    (0, true, false),
                    (3000, false, false),
                    (3000 + 20 * 90_000, false, false),
                ],
                &[Some(0), Some(3000), Some(6000)],
            ),
        ];
        for (what, steps, want) in cases {
            assert_eq!(run(steps), want, "{what}");
        }
    }
}
