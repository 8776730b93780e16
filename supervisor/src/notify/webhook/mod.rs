//! Webhooks: signed JSON POSTs of events, from a durable outbox (decisions 92-95).
//!
//! One thread with its own small tokio runtime. It turns [`Note`]s into deliveries (one per
//! webhook that wants the event), writes each to the outbox in `state.sqlite3` before the first
//! attempt, and POSTs what is due (at most [`IN_FLIGHT_MAX`] at once): a 2xx answer deletes the
//! row, a failure schedules the next attempt ([`policy::after_attempt`]: 1 s, doubling, up to
//! 5 min), and after `tries` failed attempts the delivery is dropped and counted. A receiver that
//! is down or slow costs this thread and nothing else.
//!
//! Every POST carries `X-NVR-Timestamp` (Unix s, of this attempt), `X-NVR-Signature:
//! sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, `X-NVR-Delivery` (the delivery's id,
//! the same at every attempt and in the body, so a receiver drops repeats) and `X-NVR-Event`.

pub mod policy;
pub mod store;

use super::gate::{Gate, Verdict as GateVerdict};
use super::{EventType, Note, Notes};
use crate::status::Snapshot;
use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use nvr_config::{redact_url, WebhookConfig, WebhookEvent};
use policy::{Change, Cooldown, Health, Verdict};
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use store::{Row, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls;
use tracing::{info, warn};

/// Attempts under way at once, over all webhooks.
const IN_FLIGHT_MAX: usize = 8;
/// How often due deliveries and cameras' health are looked at.
const TICK: Duration = Duration::from_millis(200);
/// Largest response body read (and thrown away) from a receiver.
const RESPONSE_MAX: usize = 64 << 10;

/// The running sender; [`Sender::stop`] ends it (pending deliveries stay in the outbox).
pub struct Sender {
    thread: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Sender {
    /// Stops after the attempts under way (up to `timeout`).
    pub fn stop(self, timeout: Duration) {
        crate::notify::stop_thread(self.stop, &self.thread, timeout);
    }
}

/// One webhook's figures, for `/status` (`webhooks`) and `/metrics` (`nvr_webhook_*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookStatus {
    /// The URL with any parameter values masked.
    pub url: String,
    /// Deliveries the receiver accepted (2xx) since the start.
    pub delivered: u64,
    /// Attempts that failed since the start (each is retried until `tries`).
    pub failed_attempts: u64,
    /// Deliveries dropped after `tries` failed attempts since the start.
    pub dropped: u64,
    /// Deliveries waiting in the outbox (including those from before a restart).
    pub queued: usize,
    /// Why the last failed attempt failed (no secret: a status code or a connection error kind).
    pub last_error: Option<String>,
    /// Unix ms of the last delivery the receiver accepted.
    pub last_delivered_ms: Option<i64>,
}

impl WebhookStatus {
    /// The `nvr_webhook_*` lines of `/metrics`.
    pub fn prometheus(all: &[WebhookStatus], x: &mut crate::metrics::exposition::Exposition) {
        use crate::metrics::exposition::Kind;
        type Get = fn(&WebhookStatus) -> f64;
        let families: [(&str, Kind, &str, Get); 4] = [
            (
                "nvr_webhook_delivered_total",
                Kind::Counter,
                "Webhook deliveries the receiver accepted (2xx)",
                |w| w.delivered as f64,
            ),
            (
                "nvr_webhook_failed_attempts_total",
                Kind::Counter,
                "Webhook delivery attempts that failed (retried until the webhook's tries)",
                |w| w.failed_attempts as f64,
            ),
            (
                "nvr_webhook_dropped_total",
                Kind::Counter,
                "Webhook deliveries dropped after the webhook's tries failed",
                |w| w.dropped as f64,
            ),
            (
                "nvr_webhook_queued",
                Kind::Gauge,
                "Webhook deliveries waiting in the outbox",
                |w| w.queued as f64,
            ),
        ];
        for (name, kind, help, get) in families {
            let mut f = x.family(name, kind, help);
            for w in all {
                f.sample(&[("url", &w.url)], get(w));
            }
        }
    }
}

/// A webhook ready to send to: its config and the parts of its URL.
struct Hook {
    config: WebhookConfig,
    https: bool,
    host: String,
    port: u16,
    /// `host[:port]` as written, for `Host`.
    authority: String,
    path_and_query: String,
}

impl Hook {
    fn new(config: &WebhookConfig) -> anyhow::Result<Hook> {
        let shown = redact_url(&config.url);
        let uri: hyper::Uri = config
            .url
            .parse()
            .with_context(|| format!("webhooks: {shown} is not a URL hyper can use"))?;
        let https = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let authority = uri
            .authority()
            .with_context(|| format!("webhooks: {shown} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Hook {
            https,
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: authority.as_str().to_string(),
            host,
            path_and_query: uri
                .path_and_query()
                .map_or("/".to_string(), |p| p.as_str().to_string()),
            config: config.clone(),
        })
    }
}

/// Checks the webhooks' URLs and TLS settings (so a bad one stops the start with a clear error),
/// opens the outbox and starts the sender's thread.
pub fn start(
    hooks: &[WebhookConfig],
    output_dir: &Path,
    notes: Notes,
    status: Arc<RwLock<Snapshot>>,
) -> anyhow::Result<Sender> {
    let hooks: Vec<Hook> = hooks.iter().map(Hook::new).collect::<Result<_, _>>()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
    let store = Store::open(output_dir).context("cannot open the webhook outbox")?;
    let urls: Vec<String> = hooks.iter().map(|h| h.config.url.clone()).collect();
    match store.forget_other_urls(&urls) {
        Ok(0) => {}
        Ok(n) => {
            info!(
                deliveries = n,
                "webhooks: dropped the pending deliveries of webhooks no longer configured"
            )
        }
        Err(e) => warn!(error = %e, "webhooks: cannot tidy the outbox"),
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "webhooks: cannot start its runtime; no webhooks");
                    return;
                }
            };
            runtime.block_on(run(hooks, tls, store, notes, status, stop_rx));
        })
        .context("cannot start the webhook thread")?;
    Ok(Sender {
        thread,
        stop: stop_tx,
    })
}

