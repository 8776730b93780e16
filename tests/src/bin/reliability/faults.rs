//! Phase `faults`: kill -9 random workers (half of them mid-recording), then stop and restart the
//! camera server, then jump the cameras' clocks forward and back.

use crate::checks::{
    check_files, clip_start_ms, duration_s, lost, lost_detail, onsets_covered, settled_counts,
    timeline, Disturbances, QUIET_AFTER, QUIET_BEFORE,
};
use crate::report::{stats_ms, Section};
use crate::rig::{base_config, camera, indexed, stop, unix_ms, wait_for, Rng};
use crate::Args;
use anyhow::Result;
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{signal, wait_until, Nvr};
use nvr_tests::status::{self, recording, str_at, stream_up, u64_at};
use serde_json::Value;
use std::thread;
use std::time::{Duration, Instant};

/// The fake cameras' MAIN GOP: a clip cut by kill -9 may lose the fragment being written.
const GOP_MS: i64 = 2000;

pub fn run(args: &Args, rng: &mut Rng, sec: &mut Section) -> Result<()> {
    let mut fc = FakeCam::start(FakeCamOpts::scenes(&["motion", "small"]))?;
    let cams = vec![
        camera("k1", &fc, "motion/main", "motion/sub"),
        camera("k2", &fc, "small/main", "small/sub"),
        camera("w", &fc, "motion/main_h265", "motion/sub_h265"),
    ];
    let scene_of = [("k1", "motion"), ("k2", "small"), ("w", "motion")];
    let nvr = Nvr::start(base_config(cams), &[]);
    let started = Instant::now();
    wait_all_up(&nvr, Duration::from_secs(30), "all cameras up");
    let mut disturbed = Disturbances::default();

    // 1. Kills. The witness `w` is never killed: it must not lose a frame.
    let before = settled_counts(
        &mut fc,
        &nvr,
        "w",
        "motion/sub_h265",
        "motion/main_h265",
        &mut disturbed,
    )?;
    let quiet_from = Instant::now() + QUIET_BEFORE;
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
        let pid = status::pid(&c).unwrap_or(0);
        let file = str_at(&c, &["worker", "recording", "current_file"]);
        let (t, wall) = (Instant::now(), unix_ms());
        signal(pid, "KILL");
        wait_until(
            Duration::from_secs(30),
            &format!("kill {i}: {victim} to come back"),
            || {
                let c = nvr.camera(victim);
                (status::pid(&c).unwrap_or(0) != pid && stream_up(&c, "sub")).then_some(())
            },
        );
        restart_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        disturbed.add(victim, t, Instant::now());
        if recording(&c) && !file.is_empty() {
            mid_recording += 1;
            cut.push((victim, file.trim_end_matches(".part").to_string(), wall));
        }
    }
    // The witness must see one onset away from every disturbance (the pause above included), or
    // its coverage check below would judge nothing: wait for one if the kills were quick.
    let onset = fc.wait_event_since(
        0,
        |e| {
            e["event"] == "motion_start"
                && e["scene"] == "motion"
                && fc.instant_of(u64_at(e, &["mono_ns"])) >= quiet_from
        },
        Duration::from_secs(60),
    )?;
    let onset_at = fc.instant_of(u64_at(&onset, &["mono_ns"]));
    thread::sleep(
        (onset_at + QUIET_AFTER + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    );
    let after = settled_counts(
        &mut fc,
        &nvr,
        "w",
        "motion/sub_h265",
        "motion/main_h265",
        &mut disturbed,
    )?;
    sec.figure("workers killed (kill -9)", format!("{}", args.kills));
    sec.figure("… of them mid-recording", format!("{mid_recording}"));
    sec.figure("kill → worker back with SUB frames", stats_ms(&restart_ms));
    let (lost_sub, lost_main, sent) = lost(before, after);
    // Each kill was awaited until a new pid streamed (or the phase failed); what is left to judge
    // is how the supervisor accounted for them: one restart per kill, each for the signal.
    let victims: Vec<(String, u64, String)> = ["k1", "k2"]
        .iter()
        .map(|id| {
            let c = nvr.camera(id);
            let reason = str_at(&c, &["last_restart", "reason"]);
            (id.to_string(), u64_at(&c, &["restarts"]), reason)
        })
        .collect();
    let restarts: u64 = victims.iter().map(|v| v.1).sum();
    sec.check(
        "every kill was counted as one restart, for the signal",
        restarts == args.kills as u64
            && victims
                .iter()
                .all(|(_, n, reason)| *n == 0 || reason == "signal"),
        format!(
            "{} kills; restarts and last reason: {victims:?}",
            args.kills
        ),
    );
    sec.check(
        "the camera never killed lost no frame (against the fake camera's count of frames sent)",
        lost_sub == 0 && lost_main == 0 && sent > 0,
        lost_detail(lost_sub, lost_main, sent, &nvr, "w"),
    );
    let w = nvr.camera("w");
    sec.check(
        "the camera never killed was never restarted",
        u64_at(&w, &["restarts"]) == 0,
        format!("restarts = {}", u64_at(&w, &["restarts"])),
    );

    // 2. Camera server restarts: the workers reconnect by themselves.
    let pids: Vec<u32> = nvr
        .cameras()
        .values()
        .map(|c| status::pid(c).unwrap_or(0))
        .collect();
    let mut reconnect_ms = Vec::new();
    let mut while_recording = 0;
    for _ in 0..args.server_restarts {
        thread::sleep(rng.millis(1000, 8000));
        if nvr.cameras().values().any(recording) {
            while_recording += 1;
        }
        let down = Instant::now();
        fc.command("stop")?;
        thread::sleep(rng.millis(200, 3000));
        fc.command("start")?;
        let back = Instant::now();
        wait_all_up(&nvr, Duration::from_secs(60), "all cameras to reconnect");
        reconnect_ms.push(back.elapsed().as_secs_f64() * 1000.0);
        disturbed.add("*", down, Instant::now());
    }
    let pids_after: Vec<u32> = nvr
        .cameras()
        .values()
        .map(|c| status::pid(c).unwrap_or(0))
        .collect();
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
        pids == pids_after && pids.iter().all(|p| *p != 0),
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
        (!nvr.cameras().values().any(recording)).then_some(())
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
    // At least one kill must have hit a clip with something on disk, or this proves nothing.
    sec.check(
        "every clip cut by a kill was finished and indexed after the restart, and plays to within one GOP of the kill",
        bad_cuts.is_empty() && !lost_ms.is_empty(),
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
        .map(|r| format!("{:.1}", duration_s(&out.join(str_at(r, &["path"])))))
        .collect();
    let sane = jumped
        .iter()
        .all(|r| duration_s(&out.join(str_at(r, &["path"]))) < 30.0);
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
            if misses.is_empty() {
                format!("{covered} of {eligible} []")
            } else {
                format!(
                    "{covered} of {eligible} {misses:?}; timeline (UTC): {:?}; the fake camera's late frames: {:?}",
                    timeline(&nvr, cam),
                    late_frames(&fc)
                )
            },
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

/// Waits until every camera's SUB and MAIN streams are up.
fn wait_all_up(nvr: &Nvr, timeout: Duration, what: &str) {
    wait_until(timeout, what, || {
        let c = nvr.cameras();
        c.values()
            .all(|c| stream_up(c, "sub") && stream_up(c, "main"))
            .then_some(())
    });
}

/// The fake camera's "late" events (a pusher starved past its lateness bound skipped frames it
/// never sent), as "unix ms mount late_ms".
fn late_frames(fc: &FakeCam) -> Vec<String> {
    fc.events()
        .iter()
        .filter(|e| e["event"] == "late")
        .map(|e| {
            format!(
                "{} {} {} ms",
                u64_at(e, &["wall_ns"]) / 1_000_000,
                str_at(e, &["mount"]),
                u64_at(e, &["late_ms"])
            )
        })
        .collect()
}
