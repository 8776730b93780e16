//! Login, sessions and CSRF protection for the web UI and API.
//!
//! - Without `api.auth` the API listens on loopback only (enforced at start-up) and needs no login.
//! - With it, every route but the UI's static files, `/api/login` and `/api/session` needs a session:
//!   a random token in an `HttpOnly; SameSite=Strict` cookie, made by `POST /api/login` after an
//!   Argon2 check of the configured hash.
//! - Every state-changing request (anything but GET/HEAD) carries an `X-NVR-CSRF` header: a custom
//!   header alone already defeats cross-site form posts (a browser cannot add one without a CORS
//!   preflight, which this server never grants); with auth it must also equal the session's token.
//! - Without a login, a request must name a loopback host (or an `api.allowed_hosts` entry): a web
//!   page whose name rebinds to 127.0.0.1 is refused. A state change or a WebSocket upgrade whose
//!   `Origin` is another site's is refused (403, before any upgrade) with or without a login (see
//!   [`crate::api::guard`]); an upgrade without `Origin` (not a browser) is allowed under the same
//!   login rules as any GET.
//! - Logins are throttled (see `throttle.rs`); a reload applies a changed login and ends
//!   every session.

use crate::api::guard;
use crate::api::server::Peer;
use crate::api::throttle::{LoginThrottle, Refusal};
use argon2::{Argon2, PasswordHash, PasswordHasher};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nvr_config::{ApiConfig, AuthConfig};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "nvr_session";
pub const CSRF_HEADER: &str = "x-nvr-csrf";
/// How long a session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// How long a session lasts at most, used or not.
const SESSION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Largest login body: a user name and a password fit many times over.
pub const LOGIN_BODY_MAX: usize = 4096;
/// Characters of a user name that a log line shows.
const LOGGED_USER_CHARS: usize = 64;

struct Session {
    user: String,
    csrf: String,
    created: Instant,
    last_used: Instant,
}

/// What decides who may do what; replaced as a whole by a reload.
#[derive(Debug, Clone, Default, PartialEq)]
struct Policy {
    login: Option<AuthConfig>,
    allowed_hosts: Vec<String>,
    trusted_proxies: Vec<nvr_config::ProxyNet>,
    /// Opens the monitoring paths ([`monitoring`]) without a session.
    metrics_token: Option<nvr_config::Password>,
}

impl Policy {
    fn of(api: &ApiConfig) -> Policy {
        Policy {
            login: api.auth.clone(),
            allowed_hosts: api.allowed_hosts.clone(),
            trusted_proxies: api.trusted_proxies.clone(),
            metrics_token: api.metrics_token.clone(),
        }
    }
}

#[derive(Default)]
struct Inner {
    policy: RwLock<Policy>,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: LoginThrottle,
    /// Whether the API listens on loopback only (so it may run without a login).
    loopback_only: bool,
    /// The `api` settings the server started with, which a reload cannot change.
    started_with: ApiConfig,
}

