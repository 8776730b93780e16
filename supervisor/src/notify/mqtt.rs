//! The MQTT publisher: one thread with its own small tokio runtime, holding a `rumqttc` client.
//!
//! Two tasks: `drive` polls the client's event loop (it connects, reconnects after a wait that
//! doubles from 1 s to 30 s, and reports what happened), and `run` owns the [`Outbox`], turns
//! [`Note`]s into messages, hands them to the client while connected, and writes the broker's
//! state into the status snapshot. A broker that is down, slow or refuses us costs this thread
//! and nothing else: notes arrive on an unbounded channel that this thread drains at once, and
//! everything that must wait waits in the bounded outbox.
//!
//! Topics (`<p>` is `topic_prefix`): `<p>/available` (`online` retained at connect, `offline` as
//! the last will and at a clean stop), `<p>/<camera>/motion` (`ON`/`OFF`, retained),
//! `<p>/<camera>/status` (JSON, retained, on change), `<p>/<camera>/recordings/state` (`ON`/`OFF`,
//! retained), `<p>/events` (JSON `new`/`end`), `<p>/<camera>/snapshot` (the event's JPEG at its
//! start, retained); subscribed: `<p>/<camera>/recordings/set` (`ON`/`OFF`).

use super::gate::{Gate, Verdict};
use super::outbox::{Kind, Message, Outbox, IN_FLIGHT_MAX};
use super::{BrokerState, EventType, MqttStatus, Note, Notes};
use crate::manager::{Command, Inbox, Msg};
use crate::mode::Override;
use crate::status::Snapshot;
use anyhow::Context;
use nvr_config::MqttConfig;
use nvr_schedule::Mode;
use rumqttc::tokio_rustls::rustls;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// The first wait before a reconnect; it doubles up to [`RETRY_MAX`] and starts again after a
/// successful connect.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often `run` tries again to hand messages to a client whose queue was full.
const PUMP_RETRY: Duration = Duration::from_millis(50);
/// Largest message (a snapshot JPEG) we send or accept.
const MAX_PACKET: usize = 4 << 20;

/// The running publisher; [`Publisher::stop`] publishes `offline` and disconnects.
pub struct Publisher {
    thread: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Publisher {
    /// Publishes `offline`, disconnects cleanly, and waits up to `timeout` for it.
    pub fn stop(self, timeout: Duration) {
        super::stop_thread(self.stop, &self.thread, timeout);
    }
}

/// The topics of one prefix.
struct Topics {
    prefix: String,
}

impl Topics {
    fn available(&self) -> String {
        format!("{}/available", self.prefix)
    }
    fn camera(&self, camera: &str, leaf: &str) -> String {
        format!("{}/{camera}/{leaf}", self.prefix)
    }
    fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }
    /// The camera a `<p>/<camera>/recordings/set` topic names.
    fn recordings_set<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(&self.prefix)?
            .strip_prefix('/')?
            .strip_suffix("/recordings/set")
            .filter(|c| !c.is_empty() && !c.contains('/'))
    }
}

/// Builds the client options (TLS settings are read now, so a bad CA file stops the start with
/// a clear error) and starts the publisher's thread.
pub fn start(
    config: &MqttConfig,
    notes: Notes,
    status: Arc<RwLock<Snapshot>>,
    inbox: Inbox,
) -> anyhow::Result<Publisher> {
    let topics = Topics {
        prefix: config.topic_prefix.clone(),
    };
    let mut opts = MqttOptions::new(&config.client_id, &config.host, config.port);
    opts.set_keep_alive(Duration::from_secs(15))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            topics.available(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &config.username {
        let password = config
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        opts.set_credentials(user, password);
    }
    if config.tls {
        let tls = tls_config(config)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    }
    let broker = format!("{}:{}", config.host, config.port);
    let home_assistant = config.home_assistant;
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "mqtt: cannot start its runtime; no MQTT notifications");
                    return;
                }
            };
            runtime.block_on(run(
                opts,
                topics,
                broker,
                home_assistant,
                notes,
                status,
                inbox,
                stop_rx,
            ));
        })
        .context("cannot start the MQTT thread")?;
    Ok(Publisher {
        thread,
        stop: stop_tx,
    })
}

