//! The `config` fuzz target's body, shared with its replay test (`tests/fuzz_corpus.rs`) so the two
//! cannot drift: parse and validate one input as `cameras.json` and check what the result promises.
//! A broken promise panics, which is what the fuzzer and the test look for.

use crate::{parse, Config};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The environment the input sees: one variable, holding a password.
const ENV_VAR: &str = "NVR_FUZZ_PASSWORD";
const ENV_PASSWORD: &str = "env-secret-from-fuzz";

/// Parses `bytes` like [`crate::load`] would (non-UTF-8 never gets past `read_to_string`) and
/// checks: a valid config is usable by the supervisor (every duration fits its clock arithmetic,
/// ids are valid and unique); an invalid one names the field of every problem, except when the
/// whole file is unreadable; and neither shows a password. Returns whether the config is valid.
pub fn check(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let (shown, config) = run(text);
    assert!(!shown.contains(ENV_PASSWORD), "password shown in {shown}");
    if let Some(config) = &config {
        usable(config);
    }
    // The same config with every `password` value replaced by a marker must not show the marker.
    if let Ok(mut value) = serde_json::from_str::<Value>(text) {
        let markers = [MARKER.to_string(), MARKER_NUMBER.to_string()];
        if mark_passwords(&mut value) && !markers.iter().any(|m| text.contains(m.as_str())) {
            let (shown, _) = run(&value.to_string());
            for m in &markers {
                assert!(!shown.contains(m.as_str()), "password shown in {shown}");
            }
        }
    }
    config.is_some()
}

const MARKER: &str = "pw-marker-5f1e";
const MARKER_NUMBER: u64 = 7_531_902_468;

/// What the config shows of itself (its `Debug`, or the error text), and the config if valid.
fn run(text: &str) -> (String, Option<Config>) {
    let env = |name: &str| (name == ENV_VAR).then(|| ENV_PASSWORD.to_string());
    match parse(text, Path::new("cameras.json"), &env) {
        Ok(config) => (format!("{config:?}"), Some(config)),
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            for p in &e.problems {
                let whole_file =
                    p.message.starts_with("line ") || p.message.starts_with("expected an object");
                assert!(
                    !p.message.is_empty() && (!p.path.is_empty() || whole_file),
                    "a problem that names no field: {p:?}"
                );
            }
            (e.to_string(), None)
        }
    }
}

/// Replaces every string or number under a `password` key with a marker; true if there was one.
fn mark_passwords(v: &mut Value) -> bool {
    let mut marked = false;
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(_) if k == "password" => *v = MARKER.into(),
                    Value::Number(_) if k == "password" => *v = MARKER_NUMBER.into(),
                    _ => {
                        marked |= mark_passwords(v);
                        continue;
                    }
                }
                marked = true;
            }
        }
        Value::Array(items) => {
            for item in items {
                marked |= mark_passwords(item);
            }
        }
        _ => {}
    }
    marked
}

/// What the supervisor and workers do with a valid config must not panic.
fn usable(c: &Config) {
    let mut seconds = vec![
        c.heartbeat_interval_s,
        c.restart.initial_s,
        c.restart.max_s,
        c.restart.reset_after_s,
        c.restart.period_s,
        c.retention.check_every_s,
    ];
    let mut ids = Vec::new();
    for cam in &c.cameras {
        assert!(
            crate::CameraId::new(cam.id.as_str()).is_ok(),
            "{:?}",
            cam.id
        );
        assert!(!ids.contains(&cam.id), "duplicate id {:?}", cam.id);
        ids.push(cam.id.clone());
        let r = &cam.recording;
        seconds.extend([
            cam.motion.post_motion_s,
            r.pre_roll_s,
            r.post_roll_s,
            r.max_segment_s,
            cam.limits.cpu_grace_s,
        ]);
    }
    for s in seconds {
        // The supervisor allows three heartbeats (`mul_f64(3.0)`) and adds delays to `Instant::now()`.
        let fits = Duration::try_from_secs_f64(s)
            .ok()
            .and_then(|d| d.checked_mul(3))
            .and_then(|d| Instant::now().checked_add(d));
        assert!(
            s > 0.0 && fits.is_some(),
            "duration {s} s is accepted but unusable"
        );
    }
}
