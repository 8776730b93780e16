//! The camera's pan-tilt-zoom thread: runs the supervisor's PTZ commands against the camera's
//! ONVIF service, one at a time, so a camera whose ONVIF stack hangs costs only this thread (never
//! the SUB or MAIN stream).
//!
//! - **Queue** ([`Queue`]): the command thread pushes; a new move or a stop replaces the moves still
//!   waiting (answered `Done`: the newest velocity is what the user holds), and at most
//!   [`MAX_QUEUED`] other commands wait (more are answered `busy`).
//! - **Policy** ([`Mover`], pure, tested with simulated time): a move not renewed within
//!   `onvif.move_timeout_s` is stopped (the dead-man window); a renewal with the same velocity
//!   only extends it; `ContinuousMove` carries the camera's own timeout ([`CAMERA_MOVE_TIMEOUT`])
//!   and is sent again before it runs out while the user keeps holding. Motion detection pauses
//!   from the first move until `onvif.settle_s` after the camera stopped (a preset's travel is
//!   waited for through `GetStatus`).
//! - **Safety:** `Stop` once at start (a worker killed mid-move leaves the camera stopped after its
//!   restart), and `Stop` when the worker stops or loses the supervisor.

use nvr_proto::ptz::{PtzAnswer, PtzCommand, PtzDescription, PtzError, PtzErrorKind};
use nvr_proto::settings::OnvifSettings;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use worker::onvif::Client;

/// What a command got: the camera's answer or why not.
pub type Reply = Result<PtzAnswer, PtzError>;
/// Where answers go: `(request_id, reply)`.
pub type ReplySink = Arc<dyn Fn(u64, Reply) + Send + Sync>;

/// Commands other than moves that may wait at once; more are answered `busy`.
pub const MAX_QUEUED: usize = 8;
/// The timeout every `ContinuousMove` carries, so the camera stops by itself if this worker
/// vanishes mid-move (a restarted worker also sends `Stop` at once).
pub const CAMERA_MOVE_TIMEOUT: Duration = Duration::from_secs(4);
/// A held move is sent again this long before the camera's own timeout runs out.
const REFRESH_MARGIN: Duration = Duration::from_secs(1);
/// How often a preset's travel is polled, and for how long at most.
const TRAVEL_POLL: Duration = Duration::from_millis(250);
const TRAVEL_MAX: Duration = Duration::from_secs(15);
/// How long after a failed start-up `Stop` (camera unreachable) it is tried again: doubling from
/// the first to the last, so an ONVIF service that is down costs a log line now and then.
const STOP_RETRY_FIRST: Duration = Duration::from_secs(5);
const STOP_RETRY_MAX: Duration = Duration::from_secs(300);

/// A continuous move's velocities, each -1..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Velocity {
    pub pan: f64,
    pub tilt: f64,
    pub zoom: f64,
}

/// What the thread needs from a camera: the ONVIF client, or a fake in the tests.
pub trait Device: Send {
    fn continuous_move(&mut self, v: Velocity, timeout: Duration) -> Result<(), PtzError>;
    fn stop(&mut self) -> Result<(), PtzError>;
    fn goto_preset(&mut self, preset: &str) -> Result<(), PtzError>;
    fn set_preset(&mut self, name: &str) -> Result<String, PtzError>;
    fn describe(&mut self) -> Result<PtzDescription, PtzError>;
    /// Whether the camera says it is moving (`None`: it does not say).
    fn moving(&mut self) -> Result<Option<bool>, PtzError>;
}

/// Opens a connection to the camera (learns its clock, services and profile).
pub type Connect = Box<dyn FnMut() -> Result<Box<dyn Device>, PtzError> + Send>;

/// How long one exchange with the camera may take; connecting (four exchanges) takes at most
/// twice this, inside the 5 s the supervisor waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection to a camera's ONVIF service, made when the first call needs it.
pub fn onvif_connector(settings: OnvifSettings) -> Connect {
    Box::new(move || {
        let client = Client::connect(&settings, CALL_TIMEOUT)?;
        info!(
            profile = client.profile_token(),
            clock_offset_s = client.clock_offset_s(),
            "connected to the camera's ONVIF service"
        );
        Ok(Box::new(client) as Box<dyn Device>)
    })
}

