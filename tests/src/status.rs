//! Reading the supervisor's `/status` JSON: one camera's entry, its worker's pid, its stream and
//! recorder states, and fields by path.

use serde_json::Value;

/// The entry of camera `id` in a `/status`.
pub fn camera_in(status: &Value, id: &str) -> Option<Value> {
    status["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

/// The pid of a camera's worker; `None` while it has none (between two workers).
pub fn pid(c: &Value) -> Option<u32> {
    c["pid"].as_u64().map(|p| p as u32)
}

/// Whether a camera's worker is running and its `stream` (`sub` or `main`) is up.
pub fn stream_up(c: &Value, stream: &str) -> bool {
    c["state"] == "running" && c["worker"][stream]["state"] == "up"
}

/// Whether a camera's recorder is writing a clip.
pub fn recording(c: &Value) -> bool {
    c["worker"]["recording"]["state"] == "recording"
}

/// The string at `path` under `v` ("" when there is none).
pub fn str_at(v: &Value, path: &[&str]) -> String {
    path.iter()
        .fold(v, |v, key| &v[*key])
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The whole number at `path` under `v` (0 when there is none).
pub fn u64_at(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, key| &v[*key]).as_u64().unwrap_or(0)
}

/// Every distinct `motion.last_start` seen while polling `/status` for `for_s` seconds, per camera
/// (in the order of `ids`). Onsets closer than the 100 ms poll would merge; the fake cameras' are
/// seconds apart.
pub fn collect_motion_starts(nvr: &crate::nvr::Nvr, ids: &[&str], for_s: f64) -> Vec<Vec<Value>> {
    let mut seen: Vec<Vec<Value>> = vec![Vec::new(); ids.len()];
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(for_s);
    while std::time::Instant::now() < until {
        let status = nvr.status();
        for (i, id) in ids.iter().enumerate() {
            let Some(c) = camera_in(&status, id) else {
                continue;
            };
            let start = &c["motion"]["last_start"];
            if start.is_object() && seen[i].last() != Some(start) {
                seen[i].push(start.clone());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    seen
}
