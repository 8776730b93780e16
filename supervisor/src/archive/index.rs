//! The recordings index: an SQLite file (`<output>/index.sqlite3`) listing every clip and motion
//! event, so they can be found without walking the disk. The files stay the truth: ids come from file
//! names (a clip's id is its file stem, an event's id the stem of its `.motion.json` sidecar), so
//! [`Index::reconcile`] can rebuild the index from the files with the same ids, and does so at every
//! start. A missing or corrupt index file is moved aside and rebuilt.

use nvr_config::layout::{parse_clip_name, PART_SUFFIX};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub const INDEX_FILE: &str = "index.sqlite3";
/// Suffix of a motion event's sidecar (its facts) and thumbnail, next to the clips of its day.
pub const EVENT_SUFFIX: &str = ".motion.json";
pub const THUMB_SUFFIX: &str = ".motion.jpg";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("recordings index {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("recordings index: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    pub id: String,
    pub camera_id: String,
    /// Wall clock of the first frame, Unix ms.
    pub start: i64,
    /// Wall clock of the end, Unix ms; `None` while recording.
    pub end: Option<i64>,
    /// Relative to the output directory.
    pub path: String,
    pub bytes: i64,
    pub codec: Option<String>,
    pub state: ClipState,
}

/// Where a clip is in its life. "Retention never deletes a file being written" rests on this: only
/// `Finished` clips are deleted or served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipState {
    /// Fsynced and renamed to its final name. Sorts first, so a clip seen both as `.part` and as
    /// finished (renamed while a scan ran) counts as finished.
    Finished,
    /// Still a `.part`: being written, or left by a crash until the next worker finishes it.
    Recording,
}

impl ClipState {
    fn as_str(self) -> &'static str {
        match self {
            ClipState::Finished => "finished",
            ClipState::Recording => "recording",
        }
    }
}

impl ToSql for ClipState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ClipState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "finished" => Ok(ClipState::Finished),
            "recording" => Ok(ClipState::Recording),
            other => Err(FromSqlError::Other(
                format!("unknown clip state {other:?}").into(),
            )),
        }
    }
}

/// A motion event's facts, as stored in its sidecar file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFacts {
    pub camera_id: String,
    /// First moving frame, Unix ms.
    pub start: i64,
    /// Last moving frame, Unix ms (`None` while the motion goes on).
    pub end: Option<i64>,
    /// Peak percentage of the watched area that changed.
    pub score: f64,
    /// The named zones a moving object touched (empty for a camera without zones).
    #[serde(default)]
    pub zones: Vec<String>,
}

/// One motion event, with the clip that covers its start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub camera_id: String,
    pub kind: &'static str,
    pub start: i64,
    pub end: Option<i64>,
    pub score: f64,
    /// The named zones a moving object touched (empty for a camera without zones).
    pub zones: Vec<String>,
    /// The API path of its thumbnail, if one was saved.
    pub thumbnail_url: Option<String>,
    pub recording_id: Option<String>,
    /// Relative to the output directory.
    #[serde(skip)]
    pub thumbnail_path: Option<String>,
}

/// What [`Index::reconcile`] changed.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Reconciled {
    pub recordings_added: usize,
    pub recordings_removed: usize,
    pub events_added: usize,
    pub events_removed: usize,
}

pub struct Index {
    conn: Connection,
    db_path: PathBuf,
    output_dir: PathBuf,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    codec TEXT,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_by_time ON recordings (camera_id, start_ms);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    score REAL NOT NULL,
    thumbnail TEXT,
    sidecar TEXT NOT NULL,
    zones TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (camera_id, start_ms);
";

impl Index {
    /// Opens (or creates) the index in `output_dir`, moving a corrupt one aside, and reconciles it
    /// with the files on disk.
    pub fn open(output_dir: &Path) -> Result<(Index, Reconciled), IndexError> {
        let db_path = output_dir.join(INDEX_FILE);
        let mut index = match Self::open_at(&db_path, output_dir) {
            Ok(i) => i,
            Err(e) => {
                let aside = db_path.with_extension(format!("corrupt-{}", unix_ms_now()));
                tracing::error!(error = %e, moved_to = %aside.display(), "recordings index unusable; rebuilding it from the files");
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", db_path.display()));
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    let _ = std::fs::rename(from, to);
                }
                Self::open_at(&db_path, output_dir)?
            }
        };
        let summary = index.reconcile()?;
        Ok((index, summary))
    }

