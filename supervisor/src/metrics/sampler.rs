//! The sampler thread: every `metrics.sample_every_s` it reads the snapshot the manager publishes
//! (never the manager itself), adds what only the system knows (PSS, disk, load, the index's bytes
//! per camera), turns counters into rates, and stores the samples; then it rolls up and prunes in
//! bounded batches. A store that fails (full disk, broken file) pauses sampling with a warning;
//! the manager, the workers and the API do not notice.

use super::store::{Keep, Marker, Store};
use crate::status::{Snapshot, WorkerState};
use nvr_proto::StreamState;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the system says at a sample, besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct SystemFigures {
    /// The supervisor's CPU seconds and resident bytes.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// (free, size) of the output file system.
    pub disk: Option<(u64, u64)>,
    /// Bytes of recordings per camera.
    pub stored_bytes: HashMap<String, u64>,
    pub load1: Option<f64>,
    /// PSS of worker processes, by pid.
    pub pss_bytes: HashMap<u32, u64>,
}

/// What the previous sample saw, to turn running totals into rates and to spot restarts.
#[derive(Debug, Default)]
pub struct Memory {
    /// Unix s of the previous sample.
    t_s: Option<f64>,
    sup_cpu_s: f64,
    cameras: HashMap<String, CameraMemory>,
}

#[derive(Debug, Default)]
struct CameraMemory {
    cpu_s: f64,
    /// (pid, bytes) of each stream at the previous sample: bytes restart at 0 with a new worker.
    bytes: [(Option<u32>, u64); 2],
    /// Reconnects the current worker had reported, and those of earlier workers.
    reconnects_now: u64,
    reconnects_before: u64,
    pid: Option<u32>,
    restarts: u64,
}