/// The API's login and request policy, shared by every request and replaced by reloads.
#[derive(Clone, Default)]
pub struct Auth {
    inner: Arc<Inner>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single insert, remove or assignment.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Auth {
    /// A policy with this login (or none) and default settings otherwise (tests, fuzzing).
    pub fn new(config: Option<AuthConfig>) -> Self {
        let api = ApiConfig {
            auth: config,
            ..ApiConfig::default()
        };
        Self::from_api(&api, true)
    }

    /// The policy of `api`, for a server listening on loopback only or not.
    pub fn from_api(api: &ApiConfig, loopback_only: bool) -> Self {
        Auth {
            inner: Arc::new(Inner {
                policy: RwLock::new(Policy::of(api)),
                sessions: Mutex::default(),
                throttle: LoginThrottle::default(),
                loopback_only,
                started_with: api.clone(),
            }),
        }
    }

    fn policy(&self) -> Policy {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn enabled(&self) -> bool {
        self.policy().login.is_some()
    }

    /// Whether a reload may apply `api`: an API that listens beyond loopback cannot lose its login.
    pub fn check_reload(&self, api: &ApiConfig) -> Result<(), String> {
        if api.auth.is_none() && !self.inner.loopback_only {
            return Err(format!(
                "api.auth: the API listens on {} beyond loopback, so it cannot run without a login; keep api.auth (restart needed to listen on loopback without one)",
                self.inner.started_with.listen
            ));
        }
        Ok(())
    }

    /// Applies the login, allowed hosts and trusted proxies of `api`. Returns whether the login
    /// changed, in which case every session has been ended.
    pub fn apply(&self, api: &ApiConfig) -> bool {
        let new = Policy::of(api);
        let mut policy = self
            .inner
            .policy
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let login_changed = policy.login != new.login;
        *policy = new;
        if login_changed {
            locked(&self.inner.sessions).clear();
        }
        login_changed
    }

    /// The `api` fields that differ from those the server started with and only a restart applies.
    pub fn restart_needed(&self, api: &ApiConfig) -> Vec<&'static str> {
        let s = &self.inner.started_with;
        [
            ("api.listen", s.listen != api.listen),
            (
                "api.header_read_timeout_s",
                s.header_read_timeout_s != api.header_read_timeout_s,
            ),
            ("api.body_timeout_s", s.body_timeout_s != api.body_timeout_s),
            ("api.idle_timeout_s", s.idle_timeout_s != api.idle_timeout_s),
            (
                "api.max_connections",
                s.max_connections != api.max_connections,
            ),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    /// The session of a request's cookie, refreshed: (user, csrf token). Several session cookies
    /// (one planted by a sibling site, say) are no session unless exactly one of them is live.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let mut tokens = cookies(headers, COOKIE);
        tokens.sort();
        tokens.dedup();
        let mut sessions = locked(&self.inner.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| {
            now.duration_since(s.last_used) < SESSION_IDLE
                && now.duration_since(s.created) < SESSION_MAX
        });
        let mut live = tokens.iter().filter(|t| sessions.contains_key(*t));
        let token = live.next()?;
        if live.next().is_some() {
            return None;
        }
        let s = sessions.get_mut(token)?;
        s.last_used = now;
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

/// Every value of cookie `name` in a request, in order.
fn cookies(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Paths anyone may load: the UI's own files, the login exchange and liveness (`/health`, which
/// says nothing but that the supervisor is alive).
fn public(path: &str) -> bool {
    path == "/"
        || path.starts_with("/ui/")
        || path == "/api/login"
        || path == "/api/session"
        || path == "/health"
}

/// Paths a monitor may read with the bearer token (`api.metrics_token`) instead of a session.
fn monitoring(path: &str) -> bool {
    path == "/ready" || path == "/metrics"
}

/// Whether the request carries `Authorization: Bearer <token>` with the configured token, compared
/// in constant time (only a length difference shows).
fn bearer_ok(policy: &Policy, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = &policy.metrics_token else {
        return false;
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(token.expose().as_bytes())))
}

fn refuse(code: StatusCode, msg: String) -> Response {
    (code, Json(json!({ "error": msg }))).into_response()
}

/// Middleware, before any handler: the `Host` check (without a login), the `Origin` check of state
/// changes and WebSocket upgrades (always), the session check (with a login) and the CSRF header
/// check of state changes (always; a browser cannot add headers to a WebSocket handshake, whose
/// defence is the `Origin` check).
pub async fn guard(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let policy = auth.policy();
    let path = req.uri().path().to_string();
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD);
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if policy.login.is_none() {
        // Without a login the API trusts loopback; a page whose name rebinds to 127.0.0.1 must
        // not be able to use that trust.
        let known = host.is_none_or(|h| {
            guard::host_name(h).is_some_and(|n| guard::host_allowed(&n, &policy.allowed_hosts))
        });
        if !known {
            return refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "this API answers only to loopback names and api.allowed_hosts".into(),
            );
        }
    }
    if let Some(refused) = forwarded_check(&policy, &req) {
        return refused;
    }
    if changes_state || guard::is_websocket_upgrade(req.headers()) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("null"));
        if !guard::origin_allowed(origin, host) {
            return refuse(StatusCode::FORBIDDEN, "cross-origin request refused".into());
        }
    }
    let session = auth.session(req.headers());
    let monitor = !changes_state && monitoring(&path) && bearer_ok(&policy, req.headers());
    if policy.login.is_some() && !public(&path) && session.is_none() && !monitor {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/login)".into(),
        );
    }
    if changes_state && path != "/api/login" {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = match (&session, sent) {
            (_, None) => false,
            (Some((_, csrf)), Some(sent)) if policy.login.is_some() => sent == csrf,
            _ => true,
        };
        if !ok {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("missing or wrong {CSRF_HEADER} header"),
            );
        }
    }
    next.run(req).await
}

