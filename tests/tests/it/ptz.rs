//! Pan-tilt-zoom end to end: the API → the manager → the camera's worker → a third-party ONVIF
//! device (ipycam, started by the harness on a free loopback port; see tests/onvif/README.md),
//! whose reported position (`GetStatus`) is what the checks read. Also our own silent and garbage
//! devices, a wrong password, a device clock an hour off, and the web UI's controls in Chromium.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, send_json, signal, wait_until, Nvr};
use nvr_tests::onvif::{GarbageDevice, OnvifDevice, SilentDevice};
use nvr_tests::status::{pid, u64_at};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const USER: &str = "ptzadmin";
const PASSWORD: &str = "ptz-s3cret-pw";

/// A request with a JSON body and the CSRF header: (status, JSON body).
fn send(nvr: &Nvr, method: &str, path: &str, body: &str) -> (u16, Value) {
    send_json(nvr.port, method, path, &[("X-NVR-CSRF", "1")], body)
}

fn ptz(nvr: &Nvr, cam: &str, body: Value) -> (u16, Value) {
    send(
        nvr,
        "POST",
        &format!("/api/cameras/{cam}/ptz"),
        &body.to_string(),
    )
}

fn describe(nvr: &Nvr, cam: &str) -> Value {
    let (code, d) = nvr.get_json(&format!("/api/cameras/{cam}/ptz"));
    assert_eq!(code, 200, "GET ptz of {cam}: {d}");
    d
}

/// The device's position as it reports it: [pan, tilt, zoom].
fn position(nvr: &Nvr, cam: &str) -> [f64; 3] {
    let d = describe(nvr, cam);
    let p = &d["position"];
    [&p["pan"], &p["tilt"], &p["zoom"]].map(|v| v.as_f64().unwrap_or_else(|| panic!("{d}")))
}

