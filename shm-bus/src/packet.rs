//! The plain value types of the packet ring (encoded access units as the camera sent them) and the
//! byte encoding of the codec parameters its header carries. Pure: no OS, no shared memory.

/// Which of a camera's two streams a packet ring carries. One segment per camera and kind,
/// `nvr-<camera_id>.sub` and `nvr-<camera_id>.main`, beside the frame ring `nvr-<camera_id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The low-resolution stream (decoded for motion and the frame ring too).
    Sub,
    /// The high-resolution stream (recorded; connected only when the camera records).
    Main,
}

impl StreamKind {
    /// `sub` or `main`: the segment name's suffix, and what `?stream=` says.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Sub => "sub",
            StreamKind::Main => "main",
        }
    }

    /// What errors call a ring of this kind.
    pub(crate) fn ring_name(self) -> &'static str {
        match self {
            StreamKind::Sub => "sub packet ring",
            StreamKind::Main => "main packet ring",
        }
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            StreamKind::Sub => 1,
            StreamKind::Main => 2,
        }
    }
}

impl std::str::FromStr for StreamKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sub" => Ok(StreamKind::Sub),
            "main" => Ok(StreamKind::Main),
            _ => Err(format!("unknown stream {s:?}; write sub or main")),
        }
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The video codec of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// `h264` or `h265`.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    fn code(self) -> u8 {
        match self {
            Codec::H264 => 1,
            Codec::H265 => 2,
        }
    }

    fn from_code(c: u8) -> Option<Codec> {
        match c {
            1 => Some(Codec::H264),
            2 => Some(Codec::H265),
            _ => None,
        }
    }
}

/// Which track of the stream a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// An Annex B access unit (start codes), timestamps in 90 kHz units.
    Video,
    /// An AAC frame (raw, no ADTS header), timestamps in units of the sample rate.
    Audio,
}

impl Track {
    pub(crate) fn code(self) -> u32 {
        match self {
            Track::Video => 0,
            Track::Audio => 1,
        }
    }

    pub(crate) fn from_code(c: u32) -> Option<Track> {
        match c {
            0 => Some(Track::Video),
            1 => Some(Track::Audio),
            _ => None,
        }
    }
}

/// The AAC track of a MAIN stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AudioParams {
    /// Samples per second; also the audio packets' timestamp unit.
    pub sample_rate: u32,
    pub channels: u8,
    /// The AAC AudioSpecificConfig (FFmpeg's codec parameters' extradata).
    pub config: Vec<u8>,
}

/// A stream's codec parameters, stored in the packet ring's header when the writer first sees them
/// (in band, at a keyframe, or from the SDP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamParams {
    pub codec: Codec,
    /// Pixels; 0 if the writer did not know (a reader can parse the SPS).
    pub width: u32,
    pub height: u32,
    /// NAL units without start codes: H.264 SPS, PPS; H.265 VPS, SPS, PPS (at least one each).
    pub parameter_sets: Vec<Vec<u8>>,
    /// The AAC track, if the stream has one (MAIN only).
    pub audio: Option<AudioParams>,
}

/// Most parameter sets one [`StreamParams`] may hold.
pub const MAX_PARAMETER_SETS: usize = 16;

impl StreamParams {
    /// The bytes stored in the header: `codec u8, width u32, height u32, n u8, n × (len u16,
    /// bytes), has_audio u8 [, sample_rate u32, channels u8, len u16, config]`, little-endian.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        if self.parameter_sets.is_empty() || self.parameter_sets.len() > MAX_PARAMETER_SETS {
            return Err(format!(
                "{} parameter sets; need 1 to {MAX_PARAMETER_SETS}",
                self.parameter_sets.len()
            ));
        }
        let mut out = vec![self.codec.code()];
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.push(self.parameter_sets.len() as u8);
        let put = |out: &mut Vec<u8>, b: &[u8], what: &str| {
            let len = u16::try_from(b.len())
                .map_err(|_| format!("a {}-byte {what} is too long", b.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(b);
            Ok::<(), String>(())
        };
        for set in &self.parameter_sets {
            if set.is_empty() {
                return Err("an empty parameter set".into());
            }
            put(&mut out, set, "parameter set")?;
        }
        match &self.audio {
            None => out.push(0),
            Some(a) => {
                out.push(1);
                out.extend_from_slice(&a.sample_rate.to_le_bytes());
                out.push(a.channels);
                put(&mut out, &a.config, "AudioSpecificConfig")?;
            }
        }
        Ok(out)
    }

    /// Decodes [`encode`](Self::encode)'s bytes; `None` for anything malformed (the bytes come
    /// from a segment another process wrote, so they are hostile until proven otherwise).
    pub(crate) fn decode(bytes: &[u8]) -> Option<StreamParams> {
        let mut r = Bytes(bytes);
        let codec = Codec::from_code(r.u8()?)?;
        let width = r.u32()?;
        let height = r.u32()?;
        let n = r.u8()? as usize;
        if n == 0 || n > MAX_PARAMETER_SETS {
            return None;
        }
        let mut parameter_sets = Vec::with_capacity(n);
        for _ in 0..n {
            let set = r.chunk()?;
            if set.is_empty() {
                return None;
            }
            parameter_sets.push(set.to_vec());
        }
        let audio = match r.u8()? {
            0 => None,
            1 => Some(AudioParams {
                sample_rate: r.u32()?,
                channels: r.u8()?,
                config: r.chunk()?.to_vec(),
            }),
            _ => return None,
        };
        r.0.is_empty().then_some(StreamParams {
            codec,
            width,
            height,
            parameter_sets,
            audio,
        })
    }
}

