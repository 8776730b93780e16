//! The HTTP API: `/health`, `/status`, `/metrics`, `POST /api/reload`,
//! `POST /api/cameras/{id}/restart`, pan-tilt-zoom ([`ptz`]), live pictures (`snapshot.jpg`, `mjpeg`) and the recordings and
//! events of `recordings`. Handlers read the manager's published [`Snapshot`] (or the recordings
//! index) and send it commands; they never touch workers themselves.
//!
//! Its parts: [`server`] (the accept loop, timeouts, connection cap), [`guard`] (Host and Origin),
//! [`auth`] (login, sessions, CSRF) with its `throttle`, `recordings`, [`ws`] (what the
//! WebSockets share, and `/api/ws`, the page's status pushes), [`live`] (live video over
//! WebSockets) and the embedded `ui`.

pub mod auth;
pub mod config;
pub mod guard;
mod history;
pub mod live;
pub mod mode;
mod motion_preview;
mod ptz;
mod recordings;
pub mod server;
mod throttle;
mod ui;
pub mod ws;

use crate::manager::{Command, Inbox, Msg, ReloadSummary};
use crate::preview::{PreviewHub, DEFAULT_FPS};
use crate::status::Snapshot;
use auth::Auth;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::oneshot;

#[derive(Clone)]
pub struct AppState {
    pub status: Arc<RwLock<Snapshot>>,
    pub inbox: Inbox,
    pub config_path: PathBuf,
    pub preview: Arc<PreviewHub>,
    /// Where recordings and the index live; files are only ever served from inside it.
    pub output_dir: PathBuf,
    pub auth: Auth,
    /// The WebSockets' settings and the shared status push.
    pub sockets: Arc<ws::Sockets>,
    /// The worker executable, which `POST /api/probe` starts in probe mode.
    pub worker_bin: PathBuf,
    /// The manager loop's last pass: `/health`.
    pub pulse: crate::liveness::Pulse,
}

pub fn app(state: AppState) -> Router {
    let auth = state.auth.clone();
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/schedule.js", get(ui::schedule_js))
        .route("/ui/schedule.css", get(ui::schedule_css))
        .route("/ui/style.css", get(ui::style_css))
        .route("/ui/ptz.js", get(ui::ptz_js))
        .route("/ui/ptz.css", get(ui::ptz_css))
        .route("/ui/setup.js", get(ui::setup_js))
        .route("/ui/setup.css", get(ui::setup_css))
        .route("/ui/metrics.js", get(ui::metrics_js))
        .route("/ui/vendor/uPlot.iife.min.js", get(ui::uplot_js))
        .route("/ui/vendor/uPlot.min.css", get(ui::uplot_css))
        .route(
            "/api/login",
            post(auth::login)
                .with_state(auth.clone())
                .layer(DefaultBodyLimit::max(auth::LOGIN_BODY_MAX)),
        )
        .route("/api/session", get(auth::session).with_state(auth.clone()))
        .route("/api/logout", post(auth::logout).with_state(auth.clone()))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/api/reload", post(reload))
        .route("/api/cameras/{id}/restart", post(restart))
        .route(
            "/api/cameras/{id}/mode",
            post(mode::set_camera_mode).delete(mode::clear_camera_mode),
        )
        .route(
            "/api/mode",
            post(mode::set_all_modes).delete(mode::clear_all_modes),
        )
        .route("/api/cameras/{id}/schedule", get(mode::camera_schedule))
        .route(
            "/api/cameras/{id}/motion/preview",
            post(motion_preview::start).delete(motion_preview::end),
        )
        .route(
            "/api/cameras/{id}/ptz",
            get(ptz::describe).post(ptz::command),
        )
        .route("/api/cameras/{id}/snapshot.jpg", get(snapshot_jpg))
        .route("/api/cameras/{id}/mjpeg", get(mjpeg))
        .route("/api/cameras/{id}/live", get(live::live))
        .route("/api/ws", get(ws::status_socket))
        .route("/api/config", get(config::get_config))
        .route("/api/config/cameras", post(config::add_camera))
        .route(
            "/api/config/cameras/{id}",
            axum::routing::put(config::put_camera).delete(config::delete_camera),
        )
        .route(
            "/api/config/cameras/{id}/zones",
            axum::routing::put(config::put_zones),
        )
        .route("/api/probe", post(config::probe))
        .route("/api/setup", post(config::setup))
        .route("/api/metrics/history", get(history::metrics_history))
        .route("/api/recordings", get(recordings::list_recordings))
        .route("/api/recordings/{id}/file", get(recordings::recording_file))
        .route("/api/events", get(recordings::list_events))
        .route(
            "/api/events/{id}/thumbnail.jpg",
            get(recordings::event_thumbnail),
        )
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(auth, auth::guard))
        .layer(axum::middleware::from_fn(guard::headers))
}