impl Device for Client {
    fn continuous_move(&mut self, v: Velocity, timeout: Duration) -> Result<(), PtzError> {
        Client::continuous_move(self, v.pan, v.tilt, v.zoom, timeout)
    }
    fn stop(&mut self) -> Result<(), PtzError> {
        Client::stop(self)
    }
    fn goto_preset(&mut self, preset: &str) -> Result<(), PtzError> {
        Client::goto_preset(self, preset)
    }
    fn set_preset(&mut self, name: &str) -> Result<String, PtzError> {
        Client::set_preset(self, name)
    }
    fn describe(&mut self) -> Result<PtzDescription, PtzError> {
        Client::describe(self)
    }
    fn moving(&mut self) -> Result<Option<bool>, PtzError> {
        Client::status(self).map(|(_, moving)| moving)
    }
}

// ---------------------------------------------------------------------------------------------
// The queue

#[derive(Default)]
struct QueueState {
    items: VecDeque<(u64, PtzCommand)>,
    closed: bool,
}

/// The commands waiting for the PTZ thread (see the module docs for the coalescing rules).
#[derive(Default)]
pub struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

/// What [`Queue::push`] did with a command.
#[derive(Debug, PartialEq)]
pub enum Pushed {
    /// Queued; these earlier moves were dropped in its favour (answer them `Done`).
    Queued { superseded: Vec<u64> },
    /// Not queued: too many commands wait, or the thread has stopped.
    Refused(PtzError),
}

impl Queue {
    pub fn push(&self, request_id: u64, command: PtzCommand) -> Pushed {
        let Ok(mut s) = self.state.lock() else {
            return Pushed::Refused(PtzError::new(PtzErrorKind::CameraError, "PTZ stopped"));
        };
        if s.closed {
            return Pushed::Refused(PtzError::new(
                PtzErrorKind::WorkerUnavailable,
                "the worker is stopping",
            ));
        }
        let mut superseded = Vec::new();
        if matches!(command, PtzCommand::Move { .. } | PtzCommand::Stop) {
            s.items.retain(|(id, c)| {
                let is_move = matches!(c, PtzCommand::Move { .. });
                if is_move {
                    superseded.push(*id);
                }
                !is_move
            });
        } else if s.items.len() >= MAX_QUEUED {
            return Pushed::Refused(PtzError::new(
                PtzErrorKind::Busy,
                format!("{MAX_QUEUED} PTZ commands are already waiting for this camera; try again"),
            ));
        }
        s.items.push_back((request_id, command));
        self.ready.notify_one();
        Pushed::Queued { superseded }
    }

    /// Stops the thread: it stops the camera if it moves, answers what waits, and exits.
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.ready.notify_all();
    }

    /// The next command, waiting until `due` at most (`None` there: forever). `Err` once closed,
    /// with the commands that were still waiting.
    fn pop(&self, due: Option<Instant>) -> Result<Option<(u64, PtzCommand)>, Vec<u64>> {
        let Ok(mut s) = self.state.lock() else {
            return Err(Vec::new());
        };
        loop {
            if s.closed {
                return Err(s.items.drain(..).map(|(id, _)| id).collect());
            }
            if let Some(item) = s.items.pop_front() {
                return Ok(Some(item));
            }
            let wait = match due {
                None => Duration::from_secs(3600),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(w) if !w.is_zero() => w,
                    _ => return Ok(None),
                },
            };
            s = match self.ready.wait_timeout(s, wait) {
                Ok((s, _)) => s,
                Err(_) => return Err(Vec::new()),
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The policy

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Not moving; motion detection watches.
    Idle,
    /// A continuous move is on until `deadline` (the dead-man window), sent again at `refresh_at`.
    Moving {
        v: Velocity,
        deadline: Instant,
        refresh_at: Instant,
    },
    /// Travelling to a preset: polled at `poll_at`, given up on at `give_up_at`.
    Travelling {
        poll_at: Instant,
        give_up_at: Instant,
    },
    /// Stopped; motion detection waits until `until`.
    Settling { until: Instant },
}

/// A call the policy wants made on the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Nothing to send (a renewal only extended the window).
    None,
    Move(Velocity),
    Stop,
    /// Ask whether the camera still travels to a preset.
    PollMoving,
}

/// When the camera moves and when motion detection may watch: pure, driven with the caller's
/// clock.
#[derive(Debug)]
pub struct Mover {
    window: Duration,
    settle: Duration,
    phase: Phase,
}

impl Mover {
    pub fn new(window: Duration, settle: Duration) -> Self {
        Mover {
            window,
            settle,
            phase: Phase::Idle,
        }
    }

