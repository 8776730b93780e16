//! One camera's worker lifecycle as a pure state machine: when to start, stop, kill and restart it.
//!
//! The manager thread tells a [`Lifecycle`] what happened (a process started or exited, a `Hello`, a
//! heartbeat, a limit breach, a reload, a restart request, a shutdown) with the instant it happened,
//! and carries out the [`Action`]s it returns. Nothing here touches a process, a channel or a clock,
//! so every decision is tested with tables and simulated instants (see `tests`).

use crate::manager::backoff::Backoff;
use crate::manager::police::{self, Usage, Violation};
use crate::status::{RestartReason, WorkerState};
use nvr_config::{LimitsConfig, RestartConfig};
use std::time::{Duration, Instant};

/// Heartbeats a worker may miss before it is declared hung.
const MISSED_HEARTBEATS: f64 = 3.0;
/// Time a new worker has to say `Hello`, on top of the heartbeat allowance.
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);
/// How long a worker has to exit after `Shutdown` before it is killed.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// The jitter used when a spawn fails (the middle: no spread is needed for a broken binary path).
const SPAWN_FAILURE_JITTER: f64 = 0.5;

/// What the manager thread must do for a camera.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a worker process, then report [`Lifecycle::spawned`] or [`Lifecycle::spawn_failed`].
    Spawn,
    /// Send `Shutdown` with this deadline; if it cannot be sent, report [`Lifecycle::unreachable`].
    AskShutdown { deadline: Duration },
    /// Kill the process now.
    Kill(KillCause),
    /// Remove the camera's frame ring and packet rings: its worker is gone and no new one follows (a
    /// worker that was killed could not remove them itself).
    RemoveRing,
}

/// Why a [`Action::Kill`] is due, for the log line.
#[derive(Debug, Clone, PartialEq)]
pub enum KillCause {
    /// The supervisor ended it for the reason it recorded (limit, wrong camera, dead link).
    Ended,
    /// It did not exit within [`SHUTDOWN_DEADLINE`] of `Shutdown`.
    IgnoredShutdown,
    /// It stopped talking; the sentence says how.
    Hung(String),
}

/// What the manager wants for a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Run,
    /// Disabled, or the supervisor is shutting down.
    Stop,
    /// Removed from the config: forgotten once its worker has exited.
    Remove,
}

/// How a process ended, as the OS reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// What an exit led to.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitReport {
    pub reason: RestartReason,
    pub detail: String,
    pub ran_for: Duration,
    pub next: AfterExit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterExit {
    /// Start again after `delay`; `failed` when past the restart intensity limit.
    Restart { delay: Duration, failed: bool },
    /// Not restarted (disabled, removed, shutting down): remove its frame ring.
    Stopped,
}

/// The last restart, for `/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub reason: RestartReason,
    pub detail: String,
    pub at: Instant,
}

/// Why a restart request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartRefused {
    /// The camera is disabled (or being removed, or the supervisor is stopping).
    NotRunning,
}

/// The supervisor is ending this worker itself, so its exit is attributed to the right cause.
#[derive(Debug, Clone, PartialEq)]
struct Ending {
    reason: RestartReason,
    detail: String,
    /// After a graceful `Shutdown`: kill at this instant if still alive.
    kill_at: Option<Instant>,
    /// Start again right away (config change, manual restart) instead of backing off.
    restart_now: bool,
}

/// One worker process, as far as the policy is concerned.
#[derive(Debug, Clone)]
pub struct Run {
    /// Tells this run's IPC messages from those of earlier, dead runs.
    pub generation: u64,
    pub pid: u32,
    pub started: Instant,
    /// The interval this worker was configured with (a reload may change the config's).
    heartbeat_interval: Duration,
    /// The last sign of life: any message from it.
    last_seen: Option<Instant>,
    /// It said `Hello` and was sent its settings: it counts as running.
    hello: bool,
    /// Heartbeats received, for `/status`.
    pub heartbeats: u64,
    /// The longest gap between two heartbeats, for `/status`.
    pub max_gap: Option<Duration>,
    pub last_heartbeat: Option<Instant>,
    /// When its CPU went over the limit, for the grace period (`police::judge` keeps it).
    cpu_over_since: Option<Instant>,
    /// Set when the supervisor ends the worker itself.
    ending: Option<Ending>,
    /// Its IPC channel closed: the process is exiting, so look for its exit often.
    disconnected: bool,
}