fn snapshot(state: &AppState) -> Snapshot {
    state.status.read().map(|s| s.clone()).unwrap_or_default()
}

/// Liveness: 200 `{"status":"ok"}` while the manager loop turns, 503 when it is stuck. Public, and
/// says nothing else.
async fn health(State(state): State<AppState>) -> Response {
    if state.pulse.alive(std::time::Instant::now()) {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stalled"})),
        )
            .into_response()
    }
}

/// Readiness: 200 when every enabled camera's worker runs with its streams up and recording works,
/// 503 naming the cameras that are not and why.
async fn ready(State(state): State<AppState>) -> Response {
    let snap = snapshot(&state);
    let unhealthy = snap.unhealthy();
    if unhealthy.is_empty() {
        let n = snap.cameras.iter().filter(|c| c.enabled).count();
        (StatusCode::OK, Json(json!({"status": "ok", "cameras": n}))).into_response()
    } else {
        let problems: serde_json::Map<String, serde_json::Value> = unhealthy
            .into_iter()
            .map(|(id, why)| (id, why.into()))
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "problems": problems})),
        )
            .into_response()
    }
}

async fn status(State(state): State<AppState>) -> Json<Snapshot> {
    Json(snapshot(&state))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use crate::metrics::{exposition, gather_extra};
    let dir = state.output_dir.clone();
    let extra = tokio::task::spawn_blocking(move || gather_extra(&dir))
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        exposition::render(&snapshot(&state), &extra),
    )
}

async fn reload(State(state): State<AppState>) -> Response {
    // On its own task: a client that hangs up (or the body timeout) must not cut a reload between
    // the manager taking the new config and the login taking it.
    let reloading =
        tokio::spawn(
            async move { reload_config(&state.config_path, &state.inbox, &state.auth).await },
        );
    match reloading.await.unwrap_or_else(|e| Err(e.to_string())) {
        Ok((summary, api)) => (
            StatusCode::OK,
            Json(json!({
                "status": "reloaded",
                "summary": summary,
                "login_changed": api.login_changed,
                "restart_needed": api.restart_needed,
            })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "rejected", "error": e})),
        )
            .into_response(),
    }
}

async fn restart(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let (reply, rx) = oneshot::channel();
    let sent = state.inbox.send(Msg::Command(Command::Restart {
        camera_id: id,
        reply,
    }));
    // A failed send hands the message (and the reply's sender) back: never wait on it then.
    let answer = match sent {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match answer {
        Some(Ok(())) => {
            (StatusCode::ACCEPTED, Json(json!({"status": "restarting"}))).into_response()
        }
        Some(Err(e)) => (StatusCode::NOT_FOUND, Json(json!({"error": e}))).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "shutting down"})),
        )
            .into_response(),
    }
}

/// Whether `id` is a configured camera: only those ids reach the frame-bus layer (which maps them to
/// shared-memory names), so a request can never name anything else.
fn known_camera(state: &AppState, id: &str) -> bool {
    state
        .status
        .read()
        .is_ok_and(|s| s.cameras.iter().any(|c| c.id == id))
}

pub(crate) fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no camera with id {id:?}")})),
    )
        .into_response()
}

