use super::*;

const WINDOW: Duration = Duration::from_millis(500);
const SETTLE: Duration = Duration::from_secs(2);
const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const RIGHT: Velocity = Velocity {
    pan: 0.5,
    tilt: 0.0,
    zoom: 0.0,
};
const UP: Velocity = Velocity {
    pan: 0.0,
    tilt: 0.5,
    zoom: 0.0,
};

#[test]
fn a_move_not_renewed_within_the_window_is_stopped() {
    let t0 = Instant::now();
    let mut m = Mover::new(WINDOW, SETTLE);
    assert!(!m.motion_paused());
    assert_eq!(m.on_move(RIGHT, t0), Step::Move(RIGHT));
    assert!(m.motion_paused());
    // Renewals with the same velocity only extend the window: no call to the camera.
    for n in 1..=8 {
        let at = t0 + ms(300 * n);
        assert_eq!(m.tick(at), Step::None, "renewal {n}");
        assert_eq!(m.on_move(RIGHT, at), Step::None, "renewal {n}");
    }
    let last = t0 + ms(2400);
    assert_eq!(m.next_due(), Some(last + WINDOW));
    assert_eq!(m.tick(last + WINDOW - ms(1)), Step::None);
    assert_eq!(m.tick(last + WINDOW), Step::Stop, "the dead-man stop");
    assert!(m.motion_paused(), "the picture settles");
    assert_eq!(m.tick(last + WINDOW + SETTLE - ms(1)), Step::None);
    assert!(m.motion_paused());
    assert_eq!(m.tick(last + WINDOW + SETTLE), Step::None);
    assert!(
        !m.motion_paused(),
        "detection watches again after the settle time"
    );
    assert_eq!(m.next_due(), None);
}

#[test]
fn a_new_velocity_is_sent_and_a_zero_velocity_is_a_stop() {
    let t0 = Instant::now();
    let mut m = Mover::new(WINDOW, SETTLE);
    assert_eq!(m.on_move(RIGHT, t0), Step::Move(RIGHT));
    assert_eq!(m.on_move(UP, t0 + ms(100)), Step::Move(UP));
    assert_eq!(m.on_move(UP, t0 + ms(200)), Step::None);
    let zero = Velocity {
        pan: 0.0,
        tilt: 0.0,
        zoom: 0.0,
    };
    assert_eq!(m.on_move(zero, t0 + ms(300)), Step::Stop);
    assert!(!m.moving());
    // Moving again after a stop is a new move.
    assert_eq!(m.on_move(UP, t0 + ms(400)), Step::Move(UP));
}

#[test]
fn a_held_move_is_sent_again_before_the_cameras_own_timeout() {
    let t0 = Instant::now();
    let mut m = Mover::new(WINDOW, SETTLE);
    m.on_move(RIGHT, t0);
    let mut sent = vec![t0];
    let mut at = t0;
    // The user holds the button for 10 s, renewing every 250 ms.
    while at < t0 + Duration::from_secs(10) {
        at += ms(250);
        if let Step::Move(v) = m.tick(at) {
            assert_eq!(v, RIGHT);
            sent.push(at);
        }
        m.on_move(RIGHT, at);
    }
    for pair in sent.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < CAMERA_MOVE_TIMEOUT,
            "{gap:?}: the camera would have stopped"
        );
    }
    assert!(sent.len() >= 3, "{sent:?}");
}

