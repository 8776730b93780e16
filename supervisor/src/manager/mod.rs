//! The worker manager: one thread that owns every camera's worker process.
//!
//! Everything reaches it as a [`Msg`] on one channel (IPC messages from the per-worker `link`
//! threads, and commands from the API and signal handlers). Decisions are not taken here: each
//! camera's `Lifecycle` (pure, table-tested with simulated time) is told what happened and returns
//! `Action`s, which this thread carries out (spawn, kill, send `Shutdown`, remove a frame ring). A
//! reload is sorted by the pure `reload::diff`. Between messages the thread ticks (every `TICK`, or
//! sooner when something is due) to reap exits and carry out what fell due; resources are sampled
//! every `POLICE_EVERY`. After every pass it publishes to the [`Snapshot`] the API reads: the
//! cameras that changed at once, all of them every `REFRESH_EVERY` (for ages and CPU figures).

mod backoff;
mod lifecycle;
mod link;
mod police;
pub(crate) mod process;
mod ptz;
mod reload;
mod report;

use crate::archive::{self, Archive, ArchiveOp};
use crate::mode::{self, ModeStatus, Override};
use crate::notify::{Note, Notifier};
use crate::state::StateStore;
use crate::status::{
    MotionEnd, MotionStatus, RecordingLog, RestartReason, Snapshot, SupervisorInfo, WorkerState,
};
use lifecycle::{Action, AfterExit, Exit, Intent, KillCause, Lifecycle, RestartRefused};
use nvr_config::{CameraConfig, Config};
use nvr_proto::link::{Listener, Sender};
use nvr_proto::{
    CameraSettings, Envelope, RecordingErrorKind, ToSupervisor, ToWorker, WorkerConfig,
    WorkerEvent, WorkerStats,
};
use police::Police;
use process::StderrTail;
use report::WallClock;
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{mpsc, Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

pub use lifecycle::SHUTDOWN_DEADLINE;
pub use ptz::PtzResult;
pub use reload::ReloadSummary;

/// How often the manager looks at its workers when no message arrives and nothing is due sooner (a
/// dying worker's closed IPC channel is a message, so exits are noticed at once).
const TICK: Duration = Duration::from_millis(500);
/// How often an exiting worker (channel closed, or being ended) is looked for.
const REAP_POLL: Duration = Duration::from_millis(10);
/// How often CPU and memory are sampled.
const POLICE_EVERY: Duration = Duration::from_secs(1);
/// How often every camera's status is rebuilt even if nothing was reported (ages, countdowns).
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Heartbeat latencies kept per camera for the percentiles in `/status`.
const LATENCY_WINDOW: usize = 200;

/// A request to the manager from the API or a signal handler.
pub enum Command {
    /// Apply a newly loaded config. `api_restart_needed` names the API's own settings that wait
    /// for a restart; the summary's `restart_needed` holds them and the manager's, and `/status`
    /// shows the same list before the answer is sent.
    Reload {
        config: Box<Config>,
        api_restart_needed: Vec<String>,
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
    /// Set (`Some`) or end (`None`) the mode override of one camera, or of every camera
    /// (`camera_id: None`). Answers with the affected cameras' modes, or why nothing changed.
    SetOverride {
        camera_id: Option<String>,
        change: Option<Override>,
        reply: oneshot::Sender<Result<Vec<(String, ModeStatus)>, OverrideError>>,
    },
    /// A pan-tilt-zoom command for a camera's worker. Answered with the worker's reply, or at once
    /// when it cannot be sent (`None`: no such camera).
    Ptz {
        camera_id: String,
        command: nvr_proto::ptz::PtzCommand,
        reply: ptz::PtzReply,
    },
    /// Try motion sensitivity on the running worker without saving it (`Some`), for a while, or
    /// end the trial (`None`): the set-up page's live readout while a slider moves.
    PreviewMotion {
        camera_id: String,
        preview: Option<MotionPreview>,
        reply: oneshot::Sender<Result<(), PreviewError>>,
    },
    /// The modes a camera's config gives over `[from_ms, to_ms)` (its schedule's intervals).
    Schedule {
        camera_id: String,
        from_ms: i64,
        to_ms: i64,
        reply: oneshot::Sender<Option<serde_json::Value>>,
    },
}

/// Motion sensitivity being tried on a running worker, not saved: it ends at `until` (or a
/// reload, a worker restart, or `None`), and the worker goes back to the config's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionPreview {
    /// `None`: the config's.
    pub threshold: Option<u8>,
    pub min_area: Option<f64>,
    pub until: Instant,
}

/// Why a motion preview was not started.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("no camera with id {0:?}")]
    UnknownCamera(String),
    #[error("the camera's worker is not running with motion detection on; try again when it runs")]
    NotRunning,
}

/// Why an override was not changed.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("no camera with id {0:?}")]
    UnknownCamera(String),
    #[error("cannot save the override: {0}")]
    Store(String),
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

/// A running worker process: what the manager needs to act on it and to report its resources.
struct Process {
    child: Child,
    /// Its command channel, once it has connected.
    tx: Option<Sender<ToWorker>>,
    /// The last resource sample, for `/status`.
    cpu_percent: Option<f32>,
    rss_bytes: Option<u64>,
    /// CPU seconds the process has used, at the last sample.
    cpu_s: f64,
}

