//! Login, sessions and CSRF protection for the web UI and API.
//!
//! - Without `api.auth` the API listens on loopback only (enforced at start-up) and needs no login.
//! - With it, every route but the UI's static files, `/api/login` and `/api/session` needs a session:
//!   a random token in an `HttpOnly; SameSite=Strict` cookie, made by `POST /api/login` after an
//!   Argon2 check of the configured hash.
//! - Every state-changing request (anything but GET/HEAD) carries an `X-NVR-CSRF` header: a custom
//!   header alone already defeats cross-site form posts (a browser cannot add one without a CORS
//!   preflight, which this server never grants); with auth it must also equal the session's token.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nvr_config::AuthConfig;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "nvr_session";
pub const CSRF_HEADER: &str = "x-nvr-csrf";
/// How long a session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

struct Session {
    user: String,
    csrf: String,
    last_used: Instant,
}

#[derive(Clone, Default)]
pub struct Auth {
    config: Option<AuthConfig>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl Auth {
    pub fn new(config: Option<AuthConfig>) -> Self {
        Auth {
            config,
            sessions: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The session of a request's cookie, refreshed: (user, csrf token).
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let token = cookie(headers, COOKIE)?;
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        let s = sessions.get_mut(&token)?;
        s.last_used = Instant::now();
        Some((s.user.clone(), s.csrf.clone()))
    }
}

/// A hex string of `n` random bytes from the kernel.
fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    // /dev/urandom never blocks and never runs dry; failing to read it is a broken system.
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Paths anyone may load: the UI's own files and the login exchange.
fn public(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/") || path == "/api/login" || path == "/api/session"
}

/// Middleware: session check (with auth) and CSRF header check (always) before any handler.
pub async fn guard(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD);
    let session = auth.session(req.headers());
    if auth.enabled() && !public(&path) && session.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "log in first (POST /api/login)"})),
        )
            .into_response();
    }
    if changes_state && path != "/api/login" {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = match (&session, sent) {
            (_, None) => false,
            (Some((_, csrf)), Some(sent)) if auth.enabled() => sent == csrf,
            _ => true,
        };
        if !ok {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"error": format!("missing or wrong {CSRF_HEADER} header")})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

/// `POST /api/login {"username", "password"}` → session cookie and `{"csrf"}`.
pub async fn login(State(auth): State<Auth>, Json(l): Json<Login>) -> Response {
    let Some(cfg) = &auth.config else {
        return Json(json!({"csrf": "1", "auth": false})).into_response();
    };
    let hash = cfg.password_hash.clone();
    let password = l.password;
    let verified = tokio::task::spawn_blocking(move || verify(&hash, &password))
        .await
        .unwrap_or(false);
    if !(verified && l.username == cfg.username) {
        // Slow down guessing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        tracing::warn!(user = %l.username, "failed login");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "wrong user or password"})),
        )
            .into_response();
    }
    let (token, csrf) = (random_hex(32), random_hex(16));
    if let Ok(mut s) = auth.sessions.lock() {
        s.insert(
            token.clone(),
            Session {
                user: cfg.username.clone(),
                csrf: csrf.clone(),
                last_used: Instant::now(),
            },
        );
    }
    tracing::info!(user = %cfg.username, "logged in");
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
        )],
        Json(json!({"csrf": csrf, "auth": true})),
    )
        .into_response()
}

/// `GET /api/session`: `{"auth", "user", "csrf"}`, or 401 when a login is needed.
pub async fn session(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if !auth.enabled() {
        return Json(json!({"auth": false, "csrf": "1"})).into_response();
    }
    match auth.session(&headers) {
        Some((user, csrf)) => {
            Json(json!({"auth": true, "user": user, "csrf": csrf})).into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "not logged in"})),
        )
            .into_response(),
    }
}

/// `POST /api/logout`: ends the session.
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let (Some(token), Ok(mut s)) = (cookie(&headers, COOKIE), auth.sessions.lock()) {
        s.remove(&token);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Json(json!({"status": "logged out"})),
    )
        .into_response()
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// An Argon2id PHC string for `password` (`supervisor --hash-password`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt_hex = random_hex(16);
    let salt = argon2::password_hash::SaltString::encode_b64(salt_hex.as_bytes())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "wrong"));
        assert!(!verify("not a hash", "correct horse"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; nvr_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