/// Samples (camera or "" for the system, series, value) and new restart markers.
pub type Taken = (Vec<(String, &'static str, f64)>, Vec<(String, Marker)>);

/// The samples of one snapshot at `t_s` (Unix s). Pure: the tests feed it made-up snapshots.
pub fn take(snap: &Snapshot, sys: &SystemFigures, mem: &mut Memory, t_s: f64) -> Taken {
    let dt = mem.t_s.map(|p| t_s - p).filter(|d| *d > 0.0);
    let mut out: Vec<(String, &'static str, f64)> = Vec::new();
    let mut markers = Vec::new();
    for c in snap.cameras.iter().filter(|c| c.enabled) {
        let m = mem.cameras.entry(c.id.clone()).or_default();
        let id = &c.id;
        let mut put = |name: &'static str, v: f64| out.push((id.clone(), name, v));
        if let (Some(dt), true) = (dt, c.totals.cpu_s >= m.cpu_s) {
            put("cpu", (c.totals.cpu_s - m.cpu_s) / dt);
        }
        m.cpu_s = c.totals.cpu_s;
        if let Some(rss) = c.rss_mb {
            put("rss", (rss * 1e6).round());
        }
        if let Some(pss) = c.pid.and_then(|p| sys.pss_bytes.get(&p)) {
            put("pss", *pss as f64);
        }
        let w = c.worker.as_ref();
        let streams = [
            w.and_then(|w| w.sub.as_ref()),
            w.and_then(|w| w.main.as_ref()),
        ];
        let mut up = c.state == WorkerState::Running && streams[0].is_some();
        let mut reconnects = 0;
        for (i, s) in streams.iter().enumerate() {
            let (fps, bitrate) = [("fps_sub", "bitrate_sub"), ("fps_main", "bitrate_main")][i];
            let Some(s) = s else {
                continue;
            };
            up &= s.state == StreamState::Up;
            put(fps, s.fps);
            let (pid, before) = m.bytes[i];
            if let (Some(dt), true) = (dt, pid == c.pid && s.bytes >= before) {
                put(bitrate, (s.bytes - before) as f64 * 8.0 / dt);
            }
            m.bytes[i] = (c.pid, s.bytes);
            reconnects += s.reconnects;
        }
        if m.pid != c.pid {
            m.reconnects_before += m.reconnects_now;
            m.reconnects_now = 0;
            m.pid = c.pid;
        }
        if w.is_some() {
            m.reconnects_now = reconnects;
        }
        put(
            "reconnects",
            (m.reconnects_before + m.reconnects_now) as f64,
        );
        put("restarts", c.restarts as f64);
        put("motion_events", c.motion.events as f64);
        put("recorded_bytes", c.recordings.bytes as f64);
        if let Some(l) = &c.heartbeat_latency {
            put("heartbeat_latency", l.last_ms / 1e3);
        }
        if let Some(b) = sys.stored_bytes.get(id) {
            put("stored_bytes", *b as f64);
        }
        put("up", f64::from(u8::from(up)));
        if c.restarts > m.restarts {
            if let Some(r) = &c.last_restart {
                // Restarts closer together than a sample share one marker, which says so.
                let more = c.restarts - m.restarts - 1;
                markers.push((
                    id.clone(),
                    Marker {
                        t: r.at_unix_ms as i64,
                        kind: "restart".into(),
                        reason: r.reason.as_str().into(),
                        detail: if more > 0 {
                            format!("{} (and {more} more since the last sample)", r.detail)
                        } else {
                            r.detail.clone()
                        },
                    },
                ));
            }
        }
        m.restarts = c.restarts;
    }
    let mut put = |name: &'static str, v: f64| out.push((String::new(), name, v));
    if let Some(dt) = dt {
        put("cpu", ((sys.cpu_s - mem.sup_cpu_s) / dt).max(0.0));
    }
    mem.sup_cpu_s = sys.cpu_s;
    put("rss", sys.rss_bytes as f64);
    if let Some((free, size)) = sys.disk {
        put("disk_free", free as f64);
        put("disk_size", size as f64);
    }
    put("disk_used", sys.stored_bytes.values().sum::<u64>() as f64);
    if let Some(l) = sys.load1 {
        put("load1", l);
    }
    mem.t_s = Some(t_s);
    (out, markers)
}

/// PSS of `pid` from `/proc/<pid>/smaps_rollup`, bytes.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// How often the recordings index is asked for the bytes each camera has stored: summing it
/// reads every recording's row, too much for every sample.
const STORED_BYTES_EVERY: Duration = Duration::from_secs(60);

/// The bytes per camera from the recordings index, asked at most every [`STORED_BYTES_EVERY`].
#[derive(Default)]
struct StoredBytes {
    at: Option<Instant>,
    bytes: HashMap<String, u64>,
}

impl StoredBytes {
    fn get(&mut self, output_dir: &Path) -> HashMap<String, u64> {
        if self.at.is_none_or(|at| at.elapsed() >= STORED_BYTES_EVERY) {
            self.at = Some(Instant::now());
            if let Ok(b) =
                crate::archive::index::Index::reader(output_dir).and_then(|i| i.bytes_by_camera())
            {
                self.bytes = b.into_iter().collect();
            }
        }
        self.bytes.clone()
    }
}

fn gather(output_dir: &Path, snap: &Snapshot, stored: &mut StoredBytes) -> SystemFigures {
    let own = super::own_process();
    SystemFigures {
        cpu_s: own.map_or(0.0, |p| p.cpu_s),
        rss_bytes: own.map_or(0, |p| p.rss_bytes),
        disk: crate::archive::free_space(output_dir).ok(),
        stored_bytes: stored.get(output_dir),
        load1: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok()),
        pss_bytes: snap
            .cameras
            .iter()
            .filter_map(|c| c.pid)
            .filter_map(|p| Some((p, pss_bytes(p)?)))
            .collect(),
    }
}

/// Most maintenance batches after one sample (the rest waits for the next).
const MAINTAIN_BATCHES: usize = 8;

/// Starts the sampler thread on the store in `output_dir`.
pub fn spawn(
    output_dir: PathBuf,
    status: Arc<RwLock<Snapshot>>,
    config: nvr_config::MetricsConfig,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || run(&output_dir, &status, &config))
        .map(|_| ())
}

fn open(output_dir: &Path, config: &nvr_config::MetricsConfig) -> Option<Store> {
    match Store::open(output_dir) {
        Ok((store, note)) => {
            if let Some(note) = note {
                warn!(%note, "metrics history starts afresh");
            }
            if let Err(e) = store.set_settings(config) {
                warn!(error = %e, "metrics store: cannot record its settings");
            }
            Some(store)
        }
        Err(e) => {
            warn!(error = %e, "cannot open the metrics store; no history is kept until it opens");
            None
        }
    }
}

fn run(output_dir: &Path, status: &RwLock<Snapshot>, config: &nvr_config::MetricsConfig) {
    let every = Duration::from_secs_f64(config.sample_every_s);
    let keep = Keep::from(config);
    let mut store = open(output_dir, config);
    let mut mem = Memory::default();
    let mut stored = StoredBytes::default();
    let mut paused: Option<String> = None;
    let mut next = Instant::now() + Duration::from_secs(1);
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += every;
        if Instant::now() > next {
            next = Instant::now() + every;
        }
        let Some(s) = store.as_mut() else {
            store = open(output_dir, config);
            continue;
        };
        let snap = status.read().map(|s| s.clone()).unwrap_or_default();
        let sys = gather(output_dir, &snap, &mut stored);
        let now_s = nvr_proto::unix_ns() as f64 / 1e9;
        let (samples, markers) = take(&snap, &sys, &mut mem, now_s);
        let samples: Vec<_> = samples
            .iter()
            .map(|(c, n, v)| (c.as_str(), *n, *v))
            .collect();
        let t_s = now_s.floor() as i64;
        let result = s.insert(t_s, &samples, &markers).and_then(|()| {
            for _ in 0..MAINTAIN_BATCHES {
                if !s.maintain(t_s, keep)? {
                    break;
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                if paused.take().is_some() {
                    info!("metrics sampling resumed");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if paused.as_deref() != Some(msg.as_str()) {
                    if e.is_disk_full() {
                        warn!(error = %msg, "metrics sampling paused: the disk is full");
                    } else {
                        warn!(error = %msg, "metrics sampling paused");
                    }
                    paused = Some(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{CameraStatus, RestartReason, RestartRecord};
    use nvr_proto::{StreamStatus, WorkerStats};

    fn camera(id: &str, pid: u32, cpu_s: f64, sub_bytes: u64, reconnects: u64) -> CameraStatus {
        let mut c = crate::fuzzing::camera_status();
        c.id = id.into();
        c.pid = Some(pid);
        c.totals.cpu_s = cpu_s;
        c.worker = Some(WorkerStats {
            sub: Some(StreamStatus {
                state: StreamState::Up,
                fps: 5.0,
                bytes: sub_bytes,
                reconnects,
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    }

    fn value(taken: &Taken, camera: &str, name: &str) -> Option<f64> {
        taken
            .0
            .iter()
            .find(|(c, n, _)| c == camera && *n == name)
            .map(|s| s.2)
    }

    #[test]
    fn counters_become_rates_and_survive_a_restart() {
        let sys = SystemFigures {
            pss_bytes: [(10, 4096)].into(),
            ..Default::default()
        };
        let mut mem = Memory::default();
        let mut off = camera("off", 12, 0.0, 0, 0);
        off.enabled = false;
        let mut snap = Snapshot {
            cameras: vec![camera("cam", 10, 1.0, 1000, 1), off],
            ..Default::default()
        };
        let first = take(&snap, &sys, &mut mem, 100.0);
        assert_eq!(value(&first, "cam", "cpu"), None, "no rate from one sample");
        assert_eq!(value(&first, "cam", "pss"), Some(4096.0));
        assert_eq!(value(&first, "cam", "up"), Some(1.0));
        assert!(
            first.0.iter().all(|(c, _, _)| c != "off"),
            "disabled cameras are not sampled"
        );

        snap.cameras[0] = camera("cam", 10, 2.0, 11_000, 1);
        let second = take(&snap, &sys, &mut mem, 110.0);
        assert_eq!(value(&second, "cam", "cpu"), Some(0.1));
        assert_eq!(value(&second, "cam", "bitrate_sub"), Some(8000.0));
        assert_eq!(value(&second, "cam", "reconnects"), Some(1.0));
        assert!(second.1.is_empty());

        // The worker was killed and restarted: its byte count starts again, its CPU seconds are
        // summed by the manager, its reconnects are added to those of the worker before it.
        let mut c = camera("cam", 11, 2.5, 500, 0);
        c.restarts = 2;
        c.last_restart = Some(RestartRecord {
            reason: RestartReason::Signal,
            detail: "killed by signal 9".into(),
            at_unix_ms: 105_000,
        });
        snap.cameras[0] = c;
        let third = take(&snap, &sys, &mut mem, 120.0);
        assert_eq!(
            value(&third, "cam", "bitrate_sub"),
            None,
            "no rate across a restart"
        );
        assert_eq!(value(&third, "cam", "cpu"), Some(0.05));
        assert_eq!(value(&third, "cam", "reconnects"), Some(1.0));
        assert_eq!(value(&third, "cam", "restarts"), Some(2.0));
        let [(camera, marker)] = &third.1[..] else {
            panic!("one marker: {:?}", third.1)
        };
        assert_eq!(camera, "cam");
        assert_eq!((marker.t, marker.reason.as_str()), (105_000, "signal"));
        assert!(marker.detail.contains("and 1 more"), "{}", marker.detail);
    }

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let pss = pss_bytes(std::process::id()).expect("this process has a PSS");
        assert!(pss > 100_000, "{pss}");
    }
}
