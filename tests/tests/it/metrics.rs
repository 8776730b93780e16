//! Monitoring: `/metrics` passes `promtool check metrics`, a real Prometheus server scrapes it with
//! the bearer token of `api.metrics_token`, and the token opens `/ready` and `/metrics` only,
//! appearing nowhere.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, hash_password, request, wait_until, Nvr};
use nvr_tests::prometheus::Prometheus;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "prom-token-5f3a9c1e7b2d46801";

/// A session cookie from `POST /api/login`.
fn login(port: u16, password: &str) -> String {
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nX-NVR-CSRF: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .unwrap()
}

/// The value of the sample `series` (name and labels exactly as written) in `/metrics` text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn first_value(result: &[Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_with_the_token_and_promtool_accepts_the_text() {
    let password = "metrics and more";
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cam = camera_config("cam15", &fc, "motion/main", "motion/sub");
    cam["recording"] = json!({"mode": "continuous", "max_segment_s": 2});
    let mut nvr = Nvr::start(
        json!({
            "heartbeat_interval_s": 0.5,
            "api": {
                "auth": {"username": "admin", "password_hash": hash_password(password)},
                "metrics_token_env": "NVR_TEST_METRICS_TOKEN",
            },
            "cameras": [cam, {"id": "off", "enabled": false, "main_url": "rtsp://127.0.0.1:9/off"}],
        }),
        &[("NVR_TEST_METRICS_TOKEN", TOKEN)],
    );
    let port = nvr.port;
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let get = |path: &str, headers: &str| {
        let (code, head, body) = request(port, "GET", path, headers).unwrap();
        (code, head, String::from_utf8_lossy(&body).to_string())
    };
    let mut seen = String::new();

    // Liveness is public; readiness and metrics need the token (or a session).
    let (code, _, body) = get("/health", "");
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    for path in ["/ready", "/metrics", "/status"] {
        let (code, _, body) = get(path, "");
        assert_eq!(code, 401, "{path} without the token: {body}");
        seen.push_str(&body);
        let (code, _, body) = get(path, "Authorization: Bearer prom-token-wrong-000000\r\n");
        assert_eq!(code, 401, "{path} with a wrong token: {body}");
        seen.push_str(&body);
    }
    let (code, _, body) = get("/status", &bearer);
    assert_eq!(
        code, 401,
        "the token opens only /ready and /metrics: {body}"
    );
    wait_until(Duration::from_secs(40), "/ready 200 with the token", || {
        Some(get("/ready", &bearer)).filter(|(code, _, _)| *code == 200)
    });

    // Real output, once bytes and a finished file are counted.
    let (head, text) = wait_until(Duration::from_secs(40), "bytes and a recording", || {
        let (code, head, text) = get("/metrics", &bearer);
        assert_eq!(code, 200, "{text}");
        let main = sample(
            &text,
            r#"nvr_stream_received_bytes_total{camera="cam15",stream="main"}"#,
        )?;
        let recorded = sample(&text, r#"nvr_recorded_bytes_total{camera="cam15"}"#)?;
        (main > 0.0 && recorded > 0.0).then_some((head, text))
    });
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert_eq!(sample(&text, r#"nvr_worker_up{camera="cam15"}"#), Some(1.0));
    assert_eq!(
        sample(&text, r#"nvr_worker_up{camera="off"}"#),
        None,
        "a disabled camera is not down"
    );
    assert_eq!(
        sample(&text, r#"nvr_camera_enabled{camera="off"}"#),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            r#"nvr_heartbeat_latency_seconds_count{camera="cam15"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert!(sample(&text, "nvr_disk_free_bytes").is_some_and(|b| b > 0.0));
    assert!(sample(&text, "process_start_time_seconds").is_some_and(|t| t > 1.7e9));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`, installed by scripts/setup.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes it with the token.
    let prom = Prometheus::start(port, TOKEN);
    let fps = wait_until(
        Duration::from_secs(60),
        "the camera's series in Prometheus",
        || {
            let up = first_value(&prom.query(r#"up{job="nvr"}"#)?)?;
            let fps = first_value(&prom.query(r#"nvr_stream_fps{camera="cam15",stream="sub"}"#)?)?;
            let rate = first_value(&prom.query(
                r#"rate(nvr_stream_received_bytes_total{camera="cam15",stream="main"}[10s])"#,
            )?)?;
            (up == 1.0 && fps > 0.0 && rate > 0.0).then_some(fps)
        },
    );
    assert!((1.0..=60.0).contains(&fps), "sub fps {fps}");
    let cpu = first_value(
        &prom
            .query(r#"nvr_worker_cpu_seconds_total{camera="cam15"}"#)
            .unwrap(),
    )
    .unwrap();
    assert!(cpu > 0.0 && cpu < 600.0, "worker CPU seconds {cpu}");
    assert!(
        prom.query(r#"nvr_worker_up{camera="off"}"#)
            .unwrap()
            .is_empty(),
        "a disabled camera has no up series"
    );
    drop(prom);

    // The token appears nowhere: not in /status (read with a session), errors or logs.
    let cookie = login(port, password);
    let (code, _, status) = get("/status", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(code, 200);
    seen.push_str(&status);
    nvr.terminate().unwrap();
    seen.push_str(&nvr.log_text());
    assert!(!seen.contains(TOKEN), "the token leaked");
    assert!(!seen.contains("5f3a9c1e"), "part of the token leaked");
}
