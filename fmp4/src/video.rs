//! The video track: codec parameters parsed from the in-band parameter sets.

use std::fmt;

use crate::annexb::{nal_kind, nal_type, NalKind};
use crate::{h264, h265, Error};

/// The video track's timescale: decode times, durations and composition offsets of video
/// samples are in 90 kHz units, as RTP and FFmpeg's RTSP demuxer give them.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// A video codec the muxer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    H265,
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
        })
    }
}

/// A video track: what the init segment says about the stream. Two tracks are equal when their
/// parameter sets are, so a caller can compare to decide whether a new init segment is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    pub(crate) codec: VideoCodec,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) profile_idc: u8,
    pub(crate) level_idc: u8,
    pub(crate) chroma_format_idc: u8,
    pub(crate) mime_codec: String,
    /// The decoder configuration record (`avcC` or `hvcC` box), written once here.
    pub(crate) config_box: Vec<u8>,
}

/// The parameter sets sorted by kind, in the order given.
pub(crate) struct ParameterSets<'a> {
    pub(crate) vps: Vec<&'a [u8]>,
    pub(crate) sps: Vec<&'a [u8]>,
    pub(crate) pps: Vec<&'a [u8]>,
}

impl<'a> ParameterSets<'a> {
    fn sort(codec: VideoCodec, parameter_sets: &[&'a [u8]]) -> Result<Self, Error> {
        let mut sets = ParameterSets {
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        };
        for (index, &nal) in parameter_sets.iter().enumerate() {
            let nal_type = nal_type(codec, nal)?;
            match nal_kind(codec, nal_type) {
                NalKind::Vps => sets.vps.push(nal),
                NalKind::Sps => sets.sps.push(nal),
                NalKind::Pps => sets.pps.push(nal),
                NalKind::Aud | NalKind::Other => {
                    return Err(Error::NotAParameterSet {
                        codec,
                        index,
                        nal_type,
                    })
                }
            }
        }
        let missing = |missing| Err(Error::MissingParameterSet { codec, missing });
        if codec == VideoCodec::H265 && sets.vps.is_empty() {
            return missing("VPS");
        }
        if sets.sps.is_empty() {
            return missing("SPS");
        }
        if sets.pps.is_empty() {
            return missing("PPS");
        }
        Ok(sets)
    }
}

/// Sizes of the sample entry are 16-bit: larger pictures are refused as a bad SPS.
pub(crate) fn check_size(codec: VideoCodec, width: u64, height: u64) -> Result<(u32, u32), Error> {
    if width == 0 || height == 0 || width > u64::from(u16::MAX) || height > u64::from(u16::MAX) {
        return Err(Error::BadSps {
            codec,
            detail: format!("picture size {width}x{height} is out of range"),
        });
    }
    Ok((width as u32, height as u32))
}

impl VideoTrack {
    /// Parses the parameter sets, NAL units without start codes: H.264 SPS and PPS, H.265 VPS,
    /// SPS and PPS, in any order (more than one of a kind is kept; the first SPS describes the
    /// picture). Anything else, a missing kind, or an SPS that does not parse is an error.
    pub fn new(codec: VideoCodec, parameter_sets: &[&[u8]]) -> Result<VideoTrack, Error> {
        let sets = ParameterSets::sort(codec, parameter_sets)?;
        match codec {
            VideoCodec::H264 => h264::track(&sets),
            VideoCodec::H265 => h265::track(&sets),
        }
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Picture width in pixels, after the SPS's cropping.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height in pixels, after the SPS's cropping.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// `profile_idc` (H.264) or `general_profile_idc` (H.265).
    pub fn profile_idc(&self) -> u8 {
        self.profile_idc
    }

    /// `level_idc` (H.264: 31 = level 3.1) or `general_level_idc` (H.265: 93 = level 3.1).
    pub fn level_idc(&self) -> u8 {
        self.level_idc
    }

    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub fn chroma_format_idc(&self) -> u8 {
        self.chroma_format_idc
    }

    /// The RFC 6381 codec string for `MediaSource.isTypeSupported`, e.g. `avc1.64001f` or
    /// `hvc1.1.6.L93.B0`.
    pub fn mime_codec(&self) -> String {
        self.mime_codec.clone()
    }
}
