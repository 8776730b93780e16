//! Motion detection on every kind of sub stream, judged against the fake cameras' ground truth: the
//! quick set of the clip matrix (`tests/fakecam/make_matrix.py`: sizes 320×240 to 1280×720, 5 to
//! 30 fps, objects 3 % to 30 % of the width, sensor and compression noise, lighting and IR steps, a
//! masked clock) through the real worker, and true recording start times for the first clip after a
//! connect and after a worker restart. The full matrix is the benchmark's (`bench_suite --matrix`).

use nvr_tests::clipcheck::{files_ending, grey_frames, moving_frames};
use nvr_tests::fakecam::{ensure_matrix, FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, signal, wait_until, Nvr};
use nvr_tests::status::{camera_in, collect_motion_starts, pid, stream_up};
use serde_json::{json, Value};
use shm_bus::monotonic_ns;
use std::time::Duration;

/// The detector learns the background this long after it connects (motion::WARMUP_S), plus slack.
const SETTLE_S: f64 = 1.5;

#[test]
fn the_quick_matrix_detects_every_onset_within_three_frames_and_fires_nothing_else() {
    let dir = ensure_matrix(false).unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let loop_ns = (manifest["loop_s"].as_f64().unwrap() * 1e9) as u64;
    let cells: Vec<(String, Value)> = manifest["cells"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(cells.len() >= 8, "{cells:?}");
    // 8 s into the 12 s loop: the first onset (at 3 s) comes 7 s after the server starts.
    let fc = FakeCam::start(FakeCamOpts {
        clips: Some(dir),
        start_pos: Some(Duration::from_secs(8)),
        ..FakeCamOpts::default()
    })
    .unwrap();
    let ids: Vec<String> = (0..cells.len()).map(|i| format!("cell{i}")).collect();
    let cameras: Vec<Value> = cells
        .iter()
        .zip(&ids)
        .map(|((name, cell), id)| {
            let mount = format!("{name}/sub");
            let mut c = camera_config(id, &fc, &mount, &mount);
            c["recording"] = json!({"mode": "off"});
            // Default motion settings; the clock's camera masks its on-screen clock, as its owner would.
            if let Some(mask) = cell.get("mask") {
                c["motion"] = json!({ "masks": [mask] });
            }
            c
        })
        .collect();
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": cameras}),
        &[],
    );
    for id in &ids {
        nvr.wait_camera(id, Duration::from_secs(30), "sub up", |c| {
            stream_up(c, "sub")
        });
    }
    // Judge the next two onsets after every worker has connected and warmed up; loop k's onset is
    // due at t0 + k * loop + 3 s on the server's timeline.
    let ready = monotonic_ns() + (SETTLE_S * 1e9) as u64;
    let t0 = fc.ready()["t0_mono_ns"].as_u64().unwrap();
    let onset_in_loop = (3.0 * 1e9) as u64;
    let first_k = ready.saturating_sub(t0 + onset_in_loop).div_ceil(loop_ns);
    let judged: Vec<u64> = (first_k..first_k + 2)
        .map(|k| t0 + k * loop_ns + onset_in_loop)
        .collect();
    let until_s = (judged[1] - monotonic_ns()) as f64 / 1e9 + SETTLE_S;
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let starts = collect_motion_starts(&nvr, &id_refs, until_s);

    let truths: Vec<Value> = fc
        .events()
        .into_iter()
        .filter(|e| e["event"] == "motion_start")
        .collect();
    let status = nvr.status();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (((name, cell), id), got) in cells.iter().zip(&ids).zip(&starts) {
        let fps = cell["fps"].as_f64().unwrap();
        let frame_ns = 1e9 / fps;
        let events = camera_in(&status, id).unwrap()["motion"]["events"]
            .as_u64()
            .unwrap();
        if cell["kind"] != "object" {
            report.push(format!("{name}: {events} events"));
            if events != 0 {
                failures.push(format!("{name}: {events} false events: {got:?}"));
            }
            continue;
        }
        let truth: Vec<u64> = truths
            .iter()
            .filter(|e| e["scene"] == name.as_str())
            .map(|e| e["mono_ns"].as_u64().unwrap())
            .collect();
        // Within -1..+3 frames of an onset (the -1 allows for the frame's arrival, a little after
        // its due time, being the capture time).
        let offset_frames = |start: &Value, t: u64| {
            (start["first_frame_mono_ns"].as_u64().unwrap() as f64 - t as f64) / frame_ns
        };
        let matches = |start: &Value, t: u64| (-1.0..=3.0).contains(&offset_frames(start, t));
        for &t in &judged {
            assert!(
                truth.iter().any(|&u| u.abs_diff(t) < 5_000_000),
                "{name}: the server's ground truth lacks the onset at {t}: {truth:?}"
            );
            match got.iter().find(|s| matches(s, t)) {
                Some(s) => {
                    report.push(format!(
                        "{name}: onset found {:+.1} frames, decided {:.0} ms after its first frame",
                        offset_frames(s, t),
                        s["onset_delay_ms"].as_f64().unwrap_or(f64::NAN)
                    ));
                    let latency = s["latency_ms"].as_f64().unwrap();
                    assert!(
                        latency > 0.0 && latency < 1000.0,
                        "{name}: latency {latency} ms"
                    );
                }
                None => failures.push(format!(
                    "{name}: missed the onset at {t} (starts seen: {:?})",
                    got.iter()
                        .map(|s| s["first_frame_mono_ns"].clone())
                        .collect::<Vec<_>>()
                )),
            }
        }
        for s in got {
            if !truth.iter().any(|&t| matches(s, t)) {
                failures.push(format!("{name}: a start matching no onset: {s}"));
            }
        }
        if events > truth.len() as u64 {
            failures.push(format!(
                "{name}: {events} events for {} onsets",
                truth.len()
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The wall time (Unix ms) of the first frame of camera `id`'s newest finished clip that shows the
/// fake camera's moving box, from the index's start and the frame's position in the file.
fn box_seen_at_unix_ms(nvr: &Nvr, id: &str, n: usize) -> (f64, String) {
    let (code, rows) = nvr.get_json(&format!("/api/recordings?camera={id}"));
    assert_eq!(code, 200, "{rows}");
    let mut rows: Vec<Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "finished")
        .cloned()
        .collect();
    rows.sort_by_key(|r| r["start"].as_i64());
    assert!(rows.len() > n, "{id}: clip {n} of {rows:?}");
    let row = &rows[n];
    let path = nvr.output_dir().join(row["path"].as_str().unwrap());
    let moving = moving_frames(&grey_frames(&path, 64, 36).unwrap());
    let first = moving.iter().position(|m| *m).unwrap_or_else(|| {
        panic!("{}: the box never shows", path.display());
    });
    let at = row["start"].as_f64().unwrap() + first as f64 * 1000.0 / 30.0;
    (at, path.display().to_string())
}

#[test]
fn clip_start_times_are_the_first_frames_capture_time_after_a_connect_and_a_restart() {
    // The box appears 10 s into each 20 s loop. Start 6 s in: the worker connects, probes the
    // stream (its probed packets come in a burst) and the first clip opens 4 s later with all it
    // has; the clip after the restart below does the same.
    let fc = FakeCam::start(FakeCamOpts {
        start_pos: Some(Duration::from_secs(6)),
        ..FakeCamOpts::scenes(&["motion"])
    })
    .unwrap();
    let mut camera = camera_config("cam6", &fc, "motion/main", "motion/sub");
    camera["motion"] = json!({"post_motion_s": 1});
    camera["recording"] = json!({"pre_roll_s": 5, "post_roll_s": 1});
    let nvr = Nvr::start(
        json!({"heartbeat_interval_s": 0.5, "cameras": [camera]}),
        &[],
    );
    let frame_ms = 1000.0 / 30.0;
    for n in 0..2 {
        if n == 1 {
            // A worker restart: the next clip comes from a new connection, probed again.
            let old = pid(&nvr.camera("cam6")).unwrap();
            signal(old, "KILL");
            nvr.wait_camera("cam6", Duration::from_secs(20), "a new worker", |c| {
                pid(c).is_some_and(|p| p != old) && stream_up(c, "main")
            });
        }
        let truth = fc
            .wait_next("motion_start", Duration::from_secs(30))
            .unwrap();
        let truth_ms = truth["wall_ns"].as_f64().unwrap() / 1e6;
        wait_until(Duration::from_secs(30), "the clip finished", || {
            let c = nvr.camera("cam6");
            (c["recordings"]["finished"].as_u64() > Some(n as u64)).then_some(())
        });
        let (seen_ms, path) = box_seen_at_unix_ms(&nvr, "cam6", n);
        let off = seen_ms - truth_ms;
        eprintln!("clip {n} ({path}): the box shows {off:+.1} ms from the truth");
        assert!(
            (-frame_ms - 2.0..=frame_ms + 2.0).contains(&off),
            "clip {n} ({path}): index start + the box's position in the file is {off:+.1} ms from \
             when the box appeared (allowed: one frame)"
        );
    }
    assert!(files_ending(&nvr.output_dir().join("cam6"), ".mp4").len() >= 2);
}
