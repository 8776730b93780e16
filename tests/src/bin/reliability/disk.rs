//! Phase `disk`: the output on a read-only bind mount, then on a full file system, then back.

use crate::checks::check_files;
use crate::report::Section;
use crate::rig::{base_config, camera, stop, wait_for};
use anyhow::{bail, Context, Result};
use nvr_tests::clipcheck::files_ending;
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{Nvr, TempDir};
use nvr_tests::status::{self, recording, str_at, u64_at};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

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
    u64_at(c, &["worker", "recording", "files"])
}

/// Waits (up to 40 s) for camera `d`'s recorder to report an error, records how long that took as
/// `figure`, and returns the error ("" if none came).
fn recorder_error(nvr: &Nvr, sec: &mut Section, figure: &str) -> String {
    let error_of = |c: &Value| {
        (c["worker"]["recording"]["state"] == "error")
            .then(|| str_at(c, &["worker", "recording", "last_error"]))
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

pub fn run(sec: &mut Section) -> Result<()> {
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
    let pid = status::pid(&c).unwrap_or(0);

    // Read-only, between clips: the next motion cannot be recorded.
    set_read_only(&nvr, &cam_s, true)?;
    let said = recorder_error(&nvr, sec, "read-only, next motion → error in /status");
    sec.check(
        "read-only output: the recorder shows an error that says so",
        said.to_lowercase().contains("read-only"),
        said,
    );
    let (code, _) = nvr.get_json("/ready");
    sec.check(
        "read-only output: the supervisor answers, the worker is not restarted",
        status::pid(&nvr.camera("d")).unwrap_or(0) == pid,
        format!("/ready {code}"),
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
        status::pid(&nvr.camera("d")).unwrap_or(0) == pid,
        format!("restarts {}", u64_at(&nvr.camera("d"), &["restarts"])),
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
