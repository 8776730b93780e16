//! `nvr-preview <camera_id> [--seconds N] [--snapshot PATH]`: a preview client in its own process.
//!
//! Attaches read-only to the camera's shared-memory frame ring (no lock, no effect on the worker) and
//! prints, once a second, a JSON line with fps and frame age (decode-done → now). `--snapshot PATH`
//! writes the next frame as JPEG and exits.
//!
//! `nvr-preview --packets <camera_id> [--stream sub|main] [--seconds N]` attaches to the camera's
//! packet ring instead and prints, once a second, the stream's codec and size, video fps, GOP
//! (frames and seconds between the last two keyframes), bitrate, and the age of the newest packet
//! (arrival → now), with the ring's generation and how many packets this reader lost.

use anyhow::{bail, Context};
use shm_bus::{PacketReader, PacketWait, Read, Reader, StreamKind, Track, Wait};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: nvr-preview <camera_id> [--seconds N] [--snapshot PATH]\n       \
                     nvr-preview --packets <camera_id> [--stream sub|main] [--seconds N]";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut camera = None;
    let mut seconds = None;
    let mut snapshot = None;
    let mut packets = false;
    let mut stream = StreamKind::Sub;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--packets" => packets = true,
            "--stream" => {
                stream = args
                    .next()
                    .context(USAGE)?
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("{e}\n{USAGE}"))?
            }
            "--seconds" => seconds = Some(args.next().context(USAGE)?.parse::<f64>()?),
            "--snapshot" => snapshot = Some(args.next().context(USAGE)?),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => camera = Some(s.to_string()),
        }
    }
    let camera = camera.context(USAGE)?;
    if packets {
        return watch_packets(&camera, stream, seconds);
    }
    let mut reader = Reader::attach(&camera).with_context(|| {
        format!("cannot attach to camera {camera:?}'s frame ring; is its worker running?")
    })?;

    if let Some(path) = snapshot {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Instant::now() > deadline {
                bail!("no intact frame from camera {camera:?} within 10 s");
            }
            match reader.wait_next(Duration::from_secs(1))? {
                Wait::GenerationChanged => reader.reattach()?,
                Wait::Timeout => continue,
                Wait::Frame(_) => {}
            }
            let Some((meta, jpeg)) =
                reader.read_latest(|f| nvr_preview::jpeg(f, nvr_preview::QUALITY))?
            else {
                continue; // torn: the writer lapped us; take the next one
            };
            let jpeg = jpeg?;
            std::fs::write(&path, &jpeg).with_context(|| format!("cannot write {path}"))?;
            let g = reader.geometry();
            println!(
                "{{\"path\":{path:?},\"width\":{},\"height\":{},\"seq\":{},\"bytes\":{}}}",
                g.width,
                g.height,
                meta.seq,
                jpeg.len()
            );
            return Ok(());
        }
    }

    let until = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut window = (Instant::now(), 0u32, 0u32);
    let mut last_age_ms = 0.0;
    while until.is_none_or(|u| Instant::now() < u) {
        match reader.wait_next(Duration::from_secs(1))? {
            Wait::GenerationChanged => reader.reattach()?,
            Wait::Timeout => {}
            Wait::Frame(_) => match reader.read_latest(|_| ())? {
                Some((meta, ())) => {
                    window.1 += 1;
                    last_age_ms =
                        shm_bus::monotonic_ns().saturating_sub(meta.decoded_ns) as f64 / 1e6;
                }
                None => window.2 += 1,
            },
        }
        let elapsed = window.0.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            let g = reader.geometry();
            println!(
                "{{\"camera\":{camera:?},\"fps\":{:.1},\"age_ms\":{last_age_ms:.2},\"torn\":{},\"generation\":{},\"width\":{},\"height\":{}}}",
                f64::from(window.1) / elapsed,
                window.2,
                reader.generation(),
                g.width,
                g.height
            );
            window = (Instant::now(), 0, 0);
        }
    }
    Ok(())
}

