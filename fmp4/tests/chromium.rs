//! Playback in Debian's headless Chromium through Media Source Extensions: the init segment and
//! then every one-frame fragment appended separately, as the live relay sends them. The browser
//! must take every segment without an error, buffer one unbroken range, report the source's
//! size, and play to the end. Needs node, Chromium and playwright-core in `tests/ui/node_modules`
//! (scripts/test.sh installs them; so does `cd tests/ui && npm ci`).

mod common;

use std::path::{Path, PathBuf};

use common::{encode, run, test_dir, Source};
use fmp4::VideoCodec;
use serde_json::Value;

fn playwright_core() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui/node_modules/playwright-core");
    assert!(
        dir.join("index.mjs").exists(),
        "{} is missing: run `cd tests/ui && npm ci` (scripts/test.sh does), and install Debian's chromium and nodejs",
        dir.display()
    );
    dir
}

/// Muxes the source and plays it in Chromium; returns what the page saw.
fn play(name: &str, source: &Source) -> (Value, usize) {
    let dir = test_dir(name);
    let enc = encode(source, &dir);
    let (track, segments, _) = common::mux(source, &enc);
    let audio = enc
        .audio_config
        .as_ref()
        .map(|c| fmp4::AudioTrack::new(c).unwrap());
    let mime = fmp4::mime_type(&track, audio.as_ref());
    let seen = run_page(name, &dir, &mime, &segments, true);
    (seen, segments.len())
}

/// Appends the segments in Chromium (and plays them if `play`); returns what the page saw.
fn run_page(name: &str, dir: &Path, mime: &str, segments: &[Vec<u8>], play: bool) -> Value {
    let input = serde_json::json!({
        "mime": mime,
        "segments": segments.iter().map(|s| common::base64(s)).collect::<Vec<_>>(),
        "play": play,
    });
    let input_path = dir.join("segments.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mse.mjs");
    let (stdout, _) = run(
        "node",
        &[
            script.to_str().unwrap(),
            playwright_core().to_str().unwrap(),
            input_path.to_str().unwrap(),
        ],
    );
    let line = stdout.lines().last().unwrap_or_default();
    let seen: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {stdout}"));
    println!("{name}: {mime}: {seen}");
    seen
}

/// Everything appended, no error, one buffered range from the start, the source's size, played
/// to the end with every frame.
fn check_played(name: &str, source: &Source, seen: &Value, segments: usize) {
    assert_eq!(
        seen["supported"], true,
        "{name}: MediaSource.isTypeSupported"
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "{name}: errors");
    assert_eq!(seen["appended"], segments, "{name}: segments appended");
    let buffered = seen["buffered"].as_array().unwrap();
    assert_eq!(
        buffered.len(),
        1,
        "{name}: one buffered range: {buffered:?}"
    );
    let want = f64::from(source.frames) / f64::from(source.fps);
    let (start, end) = (
        buffered[0][0].as_f64().unwrap(),
        buffered[0][1].as_f64().unwrap(),
    );
    assert!(
        start < 0.2 && (end - start - want).abs() < 0.2,
        "{name}: buffered {start}..{end}, want about {want} s"
    );
    assert_eq!(
        (seen["videoWidth"].clone(), seen["videoHeight"].clone()),
        (source.width.into(), source.height.into())
    );
    assert_eq!(seen["ended"], true, "{name}: played to the end");
    let frames = seen["totalVideoFrames"].as_u64().unwrap();
    assert!(
        frames + 1 >= u64::from(source.frames),
        "{name}: {frames} of {} frames shown or dropped",
        source.frames
    );
    if source.aac {
        assert_eq!(
            seen["audioTracks"].as_u64().map_or(1, |n| n),
            1,
            "{name}: the audio track"
        );
    }
}

fn source(
    codec: VideoCodec,
    width: u32,
    height: u32,
    fps: u32,
    b_frames: bool,
    aac: bool,
) -> Source {
    Source {
        codec,
        width,
        height,
        fps,
        frames: 2 * fps,
        b_frames,
        profile: "main",
        pix_fmt: "yuv420p",
        aac,
        x265_extra: "",
        noisy_bitrate: None,
    }
}

#[test]
fn h264_sub_stream_plays_frame_by_frame() {
    let source = Source {
        profile: "baseline",
        ..source(VideoCodec::H264, 320, 180, 15, false, false)
    };
    let (seen, segments) = play("mse_h264_sub", &source);
    check_played("mse_h264_sub", &source, &seen, segments);
}

#[test]
fn h264_high_with_b_frames_and_aac_plays_frame_by_frame() {
    let source = Source {
        profile: "high",
        ..source(VideoCodec::H264, 1280, 720, 30, true, true)
    };
    let (seen, segments) = play("mse_h264_main", &source);
    check_played("mse_h264_main", &source, &seen, segments);
}

/// Chromium plays H.265 only with a platform decoder; Debian's build on a machine without one
/// says so, which is what the live view's fallback relies on. Where it can, it must play.
#[test]
fn h265_plays_or_is_declined_by_is_type_supported() {
    let source = source(VideoCodec::H265, 640, 360, 30, true, false);
    let (seen, segments) = play("mse_h265", &source);
    if seen["supported"] == true {
        check_played("mse_h265", &source, &seen, segments);
    } else {
        assert_eq!(seen["supported"], false);
        println!("mse_h265: this Chromium declines H.265 (isTypeSupported false): the MJPEG fallback's case");
    }
}

