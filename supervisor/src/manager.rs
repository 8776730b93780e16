//! The worker manager: one thread that owns every camera's worker and decides when to start, stop,
//! kill and restart it.
//!
//! Everything reaches it as a [`Msg`] on one channel (IPC messages from per-worker link threads, and
//! commands from the API and signal handlers); between messages it ticks (every [`TICK`], or sooner
//! when something is due) to reap exited workers, start those whose backoff has run out, kill hung
//! ones and police resources. After every pass it publishes to the [`Snapshot`] the API reads: the
//! cameras that changed at once, all of them every [`REFRESH_EVERY`] (for ages and CPU figures).
//! Policy lives in pure modules (`backoff`, `police`).

use crate::archive::{self, Archive, ArchiveOp};
use crate::backoff::Backoff;
use crate::police::{self, Police};
use crate::process::{self, StderrTail};
use crate::status::{
    percentile, CameraStatus, Latency, MotionEnd, MotionStatus, RecordingLog, RestartRecord,
    Snapshot, SupervisorInfo, WorkerState,
};
use nvr_config::{redact_url, CameraConfig, Config};
use nvr_proto::link::{LinkError, Listener, Sender};
use nvr_proto::{
    exit_code, Envelope, ToSupervisor, ToWorker, WorkerConfig, WorkerEvent, WorkerStats,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::{mpsc, Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// How often the manager looks at its workers when no message arrives and nothing is due sooner (a
/// dying worker's closed IPC channel is a message, so exits are noticed at once).
const TICK: Duration = Duration::from_millis(500);
/// How often an exiting worker (channel closed, or being ended) is looked for.
const REAP_POLL: Duration = Duration::from_millis(10);
/// How often CPU and memory are sampled.
const POLICE_EVERY: Duration = Duration::from_secs(1);
/// How often every camera's status is rebuilt even if nothing was reported (ages, countdowns).
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Heartbeats a worker may miss before it is declared hung.
const MISSED_HEARTBEATS: f64 = 3.0;
/// Time a new worker has to say `Hello`, on top of the heartbeat allowance.
const STARTUP_GRACE: Duration = Duration::from_secs(10);
/// How long a worker has to exit after `Shutdown` before it is killed.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Heartbeat latencies kept per camera for the percentiles in `/status`.
const LATENCY_WINDOW: usize = 200;

/// A request to the manager from the API or a signal handler.
pub enum Command {
    Reload {
        config: Box<Config>,
        reply: oneshot::Sender<ReloadSummary>,
    },
    Restart {
        camera_id: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Stop every worker (gracefully, then by force) and reply when all are gone.
    Shutdown { reply: oneshot::Sender<()> },
    /// Record a reload that was rejected, for `/status`.
    ReloadRejected(String),
}

/// What a reload changed.
#[derive(Debug, Default, Serialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

/// Everything the manager thread reacts to.
pub enum Msg {
    Command(Command),
    Connected {
        generation: u64,
        pid: u32,
        tx: Sender<ToWorker>,
    },
    LinkFailed {
        generation: u64,
        error: String,
    },
    FromWorker {
        generation: u64,
        received_ns: u64,
        /// Boxed: heartbeats are much larger than the other messages.
        envelope: Box<Envelope<ToSupervisor>>,
    },
    BadMessage {
        generation: u64,
        error: String,
    },
    Disconnected {
        generation: u64,
    },
}

/// A handle for sending to the manager thread.
pub type Inbox = mpsc::Sender<Msg>;

/// One running worker process.
struct Run {
    child: Child,
    pid: u32,
    /// Tells this run's IPC messages from those of earlier, dead runs.
    generation: u64,
    started: Instant,
    tx: Option<Sender<ToWorker>>,
    /// The interval this worker was configured with (a reload may change the config's).
    heartbeat_interval: Duration,
    /// Last sign of life: `Hello` or a heartbeat.
    last_seen: Option<Instant>,
    hello: bool,
    heartbeats: u64,
    max_gap: Option<Duration>,
    last_heartbeat: Option<Instant>,
    cpu_percent: Option<f32>,
    rss_bytes: Option<u64>,
    cpu_over_since: Option<Instant>,
    /// Set when the supervisor ends the worker itself, so its exit is attributed to the right cause.
    ending: Option<Ending>,
    /// Its IPC channel closed: the process is exiting, so look for its exit often.
    disconnected: bool,
}

struct Ending {
    reason: &'static str,
    detail: String,
    /// After a graceful `Shutdown`: kill at this instant if still alive.
    kill_at: Option<Instant>,
    /// Start again right away (config change, manual restart) instead of backing off.
    restart_now: bool,
}

/// What the manager wants for a camera.
#[derive(Clone, Copy, PartialEq)]
enum Intent {
    Run,
    Stop,
    Remove,
}

/// One camera and its worker.
struct Slot {
    cfg: CameraConfig,
    intent: Intent,
    run: Option<Run>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    failed: bool,
    restarts: u64,
    last_restart: Option<RestartRecord>,
    last_error: Option<String>,
    last_stats: Option<WorkerStats>,
    latencies_ms: VecDeque<f64>,
    stderr_tail: StderrTail,
    motion: MotionStatus,
    recordings: RecordingLog,
    /// Changed since the last publish.
    dirty: bool,
}

impl Slot {
    fn new(cfg: CameraConfig, config: &Config) -> Self {
        Slot {
            intent: if cfg.enabled {
                Intent::Run
            } else {
                Intent::Stop
            },
            cfg,
            run: None,
            backoff: Backoff::new(config.restart.clone()),
            restart_at: None,
            failed: false,
            restarts: 0,
            last_restart: None,
            last_error: None,
            last_stats: None,
            latencies_ms: VecDeque::new(),
            stderr_tail: StderrTail::default(),
            motion: MotionStatus::default(),
            recordings: RecordingLog::default(),
            dirty: true,
        }
    }

    fn state(&self) -> WorkerState {
        match (&self.run, self.intent) {
            (Some(r), _) if r.hello => WorkerState::Running,
            (Some(_), Intent::Run) => WorkerState::Starting,
            (Some(_), _) => WorkerState::Stopped,
            (None, Intent::Run) if self.failed => WorkerState::Failed,
            (None, Intent::Run) => WorkerState::Backoff,
            (None, _) => WorkerState::Stopped,
        }
    }
}

pub struct Manager {
    config: Config,
    config_path: String,
    /// The address the API actually listens on (the config's may be overridden by `--listen`).
    listen: String,
    worker_bin: PathBuf,
    slots: Vec<Slot>,
    inbox_tx: Inbox,
    inbox: mpsc::Receiver<Msg>,
    status: Arc<RwLock<Snapshot>>,
    police: Police,
    last_police: Instant,
    started: Instant,
    next_generation: u64,
    rng: u64,
    shutdown_reply: Option<oneshot::Sender<()>>,
    last_reload_error: Option<String>,
    /// The `/health` verdict last published (camera, why), so changes are logged once.
    unhealthy: Vec<(String, String)>,
    /// Where recording and motion events go to be indexed.
    archive: Archive,
    /// When every camera's status is next rebuilt, changed or not.
    next_refresh: Instant,
}

impl Manager {
    pub fn new(
        config: Config,
        config_path: String,
        listen: String,
        worker_bin: PathBuf,
        status: Arc<RwLock<Snapshot>>,
        archive: Archive,
    ) -> (Self, Inbox) {
        let (inbox_tx, inbox) = mpsc::channel();
        let slots = config
            .cameras
            .iter()
            .map(|c| Slot::new(c.clone(), &config))
            .collect();
        let mut manager = Manager {
            config,
            config_path,
            listen,
            worker_bin,
            slots,
            inbox_tx: inbox_tx.clone(),
            inbox,
            status,
            police: Police::new(),
            last_police: Instant::now(),
            started: Instant::now(),
            next_generation: 1,
            rng: nvr_proto::unix_ns() ^ u64::from(std::process::id()) | 1,
            shutdown_reply: None,
            last_reload_error: None,
            unhealthy: Vec::new(),
            archive,
            next_refresh: Instant::now(),
        };
        let _ = manager.archive.send(archive::settings(&manager.config));
        // Publish before the API serves anything, so `/health` never judges an empty camera list.
        manager.publish();
        (manager, inbox_tx)
    }

    /// Runs until a `Shutdown` command has stopped every worker.
    pub fn run(mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].intent == Intent::Run {
                self.start(i);
            }
        }
        loop {
            if let Ok(msg) = self.inbox.recv_timeout(self.until_due()) {
                self.handle(msg);
                while let Ok(msg) = self.inbox.try_recv() {
                    self.handle(msg);
                }
            }
            self.tick();
            self.publish();
            if self.shutdown_reply.is_some() && self.slots.iter().all(|s| s.run.is_none()) {
                info!("all workers stopped");
                if let Some(reply) = self.shutdown_reply.take() {
                    let _ = reply.send(());
                }
                return;
            }
        }
    }

    /// The slot whose worker is `generation`, marked as changed (a message from it is handled).
    fn slot_of(&mut self, generation: u64) -> Option<&mut Slot> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.run.as_ref().is_some_and(|r| r.generation == generation))?;
        slot.dirty = true;
        Some(slot)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Command(cmd) => self.command(cmd),
            Msg::Connected {
                generation,
                pid,
                tx,
            } => {
                if let Some(run) = self.slot_of(generation).and_then(|s| s.run.as_mut()) {
                    if pid != run.pid {
                        warn!(
                            expected = run.pid,
                            got = pid,
                            "worker connected with an unexpected pid"
                        );
                    }
                    run.tx = Some(tx);
                }
            }
            Msg::LinkFailed { generation, error } => {
                if let Some(slot) = self.slot_of(generation) {
                    warn!(camera_id = %slot.cfg.id, %error, "worker never connected; killing it");
                    slot.last_error = Some(error.clone());
                    end(slot, "hung", format!("never connected: {error}"), false);
                }
            }
            Msg::BadMessage { generation, error } => {
                if let Some(slot) = self.slot_of(generation) {
                    error!(camera_id = %slot.cfg.id, %error, "bad message from worker");
                    slot.last_error = Some(error);
                }
            }
            Msg::Disconnected { generation } => {
                // The process exit that usually follows is what the manager acts on.
                if let Some(slot) = self.slot_of(generation) {
                    if slot.intent == Intent::Run {
                        info!(camera_id = %slot.cfg.id, "worker closed its IPC channel");
                    }
                    if let Some(run) = &mut slot.run {
                        run.disconnected = true;
                    }
                }
            }
            Msg::FromWorker {
                generation,
                received_ns,
                envelope,
            } => self.on_worker_message(generation, received_ns, *envelope),
        }
    }

    fn on_worker_message(
        &mut self,
        generation: u64,
        received_ns: u64,
        env: Envelope<ToSupervisor>,
    ) {
        let heartbeat_s = self.config.heartbeat_interval_s;
        let output_dir = self.config.output_dir.display().to_string();
        let archive = self.archive.clone();
        let Some(slot) = self.slot_of(generation) else {
            return;
        };
        let now = Instant::now();
        let Some(run) = slot.run.as_mut() else { return };
        run.last_seen = Some(now);
        match env.body {
            ToSupervisor::Hello {
                camera_id, version, ..
            } => {
                if camera_id != slot.cfg.id.as_str() {
                    error!(expected = %slot.cfg.id, got = %camera_id, "worker introduced itself as another camera");
                    slot.last_error = Some(format!("worker said it is camera {camera_id:?}"));
                    end(slot, "exit", "wrong camera in Hello".into(), false);
                    return;
                }
                let configure = ToWorker::Configure(Box::new(WorkerConfig {
                    camera: slot.cfg.clone(),
                    heartbeat_interval_s: heartbeat_s,
                    output_dir,
                }));
                let sent = run.tx.as_mut().map(|tx| tx.send(&configure));
                if !matches!(sent, Some(Ok(()))) {
                    slot.last_error = Some("could not send Configure".into());
                    end(slot, "exit", "could not send Configure".into(), false);
                    return;
                }
                run.hello = true;
                run.heartbeat_interval = Duration::from_secs_f64(heartbeat_s);
                info!(camera_id = %slot.cfg.id, pid = run.pid, %version, "worker running");
            }
            ToSupervisor::Heartbeat(stats) => {
                if let Some(prev) = run.last_heartbeat.replace(now) {
                    let gap = now.duration_since(prev);
                    run.max_gap = Some(run.max_gap.map_or(gap, |m| m.max(gap)));
                }
                run.heartbeats += 1;
                let latency_ms = received_ns.saturating_sub(env.sent_at_ns) as f64 / 1e6;
                if slot.latencies_ms.len() == LATENCY_WINDOW {
                    slot.latencies_ms.pop_front();
                }
                slot.latencies_ms.push_back(latency_ms);
                slot.last_stats = Some(stats);
            }
            ToSupervisor::Event(WorkerEvent::ProtocolError { detail }) => {
                warn!(camera_id = %slot.cfg.id, %detail, "worker could not understand a message");
                slot.last_error = Some(format!("worker could not understand us: {detail}"));
            }
            ToSupervisor::Event(WorkerEvent::MotionStart(m)) => {
                info!(camera_id = %slot.cfg.id, score = m.score, latency_ms = m.latency_ms, onset_delay_ms = m.onset_delay_ms, "motion started");
                let _ = archive.send(ArchiveOp::MotionStart {
                    camera_id: slot.cfg.id.to_string(),
                    m: m.clone(),
                });
                slot.motion.active = true;
                slot.motion.events += 1;
                slot.motion.last_start = Some(m);
            }
            ToSupervisor::Event(WorkerEvent::MotionEnd {
                duration_s,
                peak_score,
            }) => {
                info!(camera_id = %slot.cfg.id, duration_s, peak_score, "motion ended");
                let _ = archive.send(ArchiveOp::MotionEnd {
                    camera_id: slot.cfg.id.to_string(),
                    duration_s,
                    peak_score,
                });
                slot.motion.active = false;
                slot.motion.last_end = Some(MotionEnd {
                    duration_s,
                    peak_score,
                });
            }
            ToSupervisor::Event(WorkerEvent::RecordingStarted(r)) => {
                info!(camera_id = %slot.cfg.id, path = %r.path, first_frame_offset_ms = r.first_frame_offset_ms, open_ms = r.open_ms, "recording started");
                let _ = archive.send(ArchiveOp::RecordingStarted {
                    camera_id: slot.cfg.id.to_string(),
                    r: r.clone(),
                });
                slot.recordings.last_started = Some(r);
            }
            ToSupervisor::Event(WorkerEvent::RecordingFinished(r)) => {
                info!(camera_id = %slot.cfg.id, path = %r.path, duration_s = r.duration_s, bytes = r.bytes, recovered = r.recovered, "recording finished");
                let _ = archive.send(ArchiveOp::RecordingFinished {
                    camera_id: slot.cfg.id.to_string(),
                    r: r.clone(),
                });
                slot.recordings.finished += 1;
                slot.recordings.last_finished = Some(r);
            }
            ToSupervisor::Event(WorkerEvent::RecordingError { detail, .. }) => {
                warn!(camera_id = %slot.cfg.id, %detail, "recording failed");
                if detail.contains("disk full") {
                    let _ = archive.send(ArchiveOp::DiskFull);
                }
                slot.recordings.last_error = Some((detail, nvr_proto::unix_ns() / 1_000_000));
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        // A reload may add, remove or reorder cameras: rebuild the whole status.
        self.next_refresh = Instant::now();
        match cmd {
            Command::Reload { config, reply } => {
                let summary = self.reload(*config);
                info!(?summary, "config reloaded");
                let _ = reply.send(summary);
            }
            Command::ReloadRejected(error) => self.last_reload_error = Some(error),
            Command::Restart { camera_id, reply } => {
                let result = match self
                    .slots
                    .iter_mut()
                    .find(|s| s.cfg.id.as_str() == camera_id)
                {
                    None => Err(format!("no camera with id {camera_id:?}")),
                    Some(slot) if slot.intent != Intent::Run => {
                        Err(format!("camera {camera_id:?} is disabled"))
                    }
                    Some(slot) => {
                        if slot.run.is_some() {
                            stop(slot, "manual", "restart requested".into(), true);
                        } else {
                            slot.restart_at = Some(Instant::now());
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Command::Shutdown { reply } => {
                info!("shutting down: stopping all workers");
                for slot in &mut self.slots {
                    slot.intent = Intent::Stop;
                    if slot.run.is_some() {
                        stop(slot, "shutdown", "supervisor shutting down".into(), false);
                    }
                }
                self.shutdown_reply = Some(reply);
            }
        }
    }

    /// Applies a new config: starts added cameras, stops removed ones, restarts changed ones.
    fn reload(&mut self, config: Config) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        self.last_reload_error = None;
        for slot in &mut self.slots {
            slot.backoff.set_policy(config.restart.clone());
            let Some(new) = config.camera(slot.cfg.id.as_str()) else {
                summary.removed.push(slot.cfg.id.to_string());
                slot.intent = Intent::Remove;
                if slot.run.is_some() {
                    stop(slot, "config_changed", "camera removed".into(), false);
                }
                continue;
            };
            if *new == slot.cfg {
                summary.unchanged += 1;
                continue;
            }
            summary.changed.push(slot.cfg.id.to_string());
            slot.cfg = new.clone();
            slot.intent = if new.enabled {
                Intent::Run
            } else {
                Intent::Stop
            };
            slot.failed = false;
            if slot.run.is_some() {
                stop(
                    slot,
                    "config_changed",
                    "camera settings changed".into(),
                    new.enabled,
                );
            } else if new.enabled {
                slot.restart_at = Some(Instant::now());
            }
        }
        for cam in &config.cameras {
            if !self.slots.iter().any(|s| s.cfg.id == cam.id) {
                summary.added.push(cam.id.to_string());
                let mut slot = Slot::new(cam.clone(), &config);
                if slot.intent == Intent::Run {
                    slot.restart_at = Some(Instant::now());
                }
                self.slots.push(slot);
            }
        }
        // Keep config order for /status.
        self.slots.sort_by_key(|s| {
            config
                .cameras
                .iter()
                .position(|c| c.id == s.cfg.id)
                .unwrap_or(usize::MAX)
        });
        self.config = config;
        let _ = self.archive.send(archive::settings(&self.config));
        summary
    }

    /// How long the manager may sleep: until the next restart or forced kill is due, at most [`TICK`],
    /// and [`REAP_POLL`] while a worker is on its way out.
    fn until_due(&self) -> Duration {
        let mut runs = self.slots.iter().filter_map(|s| s.run.as_ref());
        if runs.any(|r| r.disconnected || r.ending.is_some()) {
            return REAP_POLL;
        }
        let now = Instant::now();
        self.slots
            .iter()
            .flat_map(|s| {
                let kill_at = s.run.as_ref().and_then(|r| r.ending.as_ref()?.kill_at);
                [s.restart_at, kill_at]
            })
            .flatten()
            .map(|t| t.saturating_duration_since(now))
            .fold(TICK, Duration::min)
    }

    /// Reaps exits, starts due workers, kills hung or stalled ones, polices resources.
    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.reap(i, now);
            let slot = &mut self.slots[i];
            if let Some(run) = &mut slot.run {
                if let Some(kill_at) = run.ending.as_ref().and_then(|e| e.kill_at) {
                    if now >= kill_at {
                        warn!(camera_id = %slot.cfg.id, pid = run.pid, "worker ignored Shutdown; killing it");
                        let _ = run.child.kill();
                        if let Some(e) = &mut run.ending {
                            e.kill_at = None;
                        }
                    }
                } else if run.ending.is_none() {
                    if let Some(detail) = hung(run, now) {
                        warn!(camera_id = %slot.cfg.id, pid = run.pid, %detail, "worker hung; killing it");
                        end(slot, "hung", detail, false);
                    }
                }
            } else if slot.intent == Intent::Run && slot.restart_at.is_some_and(|t| now >= t) {
                self.start(i);
            }
        }
        // A removal changes the count of slots, which makes `publish` rebuild every camera.
        self.slots
            .retain(|s| !(s.intent == Intent::Remove && s.run.is_none()));
        if now.duration_since(self.last_police) >= POLICE_EVERY {
            self.last_police = now;
            self.police(now);
        }
    }

    /// If slot `i`'s worker has exited, records why and schedules its restart.
    fn reap(&mut self, i: usize, now: Instant) {
        let jitter = self.next_random();
        let slot = &mut self.slots[i];
        let Some(run) = &mut slot.run else { return };
        let status = match run.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return,
            Err(e) => {
                error!(camera_id = %slot.cfg.id, error = %e, "cannot wait for worker");
                return;
            }
        };
        let run = slot.run.take().expect("checked above");
        slot.dirty = true;
        slot.last_stats = None;
        slot.motion.active = false;
        let ran_for = now.duration_since(run.started);
        let (reason, detail, restart_now) = match run.ending {
            Some(e) => (e.reason, e.detail, e.restart_now),
            None => {
                let (reason, detail) = describe_exit(status);
                (reason, detail, false)
            }
        };
        if slot.intent != Intent::Run {
            info!(camera_id = %slot.cfg.id, pid = run.pid, %detail, "worker stopped");
            // A worker that exited cleanly removed its frame ring; one that was killed did not.
            if let Err(e) = shm_bus::remove_stale(slot.cfg.id.as_str()) {
                warn!(camera_id = %slot.cfg.id, error = %e, "cannot remove the frame ring");
            }
            return;
        }
        let (delay_s, failed) = if restart_now {
            (0.0, false)
        } else {
            let now_s = now.duration_since(self.started).as_secs_f64();
            let d = slot.backoff.on_exit(now_s, ran_for.as_secs_f64(), jitter);
            (d.delay_s, d.failed)
        };
        slot.failed = failed;
        slot.restarts += 1;
        slot.restart_at = Some(now + Duration::from_secs_f64(delay_s));
        slot.last_restart = Some(RestartRecord {
            reason,
            detail: detail.clone(),
            at_unix_ms: nvr_proto::unix_ns() / 1_000_000,
        });
        if failed {
            error!(camera_id = %slot.cfg.id, pid = run.pid, reason, %detail, delay_s, "worker failed too often; retrying at the longest delay");
        } else {
            warn!(camera_id = %slot.cfg.id, pid = run.pid, reason, %detail, delay_s, ran_for_s = ran_for.as_secs_f64(), "worker exited; restarting");
        }
    }

    fn start(&mut self, i: usize) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let heartbeat = Duration::from_secs_f64(self.config.heartbeat_interval_s);
        let inbox = self.inbox_tx.clone();
        let slot = &mut self.slots[i];
        slot.restart_at = None;
        slot.dirty = true;
        let spawned = Listener::new()
            .map_err(|e| e.to_string())
            .and_then(|listener| {
                let child = process::spawn_worker(
                    &self.worker_bin,
                    &slot.cfg.id,
                    listener.name(),
                    Arc::clone(&slot.stderr_tail),
                )
                .map_err(|e| format!("cannot start {}: {e}", self.worker_bin.display()))?;
                let accept_timeout = STARTUP_GRACE + heartbeat;
                std::thread::Builder::new()
                    .name(format!("link-{}", slot.cfg.id))
                    .spawn(move || link_thread(listener, generation, accept_timeout, inbox))
                    .map_err(|e| e.to_string())?;
                Ok(child)
            });
        match spawned {
            Ok(child) => {
                let pid = child.id();
                info!(camera_id = %slot.cfg.id, pid, "worker started");
                slot.run = Some(Run {
                    child,
                    pid,
                    generation,
                    started: Instant::now(),
                    tx: None,
                    heartbeat_interval: heartbeat,
                    last_seen: None,
                    hello: false,
                    heartbeats: 0,
                    max_gap: None,
                    last_heartbeat: None,
                    cpu_percent: None,
                    rss_bytes: None,
                    cpu_over_since: None,
                    ending: None,
                    disconnected: false,
                });
            }
            Err(e) => {
                error!(camera_id = %slot.cfg.id, error = %e, "cannot start worker");
                slot.last_error = Some(e.clone());
                let now_s = self.started.elapsed().as_secs_f64();
                let d = slot.backoff.on_exit(now_s, 0.0, 0.5);
                slot.failed = d.failed;
                slot.restart_at = Some(Instant::now() + Duration::from_secs_f64(d.delay_s));
                slot.last_restart = Some(RestartRecord {
                    reason: "spawn",
                    detail: e,
                    at_unix_ms: nvr_proto::unix_ns() / 1_000_000,
                });
            }
        }
    }

    fn police(&mut self, now: Instant) {
        let pids: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|s| s.run.as_ref().map(|r| r.pid))
            .collect();
        if pids.is_empty() {
            return;
        }
        let usage = self.police.sample(&pids);
        for slot in &mut self.slots {
            let Some(run) = &mut slot.run else { continue };
            let Some(u) = usage.get(&run.pid) else {
                continue;
            };
            run.cpu_percent = Some(u.cpu_percent);
            run.rss_bytes = Some(u.rss_bytes);
            if run.ending.is_some() {
                continue;
            }
            if let Some(v) = police::judge(&slot.cfg.limits, *u, &mut run.cpu_over_since, now) {
                warn!(camera_id = %slot.cfg.id, pid = run.pid, reason = v.reason, detail = %v.detail, "worker over its limit; restarting it");
                end(slot, v.reason, v.detail, false);
            }
        }
    }

    fn next_random(&mut self) -> f64 {
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let everything = now >= self.next_refresh;
        if !everything && !self.slots.iter().any(|s| s.dirty) {
            return;
        }
        let status = Arc::clone(&self.status);
        let Ok(mut snapshot) = status.write() else {
            return;
        };
        if everything || snapshot.cameras.len() != self.slots.len() {
            snapshot.cameras = self.slots.iter().map(|s| camera_status(s, now)).collect();
            self.next_refresh = now + REFRESH_EVERY;
        } else {
            for (c, s) in snapshot.cameras.iter_mut().zip(&self.slots) {
                if s.dirty {
                    *c = camera_status(s, now);
                }
            }
        }
        for s in &mut self.slots {
            s.dirty = false;
        }
        snapshot.supervisor = SupervisorInfo {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config_path: self.config_path.clone(),
            listen: self.listen.clone(),
            last_reload_error: self.last_reload_error.clone(),
        };
        let unhealthy = snapshot.unhealthy();
        drop(snapshot);
        if unhealthy != self.unhealthy {
            if unhealthy.is_empty() {
                info!("health: ok, every camera is running with its streams up");
            } else {
                for (camera_id, why) in unhealthy.iter().filter(|u| !self.unhealthy.contains(u)) {
                    warn!(%camera_id, %why, "health: camera not healthy");
                }
            }
            self.unhealthy = unhealthy;
        }
    }
}