/// What one second of packets looked like.
#[derive(Default)]
struct Window {
    video: u32,
    bytes: u64,
    lost: u64,
}

/// `--packets`: reads every packet of the ring as it comes and prints a summary once a second.
fn watch_packets(camera: &str, stream: StreamKind, seconds: Option<f64>) -> anyhow::Result<()> {
    let mut reader = PacketReader::attach(camera, stream).with_context(|| {
        format!("cannot attach to camera {camera:?}'s {stream} packet ring; is its worker running (and, for main, recording)?")
    })?;
    let until = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    // From the newest keyframe, as a viewer starts: the GOP is known one keyframe sooner.
    let mut next = reader.newest_keyframe_seq().unwrap_or(reader.next_seq());
    let mut buf = Vec::new();
    let mut window = (Instant::now(), Window::default());
    // (seq, arrival) of the last two video keyframes, and the video packets between them.
    let mut last_key: Option<(u64, u64)> = None;
    let mut video_since_key = 0u32;
    let mut gop: Option<(u32, f64)> = None;
    let mut newest_arrival: Option<u64> = None;
    while until.is_none_or(|u| Instant::now() < u) {
        match reader.read(next, &mut buf)? {
            Read::Packet(meta) => {
                next += 1;
                window.1.bytes += u64::from(meta.len);
                newest_arrival = Some(meta.arrival_ns);
                if meta.track == Track::Video {
                    window.1.video += 1;
                    if meta.keyframe {
                        if let Some((_, at)) = last_key {
                            gop = Some((
                                video_since_key,
                                meta.arrival_ns.saturating_sub(at) as f64 / 1e9,
                            ));
                        }
                        last_key = Some((meta.seq, meta.arrival_ns));
                        video_since_key = 0;
                    }
                    video_since_key += 1;
                }
                continue;
            }
            Read::NotYet => {
                if reader.wait(Duration::from_millis(200))? == PacketWait::Restarted {
                    reader.reattach()?;
                    next = reader.next_seq();
                }
            }
            Read::Overwritten => {
                let resume = reader.newest_keyframe_seq().unwrap_or(reader.next_seq());
                window.1.lost += resume.saturating_sub(next).max(1);
                next = resume;
            }
            Read::Restarted => {
                reader.reattach()?;
                next = reader.next_seq();
                last_key = None;
            }
        }
        let elapsed = window.0.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            let params = reader.params();
            let (codec, width, height, audio) = match &params {
                Some((_, p)) => (
                    format!("{:?}", p.codec.as_str()),
                    p.width,
                    p.height,
                    p.audio.as_ref().map_or("null".to_string(), |a| {
                        format!(
                            "{{\"sample_rate\":{},\"channels\":{}}}",
                            a.sample_rate, a.channels
                        )
                    }),
                ),
                None => ("null".to_string(), 0, 0, "null".to_string()),
            };
            let age_ms = newest_arrival.map_or("null".to_string(), |a| {
                format!(
                    "{:.1}",
                    shm_bus::monotonic_ns().saturating_sub(a) as f64 / 1e6
                )
            });
            let (gop_frames, gop_s) = gop
                .map_or(("null".to_string(), "null".to_string()), |(n, s)| {
                    (n.to_string(), format!("{s:.2}"))
                });
            println!(
                "{{\"camera\":{camera:?},\"stream\":\"{stream}\",\"codec\":{codec},\"width\":{width},\"height\":{height},\
                 \"fps\":{:.1},\"gop_frames\":{gop_frames},\"gop_s\":{gop_s},\"kbit_s\":{:.1},\"age_ms\":{age_ms},\
                 \"audio\":{audio},\"generation\":{},\"params_version\":{},\"lost\":{},\"oversize_drops\":{}}}",
                f64::from(window.1.video) / elapsed,
                window.1.bytes as f64 * 8.0 / 1e3 / elapsed,
                reader.generation(),
                params.as_ref().map_or(0, |(v, _)| *v),
                window.1.lost,
                reader.oversize_drops(),
            );
            window = (Instant::now(), Window::default());
        }
    }
    Ok(())
}
