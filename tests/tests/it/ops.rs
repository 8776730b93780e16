//! Running it as operators expect: the command lines (`--help`, `--version`, `NVR_*` variables,
//! subcommands, exit codes), the log lines (flat JSON with `camera_id`), a reload that names the
//! settings waiting for a restart, systemd's notify protocol with its watchdog, and requests
//! through a proxy.

use nvr_tests::fakecam::{workspace_root, FakeCam, FakeCamOpts};
use nvr_tests::nvr::{bin, camera_config, config, free_port, request, Nvr, TempDir};
use nvr_tests::status;
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn both_binaries_answer_help_and_version_and_read_every_flag_from_the_environment() {
    for (name, vars) in [
        (
            "supervisor",
            &[
                "NVR_CONFIG",
                "NVR_LISTEN",
                "NVR_WORKER_BIN",
                "NVR_LOG_LEVEL",
                "NVR_LOG_FORMAT",
            ][..],
        ),
        (
            "worker",
            &["NVR_CONFIG", "NVR_LOG_LEVEL", "NVR_LOG_FORMAT"][..],
        ),
    ] {
        let help = run(Command::new(bin(name)).arg("--help"));
        assert_eq!(help.status.code(), Some(0), "{name} --help");
        let out = text(&help.stdout);
        assert!(out.contains("Usage:"), "{name} --help:\n{out}");
        for var in vars {
            assert!(
                out.contains(&format!("[env: {var}=")),
                "{name} --help does not name {var}:\n{out}"
            );
        }
        let version = run(Command::new(bin(name)).arg("--version"));
        assert_eq!(version.status.code(), Some(0));
        let v = text(&version.stdout);
        let commit = v
            .trim()
            .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name} --version: {v:?}"));
        assert!(
            commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name} --version names no commit: {v:?}"
        );
        let bad = run(Command::new(bin(name)).arg("--no-such-flag"));
        assert_eq!(bad.status.code(), Some(2), "{name} --no-such-flag");
    }
    let help = text(&run(Command::new(bin("supervisor")).arg("--help")).stdout);
    for word in ["check-config", "reindex", "hash-password", "Exit codes:"] {
        assert!(help.contains(word), "supervisor --help lacks {word}");
    }

    // The config comes from NVR_CONFIG, for the subcommands and their old spellings alike.
    let dir = TempDir::new("cli");
    let path = dir.path().join("env.json");
    let mut cfg = config(&["envcam"], 1.0);
    cfg["output_dir"] = dir.path().join("out").display().to_string().into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    for args in [&["check-config"][..], &["--check-config"][..]] {
        let out = run(Command::new(bin("supervisor"))
            .args(args)
            .env("NVR_CONFIG", &path));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let said = text(&out.stdout);
        assert!(
            said.contains(&format!("{}: OK: 1 camera(s)", path.display())),
            "{args:?}: {said}"
        );
    }
    for args in [&["reindex"][..], &["--reindex"][..]] {
        let out = run(Command::new(bin("supervisor"))
            .args(args)
            .env("NVR_CONFIG", &path));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("index rebuilt: 0 recording(s)"));
    }
    // A worker run alone reads NVR_CONFIG too: a camera id that is not in it is a bad config.
    let out = run(Command::new(bin("worker"))
        .arg("nosuchcam")
        .env("NVR_CONFIG", &path));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("known ids: envcam"),
        "{}",
        text(&out.stderr)
    );
}

/// The last line of a failed start: JSON, naming the exit code and the error.
fn failure_line(stderr: &[u8]) -> Value {
    let t = text(stderr);
    let last = t.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: not JSON: {last:?}\n{t}"))
}