/// Why a worker that was not told to stop is no longer alive, or `None` if it looks fine.
fn hung(run: &Run, now: Instant) -> Option<String> {
    let allowance = run.heartbeat_interval.mul_f64(MISSED_HEARTBEATS);
    match run.last_seen {
        None if now.duration_since(run.started) > STARTUP_GRACE + allowance => Some(format!(
            "no Hello within {:.0} s of starting",
            (STARTUP_GRACE + allowance).as_secs_f64()
        )),
        Some(seen) if run.hello && now.duration_since(seen) > allowance => Some(format!(
            "no heartbeat for {:.1} s (interval {:.1} s)",
            now.duration_since(seen).as_secs_f64(),
            run.heartbeat_interval.as_secs_f64()
        )),
        _ => None,
    }
}

/// Kills the slot's worker now, recording why.
fn end(slot: &mut Slot, reason: &'static str, detail: String, restart_now: bool) {
    slot.dirty = true;
    if let Some(run) = &mut slot.run {
        let _ = run.child.kill();
        run.ending = Some(Ending {
            reason,
            detail,
            kill_at: None,
            restart_now,
        });
    }
}

/// Asks the slot's worker to shut down, killing it if it has not exited by the deadline.
fn stop(slot: &mut Slot, reason: &'static str, detail: String, restart_now: bool) {
    slot.dirty = true;
    let Some(run) = &mut slot.run else { return };
    let asked = run.tx.as_mut().map(|tx| {
        tx.send(&ToWorker::Shutdown {
            deadline_ms: SHUTDOWN_DEADLINE.as_millis() as u64,
        })
    });
    if !matches!(asked, Some(Ok(()))) {
        return end(slot, reason, detail, restart_now);
    }
    run.ending = Some(Ending {
        reason,
        detail,
        kill_at: Some(Instant::now() + SHUTDOWN_DEADLINE),
        restart_now,
    });
}

