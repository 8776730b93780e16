//! Phase `bad`: cameras that send garbage, stall, refuse the password, or send a codec that cannot
//! be recorded, beside a good one; RSS sampled throughout.

use crate::checks::{flat, lost, lost_detail, onsets_covered, settled_counts, Disturbances};
use crate::report::Section;
use crate::rig::{base_config, camera, indexed, stop, unix_ms, Rng};
use crate::Args;
use anyhow::Result;
use nvr_tests::clipcheck::files_ending;
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{wait_until, Nvr};
use nvr_tests::procstat::read_rss_mb;
use nvr_tests::status::{self, str_at, stream_up, u64_at};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Bad {
    Garbage,
    Stall,
}

/// A TCP server that misbehaves like a broken camera; records each connection's stream (`main`,
/// `sub`) and time.
struct BadServer {
    port: u16,
    /// (stream, connected, closed) per connection.
    attempts: Arc<Attempts>,
}

impl BadServer {
    fn start(kind: Bad) -> Result<BadServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&attempts);
        thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let log = Arc::clone(&log);
                thread::spawn(move || serve_badly(conn, kind, &log));
            }
        });
        Ok(BadServer { port, attempts })
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// Seconds from the end of each connection to `stream` to the start of the next: the
    /// client's backoff.
    fn waits(&self, stream: &str) -> Vec<f64> {
        let mut a: Vec<_> = self.attempts.lock().unwrap().clone();
        a.sort_by_key(|x| x.1);
        let mine: Vec<_> = a.iter().filter(|x| x.0 == stream).collect();
        mine.windows(2)
            .map(|w| w[1].1.saturating_duration_since(w[0].2).as_secs_f64())
            .collect()
    }
}

/// (stream, connected, closed) of each connection a bad server took.
type Attempts = Mutex<Vec<(String, Instant, Instant)>>;

fn serve_badly(conn: TcpStream, kind: Bad, log: &Attempts) {
    let at = Instant::now();
    let stream = misbehave(conn, kind);
    log.lock().unwrap().push((stream, at, Instant::now()));
}

