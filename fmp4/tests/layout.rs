//! The boxes the muxer writes, read back field by field: sizes that add up, track ids, timescales,
//! sequence numbers, base media decode times, sample sizes, flags and data offsets that point at
//! the right bytes; and the errors that leave a fragmenter as it was.

mod common;

use common::{be32, be64, boxes, child};
use fmp4::{AudioTrack, Error, Fragmenter, Sample, TrackKind, VideoCodec, VideoTrack};

/// x264's SPS and PPS for 320x240 High profile, level 1.3.
const H264_SPS: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const H264_PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// x265's VPS, SPS and PPS for 352x288 4:4:4 (format range extensions profile, 4) with two
/// temporal sub-layers.
const H265_VPS: [u8; 27] = [
    0x40, 0x01, 0x0c, 0x02, 0xff, 0xff, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9e, 0x08, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x95, 0x94, 0xac, 0xa0, 0x48,
];
const H265_SPS: [u8; 47] = [
    0x42, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x9e, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00,
    0x3c, 0x00, 0x00, 0x90, 0x01, 0x61, 0x00, 0x90, 0xb2, 0xca, 0xca, 0x56, 0x59, 0x24, 0xca, 0xf0,
    0x16, 0xe0, 0x40, 0x40, 0x00, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
];
const H265_PPS: [u8; 8] = [0x44, 0x01, 0xc1, 0x72, 0x86, 0x0c, 0x46, 0x24];

/// AAC-LC, 48 kHz, stereo.
const ASC: [u8; 2] = [0x11, 0x90];

fn h264() -> VideoTrack {
    VideoTrack::new(VideoCodec::H264, &[&H264_SPS, &H264_PPS]).unwrap()
}

fn h265() -> VideoTrack {
    // Any order: the parameter sets are sorted by type.
    VideoTrack::new(VideoCodec::H265, &[&H265_PPS, &H265_SPS, &H265_VPS]).unwrap()
}

fn aac() -> AudioTrack {
    AudioTrack::new(&ASC).unwrap()
}

fn types(data: &[u8]) -> Vec<String> {
    boxes(data)
        .iter()
        .map(|b| String::from_utf8_lossy(&b.fourcc).into_owned())
        .collect()
}

fn traks(moov: &[u8]) -> Vec<&[u8]> {
    boxes(moov)
        .into_iter()
        .filter(|b| &b.fourcc == b"trak")
        .map(|b| b.body)
        .collect()
}

/// The sample entry of a trak: (type, body).
fn sample_entry(trak: &[u8]) -> ([u8; 4], &[u8]) {
    let stsd = child(
        child(child(child(trak, b"mdia"), b"minf"), b"stbl"),
        b"stsd",
    );
    assert_eq!(be32(&stsd[4..]), 1, "one sample entry");
    let entries = boxes(&stsd[8..]);
    (entries[0].fourcc, entries[0].body)
}

#[test]
fn h264_init_segment() {
    let video = h264();
    assert_eq!(
        (
            video.width(),
            video.height(),
            video.profile_idc(),
            video.level_idc()
        ),
        (320, 240, 100, 13)
    );
    assert_eq!(video.mime_codec(), "avc1.64000d");
    assert_eq!(
        fmp4::mime_type(&video, None),
        "video/mp4; codecs=\"avc1.64000d\""
    );
    let init = fmp4::init_segment(&video, None);
    assert_eq!(types(&init), ["ftyp", "moov"]);
    assert_eq!(&child(&init, b"ftyp")[..4], b"iso5");
    let moov = child(&init, b"moov");
    assert_eq!(types(moov), ["mvhd", "trak", "mvex"]);
    assert_eq!(be32(&child(moov, b"mvhd")[96..]), 2, "next_track_ID");
    let trak = traks(moov)[0];
    let tkhd = child(trak, b"tkhd");
    assert_eq!(be32(&tkhd[12..]), 1, "track_ID");
    assert_eq!(
        (be32(&tkhd[76..]), be32(&tkhd[80..])),
        (320 << 16, 240 << 16),
        "tkhd width, height"
    );
    let mdia = child(trak, b"mdia");
    assert_eq!(be32(&child(mdia, b"mdhd")[12..]), 90_000, "timescale");
    assert_eq!(&child(mdia, b"hdlr")[8..12], b"vide");
    let (fourcc, avc1) = sample_entry(trak);
    assert_eq!(&fourcc, b"avc1");
    assert_eq!(
        (
            u16::from_be_bytes([avc1[24], avc1[25]]),
            u16::from_be_bytes([avc1[26], avc1[27]])
        ),
        (320, 240)
    );
    let avcc = child(&avc1[78..], b"avcC");
    assert_eq!(
        avcc[..6],
        [1, 0x64, 0x00, 0x0d, 0xff, 0xe1],
        "version, profile, constraints, level, 4-byte lengths, 1 SPS"
    );
    assert_eq!(
        u16::from_be_bytes([avcc[6], avcc[7]]) as usize,
        H264_SPS.len()
    );
    assert_eq!(avcc[8..8 + H264_SPS.len()], H264_SPS);
    let trex = boxes(child(moov, b"mvex"));
    assert_eq!(trex.len(), 1);
    assert_eq!(be32(&trex[0].body[4..]), 1, "trex track_ID");
}

