//! H.265: the start of the SPS (ITU-T H.265 7.3.2.2.1) up to the bit depths, read with
//! `h264-reader`'s RBSP bit reader (Exp-Golomb codes, emulation prevention removed), and the
//! `hvcC` decoder configuration record (ISO/IEC 14496-15 8.3.3.1).
//!
//! Only the fields the init segment needs are read; the rest of the SPS (scaling lists,
//! reference picture sets, VUI) is not, so a camera's unusual extension cannot make the track
//! unplayable here.

use std::num::NonZeroUsize;

use h264_reader::rbsp::{BitRead, BitReader, BitReaderError, ByteReader};

use crate::boxes::{u16, u32, u8, write_box};
use crate::video::{check_size, ParameterSets};
use crate::{Error, VideoCodec, VideoTrack};

const CODEC: VideoCodec = VideoCodec::H265;

fn bad_sps(detail: impl Into<String>) -> Error {
    Error::BadSps {
        codec: CODEC,
        detail: detail.into(),
    }
}

impl From<BitReaderError> for Error {
    fn from(e: BitReaderError) -> Error {
        match e {
            BitReaderError::ReaderError(field, io) => bad_sps(format!("reading {field}: {io}")),
            BitReaderError::ExpGolombTooLarge(field) => bad_sps(format!("{field} is too large")),
            BitReaderError::RemainingData => bad_sps("data after the end"),
        }
    }
}

/// What the SPS says that the init segment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sps {
    pub(crate) max_sub_layers_minus1: u8,
    pub(crate) temporal_id_nesting: bool,
    /// general_profile_space (2 bits), general_tier_flag (1), general_profile_idc (5).
    pub(crate) profile_byte: u8,
    pub(crate) profile_compatibility_flags: u32,
    /// The 48 bits from general_progressive_source_flag on, as sent.
    pub(crate) constraint_flags: [u8; 6],
    pub(crate) level_idc: u8,
    pub(crate) chroma_format_idc: u8,
    /// Width and height after the conformance window.
    pub(crate) width: u64,
    pub(crate) height: u64,
    pub(crate) bit_depth_luma_minus8: u8,
    pub(crate) bit_depth_chroma_minus8: u8,
}

impl Sps {
    pub(crate) fn profile_idc(&self) -> u8 {
        self.profile_byte & 0x1f
    }

    /// The RFC 6381 codec string (ISO/IEC 14496-15 Annex E), e.g. `hvc1.1.6.L93.B0`.
    pub(crate) fn mime_codec(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.profile_byte >> 6)];
        let tier = if self.profile_byte & 0x20 != 0 {
            'H'
        } else {
            'L'
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.profile_idc(),
            self.profile_compatibility_flags.reverse_bits(),
            self.level_idc
        );
        let used = self
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

fn ue_at_most<R: BitRead>(r: &mut R, name: &'static str, max: u32) -> Result<u32, Error> {
    let v = r.read_ue(name)?;
    if v > max {
        return Err(bad_sps(format!("{name} is {v}, more than {max}")));
    }
    Ok(v)
}

