//! Test helpers: real streams made with the ffmpeg CLI, an access-unit splitter, an ADTS reader,
//! and a small ISO BMFF box reader to check what the muxer wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fmp4::{AudioTrack, Fragmenter, Sample, VideoCodec, VideoTrack};

/// A fresh directory for one test under cargo's per-target temporary directory (the system's
/// for the benchmark example, which cargo gives none).
pub fn test_dir(name: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join("fmp4").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Runs a tool, failing the test with its stderr when it fails. A missing tool fails with a
/// message that says how to install it: these tests never skip.
pub fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        let package = if tool == "node" {
            "nodejs, installed by scripts/test.sh"
        } else {
            "ffmpeg, installed by scripts/setup.sh"
        };
        panic!("cannot run `{tool}` ({e}): install Debian's {package}")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}\n{stderr}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// What to encode with ffmpeg from its `testsrc` pattern.
#[derive(Debug, Clone)]
pub struct Source {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
    pub b_frames: bool,
    /// `-profile:v` for libx264 (`baseline`, `main`, `high`, `high422`), or libx265's
    /// (`main`, `main10`).
    pub profile: &'static str,
    pub pix_fmt: &'static str,
    pub aac: bool,
    /// More `-x265-params` (`:`-separated), e.g. temporal sub-layers.
    pub x265_extra: &'static str,
    /// Noise over the pattern and a bitrate cap, for camera-like frame sizes (benchmark).
    pub noisy_bitrate: Option<&'static str>,
}

/// One video packet of the source, in decode order, with its 90 kHz timestamps.
#[derive(Debug, Clone)]
pub struct Packet {
    pub pts: i64,
    pub dts: i64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// A source encoded and taken apart again: video access units with their timestamps (from the
/// MP4 the encoder wrote), and AAC frames with the `AudioSpecificConfig`.
pub struct Encoded {
    pub video: Vec<Packet>,
    pub audio_config: Option<Vec<u8>>,
    pub audio_frames: Vec<Vec<u8>>,
    /// ffprobe's view of the source MP4's video stream.
    pub probe: serde_json::Value,
}

pub fn encode(source: &Source, dir: &Path) -> Encoded {
    let src = dir.join("src.mp4");
    let src = src.to_str().unwrap();
    let mut size = format!(
        "testsrc=size={}x{}:rate={}",
        source.width, source.height, source.fps
    );
    if source.noisy_bitrate.is_some() {
        size.push_str(",noise=alls=40:allf=t+u");
    }
    let frames = source.frames.to_string();
    let gop = (source.fps).to_string();
    let mut args = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &size,
    ];
    args.extend(["-frames:v", &frames, "-pix_fmt", source.pix_fmt, "-g", &gop]);
    let x265_params;
    match source.codec {
        VideoCodec::H264 => {
            // veryfast, not ultrafast: ultrafast turns CABAC and 8x8 transforms off, and the
            // stream falls back to (constrained) baseline whatever profile is asked for.
            args.extend([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                source.profile,
            ]);
            args.extend(["-bf", if source.b_frames { "2" } else { "0" }]);
        }
        VideoCodec::H265 => {
            x265_params = format!(
                "log-level=error:bframes={}:keyint={gop}{}",
                if source.b_frames { 3 } else { 0 },
                source.x265_extra
            );
            // fast, not ultrafast: ultrafast ignores temporal-layers.
            args.extend([
                "-c:v",
                "libx265",
                "-preset",
                "fast",
                "-profile:v",
                source.profile,
                "-x265-params",
                &x265_params,
            ]);
            args.extend(["-tag:v", "hvc1"]);
        }
    }
    if let Some(rate) = source.noisy_bitrate {
        args.extend(["-b:v", rate, "-maxrate", rate, "-bufsize", rate]);
    }
    args.extend(["-video_track_timescale", "90000", src]);
    run("ffmpeg", &args);

    // Timestamps and keyframe flags per packet, in decode order.
    let (csv, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts,dts,flags",
            "-of",
            "csv=p=0",
            src,
        ],
    );
    let stamps: Vec<(i64, i64, bool)> = csv
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().expect("pts"),
                f[1].parse().expect("dts"),
                f[2].contains('K'),
            )
        })
        .collect();
    let (json, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
            src,
        ],
    );
    let probe: serde_json::Value = serde_json::from_str(&json).unwrap();

    // The same packets as Annex B, split into access units again.
    let es = dir.join("src.es");
    let (bsf, format) = match source.codec {
        VideoCodec::H264 => ("h264_mp4toannexb", "h264"),
        VideoCodec::H265 => ("hevc_mp4toannexb", "hevc"),
    };
    run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            src,
            "-map",
            "0:v",
            "-c:v",
            "copy",
            "-bsf:v",
            bsf,
            "-f",
            format,
            es.to_str().unwrap(),
        ],
    );
    let es = std::fs::read(&es).unwrap();
    let units = split_access_units(source.codec, &es);
    assert_eq!(
        units.len(),
        stamps.len(),
        "access units in the Annex B stream vs packets in the MP4"
    );
    let video = units
        .into_iter()
        .zip(stamps)
        .map(|(data, (pts, dts, keyframe))| Packet {
            pts,
            dts,
            keyframe,
            data,
        })
        .collect();

    let (audio_config, audio_frames) = if source.aac {
        let adts = dir.join("src.aac");
        let seconds = format!("{}", f64::from(source.frames) / f64::from(source.fps));
        run(
            "ffmpeg",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                &seconds,
                "-ac",
                "2",
                "-c:a",
                "aac",
                "-f",
                "adts",
                adts.to_str().unwrap(),
            ],
        );
        let (config, frames) = split_adts(&std::fs::read(adts).unwrap());
        (Some(config), frames)
    } else {
        (None, Vec::new())
    };
    Encoded {
        video,
        audio_config,
        audio_frames,
        probe,
    }
}