#[test]
fn each_kind_of_failure_has_its_own_exit_code() {
    let dir = TempDir::new("exits");
    let write = |name: &str, output_dir: &std::path::Path| {
        let mut cfg = config(&["x"], 1.0);
        cfg["output_dir"] = output_dir.display().to_string().into();
        let p = dir.path().join(name);
        std::fs::write(&p, cfg.to_string()).unwrap();
        p
    };
    let good = write("good.json", &dir.path().join("out"));
    let start = |config: &std::path::Path, listen: &str, extra: &[&str]| {
        run(Command::new(bin("supervisor"))
            .arg("--config")
            .arg(config)
            .args(["--listen", listen])
            .args(extra))
    };

    // 3: the API's address is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = start(&good, &addr, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let line = failure_line(&out.stderr);
    assert_eq!(line["exit_code"], 3);
    assert!(line["error"].as_str().unwrap().contains("cannot listen on"));
    drop(taken);

    // 4: the output directory cannot be made (a file is in its way), or the index cannot be
    // opened (a directory where its file should be).
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let in_file = write("in-file.json", &blocker.join("out"));
    let free = format!("127.0.0.1:{}", free_port());
    let out = start(&in_file, &free, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(failure_line(&out.stderr)["error"]
        .as_str()
        .unwrap()
        .contains("cannot create the output directory"));
    // (A corrupt index is moved aside and rebuilt; one that cannot be created at all is fatal.)
    let bad_index = write("bad-index.json", std::path::Path::new("/proc"));
    let out = start(&bad_index, &free, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(failure_line(&out.stderr)["error"]
        .as_str()
        .unwrap()
        .contains("cannot open the recordings index"));
    let out = run(Command::new(bin("supervisor"))
        .args(["reindex", "--config"])
        .arg(&in_file));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    // 2: a bad config, a bad log filter, a missing worker executable, a bad flag value.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"cameras\": [{}]}").unwrap();
    assert_eq!(start(&broken, &free, &[]).status.code(), Some(2));
    let out = start(&good, &free, &["--log-level", "supervisor=loud"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = start(&good, &free, &["--worker-bin", "/nonexistent/worker"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(failure_line(&out.stderr)["error"]
        .as_str()
        .unwrap()
        .contains("worker executable not found"));
    let out = start(&good, "not-an-address", &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hash_password_reads_a_terminal_without_echo() {
    let password = "echo-me-not-4471";
    // A pseudo-terminal the test owns: what the supervisor's terminal shows comes back on it,
    // echoed input included.
    let script = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "hash-password"])
out = b""
deadline = time.time() + 10
while b"Password" not in out and time.time() < deadline:
    out += os.read(fd, 1024)
# Type once the program has turned echo off (as a person would, after the prompt); if it never
# does, type anyway and the echo shows.
while time.time() < deadline and termios.tcgetattr(fd)[3] & termios.ECHO:
    time.sleep(0.01)
os.write(fd, sys.argv[2].encode() + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = run(Command::new("python3")
        .args(["-c", script])
        .arg(bin("supervisor"))
        .arg(password));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("Password"), "no prompt: {shown:?}");
    assert!(shown.contains("$argon2id$"), "no hash: {shown:?}");
    assert!(
        !shown.contains(password),
        "the password was echoed: {shown:?}"
    );
    // Piped, it reads one line (the hash of exactly that password verifies in the login tests).
    let hash = nvr_tests::nvr::hash_password(password);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

/// Every string value anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn every_log_line_of_a_run_is_flat_json_and_camera_lines_carry_camera_id() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let cam = |id: &str| {
        let mut c = camera_config(id, &fc, "motion/main", "motion/sub");
        c["motion"] = json!({"post_motion_s": 1});
        c["recording"] = json!({"pre_roll_s": 2, "post_roll_s": 1});
        c
    };
    // Two cameras that record, and a third whose worker panics at start (its panic message is
    // not a log line: the supervisor must wrap it).
    let cameras = vec![cam("cam-a"), cam("cam-b"), cam("cam-panics")];
    let mut nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": cameras}),
        &[("NVR_TEST_FAULT", "cam-panics:crash")],
    );
    for id in ["cam-a", "cam-b"] {
        nvr.wait_camera(
            id,
            Duration::from_secs(40),
            "a recording",
            status::recording,
        );
    }
    nvr.wait_camera("cam-panics", Duration::from_secs(20), "a restart", |c| {
        c["restarts"].as_u64().unwrap_or(0) >= 1
    });
    assert!(nvr.terminate().unwrap().success());

    let log = nvr.log_text();
    let ids = ["cam-a", "cam-b", "cam-panics"];
    let mut lines = 0;
    let mut from_worker = std::collections::BTreeMap::<&str, usize>::new();
    let mut wrapped_panic = false;
    let mut offsets = 0;
    let mut started_by = std::collections::BTreeSet::new();
    for line in log.lines() {
        lines += 1;
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(obj.contains_key(key), "no {key}: {line}");
        }
        assert!(
            !obj.contains_key("fields") && !obj.contains_key("span"),
            "nested fields: {line}"
        );
        let mut values = Vec::new();
        strings(&v, &mut values);
        for s in &values {
            assert!(
                !(s.starts_with("Some(") || s == "None"),
                "Debug text {s:?} in: {line}"
            );
        }
        let named: Vec<&str> = ids.iter().copied().filter(|id| line.contains(id)).collect();
        let camera = obj.get("camera_id").and_then(Value::as_str);
        if let Some(c) = camera {
            assert!(ids.contains(&c), "unknown camera_id in: {line}");
        }
        if !named.is_empty() {
            let c = camera.unwrap_or_else(|| panic!("names a camera but has no camera_id: {line}"));
            assert!(
                named.contains(&c),
                "camera_id {c} but names {named:?}: {line}"
            );
        }
        let target = obj["target"].as_str().unwrap();
        if target.starts_with("worker") {
            let c = camera.unwrap_or_else(|| panic!("worker line without camera_id: {line}"));
            *from_worker
                .entry(ids.iter().find(|i| **i == c).unwrap())
                .or_default() += 1;
        }
        if target == "worker::stderr" && obj["line"].as_str().unwrap_or("").contains("panicked") {
            assert_eq!(camera, Some("cam-panics"), "{line}");
            wrapped_panic = true;
        }
        if obj["message"] == "recording started" {
            started_by.insert(if target.starts_with("worker") {
                "worker"
            } else {
                "supervisor"
            });
            if let Some(ms) = obj.get("first_frame_offset_ms") {
                assert!(ms.is_number(), "{line}");
                offsets += 1;
            }
        }
    }
    assert!(lines > 20, "only {lines} lines:\n{log}");
    for id in ids {
        assert!(
            from_worker.get(id).copied().unwrap_or(0) > 0,
            "no worker line of {id}: {from_worker:?}"
        );
    }
    assert!(
        wrapped_panic,
        "the worker's panic message was not passed on as JSON"
    );
    // The same event name in both processes' lines, with the number as a number.
    assert_eq!(started_by.len(), 2, "recording started from {started_by:?}");
    assert!(offsets >= 2, "first_frame_offset_ms in {offsets} lines");
}

#[test]
fn a_reload_names_the_settings_that_wait_for_a_restart_and_keeps_them() {
    let mut cfg = config(&["r1"], 0.5);
    cfg["api"] = json!({"idle_timeout_s": 300});
    let mut nvr = Nvr::start(cfg.clone(), &[]);
    let first_pid = nvr.wait_running(&["r1"])[0];
    let output_dir = nvr.output_dir();
    let moved = nvr.dir.path().join("moved");

    let mut changed =
        serde_json::from_slice::<Value>(&std::fs::read(nvr.config_path()).unwrap()).unwrap();
    changed["output_dir"] = moved.display().to_string().into();
    changed["api"]["idle_timeout_s"] = 200.into();
    changed["cameras"][0]["motion"] = json!({"threshold": 40});
    std::fs::write(nvr.config_path(), changed.to_string()).unwrap();
    let (code, _, body) = request(nvr.port, "POST", "/api/reload", "").unwrap();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "reloaded");
    assert_eq!(
        answer["restart_needed"],
        json!(["api.idle_timeout_s", "output_dir"]),
        "{answer}"
    );
    // The rest applied in place: the camera's threshold reached its running worker.
    assert_eq!(answer["summary"]["updated"], json!(["r1"]), "{answer}");
    let st = nvr.status();
    assert_eq!(
        st["supervisor"]["restart_needed"],
        json!(["api.idle_timeout_s", "output_dir"]),
        "{st}"
    );
    // The running values stay: no worker restarted for the directory, none writes to the new one.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status::pid(&nvr.camera("r1")), Some(first_pid));
    assert!(
        !moved.exists(),
        "the new output_dir was used before a restart"
    );
    assert!(output_dir.join("index.sqlite3").exists());
    let log = nvr.log_text();
    let warned = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("take effect at the next start"))
        })
        .unwrap_or_else(|| panic!("no restart-needed line:\n{log}"));
    assert_eq!(warned["settings"], "api.idle_timeout_s,output_dir");

    // Back to the running values: nothing waits any more.
    std::fs::write(nvr.config_path(), {
        let mut back = cfg.clone();
        back["output_dir"] = output_dir.display().to_string().into();
        back.to_string()
    })
    .unwrap();
    let (code, _, body) = request(nvr.port, "POST", "/api/reload", "").unwrap();
    assert_eq!(code, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["restart_needed"], json!([]), "{answer}");
    assert_eq!(nvr.status()["supervisor"]["restart_needed"], json!([]));
    // After a restart the moved directory is the one in force.
    std::fs::write(nvr.config_path(), changed.to_string()).unwrap();
    nvr.restart(&[]);
    assert!(moved.join("index.sqlite3").exists());
    assert_eq!(nvr.status()["supervisor"]["restart_needed"], json!([]));
}

