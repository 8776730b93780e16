//! Replays video files through the motion detector, as fast as they decode, and prints its
//! decisions: for tuning `motion` settings on a recording of your own camera, and for checking the
//! detector over a whole clip matrix (`tests/fakecam/make_matrix.py`) without real-time streaming.
//!
//! ```text
//! motion_replay CLIP... [--loops N] [--threshold T] [--min-object F] [--min-motion-s S] [--min-area P]
//! motion_replay --matrix DIR [--loops N] [...]     # every cell of DIR/manifest.json against its ground truth
//! ```
//!
//! Frames are decoded by the `ffmpeg` command (grey, at the file's size) and timed by their frame
//! rate, so a clip replays exactly as a camera would send it, minus the network.

use anyhow::{bail, Context, Result};
use nvr_proto::settings::MotionSettings;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use worker::motion::{Detector, Event, Luma};

struct Args {
    clips: Vec<PathBuf>,
    matrix: Option<PathBuf>,
    loops: u32,
    motion: MotionSettings,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        clips: Vec::new(),
        matrix: None,
        loops: 3,
        motion: MotionSettings::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--matrix" => a.matrix = Some(value("--matrix")?.into()),
            "--loops" => a.loops = value("--loops")?.parse()?,
            "--threshold" => a.motion.threshold = value("--threshold")?.parse()?,
            "--min-object" => a.motion.min_object = value("--min-object")?.parse()?,
            "--min-motion-s" => a.motion.min_motion_s = value("--min-motion-s")?.parse()?,
            "--min-area" => a.motion.min_area = value("--min-area")?.parse()?,
            "--post-motion-s" => a.motion.post_motion_s = value("--post-motion-s")?.parse()?,
            "-h" | "--help" => {
                println!("usage: motion_replay CLIP... | --matrix DIR  [--loops N] [--threshold T] [--min-object F] [--min-motion-s S] [--min-area P] [--post-motion-s S]");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}"),
            clip => a.clips.push(clip.into()),
        }
    }
    if a.clips.is_empty() && a.matrix.is_none() {
        bail!("give clips or --matrix DIR (see --help)");
    }
    Ok(a)
}

/// `(width, height, fps)` of a file's video, from ffprobe.
fn probe(clip: &Path) -> Result<(usize, usize, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height,r_frame_rate", "-of", "json"])
        .arg(clip)
        .output()
        .context("running ffprobe")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("ffprobe output")?;
    let s = &v["streams"][0];
    let rate = s["r_frame_rate"].as_str().unwrap_or("0/1");
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let fps = n.parse::<f64>()? / d.parse::<f64>()?.max(1.0);
    let w = s["width"].as_u64().context("no width")? as usize;
    let h = s["height"].as_u64().context("no height")? as usize;
    Ok((w, h, fps))
}

/// A decision at a time (seconds since the first frame).
enum Decision {
    Start { first_s: f64, decided_s: f64 },
    End { at_s: f64 },
}

fn replay(clip: &Path, loops: u32, motion: &MotionSettings) -> Result<(f64, Vec<Decision>)> {
    let (w, h, fps) = probe(clip)?;
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-stream_loop"])
        .arg((loops.max(1) - 1).to_string())
        .arg("-i")
        .arg(clip)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .context("running ffmpeg")?;
    let mut out = child.stdout.take().context("no stdout")?;
    let mut det = Detector::new(motion.clone(), w, h);
    let mut frame = vec![0u8; w * h];
    let mut decisions = Vec::new();
    let frame_ns = 1e9 / fps;
    let mut i = 0u64;
    while out.read_exact(&mut frame).is_ok() {
        let t_ns = (i as f64 * frame_ns) as u64;
        let luma = Luma {
            data: &frame,
            stride: w,
            width: w,
            height: h,
        };
        match det.process(luma, t_ns, i as i64).event {
            Some(Event::Start { first_frame_ns, .. }) => decisions.push(Decision::Start {
                first_s: first_frame_ns as f64 / 1e9,
                decided_s: t_ns as f64 / 1e9,
            }),
            Some(Event::End { .. }) => decisions.push(Decision::End {
                at_s: t_ns as f64 / 1e9,
            }),
            None => {}
        }
        i += 1;
    }
    child.wait()?;
    Ok((fps, decisions))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let Some(dir) = &args.matrix else {
        for clip in &args.clips {
            let (_, decisions) = replay(clip, args.loops, &args.motion)?;
            println!("{}:", clip.display());
            for d in decisions {
                match d {
                    Decision::Start { first_s, decided_s } => {
                        println!(
                            "  start: first moving frame {first_s:.3} s, decided {decided_s:.3} s"
                        )
                    }
                    Decision::End { at_s } => println!("  end: {at_s:.3} s"),
                }
            }
        }
        return Ok(());
    };
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).context("reading manifest.json")?,
    )?;
    let loop_s = manifest["loop_s"].as_f64().context("loop_s")?;
    let cells = manifest["cells"].as_object().context("cells")?;
    let (mut onsets, mut found, mut false_events) = (0, 0, 0);
    println!("| cell | onsets | detected | delay (frames) | false events |");
    println!("|---|---|---|---|---|");
    for (name, cell) in cells {
        let mut motion = args.motion.clone();
        if let Some(mask) = cell.get("mask") {
            motion.masks = vec![serde_json::from_value(mask.clone())?];
        }
        let clip = dir.join(format!("{name}.mkv"));
        let (fps, decisions) = replay(&clip, args.loops, &motion)?;
        let truth: Vec<f64> = manifest["scenes"][name]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["event"] == "motion_start")
            .flat_map(|e| {
                let at = e["at_s"].as_f64().unwrap_or(0.0);
                (0..args.loops).map(move |k| at + f64::from(k) * loop_s)
            })
            .collect();
        let starts: Vec<(f64, f64)> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start { first_s, decided_s } => Some((*first_s, *decided_s)),
                Decision::End { .. } => None,
            })
            .collect();
        let mut delays = Vec::new();
        let mut unmatched = starts.len();
        for t in &truth {
            // An onset counts when a start's first frame is within -1..+3 frames of it.
            if let Some((first, decided)) = starts
                .iter()
                .find(|(first, _)| (-1.5..=3.5).contains(&((first - t) * fps)))
            {
                delays.push(format!(
                    "{:.0}/{:.0}",
                    (first - t) * fps,
                    (decided - t) * fps
                ));
                unmatched -= 1;
            }
        }
        onsets += truth.len();
        found += delays.len();
        false_events += unmatched;
        println!(
            "| {name} | {} | {} | {} | {unmatched} |",
            truth.len(),
            delays.len(),
            delays.join(" ")
        );
    }
    println!("\ndetected {found} of {onsets} onsets; {false_events} false events");
    Ok(())
}
