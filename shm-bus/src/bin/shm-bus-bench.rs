//! Benchmark of the frame ring: publish cost of a 640×360 frame (decoder-like strided copy into
//! the slot) and publish → reader wake-up latency in another process, with no reader, with a live
//! reader, and with an extra reader that is SIGSTOPped or SIGKILLed while asleep on the futex.
//!
//! Then the packet ring: publish cost of packets of a SUB-like and a MAIN-like size, paced like a
//! camera, with nobody reading (what the worker pays per packet when nobody watches).
//!
//! `cargo run --release -p shm-bus --bin shm-bus-bench [-- --frames N --fps F]`
//! (`--reader <camera>` is the child mode it spawns itself.)

use shm_bus::{Geometry, PacketWriter, PixelFormat, Reader, StreamKind, Track, Wait, Writer};
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const SLOTS: usize = 8;
/// A decoder's frames have padded rows; copying them row by row is what the worker does.
const SRC_PAD: usize = 32;

fn quantiles_us(mut ns: Vec<u64>) -> (f64, f64) {
    if ns.is_empty() {
        return (0.0, 0.0);
    }
    ns.sort_unstable();
    let q = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    (q(0.5), q(0.99))
}

/// A decoded frame as a decoder would hand it over: three planes with padded strides.
struct Source {
    planes: [(Vec<u8>, usize); 3],
}

impl Source {
    fn new() -> Source {
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let plane = |w: usize, h: usize, seed: u8| {
            let stride = w + SRC_PAD;
            let data = (0..stride * h)
                .map(|i| (i as u8).wrapping_mul(seed))
                .collect();
            (data, stride)
        };
        Source {
            planes: [
                plane(w, h, 3),
                plane(w.div_ceil(2), h.div_ceil(2), 5),
                plane(w.div_ceil(2), h.div_ceil(2), 7),
            ],
        }
    }
}

/// Publishes one frame copied from `src`, stamping CLOCK_MONOTONIC into the first 8 bytes of Y
/// as the very last write, so a reader can measure publish → wake-up. Returns the publish time.
fn publish(writer: &mut Writer, src: &Source) -> u64 {
    let t0 = Instant::now();
    let now = shm_bus::monotonic_ns();
    writer.publish(0, now, now, |planes| {
        for (dst, (data, stride)) in planes.iter_mut().zip(&src.planes) {
            let n = dst.width_bytes.min(*stride);
            for row in 0..dst.rows {
                dst.data[row * dst.stride..row * dst.stride + n]
                    .copy_from_slice(&data[row * stride..row * stride + n]);
            }
        }
        planes[0].data[..8].copy_from_slice(&shm_bus::monotonic_ns().to_le_bytes());
    });
    t0.elapsed().as_nanos() as u64
}

/// Child mode: wakes on every frame and records now − stamp; exits 1 s after frames stop.
fn reader_child(camera: &str) -> Result<(), String> {
    let mut reader = Reader::attach(camera).map_err(|e| e.to_string())?;
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut latencies = Vec::new();
    let mut missed = 0u64;
    loop {
        match reader
            .wait_next(Duration::from_secs(1))
            .map_err(|e| e.to_string())?
        {
            Wait::Frame(_) => {
                let woke = shm_bus::monotonic_ns();
                match reader.read_latest(|f| {
                    let (y, _) = f.y();
                    u64::from_le_bytes(y[..8].try_into().expect("8 bytes"))
                }) {
                    Ok(Some((_, stamp))) => latencies.push(woke.saturating_sub(stamp)),
                    _ => missed += 1,
                }
            }
            Wait::Timeout if !latencies.is_empty() => break,
            Wait::Timeout => {}
            Wait::GenerationChanged => break,
        }
    }
    let n = latencies.len();
    let (p50, p99) = quantiles_us(latencies);
    println!("{n} {missed} {p50:.1} {p99:.1}");
    Ok(())
}

/// A spawned reader child.
struct ReaderChild(Child, BufReader<std::process::ChildStdout>);

impl ReaderChild {
    fn spawn(camera: &str) -> ReaderChild {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .args(["--reader", camera])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn reader");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("reader ready");
        assert_eq!(line.trim(), "ready", "reader failed to attach");
        ReaderChild(child, out)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&self.0), sig);
    }

    /// (frames, missed, wake p50 µs, wake p99 µs)
    fn summary(mut self) -> String {
        let mut line = String::new();
        self.1.read_line(&mut line).expect("reader summary");
        let _ = self.0.wait();
        line.trim().to_owned()
    }
}