/// One camera's worker lifecycle.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    intent: Intent,
    /// The worker process, while there is one.
    run: Option<Run>,
    /// Restart delays and the intensity limit.
    backoff: Backoff,
    /// The instant the backoff's seconds count from (the manager's start).
    epoch: Instant,
    /// When to start the next worker, while there is none.
    restart_at: Option<Instant>,
    /// Restarted too often (past the intensity limit).
    failed: bool,
    /// Restarts since the supervisor started.
    restarts: u64,
    last_restart: Option<Restart>,
}

impl Lifecycle {
    /// A camera as the config has it; an enabled one is due to start at once.
    pub fn new(enabled: bool, policy: RestartConfig, epoch: Instant, now: Instant) -> Self {
        Lifecycle {
            intent: if enabled { Intent::Run } else { Intent::Stop },
            run: None,
            backoff: Backoff::new(policy),
            epoch,
            restart_at: enabled.then_some(now),
            failed: false,
            restarts: 0,
            last_restart: None,
        }
    }

    pub fn intent(&self) -> Intent {
        self.intent
    }

    pub fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    pub fn last_restart(&self) -> Option<&Restart> {
        self.last_restart.as_ref()
    }

    /// When the next worker starts, while none runs.
    pub fn next_start(&self) -> Option<Instant> {
        self.restart_at.filter(|_| self.run.is_none())
    }

