//! Fault injection against the real NVR, with figures: `reliability [--full] [--out RELIABILITY.md]`.
//!
//! Each phase starts a real supervisor (and its workers) against the fake cameras, does something
//! bad to it, and judges the outcome from outside: `/status`, the fake camera's own counts and
//! ground truth, the files on disk (ffmpeg), `/proc`. Phases:
//!
//! - `faults`: kill -9 random workers (half of them mid-recording), then stop and restart the camera
//!   server, then jump the cameras' clocks forward and back.
//! - `bad`: cameras that send garbage, stall, refuse the password, or send a codec that cannot be
//!   recorded, beside a good one; RSS sampled throughout.
//! - `disk`: the output on a read-only bind mount, then on a full file system, then back.
//! - `supervisor`: the supervisor SIGKILLed mid-recording, then started again.
//! - `soak`: several cameras for a while; RSS and file descriptors sampled.
//!
//! The default counts are the small CI version (the `reliability` integration test runs it);
//! `--full` runs the counts the issue asks for and takes about an hour. With `--out FILE` the report
//! replaces the part of FILE between the `<!-- reliability:begin -->` and `<!-- reliability:end -->`
//! markers. The exit code is 1 if any check failed.

use anyhow::{bail, Context, Result};
use nvr_tests::clipcheck::{decodes_cleanly, dts_strictly_increase, files_ending, probe};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{alive, signal, wait_until, Nvr, TempDir};
use nvr_tests::procstat::{median, rss_mb};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HEARTBEAT_S: f64 = 0.5;
/// The fake cameras' MAIN GOP: a clip cut by kill -9 may lose the fragment being written.
const GOP_MS: i64 = 2000;
/// An onset counts only if its camera was undisturbed (no kill, outage or clock jump) from this
/// long before it (reconnect, first keyframe, the detector's background) ...
const QUIET_BEFORE: Duration = Duration::from_secs(8);
/// ... to this long after it.
const QUIET_AFTER: Duration = Duration::from_secs(3);
const BEGIN: &str = "<!-- reliability:begin -->";
const END: &str = "<!-- reliability:end -->";

struct Args {
    full: bool,
    kills: usize,
    server_restarts: usize,
    bad_s: u64,
    soak_s: u64,
    soak_cameras: usize,
    seed: u64,
    phases: Vec<String>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        full: false,
        kills: 10,
        server_restarts: 3,
        bad_s: 60,
        soak_s: 120,
        soak_cameras: 4,
        seed: SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1,
        phases: ["faults", "bad", "disk", "supervisor", "soak"]
            .map(String::from)
            .to_vec(),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--full" => {
                a.full = true;
                a.kills = 100;
                a.server_restarts = 20;
                a.bad_s = 600;
                a.soak_s = 3600;
                a.soak_cameras = 8;
            }
            "--kills" => a.kills = value()?.parse()?,
            "--server-restarts" => a.server_restarts = value()?.parse()?,
            "--bad-seconds" => a.bad_s = value()?.parse()?,
            "--soak-seconds" => a.soak_s = value()?.parse()?,
            "--soak-cameras" => a.soak_cameras = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--phases" => a.phases = value()?.split(',').map(String::from).collect(),
            "--out" => a.out = Some(value()?.into()),
            other => bail!(
                "unknown argument {other}; usage: reliability [--full] [--kills N] \
                 [--server-restarts N] [--bad-seconds S] [--soak-seconds S] [--soak-cameras N] \
                 [--seed N] [--phases faults,bad,disk,supervisor,soak] [--out FILE]"
            ),
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Small tools.

/// xorshift64*: reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn log(msg: impl AsRef<str>) {
    eprintln!("reliability: {}", msg.as_ref());
}

fn s(v: &Value, path: &[&str]) -> String {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or_default().to_string()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}

/// A phase's results: figures to report and checks that pass or fail.
struct Section {
    title: String,
    figures: Vec<(String, String)>,
    checks: Vec<(String, bool, String)>,
}

impl Section {
    fn new(title: &str) -> Self {
        Section {
            title: title.into(),
            figures: Vec::new(),
            checks: Vec::new(),
        }
    }
    fn figure(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        log(format!("{}: {name}: {value}", self.title));
        self.figures.push((name.into(), value));
    }
    fn check(&mut self, what: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        log(format!(
            "{}: {} {what}: {detail}",
            self.title,
            if ok { "PASS" } else { "FAIL" }
        ));
        self.checks.push((what.into(), ok, detail));
    }
    fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.1)
    }
    fn markdown(&self) -> String {
        let mut md = format!("### {}\n\n", self.title);
        if !self.figures.is_empty() {
            md.push_str("| figure | value |\n|---|---|\n");
            for (k, v) in &self.figures {
                md.push_str(&format!("| {k} | {v} |\n"));
            }
            md.push('\n');
        }
        md.push_str("| check | result | detail |\n|---|---|---|\n");
        for (what, ok, detail) in &self.checks {
            let detail = detail.replace('|', "\\|").replace('\n', " ");
            let r = if *ok { "pass" } else { "**FAIL**" };
            md.push_str(&format!("| {what} | {r} | {detail} |\n"));
        }
        md.push('\n');
        md
    }
}

