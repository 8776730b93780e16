//! Which recordings to delete, as a pure function of what is indexed, each camera's limits and the
//! free space on the output file system. Oldest finished clips go first; a clip being written is
//! never a candidate. Tested with tables.

use std::collections::HashMap;

/// A finished clip, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub id: String,
    pub camera_id: String,
    /// Unix ms.
    pub start: i64,
    pub end: i64,
    pub bytes: u64,
}

/// One camera's limits (`recording.keep_days`, `recording.max_gb`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub keep_days: Option<f64>,
    pub max_gb: Option<f64>,
}

/// Why a clip is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Older than the camera's `keep_days`.
    Age,
    /// The camera's clips exceed its `max_gb`.
    Size,
    /// The output file system is below its minimum free space.
    FreeSpace,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Age => "keep_days",
            Reason::Size => "max_gb",
            Reason::FreeSpace => "min_free",
        }
    }
}

/// The clips to delete, oldest first, with why. `clips` are the finished clips of every camera;
/// `free_bytes` what the file system has free and `need_free_bytes` what it must keep free.
pub fn plan(
    clips: &[Clip],
    limits: &HashMap<String, Limits>,
    now_ms: i64,
    free_bytes: u64,
    need_free_bytes: u64,
) -> Vec<(String, Reason)> {
    let mut by_age: Vec<&Clip> = clips.iter().collect();
    by_age.sort_by_key(|c| (c.start, c.id.clone()));
    let mut doomed: Vec<(String, Reason)> = Vec::new();
    let gone = |doomed: &[(String, Reason)], c: &Clip| doomed.iter().any(|(id, _)| *id == c.id);
    for c in &by_age {
        let keep_days = limits.get(&c.camera_id).and_then(|l| l.keep_days);
        if let Some(days) = keep_days {
            if (now_ms - c.end) as f64 > days * 86_400_000.0 {
                doomed.push((c.id.clone(), Reason::Age));
            }
        }
    }
    for (camera, l) in limits {
        let Some(max_gb) = l.max_gb else { continue };
        let max_bytes = (max_gb * 1e9) as u64;
        let mine: Vec<&&Clip> = by_age
            .iter()
            .filter(|c| c.camera_id == *camera && !gone(&doomed, c))
            .collect();
        let mut total: u64 = mine.iter().map(|c| c.bytes).sum();
        for c in mine {
            if total <= max_bytes {
                break;
            }
            total -= c.bytes;
            doomed.push((c.id.clone(), Reason::Size));
        }
    }
    let mut freed: u64 = by_age
        .iter()
        .filter(|c| gone(&doomed, c))
        .map(|c| c.bytes)
        .sum();
    for c in &by_age {
        if free_bytes + freed >= need_free_bytes {
            break;
        }
        if !gone(&doomed, c) {
            freed += c.bytes;
            doomed.push((c.id.clone(), Reason::FreeSpace));
        }
    }
    doomed.sort_by_key(|(id, _)| by_age.iter().position(|c| c.id == *id));
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn clip(id: &str, camera: &str, start_day: i64, mb: u64) -> Clip {
        Clip {
            id: id.into(),
            camera_id: camera.into(),
            start: start_day * DAY,
            end: start_day * DAY + 60_000,
            bytes: mb * 1_000_000,
        }
    }

    fn limits(v: &[(&str, Option<f64>, Option<f64>)]) -> HashMap<String, Limits> {
        v.iter()
            .map(|(c, keep_days, max_gb)| {
                (
                    c.to_string(),
                    Limits {
                        keep_days: *keep_days,
                        max_gb: *max_gb,
                    },
                )
            })
            .collect()
    }

    fn ids(p: &[(String, Reason)]) -> Vec<(&str, Reason)> {
        p.iter().map(|(id, r)| (id.as_str(), *r)).collect()
    }

    #[test]
    fn each_limit_deletes_the_oldest_first_and_nothing_more() {
        let clips = [
            clip("a1", "a", 1, 400),
            clip("b1", "b", 2, 400),
            clip("a2", "a", 3, 400),
            clip("a3", "a", 9, 400),
            clip("b2", "b", 9, 400),
        ];
        let now = 10 * DAY;
        // Nothing to do.
        assert_eq!(plan(&clips, &limits(&[]), now, 10_000_000_000, 1), vec![]);
        // keep_days 5 on `a`: a1 and a2 (days 1 and 3) are too old; b's are kept.
        assert_eq!(
            ids(&plan(
                &clips,
                &limits(&[("a", Some(5.0), None)]),
                now,
                u64::MAX / 2,
                0
            )),
            vec![("a1", Reason::Age), ("a2", Reason::Age)]
        );
        // max_gb 0.5 on `b`: 800 MB → drop b1 only.
        assert_eq!(
            ids(&plan(
                &clips,
                &limits(&[("b", None, Some(0.5))]),
                now,
                u64::MAX / 2,
                0
            )),
            vec![("b1", Reason::Size)]
        );
        // 1 GB free, 2 GB needed: the three oldest clips of any camera (1.2 GB).
        assert_eq!(
            ids(&plan(
                &clips,
                &limits(&[]),
                now,
                1_000_000_000,
                2_000_000_000
            )),
            vec![
                ("a1", Reason::FreeSpace),
                ("b1", Reason::FreeSpace),
                ("a2", Reason::FreeSpace)
            ]
        );
    }

    #[test]
    fn limits_combine_without_deleting_a_clip_twice() {
        let clips = [
            clip("a1", "a", 1, 400),
            clip("a2", "a", 6, 400),
            clip("a3", "a", 9, 400),
        ];
        // Age (5 days) removes a1 only; then size (0.5 GB) needs a2 to go; the space freed (800 MB) covers the
        // free-space deficit of 500 MB, so a3, the newest, survives.
        let p = plan(
            &clips,
            &limits(&[("a", Some(5.0), Some(0.5))]),
            10 * DAY,
            1_000_000_000,
            1_500_000_000,
        );
        assert_eq!(ids(&p), vec![("a1", Reason::Age), ("a2", Reason::Size)]);
    }
}
