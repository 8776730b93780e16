//! Editing the config from the web UI, and testing a camera before it is saved.
//!
//! - `GET /api/config`: the file as the UI may edit it (every secret `"***"`), each camera with
//!   `defaults` applied, what a new camera gets by default, and the file's `ETag`.
//! - `POST /api/config/cameras`, `PUT`/`DELETE /api/config/cameras/{id}`,
//!   `PUT /api/config/cameras/{id}/zones` (`{"zones": [...], "masks": [...]}`): each needs the login
//!   (and, like every state change, the CSRF header) and `If-Match` with the ETag the UI read (409
//!   when the file changed since, 428 without it). The edit is checked by the start-up validator
//!   (422 with every problem and its JSON path), written by [`crate::config_writer`] (nothing when
//!   it changes no byte), then applied like a reload.
//! - `POST /api/probe`: a camera object (saved or not; `"***"` keeps the stored password) tested in
//!   a short-lived probe worker ([`crate::probe`]); login needed, rate-limited.
//! - `POST /api/setup`: the first login (`{"username", "password"}`), written to `api.auth`; only
//!   while the config has none, and only from loopback. Until then the config is read-only.

// A handler's early answer is a `Response`: returning it as the error is the point.
#![allow(clippy::result_large_err)]

use super::AppState;
use crate::config_writer::edit::{self, EditError};
use crate::config_writer::{self, doc::Doc, Loaded};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nvr_config::Config;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One edit at a time, from reading the file to the end of its reload.
static WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Probes running at once, at most.
const PROBES_AT_ONCE: usize = 2;
/// Probes started within [`PROBE_WINDOW`], at most.
const PROBES_PER_WINDOW: usize = 12;
const PROBE_WINDOW: Duration = Duration::from_secs(60);
/// Shortest password the set-up page accepts.
const MIN_PASSWORD_CHARS: usize = 8;

fn answer(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn read(state: &AppState) -> Result<Loaded, Response> {
    let path = state.config_path.clone();
    match tokio::task::spawn_blocking(move || config_writer::read(&path)).await {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": e.to_string()}),
        )),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

fn problems_json(problems: &[nvr_config::Problem]) -> Value {
    Value::Array(
        problems
            .iter()
            .map(|p| json!({"path": p.path, "message": p.message}))
            .collect(),
    )
}

fn edit_error(e: EditError) -> Response {
    match e {
        EditError::Invalid(problems) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "the config would be invalid; nothing was written", "problems": problems_json(&problems)}),
        ),
        EditError::NoCamera(_) => answer(StatusCode::NOT_FOUND, json!({"error": e.to_string()})),
        EditError::Exists(_) => answer(StatusCode::CONFLICT, json!({"error": e.to_string()})),
        EditError::BadRequest(_) => {
            answer(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}))
        }
    }
}

/// Config writes need a login: without `api.auth` the UI is read-only until the set-up page made one.
fn need_login(state: &AppState) -> Option<Response> {
    (!state.auth.enabled()).then(|| {
        answer(
            StatusCode::FORBIDDEN,
            json!({"error": "create the admin login first (the set-up page, POST /api/setup); until then the config is read-only"}),
        )
    })
}

fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        answer(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("the body is not JSON: {e}")}),
        )
    })
}

