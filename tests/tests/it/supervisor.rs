//! The process model, end to end: real supervisor, real workers, real signals.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{alive, bin, config, http, signal, wait_until, Nvr, TempDir};
use nvr_tests::status;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

const HEARTBEAT_S: f64 = 0.3;

#[test]
fn killed_worker_comes_back_and_the_others_never_miss_a_heartbeat() {
    // Real streams, so /health can be 200: every camera's worker running and its stream up.
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cfg = config(&["a", "b", "c"], HEARTBEAT_S);
    for cam in cfg["cameras"].as_array_mut().unwrap() {
        cam["main_url"] = fc.url("motion/main").into();
        cam["sub_url"] = fc.url("motion/sub").into();
    }
    let nvr = Nvr::start(cfg, &[]);
    let pids = nvr.wait_running(&["a", "b", "c"]);
    wait_until(Duration::from_secs(20), "/health 200", || {
        Some(nvr.get_json("/health").0).filter(|c| *c == 200)
    });

    signal(pids[0], "KILL");
    // /health flips to 503 while `a` is down (the first restart waits about 1 s) ...
    let (_, body) = wait_until(Duration::from_secs(5), "/health to report a", || {
        Some(nvr.get_json("/health")).filter(|(code, _)| *code == 503)
    });
    assert!(body["problems"]["a"].is_string(), "{body}");
    assert!(body["problems"].get("b").is_none(), "{body}");
    // ... and back to 200 once it runs again, with a new pid.
    let a = nvr.wait_camera("a", Duration::from_secs(5), "back with a new pid", |c| {
        c["state"] == "running" && c["pid"].as_u64() != Some(u64::from(pids[0]))
    });
    assert_eq!(a["restarts"], 1);
    assert_eq!(a["last_restart"]["reason"], "signal", "{a}");
    assert_eq!(a["last_restart"]["detail"], "killed by signal 9");
    wait_until(Duration::from_secs(20), "/health 200 again", || {
        Some(nvr.get_json("/health").0).filter(|c| *c == 200)
    });

    for (id, pid) in [("b", pids[1]), ("c", pids[2])] {
        let c = nvr.camera(id);
        assert_eq!(status::pid(&c), Some(pid), "{id} was restarted");
        assert_eq!(c["restarts"], 0);
        let gap_ms = c["max_heartbeat_gap_ms"].as_f64().unwrap();
        assert!(
            gap_ms < HEARTBEAT_S * 1000.0 * 2.5,
            "{id} missed a heartbeat: gap {gap_ms} ms"
        );
        assert!(c["heartbeat_latency"]["p99_ms"].as_f64().unwrap() >= 0.0);
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
    let (code, health) = nvr.get_json("/health");
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
fn sigterm_stops_every_worker_and_exits_zero() {
    let mut nvr = Nvr::start(config(&["a", "b"], HEARTBEAT_S), &[]);
    let pids = nvr.wait_running(&["a", "b"]);
    let status = nvr.terminate().unwrap();
    assert_eq!(status.code(), Some(0), "{}", nvr.log_text());
    for pid in pids {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
    assert!(nvr.log_text().contains("all workers stopped"));
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
    for path in ["/status", "/metrics", "/health"] {
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
