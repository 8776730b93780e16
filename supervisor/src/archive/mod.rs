//! The archive thread: the one writer of the recordings index. It takes the workers' recording and
//! motion events from the manager (so index writes never hold up the manager or a worker), saves a
//! thumbnail of the live frame for each motion event, and runs retention every
//! `retention.check_every_s` and at once when a worker reports a full disk.
//!
//! Its parts: [`index`] (the SQLite index, a cache of the files) and `retention` (which clips to
//! delete, pure).

pub mod index;
mod retention;

use crate::notify::{EventMessage, EventType, Note, Notifier, RecordingNote};
use crate::preview::PreviewHub;
use index::{ClipState, EventFacts, Index, Recording, EVENT_SUFFIX, THUMB_SUFFIX};
use nvr_config::{Config, RetentionConfig};
use nvr_proto::{MotionStart, RecordingFinished, RecordingStarted};
use retention::{Clip, Limits};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

pub enum ArchiveOp {
    /// The retention settings (at start and after every reload).
    Settings {
        limits: HashMap<String, Limits>,
        retention: RetentionConfig,
    },
    RecordingStarted {
        camera_id: String,
        r: RecordingStarted,
    },
    RecordingFinished {
        camera_id: String,
        r: RecordingFinished,
    },
    MotionStart {
        camera_id: String,
        m: MotionStart,
    },
    MotionEnd {
        camera_id: String,
        duration_s: f64,
        peak_score: f64,
        zones: Vec<String>,
    },
    /// A worker could not write: make room now.
    DiskFull,
}

pub type Archive = Sender<ArchiveOp>;

/// (camera, reason) → (files, bytes) deleted by retention.
pub type Deleted = std::collections::BTreeMap<(String, &'static str), (u64, u64)>;

/// Recordings retention deleted since the start, for `/metrics`.
pub static RETENTION_DELETED: std::sync::Mutex<Deleted> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The retention settings of a config.
pub fn settings(config: &Config) -> ArchiveOp {
    ArchiveOp::Settings {
        limits: config
            .cameras
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    Limits {
                        keep_days: c.recording.keep_days,
                        max_gb: c.recording.max_gb,
                    },
                )
            })
            .collect(),
        retention: config.retention.clone(),
    }
}

/// Starts the archive thread on an opened index. Motion events, once indexed, go to `notifier`
/// with their ids.
pub fn spawn(
    index: Index,
    preview: Arc<PreviewHub>,
    notifier: Notifier,
) -> std::io::Result<Archive> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("archive".into())
        .spawn(move || run(index, preview, notifier, rx))?;
    Ok(tx)
}

/// First wait before retrying a failed index write; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Index writes kept for retry at most; beyond it the oldest is dropped (and logged). At a few
/// events a minute per camera this is hours of a broken disk.
const PENDING_MAX: usize = 100_000;

/// Index writes that failed (out of descriptors, a full or read-only disk) and wait to be tried
/// again, in arrival order: a later write of the same camera (a motion end) never overtakes an
/// earlier one (its start).
struct Pending {
    ops: VecDeque<ArchiveOp>,
    next_try: Instant,
    delay: Duration,
}

impl Pending {
    fn due(&self) -> Option<Instant> {
        (!self.ops.is_empty()).then_some(self.next_try)
    }
}

fn run(index: Index, preview: Arc<PreviewHub>, notifier: Notifier, rx: Receiver<ArchiveOp>) {
    let mut limits = HashMap::new();
    let mut retention = RetentionConfig::default();
    // The open motion event of each camera.
    let mut open_events: HashMap<String, (String, i64)> = HashMap::new();
    let mut pending = Pending {
        ops: VecDeque::new(),
        next_try: Instant::now(),
        delay: RETRY_FIRST,
    };
    let mut next_check = Instant::now();
    loop {
        let wake = pending.due().map_or(next_check, |t| t.min(next_check));
        let timeout = wake.saturating_duration_since(Instant::now());
        let op = match rx.recv_timeout(timeout) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        match op {
            None if Instant::now() >= next_check => {
                enforce(&index, &limits, &retention);
                next_check = Instant::now() + Duration::from_secs_f64(retention.check_every_s);
            }
            None => {}
            Some(ArchiveOp::Settings {
                limits: l,
                retention: r,
            }) => {
                limits = l;
                retention = r;
                next_check = Instant::now();
            }
            Some(ArchiveOp::DiskFull) => {
                enforce(&index, &limits, &retention);
                // Room was made: try the waiting writes at once.
                pending.next_try = Instant::now();
            }
            Some(op) => {
                if pending.ops.len() >= PENDING_MAX {
                    error!(
                        waiting = pending.ops.len(),
                        "recordings index: too many writes waiting; dropping the oldest"
                    );
                    pending.ops.pop_front();
                }
                pending.ops.push_back(op);
                if pending.ops.len() == 1 {
                    pending.next_try = Instant::now();
                }
            }
        }
        // Write what is due, oldest first; stop at the first failure and retry later.
        if pending.due().is_some_and(|t| t <= Instant::now()) {
            while let Some(op) = pending.ops.front() {
                match write(&index, &preview, &notifier, &mut open_events, op) {
                    Ok(()) => {
                        let was_retry = pending.delay > RETRY_FIRST || pending.ops.len() > 1;
                        pending.ops.pop_front();
                        if was_retry && pending.ops.is_empty() {
                            info!("recordings index: the waiting writes are done");
                        }
                        pending.delay = RETRY_FIRST;
                    }
                    Err(e) if !transient(&e) => {
                        error!(error = %e, what = op.what(), "recordings index: cannot record {}; giving it up", op.what());
                        pending.ops.pop_front();
                    }
                    Err(e) => {
                        error!(
                            error = %e,
                            what = op.what(),
                            waiting = pending.ops.len(),
                            retry_in_s = pending.delay.as_secs_f64(),
                            "recordings index: cannot record {}; will retry",
                            op.what()
                        );
                        pending.next_try = Instant::now() + pending.delay;
                        pending.delay = (pending.delay * 2).min(RETRY_MAX);
                        break;
                    }
                }
            }
        }
    }
}

