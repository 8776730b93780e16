//! Live video and status over WebSockets against the real supervisor, workers and fake cameras:
//! who may open a socket (Origin, login), the close reasons (unknown camera, MAIN not connected,
//! camera down), status pushes, the JPEG fallback, a client that vanishes mid-message, and many
//! fMP4 viewers of one camera (some of which never read).

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::live::{self, close_reason, connect, open, Event, Opened};
use nvr_tests::nvr::{request, Nvr};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn refused_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    match open(port, path, headers).unwrap() {
        Opened::Socket(s) => {
            live::close(*s);
            None
        }
        Opened::Refused(code, _) => Some(code),
    }
}

#[test]
fn live_sockets_follow_the_origin_and_close_with_clear_reasons() {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["clock"])).unwrap();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            {"id": "cam8", "main_url": fc.url("clock/tiny"), "sub_url": fc.url("clock/tiny_a"),
             "recording": {"mode": "off"}},
            {"id": "gone", "main_url": "rtsp://127.0.0.1:9/nothing", "recording": {"mode": "off"}},
        ]}),
        &[],
    );
    let port = nvr.port;
    nvr.wait_camera("cam8", Duration::from_secs(30), "sub up", |c| {
        c["worker"]["sub"]["state"] == "up"
    });

    // The Origin rule, before any upgrade: another site's (or `null`) is 403; the API's own, or
    // none at all (not a browser), is upgraded.
    let own = format!("http://127.0.0.1:{port}");
    for path in ["/api/ws", "/api/cameras/cam8/live?stream=sub"] {
        for (origin, want) in [
            (Some("http://evil.example"), Some(403)),
            (Some("http://127.0.0.1:1"), Some(403)),
            (Some("null"), Some(403)),
            (Some(own.as_str()), None),
            (None, None),
        ] {
            let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("Origin", *o)).collect();
            assert_eq!(
                refused_with(port, path, &headers),
                want,
                "{path} from {origin:?}"
            );
        }
    }
    // Bad requests get an HTTP error, not a socket.
    for (path, want) in [
        ("/api/cameras/cam8/live?stream=bogus", 400),
        ("/api/cameras/cam8/live?stream=main&format=jpeg", 400),
        ("/api/cameras/cam8/live?format=gif", 400),
    ] {
        assert_eq!(refused_with(port, path, &[]), Some(want), "{path}");
    }
    let (code, _, body) = request(port, "GET", "/api/cameras/cam8/live", "").unwrap();
    assert!(
        (400..500).contains(&code),
        "a plain GET of a socket path: {code} {}",
        String::from_utf8_lossy(&body)
    );

    // Close reasons: an unknown camera, MAIN of a camera that does not record.
    for (path, want) in [
        ("/api/cameras/nope/live", (4404, "unknown_camera")),
        (
            "/api/cameras/cam8/live?stream=main",
            (4409, "main_not_connected"),
        ),
    ] {
        let mut s = connect(port, path).unwrap();
        let (code, reason) = close_reason(&mut s, Duration::from_secs(5)).unwrap();
        assert_eq!((code, reason.as_str()), want, "{path}");
    }

    // A camera whose stream never comes gets `camera_down`, not a hang (fMP4 and JPEG alike).
    let down = std::thread::spawn(move || {
        [
            "/api/cameras/gone/live",
            "/api/cameras/gone/live?format=jpeg",
        ]
        .map(|path| {
            let mut s = connect(port, path).unwrap();
            let started = Instant::now();
            let r = close_reason(&mut s, Duration::from_secs(25)).unwrap();
            (path, r, started.elapsed())
        })
    });

    // Status pushes: the first message at once, with every camera and the health verdict.
    let mut ws = connect(port, "/api/ws").unwrap();
    let Event::Text(first) = live::next(&mut ws).unwrap() else {
        panic!("the first status push is text")
    };
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["type"], "status");
    let ids: Vec<&str> = v["status"]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cam8", "gone"]);
    assert_eq!(v["health"]["ok"], false);
    assert!(v["health"]["problems"]["gone"].is_string(), "{first}");
    // Taking the camera's stream away shows in a push, without asking.
    fc.command("off /clock/tiny_a").unwrap();
    let pushed_down = wait_push(&mut ws, Duration::from_secs(30), |s| {
        camera(s, "cam8")["worker"]["sub"]["state"] != "up"
    });
    fc.command("on /clock/tiny_a").unwrap();
    wait_push(&mut ws, Duration::from_secs(40), |s| {
        camera(s, "cam8")["worker"]["sub"]["state"] == "up"
    });
    assert!(pushed_down < Duration::from_secs(30));

    // The JPEG fallback: JPEGs as binary messages at about the rate asked for.
    let mut jpeg = connect(port, "/api/cameras/cam8/live?format=jpeg&fps=5").unwrap();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        match live::next(&mut jpeg).unwrap() {
            Event::Binary(b) => {
                assert_eq!(&b[..2], b"\xff\xd8", "a JPEG");
                image::load_from_memory(&b).expect("a whole JPEG");
                n += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((10..=20).contains(&n), "{n} JPEGs in 3 s at 5 fps");
    // A client that goes away while messages are on their way: its socket is cut mid-stream.
    let fast = connect(port, "/api/cameras/cam8/live?format=jpeg&fps=30").unwrap();
    let _ = fast.get_ref().shutdown(std::net::Shutdown::Both);
    drop(fast);
    // The same with fMP4, cut after its init message, while the init segment and the burst of
    // fragments from the newest keyframe are being written.
    let mut cut = connect(port, "/api/cameras/cam8/live?stream=sub").unwrap();
    assert!(matches!(live::next(&mut cut).unwrap(), Event::Text(_)));
    let _ = cut.get_ref().shutdown(std::net::Shutdown::Both);
    drop(cut);
    live::close(jpeg);

    for (path, (code, reason), took) in down.join().unwrap() {
        assert_eq!((code, reason.as_str()), (4503, "camera_down"), "{path}");
        assert!(took < Duration::from_secs(20), "{path}: {took:?}");
    }
    // Still serving, and nothing panicked.
    let mut again = connect(port, "/api/cameras/cam8/live?format=jpeg").unwrap();
    assert!(matches!(live::next(&mut again).unwrap(), Event::Binary(_)));
    let mut again = connect(port, "/api/cameras/cam8/live?stream=sub").unwrap();
    let (w, closed) = live::watch(&mut again, Duration::from_secs(3)).unwrap();
    assert!(
        closed.is_none() && w.inits.len() == 1 && w.fragments.len() >= 20,
        "{w:?} {closed:?}"
    );
    let log = nvr.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

fn camera<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["status"]["cameras"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
        .unwrap_or(&Value::Null)
}

/// Reads status pushes until one satisfies `pred`; returns how long that took.
fn wait_push(ws: &mut live::Socket, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    loop {
        assert!(
            started.elapsed() < timeout,
            "no such status push within {timeout:?}"
        );
        if let Event::Text(t) = live::next(ws).unwrap() {
            if pred(&serde_json::from_str(&t).unwrap()) {
                return started.elapsed();
            }
        }
    }
}

#[test]
fn with_a_login_sockets_need_a_session() {
    let password = "live and let live";
    let hash = nvr_tests::nvr::hash_password(password);
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "api": {"auth": {"username": "admin", "password_hash": hash}},
            "cameras": [{"id": "cam11", "main_url": "rtsp://127.0.0.1:9/x", "recording": {"mode": "off"}}]}),
        &[],
    );
    let port = nvr.port;
    for path in [
        "/api/ws",
        "/api/cameras/cam11/live",
        "/api/cameras/cam11/live?format=jpeg",
    ] {
        assert_eq!(refused_with(port, path, &[]), Some(401), "{path}");
    }
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim())
        })
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let mut ws = match open(port, "/api/ws", &[("Cookie", &cookie)]).unwrap() {
        Opened::Socket(s) => *s,
        Opened::Refused(code, body) => panic!("with a session: {code} {body}"),
    };
    assert!(matches!(live::next(&mut ws).unwrap(), Event::Text(_)));
    // A session does not make another site's page welcome.
    assert_eq!(
        refused_with(
            port,
            "/api/ws",
            &[("Cookie", &cookie), ("Origin", "http://evil.example")]
        ),
        Some(403)
    );
}