#[test]
fn without_a_login_requests_through_a_proxy_are_refused_and_logged_once() {
    let nvr = Nvr::start(config(&["p1"], 1.0), &[]);
    for header in [
        "X-Forwarded-For: 203.0.113.7\r\n",
        "Forwarded: for=203.0.113.7;proto=https\r\n",
        "X-Forwarded-For: 127.0.0.1\r\n",
    ] {
        for path in ["/status", "/health", "/"] {
            let (code, _, body) = request(nvr.port, "GET", path, header).unwrap();
            assert_eq!(code, 403, "{header} {path}: {}", text(&body));
            assert!(text(&body).contains("api.auth"), "{}", text(&body));
        }
    }
    assert_eq!(request(nvr.port, "GET", "/status", "").unwrap().0, 200);
    let warnings = nvr
        .log_text()
        .lines()
        .filter(|l| l.contains("refused a request that came through a proxy"))
        .count();
    assert_eq!(warnings, 1, "{}", nvr.log_text());
}

/// The messages on a notify socket the test owns, for `for_how_long`.
fn notifications(sock: &UnixDatagram, for_how_long: Duration) -> Vec<String> {
    let end = Instant::now() + for_how_long;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.extend(text(&buf[..n]).lines().map(String::from)),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn systemd_hears_ready_once_the_api_is_bound_and_watchdog_pings_until_the_manager_sticks() {
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let stall = dir.path().join("stall");
    let mut cfg = config(&["n1"], 0.5);
    cfg["output_dir"] = dir.path().join("out").display().to_string().into();
    let config_path = dir.path().join("cameras.json");
    std::fs::write(&config_path, cfg.to_string()).unwrap();
    let port = free_port();
    let mut child = Command::new(bin("supervisor"))
        .arg("--config")
        .arg(&config_path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("NOTIFY_SOCKET", &socket_path)
        // Pings every 0.2 s.
        .env("WATCHDOG_USEC", "400000")
        .env("NVR_TEST_STALL_MANAGER_FILE", &stall)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    // READY=1 comes once the API is bound: a connection made right after it is accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before_ready = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no READY=1; got {before_ready:?}"
        );
        let got = notifications(&sock, Duration::from_millis(100));
        if got.iter().any(|m| m == "READY=1") {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .expect("READY=1 before the API was bound");
            break;
        }
        before_ready.extend(got);
    }
    let pings = notifications(&sock, Duration::from_secs(2))
        .into_iter()
        .filter(|m| m == "WATCHDOG=1")
        .count();
    assert!((5..=15).contains(&pings), "{pings} pings in 2 s at 0.2 s");

    // Workers must not speak for the service: they get no NOTIFY_SOCKET.
    let st: Value =
        serde_json::from_str(&nvr_tests::nvr::http(port, "GET", "/status").unwrap().1).unwrap();
    let worker_pid = nvr_tests::nvr::wait_until(Duration::from_secs(20), "a worker", || {
        let st: Value =
            serde_json::from_str(&nvr_tests::nvr::http(port, "GET", "/status").ok()?.1).ok()?;
        status::camera_in(&st, "n1").and_then(|c| status::pid(&c))
    });
    let environ = std::fs::read(format!("/proc/{worker_pid}/environ")).unwrap();
    assert!(
        !text(&environ).contains("NOTIFY_SOCKET") && !text(&environ).contains("WATCHDOG_USEC"),
        "the worker inherited the notify socket ({st})"
    );

    // A stuck manager sends no pings.
    std::fs::write(&stall, "").unwrap();
    notifications(&sock, Duration::from_millis(500));
    let while_stuck = notifications(&sock, Duration::from_secs(2));
    assert!(
        !while_stuck.iter().any(|m| m == "WATCHDOG=1"),
        "pings while the manager is stuck: {while_stuck:?}"
    );
    std::fs::remove_file(&stall).unwrap();
    let after = notifications(&sock, Duration::from_secs(1));
    assert!(
        after.iter().any(|m| m == "WATCHDOG=1"),
        "no pings once unstuck: {after:?}"
    );

    nvr_tests::nvr::signal(pid, "TERM");
    let stopping = notifications(&sock, Duration::from_secs(3));
    assert!(
        stopping.iter().any(|m| m == "STOPPING=1"),
        "no STOPPING=1: {stopping:?}"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `systemd-analyze security --offline=true` of the shipped unit: its exposure score.
fn unit_exposure(unit: &std::path::Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    all.lines()
        .find_map(|l| l.split("Overall exposure level for nvr.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score:\n{all}"))
}

#[test]
fn the_unit_verifies_and_its_exposure_score_is_the_one_the_readme_gives() {
    let unit = workspace_root().join("deploy/nvr.service");
    let score = unit_exposure(&unit);
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure score {score:.1}")),
        "README does not give the unit's exposure score {score:.1}"
    );
    assert!(score <= 2.0, "exposure {score}");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "RestartPreventExitStatus=2",
        "StateDirectory=nvr",
        "ConfigurationDirectory=nvr",
        "ExecStart=/usr/lib/nvr/supervisor --config /etc/nvr/cameras.json",
    ] {
        assert!(unit_text.contains(line), "the unit lacks {line}");
    }
}
