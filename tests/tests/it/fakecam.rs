//! The fake cameras themselves: what each mount serves, auth, ground truth, shared timelines, the
//! fault knobs, and that no server outlives its harness. Needs ffmpeg/ffprobe and GStreamer's
//! RTSP server (see `tests/fakecam/README.md`).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use serde_json::Value;

/// Upper bound for one ffprobe/ffmpeg client (enforced with coreutils `timeout`).
const CLIENT_TIMEOUT_S: u32 = 25;
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const LOOP_NS: u64 = 20_000_000_000;

/// Runs `prog args...` under `timeout`, capturing its output.
fn run(prog: &str, args: &[&str]) -> Result<Output> {
    Command::new("timeout")
        .args(["-k", "2", &CLIENT_TIMEOUT_S.to_string(), prog])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {prog}"))
}

/// `ffprobe`'s streams of an RTSP URL, over TCP.
fn probe(url: &str) -> Result<Vec<Value>> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,r_frame_rate,sample_rate",
            "-of",
            "json",
            url,
        ],
    )?;
    if !out.status.success() {
        bail!(
            "ffprobe {url}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: Value = serde_json::from_slice(&out.stdout).context("ffprobe output")?;
    Ok(json["streams"].as_array().cloned().unwrap_or_default())
}

/// The ffprobe failure message for a URL that must not play.
fn probe_error(url: &str) -> String {
    match probe(url) {
        Ok(streams) => panic!("{url} played: {streams:?}"),
        Err(e) => format!("{e:#}"),
    }
}

fn stream<'a>(streams: &'a [Value], kind: &str) -> Option<&'a Value> {
    streams.iter().find(|s| s["codec_type"] == kind)
}

/// Receives `secs` seconds of video (counted from the first packet) from `url` over TCP and
/// decodes it; returns (decoded frames, wall time).
fn receive(url: &str, secs: u32) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let t = secs.to_string();
    let out = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-t",
            &t,
            "-map",
            "0:v",
            "-f",
            "framecrc",
            "-",
        ],
    )?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "ffmpeg {url}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    Ok((frames, elapsed))
}

/// Starts a long (30 s) client in a thread; the receiver gets its output when it ends.
fn long_client(url: String) -> mpsc::Receiver<Result<Output>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let out = run(
            "ffmpeg",
            &[
                "-nostdin",
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                &url,
                "-t",
                "30",
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ],
        );
        let _ = tx.send(out);
    });
    rx
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event
}

/// CLOCK_MONOTONIC now: the clock of the server's `mono_ns` (and of the frame ring's stamps).
fn monotonic_now_ns() -> u64 {
    shm_bus::monotonic_ns()
}

#[test]
fn motion_mounts_serve_the_promised_codecs() {
    let cam = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mounts: Vec<&str> = cam.ready()["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        mounts,
        [
            "/motion/main",
            "/motion/sub",
            "/motion/main_h265",
            "/motion/sub_h265",
            "/motion/main_aac",
            "/motion/main_alaw",
            "/motion/mjpeg",
            "/motion/tiny",
            "/motion/tiny_h265"
        ]
    );
    // (mount, video codec, width, height, audio codec and rate)
    let table = [
        ("motion/main", "h264", 1920, 1080, None),
        ("motion/sub", "h264", 640, 360, None),
        ("motion/main_h265", "hevc", 1920, 1080, None),
        ("motion/sub_h265", "hevc", 640, 360, None),
        (
            "motion/main_aac",
            "h264",
            1920,
            1080,
            Some(("aac", "32000")),
        ),
        (
            "motion/main_alaw",
            "h264",
            1920,
            1080,
            Some(("pcm_alaw", "8000")),
        ),
        ("motion/mjpeg", "mjpeg", 640, 360, None),
        ("motion/tiny", "h264", 320, 180, None),
        ("motion/tiny_h265", "hevc", 320, 180, None),
    ];
    // Three at a time: the machine is shared.
    for chunk in table.chunks(3) {
        let probes: Vec<_> = chunk
            .iter()
            .map(|row| {
                let url = cam.url(row.0);
                thread::spawn(move || probe(&url))
            })
            .collect();
        for (row, handle) in chunk.iter().zip(probes) {
            let (mount, vcodec, width, height, audio) = *row;
            let streams = handle.join().unwrap().unwrap();
            let v = stream(&streams, "video")
                .unwrap_or_else(|| panic!("{mount}: no video in {streams:?}"));
            assert_eq!(v["codec_name"], vcodec, "{mount}");
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(width), Some(height)),
                "{mount}"
            );
            // ffprobe guesses the rate from timestamps; with audio it re-bases them on the first
            // RTCP sender reports, which makes the guess unreliable on a loaded machine. The a/v
            // mounts carry motion/main's very track, whose rate is checked alone.
            if audio.is_none() {
                let rate = match (vcodec, width) {
                    ("mjpeg", _) => "10/1",
                    (_, 320) => "15/1",
                    _ => "30/1",
                };
                assert_eq!(v["r_frame_rate"], rate, "{mount}");
            }
            match audio {
                None => assert!(
                    stream(&streams, "audio").is_none(),
                    "{mount}: unexpected audio"
                ),
                Some((codec, rate)) => {
                    let a =
                        stream(&streams, "audio").unwrap_or_else(|| panic!("{mount}: no audio"));
                    assert_eq!(
                        (a["codec_name"].as_str(), a["sample_rate"].as_str()),
                        (Some(codec), Some(rate)),
                        "{mount}"
                    );
                }
            }
        }
    }
    let err = probe_error(&cam.url("motion/nope"));
    assert!(err.contains("404"), "{err}");
}