/// Reads the request, then sends garbage or nothing until the client hangs up; returns the stream
/// the request named.
fn misbehave(mut conn: TcpStream, kind: Bad) -> String {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    let stream = head
        .split_whitespace()
        .nth(1)
        .and_then(|url| url.rsplit('/').next())
        .unwrap_or("?")
        .to_string();
    let mut rng = Rng(unix_ms() as u64 | 0x9e37);
    match kind {
        Bad::Garbage => {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
                if conn.write_all(&junk).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Bad::Stall => {
            // Hold the connection, say nothing, until the client gives up.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
    stream
}

pub fn run(args: &Args, sec: &mut Section) -> Result<()> {
    let (user, pw) = ("admin", "right-pw-4471");
    let mut fc = FakeCam::start(FakeCamOpts {
        auth: Some((user.into(), pw.into())),
        ..FakeCamOpts::scenes(&["motion", "small"])
    })?;
    let garbage = BadServer::start(Bad::Garbage)?;
    let stall = BadServer::start(Bad::Stall)?;
    let with_login = |mut c: Value, password: &str| {
        c["username"] = user.into();
        c["password"] = password.into();
        c
    };
    let cams = vec![
        json!({"id": "garbage", "main_url": garbage.url("garbage/main"), "sub_url": garbage.url("garbage/sub")}),
        json!({"id": "stall", "main_url": stall.url("stall/main"), "sub_url": stall.url("stall/sub")}),
        with_login(
            camera("unauth", &fc, "motion/main_h265", "motion/sub_h265"),
            "wrong-pw-1234",
        ),
        with_login(camera("mjpeg", &fc, "motion/mjpeg", "motion/sub"), pw),
        with_login(camera("good", &fc, "small/main", "small/sub"), pw),
    ];
    let nvr = Nvr::start(base_config(cams), &[]);
    let started = Instant::now();
    wait_until(Duration::from_secs(30), "the good camera up", || {
        let c = nvr.camera("good");
        (stream_up(&c, "sub") && stream_up(&c, "main")).then_some(())
    });
    let mut disturbed = Disturbances::default();
    let before = settled_counts(
        &mut fc,
        &nvr,
        "good",
        "small/sub",
        "small/main",
        &mut disturbed,
    )?;
    let sample_every = Duration::from_secs(if args.full { 30 } else { 5 });
    let warm_up = Duration::from_secs(20);
    let mut rss: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut next = Instant::now() + warm_up;
    while started.elapsed() < Duration::from_secs(args.bad_s) {
        if Instant::now() >= next {
            for (id, c) in nvr.cameras() {
                rss.entry(id)
                    .or_default()
                    .push(read_rss_mb(status::pid(&c).unwrap_or(0)).map(|r| r.0));
            }
            rss.entry("supervisor".into())
                .or_default()
                .push(read_rss_mb(nvr.pid()).map(|r| r.0));
            next += sample_every;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let after = settled_counts(
        &mut fc,
        &nvr,
        "good",
        "small/sub",
        "small/main",
        &mut disturbed,
    )?;
    let until = Instant::now();
    let c = nvr.cameras();
    sec.figure(
        "run",
        format!(
            "{} s, RSS sampled every {} s after {} s",
            args.bad_s,
            sample_every.as_secs(),
            warm_up.as_secs()
        ),
    );
    let state = |id: &str, stream: &str| {
        format!(
            "{}: {}",
            str_at(&c[id], &["worker", stream, "state"]),
            str_at(&c[id], &["worker", stream, "last_error"])
        )
    };
    // Between attempts a stream is `down`; during one, `connecting` with the last failure kept.
    for (id, stream, want, says) in [
        ("garbage", "sub", "down", "no valid RTSP answer"),
        ("stall", "sub", "down", "no valid RTSP answer"),
        ("unauth", "sub", "unauthorized", "refused the credentials"),
        (
            "mjpeg",
            "main",
            "down",
            "cannot be recorded without transcoding",
        ),
    ] {
        let st = state(id, stream);
        let state_ok = st.starts_with(&format!("{want}: ")) || st.starts_with("connecting: ");
        sec.check(
            &format!("{id}: {stream} shows a clear state"),
            state_ok && st.contains(says),
            st,
        );
    }
    sec.check(
        "mjpeg: its SUB (H.264) is decoded all the same",
        stream_up(&c["mjpeg"], "sub"),
        state("mjpeg", "sub"),
    );
    let mjpeg_files = files_ending(&nvr.output_dir().join("mjpeg"), ".mp4").len()
        + files_ending(&nvr.output_dir().join("mjpeg"), ".part").len();
    sec.check(
        "mjpeg: no file is written",
        mjpeg_files == 0,
        format!("{mjpeg_files} files"),
    );
    let restarts: Vec<String> = c
        .iter()
        .map(|(id, c)| format!("{id} {}", u64_at(c, &["restarts"])))
        .collect();
    sec.check(
        "no worker restarted (no crash loop)",
        c.values()
            .all(|c| u64_at(c, &["restarts"]) == 0 && c["state"] == "running"),
        restarts.join(", "),
    );
    for (name, server) in [("garbage", &garbage), ("stall", &stall)] {
        for stream in ["sub", "main"] {
            let waits = server.waits(stream);
            let shown: Vec<String> = waits.iter().map(|x| format!("{x:.1}")).collect();
            // Backoff: the waits grow (a little jitter allowed) and end well above the first.
            let grows = waits.windows(2).all(|w| w[1] >= w[0] - 0.5);
            let ok = waits.len() >= 2 && grows && waits.last() >= Some(&(waits[0] * 3.0));
            sec.check(
                &format!("{name}/{stream}: retried with backoff"),
                ok,
                format!(
                    "{} attempts; seconds from one giving up to the next: {}",
                    waits.len() + 1,
                    shown.join(", ")
                ),
            );
        }
    }
    for (id, v) in &rss {
        let (ok, seen) = flat(v, "MB");
        sec.check(&format!("{id}: RSS flat (RssAnon+RssFile)"), ok, seen);
    }
    sec.check(
        "RSS was sampled for every camera and the supervisor",
        rss.len() == c.len() + 1,
        format!("{} series", rss.len()),
    );
    let (lost_sub, lost_main, sent) = lost(before, after);
    sec.check(
        "good: lost no frame beside the bad cameras",
        lost_sub == 0 && lost_main == 0 && sent > 0,
        lost_detail(lost_sub, lost_main, sent, &nvr, "good"),
    );
    thread::sleep(Duration::from_secs(5)); // let the last clip end
    let rows = indexed(&nvr);
    let (eligible, covered, misses) =
        onsets_covered(&fc, &rows, "good", "small", started, until, &disturbed);
    sec.check(
        "good: every motion onset has a clip",
        eligible > 0 && covered == eligible,
        format!("{covered} of {eligible} {misses:?}"),
    );
    let mut nvr = nvr;
    stop(&mut nvr, "bad")?;
    let log = nvr.log_text();
    sec.check(
        "the camera password is in no log line",
        !log.contains(pw) && !log.contains("wrong-pw-1234"),
        format!("{} bytes of log searched", log.len()),
    );
    Ok(())
}
