//! Cross-process test helper: `write` publishes test-pattern frames (paced or flat out), `read`
//! attaches as a reader and verifies every intact frame against the pattern. Each prints a
//! `{"event":"ready",...}` line once attached and a JSON summary line when done.
//!
//! `pwrite` and `pread` do the same with a packet ring (`--kind sub|main`, `--capacity BYTES`):
//! packets of varying size in the `test_pattern::packet` pattern, a keyframe every 30th; the reader
//! reads every packet in order from the newest keyframe, skipping to the newest keyframe when it
//! falls behind, and checks each intact one against the pattern. `pread --never-read` attaches and
//! sleeps without reading.
//!
//! ```text
//! shm-bus-stress write <camera> [--seconds S] [--frames N] [--width W] [--height H] [--slots N] [--fps F]
//! shm-bus-stress read  <camera> [--seconds S] [--frames N]
//! shm-bus-stress pwrite <camera> [--kind K] [--capacity B] [--seconds S] [--frames N] [--fps F]
//! shm-bus-stress pread  <camera> [--kind K] [--seconds S] [--frames N] [--never-read 1]
//! ```
//! `--fps 0` (the default) publishes unpaced. `$NVR_SHM_DIR` picks the segment directory.

use shm_bus::{
    test_pattern, Codec, Geometry, PacketReader, PacketWait, PacketWriter, PixelFormat, Read,
    Reader, StreamKind, StreamParams, Track, Wait, Writer,
};
use std::io::Write as _;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: shm-bus-stress (write|read|pwrite|pread) <camera> [--seconds S] \
                     [--frames N] [--width W] [--height H] [--slots N] [--fps F] [--kind sub|main] \
                     [--capacity BYTES] [--never-read 1]";

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
    kind: StreamKind,
    capacity: u64,
    never_read: bool,
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
        kind: StreamKind::Sub,
        capacity: 1 << 20,
        never_read: false,
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
            "--kind" => a.kind = v.parse()?,
            "--capacity" => a.capacity = v.parse().map_err(|_| bad())?,
            "--never-read" => a.never_read = v == "1",
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

/// The parameters `pwrite` stores.
pub fn pattern_params() -> StreamParams {
    StreamParams {
        codec: Codec::H264,
        width: 640,
        height: 360,
        parameter_sets: vec![vec![0x67, 1, 2, 3], vec![0x68, 4]],
        audio: None,
    }
}

fn pwrite(a: &Args) -> Result<(), String> {
    let mut writer =
        PacketWriter::create(&a.camera, a.kind, a.capacity).map_err(|e| e.to_string())?;
    writer
        .set_params(&pattern_params())
        .map_err(|e| e.to_string())?;
    say(&format!(
        "{{\"event\":\"ready\",\"generation\":{},\"pid\":{}}}",
        writer.generation(),
        std::process::id()
    ));
    let max = writer.max_packet() as usize;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let period = (a.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / a.fps));
    let mut samples = Vec::new();
    let mut n = 0u64;
    while n < a.frames && Instant::now() < until {
        let seq = writer.next_seq();
        let data = test_pattern::packet(seq, max);
        let t0 = Instant::now();
        let now = shm_bus::monotonic_ns();
        writer
            .publish(
                Track::Video,
                seq as i64 * 3000,
                seq as i64 * 3000,
                seq % 30 == 1,
                now,
                &data,
            )
            .map_err(|e| e.to_string())?;
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
        "{{\"event\":\"done\",\"packets\":{n},\"generation\":{},\"publish_us_p50\":{:.1},\"publish_us_p99\":{:.1}}}",
        writer.generation(),
        quantile_us(&samples, 0.5),
        quantile_us(&samples, 0.99)
    ));
    Ok(())
}

fn pattach_retrying(a: &Args, until: Instant) -> Result<PacketReader, String> {
    loop {
        match PacketReader::attach(&a.camera, a.kind) {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() >= until => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn pread(a: &Args) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let mut reader = pattach_retrying(a, until)?;
    say(&format!(
        "{{\"event\":\"ready\",\"generation\":{},\"registered\":{}}}",
        reader.generation(),
        reader.registers_as_waiter()
    ));
    if a.never_read {
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        say("{\"event\":\"done\"}");
        return Ok(());
    }
    let (mut intact, mut overwritten, mut corrupt, mut restarts) = (0u64, 0u64, 0u64, 0u64);
    let mut params_ok = reader.params().map(|(_, p)| p) == Some(pattern_params());
    let mut next: Option<u64> = None;
    let mut buf = Vec::new();
    while intact < a.frames && Instant::now() < until {
        let Some(seq) = next.or_else(|| reader.newest_keyframe_seq()) else {
            match reader
                .wait(Duration::from_millis(100))
                .map_err(|e| e.to_string())?
            {
                PacketWait::Restarted => {
                    if let Ok(r) = pattach_retrying(a, until) {
                        reader = r;
                        restarts += 1;
                    }
                }
                PacketWait::Published(_) | PacketWait::Timeout => {}
            }
            continue;
        };
        match reader.read(seq, &mut buf).map_err(|e| e.to_string())? {
            Read::Packet(meta) => {
                if meta.seq == seq
                    && meta.len as usize == buf.len()
                    && test_pattern::verify_packet(seq, &buf)
                {
                    intact += 1;
                } else {
                    corrupt += 1;
                    eprintln!("corrupt packet seq {seq} passed validation");
                }
                next = Some(seq + 1);
            }
            Read::NotYet => {
                reader
                    .wait(Duration::from_millis(100))
                    .map_err(|e| e.to_string())?;
                next = Some(seq);
            }
            Read::Overwritten => {
                overwritten += 1;
                next = None;
            }
            Read::Restarted => {
                if let Ok(r) = pattach_retrying(a, until) {
                    reader = r;
                    restarts += 1;
                    params_ok &= reader.params().map(|(_, p)| p) == Some(pattern_params());
                }
                next = None;
            }
        }
    }
    say(&format!(
        "{{\"event\":\"done\",\"intact\":{intact},\"overwritten\":{overwritten},\"corrupt\":{corrupt},\
         \"restarts\":{restarts},\"params_ok\":{params_ok},\"generation\":{}}}",
        reader.generation()
    ));
    Ok(())
}

fn main() {
    let result = parse().and_then(|a| match a.mode.as_str() {
        "write" => write(&a),
        "read" => read(&a),
        "pwrite" => pwrite(&a),
        "pread" => pread(&a),
        _ => Err(USAGE.to_owned()),
    });
    if let Err(e) = result {
        eprintln!("shm-bus-stress: {e}");
        std::process::exit(2);
    }
}
