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
//!
//! Each phase is a module of its own (`faults`, `bad_cameras`, `disk`, `supervisor_kill`, `soak`);
//! they share `rig` (the config they start, stopping, waiting), `checks` (judging) and `report`.

mod bad_cameras;
mod checks;
mod disk;
mod faults;
mod report;
mod rig;
mod soak;
mod supervisor_kill;

use anyhow::{bail, Context, Result};
use report::{log, Section};
use rig::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
            "faults" => faults::run(&args, &mut rng, &mut sec),
            "bad" => bad_cameras::run(&args, &mut sec),
            "disk" => disk::run(&mut sec),
            "supervisor" => supervisor_kill::run(&mut sec),
            _ => soak::run(&args, &mut sec),
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
        report::write_between_markers(path, &md)?;
    }
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
