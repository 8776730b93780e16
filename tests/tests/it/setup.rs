//! Camera set-up without editing JSON: the first login, validated config writes (ETag, no-op,
//! problems, kill -9 mid-write) and probes of a closed port and a garbage server.

use nvr_tests::nvr::{bin, login, Nvr};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// One request with a JSON body and extra headers: (status, body as JSON or Null).
fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").nth(1).unwrap_or("").to_string()
    } else {
        body.to_string()
    };
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A server that answers every request with random bytes.
fn garbage_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let _ = c.read(&mut buf);
                let junk: Vec<u8> = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                for _ in 0..50 {
                    if c.write_all(&junk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn first_login_then_validated_atomic_edits() {
    let garbage = garbage_server();
    let mut nvr = Nvr::start(
        json!({"cameras": [{"id": "gone", "main_url": "rtsp://127.0.0.1:1/x"},
                           {"id": "junk", "main_url": format!("rtsp://127.0.0.1:{garbage}/main")}]}),
        &[("NVR_TEST_CONFIG_WRITE_PAUSE_MS", "0")],
    );
    let port = nvr.port;
    let path = nvr.config_path();
    let csrf1 = [("X-NVR-CSRF", "1")];
    // Without a login the config is read-only.
    let (code, _) = call(
        port,
        "PUT",
        "/api/config/cameras/gone",
        &csrf1,
        r#"{"name":"x"}"#,
    );
    assert_eq!(code, 403);
    let (code, _) = call(
        port,
        "POST",
        "/api/setup",
        &csrf1,
        r#"{"username":"admin","password":"correct horse"}"#,
    );
    assert_eq!(code, 200);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("correct horse"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Log in (the login answers the CSRF token and sets the cookie).
    let (cookie, csrf) = login(port, "admin", "correct horse");
    let auth = |etag: &str| -> Vec<(&'static str, String)> {
        vec![
            ("Cookie", cookie.clone()),
            ("X-NVR-CSRF", csrf.clone()),
            ("If-Match", etag.to_string()),
        ]
    };
    let send = |method: &str, p: &str, etag: &str, body: &str| {
        let h = auth(etag);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        call(port, method, p, &h, body)
    };
    let (code, cfg) = send("GET", "/api/config", "", "");
    assert_eq!(code, 200);
    assert_eq!(cfg["config"]["api"]["auth"]["password_hash"], "***");
    assert!(
        !cfg.to_string().contains("argon2"),
        "no secret in GET /api/config"
    );
    let etag = cfg["etag"].as_str().unwrap().to_string();
    // A stale ETag is refused.
    let (code, _) = send(
        "PUT",
        "/api/config/cameras/gone",
        "\"stale\"",
        r#"{"name":"x"}"#,
    );
    assert_eq!(code, 409);
    // An invalid edit: every problem, with its path; the file untouched.
    let before = std::fs::read(&path).unwrap();
    let (code, v) = send(
        "PUT",
        "/api/config/cameras/gone",
        &etag,
        r#"{"transport":"x","motion":{"threshold":900},"password":"typed-secret"}"#,
    );
    assert_eq!(code, 422, "{v}");
    let paths: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"cameras[0].transport") && paths.contains(&"cameras[0].motion.threshold"),
        "{paths:?}"
    );
    assert!(!v.to_string().contains("typed-secret"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Add, edit, no-op, delete.
    let (code, v) = send(
        "POST",
        "/api/config/cameras",
        &etag,
        r#"{"id":"yard","main_url":"rtsp://127.0.0.1:1/y","password":"pw1"}"#,
    );
    assert_eq!(code, 201, "{v}");
    let etag = v["etag"].as_str().unwrap().to_string();
    let (code, v) = send(
        "PUT",
        "/api/config/cameras/yard/zones",
        &etag,
        r#"{"zones":[{"name":"door","points":[[0.1,0.1],[0.5,0.1],[0.5,0.5]]}],"masks":[]}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["reload"]["summary"]["updated"], json!(["yard"]), "{v}");
    let etag = v["etag"].as_str().unwrap().to_string();
    let bytes = std::fs::read(&path).unwrap();
    let (code, v) = send(
        "PUT",
        "/api/config/cameras/yard",
        &etag,
        r#"{"password":"***","main_url":"rtsp://127.0.0.1:1/y"}"#,
    );
    assert_eq!((code, v["changed"].clone()), (200, json!(false)));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a no-op save writes nothing"
    );
    assert!(
        String::from_utf8_lossy(&bytes).contains("pw1"),
        "the stored password is kept"
    );
    let (code, v) = send("DELETE", "/api/config/cameras/yard", &etag, "");
    assert_eq!(code, 200, "{v}");
    assert!(!std::fs::read_to_string(&path).unwrap().contains("yard"));
    assert!(!nvr.log_text().contains("pw1") && !nvr.log_text().contains("correct horse"));
    // Probe through the API: a closed port is unreachable within 10 s.
    let started = Instant::now();
    let (code, v) = send(
        "POST",
        "/api/probe",
        "",
        r#"{"id":"new","main_url":"rtsp://127.0.0.1:1/x"}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["streams"][0]["failure"], "unreachable", "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));
    nvr.kill();
    // The command line: the garbage server is no RTSP answer, exit 5.
    let out = std::process::Command::new(bin("supervisor"))
        .args(["probe", "junk", "gone", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("junk main") && text.contains("no valid RTSP answer"),
        "{text}"
    );
    assert!(
        text.contains("gone main") && text.contains("unreachable"),
        "{text}"
    );
}

#[test]
fn kill_9_during_a_write_leaves_the_old_file() {
    let mut nvr = Nvr::start(
        json!({"api": {"auth": {"username": "admin", "password_hash": nvr_tests::nvr::hash_password("correct horse")}},
               "cameras": [{"id": "gone", "main_url": "rtsp://127.0.0.1:1/x"}]}),
        &[("NVR_TEST_CONFIG_WRITE_PAUSE_MS", "5000")],
    );
    let port = nvr.port;
    let path = nvr.config_path();
    let (cookie, csrf) = login(port, "admin", "correct horse");
    let (_, cfg) = call(port, "GET", "/api/config", &[("Cookie", &cookie)], "");
    let etag = cfg["etag"].as_str().unwrap().to_string();
    let before = std::fs::read(&path).unwrap();
    let (c2, s2, e2) = (cookie.clone(), csrf.clone(), etag.clone());
    std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| {
            call(
                port,
                "PUT",
                "/api/config/cameras/gone",
                &[("Cookie", &c2), ("X-NVR-CSRF", &s2), ("If-Match", &e2)],
                r#"{"name":"Gone"}"#,
            )
        });
    });
    let tmp = path.with_file_name("cameras.json.tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tmp.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(tmp.exists(), "the write reached its temporary file");
    nvr.kill();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the old file, whole");
}

/// `POST /api/probe` against one fake-camera server (digest auth on): a good camera's codec, size
/// and fps; a wrong password; a wrong path; the MJPEG mount as MAIN.
#[test]
fn probes_of_the_fake_cameras_classify_each_stream() {
    use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
    let fc = FakeCam::start(FakeCamOpts {
        auth: Some(("admin".into(), "cam-secret".into())),
        ..FakeCamOpts::scenes(&["motion"])
    })
    .unwrap();
    let nvr = Nvr::start(
        json!({"api": {"auth": {"username": "admin", "password_hash": nvr_tests::nvr::hash_password("correct horse")}},
               "cameras": []}),
        &[],
    );
    let (cookie, csrf) = nvr_tests::nvr::login(nvr.port, "admin", "correct horse");
    let probe = |camera: Value| -> Value {
        let started = Instant::now();
        let (code, v) = call(
            nvr.port,
            "POST",
            "/api/probe",
            &[("Cookie", &cookie), ("X-NVR-CSRF", &csrf)],
            &camera.to_string(),
        );
        assert_eq!(code, 200, "{v}");
        assert!(started.elapsed() < Duration::from_secs(15), "{v}");
        v
    };
    let stream = |v: &Value, role: &str| -> Value {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["role"] == role)
            .unwrap_or_else(|| panic!("no {role} stream in {v}"))
            .clone()
    };
    // A good camera: MAIN 1920x1080 H.264 High at 30 fps, GOP 2 s, recordable; SUB 640x360.
    let good = probe(json!({"id": "new", "main_url": fc.url("motion/main"),
        "sub_url": fc.url("motion/sub"), "username": "admin", "password": "cam-secret"}));
    assert_eq!(good["usable"], true, "{good}");
    let main = stream(&good, "main");
    assert_eq!(
        (
            &main["codec"],
            &main["profile"],
            &main["width"],
            &main["height"]
        ),
        (&json!("h264"), &json!("High"), &json!(1920), &json!(1080)),
        "{main}"
    );
    assert!((main["fps"].as_f64().unwrap() - 30.0).abs() < 0.5, "{main}");
    assert!(
        (main["gop_s"].as_f64().unwrap_or(0.0) - 2.0).abs() < 0.2,
        "{main}"
    );
    assert_eq!(main["recordable"], true, "{main}");
    assert!(main["failure"].is_null(), "{main}");
    let sub = stream(&good, "sub");
    assert_eq!(
        (&sub["codec"], &sub["width"], &sub["height"]),
        (&json!("h264"), &json!(640), &json!(360)),
        "{sub}"
    );
    assert!((sub["fps"].as_f64().unwrap() - 30.0).abs() < 0.5, "{sub}");
    // A wrong password: unauthorized, and the password is in no answer.
    let wrong = probe(json!({"id": "new", "main_url": fc.url("motion/main"),
        "username": "admin", "password": "not-the-one"}));
    assert_eq!(wrong["usable"], false, "{wrong}");
    assert_eq!(stream(&wrong, "main")["failure"], "unauthorized", "{wrong}");
    assert!(!wrong.to_string().contains("not-the-one"), "{wrong}");
    // A wrong path: not found.
    let missing = probe(json!({"id": "new", "main_url": fc.url("motion/nope"),
        "username": "admin", "password": "cam-secret"}));
    assert_eq!(
        stream(&missing, "main")["failure"],
        "not_found",
        "{missing}"
    );
    // The MJPEG mount as MAIN: it plays, but cannot be recorded.
    let mjpeg = probe(json!({"id": "new", "main_url": fc.url("motion/mjpeg"),
        "sub_url": fc.url("motion/sub"), "username": "admin", "password": "cam-secret"}));
    assert_eq!(mjpeg["usable"], false, "{mjpeg}");
    let main = stream(&mjpeg, "main");
    assert_eq!(
        (&main["codec"], &main["recordable"], &main["failure"]),
        (&json!("mjpeg"), &json!(false), &json!("not_recordable")),
        "{main}"
    );
    assert!(stream(&mjpeg, "sub")["failure"].is_null(), "{mjpeg}");
    assert!(!nvr.log_text().contains("cam-secret"));
}

/// The repeated-kills variant: without the fault switch, `kill -9` lands at a spread of moments
/// after a camera is added (before, during or after the write); every time the file is the old one
/// or the new one, whole and valid, never torn, and the next supervisor starts on it.
#[test]
fn repeated_kill_9_during_writes_never_tears_the_file() {
    let mut nvr = Nvr::start(
        json!({"api": {"auth": {"username": "admin", "password_hash": nvr_tests::nvr::hash_password("correct horse")}},
               "cameras": []}),
        &[],
    );
    let path = nvr.config_path();
    let (mut old_kept, mut new_written) = (0, 0);
    for i in 0..20u64 {
        if i > 0 {
            nvr.restart(&[]);
        }
        let port = nvr.port;
        let (cookie, csrf) = nvr_tests::nvr::login(port, "admin", "correct horse");
        let (_, cfg) = call(port, "GET", "/api/config", &[("Cookie", &cookie)], "");
        let etag = cfg["etag"].as_str().unwrap().to_string();
        let before = std::fs::read(&path).unwrap();
        let id = format!("c{i}");
        let body =
            json!({"id": id, "main_url": "rtsp://127.0.0.1:1/x", "enabled": false}).to_string();
        // The request, its answer never read (the supervisor dies under it).
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "POST /api/config/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nCookie: {cookie}\r\nX-NVR-CSRF: {csrf}\r\nIf-Match: {etag}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        // 0 to 19 ms after the request went out, one more each time.
        std::thread::sleep(Duration::from_millis(i));
        nvr.kill();
        let after = std::fs::read(&path).unwrap();
        if after == before {
            old_kept += 1;
        } else {
            let v: Value = serde_json::from_slice(&after)
                .unwrap_or_else(|e| panic!("a torn file after kill {i}: {e}"));
            let ids: Vec<&str> = v["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids.last(), Some(&id.as_str()), "the new file, whole");
            new_written += 1;
        }
        let check = std::process::Command::new(bin("supervisor"))
            .args(["check-config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
    }
    eprintln!(
        "repeated kills: old file kept {old_kept} times, new file written {new_written} times"
    );
    nvr.restart(&[]);
}

/// The set-up page's sensitivity trial: a preview changes what the running worker detects, for
/// its time only, and never the file. Threshold 255 (no pixel can change that much) over the fake
/// camera's box, which moves from 10 s to 20 s of each loop: no motion while the trial lasts, motion
/// of the same box once it has ended by itself.
#[test]
fn a_motion_preview_changes_detection_for_its_time_and_never_the_file() {
    use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
    use nvr_tests::nvr::{camera_config, wait_until};
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cam = camera_config("cam", &fc, "motion/main", "motion/sub");
    cam["motion"] = json!({"post_motion_s": 1});
    cam["recording"] = json!({"mode": "off"});
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 0.5, "cameras": [cam]}), &[]);
    nvr.wait_running(&["cam"]);
    let file = std::fs::read(nvr.config_path()).unwrap();
    let csrf = [("X-NVR-CSRF", "1")];
    let starts = || -> Vec<i64> {
        let (code, rows) = nvr.get_json("/api/events?camera=cam");
        assert_eq!(code, 200, "{rows}");
        rows.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["start"].as_i64())
            .collect()
    };
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    // Bad values change nothing.
    for body in [
        r#"{"threshold": 0}"#,
        r#"{"for_s": 1000}"#,
        r#"{"sensitivity": 3}"#,
    ] {
        let (code, r) = call(
            nvr.port,
            "POST",
            "/api/cameras/cam/motion/preview",
            &csrf,
            body,
        );
        assert_eq!(code, 400, "{body}: {r}");
    }
    let (code, _) = call(
        nvr.port,
        "POST",
        "/api/cameras/nosuch/motion/preview",
        &csrf,
        "{}",
    );
    assert_eq!(code, 404);

    fc.wait_next("loop_start", Duration::from_secs(40)).unwrap();
    let loop_start = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let from_ms = unix_ms();
    let (code, r) = call(
        nvr.port,
        "POST",
        "/api/cameras/cam/motion/preview",
        &csrf,
        r#"{"threshold": 255, "for_s": 5}"#,
    );
    assert_eq!(code, 200, "{r}");
    let preview = |want: Value| {
        wait_until(Duration::from_secs(5), "the preview in /status", || {
            (nvr.camera("cam")["motion_preview"]["threshold"] == want).then_some(())
        })
    };
    preview(json!(255));
    let until_ms = from_ms + 5000;
    // The trial ends by itself; the box, still moving, is then caught.
    let after = wait_until(
        Duration::from_secs(20),
        "motion once the trial ended",
        || starts().into_iter().find(|&s| s >= from_ms),
    );
    assert!(
        after >= until_ms - 200,
        "motion started at {after}, inside the trial ({from_ms}..{until_ms})"
    );
    assert!(
        loop_start.elapsed() < Duration::from_secs(21),
        "caught in the same loop"
    );
    preview(Value::Null);
    assert_eq!(
        std::fs::read(nvr.config_path()).unwrap(),
        file,
        "the file changed"
    );
    // A preview can be ended at once.
    call(
        nvr.port,
        "POST",
        "/api/cameras/cam/motion/preview",
        &csrf,
        r#"{"threshold": 50}"#,
    );
    preview(json!(50));
    let (code, _) = call(
        nvr.port,
        "DELETE",
        "/api/cameras/cam/motion/preview",
        &csrf,
        "",
    );
    assert_eq!(code, 200);
    preview(Value::Null);
}
