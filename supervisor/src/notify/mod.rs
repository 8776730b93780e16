//! Event notifications: the MQTT publisher (`mqtt`) and what it owes the broker (`outbox`, pure),
//! and the webhook sender (`webhook`, with its durable outbox and pure policy).
//!
//! The manager (motion on/off, a camera's status and health, its recording state) and the archive
//! (motion events with the ids the index gave them, and their thumbnails; finished recordings)
//! hand [`Note`]s to a [`Notifier`]: one unbounded channel per consumer (MQTT, webhooks), each
//! drained at once by the consumer's own thread, so sending never blocks a thread that matters to
//! the cameras. Everything that can wait (a broker or receiver that is down, refuses us, or is
//! slow) waits in the consumer's outbox.

mod discovery;
pub mod gate;
mod mqtt;
pub mod outbox;
pub mod webhook;

pub use mqtt::{start, Publisher};

use crate::metrics::exposition::{Exposition, Kind};
use serde::Serialize;

/// What happened, for the publisher to tell the world.
#[derive(Debug, Clone)]
pub enum Note {
    /// A camera's motion started (`true`) or ended.
    Motion { camera: String, active: bool },
    /// A camera's worker and stream states, as JSON (published when it changes).
    Status { camera: String, payload: String },
    /// Whether a camera records now (the recording mode in force is not `off`).
    Recording { camera: String, on: bool },
    /// A motion event began or ended, with its index id; `snapshot` is the thumbnail (JPEG) at its
    /// start.
    Event {
        event: EventMessage,
        snapshot: Option<Vec<u8>>,
    },
    /// The cameras configured now (at start and after a reload), in config order, with their
    /// display names.
    Cameras(Vec<(String, String)>),
    /// A recording file was closed and indexed.
    RecordingFinished(RecordingNote),
    /// Every camera's notification rule (quiet hours, cooldown, `camera_down` delay), at start
    /// and after a reload.
    Rules(Vec<(String, gate::Rule)>),
    /// An enabled camera's health with its status: why it is unhealthy (`/ready`'s reason), or
    /// `None`.
    Health {
        camera: String,
        problem: Option<String>,
    },
}

/// A finished recording, as `/api/recordings` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingNote {
    pub recording_id: String,
    pub camera: String,
    /// Unix ms.
    pub start: i64,
    pub end: i64,
    pub bytes: u64,
    pub file_url: String,
}

/// Whether an event message announces an event or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    New,
    End,
}

/// The `<prefix>/events` payload (Frigate's vocabulary where it has one). Ids and URLs are those of
/// `/api/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMessage {
    #[serde(rename = "type")]
    pub message: EventType,
    pub id: String,
    pub camera: String,
    pub kind: &'static str,
    /// Unix ms.
    pub start: i64,
    /// Unix ms; `None` in `new`.
    pub end: Option<i64>,
    pub score: f64,
    pub zones: Vec<String>,
    pub thumbnail_url: Option<String>,
    /// The clip holding the event; `None` in `new` (and when nothing was recorded).
    pub clip_url: Option<String>,
}

impl EventMessage {
    /// The message for an indexed event (`end` set: its end, with the clip).
    pub fn of(e: &crate::archive::index::Event, message: EventType) -> Self {
        EventMessage {
            message,
            id: e.id.clone(),
            camera: e.camera_id.clone(),
            kind: e.kind,
            start: e.start,
            end: e.end.filter(|_| message == EventType::End),
            score: e.score,
            zones: e.zones.clone(),
            thumbnail_url: e.thumbnail_url.clone(),
            clip_url: match message {
                EventType::New => None,
                EventType::End => e
                    .recording_id
                    .as_ref()
                    .map(|r| format!("/api/recordings/{r}/file")),
            },
        }
    }
}

/// Where notes go; a disabled one (no `mqtt`, no `webhooks` in the config) drops them.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    txs: Vec<tokio::sync::mpsc::UnboundedSender<Note>>,
}

