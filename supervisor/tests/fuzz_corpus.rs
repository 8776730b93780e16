//! Replays the `http` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

use axum::http::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use supervisor::fuzzing::{Fixture, Outcome};

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::inputs;

/// An answer this late is a hang. Every route answers in milliseconds (a refused login too: the
/// throttle answers 429 rather than waiting), so this only bounds a loaded machine.
const HANG: Duration = Duration::from_secs(10);

#[test]
fn http_corpus_replays_without_a_panic_or_an_escape() {
    // A panic on any thread counts, also one that tokio or a preview thread would swallow.
    static PANICKED: AtomicBool = AtomicBool::new(false);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));
    let fixture = Fixture::new().expect("building the HTTP fixture");
    let (mut answered, mut hung) = (0, Vec::new());
    for (path, bytes) in inputs("http") {
        eprintln!("replaying {}", path.display());
        let outcome = fixture.check_within(&bytes, HANG);
        eprintln!("  {outcome:?}");
        match outcome {
            Outcome::Answered(_) => answered += 1,
            Outcome::Hung => hung.push(path),
            Outcome::NoRequest => {}
        }
    }
    assert!(
        answered > 0,
        "no corpus input made a request that was answered"
    );
    assert!(
        hung.is_empty(),
        "{} inputs got no answer within {HANG:?}: {hung:#?}",
        hung.len()
    );
    // The fixture's escape attempts are in place: each is refused, none served.
    for (request, status) in [
        (
            &b"GET /api/recordings/fuzzcam_20240102T030405Z/file"[..],
            StatusCode::OK,
        ),
        (
            b"GET /api/recordings/fuzzcam_20240102T030405Z/file\nrange: bytes=1-2",
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            b"GET /api/recordings/fuzzcam_20240102T050000Z/file",
            StatusCode::CONFLICT,
        ),
        (
            b"GET /api/recordings/fuzzcam_20240102T040000Z/file",
            StatusCode::NOT_FOUND,
        ),
        (b"GET /api/recordings/outside/file", StatusCode::NOT_FOUND),
        (b"GET /api/recordings/secret/file", StatusCode::NOT_FOUND),
        (
            b"GET /api/events/fuzzcam_20240102T030406Z/thumbnail.jpg",
            StatusCode::OK,
        ),
        (
            b"GET /api/events/fuzzcam_20240102T040001Z/thumbnail.jpg",
            StatusCode::NOT_FOUND,
        ),
        (
            b"GET /status auth\ncookie: nvr_session={session}",
            StatusCode::OK,
        ),
        (b"GET /status auth", StatusCode::UNAUTHORIZED),
        // DNS rebinding: without a login only loopback names are answered.
        (
            b"GET /status\nhost: rebind.attacker.example",
            StatusCode::MISDIRECTED_REQUEST,
        ),
        (b"GET /status\nhost: localhost:5001", StatusCode::OK),
        // A state change from another site's page, with or without a login.
        (
            b"POST /api/cameras/fuzzcam/restart\nhost: 127.0.0.1:5001\norigin: http://evil.example\nx-nvr-csrf: 1",
            StatusCode::FORBIDDEN,
        ),
        (
            b"POST /api/login auth\nhost: nvr.example\norigin: https://evil.example\ncontent-type: application/json\n\n{}",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let got = fixture.check(request);
        assert_eq!(got, Some(status), "{}", String::from_utf8_lossy(request));
    }
    drop(fixture);
    let _ = std::panic::take_hook();
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a thread panicked while replaying"
    );
}
