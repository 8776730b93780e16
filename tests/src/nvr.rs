//! Runs the real `supervisor` binary in a fresh temp directory and talks to its HTTP API.

use crate::fakecam::{workspace_root, FakeCam};
// Read here, and imported from here by tests/it/security.rs.
use crate::status::{camera_in, pid, str_at};
use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A built release binary of the workspace (`supervisor` or `worker`).
///
/// A separate test package does not get `CARGO_BIN_EXE_*`, so the test command builds the binaries
/// first (`cargo build --release`); this says so when they are missing.
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("release").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release` before the tests",
        path.display()
    );
    path
}

/// A directory of its own for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "nvr-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // `NVR_TEST_KEEP=1` keeps it (and the supervisor's log in it) to look into a failure.
        if std::env::var_os("NVR_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `signal` (e.g. "KILL", "STOP", "TERM") to `pid` with the `kill` command.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Polls `f` every 50 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request to the API on `port` (with `extra_headers`, each line ending in `\r\n`):
/// (status, head, body), the body de-chunked.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    extra_headers: &str,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-NVR-CSRF: 1\r\nContent-Length: 0\r\n{extra_headers}\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((code, head, body))
}

/// [`request`] without extra headers, the body as text.
pub fn http(port: u16, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let (code, _, body) = request(port, method, path, "")?;
    Ok((code, String::from_utf8_lossy(&body).to_string()))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(n) = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16) else {
            break;
        };
        if n == 0 || b.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = b[i + 2 + n..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&b[i + 2 + n..]);
    }
    out
}

/// How long after the supervisor exits its stderr may stay open: its workers exit on their own
/// when their IPC channel breaks (SIGKILL), or were stopped before it exited (SIGTERM).
pub const READER_GRACE: Duration = Duration::from_secs(10);

/// A running supervisor with its own config, output directory and API port.
pub struct Nvr {
    child: Option<Child>,
    pub port: u16,
    /// The address the API listens on (`--listen <ip>:<port>`); requests go to 127.0.0.1.
    listen_ip: String,
    pub dir: TempDir,
    /// Everything the supervisor (and, through it, every worker) wrote to stderr.
    pub log: Arc<Mutex<String>>,
    /// The thread copying stderr into `log`; it ends when the last process holding the pipe (the
    /// supervisor or a worker it started) has exited. Joined by [`Nvr::terminate`] and
    /// [`Nvr::kill`], so [`Nvr::log_text`] after them holds every line.
    reader: Option<JoinHandle<()>>,
    /// This supervisor's shared-memory directory (`NVR_SHM_DIR`): one per supervisor, so tests
    /// running side by side never share a camera's rings even when they use the same camera id.
    shm: PathBuf,
}

impl Nvr {
    /// Writes `config` (with `output_dir` inside the temp dir unless it names one) and starts the
    /// supervisor on a free port, with `env` added to its environment. Waits until the API answers.
    pub fn start(config: Value, env: &[(&str, &str)]) -> Nvr {
        Self::start_in(TempDir::new("nvr"), config, env)
    }

    /// [`Nvr::start`] in a directory made beforehand (e.g. with a small file system mounted in it).
    pub fn start_in(dir: TempDir, config: Value, env: &[(&str, &str)]) -> Nvr {
        Self::start_on("127.0.0.1", dir, config, env)
    }

    /// [`Nvr::start_in`] with the API listening on `ip` (e.g. `0.0.0.0`, which needs `api.auth`).
    pub fn start_on(ip: &str, dir: TempDir, mut config: Value, env: &[(&str, &str)]) -> Nvr {
        if config.get("output_dir").is_none() {
            config["output_dir"] = dir.path().join("output").display().to_string().into();
        }
        let config_path = dir.path().join("cameras.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        // An `NVR_SHM_DIR` the test passes wins (e.g. one that is missing on purpose).
        let shm = env
            .iter()
            .find(|(k, _)| *k == shm_bus::SHM_DIR_ENV)
            .map_or_else(
                || {
                    let name = dir.path().file_name().unwrap().to_owned();
                    let shm = Path::new("/dev/shm").join(name);
                    std::fs::create_dir_all(&shm).expect("create the shared-memory directory");
                    shm
                },
                |(_, v)| PathBuf::from(v),
            );
        let mut nvr = Nvr {
            child: None,
            port: free_port(),
            listen_ip: ip.to_string(),
            dir,
            log: Arc::new(Mutex::new(String::new())),
            reader: None,
            shm,
        };
        nvr.spawn(env);
        nvr
    }

    /// Stops the supervisor (SIGTERM) and starts it again on the same config, directory and port.
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        if self.child.is_some() {
            self.terminate().expect("supervisor stops");
        }
        self.spawn(env);
    }

    /// Starts the supervisor on this directory's config; waits until the API answers.
    fn spawn(&mut self, env: &[(&str, &str)]) {
        let mut cmd = Command::new(bin("supervisor"));
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("--listen")
            .arg(format!("{}:{}", self.listen_ip, self.port))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(shm_bus::SHM_DIR_ENV, &self.shm);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn supervisor");
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&self.log);
        self.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        }));
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(20), "the API to answer", || {
            http(port, "GET", "/status").ok()
        });
    }

    /// This supervisor's shared-memory directory: attach readers with `attach_in(nvr.shm_dir(), ..)`
    /// and give other processes `NVR_SHM_DIR` set to it.
    pub fn shm_dir(&self) -> &Path {
        &self.shm
    }

    /// Where this supervisor's recordings go.
    pub fn output_dir(&self) -> PathBuf {
        let config: Value =
            serde_json::from_slice(&std::fs::read(self.config_path()).unwrap()).unwrap();
        PathBuf::from(config["output_dir"].as_str().unwrap())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("cameras.json")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (code, body) = http(self.port, "GET", path).expect("HTTP GET");
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (code, value)
    }

    pub fn status(&self) -> Value {
        self.get_json("/status").1
    }

    /// The `/status` entry of one camera.
    pub fn camera(&self, id: &str) -> Value {
        camera_in(&self.status(), id).unwrap_or_else(|| panic!("no camera {id} in /status"))
    }

    /// The `/status` entries by camera id.
    pub fn cameras(&self) -> BTreeMap<String, Value> {
        self.status()["cameras"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (str_at(&c, &["id"]), c))
            .collect()
    }

    /// Polls `/status` until `pred` holds for camera `id`; returns that camera's entry.
    pub fn wait_camera(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_until(timeout, &format!("camera {id}: {what}"), || {
            camera_in(&self.status(), id).filter(|c| pred(c))
        })
    }

    /// Waits until every listed camera is `running`; returns their pids in order.
    pub fn wait_running(&self, ids: &[&str]) -> Vec<u32> {
        ids.iter()
            .map(|id| {
                let c = self.wait_camera(id, Duration::from_secs(20), "running", |c| {
                    c["state"] == "running"
                });
                pid(&c).unwrap()
            })
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (up to 20 s) for the supervisor to exit, then for its stderr to
    /// close (every line read into the log).
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_with("TERM")
    }

    /// [`Nvr::terminate`] with SIGINT, as Ctrl-C in a terminal sends.
    pub fn interrupt(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_with("INT")
    }

    fn stop_with(&mut self, sig: &str) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        signal(child.id(), sig);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.join_reader();
                bail!("supervisor did not exit within 20 s of SIG{sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !self.join_reader() {
            bail!(
                "the supervisor exited ({status}) but its stderr stayed open for {READER_GRACE:?}: \
                 a worker outlived it"
            );
        }
        Ok(status)
    }

    /// SIGKILLs the supervisor, as a crash would, and waits (up to [`READER_GRACE`]) for its
    /// orphaned workers to close its stderr, so the log is complete.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.join_reader();
        }
    }

    /// Waits up to [`READER_GRACE`] for the stderr reader to reach the end of the pipe and joins
    /// it; false if the pipe is still open (a process holding it is still alive).
    fn join_reader(&mut self) -> bool {
        let Some(reader) = self.reader.take() else {
            return true;
        };
        let deadline = Instant::now() + READER_GRACE;
        while !reader.is_finished() {
            if Instant::now() > deadline {
                // Left running: it ends when the last holder of the pipe exits.
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = reader.join();
        true
    }
}

impl Drop for Nvr {
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate().is_err() {
            self.kill();
        }
        if std::env::var_os("NVR_TEST_KEEP").is_some() {
            let _ = std::fs::write(self.dir.path().join("supervisor.log"), self.log_text());
        }
        if self.shm.starts_with("/dev/shm") && self.shm.file_name() == self.dir.path().file_name() {
            let _ = std::fs::remove_dir_all(&self.shm);
        }
    }
}

/// A camera's config on two mounts of fake camera `fc` (e.g. `motion/main`, `motion/sub`): its id
/// and URLs; a test adds what else it needs (`motion`, `recording`, `username`, ...).
pub fn camera_config(id: &str, fc: &FakeCam, main: &str, sub: &str) -> Value {
    serde_json::json!({"id": id, "main_url": fc.url(main), "sub_url": fc.url(sub)})
}

/// A config for cameras that need no media yet, with a fast heartbeat.
pub fn config(ids: &[&str], heartbeat_s: f64) -> Value {
    let cameras: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "main_url": format!("rtsp://127.0.0.1:9/{id}")}))
        .collect();
    serde_json::json!({"heartbeat_interval_s": heartbeat_s, "cameras": cameras})
}

/// `supervisor --hash-password` of `password` (read on stdin): the Argon2id hash for `api.auth`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(bin("supervisor"))
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn supervisor --hash-password");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "supervisor --hash-password failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One request with a JSON body and extra headers: (status, the body as JSON or `Null`).
pub fn send_json(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut extra = String::from("Content-Type: application/json\r\n");
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("no status code");
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Logs in on the API: (the `Cookie` header's value, the CSRF token).
pub fn login(port: u16, user: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let cookie = raw
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no session cookie in {raw}"))
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = raw
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str::<Value>(b.trim()).ok())
        .and_then(|v| v["csrf"].as_str().map(String::from))
        .expect("no CSRF token");
    (cookie, csrf)
}
