//! The packet rings end to end: the real supervisor and worker against the fake camera, read from
//! this test process through `shm_bus::PacketReader` as a live viewer would, with another reader
//! attached that never reads. H.264 with AAC on one camera, H.265 on another.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{bin, camera_config, signal, wait_until, Nvr};
use nvr_tests::status::{camera_in, pid, stream_up};
use serde_json::json;
use shm_bus::{Codec, PacketMeta, PacketReader, PacketWait, Read, StreamKind, Track};
use std::path::Path;
use std::time::{Duration, Instant};
use worker_nal::{idr, nal_types};

const FPS: f64 = 30.0;
/// The fake cameras' GOPs (tests/fakecam/make_clips.sh).
const MAIN_GOP_FRAMES: u32 = 60;
const SUB_GOP_FRAMES: u32 = 30;
/// How long each stream is read.
const READ_FOR: Duration = Duration::from_secs(4);

/// NAL unit types of Annex B data, for checking the keyframe flag against the bytes.
mod worker_nal {
    use shm_bus::Codec;

    pub fn nal_types(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 3 < data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                let b = data[i + 3];
                out.push(match codec {
                    Codec::H264 => b & 0x1f,
                    Codec::H265 => (b >> 1) & 0x3f,
                });
                i += 3;
            } else {
                i += 1;
            }
        }
        out
    }

    /// Whether a NAL type is an IDR/IRAP slice.
    pub fn idr(codec: Codec, t: u8) -> bool {
        match codec {
            Codec::H264 => t == 5,
            Codec::H265 => (16..=21).contains(&t),
        }
    }
}

/// What reading one stream for a while showed.
struct Seen {
    video: Vec<PacketMeta>,
    audio: Vec<PacketMeta>,
    elapsed: Duration,
}

/// Reads `kind` of camera `id` from its newest keyframe for [`READ_FOR`], checking every packet.
fn read_stream(shm: &Path, id: &str, kind: StreamKind, codec: Codec) -> Seen {
    let mut r = wait_until(
        Duration::from_secs(20),
        &format!("{id}'s {kind} packet ring"),
        || {
            let r = PacketReader::attach_in(shm, id, kind).ok()?;
            (r.params().is_some() && r.newest_keyframe_seq().is_some()).then_some(r)
        },
    );
    let (_, params) = r.params().unwrap();
    assert_eq!(params.codec, codec, "{id} {kind}");
    let types: Vec<u8> = params
        .parameter_sets
        .iter()
        .map(|s| nal_types(codec, &[&[0, 0, 1][..], s].concat())[0])
        .collect();
    match codec {
        Codec::H264 => assert_eq!(types, vec![7, 8], "{id} {kind}: SPS, PPS"),
        Codec::H265 => assert_eq!(types, vec![32, 33, 34], "{id} {kind}: VPS, SPS, PPS"),
    }
    let (w, h) = if kind == StreamKind::Main {
        (1920, 1080)
    } else {
        (640, 360)
    };
    assert_eq!((params.width, params.height), (w, h), "{id} {kind}");

    let mut next = r.newest_keyframe_seq().unwrap();
    let mut buf = Vec::new();
    let mut seen = Seen {
        video: Vec::new(),
        audio: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let start = Instant::now();
    while start.elapsed() < READ_FOR {
        match r.read(next, &mut buf).unwrap() {
            Read::Packet(meta) => {
                next += 1;
                match meta.track {
                    Track::Video => {
                        assert!(
                            buf.starts_with(&[0, 0, 1]) || buf.starts_with(&[0, 0, 0, 1]),
                            "Annex B"
                        );
                        let types = nal_types(codec, &buf);
                        assert_eq!(
                            meta.keyframe,
                            types.iter().any(|&t| idr(codec, t)),
                            "{id} {kind} seq {}: keyframe flag vs NAL types {types:?}",
                            meta.seq
                        );
                        if seen.video.is_empty() {
                            assert!(meta.keyframe, "reading starts at a keyframe");
                        }
                        seen.video.push(meta);
                    }
                    Track::Audio => seen.audio.push(meta),
                }
            }
            Read::NotYet => {
                assert_ne!(
                    r.wait(Duration::from_secs(2)).unwrap(),
                    PacketWait::Restarted
                );
            }
            other => panic!("{id} {kind}: {other:?} at seq {next} while reading in step"),
        }
    }
    seen.elapsed = start.elapsed();
    seen
}

/// Checks one stream's packets: timestamps monotonic at 90 kHz, the fake camera's frame rate and
/// GOP, arrival stamps in order.
fn check_video(id: &str, kind: StreamKind, seen: &Seen, gop_frames: u32) {
    let v = &seen.video;
    let (first, last) = (v[0], v[v.len() - 1]);
    // Not one packet missing: as many as the timestamps span, at 3000 ticks a frame.
    let span_frames = ((last.dts - first.dts) as f64 / 3000.0).round() as usize + 1;
    assert_eq!(v.len(), span_frames, "{id} {kind}: packets lost or doubled");
    // They arrived as fast as the fake camera sends them (the worker kept pace), and the reader
    // was fed until it stopped reading.
    let media_s = (last.dts - first.dts) as f64 / 90_000.0;
    let arrival_s = last.arrival_ns.saturating_sub(first.arrival_ns) as f64 / 1e9;
    assert!(
        (arrival_s - media_s).abs() < 0.1 * media_s + 0.2,
        "{id} {kind}: {media_s:.2} s of video arrived over {arrival_s:.2} s"
    );
    assert!(
        media_s > seen.elapsed.as_secs_f64() * 0.8,
        "{id} {kind}: {media_s:.2} s of video in {:?} of reading",
        seen.elapsed
    );
    let mut off = 0;
    for pair in v.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            b.dts > a.dts && b.pts > a.pts,
            "{id} {kind}: timestamps go back: {a:?} then {b:?}"
        );
        // 30 fps at 90 kHz is 3000 ticks; the fake camera's RTP clock truncates, so 2999 happens.
        // With audio on the stream, FFmpeg's RTSP reader moves the timestamps a little once, when
        // the first RTCP sender report syncs the tracks (3002 was seen): allow one or two such.
        let step = b.dts - a.dts;
        assert!(
            (step - 3000).abs() <= 90,
            "{id} {kind}: {step} ticks between frames"
        );
        off += usize::from((step - 3000).abs() > 1);
        assert!(b.arrival_ns >= a.arrival_ns);
    }
    assert!(off <= 2, "{id} {kind}: {off} frame steps off 3000 ticks");
    let keys: Vec<usize> = (0..v.len()).filter(|&i| v[i].keyframe).collect();
    assert!(keys.len() >= 2, "{id} {kind}: keyframes at {keys:?}");
    for k in keys.windows(2) {
        assert_eq!((k[1] - k[0]) as u32, gop_frames, "{id} {kind}: GOP");
    }
}

