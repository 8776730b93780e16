//! One camera's worker process.
//!
//! `worker <camera_id> --ipc NAME` is how the supervisor starts it: it connects back over ipc-channel,
//! says `Hello`, receives its camera's settings in `Configure` (secrets never go on the command line),
//! then sends heartbeats from its own thread while the main thread obeys commands. It exits by itself
//! when the channel to the supervisor breaks, so a dead supervisor leaves no orphans.
//!
//! `worker <camera_id> [--config PATH]` runs the camera alone for debugging: it loads the config through
//! the same validation and prints its heartbeats as JSON lines on stdout.
//!
//! `worker --probe --ipc NAME` is a connectivity test the supervisor starts: it takes one camera's
//! settings from `Configure`, probes its streams (see [`probe`]), sends the answer and exits;
//! `worker <camera_id> --probe [--config PATH]` prints that answer as JSON (exit 0: usable, 5: not).
//!
//! Threads: main (commands), heartbeat, PTZ (the camera's ONVIF service, see [`ptz`]), SUB (publish packets into the SUB packet ring, decode into
//! the shared-memory frame ring and detect motion) and MAIN (publish packets into the MAIN packet
//! ring, pre-roll and recording), see [`camera`] and [`live`].

mod camera;
mod fault;
mod ffi;
mod live;
mod mp4;
mod probe;
mod ptz;
mod recording;
mod recovery;
mod rtsp;
mod stream;
mod sub;

use camera::CameraRuntime;
use clap::Parser;
use ffmpeg_next as ffmpeg;
use nvr_proto::link::{self, LinkError, Sender};
use nvr_proto::{exit_code, CameraSettings, ToSupervisor, ToWorker, WorkerEvent};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{error, info, warn};

/// One camera's worker process. The supervisor starts it with `--ipc`; without it the camera runs
/// alone for debugging and its heartbeats are printed on stdout as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "worker", version = nvr_cli::VERSION)]
struct Args {
    /// The camera's id in the config (with `--probe` under a supervisor: none, the camera comes
    /// over IPC).
    #[arg(required_unless_present = "probe")]
    camera_id: Option<String>,
    /// Test the camera's streams instead of running it: print (or, under a supervisor, send) what
    /// each stream shows (codec, size, fps, GOP, audio) or why it cannot be used, then exit.
    #[arg(long)]
    probe: bool,
    /// The config file (standalone runs only; under a supervisor the settings come over IPC).
    #[arg(
        long,
        short = 'c',
        env = "NVR_CONFIG",
        default_value = "config/cameras.json",
        value_name = "PATH"
    )]
    config: PathBuf,
    /// The supervisor's IPC server name (set by the supervisor).
    #[arg(long, value_name = "NAME", hide = true)]
    ipc: Option<String>,
    #[command(flatten)]
    log: nvr_cli::LogArgs,
}

fn main() -> ExitCode {
    // `--help` and `--version` exit 0; a bad command line exits 2 (BAD_CONFIG).
    let args = Args::parse();
    let camera_id = args.camera_id.clone().unwrap_or_else(|| "probe".into());
    ffi::release_large_buffers_at_once();
    // Every JSON line carries the camera's id as a flat field, as the supervisor's lines do; in
    // text mode the span shows it.
    if let Err(e) = nvr_cli::init(&args.log, &[("camera_id", &camera_id)]) {
        eprintln!("worker: {e}");
        return ExitCode::from(exit_code::BAD_CONFIG as u8);
    }
    let span = tracing::info_span!("worker", camera_id = %camera_id);
    let _entered = span.enter();
    if let Err(e) = ffmpeg::init() {
        error!(error = %e, "cannot initialise FFmpeg");
        return ExitCode::from(exit_code::BAD_CONFIG as u8);
    }
    // FFmpeg's own log lines can quote URLs, credentials included: keep it quiet and report errors
    // ourselves, classified and redacted.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    let code = match (&args.ipc, args.probe) {
        (Some(name), true) => supervised_probe(name),
        (Some(name), false) => supervised(&camera_id, name),
        (None, _) => standalone(&args, &camera_id),
    };
    ExitCode::from(code as u8)
}

