//! What muxing costs: time per fragment (one video frame, as live view sends them) for real x264
//! and x265 streams at SUB and MAIN sizes, and what that is as a share of one core at the
//! stream's frame rate. Needs the ffmpeg CLI (scripts/setup.sh).
//!
//! `cargo run --release -p fmp4 --example fmp4_bench`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{encode, Source};
use fmp4::{Fragmenter, Sample, VideoCodec, VideoTrack};

const REPS: usize = 30;

fn main() {
    println!("| stream | frames | mean frame bytes | µs per fragment p50 / max of {REPS} runs | MB/s | % of a core at its fps |");
    println!("|---|---|---|---|---|---|");
    for (name, codec, width, height, fps, bitrate) in [
        (
            "H.264 320x180 15 fps 256 kbit/s (SUB)",
            VideoCodec::H264,
            320,
            180,
            15,
            "256k",
        ),
        (
            "H.264 1920x1080 30 fps 4 Mbit/s (MAIN)",
            VideoCodec::H264,
            1920,
            1080,
            30,
            "4M",
        ),
        (
            "H.265 1920x1080 30 fps 2 Mbit/s (MAIN)",
            VideoCodec::H265,
            1920,
            1080,
            30,
            "2M",
        ),
    ] {
        let source = Source {
            codec,
            width,
            height,
            fps,
            frames: 90,
            b_frames: false,
            profile: "main",
            pix_fmt: "yuv420p",
            aac: false,
            x265_extra: "",
            noisy_bitrate: Some(bitrate),
        };
        let dir = common::test_dir(&format!("bench_{width}_{codec:?}"));
        let enc = encode(&source, &dir);
        let sets = fmp4::parameter_sets(codec, &enc.video[0].data);
        let track = VideoTrack::new(codec, &sets).unwrap();
        let interval = 90_000 / fps;
        let bytes: usize = enc.video.iter().map(|p| p.data.len()).sum();
        let mut per_fragment_us = Vec::with_capacity(REPS);
        let mut sink = 0usize;
        for _ in 0..REPS {
            let mut fragmenter = Fragmenter::new(&track, None);
            let start = Instant::now();
            for (i, p) in enc.video.iter().enumerate() {
                let sample = Sample {
                    decode_time: i as u64 * u64::from(interval),
                    composition_offset: 0,
                    duration: interval,
                    keyframe: p.keyframe,
                    data: &p.data,
                };
                sink += fragmenter.fragment(&[sample], &[]).unwrap().len();
            }
            per_fragment_us.push(start.elapsed().as_secs_f64() * 1e6 / enc.video.len() as f64);
        }
        assert!(sink > bytes);
        per_fragment_us.sort_by(f64::total_cmp);
        let p50 = per_fragment_us[REPS / 2];
        let max = per_fragment_us[REPS - 1];
        let mean_bytes = bytes / enc.video.len();
        println!(
            "| {name} | {} | {mean_bytes} | {p50:.2} / {max:.2} | {:.0} | {:.4} |",
            enc.video.len(),
            mean_bytes as f64 / p50,
            p50 * f64::from(fps) / 1e6 * 100.0,
        );
    }
}
