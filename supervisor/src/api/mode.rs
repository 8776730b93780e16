//! Recording-mode overrides and schedules over HTTP:
//! - `POST /api/cameras/{id}/mode` `{"mode": "continuous", "for_s": 3600}` (or `"until"`: Unix ms,
//!   or neither: until deleted); `DELETE` ends it.
//! - `POST /api/mode` / `DELETE /api/mode`: the same for every camera at once.
//! - `GET /api/cameras/{id}/schedule?from=&to=` (Unix ms; default: the next 7 days): the modes the
//!   camera's config gives over that range, for the UI's week strip.
//!
//! The body is checked here, whole, before anything is sent to the manager: a bad request changes
//! nothing and gets 400 with `{"error": ...}`.

use super::AppState;
use crate::manager::{Command, Msg, OverrideError};
use crate::mode::{ModeStatus, Override};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nvr_config::RecordingMode as Mode;
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// The longest override: a year. Longer is a mistake (or an attempt to overflow the clock); a
/// permanent change belongs in the config, and an override without a limit exists for "until I
/// say so".
pub const MAX_OVERRIDE_S: f64 = 366.0 * 24.0 * 3600.0;
/// The widest range `schedule` answers for: 35 days (a week strip needs 7).
const MAX_RANGE_MS: i64 = 35 * 24 * 3600 * 1000;

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn now_ms() -> i64 {
    (nvr_proto::unix_ns() / 1_000_000) as i64
}

/// Parses an override body at `now_ms`: `{"mode", "for_s"?, "until"?}`.
pub fn parse_override(body: &[u8], now_ms: i64) -> Result<Override, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not JSON ({e}); send {{\"mode\": \"continuous\", \"for_s\": 3600}}")
    })?;
    let Value::Object(map) = value else {
        return Err(
            "send a JSON object such as {\"mode\": \"continuous\", \"for_s\": 3600}".into(),
        );
    };
    for key in map.keys() {
        if !["mode", "for_s", "until"].contains(&key.as_str()) {
            return Err(format!(
                "unknown field {key:?}; known fields: mode, for_s, until"
            ));
        }
    }
    let mode = match map.get("mode") {
        Some(Value::String(s)) => Mode::parse(s)?,
        Some(other) => {
            return Err(format!(
                "mode must be a string, not {other}; write \"off\", \"motion\" or \"continuous\""
            ))
        }
        None => return Err("mode is missing; write \"off\", \"motion\" or \"continuous\"".into()),
    };
    let until_ms = match (map.get("for_s"), map.get("until")) {
        (Some(_), Some(_)) => return Err("give for_s or until, not both".into()),
        (Some(v), None) => match v.as_f64() {
            Some(s) if s > 0.0 && s <= MAX_OVERRIDE_S => Some(now_ms + (s * 1000.0).round() as i64),
            _ => {
                return Err(format!(
                    "for_s must be a number of seconds greater than 0 and at most {MAX_OVERRIDE_S} (a year), not {v}"
                ))
            }
        },
        (None, Some(v)) => match v.as_i64() {
            Some(u) if u > now_ms && (u - now_ms) as f64 <= MAX_OVERRIDE_S * 1000.0 => Some(u),
            _ => {
                return Err(format!(
                    "until must be a whole Unix time in milliseconds, after now ({now_ms}) and at most a year ahead, not {v}"
                ))
            }
        },
        (None, None) => None,
    };
    Ok(Override {
        mode,
        until_ms,
        set_at_ms: now_ms,
    })
}

