//! The web UI in a real headless Chromium (Debian's, driven by playwright-core from
//! `tests/ui/ui.mjs`), against the real supervisor and fake cameras. Screenshots of every page go to
//! `target/ui-screenshots/`.

use nvr_tests::chromium::{run_script, shots};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{hash_password, Nvr};
use serde_json::json;
use std::time::Duration;

/// Runs the UI script with `args`; panics with its output unless every check passed.
fn run_ui(args: &[&str]) {
    run_ui_with(args, 150, |_| {});
}

/// [`run_ui`] within `timeout_s`, handing each line the script prints to `on_line` as it comes
/// (the script asks for things only the test can do, such as taking a fake camera's mount down).
fn run_ui_with(args: &[&str], timeout_s: u32, on_line: impl FnMut(&str)) -> String {
    run_script("ui.mjs", args, timeout_s, on_line)
}

#[test]
fn grid_status_and_recordings_work_in_chromium() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["clock", "motion"])).unwrap();
    // The recorder's first clip (about 12 s: it rotates at a keyframe after 10 s) covers the box's
    // first crossing 10 s into the fake camera's loop, several seconds in: the UI plays that
    // motion event from 2 s before it, a real seek.
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            // The on-screen clock is masked, as its owner would: its digits are moving objects.
            {"id": "live", "name": "Clock", "main_url": fc.url("clock/main"), "sub_url": fc.url("clock/sub"),
             "recording": {"mode": "off"},
             "motion": {"masks": [[[0, 0], [0.45, 0], [0.45, 0.2], [0, 0.2]]]}},
            {"id": "broken", "name": "Broken", "main_url": fc.url("nope/main"), "sub_url": fc.url("nope/sub"),
             "recording": {"mode": "off"}},
            {"id": "rec", "name": "Recorder", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
             "recording": {"mode": "continuous", "max_segment_s": 10}},
        ]}),
        &[],
    );
    nvr.wait_camera("rec", Duration::from_secs(40), "a clip", |c| {
        c["recordings"]["finished"].as_u64() >= Some(1)
    });
    let base = format!("http://127.0.0.1:{}", nvr.port);
    run_ui(&[
        "--base",
        &base,
        "--shots",
        &shots("ui"),
        "--mode",
        "noauth",
        "--live",
        "live",
        "--down",
        "broken",
        "--rec",
        "rec",
    ]);
}

#[test]
fn with_auth_the_ui_asks_for_a_login() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let password = "correct horse battery";
    let hash = hash_password(password);
    assert!(!hash.contains(password));
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "api": {"auth": {"username": "admin", "password_hash": hash}},
            "cameras": [{"id": "cam", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
                "recording": {"mode": "off"}}]}),
        &[],
    );
    let base = format!("http://127.0.0.1:{}", nvr.port);
    run_ui(&[
        "--base",
        &base,
        "--shots",
        &shots("auth"),
        "--mode",
        "auth",
        "--user",
        "admin",
        "--password",
        password,
    ]);
    assert!(
        !nvr.log_text().contains(password),
        "the password reached the log"
    );
}