/// Requests that carry `X-Forwarded-For` or `Forwarded` came through a proxy. Without a login they
/// are refused: a proxy on the same host makes every client look like loopback, which is all the
/// API trusts without a login. With a login, the headers count only from `api.trusted_proxies`;
/// from any other peer they are ignored, and the first such request is logged (once per process).
fn forwarded_check(policy: &Policy, req: &Request) -> Option<Response> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED_NO_LOGIN: AtomicBool = AtomicBool::new(false);
    static WARNED_UNTRUSTED: AtomicBool = AtomicBool::new(false);
    let headers = req.headers();
    if !headers.contains_key("x-forwarded-for") && !headers.contains_key(header::FORWARDED) {
        return None;
    }
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|Peer(a)| a.ip().to_canonical());
    if policy.login.is_none() {
        if !WARNED_NO_LOGIN.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
                "refused a request that came through a proxy (X-Forwarded-For or Forwarded): without api.auth the API trusts loopback only, and a proxy makes everyone loopback; set api.auth and api.trusted_proxies"
            );
        }
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "requests through a proxy need a login: set api.auth (and api.trusted_proxies)".into(),
        ));
    }
    let trusted = peer.is_some_and(|p| guard::is_trusted(&policy.trusted_proxies, p));
    if !trusted && !WARNED_UNTRUSTED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
            "forwarding headers from a peer not in api.trusted_proxies are ignored; the peer counts as the client (add the proxy's address to api.trusted_proxies)"
        );
    }
    None
}

#[derive(serde::Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

/// At most [`LOGGED_USER_CHARS`] characters of a user name, for a log line.
fn shown(user: &str) -> String {
    match user.char_indices().nth(LOGGED_USER_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &user[..cut], user.len()),
        None => user.to_string(),
    }
}

fn too_many(refusal: Refusal) -> Response {
    let why = match refusal {
        Refusal::Wait(_) => "too many login attempts from this address; wait and try again",
        Refusal::Busy => "too many login attempts at once; try again in a moment",
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, refusal.retry_after_s().to_string())],
        Json(json!({ "error": why })),
    )
        .into_response()
}

