//! H.264: the SPS parsed with `h264-reader`, and the `avcC` decoder configuration record
//! (ISO/IEC 14496-15 5.3.3.1).

use h264_reader::nal::sps::{SeqParameterSet, SpsError};
use h264_reader::rbsp::{BitReader, BitReaderError, ByteReader};

use crate::boxes::{u16, u8, write_box};
use crate::video::{check_size, ParameterSets};
use crate::{Error, VideoCodec, VideoTrack};

const CODEC: VideoCodec = VideoCodec::H264;

fn bad_sps(detail: impl Into<String>) -> Error {
    Error::BadSps {
        codec: CODEC,
        detail: detail.into(),
    }
}

fn parse_sps(nal: &[u8]) -> Result<SeqParameterSet, SpsError> {
    SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(nal)))
}

/// Parses an SPS NAL unit (with its header byte), tolerating two faults real cameras have:
/// - a level too low for the picture size (some state level 3.1 for 1080p): the stated level is
///   kept for the codec string, as the camera sent it;
/// - bytes after the end of the SPS (`RemainingData`; a Reolink camera sends its in-band SPS with
///   an extra byte): up to four trailing bytes are dropped for parsing. The fields the muxer uses
///   (profile, level, chroma format, size, cropping) come before the VUI, so a parse that
///   succeeds on the shortened SPS reads them as sent. `avcC` keeps the SPS as sent.
fn sps(nal: &[u8]) -> Result<SeqParameterSet, Error> {
    let err = match parse_tolerating_level(nal) {
        Ok(sps) => return Ok(sps),
        Err(e) => e,
    };
    if matches!(
        err,
        SpsError::RbspReaderError(BitReaderError::RemainingData)
    ) {
        for trim in 1..=4 {
            if let Some(shorter) = nal
                .len()
                .checked_sub(trim)
                .filter(|&n| n > 4)
                .map(|n| &nal[..n])
            {
                if let Ok(sps) = parse_tolerating_level(shorter) {
                    return Ok(sps);
                }
            }
        }
    }
    Err(bad_sps(format!("{err:?}")))
}

fn parse_tolerating_level(nal: &[u8]) -> Result<SeqParameterSet, SpsError> {
    match parse_sps(nal) {
        Err(SpsError::FieldValueTooLarge {
            name: "pic_size_in_map_units",
            ..
        }) if nal.len() > 3 => {
            // level_idc is the SPS's fourth byte (no emulation prevention can precede it: a
            // profile_idc of 0 does not exist). 255 is no level: h264-reader then checks the
            // picture size against the largest level's limit only.
            let mut patched = nal.to_vec();
            patched[3] = 255;
            let mut sps = parse_sps(&patched)?;
            sps.level_idc = nal[3];
            Ok(sps)
        }
        other => other,
    }
}

pub(crate) fn track(sets: &ParameterSets<'_>) -> Result<VideoTrack, Error> {
    check_record_counts(sets)?;
    let sps = sps(sets.sps[0])?;
    for other in &sets.sps[1..] {
        sps_checked(other)?;
    }
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| bad_sps(format!("{e:?}")))?;
    let (width, height) = check_size(CODEC, width.into(), height.into())?;
    let profile_idc = u8::from(sps.profile_idc);
    let constraint_flags = u8::from(sps.constraint_flags);
    let chroma_format_idc = sps.chroma_info.chroma_format.to_u32() as u8;

    let mut config_box = Vec::new();
    write_box(&mut config_box, b"avcC", |out| {
        u8(out, 1); // configurationVersion
        u8(out, profile_idc);
        u8(out, constraint_flags);
        u8(out, sps.level_idc);
        u8(out, 0xfc | 3); // reserved, lengthSizeMinusOne: 4-byte lengths
        u8(out, 0xe0 | sets.sps.len() as u8); // reserved, numOfSequenceParameterSets
        for nal in &sets.sps {
            u16(out, nal.len() as u16);
            out.extend_from_slice(nal);
        }
        u8(out, sets.pps.len() as u8);
        for nal in &sets.pps {
            u16(out, nal.len() as u16);
            out.extend_from_slice(nal);
        }
        if matches!(profile_idc, 100 | 110 | 122 | 144) {
            u8(out, 0xfc | chroma_format_idc);
            u8(out, 0xf8 | sps.chroma_info.bit_depth_luma_minus8);
            u8(out, 0xf8 | sps.chroma_info.bit_depth_chroma_minus8);
            u8(out, 0); // numOfSequenceParameterSetExt
        }
    });
    Ok(VideoTrack {
        codec: CODEC,
        width,
        height,
        profile_idc,
        level_idc: sps.level_idc,
        chroma_format_idc,
        mime_codec: format!(
            "avc1.{profile_idc:02x}{constraint_flags:02x}{:02x}",
            sps.level_idc
        ),
        config_box,
    })
}