/// rustls with the `ring` provider (as MQTT) and the system's roots.
fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn now_ms() -> i64 {
    (nvr_proto::unix_ns() / 1_000_000) as i64
}

/// A new delivery id: 128 random bits, hex.
fn delivery_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // The system's generator does not fail on Linux; a fallback keeps ids unique anyway.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(&(nvr_proto::unix_ns() as u128).to_be_bytes());
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex(ctx.sign().as_ref()))
}

/// The JSON body of a delivery.
#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    id: &'a str,
    event: &'static str,
    camera: &'a str,
    /// Unix ms when it happened.
    time: i64,
    data: T,
}

/// What a note means to webhooks: the event, its camera, when, and its data.
fn deliveries_of(
    note: &Note,
    health: &mut Health,
    gate: &mut Gate,
    now: i64,
) -> Vec<(WebhookEvent, String, i64, serde_json::Value)> {
    fn json<T: Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    match note {
        Note::Event { event, .. } => {
            let kind = match event.message {
                EventType::New => WebhookEvent::MotionStart,
                EventType::End => WebhookEvent::MotionEnd,
            };
            let time = match event.message {
                EventType::New => event.start,
                EventType::End => event.end.unwrap_or(now),
            };
            // The camera's quiet hours and cooldown (every webhook's `cooldown_s` comes after).
            let start = event.message == EventType::New;
            if gate.judge(&event.camera, &event.id, start, event.start) != GateVerdict::Send {
                return Vec::new();
            }
            vec![(kind, event.camera.clone(), time, json(event))]
        }
        Note::RecordingFinished(r) => vec![(
            WebhookEvent::RecordingFinished,
            r.camera.clone(),
            r.end,
            json(r),
        )],
        Note::Health { camera, problem } => match health.observe(camera, problem.clone(), now) {
            Some(change) => vec![camera_change(camera, change, now)],
            None => Vec::new(),
        },
        Note::Cameras(list) => {
            let ids: Vec<String> = list.iter().map(|(id, _)| id.clone()).collect();
            health.retain(&ids);
            Vec::new()
        }
        Note::Rules(rules) => {
            health.set_down_after(rules.iter().map(|(id, r)| (id.clone(), r.down_after_ms)));
            gate.set_rules(rules.clone());
            Vec::new()
        }
        Note::Motion { .. } | Note::Status { .. } | Note::Recording { .. } => Vec::new(),
    }
}