#[test]
fn other_scenes_serve_main_and_sub() {
    let cam = FakeCam::start(FakeCamOpts::scenes(&["small", "noise", "lights", "clock"])).unwrap();
    for scene in ["small", "noise", "lights", "clock"] {
        let main_url = cam.url(&format!("{scene}/main"));
        let main = thread::spawn(move || probe(&main_url));
        let sub = probe(&cam.url(&format!("{scene}/sub"))).unwrap();
        let main = main.join().unwrap().unwrap();
        for (streams, width, height) in [(main, 1920, 1080), (sub, 640, 360)] {
            let v = stream(&streams, "video").unwrap_or_else(|| panic!("{scene}: no video"));
            assert_eq!(v["codec_name"], "h264", "{scene}");
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(width), Some(height)),
                "{scene}"
            );
            assert_eq!(v["r_frame_rate"], "30/1", "{scene}");
        }
    }
    // Scenes not asked for are not served.
    let err = probe_error(&cam.url("motion/sub"));
    assert!(err.contains("404"), "{err}");
}

#[test]
fn digest_auth_refuses_wrong_credentials_and_deny_refuses_all() {
    let opts = FakeCamOpts {
        auth: Some(("admin".into(), "s3cret".into())),
        ..FakeCamOpts::scenes(&["motion"])
    };
    let mut cam = FakeCam::start(opts).unwrap();
    let good = cam.url_with_credentials("motion/sub", "admin", "s3cret");
    for bad in [
        cam.url("motion/sub"),
        cam.url_with_credentials("motion/sub", "admin", "wrong"),
    ] {
        let err = probe_error(&bad);
        assert!(err.contains("401"), "{bad}: {err}");
    }
    let streams = probe(&good).unwrap();
    assert_eq!(stream(&streams, "video").unwrap()["codec_name"], "h264");

    let ack = cam.command("deny on").unwrap();
    assert_eq!(ack["deny"], true);
    let err = probe_error(&good);
    assert!(err.contains("401"), "{err}");
    cam.command("deny off").unwrap();
    probe(&good).unwrap();
}

