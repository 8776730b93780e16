//! What the API's WebSockets share: their close reasons, how one is driven (messages out from a
//! [`Source`], liveness, closing when the server stops), and `/api/ws`, the page's one socket for
//! status pushes.
//!
//! Liveness: a WebSocket outlives the HTTP timeouts of `server.rs`, so it keeps its own. The server
//! pings every [`ping_every`]; a peer that sends nothing (not even the pong every browser sends
//! by itself) for `api.idle_timeout_s` is closed, and so is one whose socket accepts no message
//! for that long (a viewer that stopped reading: its TCP window is full). Each socket still counts
//! against `api.max_connections` until it closes.

use crate::api::server::Stopping;
use crate::status::Snapshot;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The largest message a client may send us: the API's sockets only ever expect pongs and small
/// control text, so a client cannot make the server buffer tungstenite's 64 MiB default.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How often `/api/ws` looks for a changed status (the manager publishes changes at once).
const STATUS_POLL: Duration = Duration::from_millis(200);

/// Why the server closed a WebSocket: the close code (4000-4999 are the application's) and a
/// reason word the UI matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// No camera with that id is configured.
    UnknownCamera,
    /// The camera's worker is not running, or its stream sends nothing.
    CameraDown,
    /// `stream=main` of a camera whose `recording.mode` is `off`: its worker does not connect MAIN.
    MainNotConnected,
    /// The peer's socket accepted nothing for `api.idle_timeout_s`.
    TooSlow,
    /// The peer sent nothing (not even a pong) for `api.idle_timeout_s`.
    Silent,
    /// The server is stopping.
    GoingAway,
    /// The stream cannot be relayed (a codec the muxer does not know, parameters it cannot read).
    Unsupported,
    /// The peer closed first; we answer with a normal close.
    Normal,
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Close::Normal => 1000,
            Close::GoingAway => 1001,
            Close::UnknownCamera => 4404,
            Close::CameraDown => 4503,
            Close::MainNotConnected => 4409,
            Close::TooSlow => 4408,
            Close::Silent => 4410,
            Close::Unsupported => 4415,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Close::Normal => "bye",
            Close::GoingAway => "going_away",
            Close::UnknownCamera => "unknown_camera",
            Close::CameraDown => "camera_down",
            Close::MainNotConnected => "main_not_connected",
            Close::TooSlow => "too_slow",
            Close::Silent => "silent",
            Close::Unsupported => "unsupported",
        }
    }

    pub fn frame(self) -> Message {
        Message::Close(Some(CloseFrame {
            code: self.code(),
            reason: Utf8Bytes::from_static(self.reason()),
        }))
    }
}

/// What a socket's [`Source`] hands the driver next.
#[derive(Debug)]
pub enum Outgoing {
    Send(Message),
    Close(Close),
}

/// Where a WebSocket's messages come from. `next` must be cancel-safe: the driver drops it
/// unfinished when the peer sends something or a ping is due.
pub trait Source: Send {
    fn next(&mut self) -> impl Future<Output = Outgoing> + Send;
}

/// How often the server pings: a third of the idle timeout, between 1 and 20 s.
pub fn ping_every(idle: Duration) -> Duration {
    (idle / 3).clamp(Duration::from_secs(1), Duration::from_secs(20))
}

/// Settings and shared state of the API's WebSockets.
pub struct Sockets {
    /// `api.idle_timeout_s`: how long a peer may send nothing, or accept nothing.
    pub idle: Duration,
    /// The serialised status push, started by the first `/api/ws`.
    status: OnceLock<watch::Receiver<Arc<str>>>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets::new(Duration::from_secs(60))
    }
}

impl Sockets {
    pub fn new(idle: Duration) -> Self {
        Sockets {
            idle,
            status: OnceLock::new(),
        }
    }

    /// The status feed: one task serialises the snapshot when it changed, for every page.
    fn status_feed(&self, status: &Arc<RwLock<Snapshot>>) -> watch::Receiver<Arc<str>> {
        self.status
            .get_or_init(|| {
                let first = status_message(status);
                let (tx, rx) = watch::channel(first);
                let status = Arc::clone(status);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(STATUS_POLL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        // Nobody listens but the feed's own receiver: skip the serialising.
                        if tx.receiver_count() <= 1 {
                            continue;
                        }
                        let next = status_message(&status);
                        tx.send_if_modified(|current| {
                            let changed = **current != *next;
                            if changed {
                                *current = next;
                            }
                            changed
                        });
                    }
                });
                rx
            })
            .clone()
    }
}

