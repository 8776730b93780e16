//! What the packet rings need from an encoded stream, as pure functions: the NAL units of an Annex B
//! access unit, the parameter sets among them (cameras may send them only in band, decision 12),
//! and timestamps rescaled to the rings' clocks (90 kHz video, the sample rate for audio).

/// The video codecs a packet ring carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start codes
/// or trailing zero bytes. Bytes before the first start code are skipped; data without any start
/// code yields nothing.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start(data) {
        Some((_, end)) => &data[end..],
        None => &data[data.len()..],
    };
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (nal, next) = match find_start(rest) {
            Some((start, end)) => (&rest[..start], &rest[end..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let trimmed_len = nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count();
        Some(&nal[..trimmed_len])
    })
    .filter(|n| !n.is_empty())
}

/// The first start code `00 00 01` in `data`: (its first byte, the byte after it).
fn find_start(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

/// The kind of parameter set a NAL unit is, ordered as decoders want them (VPS, SPS, PPS).
fn parameter_set_rank(codec: VideoCodec, nal: &[u8]) -> Option<u8> {
    let first = *nal.first()?;
    match codec {
        VideoCodec::H264 => match first & 0x1f {
            7 => Some(1),
            8 => Some(2),
            _ => None,
        },
        VideoCodec::H265 => match (first >> 1) & 0x3f {
            32 => Some(0),
            33 => Some(1),
            34 => Some(2),
            _ => None,
        },
    }
}

/// The parameter sets (H.264 SPS, PPS; H.265 VPS, SPS, PPS) in an Annex B access unit or
/// extradata, ordered VPS, SPS, PPS, duplicates dropped. Complete only if [`complete`] says so.
pub fn parameter_sets(codec: VideoCodec, data: &[u8]) -> Vec<Vec<u8>> {
    let mut sets: Vec<(u8, &[u8])> = nal_units(data)
        .filter_map(|n| parameter_set_rank(codec, n).map(|r| (r, n)))
        .collect();
    sets.sort_by_key(|(r, _)| *r);
    sets.dedup_by(|a, b| a.1 == b.1);
    sets.into_iter().map(|(_, n)| n.to_vec()).collect()
}

/// Whether `sets` has every kind of parameter set `codec` needs.
pub fn complete(codec: VideoCodec, sets: &[Vec<u8>]) -> bool {
    let has = |rank| {
        sets.iter()
            .any(|s| parameter_set_rank(codec, s) == Some(rank))
    };
    match codec {
        VideoCodec::H264 => has(1) && has(2),
        VideoCodec::H265 => has(0) && has(1) && has(2),
    }
}

/// `ts` in units of `num/den` seconds, in units of `1/rate` seconds (rounded to nearest, saturating).
pub fn rescale(ts: i64, num: i32, den: i32, rate: u32) -> i64 {
    if den == 0 || num == 0 {
        return ts;
    }
    let n = i128::from(ts) * i128::from(num) * i128::from(rate);
    let d = i128::from(den);
    let q = if (n < 0) != (d < 0) {
        (n - d / 2) / d
    } else {
        (n + d / 2) / d
    };
    q.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 0, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9, 9]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0, "no start code");
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(
            nal_units(&[9, 0, 0, 1, 5]).collect::<Vec<_>>(),
            vec![&[5][..]],
            "leading garbage skipped"
        );
    }

    #[test]
    fn finds_parameter_sets_in_band_in_decoder_order() {
        // H.264: PPS before SPS in the stream, a repeated SPS, an IDR slice.
        let au = [
            0, 0, 1, 0x68, 0xee, 0, 0, 1, 0x67, 0x64, 0, 0, 1, 0x67, 0x64, 0, 0, 1, 0x65, 1,
        ];
        let sets = parameter_sets(VideoCodec::H264, &au);
        assert_eq!(sets, vec![vec![0x67, 0x64], vec![0x68, 0xee]]);
        assert!(complete(VideoCodec::H264, &sets));
        assert!(!complete(VideoCodec::H264, &sets[..1]));
        // H.265: VPS (32), SPS (33), PPS (34), IDR (19); type is bits 1..7 of the first byte.
        let au = [
            0, 0, 1, 0x44, 1, 0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x26, 1,
        ];
        let sets = parameter_sets(VideoCodec::H265, &au);
        assert_eq!(sets, vec![vec![0x40, 1], vec![0x42, 1], vec![0x44, 1]]);
        assert!(complete(VideoCodec::H265, &sets));
        assert!(!complete(VideoCodec::H265, &sets[1..]));
        // A plain P slice has none.
        assert!(parameter_sets(VideoCodec::H264, &[0, 0, 1, 0x41, 7]).is_empty());
    }

    #[test]
    fn rescales_to_90khz_and_sample_rates() {
        assert_eq!(rescale(90_000, 1, 90_000, 90_000), 90_000);
        assert_eq!(rescale(1000, 1, 1000, 90_000), 90_000);
        assert_eq!(rescale(1, 1, 30, 90_000), 3000);
        assert_eq!(rescale(-1, 1, 30, 90_000), -3000);
        assert_eq!(rescale(48_000, 1, 48_000, 16_000), 16_000);
        assert_eq!(rescale(1, 1, 3, 10), 3, "rounds to nearest");
        assert_eq!(rescale(i64::MAX, 90_000, 1, 90_000), i64::MAX, "saturates");
        assert_eq!(rescale(5, 1, 0, 90_000), 5, "a broken time base leaves it");
    }
}