#[test]
fn a_preset_travel_pauses_detection_until_the_camera_arrives_and_settles() {
    let t0 = Instant::now();
    let mut m = Mover::new(WINDOW, SETTLE);
    m.on_goto(t0);
    assert!(m.motion_paused());
    assert_eq!(m.tick(t0 + ms(100)), Step::None);
    assert_eq!(m.tick(t0 + TRAVEL_POLL), Step::PollMoving);
    m.on_poll(Some(true), t0 + TRAVEL_POLL);
    assert_eq!(m.next_due(), Some(t0 + TRAVEL_POLL * 2));
    let arrived = t0 + TRAVEL_POLL * 2;
    assert_eq!(m.tick(arrived), Step::PollMoving);
    m.on_poll(Some(false), arrived);
    assert!(m.motion_paused());
    m.tick(arrived + SETTLE);
    assert!(!m.motion_paused());
    // A camera that never says it arrived is given up on.
    m.on_goto(t0);
    m.on_poll(Some(true), t0 + TRAVEL_MAX);
    m.tick(t0 + TRAVEL_MAX + SETTLE);
    assert!(!m.motion_paused());
}

#[test]
fn the_queue_keeps_only_the_newest_move_and_bounds_the_rest() {
    let q = Queue::default();
    let mv = |pan| PtzCommand::Move {
        pan,
        tilt: 0.0,
        zoom: 0.0,
    };
    assert_eq!(q.push(1, mv(0.1)), Pushed::Queued { superseded: vec![] });
    assert_eq!(
        q.push(2, mv(0.2)),
        Pushed::Queued {
            superseded: vec![1]
        }
    );
    assert_eq!(
        q.push(3, PtzCommand::Describe),
        Pushed::Queued { superseded: vec![] }
    );
    assert_eq!(
        q.push(4, PtzCommand::Stop),
        Pushed::Queued {
            superseded: vec![2]
        }
    );
    for id in 5..(5 + MAX_QUEUED as u64 - 2) {
        assert!(matches!(
            q.push(id, PtzCommand::Describe),
            Pushed::Queued { .. }
        ));
    }
    match q.push(99, PtzCommand::Describe) {
        Pushed::Refused(e) => assert_eq!(e.kind, PtzErrorKind::Busy),
        other => panic!("{other:?}"),
    }
    // A move always gets in: it replaces moves, and a flood of them stays one entry.
    for id in 100..1000 {
        assert!(matches!(q.push(id, mv(0.3)), Pushed::Queued { .. }));
    }
    assert_eq!(q.state.lock().unwrap().items.len(), MAX_QUEUED + 1);
    assert_eq!(q.pop(None).unwrap().map(|(id, _)| id), Some(3));
    q.close();
    let waiting = q.pop(None).unwrap_err();
    assert_eq!(waiting.len(), MAX_QUEUED);
    match q.push(2000, PtzCommand::Stop) {
        Pushed::Refused(e) => assert_eq!(e.kind, PtzErrorKind::WorkerUnavailable),
        other => panic!("{other:?}"),
    }
}

/// A camera in memory that records every call.
#[derive(Clone, Default)]
struct FakeCamera {
    calls: Arc<Mutex<Vec<String>>>,
    fail_with: Arc<Mutex<Option<PtzErrorKind>>>,
}

impl Device for FakeCamera {
    fn continuous_move(&mut self, v: Velocity, timeout: Duration) -> Result<(), PtzError> {
        self.record(format!("move {} {} {} {timeout:?}", v.pan, v.tilt, v.zoom))
    }
    fn stop(&mut self) -> Result<(), PtzError> {
        self.record("stop".into())
    }
    fn goto_preset(&mut self, preset: &str) -> Result<(), PtzError> {
        self.record(format!("goto {preset}"))
    }
    fn set_preset(&mut self, name: &str) -> Result<String, PtzError> {
        self.record(format!("set {name}"))
            .map(|()| format!("t-{name}"))
    }
    fn describe(&mut self) -> Result<PtzDescription, PtzError> {
        self.record("describe".into())
            .map(|()| PtzDescription::default())
    }
    fn moving(&mut self) -> Result<Option<bool>, PtzError> {
        self.record("moving?".into()).map(|()| Some(false))
    }
}

