//! The HTTP server's accept loop: every connection gets a header-read timeout (which also ends a
//! kept-alive connection that sends no next request), a timeout from a request's headers to its
//! answer (which covers a body sent slowly), and an idle timeout (no byte either way); the number of
//! open connections is capped, and kept below the descriptor limit with room for the workers, the
//! archive and the index.
//!
//! axum's `serve` exposes none of these, so connections are served with hyper's HTTP/1 builder here.
//!
//! WebSockets (`/api/ws`, the live video) are upgrades of such a connection. The header and body
//! timeouts end with the upgrade (the `101` answer is immediate); from then on the connection's
//! task has handed its socket to the WebSocket, and so has its place in the connection count: the
//! [`Slot`] travels inside the socket wrapper and is freed only when the WebSocket is dropped, so
//! long-lived WebSockets count against `api.max_connections` like any connection. Their liveness
//! (pings, a peer that reads nothing or answers nothing for `api.idle_timeout_s`) is the
//! WebSocket's own (see `api::ws`), and a stopping server tells them through [`Stopping`].

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use nvr_config::ApiConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// Descriptors kept free for everything but API connections: worker pipes and IPC channels, the
/// index's SQLite files, the archive's sidecars and thumbnails, frame rings, `/proc` reads.
pub const FD_RESERVE: u64 = 128;
/// Fewest connections served however low the descriptor limit is (unless configured lower).
const MIN_CONNECTIONS: usize = 4;
/// How long a stopping server waits for its connections to finish.
const DRAIN: Duration = Duration::from_secs(3);

/// The TCP peer of a request, put in its extensions by the accept loop. Requests made in-process
/// (tests, fuzzing) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Put in every request's extensions by the accept loop: becomes `true` when the server stops, so
/// a long-lived answer (a WebSocket) can close itself instead of being cut at the end of the drain.
#[derive(Debug, Clone)]
pub struct Stopping(pub watch::Receiver<bool>);

/// The connection limits of `api`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(api: &ApiConfig) -> Limits {
        Limits {
            header_read: Duration::from_secs_f64(api.header_read_timeout_s),
            body: Duration::from_secs_f64(api.body_timeout_s),
            idle: Duration::from_secs_f64(api.idle_timeout_s),
            max_connections: api.max_connections as usize,
        }
    }
}

/// Raises the soft descriptor limit to the hard one; returns (soft, hard) as they are afterwards.
pub fn raise_fd_limit() -> std::io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok((limit.current, limit.maximum))
}

/// How many connections may be open now: the configured cap, and never more than the current soft
/// descriptor limit minus [`FD_RESERVE`]. Read at every accept, so a limit lowered at run time
/// (`prlimit`) is obeyed.
pub fn connection_cap(max_connections: usize, soft_fd_limit: Option<u64>) -> usize {
    let by_fds = soft_fd_limit.map_or(usize::MAX, |soft| {
        usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
    });
    max_connections.min(by_fds.max(MIN_CONNECTIONS))
}

fn current_cap(max_connections: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    connection_cap(max_connections, soft)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish their
/// current request (for at most `DRAIN`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_accept_warning: Option<Instant> = None;
    let mut at_cap_since: Option<Instant> = None;
    tokio::pin!(shutdown);
    'accept: loop {
        // Wait for room before accepting: excess connections wait in the kernel's queue, holding
        // no descriptor of ours.
        loop {
            let cap = current_cap(limits.max_connections);
            let n_open = open.load(Ordering::Acquire);
            if n_open < cap {
                at_cap_since = None;
                break;
            }
            if at_cap_since.is_none() {
                warn!(
                    open = n_open,
                    cap, "API connection limit reached; new connections wait"
                );
                at_cap_since = Some(Instant::now());
            }
            tokio::select! {
                _ = closed.notified() => {}
                // The descriptor limit may have been raised meanwhile.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut shutdown => break 'accept,
            }
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept: wait a
                // little instead of spinning; warn at most every 10 s.
                if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    warn!(error = %e, "cannot accept an API connection");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            open: Arc::clone(&open),
            closed: Arc::clone(&closed),
        };
        tokio::spawn(connection(
            stream,
            addr,
            app.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    info!(
        open = open.load(Ordering::Acquire),
        "API stopping; finishing open requests"
    );
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + DRAIN;
    while open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(50), closed.notified()).await;
    }
}

/// One open connection's place in the count; freed when the connection's task ends.
struct Slot {
    open: Arc<AtomicUsize>,
    closed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.closed.notify_one();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
        _slot: slot,
    });
    let stopping = Stopping(stop.clone());
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        req.extensions_mut().insert(stopping.clone());
        let app = app.clone();
        async move {
            let answer = tokio::time::timeout(limits.body, app.oneshot(req.map(Body::new))).await;
            Ok::<_, std::convert::Infallible>(match answer {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => request_timeout(),
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    // With upgrades: after a `101` answer hyper hands the socket (and the slot in it) to the
    // WebSocket and this future completes.
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(%peer, error = %e, "API connection ended with an error");
                }
                return;
            }
            _ = activity.idle_for(limits.idle) => {
                debug!(%peer, "API connection idle; closing it");
                return;
            }
            _ = stop.changed(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// 408 for a request whose answer was not ready within the body timeout (a body sent slowly); the
/// connection is closed after it.
fn request_timeout() -> Response<Body> {
    let mut response = Response::new(Body::from(r#"{"error":"request took too long to arrive"}"#));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Milliseconds since the first call, the clock of [`Activity`].
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// When a connection last moved a byte.
struct Activity {
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last_ms: AtomicU64::new(now_ms()),
        }
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = idle.as_millis() as u64;
        loop {
            let quiet = now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if quiet >= idle_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(idle_ms - quiet)).await;
        }
    }
}

/// A stream that notes in its [`Activity`] every read or write that moved bytes. It holds the
/// connection's place in the count, so an upgraded connection (a WebSocket, which owns this
/// stream after the upgrade) keeps counting until it closes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_keeps_descriptors_in_reserve() {
        assert_eq!(connection_cap(256, None), 256);
        assert_eq!(connection_cap(256, Some(1_048_576)), 256);
        assert_eq!(connection_cap(256, Some(300)), 300 - FD_RESERVE as usize);
        assert_eq!(connection_cap(256, Some(100)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(2, Some(100_000)), 2);
    }
}