/// A viewer that opens its socket and then never reads: a tiny receive buffer, so the server's
/// sends stall almost at once.
fn stalled_viewer(port: u16, path: &str) -> live::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let stream: std::net::TcpStream = s.into();
    let url = format!("ws://127.0.0.1:{port}{path}");
    tungstenite::client(url, stream).unwrap().0
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[test]
fn fifty_viewers_of_one_camera_keep_up_while_stalled_ones_hold_bounded_memory() {
    const VIEWERS: usize = 50;
    const STALLED: usize = 5;
    const WATCH: Duration = Duration::from_secs(15);
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["clock"])).unwrap();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            {"id": "cam7", "main_url": fc.url("clock/sub"), "sub_url": fc.url("clock/sub"),
             "recording": {"mode": "off"}},
        ]}),
        &[],
    );
    let port = nvr.port;
    nvr.wait_camera(
        "cam7",
        Duration::from_secs(30),
        "sub up with a packet ring",
        |c| c["worker"]["sub"]["state"] == "up" && c["worker"]["sub"]["packet_ring"].is_object(),
    );
    // One viewer first: what the stream is, and that what it sends is a valid MP4 of the camera's
    // own codec and size (decoded by ffmpeg with -xerror: no transcode, nothing broken).
    let mut probe = connect(port, "/api/cameras/cam7/live?stream=sub").unwrap();
    let mut file = Vec::new();
    let mut info = None;
    while file.len() < 200_000 {
        match live::next(&mut probe).unwrap() {
            Event::Text(t) => info = Some(serde_json::from_str::<Value>(&t).unwrap()),
            Event::Binary(b) => file.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    live::close(probe);
    let info = info.expect("an init message first");
    assert_eq!(info["codec"], "h264", "{info}");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(640), Some(360)),
        "{info}"
    );
    assert!(
        info["mime"]
            .as_str()
            .unwrap()
            .starts_with("video/mp4; codecs=\"avc1."),
        "{info}"
    );
    assert_eq!(&file[4..8], b"ftyp");
    let path = nvr.dir.path().join("live.mp4");
    std::fs::write(&path, &file).unwrap();
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "ffmpeg -xerror: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );

    let supervisor = nvr.pid();
    let rss_before = rss_mb(supervisor);
    let stalled: Vec<_> = (0..STALLED)
        .map(|_| stalled_viewer(port, "/api/cameras/cam7/live?stream=sub"))
        .collect();
    let pushed = |fc: &mut FakeCam| {
        fc.command("status").unwrap()["pushed"]["/clock/sub"]
            .as_u64()
            .unwrap()
    };
    let frames = |nvr: &Nvr| {
        nvr.camera("cam7")["worker"]["sub"]["frames"]
            .as_u64()
            .unwrap()
    };
    let (sent0, decoded0) = (pushed(&mut fc), frames(&nvr));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(port, "/api/cameras/cam7/live?stream=sub").unwrap();
                let (w, closed) = live::watch(&mut s, WATCH).unwrap();
                live::close(s);
                (w, closed)
            })
        })
        .collect();
    let mut rss_peak = rss_before;
    while !viewers.iter().all(|v| v.is_finished()) {
        rss_peak = rss_peak.max(rss_mb(supervisor));
        std::thread::sleep(Duration::from_millis(250));
    }
    let (sent, decoded) = (pushed(&mut fc) - sent0, frames(&nvr) - decoded0);
    for (i, v) in viewers.into_iter().enumerate() {
        let (w, closed) = v.join().unwrap();
        assert_eq!(closed, None, "viewer {i} was closed");
        assert_eq!(w.inits.len(), 1, "viewer {i}: one init");
        // Decode times only grow, and the last 10 s brought about 30 fps.
        assert!(
            w.fragments.windows(2).all(|p| p[1].1 > p[0].1),
            "viewer {i}: decode times grow"
        );
        let end = w.fragments.last().unwrap().0;
        let recent = w
            .fragments
            .iter()
            .filter(|(at, _)| end.duration_since(*at) < Duration::from_secs(10))
            .count();
        assert!(
            (270..=330).contains(&recent),
            "viewer {i}: {recent} fragments in its last 10 s"
        );
    }
    // The worker kept pace with the camera while 55 viewers read its ring.
    assert!(
        decoded as f64 >= sent as f64 * 0.97,
        "the worker decoded {decoded} of {sent} frames sent"
    );
    // Stalled viewers hold at most their queue (1 MiB each) and the others' fragments pass.
    assert!(
        rss_peak - rss_before < 80.0,
        "supervisor RSS {rss_before:.0} → {rss_peak:.0} MB with {VIEWERS} viewers and {STALLED} stalled ones"
    );
    eprintln!(
        "{VIEWERS} viewers + {STALLED} stalled: supervisor RSS {rss_before:.1} → peak {rss_peak:.1} MB; worker {decoded}/{sent} frames"
    );
    drop(stalled);
    let log = nvr.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn sockets_outlive_the_http_timeouts_count_against_the_cap_and_silent_peers_are_closed() {
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "api": {"idle_timeout_s": 2, "max_connections": 3},
            "cameras": [{"id": "cam10", "main_url": "rtsp://127.0.0.1:9/x", "recording": {"mode": "off"}}]}),
        &[],
    );
    let port = nvr.port;
    // Two sockets that read (and so answer the server's pings), one that never reads.
    let mut readers = [
        connect(port, "/api/ws").unwrap(),
        connect(port, "/api/ws").unwrap(),
    ];
    let mut silent = connect(port, "/api/ws").unwrap();
    // Three sockets hold the three connections: a request waits for one to close.
    let opened = Instant::now();
    let waiting = std::thread::spawn(move || {
        let answered = request(port, "GET", "/ready", "").map(|(code, _, _)| code);
        (answered.ok(), opened.elapsed())
    });
    // The readers outlive the 2 s idle timeout (pushes come, pings are answered) ...
    let mut last_push = [opened; 2];
    while opened.elapsed() < Duration::from_secs(6) {
        for (i, s) in readers.iter_mut().enumerate() {
            s.get_ref()
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            match live::next(s) {
                Ok(Event::Text(_)) => last_push[i] = Instant::now(),
                Ok(other) => panic!("reader {i}: {other:?} after {:?}", opened.elapsed()),
                Err(_) => {} // a read timeout
            }
        }
    }
    for (i, at) in last_push.iter().enumerate() {
        assert!(
            at.elapsed() < Duration::from_secs(2),
            "reader {i} got no recent push"
        );
    }
    // ... the silent one was closed for its silence, and its connection went to the request.
    silent
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (code, reason) = close_reason(&mut silent, Duration::from_secs(5)).unwrap();
    assert_eq!((code, reason.as_str()), (4410, "silent"));
    let (answered, after) = waiting.join().unwrap();
    assert_eq!(
        answered,
        Some(503),
        "the waiting request was answered (camera down: 503)"
    );
    assert!(
        after > Duration::from_millis(1500),
        "it waited for a connection to free up ({after:?})"
    );
}

