//! Judging recorded files by themselves, with the real FFmpeg tools: what `ffprobe` says they hold,
//! whether `ffmpeg -xerror` decodes every frame, whether timestamps only go forward, and what the
//! pictures show (tiny grey thumbnails, compared frame by frame).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs a tool under coreutils `timeout` (60 s), capturing its output.
fn run(prog: &str, args: &[&str]) -> Result<Output> {
    Command::new("timeout")
        .args(["-k", "2", "60", prog])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {prog}"))
}

/// `ffprobe -show_streams -show_format` of a file, as JSON.
pub fn probe(path: &Path) -> Result<Value> {
    let p = path.to_string_lossy();
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            &p,
        ],
    )?;
    if !out.status.success() {
        bail!(
            "ffprobe {p}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("ffprobe output")
}

/// The file's streams of one type (`video`, `audio`).
pub fn streams_of(probe: &Value, kind: &str) -> Vec<Value> {
    probe["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|s| s["codec_type"] == kind)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `ffmpeg -xerror -i file -f null -`: decodes every frame, failing on the first error.
pub fn decodes_cleanly(path: &Path) -> Result<()> {
    let p = path.to_string_lossy();
    let out = run(
        "ffmpeg",
        &["-v", "error", "-xerror", "-i", &p, "-f", "null", "-"],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!("ffmpeg -xerror {p}: {}: {stderr}", out.status);
    }
    Ok(())
}

/// Every stream's packet DTS, in file order: checks they strictly increase per stream.
pub fn dts_strictly_increase(path: &Path) -> Result<usize> {
    let p = path.to_string_lossy();
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts",
            "-of",
            "csv=p=0",
            &p,
        ],
    )?;
    if !out.status.success() {
        bail!("ffprobe packets of {p}: {}", out.status);
    }
    let mut last: Vec<Option<i64>> = Vec::new();
    let mut n = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let (Some(idx), Some(dts)) = (it.next(), it.next()) else {
            continue;
        };
        let (idx, dts): (usize, i64) = (idx.parse()?, dts.parse().context(line.to_string())?);
        if last.len() <= idx {
            last.resize(idx + 1, None);
        }
        if let Some(prev) = last[idx] {
            if dts <= prev {
                bail!("{p}: stream {idx}: dts {dts} after {prev} (packet {n})");
            }
        }
        last[idx] = Some(dts);
        n += 1;
    }
    Ok(n)
}

/// Decodes the file's video to `w`×`h` grey thumbnails, one per frame.
pub fn grey_frames(path: &Path, w: usize, h: usize) -> Result<Vec<Vec<u8>>> {
    let p = path.to_string_lossy();
    let scale = format!("scale={w}:{h},format=gray");
    let out = run(
        "ffmpeg",
        &[
            "-v", "error", "-i", &p, "-map", "0:v", "-vf", &scale, "-f", "rawvideo", "-",
        ],
    )?;
    if !out.status.success() {
        bail!("decoding {p}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect())
}

/// For the fake camera's `motion` scene (a still picture, then a dark box crossing it): which
/// frames show the box, judged against the clip's own first frame (which must be still).
pub fn moving_frames(frames: &[Vec<u8>]) -> Vec<bool> {
    let Some(first) = frames.first() else {
        return Vec::new();
    };
    frames
        .iter()
        .map(|f| f.iter().zip(first).any(|(a, b)| a.abs_diff(*b) > 40))
        .collect()
}

/// Every file under `dir` whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
