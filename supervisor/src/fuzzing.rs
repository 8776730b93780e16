//! The `http` fuzz target's body, shared with its replay test (`tests/fuzz_corpus.rs`) so the two
//! cannot drift: the API router, built in-process (no socket) over a fixture output directory,
//! answers one request made from the input. No answer may be a server error other than 503 (a 500
//! is what a panicking blocking task turns into), carry a byte of the files planted outside the
//! output directory, or serve video bytes that are not the clip's own.
//!
//! An input is a request in a plain text form, so corpus files read like requests:
//!
//! ```text
//! GET /api/recordings/fuzzcam_20240102T030405Z/file auth
//! range: bytes=0-99
//! cookie: nvr_session={session}
//! x-nvr-csrf: {csrf}
//!
//! the body, if any
//! ```
//!
//! A trailing `auth` on the first line sends the request to an API with a login configured;
//! `{session}` and `{csrf}` stand for the tokens of a session logged in to it for this request
//! alone (and logged out after it), so no input depends on the ones before it.

use crate::api::auth::Auth;
use crate::api::{self, AppState};
use crate::archive::index::{EventFacts, Index, EVENT_SUFFIX, THUMB_SUFFIX};
use crate::status::{CameraStatus, Snapshot, WorkerState};
use anyhow::Context;
use argon2::password_hash::{PasswordHasher, SaltString};
use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::Router;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tower::ServiceExt;

/// The one configured camera; no frame ring of this name exists, so its pictures are a 503.
pub const CAMERA: &str = "fuzzcam";
/// The content of every file planted outside the output directory.
const SECRET: &[u8] = b"NVR-FUZZ-SECRET: this file is outside the output directory";
const USER: &str = "admin";
const PASSWORD: &str = "fuzz password";
/// The fuzzer's longest wait for an answer; slower ones are dropped (libFuzzer has its own
/// `-timeout` for real hangs). The corpus replay waits longer and fails on any it drops.
const SLOW: Duration = Duration::from_millis(250);

/// What became of one input in [`Fixture::check_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input describes no request (bad method or URI).
    NoRequest,
    /// Answered with this status, and the answer passed every check.
    Answered(StatusCode),
    /// No answer (head and body) within the bound.
    Hung,
}

/// An output directory with clips, events and escape attempts, and the two APIs serving it.
pub struct Fixture {
    root: PathBuf,
    clip: Vec<u8>,
    runtime: tokio::runtime::Runtime,
    open: Router,
    login: Router,
    /// The index's writer connection, kept open as the archive thread keeps it.
    _index: Mutex<Index>,
}