/// `GET /api/config`.
pub async fn get_config(State(state): State<AppState>) -> Response {
    let loaded = match read(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let validated = edit::validate(&loaded.doc, &env_var);
    let (cameras, problems) = match &validated {
        Ok(c) => (
            c.cameras.iter().map(edit::effective_camera).collect(),
            Vec::new(),
        ),
        Err(p) => (Vec::new(), p.clone()),
    };
    let new_camera = new_camera_defaults(&loaded.doc);
    let body = json!({
        "etag": loaded.etag,
        "editable": state.auth.enabled(),
        "setup_needed": !state.auth.enabled(),
        "config": edit::masked(&loaded.doc.to_value()),
        "cameras": cameras,
        "new_camera": new_camera,
        "problems": problems_json(&problems),
    });
    (
        [
            (header::ETAG, loaded.etag.clone()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Json(body),
    )
        .into_response()
}

/// What a new camera gets from `defaults` and the built-in defaults (id and URL left empty).
fn new_camera_defaults(doc: &Doc) -> Value {
    let edit = json!({"id": "new", "main_url": "rtsp://new.invalid/"});
    match edit::candidate(doc, &edit, &|_| Some(String::new())) {
        Ok(c) => {
            let mut v = edit::effective_camera(&c);
            v["id"] = json!("");
            v["name"] = json!("");
            v["main_url"] = json!("");
            v
        }
        Err(_) => Value::Null,
    }
}

/// Reads the file, checks `If-Match`, makes the edit, writes it and reloads.
async fn write_edit(
    state: &AppState,
    headers: &HeaderMap,
    created: bool,
    make: impl FnOnce(&Doc) -> Result<(Doc, Config), EditError>,
) -> Response {
    if let Some(r) = need_login(state) {
        return r;
    }
    let _one = WRITER.lock().await;
    let loaded = match read(state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        None => {
            return answer(
                StatusCode::PRECONDITION_REQUIRED,
                json!({"error": "send If-Match with the ETag of GET /api/config", "etag": loaded.etag}),
            )
        }
        Some(tag) if tag.trim() != loaded.etag => {
            return answer(
                StatusCode::CONFLICT,
                json!({"error": "the config file changed since you read it; reload it and make the change again", "etag": loaded.etag}),
            )
        }
        Some(_) => {}
    }
    let (new_doc, _) = match make(&loaded.doc) {
        Ok(d) => d,
        Err(e) => return edit_error(e),
    };
    let path = state.config_path.clone();
    let old = loaded.clone();
    let written_doc = new_doc.clone();
    let written =
        tokio::task::spawn_blocking(move || config_writer::write(&path, &old, &written_doc)).await;
    let changed = match written {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "config write failed");
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            );
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let etag = if changed {
        config_writer::etag(new_doc.print().as_bytes())
    } else {
        loaded.etag.clone()
    };
    let reload = if changed {
        tracing::info!(file = %state.config_path.display(), "config written from the web UI; reloading");
        match super::reload_config(&state.config_path, &state.inbox, &state.auth).await {
            Ok((summary, api)) => json!({
                "status": "reloaded",
                "summary": summary,
                "login_changed": api.login_changed,
                "restart_needed": api.restart_needed,
            }),
            Err(e) => json!({"status": "rejected", "error": e}),
        }
    } else {
        Value::Null
    };
    let code = if created && changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::ETAG, etag.clone())],
        Json(json!({"changed": changed, "etag": etag, "reload": reload})),
    )
        .into_response()
}

/// `POST /api/config/cameras`.
pub async fn add_camera(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let edit = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    write_edit(&state, &headers, true, |doc| {
        edit::add_camera(doc, &edit, &env_var)
    })
    .await
}

/// `PUT /api/config/cameras/{id}`.
pub async fn put_camera(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let edit = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    write_edit(&state, &headers, false, |doc| {
        edit::put_camera(doc, &id, &edit, &env_var)
    })
    .await
}

/// `PUT /api/config/cameras/{id}/zones`: `{"zones": [...], "masks": [...]}` (either may be left out).
pub async fn put_zones(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sent = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut motion = serde_json::Map::new();
    for key in ["zones", "masks"] {
        if let Some(v) = sent.get(key) {
            motion.insert(key.into(), v.clone());
        }
    }
    if motion.is_empty() || sent.as_object().is_some_and(|o| o.len() != motion.len()) {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "send {\"zones\": [...], \"masks\": [...]}"}),
        );
    }
    let edit = json!({ "motion": motion });
    write_edit(&state, &headers, false, |doc| {
        edit::put_camera(doc, &id, &edit, &env_var)
    })
    .await
}

/// `DELETE /api/config/cameras/{id}`.
pub async fn delete_camera(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    write_edit(&state, &headers, false, |doc| {
        edit::delete_camera(doc, &id, &env_var)
    })
    .await
}

/// Start times of recent probes; `running` counts those not yet answered.
#[derive(Default)]
struct ProbeLimit {
    started: VecDeque<Instant>,
    running: usize,
}

static PROBES: Mutex<ProbeLimit> = Mutex::new(ProbeLimit {
    started: VecDeque::new(),
    running: 0,
});

