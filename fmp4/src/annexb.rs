//! Annex B byte streams: NAL units separated by start codes (`00 00 01`, or `00 00 00 01`).

use crate::{Error, VideoCodec};

/// Finds the next start code at or after `from`: returns (where its `00 00 01` starts, where the
/// NAL unit after it starts).
fn next_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip ahead by what the byte at i + 2 rules out: a start code ends in 01 and has two
        // zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            0 | 1 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// The NAL units of an Annex B byte stream, without their start codes: empty NAL units are
/// skipped, and so are bytes before the first start code, and the zero bytes that end a NAL unit
/// (`trailing_zero_8bits`, the leading zero of a four-byte start code). Data without any start
/// code yields nothing.
pub fn split_annex_b(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = next_start_code(data, 0).map(|(_, nal)| nal);
    std::iter::from_fn(move || loop {
        let start = next?;
        let (end, following) = match next_start_code(data, start) {
            Some((end, following)) => (end, Some(following)),
            None => (data.len(), None),
        };
        next = following;
        let mut nal = &data[start..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            return Some(nal);
        }
    })
}

/// Whether `data` starts with a start code, after optional leading zero bytes.
pub(crate) fn starts_with_start_code(data: &[u8]) -> bool {
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    zeros >= 2 && data.get(zeros) == Some(&1)
}

/// The NAL unit type of a NAL unit, checking its header.
pub(crate) fn nal_type(codec: VideoCodec, nal: &[u8]) -> Result<u8, Error> {
    let bad = |detail| Error::BadNalHeader { codec, detail };
    let first = *nal.first().ok_or(bad("empty NAL unit"))?;
    if first & 0x80 != 0 {
        return Err(bad("forbidden_zero_bit is set"));
    }
    match codec {
        VideoCodec::H264 => Ok(first & 0x1f),
        VideoCodec::H265 => {
            let second = *nal
                .get(1)
                .ok_or(bad("an H.265 NAL unit header has two bytes"))?;
            if second & 0x07 == 0 {
                return Err(bad("nuh_temporal_id_plus1 is 0"));
            }
            Ok((first >> 1) & 0x3f)
        }
    }
}

/// What a NAL unit type is, as far as muxing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NalKind {
    Vps,
    Sps,
    Pps,
    /// Access unit delimiter: dropped from samples.
    Aud,
    /// Anything else: kept in samples.
    Other,
}

pub(crate) fn nal_kind(codec: VideoCodec, nal_type: u8) -> NalKind {
    match (codec, nal_type) {
        (VideoCodec::H264, 7) | (VideoCodec::H265, 33) => NalKind::Sps,
        (VideoCodec::H264, 8) | (VideoCodec::H265, 34) => NalKind::Pps,
        (VideoCodec::H265, 32) => NalKind::Vps,
        (VideoCodec::H264, 9) | (VideoCodec::H265, 35) => NalKind::Aud,
        _ => NalKind::Other,
    }
}

/// The in-band parameter sets of an Annex B access unit (H.264 SPS and PPS; H.265 VPS, SPS and
/// PPS), in stream order, without start codes: what [`crate::VideoTrack::new`] takes. NAL units
/// with an invalid header are skipped.
pub fn parameter_sets(codec: VideoCodec, access_unit: &[u8]) -> Vec<&[u8]> {
    split_annex_b(access_unit)
        .filter(|nal| {
            nal_type(codec, nal).is_ok_and(|t| {
                matches!(
                    nal_kind(codec, t),
                    NalKind::Vps | NalKind::Sps | NalKind::Pps
                )
            })
        })
        .collect()
}

