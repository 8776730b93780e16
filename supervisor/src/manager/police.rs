//! Resource police: samples each worker's CPU and resident memory with sysinfo, and decides (pure code)
//! when a worker has broken its camera's limits.

use crate::status::RestartReason;
use nvr_config::LimitsConfig;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One sample of a worker process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Percent of one core since the previous sample (a process using two cores shows 200).
    pub cpu_percent: f32,
    pub rss_bytes: u64,
    /// CPU seconds (user and system) the process has used since it started.
    pub cpu_s: f64,
}

pub struct Police {
    sys: Option<System>,
}

impl Police {
    pub fn new() -> Self {
        let sys = System::new()
            .map_err(|e| tracing::error!(error = %e, "sysinfo unavailable; CPU and memory limits are not enforced"))
            .ok();
        Police { sys }
    }

    /// Samples the given pids. The first sample of a process reports 0 % CPU (there is no interval yet).
    pub fn sample(&mut self, pids: &[u32]) -> HashMap<u32, Usage> {
        let Some(sys) = self.sys.as_mut() else {
            return HashMap::new();
        };
        let pids: Vec<Pid> = pids.iter().map(|p| Pid::from_u32(*p)).collect();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        pids.iter()
            .filter_map(|pid| {
                sys.process(*pid).map(|p| {
                    (
                        pid.as_u32(),
                        Usage {
                            cpu_percent: p.cpu_usage(),
                            rss_bytes: p.memory(),
                            cpu_s: p.accumulated_cpu_time() as f64 / 1e3,
                        },
                    )
                })
            })
            .collect()
    }
}

/// A broken limit: the restart reason ([`RestartReason::Memory`] or [`RestartReason::Cpu`]) and a
/// sentence for `/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub reason: RestartReason,
    pub detail: String,
}

/// Judges one sample. `cpu_over_since` is when the CPU went over its limit (kept by the caller);
/// this updates it.
pub fn judge(
    limits: &LimitsConfig,
    usage: Usage,
    cpu_over_since: &mut Option<Instant>,
    now: Instant,
) -> Option<Violation> {
    let rss_mb = usage.rss_bytes as f64 / 1e6;
    if rss_mb > limits.max_rss_mb {
        return Some(Violation {
            reason: RestartReason::Memory,
            detail: format!(
                "RSS {rss_mb:.0} MB over the limit of {} MB",
                limits.max_rss_mb
            ),
        });
    }
    if f64::from(usage.cpu_percent) <= limits.max_cpu_percent {
        *cpu_over_since = None;
        return None;
    }
    let since = *cpu_over_since.get_or_insert(now);
    let over_for = now.duration_since(since);
    (over_for >= Duration::from_secs_f64(limits.cpu_grace_s)).then(|| Violation {
        reason: RestartReason::Cpu,
        detail: format!(
            "CPU {:.0} % over the limit of {} % for {:.0} s",
            usage.cpu_percent,
            limits.max_cpu_percent,
            over_for.as_secs_f64()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_table() {
        let limits = LimitsConfig {
            max_rss_mb: 200.0,
            max_cpu_percent: 50.0,
            cpu_grace_s: 10.0,
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut over = None;
        // (seconds, cpu %, rss MB, expected reason)
        let table: [(u64, f32, u64, Option<RestartReason>); 7] = [
            (0, 10.0, 100, None),
            (1, 90.0, 100, None), // over, grace starts
            (6, 90.0, 100, None),
            (11, 90.0, 100, Some(RestartReason::Cpu)),
            (12, 10.0, 100, None), // back under: grace resets
            (13, 90.0, 100, None),
            (14, 10.0, 250, Some(RestartReason::Memory)),
        ];
        for (s, cpu, rss_mb, want) in table {
            let usage = Usage {
                cpu_percent: cpu,
                rss_bytes: rss_mb * 1_000_000,
                cpu_s: 0.0,
            };
            let got = judge(&limits, usage, &mut over, at(s)).map(|v| v.reason);
            assert_eq!(got, want, "at {s} s");
        }
    }

    #[test]
    fn samples_this_process() {
        let mut police = Police::new();
        let me = std::process::id();
        let usage = police.sample(&[me]);
        assert!(usage[&me].rss_bytes > 1_000_000, "{usage:?}");
    }
}
