//! The metrics history: an SQLite file of its own (`<output_dir>/metrics.sqlite3`, never the
//! recordings index), with three resolutions: raw samples, 1-minute and 1-hour rollups, each kept
//! for its configured time. Rollups and pruning run in bounded batches, so no pass holds the file
//! for long. Every function takes the time as an argument: the tests drive a fake clock.
//!
//! A value is a gauge (rolled up as its average) or a counter since the supervisor started (rolled
//! up as its largest value); see [`Series`].

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const METRICS_FILE: &str = "metrics.sqlite3";

/// A condition that makes SQLite walk the `(series, t)` key once per series for a range of `t`,
/// instead of scanning the whole table (there is no index on `t` alone, to keep rows small).
const BY_SERIES: &str = "series IN (SELECT id FROM series)";

/// Most points a query answers per series without a `step`: a day of raw samples at the default
/// 10 s (8640) and a week of minutes (10080) fit.
pub const MAX_POINTS: i64 = 11_000;

/// Rows a prune or rollup pass touches at most per table.
pub const BATCH_ROWS: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metrics store {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("metrics store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// The file is not an SQLite database, or is damaged: it is set aside.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            StoreError::Db {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    }

    /// The disk (or the file's quota) is full: sampling pauses.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => e.code == rusqlite::ErrorCode::DiskFull,
            StoreError::Io { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// What a series' rollup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// A level (CPU, memory, fps): the average.
    Gauge,
    /// A running total since the supervisor started (restarts, reconnects): the largest value.
    Counter,
}

/// A series the history keeps: its name in the API, and how it rolls up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub name: &'static str,
    pub agg: Agg,
    /// A camera's series (else the system's, stored under camera "").
    pub per_camera: bool,
    pub help: &'static str,
}

const fn s(name: &'static str, agg: Agg, per_camera: bool, help: &'static str) -> Series {
    Series {
        name,
        agg,
        per_camera,
        help,
    }
}

/// Every series, per camera then system.
pub const SERIES: [Series; 20] = [
    s("cpu", Agg::Gauge, true, "worker CPU, 0-1 of one core"),
    s("rss", Agg::Gauge, true, "worker resident memory, bytes"),
    s("pss", Agg::Gauge, true, "worker proportional memory, bytes"),
    s("fps_sub", Agg::Gauge, true, "SUB frames per second"),
    s(
        "fps_main",
        Agg::Gauge,
        true,
        "MAIN video packets per second",
    ),
    s(
        "bitrate_sub",
        Agg::Gauge,
        true,
        "SUB bitrate, bits per second",
    ),
    s(
        "bitrate_main",
        Agg::Gauge,
        true,
        "MAIN bitrate, bits per second",
    ),
    s(
        "reconnects",
        Agg::Counter,
        true,
        "stream reconnects since the supervisor started",
    ),
    s(
        "restarts",
        Agg::Counter,
        true,
        "worker restarts since the supervisor started",
    ),
    s(
        "motion_events",
        Agg::Counter,
        true,
        "motion events since the supervisor started",
    ),
    s(
        "recorded_bytes",
        Agg::Counter,
        true,
        "bytes of finished recordings since the supervisor started",
    ),
    s(
        "heartbeat_latency",
        Agg::Gauge,
        true,
        "last heartbeat latency, seconds",
    ),
    s(
        "stored_bytes",
        Agg::Gauge,
        true,
        "bytes of the camera's recordings on disk",
    ),
    s(
        "up",
        Agg::Gauge,
        true,
        "1 while the worker runs and its streams are up",
    ),
    s("cpu", Agg::Gauge, false, "supervisor CPU, 0-1 of one core"),
    s(
        "rss",
        Agg::Gauge,
        false,
        "supervisor resident memory, bytes",
    ),
    s(
        "disk_free",
        Agg::Gauge,
        false,
        "free bytes on the output file system",
    ),
    s("disk_used", Agg::Gauge, false, "bytes of all recordings"),
    s(
        "disk_size",
        Agg::Gauge,
        false,
        "size of the output file system, bytes",
    ),
    s("load1", Agg::Gauge, false, "1-minute load average"),
];

/// The series called `name` for a camera (`per_camera`) or the system.
pub fn series(name: &str, per_camera: bool) -> Option<Series> {
    SERIES
        .iter()
        .copied()
        .find(|s| s.name == name && s.per_camera == per_camera)
}

/// How long each resolution is kept, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keep {
    pub raw_s: i64,
    pub minute_s: i64,
    pub hour_s: i64,
}

