//! Judging from outside: frames lost against the fake camera's counts, motion onsets against its
//! ground truth, recorded files against ffmpeg, memory growth.

use crate::rig::HEARTBEAT_S;
use anyhow::Result;
use nvr_tests::clipcheck::{decodes_cleanly, dts_strictly_increase, files_ending, probe};
use nvr_tests::fakecam::FakeCam;
use nvr_tests::nvr::Nvr;
use nvr_tests::procstat::median;
use nvr_tests::status::{str_at, u64_at};
use serde_json::Value;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// An onset counts only if its camera was undisturbed (no kill, outage or clock jump) from this
/// long before it (reconnect, first keyframe, the detector's background) ...
pub const QUIET_BEFORE: Duration = Duration::from_secs(8);
/// ... to this long after it.
pub const QUIET_AFTER: Duration = Duration::from_secs(3);

/// (median of the first third, median of the last third, growth in percent) of samples: a clip
/// being written holds a GOP in memory, so single samples jump by a few MB either way.
fn growth(v: &[f64]) -> (f64, f64, f64) {
    let third = v.len().div_ceil(3).max(1);
    let (early, late) = (median(&v[..third]), median(&v[v.len() - third..]));
    (early, late, (late - early) / early.max(1e-9) * 100.0)
}

/// Judges samples of a figure that must stay flat (RSS, file descriptors): (passes, what was seen).
/// Fails when there is no sample, when one could not be read (`None`: no pid at that moment, or
/// `/proc` unreadable), or when the median of the last third is 5 % or more above the first's.
pub fn flat(samples: &[Option<f64>], unit: &str) -> (bool, String) {
    let read: Vec<f64> = samples.iter().flatten().copied().collect();
    let unread = samples.len() - read.len();
    if read.is_empty() {
        return (false, format!("no sample could be read ({unread} tried)"));
    }
    let (early, late, pct) = growth(&read);
    let ok = unread == 0 && early > 0.0 && pct < 5.0;
    let mut detail = format!(
        "{early:.1} → {late:.1} {unit} ({pct:+.1} %), {} samples",
        read.len()
    );
    if unread > 0 {
        detail.push_str(&format!(", {unread} could not be read"));
    }
    (ok, detail)
}

/// Frames the fake camera pushed into two mounts and the frames/packets a camera's worker counted,
/// read with the camera paused so that nothing is in flight.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    sent_sub: u64,
    sent_main: u64,
    got_sub: u64,
    got_main: u64,
}