/// Every SPS must parse, not only the first one.
fn sps_checked(nal: &[u8]) -> Result<(), Error> {
    sps(nal).map(|_| ())
}

/// `avcC` holds at most 31 SPSs and 255 PPSs of at most 65535 bytes each.
fn check_record_counts(sets: &ParameterSets<'_>) -> Result<(), Error> {
    if sets.sps.len() > 31 || sets.pps.len() > 255 {
        return Err(bad_sps(
            "more parameter sets than avcC can hold (31 SPS, 255 PPS)",
        ));
    }
    if sets
        .sps
        .iter()
        .chain(&sets.pps)
        .any(|nal| nal.len() > usize::from(u16::MAX))
    {
        return Err(bad_sps("a parameter set is longer than 65535 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's SPS and PPS for 1280x720 at `-level 3.0`, a level whose frame size limit (1620
    /// macroblocks) is under 720p's 3600: some cameras state levels like that.
    const SPS_720P_LEVEL_30: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x62, 0xd9, 0x60,
    ];
    const PPS: [u8; 6] = [0x68, 0xea, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn an_understated_level_is_kept_not_refused() {
        assert!(
            parse_sps(&SPS_720P_LEVEL_30).is_err(),
            "h264-reader alone refuses it"
        );
        let track = VideoTrack::new(CODEC, &[&SPS_720P_LEVEL_30, &PPS]).unwrap();
        assert_eq!(
            (track.width(), track.height(), track.level_idc()),
            (1280, 720, 30)
        );
        assert_eq!(track.mime_codec(), "avc1.64001e");
    }

    /// A Reolink camera's SPSs (retina issue 102): the one in its SDP, and the one it sends in
    /// band, which carries a byte after its end.
    #[test]
    fn an_sps_with_trailing_bytes_still_parses() {
        let sdp = [
            0x67, 0x64, 0x00, 0x33, 0xac, 0x15, 0x14, 0xa0, 0xa0, 0x3d, 0x90,
        ];
        let in_band = [
            0x67, 0x64, 0x00, 0x33, 0xac, 0x15, 0x14, 0xa0, 0xa0, 0x3d, 0xa1, 0x00, 0x00, 0x04,
            0xf6, 0x00, 0x00, 0x63, 0x38, 0x04, 0x04,
        ];
        assert!(parse_sps(&in_band).is_err(), "h264-reader alone refuses it");
        let a = VideoTrack::new(CODEC, &[&sdp, &PPS]).unwrap();
        let b = VideoTrack::new(CODEC, &[&in_band, &PPS]).unwrap();
        assert_eq!(
            (a.width(), a.height(), a.mime_codec()),
            (b.width(), b.height(), b.mime_codec())
        );
        assert_eq!(
            (b.width(), b.height(), b.mime_codec().as_str()),
            (640, 480, "avc1.640033")
        );
    }

    #[test]
    fn truncated_spss_are_errors() {
        for len in 0..SPS_720P_LEVEL_30.len() - 1 {
            let err = VideoTrack::new(CODEC, &[&SPS_720P_LEVEL_30[..len], &PPS]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadSps { .. }
                        | Error::BadNalHeader { .. }
                        | Error::NotAParameterSet { .. }
                ),
                "{len}: {err}"
            );
        }
    }
}