/// One camera: its settings, its lifecycle, its process, and what its worker last reported.
struct Slot {
    /// The settings in force (a reload replaces them).
    cfg: CameraConfig,
    /// When to start, stop, kill and restart its worker.
    life: Lifecycle,
    /// The worker process, while the lifecycle has a run.
    process: Option<Process>,
    /// The last IPC or spawn problem, for `/status`.
    last_error: Option<String>,
    /// The worker's own figures from its last heartbeat (cleared when it exits).
    last_stats: Option<WorkerStats>,
    /// Recent heartbeat latencies, for the percentiles in `/status`.
    latencies_ms: VecDeque<f64>,
    /// The last lines the worker wrote to stderr (filled by the process module's reader thread).
    stderr_tail: StderrTail,
    motion: MotionStatus,
    recordings: RecordingLog,
    /// The recording mode in force and why (recomputed at its `recheck_at_ms`, and after a reload
    /// or an override change).
    mode: ModeStatus,
    /// When `mode` was worked out, Unix ms (a wall clock that went back makes it stale).
    mode_at_ms: i64,
    /// The settings the running worker has (its `Configure` or last `Update`); `None` until it
    /// said `Hello`.
    sent: Option<CameraSettings>,
    /// Motion sensitivity being tried, not saved (the set-up page's sliders).
    motion_preview: Option<MotionPreview>,
    /// Changed since the last publish.
    dirty: bool,
    /// Counters since the supervisor started; `totals.cpu_s` holds the CPU of exited processes
    /// (the running one's is added when published).
    totals: crate::status::Totals,
}

impl Slot {
    /// Sends `msg` to the worker; false when it has no channel yet or the channel is broken.
    fn send(&mut self, msg: &ToWorker) -> bool {
        let tx = self.process.as_mut().and_then(|p| p.tx.as_mut());
        matches!(tx.map(|tx| tx.send(msg)), Some(Ok(())))
    }