    /// A move request (or its renewal) at `now`.
    pub fn on_move(&mut self, v: Velocity, now: Instant) -> Step {
        if v.pan == 0.0 && v.tilt == 0.0 && v.zoom == 0.0 {
            return self.on_stop(now);
        }
        let deadline = now + self.window;
        match &mut self.phase {
            Phase::Moving {
                v: current,
                deadline: d,
                ..
            } if *current == v => {
                *d = deadline;
                Step::None
            }
            _ => {
                self.phase = Phase::Moving {
                    v,
                    deadline,
                    refresh_at: now + CAMERA_MOVE_TIMEOUT - REFRESH_MARGIN,
                };
                Step::Move(v)
            }
        }
    }

    /// A stop request (or a failed move) at `now`.
    pub fn on_stop(&mut self, now: Instant) -> Step {
        self.phase = Phase::Settling {
            until: now + self.settle,
        };
        Step::Stop
    }

    /// A preset's travel began at `now`.
    pub fn on_goto(&mut self, now: Instant) {
        self.phase = Phase::Travelling {
            poll_at: now + TRAVEL_POLL,
            give_up_at: now + TRAVEL_MAX,
        };
    }

    /// The answer to [`Step::PollMoving`]: `Some(false)` (arrived), or unknown (the camera does not
    /// say, or the poll failed): either way the picture settles from here.
    pub fn on_poll(&mut self, moving: Option<bool>, now: Instant) {
        if let Phase::Travelling {
            poll_at,
            give_up_at,
        } = &mut self.phase
        {
            if moving == Some(true) && now < *give_up_at {
                *poll_at = now + TRAVEL_POLL;
            } else {
                self.phase = Phase::Settling {
                    until: now + self.settle,
                };
            }
        }
    }

    /// What falls due at `now`: the dead-man stop, a held move's refresh, a travel poll.
    pub fn tick(&mut self, now: Instant) -> Step {
        match &mut self.phase {
            Phase::Moving { deadline, .. } if now >= *deadline => self.on_stop(now),
            Phase::Moving { v, refresh_at, .. } if now >= *refresh_at => {
                *refresh_at = now + CAMERA_MOVE_TIMEOUT - REFRESH_MARGIN;
                Step::Move(*v)
            }
            Phase::Travelling { poll_at, .. } if now >= *poll_at => Step::PollMoving,
            Phase::Settling { until } if now >= *until => {
                self.phase = Phase::Idle;
                Step::None
            }
            _ => Step::None,
        }
    }

    /// When [`Mover::tick`] next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            Phase::Moving {
                deadline,
                refresh_at,
                ..
            } => Some(deadline.min(refresh_at)),
            Phase::Travelling { poll_at, .. } => Some(poll_at),
            Phase::Settling { until } => Some(until),
        }
    }

    /// Whether motion detection must pause: the camera moves or the picture settles.
    pub fn motion_paused(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// Whether a continuous move is on (the worker stops it when it stops).
    pub fn moving(&self) -> bool {
        matches!(self.phase, Phase::Moving { .. })
    }
}

// ---------------------------------------------------------------------------------------------
// The thread

/// The PTZ thread's state.
pub struct Ptz {
    connect: Connect,
    device: Option<Box<dyn Device>>,
    mover: Mover,
    /// Read by the SUB thread before each frame: detection pauses while true.
    paused: Arc<AtomicBool>,
    replies: ReplySink,
    /// The start-up `Stop` has not reached the camera yet: try again at this instant.
    stop_pending_at: Option<Instant>,
    /// The wait before the next start-up `Stop` attempt.
    stop_retry: Duration,
}

impl Ptz {
    pub fn new(
        connect: Connect,
        window: Duration,
        settle: Duration,
        paused: Arc<AtomicBool>,
        replies: ReplySink,
    ) -> Self {
        Ptz {
            connect,
            device: None,
            mover: Mover::new(window, settle),
            paused,
            replies,
            stop_pending_at: Some(Instant::now()),
            stop_retry: STOP_RETRY_FIRST,
        }
    }

    /// Runs until `queue` is closed, then stops the camera if it moves.
    pub fn run(mut self, queue: &Queue) {
        loop {
            let now = Instant::now();
            if self.stop_pending_at.is_some_and(|t| now >= t) {
                self.startup_stop(now);
            }
            let due = [self.mover.next_due(), self.stop_pending_at]
                .into_iter()
                .flatten()
                .min();
            match queue.pop(due) {
                Ok(Some((id, command))) => {
                    let reply = self.command(command, Instant::now());
                    (self.replies)(id, reply);
                }
                Ok(None) => {}
                Err(waiting) => {
                    for id in waiting {
                        (self.replies)(
                            id,
                            Err(PtzError::new(
                                PtzErrorKind::WorkerUnavailable,
                                "the worker is stopping",
                            )),
                        );
                    }
                    if self.mover.moving() {
                        info!("stopping the camera's move: the worker stops");
                        let _ = self.call(|d| d.stop());
                    }
                    self.paused.store(false, Ordering::Relaxed);
                    return;
                }
            }
            let step = self.mover.tick(Instant::now());
            if step == Step::Stop {
                info!("no renewal within the move window: stopping the camera");
            }
            self.perform(step, Instant::now());
            self.paused
                .store(self.mover.motion_paused(), Ordering::Relaxed);
        }
    }