#[test]
fn sub_and_main_packets_reach_a_reader_and_a_killed_worker_starts_a_new_generation() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).expect("fake camera");
    let mut aac = camera_config("ring264", &fc, "motion/main_aac", "motion/sub");
    aac["live"] = json!({"main_ring_mb": 12, "sub_ring_mb": 3});
    let hevc = camera_config("ring265", &fc, "motion/main_h265", "motion/sub_h265");
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [aac, hevc]}),
        &[],
    );
    let t0 = Instant::now();
    nvr.wait_running(&["ring264", "ring265"]);
    for id in ["ring264", "ring265"] {
        nvr.wait_camera(id, Duration::from_secs(30), "both streams up", |c| {
            stream_up(c, "sub") && stream_up(c, "main")
        });
    }
    // A viewer that attaches and never reads (nor unregisters): it must not hold anything up.
    let idle: Vec<PacketReader> = [("ring264", StreamKind::Sub), ("ring264", StreamKind::Main)]
        .into_iter()
        .map(|(id, kind)| PacketReader::attach_in(nvr.shm_dir(), id, kind).unwrap())
        .collect();

    eprintln!("streams up after {:?}", t0.elapsed());
    let sub = read_stream(nvr.shm_dir(), "ring264", StreamKind::Sub, Codec::H264);
    check_video("ring264", StreamKind::Sub, &sub, SUB_GOP_FRAMES);
    assert!(sub.audio.is_empty(), "the SUB mount has no audio");
    let main = read_stream(nvr.shm_dir(), "ring264", StreamKind::Main, Codec::H264);
    check_video("ring264", StreamKind::Main, &main, MAIN_GOP_FRAMES);
    let (_, params) = PacketReader::attach_in(nvr.shm_dir(), "ring264", StreamKind::Main)
        .unwrap()
        .params()
        .unwrap();
    let audio = params.audio.expect("AAC parameters on MAIN");
    assert!(
        audio.sample_rate >= 8000 && audio.channels >= 1 && audio.config.len() >= 2,
        "{audio:?}"
    );
    // AAC: 1024 samples a packet, timestamps in samples.
    let a = &main.audio;
    let per_s = f64::from(audio.sample_rate) / 1024.0;
    assert!(
        a.len() as f64 > per_s * main.elapsed.as_secs_f64() * 0.85,
        "{} AAC packets in {:?}",
        a.len(),
        main.elapsed
    );
    // Every step is one packet of 1024 samples, give or take the one small adjustment FFmpeg's
    // RTSP reader makes when the first RTCP sender report syncs audio to video (a step of 1022
    // was seen); on average exactly 1024.
    let steps: Vec<i64> = a.windows(2).map(|p| p[1].pts - p[0].pts).collect();
    for step in &steps {
        assert!(
            (step - 1024).abs() <= 48,
            "AAC timestamps in samples: {step}"
        );
    }
    let off = steps.iter().filter(|s| (**s - 1024).abs() > 1).count();
    assert!(
        off <= 2,
        "AAC steps off 1024: {off} of {}: {steps:?}",
        steps.len()
    );
    let mean = (a[a.len() - 1].pts - a[0].pts) as f64 / steps.len() as f64;
    assert!((mean - 1024.0).abs() < 1.0, "AAC mean step {mean}");
    let sub265 = read_stream(nvr.shm_dir(), "ring265", StreamKind::Sub, Codec::H265);
    check_video("ring265", StreamKind::Sub, &sub265, SUB_GOP_FRAMES);
    let main265 = read_stream(nvr.shm_dir(), "ring265", StreamKind::Main, Codec::H265);
    check_video("ring265", StreamKind::Main, &main265, MAIN_GOP_FRAMES);

    eprintln!("streams read after {:?}", t0.elapsed());
    // The worker's own figures reach /status, and rings of the configured sizes hold two GOPs.
    let c = nvr.wait_camera(
        "ring264",
        Duration::from_secs(10),
        "ring figures measured",
        |c| {
            c["worker"]["main"]["packet_ring"]["gop_s"].as_f64() > Some(0.0)
                && c["worker"]["sub"]["packet_ring"]["gop_s"].as_f64() > Some(0.0)
        },
    );
    for (stream, mb, gop_s) in [("sub", 3u64, 1.0), ("main", 12, 2.0)] {
        let ring = &c["worker"][stream]["packet_ring"];
        assert_eq!(ring["capacity_bytes"].as_u64(), Some(mb << 20), "{ring}");
        assert_eq!(ring["has_params"], true, "{ring}");
        assert_eq!(ring["oversize_drops"], 0, "{ring}");
        assert!(
            (ring["gop_s"].as_f64().unwrap() - gop_s).abs() < 0.2,
            "{ring}"
        );
        assert!(ring["holds_s"].as_f64().unwrap() > 2.0 * gop_s, "{ring}");
        assert!(ring["bytes_per_s"].as_f64().unwrap() > 1000.0, "{ring}");
    }
    assert_eq!(c["warnings"], json!([]), "{c}");
    // The idle readers are still attached to the generation they saw, and never slowed anything:
    // the decoded SUB frames kept the fake camera's rate too.
    assert!(idle.iter().all(|r| !r.restarted()));
    assert!(
        c["worker"]["sub"]["fps"].as_f64().unwrap() > FPS * 0.85,
        "{c}"
    );

    // nvr-preview --packets, another process, sees the same stream.
    for (stream, w, gop, kbit) in [("main", 1920, 2.0, 4000.0), ("sub", 640, 1.0, 370.0)] {
        let out = std::process::Command::new(bin("nvr-preview"))
            .env(shm_bus::SHM_DIR_ENV, nvr.shm_dir())
            .args([
                "--packets",
                "ring264",
                "--stream",
                stream,
                "--seconds",
                "3.5",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(lines.len() >= 2, "{text}");
        let last = &lines[lines.len() - 1];
        assert_eq!(
            (last["codec"].as_str(), last["width"].as_u64()),
            (Some("h264"), Some(w)),
            "{last}"
        );
        assert!((last["fps"].as_f64().unwrap() - FPS).abs() < 4.0, "{last}");
        assert!(
            lines
                .iter()
                .any(|l| l["gop_s"].as_f64().is_some_and(|g| (g - gop).abs() < 0.2)),
            "{text}"
        );
        assert!(last["age_ms"].as_f64().unwrap() < 1000.0, "{last}");
        let rate = last["kbit_s"].as_f64().unwrap();
        assert!(rate > kbit * 0.3 && rate < kbit * 3.0, "{last}");
        assert_eq!(last["audio"].is_object(), stream == "main", "{last}");
    }
    eprintln!("status checked after {:?}", t0.elapsed());
    // kill -9 of the worker: the next one takes the rings over with a new generation.
    let mut reader = PacketReader::attach_in(nvr.shm_dir(), "ring264", StreamKind::Sub).unwrap();
    let before = reader.generation();
    let old_pid = pid(&camera_in(&nvr.status(), "ring264").unwrap()).unwrap();
    signal(old_pid, "KILL");
    nvr.wait_camera(
        "ring264",
        Duration::from_secs(30),
        "a new worker with SUB up",
        |c| pid(c).is_some_and(|p| p != old_pid) && stream_up(c, "sub"),
    );
    wait_until(
        Duration::from_secs(20),
        "the reader told of the restart",
        || {
            (reader.wait(Duration::from_millis(200)).unwrap() == PacketWait::Restarted)
                .then_some(())
        },
    );
    wait_until(
        Duration::from_secs(20),
        "a new generation with packets",
        || {
            reader.reattach().ok()?;
            reader.newest_keyframe_seq().map(|_| ())
        },
    );
    assert!(
        reader.generation() > before,
        "{} after {before}",
        reader.generation()
    );
    drop(idle);
}