/// rustls with the `ring` provider; the system's roots plus `ca_file`.
fn tls_config(config: &MqttConfig) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("mqtt.ca_file: cannot read {}", path.display()))?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.with_context(|| {
                format!("mqtt.ca_file: {} is not PEM certificates", path.display())
            })?;
            roots.add(cert).with_context(|| {
                format!(
                    "mqtt.ca_file: a certificate in {} is not usable",
                    path.display()
                )
            })?;
            n += 1;
        }
        anyhow::ensure!(
            n > 0,
            "mqtt.ca_file: {} holds no PEM certificate",
            path.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What the event loop reports to `run`.
enum Conn {
    Up,
    Down {
        state: BrokerState,
        error: String,
        retry_in: Duration,
    },
    Connecting,
    Sent(u16),
    Acked(u16),
    Incoming {
        topic: String,
        payload: Vec<u8>,
    },
    /// Our own disconnect went out.
    Closed,
}

/// Polls the event loop forever (it reconnects by itself when polled again), waiting between
/// failed attempts.
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Conn>) {
    let mut wait = RETRY_FIRST;
    loop {
        let conn = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                wait = RETRY_FIRST;
                Conn::Up
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => Conn::Acked(ack.pkid),
            Ok(Event::Incoming(Packet::Publish(p))) => Conn::Incoming {
                topic: p.topic,
                payload: p.payload.to_vec(),
            },
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Conn::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = tx.send(Conn::Closed);
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                let state = match e {
                    ConnectionError::ConnectionRefused(_) => BrokerState::Refused,
                    _ => BrokerState::Down,
                };
                if tx
                    .send(Conn::Down {
                        state,
                        error: e.to_string(),
                        retry_in: wait,
                    })
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
                Conn::Connecting
            }
        };
        if tx.send(conn).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    opts: MqttOptions,
    topics: Topics,
    broker: String,
    home_assistant: bool,
    mut notes: Notes,
    status: Arc<RwLock<Snapshot>>,
    inbox: Inbox,
    mut stop: oneshot::Receiver<()>,
) {
    let (client, eventloop) = AsyncClient::new(opts, IN_FLIGHT_MAX + 8);
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(eventloop, conn_tx));
    let mut outbox = Outbox::default();
    let mut cameras: Vec<(String, String)> = Vec::new();
    let mut gate = Gate::default();
    let mut st = MqttStatus {
        broker,
        state: BrokerState::Connecting,
        last_error: None,
        failures: 0,
        retry_in_s: None,
        connects: 0,
        delivered: 0,
        queued: 0,
        dropped: 0,
    };
    info!(broker = %st.broker, "mqtt: connecting");
    let mut stopping = false;
    loop {
        // Hand the client what it has room for; a full client queue is retried shortly.
        let mut blocked = false;
        while let Some(m) = outbox.next_message() {
            match client.try_publish(&m.topic, QoS::AtLeastOnce, m.retain, m.payload.clone()) {
                Ok(()) => outbox.handed(),
                Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        st.delivered = outbox.delivered;
        st.dropped = outbox.dropped;
        st.queued = outbox.pending();
        if let Ok(mut s) = status.write() {
            s.mqtt = Some(st.clone());
        }
        tokio::select! {
            note = notes.recv(), if !stopping => match note {
                Some(note) => on_note(note, &topics, &mut outbox, &mut cameras, &mut gate, home_assistant),
                None => stopping = true,
            },
            conn = conn_rx.recv() => match conn {
                Some(Conn::Up) => {
                    st.connects += 1;
                    st.state = BrokerState::Connected;
                    st.failures = 0;
                    st.retry_in_s = None;
                    info!(broker = %st.broker, queued = outbox.events_waiting(), "mqtt: connected");
                    let first = vec![Message {
                        topic: topics.available(),
                        payload: b"online".to_vec(),
                        retain: true,
                        kind: Kind::State,
                    }];
                    outbox.connected(first);
                    let _ = client.try_subscribe(
                        format!("{}/+/recordings/set", topics.prefix),
                        QoS::AtLeastOnce,
                    );
                }
                Some(Conn::Down { state, error, retry_in }) => {
                    if st.state == BrokerState::Connected || st.last_error.as_deref() != Some(&error) {
                        warn!(broker = %st.broker, %error, retry_in_s = retry_in.as_secs_f64(), "mqtt: broker unavailable; retrying");
                    }
                    st.state = state;
                    st.failures += 1;
                    st.last_error = Some(error);
                    st.retry_in_s = Some(retry_in.as_secs_f64());
                    outbox.lost();
                    if stopping {
                        return;
                    }
                }
                Some(Conn::Connecting) => st.state = BrokerState::Connecting,
                Some(Conn::Sent(pkid)) => outbox.sent(pkid),
                Some(Conn::Acked(pkid)) => outbox.acked(pkid),
                Some(Conn::Incoming { topic, payload }) => {
                    if let Some(camera) = topics.recordings_set(&topic) {
                        set_recording(camera.to_string(), &payload, &inbox);
                    }
                }
                Some(Conn::Closed) | None => return,
            },
            _ = &mut stop, if !stopping => {
                stopping = true;
                if st.state != BrokerState::Connected {
                    // The broker publishes the last will when it notices.
                    return;
                }
                info!("mqtt: publishing offline and disconnecting");
                let _ = client.try_publish(topics.available(), QoS::AtLeastOnce, true, "offline");
                let _ = client.try_disconnect();
            }
            _ = tokio::time::sleep(PUMP_RETRY), if blocked => {}
        }
    }
}

/// Turns a note into outbox messages.
fn on_note(
    note: Note,
    topics: &Topics,
    outbox: &mut Outbox,
    cameras: &mut Vec<(String, String)>,
    gate: &mut Gate,
    home_assistant: bool,
) {
    let on_off = |on: bool| if on { b"ON".to_vec() } else { b"OFF".to_vec() };
    match note {
        Note::Motion { camera, active } => {
            outbox.set_state(topics.camera(&camera, "motion"), on_off(active))
        }
        Note::Status { camera, payload } => {
            outbox.set_state(topics.camera(&camera, "status"), payload.into_bytes())
        }
        Note::Recording { camera, on } => {
            outbox.set_state(topics.camera(&camera, "recordings/state"), on_off(on))
        }
        Note::Event { event, snapshot } => {
            // Quiet hours and cooldown hold the event messages; the motion state stays true.
            let start = event.message == EventType::New;
            let verdict = gate.judge(&event.camera, &event.id, start, event.start);
            if verdict != Verdict::Send {
                debug!(camera_id = %event.camera, event = %event.id, ?verdict, "mqtt: event not notified");
                return;
            }
            if let (EventType::New, Some(jpeg)) = (event.message, snapshot) {
                outbox.push_event(topics.camera(&event.camera, "snapshot"), jpeg, true);
            }
            match serde_json::to_vec(&event) {
                Ok(json) => outbox.push_event(topics.events(), json, false),
                Err(e) => warn!(error = %e, "mqtt: cannot encode an event"),
            }
        }
        Note::Cameras(list) => {
            if home_assistant && list != *cameras {
                for m in super::discovery::configs(&topics.prefix, &list) {
                    outbox.set_state(m.topic, m.payload);
                }
            }
            *cameras = list;
        }
        Note::Rules(rules) => gate.set_rules(rules),
        Note::RecordingFinished(_) | Note::Health { .. } => {}
    }
}

/// `recordings/set`: `ON` ends any override and, when the mode then in force is `off`, overrides
/// to `motion`; `OFF` overrides to `off`. The manager answers; `recordings/state` follows from
/// its status.
fn set_recording(camera: String, payload: &[u8], inbox: &Inbox) {
    let on = match payload.trim_ascii() {
        b"ON" | b"on" => true,
        b"OFF" | b"off" => false,
        other => {
            warn!(camera_id = %camera, payload = %String::from_utf8_lossy(other).chars().take(16).collect::<String>(), "mqtt: recordings/set takes ON or OFF");
            return;
        }
    };
    let inbox = inbox.clone();
    tokio::spawn(async move {
        let set = |change: Option<Override>| {
            let (reply, answer) = oneshot::channel();
            let sent = inbox.send(Msg::Command(Command::SetOverride {
                camera_id: Some(camera.clone()),
                change,
                reply,
            }));
            async move {
                sent.ok()?;
                answer.await.ok()
            }
        };
        let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
        let forced = |mode| Override {
            mode,
            until_ms: None,
            set_at_ms: now_ms,
        };
        let result = if on {
            match set(None).await {
                Some(Ok(modes)) if modes.iter().any(|(_, m)| m.current == Mode::Off) => {
                    set(Some(forced(Mode::Motion))).await
                }
                other => other,
            }
        } else {
            set(Some(forced(Mode::Off))).await
        };
        match result {
            Some(Ok(_)) => info!(camera_id = %camera, on, "mqtt: recordings/set applied"),
            Some(Err(e)) => warn!(camera_id = %camera, error = %e, "mqtt: recordings/set refused"),
            None => warn!(camera_id = %camera, "mqtt: recordings/set: the manager is gone"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_set_topics_name_one_camera() {
        let t = Topics {
            prefix: "nvr".into(),
        };
        assert_eq!(t.recordings_set("nvr/front/recordings/set"), Some("front"));
        assert_eq!(t.recordings_set("nvr/a/b/recordings/set"), None);
        assert_eq!(t.recordings_set("nvr//recordings/set"), None);
        assert_eq!(t.recordings_set("nvrx/front/recordings/set"), None);
        assert_eq!(t.recordings_set("nvr/front/recordings/state"), None);
    }
}
