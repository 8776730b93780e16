//! Durable state that is not a cache of the files (decision 41): `<output_dir>/state.sqlite3`.
//! Today it holds the cameras' mode overrides, so an override survives a supervisor restart. The
//! recordings index (`index.sqlite3`) stays a rebuildable cache; this file is its own, so that
//! neither contends with the other's writer and a corrupt one is set aside alone.

use crate::mode::Override;
use nvr_config::RecordingMode as Mode;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::warn;

pub const STATE_FILE: &str = "state.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS overrides (
    camera_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    until_ms INTEGER,
    set_at_ms INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

impl StateStore {
    /// Opens (or creates) the state file in `output_dir`. One that cannot be used (not SQLite, or
    /// damaged) is renamed `state.sqlite3.corrupt-<unix ms>` with a warning, and a new one started;
    /// the path it was moved to is returned.
    pub fn open(output_dir: &Path) -> Result<(StateStore, Option<PathBuf>), StateError> {
        let path = output_dir.join(STATE_FILE);
        match Self::open_at(&path) {
            Ok(s) => Ok((s, None)),
            Err(e) => {
                let aside = path.with_extension(format!("sqlite3.corrupt-{}", now_ms()));
                warn!(error = %e, moved_to = %aside.display(), "state file unusable (mode overrides are lost); set aside, starting a new one");
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                    let _ = std::fs::rename(from, to);
                }
                Ok((Self::open_at(&path)?, Some(aside)))
            }
        }
    }

    fn open_at(path: &Path) -> Result<StateStore, StateError> {
        let err = |source| StateError {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(err)?;
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(err)?;
        if ok != "ok" {
            return Err(err(rusqlite::Error::InvalidQuery));
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(StateStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// Every stored override by camera id. A row with a mode this build does not know is skipped
    /// with a warning.
    pub fn overrides(&self) -> Result<BTreeMap<String, Override>, StateError> {
        let mut q = self
            .conn
            .prepare("SELECT camera_id, mode, until_ms, set_at_ms FROM overrides")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (camera_id, mode, until_ms, set_at_ms) = row.map_err(|e| self.err(e))?;
            match Mode::parse(&mode) {
                Ok(mode) => {
                    out.insert(
                        camera_id,
                        Override {
                            mode,
                            until_ms,
                            set_at_ms,
                        },
                    );
                }
                Err(e) => warn!(%camera_id, error = %e, "stored override skipped"),
            }
        }
        Ok(out)
    }

    pub fn set_override(&self, camera_id: &str, o: &Override) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO overrides (camera_id, mode, until_ms, set_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![camera_id, o.mode.as_str(), o.until_ms, o.set_at_ms],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn clear_override(&self, camera_id: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM overrides WHERE camera_id = ?1",
                params![camera_id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

fn now_ms() -> u64 {
    nvr_proto::unix_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nvr-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn overrides_survive_reopening_and_can_be_cleared() {
        let dir = tmp("reopen");
        let o = Override {
            mode: Mode::Continuous,
            until_ms: Some(1_800_000_000_000),
            set_at_ms: 1_700_000_000_000,
        };
        let forever = Override {
            mode: Mode::Off,
            until_ms: None,
            set_at_ms: 1,
        };
        {
            let (s, aside) = StateStore::open(&dir).unwrap();
            assert_eq!(aside, None);
            s.set_override("front", &o).unwrap();
            s.set_override("back", &forever).unwrap();
            s.set_override("back", &o).unwrap();
            s.set_override("side", &forever).unwrap();
            s.clear_override("side").unwrap();
        }
        let (s, _) = StateStore::open(&dir).unwrap();
        let got = s.overrides().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["front"], o);
        assert_eq!(got["back"], o);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_state_file_is_set_aside() {
        let dir = tmp("corrupt");
        let garbage = b"this is not an SQLite database, just bytes ".repeat(200);
        std::fs::write(dir.join(STATE_FILE), &garbage).unwrap();
        let (s, aside) = StateStore::open(&dir).unwrap();
        let aside = aside.expect("moved aside");
        assert_eq!(std::fs::read(&aside).unwrap(), garbage, "kept, not deleted");
        assert!(aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.sqlite3.corrupt-"));
        assert!(s.overrides().unwrap().is_empty());
        s.set_override(
            "front",
            &Override {
                mode: Mode::Off,
                until_ms: None,
                set_at_ms: 0,
            },
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
