//! Security by default, checked from outside the processes: camera passwords never leave the
//! config (no command line, status, metrics, log, error or file name holds one), the frame rings are
//! private to their owner, and an API that listens beyond loopback needs a login for everything,
//! above all for every state change.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{free_port, hash_password, http, Nvr, TempDir};
use nvr_tests::status::{self, camera_in};
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
    // An MQTT broker and a webhook receiver that are not there: their secrets are in play (a
    // connection attempt, a signature) and their failures are logged and shown in /status.
    let (mqtt_password, hook_secret) = ("mq-pw-6620-secret", "wh-secret-7731-secret");
    let mut nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": cameras,
               "mqtt": {"host": "127.0.0.1", "port": free_port(), "username": "nvr",
                        "password_env": "SEC_MQTT_PASSWORD"},
               "webhooks": [{"url": format!("http://127.0.0.1:{}/hook", free_port()),
                             "secret_env": "SEC_WEBHOOK_SECRET", "tries": 2}]}),
        &[
            ("REFUSED_CAM_PASSWORD", wrong),
            ("SEC_MQTT_PASSWORD", mqtt_password),
            ("SEC_WEBHOOK_SECRET", hook_secret),
        ],
    );
    let ok = nvr.wait_camera(
        "ok",
        Duration::from_secs(40),
        "a recording",
        status::recording,
    );
    let refused = nvr.wait_camera("refused", Duration::from_secs(30), "unauthorized", |c| {
        c["worker"]["sub"]["state"] == "unauthorized"
    });

    // The frame ring and the packet rings exist and only their owner may read or write them.
    for ring in [
        shm_bus::segment_path_in(nvr.shm_dir(), "ok").unwrap(),
        shm_bus::packet_segment_path_in(nvr.shm_dir(), "ok", shm_bus::StreamKind::Sub).unwrap(),
        shm_bus::packet_segment_path_in(nvr.shm_dir(), "ok", shm_bus::StreamKind::Main).unwrap(),
    ] {
        let mode = std::fs::metadata(&ring).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{}: mode {mode:o}", ring.display());
    }

    let mut seen = String::new();
    for c in [&ok, &refused] {
        let pid = status::pid(c).unwrap();
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
        "/ready",
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
    let status = nvr.status();
    assert!(
        status["mqtt"]["failures"].as_u64().unwrap() >= 1,
        "{}",
        status["mqtt"]
    );
    nvr.terminate().unwrap();
    seen.push_str(&nvr.log_text());
    names_under(&nvr.output_dir(), &mut seen);
    // The webhook outbox stores bodies, never the secret.
    let state = std::fs::read(nvr.output_dir().join("state.sqlite3")).unwrap();
    seen.push_str(&String::from_utf8_lossy(&state));
    assert!(seen.contains("ok_"), "no clip name among what was searched");
    assert!(
        seen.contains("mqtt: broker unavailable"),
        "no MQTT failure was logged"
    );
    for secret in [right, wrong, mqtt_password, hook_secret] {
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
    // Three failures in a row are free; the fourth makes this address wait a second before its
    // next attempt (429, Retry-After).
    for _ in 0..4 {
        assert_eq!(login("wrong").0, 401);
    }
    assert_eq!(login(password).0, 429);
    std::thread::sleep(Duration::from_secs(1));
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

/// One raw request to `addr` (the text as given, `Connection: close` expected in it); returns
/// (status, head, body), or status 0 when the server closed without an answer.
fn raw(addr: impl std::net::ToSocketAddrs, text: &str) -> (u16, String, String) {
    exchange(TcpStream::connect(addr).unwrap(), text)
}

/// Sends `text` on `s` and reads the whole answer: (status code, head, body).
fn exchange(mut s: TcpStream, text: &str) -> (u16, String, String) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(text.as_bytes());
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let raw = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn login_text(host: &str, user: &str, password: &str, extra: &str) -> String {
    let body = json!({"username": user, "password": password}).to_string();
    format!(
        "POST /api/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Like [`raw`], from the local address `from` (any 127.0.0.0/8 address is this machine's).
fn raw_from(from: std::net::IpAddr, to: std::net::SocketAddr, text: &str) -> (u16, String, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::new(from, 0).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    exchange(TcpStream::from(socket), text)
}

/// Logs in, waiting out 429s as `Retry-After` asks (for at most `patience`); returns the last
/// answer.
fn login_patiently(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    patience: Duration,
) -> (u16, String, String) {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let answer = raw(addr, &login_text(&addr.to_string(), user, password, ""));
        if answer.0 != 429 || std::time::Instant::now() > deadline {
            return answer;
        }
        let wait = answer
            .1
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after: ")
                    .map(str::to_string)
            })
            .and_then(|s| s.trim().parse::<u64>().ok())
            .expect("a 429 says when to retry");
        std::thread::sleep(Duration::from_secs(wait));
    }
}

fn session_of(head: &str, body: &str) -> (String, String) {
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: ")
                .then(|| l[12..].to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("a session cookie");
    let csrf = serde_json::from_str::<Value>(body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

/// Resident memory of `pid` in MB, from /proc.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

#[test]
fn a_burst_of_wrong_logins_costs_bounded_memory_and_no_frames() {
    let password = "the right one 4471";
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let cfg = json!({
        "heartbeat_interval_s": 0.5,
        "api": {"auth": {"username": "admin", "password_hash": hash_password(password)}},
        "cameras": [{"id": "a", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
                     "recording": {"mode": "off"}}],
    });
    // Dual stack: attackers come from 127.0.0.1 (IPv4), the user from ::1, another address.
    let nvr = Nvr::start_on("[::]", TempDir::new("burst"), cfg, &[]);
    let pid = nvr.pid();
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], nvr.port));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, nvr.port));
    let frames = |c: &Value| c["worker"]["sub"]["frames"].as_u64().unwrap_or(0);
    // The status needs a session: read it through a login from a third address family-free path,
    // the worker's frame counter.
    let (code, head, body) = login_patiently(v6, "admin", password, Duration::from_secs(5));
    assert_eq!(code, 200, "{body}");
    let (cookie, _) = session_of(&head, &body);
    let status = || {
        let (code, _, body) = raw(
            v6,
            &format!("GET /status HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"),
        );
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        camera_in(&v, "a").unwrap()
    };
    nvr_tests::nvr::wait_until(Duration::from_secs(30), "SUB frames", || {
        (frames(&status()) > 30).then_some(())
    });
    let rss_before = rss_mb(pid);
    let (frames_before, t_before) = (frames(&status()), std::time::Instant::now());

    // 1,000 wrong logins: 20 connections at a time, each attempt on a new connection, and a long
    // user name in every tenth.
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss_before));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) && nvr_tests::nvr::alive(pid)
            {
                let mut p = peak.lock().unwrap();
                *p = p.max(rss_mb(pid));
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let long_user = "x".repeat(3000);
    // 1,000 wrong logins from 20 attacking addresses (127.0.0.10-29), each attempt on a new
    // connection: every attacker sends bursts of ten back to back (hammering through 429s), a
    // second apart, so the attack lasts about five seconds and the worker's frame count over it
    // means something. A long user name in every tenth.
    let codes: Vec<u16> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..20u8)
            .map(|t| {
                let long_user = &long_user;
                s.spawn(move || {
                    let from = std::net::IpAddr::from([127, 0, 0, 10 + t]);
                    let mut codes = Vec::new();
                    for burst in 0..5 {
                        if burst > 0 {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        for i in 0..10 {
                            let user = if i == 0 { long_user.as_str() } else { "admin" };
                            let text = login_text("127.0.0.1", user, &format!("guess-{t}-{i}"), "");
                            codes.push(raw_from(from, v4, &text).0);
                        }
                    }
                    codes
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    // The right password from the other address still works within a few seconds.
    let (code, _, body) = login_patiently(v6, "admin", password, Duration::from_secs(5));
    assert_eq!(code, 200, "the user was locked out by the attack: {body}");
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let (frames_after, elapsed) = (frames(&status()), t_before.elapsed());

    assert_eq!(codes.len(), 1000);
    assert!(
        codes.iter().all(|c| *c == 401 || *c == 429),
        "{:?}",
        codes
            .iter()
            .filter(|c| **c != 401 && **c != 429)
            .collect::<Vec<_>>()
    );
    let n_401 = codes.iter().filter(|c| **c == 401).count();
    let peak = *peak.lock().unwrap();
    eprintln!(
        "login burst: {n_401} of 1000 verified, RSS {rss_before:.0} -> peak {peak:.0} MB, {} SUB frames in {elapsed:?}",
        frames_after - frames_before
    );
    assert!(
        peak < 100.0,
        "supervisor RSS peaked at {peak:.0} MB (from {rss_before:.0} MB) during the burst"
    );
    // The fake camera sends 30 fps; the worker must have kept up (heartbeats lag by up to 0.5 s).
    let expected = 30.0 * (elapsed.as_secs_f64() - 1.0);
    let got = (frames_after - frames_before) as f64;
    assert!(
        got >= 0.9 * expected,
        "{got} SUB frames in {elapsed:?} while 30 fps were sent ({n_401} attempts verified)"
    );
    let log = nvr.log_text();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("failed login")).collect();
    assert!(
        !failed.is_empty() && failed.len() == n_401,
        "{} failed-login lines for {n_401} 401s",
        failed.len()
    );
    let attackers: Vec<String> = (10..30).map(|i| format!("127.0.0.{i}")).collect();
    for line in &failed {
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        let client = v["client"].as_str().unwrap_or_default();
        assert!(
            attackers.iter().any(|a| a == client),
            "failed login without the attacker's address: {line}"
        );
    }
    assert!(
        !log.contains(&"x".repeat(100)),
        "a long user name was logged whole"
    );
}

/// Whether the server has closed `s` (EOF or reset), reading whatever it sent first.
fn closed_by_server(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn silent_and_slow_connections_are_closed() {
    let cfg = json!({
        "heartbeat_interval_s": 0.5,
        // The idle timeout is long, so each connection must be closed by the timeout meant for it:
        // the silent and kept-alive ones by the header timeout, the slow body by the body timeout.
        "api": {"header_read_timeout_s": 1, "body_timeout_s": 2, "idle_timeout_s": 300},
        "cameras": [{"id": "a", "main_url": "rtsp://127.0.0.1:9/a"}],
    });
    let nvr = Nvr::start(cfg, &[]);
    let addr = ("127.0.0.1", nvr.port);
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s
    };
    let mut silent: Vec<TcpStream> = (0..200).map(|_| connect()).collect();
    // A header line every 0.3 s, never the end of the head.
    let mut slow_head = connect();
    slow_head.write_all(b"GET /status HTTP/1.1\r\n").unwrap();
    // A login body one byte every 0.3 s.
    let mut slow_body = connect();
    slow_body
        .write_all(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    // A kept-alive connection that answered once and then says nothing.
    let mut kept = connect();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut trickle = 0;
    nvr_tests::nvr::wait_until(Duration::from_secs(15), "every connection closed", || {
        // Keep the slow ones trickling; a closed socket refuses the write, which is fine.
        trickle += 1;
        if trickle % 6 == 0 {
            let _ = slow_head.write_all(format!("X-Slow-{trickle}: 1\r\n").as_bytes());
            let _ = slow_body.write_all(b" ");
        }
        silent.retain(|s| !closed_by_server(s));
        let rest = [&slow_head, &slow_body, &kept]
            .into_iter()
            .filter(|s| !closed_by_server(s))
            .count();
        (silent.is_empty() && rest == 0).then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
    // The API still answers.
    assert!(http(nvr.port, "GET", "/health").is_ok());
}

/// Sets the soft descriptor limit of `pid` (the hard one stays).
fn set_nofile(pid: u32, soft: u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        .unwrap();
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={soft}:{hard}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "prlimit --nofile={soft}:{hard} on {pid} failed");
}

/// The motion sidecars under `dir`.
fn sidecars(dir: &Path) -> Vec<String> {
    let mut names = String::new();
    names_under(dir, &mut names);
    names
        .lines()
        .filter(|n| n.ends_with(".motion.json"))
        .map(str::to_string)
        .collect()
}

#[test]
fn running_out_of_descriptors_loses_no_motion_event() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let cfg = json!({
        "heartbeat_interval_s": 0.5,
        // Long timeouts: the idle connections below must hold their descriptors.
        "api": {"header_read_timeout_s": 300, "idle_timeout_s": 300},
        "cameras": [{"id": "a", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
                     "motion": {"post_motion_s": 1, "min_area": 0.5},
                     "recording": {"mode": "off"}}],
    });
    let nvr = Nvr::start(cfg, &[]);
    let pid = nvr.pid();
    let out = nvr.output_dir();
    nvr.wait_camera("a", Duration::from_secs(30), "SUB up", |c| {
        c["worker"]["sub"]["state"] == "up"
    });

    // 1. 250 idle connections against a limit of 200 descriptors, while an onset happens: the cap
    // keeps room for the archive.
    set_nofile(pid, 200);
    // Beyond the cap and the kernel's queue a connect times out; 250 is enough to pass 200.
    let idle: Vec<TcpStream> = (0..250)
        .filter_map(|_| {
            TcpStream::connect_timeout(
                &([127, 0, 0, 1], nvr.port).into(),
                Duration::from_millis(200),
            )
            .ok()
        })
        .collect();
    fc.wait_next("motion_start", Duration::from_secs(30))
        .unwrap();
    nvr_tests::nvr::wait_until(Duration::from_secs(10), "a motion sidecar on disk", || {
        (!sidecars(&out).is_empty()).then_some(())
    });
    drop(idle);

    // 2. No descriptor at all for the archive while the next onset happens: the event waits and
    // is written once descriptors are back.
    set_nofile(pid, 8);
    fc.wait_next("motion_start", Duration::from_secs(30))
        .unwrap();
    nvr_tests::nvr::wait_until(Duration::from_secs(10), "the archive to retry", || {
        nvr.log_text().contains("will retry").then_some(())
    });
    set_nofile(pid, 4096);
    let events = nvr_tests::nvr::wait_until(Duration::from_secs(20), "two events", || {
        let (code, v) = nvr.get_json("/api/events?camera=a");
        let n = v.as_array().map_or(0, Vec::len);
        (code == 200 && n >= 2).then_some(v)
    });
    assert_eq!(
        sidecars(&out).len(),
        events.as_array().unwrap().len(),
        "{events}"
    );
}

#[test]
fn rebound_names_and_foreign_origins_are_refused() {
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [{"id": "a", "main_url": "rtsp://127.0.0.1:9/a"}]}),
        &[],
    );
    let addr = ("127.0.0.1", nvr.port);
    let req = |method: &str, path: &str, host: &str, extra: &str| {
        raw(
            addr,
            &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-NVR-CSRF: 1\r\nContent-Length: 0\r\n{extra}\r\n"),
        )
    };
    // A page on rebind.attacker.example whose name now points at 127.0.0.1.
    for (method, path) in [
        ("GET", "/status"),
        ("GET", "/api/cameras/a/snapshot.jpg"),
        ("POST", "/api/cameras/a/restart"),
        ("POST", "/api/reload"),
    ] {
        let (code, _, body) = req(
            method,
            path,
            &format!("rebind.attacker.example:{}", nvr.port),
            "",
        );
        assert!(code == 421 || code == 403, "{method} {path}: {code} {body}");
    }
    // Loopback names are served; a state change from another origin is not.
    let own = format!("127.0.0.1:{}", nvr.port);
    assert_eq!(req("GET", "/status", &own, "").0, 200);
    assert_eq!(
        req("GET", "/status", &format!("localhost:{}", nvr.port), "").0,
        200
    );
    let (code, _, body) = req(
        "POST",
        "/api/cameras/a/restart",
        &own,
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = req("POST", "/api/cameras/a/restart", &own, "Origin: null\r\n");
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = req(
        "POST",
        "/api/cameras/a/restart",
        &own,
        &format!("Origin: http://{own}\r\n"),
    );
    assert_eq!(code, 202, "{body}");
}

#[test]
fn with_a_login_a_foreign_origin_cannot_log_in_or_change_anything() {
    let password = "origin test pw";
    let cfg = json!({
        "heartbeat_interval_s": 0.5,
        "api": {"auth": {"username": "admin", "password_hash": hash_password(password)}},
        "cameras": [{"id": "a", "main_url": "rtsp://127.0.0.1:9/a"}],
    });
    let nvr = Nvr::start_on("0.0.0.0", TempDir::new("origin"), cfg, &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nvr.port));
    let host = format!("nvr.example:{}", nvr.port);
    let (code, _, body) = raw(
        addr,
        &login_text(&host, "admin", password, "Origin: http://evil.example\r\n"),
    );
    assert_eq!(code, 403, "{body}");
    // Any Host is fine with a login; the page's own origin may log in.
    let (code, head, body) = raw(
        addr,
        &login_text(
            &host,
            "admin",
            password,
            &format!("Origin: http://{host}\r\n"),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let (cookie, csrf) = session_of(&head, &body);
    for h in [
        "x-frame-options: deny",
        "content-security-policy: default-src 'self'",
    ] {
        assert!(head.to_ascii_lowercase().contains(h), "{h} missing: {head}");
    }
    let (code, _, body) = raw(
        addr,
        &format!("POST /api/cameras/a/restart HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {cookie}\r\nX-NVR-CSRF: {csrf}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(code, 403, "{body}");
    let (code, head, _) = raw(
        addr,
        &format!(
            "GET /status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
        ),
    );
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    // A login body of a few kB at most; the oversized one is refused before any hashing.
    let big = login_text(&host, &"u".repeat(8 * 1024), "x", "");
    let (code, _, body) = raw(addr, &big);
    assert_eq!(code, 413, "{body}");
}

#[test]
fn a_reload_applies_a_changed_login_and_ends_every_session() {
    let (old_pw, new_pw) = ("old password 1", "new password 2");
    let auth = |user: &str, pw: &str| json!({"username": user, "password_hash": hash_password(pw)});
    let cfg = |auth: Value| {
        json!({"heartbeat_interval_s": 0.5, "api": {"auth": auth},
               "cameras": [{"id": "a", "main_url": "rtsp://127.0.0.1:9/a"}]})
    };
    let nvr = Nvr::start_on(
        "0.0.0.0",
        TempDir::new("reauth"),
        cfg(auth("admin", old_pw)),
        &[],
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nvr.port));
    let (code, head, body) = login_patiently(addr, "admin", old_pw, Duration::from_secs(5));
    assert_eq!(code, 200, "{body}");
    let (cookie, csrf) = session_of(&head, &body);
    let with_session = format!("Cookie: {cookie}\r\nX-NVR-CSRF: {csrf}\r\n");
    let write_config = |v: Value| {
        let mut full = v;
        full["output_dir"] = nvr.output_dir().display().to_string().into();
        std::fs::write(
            nvr.config_path(),
            serde_json::to_string_pretty(&full).unwrap(),
        )
        .unwrap();
    };
    // Dropping the login of an API that listens beyond loopback is refused, not ignored.
    let mut no_login = cfg(Value::Null);
    no_login["api"].as_object_mut().unwrap().remove("auth");
    write_config(no_login);
    let (code, _, body) = send(nvr.port, "POST", "/api/reload", &with_session, "");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("restart needed") || body.contains("api.auth"),
        "{body}"
    );
    assert_eq!(send(nvr.port, "GET", "/status", &with_session, "").0, 200);

    write_config(cfg(auth("operator", new_pw)));
    let (code, _, body) = send(nvr.port, "POST", "/api/reload", &with_session, "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["login_changed"],
        true,
        "{body}"
    );
    let (code, _, body) = send(nvr.port, "GET", "/status", &with_session, "");
    assert_eq!(
        code, 401,
        "the old session outlived the login change: {body}"
    );
    let (code, _, body) = login_patiently(addr, "admin", old_pw, Duration::from_secs(5));
    assert_eq!(code, 401, "the old password still works: {body}");
    let (code, _, body) = login_patiently(addr, "operator", new_pw, Duration::from_secs(10));
    assert_eq!(code, 200, "the new password does not work: {body}");
}

#[test]
fn credentials_in_a_query_string_are_refused_without_being_echoed() {
    let dir = TempDir::new("querycreds");
    for (url, secret) in [
        (
            "rtsp://127.0.0.1:9/s?user=admin&password=Qs3cretA",
            "Qs3cretA",
        ),
        ("rtsp://127.0.0.1:9/s?channel=1&PWD=Qs3cretB", "Qs3cretB"),
        ("rtsp://127.0.0.1:9/s?Token=Qs3cretC", "Qs3cretC"),
    ] {
        let path = dir.path().join("cameras.json");
        std::fs::write(
            &path,
            json!({"cameras": [{"id": "a", "main_url": url}]}).to_string(),
        )
        .unwrap();
        let out = std::process::Command::new(nvr_tests::nvr::bin("supervisor"))
            .arg("--check-config")
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{url} was accepted: {text}");
        assert!(text.contains("credentials in the URL"), "{text}");
        assert!(
            !text.contains(secret),
            "the message echoes the secret: {text}"
        );
    }
}
