//! Recording schedules and mode overrides end to end: the real supervisor and worker on a fake
//! camera, judged from the recorded files (the index's times, ffprobe's packet times) and from
//! `/status`. One test runs the supervisor under libfaketime across the night Berlin's clocks
//! jump from 02:00 to 03:00.

use nvr_schedule::Timestamp;
use nvr_tests::clipcheck::{decodes_cleanly, files_ending, probe};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, http, wait_until, Nvr};
use nvr_tests::status::{pid, recording, stream_up};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A request with a JSON body (and the CSRF header every state change needs): (status, JSON).
fn send(nvr: &Nvr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", nvr.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-NVR-CSRF: 1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
    (code, value)
}

fn camera(fc: &FakeCam, schedule: &str, max_segment_s: f64) -> Value {
    let mut c = camera_config("cam", fc, "motion/main", "motion/sub");
    c["schedule"] = schedule.into();
    c["motion"] = json!({"post_motion_s": 1});
    c["recording"] = json!({"pre_roll_s": 2, "post_roll_s": 2, "max_segment_s": max_segment_s});
    c
}

/// The index's finished clips of `cam`, oldest first: (start ms, end ms, path).
fn indexed_clips(nvr: &Nvr) -> Vec<(i64, i64, String)> {
    let (code, rows) = nvr.get_json("/api/recordings?camera=cam");
    assert_eq!(code, 200, "{rows}");
    let mut clips: Vec<(i64, i64, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "finished")
        .map(|r| {
            (
                r["start"].as_i64().unwrap(),
                r["end"].as_i64().unwrap(),
                r["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    clips.sort();
    clips
}

/// The largest step between consecutive video packet times of a file, seconds (ffprobe).
fn largest_frame_gap_s(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", path.display());
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    assert!(
        times.len() > 30,
        "{}: {} frames",
        path.display(),
        times.len()
    );
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// The clips must not overlap, and every one must be whole: finished, decodable, on disk under a
/// name that is its UTC start.
fn check_clips(nvr: &Nvr, clips: &[(i64, i64, String)]) {
    for pair in clips.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "clips overlap: {pair:?}");
    }
    let out = nvr.output_dir();
    let mut paths: Vec<&String> = clips.iter().map(|c| &c.2).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        clips.len(),
        "every clip has its own file: {clips:?}"
    );
    for (start, end, rel) in clips {
        let path = out.join(rel);
        decodes_cleanly(&path).unwrap_or_else(|e| panic!("{e:#}"));
        // The file holds the clip the index describes (not a later one written over it).
        let p = probe(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
        let indexed = (end - start) as f64 / 1000.0;
        assert!(
            (duration - indexed).abs() < 1.0,
            "{rel}: {duration} s on disk, {indexed} s in the index"
        );
        let utc = Timestamp::from_millisecond(*start)
            .unwrap()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The name is the start as the worker knew it when it opened the clip: a second late, or
        // two, for the first clip after a connect (its first packets, read while probing, are
        // back-dated only later, and the index takes the corrected start when the clip is
        // finished). A clip starting in the same second as another gets a suffix, and the index's
        // ms round to the name's second: allow one second before and two after.
        let second = |ms: i64| {
            Timestamp::from_millisecond(ms)
                .unwrap()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string()
        };
        assert!(
            [-1000, 0, 1000, 2000]
                .iter()
                .any(|d| name.starts_with(&format!("cam_{}", second(start + d)))),
            "{name} is named by its UTC start {utc}"
        );
    }
    assert!(files_ending(&out, ".part").is_empty(), "no .part left");
}

#[test]
fn mode_switches_keep_footage_overrides_expire_survive_a_restart_and_bad_input_changes_nothing() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let schedules = json!({"s": {"timezone": "UTC", "default": "motion", "rules": []}});
    let config = json!({"heartbeat_interval_s": 0.5, "schedules": schedules, "cameras": [camera(&fc, "s", 300.0)]});
    let mut nvr = Nvr::start(config.clone(), &[]);
    let worker = nvr.wait_running(&["cam"])[0];
    let c = nvr.camera("cam");
    assert_eq!(c["mode"]["current"], "motion", "{c}");
    assert_eq!(c["mode"]["source"], "schedule s");
    assert_eq!(
        c["mode"]["next"],
        Value::Null,
        "a schedule without rules never changes"
    );

    // Motion -> continuous while the motion clip is open: the clip goes on.
    nvr.wait_camera(
        "cam",
        Duration::from_secs(40),
        "a motion clip open",
        recording,
    );
    let t1 = now_ms();
    let (code, body) = send(
        &nvr,
        "POST",
        "/api/cameras/cam/mode",
        r#"{"mode": "continuous", "for_s": 5}"#,
    );
    assert_eq!(code, 200, "{body}");
    let m = &body["cameras"][0]["mode"];
    assert_eq!(
        (&m["current"], &m["source"]),
        (&json!("continuous"), &json!("override")),
        "{body}"
    );
    let until = m["override_until_ms"].as_i64().unwrap();
    assert!(
        (t1 + 4000..=now_ms() + 5000).contains(&until),
        "{until} vs {t1}"
    );
    assert_eq!(m["next"], json!({"at_ms": until, "mode": "motion"}));
    // `/metrics` reads the status snapshot, which the manager publishes a moment after the
    // override's answer: wait for it (the 5 s override gives room).
    wait_until(Duration::from_secs(3), "the override in /metrics", || {
        let metrics = http(nvr.port, "GET", "/metrics").ok()?.1;
        (metrics.contains("nvr_recording_mode{camera=\"cam\",mode=\"continuous\"} 1")
            && metrics.contains("nvr_recording_mode_override{camera=\"cam\"} 1"))
        .then_some(())
    });

    // The override ends by itself; the schedule's mode comes back.
    let c = nvr.wait_camera("cam", Duration::from_secs(15), "the override to end", |c| {
        c["mode"]["source"] == "schedule s"
    });
    assert!(now_ms() >= until, "not before its end");
    assert_eq!(c["mode"]["current"], "motion");
    assert_eq!(c["mode"]["override_until_ms"], Value::Null);

    // Continuous (no limit), then off: the clip closes at once.
    let (code, _) = send(
        &nvr,
        "POST",
        "/api/cameras/cam/mode",
        r#"{"mode": "continuous"}"#,
    );
    assert_eq!(code, 200);
    nvr.wait_camera(
        "cam",
        Duration::from_secs(10),
        "recording continuously",
        recording,
    );
    std::thread::sleep(Duration::from_secs(2));
    let t3 = now_ms();
    let (code, body) = send(&nvr, "POST", "/api/mode", r#"{"mode": "off"}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["cameras"][0]["mode"]["current"], "off");
    assert_eq!(body["cameras"][0]["mode"]["next"], Value::Null);
    nvr.wait_camera("cam", Duration::from_secs(5), "the clip closed", |c| {
        !recording(c)
    });

    // Bad input, an unknown camera included: 400 with a JSON error, and nothing changes.
    let before = nvr.camera("cam")["mode"].clone();
    for (method, path, body, want) in [
        (
            "POST",
            "/api/cameras/cam/mode",
            r#"{"mode": "sometimes"}"#,
            400,
        ),
        (
            "POST",
            "/api/cameras/cam/mode",
            r#"{"mode": "motion", "for_s": -5}"#,
            400,
        ),
        (
            "POST",
            "/api/cameras/cam/mode",
            r#"{"mode": "motion", "for_s": 1e12}"#,
            400,
        ),
        (
            "POST",
            "/api/cameras/cam/mode",
            r#"{"mode": "motion", "until": 1000}"#,
            400,
        ),
        (
            "POST",
            "/api/cameras/cam/mode",
            r#"{"mode": "motion", "for_s": 5, "until": 99999999999999}"#,
            400,
        ),
        ("POST", "/api/cameras/cam/mode", "not json", 400),
        (
            "POST",
            "/api/mode",
            r#"{"mode": "motion", "for_s": 0}"#,
            400,
        ),
        (
            "POST",
            "/api/cameras/nope/mode",
            r#"{"mode": "motion"}"#,
            400,
        ),
        ("DELETE", "/api/cameras/nope/mode", "", 400),
        ("GET", "/api/cameras/cam/schedule?from=10&to=5", "", 400),
        ("GET", "/api/cameras/cam/schedule?from=x", "", 400),
    ] {
        let (code, body) = send(&nvr, method, path, body);
        assert_eq!(code, want, "{method} {path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_eq!(
        nvr.camera("cam")["mode"],
        before,
        "bad requests changed nothing"
    );

    // The override survives a supervisor restart.
    nvr.restart(&[]);
    let c = nvr.wait_camera(
        "cam",
        Duration::from_secs(20),
        "running with its MAIN stream up",
        |c| stream_up(c, "main"),
    );
    assert_eq!(
        (&c["mode"]["current"], &c["mode"]["source"]),
        (&json!("off"), &json!("override")),
        "{c}"
    );
    assert!(nvr.log_text().contains("mode override restored"));
    let worker = pid(&c).unwrap_or(worker);
    // Off records nothing, but motion detection goes on: the next box is an event, not a clip.
    let events = c["motion"]["events"].as_u64().unwrap_or(0);
    let c = nvr.wait_camera(
        "cam",
        Duration::from_secs(30),
        "a motion event while off",
        |c| c["motion"]["events"].as_u64() > Some(events) || recording(c),
    );
    assert!(!recording(&c), "off recorded: {c}");
    assert_eq!(c["recordings"]["finished"], 0, "{c}");

    // Deleting it gives the schedule back, in place: the same worker.
    let (code, body) = send(&nvr, "DELETE", "/api/cameras/cam/mode", "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["cameras"][0]["mode"]["source"], "schedule s");

    // A reload that changes the schedule applies in place too; a bad one changes nothing.
    let mut bad = config.clone();
    bad["schedules"]["s"]["rules"] = json!([
        {"days": ["fri"], "from": "22:00", "to": "06:30", "mode": "off"},
        {"days": ["sat"], "from": "00:00", "to": "24:00", "mode": "continuous"}
    ]);
    bad["output_dir"] = nvr.output_dir().display().to_string().into();
    std::fs::write(nvr.config_path(), bad.to_string()).unwrap();
    let (code, body) = send(&nvr, "POST", "/api/reload", "");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("schedules.s.rules[1]"),
        "{body}"
    );
    let mut good = bad;
    good["schedules"]["s"] = json!({"timezone": "UTC", "default": "continuous"});
    std::fs::write(nvr.config_path(), good.to_string()).unwrap();
    let (code, body) = send(&nvr, "POST", "/api/reload", "");
    assert_eq!(code, 200, "{body}");
    let c = nvr.wait_camera(
        "cam",
        Duration::from_secs(10),
        "recording continuously after the reload",
        recording,
    );
    assert_eq!(c["mode"]["current"], "continuous");
    assert_eq!(
        pid(&c),
        Some(worker),
        "no worker restart for a schedule change"
    );
    let (code, sched) = nvr.get_json("/api/cameras/cam/schedule");
    assert_eq!(code, 200);
    assert_eq!(sched["intervals"].as_array().unwrap().len(), 1, "{sched}");
    assert_eq!(sched["intervals"][0]["mode"], "continuous");
    let clips = indexed_clips(&nvr);
    nvr.terminate().unwrap();

    // Judged from the files: the clip open when continuous was asked for ran on through the
    // override and past its end (no close, no new file), with no gap between its frames.
    check_clips(&nvr, &clips);
    let through = clips
        .iter()
        .find(|(s, e, _)| *s < t1 && *e > until)
        .unwrap_or_else(|| {
            panic!("one clip spans the switch at {t1} and the override's end at {until}: {clips:?}")
        });
    let gap = largest_frame_gap_s(&nvr.output_dir().join(&through.2));
    eprintln!("motion -> continuous -> motion: one clip {through:?}, largest frame gap {gap:.3} s");
    assert!(gap < 0.5, "a {gap} s gap in {}", through.2);
    // Off closed the clip at once: its last frame is within a second of the request.
    let closed = clips
        .iter()
        .find(|(s, e, _)| *s < t3 && *e >= t3 - 1000)
        .unwrap_or_else(|| panic!("the clip open at {t3}: {clips:?}"));
    let lag_ms = closed.1 - t3;
    eprintln!("-> off: the clip ended {lag_ms} ms after the request");
    assert!(lag_ms < 1000, "closed {lag_ms} ms after the switch to off");
}

/// The supervisor and its worker run under libfaketime, 20 s before Berlin's clocks jump from
/// 02:00 to 03:00 on 2026-03-29 (01:00:00Z). The schedule switches from continuous to motion at
/// 02:30, a time that does not exist that night: it takes effect at the jump.
#[test]
fn a_mode_change_in_the_dst_gap_flips_at_the_jump_and_keeps_every_clip() {
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        Path::new(LIB).exists(),
        "{LIB} missing: run scripts/setup.sh (Debian package faketime)"
    );
    let jump_ms: i64 = 1_774_746_000_000; // 2026-03-29T01:00:00Z
    assert_eq!(
        Timestamp::from_millisecond(jump_ms).unwrap().to_string(),
        "2026-03-29T01:00:00Z"
    );
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let schedules = json!({"night": {"timezone": "Europe/Berlin", "default": "continuous",
        "rules": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "02:30", "to": "05:00", "mode": "motion"}]}});
    let config = json!({"heartbeat_interval_s": 0.5, "schedules": schedules, "cameras": [camera(&fc, "night", 4.0)]});
    // libfaketime takes a whole-second offset from the real clock.
    let offset_s = (jump_ms - 20_000 - now_ms()) / 1000;
    let offset = format!("{offset_s:+}");
    let env = [
        ("LD_PRELOAD", LIB),
        ("FAKETIME", offset.as_str()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("TZ", "Europe/Berlin"),
    ];
    let fake_now = || now_ms() + offset_s * 1000;
    let mut nvr = Nvr::start(config, &env);
    let worker = nvr.wait_running(&["cam"])[0];
    let c = nvr.camera("cam");
    assert!(fake_now() < jump_ms, "started before the jump");
    assert_eq!(c["mode"]["current"], "continuous", "{c}");
    assert_eq!(
        c["mode"]["next"],
        json!({"at_ms": jump_ms, "mode": "motion"}),
        "the next change is the jump itself"
    );
    let c = nvr.wait_camera("cam", Duration::from_secs(40), "the flip to motion", |c| {
        c["mode"]["current"] == "motion"
    });
    assert!(fake_now() >= jump_ms, "not before the jump");
    assert_eq!(c["mode"]["source"], "schedule night");
    // The next change: 05:00 CEST = 03:00Z.
    assert_eq!(
        c["mode"]["next"],
        json!({"at_ms": jump_ms + 2 * 3_600_000, "mode": "continuous"})
    );
    assert_eq!(pid(&c), Some(worker), "switched in place");
    // Let the motion loop (a box every 20 s) make a motion clip after the flip.
    let clips_after_flip = |nvr: &Nvr| indexed_clips(nvr).iter().filter(|c| c.0 >= jump_ms).count();
    wait_until(
        Duration::from_secs(60),
        "a clip started after the flip, finished",
        || (clips_after_flip(&nvr) >= 1).then_some(()),
    );
    let clips = indexed_clips(&nvr);
    nvr.terminate().unwrap();

    // The switch, measured in the worker's own log (faked wall clock): the first line saying
    // the recording settings changed, against the transition instant.
    let log = nvr.log_text();
    let switched_ms = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "recording settings updated" && v["mode"] == "motion")
        .filter_map(|v| v["timestamp"].as_str()?.parse::<Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .next()
        .unwrap_or_else(|| panic!("no mode switch in the worker's log:\n{log}"));
    let lag_ms = switched_ms - jump_ms;
    eprintln!("DST gap: the worker switched {lag_ms} ms after the transition instant");
    assert!(
        (0..1000).contains(&lag_ms),
        "switched {lag_ms} ms after the transition"
    );

    check_clips(&nvr, &clips);
    assert!(
        clips.iter().any(|c| c.0 < jump_ms),
        "continuous clips before the jump: {clips:?}"
    );
    assert!(
        clips.iter().any(|c| c.0 >= jump_ms),
        "a motion clip after it: {clips:?}"
    );
    // File names are UTC: nothing is named in the hour that did not exist locally.
    for (_, _, rel) in &clips {
        assert!(
            rel.contains("T005") || rel.contains("T010"),
            "{rel}: UTC around 01:00Z"
        );
    }
}

/// The camera page's schedule panel and the tile's mode, in a real headless Chromium.
#[test]
fn the_ui_shows_the_week_the_mode_in_force_and_sets_an_override() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let schedules = json!({"nights": {"timezone": "Europe/Berlin", "default": "motion", "rules": [
        {"days": ["mon","tue","wed","thu","fri","sat","sun"], "from": "22:00", "to": "06:00", "mode": "continuous"}]}});
    let config = json!({"heartbeat_interval_s": 0.5, "schedules": schedules, "cameras": [camera(&fc, "nights", 300.0)]});
    let nvr = Nvr::start(config, &[]);
    nvr.wait_running(&["cam"]);
    nvr_tests::chromium::check_camera_page("schedule", nvr.port, "cam");
}
