//! Live-view benchmark: the supervisor's CPU and RSS per viewer when it relays a camera's SUB
//! stream (640x360, 30 fps) as fMP4 over WebSockets, against today's MJPEG at 5 fps
//! (`/api/cameras/<id>/mjpeg?fps=5`, encoded once per camera and sent to each viewer); and the
//! latency from the fake camera sending a frame to a WebSocket client receiving its fragment.
//!
//! `cargo run --release -p nvr-tests --bin bench_live -- [--seconds 20] [--viewers 10]`
//! (build the binaries first: `cargo build --release --workspace --bins`). Prints Markdown.
//!
//! Latency: the fake camera sends frame m at `t0 + m/fps` on its monotonic clock (the clock of
//! `Instant`). A client's fragments carry decode times rebased to its first frame, a keyframe; the
//! first frame is the keyframe `m0` for which no fragment arrives before it was sent and the
//! earliest one arrives soonest (keyframes are a second apart, far more than any latency), so
//! fragment j was sent at `t0 + m0/fps + tfdt_j/90000`.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::live::{self, Watched};
use nvr_tests::nvr::Nvr;
use nvr_tests::procstat::{clk_tck, cpu_model, cpu_ticks, percentile, rss_mb};
use serde_json::json;
use std::io::Read;
use std::time::{Duration, Instant};

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// The supervisor's CPU (% of one core) and peak RSS (MB) while `load` runs for `secs`.
fn measure(
    pid: u32,
    secs: f64,
    load: impl FnOnce(Duration) -> Vec<Watched> + Send,
) -> (f64, f64, Vec<Watched>) {
    let hz = clk_tck();
    let before = cpu_ticks(pid);
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(load(Duration::from_secs_f64(secs)));
        });
        let mut peak = 0.0f64;
        loop {
            peak = peak.max(rss_mb(pid).0);
            if let Ok(w) = rx.recv_timeout(Duration::from_millis(250)) {
                let cpu =
                    (cpu_ticks(pid) - before) as f64 / hz / started.elapsed().as_secs_f64() * 100.0;
                return (cpu, peak, w);
            }
        }
    })
}

fn mse_viewers(port: u16, n: usize) -> impl FnOnce(Duration) -> Vec<Watched> + Send {
    move |d| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = live::connect(port, "/api/cameras/cam/live?stream=sub").unwrap();
                    let (w, _) = live::watch(&mut s, d).unwrap();
                    live::close(s);
                    w
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

fn mjpeg_viewers(port: u16, n: usize) -> impl FnOnce(Duration) -> Vec<Watched> + Send {
    move |d| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    std::io::Write::write_all(
                        &mut s,
                        b"GET /api/cameras/cam/mjpeg?fps=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    )
                    .unwrap();
                    let end = Instant::now() + d;
                    let mut buf = vec![0u8; 65536];
                    let mut w = Watched::default();
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    while Instant::now() < end {
                        if let Ok(n) = s.read(&mut buf) {
                            w.bytes += n as u64;
                        }
                    }
                    w
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

/// Each fragment's latency in ms (see the module's doc).
fn latencies(w: &Watched, t0: Instant, fps: f64, gop: u64) -> Vec<f64> {
    let Some(&(_, first_tfdt)) = w.fragments.first() else {
        return vec![];
    };
    let first_at = w.fragments[0].0;
    let frame = Duration::from_secs_f64(1.0 / fps);
    // The latest keyframe sent before the first fragment arrived, and the ones before it.
    let newest = (first_at.duration_since(t0).as_secs_f64() * fps) as u64;
    let mut best: Option<Vec<f64>> = None;
    for back in 0..5u64 {
        let m0 = (newest / gop).saturating_sub(back) * gop;
        let lat: Vec<f64> = w
            .fragments
            .iter()
            .map(|(at, t)| {
                let sent = t0
                    + frame * m0 as u32
                    + Duration::from_secs_f64((t - first_tfdt) as f64 / 90_000.0);
                at.checked_duration_since(sent)
                    .map_or(-1.0, |d| d.as_secs_f64() * 1e3)
            })
            .collect();
        if lat.iter().all(|l| *l >= 0.0) {
            best = Some(lat);
            break;
        }
    }
    best.unwrap_or_default()
}

fn main() {
    let secs = arg("--seconds", 20.0);
    let n = arg("--viewers", 10.0) as usize;
    let fc = FakeCam::start(FakeCamOpts::scenes(&["clock"])).unwrap();
    let t0_ns = fc.ready()["t0_mono_ns"].as_u64().unwrap();
    let t0 = fc.instant_of(t0_ns);
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 1.0, "cameras": [
            {"id": "cam", "main_url": fc.url("clock/sub"), "sub_url": fc.url("clock/sub"),
             "recording": {"mode": "off"}}]}),
        &[],
    );
    nvr.wait_camera("cam", Duration::from_secs(30), "sub up", |c| {
        c["worker"]["sub"]["state"] == "up" && c["worker"]["sub"]["packet_ring"].is_object()
    });
    std::thread::sleep(Duration::from_secs(3));
    let pid = nvr.pid();
    let port = nvr.port;
    println!("# Live view: supervisor cost per viewer, latency\n");
    println!(
        "{} ({} cores); SUB 640x360 30 fps H.264 ~512 kbit/s; {secs:.0} s per row.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (idle_cpu, idle_rss, _) = measure(pid, secs, |d| {
        std::thread::sleep(d);
        vec![]
    });
    println!("| viewers | supervisor CPU % of a core | per viewer | peak RSS MB | per viewer | received |");
    println!("|---|---|---|---|---|---|");
    println!("| none | {idle_cpu:.2} | | {idle_rss:.1} | | |");
    let mut all_latencies = Vec::new();
    for (label, count, mse) in [
        ("1 MSE (fMP4, 30 fps)", 1, true),
        (&*format!("{n} MSE (fMP4, 30 fps)"), n, true),
        ("1 MJPEG (5 fps)", 1, false),
        (&*format!("{n} MJPEG (5 fps)"), n, false),
    ] {
        let load: Box<dyn FnOnce(Duration) -> Vec<Watched> + Send> = if mse {
            Box::new(mse_viewers(port, count))
        } else {
            Box::new(mjpeg_viewers(port, count))
        };
        let (cpu, rss, watched) = measure(pid, secs, load);
        let frames: usize = watched.iter().map(|w| w.fragments.len()).sum();
        let bytes: u64 = watched.iter().map(|w| w.bytes).sum();
        if mse {
            for w in &watched {
                all_latencies.extend(latencies(w, t0, 30.0, 30).into_iter().skip(40));
            }
        }
        let what = if mse {
            format!(
                "{:.1} fragments/s per viewer",
                frames as f64 / count as f64 / secs
            )
        } else {
            format!(
                "{:.0} kB/s per viewer",
                bytes as f64 / count as f64 / secs / 1e3
            )
        };
        println!(
            "| {label} | {cpu:.2} | {:.3} | {rss:.1} | {:.2} | {what} |",
            (cpu - idle_cpu) / count as f64,
            (rss - idle_rss) / count as f64
        );
    }
    println!(
        "\nFake camera send → fragment received by a WebSocket client (SUB, 30 fps, {} fragments, the first 40 of each viewer left out: they are the burst from the newest keyframe): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.",
        all_latencies.len(),
        percentile(&all_latencies, 50.0),
        percentile(&all_latencies, 99.0),
        all_latencies.iter().copied().fold(0.0, f64::max)
    );
}
