//! Media benchmark, side by side in one run: (1) the NVR's worker decoding a camera's SUB stream into
//! the frame ring (with motion detection) against the floor, `ffmpeg -rtsp_transport tcp -i <sub> -f
//! null -` decoding the same stream; (2) detection quality and latency on every fake-camera scenario;
//! (3) recording: the extra CPU of a worker that records the MAIN stream against the floor `ffmpeg -i
//! <main> -c copy -f mp4`, and how fast and how early motion clips start; (4) the grid preview's cost;
//! (5) the packet rings: a worker publishing SUB and MAIN packets (default ring sizes) against the
//! same camera's worker with both rings off, nobody watching: CPU and memory (PSS).
//!
//! `cargo run --release -p nvr-tests --bin bench_media -- [--seconds 60] [--repeats 3] [--phase N]`
//! (build the binaries first: `cargo build --release --workspace --bins`; `--phase 0` runs all).
//! Prints Markdown.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::Nvr;
use nvr_tests::procstat::{
    clk_tck, cpu_model, cpu_ticks, median_spread, percentile, pss_mb, rss_mb,
};
use nvr_tests::status::camera_in;
use serde_json::{json, Value};
use shm_bus::Reader;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn wait_sub_up(nvr: &Nvr, id: &str) -> u32 {
    let c = nvr.wait_camera(id, Duration::from_secs(30), "sub up", |c| {
        c["worker"]["sub"]["state"] == "up"
    });
    c["pid"].as_u64().unwrap() as u32
}

/// `ffmpeg -rtsp_transport tcp <args>`, quiet: one floor process.
fn ffmpeg(args: &[&str]) -> Floor {
    Floor(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    )
}

struct Floor(Child);
impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let window = arg("--seconds", 60.0);
    let repeats = arg("--repeats", 3.0) as usize;
    let tck = clk_tck();
    println!(
        "Machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!();
    let phase = arg("--phase", 0.0) as u32;
    if phase == 0 || phase == 1 {
        decode_vs_floor(window, repeats, tck);
    }
    if phase == 0 || phase == 2 {
        detection_quality(window);
    }
    if phase == 0 || phase == 3 {
        recording_vs_floor(window, repeats, tck);
    }
    if phase == 0 || phase == 4 {
        grid_preview_cost(window, repeats, tck);
    }
    if phase == 0 || phase == 5 {
        packet_ring_cost(window, repeats, tck);
    }
}

/// Two workers on the same fake-camera streams (MAIN 1080p H.264 + AAC, SUB 640×360), MAIN
/// connected (recording mode `motion`, detection off so no clip is written): one with the default
/// packet rings, one with `live.*_ring_mb: 0`. Nobody reads the rings.
fn packet_ring_cost(window: f64, repeats: usize, tck: f64) {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let (main, sub) = (fc.url("motion/main_aac"), fc.url("motion/sub"));
    let cam = |id: &str, live: Value| {
        json!({"id": id, "main_url": main, "sub_url": sub, "motion": {"enabled": false},
               "recording": {"mode": "motion"}, "live": live})
    };
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 5, "cameras": [
            cam("rings", json!({"main_ring_mb": 16, "sub_ring_mb": 4})),
            cam("norings", json!({"main_ring_mb": 0, "sub_ring_mb": 0}))]}),
        &[],
    );
    let on = wait_sub_up(&nvr, "rings");
    let off = wait_sub_up(&nvr, "norings");
    // Long enough for the rings to wrap at least once? 16 MiB at ~0.5 MB/s does not in a short
    // run: PSS is read at the end, and the ring's share is reported from what was touched.
    std::thread::sleep(Duration::from_secs(5));
    let (mut extra, mut on_cpu, mut off_cpu) = (vec![], vec![], vec![]);
    for _ in 0..repeats {
        let before = [cpu_ticks(on), cpu_ticks(off)];
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(window));
        let secs = t.elapsed().as_secs_f64();
        let pct = |pid: u32, b: u64| (cpu_ticks(pid) - b) as f64 / tck / secs * 100.0;
        let (a, b) = (pct(on, before[0]), pct(off, before[1]));
        on_cpu.push(a);
        off_cpu.push(b);
        extra.push(a - b);
    }
    let c = nvr.camera("rings");
    let ring = |s: &str| {
        let r = &c["worker"][s]["packet_ring"];
        format!(
            "{:.2} Mbit/s, GOP {:.1} s, holds {:.0} s",
            r["bytes_per_s"].as_f64().unwrap_or(0.0) * 8.0 / 1e6,
            r["gop_s"].as_f64().unwrap_or(0.0),
            r["holds_s"].as_f64().unwrap_or(0.0)
        )
    };
    let (pss_on, shm_on) = pss_mb(on);
    let (pss_off, shm_off) = pss_mb(off);
    println!("### Packet rings: worker publishing SUB and MAIN packets vs rings off, nobody watching ({repeats} windows of {window:.0} s; median (min–max))");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| worker with rings, CPU % of one core | {} |",
        median_spread(&mut on_cpu)
    );
    println!(
        "| worker without rings, CPU % of one core | {} |",
        median_spread(&mut off_cpu)
    );
    println!(
        "| difference (target ≤ 0.2) | **{}** |",
        median_spread(&mut extra)
    );
    println!("| PSS with rings / without, MB (of it Pss_Shmem) | {pss_on:.1} ({shm_on:.1}) / {pss_off:.1} ({shm_off:.1}) |");
    println!("| SUB ring | {} |", ring("sub"));
    println!("| MAIN ring | {} |", ring("main"));
    println!();
}

