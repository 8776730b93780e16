//! Detection quality over the whole clip matrix (`tests/fakecam/make_matrix.py --full`: sub streams
//! from 320×240 to 1280×720 at 5, 15 and 30 fps, objects 3 %, 10 % and 30 % of the width walking
//! and driving, and the scenes that must never fire), through the real NVR and through Motion 4.5
//! with its default threshold, in one run. Cells go in batches (one fake-camera server per batch
//! serving just its cells); per batch the NVR runs, then Motion, on the same streams.
//!
//! `target/release/bench_detection [--batch 8] [--loops 2] [--only CELL,...] [--systems nvr,motion]
//!    [--out target/bench-detection]` (build the binaries first). Prints the Markdown summary and
//! writes `<out>/cells.md` (every cell) and `<out>/detection.json`.

use nvr_tests::fakecam::{ensure_matrix, FakeCam, FakeCamOpts};
use nvr_tests::motion_conf;
use nvr_tests::nvr::{camera_config, Nvr, TempDir};
use nvr_tests::procstat::percentile;
use nvr_tests::status::{collect_motion_starts, stream_up};
use serde_json::{json, Value};
use shm_bus::monotonic_ns;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// After a system has connected: the NVR's detector warms up for 1 s, Motion learns for longer.
const SETTLE_S: f64 = 4.0;
/// The onset in each loop (make_matrix.py's ONSET_S).
const ONSET_S: f64 = 3.0;

struct Args {
    batch: usize,
    loops: u64,
    only: Vec<String>,
    systems: Vec<String>,
    out: PathBuf,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1).cloned())
    };
    let list = |s: String| -> Vec<String> { s.split(',').map(str::to_string).collect() };
    Args {
        batch: get("--batch").and_then(|s| s.parse().ok()).unwrap_or(8),
        loops: get("--loops").and_then(|s| s.parse().ok()).unwrap_or(2),
        only: get("--only").map(list).unwrap_or_default(),
        systems: get("--systems")
            .map(list)
            .unwrap_or_else(|| vec!["nvr".into(), "motion".into()]),
        out: PathBuf::from(get("--out").unwrap_or_else(|| "target/bench-detection".into())),
    }
}

/// One cell's result for one system.
#[derive(Default, Clone)]
struct Outcome {
    onsets: usize,
    detected: usize,
    /// Onset → decision, ms and frames.
    delay_ms: Vec<f64>,
    delay_frames: Vec<f64>,
    false_events: usize,
    /// Seconds watched (for false events per hour).
    watched_s: f64,
}

impl Outcome {
    fn add(&mut self, o: &Outcome) {
        self.onsets += o.onsets;
        self.detected += o.detected;
        self.delay_ms.extend(&o.delay_ms);
        self.delay_frames.extend(&o.delay_frames);
        self.false_events += o.false_events;
        self.watched_s += o.watched_s;
    }
}

/// What one camera (cell) of a system saw: the onsets due while it was watched, its decisions
/// (monotonic ns), and how long it was watched (s).
struct Watched {
    onsets: Vec<u64>,
    decisions: Vec<u64>,
    seconds: f64,
}

/// The onsets (monotonic ns) due in `[from, to)`, from the server's timeline.
fn onsets_between(fc: &FakeCam, loop_ns: u64, from: u64, to: u64) -> Vec<u64> {
    let t0 = fc.ready()["t0_mono_ns"].as_u64().unwrap_or(0);
    let onset = (ONSET_S * 1e9) as u64;
    (0..1000u64)
        .map(|k| t0 + k * loop_ns + onset)
        .filter(|t| (from..to).contains(t))
        .collect()
}

/// Matches decisions (monotonic ns) to onsets: a decision within [-0.2 s, +2 s] of an onset detects
/// it; others are false events.
fn judge(onsets: &[u64], decisions: &[u64], frame_ns: f64) -> Outcome {
    let mut o = Outcome {
        onsets: onsets.len(),
        ..Outcome::default()
    };
    let mut used = vec![false; onsets.len()];
    for &decided in decisions {
        let hit = onsets.iter().enumerate().find(|(i, &t)| {
            !used[*i] && (-0.2..=2.0).contains(&((decided as f64 - t as f64) / 1e9))
        });
        match hit {
            Some((i, &t)) => {
                used[i] = true;
                o.detected += 1;
                let d = decided as f64 - t as f64;
                o.delay_ms.push(d / 1e6);
                o.delay_frames.push(d / frame_ns);
            }
            None => o.false_events += 1,
        }
    }
    o
}

