//! Notification benchmark: the fake camera's send of an onset's first moving frame (ground truth)
//! → the MQTT `motion` ON and the `events` `new` at a subscriber, p50/p99 over many onsets; and
//! the supervisor's CPU at 16 cameras with notifications off and with MQTT and a webhook on,
//! alternating in one run.
//!
//! `cargo run --release -p nvr-tests --bin bench_notify -- [--latency-cameras N] [--seconds S]
//! [--cpu-cameras N] [--window S] [--repeats N]` (build the binaries first: `cargo build --release
//! --workspace --all-targets`; needs `mosquitto`, which `scripts/setup.sh` installs). Prints
//! Markdown tables for BENCHMARKS.md.
//!
//! Latency: N cameras (4), each on its own fake camera server started at a different position of
//! the 20 s loop, so an onset comes every 20/N s; every onset seen after the cameras are up counts.
//! CPU: one fake camera server, 16 cameras (recording off, detection on, so every camera makes a
//! motion event per loop, all at once: the burst case); for each of `--repeats` rounds a
//! supervisor without notifications and one with MQTT (Home Assistant discovery on, a subscriber
//! draining `nvr/#`) and a webhook for every event (a receiver answering 200) run one after the
//! other, each measured over `--window` s once its cameras are up.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::mqtt::{Mosquitto, Subscriber};
use nvr_tests::nvr::{free_port, Nvr};
use nvr_tests::procstat::{clk_tck, cpu_model, cpu_ticks, machine_ticks, median, percentile};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "nvr";
const PASSWORD: &str = "bench-mqtt-pw-20";
const PASSWORD_ENV: &str = "NVR_BENCH_MQTT_PASSWORD";
const SECRET_ENV: &str = "NVR_BENCH_WEBHOOK_SECRET";
const LOOP_S: f64 = 20.0;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wait_sub_up(nvr: &Nvr, id: &str) {
    nvr.wait_camera(id, Duration::from_secs(90), "SUB up", |c| {
        c["worker"]["sub"]["state"] == "up"
    });
}

fn mqtt_config(broker: &Mosquitto) -> Value {
    json!({"host": "127.0.0.1", "port": broker.port, "username": USER,
           "password_env": PASSWORD_ENV, "home_assistant": true})
}

fn main() {
    let n_latency = arg("--latency-cameras", 4.0) as usize;
    let seconds = arg("--seconds", 100.0);
    let n_cpu = arg("--cpu-cameras", 16.0) as usize;
    let window = arg("--window", 30.0);
    let repeats = arg("--repeats", 2.0) as usize;
    println!(
        "CPU: {} ({} cores); load average at the start: {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
    if n_latency > 0 && seconds > 0.0 {
        latency(n_latency, seconds);
    }
    if n_cpu > 0 && repeats > 0 {
        cpu_cost(n_cpu, window, repeats);
    }
}

/// Onset → MQTT message at a subscriber.
fn latency(n: usize, seconds: f64) {
    let broker = Mosquitto::start(USER, PASSWORD).unwrap();
    let sub = Subscriber::start(broker.port, USER, PASSWORD, "nvr/#");
    let cams: Vec<FakeCam> = (0..n)
        .map(|i| {
            FakeCam::start(FakeCamOpts {
                start_pos: Some(Duration::from_secs_f64(LOOP_S * i as f64 / n as f64)),
                ..FakeCamOpts::scenes(&["motion"])
            })
            .unwrap()
        })
        .collect();
    let cameras: Vec<Value> = cams
        .iter()
        .enumerate()
        .map(|(i, fc)| {
            json!({"id": format!("l{i}"), "main_url": fc.url("motion/main"),
                   "sub_url": fc.url("motion/sub"), "recording": {"mode": "off"},
                   "motion": {"post_motion_s": 1}})
        })
        .collect();
    let env = [(PASSWORD_ENV, PASSWORD)];
    let nvr = Nvr::start(
        json!({"mqtt": mqtt_config(&broker), "cameras": cameras}),
        &env,
    );
    for i in 0..n {
        wait_sub_up(&nvr, &format!("l{i}"));
    }
    // Onsets from now on: the detector has had its frames of background.
    std::thread::sleep(Duration::from_secs(2));
    let from: Vec<usize> = cams.iter().map(FakeCam::n_events).collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    // The last onsets' messages.
    std::thread::sleep(Duration::from_secs(3));
    let messages = sub.messages();
    let (mut on_ms, mut new_ms, mut missed) = (Vec::new(), Vec::new(), 0);
    for (i, fc) in cams.iter().enumerate() {
        let motion = format!("nvr/l{i}/motion");
        let camera = format!("l{i}");
        for e in fc.events().iter().skip(from[i]) {
            if e["event"] != "motion_start" {
                continue;
            }
            let sent = fc.instant_of(e["mono_ns"].as_u64().unwrap());
            // A message up to 0.5 s before the send is this onset's (the stamp is mapped to our
            // clock to within the pipe latency of the server's `ready` line); a signed latency.
            let after = |at: Instant| at + Duration::from_millis(500) >= sent;
            let signed = |at: Instant| {
                if at >= sent {
                    (at - sent).as_secs_f64() * 1e3
                } else {
                    -(sent - at).as_secs_f64() * 1e3
                }
            };
            let on = messages
                .iter()
                .find(|m| m.topic == motion && m.payload == b"ON" && after(m.at));
            let new = messages.iter().find(|m| {
                m.topic == "nvr/events" && after(m.at) && {
                    let v: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                    v["camera"] == camera.as_str() && v["type"] == "new"
                }
            });
            match (on, new) {
                (Some(on), Some(new)) if signed(on.at) < 5_000.0 => {
                    on_ms.push(signed(on.at));
                    new_ms.push(signed(new.at));
                }
                _ => missed += 1,
            }
        }
    }
    drop(nvr);
    println!(
        "### Onset (fake camera send) → MQTT message at a subscriber ({} onsets over {seconds:.0} s, {n} cameras; {missed} onsets without a message)",
        on_ms.len()
    );
    println!();
    println!("| message | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("`nvr/<camera>/motion` ON", &on_ms),
        ("`nvr/events` `new` (after the index write)", &new_ms),
    ] {
        let max = v.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "| {name} | {:.1} | {:.1} | {max:.1} |",
            percentile(v, 50.0),
            percentile(v, 99.0)
        );
    }
    println!();
}

