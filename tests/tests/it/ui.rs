//! The web UI in a real headless Chromium (Debian's, driven by playwright-core from
//! `tests/ui/ui.mjs`), against the real supervisor and fake cameras. Screenshots of every page go to
//! `target/ui-screenshots/`.

use nvr_tests::fakecam::{workspace_root, FakeCam, FakeCamOpts};
use nvr_tests::nvr::{hash_password, Nvr};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// Runs the UI script with `args`; panics with its output unless every check passed.
fn run_ui(args: &[&str]) {
    let root = workspace_root();
    let out = Command::new("timeout")
        .args(["-k", "5", "150", "node"])
        .arg(root.join("tests/ui/ui.mjs"))
        .args(args)
        .output()
        .expect("node (see scripts/setup.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "UI checks failed:\n{text}");
}

fn shots(name: &str) -> String {
    workspace_root()
        .join("target/ui-screenshots")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn grid_status_and_recordings_work_in_chromium() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["clock", "motion"])).unwrap();
    // The recorder's first clip (about 12 s: it rotates at a keyframe after 10 s) covers the box's
    // first crossing 10 s into the fake camera's loop, several seconds in: the UI plays that
    // motion event from 2 s before it, a real seek.
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            {"id": "live", "name": "Clock", "main_url": fc.url("clock/main"), "sub_url": fc.url("clock/sub"),
             "recording": {"mode": "off"}},
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
