//! Webhooks against a real receiver: a small HTTP server in this test on a loopback port that
//! checks every delivery's HMAC-SHA256 signature. The camera records in 2 s segments, so
//! `recording_finished` deliveries come steadily. The receiver goes away for a while (deliveries
//! are retried and arrive when it is back), the supervisor restarts with deliveries pending (they
//! still arrive, each recording under one delivery id), and a URL where nothing listens is dropped
//! after its `tries` and counted in `/status` and `/metrics`.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{free_port, http, wait_until, Nvr};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) const SECRET: &str = "wh-secret-8841-do-not-leak";
pub(crate) const SECRET_ENV: &str = "NVR_TEST_WEBHOOK_SECRET";

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) event: String,
    pub(crate) body: Value,
    pub(crate) signature_ok: bool,
}

/// The receiver: answers 200 to every POST on `port` while running, and records it.
pub(crate) struct Receiver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(port: u16, got: Arc<Mutex<Vec<Delivery>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, got2) = (Arc::clone(&stop), Arc::clone(&got));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        if let Some(d) = serve(stream) {
                            got2.lock().unwrap().push(d);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket: connections are refused until the next start.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request, checks its signature, answers 200.
fn serve(mut stream: std::net::TcpStream) -> Option<Delivery> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /hook "), "{line}");
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let timestamp = headers.get("x-nvr-timestamp")?.clone();
    let signature = headers.get("x-nvr-signature")?.clone();
    // The receiver's side of README's recipe: HMAC-SHA256(secret, timestamp "." body), hex.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signed = [timestamp.as_bytes(), b".", &body].concat();
    let signature_ok = signature
        .strip_prefix("sha256=")
        .and_then(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .is_some_and(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok());
    let age = nvr_now_s() - timestamp.parse::<i64>().ok()?;
    assert!(
        (-5..=60).contains(&age),
        "timestamp {timestamp} is {age} s old"
    );
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .ok()?;
    let body: Value = serde_json::from_slice(&body).expect("the body is JSON");
    let id = headers.get("x-nvr-delivery")?.clone();
    assert_eq!(body["id"], id.as_str(), "the body carries the delivery id");
    Some(Delivery {
        id,
        event: headers.get("x-nvr-event")?.clone(),
        body,
        signature_ok,
    })
}

fn nvr_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The recording ids delivered so far (de-duplicated by delivery id), checking that a delivery id
/// always carries the same body and that no recording came under two delivery ids.
fn delivered_recordings(got: &Mutex<Vec<Delivery>>) -> BTreeSet<String> {
    let got = got.lock().unwrap();
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for d in got.iter() {
        assert!(d.signature_ok, "a bad signature: {d:?}");
        if let Some(earlier) = by_id.insert(&d.id, &d.body) {
            assert_eq!(earlier, &d.body, "one delivery id, two bodies");
        }
    }
    let mut recordings = BTreeSet::new();
    for body in by_id.values() {
        assert_eq!(body["event"], "recording_finished", "{body}");
        assert_eq!(body["camera"], "a", "{body}");
        let r = body["data"]["recording_id"].as_str().unwrap().to_string();
        assert!(
            recordings.insert(r.clone()),
            "recording {r} came under two delivery ids"
        );
    }
    recordings
}

fn webhook_status(nvr: &Nvr, i: usize) -> Value {
    nvr.status()["webhooks"][i].clone()
}

/// Finished recordings of camera `a`, as `/api/recordings` lists them.
fn finished_recordings(nvr: &Nvr) -> BTreeSet<String> {
    let (code, list) = nvr.get_json("/api/recordings?camera=a");
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "finished")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn webhooks_are_signed_retried_durable_and_dropped_after_their_tries() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let port = free_port();
    let nowhere = free_port();
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let mut receiver = Receiver::start(port, Arc::clone(&got));
    let config = json!({
        "heartbeat_interval_s": 0.5,
        "webhooks": [
            {"url": format!("http://127.0.0.1:{port}/hook"), "secret_env": SECRET_ENV,
             "events": ["recording_finished"]},
            {"url": format!("http://127.0.0.1:{nowhere}/hook"), "secret_env": SECRET_ENV,
             "events": ["recording_finished"], "tries": 2, "timeout_s": 2},
        ],
        "cameras": [{"id": "a", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
                     "recording": {"mode": "continuous", "max_segment_s": 2}}],
    });
    let env = [(SECRET_ENV, SECRET)];
    let mut nvr = Nvr::start(config, &env);

