//! The process model, end to end: real supervisor, real workers, real signals.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{alive, bin, config, http, signal, wait_until, Nvr, TempDir};
use nvr_tests::status;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

const HEARTBEAT_S: f64 = 0.3;

/// The heartbeat of the sibling-kill test: a gap of 2.5 intervals still means a missed heartbeat,
/// and at 0.5 s that leaves 750 ms of scheduling delay (0.3 s left 450 ms, which three decoding
/// workers beside Chromium and a benchmark on two cores can take without any heartbeat missed).
const SIBLING_HEARTBEAT_S: f64 = 0.5;

#[test]
fn killed_worker_comes_back_and_the_others_never_miss_a_heartbeat() {
    // Real streams, so /ready can be 200: every camera's worker running and its stream up.
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cfg = config(&["a", "b", "c"], SIBLING_HEARTBEAT_S);
    for cam in cfg["cameras"].as_array_mut().unwrap() {
        cam["main_url"] = fc.url("motion/main").into();
        cam["sub_url"] = fc.url("motion/sub").into();
    }
    let nvr = Nvr::start(cfg, &[]);
    let pids = nvr.wait_running(&["a", "b", "c"]);
    wait_until(Duration::from_secs(20), "/ready 200", || {
        Some(nvr.get_json("/ready").0).filter(|c| *c == 200)
    });

    signal(pids[0], "KILL");
    // /ready flips to 503 while `a` is down (the first restart waits about 1 s) ...
    let (_, body) = wait_until(Duration::from_secs(5), "/ready to report a", || {
        Some(nvr.get_json("/ready")).filter(|(code, _)| *code == 503)
    });
    assert!(body["problems"]["a"].is_string(), "{body}");
    assert!(body["problems"].get("b").is_none(), "{body}");
    // Liveness is the supervisor's alone: a camera down does not make it fail.
    assert_eq!(
        nvr.get_json("/health"),
        (200, serde_json::json!({"status": "ok"}))
    );
    // ... and back to 200 once it runs again, with a new pid.
    let a = nvr.wait_camera("a", Duration::from_secs(5), "back with a new pid", |c| {
        c["state"] == "running" && c["pid"].as_u64() != Some(u64::from(pids[0]))
    });
    assert_eq!(a["restarts"], 1);
    assert_eq!(a["last_restart"]["reason"], "signal", "{a}");
    assert_eq!(a["last_restart"]["detail"], "killed by signal 9");
    wait_until(Duration::from_secs(20), "/ready 200 again", || {
        Some(nvr.get_json("/ready").0).filter(|c| *c == 200)
    });

    for (id, pid) in [("b", pids[1]), ("c", pids[2])] {
        let c = nvr.camera(id);
        assert_eq!(status::pid(&c), Some(pid), "{id} was restarted");
        assert_eq!(c["restarts"], 0);
        let gap_ms = c["max_heartbeat_gap_ms"].as_f64().unwrap();
        assert!(
            gap_ms < SIBLING_HEARTBEAT_S * 1000.0 * 2.5,
            "{id} missed a heartbeat: gap {gap_ms} ms"
        );
        // Send-to-receive over a local pipe: more than nothing, and far less than an interval
        // (a stalled link would show as a missed heartbeat first).
        let latency = &c["heartbeat_latency"];
        let (p50, p99) = (
            latency["p50_ms"].as_f64().unwrap(),
            latency["p99_ms"].as_f64().unwrap(),
        );
        assert!(
            p50 > 0.0 && p50 <= p99 && p99 < SIBLING_HEARTBEAT_S * 1000.0,
            "{id}: heartbeat latency {latency}"
        );
    }
    status_figures_are_plausible(&nvr, &["a", "b", "c"]);
    metrics_match_status(&nvr);
}

