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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use h264_reader::rbsp::{BitWrite, BitWriter, ByteWriter};

    use super::*;

    /// What a synthetic SPS says.
    struct Fields {
        max_sub_layers_minus1: u8,
        /// (profile present, level present) per sub-layer.
        sub_layers: Vec<(bool, bool)>,
        chroma_format_idc: u32,
        coded: (u32, u32),
        /// left, right, top, bottom, in chroma units.
        window: Option<[u32; 4]>,
        bit_depth_minus8: u32,
    }

    /// Writes an SPS NAL unit (header, emulation prevention) up to the bit depths, then enough
    /// of the rest for a plausible tail; the parser stops at the bit depths.
    fn sps(f: &Fields) -> Vec<u8> {
        let mut w = BitWriter::new(Vec::new());
        w.write::<4, u8>(0).unwrap(); // sps_video_parameter_set_id
        w.write::<3, u8>(f.max_sub_layers_minus1).unwrap();
        w.write_bit(true).unwrap(); // temporal_id_nesting
        w.write::<8, u8>(0x01).unwrap(); // profile space 0, tier Main, profile 1
        w.write::<32, u32>(0x6000_0000).unwrap();
        w.write::<8, u8>(0x90).unwrap(); // progressive, frame only
        for _ in 0..5 {
            w.write::<8, u8>(0).unwrap(); // zeros: emulation prevention follows
        }
        w.write::<8, u8>(93).unwrap(); // level 3.1
        for &(p, l) in &f.sub_layers {
            w.write_bit(p).unwrap();
            w.write_bit(l).unwrap();
        }
        if f.max_sub_layers_minus1 > 0 {
            for _ in f.max_sub_layers_minus1..8 {
                w.write::<2, u8>(0).unwrap();
            }
        }
        for &(p, l) in &f.sub_layers {
            if p {
                // A sub-layer profile unlike the general one, so misreading shows.
                w.write::<8, u8>(0xff).unwrap();
                w.write::<32, u32>(0xffff_ffff).unwrap();
                w.write::<48, u64>(0xffff_ffff_ffff).unwrap();
            }
            if l {
                w.write::<8, u8>(0xff).unwrap();
            }
        }
        w.write_ue(0).unwrap(); // sps_seq_parameter_set_id
        w.write_ue(f.chroma_format_idc).unwrap();
        if f.chroma_format_idc == 3 {
            w.write_bit(false).unwrap();
        }
        w.write_ue(f.coded.0).unwrap();
        w.write_ue(f.coded.1).unwrap();
        w.write_bit(f.window.is_some()).unwrap();
        for v in f
            .window
            .unwrap_or_default()
            .into_iter()
            .take(if f.window.is_some() { 4 } else { 0 })
        {
            w.write_ue(v).unwrap();
        }
        w.write_ue(f.bit_depth_minus8).unwrap();
        w.write_ue(f.bit_depth_minus8).unwrap();
        w.write_ue(4).unwrap(); // log2_max_pic_order_cnt_lsb_minus4
        w.write_rbsp_trailing_bits().unwrap();
        let rbsp = w.into_writer();
        let mut nal = ByteWriter::new(vec![0x42, 0x01]);
        nal.write_all(&rbsp).unwrap();
        nal.into_writer()
    }

    fn fields() -> Fields {
        Fields {
            max_sub_layers_minus1: 0,
            sub_layers: Vec::new(),
            chroma_format_idc: 1,
            coded: (1920, 1088),
            window: Some([0, 0, 0, 4]),
            bit_depth_minus8: 0,
        }
    }

    #[test]
    fn conformance_window_crops_in_chroma_units() {
        let nal = sps(&fields());
        assert!(
            nal.windows(3).any(|w| w == [0, 0, 3]),
            "the test SPS exercises emulation prevention"
        );
        let s = parse_sps(&nal).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!(s.mime_codec(), "hvc1.1.6.L93.90");
        // 4:2:2 halves only horizontally, 4:4:4 not at all.
        let s = parse_sps(&sps(&Fields {
            chroma_format_idc: 2,
            window: Some([1, 1, 2, 2]),
            ..fields()
        }))
        .unwrap();
        assert_eq!((s.width, s.height), (1916, 1084));
        let s = parse_sps(&sps(&Fields {
            chroma_format_idc: 3,
            window: Some([1, 1, 2, 2]),
            ..fields()
        }))
        .unwrap();
        assert_eq!((s.width, s.height, s.chroma_format_idc), (1918, 1084, 3));
        let s = parse_sps(&sps(&Fields {
            window: None,
            bit_depth_minus8: 2,
            ..fields()
        }))
        .unwrap();
        assert_eq!(
            (s.width, s.height, s.bit_depth_luma_minus8),
            (1920, 1088, 2)
        );
    }

    #[test]
    fn sub_layer_profiles_and_levels_are_skipped() {
        let cases = [
            (1, vec![(true, true)]),
            (2, vec![(true, false), (false, true)]),
            (3, vec![(false, false), (true, true), (false, true)]),
            (6, vec![(true, true); 6]),
        ];
        for (max, sub_layers) in cases {
            let s = parse_sps(&sps(&Fields {
                max_sub_layers_minus1: max,
                sub_layers: sub_layers.clone(),
                ..fields()
            }))
            .unwrap_or_else(|e| panic!("{max} {sub_layers:?}: {e}"));
            assert_eq!(
                (s.width, s.height, s.max_sub_layers_minus1),
                (1920, 1080, max),
                "{sub_layers:?}"
            );
            assert_eq!(
                (s.profile_idc(), s.level_idc, s.constraint_flags),
                (1, 93, [0x90, 0, 0, 0, 0, 0])
            );
        }
    }

    #[test]
    fn codec_string_follows_14496_15_annex_e() {
        let mut s = parse_sps(&sps(&fields())).unwrap();
        s.profile_byte = 0x80 | 0x20 | 2; // profile space 2, High tier, Main 10
        s.profile_compatibility_flags = 0x2000_0000;
        s.constraint_flags = [0xb0, 0, 0x01, 0, 0, 0];
        s.level_idc = 153;
        assert_eq!(s.mime_codec(), "hvc1.B2.4.H153.B0.0.1");
    }

    #[test]
    fn bad_spss_are_errors() {
        let good = sps(&fields());
        for len in 0..good.len() - 1 {
            assert!(parse_sps(&good[..len]).is_err(), "truncated to {len} bytes");
        }
        let bad = [
            Fields {
                window: Some([961, 0, 0, 0]),
                ..fields()
            },
            Fields {
                window: Some([0, 0, 300, 300]),
                ..fields()
            },
            Fields {
                chroma_format_idc: 4,
                ..fields()
            },
            Fields {
                bit_depth_minus8: 9,
                ..fields()
            },
            Fields {
                max_sub_layers_minus1: 7,
                sub_layers: vec![(false, false); 7],
                ..fields()
            },
        ];
        for f in bad {
            let err = parse_sps(&sps(&f)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadSps {
                        codec: VideoCodec::H265,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }
}
