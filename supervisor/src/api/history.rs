//! The metrics history over HTTP:
//! `GET /api/metrics/history?camera=&series=cpu,rss,fps_sub&from=&to=&step=`.
//!
//! `from` and `to` are Unix ms (as in `/api/recordings`; default: the last hour), `step` seconds
//! (default: the resolution the range calls for, see [`Store::resolution_for`]), `camera` a camera
//! id (absent: the system's series), `series` a comma-separated list (absent: every series of the
//! camera or the system). The answer is columnar: one time column, one value column per series
//! (`null` where there was no sample), and the restart markers in the range. A bad parameter is a
//! 400 whose JSON names the field.

use super::AppState;
use crate::metrics::store::{series, Columns, Marker, Resolution, Store, METRICS_FILE, SERIES};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;

/// Longest range one query may ask for: the longest keep time the config allows is far beyond,
/// but 400 days of hours is already 9600 points.
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

/// What the parameters ask, once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The camera, or "" for the system.
    pub camera: String,
    pub series: Vec<&'static str>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_s: Option<i64>,
}

/// A parameter that is wrong: the field and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct BadParam {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadParam {
    BadParam {
        field,
        message: message.into(),
    }
}

fn int(q: &HashMap<String, String>, field: &'static str) -> Result<Option<i64>, BadParam> {
    match q.get(field).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| bad(field, format!("{s:?} is not a whole number"))),
    }
}

/// Checks the query string. Pure: `now_ms` is the clock, `cameras` the configured ids.
pub fn parse(
    q: &HashMap<String, String>,
    cameras: &[String],
    now_ms: i64,
) -> Result<Request, BadParam> {
    let camera = q.get("camera").cloned().unwrap_or_default();
    if !camera.is_empty() && !cameras.contains(&camera) {
        return Err(bad(
            "camera",
            "no such camera; give the id of a configured camera, or leave it out for the system",
        ));
    }
    let per_camera = !camera.is_empty();
    let series: Vec<&'static str> = match q.get("series").map(|s| s.trim()) {
        None | Some("") => SERIES
            .iter()
            .filter(|s| s.per_camera == per_camera)
            .map(|s| s.name)
            .collect(),
        Some(list) => list
            .split(',')
            .map(|name| {
                series(name.trim(), per_camera)
                    .map(|s| s.name)
                    .ok_or_else(|| {
                        let known: Vec<&str> = SERIES
                            .iter()
                            .filter(|s| s.per_camera == per_camera)
                            .map(|s| s.name)
                            .collect();
                        bad(
                            "series",
                            format!(
                                "{:?} is not a {} series; use any of {}",
                                name.trim(),
                                if per_camera { "camera" } else { "system" },
                                known.join(",")
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let to_ms = int(q, "to")?.unwrap_or(now_ms);
    let from_ms = int(q, "from")?.unwrap_or(to_ms - 3_600_000);
    if from_ms >= to_ms {
        return Err(bad("from", "must be before `to` (both Unix ms)"));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(bad("from", "the range is longer than 400 days"));
    }
    let step_s = int(q, "step")?;
    if let Some(s) = step_s {
        if !(1..=86_400 * 30).contains(&s) {
            return Err(bad("step", "give seconds from 1 to 2592000"));
        }
    }
    Ok(Request {
        camera,
        series,
        from_ms,
        to_ms,
        step_s,
    })
}

#[derive(Debug, serde::Serialize)]
struct Answer {
    camera: Option<String>,
    from: i64,
    to: i64,
    resolution: &'static str,
    step_s: i64,
    #[serde(flatten)]
    columns: Columns,
    markers: Vec<Marker>,
}

fn answer(dir: &std::path::Path, r: Request, now_ms: i64) -> Result<Answer, String> {
    let (from_s, to_s) = (r.from_ms.div_euclid(1000), (r.to_ms + 999).div_euclid(1000));
    let empty = |res: Resolution, step_s: i64| Answer {
        camera: (!r.camera.is_empty()).then(|| r.camera.clone()),
        from: r.from_ms,
        to: r.to_ms,
        resolution: res.as_str(),
        step_s,
        columns: Columns {
            t: Vec::new(),
            series: r
                .series
                .iter()
                .map(|s| (s.to_string(), Vec::new()))
                .collect(),
        },
        markers: Vec::new(),
    };
    if !dir.join(METRICS_FILE).exists() {
        return Ok(empty(Resolution::Raw, r.step_s.unwrap_or(10)));
    }
    let store = Store::reader(dir).map_err(|e| e.to_string())?;
    let (every_s, keep) = store.settings().map_err(|e| e.to_string())?;
    let res = Store::resolution_for(from_s, to_s, r.step_s, now_ms / 1000, keep, every_s);
    let step_s = r.step_s.unwrap_or(0).max(res.seconds(every_s));
    let columns = store
        .query(&r.camera, &r.series, from_s, to_s, step_s, res)
        .map_err(|e| e.to_string())?;
    let markers = if r.camera.is_empty() {
        Vec::new()
    } else {
        store
            .markers(&r.camera, r.from_ms, r.to_ms)
            .map_err(|e| e.to_string())?
    };
    Ok(Answer {
        columns,
        markers,
        ..empty(res, step_s)
    })
}

pub async fn metrics_history(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now_ms = (nvr_proto::unix_ns() / 1_000_000) as i64;
    let cameras: Vec<String> = super::snapshot(&state)
        .cameras
        .into_iter()
        .map(|c| c.id)
        .collect();
    let request = match parse(&q, &cameras, now_ms) {
        Ok(r) => r,
        Err(b) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("{}: {}", b.field, b.message), "field": b.field})),
            )
                .into_response()
        }
    };
    let dir = state.output_dir.clone();
    match tokio::task::spawn_blocking(move || answer(&dir, request, now_ms)).await {
        Ok(Ok(a)) => Json(a).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics history query failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "the metrics history is unavailable"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "query failed"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_checked_and_bad_ones_named() {
        let cams = vec!["front".to_string()];
        let now = 1_700_000_000_000;
        let r = parse(
            &q(&[("camera", "front"), ("series", "cpu,fps_sub")]),
            &cams,
            now,
        )
        .unwrap();
        assert_eq!(r.series, ["cpu", "fps_sub"]);
        assert_eq!((r.from_ms, r.to_ms, r.step_s), (now - 3_600_000, now, None));
        let system = parse(&q(&[]), &cams, now).unwrap();
        assert!(system.series.contains(&"disk_free") && !system.series.contains(&"fps_sub"));
        for (pairs, field) in [
            (vec![("camera", "back")], "camera"),
            (vec![("camera", "front"), ("series", "cpu,nope")], "series"),
            (vec![("series", "fps_sub")], "series"),
            (vec![("from", "yesterday")], "from"),
            (vec![("from", "10"), ("to", "5")], "from"),
            (vec![("to", "1.5")], "to"),
            (vec![("step", "0")], "step"),
            (vec![("step", "x")], "step"),
        ] {
            let e = parse(&q(&pairs), &cams, now).unwrap_err();
            assert_eq!(e.field, field, "{pairs:?}: {e:?}");
        }
    }
}