/// Parses an SPS NAL unit, with its two-byte header.
pub(crate) fn parse_sps(nal: &[u8]) -> Result<Sps, Error> {
    if nal.len() < 3 {
        return Err(bad_sps("truncated"));
    }
    let two = NonZeroUsize::new(2).expect("2 is not zero");
    let mut r = BitReader::new(ByteReader::skipping_bytes(nal, two));
    r.skip(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1: u8 = r.read::<3, u8>("sps_max_sub_layers_minus1")?;
    if max_sub_layers_minus1 > 6 {
        return Err(bad_sps("sps_max_sub_layers_minus1 is 7"));
    }
    let temporal_id_nesting = r.read_bit("sps_temporal_id_nesting_flag")?;

    // profile_tier_level(1, sps_max_sub_layers_minus1): the general part is 12 bytes.
    let profile_byte = r.read::<8, u8>("general_profile_space/tier/idc")?;
    let profile_compatibility_flags = r.read::<32, u32>("general_profile_compatibility_flags")?;
    let mut constraint_flags = [0; 6];
    for b in &mut constraint_flags {
        *b = r.read::<8, u8>("general constraint flags")?;
    }
    let level_idc = r.read::<8, u8>("general_level_idc")?;
    let mut present = [(false, false); 6];
    for p in &mut present[..usize::from(max_sub_layers_minus1)] {
        *p = (
            r.read_bit("sub_layer_profile_present_flag")?,
            r.read_bit("sub_layer_level_present_flag")?,
        );
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(
            2 * (8 - u32::from(max_sub_layers_minus1)),
            "reserved_zero_2bits",
        )?;
    }
    for &(profile, level) in &present[..usize::from(max_sub_layers_minus1)] {
        if profile {
            r.skip(88, "sub_layer profile")?;
        }
        if level {
            r.skip(8, "sub_layer_level_idc")?;
        }
    }

    ue_at_most(&mut r, "sps_seq_parameter_set_id", 15)?;
    let chroma_format_idc = ue_at_most(&mut r, "chroma_format_idc", 3)? as u8;
    let separate_colour_plane =
        chroma_format_idc == 3 && r.read_bit("separate_colour_plane_flag")?;
    let coded_width = u64::from(r.read_ue("pic_width_in_luma_samples")?);
    let coded_height = u64::from(r.read_ue("pic_height_in_luma_samples")?);
    // Conformance window offsets count chroma samples (Table 6-1: SubWidthC, SubHeightC).
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut width, mut height) = (coded_width, coded_height);
    if r.read_bit("conformance_window_flag")? {
        let left = u64::from(r.read_ue("conf_win_left_offset")?);
        let right = u64::from(r.read_ue("conf_win_right_offset")?);
        let top = u64::from(r.read_ue("conf_win_top_offset")?);
        let bottom = u64::from(r.read_ue("conf_win_bottom_offset")?);
        let crop = |size: u64, sub: u64, a: u64, b: u64| {
            size.checked_sub(sub * (a + b)).filter(|&s| s > 0)
        };
        width = crop(coded_width, sub_width, left, right).ok_or_else(|| {
            bad_sps(format!(
                "conformance window {left}+{right} is wider than {coded_width}"
            ))
        })?;
        height = crop(coded_height, sub_height, top, bottom).ok_or_else(|| {
            bad_sps(format!(
                "conformance window {top}+{bottom} is taller than {coded_height}"
            ))
        })?;
    }
    let bit_depth_luma_minus8 = ue_at_most(&mut r, "bit_depth_luma_minus8", 8)? as u8;
    let bit_depth_chroma_minus8 = ue_at_most(&mut r, "bit_depth_chroma_minus8", 8)? as u8;
    Ok(Sps {
        max_sub_layers_minus1,
        temporal_id_nesting,
        profile_byte,
        profile_compatibility_flags,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        width,
        height,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
    })
}

pub(crate) fn track(sets: &ParameterSets<'_>) -> Result<VideoTrack, Error> {
    let arrays: [(u8, &Vec<&[u8]>); 3] = [(32, &sets.vps), (33, &sets.sps), (34, &sets.pps)];
    for (_, nals) in arrays {
        if nals.len() > usize::from(u16::MAX)
            || nals.iter().any(|nal| nal.len() > usize::from(u16::MAX))
        {
            return Err(bad_sps("parameter sets too many or too long for hvcC"));
        }
    }
    let sps = parse_sps(sets.sps[0])?;
    for other in &sets.sps[1..] {
        parse_sps(other)?;
    }
    let (width, height) = check_size(CODEC, sps.width, sps.height)?;

    let mut config_box = Vec::new();
    write_box(&mut config_box, b"hvcC", |out| {
        u8(out, 1); // configurationVersion
        u8(out, sps.profile_byte);
        u32(out, sps.profile_compatibility_flags);
        out.extend_from_slice(&sps.constraint_flags);
        u8(out, sps.level_idc);
        u16(out, 0xf000); // reserved, min_spatial_segmentation_idc: 0 (not stated)
        u8(out, 0xfc); // reserved, parallelismType: 0 (unknown)
        u8(out, 0xfc | sps.chroma_format_idc);
        u8(out, 0xf8 | sps.bit_depth_luma_minus8);
        u8(out, 0xf8 | sps.bit_depth_chroma_minus8);
        u16(out, 0); // avgFrameRate: not stated
                     // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
        u8(
            out,
            ((sps.max_sub_layers_minus1 + 1) << 3) | (u8::from(sps.temporal_id_nesting) << 2) | 3,
        );
        u8(out, arrays.len() as u8);
        for (nal_type, nals) in arrays {
            u8(out, 0x80 | nal_type); // array_completeness: all of them are here
            u16(out, nals.len() as u16);
            for nal in nals {
                u16(out, nal.len() as u16);
                out.extend_from_slice(nal);
            }
        }
    });
    Ok(VideoTrack {
        codec: CODEC,
        width,
        height,
        profile_idc: sps.profile_idc(),
        level_idc: sps.level_idc,
        chroma_format_idc: sps.chroma_format_idc,
        mime_codec: sps.mime_codec(),
        config_box,
    })
}
