//! What every phase shares: the NVR config it starts, stopping it with its log kept, waiting on
//! a camera, and a seeded random source.

use anyhow::{bail, Result};
use nvr_tests::fakecam::FakeCam;
use nvr_tests::nvr::{camera_config, Nvr};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HEARTBEAT_S: f64 = 0.5;

/// xorshift64*: reproducible from `--seed`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every clip in the index, finished or not.
pub fn indexed(nvr: &Nvr) -> Vec<Value> {
    nvr.get_json("/api/recordings")
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A camera config on fake camera mounts, recording motion with a short pre- and post-roll.
pub fn camera(id: &str, fc: &FakeCam, main: &str, sub: &str) -> Value {
    let mut camera = camera_config(id, fc, main, sub);
    camera["motion"] = json!({"post_motion_s": 1, "min_area": 0.5});
    camera["recording"] = json!({"pre_roll_s": 3, "post_roll_s": 2});
    camera
}

pub fn base_config(cameras: Vec<Value>) -> Value {
    json!({
        "heartbeat_interval_s": HEARTBEAT_S,
        // Short restart delays that reset quickly: each kill exercises a restart, not the cap.
        "restart": {"initial_s": 0.5, "max_s": 5, "reset_after_s": 1, "intensity": 10000, "period_s": 60},
        "retention": {"min_free_gb": 0},
        "cameras": cameras,
    })
}

/// Stops the supervisor (SIGTERM) and keeps its log in `target/reliability/<phase>.log`.
pub fn stop(nvr: &mut Nvr, phase: &str) -> Result<()> {
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

pub fn wait_for(
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
