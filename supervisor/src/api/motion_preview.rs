//! Trying motion sensitivity before saving it: `POST /api/cameras/{id}/motion/preview` with
//! `{"threshold": 1-255, "min_area": 0-100, "for_s": 1-300}` (each optional: the config's value,
//! 30 s) applies it to the running worker in place, without touching the config file, until
//! `for_s` passes, the camera's settings are saved or reloaded, its worker restarts, or
//! `DELETE /api/cameras/{id}/motion/preview`. The set-up page sends it while a slider moves, so
//! the live motion level shows what the new setting would see. `/status` shows a preview in force
//! as the camera's `motion_preview`.

use super::AppState;
use crate::manager::{Command, MotionPreview, Msg, PreviewError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The longest preview: long enough to watch a few passers-by, short enough that a forgotten tab
/// never leaves a camera on unsaved settings for long.
const MAX_FOR_S: f64 = 300.0;
const DEFAULT_FOR_S: f64 = 30.0;

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

/// The body's values, each checked against the config's own ranges (`None`: not given).
fn parse(body: &[u8]) -> Result<(Option<u8>, Option<f64>, f64), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not JSON ({e}); send {{\"threshold\": 20, \"min_area\": 0, \"for_s\": 30}}")
    })?;
    let Value::Object(map) = v else {
        return Err("send a JSON object such as {\"threshold\": 20}".into());
    };
    if let Some(k) = map
        .keys()
        .find(|k| !["threshold", "min_area", "for_s"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {k:?}; known fields: threshold, min_area, for_s"
        ));
    }
    let number = |key: &str, lo: f64, hi: f64| match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{key} {v} is out of range; use a number from {lo} to {hi}"
            )),
        },
    };
    let threshold = number("threshold", 1.0, 255.0)?;
    if threshold.is_some_and(|t| t.fract() != 0.0) {
        return Err("threshold must be a whole number from 1 to 255".into());
    }
    Ok((
        threshold.map(|t| t as u8),
        number("min_area", 0.0, 100.0)?,
        number("for_s", 1.0, MAX_FOR_S)?.unwrap_or(DEFAULT_FOR_S),
    ))
}

async fn send(state: &AppState, camera_id: String, preview: Option<MotionPreview>) -> Response {
    let (reply, rx) = oneshot::channel();
    let sent = state.inbox.send(Msg::Command(Command::PreviewMotion {
        camera_id,
        preview,
        reply,
    }));
    let answer = match sent {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match answer {
        Some(Ok(())) => Json(json!({"status": "ok"})).into_response(),
        Some(Err(e @ PreviewError::UnknownCamera(_))) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response()
        }
        Some(Err(e @ PreviewError::NotRunning)) => {
            (StatusCode::CONFLICT, Json(json!({"error": e.to_string()}))).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "shutting down"})),
        )
            .into_response(),
    }
}

/// `POST /api/cameras/{id}/motion/preview`.
pub async fn start(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let (threshold, min_area, for_s) = match parse(&body) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let preview = MotionPreview {
        threshold,
        min_area,
        until: Instant::now() + Duration::from_secs_f64(for_s),
    };
    send(&state, id, Some(preview)).await
}

/// `DELETE /api/cameras/{id}/motion/preview`.
pub async fn end(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    send(&state, id, None).await
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn missing_values_are_the_configs_and_out_of_range_ones_are_refused() {
        assert_eq!(parse(b"{}"), Ok((None, None, 30.0)));
        assert_eq!(
            parse(br#"{"threshold": 12, "min_area": 2, "for_s": 60}"#),
            Ok((Some(12), Some(2.0), 60.0))
        );
        for bad in [
            &br#"{"threshold": 0}"#[..],
            br#"{"threshold": 12.5}"#,
            br#"{"min_area": 101}"#,
            br#"{"for_s": 301}"#,
            br#"{"treshold": 3}"#,
            br#"[1]"#,
            b"nope",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
