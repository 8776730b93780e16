//! `nvr-preview <camera_id> [--seconds N] [--snapshot PATH]`: a preview client in its own process.
//!
//! Attaches read-only to the camera's shared-memory frame ring (no lock, no effect on the worker) and
//! prints, once a second, a JSON line with fps and frame age (decode-done → now). `--snapshot PATH`
//! writes the next frame as JPEG and exits.

use anyhow::{bail, Context};
use shm_bus::{Reader, Wait};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: nvr-preview <camera_id> [--seconds N] [--snapshot PATH]";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut camera = None;
    let mut seconds = None;
    let mut snapshot = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = Some(args.next().context(USAGE)?.parse::<f64>()?),
            "--snapshot" => snapshot = Some(args.next().context(USAGE)?),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => camera = Some(s.to_string()),
        }
    }
    let camera = camera.context(USAGE)?;
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
