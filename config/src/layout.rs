//! The output directory's layout, shared by the worker (which writes it) and the supervisor (which
//! indexes and prunes it): a recording is `<output>/<camera>/<YYYY-MM-DD>/<camera>_<YYYYMMDDTHHMMSSZ>.mp4`,
//! the time being the clip's first frame in UTC (so a DST change never makes two files with one name),
//! with `-1`, `-2`, ... before `.mp4` when a name is taken. Pure: the caller says which names are taken.

use std::path::{Path, PathBuf};

/// Suffix of a file being written; removed by the rename that finishes it.
pub const PART_SUFFIX: &str = ".part";

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    /// The calendar time of `unix_s` seconds since 1970-01-01T00:00:00Z.
    pub fn from_unix(unix_s: i64) -> Self {
        let days = unix_s.div_euclid(86_400);
        let secs = unix_s.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days: days since 1970-01-01 → proleptic Gregorian date.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn to_unix(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub fn parse_stamp(s: &str) -> Option<Utc> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
        let t = Utc {
            year: i64::from(num(0..4)?),
            month: num(4..6)?,
            day: num(6..8)?,
            hour: num(9..11)?,
            minute: num(11..13)?,
            second: num(13..15)?,
        };
        let valid = (1..=12).contains(&t.month)
            && (1..=31).contains(&t.day)
            && t.hour < 24
            && t.minute < 60
            && t.second < 60;
        valid.then_some(t)
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format).
    pub fn stamp(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The path (relative to the output directory) of a new clip of `camera_id` whose first frame is at
/// `unix_s`, skipping names for which `taken` is true.
pub fn clip_path(camera_id: &str, unix_s: i64, taken: impl Fn(&Path) -> bool) -> PathBuf {
    let t = Utc::from_unix(unix_s);
    let dir = Path::new(camera_id).join(t.date());
    let base = format!("{camera_id}_{}", t.stamp());
    (0..)
        .map(|n| match n {
            0 => dir.join(format!("{base}.mp4")),
            n => dir.join(format!("{base}-{n}.mp4")),
        })
        .find(|p| !taken(p))
        .expect("an unbounded range always has a free name")
}

/// A clip's name, `<camera>_<YYYYMMDDTHHMMSSZ>[-n].mp4`, taken apart: (camera id, first frame in
/// Unix seconds). `None` for any other name.
pub fn parse_clip_name(file_name: &str) -> Option<(String, i64)> {
    let stem = file_name.strip_suffix(".mp4")?;
    let stem = match stem.rsplit_once('-') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => stem,
    };
    let (camera, stamp) = stem.rsplit_once('_')?;
    let t = Utc::parse_stamp(stamp)?;
    (!camera.is_empty()).then(|| (camera.to_string(), t.to_unix()))
}

/// Whether `rel` (relative to the output directory) is where a clip of `camera_id` lives:
/// `<camera_id>/<YYYY-MM-DD>/<camera_id>_<stamp>[-n].mp4`, nothing else. A path a worker reports is
/// checked with this before it is indexed, so retention can never delete outside the output.
pub fn is_clip_path_of(camera_id: &str, rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        [cam, day, name] => {
            *cam == camera_id
                && day.len() == 10
                && day.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                && parse_clip_name(name).is_some_and(|(c, _)| c == camera_id)
        }
        _ => false,
    }
}

/// `name.mp4` → `name.mp4.part`.
pub fn part_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_cameras_own_clip_paths_pass() {
        use super::is_clip_path_of as ok;
        assert!(ok("a", "a/2026-12-01/a_20261201T101500Z.mp4"));
        assert!(ok("a", "a/2026-12-01/a_20261201T101500Z-2.mp4"));
        for bad in [
            "b/2026-12-01/b_20261201T101500Z.mp4",
            "a/2026-12-01/b_20261201T101500Z.mp4",
            "a/../../etc/a_20261201T101500Z.mp4",
            "/a/2026-12-01/a_20261201T101500Z.mp4",
            "a/2026-12-01/../a_20261201T101500Z.mp4",
            "a/2026-12-01/a_20261201T101500Z.mp4.part",
            "a/a_20261201T101500Z.mp4",
            "",
        ] {
            assert!(!ok("a", bad), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn unix_times_become_utc_calendar_times() {
        for (unix_s, want) in [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (1_700_000_000, "20231114T221320Z"),
            (1_709_251_199, "20240229T235959Z"),
            (4_102_444_800, "21000101T000000Z"),
            (-1, "19691231T235959Z"),
        ] {
            assert_eq!(Utc::from_unix(unix_s).stamp(), want, "{unix_s}");
        }
        assert_eq!(Utc::from_unix(1_709_251_199).date(), "2024-02-29");
        for unix_s in [
            0,
            951_782_400,
            1_700_000_000,
            1_709_251_199,
            4_102_444_800,
            -1,
        ] {
            let t = Utc::from_unix(unix_s);
            assert_eq!(t.to_unix(), unix_s);
            assert_eq!(Utc::parse_stamp(&t.stamp()), Some(t));
        }
        for bad in [
            "",
            "20231114T221320",
            "20231314T221320Z",
            "2023111XT221320Z",
        ] {
            assert_eq!(Utc::parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn clip_names_parse_back() {
        for (name, want) in [
            ("cam_20231114T221320Z.mp4", Some(("cam", 1_700_000_000))),
            (
                "front_door_20231114T221320Z-2.mp4",
                Some(("front_door", 1_700_000_000)),
            ),
            ("a-b_20231114T221320Z.mp4", Some(("a-b", 1_700_000_000))),
            ("cam_20231114T221320Z.mp4.part", None),
            ("notes.mp4", None),
            ("_20231114T221320Z.mp4", None),
        ] {
            let got = parse_clip_name(name);
            assert_eq!(got.as_ref().map(|(c, t)| (c.as_str(), *t)), want, "{name}");
        }
    }

    #[test]
    fn names_follow_the_layout_and_never_collide() {
        let taken = [
            "cam/2023-11-14/cam_20231114T221320Z.mp4",
            "cam/2023-11-14/cam_20231114T221320Z-1.mp4",
        ];
        let is_taken = |p: &Path| taken.iter().any(|t| Path::new(t) == p);
        assert_eq!(
            clip_path("cam", 1_700_000_000, |_| false),
            Path::new("cam/2023-11-14/cam_20231114T221320Z.mp4")
        );
        assert_eq!(
            clip_path("cam", 1_700_000_000, is_taken),
            Path::new("cam/2023-11-14/cam_20231114T221320Z-2.mp4")
        );
        assert_eq!(
            part_of(Path::new("a/b.mp4")),
            Path::new("a/b.mp4.part"),
            "the part file sits next to the final name"
        );
    }
}