/// The NVR on a batch: per camera, its decisions within the watched window.
fn run_nvr(fc: &FakeCam, cells: &[(String, Value)], loops: u64, loop_ns: u64) -> Vec<Watched> {
    let cameras: Vec<Value> = cells
        .iter()
        .enumerate()
        .map(|(i, (name, cell))| {
            let mount = format!("{name}/sub");
            let mut c = camera_config(&format!("cell{i}"), fc, &mount, &mount);
            c["recording"] = json!({"mode": "off"});
            if let Some(mask) = cell.get("mask") {
                c["motion"] = json!({ "masks": [mask] });
            }
            c
        })
        .collect();
    let nvr = Nvr::start(json!({"heartbeat_interval_s": 1, "cameras": cameras}), &[]);
    let ids: Vec<String> = (0..cells.len()).map(|i| format!("cell{i}")).collect();
    for id in &ids {
        nvr.wait_camera(id, Duration::from_secs(30), "sub up", |c| {
            stream_up(c, "sub")
        });
    }
    let from = monotonic_ns() + (SETTLE_S * 1e9) as u64;
    let to = from + loops * loop_ns;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seconds = (to - monotonic_ns()) as f64 / 1e9 + 2.0;
    let starts = collect_motion_starts(&nvr, &refs, seconds);
    starts
        .iter()
        .map(|events| {
            let decisions = events
                .iter()
                .filter_map(|e| {
                    let first = e["first_frame_mono_ns"].as_u64()?;
                    let onset_delay = e["onset_delay_ms"].as_f64()?;
                    Some(first + (onset_delay * 1e6) as u64)
                })
                .filter(|d| (from..to + 2_000_000_000).contains(d))
                .collect();
            Watched {
                onsets: onsets_between(fc, loop_ns, from, to),
                decisions,
                seconds: (to - from) as f64 / 1e9,
            }
        })
        .collect()
}

/// Motion 4.5 on a batch, one camera per cell; decisions are its `on_event_start` hook times.
fn run_motion(
    fc: &FakeCam,
    cells: &[(String, Value)],
    loops: u64,
    loop_ns: u64,
) -> Option<Vec<Watched>> {
    if Command::new("motion").arg("-h").output().is_err() {
        eprintln!("bench_detection: `motion` is not installed (apt install motion); skipped");
        return None;
    }
    let dir = TempDir::new("motion-detection");
    let mut text = String::new();
    let mut events_files = Vec::new();
    // One Motion process per cell: its hook writes one file, so events are told apart by process.
    let mut procs = Vec::new();
    for (i, (name, cell)) in cells.iter().enumerate() {
        let sub = dir.path().join(format!("cell{i}"));
        std::fs::create_dir_all(&sub).ok()?;
        let events = sub.join("events.txt");
        text.clear();
        text.push_str(&motion_conf::main_conf(&sub, &events));
        let size = (
            cell["size"][0].as_u64()? as usize,
            cell["size"][1].as_u64()? as usize,
        );
        let mask = cell.get("mask").map(|m| {
            let pts: Vec<[f64; 2]> = serde_json::from_value(m.clone()).unwrap_or_default();
            let (x0, y0) = pts
                .iter()
                .fold((1.0f64, 1.0f64), |a, p| (a.0.min(p[0]), a.1.min(p[1])));
            let (x1, y1) = pts
                .iter()
                .fold((0.0f64, 0.0f64), |a, p| (a.0.max(p[0]), a.1.max(p[1])));
            let path = sub.join("mask.pgm");
            let _ = std::fs::write(
                &path,
                motion_conf::pgm_mask(size.0, size.1, &[[[x0, y0], [x1, y1]]]),
            );
            path
        });
        let cam = sub.join("camera.conf");
        let conf = motion_conf::detection_camera_conf(
            i,
            &fc.url(&format!("{name}/sub")),
            (size.0, size.1, cell["fps"].as_f64()?),
            mask.as_deref(),
            &sub.join("out"),
        );
        std::fs::write(&cam, conf).ok()?;
        let _ = writeln!(text, "camera {}", cam.display());
        let main = sub.join("motion.conf");
        std::fs::write(&main, &text).ok()?;
        procs.push(
            Command::new("motion")
                .arg("-n")
                .arg("-c")
                .arg(&main)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?,
        );
        events_files.push(events);
    }
    // Motion has no status to wait for: give it the NVR's settle time plus its own start-up.
    let from = monotonic_ns() + ((SETTLE_S + 4.0) * 1e9) as u64;
    let to = from + loops * loop_ns;
    std::thread::sleep(Duration::from_nanos(to - monotonic_ns() + 2_000_000_000));
    for mut p in procs {
        let _ = p.kill();
        let _ = p.wait();
    }
    // The hook writes wall-clock ns: map them onto the monotonic clock.
    let unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let wall_minus_mono = unix_ns - monotonic_ns() as i128;
    Some(
        events_files
            .iter()
            .map(|f| {
                let decisions = std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i128>().ok())
                    .map(|wall| (wall - wall_minus_mono) as u64)
                    .filter(|d| (from..to + 2_000_000_000).contains(d))
                    .collect();
                Watched {
                    onsets: onsets_between(fc, loop_ns, from, to),
                    decisions,
                    seconds: (to - from) as f64 / 1e9,
                }
            })
            .collect(),
    )
}