/// Phase 4: the supervisor's CPU while a web UI grid watches 1, 4 and 16 cameras at the default
/// preview rate (one MJPEG stream per tile, as the grid opens them).
fn grid_preview_cost(window: f64, repeats: usize, tck: f64) {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    println!("### Web UI grid: supervisor CPU with one MJPEG viewer per camera at 5 fps ({repeats} windows of {window:.0} s; median (min–max))");
    println!();
    println!("| cameras in the grid | supervisor CPU % of one core | per camera |");
    println!("|---|---|---|");
    for n in [1usize, 4, 16] {
        let cameras: Vec<Value> = (0..n)
            .map(|i| {
                json!({"id": format!("g{i}"), "main_url": fc.url("motion/main"),
                    "sub_url": fc.url("motion/sub"), "recording": {"mode": "off"}})
            })
            .collect();
        let nvr = Nvr::start(json!({"heartbeat_interval_s": 5, "cameras": cameras}), &[]);
        for i in 0..n {
            wait_sub_up(&nvr, &format!("g{i}"));
        }
        // The viewers: raw MJPEG readers that drain their streams, as a browser's <img> does.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let viewers: Vec<_> = (0..n)
            .map(|i| {
                let (port, stop) = (nvr.port, std::sync::Arc::clone(&stop));
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    write!(
                        s,
                        "GET /api/cameras/g{i}/mjpeg?fps=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    )
                    .unwrap();
                    let mut buf = [0u8; 65536];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if s.read(&mut buf).map_or(true, |k| k == 0) {
                            break;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(5));
        let mut cpu = Vec::new();
        for _ in 0..repeats {
            let before = cpu_ticks(nvr.pid());
            let t = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(window));
            cpu.push(
                (cpu_ticks(nvr.pid()) - before) as f64 / tck / t.elapsed().as_secs_f64() * 100.0,
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut per: Vec<f64> = cpu.iter().map(|c| c / n as f64).collect();
        println!(
            "| {n} | {} | {} |",
            median_spread(&mut cpu),
            median_spread(&mut per)
        );
        drop(nvr);
        for v in viewers {
            let _ = v.join();
        }
    }
    println!();
}

/// Phase 1: one camera, worker vs ffmpeg floor on the same SUB stream.
fn decode_vs_floor(window: f64, repeats: usize, tck: f64) {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let sub = fc.url("motion/sub");
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 5, "cameras": [{
            "id": "bench", "main_url": fc.url("motion/main"), "sub_url": sub,
            "recording": {"mode": "off"}}]}),
        &[],
    );
    let worker = wait_sub_up(&nvr, "bench");
    let floor = ffmpeg(&["-i", &sub, "-f", "null", "-"]);
    std::thread::sleep(Duration::from_secs(5)); // warm-up
    let pids = [
        ("worker", worker),
        ("ffmpeg floor", floor.0.id()),
        ("fake camera", fc.pid()),
        ("supervisor", nvr.pid()),
    ];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); pids.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); pids.len()];
    let mut shm: Vec<f64> = Vec::new();
    for _ in 0..repeats {
        let before: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(window));
        let secs = t.elapsed().as_secs_f64();
        for (i, (_, pid)) in pids.iter().enumerate() {
            cpu[i].push((cpu_ticks(*pid) - before[i]) as f64 / tck / secs * 100.0);
            rss[i].push(rss_mb(*pid).0);
        }
        shm.push(rss_mb(worker).1);
    }
    println!("### Decode SUB 640×360@30 H.264: worker vs floor ({repeats} windows of {window:.0} s; median (min–max))");
    println!();
    println!("| process | CPU % of one core | RssAnon+RssFile MB |");
    println!("|---|---|---|");
    for (i, (name, _)) in pids.iter().enumerate() {
        println!(
            "| {name} | {} | {} |",
            median_spread(&mut cpu[i]),
            median_spread(&mut rss[i])
        );
    }
    let ratio: Vec<f64> = cpu[0].iter().zip(&cpu[1]).map(|(w, f)| w / f).collect();
    println!();
    println!(
        "Worker/floor CPU ratio: {} (target ≤ 1.3). Worker frame ring (RssShmem, not counted above): {:.1} MB.",
        median_spread(&mut ratio.clone()),
        shm.iter().copied().fold(0.0, f64::max)
    );

    // JPEG encode time of real frames, read from the ring in this process.
    let mut reader = Reader::attach_in(nvr.shm_dir(), "bench").expect("attach to the frame ring");
    let mut jpeg_ms = Vec::new();
    while jpeg_ms.len() < 100 {
        let _ = reader.wait_next(Duration::from_secs(1));
        if let Ok(Some((_, ms))) = reader.read_latest(|f| {
            let t = Instant::now();
            let _ = std::hint::black_box(nvr_preview::jpeg(f, nvr_preview::QUALITY));
            t.elapsed().as_secs_f64() * 1e3
        }) {
            jpeg_ms.push(ms);
        }
    }
    println!(
        "Snapshot JPEG encode (jpeg-encoder from the YCbCr planes, quality {}), 640×360: p50 {:.2} ms, p99 {:.2} ms (target < 1.5 ms).",
        nvr_preview::QUALITY,
        percentile(&jpeg_ms, 50.0),
        percentile(&jpeg_ms, 99.0)
    );
    drop(floor);
    drop(nvr);
    drop(fc);
    println!();
}