#[test]
fn h265_init_segment_with_aac() {
    let (video, audio) = (h265(), aac());
    assert_eq!((video.width(), video.height()), (352, 288));
    assert_eq!((video.profile_idc(), video.chroma_format_idc()), (4, 3));
    assert_eq!(video.mime_codec(), "hvc1.4.10.L60.9E.8");
    assert_eq!(
        fmp4::mime_type(&video, Some(&audio)),
        "video/mp4; codecs=\"hvc1.4.10.L60.9E.8, mp4a.40.2\""
    );
    let init = fmp4::init_segment(&video, Some(&audio));
    let moov = child(&init, b"moov");
    assert_eq!(types(moov), ["mvhd", "trak", "trak", "mvex"]);
    assert_eq!(be32(&child(moov, b"mvhd")[96..]), 3, "next_track_ID");

    let (fourcc, hvc1) = sample_entry(traks(moov)[0]);
    assert_eq!(&fourcc, b"hvc1");
    let hvcc = child(&hvc1[78..], b"hvcC");
    assert_eq!(hvcc[..2], [1, 0x04], "version, profile space/tier/idc");
    assert_eq!(be32(&hvcc[2..]), 0x0800_0000, "compatibility flags");
    assert_eq!(
        hvcc[6..12],
        [0x9e, 0x08, 0, 0, 0, 0],
        "constraint flags, emulation prevention removed"
    );
    assert_eq!(hvcc[12], 60, "level");
    assert_eq!(hvcc[16..19], [0xff, 0xf8, 0xf8], "4:4:4, 8 bits");
    assert_eq!(
        hvcc[21],
        (2 << 3) | 3,
        "2 temporal layers, not nested, 4-byte lengths"
    );
    assert_eq!(hvcc[22], 3, "VPS, SPS and PPS arrays");
    let mut at = 23;
    for (nal_type, nal) in [(32, &H265_VPS[..]), (33, &H265_SPS), (34, &H265_PPS)] {
        assert_eq!(hvcc[at], 0x80 | nal_type);
        assert_eq!(u16::from_be_bytes([hvcc[at + 1], hvcc[at + 2]]), 1);
        assert_eq!(
            u16::from_be_bytes([hvcc[at + 3], hvcc[at + 4]]) as usize,
            nal.len()
        );
        assert_eq!(&hvcc[at + 5..at + 5 + nal.len()], nal);
        at += 5 + nal.len();
    }
    assert_eq!(at, hvcc.len());

    let trak = traks(moov)[1];
    assert_eq!(be32(&child(trak, b"tkhd")[12..]), 2, "audio track_ID");
    assert_eq!(
        be32(&child(child(trak, b"mdia"), b"mdhd")[12..]),
        48_000,
        "audio timescale"
    );
    let (fourcc, mp4a) = sample_entry(trak);
    assert_eq!(&fourcc, b"mp4a");
    assert_eq!(u16::from_be_bytes([mp4a[16], mp4a[17]]), 2, "channels");
    assert_eq!(be32(&mp4a[24..]), 48_000 << 16, "sample rate");
    let esds = child(&mp4a[28..], b"esds");
    assert!(
        esds.windows(4).any(|w| w == [0x05, 2, 0x11, 0x90]),
        "DecoderSpecificInfo holds the ASC"
    );
    let trex: Vec<u32> = boxes(child(moov, b"mvex"))
        .iter()
        .map(|b| be32(&b.body[4..]))
        .collect();
    assert_eq!(trex, [1, 2]);
}

/// A sample read back: duration, size, flags, composition offset, data.
type ParsedSample = (u32, u32, u32, i32, Vec<u8>);

/// A fragment read back: sequence number, and per traf (track id, base decode time, samples).
struct Parsed {
    sequence_number: u32,
    trafs: Vec<(u32, u64, Vec<ParsedSample>)>,
}