/// `/status` uptime, CPU and RSS against what `/proc` says of the same processes.
fn status_figures_are_plausible(nvr: &Nvr, ids: &[&str]) {
    // A decoding worker uses some CPU; its first sample is 0 % (no interval yet).
    for id in ids {
        nvr.wait_camera(id, Duration::from_secs(5), "CPU sampled", |c| {
            c["cpu_percent"].as_f64() > Some(0.0)
        });
    }
    // Two reads 2 s apart: a camera's entry is republished at least once a second, so each
    // uptime may be up to a second old.
    let s1 = nvr.status();
    std::thread::sleep(Duration::from_secs(2));
    let s2 = nvr.status();
    let sup = |s: &Value| s["supervisor"]["uptime_s"].as_f64().unwrap();
    let (u1, u2) = (sup(&s1), sup(&s2));
    // Started this test less than two minutes ago; the clock moves with the wall clock.
    assert!(u1 > 0.0 && u1 < 120.0, "supervisor uptime {u1}");
    assert!((1.0..4.0).contains(&(u2 - u1)), "uptime {u1} then {u2}");
    for id in ids {
        let c = status::camera_in(&s2, id).unwrap();
        let up = c["uptime_s"].as_f64().unwrap();
        assert!(up > 0.0 && up <= u2, "{id}: uptime {up}, supervisor's {u2}");
        let c1 = status::camera_in(&s1, id).unwrap();
        let grew = up - c1["uptime_s"].as_f64().unwrap();
        assert!(
            (1.0..4.0).contains(&grew),
            "{id}: uptime grew {grew} s in 2 s"
        );
        // No more CPU than the machine has (more than nothing was awaited above).
        let cpu = c["cpu_percent"].as_f64().unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!((0.0..=100.0 * cores).contains(&cpu), "{id}: cpu {cpu} %");
        // RSS is what /proc says (VmRSS, read now; sampled up to a second ago).
        let pid = status::pid(&c).unwrap();
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let vm_rss_mb = proc_status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap()
            * 1024.0
            / 1e6;
        let rss = c["rss_mb"].as_f64().unwrap();
        assert!(
            rss > 5.0 && (rss / vm_rss_mb - 1.0).abs() < 0.25,
            "{id}: /status RSS {rss} MB, /proc VmRSS {vm_rss_mb:.1} MB"
        );
    }
}

/// `/metrics` (Prometheus text) by (series, camera label or "").
fn metrics(nvr: &Nvr) -> BTreeMap<(String, String), f64> {
    let (code, text) = http(nvr.port, "GET", "/metrics").unwrap();
    assert_eq!(code, 200, "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, camera) = match series.split_once("{camera=\"") {
                Some((name, rest)) => (name, rest.trim_end_matches("\"}")),
                None => (series, ""),
            };
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{l}"));
            // `{camera="a",stream="sub"}` is keyed as ("name:sub", "a").
            let (name, camera) = match camera.split_once("\",stream=\"") {
                Some((camera, stream)) => (format!("{name}:{stream}"), camera),
                None => (name.to_string(), camera),
            };
            ((name, camera.to_string()), value)
        })
        .collect()
}

