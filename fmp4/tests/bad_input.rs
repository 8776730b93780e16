//! Hostile input: random bytes and mutated real parameter sets through every entry point. Each
//! call returns Ok or a clear error, never panics; what is accepted still makes well-formed
//! boxes. A seeded xorshift generator keeps runs reproducible (the workspace has no proptest);
//! a failure prints the seed and input.

mod common;

use fmp4::{AudioTrack, Fragmenter, Sample, VideoCodec, VideoTrack};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes, biased towards the values start codes and Exp-Golomb codes are made of.
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| match self.below(4) {
                0 => 0,
                1 => [1, 3, 0x80, 0xff][self.below(4)],
                _ => self.next() as u8,
            })
            .collect()
    }

    /// A real NAL unit with a few bits flipped, bytes dropped or inserted, or cut short.
    fn mutate(&mut self, nal: &[u8], keep_header: usize) -> Vec<u8> {
        let mut v = nal.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = keep_header + self.below(v.len().saturating_sub(keep_header).max(1));
            match self.below(4) {
                0 if at < v.len() => v[at] ^= 1 << self.below(8),
                1 if at < v.len() => {
                    v.remove(at);
                }
                2 => v.insert(at.min(v.len()), self.next() as u8),
                _ => v.truncate(at),
            }
        }
        v
    }
}

const H264_SPS: [u8; 25] = [
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const H264_PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
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

const ROUNDS: usize = 50_000;

/// A track that parsed must make an init segment whose boxes add up.
fn check_accepted(track: &VideoTrack) {
    assert!(
        track.width() > 0
            && track.height() > 0
            && track.width() <= 65535
            && track.height() <= 65535
    );
    let init = fmp4::init_segment(track, None);
    let top = common::boxes(&init);
    assert_eq!(top.len(), 2);
    common::boxes(top[1].body);
}

#[test]
fn random_and_mutated_spss_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let (codec, sets): (VideoCodec, Vec<Vec<u8>>) = match round % 4 {
            0 => {
                let mut sps = vec![0x67];
                sps.extend(rng.bytes(48));
                (VideoCodec::H264, vec![sps, H264_PPS.to_vec()])
            }
            1 => (
                VideoCodec::H264,
                vec![rng.mutate(&H264_SPS, 1), H264_PPS.to_vec()],
            ),
            2 => {
                let mut sps = vec![0x42, 0x01];
                sps.extend(rng.bytes(64));
                (
                    VideoCodec::H265,
                    vec![H265_VPS.to_vec(), sps, H265_PPS.to_vec()],
                )
            }
            _ => (
                VideoCodec::H265,
                vec![
                    H265_VPS.to_vec(),
                    rng.mutate(&H265_SPS, 2),
                    H265_PPS.to_vec(),
                ],
            ),
        };
        let refs: Vec<&[u8]> = sets.iter().map(Vec::as_slice).collect();
        match VideoTrack::new(codec, &refs) {
            Ok(track) => {
                accepted += 1;
                check_accepted(&track);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Both outcomes happen: the inputs reach the SPS parsers, not only the header checks.
    assert!(
        accepted > 100 && refused > 100,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn random_parameter_set_lists_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    for round in 0..ROUNDS {
        let codec = if round % 2 == 0 {
            VideoCodec::H264
        } else {
            VideoCodec::H265
        };
        let sets: Vec<Vec<u8>> = (0..rng.below(5)).map(|_| rng.bytes(40)).collect();
        let refs: Vec<&[u8]> = sets.iter().map(Vec::as_slice).collect();
        if let Ok(track) = VideoTrack::new(codec, &refs) {
            check_accepted(&track);
        }
        // The same bytes as one Annex B access unit.
        let au: Vec<u8> = sets
            .iter()
            .flat_map(|s| [&[0, 0, 1][..], s].concat())
            .collect();
        let found = fmp4::parameter_sets(codec, &au);
        assert!(found.len() <= sets.len());
        assert!(fmp4::split_annex_b(&au).all(|nal| !nal.is_empty()));
    }
}

#[test]
fn random_audio_configs_never_panic() {
    let mut rng = Rng(0x5eed_0003);
    let mut accepted = 0;
    for _ in 0..ROUNDS {
        let config = rng.bytes(8);
        if let Ok(track) = AudioTrack::new(&config) {
            accepted += 1;
            assert!(track.sample_rate() > 0);
            let video = VideoTrack::new(VideoCodec::H264, &[&H264_SPS, &H264_PPS]).unwrap();
            common::boxes(&fmp4::init_segment(&video, Some(&track)));
        }
        let _ = AudioTrack::from_adts_header(&config);
    }
    assert!(accepted > 100, "accepted {accepted}");
}

#[test]
fn random_samples_never_panic() {
    let mut rng = Rng(0x5eed_0004);
    let video_264 = VideoTrack::new(VideoCodec::H264, &[&H264_SPS, &H264_PPS]).unwrap();
    let video_265 = VideoTrack::new(VideoCodec::H265, &[&H265_VPS, &H265_SPS, &H265_PPS]).unwrap();
    let audio = AudioTrack::new(&[0x11, 0x90]).unwrap();
    let (mut written, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let track = if round % 2 == 0 {
            &video_264
        } else {
            &video_265
        };
        let mut f = Fragmenter::new(track, Some(&audio));
        let mut data = Vec::new();
        if rng.below(4) != 0 {
            data.extend_from_slice(&[0, 0, 1][rng.below(2)..]);
            data.insert(0, 0);
        }
        data.extend(rng.bytes(64));
        let audio_data = rng.bytes(8);
        let v = Sample {
            decode_time: rng.next() >> rng.below(64),
            composition_offset: rng.next() as i32 >> rng.below(32),
            duration: (rng.next() >> 32) as u32 >> rng.below(32),
            keyframe: rng.below(2) == 0,
            data: &data,
        };
        let a = Sample {
            data: &audio_data,
            composition_offset: 0,
            ..v
        };
        let (videos, audios) = match rng.below(3) {
            0 => (vec![v], vec![]),
            1 => (vec![v], vec![a]),
            _ => (
                vec![
                    v,
                    Sample {
                        decode_time: v.decode_time.wrapping_add(u64::from(v.duration)),
                        ..v
                    },
                ],
                vec![a],
            ),
        };
        match f.fragment(&videos, &audios) {
            Ok(fragment) => {
                written += 1;
                assert_eq!(f.sequence_number(), 1);
                let top = common::boxes(&fragment);
                assert_eq!(top.len(), 2);
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
                assert_eq!(f.sequence_number(), 0);
            }
        }
    }
    assert!(
        written > 100 && refused > 100,
        "written {written}, refused {refused}"
    );
}