/// A viewer that falls behind skips to a later keyframe (decision 46). With the stream's own
/// decode times the skipped second stays a hole in the buffered ranges, which playback does not
/// cross by itself; rebased to close the hole (what the caller can do: decode times are its own),
/// the fragments join into one range that plays through.
#[test]
fn skipping_to_a_later_keyframe_leaves_a_hole_unless_rebased() {
    let source = Source {
        profile: "baseline",
        frames: 45,
        ..source(VideoCodec::H264, 320, 180, 15, false, false)
    };
    let dir = test_dir("mse_skip");
    let enc = encode(&source, &dir);
    assert!(
        enc.video[15].keyframe && enc.video[30].keyframe,
        "keyframes every second"
    );
    let sets = fmp4::parameter_sets(VideoCodec::H264, &enc.video[0].data);
    let track = fmp4::VideoTrack::new(VideoCodec::H264, &sets).unwrap();
    let mime = fmp4::mime_type(&track, None);
    let interval = 90_000 / u64::from(source.fps);
    // Frames 0-14, then 30-44: frames 15-29 were skipped.
    let kept: Vec<usize> = (0..15).chain(30..45).collect();
    for rebase in [false, true] {
        let mut segments = vec![fmp4::init_segment(&track, None)];
        let mut fragmenter = fmp4::Fragmenter::new(&track, None);
        for &i in &kept {
            let skipped = if rebase && i >= 30 { 15 } else { 0 };
            let sample = fmp4::Sample {
                decode_time: (i as u64 - skipped) * interval,
                composition_offset: 0,
                duration: interval as u32,
                keyframe: enc.video[i].keyframe,
                data: &enc.video[i].data,
            };
            segments.push(fragmenter.fragment(&[sample], &[]).unwrap());
        }
        let name = if rebase {
            "mse_skip_rebased"
        } else {
            "mse_skip"
        };
        let seen = run_page(name, &dir, &mime, &segments, rebase);
        assert_eq!(seen["errors"], serde_json::json!([]), "{name}");
        assert_eq!(seen["appended"], segments.len(), "{name}");
        let ranges: Vec<(f64, f64)> = seen["buffered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        if rebase {
            assert_eq!(ranges.len(), 1, "{name}: {ranges:?}");
            assert!((ranges[0].1 - 2.0).abs() < 0.1, "{name}: {ranges:?}");
            assert_eq!(seen["ended"], true, "{name}: played through");
            assert!(
                seen["totalVideoFrames"].as_u64().unwrap() + 1 >= 30,
                "{name}: frames shown"
            );
        } else {
            assert_eq!(ranges.len(), 2, "{name}: {ranges:?}");
            assert!(
                (ranges[0].1 - 1.0).abs() < 0.1 && (ranges[1].0 - 2.0).abs() < 0.1,
                "{name}: {ranges:?}"
            );
        }
    }
}

/// Why a sample's duration matters even though the next fragment's decode time is authoritative
/// (decision 46): when the next frame comes more than twice the last duration later, MSE treats
/// it as a discontinuity and drops frames until the next keyframe. Durations of a tenth of the
/// frame interval lose all but the keyframes; the previous interval loses nothing, and neither
/// does an estimate of twice the interval (overlapping frames are cut to fit, and every frame
/// plays), which also survives a camera that skips a frame now and then.
#[test]
fn a_far_too_short_duration_costs_frames_until_the_next_keyframe() {
    let source = Source {
        profile: "baseline",
        frames: 30,
        ..source(VideoCodec::H264, 320, 180, 15, false, false)
    };
    let dir = test_dir("mse_short_durations");
    let enc = encode(&source, &dir);
    let sets = fmp4::parameter_sets(VideoCodec::H264, &enc.video[0].data);
    let track = fmp4::VideoTrack::new(VideoCodec::H264, &sets).unwrap();
    let mime = fmp4::mime_type(&track, None);
    let interval = 90_000 / source.fps;
    for (name, duration) in [
        ("mse_short_durations", interval / 10),
        ("mse_previous_interval", interval),
        ("mse_double_interval", 2 * interval),
    ] {
        let mut segments = vec![fmp4::init_segment(&track, None)];
        let mut fragmenter = fmp4::Fragmenter::new(&track, None);
        for (i, p) in enc.video.iter().enumerate() {
            let sample = fmp4::Sample {
                decode_time: i as u64 * u64::from(interval),
                composition_offset: 0,
                duration,
                keyframe: p.keyframe,
                data: &p.data,
            };
            segments.push(fragmenter.fragment(&[sample], &[]).unwrap());
        }
        let play = duration > interval;
        let seen = run_page(name, &dir, &mime, &segments, play);
        assert_eq!(seen["errors"], serde_json::json!([]), "{name}");
        let ranges: Vec<(f64, f64)> = seen["buffered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        let covered: f64 = ranges.iter().map(|(a, b)| b - a).sum();
        if duration >= interval {
            assert_eq!(ranges.len(), 1, "{name}: {ranges:?}");
            let want = 2.0 + f64::from(duration - interval) / 90_000.0;
            assert!(
                (covered - want).abs() < 0.01,
                "{name}: {ranges:?}, want {want} s"
            );
            if play {
                assert_eq!(seen["ended"], true, "{name}: played through");
                let frames = seen["totalVideoFrames"].as_u64().unwrap();
                assert!(frames + 1 >= 30, "{name}: {frames} frames shown or dropped");
            }
        } else {
            // Only the two keyframes (at 0 s and 1 s), each lasting its short duration.
            assert_eq!(ranges.len(), 2, "{name}: {ranges:?}");
            assert!(
                covered < 0.1 && (ranges[1].0 - 1.0).abs() < 0.01,
                "{name}: {ranges:?}"
            );
        }
    }
}