/// Runs the camera alone: heartbeats go to stdout as JSON lines.
fn standalone(args: &Args, camera_id: &str) -> i32 {
    let config = match nvr_config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit_code::BAD_CONFIG;
        }
    };
    let Some(camera) = config.camera(camera_id) else {
        eprintln!(
            "{}: no camera with id \"{}\"; known ids: {}",
            args.config.display(),
            camera_id,
            config
                .cameras
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return exit_code::BAD_CONFIG;
    };
    if args.probe {
        let report = probe::probe(&CameraSettings::from(camera));
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return if report.usable() {
            exit_code::OK
        } else {
            exit_code::PROBE_FAILED
        };
    }
    info!(name = %camera.name, "running standalone; heartbeats on stdout");
    let print_event: camera::EventSink = Arc::new(|e| {
        println!(
            "{}",
            serde_json::to_string(&ToSupervisor::Event(e)).unwrap_or_default()
        );
    });
    let runtime = CameraRuntime::start(
        CameraSettings::from(camera),
        config.output_dir.clone(),
        print_event,
        None,
    );
    let interval = Duration::from_secs_f64(config.heartbeat_interval_s);
    for n in 0.. {
        let beat = ToSupervisor::Heartbeat(runtime.stats(n));
        println!("{}", serde_json::to_string(&beat).unwrap_or_default());
        std::thread::sleep(interval);
    }
    exit_code::OK
}

/// Runs under a supervisor until `Shutdown` or until the link breaks; returns the exit code.
fn supervised(camera_id: &str, ipc_name: &str) -> i32 {
    let (mut up, down) = match link::connect(ipc_name) {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot reach the supervisor");
            return exit_code::LOST_SUPERVISOR;
        }
    };
    let hello = ToSupervisor::Hello {
        camera_id: camera_id.to_string(),
        pid: std::process::id(),
        version: nvr_cli::VERSION.to_string(),
    };
    if up.send(&hello).is_err() {
        return exit_code::LOST_SUPERVISOR;
    }
    let config = match down.recv().map(|m| m.body) {
        Ok(ToWorker::Configure(c)) => c,
        Ok(ToWorker::Shutdown { .. }) => return exit_code::OK,
        Ok(ToWorker::Update { .. } | ToWorker::Ptz { .. }) => {
            error!("expected Configure first");
            return exit_code::PROTOCOL;
        }
        Err(LinkError::Disconnected) => return exit_code::LOST_SUPERVISOR,
        Err(e) => {
            error!(error = %e, "expected Configure");
            report(&mut up, &e);
            return exit_code::PROTOCOL;
        }
    };
    if config.camera.id != camera_id {
        error!(got = %config.camera.id, "Configure is for another camera");
        return exit_code::PROTOCOL;
    }
    info!(name = %config.camera.name, "configured");
    let faults = fault::from_env(camera_id);
    fault::start(&faults);

    let up = Arc::new(Mutex::new(up));
    let link = Arc::clone(&up);
    let send_event: camera::EventSink = Arc::new(move |e| {
        if let Ok(mut tx) = link.lock() {
            let _ = tx.send(&ToSupervisor::Event(e));
        }
    });
    let link = Arc::clone(&up);
    let send_ptz_reply: ptz::ReplySink = Arc::new(move |request_id, result| {
        if let Ok(mut tx) = link.lock() {
            let _ = tx.send(&ToSupervisor::PtzReply { request_id, result });
        }
    });
    let runtime = Arc::new(CameraRuntime::start(
        config.camera.clone(),
        PathBuf::from(&config.output_dir),
        send_event,
        Some(send_ptz_reply),
    ));
    let interval = Duration::from_secs_f64(config.heartbeat_interval_s);
    if !faults.contains(&fault::Fault::Hang) {
        spawn_heartbeats(Arc::clone(&up), interval, Arc::clone(&runtime));
    } else {
        warn!("test fault: hang (no heartbeats)");
    }
    let (code, deadline) = command_loop(&down, &up, &runtime);
    runtime.stop(deadline);
    code
}