/// (median of the first third, median of the last third, growth in percent) of samples: a clip
/// being written holds a GOP in memory, so single samples jump by a few MB either way.
fn growth(v: &[f64]) -> (f64, f64, f64) {
    let third = v.len().div_ceil(3).max(1);
    let (early, late) = (median(&v[..third]), median(&v[v.len() - third..]));
    (early, late, (late - early) / early.max(1e-9) * 100.0)
}

fn stats_ms(v: &[f64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    format!(
        "p50 {:.0} ms, max {:.0} ms (n = {})",
        median(v),
        max,
        v.len()
    )
}

/// The `/status` entries by camera id.
fn cameras(nvr: &Nvr) -> BTreeMap<String, Value> {
    nvr.status()["cameras"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (s(&c, &["id"]), c))
        .collect()
}

fn stream_up(c: &Value, stream: &str) -> bool {
    c["state"] == "running" && c["worker"][stream]["state"] == "up"
}

fn pid_of(c: &Value) -> u32 {
    c["pid"].as_u64().unwrap_or(0) as u32
}

fn recording(c: &Value) -> bool {
    c["worker"]["recording"]["state"] == "recording"
}

/// Every clip in the index, finished or not.
fn indexed(nvr: &Nvr) -> Vec<Value> {
    nvr.get_json("/api/recordings")
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A camera config on fake camera mounts, recording motion with a short pre- and post-roll.
fn camera(id: &str, fc: &FakeCam, main: &str, sub: &str) -> Value {
    json!({
        "id": id, "main_url": fc.url(main), "sub_url": fc.url(sub),
        "motion": {"post_motion_s": 1, "min_area": 0.5},
        "recording": {"pre_roll_s": 3, "post_roll_s": 2},
    })
}

fn base_config(cameras: Vec<Value>) -> Value {
    json!({
        "heartbeat_interval_s": HEARTBEAT_S,
        // Short restart delays that reset quickly: each kill exercises a restart, not the cap.
        "restart": {"initial_s": 0.5, "max_s": 5, "reset_after_s": 1, "intensity": 10000, "period_s": 60},
        "retention": {"min_free_gb": 0},
        "cameras": cameras,
    })
}

/// Frames the fake camera pushed into two mounts and the frames/packets a camera's worker counted,
/// read with the camera paused so that nothing is in flight.
#[derive(Clone, Copy, Debug)]
struct Counts {
    sent_sub: u64,
    sent_main: u64,
    got_sub: u64,
    got_main: u64,
}

fn settled_counts(fc: &mut FakeCam, nvr: &Nvr, id: &str, sub: &str, main: &str) -> Result<Counts> {
    fc.command("pause")?;
    // In-flight frames arrive and are decoded, and heartbeats report them: settled once the
    // worker's counts hold still for three heartbeats (a loaded machine may be seconds behind).
    let got = || {
        let c = nvr.camera(id);
        (
            u(&c, &["worker", "sub", "frames"]),
            u(&c, &["worker", "main", "frames"]),
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
    Ok(Counts {
        sent_sub: u(&ack, &["pushed", &format!("/{sub}")]),
        sent_main: u(&ack, &["pushed", &format!("/{main}")]),
        got_sub: last.0,
        got_main: last.1,
    })
}

/// The loss figures, and when something was lost, what the camera's worker warned about.
fn lost_detail(lost_sub: i64, lost_main: i64, sent: u64, nvr: &Nvr, id: &str) -> String {
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

fn lost(a: Counts, b: Counts) -> (i64, i64, u64) {
    let sent = |x: u64, y: u64| y as i64 - x as i64;
    (
        sent(a.sent_sub, b.sent_sub) - sent(a.got_sub, b.got_sub),
        sent(a.sent_main, b.sent_main) - sent(a.got_main, b.got_main),
        b.sent_sub - a.sent_sub,
    )
}

/// Windows of time in which a camera was disturbed on purpose.
#[derive(Default)]
struct Disturbances(Vec<(String, Instant, Instant)>);

impl Disturbances {
    fn add(&mut self, camera: &str, from: Instant, to: Instant) {
        self.0.push((camera.into(), from, to));
    }
    fn quiet(&self, camera: &str, at: Instant) -> bool {
        let (lo, hi) = (at - QUIET_BEFORE, at + QUIET_AFTER);
        !self
            .0
            .iter()
            .any(|(c, from, to)| (c == camera || c == "*") && *from < hi && *to > lo)
    }
}

/// Checks that every ground-truth onset of `scene` seen by `camera` while it was undisturbed (and
/// after `since`) lies inside one of its clips; returns (eligible, covered, misses).
fn onsets_covered(
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
        let at = fc.instant_of(u(&e, &["mono_ns"]));
        if at < since + QUIET_BEFORE || at + QUIET_AFTER > until || !disturbed.quiet(camera, at) {
            continue;
        }
        eligible += 1;
        let wall_ms = (u(&e, &["wall_ns"]) / 1_000_000) as i64;
        let hit = rows.iter().any(|r| {
            r["camera_id"] == camera
                && r["start"].as_i64().is_some_and(|s| s <= wall_ms)
                && r["end"].as_i64().is_some_and(|e| e >= wall_ms + 1000)
        });
        if hit {
            covered += 1;
        } else {
            misses.push(format!("onset at unix {wall_ms} ms"));
        }
    }
    (eligible, covered, misses)
}

/// Every finished clip under `out` decodes without an error and its DTS strictly increase; no
/// `.part` is left. Returns (clips, problems).
fn check_files(out: &Path) -> (usize, Vec<String>) {
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
fn clip_start_ms(path: &str) -> Option<i64> {
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

fn duration_s(clip: &Path) -> f64 {
    probe(clip)
        .ok()
        .and_then(|p| p["format"]["duration"].as_str()?.parse().ok())
        .unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// Phase: worker kills, camera server restarts, clock jumps.

fn phase_faults(args: &Args, rng: &mut Rng, sec: &mut Section) -> Result<()> {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["motion", "small"]))?;
    let cams = vec![
        camera("k1", &fc, "motion/main", "motion/sub"),
        camera("k2", &fc, "small/main", "small/sub"),
        camera("w", &fc, "motion/main_h265", "motion/sub_h265"),
    ];
    let scene_of = [("k1", "motion"), ("k2", "small"), ("w", "motion")];
    let nvr = Nvr::start(base_config(cams), &[]);
    let started = Instant::now();
    wait_until(Duration::from_secs(30), "all cameras up", || {
        let c = cameras(&nvr);
        c.values()
            .all(|c| stream_up(c, "sub") && stream_up(c, "main"))
            .then_some(())
    });
    let mut disturbed = Disturbances::default();

    // 1. Kills. The witness `w` is never killed: it must not lose a frame.
    let before = settled_counts(&mut fc, &nvr, "w", "motion/sub_h265", "motion/main_h265")?;
    let (mut restart_ms, mut cut) = (Vec::new(), Vec::new());
    let mut mid_recording = 0;
    for i in 0..args.kills {
        let victim = ["k1", "k2"][rng.below(2) as usize];
        if rng.below(2) == 0 {
            // Aim at a recording (a box crosses every 20 s), at a random point in it.
            let _ = wait_for(&nvr, victim, Duration::from_secs(25), recording);
            thread::sleep(rng.millis(0, 3000));
        } else {
            thread::sleep(rng.millis(300, 4000));
        }
        let c = nvr.camera(victim);
        let pid = pid_of(&c);
        let file = s(&c, &["worker", "recording", "current_file"]);
        let (t, wall) = (Instant::now(), unix_ms());
        signal(pid, "KILL");
        wait_until(
            Duration::from_secs(30),
            &format!("kill {i}: {victim} to come back"),
            || {
                let c = nvr.camera(victim);
                (pid_of(&c) != pid && stream_up(&c, "sub")).then_some(())
            },
        );
        restart_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        disturbed.add(victim, t, Instant::now());
        if recording(&c) && !file.is_empty() {
            mid_recording += 1;
            cut.push((victim, file.trim_end_matches(".part").to_string(), wall));
        }
    }
    let after = settled_counts(&mut fc, &nvr, "w", "motion/sub_h265", "motion/main_h265")?;
    sec.figure("workers killed (kill -9)", format!("{}", args.kills));
    sec.figure("… of them mid-recording", format!("{mid_recording}"));
    sec.figure("kill → worker back with SUB frames", stats_ms(&restart_ms));
    let (lost_sub, lost_main, sent) = lost(before, after);
    sec.check(
        "every killed worker came back",
        restart_ms.len() == args.kills,
        format!("{} of {}", restart_ms.len(), args.kills),
    );
    sec.check(
        "the camera never killed lost no frame (against the fake camera's count of frames sent)",
        lost_sub == 0 && lost_main == 0 && sent > 0,
        lost_detail(lost_sub, lost_main, sent, &nvr, "w"),
    );
    let w = nvr.camera("w");
    sec.check(
        "the camera never killed was never restarted",
        u(&w, &["restarts"]) == 0,
        format!("restarts = {}", u(&w, &["restarts"])),
    );

    // 2. Camera server restarts: the workers reconnect by themselves.
    let pids: Vec<u32> = cameras(&nvr).values().map(pid_of).collect();
    let mut reconnect_ms = Vec::new();
    let mut while_recording = 0;
    for _ in 0..args.server_restarts {
        thread::sleep(rng.millis(1000, 8000));
        if cameras(&nvr).values().any(recording) {
            while_recording += 1;
        }
        let down = Instant::now();
        fc.command("stop")?;
        thread::sleep(rng.millis(200, 3000));
        fc.command("start")?;
        let back = Instant::now();
        wait_until(Duration::from_secs(60), "all cameras to reconnect", || {
            let c = cameras(&nvr);
            c.values()
                .all(|c| stream_up(c, "sub") && stream_up(c, "main"))
                .then_some(())
        });
        reconnect_ms.push(back.elapsed().as_secs_f64() * 1000.0);
        disturbed.add("*", down, Instant::now());
    }
    let pids_after: Vec<u32> = cameras(&nvr).values().map(pid_of).collect();
    sec.figure(
        "camera server restarts",
        format!("{}", args.server_restarts),
    );
    sec.figure(
        "… while a camera was recording",
        format!("{while_recording}"),
    );
    sec.figure("server back → all streams up", stats_ms(&reconnect_ms));
    sec.check(
        "the workers reconnected without being restarted",
        pids == pids_after && reconnect_ms.len() == args.server_restarts,
        format!("pids before {pids:?}, after {pids_after:?}"),
    );

    // 3. Clock jumps mid-recording: +30 s, then -20 s, while the box crosses.
    let since = fc.n_events();
    fc.wait_event_since(
        since,
        |e| e["event"] == "motion_start" && e["scene"] == "motion",
        Duration::from_secs(25),
    )?;
    thread::sleep(Duration::from_millis(2500));
    let jump_at = Instant::now();
    let jump_wall = unix_ms();
    fc.command("jump 30")?;
    thread::sleep(Duration::from_secs(3));
    fc.command("jump -20")?;
    disturbed.add("*", jump_at, Instant::now() + Duration::from_secs(1));

    // Let every clip end, then judge.
    thread::sleep(Duration::from_secs(2));
    wait_until(Duration::from_secs(60), "every recording to end", || {
        (!cameras(&nvr).values().any(recording)).then_some(())
    });
    let until = Instant::now();
    let rows = indexed(&nvr);
    let out = nvr.output_dir();
    let (mut bad_cuts, mut too_young, mut lost_ms) = (Vec::new(), 0, Vec::new());
    for (cam, file, kill_ms) in &cut {
        let row = rows.iter().find(|r| r["path"] == file.as_str());
        let end = row.and_then(|r| r["end"].as_i64());
        let ok = row.is_some_and(|r| r["state"] == "finished")
            && end.is_some_and(|e| e >= kill_ms - GOP_MS - 500 && e <= kill_ms + 1000);
        // A clip killed before its first fragment reached the disk (less than a GOP old, e.g.
        // right after a restart, with an empty pre-roll) has nothing to keep: it is set aside.
        let young = clip_start_ms(file).is_some_and(|s| s >= kill_ms - GOP_MS - 1000)
            && out.join(format!("{file}.broken")).exists();
        if ok {
            lost_ms.extend(end.map(|e| (kill_ms - e).max(0) as f64));
        }
        if young {
            too_young += 1;
        } else if !ok {
            bad_cuts.push(format!(
                "{cam} {file} killed at {kill_ms}: index has {row:?}"
            ));
        }
    }
    sec.figure("cut clip: kill → its last frame kept", stats_ms(&lost_ms));
    sec.check(
        "every clip cut by a kill was finished and indexed after the restart, and plays to within one GOP of the kill",
        bad_cuts.is_empty(),
        format!(
            "{} clips cut, {} of them less than a GOP old (nothing on disk yet: set aside as .broken); {}",
            cut.len(),
            too_young,
            bad_cuts.join("; ")
        ),
    );
    let jumped: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["start"].as_i64().is_some_and(|s| s <= jump_wall)
                && r["end"].as_i64().is_some_and(|e| e >= jump_wall)
        })
        .collect();
    let durations: Vec<String> = jumped
        .iter()
        .map(|r| format!("{:.1}", duration_s(&out.join(s(r, &["path"])))))
        .collect();
    let sane = jumped
        .iter()
        .all(|r| duration_s(&out.join(s(r, &["path"]))) < 30.0);
    sec.check(
        "clips across clock jumps (+30 s, -20 s) keep their real length (the files' DTS are checked below)",
        !jumped.is_empty() && sane,
        format!("{} clips, durations {durations:?} s", jumped.len()),
    );
    for (cam, scene) in scene_of {
        let (eligible, covered, misses) =
            onsets_covered(&fc, &rows, cam, scene, started, until, &disturbed);
        // The victims may have had no undisturbed onset at all; the witness always has.
        sec.check(
            &format!("{cam}: every motion onset away from a fault has a clip that covers it"),
            covered == eligible && (eligible > 0 || cam != "w"),
            format!("{covered} of {eligible} {misses:?}"),
        );
    }
    let mut nvr = nvr;
    stop(&mut nvr, "faults")?; // SIGTERM: finishes what is open.
    let (n, problems) = check_files(&out);
    sec.check(
        "every file plays (ffmpeg -xerror), DTS strictly increase, no .part left",
        problems.is_empty() && n > 0,
        format!("{n} clips; {}", problems.join("; ")),
    );
    Ok(())
}

/// Stops the supervisor (SIGTERM) and keeps its log in `target/reliability/<phase>.log`.
fn stop(nvr: &mut Nvr, phase: &str) -> Result<()> {
    let status = nvr.terminate();
    let dir = nvr_tests::fakecam::workspace_root().join("target/reliability");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{phase}.log")), nvr.log_text())?;
    let status = status?;
    if !status.success() {
        bail!("the supervisor exited with {status}");
    }
    Ok(())
}

fn wait_for(
    nvr: &Nvr,
    id: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let c = nvr.camera(id);
        if pred(&c) {
            return Some(c);
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Phase: bad cameras.

#[derive(Clone, Copy)]
enum Bad {
    Garbage,
    Stall,
}

/// A TCP server that misbehaves like a broken camera; records each connection's stream (`main`,
/// `sub`) and time.
struct BadServer {
    port: u16,
    /// (stream, connected, closed) per connection.
    attempts: Arc<Attempts>,
}

impl BadServer {
    fn start(kind: Bad) -> Result<BadServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&attempts);
        thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let log = Arc::clone(&log);
                thread::spawn(move || serve_badly(conn, kind, &log));
            }
        });
        Ok(BadServer { port, attempts })
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// Seconds from the end of each connection to `stream` to the start of the next: the
    /// client's backoff.
    fn waits(&self, stream: &str) -> Vec<f64> {
        let mut a: Vec<_> = self.attempts.lock().unwrap().clone();
        a.sort_by_key(|x| x.1);
        let mine: Vec<_> = a.iter().filter(|x| x.0 == stream).collect();
        mine.windows(2)
            .map(|w| w[1].1.saturating_duration_since(w[0].2).as_secs_f64())
            .collect()
    }
}

/// (stream, connected, closed) of each connection a bad server took.
type Attempts = Mutex<Vec<(String, Instant, Instant)>>;

fn serve_badly(conn: TcpStream, kind: Bad, log: &Attempts) {
    let at = Instant::now();
    let stream = misbehave(conn, kind);
    log.lock().unwrap().push((stream, at, Instant::now()));
}

/// Reads the request, then sends garbage or nothing until the client hangs up; returns the stream
/// the request named.
fn misbehave(mut conn: TcpStream, kind: Bad) -> String {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    let stream = head
        .split_whitespace()
        .nth(1)
        .and_then(|url| url.rsplit('/').next())
        .unwrap_or("?")
        .to_string();
    let mut rng = Rng(unix_ms() as u64 | 0x9e37);
    match kind {
        Bad::Garbage => {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
                if conn.write_all(&junk).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Bad::Stall => {
            // Hold the connection, say nothing, until the client gives up.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
    stream
}

fn phase_bad(args: &Args, sec: &mut Section) -> Result<()> {
    let (user, pw) = ("admin", "right-pw-4471");
    let mut fc = FakeCam::start(FakeCamOpts {
        auth: Some((user.into(), pw.into())),
        ..FakeCamOpts::scenes(&["motion", "small"])
    })?;
    let garbage = BadServer::start(Bad::Garbage)?;
    let stall = BadServer::start(Bad::Stall)?;
    let with_login = |mut c: Value, password: &str| {
        c["username"] = user.into();
        c["password"] = password.into();
        c
    };
    let cams = vec![
        json!({"id": "garbage", "main_url": garbage.url("garbage/main"), "sub_url": garbage.url("garbage/sub")}),
        json!({"id": "stall", "main_url": stall.url("stall/main"), "sub_url": stall.url("stall/sub")}),
        with_login(
            camera("unauth", &fc, "motion/main_h265", "motion/sub_h265"),
            "wrong-pw-1234",
        ),
        with_login(camera("mjpeg", &fc, "motion/mjpeg", "motion/sub"), pw),
        with_login(camera("good", &fc, "small/main", "small/sub"), pw),
    ];
    let nvr = Nvr::start(base_config(cams), &[]);
    let started = Instant::now();
    wait_until(Duration::from_secs(30), "the good camera up", || {
        let c = nvr.camera("good");
        (stream_up(&c, "sub") && stream_up(&c, "main")).then_some(())
    });
    let before = settled_counts(&mut fc, &nvr, "good", "small/sub", "small/main")?;
    let sample_every = Duration::from_secs(if args.full { 30 } else { 5 });
    let warm_up = Duration::from_secs(20);
    let mut rss: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut next = Instant::now() + warm_up;
    while started.elapsed() < Duration::from_secs(args.bad_s) {
        if Instant::now() >= next {
            for (id, c) in cameras(&nvr) {
                rss.entry(id).or_default().push(rss_mb(pid_of(&c)).0);
            }
            rss.entry("supervisor".into())
                .or_default()
                .push(rss_mb(nvr.pid()).0);
            next += sample_every;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let after = settled_counts(&mut fc, &nvr, "good", "small/sub", "small/main")?;
    let until = Instant::now();
    let c = cameras(&nvr);
    sec.figure(
        "run",
        format!(
            "{} s, RSS sampled every {} s after {} s",
            args.bad_s,
            sample_every.as_secs(),
            warm_up.as_secs()
        ),
    );
    let state = |id: &str, stream: &str| {
        format!(
            "{}: {}",
            s(&c[id], &["worker", stream, "state"]),
            s(&c[id], &["worker", stream, "last_error"])
        )
    };
    // Between attempts a stream is `down`; during one, `connecting` with the last failure kept.
    for (id, stream, want, says) in [
        ("garbage", "sub", "down", "no valid RTSP answer"),
        ("stall", "sub", "down", "no valid RTSP answer"),
        ("unauth", "sub", "unauthorized", "refused the credentials"),
        (
            "mjpeg",
            "main",
            "down",
            "cannot be recorded without transcoding",
        ),
    ] {
        let st = state(id, stream);
        let state_ok = st.starts_with(&format!("{want}: ")) || st.starts_with("connecting: ");
        sec.check(
            &format!("{id}: {stream} shows a clear state"),
            state_ok && st.contains(says),
            st,
        );
    }
    sec.check(
        "mjpeg: its SUB (H.264) is decoded all the same",
        stream_up(&c["mjpeg"], "sub"),
        state("mjpeg", "sub"),
    );
    let mjpeg_files = files_ending(&nvr.output_dir().join("mjpeg"), ".mp4").len()
        + files_ending(&nvr.output_dir().join("mjpeg"), ".part").len();
    sec.check(
        "mjpeg: no file is written",
        mjpeg_files == 0,
        format!("{mjpeg_files} files"),
    );
    let restarts: Vec<String> = c
        .iter()
        .map(|(id, c)| format!("{id} {}", u(c, &["restarts"])))
        .collect();
    sec.check(
        "no worker restarted (no crash loop)",
        c.values()
            .all(|c| u(c, &["restarts"]) == 0 && c["state"] == "running"),
        restarts.join(", "),
    );
    for (name, server) in [("garbage", &garbage), ("stall", &stall)] {
        for stream in ["sub", "main"] {
            let waits = server.waits(stream);
            let shown: Vec<String> = waits.iter().map(|x| format!("{x:.1}")).collect();
            // Backoff: the waits grow (a little jitter allowed) and end well above the first.
            let grows = waits.windows(2).all(|w| w[1] >= w[0] - 0.5);
            let ok = waits.len() >= 2 && grows && waits.last() >= Some(&(waits[0] * 3.0));
            sec.check(
                &format!("{name}/{stream}: retried with backoff"),
                ok,
                format!(
                    "{} attempts; seconds from one giving up to the next: {}",
                    waits.len() + 1,
                    shown.join(", ")
                ),
            );
        }
    }
    for (id, v) in &rss {
        let (early, late, growth) = growth(v);
        sec.check(
            &format!("{id}: RSS flat (RssAnon+RssFile)"),
            growth < 5.0,
            format!(
                "{early:.1} MB → {late:.1} MB ({growth:+.1} %), {} samples",
                v.len()
            ),
        );
    }
    let (lost_sub, lost_main, sent) = lost(before, after);
    sec.check(
        "good: lost no frame beside the bad cameras",
        lost_sub == 0 && lost_main == 0 && sent > 0,
        lost_detail(lost_sub, lost_main, sent, &nvr, "good"),
    );
    thread::sleep(Duration::from_secs(5)); // let the last clip end
    let rows = indexed(&nvr);
    let (eligible, covered, misses) = onsets_covered(
        &fc,
        &rows,
        "good",
        "small",
        started,
        until,
        &Disturbances::default(),
    );
    sec.check(
        "good: every motion onset has a clip",
        eligible > 0 && covered == eligible,
        format!("{covered} of {eligible} {misses:?}"),
    );
    let mut nvr = nvr;
    stop(&mut nvr, "bad")?;
    let log = nvr.log_text();
    sec.check(
        "the camera password is in no log line",
        !log.contains(pw) && !log.contains("wrong-pw-1234"),
        format!("{} bytes of log searched", log.len()),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phase: a read-only output, then a full one.

/// Mounts (`mount ...`), undone in reverse order when dropped.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn run(args: &[&str]) -> Result<()> {
        let out = Command::new("mount").args(args).output()?;
        if !out.status.success() {
            bail!(
                "mount {args:?} failed (this phase needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(dir).status();
        }
    }
}

fn fill(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path)?;
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    Ok(path)
}

/// Makes the bind mount at `dir` read-only (or writable again). The kernel refuses (EBUSY) while a
/// file is open for writing on it, so this waits for the recorder to be between clips.
fn set_read_only(nvr: &Nvr, dir: &str, ro: bool) -> Result<()> {
    let opts = if ro {
        "remount,ro,bind"
    } else {
        "remount,rw,bind"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if !recording(&nvr.camera("d")) && Mounts::run(&["-o", opts, dir]).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Mounts::run(&["-o", opts, dir]);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn files(c: &Value) -> u64 {
    u(c, &["worker", "recording", "files"])
}

/// Waits (up to 40 s) for camera `d`'s recorder to report an error, records how long that took as
/// `figure`, and returns the error ("" if none came).
fn recorder_error(nvr: &Nvr, sec: &mut Section, figure: &str) -> String {
    let error_of = |c: &Value| {
        (c["worker"]["recording"]["state"] == "error")
            .then(|| s(c, &["worker", "recording", "last_error"]))
    };
    let t = Instant::now();
    let said = wait_for(nvr, "d", Duration::from_secs(40), |c| error_of(c).is_some())
        .and_then(|c| error_of(&c))
        .unwrap_or_default();
    sec.figure(figure, format!("{:.1} s", t.elapsed().as_secs_f64()));
    said
}

/// Whether camera `d` finishes another clip within a minute.
fn next_clip(nvr: &Nvr) -> bool {
    let n = files(&nvr.camera("d"));
    wait_for(nvr, "d", Duration::from_secs(60), |c| files(c) > n).is_some()
}

fn phase_disk(sec: &mut Section) -> Result<()> {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"]))?;
    let dir = TempDir::new("reliability-disk");
    // The camera's directory is a bind mount of a small tmpfs. (The whole output directory cannot
    // be made read-only under a running supervisor: its index database is open for writing.)
    let (fs, out) = (dir.path().join("fs"), dir.path().join("output"));
    let cam_dir = out.join("d");
    std::fs::create_dir_all(&fs)?;
    std::fs::create_dir_all(&cam_dir)?;
    let mut mounts = Mounts(Vec::new());
    let fs_s = fs.to_string_lossy().to_string();
    let cam_s = cam_dir.to_string_lossy().to_string();
    Mounts::run(&["-t", "tmpfs", "-o", "size=64m", "tmpfs", &fs_s])?;
    mounts.0.push(fs.clone());
    Mounts::run(&["--bind", &fs_s, &cam_s])?;
    mounts.0.push(cam_dir.clone());
    let cam = camera("d", &fc, "motion/main", "motion/sub");
    let mut cfg = base_config(vec![cam]);
    cfg["output_dir"] = out.to_string_lossy().to_string().into();
    let nvr = Nvr::start_in(dir, cfg, &[]);
    let c =
        wait_for(&nvr, "d", Duration::from_secs(45), |c| files(c) >= 1).context("no first clip")?;
    let pid = pid_of(&c);

    // Read-only, between clips: the next motion cannot be recorded.
    set_read_only(&nvr, &cam_s, true)?;
    let said = recorder_error(&nvr, sec, "read-only, next motion → error in /status");
    sec.check(
        "read-only output: the recorder shows an error that says so",
        said.to_lowercase().contains("read-only"),
        said,
    );
    let (code, _) = nvr.get_json("/health");
    sec.check(
        "read-only output: the supervisor answers, the worker is not restarted",
        pid_of(&nvr.camera("d")) == pid,
        format!("/health {code}"),
    );
    set_read_only(&nvr, &cam_s, false)?;
    sec.check(
        "read-only output: recording resumes when writable again",
        next_clip(&nvr),
        "",
    );

    // Full: a filler file takes the rest of the space.
    let filler = fill(&fs)?;
    let said = recorder_error(&nvr, sec, "disk full, next write → error in /status");
    sec.check(
        "full output: the recorder shows `disk full`",
        said.contains("disk full"),
        said,
    );
    std::fs::remove_file(&filler)?;
    sec.check(
        "full output: recording resumes when space returns",
        next_clip(&nvr),
        "",
    );
    sec.check(
        "the worker never restarted",
        pid_of(&nvr.camera("d")) == pid,
        format!("restarts {}", u(&nvr.camera("d"), &["restarts"])),
    );
    let mut nvr = nvr;
    nvr.restart(&[]); // a `.part` that could not be finished is recovered on start
    thread::sleep(Duration::from_secs(3));
    stop(&mut nvr, "disk")?;
    let (n, problems) = check_files(&out);
    let broken = files_ending(&out, ".broken").len();
    sec.check(
        "every file left plays, none half-written (.part) or kept aside (.broken)",
        problems.is_empty() && broken == 0 && n > 0,
        format!("{n} clips, {broken} .broken; {}", problems.join("; ")),
    );
    drop(mounts);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phase: supervisor SIGKILLed.

fn phase_supervisor(sec: &mut Section) -> Result<()> {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"]))?;
    let mut a = camera("a", &fc, "motion/main", "motion/sub");
    a["recording"] = json!({"mode": "continuous", "max_segment_s": 5});
    let mut b = camera("b", &fc, "motion/main_h265", "motion/sub_h265");
    b["recording"] = json!({"mode": "continuous", "max_segment_s": 5});
    let mut nvr = Nvr::start(base_config(vec![a, b]), &[]);
    for id in ["a", "b"] {
        wait_for(&nvr, id, Duration::from_secs(40), |c| {
            u(c, &["worker", "recording", "files"]) >= 1 && recording(c)
        })
        .with_context(|| format!("{id} never recorded"))?;
    }
    thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = cameras(&nvr).values().map(pid_of).collect();
    let t = Instant::now();
    nvr.kill();
    let gone = (0..200).find(|_| {
        thread::sleep(Duration::from_millis(50));
        pids.iter().all(|p| !alive(*p))
    });
    let exit_s = t.elapsed().as_secs_f64();
    sec.figure(
        "supervisor SIGKILL → all workers gone",
        format!("{exit_s:.2} s"),
    );
    sec.check(
        "workers exit by themselves (no orphans)",
        gone.is_some(),
        format!("pids {pids:?}"),
    );
    let left: Vec<String> = ["a", "b"]
        .iter()
        .filter_map(|id| shm_bus::segment_path(id).ok())
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    sec.check(
        "their shared-memory segments are removed",
        left.is_empty(),
        format!("{left:?}"),
    );
    let out = nvr.output_dir();
    let parts = files_ending(&out, ".part");
    sec.figure(
        ".part files left by the killed supervisor's workers",
        format!("{}", parts.len()),
    );
    // What the restarted supervisor must know: the files finished before, and those `.part`s.
    let on_disk: Vec<String> = files_ending(&out, ".mp4")
        .iter()
        .chain(&parts)
        .filter_map(|p| p.strip_prefix(&out).ok())
        .map(|p| {
            p.display()
                .to_string()
                .trim_end_matches(".part")
                .to_string()
        })
        .collect();
    nvr.restart(&[]);
    thread::sleep(Duration::from_secs(3));
    let rows = indexed(&nvr);
    stop(&mut nvr, "supervisor")?;
    let missing: Vec<&String> = on_disk
        .iter()
        .filter(|f| {
            !rows
                .iter()
                .any(|r| r["path"] == f.as_str() && r["state"] == "finished")
        })
        .collect();
    sec.check(
        "after the next start every finished file is in the index",
        missing.is_empty() && !on_disk.is_empty(),
        format!("{} files, not indexed: {missing:?}", on_disk.len()),
    );
    let (n, problems) = check_files(&out);
    sec.check(
        "every file plays, no .part left",
        problems.is_empty() && n > 0,
        format!("{n} clips; {}", problems.join("; ")),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phase: soak.

fn fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()) as f64
}

fn phase_soak(args: &Args, sec: &mut Section) -> Result<()> {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion", "small", "lights", "clock"]))?;
    let mounts = [
        ("motion/main", "motion/sub", "motion"),
        ("small/main", "small/sub", "small"),
        ("motion/main_h265", "motion/sub_h265", "motion"),
        ("lights/main", "lights/sub", ""),
        ("clock/main", "clock/sub", ""),
    ];
    let cams: Vec<(String, &str, &str, &str)> = (0..args.soak_cameras)
        .map(|i| {
            let (m, s, scene) = mounts[i % mounts.len()];
            (format!("s{i}"), m, s, scene)
        })
        .collect();
    let cfg = base_config(
        cams.iter()
            .map(|(id, m, s, _)| camera(id, &fc, m, s))
            .collect(),
    );
    let nvr = Nvr::start(cfg, &[]);
    let started = Instant::now();
    let warm_up = Duration::from_secs(if args.full { 300 } else { 40 });
    let every = Duration::from_secs(if args.full { 60 } else { 10 });
    let mut samples: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut next = started + warm_up;
    while started.elapsed() < Duration::from_secs(args.soak_s) {
        if Instant::now() >= next {
            let mut pids: Vec<(String, u32)> = cameras(&nvr)
                .into_iter()
                .map(|(id, c)| (id, pid_of(&c)))
                .collect();
            pids.push(("supervisor".into(), nvr.pid()));
            for (id, pid) in pids {
                let e = samples.entry(id).or_default();
                e.0.push(rss_mb(pid).0);
                e.1.push(fds(pid));
            }
            next += every;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let until = Instant::now();
    let c = cameras(&nvr);
    sec.figure(
        "run",
        format!(
            "{} cameras, {} s; RSS and fds sampled every {} s after a {} s warm-up",
            args.soak_cameras,
            args.soak_s,
            every.as_secs(),
            warm_up.as_secs()
        ),
    );
    for (id, (rss, fd)) in &samples {
        let (r0, r1, rg) = growth(rss);
        let (f0, f1, fg) = growth(fd);
        sec.check(
            &format!("{id}: RSS and file descriptors do not grow (< 5 %)"),
            rg < 5.0 && fg < 5.0,
            format!(
                "RSS {r0:.1} → {r1:.1} MB ({rg:+.1} %), fds {f0} → {f1}, {} samples",
                rss.len()
            ),
        );
    }
    let gaps: Vec<f64> = c
        .values()
        .map(|c| c["max_heartbeat_gap_ms"].as_f64().unwrap_or(f64::MAX))
        .collect();
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    sec.check(
        "no heartbeat missed (longest gap < 2 intervals), no restart",
        worst < HEARTBEAT_S * 2000.0 && c.values().all(|c| u(c, &["restarts"]) == 0),
        format!(
            "longest gap {worst:.0} ms (interval {:.0} ms)",
            HEARTBEAT_S * 1000.0
        ),
    );
    thread::sleep(Duration::from_secs(5));
    let rows = indexed(&nvr);
    let (mut eligible, mut covered, mut misses) = (0, 0, Vec::new());
    for (id, _, _, scene) in cams.iter().filter(|c| !c.3.is_empty()) {
        let (e, c, m) = onsets_covered(
            &fc,
            &rows,
            id,
            scene,
            started,
            until,
            &Disturbances::default(),
        );
        eligible += e;
        covered += c;
        misses.extend(m.into_iter().map(|m| format!("{id}: {m}")));
    }
    sec.check(
        "every motion onset was recorded",
        eligible > 0 && covered == eligible,
        format!("{covered} of {eligible} {misses:?}"),
    );
    let mut nvr = nvr;
    stop(&mut nvr, "soak")
}

// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let args = parse_args()?;
    nvr_tests::fakecam::ensure_clips()?;
    let mut rng = Rng(args.seed);
    log(format!("seed {}", args.seed));
    let mut sections = Vec::new();
    let started = Instant::now();
    for phase in &args.phases {
        let title = match phase.as_str() {
            "faults" => "Worker kills, camera server restarts, clock jumps",
            "bad" => "Bad cameras: garbage, stall, 401, MJPEG",
            "disk" => "Read-only and full output",
            "supervisor" => "Supervisor SIGKILL",
            "soak" => "Soak",
            other => bail!("unknown phase {other}"),
        };
        let mut sec = Section::new(title);
        let t = Instant::now();
        let run = catch_unwind(AssertUnwindSafe(|| match phase.as_str() {
            "faults" => phase_faults(&args, &mut rng, &mut sec),
            "bad" => phase_bad(&args, &mut sec),
            "disk" => phase_disk(&mut sec),
            "supervisor" => phase_supervisor(&mut sec),
            _ => phase_soak(&args, &mut sec),
        }));
        let failure = match run {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
            ),
        };
        sec.check(
            "the phase ran to its end",
            failure.is_none(),
            failure.unwrap_or_default(),
        );
        sec.figure("phase took", format!("{:.0} s", t.elapsed().as_secs_f64()));
        sections.push(sec);
    }
    let passed = sections.iter().all(Section::ok);
    let flags: Vec<String> = std::env::args().skip(1).collect();
    let mut md =
        format!(
        "Produced by `cargo run --release -p nvr-tests --bin reliability -- {}` (seed {}) on {}, \
         in {:.0} min. Result: **{}**.\n\n",
        flags.join(" "),
        args.seed,
        nvr_tests::procstat::cpu_model(),
        started.elapsed().as_secs_f64() / 60.0,
        if passed { "all checks pass" } else { "some checks FAIL" }
    );
    for sec in &sections {
        md.push_str(&sec.markdown());
    }
    println!("{md}");
    if let Some(path) = &args.out {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{BEGIN}\n{md}{}", &old[..b], &old[e..])
            }
            _ => format!("{old}\n{BEGIN}\n{md}{END}\n"),
        };
        std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))?;
    }
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