pub fn settled_counts(
    fc: &mut FakeCam,
    nvr: &Nvr,
    id: &str,
    sub: &str,
    main: &str,
    disturbed: &mut Disturbances,
) -> Result<Counts> {
    // The pause stops every camera of the server: it is a disturbance like any fault.
    let paused = Instant::now();
    fc.command("pause")?;
    // In-flight frames arrive and are decoded, and heartbeats report them: settled once the
    // worker's counts hold still for three heartbeats (a loaded machine may be seconds behind).
    let got = || {
        let c = nvr.camera(id);
        (
            u64_at(&c, &["worker", "sub", "frames"]),
            u64_at(&c, &["worker", "main", "frames"]),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last, mut still) = (got(), 0);
    while still < 3 && Instant::now() < deadline {
        thread::sleep(Duration::from_secs_f64(HEARTBEAT_S * 1.5));
        let now = got();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let ack = fc.command("status")?;
    fc.command("resume")?;
    disturbed.add("*", paused, Instant::now());
    Ok(Counts {
        sent_sub: u64_at(&ack, &["pushed", &format!("/{sub}")]),
        sent_main: u64_at(&ack, &["pushed", &format!("/{main}")]),
        got_sub: last.0,
        got_main: last.1,
    })
}

/// The loss figures, and when something was lost, what the camera's worker warned about.
pub fn lost_detail(lost_sub: i64, lost_main: i64, sent: u64, nvr: &Nvr, id: &str) -> String {
    let mut d = format!("SUB: {lost_sub} of {sent} lost; MAIN: {lost_main} lost");
    if lost_sub != 0 || lost_main != 0 {
        let span = format!("\"camera_id\":\"{id}\"");
        let warned: Vec<String> = nvr
            .log_text()
            .lines()
            .filter(|l| l.contains(&span) && !l.contains("\"level\":\"INFO\""))
            .take(8)
            .map(|l| l.replace('|', "/"))
            .collect();
        d.push_str(&format!("; its worker's warnings: {warned:?}"));
    }
    d
}

pub fn lost(a: Counts, b: Counts) -> (i64, i64, u64) {
    let sent = |x: u64, y: u64| y as i64 - x as i64;
    (
        sent(a.sent_sub, b.sent_sub) - sent(a.got_sub, b.got_sub),
        sent(a.sent_main, b.sent_main) - sent(a.got_main, b.got_main),
        b.sent_sub - a.sent_sub,
    )
}

/// Windows of time in which a camera was disturbed on purpose.
#[derive(Default)]
pub struct Disturbances(Vec<(String, Instant, Instant)>);

impl Disturbances {
    pub fn add(&mut self, camera: &str, from: Instant, to: Instant) {
        self.0.push((camera.into(), from, to));
    }
    pub fn quiet(&self, camera: &str, at: Instant) -> bool {
        let (lo, hi) = (at - QUIET_BEFORE, at + QUIET_AFTER);
        !self
            .0
            .iter()
            .any(|(c, from, to)| (c == camera || c == "*") && *from < hi && *to > lo)
    }
}

/// Checks that every ground-truth onset of `scene` seen by `camera` while it was undisturbed (and
/// after `since`) lies inside one of its clips; returns (eligible, covered, misses).
pub fn onsets_covered(
    fc: &FakeCam,
    rows: &[Value],
    camera: &str,
    scene: &str,
    since: Instant,
    until: Instant,
    disturbed: &Disturbances,
) -> (usize, usize, Vec<String>) {
    let (mut eligible, mut covered, mut misses) = (0, 0, Vec::new());
    for e in fc.events() {
        if e["event"] != "motion_start" || e["scene"] != scene {
            continue;
        }
        let at = fc.instant_of(u64_at(&e, &["mono_ns"]));
        if at < since + QUIET_BEFORE || at + QUIET_AFTER > until || !disturbed.quiet(camera, at) {
            continue;
        }
        eligible += 1;
        let wall_ms = (u64_at(&e, &["wall_ns"]) / 1_000_000) as i64;
        let hit = rows.iter().any(|r| {
            r["camera_id"] == camera
                && r["start"].as_i64().is_some_and(|s| s <= wall_ms)
                && r["end"].as_i64().is_some_and(|e| e >= wall_ms + 1000)
        });
        if hit {
            covered += 1;
        } else {
            // Name the camera's clips around the onset, so a miss says whether the clip was
            // missing, started late or ended early.
            let near: Vec<String> = rows
                .iter()
                .filter(|r| r["camera_id"] == camera)
                .filter_map(|r| Some((r["start"].as_i64()?, r["end"].as_i64().unwrap_or(-1), r)))
                .filter(|(s, e, _)| (*s - wall_ms).abs() < 30_000 || (*e - wall_ms).abs() < 30_000)
                .map(|(s, e, r)| {
                    format!(
                        "{} {:+} ms..{:+} ms {}",
                        str_at(r, &["path"]),
                        s - wall_ms,
                        e - wall_ms,
                        str_at(r, &["state"])
                    )
                })
                .collect();
            let day_ms = wall_ms.rem_euclid(86_400_000);
            let utc = format!(
                "{:02}:{:02}:{:02}.{:03}",
                day_ms / 3_600_000,
                day_ms / 60_000 % 60,
                day_ms / 1000 % 60,
                day_ms % 1000
            );
            misses.push(format!(
                "onset at unix {wall_ms} ms ({utc} UTC); clips near it: {near:?}"
            ));
        }
    }
    (eligible, covered, misses)
}

/// Every finished clip under `out` decodes without an error and its DTS strictly increase; no
/// `.part` is left. Returns (clips, problems).
pub fn check_files(out: &Path) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let parts = files_ending(out, ".part");
    if !parts.is_empty() {
        problems.push(format!("{} .part files left: {parts:?}", parts.len()));
    }
    let clips = files_ending(out, ".mp4");
    for clip in &clips {
        if let Err(e) = decodes_cleanly(clip).and_then(|()| dts_strictly_increase(clip).map(drop)) {
            problems.push(format!("{e:#}"));
            // Keep it for a look: the output directory goes with the run.
            let keep = nvr_tests::fakecam::workspace_root().join("target/reliability/bad");
            let _ = std::fs::create_dir_all(&keep);
            if let Some(name) = clip.file_name() {
                let _ = std::fs::copy(clip, keep.join(name));
            }
        }
    }
    (clips.len(), problems)
}

/// The Unix ms of a clip's name (`<cam>_<YYYYMMDDTHHMMSSZ>[-n].mp4`), to the second.
pub fn clip_start_ms(path: &str) -> Option<i64> {
    let stamp = path.rsplit('_').next()?.get(..16)?;
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let secs = n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + secs) * 1000)
}

pub fn duration_s(clip: &Path) -> f64 {
    probe(clip)
        .ok()
        .and_then(|p| p["format"]["duration"].as_str()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The timeline a missed onset is judged against: `camera`'s motion and recording lines from its
/// worker, and every worker kill, as "HH:MM:SS.mmm camera message", from the supervisor's log.
pub fn timeline(nvr: &Nvr, camera: &str) -> Vec<String> {
    const SHOWN: [&str; 5] = [
        "motion started",
        "motion ended",
        "recording started",
        "recording finished",
        "worker exited; restarting",
    ];
    nvr.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            let from_worker = v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("worker::"));
            let message = v["message"].as_str().unwrap_or("");
            SHOWN.contains(&message)
                && ((v["camera_id"] == camera && from_worker)
                    || message.starts_with("worker exited"))
        })
        .map(|v| {
            let ts = v["timestamp"].as_str().unwrap_or("");
            format!(
                "{} {} {}",
                ts.get(11..23).unwrap_or(ts),
                v["camera_id"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::flat;

    #[test]
    fn flat_fails_on_samples_that_were_never_taken() {
        let steady = [Some(30.0), Some(30.2), Some(30.1), Some(30.0), Some(30.1)];
        assert!(flat(&steady, "MB").0);
        // `/proc` unreadable: nothing, one gap, or all zeros must not pass as flat.
        assert!(!flat(&[], "MB").0);
        assert!(!flat(&[None, None, None], "MB").0);
        assert!(!flat(&[Some(30.0), None, Some(30.0)], "MB").0);
        assert!(!flat(&[Some(0.0), Some(0.0), Some(0.0)], "fds").0);
        // And growth still fails.
        assert!(!flat(&[Some(30.0), Some(32.0), Some(34.0)], "MB").0);
    }
}