/// `POST /api/login {"username", "password"}` → session cookie and `{"csrf"}`. Attempts go
/// through the `LoginThrottle`; a body over [`LOGIN_BODY_MAX`] is a 413 (the route's limit).
pub async fn login(
    State(auth): State<Auth>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Json(l): Json<Login>,
) -> Response {
    let policy = auth.policy();
    let Some(cfg) = policy.login.clone() else {
        return Json(json!({"csrf": "1", "auth": false})).into_response();
    };
    let peer = peer.map(|Extension(Peer(a))| a.ip());
    let client = guard::client_addr(peer, &headers, &policy.trusted_proxies);
    let ticket = match auth.inner.throttle.admit(client) {
        Ok(t) => t,
        Err(refusal) => return too_many(refusal),
    };
    let (verified, ticket) = match auth
        .inner
        .throttle
        .verify(ticket, cfg.password_hash.clone(), l.password)
        .await
    {
        Ok(v) => v,
        Err(refusal) => return too_many(refusal),
    };
    // A reload may have changed the login while the hash was being checked.
    let still_current = auth.policy().login.as_ref() == Some(&cfg);
    let ok = verified && l.username == cfg.username && still_current;
    let failures = ticket.judge(ok);
    if !ok {
        tracing::warn!(client = %client, user = %shown(&l.username), failures, "failed login");
        return refuse(StatusCode::UNAUTHORIZED, "wrong user or password".into());
    }
    let (token, csrf) = (random_hex(32), random_hex(16));
    let now = Instant::now();
    locked(&auth.inner.sessions).insert(
        token.clone(),
        Session {
            user: cfg.username.clone(),
            csrf: csrf.clone(),
            created: now,
            last_used: now,
        },
    );
    tracing::info!(client = %client, user = %shown(&cfg.username), "logged in");
    let secure = if guard::behind_tls(peer, &headers, &policy.trusted_proxies) {
        "; Secure"
    } else {
        ""
    };
    (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_MAX.as_secs()
            ),
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
        None => refuse(StatusCode::UNAUTHORIZED, "not logged in".into()),
    }
}

/// `POST /api/logout`: ends the session (every session the request's cookies name).
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    {
        let mut sessions = locked(&auth.inner.sessions);
        for token in cookies(&headers, COOKIE) {
            sessions.remove(&token);
        }
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

/// Whether `password` matches the Argon2 PHC string `hash` (run on the login throttle's thread).
#[cfg(test)]
fn verify(hash: &str, password: &str) -> bool {
    Verifier::default().verify(hash, password)
}

/// Checks passwords against Argon2 PHC strings, reusing one block of working memory (19 MiB with
/// the default parameters) from one check to the next. Argon2's own `verify_password` allocates it
/// afresh each time, and glibc kept those blocks: a burst of a hundred wrong logins from twenty
/// addresses left the supervisor at 140-220 MB. This is the same computation as
/// `PasswordVerifier::verify_password`, with the memory passed in.
#[derive(Default)]
pub(crate) struct Verifier {
    memory: Vec<argon2::Block>,
}

impl Verifier {
    /// Whether `password` matches the PHC string `hash` (any malformed hash: no).
    pub(crate) fn verify(&mut self, hash: &str, password: &str) -> bool {
        let Ok(phc) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            argon2::Algorithm::try_from(phc.algorithm),
            argon2::Params::try_from(&phc),
        ) else {
            return false;
        };
        let Ok(version) = phc.version.map(argon2::Version::try_from).transpose() else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let blocks = params.block_count();
        if self.memory.len() < blocks {
            self.memory.resize(blocks, argon2::Block::default());
        }
        let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
        let computed = argon2::password_hash::Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    out,
                    &mut self.memory[..blocks],
                )
                .map_err(Into::into)
        });
        // `Output`'s equality is constant-time.
        computed.is_ok_and(|c| c == expected)
    }
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
        // One verifier, its memory reused: the same answers, and other parameters work too.
        let mut v = Verifier::default();
        let small = argon2::Params::new(1024, 1, 1, None).unwrap();
        let other = Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x10, small)
            .hash_password(
                b"tiny",
                &argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef").unwrap(),
            )
            .unwrap()
            .to_string();
        for _ in 0..2 {
            assert!(v.verify(&h, "correct horse"));
            assert!(!v.verify(&h, "wrong"));
            assert!(v.verify(&other, "tiny"));
            assert!(!v.verify(&other, "tinY"));
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; nvr_session=abc; b=2".parse().unwrap());
        assert_eq!(cookies(&h, COOKIE), ["abc"]);
        assert!(cookies(&h, "c").is_empty());
    }
}