/// The grid: 16 SUB-only cameras (320x180, 15 fps, recording off) from one fake-camera
/// server, most on one shared mount, two on their own mounts (taken down and brought back while
/// the page watches), one H.265 (the MJPEG fallback with its label where Chromium cannot play it).
#[test]
fn a_grid_of_16_cameras_plays_over_websockets_in_chromium() {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["clock", "motion"])).unwrap();
    let mut cameras = Vec::new();
    for i in 1..=16 {
        let id = format!("c{i:02}");
        let mount = match i {
            14 => "clock/tiny_a",
            15 => "clock/tiny_b",
            16 => "motion/tiny_h265",
            _ => "clock/tiny",
        };
        cameras.push(
            json!({"id": id, "name": format!("Camera {i}"), "main_url": fc.url(mount),
            "sub_url": fc.url(mount), "recording": {"mode": "off"}}),
        );
    }
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": cameras}),
        &[],
    );
    for i in 1..=16 {
        nvr.wait_camera(
            &format!("c{i:02}"),
            Duration::from_secs(60),
            "sub up",
            |c| c["worker"]["sub"]["state"] == "up",
        );
    }
    let base = format!("http://127.0.0.1:{}", nvr.port);
    let mount_of = |id: &str| match id {
        "c14" => "/clock/tiny_a",
        "c15" => "/clock/tiny_b",
        other => panic!("the script asked to take {other} down, which has no mount of its own"),
    };
    let (pid, ticks, started) = (
        nvr.pid(),
        nvr_tests::procstat::cpu_ticks(nvr.pid()),
        std::time::Instant::now(),
    );
    let out = run_ui_with(
        &[
            "--base",
            &base,
            "--shots",
            &shots("grid16"),
            "--mode",
            "grid16",
            "--downup",
            "c14,c15",
            "--h265",
            "c16",
            "--hold",
            "60",
        ],
        240,
        |line| {
            if let Some(id) = line.strip_prefix("@off ") {
                fc.command(&format!("off {}", mount_of(id))).unwrap();
            } else if let Some(id) = line.strip_prefix("@on ") {
                fc.command(&format!("on {}", mount_of(id))).unwrap();
            }
        },
    );
    assert!(out.contains("bench: browser_frames_per_s="), "{out}");
    // A figure for BENCHMARKS.md, not a check.
    eprintln!(
        "bench: supervisor_cpu_percent={:.1} over {:.0} s with 16 tiles",
        (nvr_tests::procstat::cpu_ticks(pid) - ticks) as f64
            / nvr_tests::procstat::clk_tck()
            / started.elapsed().as_secs_f64()
            * 100.0,
        started.elapsed().as_secs_f64()
    );
}

/// The single view plays MAIN at full resolution, and plays again by itself after `kill -9` of
/// the camera's worker.
#[test]
fn the_single_view_plays_main_and_recovers_from_a_killed_worker() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["clock"])).unwrap();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            {"id": "cam", "name": "Clock", "main_url": fc.url("clock/main"), "sub_url": fc.url("clock/sub"),
             "recording": {"mode": "motion"}}]}),
        &[],
    );
    nvr.wait_camera("cam", Duration::from_secs(30), "MAIN up", |c| {
        c["worker"]["main"]["state"] == "up" && c["worker"]["main"]["packet_ring"].is_object()
    });
    let base = format!("http://127.0.0.1:{}", nvr.port);
    run_ui_with(
        &[
            "--base",
            &base,
            "--shots",
            &shots("single"),
            "--mode",
            "single",
            "--camera",
            "cam",
        ],
        150,
        |_| {},
    );
}