/// `--probe` under a supervisor: says `Hello`, takes the camera from `Configure`, probes it, sends
/// the answer and exits.
fn supervised_probe(ipc_name: &str) -> i32 {
    let (mut up, down) = match link::connect(ipc_name) {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot reach the supervisor");
            return exit_code::LOST_SUPERVISOR;
        }
    };
    let hello = ToSupervisor::Hello {
        camera_id: "probe".into(),
        pid: std::process::id(),
        version: nvr_cli::VERSION.to_string(),
    };
    if up.send(&hello).is_err() {
        return exit_code::LOST_SUPERVISOR;
    }
    let camera = match down.recv().map(|m| m.body) {
        Ok(ToWorker::Configure(c)) => c.camera,
        Ok(_) => return exit_code::PROTOCOL,
        Err(LinkError::Disconnected) => return exit_code::LOST_SUPERVISOR,
        Err(e) => {
            error!(error = %e, "expected Configure");
            return exit_code::PROTOCOL;
        }
    };
    let report = probe::probe(&camera);
    info!(usable = report.usable(), "probe done");
    match up.send(&ToSupervisor::Probed(report)) {
        Ok(()) => exit_code::OK,
        Err(_) => exit_code::LOST_SUPERVISOR,
    }
}

/// Sends a heartbeat every `interval`; a failed send means the supervisor is gone, so the process exits.
fn spawn_heartbeats(
    up: Arc<Mutex<Sender<ToSupervisor>>>,
    interval: Duration,
    runtime: Arc<CameraRuntime>,
) {
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            let _entered = span.enter();
            let mut seen = 0;
            for n in 0.. {
                let beat = ToSupervisor::Heartbeat(runtime.stats(n));
                let sent = up.lock().map(|mut tx| tx.send(&beat));
                if !matches!(sent, Ok(Ok(()))) {
                    warn!("heartbeat send failed; the supervisor is gone, exiting");
                    runtime.stop(LOST_SUPERVISOR_DEADLINE);
                    std::process::exit(exit_code::LOST_SUPERVISOR);
                }
                // Next beat after `interval`, or at once when a stream changes state.
                seen = runtime.wait_for_change(seen, interval);
            }
        })
        .expect("spawn heartbeat thread");
}

/// How long the pipelines may take to stop when the supervisor is gone: enough to finish the open
/// clip (trailer, fsync, rename) and remove the frame ring, so nothing is left half-done.
const LOST_SUPERVISOR_DEADLINE: Duration = Duration::from_secs(3);

/// Obeys the supervisor until `Shutdown` or disconnect; returns the exit code and how long the
/// pipelines may take to stop.
fn command_loop(
    down: &link::Receiver<ToWorker>,
    up: &Mutex<Sender<ToSupervisor>>,
    runtime: &CameraRuntime,
) -> (i32, Duration) {
    loop {
        match down.recv().map(|m| m.body) {
            Ok(ToWorker::Shutdown { deadline_ms }) => {
                info!(deadline_ms, "shutdown requested");
                return (exit_code::OK, Duration::from_millis(deadline_ms));
            }
            Ok(ToWorker::Configure(_)) => {
                warn!("ignoring a second Configure; settings change through Update or a restart")
            }
            Ok(ToWorker::Update {
                request_id,
                settings,
            }) => {
                let error = runtime.update(*settings).err();
                match &error {
                    None => info!(request_id, "settings updated in place"),
                    Some(e) => warn!(request_id, error = %e, "settings update refused"),
                }
                if let Ok(mut tx) = up.lock() {
                    let _ = tx.send(&ToSupervisor::Reply { request_id, error });
                }
            }
            Ok(ToWorker::Ptz {
                request_id,
                command,
            }) => runtime.ptz(request_id, command),
            Err(e @ LinkError::Decode(_)) => {
                error!(error = %e, "bad message from the supervisor");
                if let Ok(mut tx) = up.lock() {
                    report(&mut tx, &e);
                }
            }
            Err(e) => {
                warn!(error = %e, "the supervisor is gone; exiting");
                return (exit_code::LOST_SUPERVISOR, LOST_SUPERVISOR_DEADLINE);
            }
        }
    }
}

fn report(up: &mut Sender<ToSupervisor>, e: &LinkError) {
    let _ = up.send(&ToSupervisor::Event(WorkerEvent::ProtocolError {
        detail: e.to_string(),
    }));
}
