//! Phase `soak`: several cameras for a while; RSS and file descriptors sampled.

use crate::checks::{flat, onsets_covered, Disturbances};
use crate::report::Section;
use crate::rig::{base_config, camera, indexed, stop, HEARTBEAT_S};
use crate::Args;
use anyhow::Result;
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::Nvr;
use nvr_tests::procstat::{open_fds, read_rss_mb};
use nvr_tests::status::{self, u64_at};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

/// RSS (MB) and open file descriptors of one process, one sample each per period; `None` where
/// it could not be read.
type SampleSeries = (Vec<Option<f64>>, Vec<Option<f64>>);

pub fn run(args: &Args, sec: &mut Section) -> Result<()> {
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
    let mut samples: BTreeMap<String, SampleSeries> = BTreeMap::new();
    let mut next = started + warm_up;
    while started.elapsed() < Duration::from_secs(args.soak_s) {
        if Instant::now() >= next {
            let mut pids: Vec<(String, u32)> = nvr
                .cameras()
                .into_iter()
                .map(|(id, c)| (id, status::pid(&c).unwrap_or(0)))
                .collect();
            pids.push(("supervisor".into(), nvr.pid()));
            for (id, pid) in pids {
                let e = samples.entry(id).or_default();
                e.0.push(read_rss_mb(pid).map(|r| r.0));
                e.1.push(open_fds(pid).map(|n| n as f64));
            }
            next += every;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let until = Instant::now();
    let c = nvr.cameras();
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
        let (rss_ok, rss_seen) = flat(rss, "MB");
        let (fd_ok, fd_seen) = flat(fd, "fds");
        sec.check(
            &format!("{id}: RSS and file descriptors do not grow (< 5 %)"),
            rss_ok && fd_ok,
            format!("RSS {rss_seen}; {fd_seen}"),
        );
    }
    sec.check(
        "RSS and file descriptors were sampled for every camera and the supervisor",
        samples.len() == args.soak_cameras + 1,
        format!("{} series", samples.len()),
    );
    let gaps: Vec<f64> = c
        .values()
        .map(|c| c["max_heartbeat_gap_ms"].as_f64().unwrap_or(f64::MAX))
        .collect();
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    sec.check(
        "no heartbeat missed (longest gap < 2 intervals), no restart",
        worst < HEARTBEAT_S * 2000.0 && c.values().all(|c| u64_at(c, &["restarts"]) == 0),
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
