//! Where a recording goes: `<output>/<camera>/<YYYY-MM-DD>/<camera>_<YYYYMMDDTHHMMSSZ>.mp4`, the time
//! being the clip's first frame in UTC (so a DST change never makes two files with one name), with
//! `-1`, `-2`, ... before `.mp4` when a name is taken. Pure: the caller says which names are taken.

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

/// `name.mp4` → `name.mp4.part`.
pub fn part_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
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