/// Takes a probe slot, or says how many seconds to wait.
fn take_probe_slot(now: Instant) -> Result<(), u64> {
    let mut l = PROBES.lock().unwrap_or_else(|p| p.into_inner());
    while l
        .started
        .front()
        .is_some_and(|t| now.duration_since(*t) >= PROBE_WINDOW)
    {
        l.started.pop_front();
    }
    if l.running >= PROBES_AT_ONCE {
        return Err(2);
    }
    if l.started.len() >= PROBES_PER_WINDOW {
        let oldest = l.started.front().copied().unwrap_or(now);
        return Err((PROBE_WINDOW.saturating_sub(now.duration_since(oldest)))
            .as_secs()
            .max(1));
    }
    l.started.push_back(now);
    l.running += 1;
    Ok(())
}

fn release_probe_slot() {
    let mut l = PROBES.lock().unwrap_or_else(|p| p.into_inner());
    l.running = l.running.saturating_sub(1);
}

/// `POST /api/probe`: a camera object (as in the config); answers what each stream showed.
pub async fn probe(State(state): State<AppState>, body: Bytes) -> Response {
    if let Some(r) = need_login(&state) {
        return r;
    }
    let sent = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let loaded = match read(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let camera = match edit::candidate(&loaded.doc, &sent, &env_var) {
        Ok(c) => c,
        Err(e) => return edit_error(e),
    };
    if let Err(wait_s) = take_probe_slot(Instant::now()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait_s.to_string())],
            Json(json!({"error": "too many probes; wait and try again"})),
        )
            .into_response();
    }
    let settings = nvr_proto::CameraSettings::from(&camera);
    let bin = state.worker_bin.clone();
    let result = tokio::task::spawn_blocking(move || crate::probe::probe(&bin, settings)).await;
    release_probe_slot();
    match result {
        Ok(Ok(report)) => answer(
            StatusCode::OK,
            json!({"usable": report.usable(), "streams": report.streams}),
        ),
        Ok(Err(e)) => answer(StatusCode::BAD_GATEWAY, json!({"error": e.to_string()})),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /api/setup`: `{"username", "password"}` becomes `api.auth` (the password as an Argon2
/// hash). Only while there is no login, and only from loopback.
pub async fn setup(
    State(state): State<AppState>,
    peer: Option<Extension<super::server::Peer>>,
    body: Bytes,
) -> Response {
    let loopback =
        peer.is_some_and(|Extension(super::server::Peer(a))| a.ip().to_canonical().is_loopback());
    if !loopback {
        return answer(
            StatusCode::FORBIDDEN,
            json!({"error": "the first login can only be created from this machine (loopback)"}),
        );
    }
    let sent = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let username = sent["username"].as_str().unwrap_or("").trim().to_string();
    let password = sent["password"].as_str().unwrap_or("").to_string();
    if username.is_empty() || password.chars().count() < MIN_PASSWORD_CHARS {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": format!("choose a user name and a password of at least {MIN_PASSWORD_CHARS} characters")}),
        );
    }
    let _one = WRITER.lock().await;
    if state.auth.enabled() {
        return answer(
            StatusCode::CONFLICT,
            json!({"error": "a login exists already; log in with it"}),
        );
    }
    let loaded = match read(&state).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let hash =
        match tokio::task::spawn_blocking(move || super::auth::hash_password(&password)).await {
            Ok(Ok(h)) => h,
            _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    let (new_doc, _) = match edit::set_login(&loaded.doc, &username, &hash, &env_var) {
        Ok(d) => d,
        Err(e) => return edit_error(e),
    };
    let path = state.config_path.clone();
    let written =
        tokio::task::spawn_blocking(move || config_writer::write(&path, &loaded, &new_doc)).await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            )
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    tracing::warn!(user = %username.chars().take(64).collect::<String>(), "first login created from the set-up page");
    match super::reload_config(&state.config_path, &state.inbox, &state.auth).await {
        Ok(_) => answer(StatusCode::OK, json!({"status": "created", "login": true})),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("the login was written but could not be applied: {e}")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_limited_at_once_and_per_minute() {
        let t0 = Instant::now();
        assert!(take_probe_slot(t0).is_ok());
        assert!(take_probe_slot(t0).is_ok());
        assert_eq!(take_probe_slot(t0), Err(2), "two run at once");
        release_probe_slot();
        release_probe_slot();
        for _ in 2..PROBES_PER_WINDOW {
            assert!(take_probe_slot(t0).is_ok());
            release_probe_slot();
        }
        let wait = take_probe_slot(t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, 50);
        assert!(take_probe_slot(t0 + PROBE_WINDOW).is_ok());
        release_probe_slot();
    }
}