/// Whether an index error may clear by itself: a file error that says the system ran short (out of
/// descriptors or memory, a full, read-only or failing disk), and SQLite's own I/O, space, lock and
/// memory errors. Anything else (a permission, a broken constraint) would fail forever, and
/// retrying it would hold every later write of every camera behind it.
fn transient(e: &index::IndexError) -> bool {
    use rusqlite::ErrorCode as C;
    // EIO, ENOMEM, ENFILE, EMFILE, ENOSPC, EROFS, EDQUOT (Linux).
    const SHORT_OF_SOMETHING: [i32; 7] = [5, 12, 23, 24, 28, 30, 122];
    match e {
        index::IndexError::Io { source, .. } => source
            .raw_os_error()
            .is_some_and(|errno| SHORT_OF_SOMETHING.contains(&errno)),
        index::IndexError::Db { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(
                C::DiskFull
                    | C::CannotOpen
                    | C::SystemIoFailure
                    | C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::OutOfMemory
                    | C::ReadOnly
            )
        ),
    }
}

impl ArchiveOp {
    /// What the op records, for log lines.
    fn what(&self) -> &'static str {
        match self {
            ArchiveOp::Settings { .. } => "settings",
            ArchiveOp::RecordingStarted { .. } => "a clip's start",
            ArchiveOp::RecordingFinished { .. } => "a finished clip",
            ArchiveOp::MotionStart { .. } => "a motion event",
            ArchiveOp::MotionEnd { .. } => "a motion event's end",
            ArchiveOp::DiskFull => "a full disk",
        }
    }
}

/// Writes one worker event to the index. An error leaves nothing behind that a retry would
/// duplicate.
fn write(
    index: &Index,
    preview: &PreviewHub,
    notifier: &Notifier,
    open_events: &mut HashMap<String, (String, i64)>,
    op: &ArchiveOp,
) -> Result<(), index::IndexError> {
    match op {
        ArchiveOp::Settings { .. } | ArchiveOp::DiskFull => Ok(()),
        ArchiveOp::RecordingStarted {
            camera_id,
            r: RecordingStarted { path, .. },
        }
        | ArchiveOp::RecordingFinished {
            camera_id,
            r: RecordingFinished { path, .. },
        } if !nvr_config::layout::is_clip_path_of(camera_id, path) => {
            error!(
                camera_id,
                path, "ignoring a clip path that is not this camera's"
            );
            Ok(())
        }
        ArchiveOp::RecordingStarted { camera_id, r } => {
            index.recording_started(camera_id, &r.path, r.start_unix_ms as i64, &r.codec)
        }
        ArchiveOp::RecordingFinished { camera_id, r } => {
            index.recording_finished(
                camera_id,
                &r.path,
                r.start_unix_ms as i64,
                r.duration_s,
                r.bytes,
                r.recovered,
            )?;
            if notifier.enabled() {
                let id = index::stem(&r.path);
                notifier.send(Note::RecordingFinished(RecordingNote {
                    file_url: format!("/api/recordings/{id}/file"),
                    recording_id: id,
                    camera: camera_id.clone(),
                    start: r.start_unix_ms as i64,
                    end: r.start_unix_ms as i64 + (r.duration_s * 1000.0) as i64,
                    bytes: r.bytes,
                }));
            }
            Ok(())
        }
        ArchiveOp::MotionStart { camera_id, m } => {
            // The thumbnail is the live frame now, a few frames after the onset (or, on a retry,
            // when the error cleared).
            let thumb = preview.snapshot(camera_id).ok();
            let facts = EventFacts {
                camera_id: camera_id.clone(),
                start: m.wall_unix_ms as i64,
                end: None,
                score: m.score,
                zones: m.zones.clone(),
            };
            match index.motion_started(&facts, thumb.as_ref().map(|p| p.jpeg.as_slice())) {
                Ok(id) => {
                    if notifier.enabled() {
                        notify(
                            index,
                            notifier,
                            &id,
                            EventType::New,
                            thumb.map(|p| p.jpeg.to_vec()),
                        );
                    }
                    open_events.insert(camera_id.clone(), (id, facts.start));
                    Ok(())
                }
                Err(e) => {
                    remove_leftovers(index, &facts);
                    Err(e)
                }
            }
        }
        ArchiveOp::MotionEnd {
            camera_id,
            duration_s,
            peak_score,
            zones,
        } => match open_events.get(camera_id) {
            Some((id, start)) => {
                let end = start + (duration_s * 1000.0) as i64;
                index.motion_ended(id, end, *peak_score, zones)?;
                if notifier.enabled() {
                    notify(index, notifier, id, EventType::End, None);
                }
                open_events.remove(camera_id);
                Ok(())
            }
            None => Ok(()),
        },
    }
}