    fn new(cfg: CameraConfig, config: &Config, epoch: Instant, now: Instant) -> Self {
        let fixed_mode = cfg.recording.mode;
        Slot {
            life: Lifecycle::new(cfg.enabled, config.restart.clone(), epoch, now),
            cfg,
            process: None,
            last_error: None,
            last_stats: None,
            latencies_ms: VecDeque::new(),
            stderr_tail: StderrTail::default(),
            motion: MotionStatus::default(),
            recordings: RecordingLog::default(),
            mode: ModeStatus {
                current: fixed_mode,
                source: "config".into(),
                override_until_ms: None,
                next: None,
                recheck_at_ms: None,
            },
            mode_at_ms: i64::MIN,
            sent: None,
            motion_preview: None,
            dirty: true,
            totals: Default::default(),
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
    /// When the manager started: the epoch of restart policies, and the wall clock of `/status`.
    clock: WallClock,
    next_generation: u64,
    /// The last `request_id` sent to a worker.
    next_request_id: u64,
    /// PTZ requests waiting for their worker's answer.
    ptz: ptz::Pending,
    /// State of the jitter generator (xorshift64).
    rng: u64,
    shutdown_reply: Option<oneshot::Sender<()>>,
    last_reload_error: Option<String>,
    /// The `/health` verdict last published (camera, why), so changes are logged once.
    unhealthy: Vec<(String, String)>,
    /// Where recording and motion events go to be indexed.
    archive: Archive,
    /// When every camera's status is next rebuilt, changed or not.
    next_refresh: Instant,
    /// systemd's watchdog, pinged from this loop when the service has one.
    watchdog: Option<crate::systemd::Watchdog>,
    /// Settings a reload changed that take effect only at the next start (`/status`).
    restart_needed: Vec<String>,
    /// Where overrides are kept across restarts (`None`: the state file could not be opened;
    /// overrides then fail with a clear error).
    store: Option<StateStore>,
    /// The mode overrides in force, by camera id.
    overrides: BTreeMap<String, Override>,
    /// Every camera's mode must be worked out again (a reload, an override change).
    modes_stale: bool,
    /// Where motion, status and recording-state changes go to be published (MQTT).
    notifier: Notifier,
    /// Beaten after every pass of the loop: `/health`'s liveness signal.
    pulse: crate::liveness::Pulse,
}

impl Manager {
    pub fn new(
        config: Config,
        config_path: String,
        listen: String,
        worker_bin: PathBuf,
        status: Arc<RwLock<Snapshot>>,
        archive: Archive,
        store: Option<StateStore>,
    ) -> (Self, Inbox) {
        let overrides = match store.as_ref().map(StateStore::overrides) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                error!(error = %e, "cannot read the stored mode overrides");
                BTreeMap::new()
            }
            None => BTreeMap::new(),
        };
        for (camera_id, o) in &overrides {
            info!(%camera_id, mode = %o.mode, until_ms = o.until_ms, "mode override restored");
        }
        let (inbox_tx, inbox) = mpsc::channel();
        let clock = WallClock::now();
        let started = clock.started;
        let slots = config
            .cameras
            .iter()
            .map(|c| Slot::new(c.clone(), &config, started, started))
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
            last_police: started,
            clock,
            next_generation: 1,
            next_request_id: 0,
            ptz: ptz::Pending::default(),
            rng: nvr_proto::unix_ns() ^ u64::from(std::process::id()) | 1,
            shutdown_reply: None,
            last_reload_error: None,
            unhealthy: Vec::new(),
            archive,
            next_refresh: started,
            watchdog: crate::systemd::Watchdog::from_env(),
            restart_needed: Vec::new(),
            store,
            overrides,
            modes_stale: true,
            notifier: Notifier::default(),
            pulse: crate::liveness::Pulse::default(),
        };
        manager.sync_modes(started);
        let _ = manager.archive.send(archive::settings(&manager.config));
        // Publish before the API serves anything, so `/health` never judges an empty camera list.
        manager.publish();
        (manager, inbox_tx)
    }

    /// Sends motion, status and recording-state changes to `notifier` from now on.
    pub fn set_notifier(&mut self, notifier: Notifier) {
        self.notifier = notifier;
        self.notify_cameras();
        self.next_refresh = Instant::now();
    }

    /// Tells the notifier which cameras there are (at start and after a reload).
    fn notify_cameras(&self) {
        self.notifier.send(Note::Cameras(
            self.config
                .cameras
                .iter()
                .map(|c| (c.id.to_string(), c.name.clone()))
                .collect(),
        ));
        self.notifier
            .send(Note::Rules(crate::notify::gate::rules(&self.config)));
    }

    /// The loop's liveness signal, for `/health`.
    pub fn pulse(&self) -> crate::liveness::Pulse {
        self.pulse.clone()
    }

    /// Runs until a `Shutdown` command has stopped every worker.
    pub fn run(mut self) {
        loop {
            if let Some(w) = &mut self.watchdog {
                w.tick(Instant::now());
            }
            self.tick();
            self.publish();
            self.pulse.beat(Instant::now());
            if self.shutdown_reply.is_some() && self.slots.iter().all(|s| s.process.is_none()) {
                info!("all workers stopped");
                if let Some(reply) = self.shutdown_reply.take() {
                    let _ = reply.send(());
                }
                return;
            }
            if let Ok(msg) = self.inbox.recv_timeout(self.until_due()) {
                self.handle(msg);
                while let Ok(msg) = self.inbox.try_recv() {
                    self.handle(msg);
                }
            }
        }
    }

    /// The slot whose worker is `generation`, marked as changed (a message from it is handled).
    fn slot_of(&mut self, generation: u64) -> Option<&mut Slot> {
        let slot = self.slots.iter_mut().find(|s| s.life.owns(generation))?;
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
                let Some(slot) = self.slot_of(generation) else {
                    return;
                };
                let expected = slot.life.run().map(|r| r.pid);
                if expected != Some(pid) {
                    warn!(
                        ?expected,
                        got = pid,
                        "worker connected with an unexpected pid"
                    );
                }
                if let Some(p) = &mut slot.process {
                    p.tx = Some(tx);
                }
            }
            Msg::LinkFailed { generation, error } => {
                if let Some(slot) = self.slot_of(generation) {
                    warn!(camera_id = %slot.cfg.id, %error, "worker never connected; killing it");
                    let detail = format!("never connected: {error}");
                    slot.last_error = Some(error);
                    let action = slot.life.end(RestartReason::Hung, detail, false);
                    carry_out(slot, action);
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
                    if slot.life.intent() == Intent::Run {
                        info!(camera_id = %slot.cfg.id, "worker closed its IPC channel");
                    }
                    slot.life.disconnected();
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
        if let ToSupervisor::PtzReply { request_id, result } = env.body {
            if !self.ptz.answer(request_id, generation, result) {
                info!(
                    request_id,
                    "a PTZ answer came after its request was answered"
                );
            }
            return;
        }
        let heartbeat_s = self.config.heartbeat_interval_s;
        let output_dir = self.config.output_dir.display().to_string();
        let archive = self.archive.clone();
        let notifier = self.notifier.clone();
        let Some(slot) = self.slot_of(generation) else {
            return;
        };
        let now = Instant::now();
        slot.life.seen(now);
        let camera_id = slot.cfg.id.to_string();
        match env.body {
            ToSupervisor::Hello {
                camera_id: said, ..
            } if said != camera_id => {
                error!(expected = %camera_id, got = %said, "worker introduced itself as another camera");
                slot.last_error = Some(format!("worker said it is camera {said:?}"));
                let action =
                    slot.life
                        .end(RestartReason::Exit, "wrong camera in Hello".into(), false);
                carry_out(slot, action);
            }
            ToSupervisor::Hello { version, .. } => {
                let settings = desired_settings(slot);
                slot.sent = Some(settings.clone());
                let configure = ToWorker::Configure(Box::new(WorkerConfig {
                    camera: settings,
                    heartbeat_interval_s: heartbeat_s,
                    output_dir,
                }));
                if !slot.send(&configure) {
                    slot.last_error = Some("could not send Configure".into());
                    let action = slot.life.end(
                        RestartReason::Exit,
                        "could not send Configure".into(),
                        false,
                    );
                    carry_out(slot, action);
                    return;
                }
                slot.life.hello(now, Duration::from_secs_f64(heartbeat_s));
                let pid = slot.life.run().map(|r| r.pid);
                info!(%camera_id, pid, %version, mode = %slot.mode.current, "worker running");
            }
            ToSupervisor::Heartbeat(stats) => {
                slot.life.heartbeat(now);
                let latency_ms = received_ns.saturating_sub(env.sent_at_ns) as f64 / 1e6;
                if slot.latencies_ms.len() == LATENCY_WINDOW {
                    slot.latencies_ms.pop_front();
                }
                slot.latencies_ms.push_back(latency_ms);
                slot.totals.heartbeat_latency.observe(latency_ms / 1e3);
                slot.last_stats = Some(stats);
            }
            ToSupervisor::Event(event) => on_event(slot, camera_id, event, &archive, &notifier),
            ToSupervisor::Reply {
                request_id,
                error: None,
            } => info!(%camera_id, request_id, "worker applied the new settings in place"),
            ToSupervisor::Reply {
                request_id,
                error: Some(error),
            } => {
                // It could not take them in place: a new worker takes them at start.
                warn!(%camera_id, request_id, %error, "worker refused the new settings; restarting it");
                slot.last_error = Some(format!("settings update refused: {error}"));
                let action = slot.life.reconfigured(now, slot.cfg.enabled);
                carry_out(slot, action);
            }
            ToSupervisor::Probed(_) => {
                warn!(%camera_id, "a camera's worker sent a probe answer; ignored")
            }
            ToSupervisor::PtzReply { .. } => {}
        }
    }

    fn command(&mut self, cmd: Command) {
        // Every command may change any camera (a reload may add, remove or reorder them): rebuild
        // the whole status at the next publish.
        let now = Instant::now();
        self.next_refresh = now;
        match cmd {
            Command::Reload {
                config,
                api_restart_needed,
                reply,
            } => {
                let mut summary = self.reload(*config, now);
                let mut restart_needed = api_restart_needed;
                restart_needed.append(&mut summary.restart_needed);
                self.restart_needed = restart_needed.clone();
                summary.restart_needed = restart_needed;
                info!(
                    added = summary.added.join(","),
                    removed = summary.removed.join(","),
                    changed = summary.changed.join(","),
                    "config reloaded"
                );
                // Whoever reads `/status` after the answer sees this reload.
                self.publish();
                let _ = reply.send(summary);
            }
            Command::ReloadRejected(error) => self.last_reload_error = Some(error),
            Command::SetOverride {
                camera_id,
                change,
                reply,
            } => {
                let _ = reply.send(self.set_override(camera_id, change));
            }
            Command::PreviewMotion {
                camera_id,
                preview,
                reply,
            } => {
                let _ = reply.send(self.preview_motion(&camera_id, preview, now));
            }
            Command::Ptz {
                camera_id,
                command,
                reply,
            } => {
                let result = self.ptz_command(&camera_id, command, reply, now);
                if let Some((reply, result)) = result {
                    let _ = reply.send(result);
                }
            }
            Command::Schedule {
                camera_id,
                from_ms,
                to_ms,
                reply,
            } => {
                let _ = reply.send(self.schedule_view(&camera_id, from_ms, to_ms));
            }
            Command::Restart { camera_id, reply } => {
                let result = match self
                    .slots
                    .iter_mut()
                    .find(|s| s.cfg.id.as_str() == camera_id)
                {
                    None => Err(format!("no camera with id {camera_id:?}")),
                    Some(slot) => match slot.life.restart_requested(now) {
                        Err(RestartRefused::NotRunning) => {
                            Err(format!("camera {camera_id:?} is disabled"))
                        }
                        Ok(action) => {
                            carry_out(slot, action);
                            Ok(())
                        }
                    },
                };
                let _ = reply.send(result);
            }
            Command::Shutdown { reply } => {
                info!("shutting down: stopping all workers");
                for slot in &mut self.slots {
                    let action = slot.life.shutdown(now);
                    carry_out(slot, action);
                }
                self.shutdown_reply = Some(reply);
            }
        }
    }

    /// Applies a new config: starts added cameras, stops removed ones, restarts changed ones.
    fn reload(&mut self, mut config: Config, now: Instant) -> ReloadSummary {
        // The archive, the index and the API serve the directory the supervisor started with;
        // workers must keep writing there until a restart moves everything at once.
        let output_dir_changed = config.output_dir != self.config.output_dir;
        let webhooks_changed = config.webhooks != self.config.webhooks;
        let metrics_changed = config.metrics != self.config.metrics;
        config.output_dir = self.config.output_dir.clone();
        let current: Vec<CameraConfig> = self.slots.iter().map(|s| s.cfg.clone()).collect();
        let summary = reload::diff(&current, &config.cameras);
        self.last_reload_error = None;
        for slot in &mut self.slots {
            slot.life.set_policy(config.restart.clone());
            let action = match config.camera(slot.cfg.id.as_str()) {
                None => slot.life.removed(now),
                Some(new) if *new == slot.cfg => continue,
                Some(new) if reload::in_place(&slot.cfg, new) => {
                    // `sync_modes` sends the new settings, with the mode in force, as an `Update`;
                    // saved settings end a preview.
                    slot.cfg = new.clone();
                    slot.motion_preview = None;
                    slot.dirty = true;
                    continue;
                }
                Some(new) => {
                    slot.cfg = new.clone();
                    slot.life.reconfigured(now, new.enabled)
                }
            };
            carry_out(slot, action);
        }
        for id in &summary.added {
            if let Some(cam) = config.camera(id) {
                self.slots
                    .push(Slot::new(cam.clone(), &config, self.clock.started, now));
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
        self.notify_cameras();
        let mut summary = summary;
        if output_dir_changed {
            summary.restart_needed.push("output_dir".into());
        }
        if webhooks_changed {
            summary.restart_needed.push("webhooks".into());
        }
        if metrics_changed {
            summary.restart_needed.push("metrics".into());
        }
        self.modes_stale = true;
        self.sync_modes(now);
        summary
    }

    /// Works out every camera's mode where it may have changed (a transition or an override's end
    /// fell due, a reload, an override change), ends overrides whose time is up, and brings each
    /// running worker's settings in line: an `Update` when it can take them in place (always, for
    /// a camera with a schedule: its MAIN stream stays connected), else a restart.
    fn sync_modes(&mut self, now: Instant) {
        let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
        let Manager {
            slots,
            config,
            overrides,
            store,
            modes_stale,
            next_request_id,
            ..
        } = self;
        for slot in slots.iter_mut() {
            let id = slot.cfg.id.to_string();
            let id = id.as_str();
            let mut stale = *modes_stale
                || now_ms < slot.mode_at_ms
                || slot.mode.recheck_at_ms.is_some_and(|t| now_ms >= t);
            if overrides.get(id).is_some_and(|o| !o.active(now_ms)) {
                overrides.remove(id);
                if let Some(Err(e)) = store.as_ref().map(|s| s.clear_override(id)) {
                    warn!(camera_id = %id, error = %e, "cannot remove the ended override from the state file");
                }
                info!(camera_id = %id, "mode override ended");
                stale = true;
            }
            if stale {
                let m = mode::resolve(
                    &slot.cfg,
                    config.schedule_of(&slot.cfg),
                    overrides.get(id),
                    now_ms,
                );
                if m.current != slot.mode.current {
                    info!(camera_id = %id, from = %slot.mode.current, to = %m.current, source = %m.source, "recording mode changes");
                }
                if m != slot.mode {
                    slot.dirty = true;
                }
                slot.mode = m;
                slot.mode_at_ms = now_ms;
            }
            if slot.motion_preview.as_ref().is_some_and(|p| now >= p.until)
                || (slot.motion_preview.is_some() && slot.life.state() != WorkerState::Running)
            {
                info!(camera_id = %id, "motion preview ended");
                slot.motion_preview = None;
                slot.dirty = true;
            }
            let Some(sent) = &slot.sent else { continue };
            if slot.life.state() != WorkerState::Running {
                continue;
            }
            let want = desired_settings(slot);
            if *sent == want {
                continue;
            }
            if sent.live_only_change(&want) {
                *next_request_id += 1;
                let update = ToWorker::Update {
                    request_id: *next_request_id,
                    settings: Box::new(want.clone()),
                };
                if slot.send(&update) {
                    info!(camera_id = %id, request_id = *next_request_id, mode = %slot.mode.current, "new settings sent to the worker");
                } else {
                    // A broken channel means the worker is exiting; its successor is configured afresh.
                    warn!(camera_id = %id, "could not send the new settings; the next worker takes them");
                }
                slot.sent = Some(want);
            } else {
                info!(camera_id = %id, mode = %slot.mode.current, "the worker cannot take these settings in place; restarting it");
                slot.sent = None;
                let action = slot.life.reconfigured(now, slot.cfg.enabled);
                carry_out(slot, action);
            }
        }
        *modes_stale = false;
    }

    /// Sets or ends an override, stored first: nothing changes when it cannot be stored.
    fn set_override(
        &mut self,
        camera_id: Option<String>,
        change: Option<Override>,
    ) -> Result<Vec<(String, ModeStatus)>, OverrideError> {
        let ids: Vec<String> = match &camera_id {
            Some(id) if self.config.camera(id).is_none() => {
                return Err(OverrideError::UnknownCamera(id.clone()))
            }
            Some(id) => vec![id.clone()],
            None => self.slots.iter().map(|s| s.cfg.id.to_string()).collect(),
        };
        let store = self.store.as_ref().ok_or_else(|| {
            OverrideError::Store("the state file could not be opened at start".into())
        })?;
        for id in &ids {
            let saved = match &change {
                Some(o) => store.set_override(id, o),
                None => store.clear_override(id),
            };
            saved.map_err(|e| OverrideError::Store(e.to_string()))?;
        }
        for id in &ids {
            match change {
                Some(o) => {
                    info!(camera_id = %id, mode = %o.mode, until_ms = o.until_ms, "mode override set");
                    self.overrides.insert(id.clone(), o);
                }
                None => {
                    if self.overrides.remove(id).is_some() {
                        info!(camera_id = %id, "mode override deleted");
                    }
                }
            }
        }
        self.modes_stale = true;
        self.sync_modes(Instant::now());
        Ok(self
            .slots
            .iter()
            .filter(|s| ids.iter().any(|i| i == s.cfg.id.as_str()))
            .map(|s| (s.cfg.id.to_string(), s.mode.clone()))
            .collect())
    }

    /// A camera's modes over `[from_ms, to_ms)` as its config gives them (schedule or fixed mode),
    /// with the override in force, for the UI's week strip.
    fn schedule_view(
        &self,
        camera_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Option<serde_json::Value> {
        let cfg = self.config.camera(camera_id)?;
        let schedule = self.config.schedule_of(cfg);
        let intervals: Vec<serde_json::Value> = match schedule {
            Some(s) => s
                .intervals(
                    nvr_schedule::instant_ms(from_ms),
                    nvr_schedule::instant_ms(to_ms),
                )
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "from_ms": i.from.as_millisecond(),
                        "to_ms": i.to.as_millisecond(),
                        "mode": i.mode,
                    })
                })
                .collect(),
            None => vec![
                serde_json::json!({"from_ms": from_ms, "to_ms": to_ms, "mode": cfg.recording.mode}),
            ],
        };
        let ovr = self.overrides.get(camera_id).map(|o| {
            serde_json::json!({"mode": o.mode, "until_ms": o.until_ms, "set_at_ms": o.set_at_ms})
        });
        Some(serde_json::json!({
            "camera": camera_id,
            "schedule": schedule.and(cfg.schedule.as_deref()),
            "timezone": schedule.map(|s| s.zone_name()),
            "intervals": intervals,
            "override": ovr,
        }))
    }

    /// How long the manager may sleep: until the next start or forced kill is due, at most [`TICK`],
    /// and [`REAP_POLL`] while a worker is on its way out.
    /// Starts, renews or ends a camera's motion preview; `sync_modes` sends the worker the
    /// settings with it (or, once it ends, without it).
    fn preview_motion(
        &mut self,
        camera_id: &str,
        preview: Option<MotionPreview>,
        now: Instant,
    ) -> Result<(), PreviewError> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.cfg.id.as_str() == camera_id)
            .ok_or_else(|| PreviewError::UnknownCamera(camera_id.to_string()))?;
        if preview.is_some()
            && (slot.life.state() != WorkerState::Running || !slot.cfg.motion.enabled)
        {
            return Err(PreviewError::NotRunning);
        }
        match &preview {
            Some(p) => {
                info!(camera_id, threshold = ?p.threshold, min_area = ?p.min_area, "motion preview")
            }
            None if slot.motion_preview.is_some() => info!(camera_id, "motion preview ended"),
            None => {}
        }
        slot.motion_preview = preview;
        slot.dirty = true;
        self.sync_modes(now);
        Ok(())
    }

    /// Sends a PTZ command to the camera's worker and keeps the request until it answers; gives
    /// the reply back with the answer when there is one at once (no such camera, no `onvif`, no
    /// running worker, too many waiting).
    fn ptz_command(
        &mut self,
        camera_id: &str,
        command: nvr_proto::ptz::PtzCommand,
        reply: ptz::PtzReply,
        now: Instant,
    ) -> Option<(ptz::PtzReply, Option<PtzResult>)> {
        use nvr_proto::ptz::{PtzError, PtzErrorKind};
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.cfg.id.as_str() == camera_id)
        else {
            return Some((reply, None));
        };
        let refuse = |kind, detail: String| Some(Some(Err(PtzError::new(kind, detail))));
        let answer = if slot.cfg.onvif.is_none() {
            refuse(
                PtzErrorKind::NoOnvif,
                format!("camera {camera_id:?} has no \"onvif\" section in the config; add one to use PTZ (docs/config.md)"),
            )
        } else if slot.life.state() != WorkerState::Running {
            refuse(
                PtzErrorKind::WorkerUnavailable,
                format!(
                    "the camera's worker is {}; try again when it runs",
                    format!("{:?}", slot.life.state()).to_lowercase()
                ),
            )
        } else {
            None
        };
        if let Some(answer) = answer {
            return Some((reply, answer));
        }
        let generation = slot.life.run().map_or(0, |r| r.generation);
        if self.ptz.count_for(generation) >= ptz::MAX_WAITING {
            let busy = PtzError::new(
                PtzErrorKind::Busy,
                "too many PTZ requests are waiting for this camera; try again",
            );
            return Some((reply, Some(Err(busy))));
        }
        self.next_request_id += 1;
        let request_id = self.next_request_id;
        if !slot.send(&ToWorker::Ptz {
            request_id,
            command,
        }) {
            let gone = PtzError::new(
                PtzErrorKind::WorkerUnavailable,
                "the camera's worker is not connected",
            );
            return Some((reply, Some(Err(gone))));
        }
        self.ptz.add(request_id, generation, now, reply);
        None
    }

    fn until_due(&self) -> Duration {
        if self.slots.iter().any(|s| s.life.exiting()) {
            return REAP_POLL;
        }
        let now = Instant::now();
        let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
        let mode_due = self
            .slots
            .iter()
            .filter_map(|s| s.mode.recheck_at_ms)
            .map(|t| Duration::from_millis(t.saturating_sub(now_ms).max(0) as u64));
        self.slots
            .iter()
            .filter_map(|s| s.life.next_due())
            .chain(self.watchdog.as_ref().map(|w| w.due()))
            .chain(self.ptz.next_due())
            .map(|t| t.saturating_duration_since(now))
            .chain(mode_due)
            .fold(TICK, Duration::min)
    }

    /// Reaps exits, then carries out what fell due (starts, forced kills, hangs), then polices
    /// resources.
    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.reap(i, now);
            match self.slots[i].life.due(now) {
                Some(Action::Spawn) => self.start(i, now),
                action => {
                    let slot = &mut self.slots[i];
                    match &action {
                        Some(Action::Kill(KillCause::IgnoredShutdown)) => {
                            warn!(camera_id = %slot.cfg.id, "worker ignored Shutdown; killing it")
                        }
                        Some(Action::Kill(KillCause::Hung(detail))) => {
                            warn!(camera_id = %slot.cfg.id, %detail, "worker hung; killing it")
                        }
                        _ => {}
                    }
                    carry_out(slot, action);
                }
            }
        }
        // A removal changes the count of slots, which makes `publish` rebuild every camera.
        self.slots.retain(|s| !s.life.is_gone());
        let slots = &self.slots;
        self.ptz
            .expire(now, |g| slots.iter().any(|s| s.life.owns(g)));
        self.sync_modes(now);
        if now.duration_since(self.last_police) >= POLICE_EVERY {
            self.last_police = now;
            self.police(now);
        }
    }

    /// If slot `i`'s worker has exited, tells its lifecycle, which decides what follows.
    fn reap(&mut self, i: usize, now: Instant) {
        let jitter = self.next_random();
        let slot = &mut self.slots[i];
        let Some(process) = &mut slot.process else {
            return;
        };
        let status = match process.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return,
            Err(e) => {
                error!(camera_id = %slot.cfg.id, error = %e, "cannot wait for worker");
                return;
            }
        };
        slot.totals.cpu_s += process.cpu_s;
        slot.process = None;
        slot.dirty = true;
        slot.sent = None;
        slot.last_stats = None;
        slot.motion.active = false;
        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        };
        let pid = slot.life.run().map(|r| r.pid);
        let Some(report) = slot.life.exited(now, exit, jitter) else {
            return;
        };
        let (reason, detail) = (report.reason, &report.detail);
        match report.next {
            AfterExit::Stopped => {
                info!(camera_id = %slot.cfg.id, pid, %detail, "worker stopped");
                carry_out(slot, Some(Action::RemoveRing));
            }
            AfterExit::Restart { delay, failed } => {
                let delay_s = delay.as_secs_f64();
                if failed {
                    error!(camera_id = %slot.cfg.id, pid, %reason, %detail, delay_s, "worker failed too often; retrying at the longest delay");
                } else {
                    warn!(camera_id = %slot.cfg.id, pid, %reason, %detail, delay_s, ran_for_s = report.ran_for.as_secs_f64(), "worker exited; restarting");
                }
            }
        }
    }

    /// Starts slot `i`'s worker: a one-shot IPC server, the process, and the link thread that
    /// forwards its messages.
    fn start(&mut self, i: usize, now: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let heartbeat = Duration::from_secs_f64(self.config.heartbeat_interval_s);
        let inbox = self.inbox_tx.clone();
        let slot = &mut self.slots[i];
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
                let accept_timeout = lifecycle::STARTUP_GRACE + heartbeat;
                std::thread::Builder::new()
                    .name(format!("link-{}", slot.cfg.id))
                    .spawn(move || link::forward(listener, generation, accept_timeout, inbox))
                    .map_err(|e| e.to_string())?;
                Ok(child)
            });
        match spawned {
            Ok(child) => {
                let pid = child.id();
                info!(camera_id = %slot.cfg.id, pid, "worker started");
                slot.life.spawned(now, generation, pid, heartbeat);
                slot.process = Some(Process {
                    child,
                    tx: None,
                    cpu_percent: None,
                    rss_bytes: None,
                    cpu_s: 0.0,
                });
            }
            Err(e) => {
                error!(camera_id = %slot.cfg.id, error = %e, "cannot start worker");
                slot.last_error = Some(e.clone());
                slot.life.spawn_failed(now, e);
            }
        }
    }

    fn police(&mut self, now: Instant) {
        let pids: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|s| s.life.run().map(|r| r.pid))
            .collect();
        if pids.is_empty() {
            return;
        }
        let usage = self.police.sample(&pids);
        for slot in &mut self.slots {
            let Some(pid) = slot.life.run().map(|r| r.pid) else {
                continue;
            };
            let (Some(u), Some(process)) = (usage.get(&pid), &mut slot.process) else {
                continue;
            };
            process.cpu_percent = Some(u.cpu_percent);
            process.rss_bytes = Some(u.rss_bytes);
            process.cpu_s = u.cpu_s;
            if let Some((action, v)) = slot.life.police(now, *u, &slot.cfg.limits) {
                warn!(camera_id = %slot.cfg.id, pid, reason = %v.reason, detail = %v.detail, "worker over its limit; restarting it");
                carry_out(slot, Some(action));
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
            snapshot.cameras = self
                .slots
                .iter()
                .map(|s| report::camera_status(s, now, self.clock))
                .collect();
            self.next_refresh = now + REFRESH_EVERY;
        } else {
            for (c, s) in snapshot.cameras.iter_mut().zip(&self.slots) {
                if s.dirty {
                    *c = report::camera_status(s, now, self.clock);
                }
            }
        }
        if self.notifier.enabled() {
            // The publisher sends only what changed.
            for (c, s) in snapshot.cameras.iter().zip(&self.slots) {
                if everything || s.dirty {
                    notify_status(&self.notifier, c);
                }
            }
        }
        for s in &mut self.slots {
            s.dirty = false;
        }
        snapshot.supervisor = SupervisorInfo {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            uptime_s: self.clock.started.elapsed().as_secs_f64(),
            config_path: self.config_path.clone(),
            listen: self.listen.clone(),
            last_reload_error: self.last_reload_error.clone(),
            restart_needed: self.restart_needed.clone(),
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

/// Carries out what a camera's lifecycle decided (all but `Spawn`, which needs the manager), and
/// marks the camera's status for the next publish.
fn carry_out(slot: &mut Slot, action: Option<Action>) {
    let Some(action) = action else { return };
    slot.dirty = true;
    match action {
        Action::Spawn => {} // started by `tick`, which owns the generation counter
        Action::Kill(_) => {
            if let Some(p) = &mut slot.process {
                let _ = p.child.kill();
            }
        }
        Action::AskShutdown { deadline } => {
            let shutdown = ToWorker::Shutdown {
                deadline_ms: deadline.as_millis() as u64,
            };
            if !slot.send(&shutdown) {
                let action = slot.life.unreachable();
                carry_out(slot, action);
            }
        }
        Action::RemoveRing => {
            // A worker that exited cleanly removed its frame and packet rings; one that was killed
            // did not.
            if let Err(e) = shm_bus::remove_stale(slot.cfg.id.as_str()) {
                warn!(camera_id = %slot.cfg.id, error = %e, "cannot remove the frame ring");
            }
            if let Err(e) = shm_bus::remove_stale_packet_rings(slot.cfg.id.as_str()) {
                warn!(camera_id = %slot.cfg.id, error = %e, "cannot remove the packet rings");
            }
        }
    }
}

/// The settings the slot's worker should run with: its config's, with the mode in force.
fn desired_settings(slot: &Slot) -> CameraSettings {
    let mut settings = CameraSettings::from(&slot.cfg);
    settings.recording.mode = slot.mode.current.into();
    if let Some(p) = &slot.motion_preview {
        settings.motion.threshold = p.threshold.unwrap_or(settings.motion.threshold);
        settings.motion.min_area = p.min_area.unwrap_or(settings.motion.min_area);
    }
    settings
}

/// A camera's status, motion and recording state for the notifier.
fn notify_status(notifier: &Notifier, c: &crate::status::CameraStatus) {
    let stream = |s: Option<&nvr_proto::StreamStatus>| s.map(|s| s.state);
    let worker = c.worker.as_ref();
    let payload = serde_json::json!({
        "state": c.state,
        "sub": stream(worker.and_then(|w| w.sub.as_ref())),
        "main": stream(worker.and_then(|w| w.main.as_ref())),
        "fps": worker.and_then(|w| w.sub.as_ref()).map(|s| s.fps.round()),
        "mode": c.mode.current,
    });
    notifier.send(Note::Status {
        camera: c.id.clone(),
        payload: payload.to_string(),
    });
    notifier.send(Note::Motion {
        camera: c.id.clone(),
        active: c.motion.active,
    });
    notifier.send(Note::Recording {
        camera: c.id.clone(),
        on: c.mode.current != nvr_schedule::Mode::Off,
    });
    notifier.send(Note::Health {
        camera: c.id.clone(),
        problem: c.enabled.then(|| c.problem()).flatten(),
    });
}

/// Records a worker's event in the slot and hands it to the archive (and motion to the notifier).
fn on_event(
    slot: &mut Slot,
    camera_id: String,
    event: WorkerEvent,
    archive: &Archive,
    notifier: &Notifier,
) {
    match event {
        WorkerEvent::ProtocolError { detail } => {
            warn!(%camera_id, %detail, "worker could not understand a message");
            slot.last_error = Some(format!("worker could not understand us: {detail}"));
        }
        WorkerEvent::MotionStart(m) => {
            info!(%camera_id, score = m.score, latency_ms = m.latency_ms, onset_delay_ms = m.onset_delay_ms, zones = ?m.zones, "motion started");
            slot.motion.active = true;
            slot.motion.events += 1;
            slot.motion.last_start = Some(m.clone());
            notifier.send(Note::Motion {
                camera: camera_id.clone(),
                active: true,
            });
            let _ = archive.send(ArchiveOp::MotionStart { camera_id, m });
        }
        WorkerEvent::MotionEnd {
            duration_s,
            peak_score,
            zones,
        } => {
            info!(%camera_id, duration_s, peak_score, ?zones, "motion ended");
            slot.motion.active = false;
            notifier.send(Note::Motion {
                camera: camera_id.clone(),
                active: false,
            });
            slot.motion.last_end = Some(MotionEnd {
                duration_s,
                peak_score,
            });
            let _ = archive.send(ArchiveOp::MotionEnd {
                camera_id,
                duration_s,
                peak_score,
                zones,
            });
        }
        WorkerEvent::RecordingStarted(r) => {
            info!(%camera_id, path = %r.path, first_frame_offset_ms = r.first_frame_offset_ms, open_ms = r.open_ms, "recording started");
            slot.recordings.last_started = Some(r.clone());
            let _ = archive.send(ArchiveOp::RecordingStarted { camera_id, r });
        }
        WorkerEvent::RecordingFinished(r) => {
            info!(%camera_id, path = %r.path, duration_s = r.duration_s, bytes = r.bytes, recovered = r.recovered, "recording finished");
            slot.recordings.finished += 1;
            slot.recordings.bytes += r.bytes;
            slot.recordings.last_finished = Some(r.clone());
            let _ = archive.send(ArchiveOp::RecordingFinished { camera_id, r });
        }
        WorkerEvent::RecordingError { detail, kind } => {
            warn!(%camera_id, %detail, kind = %format!("{kind:?}"), "recording failed");
            if kind == RecordingErrorKind::DiskFull {
                let _ = archive.send(ArchiveOp::DiskFull);
            }
            slot.recordings.last_error = Some((detail, nvr_proto::unix_ns() / 1_000_000));
            slot.recordings.errors += 1;
        }
    }
}
