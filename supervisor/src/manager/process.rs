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
/// line by line (one stream holds all logs) and the last lines are kept in `tail`.
pub fn spawn_worker(
    bin: &Path,
    camera_id: &CameraId,
    ipc_name: &str,
    tail: StderrTail,
) -> std::io::Result<Child> {
    let mut child = Command::new(bin)
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
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
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