/// Hands an indexed event to the notifier, as `/api/events` shows it.
fn notify(
    index: &Index,
    notifier: &Notifier,
    id: &str,
    message: EventType,
    snapshot: Option<Vec<u8>>,
) {
    match index.event(id) {
        Ok(Some(e)) => notifier.send(Note::Event {
            event: EventMessage::of(&e, message),
            snapshot,
        }),
        Ok(None) => warn!(id, "notify: an event just indexed is not in the index"),
        Err(e) => warn!(id, error = %e, "notify: cannot read an event back from the index"),
    }
}

/// Removes the sidecar and thumbnail a failed `motion_started` of `facts` may have written (the
/// last name of its second that the index does not know), so its retry leaves one event, not two.
fn remove_leftovers(index: &Index, facts: &EventFacts) {
    let dir = index.output_dir();
    let sidecar = |clip: &Path| {
        let s = clip.display().to_string();
        let stem = s.strip_suffix(".mp4").unwrap_or(&s).to_string();
        (
            PathBuf::from(format!("{stem}{EVENT_SUFFIX}")),
            PathBuf::from(format!("{stem}{THUMB_SUFFIX}")),
            stem.rsplit('/').next().unwrap_or_default().to_string(),
        )
    };
    // `motion_started` takes the first name of the second whose sidecar does not exist, so what a
    // failed attempt left is the last name whose sidecar does.
    let existing = std::cell::RefCell::new(Vec::new());
    nvr_config::layout::clip_path(&facts.camera_id, facts.start.div_euclid(1000), |p| {
        let exists = dir.join(sidecar(p).0).exists();
        if exists {
            existing.borrow_mut().push(p.to_path_buf());
        }
        exists
    });
    let Some(clip) = existing.into_inner().pop() else {
        return;
    };
    let (side, thumb, id) = sidecar(&clip);
    let ours = std::fs::read(dir.join(&side))
        .ok()
        .and_then(|b| serde_json::from_slice::<EventFacts>(&b).ok())
        .is_none_or(|f| f == *facts);
    // The index may be as unreachable as the files were: only an event it surely holds stays.
    if ours && !matches!(index.event(&id), Ok(Some(_))) {
        let _ = std::fs::remove_file(dir.join(&side));
        let _ = std::fs::remove_file(dir.join(&thumb));
    }
}

/// Deletes what the retention policy says must go.
fn enforce(index: &Index, limits: &HashMap<String, Limits>, retention: &RetentionConfig) {
    let finished: Vec<Recording> = match index.recordings(None, None, None) {
        Ok(all) => all
            .into_iter()
            .filter(|r| r.state == ClipState::Finished)
            .collect(),
        Err(e) => {
            error!(error = %e, "retention: cannot list recordings");
            return;
        }
    };
    let clips: Vec<Clip> = finished
        .iter()
        .map(|r| Clip {
            id: r.id.clone(),
            camera_id: r.camera_id.clone(),
            start: r.start,
            end: r.end.unwrap_or(r.start),
            bytes: r.bytes.max(0) as u64,
        })
        .collect();
    let (free, total) = match free_space(index.output_dir()) {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "retention: cannot read free space; only age and size limits apply");
            (u64::MAX / 2, u64::MAX / 2)
        }
    };
    let need = ((retention.min_free_gb * 1e9) as u64)
        .max((total as f64 * retention.min_free_percent / 100.0) as u64);
    let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
    for (id, reason) in retention::plan(&clips, limits, now_ms, free, need) {
        let Some(r) = finished.iter().find(|r| r.id == id) else {
            continue;
        };
        match index.delete_recording(r) {
            Ok(()) => {
                info!(camera_id = %r.camera_id, path = %r.path, bytes = r.bytes, reason = reason.as_str(), "retention: deleted a recording");
                if let Ok(mut deleted) = RETENTION_DELETED.lock() {
                    let entry = deleted
                        .entry((r.camera_id.clone(), reason.as_str()))
                        .or_default();
                    entry.0 += 1;
                    entry.1 += r.bytes.max(0) as u64;
                }
            }
            Err(e) => error!(error = %e, "retention: cannot delete a recording"),
        }
    }
}

/// (free bytes available to us, total bytes) of the file system holding `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(dir)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}