fn nvr_proto_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every `/metrics` series exists with the value `/status` shows: read between two `/status`
/// reads, a counter lies between them, a state equals them (when they agree), and a gauge lies
/// within 25 % of their range.
fn metrics_match_status(nvr: &Nvr) {
    let before = nvr.status();
    let m = metrics(nvr);
    let after = nvr.status();
    let get = |name: &str, camera: &str| {
        *m.get(&(name.to_string(), camera.to_string()))
            .unwrap_or_else(|| panic!("no {name}{{camera={camera:?}}} in /metrics: {m:?}"))
    };
    let within = |what: &str, got: f64, a: f64, b: f64, slack: f64| {
        let (lo, hi) = (a.min(b), a.max(b));
        assert!(
            got >= lo * (1.0 - slack) - 1e-9 && got <= hi * (1.0 + slack) + 1e-9,
            "{what}: /metrics {got}, /status {a} then {b}"
        );
    };
    let started = get("process_start_time_seconds", "");
    assert!(started > 1.7e9, "process_start_time_seconds {started}");
    let cams = before["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 3);
    for c1 in cams {
        let id = c1["id"].as_str().unwrap();
        let c2 = status::camera_in(&after, id).unwrap();
        let f = |c: &Value, path: &[&str]| {
            path.iter()
                .fold(c, |v, k| &v[*k])
                .as_f64()
                .unwrap_or_else(|| panic!("{id}: no {path:?} in {c}"))
        };
        let flag = |c: &Value, path: &[&str], want: Value| {
            f64::from(u8::from(*path.iter().fold(c, |v, k| &v[*k]) == want))
        };
        for (name, a, b) in [
            (
                "nvr_worker_up",
                flag(c1, &["state"], json!("running")),
                flag(&c2, &["state"], json!("running")),
            ),
            (
                "nvr_stream_up:sub",
                flag(c1, &["worker", "sub", "state"], json!("up")),
                flag(&c2, &["worker", "sub", "state"], json!("up")),
            ),
            (
                "nvr_stream_up:main",
                flag(c1, &["worker", "main", "state"], json!("up")),
                flag(&c2, &["worker", "main", "state"], json!("up")),
            ),
            (
                "nvr_motion_active",
                flag(c1, &["motion", "active"], json!(true)),
                flag(&c2, &["motion", "active"], json!(true)),
            ),
            (
                "nvr_recording_active",
                flag(c1, &["worker", "recording", "state"], json!("recording")),
                flag(&c2, &["worker", "recording", "state"], json!("recording")),
            ),
        ] {
            let got = get(name, id);
            if a == b {
                assert_eq!(got, a, "{id}: {name}");
            } else {
                assert!(got == 0.0 || got == 1.0, "{id}: {name} = {got}");
            }
        }
        // The camera that was killed shows its restart; the others none.
        let restarts = get("nvr_worker_restarts_total", id);
        assert_eq!(restarts, f(c1, &["restarts"]), "{id}: restarts");
        assert_eq!(restarts, if id == "a" { 1.0 } else { 0.0 });
        within(
            &format!("{id} finished recordings"),
            get("nvr_recordings_finished_total", id),
            f(c1, &["recordings", "finished"]),
            f(&c2, &["recordings", "finished"]),
            0.0,
        );
        for (name, path, scale, slack) in [
            (
                "nvr_worker_resident_memory_bytes",
                &["rss_mb"][..],
                1e6,
                0.25,
            ),
            (
                "nvr_stream_fps:sub",
                &["worker", "sub", "fps"][..],
                1.0,
                0.25,
            ),
            (
                "nvr_stream_fps:main",
                &["worker", "main", "fps"][..],
                1.0,
                0.25,
            ),
        ] {
            within(
                &format!("{id} {name}"),
                get(name, id),
                f(c1, path) * scale,
                f(&c2, path) * scale,
                slack,
            );
        }
        // These move too fast to compare; they must be there, in their range.
        let cpu = get("nvr_worker_cpu_seconds_total", id);
        let up_s = get("process_start_time_seconds", "");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ran_s = nvr_proto_now_s() - up_s + 2.0;
        assert!(
            cpu > 0.0 && cpu <= ran_s * cores,
            "{id}: {cpu} CPU seconds in {ran_s} s"
        );
        let count = get("nvr_heartbeat_latency_seconds_count", id);
        assert!(count > 0.0, "{id}: no heartbeat latency observed");
        let age = get("nvr_heartbeat_age_seconds", id);
        assert!(
            (0.0..SIBLING_HEARTBEAT_S * 3.0).contains(&age),
            "{id}: heartbeat age {age} s"
        );
    }
}

#[test]
fn hung_worker_is_killed_after_three_missed_heartbeats() {
    let nvr = Nvr::start(config(&["h", "ok"], HEARTBEAT_S), &[]);
    let pids = nvr.wait_running(&["h", "ok"]);
    signal(pids[0], "STOP"); // a real hang: no error, only silence
    let h = nvr.wait_camera(
        "h",
        Duration::from_secs(10),
        "restarted after the hang",
        |c| c["state"] == "running" && c["restarts"] == 1,
    );
    assert_eq!(h["last_restart"]["reason"], "hung", "{h}");
    assert!(h["last_restart"]["detail"]
        .as_str()
        .unwrap()
        .contains("no heartbeat"));
    assert!(!alive(pids[0]), "the hung worker was not killed");
    assert_eq!(status::pid(&nvr.camera("ok")), Some(pids[1]));
}

#[test]
fn hang_fault_switch_gets_the_same_treatment() {
    let nvr = Nvr::start(config(&["h"], HEARTBEAT_S), &[("NVR_TEST_FAULT", "h:hang")]);
    let h = nvr.wait_camera("h", Duration::from_secs(10), "a restart", |c| {
        c["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(h["last_restart"]["reason"], "hung", "{h}");
}

#[test]
fn worker_over_its_memory_limit_is_restarted_with_reason_memory() {
    let mut cfg = config(&["hog", "ok"], HEARTBEAT_S);
    cfg["defaults"] = json!({"limits": {"max_rss_mb": 60}});
    let nvr = Nvr::start(cfg, &[("NVR_TEST_FAULT", "hog:alloc=150")]);
    let hog = nvr.wait_camera("hog", Duration::from_secs(20), "a restart", |c| {
        c["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(hog["last_restart"]["reason"], "memory", "{hog}");
    assert!(hog["last_restart"]["detail"]
        .as_str()
        .unwrap()
        .contains("over the limit of 60 MB"));
    let ok = nvr.camera("ok");
    assert_eq!(ok["restarts"], 0);
    assert_eq!(ok["state"], "running");
}

#[test]
fn worker_over_its_cpu_limit_for_the_grace_time_is_restarted_with_reason_cpu() {
    // `spin` burns one core; the limit is far below that and far above an idle worker's use.
    let mut cfg = config(&["spin", "ok"], HEARTBEAT_S);
    cfg["defaults"] = json!({"limits": {"max_cpu_percent": 30, "cpu_grace_s": 1.5}});
    let nvr = Nvr::start(cfg, &[("NVR_TEST_FAULT", "spin:spin")]);
    let pid = nvr.wait_running(&["spin"])[0];
    let restarts = nvr.camera("spin")["restarts"].as_u64().unwrap();
    let spin = nvr.wait_camera("spin", Duration::from_secs(20), "a restart", |c| {
        c["restarts"].as_u64() > Some(restarts)
    });
    let restart = &spin["last_restart"];
    assert_eq!(restart["reason"], "cpu", "{spin}");
    let detail = restart["detail"].as_str().unwrap();
    assert!(detail.contains("over the limit of 30 %"), "{detail}");
    // Over the limit for the grace time, not at the first sample over it.
    let over_s: f64 = detail
        .split(" for ")
        .nth(1)
        .and_then(|d| d.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no duration in {detail:?}"));
    assert!(over_s >= 1.5, "{detail}");
    assert!(!alive(pid), "the spinning worker was not killed");
    let ok = nvr.camera("ok");
    assert_eq!(
        (ok["state"].as_str(), ok["restarts"].as_u64()),
        (Some("running"), Some(0)),
        "{ok}"
    );
}

#[test]
fn crash_loop_backs_off_exponentially_then_shows_failed() {
    let mut cfg = config(&["crashy", "ok"], HEARTBEAT_S);
    cfg["restart"] = json!({"initial_s": 0.4, "max_s": 10, "intensity": 3, "period_s": 60});
    let nvr = Nvr::start(cfg, &[("NVR_TEST_FAULT", "crashy:crash")]);
    // Record when each restart was decided.
    let mut times: Vec<u64> = Vec::new();
    let failed = wait_until(Duration::from_secs(20), "crashy to show failed", || {
        let c = nvr.camera("crashy");
        if let Some(at) = c["last_restart"]["at_unix_ms"].as_u64() {
            if times.last() != Some(&at) {
                times.push(at);
            }
        }
        (c["state"] == "failed").then_some(c)
    });
    assert_eq!(failed["last_restart"]["reason"], "exit", "{failed}");
    assert!(failed["last_restart"]["detail"]
        .as_str()
        .unwrap()
        .contains("code 101 (panic)"));
    assert!(
        failed["stderr_tail"]
            .to_string()
            .contains("test fault: crash"),
        "{failed}"
    );
    // intensity 3: the 4th exit within the period marks it failed.
    assert_eq!(times.len(), 4, "restart times {times:?}");
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .collect();
    // Each gap is the backoff delay (0.4, 0.8, 1.6 s, ±10 % jitter) plus the time to start and crash.
    for (gap, delay) in gaps.iter().zip([0.4, 0.8, 1.6]) {
        assert!(
            *gap >= delay * 0.9 && *gap < delay * 1.1 + 1.0,
            "gaps {gaps:?} do not follow 0.4, 0.8, 1.6 s"
        );
    }
    // Past the limit it is still retried, at the longest delay.
    assert!(
        failed["next_restart_in_s"].as_f64().unwrap() > 5.0,
        "{failed}"
    );
    let ok = nvr.camera("ok");
    assert_eq!(
        (ok["state"].as_str(), ok["restarts"].as_u64()),
        (Some("running"), Some(0))
    );
    let (code, health) = nvr.get_json("/ready");
    assert_eq!(code, 503);
    assert!(
        health["problems"]["crashy"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{health}"
    );
}

#[test]
fn sigterm_and_sigint_each_stop_every_worker_and_exit_zero() {
    let mut nvr = Nvr::start(config(&["a", "b"], HEARTBEAT_S), &[]);
    for sig in ["TERM", "INT"] {
        let pids = nvr.wait_running(&["a", "b"]);
        let logged = nvr.log_text().len();
        let status = match sig {
            "TERM" => nvr.terminate(),
            _ => nvr.interrupt(), // Ctrl-C
        }
        .unwrap();
        let log = nvr.log_text()[logged..].to_string();
        assert_eq!(status.code(), Some(0), "SIG{sig}: {log}");
        for pid in pids {
            assert!(
                !alive(pid),
                "SIG{sig}: worker {pid} outlived the supervisor"
            );
        }
        // Each worker obeyed Shutdown: none had to be killed.
        assert!(log.contains("all workers stopped"), "SIG{sig}: {log}");
        assert!(!log.contains("killing it"), "SIG{sig}: {log}");
        if sig == "TERM" {
            nvr.restart(&[]);
        }
    }
}

#[test]
fn workers_exit_by_themselves_when_the_supervisor_dies() {
    let mut nvr = Nvr::start(config(&["a", "b"], HEARTBEAT_S), &[]);
    let pids = nvr.wait_running(&["a", "b"]);
    nvr.kill();
    wait_until(Duration::from_secs(5), "orphaned workers to exit", || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
}

#[test]
fn passwords_never_appear_in_status_metrics_or_logs() {
    let mut cfg = config(&["a", "b"], HEARTBEAT_S);
    cfg["cameras"][0]["password"] = "pw-in-file-7731".into();
    cfg["cameras"][0]["username"] = "admin".into();
    cfg["cameras"][1]["password_env"] = "CAM_B_PASSWORD".into();
    let mut nvr = Nvr::start(cfg, &[("CAM_B_PASSWORD", "pw-from-env-4410")]);
    nvr.wait_running(&["a", "b"]);
    let mut seen = String::new();
    for path in ["/status", "/metrics", "/health", "/ready"] {
        seen.push_str(&http(nvr.port, "GET", path).unwrap().1);
    }
    nvr.terminate().unwrap();
    seen.push_str(&nvr.log_text());
    for secret in ["pw-in-file-7731", "pw-from-env-4410"] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    assert!(seen.contains("rtsp://127.0.0.1:9/a"));
}

#[test]
fn reload_adds_removes_and_restarts_only_what_changed() {
    let nvr = Nvr::start(config(&["keep", "change", "drop"], HEARTBEAT_S), &[]);
    let pids = nvr.wait_running(&["keep", "change", "drop"]);
    let mut cfg = config(&["keep", "change", "new"], HEARTBEAT_S);
    cfg["output_dir"] = nvr.dir.path().join("output").display().to_string().into();
    // A new transport needs a new worker; new motion settings and a new name do not.
    cfg["cameras"][1]["name"] = "Changed".into();
    cfg["cameras"][1]["transport"] = "udp".into();
    cfg["cameras"][0]["name"] = "Kept".into();
    cfg["cameras"][0]["motion"] = json!({"threshold": 12});
    std::fs::write(nvr.config_path(), cfg.to_string()).unwrap();

    let (code, body) = http(nvr.port, "POST", "/api/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["summary"]["added"], json!(["new"]));
    assert_eq!(summary["summary"]["removed"], json!(["drop"]));
    assert_eq!(summary["summary"]["changed"], json!(["change"]));
    assert_eq!(summary["summary"]["updated"], json!(["keep"]));

    nvr.wait_running(&["new"]);
    let changed = nvr.wait_camera("change", Duration::from_secs(10), "restarted", |c| {
        c["state"] == "running" && c["pid"].as_u64() != Some(u64::from(pids[1]))
    });
    assert_eq!(changed["name"], "Changed");
    assert_eq!(changed["last_restart"]["reason"], "config_changed");
    let keep = nvr.camera("keep");
    assert_eq!(
        status::pid(&keep),
        Some(pids[0]),
        "a camera updated in place was restarted"
    );
    assert_eq!(keep["name"], "Kept");
    wait_until(Duration::from_secs(10), "drop to disappear", || {
        let s = nvr.status();
        s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "drop")
            .then_some(())
    });
    assert!(!alive(pids[2]));

    // An invalid config is rejected and the running one stays.
    std::fs::write(nvr.config_path(), r#"{"cameras": [{"id": "x"}]}"#).unwrap();
    signal(nvr.pid(), "HUP");
    let s = wait_until(Duration::from_secs(5), "the rejection in /status", || {
        Some(nvr.status()).filter(|s| s["supervisor"]["last_reload_error"].is_string())
    });
    let err = s["supervisor"]["last_reload_error"].as_str().unwrap();
    assert!(err.contains("cameras[0].main_url: missing"), "{err}");
    assert_eq!(s["cameras"].as_array().unwrap().len(), 3);
    assert_eq!(status::pid(&nvr.camera("keep")), Some(pids[0]));
}

#[test]
fn manual_restart_via_the_api() {
    let nvr = Nvr::start(config(&["a"], HEARTBEAT_S), &[]);
    let pid = nvr.wait_running(&["a"])[0];
    assert_eq!(
        http(nvr.port, "POST", "/api/cameras/a/restart").unwrap().0,
        202
    );
    let a = nvr.wait_camera("a", Duration::from_secs(10), "a new pid", |c| {
        c["state"] == "running" && c["pid"].as_u64() != Some(u64::from(pid))
    });
    assert_eq!(a["last_restart"]["reason"], "manual");
    assert_eq!(
        http(nvr.port, "POST", "/api/cameras/nope/restart")
            .unwrap()
            .0,
        404
    );
}

#[test]
fn a_broken_config_starts_nothing_and_says_what_to_fix() {
    let dir = TempDir::new("badcfg");
    let path = dir.path().join("cameras.json");
    std::fs::write(
        &path,
        r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/1", "colour": 1}, {"id": "a", "main_url": "http://x"}]}"#,
    )
    .unwrap();
    let out = Command::new(bin("supervisor"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for want in [
        format!("{file}: cameras[0].colour: unknown field"),
        format!("{file}: cameras[1].main_url: \"http://x\" is not an rtsp:// URL"),
        format!("{file}: cameras[1].id: duplicate camera id \"a\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("nothing was started"));

    let check = Command::new(bin("supervisor"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let good = dir.path().join("good.json");
    std::fs::write(&good, config(&["a"], 1.0).to_string()).unwrap();
    let check = Command::new(bin("supervisor"))
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK: 1 camera(s)"));
}

#[test]
fn a_non_loopback_listen_address_is_refused() {
    let dir = TempDir::new("listen");
    let path = dir.path().join("cameras.json");
    std::fs::write(&path, config(&["a"], 1.0).to_string()).unwrap();
    let out = Command::new(bin("supervisor"))
        .args(["--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to serve the API on 0.0.0.0:0"));
}

#[test]
fn standalone_worker_prints_heartbeats_as_json_lines() {
    let dir = TempDir::new("standalone");
    let path = dir.path().join("cameras.json");
    std::fs::write(&path, config(&["solo"], 0.1).to_string()).unwrap();
    let mut child = Command::new(bin("worker"))
        .args(["solo", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(first["Heartbeat"]["heartbeats_sent"], 0);
    assert_eq!(second["Heartbeat"]["heartbeats_sent"], 1);

    let out = Command::new(bin("worker"))
        .args(["nope", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no camera with id \"nope\"; known ids: solo"));
}
