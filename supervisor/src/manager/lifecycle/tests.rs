//! Table tests of the worker lifecycle with simulated instants: every decision the manager takes.

use super::*;
use crate::manager::police::Usage;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// The jitter that leaves a backoff delay as it is.
const NO_JITTER: f64 = 0.5;

/// The shipped defaults: 1 s doubling to 60 s, reset after 60 s, five restarts in 300 s.
fn policy() -> RestartConfig {
    RestartConfig::default()
}

fn limits() -> LimitsConfig {
    LimitsConfig {
        max_rss_mb: 200.0,
        max_cpu_percent: 50.0,
        cpu_grace_s: 10.0,
    }
}

/// A simulated clock: `at(s)` is `s` seconds after the start.
struct Clock(Instant);

impl Clock {
    fn at(&self, s: f64) -> Instant {
        self.0 + Duration::from_secs_f64(s)
    }
}

/// A camera whose first worker was started at 0 s and said `Hello` at `hello_s`.
fn running(clock: &Clock, hello_s: f64) -> Lifecycle {
    let mut life = Lifecycle::new(true, policy(), clock.at(0.0), clock.at(0.0));
    assert_eq!(life.due(clock.at(0.0)), Some(Action::Spawn));
    life.spawned(clock.at(0.0), 1, 100, HEARTBEAT);
    assert_eq!(life.state(), WorkerState::Starting);
    life.hello(clock.at(hello_s), HEARTBEAT);
    assert_eq!(life.state(), WorkerState::Running);
    life
}

fn restart(delay_s: f64, failed: bool) -> AfterExit {
    AfterExit::Restart {
        delay: Duration::from_secs_f64(delay_s),
        failed,
    }
}

#[test]
fn a_worker_that_misses_three_heartbeats_is_killed_as_hung() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    // (second, heartbeat arrives?, expected due action)
    let table: [(f64, bool, Option<Action>); 5] = [
        (1.5, true, None),
        (2.5, true, None),
        (5.4, false, None), // 2.9 s of silence: within three heartbeats
        (
            5.6,
            false,
            Some(Action::Kill(KillCause::Hung(
                "no heartbeat for 3.1 s (interval 1.0 s)".into(),
            ))),
        ),
        (5.7, false, None), // already being ended: not killed twice
    ];
    for (s, beat, want) in table {
        if beat {
            life.heartbeat(clock.at(s));
        }
        assert_eq!(life.due(clock.at(s)), want, "at {s} s");
    }
    let report = life
        .exited(clock.at(5.7), Exit::Signal(9), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::Hung);
    assert_eq!(report.next, restart(1.0, false));
    assert_eq!(life.state(), WorkerState::Backoff);
    assert_eq!(life.restarts(), 1);
}

#[test]
fn a_worker_that_never_says_hello_is_killed_after_the_startup_grace() {
    let clock = Clock(Instant::now());
    let mut life = Lifecycle::new(true, policy(), clock.at(0.0), clock.at(0.0));
    assert_eq!(life.due(clock.at(0.0)), Some(Action::Spawn));
    life.spawned(clock.at(0.0), 1, 100, HEARTBEAT);
    // The grace is 10 s plus three heartbeats.
    assert_eq!(life.due(clock.at(12.9)), None);
    assert_eq!(
        life.due(clock.at(13.1)),
        Some(Action::Kill(KillCause::Hung(
            "no Hello within 13 s of starting".into()
        )))
    );
}

#[test]
fn a_worker_that_ignores_shutdown_is_killed_at_the_deadline() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    assert_eq!(
        life.shutdown(clock.at(10.0)),
        Some(Action::AskShutdown {
            deadline: SHUTDOWN_DEADLINE
        })
    );
    assert!(life.exiting());
    assert_eq!(life.next_due(), Some(clock.at(15.0)));
    // No heartbeats while it finishes its clip: not "hung", it is being stopped.
    assert_eq!(life.due(clock.at(14.9)), None);
    assert_eq!(
        life.due(clock.at(15.0)),
        Some(Action::Kill(KillCause::IgnoredShutdown))
    );
    assert_eq!(life.due(clock.at(15.1)), None, "killed once");
    let report = life
        .exited(clock.at(15.1), Exit::Signal(9), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::Shutdown);
    assert_eq!(report.next, AfterExit::Stopped);
    assert_eq!(life.state(), WorkerState::Stopped);
    assert_eq!(life.due(clock.at(100.0)), None, "never started again");
}

#[test]
fn shutdown_that_cannot_be_sent_kills_at_once() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    assert!(matches!(
        life.shutdown(clock.at(1.0)),
        Some(Action::AskShutdown { .. })
    ));
    assert_eq!(life.unreachable(), Some(Action::Kill(KillCause::Ended)));
    assert_eq!(life.next_due(), None, "no deadline left to wait for");
}