impl From<&nvr_config::MetricsConfig> for Keep {
    fn from(c: &nvr_config::MetricsConfig) -> Self {
        Keep {
            raw_s: c.keep_raw_s as i64,
            minute_s: c.keep_minute_s as i64,
            hour_s: c.keep_hour_s as i64,
        }
    }
}

/// A resolution of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    fn table(self) -> &'static str {
        match self {
            Resolution::Raw => "raw",
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.table()
    }

    /// Seconds per row (raw: the sampling period).
    pub fn seconds(self, sample_every_s: i64) -> i64 {
        match self {
            Resolution::Raw => sample_every_s.max(1),
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
}

/// A restart (or another event worth a marker on the charts).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Marker {
    /// Unix ms.
    pub t: i64,
    pub kind: String,
    /// The restart's reason (`exit`, `signal`, `hung`, ...; see `RestartReason`).
    pub reason: String,
    pub detail: String,
}

/// One sample: (camera or "" for the system, series name, value).
pub type Sample<'a> = (&'a str, &'static str, f64);

/// The answer to a history query: one time column, one value column per series (`None` where
/// there was no sample).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Columns {
    /// Unix ms of each bucket's start.
    pub t: Vec<i64>,
    pub series: BTreeMap<String, Vec<Option<f64>>>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Series ids by (camera, name).
    ids: BTreeMap<(String, String), i64>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (camera, name)
);
CREATE TABLE IF NOT EXISTS raw (
    series INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minute (
    series INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hour (
    series INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS markers (
    camera TEXT NOT NULL, t_ms INTEGER NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS markers_by_time ON markers (camera, t_ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

impl Store {
    /// Opens (or creates) the store in `output_dir`. A file that cannot be opened or fails its
    /// integrity check is renamed `metrics.sqlite3.broken-<unix s>` and a new one started; the
    /// returned note says so (for a warning).
    pub fn open(output_dir: &Path) -> Result<(Store, Option<String>), StoreError> {
        let path = output_dir.join(METRICS_FILE);
        let existed = path.exists();
        match Self::open_at(&path) {
            Ok(s) if existed => Ok((s, None)),
            Ok(s) => Ok((
                s,
                Some(format!("{} was missing; started afresh", path.display())),
            )),
            // Only a damaged file is set aside: a full disk or a permission problem leaves the
            // history where it is, to be opened again later.
            Err(e) if !e.is_corrupt() => Err(e),
            Err(e) => {
                let aside = output_dir.join(format!(
                    "{METRICS_FILE}.broken-{}",
                    nvr_proto::unix_ns() / 1_000_000_000
                ));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                        std::fs::rename(&from, &to).map_err(|source| StoreError::Io {
                            path: from.clone(),
                            source,
                        })?;
                    }
                }
                let store = Self::open_at(&path)?;
                Ok((
                    store,
                    Some(format!(
                        "{e}; set aside as {} and started afresh",
                        aside.display()
                    )),
                ))
            }
        }
    }

    fn open_at(path: &Path) -> Result<Store, StoreError> {
        let db = |source| StoreError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(db)?;
        if check != "ok" {
            return Err(db(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            )));
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            ids: BTreeMap::new(),
        };
        store.load_series()?;
        Ok(store)
    }

    /// A read-only connection for queries from another thread.
    pub fn reader(output_dir: &Path) -> Result<Store, StoreError> {
        let path = output_dir.join(METRICS_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Db {
            path: path.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        let mut store = Store {
            conn,
            path,
            ids: BTreeMap::new(),
        };
        store.load_series()?;
        Ok(store)
    }

    /// Reads the ids of the series already in the file.
    fn load_series(&mut self) -> Result<(), StoreError> {
        let rows: Vec<(i64, String, String)> = {
            let mut q = self
                .conn
                .prepare("SELECT id, camera, name FROM series")
                .map_err(|e| self.db(e))?;
            let rows = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| self.db(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.db(e))?
        };
        for (id, camera, name) in rows {
            self.ids.insert((camera, name), id);
        }
        Ok(())
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn series_id(&mut self, camera: &str, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.ids.get(&(camera.to_string(), name.to_string())) {
            return Ok(*id);
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO series (camera, name) VALUES (?1, ?2)",
                params![camera, name],
            )
            .map_err(|e| self.db(e))?;
        let id: i64 = self
            .conn
            .query_row(
                "SELECT id FROM series WHERE camera = ?1 AND name = ?2",
                params![camera, name],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        self.ids.insert((camera.to_string(), name.to_string()), id);
        Ok(id)
    }

    /// Stores the samples taken at `t_s` (Unix s) and any markers, in one transaction.
    pub fn insert(
        &mut self,
        t_s: i64,
        samples: &[Sample<'_>],
        markers: &[(String, Marker)],
    ) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(samples.len());
        for (camera, name, v) in samples {
            if v.is_finite() {
                ids.push((self.series_id(camera, name)?, *v));
            }
        }
        let tx = self.conn.transaction().map_err(|e| StoreError::Db {
            path: self.path.clone(),
            source: e,
        })?;
        {
            let mut q = tx
                .prepare_cached("INSERT OR REPLACE INTO raw (series, t, v) VALUES (?1, ?2, ?3)")
                .map_err(|e| StoreError::Db {
                    path: self.path.clone(),
                    source: e,
                })?;
            for (id, v) in ids {
                q.execute(params![id, t_s, v]).map_err(|e| StoreError::Db {
                    path: self.path.clone(),
                    source: e,
                })?;
            }
            for (camera, m) in markers {
                tx.execute(
                    "INSERT INTO markers (camera, t_ms, kind, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![camera, m.t, m.kind, m.reason, m.detail],
                )
                .map_err(|e| StoreError::Db {
                    path: self.path.clone(),
                    source: e,
                })?;
            }
        }
        tx.commit().map_err(|e| self.db(e))
    }

    /// Records the sampling period and keep times, so a reader (the API) chooses resolutions
    /// the way the writer keeps them.
    pub fn set_settings(&self, c: &nvr_config::MetricsConfig) -> Result<(), StoreError> {
        self.set_meta(
            "sample_every_ms",
            (c.sample_every_s * 1000.0).round() as i64,
        )?;
        let keep = Keep::from(c);
        self.set_meta("keep_raw_s", keep.raw_s)?;
        self.set_meta("keep_minute_s", keep.minute_s)?;
        self.set_meta("keep_hour_s", keep.hour_s)
    }

    /// The settings [`Store::set_settings`] recorded (the defaults where none are):
    /// (sample period in seconds, keep times).
    pub fn settings(&self) -> Result<(i64, Keep), StoreError> {
        let d = nvr_config::MetricsConfig::default();
        let dk = Keep::from(&d);
        let every_ms = self.meta("sample_every_ms")?.unwrap_or(10_000);
        Ok((
            (every_ms / 1000).max(1),
            Keep {
                raw_s: self.meta("keep_raw_s")?.unwrap_or(dk.raw_s),
                minute_s: self.meta("keep_minute_s")?.unwrap_or(dk.minute_s),
                hour_s: self.meta("keep_hour_s")?.unwrap_or(dk.hour_s),
            },
        ))
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.db(e))
    }

    fn set_meta(&self, key: &str, value: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// Rolls up the finished minutes and hours before `now_s` (at most [`BATCH_ROWS`]-ish rows of
    /// source per call; call again until it returns false), then prunes what is past its keep
    /// time, also in batches. Returns whether work is left.
    pub fn maintain(&mut self, now_s: i64, keep: Keep) -> Result<bool, StoreError> {
        let mut more = false;
        more |= self.roll_up(now_s, "raw", "minute", 60, "minute_done")?;
        more |= self.roll_up(now_s, "minute", "hour", 3600, "hour_done")?;
        for (table, keep_s, row_s, every_s) in [
            ("raw", keep.raw_s, 1, 60),
            ("minute", keep.minute_s, 60, 3600),
            ("hour", keep.hour_s, 3600, 3600),
        ] {
            more |= self.prune(table, now_s - keep_s, row_s, every_s)?;
        }
        Ok(more)
    }

    /// Rolls `from` rows into `to` buckets of `width` seconds, for buckets that ended by `now_s`
    /// and start at or after the watermark `key`.
    fn roll_up(
        &mut self,
        now_s: i64,
        from: &str,
        to: &str,
        width: i64,
        key: &str,
    ) -> Result<bool, StoreError> {
        let mut end = now_s.div_euclid(width) * width;
        if from == "minute" {
            // Hours roll up only minutes that are themselves complete.
            let minutes_done = self.meta("minute_done")?.unwrap_or(i64::MIN);
            end = end.min(minutes_done.div_euclid(width) * width);
        }
        let start = match self.meta(key)? {
            // Skip a gap (the supervisor was stopped): start at the next source row.
            Some(t) => {
                let next: Option<i64> = self
                    .conn
                    .query_row(
                        &format!("SELECT MIN(t) FROM {from} WHERE {BY_SERIES} AND t >= ?1"),
                        [t],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.db(e))?;
                match next {
                    Some(n) => t.max(n.div_euclid(width) * width),
                    None => {
                        if end > t {
                            self.set_meta(key, end)?;
                        }
                        return Ok(false);
                    }
                }
            }
            None => {
                // The first rollup starts at the oldest row there is.
                let oldest: Option<i64> = self
                    .conn
                    .query_row(
                        &format!("SELECT MIN(t) FROM {from} WHERE {BY_SERIES}"),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.db(e))?;
                match oldest {
                    Some(t) => t.div_euclid(width) * width,
                    None => {
                        self.set_meta(key, end)?;
                        return Ok(false);
                    }
                }
            }
        };
        if start >= end {
            return Ok(false);
        }
        // A bounded span: enough buckets for about BATCH_ROWS source rows.
        let series = self.ids.len().max(1) as i64;
        let per_bucket = match from {
            "raw" => width, // at most one raw row a second per series
            _ => width / 60,
        };
        let buckets = (BATCH_ROWS as i64 / (series * per_bucket)).max(1);
        let stop = end.min(start + buckets * width);
        let gauge_names: Vec<&str> = SERIES
            .iter()
            .filter(|s| s.agg == Agg::Gauge)
            .map(|s| s.name)
            .collect();
        let counter_sql = format!(
            "SELECT id FROM series WHERE name NOT IN ({})",
            gauge_names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let sql = if from == "raw" {
            format!(
                "INSERT OR REPLACE INTO {to} (series, t, v, lo, hi, n)
                 SELECT series, (t / {width}) * {width},
                        CASE WHEN series IN ({counter_sql}) THEN MAX(v) ELSE AVG(v) END,
                        MIN(v), MAX(v), COUNT(*)
                 FROM raw WHERE {BY_SERIES} AND t >= ?1 AND t < ?2 GROUP BY series, t / {width}"
            )
        } else {
            format!(
                "INSERT OR REPLACE INTO {to} (series, t, v, lo, hi, n)
                 SELECT series, (t / {width}) * {width},
                        CASE WHEN series IN ({counter_sql}) THEN MAX(v) ELSE SUM(v * n) / SUM(n) END,
                        MIN(lo), MAX(hi), SUM(n)
                 FROM {from} WHERE {BY_SERIES} AND t >= ?1 AND t < ?2 GROUP BY series, t / {width}"
            )
        };
        let tx = self.conn.transaction().map_err(|e| StoreError::Db {
            path: self.path.clone(),
            source: e,
        })?;
        tx.execute(&sql, params![start, stop])
            .and_then(|_| {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, stop],
                )
            })
            .map_err(|e| StoreError::Db {
                path: self.path.clone(),
                source: e,
            })?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(stop < end)
    }

    /// Deletes the rows of `table` older than `cutoff_s`, once the cutoff has moved `every_s`
    /// past the last prune (so a sample does not cost a delete per table), in spans of about
    /// [`BATCH_ROWS`] rows (rows are at least `row_s` apart in a series). The hour table's prune
    /// takes the markers with it. Returns whether rows are left to delete.
    fn prune(
        &mut self,
        table: &str,
        cutoff_s: i64,
        row_s: i64,
        every_s: i64,
    ) -> Result<bool, StoreError> {
        let key = format!("{table}_pruned");
        let from = match self.meta(&key)? {
            Some(t) => t,
            None => {
                let oldest: Option<i64> = self
                    .conn
                    .query_row(
                        &format!("SELECT MIN(t) FROM {table} WHERE {BY_SERIES}"),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.db(e))?;
                oldest.unwrap_or(cutoff_s)
            }
        };
        if cutoff_s - from < every_s {
            return Ok(false);
        }
        let n_series = self.ids.len().max(1) as i64;
        let span = (BATCH_ROWS as i64 / n_series).max(1) * row_s;
        let stop = cutoff_s.min(from + span);
        let tx = self.conn.transaction().map_err(|e| StoreError::Db {
            path: self.path.clone(),
            source: e,
        })?;
        let mut done = tx.execute(
            &format!("DELETE FROM {table} WHERE {BY_SERIES} AND t < ?1"),
            [stop],
        );
        if table == "hour" {
            done =
                done.and_then(|_| tx.execute("DELETE FROM markers WHERE t_ms < ?1", [stop * 1000]));
        }
        done.and_then(|_| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, stop],
            )
        })
        .map_err(|e| StoreError::Db {
            path: self.path.clone(),
            source: e,
        })?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(stop < cutoff_s)
    }

    /// The resolution a query over `[from_s, to_s)` reads: the finest one whose keep time covers
    /// `from_s` and that gives at most [`MAX_POINTS`] points, unless `step_s` asks for coarser.
    pub fn resolution_for(
        from_s: i64,
        to_s: i64,
        step_s: Option<i64>,
        now_s: i64,
        keep: Keep,
        sample_every_s: i64,
    ) -> Resolution {
        let span = (to_s - from_s).max(1);
        let age = now_s - from_s;
        let step = step_s.unwrap_or(0);
        if age <= keep.raw_s && step < 60 && span / sample_every_s.max(1) <= MAX_POINTS {
            Resolution::Raw
        } else if age <= keep.minute_s && step < 3600 && span / 60 <= MAX_POINTS {
            Resolution::Minute
        } else {
            Resolution::Hour
        }
    }

    /// Series `names` of `camera` ("" for the system) over `[from_s, to_s)` at `res`, in buckets
    /// of `step_s` (at least the resolution's own width).
    pub fn query(
        &self,
        camera: &str,
        names: &[&str],
        from_s: i64,
        to_s: i64,
        step_s: i64,
        res: Resolution,
    ) -> Result<Columns, StoreError> {
        let step = step_s.max(1);
        let mut rows: BTreeMap<i64, BTreeMap<&str, f64>> = BTreeMap::new();
        for name in names {
            let Some(id) = self.ids.get(&(camera.to_string(), name.to_string())) else {
                continue;
            };
            let agg = series(name, !camera.is_empty()).map_or(Agg::Gauge, |s| s.agg);
            let f = match agg {
                Agg::Gauge => "AVG(v)",
                Agg::Counter => "MAX(v)",
            };
            let mut q = self
                .conn
                .prepare_cached(&format!(
                    "SELECT (t / ?4) * ?4 AS b, {f} FROM {} WHERE series = ?1 AND t >= ?2 AND t < ?3 GROUP BY b ORDER BY b",
                    res.table()
                ))
                .map_err(|e| self.db(e))?;
            let found = q
                .query_map(params![id, from_s, to_s, step], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
                })
                .map_err(|e| self.db(e))?;
            for row in found {
                let (b, v) = row.map_err(|e| self.db(e))?;
                rows.entry(b).or_default().insert(name, v);
            }
        }
        let t: Vec<i64> = rows.keys().map(|b| b * 1000).collect();
        let series = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    rows.values().map(|r| r.get(n).copied()).collect(),
                )
            })
            .collect();
        Ok(Columns { t, series })
    }

    /// Markers of `camera` in `[from_ms, to_ms)`, oldest first.
    pub fn markers(
        &self,
        camera: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Marker>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT t_ms, kind, reason, detail FROM markers WHERE camera = ?1 AND t_ms >= ?2 AND t_ms < ?3 ORDER BY t_ms LIMIT 10000",
            )
            .map_err(|e| self.db(e))?;
        let rows = q
            .query_map(params![camera, from_ms, to_ms], |r| {
                Ok(Marker {
                    t: r.get(0)?,
                    kind: r.get(1)?,
                    reason: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    /// The cameras with stored series.
    pub fn cameras(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .ids
            .keys()
            .map(|(camera, _)| camera.clone())
            .filter(|c| !c.is_empty())
            .collect();
        c.dedup();
        c
    }

    /// Bytes of the file (and its write-ahead log).
    pub fn file_bytes(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.path.display())).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Writes the write-ahead log into the file and gives free pages back (tests, measurements).
    pub fn compact(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|e| self.db(e))
    }

    /// Rows in each table: (raw, minute, hour).
    pub fn row_counts(&self) -> Result<(i64, i64, i64), StoreError> {
        let count = |t: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .map_err(|e| self.db(e))
        };
        Ok((count("raw")?, count("minute")?, count("hour")?))
    }
}

#[cfg(test)]
mod tests;
