//! Metrics: `/metrics` in the Prometheus text format ([`exposition`]), and the history of them
//! ([`sampler`] takes samples into the [`store`]).

pub mod exposition;
pub mod sampler;
pub mod store;

use exposition::{Extra, ProcessFigures};
use std::path::Path;
use std::sync::Mutex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The supervisor's own CPU time, memory and start time.
pub fn own_process() -> Option<ProcessFigures> {
    static SYS: Mutex<Option<System>> = Mutex::new(None);
    let mut sys = SYS.lock().ok()?;
    if sys.is_none() {
        *sys = System::new().ok();
    }
    let sys = sys.as_mut()?;
    let pid = Pid::from_u32(std::process::id());
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let p = sys.process(pid)?;
    Some(ProcessFigures {
        start_time_s: p.start_time() as f64,
        cpu_s: p.accumulated_cpu_time() as f64 / 1e3,
        rss_bytes: p.memory(),
    })
}

/// What `/metrics` shows besides the manager's snapshot (blocking: reads the index and the disk).
pub fn gather_extra(output_dir: &Path) -> Extra {
    let stored_bytes = crate::archive::index::Index::reader(output_dir)
        .and_then(|i| i.bytes_by_camera())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default();
    Extra {
        disk: crate::archive::free_space(output_dir).ok(),
        stored_bytes,
        retention: crate::archive::RETENTION_DELETED
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default(),
        process: own_process(),
    }
}