/// Muxes the encoded source: the init segment, then one fragment per video frame with the audio
/// frames that start before that frame ends. Returns the track, the segments and how many audio
/// frames went in.
pub fn mux(source: &Source, enc: &Encoded) -> (VideoTrack, Vec<Vec<u8>>, usize) {
    let first = &enc.video[0];
    assert!(first.keyframe, "the source starts with a keyframe");
    let sets = fmp4::parameter_sets(source.codec, &first.data);
    let video = VideoTrack::new(source.codec, &sets).expect("parameter sets of a real stream");
    let audio = enc
        .audio_config
        .as_ref()
        .map(|c| AudioTrack::new(c).expect("real AudioSpecificConfig"));
    let mut segments = vec![fmp4::init_segment(&video, audio.as_ref())];
    let mut fragmenter = Fragmenter::new(&video, audio.as_ref());

    let base = first.dts;
    let frame_interval = 90_000 / i64::from(source.fps);
    let mut next_audio = 0usize;
    for (i, p) in enc.video.iter().enumerate() {
        // The exact duration where the next frame is known; the previous interval for the last.
        let duration = enc
            .video
            .get(i + 1)
            .map_or(frame_interval, |n| n.dts - p.dts);
        let decode_time = (p.dts - base) as u64;
        let v = Sample {
            decode_time,
            composition_offset: (p.pts - p.dts) as i32,
            duration: duration as u32,
            keyframe: p.keyframe,
            data: &p.data,
        };
        // Audio frames of 1024 samples at 48 kHz that start before this video frame ends.
        let video_end = decode_time + duration as u64;
        let mut audio_samples = Vec::new();
        while next_audio < enc.audio_frames.len()
            && (next_audio as u64 * 1024) * 90_000 < video_end * 48_000
        {
            audio_samples.push(Sample {
                decode_time: next_audio as u64 * 1024,
                composition_offset: 0,
                duration: 1024,
                keyframe: true,
                data: &enc.audio_frames[next_audio],
            });
            next_audio += 1;
        }
        let fragment = fragmenter.fragment(&[v], &audio_samples).expect("fragment");
        segments.push(fragment);
    }
    assert_eq!(fragmenter.sequence_number() as usize, enc.video.len());
    (video, segments, next_audio)
}

/// Splits an Annex B elementary stream into access units (H.264 7.4.1.2.3, H.265 7.4.2.4.4): a
/// new one starts at a delimiter, parameter set, prefix SEI and the like, or at the first slice
/// of a picture, once the current one has a picture.
pub fn split_access_units(codec: VideoCodec, es: &[u8]) -> Vec<Vec<u8>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut has_picture = false;
    for nal in fmp4::split_annex_b(es) {
        let (vcl, first_slice, starts_au) = match codec {
            VideoCodec::H264 => {
                let t = nal[0] & 0x1f;
                let vcl = (1..=5).contains(&t);
                (vcl, vcl && nal[1] & 0x80 != 0, matches!(t, 6..=9 | 14..=18))
            }
            VideoCodec::H265 => {
                let t = (nal[0] >> 1) & 0x3f;
                let vcl = t < 32;
                (
                    vcl,
                    vcl && nal[2] & 0x80 != 0,
                    matches!(t, 32..=35 | 39 | 41..=44 | 48..=55),
                )
            }
        };
        if has_picture && (starts_au || first_slice) {
            units.push(std::mem::take(&mut current));
            has_picture = false;
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        has_picture |= vcl;
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// Splits an ADTS stream into raw AAC frames; returns the `AudioSpecificConfig` of the first
/// header and the frames without their headers.
pub fn split_adts(adts: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let config = fmp4::AudioTrack::from_adts_header(adts)
        .unwrap()
        .audio_specific_config()
        .to_vec();
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 7 <= adts.len() {
        let h = &adts[at..];
        assert!(h[0] == 0xff && h[1] & 0xf0 == 0xf0, "ADTS sync at {at}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        frames.push(h[header_len..frame_len].to_vec());
        at += frame_len;
    }
    assert_eq!(at, adts.len(), "ADTS stream ends with a whole frame");
    (config, frames)
}

/// A box found by [`boxes`]: type, where its body starts in the parent slice, and the body.
#[derive(Debug)]
pub struct Mp4Box<'a> {
    pub fourcc: [u8; 4],
    pub body: &'a [u8],
}

/// The boxes of a buffer, checking that their sizes add up exactly.
pub fn boxes(mut data: &[u8]) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        assert!(data.len() >= 8, "truncated box header");
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= data.len(),
            "box size {size} with {} bytes left",
            data.len()
        );
        out.push(Mp4Box {
            fourcc: data[4..8].try_into().unwrap(),
            body: &data[8..size],
        });
        data = &data[size..];
    }
    out
}

/// The only child box of type `fourcc`.
pub fn child<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> &'a [u8] {
    let found: Vec<_> = boxes(data)
        .into_iter()
        .filter(|b| &b.fourcc == fourcc)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {} box",
        String::from_utf8_lossy(fourcc)
    );
    found[0].body
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// Standard base64 (RFC 4648, with padding), to hand segments to the browser.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