impl FakeCamera {
    fn record(&self, call: String) -> Result<(), PtzError> {
        if let Some(kind) = *self.fail_with.lock().unwrap() {
            return Err(PtzError::new(kind, "fake failure"));
        }
        self.calls.lock().unwrap().push(call);
        Ok(())
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

type Replies = Arc<Mutex<Vec<(u64, Reply)>>>;

fn start(camera: &FakeCamera) -> (Arc<Queue>, Replies, std::thread::JoinHandle<()>) {
    let queue = Arc::new(Queue::default());
    let replies: Replies = Arc::default();
    let sink = Arc::clone(&replies);
    let cam = camera.clone();
    let ptz = Ptz::new(
        Box::new(move || Ok(Box::new(cam.clone()) as Box<dyn Device>)),
        ms(200),
        ms(100),
        Arc::new(AtomicBool::new(false)),
        Arc::new(move |id, r| sink.lock().unwrap().push((id, r))),
    );
    let q = Arc::clone(&queue);
    let thread = std::thread::spawn(move || ptz.run(&q));
    (queue, replies, thread)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(ms(5));
    }
}

#[test]
fn the_thread_stops_at_start_answers_every_command_and_stops_a_forgotten_move() {
    let camera = FakeCamera::default();
    let (queue, replies, thread) = start(&camera);
    wait_for("the start-up stop", || camera.calls() == ["stop"]);
    queue.push(
        1,
        PtzCommand::Move {
            pan: 0.1,
            tilt: 0.0,
            zoom: 0.0,
        },
    );
    wait_for("the dead-man stop", || camera.calls().len() == 3);
    let calls = camera.calls();
    assert!(calls[1].starts_with("move 0.1 0 0"), "{calls:?}");
    assert_eq!(calls[2], "stop");
    queue.push(
        2,
        PtzCommand::SetPreset {
            name: "gate".into(),
        },
    );
    queue.push(
        3,
        PtzCommand::Move {
            pan: 5.0,
            tilt: 0.0,
            zoom: 0.0,
        },
    );
    wait_for("two more answers", || replies.lock().unwrap().len() == 3);
    let r = replies.lock().unwrap().clone();
    assert_eq!(r[0], (1, Ok(PtzAnswer::Done)));
    assert_eq!(
        r[1],
        (
            2,
            Ok(PtzAnswer::PresetSet {
                token: "t-gate".into()
            })
        )
    );
    assert_eq!(r[2].1.as_ref().unwrap_err().kind, PtzErrorKind::BadRequest);
    queue.close();
    thread.join().unwrap();
}

#[test]
fn a_worker_that_stops_mid_move_stops_the_camera() {
    let camera = FakeCamera::default();
    let (queue, _replies, thread) = start(&camera);
    wait_for("the start-up stop", || camera.calls() == ["stop"]);
    queue.push(
        1,
        PtzCommand::Move {
            pan: 0.0,
            tilt: -0.2,
            zoom: 0.0,
        },
    );
    wait_for("the move", || camera.calls().len() == 2);
    queue.close();
    thread.join().unwrap();
    assert_eq!(camera.calls().last().map(String::as_str), Some("stop"));
}

#[test]
fn a_failed_connection_is_retried_and_its_error_reported() {
    let camera = FakeCamera::default();
    *camera.fail_with.lock().unwrap() = Some(PtzErrorKind::Unauthorized);
    let (queue, replies, thread) = start(&camera);
    queue.push(1, PtzCommand::Describe);
    wait_for("an answer", || !replies.lock().unwrap().is_empty());
    assert_eq!(
        replies.lock().unwrap()[0].1.as_ref().unwrap_err().kind,
        PtzErrorKind::Unauthorized
    );
    *camera.fail_with.lock().unwrap() = None;
    queue.push(2, PtzCommand::Describe);
    wait_for("a second answer", || replies.lock().unwrap().len() == 2);
    assert!(replies.lock().unwrap()[1].1.is_ok());
    queue.close();
    thread.join().unwrap();
}