/// A webhook receiver that answers 200 to every POST and counts them.
fn receiver(
    port: u16,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    })
}

/// The supervisor's CPU at `n` cameras, notifications off and on.
fn cpu_cost(n: usize, window: f64, repeats: usize) {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let broker = Mosquitto::start(USER, PASSWORD).unwrap();
    let sub = Subscriber::start(broker.port, USER, PASSWORD, "nvr/#");
    let port = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let posts = Arc::new(AtomicU64::new(0));
    let receiver = receiver(port, Arc::clone(&stop), Arc::clone(&posts));
    let tck = clk_tck();
    let cameras: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("c{i}"), "main_url": fc.url("motion/main"),
                   "sub_url": fc.url("motion/sub"), "recording": {"mode": "off"},
                   "motion": {"post_motion_s": 1}})
        })
        .collect();
    let env = [
        (PASSWORD_ENV, PASSWORD),
        (SECRET_ENV, "bench-webhook-secret"),
    ];
    // (supervisor CPU %, machine busy %, MQTT messages/s, webhook POSTs/s) per window.
    let mut off: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut on = off.clone();
    for _ in 0..repeats {
        for notify in [false, true] {
            let mut config = json!({"cameras": cameras});
            if notify {
                config["mqtt"] = mqtt_config(&broker);
                config["webhooks"] = json!([{"url": format!("http://127.0.0.1:{port}/hook"), "secret_env": SECRET_ENV}]);
            }
            let nvr = Nvr::start(config, &env);
            for i in 0..n {
                wait_sub_up(&nvr, &format!("c{i}"));
            }
            std::thread::sleep(Duration::from_secs(5));
            let (m0, p0) = (sub.len(), posts.load(Ordering::Relaxed));
            let (busy0, total0) = machine_ticks();
            let before = cpu_ticks(nvr.pid());
            let t = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(window));
            let secs = t.elapsed().as_secs_f64();
            let cpu = (cpu_ticks(nvr.pid()) - before) as f64 / tck / secs * 100.0;
            let (busy1, total1) = machine_ticks();
            let machine = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * 100.0;
            let messages = (sub.len() - m0) as f64 / secs;
            let hooks = (posts.load(Ordering::Relaxed) - p0) as f64 / secs;
            let row = (cpu, machine, messages, hooks);
            eprintln!("notify {notify}: {row:?}");
            if notify { &mut on } else { &mut off }.push(row);
            drop(nvr);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    let col = |v: &[(f64, f64, f64, f64)], f: fn(&(f64, f64, f64, f64)) -> f64| {
        median(&v.iter().map(f).collect::<Vec<_>>())
    };
    let spread = |v: &[(f64, f64, f64, f64)]| {
        let c: Vec<f64> = v.iter().map(|r| r.0).collect();
        let (lo, hi) = c
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{:.2} ({lo:.2}–{hi:.2})", median(&c))
    };
    println!(
        "### Supervisor CPU at {n} cameras, notifications off vs MQTT + a webhook on ({repeats} windows of {window:.0} s each, alternating; median (min–max))"
    );
    println!();
    println!("| notifications | supervisor CPU % of one core | machine busy % | MQTT messages/s | webhook POSTs/s |");
    println!("|---|---|---|---|---|");
    for (name, v) in [("off", &off), ("MQTT + webhook", &on)] {
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.2} |",
            spread(v),
            col(v, |r| r.1),
            col(v, |r| r.2),
            col(v, |r| r.3)
        );
    }
    let (a, b) = (col(&on, |r| r.0), col(&off, |r| r.0));
    println!();
    println!(
        "Ratio on/off: {:.2}; notifications add {:.2} % of one core ({:.3} % per camera).",
        a / b.max(1e-9),
        a - b,
        (a - b) / n as f64
    );
}
