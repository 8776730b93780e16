//! Live preview: the supervisor attaches to each camera's shared-memory frame ring as a reader and
//! serves JPEG snapshots and MJPEG streams.
//!
//! One encoder thread per camera runs only while someone watches, encodes each shown frame once for
//! all viewers (at the highest rate any viewer asked for), and publishes it on a `watch` channel.
//! Nothing is encoded when nobody watches. Readers never block the camera's worker (the ring is
//! lock-free), so a slow viewer costs only its own frames.

use shm_bus::{Reader, Wait};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Default MJPEG rate; a viewer may ask for up to [`MAX_FPS`].
pub const DEFAULT_FPS: f64 = 5.0;
pub const MAX_FPS: f64 = 30.0;

/// A JPEG-encoded frame.
#[derive(Debug, Clone)]
pub struct Picture {
    pub jpeg: Arc<Vec<u8>>,
    pub seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("camera {camera}'s frames are not available: {detail}")]
    Unavailable { camera: String, detail: String },
}

/// One camera's encoder and its viewers.
struct Feed {
    tx: watch::Sender<Option<Picture>>,
    /// Frame rate each current viewer asked for, by viewer id.
    viewers: Mutex<HashMap<u64, f64>>,
    running: Mutex<bool>,
}

/// All cameras' feeds.
#[derive(Default)]
pub struct PreviewHub {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    next_viewer: AtomicU64,
}

/// A viewer's subscription; dropping it tells the encoder one viewer fewer.
pub struct Subscription {
    pub rx: watch::Receiver<Option<Picture>>,
    pub fps: f64,
    feed: Arc<Feed>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut v) = self.feed.viewers.lock() {
            v.remove(&self.id);
        }
    }
}

impl PreviewHub {
    fn feed(&self, camera: &str) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().expect("preview hub lock");
        Arc::clone(feeds.entry(camera.to_string()).or_insert_with(|| {
            Arc::new(Feed {
                tx: watch::channel(None).0,
                viewers: Mutex::default(),
                running: Mutex::new(false),
            })
        }))
    }

    /// Starts watching `camera` at `fps` (clamped to 0.2..=30, NaN is the default); starts its
    /// encoder if needed.
    pub fn subscribe(&self, camera: &str, fps: f64) -> Subscription {
        // `clamp` passes NaN through (`?fps=NaN`), and a NaN period panics in `Duration`.
        let fps = if fps.is_nan() {
            DEFAULT_FPS
        } else {
            fps.clamp(0.2, MAX_FPS)
        };
        let feed = self.feed(camera);
        let id = self.next_viewer.fetch_add(1, Ordering::Relaxed);
        feed.viewers.lock().expect("viewers lock").insert(id, fps);
        let mut running = feed.running.lock().expect("running lock");
        if !*running {
            *running = true;
            let (feed2, camera) = (Arc::clone(&feed), camera.to_string());
            std::thread::Builder::new()
                .name(format!("preview-{camera}"))
                .spawn(move || encode_while_watched(&camera, &feed2))
                .expect("spawn preview thread");
        }
        drop(running);
        Subscription {
            rx: feed.tx.subscribe(),
            fps,
            feed,
            id,
        }
    }

    /// One JPEG of `camera`'s newest frame: the live feed's if one is running, else encoded now.
    pub fn snapshot(&self, camera: &str) -> Result<Picture, PreviewError> {
        if let Some(p) = self.feed(camera).tx.borrow().clone() {
            return Ok(p);
        }
        let unavailable = |detail: String| PreviewError::Unavailable {
            camera: camera.to_string(),
            detail,
        };
        let mut reader = Reader::attach(camera).map_err(|e| unavailable(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Some(p) = encode_latest(&mut reader).map_err(unavailable)? {
                return Ok(p);
            }
            let _ = reader.wait_next(Duration::from_millis(200));
        }
        Err(unavailable("no intact frame within 3 s".into()))
    }
}

/// Encodes the newest frame, or `None` when there is none yet or it was overwritten while read.
fn encode_latest(reader: &mut Reader) -> Result<Option<Picture>, String> {
    match reader.read_latest(|f| nvr_preview::jpeg(f, nvr_preview::QUALITY)) {
        Ok(Some((meta, Ok(jpeg)))) => Ok(Some(Picture {
            jpeg: Arc::new(jpeg),
            seq: meta.seq,
        })),
        Ok(Some((_, Err(e)))) => Err(e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The encoder loop of one camera: runs while anyone watches, at the highest requested rate.
fn encode_while_watched(camera: &str, feed: &Feed) {
    let mut reader: Option<Reader> = None;
    let mut last_seq = None;
    loop {
        let fps = {
            let viewers = feed.viewers.lock().expect("viewers lock");
            let mut running = feed.running.lock().expect("running lock");
            if viewers.is_empty() {
                *running = false;
                let _ = feed.tx.send(None);
                return;
            }
            viewers.values().copied().fold(0.0, f64::max)
        };
        let started = Instant::now();
        let r = match &mut reader {
            Some(r) => r,
            None => match Reader::attach(camera) {
                Ok(r) => reader.insert(r),
                Err(_) => {
                    // The worker may be (re)starting; try again shortly.
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            },
        };
        match r.wait_next(Duration::from_secs(2)) {
            Ok(Wait::Frame(_)) => match encode_latest(r) {
                Ok(Some(p)) if last_seq != Some(p.seq) => {
                    last_seq = Some(p.seq);
                    let _ = feed.tx.send(Some(p));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(camera_id = camera, error = %e, "preview encode failed");
                    reader = None;
                }
            },
            Ok(Wait::Timeout) => {}
            // A restarted worker or a new resolution: attach again by name.
            Ok(Wait::GenerationChanged) | Err(_) => reader = None,
        }
        let period = Duration::from_secs_f64(1.0 / fps);
        if let Some(rest) = period.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}