/// Camera set-up without editing JSON, in Chromium at phone width: the first login on the set-up
/// page, "Add camera" (Test with a wrong password, then the right one; Save) and its tile live,
/// the camera's live motion level and sensitivity, zones and masks drawn in the editor, checked in
/// the file and against the fake camera's ground truth.
#[test]
fn a_camera_and_its_zones_are_set_up_in_chromium() {
    let fc = FakeCam::start(FakeCamOpts {
        auth: Some(("admin".into(), "cam-secret".into())),
        ..FakeCamOpts::scenes(&["motion"])
    })
    .unwrap();
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 0.5, "cameras": []}), &[]);
    let base = format!("http://127.0.0.1:{}", nvr.port);
    let (main, sub) = (fc.url("motion/main"), fc.url("motion/sub"));
    let mut masked: Option<i64> = None;
    let out = run_script(
        "setup.mjs",
        &[
            "--base",
            &base,
            "--shots",
            &shots("setup"),
            "--main",
            &main,
            "--sub",
            &sub,
            "--cam-user",
            "admin",
            "--cam-password",
            "cam-secret",
        ],
        240,
        |line| {
            if let Some(ms) = line.strip_prefix("@mask-saved ") {
                masked = ms.trim().parse().ok();
            }
        },
    );
    assert!(out.contains("@zones-saved"), "{out}");
    let masked = masked.expect("the script saved the mask");
    let text = std::fs::read_to_string(nvr.config_path()).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(file["api"]["auth"]["password_hash"]
        .as_str()
        .is_some_and(|h| h.starts_with("$argon2")));
    let cams = file["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 1, "{text}");
    let cam = &cams[0];
    assert_eq!(
        (&cam["id"], &cam["name"], &cam["main_url"], &cam["sub_url"]),
        (&json!("yard"), &json!("Yard"), &json!(main), &json!(sub)),
        "{text}"
    );
    assert_eq!(
        cam["password"], "cam-secret",
        "where the user chose: the file"
    );
    assert_eq!(
        (&cam["motion"]["threshold"], &cam["motion"]["min_area"]),
        (&json!(40), &json!(0.5)),
        "the settings page's sensitivity: {text}"
    );
    let near = |got: &serde_json::Value, want: &[[f64; 2]]| {
        let got: Vec<[f64; 2]> = serde_json::from_value(got.clone()).unwrap();
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| (g[0] - w[0]).abs() < 0.01 && (g[1] - w[1]).abs() < 0.01)
    };
    let zones = cam["motion"]["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 2, "{text}");
    assert_eq!(
        (&zones[0]["name"], &zones[1]["name"]),
        (&json!("path"), &json!("ground"))
    );
    assert!(
        near(
            &zones[0]["points"],
            &[[0.3, 0.25], [0.7, 0.25], [0.7, 0.75], [0.3, 0.75]]
        ),
        "the zone as drawn, normalised: {text}"
    );
    let masks = cam["motion"]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2, "{text}");
    assert!(
        near(&masks[0], &[[0.12, 0.02], [0.3, 0.02], [0.3, 0.15]]),
        "the mask as drawn, then moved right by 0.1: {text}"
    );
    assert!(
        near(
            &masks[1],
            &[[0.02, 0.28], [0.98, 0.28], [0.98, 0.72], [0.02, 0.72]]
        ),
        "the mask over the box's band: {text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(nvr.config_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    zone_events_follow_the_ground_truth(&nvr, &fc, masked);
    let log = nvr.log_text();
    assert!(!log.contains("cam-secret") && !log.contains("correct horse"));
}

/// With the zones the editor saved, every motion event before the mask lies within one of the box's
/// crossings (the fake camera's `motion_start`, then 10 s left to right through the middle) and
/// names `path` only, never `ground`; after the mask over the box's band (saved at `masked`, Unix
/// ms) the next whole crossing makes no event.
fn zone_events_follow_the_ground_truth(nvr: &Nvr, fc: &FakeCam, masked: i64) {
    let port = nvr.port;
    let (cookie, _) = nvr_tests::nvr::login(port, "admin", "correct horse");
    let events = || -> Vec<serde_json::Value> {
        let (code, v) = nvr_tests::nvr::send_json(
            port,
            "GET",
            "/api/events?camera=yard",
            &[("Cookie", &cookie)],
            "",
        );
        assert_eq!(code, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    };
    let wall_ms = |e: &serde_json::Value| e["wall_ns"].as_u64().unwrap() as i64 / 1_000_000;
    let crossings: Vec<i64> = fc
        .events()
        .iter()
        .filter(|e| e["event"] == "motion_start")
        .map(wall_ms)
        .collect();
    let all = events();
    let zoned: Vec<_> = all
        .iter()
        .filter(|e| !e["zones"].as_array().unwrap().is_empty())
        .collect();
    assert!(
        !zoned.is_empty(),
        "an event with zones before the mask: {all:?}"
    );
    for e in &zoned {
        let start = e["start"].as_i64().unwrap();
        assert!(
            crossings.iter().any(|c| start >= *c && start <= c + 10_000),
            "the event starts during a crossing ({crossings:?}): {e}"
        );
        assert_eq!(e["zones"], json!(["path"]), "{e}");
    }
    // The first crossing that starts after the mask, and the detector's post-motion time.
    let next = wall_ms(
        &fc.wait_event(
            |e| e["event"] == "motion_start" && wall_ms(e) > masked,
            Duration::from_secs(25),
        )
        .unwrap(),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(
        (next + 12_000 - now_ms).clamp(0, 30_000) as u64,
    ));
    let late: Vec<_> = events()
        .into_iter()
        .filter(|e| e["start"].as_i64().is_some_and(|s| s >= masked))
        .collect();
    assert!(late.is_empty(), "the mask silences the crossing: {late:?}");
}