fn group_of(cell: &Value) -> Vec<String> {
    if cell["kind"] != "object" {
        return vec![format!(
            "negative: {}",
            cell["kind"].as_str().unwrap_or("?")
        )];
    }
    vec![
        format!(
            "size {}×{}",
            cell["size"][0].as_u64().unwrap_or(0),
            cell["size"][1].as_u64().unwrap_or(0)
        ),
        format!("{} fps", cell["fps"].as_u64().unwrap_or(0)),
        format!(
            "object {:.0} % of the width",
            cell["object"].as_f64().unwrap_or(0.0) * 100.0
        ),
        format!(
            "speed {:.2} widths/s",
            cell["speed"].as_f64().unwrap_or(0.0)
        ),
    ]
}

fn row(label: &str, o: &Outcome) -> String {
    let q = |v: &[f64], p: f64| {
        if v.is_empty() {
            "–".to_string()
        } else {
            format!("{:.1}", percentile(v, p))
        }
    };
    format!(
        "| {label} | {}/{} | {} / {} | {} / {} | {} ({:.1}/h) |",
        o.detected,
        o.onsets,
        q(&o.delay_frames, 50.0),
        q(&o.delay_frames, 99.0),
        q(&o.delay_ms, 50.0),
        q(&o.delay_ms, 99.0),
        o.false_events,
        o.false_events as f64 / (o.watched_s / 3600.0).max(1e-9)
    )
}

fn main() {
    let a = args();
    let dir = ensure_matrix(true).unwrap_or_else(|e| panic!("{e:#}"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest JSON");
    let loop_ns = (manifest["loop_s"].as_f64().unwrap_or(12.0) * 1e9) as u64;
    let cells: Vec<(String, Value)> = manifest["cells"]
        .as_object()
        .expect("cells")
        .iter()
        .filter(|(k, _)| a.only.is_empty() || a.only.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut results: BTreeMap<String, BTreeMap<String, Outcome>> = BTreeMap::new();
    for (b, batch) in cells.chunks(a.batch.max(1)).enumerate() {
        eprintln!(
            "bench_detection: batch {}/{}: {}",
            b + 1,
            cells.len().div_ceil(a.batch.max(1)),
            batch
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let scenes: Vec<&str> = batch.iter().map(|c| c.0.as_str()).collect();
        let fc = FakeCam::start(FakeCamOpts {
            clips: Some(dir.clone()),
            ..FakeCamOpts::scenes(&scenes)
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        for system in &a.systems {
            let runs = match system.as_str() {
                "nvr" => Some(run_nvr(&fc, batch, a.loops, loop_ns)),
                "motion" => run_motion(&fc, batch, a.loops, loop_ns),
                other => panic!("unknown system {other}"),
            };
            for ((name, cell), w) in batch.iter().zip(runs.into_iter().flatten()) {
                let frame_ns = 1e9 / cell["fps"].as_f64().unwrap_or(30.0);
                let onsets = if cell["kind"] == "object" {
                    w.onsets
                } else {
                    Vec::new()
                };
                let mut o = judge(&onsets, &w.decisions, frame_ns);
                o.watched_s = w.seconds;
                results
                    .entry(system.clone())
                    .or_default()
                    .insert(name.clone(), o);
            }
        }
    }
    let mut md = String::new();
    let mut cells_md = String::new();
    let header = "| cells | detected / onsets | delay p50 / p99 (frames) | delay p50 / p99 (ms) | false events (per hour) |\n|---|---|---|---|---|\n";
    let mut json_out = json!({});
    for (system, per_cell) in &results {
        let mut groups: BTreeMap<String, Outcome> = BTreeMap::new();
        let mut total = Outcome::default();
        let _ = write!(cells_md, "\n### {system}\n\n{header}");
        for (name, o) in per_cell {
            let cell = &manifest["cells"][name];
            for g in group_of(cell) {
                groups.entry(g).or_default().add(o);
            }
            total.add(o);
            cells_md.push_str(&row(name, o));
            cells_md.push('\n');
            json_out[system][name] = json!({
                "onsets": o.onsets, "detected": o.detected, "delay_ms": o.delay_ms,
                "delay_frames": o.delay_frames, "false_events": o.false_events, "watched_s": o.watched_s,
            });
        }
        let _ = write!(md, "\n### {system}\n\n{header}");
        for (g, o) in &groups {
            md.push_str(&row(g, o));
            md.push('\n');
        }
        md.push_str(&row("**all**", &total));
        md.push('\n');
    }
    let _ = std::fs::create_dir_all(&a.out);
    let _ = std::fs::write(a.out.join("cells.md"), &cells_md);
    let _ = std::fs::write(
        a.out.join("detection.json"),
        serde_json::to_string_pretty(&json_out).unwrap_or_default(),
    );
    println!("{md}");
}
