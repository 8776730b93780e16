//! The benchmark suite: the NVR against the ffmpeg floor and against Motion, on the same fake-camera
//! streams in the same run, for 1, 4, ... cameras. Per system and camera count it runs `--repeats`
//! windows of `--seconds` (systems take turns, so drift on this shared machine hits all alike) and
//! reads CPU and memory from /proc, detection latency against the fake camera's ground truth, and
//! for the NVR also recording start, heartbeat latency and restart times.
//!
//! `target/release/bench_suite [--cameras 1,4] [--seconds 60] [--repeats 3] [--kills 10]
//!    [--systems nvr,floor,motion] [--out target/bench]` (build the binaries first). Writes
//! `<out>/bench.json`, `<out>/bench.md` and `<out>/cpu_per_camera.svg`, and prints the Markdown.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, signal, Nvr, TempDir};
use nvr_tests::procstat::{
    clk_tck, cpu_model, cpu_ticks, machine_ticks, median, percentile, pss_mb, rss_mb,
};
use nvr_tests::status::camera_in;
use serde_json::{json, Value};
use shm_bus::Reader;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WARM_UP: Duration = Duration::from_secs(8);

struct Args {
    cameras: Vec<usize>,
    seconds: f64,
    repeats: usize,
    kills: usize,
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
        cameras: get("--cameras")
            .map(list)
            .unwrap_or_else(|| vec!["1".into(), "4".into()])
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect(),
        seconds: get("--seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(60.0),
        repeats: get("--repeats").and_then(|s| s.parse().ok()).unwrap_or(3),
        kills: get("--kills").and_then(|s| s.parse().ok()).unwrap_or(10),
        systems: get("--systems")
            .map(list)
            .unwrap_or_else(|| vec!["nvr".into(), "floor".into(), "motion".into()]),
        out: PathBuf::from(get("--out").unwrap_or_else(|| "target/bench".into())),
    }
}

/// Processes that are killed and reaped when dropped.
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One measurement window of one system.
#[derive(Default, Clone)]
struct Window {
    /// CPU % of one core, per camera (the system's processes summed, divided by cameras).
    cpu_per_camera: f64,
    /// The NVR's supervisor, apart (its share is in `cpu_per_camera` too).
    supervisor_cpu: f64,
    /// RssAnon+RssFile per camera, MB.
    rss_per_camera_mb: f64,
    /// PSS (shared pages divided among the processes that map them; shared memory included) per
    /// camera, MB.
    pss_per_camera_mb: f64,
    fakecam_cpu: f64,
    machine_cpu: f64,
    /// Detection delay per onset vs the fake camera's send time, ms.
    delays_ms: Vec<f64>,
    onsets: usize,
    false_events: usize,
}

/// How often the NVR's `/status` is read during a window. Each onset and clip stays there until the
/// next, 20 s later, so none is missed. Each read is a new HTTP connection and costs the supervisor
/// about 2 ms: read every 200 ms, it put about 1 % of a core on the NVR's bill that no user pays.
const POLL_EVERY_S: usize = 5;

/// Samples CPU and RSS of `pids` once a second over `secs`, calling `poll` every [`POLL_EVERY_S`]
/// meanwhile and once after the CPU figures are taken.
fn measure(
    pids: &dyn Fn() -> Vec<u32>,
    fakecam: u32,
    n: usize,
    secs: f64,
    mut poll: impl FnMut(),
) -> Window {
    let tck = clk_tck();
    let before: Vec<(u32, u64)> = pids().into_iter().map(|p| (p, cpu_ticks(p))).collect();
    let (fc0, m0) = (cpu_ticks(fakecam), machine_ticks());
    let t = Instant::now();
    let (mut rss, mut pss) = (Vec::new(), Vec::new());
    for i in 0.. {
        if t.elapsed().as_secs_f64() >= secs {
            break;
        }
        if i % POLL_EVERY_S == 0 {
            poll();
        }
        rss.push(pids().iter().map(|p| rss_mb(*p).0).sum::<f64>());
        pss.push(pids().iter().map(|p| pss_mb(*p).0).sum::<f64>());
        std::thread::sleep(Duration::from_secs(1));
    }
    let secs = t.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / tck / secs * 100.0;
    let used: u64 = before
        .iter()
        .map(|(p, b)| cpu_ticks(*p).saturating_sub(*b))
        .sum();
    let m1 = machine_ticks();
    poll();
    Window {
        cpu_per_camera: pct(used) / n as f64,
        rss_per_camera_mb: median(&rss) / n as f64,
        pss_per_camera_mb: median(&pss) / n as f64,
        fakecam_cpu: pct(cpu_ticks(fakecam).saturating_sub(fc0)),
        machine_cpu: pct(m1.0 - m0.0),
        ..Window::default()
    }
}