/// The receiving end of a [`Notifier`], for [`start`].
pub type Notes = tokio::sync::mpsc::UnboundedReceiver<Note>;

impl Notifier {
    /// A notifier and the receiver the publisher will drain.
    pub fn channel() -> (Notifier, Notes) {
        let mut n = Notifier::default();
        let rx = n.subscribe();
        (n, rx)
    }

    /// Another consumer: every note sent from now on reaches it too.
    pub fn subscribe(&mut self) -> Notes {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.txs.push(tx);
        rx
    }

    /// Hands a note to every consumer; never blocks.
    pub fn send(&self, note: Note) {
        if let Some((last, rest)) = self.txs.split_last() {
            for tx in rest {
                let _ = tx.send(note.clone());
            }
            let _ = last.send(note);
        }
    }

    pub fn enabled(&self) -> bool {
        !self.txs.is_empty()
    }
}

/// The connection to the broker, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Connecting (the first attempt, or a retry after a wait).
    Connecting,
    Connected,
    /// Unreachable, or the connection dropped; retried with backoff.
    Down,
    /// The broker refused the user name or password (or the client id); retried with backoff.
    Refused,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Connecting => "connecting",
            BrokerState::Connected => "connected",
            BrokerState::Down => "down",
            BrokerState::Refused => "refused",
        }
    }
}

impl MqttStatus {
    /// The `nvr_mqtt_*` lines of `/metrics`.
    pub fn prometheus(&self, x: &mut Exposition) {
        let broker = &self.broker;
        x.family(
            "nvr_mqtt_connected",
            Kind::Gauge,
            "1 while the MQTT broker connection is up (label state: connecting, connected, down, refused)",
        )
        .sample(
            &[("broker", broker), ("state", self.state.as_str())],
            f64::from(u8::from(self.state == BrokerState::Connected)),
        );
        for (name, kind, help, value) in [
            (
                "nvr_mqtt_connects_total",
                Kind::Counter,
                "Successful MQTT connects since the start",
                self.connects as f64,
            ),
            (
                "nvr_mqtt_failures",
                Kind::Gauge,
                "Failed MQTT connection attempts since the last successful one",
                f64::from(self.failures),
            ),
            (
                "nvr_mqtt_delivered_total",
                Kind::Counter,
                "MQTT messages the broker acknowledged",
                self.delivered as f64,
            ),
            (
                "nvr_mqtt_queued",
                Kind::Gauge,
                "MQTT messages waiting for the broker",
                self.queued as f64,
            ),
            (
                "nvr_mqtt_dropped_total",
                Kind::Counter,
                "MQTT event messages dropped because the queue was full",
                self.dropped as f64,
            ),
        ] {
            x.family(name, kind, help)
                .sample(&[("broker", broker)], value);
        }
    }
}

/// The MQTT publisher's state for `/status` (`mqtt`) and `/metrics` (`nvr_mqtt_*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MqttStatus {
    /// `host:port`.
    pub broker: String,
    pub state: BrokerState,
    /// Why the last attempt or connection failed (no secret: the client's error kinds).
    pub last_error: Option<String>,
    /// Failed attempts since the last successful connect.
    pub failures: u32,
    /// How long the current wait before the next attempt is (it doubles, up to 30 s).
    pub retry_in_s: Option<f64>,
    /// Successful connects since the start.
    pub connects: u64,
    /// Messages the broker acknowledged since the start.
    pub delivered: u64,
    /// Messages waiting for the broker (events and, while connected, states).
    pub queued: usize,
    /// Event messages dropped because the queue was full (`outbox::EVENTS_MAX`).
    pub dropped: u64,
}

/// Tells a notification thread to stop and waits up to `timeout` for it to finish.
fn stop_thread(
    stop: tokio::sync::oneshot::Sender<()>,
    thread: &std::thread::JoinHandle<()>,
    timeout: std::time::Duration,
) {
    let _ = stop.send(());
    let deadline = std::time::Instant::now() + timeout;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
