//! IPC benchmark: heartbeat latency (send → receive) and kill -9 → running-again time.
//!
//! `cargo run --release -p nvr-tests --bin bench_ipc -- [--kills N] [--cameras N] [--beats N]`
//! (build the binaries first: `cargo build --release`). The latency is read after `--beats`
//! heartbeats (210 by default, enough to fill each camera's 200-sample window). Each kill comes after
//! a healthy period longer than `restart.reset_after_s`, so every kill measures the first-restart
//! path: no backoff (a healthy run earns an immediate restart), just detection and start-up. Prints a
//! Markdown table for BENCHMARKS.md.

use nvr_tests::nvr::{config, signal, wait_until, Nvr};
use nvr_tests::procstat::percentile;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let kills = arg("--kills", 20);
    let n_cameras = arg("--cameras", 3);
    let beats = arg("--beats", 210);
    let heartbeat_s = 0.1;
    let reset_after_s = 2.0;
    let ids: Vec<String> = (0..n_cameras).map(|i| format!("cam{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut cfg = config(&id_refs, heartbeat_s);
    cfg["restart"] = json!({"initial_s": 1, "max_s": 60, "reset_after_s": reset_after_s, "intensity": 1000, "period_s": 60});
    let nvr = Nvr::start(cfg, &[]);
    nvr.wait_running(&id_refs);

    // Heartbeat latency: by default, let every camera fill its 200-sample window.
    std::thread::sleep(Duration::from_secs_f64(heartbeat_s * beats as f64));
    let status = nvr.status();
    let lat: Vec<(f64, f64)> = status["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let l = &c["heartbeat_latency"];
            (l["p50_ms"].as_f64().unwrap(), l["p99_ms"].as_f64().unwrap())
        })
        .collect();

    // kill -9 → running again (Hello received and Configure sent), polled every 5 ms.
    let victim = &ids[0];
    let mut restart_ms = Vec::new();
    for i in 0..kills {
        std::thread::sleep(Duration::from_secs_f64(reset_after_s + 0.3));
        let before = nvr.camera(victim);
        let pid = before["pid"].as_u64().unwrap();
        let killed = Instant::now();
        signal(pid as u32, "KILL");
        wait_until(Duration::from_secs(10), "restart", || {
            let c: Value = nvr.camera(victim);
            (c["state"] == "running" && c["pid"].as_u64() != Some(pid)).then_some(())
        });
        let ms = killed.elapsed().as_secs_f64() * 1e3;
        eprintln!("kill {}: back in {ms:.0} ms", i + 1);
        restart_ms.push(ms);
    }
    let p50s: Vec<f64> = lat.iter().map(|l| l.0).collect();
    let p99s: Vec<f64> = lat.iter().map(|l| l.1).collect();
    println!("| metric | p50 | p99 | max | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| heartbeat latency, ms ({n_cameras} cameras × {} beats) | {:.3} | {:.3} | – | p99 < 5 |",
        beats.min(200),
        percentile(&p50s, 50.0),
        p99s.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "| kill -9 → running again, ms ({kills} kills after healthy runs: restarted at once) | {:.0} | {:.0} | {:.0} | < 200 |",
        percentile(&restart_ms, 50.0),
        percentile(&restart_ms, 99.0),
        restart_ms.iter().copied().fold(0.0, f64::max)
    );
}
