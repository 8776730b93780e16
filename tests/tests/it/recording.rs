//! Recording end to end: the fake cameras' MAIN streams, recorded by the real worker into real MP4
//! files, judged from the files themselves (ffprobe, `ffmpeg -xerror`, decoded pictures) rather than
//! from the worker's own events.

use nvr_tests::clipcheck::{
    decodes_cleanly, dts_strictly_increase, files_ending, grey_frames, moving_frames, probe,
    streams_of,
};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, signal, Nvr};
use nvr_tests::status::recording;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const HEARTBEAT_S: f64 = 0.5;
const FPS: f64 = 30.0;
/// The fake cameras' MAIN GOP.
const GOP_S: f64 = 2.0;
const PRE_ROLL_S: f64 = 5.0;
const POST_ROLL_S: f64 = 2.0;

fn camera(id: &str, fc: &FakeCam, main: &str, sub: &str, recording: Value) -> Value {
    let mut camera = camera_config(id, fc, main, sub);
    camera["motion"] = json!({"post_motion_s": 1});
    camera["recording"] = recording;
    camera
}

fn nvr_with(cameras: Vec<Value>) -> Nvr {
    Nvr::start(
        json!({"heartbeat_interval_s": HEARTBEAT_S, "cameras": cameras}),
        &[],
    )
}

fn output(nvr: &Nvr) -> PathBuf {
    nvr.dir.path().join("output")
}

/// Waits until camera `id` has finished `n` recordings.
fn wait_finished(nvr: &Nvr, id: &str, n: u64, timeout_s: u64) -> Value {
    nvr.wait_camera(
        id,
        Duration::from_secs(timeout_s),
        &format!("{n} recordings finished"),
        |c| c["recordings"]["finished"].as_u64() >= Some(n),
    )
}

/// The finished clips of a camera, oldest first.
fn clips(nvr: &Nvr, id: &str) -> Vec<PathBuf> {
    files_ending(&output(nvr).join(id), ".mp4")
}

fn video(path: &Path) -> Value {
    let p = probe(path).unwrap_or_else(|e| panic!("{e:#}"));
    let v = streams_of(&p, "video");
    assert_eq!(v.len(), 1, "{}: {p}", path.display());
    v[0].clone()
}

#[test]
fn motion_clips_open_before_the_onset_and_end_after_the_post_roll_h264_and_h265() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let rec = json!({"pre_roll_s": PRE_ROLL_S, "post_roll_s": POST_ROLL_S});
    let mut nvr = nvr_with(vec![
        camera("avc", &fc, "motion/main", "motion/sub", rec.clone()),
        camera("hevc", &fc, "motion/main_h265", "motion/sub_h265", rec),
    ]);
    // The loop starts with the server: the box appears at 10 s and leaves at 20 s; the clips end
    // about 3 s into the next loop, whose box comes at 30 s. Stop in between: one clip each.
    for id in ["avc", "hevc"] {
        wait_finished(&nvr, id, 1, 40);
    }
    nvr.terminate().unwrap();
    let onsets = fc
        .events()
        .iter()
        .filter(|e| e["event"] == "motion_start")
        .count();
    assert_eq!(onsets, 1, "the test stopped after exactly one onset");

    for (id, codec, profile, tag) in [
        ("avc", "h264", "High", "avc1"),
        ("hevc", "hevc", "Main", "hvc1"),
    ] {
        let files = clips(&nvr, id);
        assert_eq!(files.len(), 1, "{id}: one clip per onset: {files:?}");
        let clip = &files[0];
        let name = clip.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with(&format!("{id}_")) && name.ends_with("Z.mp4"),
            "{name}"
        );
        let v = video(clip);
        assert_eq!(
            (&v["codec_name"], &v["profile"], &v["width"], &v["height"]),
            (&json!(codec), &json!(profile), &json!(1920), &json!(1080)),
            "{id}: same codec, profile and size as the camera sends (no transcode)"
        );
        assert_eq!(v["codec_tag_string"], tag, "{id}");
        decodes_cleanly(clip).unwrap_or_else(|e| panic!("{e:#}"));

        let moving = moving_frames(&grey_frames(clip, 64, 36).unwrap());
        let still_before = moving.iter().take_while(|m| !**m).count() as f64 / FPS;
        let moving_s = moving.iter().filter(|m| **m).count() as f64 / FPS;
        let still_after = moving.iter().rev().take_while(|m| !**m).count() as f64 / FPS;
        eprintln!("{id}: {still_before:.2} s still, {moving_s:.2} s moving, {still_after:.2} s still after");
        assert!(
            still_before >= PRE_ROLL_S - GOP_S,
            "{id}: only {still_before:.2} s before the box appears"
        );
        assert!(
            still_before <= PRE_ROLL_S + GOP_S + PRE_ROLL_S,
            "{id}: {still_before:.2} s before the box: more pre-roll than buffered"
        );
        assert!(
            (9.0..=10.5).contains(&moving_s),
            "{id}: the box crosses for 10 s, the clip shows {moving_s:.2} s of it"
        );
        assert!(
            (POST_ROLL_S - GOP_S..=POST_ROLL_S + GOP_S).contains(&still_after),
            "{id}: {still_after:.2} s after the box left, want {POST_ROLL_S} ± {GOP_S}"
        );
    }
    assert!(
        files_ending(&output(&nvr), ".part").is_empty(),
        "no .part left after a clean stop"
    );
}