/// The status push: the health verdict and the whole `/status` snapshot.
fn status_message(status: &RwLock<Snapshot>) -> Arc<str> {
    let snap = status.read().map(|s| s.clone()).unwrap_or_default();
    let problems: serde_json::Map<String, serde_json::Value> = snap
        .unhealthy()
        .into_iter()
        .map(|(id, why)| (id, why.into()))
        .collect();
    json!({
        "type": "status",
        "health": {"ok": problems.is_empty(), "problems": problems},
        "status": snap,
    })
    .to_string()
    .into()
}

/// Sends every changed status as one text message.
struct StatusPush {
    rx: watch::Receiver<Arc<str>>,
    first: bool,
}

impl Source for StatusPush {
    async fn next(&mut self) -> Outgoing {
        if !std::mem::take(&mut self.first) && self.rx.changed().await.is_err() {
            return Outgoing::Close(Close::GoingAway);
        }
        let text = Arc::clone(&self.rx.borrow_and_update());
        Outgoing::Send(Message::Text(Utf8Bytes::from(&*text)))
    }
}

/// `GET /api/ws`: the page's status socket. Sends the status at once and then whenever it
/// changes (at most every 200 ms), so the page polls nothing.
pub async fn status_socket(
    State(state): State<crate::api::AppState>,
    stopping: Option<Extension<Stopping>>,
    ws: WebSocketUpgrade,
) -> Response {
    let rx = state.sockets.status_feed(&state.status);
    let idle = state.sockets.idle;
    let stop = stopping.map(|Extension(s)| s);
    limit(ws).on_upgrade(move |socket| async move {
        drive(socket, StatusPush { rx, first: true }, idle, stop).await;
    })
}

/// The API's limits on what a client may send through a socket, and small buffers: a client
/// only ever sends pongs, and each message out is written at once (tungstenite's defaults of
/// 128 KiB each, per socket, would be most of a viewer's memory).
pub fn limit(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// A socket's read buffer: pongs and small control text.
const READ_BUFFER: usize = 4096;

/// Runs a socket until its source closes it, the peer goes, the peer is silent or slow for
/// `idle`, or the server stops. Returns why it ended.
pub async fn drive(
    mut socket: WebSocket,
    mut source: impl Source,
    idle: Duration,
    stop: Option<Stopping>,
) -> Close {
    let mut stop = stop.map(|Stopping(rx)| rx);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + ping_every(idle),
        ping_every(idle),
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = loop {
        let stopping = async {
            match &mut stop {
                Some(rx) => {
                    let _ = rx.wait_for(|s| *s).await;
                }
                None => std::future::pending().await,
            }
        };
        let out = tokio::select! {
            biased;
            () = stopping => Outgoing::Close(Close::GoingAway),
            heard = socket.recv() => match heard {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Close::Normal,
                Some(Ok(_)) => {
                    last_heard = Instant::now();
                    continue;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle {
                    Outgoing::Close(Close::Silent)
                } else {
                    Outgoing::Send(Message::Ping(Default::default()))
                }
            }
            out = source.next() => out,
        };
        match out {
            Outgoing::Send(message) => {
                match tokio::time::timeout(idle, socket.send(message)).await {
                    Ok(Ok(())) => {}
                    // The peer went away mid-message (a closed socket): nothing to tell it.
                    Ok(Err(_)) => break Close::Normal,
                    // Its socket took nothing for `idle`: a close frame would not get through
                    // either; dropping the socket frees everything.
                    Err(_) => return Close::TooSlow,
                }
            }
            Outgoing::Close(why) => break why,
        }
    };
    if why != Close::Normal {
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(why.frame())).await;
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_come_well_inside_the_idle_timeout() {
        for (idle_s, want_s) in [(60.0, 20.0), (30.0, 10.0), (1.5, 1.0), (3600.0, 20.0)] {
            assert_eq!(
                ping_every(Duration::from_secs_f64(idle_s)),
                Duration::from_secs_f64(want_s),
                "{idle_s}"
            );
        }
    }

    #[test]
    fn close_codes_are_distinct_and_application_codes_are_private() {
        let all = [
            Close::UnknownCamera,
            Close::CameraDown,
            Close::MainNotConnected,
            Close::TooSlow,
            Close::Silent,
            Close::GoingAway,
            Close::Unsupported,
            Close::Normal,
        ];
        let codes: std::collections::BTreeSet<u16> = all.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), all.len());
        for c in all {
            assert!(
                matches!(c.code(), 1000 | 1001 | 4000..=4999),
                "{c:?} {}",
                c.code()
            );
            assert!(
                c.reason().len() < 123,
                "a close reason fits a control frame"
            );
        }
    }
}