/// A cursor over untrusted bytes.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// What the writer recorded about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    /// Publication number within this writer's lifetime, starting at 1, continuing across
    /// generations; every packet gets the next one, so readers see gaps only when they fall behind.
    pub seq: u64,
    pub track: Track,
    /// Presentation time: 90 kHz for video, the sample rate for audio.
    pub pts: i64,
    /// Decoding time, same unit as `pts`.
    pub dts: i64,
    /// A video keyframe (IDR/IRAP access unit); a reader can start decoding here. Audio packets
    /// are all marked as the writer was told (AAC frames are independent).
    pub keyframe: bool,
    /// When the packet arrived, CLOCK_MONOTONIC ns ([`monotonic_ns`](crate::monotonic_ns)).
    pub arrival_ns: u64,
    /// Bytes of payload.
    pub len: u32,
}

/// What [`PacketReader::read`](crate::PacketReader::read) found at a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The packet, intact; its payload is in the caller's buffer.
    Packet(PacketMeta),
    /// Not published yet: wait ([`PacketReader::wait`](crate::PacketReader::wait)) and ask again.
    NotYet,
    /// The writer has overwritten it (the reader fell behind, or it was torn while being read):
    /// jump to [`PacketReader::newest_keyframe_seq`](crate::PacketReader::newest_keyframe_seq).
    Overwritten,
    /// The generation changed (writer restarted, stream reconnected, codec or size changed, or the
    /// ring was closed): [`PacketReader::reattach`](crate::PacketReader::reattach).
    Restarted,
}

/// What [`PacketReader::wait`](crate::PacketReader::wait) saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketWait {
    /// The newest published seq is past what this reader last saw; its value.
    Published(u64),
    /// Nothing new within the timeout.
    Timeout,
    /// The generation changed: reattach.
    Restarted,
}

/// The writer's figures about its ring, for `/status` and `nvr-preview --packets`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PacketRingStats {
    /// Bytes of payload the ring can hold.
    pub capacity_bytes: u64,
    /// Packets published since the writer was created.
    pub packets: u64,
    /// Packets dropped for being over a quarter of the ring.
    pub oversize_drops: u64,
    /// Payload bytes per second over the last few seconds (all tracks); 0 until measured.
    pub bytes_per_s: f64,
    /// Video keyframe interval, seconds (the last one seen); 0 until two keyframes arrived.
    pub gop_s: f64,
    /// Seconds of the stream the ring holds at this rate (bytes or index entries, whichever
    /// runs out first); 0 until measured.
    pub holds_s: f64,
}

impl PacketRingStats {
    /// Whether the ring holds at least two GOPs (a viewer that joins finds a whole GOP before the
    /// newest keyframe, and a slow one has a GOP of slack). `true` until measured.
    pub fn holds_two_gops(&self) -> bool {
        self.gop_s <= 0.0 || self.holds_s <= 0.0 || self.holds_s >= 2.0 * self.gop_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(audio: bool) -> StreamParams {
        StreamParams {
            codec: Codec::H265,
            width: 1920,
            height: 1080,
            parameter_sets: vec![vec![0x40, 1, 2], vec![0x42, 3, 4, 5], vec![0x44, 6]],
            audio: audio.then(|| AudioParams {
                sample_rate: 48_000,
                channels: 2,
                config: vec![0x11, 0x90],
            }),
        }
    }

    #[test]
    fn params_round_trip() {
        for audio in [false, true] {
            let p = params(audio);
            let bytes = p.encode().unwrap();
            assert_eq!(StreamParams::decode(&bytes), Some(p));
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let bytes = params(true).encode().unwrap();
        for n in 0..bytes.len() {
            assert_eq!(StreamParams::decode(&bytes[..n]), None, "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(StreamParams::decode(&longer), None);
        let mut bad_codec = bytes.clone();
        bad_codec[0] = 9;
        assert_eq!(StreamParams::decode(&bad_codec), None);
    }

    #[test]
    fn unencodable_params_are_errors() {
        let mut p = params(false);
        p.parameter_sets.clear();
        assert!(p.encode().is_err());
        p.parameter_sets = vec![vec![]];
        assert!(p.encode().is_err());
        p.parameter_sets = vec![vec![0; 70_000]];
        assert!(p.encode().is_err());
        p.parameter_sets = vec![vec![1]; MAX_PARAMETER_SETS + 1];
        assert!(p.encode().is_err());
    }

    #[test]
    fn two_gops_rule() {
        let s = |holds_s, gop_s| PacketRingStats {
            holds_s,
            gop_s,
            ..Default::default()
        };
        assert!(s(0.0, 0.0).holds_two_gops(), "not measured yet");
        assert!(s(10.0, 2.0).holds_two_gops());
        assert!(s(4.0, 2.0).holds_two_gops());
        assert!(!s(3.9, 2.0).holds_two_gops());
    }
}