    /// Deletes the index and builds it again from the files (`supervisor --reindex`).
    pub fn rebuild(output_dir: &Path) -> Result<(Index, Reconciled), IndexError> {
        let db_path = output_dir.join(INDEX_FILE);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
        Self::open(output_dir)
    }

    fn open_at(db_path: &Path, output_dir: &Path) -> Result<Index, IndexError> {
        let db = |source| IndexError::Db {
            path: db_path.to_path_buf(),
            source,
        };
        let conn = Connection::open(db_path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(db)?;
        if ok != "ok" {
            return Err(db(rusqlite::Error::InvalidQuery));
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        // An index made before events had zones gets the column (NULL: no zones).
        let has_zones: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'zones'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(db)?;
        if !has_zones {
            conn.execute_batch("ALTER TABLE events ADD COLUMN zones TEXT")
                .map_err(db)?;
        }
        Ok(Index {
            conn,
            db_path: db_path.to_path_buf(),
            output_dir: output_dir.to_path_buf(),
        })
    }

    /// A read-only connection for queries from another thread.
    pub fn reader(output_dir: &Path) -> Result<Index, IndexError> {
        let db_path = output_dir.join(INDEX_FILE);
        let conn = Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| IndexError::Db {
            path: db_path.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        Ok(Index {
            conn,
            db_path,
            output_dir: output_dir.to_path_buf(),
        })
    }

    fn db(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// Makes the index match the files: adds clips and events found on disk, drops rows whose
    /// files are gone, and marks clips whose `.part` was finished meanwhile.
    pub fn reconcile(&mut self) -> Result<Reconciled, IndexError> {
        let mut summary = Reconciled::default();
        let (clips, events) = scan(&self.output_dir);
        let tx = self.conn.transaction().map_err(|e| IndexError::Db {
            path: self.db_path.clone(),
            source: e,
        })?;
        {
            let db = |source| IndexError::Db {
                path: self.db_path.clone(),
                source,
            };
            let known: Vec<(String, String, ClipState)> = {
                let mut q = tx
                    .prepare("SELECT id, path, state FROM recordings")
                    .map_err(db)?;
                let rows = q
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(db)?;
                rows.collect::<Result<_, _>>().map_err(db)?
            };
            for (id, _, _) in known
                .iter()
                .filter(|(id, _, _)| !clips.iter().any(|c| &c.id == id))
            {
                tx.execute("DELETE FROM recordings WHERE id = ?1", [id])
                    .map_err(db)?;
                summary.recordings_removed += 1;
            }
            for c in &clips {
                match known.iter().find(|(id, _, _)| *id == c.id) {
                    Some((_, path, state)) if *path == c.path && *state == c.state => {}
                    Some(_) => {
                        tx.execute(
                            "UPDATE recordings SET path = ?2, state = ?3, bytes = ?4,
                             end_ms = COALESCE(end_ms, ?5) WHERE id = ?1",
                            params![c.id, c.path, c.state, c.bytes, c.end],
                        )
                        .map_err(db)?;
                    }
                    None => {
                        insert_recording(&tx, c).map_err(db)?;
                        summary.recordings_added += 1;
                    }
                }
            }
            let known_events: Vec<String> = {
                let mut q = tx.prepare("SELECT id FROM events").map_err(db)?;
                let rows = q.query_map([], |r| r.get(0)).map_err(db)?;
                rows.collect::<Result<_, _>>().map_err(db)?
            };
            for id in known_events
                .iter()
                .filter(|id| !events.iter().any(|e| &e.0 == *id))
            {
                tx.execute("DELETE FROM events WHERE id = ?1", [id])
                    .map_err(db)?;
                summary.events_removed += 1;
            }
            for (id, sidecar, thumb, facts) in &events {
                if !known_events.contains(id) {
                    insert_event(&tx, id, facts, sidecar, thumb.as_deref()).map_err(db)?;
                    summary.events_added += 1;
                }
            }
        }
        tx.commit().map_err(|e| self.db(e))?;
        Ok(summary)
    }

    /// A worker opened a clip.
    pub fn recording_started(
        &self,
        camera_id: &str,
        path: &str,
        start_ms: i64,
        codec: &str,
    ) -> Result<(), IndexError> {
        let c = Recording {
            id: stem(path),
            camera_id: camera_id.to_string(),
            start: start_ms,
            end: None,
            path: format!("{path}{PART_SUFFIX}"),
            bytes: 0,
            codec: Some(codec.to_string()),
            state: ClipState::Recording,
        };
        insert_recording(&self.conn, &c).map_err(|e| self.db(e))
    }

    /// A worker finished a clip (or recovered one a crash left). The finishing worker's start is
    /// the true one (a clip opened while the stream settled after a connect has had its first
    /// packets back-dated since it was opened) and replaces the opening start. A `recovered` clip's
    /// `start_ms` comes from its file name, to the second: the start the row already holds (from
    /// the worker that opened it) is kept, and the end follows from it.
    pub fn recording_finished(
        &self,
        camera_id: &str,
        path: &str,
        start_ms: i64,
        duration_s: f64,
        bytes: u64,
        recovered: bool,
    ) -> Result<(), IndexError> {
        let codec = sniff_codec(&self.output_dir.join(path));
        let c = Recording {
            id: stem(path),
            camera_id: camera_id.to_string(),
            start: start_ms,
            end: Some(start_ms + (duration_s * 1000.0) as i64),
            path: path.to_string(),
            bytes: bytes as i64,
            codec,
            state: ClipState::Finished,
        };
        self.conn
            .execute(
                "INSERT INTO recordings (id, camera_id, start_ms, end_ms, path, bytes, codec, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET
                   start_ms = CASE WHEN ?9 THEN recordings.start_ms ELSE ?3 END,
                   end_ms = CASE WHEN ?9 THEN recordings.start_ms + (?4 - ?3) ELSE ?4 END,
                   path = ?5, bytes = ?6,
                   codec = COALESCE(?7, codec), state = ?8",
                params![
                    c.id,
                    c.camera_id,
                    c.start,
                    c.end,
                    c.path,
                    c.bytes,
                    c.codec,
                    c.state,
                    recovered
                ],
            )
            .map(drop)
            .map_err(|e| self.db(e))
    }

    /// Records a motion event: writes its sidecar (and thumbnail, if given) next to the day's clips,
    /// and indexes it. Returns the event's id.
    pub fn motion_started(
        &self,
        facts: &EventFacts,
        thumbnail: Option<&[u8]>,
    ) -> Result<String, IndexError> {
        let unix_s = facts.start.div_euclid(1000);
        let rel = nvr_config::layout::clip_path(&facts.camera_id, unix_s, |p| {
            self.output_dir.join(event_file(p, EVENT_SUFFIX)).exists()
        });
        let sidecar = event_file(&rel, EVENT_SUFFIX);
        let id = stem(&rel.display().to_string());
        self.write_sidecar(&sidecar, facts)?;
        let thumb = match thumbnail {
            Some(jpeg) => {
                let rel = event_file(&rel, THUMB_SUFFIX);
                let path = self.output_dir.join(&rel);
                std::fs::write(&path, jpeg).map_err(|source| IndexError::Io {
                    what: "writing",
                    path,
                    source,
                })?;
                Some(rel.display().to_string())
            }
            None => None,
        };
        insert_event(
            &self.conn,
            &id,
            facts,
            &sidecar.display().to_string(),
            thumb.as_deref(),
        )
        .map_err(|e| self.db(e))?;
        Ok(id)
    }

    /// The motion event `id` ended; `zones` are every zone touched during it.
    pub fn motion_ended(
        &self,
        id: &str,
        end_ms: i64,
        peak_score: f64,
        zones: &[String],
    ) -> Result<(), IndexError> {
        let sidecar: Option<(String, String, i64)> = self
            .conn
            .query_row(
                "SELECT sidecar, camera_id, start_ms FROM events WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let Some((sidecar, camera_id, start)) = sidecar else {
            return Ok(());
        };
        let facts = EventFacts {
            camera_id,
            start,
            end: Some(end_ms),
            score: peak_score,
            zones: zones.to_vec(),
        };
        self.write_sidecar(Path::new(&sidecar), &facts)?;
        self.conn
            .execute(
                "UPDATE events SET end_ms = ?2, score = ?3, zones = ?4 WHERE id = ?1",
                params![id, end_ms, peak_score, zones_json(zones)],
            )
            .map(drop)
            .map_err(|e| self.db(e))
    }

    fn write_sidecar(&self, rel: &Path, facts: &EventFacts) -> Result<(), IndexError> {
        let path = self.output_dir.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
                what: "creating",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let json = serde_json::to_vec(facts).unwrap_or_default();
        std::fs::write(&path, json).map_err(|source| IndexError::Io {
            what: "writing",
            path,
            source,
        })
    }

    /// Clips of `camera` (all cameras if `None`) overlapping `[from, to]` (Unix ms), oldest first.
    pub fn recordings(
        &self,
        camera: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Recording>, IndexError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT id, camera_id, start_ms, end_ms, path, bytes, codec, state FROM recordings
                 WHERE (?1 IS NULL OR camera_id = ?1)
                   AND (?2 IS NULL OR COALESCE(end_ms, 9223372036854775807) >= ?2)
                   AND (?3 IS NULL OR start_ms <= ?3)
                 ORDER BY start_ms, id",
            )
            .map_err(|e| self.db(e))?;
        let rows = q
            .query_map(params![camera, from, to], row_to_recording)
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    /// Bytes of the recordings of each camera.
    pub fn bytes_by_camera(&self) -> Result<Vec<(String, u64)>, IndexError> {
        let mut q = self
            .conn
            .prepare("SELECT camera_id, SUM(bytes) FROM recordings GROUP BY camera_id ORDER BY camera_id")
            .map_err(|e| self.db(e))?;
        let rows = q
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?.max(0) as u64,
                ))
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    pub fn recording(&self, id: &str) -> Result<Option<Recording>, IndexError> {
        self.conn
            .query_row(
                "SELECT id, camera_id, start_ms, end_ms, path, bytes, codec, state FROM recordings
                 WHERE id = ?1",
                [id],
                row_to_recording,
            )
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Motion events of `camera` (all if `None`) starting within `[from, to]`, oldest first, each
    /// with the clip that covers its start.
    pub fn events(
        &self,
        camera: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Event>, IndexError> {
        self.query_events(None, camera, from, to)
    }

    pub fn event(&self, id: &str) -> Result<Option<Event>, IndexError> {
        Ok(self.query_events(Some(id), None, None, None)?.pop())
    }

    /// Events matching every filter that is given.
    fn query_events(
        &self,
        id: Option<&str>,
        camera: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Event>, IndexError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT e.id, e.camera_id, e.start_ms, e.end_ms, e.score, e.thumbnail, e.zones,
                   (SELECT r.id FROM recordings r WHERE r.camera_id = e.camera_id
                      AND r.start_ms <= e.start_ms + 1000
                      AND COALESCE(r.end_ms, 9223372036854775807) >= e.start_ms
                    ORDER BY r.start_ms DESC LIMIT 1)
                 FROM events e
                 WHERE (?1 IS NULL OR e.camera_id = ?1)
                   AND (?2 IS NULL OR e.start_ms >= ?2)
                   AND (?3 IS NULL OR e.start_ms <= ?3)
                   AND (?4 IS NULL OR e.id = ?4)
                 ORDER BY e.start_ms, e.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = q
            .query_map(params![camera, from, to, id], |r| {
                let id: String = r.get(0)?;
                let thumbnail_path: Option<String> = r.get(5)?;
                Ok(Event {
                    thumbnail_url: thumbnail_path
                        .as_ref()
                        .map(|_| format!("/api/events/{id}/thumbnail.jpg")),
                    id,
                    camera_id: r.get(1)?,
                    kind: "motion",
                    start: r.get(2)?,
                    end: r.get(3)?,
                    score: r.get(4)?,
                    zones: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|z| serde_json::from_str(&z).ok())
                        .unwrap_or_default(),
                    thumbnail_path,
                    recording_id: r.get(7)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    /// Deletes a finished clip's file and row, and the motion events (sidecars, thumbnails) that
    /// started within it. A clip being written is never deleted.
    pub fn delete_recording(&self, r: &Recording) -> Result<(), IndexError> {
        if r.state != ClipState::Finished || r.path.ends_with(PART_SUFFIX) {
            return Ok(());
        }
        let path = self.output_dir.join(&r.path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IndexError::Io {
                    what: "deleting",
                    path,
                    source,
                })
            }
        }
        let end = r.end.unwrap_or(r.start);
        let doomed: Vec<(String, String, Option<String>)> = {
            let mut q = self
                .conn
                .prepare(
                    "SELECT id, sidecar, thumbnail FROM events
                     WHERE camera_id = ?1 AND start_ms >= ?2 AND start_ms <= ?3",
                )
                .map_err(|e| self.db(e))?;
            let rows = q
                .query_map(params![r.camera_id, r.start, end], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(|e| self.db(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.db(e))?
        };
        for (id, sidecar, thumb) in doomed {
            let _ = std::fs::remove_file(self.output_dir.join(sidecar));
            if let Some(t) = thumb {
                let _ = std::fs::remove_file(self.output_dir.join(t));
            }
            self.conn
                .execute("DELETE FROM events WHERE id = ?1", [id])
                .map_err(|e| self.db(e))?;
        }
        self.conn
            .execute("DELETE FROM recordings WHERE id = ?1", [&r.id])
            .map_err(|e| self.db(e))?;
        // An emptied day directory goes too (remove_dir fails, harmlessly, if it is not empty).
        if let Some(day) = path.parent() {
            let _ = std::fs::remove_dir(day);
        }
        Ok(())
    }
}

fn row_to_recording(r: &rusqlite::Row<'_>) -> rusqlite::Result<Recording> {
    Ok(Recording {
        id: r.get(0)?,
        camera_id: r.get(1)?,
        start: r.get(2)?,
        end: r.get(3)?,
        path: r.get(4)?,
        bytes: r.get(5)?,
        codec: r.get(6)?,
        state: r.get(7)?,
    })
}

fn insert_recording(conn: &Connection, c: &Recording) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO recordings (id, camera_id, start_ms, end_ms, path, bytes, codec, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![c.id, c.camera_id, c.start, c.end, c.path, c.bytes, c.codec, c.state],
    )
    .map(drop)
}

fn insert_event(
    conn: &Connection,
    id: &str,
    f: &EventFacts,
    sidecar: &str,
    thumbnail: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO events (id, camera_id, start_ms, end_ms, score, thumbnail, sidecar, zones)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            f.camera_id,
            f.start,
            f.end,
            f.score,
            thumbnail,
            sidecar,
            zones_json(&f.zones)
        ],
    )
    .map(drop)
}

/// Zone names as stored in the index: a JSON array, or NULL for none.
fn zones_json(zones: &[String]) -> Option<String> {
    (!zones.is_empty()).then(|| serde_json::to_string(zones).unwrap_or_default())
}

/// The id of a clip or event: its file name up to the first `.`.
pub(crate) fn stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.split('.').next().unwrap_or(name).to_string()
}

/// `cam/day/cam_stamp.mp4` → `cam/day/cam_stamp<suffix>`.
fn event_file(clip_rel: &Path, suffix: &str) -> PathBuf {
    let s = clip_rel.display().to_string();
    PathBuf::from(format!("{}{suffix}", s.strip_suffix(".mp4").unwrap_or(&s)))
}

fn unix_ms_now() -> i64 {
    (nvr_proto::unix_ns() / 1_000_000) as i64
}

fn unix_ms_of(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The video codec of an MP4 from its sample entry (the `moov` is at the start of our files).
fn sniff_codec(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let has = |tag: &[u8]| head.windows(4).any(|w| w == tag);
    if has(b"avc1") {
        Some("h264".into())
    } else if has(b"hvc1") || has(b"hev1") {
        Some("hevc".into())
    } else {
        None
    }
}

/// What is on disk: clips (finished `.mp4` and `.part` being written) and event sidecars
/// `(id, sidecar path, thumbnail path, facts)`.
type Scanned = (
    Vec<Recording>,
    Vec<(String, String, Option<String>, EventFacts)>,
);

fn scan(output_dir: &Path) -> Scanned {
    let (mut clips, mut events) = (Vec::new(), Vec::new());
    let dirs = |p: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    for camera_dir in dirs(output_dir).into_iter().filter(|p| p.is_dir()) {
        let camera_id = camera_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for day in dirs(&camera_dir).into_iter().filter(|p| p.is_dir()) {
            for file in dirs(&day) {
                let Ok(rel) = file.strip_prefix(output_dir) else {
                    continue;
                };
                let rel_s = rel.display().to_string();
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let meta = std::fs::metadata(&file).ok();
                let clip_name = name.strip_suffix(PART_SUFFIX).unwrap_or(&name);
                if let Some((cam, start_s)) = parse_clip_name(clip_name) {
                    if cam != camera_id {
                        continue;
                    }
                    let finished = !name.ends_with(PART_SUFFIX);
                    clips.push(Recording {
                        id: stem(&rel_s),
                        camera_id: camera_id.clone(),
                        start: start_s * 1000,
                        end: finished
                            .then(|| {
                                meta.as_ref()
                                    .and_then(|m| m.modified().ok())
                                    .map(unix_ms_of)
                            })
                            .flatten(),
                        path: rel_s,
                        bytes: meta.as_ref().map_or(0, |m| m.len() as i64),
                        codec: sniff_codec(&file),
                        state: if finished {
                            ClipState::Finished
                        } else {
                            ClipState::Recording
                        },
                    });
                } else if name.ends_with(EVENT_SUFFIX) {
                    let Some(facts) = std::fs::read(&file)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<EventFacts>(&b).ok())
                    else {
                        tracing::warn!(path = %file.display(), "unreadable motion event sidecar; skipped");
                        continue;
                    };
                    let thumb = rel_s.replace(EVENT_SUFFIX, THUMB_SUFFIX);
                    let thumb = output_dir.join(&thumb).exists().then_some(thumb);
                    events.push((stem(&rel_s), rel_s, thumb, facts));
                }
            }
        }
    }
    // A clip present both as .part and .mp4 (renamed while scanning) counts once, finished.
    clips.sort_by(|a, b| a.id.cmp(&b.id).then(a.state.cmp(&b.state)));
    clips.dedup_by(|later, first| later.id == first.id);
    (clips, events)
}

#[cfg(test)]
mod tests;