/// The restart reason and a sentence for an exit the supervisor did not cause.
fn describe_exit(status: ExitStatus) -> (&'static str, String) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (
            "exit",
            format!("exited with code {code} ({})", exit_code::describe(code)),
        ),
        (None, Some(sig)) => ("signal", format!("killed by signal {sig}")),
        _ => ("exit", status.to_string()),
    }
}

/// Accepts the worker's connection, then forwards everything it sends to the manager.
fn link_thread(listener: Listener, generation: u64, timeout: Duration, inbox: Inbox) {
    let (pid, rx, tx) = match listener.accept(timeout) {
        Ok(link) => link,
        Err(e) => {
            let _ = inbox.send(Msg::LinkFailed {
                generation,
                error: e.to_string(),
            });
            return;
        }
    };
    if inbox
        .send(Msg::Connected {
            generation,
            pid,
            tx,
        })
        .is_err()
    {
        return;
    }
    loop {
        let msg = match rx.recv() {
            Ok(envelope) => Msg::FromWorker {
                generation,
                received_ns: nvr_proto::unix_ns(),
                envelope: Box::new(envelope),
            },
            Err(LinkError::Decode(e)) => Msg::BadMessage {
                generation,
                error: e.to_string(),
            },
            Err(_) => {
                let _ = inbox.send(Msg::Disconnected { generation });
                return;
            }
        };
        if inbox.send(msg).is_err() {
            return;
        }
    }
}

