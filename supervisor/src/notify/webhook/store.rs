//! The durable webhook outbox: a table of `<output_dir>/state.sqlite3` (decision 41's file of
//! state that is not a cache), so deliveries that have not reached their receiver survive a
//! supervisor restart. A row is written before the first attempt and deleted when the receiver
//! answered 2xx or the delivery was dropped. Secrets are never stored: the signature is made at
//! each attempt.

use crate::state::STATE_FILE;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_at_ms);
";

#[derive(Debug, thiserror::Error)]
#[error("webhook outbox in {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

/// One delivery waiting for its receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub url: String,
    pub event: String,
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_at_ms: i64,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the outbox table in `output_dir`'s state file (created when missing).
    pub fn open(output_dir: &Path) -> Result<Store, StoreError> {
        let path = output_dir.join(STATE_FILE);
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds a delivery, due at once.
    pub fn add(&self, row: &Row, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO webhook_outbox (id, url, event, body, attempts, next_at_ms, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![row.id, row.url, row.event, row.body, row.attempts, row.next_at_ms, now_ms],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Deliveries due by `now_ms`, oldest first, at most `limit`, leaving out `busy` ids.
    pub fn due(&self, now_ms: i64, limit: usize, busy: &[String]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, url, event, body, attempts, next_at_ms FROM webhook_outbox
                 WHERE next_at_ms <= ?1 ORDER BY next_at_ms, created_ms LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now_ms, (limit + busy.len()) as i64], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    event: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                    next_at_ms: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.err(e))?;
            if !busy.contains(&row.id) && out.len() < limit {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The delivery is done with (delivered, dropped, or its webhook is gone).
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM webhook_outbox WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Another attempt failed: try again at `next_at_ms`.
    pub fn retry(&self, id: &str, attempts: u32, next_at_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE webhook_outbox SET attempts = ?2, next_at_ms = ?3 WHERE id = ?1",
                params![id, attempts, next_at_ms],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Removes the deliveries of webhooks no longer configured; how many.
    pub fn forget_other_urls(&self, urls: &[String]) -> Result<usize, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let known: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT DISTINCT url FROM webhook_outbox")
                .map_err(|e| self.err(e))?;
            let urls = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
            urls.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        let mut n = 0;
        for url in known.iter().filter(|u| !urls.contains(u)) {
            n += tx
                .execute("DELETE FROM webhook_outbox WHERE url = ?1", params![url])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Deliveries waiting, per URL.
    pub fn queued(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT url, COUNT(*) FROM webhook_outbox GROUP BY url")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, url: &str, next_at_ms: i64) -> Row {
        Row {
            id: id.into(),
            url: url.into(),
            event: "motion_start".into(),
            body: format!("{{\"id\":\"{id}\"}}"),
            attempts: 0,
            next_at_ms,
        }
    }

    #[test]
    fn deliveries_survive_reopening_until_removed() {
        let dir = std::env::temp_dir().join(format!("nvr-webhook-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir).unwrap();
        s.add(&row("a", "http://h/1", 100), 100).unwrap();
        s.add(&row("b", "http://h/1", 50), 100).unwrap();
        s.add(&row("c", "http://h/2", 500), 100).unwrap();
        s.add(&row("a", "http://h/1", 1), 100).unwrap(); // a repeat id is ignored
        let ids = |rows: Vec<Row>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(s.due(100, 10, &[]).unwrap()), ["b", "a"]);
        assert_eq!(ids(s.due(100, 10, &["b".into()]).unwrap()), ["a"]);
        assert_eq!(ids(s.due(1000, 1, &[]).unwrap()), ["b"]);
        s.retry("b", 1, 900).unwrap();
        drop(s);
        let s = Store::open(&dir).unwrap();
        let due = s.due(1000, 10, &[]).unwrap();
        assert_eq!(ids(due.clone()), ["a", "c", "b"]);
        assert_eq!((due[2].attempts, due[2].next_at_ms), (1, 900));
        s.remove("a").unwrap();
        assert_eq!(
            s.queued().unwrap(),
            [("http://h/1".to_string(), 1), ("http://h/2".to_string(), 1)]
        );
        assert_eq!(s.forget_other_urls(&["http://h/2".into()]).unwrap(), 1);
        assert_eq!(ids(s.due(1000, 10, &[]).unwrap()), ["c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