#[test]
fn continuous_mode_rotates_segments_keeps_aac_and_drops_g711() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let rec = json!({"mode": "continuous", "max_segment_s": 4});
    let mut nvr = nvr_with(vec![
        camera("aac", &fc, "motion/main_aac", "motion/sub", rec.clone()),
        camera("alaw", &fc, "motion/main_alaw", "motion/sub", rec),
    ]);
    for id in ["aac", "alaw"] {
        wait_finished(&nvr, id, 2, 40);
    }
    nvr.terminate().unwrap();
    for id in ["aac", "alaw"] {
        let files = clips(&nvr, id);
        assert!(files.len() >= 2, "{id}: {files:?}");
        // Each rotation finished its segment: nothing was left half-written.
        let parts = files_ending(&output(&nvr).join(id), ".part");
        assert!(parts.is_empty(), "{id}: {parts:?}");
        for clip in &files {
            let p = probe(clip).unwrap();
            let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
            assert!(
                duration <= 4.0 + GOP_S + 0.2,
                "{}: {duration} s in 4 s segments",
                clip.display()
            );
            decodes_cleanly(clip).unwrap_or_else(|e| panic!("{e:#}"));
            let audio = streams_of(&p, "audio");
            match id {
                "aac" => assert_eq!(audio[0]["codec_name"], "aac", "{}", clip.display()),
                _ => assert!(audio.is_empty(), "G.711 cannot go into MP4: {audio:?}"),
            }
        }
    }
    assert!(
        nvr.log_text()
            .contains("audio codec cannot go into MP4; recording video only"),
        "the dropped G.711 track is warned about"
    );
}

#[test]
fn a_part_file_cut_by_kill_9_plays_and_the_restarted_worker_finishes_it() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let rec = json!({"mode": "continuous", "max_segment_s": 300});
    let nvr = nvr_with(vec![camera("cam17", &fc, "motion/main", "motion/sub", rec)]);
    let c = nvr.wait_camera("cam17", Duration::from_secs(30), "recording", |c| {
        recording(c)
    });
    let pid = c["pid"].as_u64().unwrap() as u32;
    let rel = c["worker"]["recording"]["current_file"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(7));
    let started_ms = nvr.camera("cam17")["recordings"]["last_started"]["start_unix_ms"]
        .as_u64()
        .unwrap();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    signal(pid, "KILL");
    // The restarted worker finds the .part and finishes it.
    let c = nvr.wait_camera(
        "cam17",
        Duration::from_secs(20),
        "the .part recovered",
        |c| c["recordings"]["last_finished"]["recovered"] == true,
    );
    assert_eq!(c["recordings"]["last_finished"]["path"], rel.as_str());
    let clip = output(&nvr).join(&rel);
    assert!(clip.exists(), "{} was not finished", clip.display());
    let frames = grey_frames(&clip, 16, 9).unwrap().len() as f64;
    let recorded_s = (killed_ms - started_ms) as f64 / 1000.0;
    assert!(
        frames / FPS >= recorded_s - GOP_S - 0.5,
        "the file plays {:.2} s of the {recorded_s:.2} s recorded before the kill",
        frames / FPS
    );
    dts_strictly_increase(&clip).unwrap();
}

#[test]
fn a_camera_server_restart_mid_recording_leaves_valid_monotonic_files() {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let rec = json!({"mode": "continuous", "max_segment_s": 300});
    let mut nvr = nvr_with(vec![camera("cam16", &fc, "motion/main", "motion/sub", rec)]);
    nvr.wait_camera("cam16", Duration::from_secs(30), "recording", |c| {
        recording(c)
    });
    std::thread::sleep(Duration::from_secs(3));
    fc.command("stop").unwrap();
    nvr.wait_camera("cam16", Duration::from_secs(30), "main down", |c| {
        c["worker"]["main"]["state"] != "up"
    });
    fc.command("start").unwrap();
    nvr.wait_camera("cam16", Duration::from_secs(40), "recording again", |c| {
        c["worker"]["main"]["state"] == "up" && recording(c)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        nvr.camera("cam16")["restarts"],
        0,
        "the worker reconnected by itself"
    );
    nvr.terminate().unwrap();
    let files = clips(&nvr, "cam16");
    assert!(files.len() >= 2, "one file before and one after: {files:?}");
    for clip in &files {
        decodes_cleanly(clip).unwrap_or_else(|e| panic!("{e:#}"));
        let n = dts_strictly_increase(clip).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(n > 30, "{}: {n} packets", clip.display());
    }
    assert!(files_ending(&output(&nvr), ".part").is_empty());
}

#[test]
fn without_shared_memory_motion_is_still_detected_and_recorded() {
    // A missing (or full) /dev/shm costs the previews, never the detection: the worker then
    // detects on the decoder's own picture, and the clip is written as usual.
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let cam = camera(
        "noshm",
        &fc,
        "motion/main",
        "motion/sub",
        json!({"pre_roll_s": 2, "post_roll_s": 1}),
    );
    let missing = std::env::temp_dir().join(format!("nvr-no-shm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&missing);
    let mut nvr = Nvr::start(
        json!({"heartbeat_interval_s": HEARTBEAT_S, "cameras": [cam]}),
        &[("NVR_SHM_DIR", missing.to_str().unwrap())],
    );
    let st = wait_finished(&nvr, "noshm", 1, 60);
    assert_eq!(st["worker"]["sub"]["state"], "up", "{st}");
    let files = clips(&nvr, "noshm");
    assert_eq!(files.len(), 1, "{files:?}");
    let moving = moving_frames(&grey_frames(&files[0], 64, 36).unwrap());
    assert!(
        moving.iter().any(|&m| m),
        "the clip does not show the box: {}",
        files[0].display()
    );
    assert!(nvr.terminate().unwrap().success());
    assert!(
        nvr.log_text().contains("cannot create the frame ring"),
        "the missing ring is not in the log"
    );
}