#[test]
fn ground_truth_is_printed_once_per_loop_on_the_monotonic_clock() {
    // Start 18 s into the 20 s loop: loop 1 starts 2 s from now, motion at 12 s, loop 2 at 22 s.
    let opts = FakeCamOpts {
        start_pos: Some(Duration::from_secs(18)),
        ..FakeCamOpts::scenes(&["motion"])
    };
    let cam = FakeCam::start(opts).unwrap();
    let ready = cam.ready().clone();
    let now_ns = monotonic_now_ns();
    let ready_ns = ready["mono_ns"].as_u64().unwrap();
    assert!(
        now_ns.abs_diff(ready_ns) < 1_000_000_000,
        "mono_ns {ready_ns} is not CLOCK_MONOTONIC (now {now_ns})"
    );
    let t0 = ready["t0_mono_ns"].as_u64().unwrap();
    assert_eq!(ready["loop_s"], 20);

    // A client on each stream during loop 1's start: events stay once per scene, not per client.
    let clients: Vec<_> = ["motion/sub", "motion/sub_h265"]
        .into_iter()
        .map(|m| {
            let url = cam.url(m);
            thread::spawn(move || receive(&url, 4))
        })
        .collect();

    let mut seen = Vec::new();
    for (event, loop_idx) in [("loop_start", 1), ("motion_start", 1), ("loop_start", 2)] {
        let e = cam
            .wait_event(
                |e| e["event"] == event && e["loop"] == loop_idx,
                Duration::from_secs(25),
            )
            .unwrap();
        // Printed when due (not ahead, not much later). Late is allowed 1.5 s: every consumer
        // times the event by its `mono_ns` stamp, never by when the line is read, so lateness
        // only delays a test waiting for it; a loaded machine (two cores shared with Chromium
        // and a benchmark) can hold the Python server or this reader back by more than 500 ms.
        let due = cam.instant_of(e["mono_ns"].as_u64().unwrap());
        let now = Instant::now();
        assert!(
            now + Duration::from_millis(50) >= due,
            "{event} {loop_idx} printed early"
        );
        assert!(
            now < due + Duration::from_millis(1500),
            "{event} {loop_idx} printed late: {:?}",
            now - due
        );
        seen.push(e);
    }
    for c in clients {
        let (frames, _) = c.join().unwrap().unwrap();
        assert!(frames >= 60, "client got {frames} frames");
    }
    let mono = |e: &Value| e["mono_ns"].as_u64().unwrap();
    assert_eq!(mono(&seen[0]), t0 + LOOP_NS);
    assert_eq!(mono(&seen[1]) - mono(&seen[0]), 10_000_000_000);
    assert_eq!(mono(&seen[2]) - mono(&seen[0]), LOOP_NS);
    let offset = |e: &Value| e["wall_ns"].as_i64().unwrap() - e["mono_ns"].as_i64().unwrap();
    assert!(
        seen.iter().all(|e| offset(e) == offset(&ready)),
        "wall_ns and mono_ns drift apart"
    );

    let motion: Vec<(String, u64)> = cam
        .events()
        .iter()
        .filter(|e| e["scene"] == "motion")
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["loop"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = [("loop_start", 1), ("motion_start", 1), ("loop_start", 2)];
    assert_eq!(
        motion,
        expect
            .iter()
            .map(|(e, l)| (e.to_string(), *l))
            .collect::<Vec<_>>(),
        "loop 0 began before the server did, so it is not reported; then each event once"
    );
}

#[test]
fn motion_start_is_when_the_moving_frame_arrives() {
    // Start 7 s into the loop: the box appears 3 s from now.
    let opts = FakeCamOpts {
        start_pos: Some(Duration::from_secs(7)),
        ..FakeCamOpts::scenes(&["motion"])
    };
    let cam = FakeCam::start(opts).unwrap();
    // Decode the sub stream to a 16x9 grey thumbnail per frame, noting when each arrives.
    const W: usize = 16;
    const H: usize = 9;
    let url = cam.url("motion/sub");
    let mut child = Command::new("timeout")
        .args([
            "-k",
            "2",
            "15",
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
        ])
        .args([
            "-i",
            &url,
            "-t",
            "6",
            "-map",
            "0:v",
            "-vf",
            "scale=16:9,format=gray",
        ])
        .args(["-flush_packets", "1", "-f", "rawvideo", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut frames = Vec::new();
    let mut frame = [0u8; W * H];
    while std::io::Read::read_exact(&mut stdout, &mut frame).is_ok() {
        frames.push((Instant::now(), frame));
    }
    assert!(child.wait().unwrap().success());
    let motion = cam
        .wait_event(
            |e| e["event"] == "motion_start" && e["loop"] == 0,
            EVENT_TIMEOUT,
        )
        .unwrap();
    let due = cam.instant_of(motion["mono_ns"].as_u64().unwrap());

    let (_, first) = frames.first().expect("no frames decoded");
    let changed = |f: &[u8; W * H]| f.iter().zip(first).any(|(a, b)| a.abs_diff(*b) > 30);
    let (arrived, _) = frames
        .iter()
        .find(|(_, f)| changed(f))
        .expect("the box never appeared");
    assert!(
        frames.iter().take_while(|(_, f)| !changed(f)).count() >= 30,
        "less than a second of still frames before the box"
    );
    // Arrives when due, plus transport and decoding: never before, not much after. "Not much"
    // is 1 s: this client (ffmpeg decoding into a pipe read by this thread) is what a loaded
    // machine delays. The ground truth is held to 3 frames by
    // `media::motion_onsets_match_the_ground_truth_within_three_frames`, against the worker's
    // own arrival stamps; this check catches a truth that is off by a scene position.
    assert!(
        *arrived + Duration::from_millis(20) >= due,
        "box arrived {:?} before motion_start",
        due - *arrived
    );
    assert!(
        *arrived < due + Duration::from_millis(1000),
        "box arrived {:?} after motion_start",
        *arrived - due
    );
}

#[test]
fn two_clients_on_one_mount_both_receive_real_time_frames() {
    let cam = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = cam.url("motion/sub");
            thread::spawn(move || receive(&url, 4))
        })
        .collect();
    for c in clients {
        let (frames, elapsed) = c.join().unwrap().unwrap();
        // 4 s at 30 fps from the first packet; what precedes the first key frame (the sub GOP
        // is 1 s) cannot be decoded: 90..=120 frames. Counted in stream time (`-t 4`), so a
        // loaded machine delays the frames but does not change their number.
        assert!((85..=125).contains(&frames), "got {frames} frames");
        // Paced like a camera, not a file: 4 s of video cannot arrive in much less than 4 s.
        assert!(
            elapsed >= Duration::from_millis(3800),
            "4 s of video in {elapsed:?}"
        );
    }
    cam.wait_event(
        |e| e["event"] == "client_connected" && e["clients"] == 2,
        EVENT_TIMEOUT,
    )
    .expect("both clients were connected at once");
}

#[test]
fn drop_stop_and_start_knobs() {
    let mut cam = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();

    // drop: a playing client is disconnected at once.
    let since = cam.n_events();
    let client = long_client(cam.url("motion/sub"));
    cam.wait_event_since(since, is("play"), EVENT_TIMEOUT)
        .unwrap();
    let dropped_at = Instant::now();
    let ack = cam.command("drop").unwrap();
    assert_eq!(ack["dropped"], 1, "{ack}");
    client
        .recv_timeout(Duration::from_secs(10))
        .expect("client still playing after drop")
        .unwrap();
    assert!(dropped_at.elapsed() < Duration::from_secs(10));
    cam.wait_event_since(
        since,
        |e| e["event"] == "client_closed" && e["clients"] == 0,
        EVENT_TIMEOUT,
    )
    .unwrap();

    // stop: clients dropped and the port closed.
    let since = cam.n_events();
    let client = long_client(cam.url("motion/main"));
    cam.wait_event_since(since, is("play"), EVENT_TIMEOUT)
        .unwrap();
    let ack = cam.command("stop").unwrap();
    assert_eq!(
        (ack["listening"].as_bool(), ack["dropped"].as_u64()),
        (Some(false), Some(1)),
        "{ack}"
    );
    client
        .recv_timeout(Duration::from_secs(10))
        .expect("client still playing after stop")
        .unwrap();
    let refused =
        TcpStream::connect(("127.0.0.1", cam.port())).expect_err("port still open after stop");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // start: the same port serves again.
    let ack = cam.command("start").unwrap();
    assert_eq!(ack["listening"], true);
    TcpStream::connect(("127.0.0.1", cam.port())).expect("port closed after start");
    let streams = probe(&cam.url("motion/sub")).unwrap();
    assert_eq!(stream(&streams, "video").unwrap()["width"], 640);
}

#[test]
fn drop_after_disconnects_each_client() {
    let opts = FakeCamOpts {
        drop_after: Some(Duration::from_secs(2)),
        ..FakeCamOpts::scenes(&["motion"])
    };
    let cam = FakeCam::start(opts).unwrap();
    let started = Instant::now();
    let client = long_client(cam.url("motion/sub"));
    cam.wait_event(is("play"), EVENT_TIMEOUT).unwrap();
    client
        .recv_timeout(Duration::from_secs(12))
        .expect("client not dropped")
        .unwrap();
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(1900),
        "dropped after {lasted:?}, before 2 s"
    );
    cam.wait_event(is("client_closed"), EVENT_TIMEOUT).unwrap();
}

#[test]
fn no_server_outlives_its_harness() {
    // Dropped harness: killed and reaped.
    let cam = FakeCam::start(FakeCamOpts::scenes(&["noise"])).unwrap();
    let pid = cam.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(cam);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "fakecam {pid} still exists"
    );

    // Closed stdin: exits by itself, cleanly.
    let mut cam = FakeCam::start(FakeCamOpts::scenes(&["noise"])).unwrap();
    let status = cam.shutdown(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    cam.wait_event(
        |e| e["event"] == "exit" && e["reason"] == "stdin closed",
        EVENT_TIMEOUT,
    )
    .unwrap();

    // SIGTERM: exits cleanly.
    let mut cam = FakeCam::start(FakeCamOpts::scenes(&["noise"])).unwrap();
    let kill = Command::new("kill")
        .args(["-TERM", &cam.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = cam.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    cam.wait_event(
        |e| e["event"] == "exit" && e["reason"] == "SIGTERM",
        EVENT_TIMEOUT,
    )
    .unwrap();
}