#[test]
fn main_with_aac_is_relayed_with_its_audio_and_decodes() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [
            {"id": "cam9", "main_url": fc.url("motion/main_aac"), "sub_url": fc.url("motion/sub"),
             "recording": {"mode": "motion"}}]}),
        &[],
    );
    nvr.wait_camera(
        "cam9",
        Duration::from_secs(30),
        "MAIN up with a packet ring",
        |c| c["worker"]["main"]["state"] == "up" && c["worker"]["main"]["packet_ring"].is_object(),
    );
    let mut s = connect(nvr.port, "/api/cameras/cam9/live?stream=main").unwrap();
    let mut file = Vec::new();
    let mut info = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        match live::next(&mut s).unwrap() {
            Event::Text(t) => info = Some(serde_json::from_str::<Value>(&t).unwrap()),
            Event::Binary(b) => file.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    live::close(s);
    let info = info.expect("an init message");
    assert_eq!(info["audio"], true, "{info}");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(1920), Some(1080))
    );
    assert!(
        info["mime"].as_str().unwrap().contains("mp4a.40.2"),
        "{info}"
    );
    let path = nvr.dir.path().join("main.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        streams.contains("h264") && streams.contains("aac,32000"),
        "{streams}"
    );
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "ffmpeg -xerror: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
}