fn parse_fragment(fragment: &[u8]) -> Parsed {
    assert_eq!(types(fragment), ["moof", "mdat"]);
    let moof = child(fragment, b"moof");
    let moof_len = 8 + moof.len();
    let mdat_body_start = moof_len + 8;
    let mfhd = child(moof, b"mfhd");
    let mut trafs = Vec::new();
    let mut covered = 0;
    for traf in boxes(moof).into_iter().filter(|b| &b.fourcc == b"traf") {
        let tfhd = child(traf.body, b"tfhd");
        assert_eq!(be32(tfhd) & 0xffffff, 0x02_0000, "default-base-is-moof");
        let tfdt = child(traf.body, b"tfdt");
        assert_eq!(tfdt[0], 1, "64-bit tfdt");
        let trun = child(traf.body, b"trun");
        let flags = be32(trun) & 0xffffff;
        let with_offset = flags & 0x800 != 0;
        let count = be32(&trun[4..]) as usize;
        let mut data_at = be32(&trun[8..]) as usize;
        let mut samples = Vec::new();
        let mut at = 12;
        for _ in 0..count {
            let (duration, size, sample_flags) = (
                be32(&trun[at..]),
                be32(&trun[at + 4..]),
                be32(&trun[at + 8..]),
            );
            let offset = if with_offset {
                be32(&trun[at + 12..]) as i32
            } else {
                0
            };
            at += if with_offset { 16 } else { 12 };
            assert!(data_at >= mdat_body_start, "data offset inside the mdat");
            let data = fragment[data_at..data_at + size as usize].to_vec();
            data_at += size as usize;
            covered += size as usize;
            samples.push((duration, size, sample_flags, offset, data));
        }
        assert_eq!(at, trun.len());
        trafs.push((be32(&tfhd[4..]), be64(&tfdt[4..]), samples));
    }
    assert_eq!(
        covered,
        fragment.len() - mdat_body_start,
        "the samples fill the mdat exactly"
    );
    Parsed {
        sequence_number: be32(&mfhd[4..]),
        trafs,
    }
}

fn video(
    decode_time: u64,
    duration: u32,
    composition_offset: i32,
    keyframe: bool,
    data: &[u8],
) -> Sample<'_> {
    Sample {
        decode_time,
        composition_offset,
        duration,
        keyframe,
        data,
    }
}

#[test]
fn fragments_count_up_and_carry_their_decode_times() {
    let track = h264();
    let mut fragmenter = Fragmenter::new(&track, None);
    // An IDR access unit with delimiter and parameter sets (dropped), then P and B frames.
    let idr = [
        &[0, 0, 0, 1, 0x09, 0x10][..],
        &[0, 0, 0, 1],
        &H264_SPS,
        &[0, 0, 1],
        &H264_PPS,
        &[0, 0, 1, 0x65, 0x88, 0x80, 0x10],
    ]
    .concat();
    let p = [0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0, 1, 0x41, 0x01, 0x37];
    let b = [0, 0, 1, 0x01, 0x9e, 0x04];
    let frames = [
        (
            video(1000, 3000, 6000, true, &idr),
            vec![vec![0x65, 0x88, 0x80, 0x10]],
        ),
        (
            video(4000, 3000, 6000, false, &p),
            vec![vec![0x41, 0x9a, 0x02], vec![0x41, 0x01, 0x37]],
        ),
        (
            video(7000, 3000, -3000, false, &b),
            vec![vec![0x01, 0x9e, 0x04]],
        ),
    ];
    for (i, (sample, nals)) in frames.iter().enumerate() {
        let fragment = fragmenter.fragment(&[*sample], &[]).unwrap();
        let payload: usize = nals.iter().map(|n| 4 + n.len()).sum();
        assert_eq!(
            fragment.len() - payload,
            112,
            "moof + mdat header of a one-frame fragment (decision 45)"
        );
        let parsed = parse_fragment(&fragment);
        assert_eq!(parsed.sequence_number, i as u32 + 1);
        assert_eq!(fragmenter.sequence_number(), i as u32 + 1);
        let (track_id, base, samples) = &parsed.trafs[0];
        assert_eq!(
            (*track_id, *base, samples.len()),
            (1, sample.decode_time, 1)
        );
        let (duration, size, flags, offset, data) = &samples[0];
        assert_eq!((*duration, *offset), (3000, sample.composition_offset));
        let want: Vec<u8> = nals
            .iter()
            .flat_map(|n| [&(n.len() as u32).to_be_bytes()[..], n].concat())
            .collect();
        assert_eq!(
            (*size as usize, data),
            (want.len(), &want),
            "4-byte lengths, AUD/SPS/PPS dropped"
        );
        assert_eq!(
            *flags,
            if sample.keyframe {
                0x0200_0000
            } else {
                0x0101_0000
            }
        );
    }
}

