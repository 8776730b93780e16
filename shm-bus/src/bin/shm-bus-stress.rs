//! Cross-process test helper: `write` publishes test-pattern frames (paced or flat out), `read`
//! attaches as a reader and verifies every intact frame against the pattern. Each prints a
//! `{"event":"ready",...}` line once attached and a JSON summary line when done.
//!
//! ```text
//! shm-bus-stress write <camera> [--seconds S] [--frames N] [--width W] [--height H] [--slots N] [--fps F]
//! shm-bus-stress read  <camera> [--seconds S] [--frames N]
//! ```
//! `--fps 0` (the default) publishes unpaced. `$NVR_SHM_DIR` picks the segment directory.

use shm_bus::{test_pattern, Geometry, PixelFormat, Reader, Wait, Writer};
use std::io::Write as _;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: shm-bus-stress (write|read) <camera> [--seconds S] [--frames N] \
                     [--width W] [--height H] [--slots N] [--fps F]";

/// Parsed command line.
struct Args {
    mode: String,
    camera: String,
    seconds: f64,
    frames: u64,
    width: u32,
    height: u32,
    slots: usize,
    fps: f64,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or(USAGE)?;
    let camera = it.next().ok_or(USAGE)?;
    let mut a = Args {
        mode,
        camera,
        seconds: 10.0,
        frames: u64::MAX,
        width: 640,
        height: 360,
        slots: 8,
        fps: 0.0,
    };
    while let Some(flag) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        let bad = || format!("bad value {v:?} for {flag}");
        match flag.as_str() {
            "--seconds" => a.seconds = v.parse().map_err(|_| bad())?,
            "--frames" => a.frames = v.parse().map_err(|_| bad())?,
            "--width" => a.width = v.parse().map_err(|_| bad())?,
            "--height" => a.height = v.parse().map_err(|_| bad())?,
            "--slots" => a.slots = v.parse().map_err(|_| bad())?,
            "--fps" => a.fps = v.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}; {USAGE}")),
        }
    }
    Ok(a)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The `q`-quantile of sorted nanosecond samples, in microseconds.
fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1e3
}

fn write(a: &Args) -> Result<(), String> {
    let geometry = Geometry {
        width: a.width,
        height: a.height,
        format: PixelFormat::Yuv420p,
    };
    let mut writer = Writer::create(&a.camera, geometry, a.slots).map_err(|e| e.to_string())?;
    say(&format!(
        "{{\"event\":\"ready\",\"generation\":{},\"pid\":{}}}",
        writer.generation(),
        std::process::id()
    ));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let mut samples = Vec::new();
    let mut n = 0u64;
    while n < a.frames && Instant::now() < until {
        let t0 = Instant::now();
        let now = shm_bus::monotonic_ns();
        let seq = writer.next_seq();
        writer.publish(n as i64, now, now, |planes| test_pattern::fill(seq, planes));
        samples.push(t0.elapsed().as_nanos() as u64);
        n += 1;
        if let Some(p) = period {
            let next = start + p * n as u32;
            if let Some(rest) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(rest);
            }
        }
    }
    samples.sort_unstable();
    say(&format!(
        "{{\"event\":\"done\",\"frames\":{n},\"publish_us_p50\":{:.1},\"publish_us_p99\":{:.1}}}",
        quantile_us(&samples, 0.5),
        quantile_us(&samples, 0.99)
    ));
    Ok(())
}

fn attach_retrying(camera: &str, until: Instant) -> Result<Reader, String> {
    loop {
        match Reader::attach(camera) {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= until => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn read(a: &Args) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let mut reader = attach_retrying(&a.camera, until)?;
    say(&format!(
        "{{\"event\":\"ready\",\"generation\":{},\"registered\":{}}}",
        reader.generation(),
        reader.registers_as_waiter()
    ));
    let (mut intact, mut torn, mut corrupt) = (0u64, 0u64, 0u64);
    let mut generations = vec![reader.generation()];
    let (mut first_seq, mut last_seq) = (None, 0u64);
    while intact < a.frames && Instant::now() < until {
        match reader
            .wait_next(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        {
            Wait::Timeout => {}
            Wait::GenerationChanged => {
                if let Ok(r) = attach_retrying(&a.camera, until) {
                    reader = r;
                    generations.push(reader.generation());
                }
            }
            Wait::Frame(_) => {
                let got = reader
                    .read_latest(|f| test_pattern::verify(f.meta.seq, f))
                    .map_err(|e| e.to_string())?;
                match got {
                    Some((meta, true)) => {
                        intact += 1;
                        first_seq.get_or_insert(meta.seq);
                        last_seq = meta.seq;
                    }
                    Some((meta, false)) => {
                        corrupt += 1;
                        eprintln!("corrupt frame seq {} passed validation", meta.seq);
                    }
                    None => torn += 1,
                }
            }
        }
    }
    say(&format!(
        "{{\"event\":\"done\",\"intact\":{intact},\"torn\":{torn},\"corrupt\":{corrupt},\
         \"first_seq\":{},\"last_seq\":{last_seq},\"generations\":{generations:?},\
         \"width\":{},\"height\":{}}}",
        first_seq.unwrap_or(0),
        reader.geometry().width,
        reader.geometry().height
    ));
    Ok(())
}

fn main() {
    let result = parse().and_then(|a| match a.mode.as_str() {
        "write" => write(&a),
        "read" => read(&a),
        _ => Err(USAGE.to_owned()),
    });
    if let Err(e) = result {
        eprintln!("shm-bus-stress: {e}");
        std::process::exit(2);
    }
}