async fn snapshot_jpg(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if !known_camera(&state, &id) {
        return not_found(&id);
    }
    let hub = Arc::clone(&state.preview);
    let camera = id.clone();
    match tokio::task::spawn_blocking(move || hub.snapshot(&camera)).await {
        Ok(Ok(p)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Bytes::from(p.jpeg.as_ref().clone()),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// How often an MJPEG stream whose camera sends nothing repeats its last part: well inside the
/// connection idle timeout (`api.idle_timeout_s`, 60 s by default; one set below this cuts such a
/// stream).
const MJPEG_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(serde::Deserialize)]
struct MjpegQuery {
    fps: Option<f64>,
}

/// `multipart/x-mixed-replace` stream of JPEGs at `?fps=` (default 5, up to 30).
async fn mjpeg(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<MjpegQuery>,
) -> Response {
    if !known_camera(&state, &id) {
        return not_found(&id);
    }
    let sub = state.preview.subscribe(&id, q.fps.unwrap_or(DEFAULT_FPS));
    let period = std::time::Duration::from_secs_f64(1.0 / sub.fps);
    // (subscription, last picture's sequence, last part sent)
    let start = (sub, None::<u64>, Bytes::from_static(b"\r\n"));
    let stream =
        futures_util::stream::unfold(start, move |(mut sub, last, last_part)| async move {
            loop {
                // While the camera sends nothing (down, restarting), the last part is sent again now
                // and then, so the connection is not idle and the client keeps its picture.
                let changed = tokio::time::timeout(MJPEG_KEEPALIVE, sub.rx.changed()).await;
                match changed {
                    Err(_) => return Some((Ok(last_part.clone()), (sub, last, last_part))),
                    Ok(Err(_)) => return None,
                    Ok(Ok(())) => {}
                }
                let picture = sub.rx.borrow_and_update().clone();
                if let Some(p) = picture.filter(|p| Some(p.seq) != last) {
                    let mut part = format!(
                        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        p.jpeg.len()
                    )
                    .into_bytes();
                    part.extend_from_slice(&p.jpeg);
                    part.extend_from_slice(b"\r\n");
                    tokio::time::sleep(period).await;
                    let part = Bytes::from(part);
                    return Some((
                        Ok::<_, std::convert::Infallible>(part.clone()),
                        (sub, Some(p.seq), part),
                    ));
                }
            }
        });
    (
        [
            (
                header::CONTENT_TYPE,
                "multipart/x-mixed-replace; boundary=frame",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What a reload did to the API itself.
#[derive(Debug, Default)]
pub struct ApiReload {
    /// The login changed (and every session was ended).
    pub login_changed: bool,
    /// Settings that changed but take effect only at the next start (`api.*`, `output_dir`); the
    /// running values stay in force.
    pub restart_needed: Vec<String>,
}

/// Re-reads the config file and hands it to the manager, then applies its login, allowed hosts and
/// trusted proxies to the API. An invalid file, or one whose `api` cannot be applied, is rejected
/// (the running config stays) and the error is recorded for `/status`.
pub async fn reload_config(
    path: &std::path::Path,
    inbox: &Inbox,
    auth: &Auth,
) -> Result<(ReloadSummary, ApiReload), String> {
    // One reload at a time (SIGHUP and `POST /api/reload` may overlap): the manager and the login
    // always end up with the same file's settings.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_AT_A_TIME.lock().await;
    let owned = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || nvr_config::load(&owned))
        .await
        .map_err(|e| e.to_string())?;
    let config = match loaded.map_err(|e| e.to_string()).and_then(|c| {
        auth.check_reload(&c.api)
            .map(|()| c)
            .map_err(|e| format!("{}: {e}", path.display()))
    }) {
        Ok(c) => c,
        Err(msg) => {
            tracing::error!(error = %msg, "reload rejected; keeping the running config");
            let _ = inbox.send(Msg::Command(Command::ReloadRejected(msg.clone())));
            return Err(msg);
        }
    };
    for note in &config.notes {
        tracing::warn!(path = %note.path, note = %note.message, "config note");
    }
    let api = config.api.clone();
    let api_restart_needed = auth
        .restart_needed(&api)
        .into_iter()
        .map(String::from)
        .collect();
    let (reply, rx) = oneshot::channel();
    inbox
        .send(Msg::Command(Command::Reload {
            config: Box::new(config),
            api_restart_needed,
            reply,
        }))
        .map_err(|_| "shutting down".to_string())?;
    let mut summary = rx.await.map_err(|_| "shutting down".to_string())?;
    let login_changed = auth.apply(&api);
    if login_changed {
        tracing::warn!("reload: the login changed; every session was ended");
    }
    let restart_needed = std::mem::take(&mut summary.restart_needed);
    if !restart_needed.is_empty() {
        tracing::warn!(
            settings = restart_needed.join(","),
            "reload: these settings take effect at the next start; their running values stay"
        );
    }
    Ok((
        summary,
        ApiReload {
            login_changed,
            restart_needed,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{CameraStatus, WorkerState};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn camera(id: &str, state: WorkerState) -> CameraStatus {
        CameraStatus {
            id: id.into(),
            name: id.into(),
            enabled: true,
            state,
            pid: None,
            uptime_s: None,
            restarts: 0,
            last_restart: None,
            next_restart_in_s: None,
            heartbeats: 0,
            heartbeat_age_ms: None,
            max_heartbeat_gap_ms: None,
            heartbeat_latency: None,
            cpu_percent: Some(1.5),
            rss_mb: None,
            worker: Some(nvr_proto::WorkerStats {
                sub: Some(nvr_proto::StreamStatus {
                    state: nvr_proto::StreamState::Up,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            last_error: None,
            stderr_tail: vec![],
            motion: Default::default(),
            recordings: Default::default(),
            mode: Default::default(),
            main_url: "rtsp://h/1".into(),
            sub_url: None,
            recording_mode: nvr_config::RecordingMode::Off,
            ptz: false,
            motion_preview: None,
            warnings: Vec::new(),
            totals: Default::default(),
        }
    }

    fn state_with(cameras: Vec<CameraStatus>) -> AppState {
        let (inbox, _rx) = std::sync::mpsc::channel();
        AppState {
            status: Arc::new(RwLock::new(Snapshot {
                cameras,
                ..Default::default()
            })),
            inbox,
            config_path: "x.json".into(),
            preview: Arc::default(),
            output_dir: std::env::temp_dir(),
            auth: Auth::default(),
            sockets: Arc::default(),
            worker_bin: "/nonexistent/worker".into(),
            pulse: Default::default(),
        }
    }

    async fn get(state: AppState, uri: &str) -> (StatusCode, String) {
        let resp = app(state)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_is_liveness_only() {
        let state = state_with(vec![camera("b", WorkerState::Backoff)]);
        let (code, body) = get(state.clone(), "/health").await;
        assert_eq!(
            code,
            StatusCode::OK,
            "a camera down is not a dead supervisor"
        );
        assert_eq!(body, r#"{"status":"ok"}"#);
        // A manager whose last pass is older than the bound is not alive.
        let mut stuck = state;
        let Some(long_ago) =
            std::time::Instant::now().checked_sub(crate::liveness::STALE_AFTER * 2)
        else {
            return; // a machine up for less than a minute: nothing to go back to
        };
        stuck.pulse = crate::liveness::Pulse::started_at(long_ago);
        let (code, body) = get(stuck, "/health").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    #[tokio::test]
    async fn ready_is_503_naming_the_cameras_that_are_down() {
        let (code, body) = get(
            state_with(vec![
                camera("a", WorkerState::Running),
                camera("b", WorkerState::Backoff),
            ]),
            "/ready",
        )
        .await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["problems"]["b"].as_str().unwrap().contains("backoff"),
            "{body}"
        );
        assert!(v["problems"].get("a").is_none());

        let (code, _) = get(
            state_with(vec![camera("a", WorkerState::Running)]),
            "/ready",
        )
        .await;
        assert_eq!(code, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let (code, body) = get(
            state_with(vec![camera("a", WorkerState::Running)]),
            "/metrics",
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("nvr_worker_up{camera=\"a\"} 1"), "{body}");
        assert!(
            body.contains("nvr_worker_cpu_seconds_total{camera=\"a\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("nvr_stream_up{camera=\"a\",stream=\"sub\"} 1"),
            "{body}"
        );
        assert!(body.contains("# TYPE nvr_heartbeat_latency_seconds histogram"));
        assert!(body.contains("nvr_build_info{version=\""), "{body}");
        assert!(body.contains("process_start_time_seconds "), "{body}");
        // A disabled camera is off, not down.
        let mut off = camera("off", WorkerState::Stopped);
        off.enabled = false;
        let (_, body) = get(state_with(vec![off]), "/metrics").await;
        assert!(!body.contains("nvr_worker_up{camera=\"off\"}"), "{body}");
        assert!(
            body.contains("nvr_camera_enabled{camera=\"off\"} 0"),
            "{body}"
        );
    }

    async fn send(app: Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = app.oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn state_changes_need_the_csrf_header_even_without_auth() {
        let app = app(state_with(vec![camera("a", WorkerState::Running)]));
        let post = |csrf: Option<&str>| {
            let mut r = Request::post("/api/cameras/a/restart");
            if let Some(c) = csrf {
                r = r.header("x-nvr-csrf", c);
            }
            r.body(Body::empty()).unwrap()
        };
        let (code, _, body) = send(app.clone(), post(None)).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        // With the header the request reaches the handler (no manager here: it answers 503).
        let (code, _, _) = send(app, post(Some("1"))).await;
        assert_ne!(code, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn with_a_login_the_bearer_token_opens_ready_and_metrics_only() {
        let token = "monitor-token-0123456789";
        let mut state = state_with(vec![camera("a", WorkerState::Running)]);
        let api = nvr_config::ApiConfig {
            auth: Some(nvr_config::AuthConfig {
                username: "admin".into(),
                password_hash: crate::api::auth::hash_password("s3cret pass").unwrap(),
            }),
            metrics_token: Some(nvr_config::Password::new(token)),
            ..Default::default()
        };
        state.auth = Auth::from_api(&api, true);
        let app = app(state);
        let req = |uri: &str, auth: Option<&str>| {
            let mut r = Request::get(uri);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.body(Body::empty()).unwrap()
        };
        let bearer = format!("Bearer {token}");
        for uri in ["/metrics", "/ready"] {
            let (code, _, body) = send(app.clone(), req(uri, None)).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(!body.contains(token));
            for wrong in [
                "Bearer monitor-token-0123456788",
                "Bearer monitor-token",
                "Basic bW9uaXRvcg==",
                token,
            ] {
                let (code, _, _) = send(app.clone(), req(uri, Some(wrong))).await;
                assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri} with {wrong:?}");
            }
            let (code, _, body) = send(app.clone(), req(uri, Some(&bearer))).await;
            assert_eq!(code, StatusCode::OK, "{uri}: {body}");
            assert!(!body.contains(token));
            let lower = format!("bearer {token}");
            let (code, _, _) = send(app.clone(), req(uri, Some(&lower))).await;
            assert_eq!(code, StatusCode::OK, "the scheme is case-insensitive");
        }
        // The token opens nothing else.
        for uri in ["/status", "/api/recordings", "/api/cameras/a/snapshot.jpg"] {
            let (code, _, _) = send(app.clone(), req(uri, Some(&bearer))).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri}");
        }
        let (code, _, _) = send(
            app.clone(),
            Request::post("/api/cameras/a/restart")
                .header(header::AUTHORIZATION, &bearer)
                .header("x-nvr-csrf", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        // Liveness needs nothing.
        let (code, _, body) = send(app, req("/health", None)).await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::OK, r#"{"status":"ok"}"#)
        );
    }

    #[tokio::test]
    async fn with_auth_everything_but_the_login_needs_a_session() {
        let mut state = state_with(vec![camera("a", WorkerState::Running)]);
        state.auth = Auth::new(Some(nvr_config::AuthConfig {
            username: "admin".into(),
            password_hash: crate::api::auth::hash_password("s3cret pass").unwrap(),
        }));
        let app = app(state);
        for uri in [
            "/status",
            "/ready",
            "/metrics",
            "/api/recordings",
            "/api/cameras/a/snapshot.jpg",
        ] {
            let (code, _, _) =
                send(app.clone(), Request::get(uri).body(Body::empty()).unwrap()).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{uri}");
        }
        let (code, _, page) =
            send(app.clone(), Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(code, StatusCode::OK);
        assert!(page.contains("/ui/app.js"));
        let login = |pw: &str, from: [u8; 4]| {
            Request::post("/api/login")
                .extension(crate::api::server::Peer(std::net::SocketAddr::from((
                    from, 40000,
                ))))
                .header("content-type", "application/json")
                .body(Body::from(format!(
                    r#"{{"username":"admin","password":"{pw}"}}"#
                )))
                .unwrap()
        };
        let attacker = [192, 0, 2, 1];
        // Three failures in a row are free; after the fourth ...
        for _ in 0..4 {
            let (code, _, _) = send(app.clone(), login("wrong", attacker)).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED);
        }
        // ... the same address must wait, even with the right password; no hash is checked.
        let (code, headers, _) = send(app.clone(), login("s3cret pass", attacker)).await;
        assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let (code, headers, body) = send(app.clone(), login("s3cret pass", [192, 0, 2, 2])).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let session = cookie.split(';').next().unwrap().to_string();
        let csrf = serde_json::from_str::<serde_json::Value>(&body).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, _, _) = send(
            app.clone(),
            Request::get("/status")
                .header("cookie", &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let restart = |token: &str| {
            Request::post("/api/cameras/a/restart")
                .header("cookie", &session)
                .header("x-nvr-csrf", token)
                .body(Body::empty())
                .unwrap()
        };
        let (code, _, _) = send(app.clone(), restart("1")).await;
        assert_eq!(
            code,
            StatusCode::FORBIDDEN,
            "the session's own token is needed"
        );
        let (code, _, _) = send(app, restart(&csrf)).await;
        assert_ne!(code, StatusCode::FORBIDDEN);
    }
}
