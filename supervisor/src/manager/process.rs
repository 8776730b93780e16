//! Starting worker processes: the one place in the supervisor that spawns anything.

use nvr_config::CameraId;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// How many of a worker's last stderr lines `/status` keeps.
pub const STDERR_TAIL_LINES: usize = 20;

/// The last lines a worker wrote to stderr, shared with the thread that reads them.
pub type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// Starts `bin <camera_id> --ipc <ipc_name>`.
///
/// The worker gets its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
/// which then shuts the workers down in order. Its stderr is passed through to the supervisor's stderr
/// line by line (one stream holds all logs) and the last lines are kept in `tail`. The worker logs
/// with the supervisor's filter and format; in JSON, a line of its that is not JSON (a panic) is
/// wrapped into one with its `camera_id`, so every line on the supervisor's stderr parses.
pub fn spawn_worker(
    bin: &Path,
    camera_id: &CameraId,
    ipc_name: &str,
    tail: StderrTail,
) -> std::io::Result<Child> {
    let mut command = Command::new(bin);
    let log = nvr_cli::chosen().cloned();
    if let Some(log) = &log {
        command
            .env("NVR_LOG_LEVEL", &log.filter)
            .env("NVR_LOG_FORMAT", log.format.as_str());
    }
    for var in crate::systemd::SUPERVISOR_ONLY_ENV {
        command.env_remove(var);
    }
    let json = log.is_none_or(|l| l.format == nvr_cli::LogFormat::Json);
    let id = camera_id.to_string();
    let mut child = command
        .arg(camera_id.as_str())
        .arg("--ipc")
        .arg(ipc_name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(stderr) = child.stderr.take() {
        std::thread::Builder::new()
            .name(format!("stderr-{camera_id}"))
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let out = if json {
                        nvr_cli::relay_worker_line(&line, &id)
                    } else {
                        line.clone()
                    };
                    let _ = writeln!(std::io::stderr().lock(), "{out}");
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == STDERR_TAIL_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            })?;
    }
    Ok(child)
}

/// Starts `bin --probe --ipc <ipc_name>`: a short-lived worker that tests one camera (the camera,
/// secrets included, follows over IPC). Its stderr is passed through like a worker's, with
/// `camera_id` `probe`.
pub fn spawn_probe(bin: &Path, ipc_name: &str) -> std::io::Result<Child> {
    let mut command = Command::new(bin);
    let log = nvr_cli::chosen().cloned();
    if let Some(log) = &log {
        command
            .env("NVR_LOG_LEVEL", &log.filter)
            .env("NVR_LOG_FORMAT", log.format.as_str());
    } else {
        command.env("NVR_LOG_LEVEL", "warn");
    }
    for var in crate::systemd::SUPERVISOR_ONLY_ENV {
        command.env_remove(var);
    }
    let json = log.is_some_and(|l| l.format == nvr_cli::LogFormat::Json);
    let mut child = command
        .arg("--probe")
        .arg("--ipc")
        .arg(ipc_name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(stderr) = child.stderr.take() {
        std::thread::Builder::new()
            .name("stderr-probe".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Without a chosen log format (the `probe` command), the probe's lines stay
                    // out of the report on stdout and go to stderr as they are.
                    let out = if json {
                        nvr_cli::relay_worker_line(&line, "probe")
                    } else {
                        line
                    };
                    let _ = writeln!(std::io::stderr().lock(), "{out}");
                }
            })?;
    }
    Ok(child)
}
