//! ONVIF devices for the PTZ tests, each on a free loopback port and stopped when dropped (so a
//! failing test stops it too):
//! - [`OnvifDevice`]: a real third-party ONVIF PTZ device, PyPI `ipycam` 1.3.0 run by our launcher
//!   `tests/onvif/ipycam_device.py` in the venv `scripts/setup.sh` makes (tests/onvif/README.md).
//!   It checks WS-Security digests and their `Created` window (±300 s), and its clock can be
//!   offset.
//! - [`SilentDevice`]: accepts TCP connections and never answers.
//! - [`GarbageDevice`]: answers every request with HTTP 200 and a body that is not SOAP.

use crate::fakecam::workspace_root;
use crate::nvr::TempDir;
use anyhow::{bail, Context, Result};
use nvr_config::Password;
use nvr_proto::ptz::PtzPosition;
use nvr_proto::settings::OnvifSettings;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use worker::onvif::Client;

/// Where `scripts/setup.sh` puts the device's venv (outside the build tree: `cargo clean` keeps
/// it). `NVR_ONVIF_VENV` moves it, for setup.sh and the tests alike.
pub const DEFAULT_VENV: &str = "/opt/nvr-test/onvif-venv";
/// How long the device may take to listen (measured 0.35-0.8 s; generous for a loaded machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The venv's python, or an error that says how to install it.
pub fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("NVR_ONVIF_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
    let python = venv.join("bin/python");
    if !python.is_file() {
        bail!(
            "the ONVIF test device (ipycam) is not installed: no {}; run scripts/setup.sh \
             (or point NVR_ONVIF_VENV at a venv with ipycam==1.3.0)",
            python.display()
        );
    }
    Ok(python)
}

/// What a camera's `onvif` section resolves to for a device on 127.0.0.1:`port`.
pub fn settings(port: u16, user: &str, password: &str) -> OnvifSettings {
    OnvifSettings {
        host: "127.0.0.1".into(),
        port,
        profile: None,
        username: Some(user.into()),
        password: Some(Password::new(password)),
        move_timeout_s: 0.5,
        settle_s: 1.0,
    }
}

/// A running ipycam ONVIF device. Dropping it kills it.
pub struct OnvifDevice {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
    /// Its working directory (presets are saved there); removed on drop.
    _state: TempDir,
}

impl OnvifDevice {
    /// Starts a device that accepts `user` with `password`, its clock `clock_offset_s` seconds
    /// ahead of ours (negative: behind), and waits until it listens.
    pub fn start(user: &str, password: &str, clock_offset_s: i64) -> Result<OnvifDevice> {
        OnvifDevice::start_with(user, password, clock_offset_s, &[])
    }

    /// [`OnvifDevice::start`] with more launcher flags, e.g. `--raw` (ipycam's replies unpatched:
    /// undeclared prefixes, `{{placeholder}}` move states).
    pub fn start_with(
        user: &str,
        password: &str,
        clock_offset_s: i64,
        flags: &[&str],
    ) -> Result<OnvifDevice> {
        let python = venv_python()?;
        let script = workspace_root().join("tests/onvif/ipycam_device.py");
        let state = TempDir::new("onvif-device");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0", "--user", user, "--password", password])
            .arg("--clock-offset")
            .arg(clock_offset_s.to_string())
            .arg("--state-dir")
            .arg(state.path())
            .args(flags)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {} {}", python.display(), script.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                // Keep the tail only.
                if log.len() > 64 * 1024 {
                    let cut = log.len() - 32 * 1024;
                    let cut = (cut..log.len())
                        .find(|i| log.is_char_boundary(*i))
                        .unwrap_or(0);
                    log.drain(..cut);
                }
            }
        });
        let out_pipe = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut device = OnvifDevice {
            child,
            port: 0,
            stderr,
            _state: state,
        };
        let line = rx.recv_timeout(READY_TIMEOUT).map_err(|_| {
            anyhow::anyhow!(
                "the ONVIF device did not print LISTENING within {READY_TIMEOUT:?}; its stderr:\n{}",
                device.stderr_tail()
            )
        })?;
        device.port = line
            .strip_prefix("LISTENING 127.0.0.1:")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| {
                format!("the ONVIF device's first line is {line:?}, not LISTENING 127.0.0.1:<port>")
            })?;
        Ok(device)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What a camera's `onvif` section resolves to for this device, with these credentials.
    pub fn settings(&self, user: &str, password: &str) -> OnvifSettings {
        settings(self.port, user, password)
    }

    /// Our client, connected with a 5 s timeout.
    pub fn client(&self, user: &str, password: &str) -> Result<Client> {
        Client::connect(&self.settings(user, password), Duration::from_secs(5))
            .map_err(|e| anyhow::anyhow!("connecting to the ONVIF device: {e}"))
    }

    /// The device's position and move state (`GetStatus`), read with a fresh client.
    pub fn position(&self, user: &str, password: &str) -> Result<(PtzPosition, Option<bool>)> {
        let (position, moving) = self
            .client(user, password)?
            .status()
            .map_err(|e| anyhow::anyhow!("GetStatus: {e}"))?;
        Ok((
            position.context("the device's GetStatus has no position")?,
            moving,
        ))
    }

    /// The last lines the device wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let log = self.stderr.lock().unwrap();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        log[start..].to_string()
    }
}

impl Drop for OnvifDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server on a free loopback port run by one thread until dropped.
struct LoopbackServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    fn start(mut serve: impl FnMut(TcpStream) + Send + 'static) -> Result<LoopbackServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    serve(conn);
                }
            }
        });
        Ok(LoopbackServer {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts TCP connections and never answers (holds them open until dropped).
pub struct SilentDevice {
    server: LoopbackServer,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentDevice {
    pub fn start() -> Result<SilentDevice> {
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        let server = LoopbackServer::start(move |conn| keep.lock().unwrap().push(conn))?;
        Ok(SilentDevice { server, held })
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Connections accepted so far.
    pub fn n_connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// The bodies [`GarbageDevice`] answers with, in turn: not XML, XML cut short, HTML, an envelope
/// without a body, and bytes that are not text.
pub const GARBAGE: [&[u8]; 5] = [
    b"this is not XML at all",
    b"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><tds:GetSystemDateAndTimeResponse><tt:UTCDa",
    b"<html><body><h1>500 Internal Server Error</h1></body></html>",
    b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"></s:Envelope>",
    b"\x00\xff\xfe\x89PNG\r\n\x1a\n",
];

/// Answers every request with HTTP 200 and one of [`GARBAGE`], in turn.
pub struct GarbageDevice {
    server: LoopbackServer,
    served: Arc<AtomicUsize>,
}

impl GarbageDevice {
    pub fn start() -> Result<GarbageDevice> {
        let served = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&served);
        let server = LoopbackServer::start(move |mut conn| {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            read_request(&mut conn);
            let body = GARBAGE[count.fetch_add(1, Ordering::SeqCst) % GARBAGE.len()];
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        })?;
        Ok(GarbageDevice { server, served })
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Requests answered so far.
    pub fn n_served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Reads one request's head and its `Content-Length` body (or until the client stops sending).
fn read_request(conn: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = conn.read(&mut chunk) {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}