fn camera_change(
    camera: &str,
    change: Change,
    now: i64,
) -> (WebhookEvent, String, i64, serde_json::Value) {
    match change {
        Change::Down { since_ms, problem } => (
            WebhookEvent::CameraDown,
            camera.to_string(),
            now,
            serde_json::json!({"since": since_ms, "problem": problem}),
        ),
        Change::Up { down_ms } => (
            WebhookEvent::CameraUp,
            camera.to_string(),
            now,
            serde_json::json!({"down_s": down_ms as f64 / 1000.0}),
        ),
    }
}

/// How an attempt ended.
struct Outcome {
    id: String,
    url: String,
    attempts: u32,
    result: Result<(), String>,
}

async fn run(
    hooks: Vec<Hook>,
    tls: tokio_rustls::TlsConnector,
    store: Store,
    mut notes: Notes,
    status: Arc<RwLock<Snapshot>>,
    mut stop: oneshot::Receiver<()>,
) {
    let hooks: Arc<Vec<Hook>> = Arc::new(hooks);
    let mut stats: Vec<WebhookStatus> = hooks
        .iter()
        .map(|h| WebhookStatus {
            url: redact_url(&h.config.url),
            delivered: 0,
            failed_attempts: 0,
            dropped: 0,
            queued: 0,
            last_error: None,
            last_delivered_ms: None,
        })
        .collect();
    let mut health = Health::default();
    let mut gate = Gate::default();
    let mut cooldowns: Vec<Cooldown> = hooks.iter().map(|_| Cooldown::default()).collect();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let mut busy: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(webhooks = hooks.len(), "webhooks: sender started");
    loop {
        tokio::select! {
            note = notes.recv() => match note {
                Some(note) => {
                    let now = now_ms();
                    for (event, camera, time, data) in deliveries_of(&note, &mut health, &mut gate, now) {
                        enqueue(&hooks, &mut cooldowns, &store, event, &camera, time, &data, now);
                    }
                }
                None => return,
            },
            outcome = done_rx.recv() => {
                let Some(o) = outcome else { return };
                busy.retain(|id| *id != o.id);
                let Some(i) = hooks.iter().position(|h| h.config.url == o.url) else { continue };
                let hook = &hooks[i];
                let now = now_ms();
                let verdict = policy::after_attempt(o.result.is_ok(), o.attempts, hook.config.tries, now);
                let st = &mut stats[i];
                if let Err(e) = &o.result {
                    st.failed_attempts += 1;
                    if st.last_error.as_ref() != Some(e) {
                        warn!(url = %st.url, error = %e, attempt = o.attempts, "webhooks: delivery failed; retrying");
                    }
                    st.last_error = Some(e.clone());
                }
                let written = match verdict {
                    Verdict::Delivered => {
                        st.delivered += 1;
                        st.last_delivered_ms = Some(now);
                        store.remove(&o.id)
                    }
                    Verdict::Drop => {
                        st.dropped += 1;
                        warn!(url = %st.url, delivery = %o.id, tries = hook.config.tries, "webhooks: delivery dropped after its last try");
                        store.remove(&o.id)
                    }
                    Verdict::RetryAt(at) => store.retry(&o.id, o.attempts, at),
                };
                if let Err(e) = written {
                    warn!(error = %e, "webhooks: cannot update the outbox");
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                for (camera, change) in health.tick(now) {
                    let (event, camera, time, data) = camera_change(&camera, change, now);
                    enqueue(&hooks, &mut cooldowns, &store, event, &camera, time, &data, now);
                }
                let room = IN_FLIGHT_MAX.saturating_sub(busy.len());
                if room > 0 {
                    match store.due(now, room, &busy) {
                        Ok(rows) => for row in rows {
                            let Some(i) = hooks.iter().position(|h| h.config.url == row.url) else {
                                let _ = store.remove(&row.id);
                                continue;
                            };
                            busy.push(row.id.clone());
                            tokio::spawn(attempt(Arc::clone(&hooks), i, tls.clone(), row, done_tx.clone()));
                        },
                        Err(e) => warn!(error = %e, "webhooks: cannot read the outbox"),
                    }
                }
                if let Ok(queued) = store.queued() {
                    for st in &mut stats {
                        st.queued = 0;
                    }
                    for (url, n) in queued {
                        if let Some(i) = hooks.iter().position(|h| h.config.url == url) {
                            stats[i].queued = n;
                        }
                    }
                }
                if let Ok(mut s) = status.write() {
                    s.webhooks = stats.clone();
                }
            }
            _ = &mut stop => {
                // What the last moments produced (a recording closed at the stop) goes into the
                // outbox, for the next start to deliver.
                let now = now_ms();
                while let Ok(note) = notes.try_recv() {
                    for (event, camera, time, data) in deliveries_of(&note, &mut health, &mut gate, now) {
                        enqueue(&hooks, &mut cooldowns, &store, event, &camera, time, &data, now);
                    }
                }
                return;
            }
        }
    }
}

/// Writes a delivery of `event` for every webhook that wants it.
#[allow(clippy::too_many_arguments)]
fn enqueue(
    hooks: &[Hook],
    cooldowns: &mut [Cooldown],
    store: &Store,
    event: WebhookEvent,
    camera: &str,
    time: i64,
    data: &serde_json::Value,
    now: i64,
) {
    for (i, hook) in hooks.iter().enumerate() {
        if !hook.config.wants(event, camera) {
            continue;
        }
        let motion = match event {
            WebhookEvent::MotionStart => Some(true),
            WebhookEvent::MotionEnd => Some(false),
            _ => None,
        };
        if let (Some(start), Some(event_id)) = (motion, data["id"].as_str()) {
            let cooldown_ms = (hook.config.cooldown_s * 1000.0) as i64;
            if !cooldowns[i].admit(camera, event_id, start, cooldown_ms, now) {
                continue;
            }
        }
        let id = delivery_id();
        let body = Body {
            id: &id,
            event: event.as_str(),
            camera,
            time,
            data,
        };
        let body = match serde_json::to_string(&body) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "webhooks: cannot encode a delivery");
                continue;
            }
        };
        let row = Row {
            id,
            url: hook.config.url.clone(),
            event: event.as_str().to_string(),
            body,
            attempts: 0,
            next_at_ms: now,
        };
        if let Err(e) = store.add(&row, now) {
            warn!(error = %e, event = event.as_str(), camera, "webhooks: cannot write a delivery to the outbox; it is lost");
        }
    }
}