impl Fixture {
    /// Builds the fixture in a fresh directory under the system's temp dir (removed on drop).
    pub fn new() -> anyhow::Result<Fixture> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("nvr-fuzz-http-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let output = root.join("output");
        let day = output.join(CAMERA).join("2024-01-02");
        std::fs::create_dir_all(&day).with_context(|| format!("creating {}", day.display()))?;
        let write = |path: &Path, bytes: &[u8]| {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
        };
        let link = |to: &Path, at: &Path| {
            std::os::unix::fs::symlink(to, at).with_context(|| format!("linking {}", at.display()))
        };
        let secret = root.join("secret.txt");
        write(&secret, SECRET)?;
        write(&root.join("outside.txt"), SECRET)?;
        let config = format!(
            r#"{{"cameras": [{{"id": "{CAMERA}", "main_url": "rtsp://127.0.0.1:9/main"}}]}}"#
        );
        write(&root.join("cameras.json"), config.as_bytes())?;

        let name = |stamp: &str, suffix: &str| day.join(format!("{CAMERA}_{stamp}{suffix}"));
        let mut clip = b"\0\0\0\x18ftypisom\0\0\0\0avc1".to_vec();
        clip.extend((0..4000u32).map(|i| (i % 251) as u8));
        write(&name("20240102T030405Z", ".mp4"), &clip)?;
        write(&name("20240102T050000Z", ".mp4.part"), &clip)?;
        link(&secret, &name("20240102T040000Z", ".mp4"))?;
        for (stamp, start) in [
            ("20240102T030406Z", 1_704_164_646_000),
            ("20240102T040001Z", 0),
        ] {
            let facts = EventFacts {
                camera_id: CAMERA.into(),
                start,
                end: Some(start + 1000),
                score: 5.0,
                zones: Vec::new(),
            };
            write(&name(stamp, EVENT_SUFFIX), &serde_json::to_vec(&facts)?)?;
        }
        write(
            &name("20240102T030406Z", THUMB_SUFFIX),
            b"\xff\xd8 a jpeg \xff\xd9",
        )?;
        link(&secret, &name("20240102T040001Z", THUMB_SUFFIX))?;
        let (index, _) = Index::open(&output)?;
        // Rows whose paths leave the output directory, as a hostile worker could report them.
        index.recording_finished(CAMERA, "../outside.txt", 1_704_164_645_000, 1.0, 60, false)?;
        index.recording_finished(CAMERA, &secret.display().to_string(), 0, 1.0, 60, true)?;

        let (inbox, _) = std::sync::mpsc::channel();
        let state = AppState {
            status: Arc::new(RwLock::new(Snapshot {
                cameras: vec![camera_status()],
                ..Default::default()
            })),
            inbox,
            config_path: root.join("cameras.json"),
            preview: Arc::default(),
            output_dir: output,
            auth: Auth::default(),
            sockets: Arc::default(),
            worker_bin: root.join("no-worker"),
            pulse: Default::default(),
        };
        let salt = SaltString::encode_b64(b"fuzz salt 16 byt").map_err(anyhow::Error::msg)?;
        // The cheapest Argon2 parameters: a login attempt costs microseconds, not tens of ms.
        let params = argon2::Params::new(8, 1, 1, None).map_err(anyhow::Error::msg)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, Default::default(), params);
        let hash = argon
            .hash_password(PASSWORD.as_bytes(), &salt)
            .map_err(anyhow::Error::msg)?;
        let auth = Auth::new(Some(nvr_config::AuthConfig {
            username: USER.into(),
            password_hash: hash.to_string(),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let open = api::app(state.clone());
        let login = api::app(AppState { auth, ..state });
        Ok(Fixture {
            root,
            clip,
            runtime,
            open,
            login,
            _index: Mutex::new(index),
        })
    }

    /// Sends the request `input` describes and checks the answer (panics if it is wrong). Returns
    /// its status, or `None` if the input is no request or the answer was slower than [`SLOW`].
    pub fn check(&self, input: &[u8]) -> Option<StatusCode> {
        match self.check_within(input, SLOW) {
            Outcome::Answered(status) => Some(status),
            Outcome::NoRequest | Outcome::Hung => None,
        }
    }

    /// [`Fixture::check`], waiting up to `bound` for the answer and telling a hang from an input
    /// that is no request.
    pub fn check_within(&self, input: &[u8], bound: Duration) -> Outcome {
        self.runtime.block_on(async {
            let session = contains(input, b"{session}") || contains(input, b"{csrf}");
            let (token, csrf) = match session {
                true => log_in(&self.login).await.expect("the fixture's login"),
                false => Default::default(),
            };
            let input = replace(input, b"{session}", token.as_bytes());
            let input = replace(&input, b"{csrf}", csrf.as_bytes());
            let Some((request, with_login)) = parse_request(&input) else {
                return Outcome::NoRequest;
            };
            let expect = Expectation::of(&request, with_login);
            let app = if with_login { &self.login } else { &self.open };
            let answer = tokio::time::timeout(bound, answer(app, request)).await;
            if session {
                let logout = Request::post("/api/logout")
                    .header(
                        header::COOKIE,
                        format!("{}={token}", crate::api::auth::COOKIE),
                    )
                    .header(crate::api::auth::CSRF_HEADER, csrf)
                    .body(Body::empty())
                    .expect("a logout request");
                let _ = self.login.clone().oneshot(logout).await;
            }
            match answer {
                Ok((status, video, body)) => {
                    self.judge(&input, &expect, status, video, &body);
                    Outcome::Answered(status)
                }
                Err(_) => Outcome::Hung,
            }
        })
    }

    /// Panics if the answer to `input` is wrong.
    fn judge(
        &self,
        input: &[u8],
        expect: &Expectation,
        status: StatusCode,
        video: bool,
        body: &[u8],
    ) {
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} for {:?}",
            String::from_utf8_lossy(input)
        );
        // (An input holding the secret itself may get it echoed, e.g. in a JSON error.)
        assert!(
            contains(input, SECRET) || !contains(body, SECRET),
            "served a file from outside the output directory for {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            !video || contains(&self.clip, body),
            "served video bytes that are not the clip's for {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            !(expect.refused && status.is_success()),
            "{status} for a request the Host/Origin guard must refuse: {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            !expect.oversized_login || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{status} for an oversized login body: {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// What the answer to a request must be, whatever else it is.
struct Expectation {
    /// Rebinding (a foreign `Host` without a login) or a state change from a foreign `Origin`.
    refused: bool,
    /// A login body over the limit: 413.
    oversized_login: bool,
}

/// Whether a `Host` value plainly names this machine: `localhost` (or a name under it) or a
/// loopback address, any case, with or without a trailing dot and a numeric port. Written apart from
/// the guard on purpose, so a mistake in the guard is not also a mistake in the oracle: the guard
/// may refuse more (anything odd), never less.
fn plainly_loopback(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if is_port(port) => inside,
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) if is_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host.as_str(),
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `:` followed by one or more digits.
fn is_port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

impl Expectation {
    fn of(request: &Request<Body>, with_login: bool) -> Expectation {
        let header = |name| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{0}"))
        };
        let host = header(header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
        let foreign_host = !with_login && host.is_some_and(|h| !plainly_loopback(h));
        let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
        let foreign_origin =
            changes_state && !crate::api::guard::origin_allowed(header(header::ORIGIN), host);
        let body_len = request.body().size_hint().exact().unwrap_or(0);
        let oversized_login = request.uri().path() == "/api/login"
            && *request.method() == Method::POST
            && header(header::CONTENT_TYPE) == Some("application/json")
            && !foreign_host
            && !foreign_origin
            && body_len > crate::api::auth::LOGIN_BODY_MAX as u64;
        Expectation {
            refused: foreign_host || foreign_origin,
            oversized_login,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Status, whether it is video, and the body (left unread for an endless MJPEG stream).
async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, bool, Bytes) {
    let response = match app.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let kind = |prefix: &str| {
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(prefix))
    };
    let (video, endless) = (kind("video/"), kind("multipart/"));
    if endless {
        return (status, video, Bytes::new());
    }
    let body = response.into_body().collect().await;
    (
        status,
        video,
        body.map(|b| b.to_bytes()).unwrap_or_default(),
    )
}

/// Logs in to `app` and returns the session cookie's token and the CSRF token.
async fn log_in(app: &Router) -> anyhow::Result<(String, String)> {
    // From an address of its own, so inputs' failed logins (which count against the in-process
    // client, 0.0.0.0) never hold up the fixture's.
    let request = Request::post("/api/login")
        .extension(crate::api::server::Peer(std::net::SocketAddr::from((
            [127, 0, 0, 2],
            1,
        ))))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({"username": USER, "password": PASSWORD}).to_string(),
        ))?;
    let response = app.clone().oneshot(request).await?;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .and_then(|kv| kv.split_once('='))
        .map(|(_, token)| token.to_string())
        .context("the fixture's login set no cookie")?;
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let csrf = json["csrf"].as_str().context("no csrf token")?.to_string();
    Ok((cookie, csrf))
}

/// `METHOD URI [auth]`, header lines `name: value`, an empty line, the body. Header lines that are
/// no valid header are skipped; a bad method or URI makes no request.
fn parse_request(input: &[u8]) -> Option<(Request<Body>, bool)> {
    let (head, body) = match input.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let mut words = lines
        .next()?
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty());
    let method = Method::from_bytes(words.next()?).ok()?;
    let uri = Uri::try_from(words.next()?).ok()?;
    let with_login = words.next() == Some(b"auth");
    let mut request = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii_start());
        if let (Ok(name), Ok(value)) = (name, value) {
            request = request.header(name, value);
        }
    }
    let request = request.body(Body::from(body.to_vec())).ok()?;
    Some((request, with_login))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(input: &[u8], pattern: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.windows(pattern.len()).position(|w| w == pattern) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + pattern.len()..];
    }
    out.extend_from_slice(rest);
    out
}

pub(crate) fn camera_status() -> CameraStatus {
    CameraStatus {
        id: CAMERA.into(),
        name: CAMERA.into(),
        enabled: true,
        state: WorkerState::Running,
        pid: Some(1),
        uptime_s: Some(1.0),
        restarts: 0,
        last_restart: None,
        next_restart_in_s: None,
        heartbeats: 1,
        heartbeat_age_ms: Some(1.0),
        max_heartbeat_gap_ms: None,
        heartbeat_latency: None,
        cpu_percent: Some(1.0),
        rss_mb: Some(10.0),
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
        main_url: "rtsp://127.0.0.1:9/main".into(),
        sub_url: None,
        recording_mode: nvr_config::RecordingMode::Off,
        ptz: false,
        motion_preview: None,
        warnings: Vec::new(),
        totals: Default::default(),
    }
}
