//! Motion detector cost per frame on 640×360 synthetic frames (a moving box over sensor noise), at
//! the default working width, the previous default, and at the full SUB size.
//!
//! `cargo run --release -p worker --bin bench_motion [-- --frames N]`

use nvr_proto::settings::MotionSettings;
use std::time::Instant;
use worker::motion::{Detector, Luma, WORK_WIDTH};

const W: usize = 640;
const H: usize = 360;

fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| {
            let mut f: Vec<u8> = (0..W * H)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (100 + (state % 9) as i32 - 4) as u8
                })
                .collect();
            let x0 = (i * 4) % (W - 100);
            for row in 130..230 {
                f[row * W + x0..row * W + x0 + 100].fill(230);
            }
            f
        })
        .collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(((p / 100.0) * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--frames")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(600);
    let input = frames(60);
    println!("| working image | per frame p50 | p99 |");
    println!("|---|---|---|");
    for (label, work_w) in [
        (
            format!("default ({WORK_WIDTH} columns, 192×108)"),
            WORK_WIDTH,
        ),
        ("previous default (178×100)".to_string(), 178),
        ("full SUB size (640×360)".to_string(), W),
    ] {
        let mut det = Detector::with_work_width(MotionSettings::default(), W, H, work_w);
        let mut us = Vec::with_capacity(n);
        for i in 0..n {
            let f = &input[i % input.len()];
            let luma = Luma {
                data: f,
                stride: W,
                width: W,
                height: H,
            };
            let t = Instant::now();
            std::hint::black_box(det.process(luma, i as u64 * 33_333_333, i as i64));
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let p50 = percentile(&mut us, 50.0);
        let p99 = percentile(&mut us, 99.0);
        println!("| {label} | {p50:.0} µs | {p99:.0} µs |");
    }
}