/// Onsets in the last seconds of a window are not counted: their detection could come after it.
const EDGE_NS: u64 = 3_000_000_000;

/// The delay (ms) of a detection at `seen` ns after an onset at `truth` ns, if it lies in the window
/// that counts as detecting that onset.
fn delay_ms(truth: u64, seen: u64) -> Option<f64> {
    let d = (seen as f64 - truth as f64) / 1e6;
    (-100.0..=3000.0).contains(&d).then_some(d)
}

/// Matches detections (wall ns of the first moving frame or of the event) to ground-truth onsets
/// (wall ns) up to `cut`: (delays ms, false events). A detection after `cut` that matches nothing
/// belongs to an onset that is not counted, so it is not a false event either.
fn match_onsets(truth: &[u64], seen: &[u64], cut: u64) -> (Vec<f64>, usize) {
    let truth: Vec<u64> = truth.iter().copied().filter(|t| *t <= cut).collect();
    let mut delays = Vec::new();
    let mut false_events = 0;
    for s in seen {
        match truth
            .iter()
            .filter_map(|t| delay_ms(*t, *s))
            .reduce(f64::min)
        {
            Some(d) => delays.push(d),
            None if *s <= cut => false_events += 1,
            None => {}
        }
    }
    (delays, false_events)
}

/// Prints each counted onset that no detection matched, with the detections around it, so a miss
/// can be told apart from a harness edge.
fn report_misses(system: &str, truth: &[u64], seen: &[u64], cut: u64) {
    for t in truth.iter().filter(|t| **t <= cut) {
        if !seen.iter().any(|s| delay_ms(*t, *s).is_some()) {
            let around: Vec<String> = seen
                .iter()
                .map(|s| format!("{:+.2}", (*s as f64 - *t as f64) / 1e9))
                .collect();
            eprintln!(
                "bench_suite: {system} missed the onset at {} ms (cut {:+.1} s); detections at [{}] s from it",
                t / 1_000_000,
                (cut as f64 - *t as f64) / 1e9,
                around.join(", ")
            );
        }
    }
}

/// Ground-truth onsets since event number `since`, and the cut for [`match_onsets`]: the end of
/// the window just measured, less [`EDGE_NS`].
fn truth_wall_ns(fc: &FakeCam, since: usize) -> (Vec<u64>, u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let truth = fc
        .events()
        .into_iter()
        .skip(since)
        .filter(|e| e["event"] == "motion_start")
        .filter_map(|e| e["wall_ns"].as_u64())
        .collect();
    (truth, now - EDGE_NS)
}

/// Waits until a detecting system's window may open: at a loop start of the fake camera (the box
/// has just left, so every window holds its onsets at the same places, 10 s into each 20 s loop)
/// after the system has seen one whole loop. Motion's first event after it starts outlasts the
/// next crossing: with windows opened at the first loop start, it missed the first onset of every
/// window, and none after. (A detector that starts mid-crossing can also hold its first event
/// open; the NVR's is unit-tested for that.)
fn at_second_loop_start(fc: &FakeCam) {
    for _ in 0..2 {
        let since = fc.n_events();
        let _ = fc.wait_event_since(
            since,
            |e| e["event"] == "loop_start",
            Duration::from_secs(30),
        );
    }
}

// ---- The NVR ----

struct NvrExtras {
    decision_ms: Vec<f64>,
    open_ms: Vec<f64>,
    first_frame_offset_s: Vec<f64>,
    heartbeat_p50_ms: Vec<f64>,
    heartbeat_p99_ms: Vec<f64>,
    hello_ms: Vec<f64>,
    frames_ms: Vec<f64>,
}

fn nvr_cameras(fc: &FakeCam, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut camera = camera_config(&format!("cam{i}"), fc, "motion/main", "motion/sub");
            camera["recording"] = json!({"post_roll_s": 4});
            camera
        })
        .collect()
}