fn close(a: [f64; 3], b: [f64; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

/// Two readings 500 ms apart (the second asked once the first was answered) that are equal.
fn stands_still(nvr: &Nvr, cam: &str) -> Result<[f64; 3], ([f64; 3], [f64; 3])> {
    let a = position(nvr, cam);
    std::thread::sleep(Duration::from_millis(500));
    let b = position(nvr, cam);
    if close(a, b) {
        Ok(b)
    } else {
        Err((a, b))
    }
}

fn go_home(nvr: &Nvr, cam: &str) {
    let (code, r) = ptz(nvr, cam, json!({"action": "goto_preset", "preset": "home"}));
    assert_eq!((code, &r["result"]), (200, &json!("done")), "{r}");
    wait_until(Duration::from_secs(10), "the device at home", || {
        close(position(nvr, cam), [0.0; 3]).then_some(())
    });
}

fn onvif_of(device_port: u16, password: &str) -> Value {
    json!({"host": "127.0.0.1", "port": device_port, "username": USER, "password": password,
           "move_timeout_s": 0.5, "settle_s": 1})
}

fn motion_starts_ms(nvr: &Nvr, cam: &str) -> Vec<i64> {
    let (code, rows) = nvr.get_json(&format!("/api/events?camera={cam}"));
    assert_eq!(code, 200, "{rows}");
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["start"].as_i64())
        .collect()
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn moves_presets_the_dead_man_stop_a_killed_worker_and_a_pan_that_records_nothing() {
    let device = OnvifDevice::start(USER, PASSWORD, 0).unwrap();
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cam = camera_config("cam", &fc, "motion/main", "motion/sub");
    cam["onvif"] = onvif_of(device.port(), PASSWORD);
    cam["motion"] = json!({"post_motion_s": 1});
    cam["recording"] = json!({"pre_roll_s": 1, "post_roll_s": 1});
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 0.5, "cameras": [cam]}), &[]);
    nvr.wait_running(&["cam"]);
    assert_eq!(nvr.camera("cam")["ptz"], true);

    // What the device can do, and its presets.
    let d = describe(&nvr, "cam");
    assert_eq!(
        (&d["pan_tilt"], &d["zoom"]),
        (&json!(true), &json!(true)),
        "{d}"
    );
    let presets = d["presets"].as_array().unwrap();
    assert!(presets.iter().any(|p| p["token"] == "home"), "{d}");

    // goto_preset by name and by token; a move changes the position, a stop freezes it.
    let home_name = presets.iter().find(|p| p["token"] == "home").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, r) = ptz(
        &nvr,
        "cam",
        json!({"action": "goto_preset", "preset": home_name}),
    );
    assert_eq!(code, 200, "{r}");
    go_home(&nvr, "cam");
    let (code, r) = ptz(
        &nvr,
        "cam",
        json!({"action": "move", "pan": 0.2, "tilt": -0.1, "zoom": 0.1}),
    );
    assert_eq!(code, 200, "{r}");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        ptz(
            &nvr,
            "cam",
            json!({"action": "move", "pan": 0.2, "tilt": -0.1, "zoom": 0.1}),
        );
    }
    let (code, r) = ptz(&nvr, "cam", json!({"action": "stop"}));
    assert_eq!(code, 200, "{r}");
    let p = stands_still(&nvr, "cam")
        .unwrap_or_else(|(a, b)| panic!("still moving after stop: {a:?} {b:?}"));
    assert!(
        p[0] > 0.05 && p[1] < -0.02 && p[2] > 0.02,
        "the move moved it: {p:?}"
    );

    // set_preset returns a token the preset list then holds; goto back to it.
    let (code, r) = ptz(&nvr, "cam", json!({"action": "set_preset", "name": "gate"}));
    assert_eq!(code, 200, "{r}");
    let token = r["token"].as_str().unwrap().to_string();
    assert!(describe(&nvr, "cam")["presets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["token"] == token.as_str() && p["name"] == "gate"));
    go_home(&nvr, "cam");
    ptz(
        &nvr,
        "cam",
        json!({"action": "goto_preset", "preset": token}),
    );
    wait_until(
        Duration::from_secs(10),
        "the device at the gate preset",
        || close(position(&nvr, "cam"), p).then_some(()),
    );

    // Bad requests change nothing.
    for body in [
        json!({"action": "move", "pan": 2, "tilt": 0, "zoom": 0}),
        json!({"action": "spin"}),
        json!({"action": "goto_preset", "preset": ""}),
    ] {
        let (code, r) = ptz(&nvr, "cam", body.clone());
        assert_eq!(
            (code, &r["error"]),
            (400, &json!("bad_request")),
            "{body}: {r}"
        );
    }
    let (code, r) = ptz(&nvr, "nosuch", json!({"action": "stop"}));
    assert_eq!(code, 404, "{r}");

    // The dead-man stop: one move and no renewal; the device stops within the 0.5 s window.
    go_home(&nvr, "cam");
    let sent = Instant::now();
    ptz(
        &nvr,
        "cam",
        json!({"action": "move", "pan": 0.2, "tilt": 0, "zoom": 0}),
    );
    std::thread::sleep(Duration::from_secs(1).saturating_sub(sent.elapsed()));
    let p = stands_still(&nvr, "cam")
        .unwrap_or_else(|(a, b)| panic!("still moving 1 s after the last renewal: {a:?} {b:?}"));
    // 0.2/s for the 0.5 s window plus the round trips: well under a second's worth (0.2).
    assert!(
        p[0] > 0.02 && p[0] < 0.2,
        "pan {} after the dead-man stop",
        p[0]
    );
    assert_eq!(describe(&nvr, "cam")["moving"], false);

    // A worker killed mid-move: the device ignores a move's timeout, so only the restarted
    // worker's start-up Stop can stop it.
    go_home(&nvr, "cam");
    let old = pid(&nvr.camera("cam")).unwrap();
    ptz(
        &nvr,
        "cam",
        json!({"action": "move", "pan": 0.0, "tilt": 0.1, "zoom": 0}),
    );
    std::thread::sleep(Duration::from_millis(200));
    signal(old, "KILL");
    wait_until(Duration::from_secs(20), "a new worker", || {
        let c = nvr.camera("cam");
        (pid(&c).is_some_and(|p| p != old) && c["state"] == "running").then_some(())
    });
    let p = wait_until(Duration::from_secs(10), "the device stopped", || {
        stands_still(&nvr, "cam").ok()
    });
    assert!(
        p[1] > 0.01 && p[1] < 0.9,
        "tilt {} when the restarted worker stopped it",
        p[1]
    );

    // A pan over the scripted motion records nothing: detection pauses while the camera moves
    // and settles. The fake camera's box starts moving 10 s into each 20 s loop.
    fc.wait_next("loop_start", Duration::from_secs(40)).unwrap();
    let loop_start = Instant::now();
    std::thread::sleep(Duration::from_millis(8500));
    let before = motion_starts_ms(&nvr, "cam").len();
    let pan_from_ms = unix_ms();
    go_home(&nvr, "cam");
    while loop_start.elapsed() < Duration::from_secs(15) {
        let (code, r) = ptz(
            &nvr,
            "cam",
            json!({"action": "move", "pan": 0.05, "tilt": 0, "zoom": 0}),
        );
        assert_eq!(code, 200, "{r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    ptz(&nvr, "cam", json!({"action": "stop"}));
    let settled_ms = unix_ms() + 1000;
    std::thread::sleep(Duration::from_secs(2));
    let during: Vec<i64> = motion_starts_ms(&nvr, "cam")
        .into_iter()
        .filter(|&s| s >= pan_from_ms && s <= settled_ms)
        .collect();
    assert!(
        during.is_empty(),
        "motion started at {during:?} while the camera panned ({pan_from_ms}..{settled_ms})"
    );
    // Detection watches again: the next loop's box is caught.
    wait_until(Duration::from_secs(30), "the next onset detected", || {
        (motion_starts_ms(&nvr, "cam").len() > before).then_some(())
    });
    let log = nvr.log_text();
    assert!(!log.contains(PASSWORD), "the ONVIF password is in the log");
    assert!(!nvr.status().to_string().contains(PASSWORD));
}

#[test]
fn ptz_errors_are_classified_in_time_and_cost_only_ptz() {
    let skewed = OnvifDevice::start(USER, PASSWORD, 3600).unwrap();
    let silent = SilentDevice::start().unwrap();
    let garbage = GarbageDevice::start().unwrap();
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let dead = |id: &str| json!({"id": id, "main_url": format!("rtsp://127.0.0.1:9/{id}"), "recording": {"mode": "off"}, "motion": {"enabled": false}});
    let mut skew = dead("skew");
    skew["onvif"] = onvif_of(skewed.port(), PASSWORD);
    let mut wrong = dead("wrong");
    wrong["onvif"] = onvif_of(skewed.port(), "not-the-password");
    let mut hang = camera_config("hang", &fc, "motion/main", "motion/sub");
    hang["recording"] = json!({"mode": "off"});
    hang["onvif"] = onvif_of(silent.port(), PASSWORD);
    let mut junk = dead("junk");
    junk["onvif"] = onvif_of(garbage.port(), PASSWORD);
    let plain = dead("plain");
    let mut off = dead("off");
    off["enabled"] = json!(false);
    off["onvif"] = onvif_of(skewed.port(), PASSWORD);
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [skew, wrong, hang, junk, plain, off]}),
        &[],
    );
    nvr.wait_running(&["skew", "wrong", "hang", "junk", "plain"]);

    // The device's clock is an hour ahead: the worker signs with the offset it learned.
    let d = describe(&nvr, "skew");
    let offset = d["clock_offset_s"].as_f64().unwrap();
    assert!((offset - 3600.0).abs() < 30.0, "clock offset {offset}: {d}");
    let (code, r) = ptz(
        &nvr,
        "skew",
        json!({"action": "goto_preset", "preset": "home"}),
    );
    assert_eq!(code, 200, "{r}");

    let expect = |cam: &str, status: u16, kind: &str| {
        let at = Instant::now();
        let (code, r) = ptz(
            &nvr,
            cam,
            json!({"action": "move", "pan": 0.1, "tilt": 0, "zoom": 0}),
        );
        assert_eq!(
            (code, r["error"].as_str()),
            (status, Some(kind)),
            "{cam}: {r}"
        );
        let detail = r["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.contains(PASSWORD) && !detail.contains("not-the-password"),
            "{detail}"
        );
        at.elapsed()
    };
    expect("wrong", 502, "unauthorized");
    expect("junk", 502, "camera_error");
    expect("plain", 409, "no_onvif");
    expect("off", 503, "worker_unavailable");
    // A device that never answers: a timeout within the API's 5 s, while the camera's SUB
    // stream keeps flowing.
    let frames = |nvr: &Nvr| u64_at(&nvr.camera("hang"), &["worker", "sub", "frames"]);
    wait_until(Duration::from_secs(20), "hang's SUB stream up", || {
        (frames(&nvr) > 0).then_some(())
    });
    let before = frames(&nvr);
    let took = expect("hang", 504, "timeout");
    assert!(
        took <= Duration::from_millis(5500),
        "the timeout took {took:?}"
    );
    let (code, r) = nvr.get_json("/api/cameras/hang/ptz");
    assert_eq!((code, r["error"].as_str()), (504, Some("timeout")), "{r}");
    let after = frames(&nvr);
    assert!(
        after >= before + 60,
        "SUB frames {before} -> {after} over two PTZ timeouts: the stream stalled"
    );
    // Nothing restarted.
    for cam in ["skew", "wrong", "hang", "junk", "plain"] {
        assert_eq!(nvr.camera(cam)["restarts"], 0, "{cam}");
    }
    let log = nvr.log_text();
    for secret in [PASSWORD, "not-the-password"] {
        assert!(!log.contains(secret), "a password is in the log");
        assert!(!nvr.status().to_string().contains(secret));
    }
}

#[test]
fn the_ui_pans_on_hold_stops_on_release_and_blur_and_saves_presets() {
    let device = OnvifDevice::start(USER, PASSWORD, 0).unwrap();
    let mut cam = json!({"id": "cam", "main_url": "rtsp://127.0.0.1:9/cam", "recording": {"mode": "off"}, "motion": {"enabled": false}});
    cam["onvif"] = onvif_of(device.port(), PASSWORD);
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 0.5, "cameras": [cam]}), &[]);
    nvr.wait_running(&["cam"]);
    nvr_tests::chromium::check_camera_page("ptz", nvr.port, "cam");
}