    fn startup_stop(&mut self, now: Instant) {
        match self.call(|d| d.stop()) {
            Ok(()) => {
                info!("PTZ ready; the camera was told to stop");
                self.stop_pending_at = None;
            }
            Err(e) if e.kind == PtzErrorKind::NotPtz => {
                warn!(error = %e, "the camera's ONVIF service has no PTZ");
                self.stop_pending_at = None;
            }
            Err(e) => {
                warn!(error = %e, retry_s = self.stop_retry.as_secs(), "cannot reach the camera's ONVIF service to stop it; trying again");
                self.stop_pending_at = Some(now + self.stop_retry);
                self.stop_retry = (self.stop_retry * 2).min(STOP_RETRY_MAX);
            }
        }
    }

    fn command(&mut self, command: PtzCommand, now: Instant) -> Reply {
        command
            .validate()
            .map_err(|e| PtzError::new(PtzErrorKind::BadRequest, e))?;
        // A command that steers the camera replaces a start-up `Stop` still waiting for it (sent
        // later, that one would stop the user's move).
        let steers = matches!(
            command,
            PtzCommand::Move { .. } | PtzCommand::Stop | PtzCommand::GotoPreset { .. }
        );
        let reply = match command {
            PtzCommand::Move { pan, tilt, zoom } => {
                let step = self.mover.on_move(Velocity { pan, tilt, zoom }, now);
                self.paused.store(true, Ordering::Relaxed);
                self.perform_checked(step, now)?;
                Ok(PtzAnswer::Done)
            }
            PtzCommand::Stop => {
                let step = self.mover.on_stop(now);
                self.perform_checked(step, now)?;
                Ok(PtzAnswer::Done)
            }
            PtzCommand::GotoPreset { preset } => {
                self.paused.store(true, Ordering::Relaxed);
                self.mover.on_goto(now);
                match self.call(|d| d.goto_preset(&preset)) {
                    Ok(()) => Ok(PtzAnswer::Done),
                    Err(e) => {
                        self.mover.on_poll(None, Instant::now());
                        Err(e)
                    }
                }
            }
            PtzCommand::SetPreset { name } => self
                .call(|d| d.set_preset(&name))
                .map(|token| PtzAnswer::PresetSet { token }),
            PtzCommand::Describe => self.call(|d| d.describe()).map(PtzAnswer::Described),
        };
        if steers && reply.is_ok() {
            self.stop_pending_at = None;
        }
        reply
    }

    /// Carries out a step whose failure the caller reports; a failed move counts as stopped.
    fn perform_checked(&mut self, step: Step, now: Instant) -> Result<(), PtzError> {
        let result = match step {
            Step::None => Ok(()),
            Step::Move(v) => self.call(|d| d.continuous_move(v, CAMERA_MOVE_TIMEOUT)),
            Step::Stop => self.call(|d| d.stop()),
            Step::PollMoving => {
                let moving = self.call(|d| d.moving());
                self.mover.on_poll(moving.unwrap_or(None), Instant::now());
                Ok(())
            }
        };
        if result.is_err() && matches!(step, Step::Move(_)) {
            // The camera may or may not move: stop it to be safe if it still answers (the error
            // is what we report; a camera that stopped answering stops by its move's timeout).
            self.mover.on_stop(now);
            if self.device.is_some() {
                let _ = self.call(|d| d.stop());
            }
        }
        result
    }

    /// Carries out a step nobody waits for; failures are logged.
    fn perform(&mut self, step: Step, now: Instant) {
        if let Err(e) = self.perform_checked(step, now) {
            warn!(error = %e, ?step, "PTZ call failed");
        }
    }

    /// Runs `f` on the camera, connecting first if needed; a connection that failed is dropped so
    /// the next call connects afresh.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Device) -> Result<T, PtzError>,
    ) -> Result<T, PtzError> {
        let device = match &mut self.device {
            Some(d) => d,
            None => self.device.insert((self.connect)()?),
        };
        let result = f(device.as_mut());
        if let Err(e) = &result {
            if matches!(
                e.kind,
                PtzErrorKind::Timeout | PtzErrorKind::CameraError | PtzErrorKind::Unauthorized
            ) {
                self.device = None;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests;