    // Deliveries arrive, signed.
    wait_until(
        Duration::from_secs(40),
        "two recording_finished deliveries",
        || (delivered_recordings(&got).len() >= 2).then_some(()),
    );
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .all(|d| d.event == "recording_finished"));

    // The receiver goes away: attempts fail and deliveries wait; back, they all arrive.
    receiver.stop();
    wait_until(
        Duration::from_secs(30),
        "failed attempts with deliveries waiting",
        || {
            let w = webhook_status(&nvr, 0);
            (w["failed_attempts"].as_u64()? >= 2 && w["queued"].as_u64()? >= 2).then_some(())
        },
    );
    let during_outage = finished_recordings(&nvr);
    assert!(!delivered_recordings(&got).is_superset(&during_outage));
    receiver = Receiver::start(port, Arc::clone(&got));
    wait_until(
        Duration::from_secs(30),
        "the outage's recordings delivered",
        || {
            delivered_recordings(&got)
                .is_superset(&during_outage)
                .then_some(())
        },
    );

    // The URL where nothing listens: dropped after its 2 tries, counted.
    let w = wait_until(Duration::from_secs(20), "a dropped delivery", || {
        let w = webhook_status(&nvr, 1);
        (w["dropped"].as_u64()? >= 1).then_some(w)
    });
    assert!(w["failed_attempts"].as_u64().unwrap() >= 2, "{w}");
    assert!(
        w["last_error"].as_str().unwrap().contains("cannot connect"),
        "{w}"
    );
    let (code, metrics) = http(nvr.port, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    let dropped_line =
        format!("nvr_webhook_dropped_total{{url=\"http://127.0.0.1:{nowhere}/hook\"}}");
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&dropped_line))
        .unwrap_or_else(|| panic!("no {dropped_line} in /metrics"))
        .trim()
        .parse()
        .unwrap();
    assert!(dropped >= 1.0, "{dropped}");

    // A restart with deliveries pending: they are in the outbox, and arrive after it.
    let failed = webhook_status(&nvr, 0)["failed_attempts"].as_u64().unwrap();
    receiver.stop();
    // A failed attempt after the stop: a delivery is waiting (not merely in flight).
    wait_until(Duration::from_secs(30), "deliveries waiting", || {
        let w = webhook_status(&nvr, 0);
        (w["failed_attempts"].as_u64()? > failed && w["queued"].as_u64()? >= 1).then_some(())
    });
    let before_restart = finished_recordings(&nvr);
    assert!(!delivered_recordings(&got).is_superset(&before_restart));
    nvr.restart(&env);
    receiver = Receiver::start(port, Arc::clone(&got));
    wait_until(
        Duration::from_secs(30),
        "the pending deliveries after the restart",
        || {
            delivered_recordings(&got)
                .is_superset(&before_restart)
                .then_some(())
        },
    );
    let delivered = delivered_recordings(&got);
    eprintln!(
        "webhooks: {} recordings delivered in {} POSTs",
        delivered.len(),
        got.lock().unwrap().len()
    );

    // The secret never shows.
    let status = nvr.status().to_string();
    nvr.terminate().unwrap();
    drop(receiver);
    assert!(!status.contains(SECRET), "the secret is in /status");
    assert!(!nvr.log_text().contains(SECRET), "the secret is in the log");
}

/// `camera_down` and `camera_up`: the fake camera stops serving (its streams drop and reconnects
/// are refused); after the camera's `notify.down_after_s` unhealthy the receiver gets a signed
/// `camera_down` with the reason, and once the camera serves again a `camera_up` with how long it
/// was down. Nothing more until the next outage.
#[test]
fn webhooks_tell_camera_down_after_its_delay_and_up_when_it_is_back() {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let port = free_port();
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let _receiver = Receiver::start(port, Arc::clone(&got));
    let config = json!({
        "heartbeat_interval_s": 0.5,
        "webhooks": [
            {"url": format!("http://127.0.0.1:{port}/hook"), "secret_env": SECRET_ENV,
             "events": ["camera_down", "camera_up"]},
        ],
        "cameras": [{"id": "a", "main_url": fc.url("motion/main"), "sub_url": fc.url("motion/sub"),
                     "recording": {"mode": "off"}, "notify": {"down_after_s": 3}}],
    });
    let env = [(SECRET_ENV, SECRET)];
    let mut nvr = Nvr::start(config, &env);
    nvr.wait_camera("a", Duration::from_secs(30), "SUB up", |c| {
        c["worker"]["sub"]["state"] == "up"
    });
    let events = |got: &Mutex<Vec<Delivery>>, since: usize| -> Vec<Delivery> {
        let got = got.lock().unwrap();
        assert!(
            got.iter().all(|d| d.signature_ok),
            "a bad signature: {got:?}"
        );
        got.iter().skip(since).cloned().collect()
    };
    // A slow first connect may itself have been an outage: settle before counting.
    std::thread::sleep(Duration::from_secs(1));
    let since = got.lock().unwrap().len();

    let stopped = std::time::Instant::now();
    fc.command("stop").unwrap();
    // Well within the 30 s default, so the camera's own delay is what counts.
    let down = wait_until(Duration::from_secs(20), "camera_down", || {
        events(&got, since)
            .into_iter()
            .find(|d| d.event == "camera_down")
    });
    // Not before the delay (measured from the stop, which is at or before the stream's loss).
    assert!(
        stopped.elapsed() >= Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(down.body["camera"], "a", "{:?}", down.body);
    assert!(
        down.body["data"]["problem"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{:?}",
        down.body
    );
    assert!(
        down.body["data"]["since"].as_i64().unwrap() <= down.body["time"].as_i64().unwrap() - 3000
    );

    fc.command("start").unwrap();
    let up = wait_until(Duration::from_secs(60), "camera_up", || {
        events(&got, since)
            .into_iter()
            .find(|d| d.event == "camera_up")
    });
    assert_eq!(up.body["camera"], "a", "{:?}", up.body);
    assert!(
        up.body["data"]["down_s"].as_f64().unwrap() >= 3.0,
        "{:?}",
        up.body
    );
    nvr.wait_camera("a", Duration::from_secs(30), "SUB up again", |c| {
        c["worker"]["sub"]["state"] == "up"
    });
    let kinds: Vec<String> = events(&got, since).into_iter().map(|d| d.event).collect();
    assert_eq!(kinds, ["camera_down", "camera_up"], "one of each");
    nvr.terminate().unwrap();
    assert!(!nvr.log_text().contains(SECRET), "the secret is in the log");
}