/// Appends an Annex B access unit to `out` as 4-byte length-prefixed NAL units, dropping access
/// unit delimiters and parameter sets. Returns the number of bytes appended.
pub(crate) fn append_length_prefixed(
    codec: VideoCodec,
    access_unit: &[u8],
    index: usize,
    out: &mut Vec<u8>,
) -> Result<usize, Error> {
    if !starts_with_start_code(access_unit) {
        return Err(Error::NotAnnexB { index });
    }
    let before = out.len();
    for nal in split_annex_b(access_unit) {
        let kind = nal_kind(codec, nal_type(codec, nal)?);
        if kind != NalKind::Other {
            continue;
        }
        let len = u32::try_from(nal.len()).map_err(|_| Error::TooLarge(nal.len() as u64))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    Ok(out.len() - before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8]) -> Vec<&[u8]> {
        split_annex_b(data).collect()
    }

    #[test]
    fn splits_on_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 0, 4,
        ];
        assert_eq!(
            split(&data),
            vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 0, 0, 4]]
        );
    }

    #[test]
    fn skips_leading_bytes_empty_units_and_trailing_zeros() {
        let data = [
            9, 9, 0, 0, 1, 0, 0, 1, 0x41, 7, 0, 0, 0, 0, 0, 1, 0x41, 8, 0, 0,
        ];
        assert_eq!(split(&data), vec![&[0x41, 7][..], &[0x41, 8]]);
    }

    #[test]
    fn data_without_start_code_yields_nothing() {
        assert!(split(&[]).is_empty());
        assert!(split(&[0x65, 1, 2, 3, 0, 0]).is_empty());
        assert!(split(&[0, 0, 1]).is_empty());
        assert!(split(&[0, 0]).is_empty());
    }

    #[test]
    fn start_code_detection_allows_leading_zeros() {
        assert!(starts_with_start_code(&[0, 0, 1, 0x65]));
        assert!(starts_with_start_code(&[0, 0, 0, 0, 1, 0x65]));
        assert!(!starts_with_start_code(&[0, 1, 0x65]));
        assert!(!starts_with_start_code(&[0x65, 0, 0, 1]));
        assert!(!starts_with_start_code(&[]));
    }

    #[test]
    fn length_prefixing_drops_delimiters_and_parameter_sets() {
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x06, 5, 0, 0, 1,
            0x65, 6, 7,
        ];
        let mut out = vec![0xEE];
        let n = append_length_prefixed(VideoCodec::H264, &au, 0, &mut out).unwrap();
        assert_eq!(n, 13);
        assert_eq!(&out[1..], &[0, 0, 0, 2, 0x06, 5, 0, 0, 0, 3, 0x65, 6, 7]);
        assert_eq!(
            parameter_sets(VideoCodec::H264, &au),
            vec![&[0x67, 1][..], &[0x68, 2]]
        );

        // H.265: AUD 35, VPS 32, SPS 33, PPS 34 dropped; IDR_W_RADL 19 kept.
        let au = [
            0, 0, 1, 0x46, 1, 0x50, 0, 0, 1, 0x40, 1, 9, 0, 0, 1, 0x42, 1, 8, 0, 0, 1, 0x44, 1, 7,
            0, 0, 1, 0x26, 1, 0xaf,
        ];
        let mut out = Vec::new();
        assert_eq!(
            append_length_prefixed(VideoCodec::H265, &au, 0, &mut out).unwrap(),
            7
        );
        assert_eq!(out, [0, 0, 0, 3, 0x26, 1, 0xaf]);
        assert_eq!(parameter_sets(VideoCodec::H265, &au).len(), 3);
    }

    #[test]
    fn bad_access_units_are_errors() {
        let mut out = Vec::new();
        assert_eq!(
            append_length_prefixed(VideoCodec::H264, &[0x65, 1], 3, &mut out),
            Err(Error::NotAnnexB { index: 3 })
        );
        assert!(matches!(
            append_length_prefixed(VideoCodec::H264, &[0, 0, 1, 0xE5, 1], 0, &mut out),
            Err(Error::BadNalHeader { .. })
        ));
        assert!(matches!(
            append_length_prefixed(VideoCodec::H265, &[0, 0, 1, 0x26], 0, &mut out),
            Err(Error::BadNalHeader { .. })
        ));
        assert!(matches!(
            append_length_prefixed(VideoCodec::H265, &[0, 0, 1, 0x26, 0], 0, &mut out),
            Err(Error::BadNalHeader { .. })
        ));
        assert!(out.is_empty());
    }
}