fn camera_status(slot: &Slot, now: Instant) -> CameraStatus {
    let run = slot.run.as_ref();
    let latencies: Vec<f64> = slot.latencies_ms.iter().copied().collect();
    CameraStatus {
        id: slot.cfg.id.to_string(),
        name: slot.cfg.name.clone(),
        enabled: slot.cfg.enabled,
        state: slot.state(),
        pid: run.map(|r| r.pid),
        uptime_s: run.map(|r| now.duration_since(r.started).as_secs_f64()),
        restarts: slot.restarts,
        last_restart: slot.last_restart.clone(),
        next_restart_in_s: slot
            .restart_at
            .filter(|_| run.is_none())
            .map(|t| t.saturating_duration_since(now).as_secs_f64()),
        heartbeats: run.map_or(0, |r| r.heartbeats),
        heartbeat_age_ms: run
            .and_then(|r| r.last_heartbeat)
            .map(|t| now.duration_since(t).as_secs_f64() * 1e3),
        max_heartbeat_gap_ms: run.and_then(|r| r.max_gap).map(|g| g.as_secs_f64() * 1e3),
        heartbeat_latency: latencies.last().map(|last| Latency {
            last_ms: *last,
            p50_ms: percentile(&latencies, 50.0).unwrap_or(*last),
            p99_ms: percentile(&latencies, 99.0).unwrap_or(*last),
        }),
        cpu_percent: run.and_then(|r| r.cpu_percent),
        rss_mb: run.and_then(|r| r.rss_bytes).map(|b| b as f64 / 1e6),
        worker: slot.last_stats.clone(),
        last_error: slot.last_error.clone(),
        stderr_tail: slot
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default(),
        motion: slot.motion.clone(),
        recordings: slot.recordings.clone(),
        main_url: redact_url(&slot.cfg.main_url),
        sub_url: slot.cfg.sub_url.as_deref().map(redact_url),
    }
}