#[test]
fn restart_now_skips_the_backoff() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    // Crash twice first, so a backoff would be 2 s and more.
    for (crash_s, spawn_s) in [(2.0, 3.0), (3.5, 5.5)] {
        life.exited(clock.at(crash_s), Exit::Code(101), NO_JITTER);
        assert_eq!(life.due(clock.at(spawn_s)), Some(Action::Spawn));
        life.spawned(clock.at(spawn_s), 2, 101, HEARTBEAT);
        life.hello(clock.at(spawn_s), HEARTBEAT);
    }
    assert_eq!(
        life.restart_requested(clock.at(6.0)),
        Ok(Some(Action::AskShutdown {
            deadline: SHUTDOWN_DEADLINE
        }))
    );
    let report = life
        .exited(clock.at(6.2), Exit::Code(0), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::Manual);
    assert_eq!(report.next, restart(0.0, false));
    assert_eq!(life.due(clock.at(6.2)), Some(Action::Spawn));
}

#[test]
fn restart_now_while_backing_off_starts_at_once() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    life.exited(clock.at(2.0), Exit::Signal(11), NO_JITTER);
    assert_eq!(life.due(clock.at(2.5)), None, "backing off for 1 s");
    assert_eq!(life.restart_requested(clock.at(2.5)), Ok(None));
    assert_eq!(life.due(clock.at(2.5)), Some(Action::Spawn));
}

#[test]
fn a_disabled_camera_refuses_a_restart() {
    let clock = Clock(Instant::now());
    let mut life = Lifecycle::new(false, policy(), clock.at(0.0), clock.at(0.0));
    assert_eq!(life.state(), WorkerState::Stopped);
    assert_eq!(life.due(clock.at(0.0)), None);
    assert_eq!(
        life.restart_requested(clock.at(1.0)),
        Err(RestartRefused::NotRunning)
    );
}

#[test]
fn backoff_doubles_and_the_intensity_limit_trips_to_failed() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    // Each worker crashes 1 s after it starts. (expected delay, failed) per crash:
    // five restarts are allowed in 300 s, the sixth trips the limit (then every 60 s).
    let table: [(f64, bool); 7] = [
        (1.0, false),
        (2.0, false),
        (4.0, false),
        (8.0, false),
        (16.0, false),
        (60.0, true),
        (60.0, true),
    ];
    let mut t = 0.0;
    for (n, (delay_s, failed)) in table.into_iter().enumerate() {
        t += 1.0;
        let report = life
            .exited(clock.at(t), Exit::Code(101), NO_JITTER)
            .unwrap();
        assert_eq!(report.next, restart(delay_s, failed), "crash {n}");
        let state = if failed {
            WorkerState::Failed
        } else {
            WorkerState::Backoff
        };
        assert_eq!(life.state(), state, "crash {n}");
        assert_eq!(life.due(clock.at(t + delay_s - 0.01)), None, "crash {n}");
        t += delay_s;
        assert_eq!(life.due(clock.at(t)), Some(Action::Spawn), "crash {n}");
        life.spawned(clock.at(t), n as u64 + 2, 200 + n as u32, HEARTBEAT);
    }
    assert_eq!(life.restarts(), 7);
    assert_eq!(life.last_restart().unwrap().reason, RestartReason::Exit);
}

#[test]
fn a_healthy_minute_earns_an_immediate_restart_and_resets_the_backoff() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    let r = life
        .exited(clock.at(1.0), Exit::Code(1), NO_JITTER)
        .unwrap();
    assert_eq!(r.next, restart(1.0, false));
    life.spawned(clock.at(2.0), 2, 101, HEARTBEAT);
    let r = life
        .exited(clock.at(3.0), Exit::Code(1), NO_JITTER)
        .unwrap();
    assert_eq!(r.next, restart(2.0, false));
    life.spawned(clock.at(5.0), 3, 102, HEARTBEAT);
    // Ran for 60 s (reset_after_s): restarted at once, and the backoff starts over.
    let r = life
        .exited(clock.at(65.0), Exit::Code(1), NO_JITTER)
        .unwrap();
    assert_eq!(r.next, restart(0.0, false));
    assert_eq!(r.ran_for, Duration::from_secs(60));
    assert_eq!(life.due(clock.at(65.0)), Some(Action::Spawn));
    life.spawned(clock.at(65.0), 4, 103, HEARTBEAT);
    let r = life
        .exited(clock.at(66.0), Exit::Code(1), NO_JITTER)
        .unwrap();
    assert_eq!(r.next, restart(1.0, false), "the second failure backs off");
}

#[test]
fn a_removed_camera_waits_for_its_process_to_exit() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.5);
    assert!(matches!(
        life.removed(clock.at(3.0)),
        Some(Action::AskShutdown { .. })
    ));
    assert!(!life.is_gone(), "its worker still finishes its clip");
    assert_eq!(life.state(), WorkerState::Running, "until it has exited");
    assert_eq!(life.due(clock.at(7.9)), None);
    let report = life
        .exited(clock.at(4.0), Exit::Code(0), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::ConfigChanged);
    assert_eq!(report.next, AfterExit::Stopped, "its frame ring is removed");
    assert!(life.is_gone());
    assert_eq!(life.due(clock.at(10.0)), None, "never started again");
}

