//! Fake IP cameras: generate the clips once, run `tests/fakecam/fakecam.py` (an RTSP server looping
//! them at real-time pace), read its ground truth, and make sure it dies with the test.
//!
//! The server prints JSON lines on stdout (`ready`, `loop_start`, `motion_start`, `ack`, ...; see
//! `tests/fakecam/README.md`); a reader thread collects them so tests can wait for one. The harness
//! holds the child's stdin: the server exits when it closes, and [`Drop`] kills and reaps it, so no
//! fake camera outlives a test, even one that panics.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// The Python that can import `gi` (Debian's; a pyenv build on PATH cannot). Override with
/// `NVR_FAKECAM_PYTHON`.
const DEFAULT_PYTHON: &str = "/usr/bin/python3";
/// How long the server may take to load its clips and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stdin command may take to be acknowledged.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the server's stderr to keep for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// Where the clips are cached: `NVR_CLIPS_DIR`, else `<workspace>/target/fakecam-clips`.
pub fn clips_dir() -> PathBuf {
    match std::env::var_os("NVR_CLIPS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("fakecam-clips"),
    }
}

/// Makes sure the clips exist (runs `make_clips.sh`, a no-op when they are current) and returns
/// their directory. Test threads of this process share one run; other processes (parallel test
/// binaries) wait on a lock file next to the directory.
pub fn ensure_clips() -> Result<PathBuf> {
    static DONE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| make_clips().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn make_clips() -> Result<PathBuf> {
    let script = workspace_root().join("tests/fakecam/make_clips.sh");
    generate(clips_dir(), Command::new("bash").arg(&script))
}

/// The motion-detection clip matrix (`tests/fakecam/make_matrix.py`): the quick set the tests
/// run, or with `full` every cell (the benchmark's). Cached like [`ensure_clips`], in
/// `<workspace>/target/motion-matrix[-full]`.
pub fn ensure_matrix(full: bool) -> Result<PathBuf> {
    static QUICK: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    static FULL: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let (cell, name) = if full {
        (&FULL, "motion-matrix-full")
    } else {
        (&QUICK, "motion-matrix")
    };
    cell.get_or_init(|| {
        let python =
            std::env::var("NVR_FAKECAM_PYTHON").unwrap_or_else(|_| DEFAULT_PYTHON.to_owned());
        let script = workspace_root().join("tests/fakecam/make_matrix.py");
        let mut cmd = Command::new(python);
        cmd.arg(script);
        if full {
            cmd.arg("--full");
        }
        let dir = workspace_root().join("target").join(name);
        generate(dir, &mut cmd).map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Runs a clip generator `cmd DIR` under a lock file next to `dir` (other test processes wait).
fn generate(dir: PathBuf, cmd: &mut Command) -> Result<PathBuf> {
    let parent = dir.parent().context("clips dir has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let lock_path = dir.with_extension("lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let out = cmd
        .arg(&dir)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    drop(lock);
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dir)
}

/// What to serve and how.
#[derive(Debug, Clone, Default)]
pub struct FakeCamOpts {
    /// Scenes to serve (`motion`, `small`, `noise`, `lights`, `clock`); empty serves all. Fewer
    /// scenes start faster and use less memory.
    pub scenes: Vec<String>,
    /// Digest credentials `(user, password)`; `None` serves without authentication.
    pub auth: Option<(String, String)>,
    /// Disconnect every client this long after it connects.
    pub drop_after: Option<Duration>,
    /// Position in the loop at server start, e.g. 18 s to see a `loop_start` 2 s later
    /// (default: loop 0 starts at server start).
    pub start_pos: Option<Duration>,
    /// Serve the clips of this directory (for example [`ensure_matrix`]'s) instead of
    /// [`ensure_clips`]'s.
    pub clips: Option<PathBuf>,
}

impl FakeCamOpts {
    /// Serves just these scenes.
    pub fn scenes(scenes: &[&str]) -> Self {
        FakeCamOpts {
            scenes: scenes.iter().map(|s| s.to_string()).collect(),
            ..FakeCamOpts::default()
        }
    }
}

/// Lines seen on the server's stdout, in order, plus a condition variable rung on each new one.
#[derive(Default)]
struct Events {
    lines: Mutex<EventLog>,
    changed: Condvar,
}

#[derive(Default)]
struct EventLog {
    events: Vec<Value>,
    /// Set when stdout closed: the server exited.
    closed: bool,
}

/// A running fake camera server. Dropping it kills the server.
pub struct FakeCam {
    child: Child,
    /// Held open: the server exits when it closes.
    stdin: Option<ChildStdin>,
    events: Arc<Events>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    ready: Value,
    port: u16,
    host: String,
    /// When the `ready` line was read, and the server's monotonic clock in it: maps the
    /// server's `mono_ns` to an [`Instant`] to within the pipe latency.
    anchor: (Instant, u64),
}

impl FakeCam {
    /// Ensures the clips, starts the server and waits until it listens.
    pub fn start(opts: FakeCamOpts) -> Result<FakeCam> {
        let clips = match &opts.clips {
            Some(dir) => dir.clone(),
            None => ensure_clips()?,
        };
        let python =
            std::env::var("NVR_FAKECAM_PYTHON").unwrap_or_else(|_| DEFAULT_PYTHON.to_owned());
        let script = workspace_root().join("tests/fakecam/fakecam.py");
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg("--clips")
            .arg(&clips)
            .args(["--port", "0", "--host", "127.0.0.1"]);
        for scene in &opts.scenes {
            cmd.args(["--scene", scene]);
        }
        if let Some((user, password)) = &opts.auth {
            cmd.args(["--user", user, "--password", password]);
        }
        if let Some(d) = opts.drop_after {
            cmd.arg("--drop-after").arg(d.as_secs_f64().to_string());
        }
        if let Some(d) = opts.start_pos {
            cmd.arg("--start-pos").arg(d.as_secs_f64().to_string());
        }
        cmd.env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {python} {}", script.display()))?;

        let events = Arc::new(Events::default());
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let child_stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            spawn_stdout_reader(stdout, Arc::clone(&events)),
            spawn_stderr_reader(child_stderr, Arc::clone(&stderr)),
        ];
        let mut cam = FakeCam {
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
            readers,
            ready: Value::Null,
            port: 0,
            host: String::new(),
            anchor: (Instant::now(), 0),
        };
        let ready = cam
            .wait_event(|e| e["event"] == "ready", READY_TIMEOUT)
            .context("fakecam did not become ready")?;
        cam.anchor = (
            Instant::now(),
            ready["mono_ns"].as_u64().context("ready without mono_ns")?,
        );
        cam.port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("ready without port")?;
        cam.host = ready["host"].as_str().unwrap_or("127.0.0.1").to_owned();
        cam.ready = ready;
        Ok(cam)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `ready` line: port, mounts, loop length, each scene's events within the loop.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// `rtsp://127.0.0.1:PORT/motion/sub` for mount `motion/sub` (a leading `/` is fine).
    pub fn url(&self, mount: &str) -> String {
        format!(
            "rtsp://{}:{}/{}",
            self.host,
            self.port,
            mount.trim_start_matches('/')
        )
    }

    /// Like [`FakeCam::url`] with credentials in it.
    pub fn url_with_credentials(&self, mount: &str, user: &str, password: &str) -> String {
        format!(
            "rtsp://{user}:{password}@{}:{}/{}",
            self.host,
            self.port,
            mount.trim_start_matches('/')
        )
    }

    /// A copy of every line read so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lines.lock().unwrap().events.clone()
    }

    /// How many lines have been read so far (for [`FakeCam::wait_event_since`]).
    pub fn n_events(&self) -> usize {
        self.events.lines.lock().unwrap().events.len()
    }

    /// The first line ever read that matches `pred`, waiting up to `timeout` for it.
    pub fn wait_event(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Result<Value> {
        self.wait_event_since(0, pred, timeout)
    }

    /// The first line from index `since` on that matches `pred`, waiting up to `timeout`.
    pub fn wait_event_since(
        &self,
        since: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut log = self.events.lines.lock().unwrap();
        let mut checked = since;
        loop {
            if let Some(found) = log.events.iter().skip(checked).find(|e| pred(e)) {
                return Ok(found.clone());
            }
            checked = checked.max(log.events.len());
            if log.closed {
                bail!("fakecam exited; stderr: {}", self.stderr_tail());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no matching fakecam event within {timeout:?}; last events: {:?}; stderr: {}",
                    log.events.iter().rev().take(5).collect::<Vec<_>>(),
                    self.stderr_tail()
                );
            }
            log = self.events.changed.wait_timeout(log, left).unwrap().0;
        }
    }

    /// The next `event` line (`motion_start`, `loop_start`, ...) read from now on, waiting up to
    /// `timeout`.
    pub fn wait_next(&self, event: &str, timeout: Duration) -> Result<Value> {
        self.wait_event_since(self.n_events(), |e| e["event"] == event, timeout)
    }

    /// Sends a stdin command (`stop`, `start`, `drop`, `deny on`, `deny off`, `status`) and
    /// returns its `ack` line; fails if the server says `"ok":false`.
    pub fn command(&mut self, cmd: &str) -> Result<Value> {
        let since = self.n_events();
        let stdin = self
            .stdin
            .as_mut()
            .context("fakecam stdin already closed")?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {cmd:?} to fakecam"))?;
        let ack = self.wait_event_since(
            since,
            |e| e["event"] == "ack" && e["cmd"] == cmd,
            ACK_TIMEOUT,
        )?;
        if ack["ok"] != true {
            bail!("fakecam refused {cmd:?}: {ack}");
        }
        Ok(ack)
    }

    /// The [`Instant`] of a server `mono_ns` (to within the pipe latency of the `ready` line).
    pub fn instant_of(&self, mono_ns: u64) -> Instant {
        let (at, at_ns) = self.anchor;
        if mono_ns >= at_ns {
            at + Duration::from_nanos(mono_ns - at_ns)
        } else {
            at - Duration::from_nanos(at_ns - mono_ns)
        }
    }

    /// Closes the server's stdin: it exits (printing `exit` with reason `stdin closed`).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits up to `timeout` for the server to exit by itself and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        {
            let mut log = self.events.lines.lock().unwrap();
            while !log.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    bail!("fakecam did not exit within {timeout:?}");
                }
                log = self.events.changed.wait_timeout(log, left).unwrap().0;
            }
        }
        // Its stdout closed: the process is exiting (it has no children holding the pipe).
        self.child.wait().context("waiting for fakecam")
    }

    /// Closes stdin and waits up to `timeout` for a clean exit.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.close_stdin();
        self.wait_exit(timeout)
    }

    /// The last part of the server's stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for FakeCam {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Already exited (shutdown) or not: kill is harmless, wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

fn spawn_stdout_reader(stdout: std::process::ChildStdout, events: Arc<Events>) -> JoinHandle<()> {
    thread::Builder::new()
        .name("fakecam-stdout".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Not JSON (a stray print): keep it visible as a string.
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                events.lines.lock().unwrap().events.push(value);
                events.changed.notify_all();
            }
            events.lines.lock().unwrap().closed = true;
            events.changed.notify_all();
        })
        .expect("spawning fakecam stdout reader")
}

fn spawn_stderr_reader(
    stderr: std::process::ChildStderr,
    keep: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("fakecam-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut kept = keep.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > STDERR_KEEP {
                    let cut = kept.len() - STDERR_KEEP / 2;
                    let cut = (cut..kept.len())
                        .find(|&i| kept.is_char_boundary(i))
                        .unwrap_or(0);
                    kept.drain(..cut);
                }
            }
        })
        .expect("spawning fakecam stderr reader")
}