impl Drop for ReaderChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scenario(name: &str, writer: &mut Writer, src: &Source, frames: usize, fps: f64) {
    // Unpaced publish cost.
    let unpaced: Vec<u64> = (0..frames.max(1000))
        .map(|_| publish(writer, src))
        .collect();
    let (u50, u99) = quantiles_us(unpaced);
    let period = Duration::from_secs_f64(1.0 / fps);
    let paced = |writer: &mut Writer, n: usize| {
        let start = Instant::now();
        let mut took = Vec::with_capacity(n);
        for i in 0..n {
            took.push(publish(writer, src));
            let next = start + period * (i as u32 + 1);
            if let Some(rest) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(rest);
            }
        }
        quantiles_us(took)
    };
    // Paced like a camera (caches cool down between frames), nobody live waiting.
    let (q50, q99) = paced(writer, frames / 2);
    // Paced, with a live reader in another process asleep on the futex, measuring wake-ups.
    std::thread::sleep(Duration::from_millis(100));
    let reader = ReaderChild::spawn(writer.camera_id());
    let (p50, p99) = paced(writer, frames);
    let summary = reader.summary();
    let f: Vec<&str> = summary.split(' ').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("?");
    let row = |label: String, p50: String, p99: String| {
        println!("  {label:<42} p50 {p50:>7} µs  p99 {p99:>7} µs");
    };
    let us = |v: f64| format!("{v:.1}");
    println!("{name}");
    row("publish, unpaced:".into(), us(u50), us(u99));
    row(
        format!("publish, {fps} fps, no live reader:"),
        us(q50),
        us(q99),
    );
    row(
        format!("publish, {fps} fps, a live reader sleeps:"),
        us(p50),
        us(p99),
    );
    row(
        format!(
            "publish -> wake-up in another process ({} woken, {} torn):",
            field(0),
            field(1)
        ),
        field(2).into(),
        field(3).into(),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut frames, mut fps) = (500usize, 100.0f64);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--reader" => {
                if let Err(e) = reader_child(&value()) {
                    eprintln!("shm-bus-bench reader: {e}");
                    std::process::exit(2);
                }
                return;
            }
            "--frames" => frames = value().parse().expect("--frames N"),
            "--fps" => fps = value().parse().expect("--fps F"),
            _ => {
                eprintln!("usage: shm-bus-bench [--frames N] [--fps F]");
                std::process::exit(2);
            }
        }
    }
    let camera = format!("bench-{}", std::process::id());
    let geometry = Geometry {
        width: WIDTH,
        height: HEIGHT,
        format: PixelFormat::Yuv420p,
    };
    let mut writer = Writer::create(&camera, geometry, SLOTS).unwrap_or_else(|e| {
        eprintln!("shm-bus-bench: {e}");
        std::process::exit(1);
    });
    let src = Source::new();
    println!(
        "shm-bus-bench: {WIDTH}x{HEIGHT} YUV 4:2:0, {SLOTS} slots, {frames} paced frames per scenario"
    );
    scenario("no other reader:", &mut writer, &src, frames, fps);

    let stopped = ReaderChild::spawn(&camera);
    std::thread::sleep(Duration::from_millis(200)); // let it fall asleep on the futex
    stopped.signal(rustix::process::Signal::STOP);
    scenario(
        "+ a reader SIGSTOPped while asleep on the futex:",
        &mut writer,
        &src,
        frames,
        fps,
    );

    let killed = ReaderChild::spawn(&camera);
    std::thread::sleep(Duration::from_millis(200));
    killed.signal(rustix::process::Signal::KILL);
    scenario(
        "+ the stopped one and a reader SIGKILLed while asleep (leaked waiter count):",
        &mut writer,
        &src,
        frames,
        fps,
    );

    stopped.signal(rustix::process::Signal::CONT);
    packets(&camera, frames, fps);
}

/// Publish cost of packets into a packet ring nobody reads, once the ring has wrapped: (label, ring
/// MiB, packet bytes, a keyframe of 8× that every 30th).
fn packets(camera: &str, n: usize, fps: f64) {
    println!("packet ring, nobody reading, {n} packets paced at {fps} per second:");
    for (label, kind, mib, bytes) in [
        (
            "SUB-like 1.5 kB packets, 4 MiB ring",
            StreamKind::Sub,
            4u64,
            1_500usize,
        ),
        (
            "MAIN-like 16 kB packets, 16 MiB ring",
            StreamKind::Main,
            16,
            16_000,
        ),
    ] {
        let mut w = PacketWriter::create(camera, kind, mib << 20).unwrap_or_else(|e| {
            eprintln!("shm-bus-bench: {e}");
            std::process::exit(1);
        });
        let small = vec![0x5au8; bytes];
        let key = vec![0xa5u8; bytes * 8];
        // One lap first, unpaced: the first write of each page faults it in (a one-time cost per
        // ring that a worker pays in its first minute), which is not what a packet costs after.
        let mut filled = 0;
        while filled < w.capacity() + (1 << 20) {
            w.publish(Track::Video, 0, 0, false, 0, &small)
                .expect("fits");
            filled += small.len() as u64;
        }
        let period = Duration::from_secs_f64(1.0 / fps);
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let data = if i % 30 == 0 { &key } else { &small };
            let t0 = Instant::now();
            let now = shm_bus::monotonic_ns();
            w.publish(
                Track::Video,
                i as i64 * 3000,
                i as i64 * 3000,
                i % 30 == 0,
                now,
                data,
            )
            .expect("fits");
            samples.push(t0.elapsed().as_nanos() as u64);
            std::thread::sleep(period);
        }
        let mean_us = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1e3;
        let (p50, p99) = quantiles_us(samples);
        println!(
            "  {label}: publish p50 {p50:.1} µs, p99 {p99:.1} µs, mean {mean_us:.1} µs \
             = {:.4} % of a core at 30 packets/s",
            mean_us * 30.0 / 1e6 * 100.0
        );
    }
}