/// Phase 2: detection quality and latency on every scenario, one camera each.
fn detection_quality(window: f64) {
    let scenes = [
        ("motion", "sub"),
        ("motion", "sub_h265"),
        ("small", "sub"),
        ("noise", "sub"),
        ("lights", "sub"),
        ("clock", "sub"),
    ];
    let fc = FakeCam::start(FakeCamOpts::scenes(&[
        "motion", "small", "noise", "lights", "clock",
    ]))
    .unwrap();
    let cameras: Vec<Value> = scenes
        .iter()
        .map(|(scene, mount)| {
            json!({"id": format!("{scene}_{mount}"), "main_url": fc.url(&format!("{scene}/main")),
            "sub_url": fc.url(&format!("{scene}/{mount}")), "recording": {"mode": "off"}})
        })
        .collect();
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 1, "cameras": cameras}), &[]);
    for (scene, mount) in scenes {
        wait_sub_up(&nvr, &format!("{scene}_{mount}"));
    }
    let since = fc.n_events();
    let quality_s = window.max(60.0);
    let mut seen: Vec<Vec<Value>> = vec![Vec::new(); scenes.len()];
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < quality_s {
        let status = nvr.status();
        for (i, (scene, mount)) in scenes.iter().enumerate() {
            let c = camera_in(&status, &format!("{scene}_{mount}")).unwrap();
            let s = &c["motion"]["last_start"];
            if s.is_object() && seen[i].last() != Some(s) {
                seen[i].push(s.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let truth: Vec<Value> = fc
        .events()
        .into_iter()
        .skip(since)
        .filter(|e| e["event"] == "motion_start")
        .collect();
    println!("### Detection quality over {quality_s:.0} s (default motion settings)");
    println!();
    println!("| scene (SUB mount) | onsets | detected | missed | delay mean / worst, frames | false events / min |");
    println!("|---|---|---|---|---|---|");
    let mut latencies = Vec::new();
    for (i, (scene, mount)) in scenes.iter().enumerate() {
        let onsets: Vec<u64> = truth
            .iter()
            .filter(|e| e["scene"] == *scene)
            .map(|e| e["mono_ns"].as_u64().unwrap())
            .collect();
        let mut delays = Vec::new();
        let mut false_events = 0;
        for ev in &seen[i] {
            let first = ev["first_frame_mono_ns"].as_u64().unwrap() as f64;
            match onsets
                .iter()
                .map(|t| (first - *t as f64) / 1e6)
                .find(|d| (-40.0..=500.0).contains(d))
            {
                Some(d) => {
                    delays.push(d / (1000.0 / 30.0));
                    latencies.push(ev["latency_ms"].as_f64().unwrap());
                }
                None => false_events += 1,
            }
        }
        let delay = if delays.is_empty() {
            "–".to_string()
        } else {
            format!(
                "{:.1} / {:.1}",
                delays.iter().sum::<f64>() / delays.len() as f64,
                delays.iter().copied().fold(f64::MIN, f64::max)
            )
        };
        println!(
            "| {scene} ({mount}) | {} | {} | {} | {delay} | {:.1} |",
            onsets.len(),
            delays.len(),
            onsets.len().saturating_sub(delays.len()),
            false_events as f64 / (quality_s / 60.0)
        );
    }
    if !latencies.is_empty() {
        println!();
        println!(
            "Motion decision latency, packet arrival of the deciding frame → decision: p50 {:.2} ms, p99 {:.2} ms over {} onsets (target p99 < 15 ms).",
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.len()
        );
    }
}

/// Phase 3: a worker that records MAIN continuously against one that does not record, both on the
/// same camera, and the floor `ffmpeg -c copy` writing the same fragmented MP4; then motion clips.
fn recording_vs_floor(window: f64, repeats: usize, tck: f64) {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let (main, sub) = (fc.url("motion/main"), fc.url("motion/sub"));
    let cam = |id: &str, mode: &str| json!({"id": id, "main_url": main, "sub_url": sub, "recording": {"mode": mode}});
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 5, "cameras": [cam("rec", "continuous"), cam("norec", "off"),
            {"id": "motion", "main_url": main, "sub_url": sub, "recording": {"post_roll_s": 4}}]}),
        &[],
    );
    let rec = wait_sub_up(&nvr, "rec");
    let norec = wait_sub_up(&nvr, "norec");
    let out = nvr.dir.path().join("floor.mp4");
    let out = out.display().to_string();
    let floor = ffmpeg(&[
        "-i",
        &main,
        "-c",
        "copy",
        "-f",
        "mp4",
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof",
        "-y",
        &out,
    ]);
    std::thread::sleep(Duration::from_secs(5)); // warm-up
    let pids = [rec, norec, floor.0.id()];
    let (mut extra, mut floor_cpu, mut ratio, mut rss) = (vec![], vec![], vec![], vec![]);
    let mut starts: Vec<Value> = Vec::new();
    for _ in 0..repeats {
        let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < window {
            let s = &nvr.camera("motion")["recordings"]["last_started"];
            if s.is_object() && starts.last() != Some(s) {
                starts.push(s.clone());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let secs = t.elapsed().as_secs_f64();
        let pct: Vec<f64> = pids
            .iter()
            .zip(&before)
            .map(|(p, b)| (cpu_ticks(*p) - b) as f64 / tck / secs * 100.0)
            .collect();
        extra.push(pct[0] - pct[1]);
        floor_cpu.push(pct[2]);
        ratio.push((pct[0] - pct[1]) / pct[2]);
        rss.push(rss_mb(rec).0 - rss_mb(norec).0);
    }
    println!("### Recording MAIN 1920×1080@30 H.264 4 Mbit/s: extra worker CPU vs the floor ({repeats} windows of {window:.0} s; median (min–max))");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| worker recording − worker not recording, CPU % of one core | {} |",
        median_spread(&mut extra)
    );
    println!(
        "| floor `ffmpeg -c copy -f mp4` (fragmented), CPU % of one core | {} |",
        median_spread(&mut floor_cpu)
    );
    println!(
        "| ratio extra / floor (target ≤ 1.2) | {} |",
        median_spread(&mut ratio)
    );
    println!(
        "| extra RssAnon+RssFile of the recording worker (pre-roll buffer), MB | {} |",
        median_spread(&mut rss)
    );
    let open_ms: Vec<f64> = starts
        .iter()
        .filter_map(|s| s["open_ms"].as_f64())
        .collect();
    let offset_s: Vec<f64> = starts
        .iter()
        .filter_map(|s| s["first_frame_offset_ms"].as_f64())
        .map(|ms| ms / 1e3)
        .collect();
    println!();
    if open_ms.is_empty() {
        println!("No motion clip started (no onset in the window?).");
    } else {
        println!(
            "Motion clips ({} onsets, pre_roll_s 5, post_roll_s 4, MAIN GOP 2 s): motion decision → file open with the pre-roll written p50 {:.1} ms, max {:.1} ms (target < 200 ms); first frame relative to the onset median {:.2} s, latest {:.2} s (target ≤ −5 s).",
            open_ms.len(),
            percentile(&open_ms, 50.0),
            percentile(&open_ms, 100.0),
            percentile(&offset_s, 50.0),
            percentile(&offset_s, 100.0),
        );
    }
    println!();
}