#[test]
fn a_fragment_holds_video_then_audio() {
    let (track, audio) = (h265(), aac());
    let mut fragmenter = Fragmenter::new(&track, Some(&audio));
    let frame = [0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x1d];
    let a = [
        Sample {
            decode_time: 2048,
            composition_offset: 0,
            duration: 1024,
            keyframe: false,
            data: &[0x21, 0x10, 0x05],
        },
        Sample {
            decode_time: 3072,
            composition_offset: 0,
            duration: 1024,
            keyframe: false,
            data: &[0x21, 0x10, 0x06, 0x07],
        },
    ];
    let v = [
        video(0, 3000, 0, true, &frame),
        video(3000, 3000, 0, false, &frame),
    ];
    let parsed = parse_fragment(&fragmenter.fragment(&v, &a).unwrap());
    assert_eq!(parsed.trafs.len(), 2);
    let (id, base, samples) = &parsed.trafs[0];
    assert_eq!((*id, *base, samples.len()), (1, 0, 2));
    assert_eq!(samples[1].4, [0, 0, 0, 4, 0x26, 0x01, 0xaf, 0x1d]);
    let (id, base, samples) = &parsed.trafs[1];
    assert_eq!((*id, *base, samples.len()), (2, 2048, 2));
    assert_eq!(
        (samples[0].0, samples[0].2, &samples[0].4[..]),
        (1024, 0x0200_0000, &[0x21, 0x10, 0x05][..])
    );
    assert_eq!(samples[1].4, [0x21, 0x10, 0x06, 0x07]);

    // Audio alone, later.
    let later = [Sample {
        decode_time: 4096,
        ..a[0]
    }];
    let parsed = parse_fragment(&fragmenter.fragment(&[], &later).unwrap());
    assert_eq!(
        (
            parsed.sequence_number,
            parsed.trafs.len(),
            parsed.trafs[0].0
        ),
        (2, 1, 2)
    );
}

#[test]
fn errors_name_the_sample_and_change_nothing() {
    let track = h264();
    let mut f = Fragmenter::new(&track, None);
    let idr = [0, 0, 0, 1, 0x65, 0x88];
    let only_sets = [
        &[0, 0, 0, 1][..],
        &H264_SPS,
        &[0, 0, 0, 1],
        &H264_PPS,
        &[0, 0, 1, 0x09, 0xf0],
    ]
    .concat();
    let audio = Sample {
        decode_time: 0,
        composition_offset: 0,
        duration: 1024,
        keyframe: true,
        data: &[1],
    };
    assert_eq!(f.fragment(&[], &[]), Err(Error::EmptyFragment));
    assert_eq!(f.fragment(&[], &[audio]), Err(Error::NoAudioTrack));
    assert_eq!(
        f.fragment(
            &[
                video(0, 3000, 0, true, &idr),
                video(0, 3000, 0, true, &only_sets)
            ],
            &[]
        ),
        Err(Error::NotContiguous {
            track: TrackKind::Video,
            index: 1,
            expected: 3000,
            got: 0
        })
    );
    assert_eq!(
        f.fragment(
            &[
                video(0, 3000, 0, true, &idr),
                video(3000, 3000, 0, true, &only_sets)
            ],
            &[]
        ),
        Err(Error::EmptySample {
            track: TrackKind::Video,
            index: 1
        })
    );
    assert_eq!(
        f.fragment(&[video(0, 3000, 0, true, &[])], &[]),
        Err(Error::NotAnnexB { index: 0 })
    );
    assert_eq!(
        f.fragment(&[video(0, 3000, 0, true, &[0x65, 1])], &[]),
        Err(Error::NotAnnexB { index: 0 })
    );
    assert_eq!(
        f.fragment(&[video(0, 0, 0, true, &idr)], &[]),
        Err(Error::ZeroDuration {
            track: TrackKind::Video,
            index: 0
        })
    );
    assert_eq!(
        f.fragment(&[video(u64::MAX, 1, 0, true, &idr)], &[]),
        Err(Error::DecodeTimeOverflow {
            track: TrackKind::Video,
            index: 0
        })
    );
    assert_eq!(
        f.fragment(&[video(0, 3000, 0, true, &idr)], &[audio])
            .unwrap_err()
            .to_string(),
        "audio samples given, but the fragmenter was made without an audio track"
    );
    assert_eq!(f.sequence_number(), 0, "no fragment was written");

    let first = parse_fragment(
        &f.fragment(&[video(9000, 3000, 0, true, &idr)], &[])
            .unwrap(),
    );
    assert_eq!(first.sequence_number, 1);
    for t in [0, 8999, 9000] {
        assert_eq!(
            f.fragment(&[video(t, 3000, 0, false, &idr)], &[]),
            Err(Error::DecodeTimeNotIncreasing {
                track: TrackKind::Video,
                previous: 9000,
                got: t
            })
        );
    }
    // Overlapping the previous estimated duration is fine; so is a gap.
    assert_eq!(
        parse_fragment(
            &f.fragment(&[video(9001, 3000, 0, false, &idr)], &[])
                .unwrap()
        )
        .sequence_number,
        2
    );
    assert_eq!(
        parse_fragment(
            &f.fragment(&[video(90_000, 3000, 0, true, &idr)], &[])
                .unwrap()
        )
        .sequence_number,
        3
    );

    let audio_track = aac();
    let mut f = Fragmenter::new(&track, Some(&audio_track));
    assert_eq!(
        f.fragment(
            &[],
            &[Sample {
                composition_offset: 5,
                ..audio
            }]
        ),
        Err(Error::AudioCompositionOffset {
            index: 0,
            offset: 5
        })
    );
    assert_eq!(
        f.fragment(&[], &[Sample { data: &[], ..audio }]),
        Err(Error::EmptySample {
            track: TrackKind::Audio,
            index: 0
        })
    );
}