fn run_nvr(fc: &FakeCam, n: usize, secs: f64, extras: &mut NvrExtras) -> Window {
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 1, "restart": {"reset_after_s": 2},
            "cameras": nvr_cameras(fc, n)}),
        &[],
    );
    for i in 0..n {
        nvr.wait_camera(&format!("cam{i}"), Duration::from_secs(30), "up", |c| {
            c["worker"]["sub"]["state"] == "up" && c["worker"]["main"]["state"] == "up"
        });
    }
    std::thread::sleep(WARM_UP);
    at_second_loop_start(fc);
    let since = fc.n_events();
    let pids = || {
        let status = nvr.status();
        let mut p: Vec<u32> = status["cameras"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
            .collect();
        p.push(nvr.pid());
        p
    };
    let pid_list = pids();
    let sup0 = cpu_ticks(nvr.pid());
    let t = Instant::now();
    // What the status shows already happened before the window; only later events count.
    let mut starts: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut clips: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let before = nvr.status();
    let old = |id: &str, what: &str, key: &str| {
        camera_in(&before, id)
            .map(|c| c[what][key].clone())
            .unwrap_or(Value::Null)
    };
    let mut w = measure(&|| pid_list.clone(), fc.pid(), n, secs, || {
        let status = nvr.status();
        for i in 0..n {
            let id = format!("cam{i}");
            let Some(c) = camera_in(&status, &id) else {
                continue;
            };
            for (what, map) in [("motion", &mut starts), ("recordings", &mut clips)] {
                let key = if what == "motion" {
                    "last_start"
                } else {
                    "last_started"
                };
                let s = &c[what][key];
                let v = map.entry(id.clone()).or_default();
                if s.is_object() && v.last() != Some(s) && *s != old(&id, what, key) {
                    v.push(s.clone());
                }
            }
        }
    });
    w.supervisor_cpu =
        (cpu_ticks(nvr.pid()) - sup0) as f64 / clk_tck() / t.elapsed().as_secs_f64() * 100.0;
    let (truth, cut) = truth_wall_ns(fc, since);
    let mut seen = 0;
    for events in starts.values() {
        let walls: Vec<u64> = events
            .iter()
            // The decision: the first moving frame's arrival plus the wait for enough moving
            // frames and the work (`onset_delay_ms`), so the delay is send → decision.
            .filter_map(|e| {
                let first_ms = e["wall_unix_ms"].as_u64()? as f64;
                Some(((first_ms + e["onset_delay_ms"].as_f64()?) * 1e6) as u64)
            })
            .collect();
        let (delays, false_events) = match_onsets(&truth, &walls, cut);
        report_misses("nvr", &truth, &walls, cut);
        seen += delays.len();
        w.delays_ms.extend(delays);
        w.false_events += false_events;
        extras
            .decision_ms
            .extend(events.iter().filter_map(|e| e["latency_ms"].as_f64()));
    }
    w.onsets = truth.iter().filter(|t| **t <= cut).count() * n;
    debug_assert!(seen <= w.onsets + w.false_events);
    for c in clips.values().flatten() {
        extras.open_ms.extend(c["open_ms"].as_f64());
        extras
            .first_frame_offset_s
            .extend(c["first_frame_offset_ms"].as_f64().map(|ms| ms / 1e3));
    }
    let status = nvr.status();
    for c in status["cameras"].as_array().into_iter().flatten() {
        extras
            .heartbeat_p50_ms
            .extend(c["heartbeat_latency"]["p50_ms"].as_f64());
        extras
            .heartbeat_p99_ms
            .extend(c["heartbeat_latency"]["p99_ms"].as_f64());
    }
    w
}

