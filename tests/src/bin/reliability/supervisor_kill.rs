//! Phase `supervisor`: the supervisor SIGKILLed mid-recording, then started again.

use crate::checks::check_files;
use crate::report::Section;
use crate::rig::{base_config, camera, indexed, stop, wait_for};
use anyhow::{Context, Result};
use nvr_tests::clipcheck::files_ending;
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{alive, Nvr};
use nvr_tests::status::{self, recording, u64_at};
use serde_json::json;
use std::thread;
use std::time::{Duration, Instant};

pub fn run(sec: &mut Section) -> Result<()> {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"]))?;
    let mut a = camera("a", &fc, "motion/main", "motion/sub");
    a["recording"] = json!({"mode": "continuous", "max_segment_s": 5});
    let mut b = camera("b", &fc, "motion/main_h265", "motion/sub_h265");
    b["recording"] = json!({"mode": "continuous", "max_segment_s": 5});
    let mut nvr = Nvr::start(base_config(vec![a, b]), &[]);
    for id in ["a", "b"] {
        wait_for(&nvr, id, Duration::from_secs(40), |c| {
            u64_at(c, &["worker", "recording", "files"]) >= 1 && recording(c)
        })
        .with_context(|| format!("{id} never recorded"))?;
    }
    thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = nvr
        .cameras()
        .values()
        .map(|c| status::pid(c).unwrap_or(0))
        .collect();
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
        .flat_map(|id| {
            [
                shm_bus::segment_path_in(nvr.shm_dir(), id).ok(),
                shm_bus::packet_segment_path_in(nvr.shm_dir(), id, shm_bus::StreamKind::Sub).ok(),
                shm_bus::packet_segment_path_in(nvr.shm_dir(), id, shm_bus::StreamKind::Main).ok(),
            ]
        })
        .flatten()
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
