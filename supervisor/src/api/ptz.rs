//! Pan-tilt-zoom over HTTP, routed through the manager to the camera's worker:
//! - `POST /api/cameras/{id}/ptz` with `{"action": "move", "pan", "tilt", "zoom"}` (each -1..1;
//!   renew it while the button is held, it stops `onvif.move_timeout_s` after the last renewal),
//!   `{"action": "stop"}`, `{"action": "goto_preset", "preset": "<token or name>"}` or
//!   `{"action": "set_preset", "name": "..."}`.
//! - `GET /api/cameras/{id}/ptz`: capabilities, presets and position.
//!
//! Answers: 200 with what the camera answered, or `{"error": "<kind>", "detail": "..."}` with a
//! stable kind (`no_onvif`, `not_ptz`, `unauthorized`, `timeout`, `worker_unavailable`,
//! `camera_error`, `bad_request`, `busy`). A camera's refusal of its ONVIF account is a 502, not
//! a 401: the browser's own login is fine.

use super::AppState;
use crate::manager::{Command, Msg, PtzResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nvr_proto::ptz::{PtzAnswer, PtzCommand, PtzErrorKind};
use serde_json::json;
use tokio::sync::oneshot;

/// The HTTP status of an error kind.
fn status_of(kind: PtzErrorKind) -> StatusCode {
    match kind {
        PtzErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        PtzErrorKind::NoOnvif | PtzErrorKind::NotPtz => StatusCode::CONFLICT,
        PtzErrorKind::Unauthorized | PtzErrorKind::CameraError => StatusCode::BAD_GATEWAY,
        PtzErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        PtzErrorKind::WorkerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        PtzErrorKind::Busy => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn error(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": kind, "detail": detail.into()})),
    )
        .into_response()
}

/// `POST /api/cameras/{id}/ptz`.
pub async fn command(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let command: PtzCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                PtzErrorKind::BadRequest.as_str(),
                format!("{e}; send e.g. {{\"action\": \"move\", \"pan\": 0.5, \"tilt\": 0, \"zoom\": 0}}, {{\"action\": \"stop\"}}, {{\"action\": \"goto_preset\", \"preset\": \"home\"}} or {{\"action\": \"set_preset\", \"name\": \"gate\"}}"),
            )
        }
    };
    if let Err(e) = command.validate() {
        return error(
            StatusCode::BAD_REQUEST,
            PtzErrorKind::BadRequest.as_str(),
            e,
        );
    }
    answer(send(&state, id, command).await)
}

/// `GET /api/cameras/{id}/ptz`.
pub async fn describe(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    answer(send(&state, id, PtzCommand::Describe).await)
}

/// `None`: shutting down. `Some(None)`: no such camera.
async fn send(
    state: &AppState,
    camera_id: String,
    command: PtzCommand,
) -> Option<Option<PtzResult>> {
    let (reply, rx) = oneshot::channel();
    let sent = state.inbox.send(Msg::Command(Command::Ptz {
        camera_id,
        command,
        reply,
    }));
    // A failed send hands the message (and the reply's sender) back: never wait on it then.
    match sent {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    }
}

fn answer(result: Option<Option<PtzResult>>) -> Response {
    match result {
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "worker_unavailable",
            "the NVR is shutting down",
        ),
        Some(None) => error(StatusCode::NOT_FOUND, "not_found", "no camera with this id"),
        Some(Some(Ok(PtzAnswer::Done))) => Json(json!({"result": "done"})).into_response(),
        Some(Some(Ok(PtzAnswer::PresetSet { token }))) => {
            Json(json!({"result": "preset_set", "token": token})).into_response()
        }
        Some(Some(Ok(PtzAnswer::Described(d)))) => Json(d).into_response(),
        Some(Some(Err(e))) => error(status_of(e.kind), e.kind.as_str(), e.detail),
    }
}