#[test]
fn a_removed_camera_without_a_worker_is_gone_at_once() {
    let clock = Clock(Instant::now());
    let mut life = Lifecycle::new(false, policy(), clock.at(0.0), clock.at(0.0));
    assert_eq!(life.removed(clock.at(1.0)), None);
    assert!(life.is_gone());
}

#[test]
fn a_reload_while_backing_off_starts_the_new_settings_at_once() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    // Crash into the failed state first.
    let mut t = 0.0;
    for n in 0..6 {
        t += 1.0;
        life.exited(clock.at(t), Exit::Code(101), NO_JITTER);
        t = life
            .next_start()
            .map_or(t, |s| s.duration_since(clock.0).as_secs_f64());
        if n < 5 {
            life.spawned(clock.at(t), n + 2, 300, HEARTBEAT);
        }
    }
    assert_eq!(life.state(), WorkerState::Failed);
    let now = clock.at(t - 30.0);
    assert_eq!(life.due(now), None, "waiting out the longest delay");
    assert_eq!(life.reconfigured(now, true), None);
    assert_eq!(
        life.state(),
        WorkerState::Backoff,
        "the failed mark is cleared"
    );
    assert_eq!(life.due(now), Some(Action::Spawn));
}

#[test]
fn a_reload_that_disables_a_backing_off_camera_stops_it() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    life.exited(clock.at(1.0), Exit::Code(101), NO_JITTER);
    assert_eq!(life.reconfigured(clock.at(1.5), false), None);
    assert_eq!(life.state(), WorkerState::Stopped);
    assert_eq!(life.due(clock.at(10.0)), None);
}

#[test]
fn a_reload_that_changes_a_running_camera_restarts_it_at_once() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    assert!(matches!(
        life.reconfigured(clock.at(5.0), true),
        Some(Action::AskShutdown { .. })
    ));
    let report = life
        .exited(clock.at(5.5), Exit::Code(0), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::ConfigChanged);
    assert_eq!(report.next, restart(0.0, false));
    assert_eq!(life.due(clock.at(5.5)), Some(Action::Spawn));
}

#[test]
fn a_broken_limit_ends_the_worker_with_its_reason() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    let usage = |cpu: f32, rss_mb: u64| Usage {
        cpu_percent: cpu,
        rss_bytes: rss_mb * 1_000_000,
        cpu_s: 0.0,
    };
    // (second, cpu %, rss MB, expected action)
    let table: [(f64, f32, u64, Option<Action>); 4] = [
        (1.0, 90.0, 100, None), // over: the 10 s grace starts
        (10.9, 90.0, 100, None),
        (11.0, 90.0, 100, Some(Action::Kill(KillCause::Ended))),
        (12.0, 90.0, 900, None), // already ending: judged no more
    ];
    for (s, cpu, rss, want) in table {
        life.heartbeat(clock.at(s));
        let got = life.police(clock.at(s), usage(cpu, rss), &limits());
        assert_eq!(got.map(|(action, _)| action), want, "at {s} s");
    }
    let report = life
        .exited(clock.at(12.5), Exit::Signal(9), NO_JITTER)
        .unwrap();
    assert_eq!(report.reason, RestartReason::Cpu);
    assert!(report.detail.contains("CPU 90 %"), "{}", report.detail);
}

#[test]
fn a_failed_spawn_backs_off_without_counting_a_restart() {
    let clock = Clock(Instant::now());
    let mut life = Lifecycle::new(true, policy(), clock.at(0.0), clock.at(0.0));
    assert_eq!(life.due(clock.at(0.0)), Some(Action::Spawn));
    let delay = life.spawn_failed(clock.at(0.0), "no such file".into());
    assert_eq!(delay, Duration::from_secs(1));
    assert_eq!(life.restarts(), 0);
    assert_eq!(life.last_restart().unwrap().reason, RestartReason::Spawn);
    assert_eq!(life.state(), WorkerState::Backoff);
    assert_eq!(life.due(clock.at(0.9)), None);
    assert_eq!(life.due(clock.at(1.0)), Some(Action::Spawn));
}

#[test]
fn exits_the_supervisor_did_not_cause_are_named_by_code_or_signal() {
    let clock = Clock(Instant::now());
    let table = [
        (
            Exit::Code(101),
            RestartReason::Exit,
            "exited with code 101 (panic)",
        ),
        (
            Exit::Code(3),
            RestartReason::Exit,
            "exited with code 3 (lost supervisor)",
        ),
        (Exit::Signal(9), RestartReason::Signal, "killed by signal 9"),
    ];
    for (exit, reason, detail) in table {
        let mut life = running(&clock, 0.1);
        let report = life.exited(clock.at(1.0), exit, NO_JITTER).unwrap();
        assert_eq!((report.reason, report.detail.as_str()), (reason, detail));
    }
}

#[test]
fn a_closed_channel_or_an_ending_asks_for_a_quick_look() {
    let clock = Clock(Instant::now());
    let mut life = running(&clock, 0.1);
    assert!(!life.exiting());
    life.disconnected();
    assert!(life.exiting());
    assert!(!life.owns(2));
    assert!(life.owns(1));
}