/// One attempt of one delivery; reports how it went.
async fn attempt(
    hooks: Arc<Vec<Hook>>,
    i: usize,
    tls: tokio_rustls::TlsConnector,
    row: Row,
    done: mpsc::UnboundedSender<Outcome>,
) {
    let hook = &hooks[i];
    let timeout = Duration::from_secs_f64(hook.config.timeout_s);
    let result = match tokio::time::timeout(timeout, post(hook, &tls, &row)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", hook.config.timeout_s)),
    };
    let _ = done.send(Outcome {
        id: row.id,
        url: row.url,
        attempts: row.attempts + 1,
        result,
    });
}

/// POSTs the delivery; `Ok` for a 2xx answer. Errors name what failed, never a secret.
async fn post(hook: &Hook, tls: &tokio_rustls::TlsConnector, row: &Row) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect((hook.host.as_str(), hook.port))
        .await
        .map_err(|e| format!("cannot connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    if hook.https {
        let name = rustls::pki_types::ServerName::try_from(hook.host.clone())
            .map_err(|_| "not a TLS server name".to_string())?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(hook, row, TokioIo::new(stream)).await
    } else {
        exchange(hook, row, TokioIo::new(tcp)).await
    }
}

async fn exchange<S>(hook: &Hook, row: &Row, io: TokioIo<S>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let timestamp = now_ms() / 1000;
    let request = hyper::Request::post(hook.path_and_query.as_str())
        .header(hyper::header::HOST, hook.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("nvr/", env!("CARGO_PKG_VERSION")),
        )
        .header("X-NVR-Timestamp", timestamp.to_string())
        .header(
            "X-NVR-Signature",
            signature(
                hook.config.secret.expose().as_bytes(),
                timestamp,
                row.body.as_bytes(),
            ),
        )
        .header("X-NVR-Delivery", row.id.as_str())
        .header("X-NVR-Event", row.event.as_str())
        .body(Full::new(Bytes::from(row.body.clone())))
        .map_err(|e| format!("HTTP request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let code = response.status();
    // Read (a bounded part of) the answer, so the receiver is not cut off mid-write.
    let _ = http_body_util::Limited::new(response.into_body(), RESPONSE_MAX)
        .collect()
        .await;
    if code.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", code.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '%s' '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac 's3cret'
        assert_eq!(
            signature(b"s3cret", 1_700_000_000, br#"{"id":"x"}"#),
            "sha256=2382c1d0968a5e57238c68de957f44d87e83d3049a5588ec251442ca372b8aec"
        );
    }

    #[test]
    fn delivery_ids_are_128_bits_of_hex_and_differ() {
        let (a, b) = (delivery_id(), delivery_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