/// kill -9 of cam0's worker, `kills` times, each after a healthy period longer than
/// `reset_after_s`: time to `Hello` (running with a new pid) and to frames flowing again.
fn restart_times(fc: &FakeCam, kills: usize, extras: &mut NvrExtras) {
    if kills == 0 {
        return;
    }
    // A short healthy period resets the backoff, and a high intensity limit keeps repeated kills
    // from marking the camera `failed` (which retries only every `max_s`).
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 1,
            "restart": {"reset_after_s": 2, "intensity": 100000, "period_s": 1},
            "cameras": nvr_cameras(fc, 1)}),
        &[],
    );
    for k in 0..kills {
        let c = nvr.wait_camera("cam0", Duration::from_secs(30), "up", |c| {
            c["worker"]["sub"]["state"] == "up"
        });
        // Kills at spread phases of the fake camera's 1 s SUB GOP: a new stream starts at its next
        // key frame, so a fixed phase would measure one point of that wait.
        std::thread::sleep(Duration::from_millis(3000 + (k as u64 * 389) % 1000));
        let pid = c["pid"].as_u64().unwrap();
        let old_ring = Reader::attach_in(nvr.shm_dir(), "cam0")
            .map(|r| r.generation())
            .ok();
        let t = Instant::now();
        signal(pid as u32, "KILL");
        let mut hello = None;
        loop {
            if hello.is_none() {
                let c = camera_in(&nvr.status(), "cam0");
                if c.is_some_and(|c| {
                    c["pid"].as_u64().is_some_and(|p| p != pid) && c["state"] == "running"
                }) {
                    hello = Some(t.elapsed());
                }
            }
            // Frames flowing: the new worker's ring (a new generation) holds a frame. Read from
            // the ring itself, as a preview client would; `/status` only learns it at the next
            // heartbeat.
            let flowing = Reader::attach_in(nvr.shm_dir(), "cam0")
                .ok()
                .is_some_and(|mut r| {
                    Some(r.generation()) != old_ring && matches!(r.read_latest(|_| ()), Ok(Some(_)))
                });
            if hello.is_some() && flowing {
                extras.frames_ms.push(t.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        extras.hello_ms.extend(hello.map(|h| h.as_secs_f64() * 1e3));
    }
}

// ---- The floor: ffmpeg decoding SUB and copying MAIN, one pair per camera ----

fn run_floor(fc: &FakeCam, n: usize, secs: f64, dir: &Path) -> Window {
    let ff = |args: &[&str]| {
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg")
    };
    let mut procs = Procs(Vec::new());
    for i in 0..n {
        procs
            .0
            .push(ff(&["-i", &fc.url("motion/sub"), "-f", "null", "-"]));
        let out = dir.join(format!("floor{i}.mp4")).display().to_string();
        procs.0.push(ff(&[
            "-i",
            &fc.url("motion/main"),
            "-c",
            "copy",
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "-y",
            &out,
        ]));
    }
    std::thread::sleep(WARM_UP);
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    measure(&|| pids.clone(), fc.pid(), n, secs, || {})
}

// ---- Motion ----

fn run_motion(fc: &FakeCam, n: usize, secs: f64, dir: &Path) -> Option<Window> {
    if Command::new("motion").arg("-h").output().is_err() {
        eprintln!("bench_suite: `motion` is not installed (apt install motion); skipped");
        return None;
    }
    let events = dir.join("motion_events.txt");
    let _ = std::fs::remove_file(&events);
    let conf = dir.join("motion.conf");
    let mut text = nvr_tests::motion_conf::main_conf(dir, &events);
    for i in 0..n {
        let cam = dir.join(format!("camera{i}.conf"));
        std::fs::write(
            &cam,
            nvr_tests::motion_conf::camera_conf(
                i,
                &fc.url("motion/sub"),
                &fc.url("motion/main"),
                &dir.join(format!("out{i}")),
            ),
        )
        .ok()?;
        let _ = writeln!(text, "camera {}", cam.display());
    }
    std::fs::write(&conf, text).ok()?;
    let child = Command::new("motion")
        .arg("-n")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let procs = Procs(vec![child]);
    std::thread::sleep(WARM_UP);
    at_second_loop_start(fc);
    let since = fc.n_events();
    let first_event_line = std::fs::read_to_string(&events)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let pid = procs.0[0].id();
    let mut w = measure(&|| vec![pid], fc.pid(), n, secs, || {});
    let (truth, cut) = truth_wall_ns(fc, since);
    // Motion's hook runs a shell: give the last detections a moment to land.
    std::thread::sleep(Duration::from_secs(2));
    let seen: Vec<u64> = std::fs::read_to_string(&events)
        .unwrap_or_default()
        .lines()
        .skip(first_event_line)
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let (delays, false_events) = match_onsets(&truth, &seen, cut);
    report_misses("motion", &truth, &seen, cut);
    w.delays_ms = delays;
    w.false_events = false_events;
    w.onsets = truth.iter().filter(|t| **t <= cut).count() * n;
    Some(w)
}

// ---- Report ----

fn fmt_med(v: &[f64]) -> String {
    if v.is_empty() {
        "–".into()
    } else {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        format!("{:.2} ({:.2}–{:.2})", median(v), s[0], s[s.len() - 1])
    }
}

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.out).expect("output directory");
    let work = TempDir::new("bench");
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).expect("fake camera");
    // results[system][cameras] = windows
    let mut results: BTreeMap<String, BTreeMap<usize, Vec<Window>>> = BTreeMap::new();
    let mut extras = NvrExtras {
        decision_ms: vec![],
        open_ms: vec![],
        first_frame_offset_s: vec![],
        heartbeat_p50_ms: vec![],
        heartbeat_p99_ms: vec![],
        hello_ms: vec![],
        frames_ms: vec![],
    };
    // Restart times first: quick, and independent of the windows.
    if a.systems.iter().any(|s| s == "nvr") {
        restart_times(&fc, a.kills, &mut extras);
    }
    for &n in &a.cameras {
        for r in 0..a.repeats {
            for system in &a.systems {
                eprintln!(
                    "bench_suite: {system}, {n} camera(s), window {} of {}",
                    r + 1,
                    a.repeats
                );
                let w = match system.as_str() {
                    "nvr" => Some(run_nvr(&fc, n, a.seconds, &mut extras)),
                    "floor" => Some(run_floor(&fc, n, a.seconds, work.path())),
                    "motion" => run_motion(&fc, n, a.seconds, work.path()),
                    other => panic!("unknown system {other}"),
                };
                if let Some(w) = w {
                    results
                        .entry(system.clone())
                        .or_default()
                        .entry(n)
                        .or_default()
                        .push(w);
                }
            }
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {cores} cores, {}. Windows: {} × {:.0} s per system and camera count, systems taking turns.\n",
        cpu_model(),
        a.repeats,
        a.seconds
    );
    let get = |s: &str, n: usize, f: &dyn Fn(&Window) -> f64| -> Vec<f64> {
        results
            .get(s)
            .and_then(|m| m.get(&n))
            .map(|ws| ws.iter().map(f).collect())
            .unwrap_or_default()
    };
    let _ = writeln!(
        md,
        "### CPU and memory per camera (median (min–max) over the windows)\n"
    );
    let _ = writeln!(md, "| cameras | NVR CPU % | floor CPU % | Motion CPU % | NVR/floor | NVR/Motion | NVR RSS MB | NVR PSS MB | Motion RSS MB | Motion PSS MB | NVR supervisor CPU % | fake camera CPU % | machine CPU % (NVR window) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    for &n in &a.cameras {
        let cpu = |s| get(s, n, &|w| w.cpu_per_camera);
        let (nv, fl, mo) = (cpu("nvr"), cpu("floor"), cpu("motion"));
        let ratio = |x: &[f64], y: &[f64]| {
            if x.is_empty() || y.is_empty() {
                "–".to_string()
            } else {
                format!("{:.2}", median(x) / median(y))
            }
        };
        let rss = |s| get(s, n, &|w| w.rss_per_camera_mb);
        let pss = |s| get(s, n, &|w| w.pss_per_camera_mb);
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_med(&nv),
            fmt_med(&fl),
            fmt_med(&mo),
            ratio(&nv, &fl),
            ratio(&nv, &mo),
            fmt_med(&rss("nvr")),
            fmt_med(&pss("nvr")),
            fmt_med(&rss("motion")),
            fmt_med(&pss("motion")),
            fmt_med(&get("nvr", n, &|w| w.supervisor_cpu)),
            fmt_med(&get("nvr", n, &|w| w.fakecam_cpu)),
            fmt_med(&get("nvr", n, &|w| w.machine_cpu)),
        );
        json_rows.push(
            json!({"cameras": n, "nvr_cpu": nv, "floor_cpu": fl, "motion_cpu": mo,
            "nvr_rss_mb": rss("nvr"), "motion_rss_mb": rss("motion"),
            "nvr_pss_mb": pss("nvr"), "motion_pss_mb": pss("motion")}),
        );
    }
    let _ = writeln!(md, "\n### Motion detection against the fake camera's ground truth (delay: send time of the first moving frame → the NVR's decision; Motion: → its event)\n");
    let _ = writeln!(md, "| cameras | system | onsets | detected | missed | false events | delay p50 ms | delay p99 ms |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let mut json_det = Vec::new();
    for &n in &a.cameras {
        for s in ["nvr", "motion"] {
            let Some(ws) = results.get(s).and_then(|m| m.get(&n)) else {
                continue;
            };
            let delays: Vec<f64> = ws.iter().flat_map(|w| w.delays_ms.clone()).collect();
            let onsets: usize = ws.iter().map(|w| w.onsets).sum();
            let false_events: usize = ws.iter().map(|w| w.false_events).sum();
            let _ = writeln!(
                md,
                "| {n} | {s} | {onsets} | {} | {} | {false_events} | {:.1} | {:.1} |",
                delays.len(),
                onsets.saturating_sub(delays.len()),
                percentile(&delays, 50.0),
                percentile(&delays, 99.0)
            );
            json_det.push(
                json!({"cameras": n, "system": s, "onsets": onsets, "detected": delays.len(),
                "false_events": false_events, "delays_ms": delays}),
            );
        }
    }
    let e = &extras;
    let _ = writeln!(md, "\n### The NVR alone\n");
    let _ = writeln!(
        md,
        "| measure | p50 | p99 / max | samples |\n|---|---|---|---|"
    );
    for (name, v) in [
        (
            "motion decision latency from the deciding frame's arrival, ms",
            &e.decision_ms,
        ),
        (
            "recording: motion decision → file open with pre-roll, ms",
            &e.open_ms,
        ),
        (
            "recording: clip's first frame relative to the onset, s",
            &e.first_frame_offset_s,
        ),
        ("heartbeat latency p50 per camera, ms", &e.heartbeat_p50_ms),
        ("heartbeat latency p99 per camera, ms", &e.heartbeat_p99_ms),
        ("kill -9 → Hello (running again), ms", &e.hello_ms),
        ("kill -9 → frames flowing again, ms", &e.frames_ms),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.2} | {:.2} | {} |",
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.len()
        );
    }
    let json = json!({
        "machine": {"cores": cores, "cpu": cpu_model()},
        "seconds": a.seconds, "repeats": a.repeats,
        "cpu": json_rows, "detection": json_det,
        "nvr": {"decision_ms": e.decision_ms, "open_ms": e.open_ms,
            "first_frame_offset_s": e.first_frame_offset_s, "heartbeat_p50_ms": e.heartbeat_p50_ms,
            "heartbeat_p99_ms": e.heartbeat_p99_ms, "hello_ms": e.hello_ms, "frames_ms": e.frames_ms},
    });
    std::fs::write(
        a.out.join("bench.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    std::fs::write(a.out.join("bench.md"), &md).unwrap();
    std::fs::write(a.out.join("cpu_per_camera.svg"), svg(&a.cameras, &results)).unwrap();
    println!("{md}");
}

/// A line chart of CPU per camera against the camera count, one line per system.
fn svg(cameras: &[usize], results: &BTreeMap<String, BTreeMap<usize, Vec<Window>>>) -> String {
    let (w, h, pad) = (640.0, 360.0, 50.0);
    let max_n = *cameras.iter().max().unwrap_or(&1) as f64;
    let max_cpu = results
        .values()
        .flat_map(|m| m.values())
        .map(|ws| median(&ws.iter().map(|w| w.cpu_per_camera).collect::<Vec<_>>()))
        .fold(1.0, f64::max)
        * 1.2;
    let x = |n: f64| pad + (n - 1.0) / (max_n - 1.0).max(1.0) * (w - 2.0 * pad);
    let y = |c: f64| h - pad - c / max_cpu * (h - 2.0 * pad);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">CPU per camera (% of one core) vs cameras</text>
<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>
"#,
        w / 2.0,
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    for n in cameras {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{n}</text>"#,
            x(*n as f64),
            h - pad + 16.0
        );
    }
    for i in 0..=4 {
        let c = max_cpu * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{c:.1}</text>"#,
            pad - 6.0,
            y(c) + 4.0
        );
    }
    for (k, (system, color)) in [
        ("nvr", "#1565c0"),
        ("floor", "#2e7d32"),
        ("motion", "#c62828"),
    ]
    .iter()
    .enumerate()
    {
        let Some(m) = results.get(*system) else {
            continue;
        };
        let pts: Vec<String> = m
            .iter()
            .map(|(n, ws)| {
                let c = median(&ws.iter().map(|w| w.cpu_per_camera).collect::<Vec<_>>());
                format!("{:.1},{:.1}", x(*n as f64), y(c))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for pt in &pts {
            let (px, py) = pt.split_once(',').unwrap();
            let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>"#);
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{system}</text>"#,
            w - pad - 60.0,
            pad + 16.0 * k as f64
        );
    }
    s.push_str("</svg>\n");
    s
}
