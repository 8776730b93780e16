//! Two worker builds side by side: two supervisors, each with `--cameras` cameras on the same
//! fake-camera server, run at the same time, so both see the same machine load. Per window it
//! reads the CPU and PSS of each side's workers (supervisors apart) and prints the ratio B/A.
//! This is how a change to the worker's frame path is measured before it stays (issue 26).
//!
//! `target/release/bench_ab --a <worker A> --b <worker B> [--camera JSON] [--b-camera JSON]
//!    [--cameras 4] [--seconds 30] [--windows 5]` (build the binaries first; copy one build's
//! `worker` aside as A). `--camera` merges its fields into every camera, `--b-camera` then into
//! those of side B, so one build can be compared with itself under other settings, e.g.
//! `--camera '{"recording": {"mode": "continuous"}}' --b-camera '{"motion": {"enabled": false}}'`.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, Nvr};
use nvr_tests::procstat::{clk_tck, cpu_ticks, median, pss_mb};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Two worker builds (or one build under two settings) side by side.
#[derive(clap::Parser)]
struct Args {
    /// Worker binary of side A.
    #[arg(long)]
    a: String,
    /// Worker binary of side B.
    #[arg(long)]
    b: String,
    /// JSON object whose fields are merged into every camera.
    #[arg(long, default_value = "{}", value_parser = json_object)]
    camera: Value,
    /// JSON object whose fields are then merged into each camera of side B.
    #[arg(long, default_value = "{}", value_parser = json_object)]
    b_camera: Value,
    /// Cameras per side.
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Length of one measurement window.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Measurement windows.
    #[arg(long, default_value_t = 5)]
    windows: usize,
}

fn json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(r#"not a JSON object; write e.g. '{"motion": {"enabled": false}}'"#.into()),
    }
}

/// One side: a supervisor whose workers are `worker`, each camera with `extra`'s fields merged in.
fn start(fc: &FakeCam, worker: &str, side: &str, n: usize, extra: &[&Value]) -> Nvr {
    let cameras: Vec<Value> = (0..n)
        .map(|i| {
            let mut c = camera_config(&format!("{side}{i}"), fc, "motion/main", "motion/sub");
            c["recording"] = json!({"post_roll_s": 4});
            for (k, v) in extra.iter().filter_map(|e| e.as_object()).flatten() {
                c[k] = v.clone();
            }
            c
        })
        .collect();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 1, "cameras": cameras}),
        &[("NVR_WORKER_BIN", worker)],
    );
    for i in 0..n {
        nvr.wait_camera(&format!("{side}{i}"), Duration::from_secs(30), "up", |c| {
            c["worker"]["sub"]["state"] == "up" && c["worker"]["main"]["state"] == "up"
        });
    }
    nvr
}

fn worker_pids(nvr: &Nvr) -> Vec<u32> {
    nvr.status()["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
        .collect()
}

fn main() {
    let mut a = <Args as clap::Parser>::parse();
    // The supervisors run in directories of their own: they need absolute paths.
    for path in [&mut a.a, &mut a.b] {
        match std::fs::canonicalize(&*path) {
            Ok(abs) => *path = abs.display().to_string(),
            Err(e) => {
                eprintln!("bench_ab: worker binary {path}: {e}");
                std::process::exit(2);
            }
        }
    }
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).expect("fake camera");
    let sides = [
        start(&fc, &a.a, "a", a.cameras, &[&a.camera]),
        start(&fc, &a.b, "b", a.cameras, &[&a.camera, &a.b_camera]),
    ];
    std::thread::sleep(Duration::from_secs(8));
    let pids: Vec<Vec<u32>> = sides.iter().map(worker_pids).collect();
    for (side, p) in ["A", "B"].iter().zip(&pids) {
        assert_eq!(p.len(), a.cameras, "side {side}: every worker running");
    }
    let tck = clk_tck();
    println!("| window | A worker CPU % | B worker CPU % | B/A CPU | A PSS MB | B PSS MB | A supervisor CPU % | B supervisor CPU % |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut ratios, mut cpu, mut pss) = (vec![], [vec![], vec![]], [vec![], vec![]]);
    for w in 0..a.windows {
        let ticks = |i: usize| -> (u64, u64) {
            (
                pids[i].iter().map(|p| cpu_ticks(*p)).sum(),
                cpu_ticks(sides[i].pid()),
            )
        };
        let before = [ticks(0), ticks(1)];
        let t = Instant::now();
        let mut samples = [vec![], vec![]];
        while t.elapsed().as_secs_f64() < a.seconds {
            std::thread::sleep(Duration::from_secs(1));
            for i in 0..2 {
                samples[i]
                    .push(pids[i].iter().map(|p| pss_mb(*p).0).sum::<f64>() / a.cameras as f64);
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let after = [ticks(0), ticks(1)];
        let pct = |d: u64, per: usize| d as f64 / tck / secs * 100.0 / per as f64;
        let row: Vec<(f64, f64, f64)> = (0..2)
            .map(|i| {
                (
                    pct(after[i].0 - before[i].0, a.cameras),
                    median(&samples[i]),
                    pct(after[i].1 - before[i].1, 1),
                )
            })
            .collect();
        for i in 0..2 {
            for p in &pids[i] {
                assert!(
                    nvr_tests::nvr::alive(*p),
                    "a worker of side {i} exited during the run"
                );
            }
            cpu[i].push(row[i].0);
            pss[i].push(row[i].1);
        }
        let ratio = row[1].0 / row[0].0;
        ratios.push(ratio);
        println!(
            "| {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.1} | {:.2} | {:.2} |",
            w + 1,
            row[0].0,
            row[1].0,
            ratio,
            row[0].1,
            row[1].1,
            row[0].2,
            row[1].2
        );
    }
    println!(
        "| median | {:.2} | {:.2} | {:.3} | {:.1} | {:.1} | | |",
        median(&cpu[0]),
        median(&cpu[1]),
        median(&ratios),
        median(&pss[0]),
        median(&pss[1])
    );
}