    /// Whether `generation` is this camera's current worker.
    pub fn owns(&self, generation: u64) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.generation == generation)
    }

    /// A removed camera whose worker has exited: the manager forgets it.
    pub fn is_gone(&self) -> bool {
        self.intent == Intent::Remove && self.run.is_none()
    }

    pub fn state(&self) -> WorkerState {
        match (&self.run, self.intent) {
            (Some(r), _) if r.hello => WorkerState::Running,
            (Some(_), Intent::Run) => WorkerState::Starting,
            (Some(_), _) => WorkerState::Stopped,
            (None, Intent::Run) if self.failed => WorkerState::Failed,
            (None, Intent::Run) => WorkerState::Backoff,
            (None, _) => WorkerState::Stopped,
        }
    }

    /// Its worker is on its way out (channel closed, or being ended): look for the exit often.
    pub fn exiting(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.disconnected || r.ending.is_some())
    }

    /// The next instant something is due without any message: a start or a forced kill. (Hangs are
    /// found by the regular tick.)
    pub fn next_due(&self) -> Option<Instant> {
        match &self.run {
            Some(run) => run.ending.as_ref()?.kill_at,
            None => self.restart_at.filter(|_| self.intent == Intent::Run),
        }
    }

    pub fn set_policy(&mut self, policy: RestartConfig) {
        self.backoff.set_policy(policy);
    }

    /// What is due at `now` without any message: start a worker whose delay ran out, kill one that
    /// ignored `Shutdown` past its deadline or stopped talking.
    pub fn due(&mut self, now: Instant) -> Option<Action> {
        let Some(run) = &mut self.run else {
            let start = self.intent == Intent::Run && self.restart_at.is_some_and(|t| now >= t);
            return start.then_some(Action::Spawn);
        };
        if let Some(ending) = &mut run.ending {
            let kill_at = ending.kill_at?;
            if now < kill_at {
                return None;
            }
            ending.kill_at = None;
            return Some(Action::Kill(KillCause::IgnoredShutdown));
        }
        let detail = hung(run, now)?;
        self.end(RestartReason::Hung, detail.clone(), false)
            .map(|_| Action::Kill(KillCause::Hung(detail)))
    }

    /// A worker process was started as `generation`.
    pub fn spawned(
        &mut self,
        now: Instant,
        generation: u64,
        pid: u32,
        heartbeat_interval: Duration,
    ) {
        self.restart_at = None;
        self.run = Some(Run {
            generation,
            pid,
            started: now,
            heartbeat_interval,
            last_seen: None,
            hello: false,
            heartbeats: 0,
            max_gap: None,
            last_heartbeat: None,
            cpu_over_since: None,
            ending: None,
            disconnected: false,
        });
    }

    /// The worker process could not be started: try again after a backoff delay.
    pub fn spawn_failed(&mut self, now: Instant, detail: String) -> Duration {
        self.restart_at = None;
        let d = self
            .backoff
            .on_exit(self.seconds(now), 0.0, SPAWN_FAILURE_JITTER);
        let delay = Duration::from_secs_f64(d.delay_s);
        self.failed = d.failed;
        self.restart_at = Some(now + delay);
        self.last_restart = Some(Restart {
            reason: RestartReason::Spawn,
            detail,
            at: now,
        });
        delay
    }

    /// The worker sent a message: it is alive.
    pub fn seen(&mut self, now: Instant) {
        if let Some(run) = &mut self.run {
            run.last_seen = Some(now);
        }
    }

    /// The worker said `Hello` and was sent its settings, with this heartbeat interval.
    pub fn hello(&mut self, now: Instant, heartbeat_interval: Duration) {
        self.seen(now);
        if let Some(run) = &mut self.run {
            run.hello = true;
            run.heartbeat_interval = heartbeat_interval;
        }
    }

    pub fn heartbeat(&mut self, now: Instant) {
        self.seen(now);
        if let Some(run) = &mut self.run {
            if let Some(prev) = run.last_heartbeat.replace(now) {
                let gap = now.duration_since(prev);
                run.max_gap = Some(run.max_gap.map_or(gap, |m| m.max(gap)));
            }
            run.heartbeats += 1;
        }
    }

    /// The worker's IPC channel closed; the exit that usually follows is what counts.
    pub fn disconnected(&mut self) {
        if let Some(run) = &mut self.run {
            run.disconnected = true;
        }
    }

    /// Ends the worker now, for `reason`; restarts it at once after the exit if `restart_now`.
    pub fn end(
        &mut self,
        reason: RestartReason,
        detail: String,
        restart_now: bool,
    ) -> Option<Action> {
        let run = self.run.as_mut()?;
        run.ending = Some(Ending {
            reason,
            detail,
            kill_at: None,
            restart_now,
        });
        Some(Action::Kill(KillCause::Ended))
    }

    /// Asks the worker to shut down (it finishes its clip), killing it if it has not exited by the
    /// deadline.
    fn stop(
        &mut self,
        now: Instant,
        reason: RestartReason,
        detail: &str,
        restart_now: bool,
    ) -> Option<Action> {
        let run = self.run.as_mut()?;
        run.ending = Some(Ending {
            reason,
            detail: detail.to_string(),
            kill_at: Some(now + SHUTDOWN_DEADLINE),
            restart_now,
        });
        Some(Action::AskShutdown {
            deadline: SHUTDOWN_DEADLINE,
        })
    }

    /// `Shutdown` could not be sent (no channel yet, or a broken one): kill instead.
    pub fn unreachable(&mut self) -> Option<Action> {
        let ending = self.run.as_mut()?.ending.as_mut()?;
        ending.kill_at = None;
        Some(Action::Kill(KillCause::Ended))
    }

    /// A resource sample of the running worker; a broken limit ends it (the violation says which).
    pub fn police(
        &mut self,
        now: Instant,
        usage: Usage,
        limits: &LimitsConfig,
    ) -> Option<(Action, Violation)> {
        let run = self.run.as_mut()?;
        if run.ending.is_some() {
            return None;
        }
        let v = police::judge(limits, usage, &mut run.cpu_over_since, now)?;
        let action = self.end(v.reason, v.detail.clone(), false)?;
        Some((action, v))
    }

    /// The worker process exited at `now` (`jitter` is uniform in 0..1): why, and what follows.
    pub fn exited(&mut self, now: Instant, exit: Exit, jitter: f64) -> Option<ExitReport> {
        let run = self.run.take()?;
        let ran_for = now.duration_since(run.started);
        let (reason, detail, restart_now) = match run.ending {
            Some(e) => (e.reason, e.detail, e.restart_now),
            None => {
                let (reason, detail) = describe_exit(exit);
                (reason, detail, false)
            }
        };
        if self.intent != Intent::Run {
            return Some(ExitReport {
                reason,
                detail,
                ran_for,
                next: AfterExit::Stopped,
            });
        }
        let (delay, failed) = if restart_now {
            (Duration::ZERO, false)
        } else {
            let d = self
                .backoff
                .on_exit(self.seconds(now), ran_for.as_secs_f64(), jitter);
            (Duration::from_secs_f64(d.delay_s), d.failed)
        };
        self.failed = failed;
        self.restarts += 1;
        self.restart_at = Some(now + delay);
        self.last_restart = Some(Restart {
            reason,
            detail: detail.clone(),
            at: now,
        });
        Some(ExitReport {
            reason,
            detail,
            ran_for,
            next: AfterExit::Restart { delay, failed },
        })
    }

    /// "Restart now": a running worker is stopped and started again at once, skipping the backoff;
    /// one that is backing off starts now.
    pub fn restart_requested(&mut self, now: Instant) -> Result<Option<Action>, RestartRefused> {
        if self.intent != Intent::Run {
            return Err(RestartRefused::NotRunning);
        }
        if self.run.is_some() {
            return Ok(self.stop(now, RestartReason::Manual, "restart requested", true));
        }
        self.restart_at = Some(now);
        Ok(None)
    }

    /// The supervisor is shutting down: stop for good.
    pub fn shutdown(&mut self, now: Instant) -> Option<Action> {
        self.intent = Intent::Stop;
        self.stop(
            now,
            RestartReason::Shutdown,
            "supervisor shutting down",
            false,
        )
    }

    /// A reload changed the camera's settings: a running worker restarts with them at once (or
    /// stops, if now disabled); the failed mark is cleared.
    pub fn reconfigured(&mut self, now: Instant, enabled: bool) -> Option<Action> {
        self.intent = if enabled { Intent::Run } else { Intent::Stop };
        self.failed = false;
        if self.run.is_some() {
            return self.stop(
                now,
                RestartReason::ConfigChanged,
                "camera settings changed",
                enabled,
            );
        }
        self.restart_at = enabled.then_some(now);
        None
    }

    /// A reload removed the camera: stop its worker; the camera is gone once it has exited.
    pub fn removed(&mut self, now: Instant) -> Option<Action> {
        self.intent = Intent::Remove;
        self.stop(now, RestartReason::ConfigChanged, "camera removed", false)
    }

    fn seconds(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.epoch).as_secs_f64()
    }
}

/// Why a worker that was not told to stop looks dead, or `None` if it looks fine.
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

/// The restart reason and a sentence for an exit the supervisor did not cause.
fn describe_exit(exit: Exit) -> (RestartReason, String) {
    match exit {
        Exit::Code(code) => (
            RestartReason::Exit,
            format!(
                "exited with code {code} ({})",
                nvr_proto::exit_code::describe(code)
            ),
        ),
        Exit::Signal(sig) => (RestartReason::Signal, format!("killed by signal {sig}")),
    }
}

#[cfg(test)]
mod tests;
