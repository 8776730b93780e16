//! Reading `metrics`: how often the supervisor samples its figures into the metrics history and how
//! long each resolution is kept (see `docs/config.md`, "Metrics history").

use crate::reader::{ObjReader, Problems};
use serde_json::Value;

/// The metrics history (`<output_dir>/metrics.sqlite3`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Seconds between two samples of every camera and the system. Default 10; at least
    /// [`MIN_SAMPLE_EVERY_S`], at most [`MAX_SAMPLE_EVERY_S`].
    pub sample_every_s: f64,
    /// How long raw samples are kept. Default 86400 (a day).
    pub keep_raw_s: f64,
    /// How long the 1-minute rollups are kept. Default 604800 (7 days).
    pub keep_minute_s: f64,
    /// How long the 1-hour rollups are kept. Default 7776000 (90 days).
    pub keep_hour_s: f64,
}

/// Fastest sampling: one second (each sample reads `/proc` for every worker and the disk).
pub const MIN_SAMPLE_EVERY_S: f64 = 1.0;
/// Slowest sampling: a minute, so the 1-minute rollup has a sample in each of its rows.
pub const MAX_SAMPLE_EVERY_S: f64 = 60.0;

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            sample_every_s: 10.0,
            keep_raw_s: 86_400.0,
            keep_minute_s: 604_800.0,
            keep_hour_s: 7_776_000.0,
        }
    }
}

pub(crate) fn read_metrics(value: &Value, problems: &mut Problems) -> Option<MetricsConfig> {
    let d = MetricsConfig::default();
    let mut obj = ObjReader::new(value, "metrics", problems)?;
    let sample_every_s = obj
        .number_in(
            "sample_every_s",
            MIN_SAMPLE_EVERY_S,
            MAX_SAMPLE_EVERY_S,
            problems,
        )
        .unwrap_or(d.sample_every_s);
    // Each resolution is kept at least as long as one row of the next coarser one spans, so a
    // rollup always finds its source rows.
    let mut keep = |key: &'static str, min_s: f64, default: f64| match obj.seconds(key, problems) {
        Some(s) if s < min_s => {
            problems.push(
                format!("metrics.{key}"),
                format!("{s} seconds is too short; keep at least {min_s} seconds"),
            );
            default
        }
        Some(s) => s,
        None => default,
    };
    let keep_raw_s = keep("keep_raw_s", 3600.0, d.keep_raw_s);
    let keep_minute_s = keep("keep_minute_s", 3600.0 * 2.0, d.keep_minute_s);
    let keep_hour_s = keep("keep_hour_s", 86_400.0, d.keep_hour_s);
    obj.finish(problems);
    Some(MetricsConfig {
        sample_every_s,
        keep_raw_s,
        keep_minute_s,
        keep_hour_s,
    })
}