async fn send_override(
    state: &AppState,
    camera_id: Option<String>,
    change: Option<Override>,
) -> Response {
    let (reply, rx) = oneshot::channel();
    let sent = state.inbox.send(Msg::Command(Command::SetOverride {
        camera_id,
        change,
        reply,
    }));
    let answer = match sent {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match answer {
        Some(Ok(cameras)) => {
            let cameras: Vec<Value> = cameras
                .into_iter()
                .map(|(id, mode): (String, ModeStatus)| json!({"id": id, "mode": mode}))
                .collect();
            (StatusCode::OK, Json(json!({"cameras": cameras}))).into_response()
        }
        // Bad input like any other (the issue's rule for overrides), though a restart of an
        // unknown camera is a 404.
        Some(Err(e @ OverrideError::UnknownCamera(_))) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "shutting down"})),
        )
            .into_response(),
    }
}

pub async fn set_camera_mode(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match parse_override(&body, now_ms()) {
        Ok(o) => send_override(&state, Some(id), Some(o)).await,
        Err(e) => bad(e),
    }
}

pub async fn clear_camera_mode(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    send_override(&state, Some(id), None).await
}

pub async fn set_all_modes(State(state): State<AppState>, body: Bytes) -> Response {
    match parse_override(&body, now_ms()) {
        Ok(o) => send_override(&state, None, Some(o)).await,
        Err(e) => bad(e),
    }
}

pub async fn clear_all_modes(State(state): State<AppState>) -> Response {
    send_override(&state, None, None).await
}

pub async fn camera_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = now_ms();
    let read = |key: &str, default: i64| -> Result<i64, String> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| format!("{key}={v:?} is not a Unix time in milliseconds")),
        }
    };
    let (from_ms, to_ms) = match (read("from", now), read("to", now + 7 * 24 * 3600 * 1000)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    if to_ms <= from_ms || to_ms - from_ms > MAX_RANGE_MS {
        return bad(format!(
            "to must be after from, by at most {} days",
            MAX_RANGE_MS / 86_400_000
        ));
    }
    let (reply, rx) = oneshot::channel();
    let sent = state.inbox.send(Msg::Command(Command::Schedule {
        camera_id: id.clone(),
        from_ms,
        to_ms,
        reply,
    }));
    let answer = match sent {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match answer {
        Some(Some(v)) => (StatusCode::OK, Json(v)).into_response(),
        Some(None) => super::not_found(&id),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "shutting down"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_bodies_are_checked_whole() {
        let now = 1_800_000_000_000;
        let ok = |b: &str| parse_override(b.as_bytes(), now).unwrap();
        assert_eq!(ok(r#"{"mode": "off"}"#).until_ms, None);
        assert_eq!(
            ok(r#"{"mode": "continuous", "for_s": 5}"#).until_ms,
            Some(now + 5000)
        );
        assert_eq!(
            ok(r#"{"mode": "motion", "for_s": 0.5}"#).until_ms,
            Some(now + 500)
        );
        assert_eq!(
            ok(r#"{"mode": "motion", "until": 1800000060000}"#).until_ms,
            Some(now + 60_000)
        );
        for (body, says) in [
            ("", "not JSON"),
            ("[]", "JSON object"),
            (r#"{"mode": "always"}"#, "is not a mode"),
            (r#"{"mode": 3}"#, "must be a string"),
            (r#"{"for_s": 3}"#, "mode is missing"),
            (r#"{"mode": "off", "for_s": -5}"#, "greater than 0"),
            (r#"{"mode": "off", "for_s": 0}"#, "greater than 0"),
            (r#"{"mode": "off", "for_s": 1e300}"#, "at most"),
            (r#"{"mode": "off", "for_s": "5"}"#, "number of seconds"),
            (r#"{"mode": "off", "until": 1700000000000}"#, "after now"),
            (
                r#"{"mode": "off", "until": 9223372036854775807}"#,
                "a year ahead",
            ),
            (r#"{"mode": "off", "until": 1.8e12}"#, "whole Unix time"),
            (
                r#"{"mode": "off", "for_s": 5, "until": 1800000060000}"#,
                "not both",
            ),
            (r#"{"mode": "off", "for": 5}"#, "unknown field"),
        ] {
            let e = parse_override(body.as_bytes(), now).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
    }
}
