//! Publishing a stream's encoded packets into its shared-memory packet ring (`shm_bus::PacketWriter`)
//! as they are read, for live view: SUB from the SUB thread, MAIN (with its AAC track) from the MAIN
//! thread. No decode, no copy besides the one into the ring.
//!
//! The ring is created at the stream's first connection and starts a new generation at every
//! reconnection (another timeline). Codec parameters go into its header from the SDP's extradata when
//! it holds all of them, else when they are first seen in band at a keyframe (decision 12), and again
//! whenever they change. Timestamps are rescaled to 90 kHz (video) and the sample rate (audio).
//! A ring that cannot be created (full /dev/shm) is retried every [`RETRY`]; it never stops the
//! stream's other work.

use crate::ffi;
use crate::stream::SharedStatus;
use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, format, media};
use nvr_proto::PacketRingStatus;
use shm_bus::{AudioParams, Codec, PacketWriter, StreamKind, StreamParams, Track};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use worker::annexb::{self, VideoCodec};

/// How long to wait before trying again to create a ring that could not be created.
const RETRY: Duration = Duration::from_secs(10);
/// Longest gap between two status updates of the ring's figures.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The video track of the current connection.
struct VideoIn {
    index: usize,
    codec: Codec,
    time_base: (i32, i32),
    width: u32,
    height: u32,
    /// Parameter sets from the SDP (extradata), possibly incomplete or empty.
    sdp_sets: Vec<Vec<u8>>,
}

/// The AAC track of the current connection.
struct AudioIn {
    index: usize,
    time_base: (i32, i32),
    params: AudioParams,
}

/// One stream's packet ring and what the current connection looks like.
pub struct LiveRing {
    camera_id: String,
    kind: StreamKind,
    /// Payload bytes; 0 = no ring.
    capacity: u64,
    writer: Option<PacketWriter>,
    retry_at: Option<Instant>,
    video: Option<VideoIn>,
    audio: Option<AudioIn>,
    status: SharedStatus,
    status_at: Option<Instant>,
    oversize_logged: u64,
}

impl LiveRing {
    /// The ring of `camera_id`'s `kind` stream, `mb` MiB (0: none); figures go to `status`.
    pub fn new(camera_id: &str, kind: StreamKind, mb: u32, status: SharedStatus) -> LiveRing {
        LiveRing {
            camera_id: camera_id.to_string(),
            kind,
            capacity: u64::from(mb) * 1024 * 1024,
            writer: None,
            retry_at: None,
            video: None,
            audio: None,
            status,
            status_at: None,
            oversize_logged: 0,
        }
    }

    /// A new connection: `video` (and `audio`, MAIN's AAC track) are the input streams to publish.
    /// Starts a new generation (or creates the ring) and stores the SDP's parameters if complete.
    pub fn connected(
        &mut self,
        input: &format::context::Input,
        video: usize,
        audio: Option<usize>,
    ) {
        if self.capacity == 0 {
            return;
        }
        self.video = input.stream(video).and_then(|s| {
            let params = s.parameters();
            let (codec, annexb) = match params.id() {
                codec::Id::H264 => (Codec::H264, VideoCodec::H264),
                codec::Id::HEVC => (Codec::H265, VideoCodec::H265),
                other => {
                    warn!(stream = self.kind.as_str(), codec = ?other, "no live packets for this codec (H.264 and H.265 only)");
                    return None;
                }
            };
            let (width, height) = ffi::video_size(&params);
            let tb = s.time_base();
            Some(VideoIn {
                index: video,
                codec,
                time_base: (tb.numerator(), tb.denominator()),
                width,
                height,
                sdp_sets: annexb::parameter_sets(annexb, &ffi::extradata(&params)),
            })
        });
        self.audio = audio.and_then(|i| {
            let s = input.stream(i)?;
            let params = s.parameters();
            if params.id() != codec::Id::AAC || params.medium() != media::Type::Audio {
                return None;
            }
            let (sample_rate, channels) = ffi::audio_format(&params);
            let config = ffi::extradata(&params);
            if sample_rate == 0 || config.is_empty() {
                warn!(
                    stream = self.kind.as_str(),
                    "AAC track without sample rate or AudioSpecificConfig; live view without audio"
                );
                return None;
            }
            let tb = s.time_base();
            Some(AudioIn {
                index: i,
                time_base: (tb.numerator(), tb.denominator()),
                params: AudioParams {
                    sample_rate,
                    channels: channels.min(255) as u8,
                    config,
                },
            })
        });
        if self.video.is_none() {
            // Nothing to publish on this connection; readers must not keep the last one's packets.
            if let Some(w) = &mut self.writer {
                w.restart();
            }
            return;
        }
        match &mut self.writer {
            Some(w) => w.restart(),
            None if self.retry_at.is_some_and(|t| Instant::now() < t) => {}
            None => match PacketWriter::create(&self.camera_id, self.kind, self.capacity) {
                Ok(w) => {
                    info!(stream = self.kind.as_str(), capacity_mib = self.capacity >> 20, path = %w.path().display(), "packet ring created");
                    self.writer = Some(w);
                }
                Err(e) => {
                    error!(stream = self.kind.as_str(), error = %e, "cannot create the packet ring; no live view of this stream");
                    self.retry_at = Some(Instant::now() + RETRY);
                }
            },
        }
        if let Some(v) = &self.video {
            let sets = v.sdp_sets.clone();
            self.store_params(sets);
        }
        self.report();
    }

