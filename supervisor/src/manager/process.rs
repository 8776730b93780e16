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
    let log = nvr_cli::chosen().cloned();
    let json = log
        .as_ref()
        .is_none_or(|l| l.format == nvr_cli::LogFormat::Json);
    spawn(
        bin,
        &[camera_id.as_str(), "--ipc", ipc_name],
        (log.as_ref(), None),
        camera_id.as_str(),
        json,
        Some(tail),
    )
}

/// Starts `bin --probe --ipc <ipc_name>`: a short-lived worker that tests one camera (the camera,
/// secrets included, follows over IPC). Its stderr is passed through like a worker's, with
/// `camera_id` `probe`; without a chosen log format (the `probe` command) it logs warnings only,
/// and its lines go to stderr as they are, out of the report on stdout.
pub fn spawn_probe(bin: &Path, ipc_name: &str) -> std::io::Result<Child> {
    let log = nvr_cli::chosen().cloned();
    let json = log
        .as_ref()
        .is_some_and(|l| l.format == nvr_cli::LogFormat::Json);
    spawn(
        bin,
        &["--probe", "--ipc", ipc_name],
        (log.as_ref(), Some("warn")),
        "probe",
        json,
        None,
    )
}

/// Spawns `bin args` in its own process group with the supervisor's log settings (or, without
/// them, the given level, if any) and relays its stderr: wrapped into JSON lines with `camera_id`
/// when `json`, the last lines kept in `tail` when given.
fn spawn(
    bin: &Path,
    args: &[&str],
    (log, level_without): (Option<&nvr_cli::Chosen>, Option<&str>),
    camera_id: &str,
    json: bool,
    tail: Option<StderrTail>,
) -> std::io::Result<Child> {
    let mut command = Command::new(bin);
    match (log, level_without) {
        (Some(log), _) => command
            .env("NVR_LOG_LEVEL", &log.filter)
            .env("NVR_LOG_FORMAT", log.format.as_str()),
        (None, Some(level)) => command.env("NVR_LOG_LEVEL", level),
        (None, None) => &mut command,
    };
    for var in crate::systemd::SUPERVISOR_ONLY_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let Some(stderr) = child.stderr.take() {
        let id = camera_id.to_string();
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
                    if let Some(Ok(mut t)) = tail.as_ref().map(|t| t.lock()) {
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
