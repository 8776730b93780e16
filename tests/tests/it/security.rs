//! Security by default, checked from outside the processes: camera passwords never leave the
//! config (no command line, status, metrics, log, error or file name holds one), the frame rings are
//! private to their owner, and an API that listens beyond loopback needs a login for everything,
//! above all for every state change.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_in, hash_password, http, Nvr, TempDir};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Every file and directory name under `dir`.
fn names_under(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push_str(&entry.file_name().to_string_lossy());
        out.push('\n');
        if entry.path().is_dir() {
            names_under(&entry.path(), out);
        }
    }
}

#[test]
fn camera_passwords_stay_out_of_command_lines_status_logs_errors_and_file_names() {
    let (user, right, wrong) = ("admin", "pw-right-8841", "pw-wrong-5512");
    let fc = FakeCam::start(FakeCamOpts {
        auth: Some((user.into(), right.into())),
        ..FakeCamOpts::scenes(&["motion"])
    })
    .unwrap();
    let cameras = vec![
        json!({"id": "ok", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
               "username": user, "password": right,
               "motion": {"post_motion_s": 1}, "recording": {"pre_roll_s": 2, "post_roll_s": 1}}),
        json!({"id": "refused", "main_url": fc.url("motion/main_h265"), "sub_url": fc.url("motion/sub_h265"),
               "username": user, "password_env": "REFUSED_CAM_PASSWORD"}),
    ];
    let mut nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": cameras}),
        &[("REFUSED_CAM_PASSWORD", wrong)],
    );
    let ok = nvr.wait_camera("ok", Duration::from_secs(40), "a recording", |c| {
        c["worker"]["recording"]["state"] == "recording"
    });
    let refused = nvr.wait_camera("refused", Duration::from_secs(30), "unauthorized", |c| {
        c["worker"]["sub"]["state"] == "unauthorized"
    });

    // The frame ring exists and only its owner may read or write it.
    let ring = shm_bus::segment_path("ok").unwrap();
    let mode = std::fs::metadata(&ring).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{}: mode {mode:o}", ring.display());

    let mut seen = String::new();
    for c in [&ok, &refused] {
        let pid = c["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!cmdline.is_empty(), "no command line for worker {pid}");
        seen.push_str(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
    }
    let supervisor_cmdline = std::fs::read(format!("/proc/{}/cmdline", nvr.pid())).unwrap();
    seen.push_str(&String::from_utf8_lossy(&supervisor_cmdline));
    for path in [
        "/status",
        "/metrics",
        "/health",
        "/api/recordings",
        "/api/events",
    ] {
        seen.push_str(&http(nvr.port, "GET", path).unwrap().1);
    }
    let error = camera_in(&nvr.status(), "refused").unwrap()["worker"]["sub"]["last_error"].clone();
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.contains("refused the credentials")),
        "{error}"
    );
    nvr.terminate().unwrap();
    seen.push_str(&nvr.log_text());
    names_under(&nvr.output_dir(), &mut seen);
    assert!(seen.contains("ok_"), "no clip name among what was searched");
    for secret in [right, wrong] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
}

/// One request with a body and headers; returns (status, head, body).
fn send(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}

#[test]
fn beyond_loopback_every_state_change_needs_a_login() {
    let password = "correct horse battery staple";
    let hash = hash_password(password);
    let cfg = json!({
        "heartbeat_interval_s": 0.5,
        "api": {"auth": {"username": "admin", "password_hash": hash}},
        "cameras": [{"id": "a", "main_url": "rtsp://127.0.0.1:9/a"}],
    });
    let nvr = Nvr::start_on("0.0.0.0", TempDir::new("public"), cfg, &[]);
    let port = nvr.port;
    let state_changes = [
        ("POST", "/api/reload"),
        ("POST", "/api/cameras/a/restart"),
        ("POST", "/api/logout"),
    ];
    // Without a session nothing but the login page and its files is served; the CSRF header alone
    // opens nothing.
    for (method, path) in state_changes.iter().copied().chain([
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("GET", "/api/recordings"),
    ]) {
        let (code, _, body) = send(port, method, path, "X-NVR-CSRF: 1\r\n", "");
        assert_eq!(code, 401, "{method} {path}: {body}");
    }
    let login = |pw: &str| {
        send(
            port,
            "POST",
            "/api/login",
            "X-NVR-CSRF: 1\r\n",
            &json!({"username": "admin", "password": pw}).to_string(),
        )
    };
    assert_eq!(login("wrong").0, 401);
    let (code, head, body) = login(password);
    assert_eq!(code, 200, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    // A session without its CSRF token still changes nothing (a forged cross-site request).
    for (method, path) in state_changes {
        let (code, _, body) = send(port, method, path, &format!("Cookie: {cookie}\r\n"), "");
        assert_eq!(code, 403, "{method} {path} without the CSRF token: {body}");
    }
    let with_both = format!("Cookie: {cookie}\r\nX-NVR-CSRF: {csrf}\r\n");
    let (code, _, body) = send(port, "GET", "/status", &with_both, "");
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = send(port, "POST", "/api/cameras/a/restart", &with_both, "");
    assert!(
        (200..300).contains(&code),
        "restart with a session: {code} {body}"
    );
    let (code, _, _) = send(port, "POST", "/api/logout", &with_both, "");
    assert!((200..300).contains(&code));
    let (code, _, _) = send(port, "GET", "/status", &with_both, "");
    assert_eq!(code, 401, "the session outlived its logout");
}