    /// Stores `sets` (with the track's codec, size and audio) if they are complete.
    fn store_params(&mut self, sets: Vec<Vec<u8>>) {
        let (Some(v), Some(w)) = (&self.video, &mut self.writer) else {
            return;
        };
        let annexb = match v.codec {
            Codec::H264 => VideoCodec::H264,
            Codec::H265 => VideoCodec::H265,
        };
        if !annexb::complete(annexb, &sets) {
            return;
        }
        let params = StreamParams {
            codec: v.codec,
            width: v.width,
            height: v.height,
            parameter_sets: sets,
            audio: self.audio.as_ref().map(|a| a.params.clone()),
        };
        match w.set_params(&params) {
            Ok(true) => info!(
                stream = self.kind.as_str(),
                sets = params.parameter_sets.len(),
                generation = w.generation(),
                "packet ring codec parameters set"
            ),
            Ok(false) => {}
            Err(e) => {
                warn!(stream = self.kind.as_str(), error = %e, "cannot store codec parameters")
            }
        }
    }

    /// Publishes `packet` (read at `arrival_ns`) if it belongs to the video or audio track.
    pub fn packet(&mut self, packet: &ffmpeg::Packet, arrival_ns: u64) {
        if self.writer.is_none() {
            return;
        }
        let index = packet.stream();
        let (track, (num, den), rate) = match (&self.video, &self.audio) {
            (Some(v), _) if v.index == index => (Track::Video, v.time_base, 90_000),
            (_, Some(a)) if a.index == index => (Track::Audio, a.time_base, a.params.sample_rate),
            _ => return,
        };
        let Some(data) = packet.data() else { return };
        let key = packet.is_key();
        if track == Track::Video && key {
            let codec = match self.video.as_ref().map(|v| v.codec) {
                Some(Codec::H265) => VideoCodec::H265,
                _ => VideoCodec::H264,
            };
            let sets = annexb::parameter_sets(codec, data);
            if !sets.is_empty() {
                self.store_params(sets);
            }
        }
        let dts = packet.dts().or(packet.pts()).unwrap_or(0);
        let pts = packet.pts().unwrap_or(dts);
        let Some(w) = &mut self.writer else { return };
        let published = w.publish(
            track,
            annexb::rescale(pts, num, den, rate),
            annexb::rescale(dts, num, den, rate),
            key,
            arrival_ns,
            data,
        );
        if let Err(e) = published {
            let drops = w.stats().oversize_drops;
            // The first drop, then every 100th: a camera whose keyframes are all too big would
            // otherwise log one line per GOP.
            if drops == 1 || drops >= self.oversize_logged + 100 {
                self.oversize_logged = drops;
                warn!(stream = self.kind.as_str(), drops, error = %e, "packet dropped from the packet ring");
            }
            self.report();
        } else if self.status_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
            self.report();
        }
    }

    /// Puts the ring's figures into the stream's status.
    fn report(&mut self) {
        self.status_at = Some(Instant::now());
        let ring = self.writer.as_ref().map(|w| {
            let s = w.stats();
            Box::new(PacketRingStatus {
                capacity_bytes: s.capacity_bytes,
                generation: w.generation(),
                packets: s.packets,
                oversize_drops: s.oversize_drops,
                bytes_per_s: s.bytes_per_s,
                gop_s: s.gop_s,
                holds_s: s.holds_s,
                has_params: w.params().is_some(),
            })
        });
        if let Ok(mut s) = self.status.lock() {
            s.packet_ring = ring;
        }
    }
}