#[test]
fn parameter_set_errors_are_specific() {
    use VideoCodec::{H264, H265};
    let err = |codec, sets: &[&[u8]]| VideoTrack::new(codec, sets).unwrap_err();
    assert_eq!(
        err(H264, &[&H264_SPS]),
        Error::MissingParameterSet {
            codec: H264,
            missing: "PPS"
        }
    );
    assert_eq!(
        err(H264, &[&H264_PPS]),
        Error::MissingParameterSet {
            codec: H264,
            missing: "SPS"
        }
    );
    assert_eq!(
        err(H264, &[]),
        Error::MissingParameterSet {
            codec: H264,
            missing: "SPS"
        }
    );
    assert_eq!(
        err(H265, &[&H265_SPS, &H265_PPS]),
        Error::MissingParameterSet {
            codec: H265,
            missing: "VPS"
        }
    );
    assert_eq!(
        err(H264, &[&H264_SPS, &H264_PPS, &[0x65, 1]]),
        Error::NotAParameterSet {
            codec: H264,
            index: 2,
            nal_type: 5
        }
    );
    assert!(matches!(
        err(H264, &[&H264_SPS, &H264_PPS, &[]]),
        Error::BadNalHeader { .. }
    ));
    // An H.265 SPS handed over as H.264 (type 0x42 & 0x1f = 2) and the reverse.
    assert!(matches!(
        err(H264, &[&H265_SPS, &H264_PPS]),
        Error::NotAParameterSet { nal_type: 2, .. }
    ));
    assert!(matches!(
        err(H265, &[&H265_VPS, &H264_SPS, &H265_PPS]),
        Error::NotAParameterSet { .. }
    ));
    // With start codes still on.
    let with_start_code = [&[0, 0, 0, 1][..], &H264_SPS].concat();
    assert!(matches!(
        err(H264, &[&with_start_code, &H264_PPS]),
        Error::NotAParameterSet { nal_type: 0, .. }
    ));
    let e = err(H265, &[&H265_VPS, &H265_SPS[..12], &H265_PPS]);
    assert!(matches!(e, Error::BadSps { codec: H265, .. }), "{e}");
    assert!(e.to_string().starts_with("H.265 SPS is invalid: "), "{e}");

    // The in-band parameter sets of an access unit, as a caller finds them.
    let au = [
        &[0, 0, 0, 1][..],
        &H265_VPS,
        &[0, 0, 1],
        &H265_SPS,
        &[0, 0, 1],
        &H265_PPS,
        &[0, 0, 1, 0x26, 1, 0xaf],
    ]
    .concat();
    let sets = fmp4::parameter_sets(H265, &au);
    assert_eq!(sets, [&H265_VPS[..], &H265_SPS, &H265_PPS]);
    assert_eq!(VideoTrack::new(H265, &sets).unwrap(), h265());
    assert_ne!(
        h265(),
        VideoTrack::new(H265, &[&H265_VPS, &H265_SPS, &H265_PPS[..7]]).unwrap(),
        "a PPS change is a change"
    );
}
