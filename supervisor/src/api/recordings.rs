//! Recordings and motion events over HTTP: `GET /api/recordings?camera=&from=&to=`,
//! `GET /api/events?camera=&from=&to=` (times in Unix ms), `GET /api/recordings/{id}/file` (the MP4,
//! with HTTP Range so browsers can seek) and `GET /api/events/{id}/thumbnail.jpg`.
//!
//! Request paths never name files: an id is checked to be a plain name (`[A-Za-z0-9_-]`), looked up
//! in the index, and the file it names must resolve inside the output directory.

use super::AppState;
use crate::archive::index::{ClipState, Index};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

#[derive(serde::Deserialize)]
pub struct Range {
    camera: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({"error": msg.into()}))).into_response()
}

/// Runs a query on a read-only connection to the index, off the async threads.
async fn query<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Index) -> Result<T, crate::archive::index::IndexError> + Send + 'static,
) -> Result<T, Response> {
    let dir = state.output_dir.clone();
    let result = tokio::task::spawn_blocking(move || Index::reader(&dir).and_then(|i| f(&i))).await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "recordings index query failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the recordings index is unavailable",
            ))
        }
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "query failed")),
    }
}

pub async fn list_recordings(State(state): State<AppState>, Query(q): Query<Range>) -> Response {
    match query(&state, move |i| {
        i.recordings(q.camera.as_deref(), q.from, q.to)
    })
    .await
    {
        Ok(rows) => Json(rows).into_response(),
        Err(r) => r,
    }
}

pub async fn list_events(State(state): State<AppState>, Query(q): Query<Range>) -> Response {
    match query(&state, move |i| i.events(q.camera.as_deref(), q.from, q.to)).await {
        Ok(rows) => Json(rows).into_response(),
        Err(r) => r,
    }
}

/// An id names nothing but itself: letters, digits, `_` and `-`.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `rel` resolved inside `root`, or `None` if it does not exist or escapes it.
fn inside(root: &std::path::Path, rel: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let path = root.join(rel).canonicalize().ok()?;
    path.starts_with(&root).then_some(path)
}

pub async fn recording_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !plain_id(&id) {
        return error(StatusCode::BAD_REQUEST, "not a recording id");
    }
    let lookup = id.clone();
    let row = match query(&state, move |i| i.recording(&lookup)).await {
        Ok(Some(r)) if r.state == ClipState::Finished => r,
        Ok(Some(_)) => return error(StatusCode::CONFLICT, "the recording is still being written"),
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no recording {id:?}")),
        Err(r) => return r,
    };
    let Some(path) = inside(&state.output_dir, &row.path) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("the file of recording {id:?} is gone"),
        );
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return error(
            StatusCode::NOT_FOUND,
            format!("the file of recording {id:?} is gone"),
        );
    };
    let (len, modified) = match file.metadata().await {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file"),
    };
    let validators = Validators::of(len, modified);
    // A Range under an If-Range that no longer matches asks for the whole (changed) file.
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| validators.matches(v)));
    let range = headers
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
    }
    let remaining = if len == 0 { 0 } else { end - start + 1 };
    let body = futures_util::stream::unfold((file, remaining), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(256 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(buf)),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "video/mp4".to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (header::CONTENT_LENGTH, remaining.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
            (header::ETAG, validators.etag.clone()),
            // A finished clip never changes; a browser may keep it but must revalidate.
            (header::CACHE_CONTROL, "private, no-cache".to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(v) = validators
        .last_modified
        .as_deref()
        .and_then(|d| d.parse().ok())
    {
        response.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = format!("bytes {start}-{end}/{len}").parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    response
}

pub async fn event_thumbnail(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if !plain_id(&id) {
        return error(StatusCode::BAD_REQUEST, "not an event id");
    }
    let lookup = id.clone();
    let thumb = match query(&state, move |i| i.event(&lookup)).await {
        Ok(Some(e)) => e.thumbnail_path,
        Ok(None) => None,
        Err(r) => return r,
    };
    let Some(path) = thumb.and_then(|t| inside(&state.output_dir, &t)) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no thumbnail for event {id:?}"),
        );
    };
    match tokio::fs::read(&path).await {
        Ok(jpeg) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no thumbnail for event {id:?}"),
        ),
    }
}

/// The validators of a file: a strong ETag from its length and modification time, and its
/// modification time as an HTTP date.
struct Validators {
    etag: String,
    last_modified: Option<String>,
}

impl Validators {
    fn of(len: u64, modified: Option<std::time::SystemTime>) -> Validators {
        let nanos = modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Validators {
            etag: format!("\"{len:x}-{nanos:x}\""),
            last_modified: modified.map(httpdate::fmt_http_date),
        }
    }

    /// Whether an `If-Range` value names this version of the file: the same strong ETag, or the
    /// same Last-Modified date (RFC 9110 13.1.5; a weak tag never matches).
    fn matches(&self, if_range: &str) -> bool {
        let v = if_range.trim();
        if v.starts_with('"') || v.starts_with("W/") {
            return v == self.etag;
        }
        self.last_modified.as_deref() == Some(v)
    }
}

/// A byte position: digits only (no sign, no space), saturating at `u64::MAX` so a huge last
/// position is clamped like any other past the end.
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// A single `bytes=` range of a `len`-byte file as inclusive `(first, last)`; `None` when it cannot
/// be satisfied. Multiple ranges are answered with the first one.
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return None;
    }
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => {
            let n = position(b)?;
            if n == 0 {
                return None;
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, true) => (position(a)?, len - 1),
        (false, false) => (position(a)?, position(b)?.min(len - 1)),
        (true, true) => return None,
    };
    (start <= end && start < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_rfc_9110_says() {
        for (h, want) in [
            ("bytes=0-99", Some((0, 99))),
            ("bytes=100-", Some((100, 999))),
            ("bytes=-100", Some((900, 999))),
            ("bytes=-5000", Some((0, 999))),
            ("bytes=900-5000", Some((900, 999))),
            ("bytes=0-0, 5-9", Some((0, 0))),
            ("bytes=1000-", None),
            ("bytes=5-1", None),
            ("bytes=-0", None),
            ("bytes=-", None),
            ("items=0-1", None),
            ("bytes=a-b", None),
            // An end past 2^64 is clamped like any end past the file; a sign is no number.
            ("bytes=0-99999999999999999999999", Some((0, 999))),
            ("bytes=-99999999999999999999999", Some((0, 999))),
            ("bytes=99999999999999999999999-", None),
            ("bytes=+0-99", None),
            ("bytes=0-+99", None),
            ("bytes=-+5", None),
        ] {
            assert_eq!(parse_range(h, 1000), want, "{h}");
        }
        assert_eq!(parse_range("bytes=0-", 0), None);
    }

    #[test]
    fn if_range_matches_only_this_version() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let v = Validators::of(1000, Some(t));
        assert!(v.matches(&v.etag));
        assert!(v.matches("Tue, 14 Nov 2023 22:13:20 GMT"));
        assert!(!v.matches("Tue, 14 Nov 2023 22:13:21 GMT"));
        assert!(!v.matches(&format!("W/{}", v.etag)));
        assert!(!v.matches("\"other\""));
        assert_ne!(Validators::of(1001, Some(t)).etag, v.etag);
    }

    #[test]
    fn ids_are_plain_names() {
        assert!(plain_id("cam_20231114T221320Z-1"));
        for bad in ["", "..", "../x", "a/b", "a%2Fb", "a.mp4", "%2e%2e", "a\\b"] {
            assert!(!plain_id(bad), "{bad}");
        }
    }
}
