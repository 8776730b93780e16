//! What benchmarks read from `/proc`: a process's CPU time and memory, the machine's CPU time, and
//! small statistics helpers. CPU is reported in percent of one core.

use std::process::Command;

/// utime + stime of a process, in clock ticks (0 once it is gone).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// (RssAnon + RssFile, RssShmem) of a process, in MB ((0, 0) once it is gone).
pub fn rss_mb(pid: u32) -> (f64, f64) {
    read_rss_mb(pid).unwrap_or((0.0, 0.0))
}

/// [`rss_mb`], or `None` when `/proc/<pid>/status` cannot be read or lacks the fields (no such
/// process, no `/proc`): for checks that must not pass on samples that were never taken.
pub fn read_rss_mb(pid: u32) -> Option<(f64, f64)> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    Some((
        (kb("RssAnon:")? + kb("RssFile:")?) / 1024.0,
        kb("RssShmem:")? / 1024.0,
    ))
}

/// The number of open file descriptors of a process; `None` when `/proc/<pid>/fd` cannot be read.
pub fn open_fds(pid: u32) -> Option<usize> {
    if pid == 0 {
        return None;
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// (busy, total) ticks of the whole machine (all cores), from the `cpu` line of /proc/stat. Busy is
/// user + nice + system + irq + softirq: not idle, iowait or time stolen by the hypervisor.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), v.iter().sum())
}

pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The CPU model, for reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// `median (min–max)` of `v`, to one decimal.
pub fn median_spread(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(f64::total_cmp);
    format!("{:.1} ({:.1}–{:.1})", v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The p-th percentile (0..=100) of `values` by nearest rank: the smallest value with at least p %
/// of the values at or below it, never an interpolation. NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (Pss, Pss_Shmem) of a process from `/proc/<pid>/smaps_rollup`, in MB ((0, 0) once it is gone):
/// proportional set size, shared pages divided among the processes that map them.
pub fn pss_mb(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kb = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("Pss:") / 1024.0, kb("Pss_Shmem:") / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        // A value of the sample, never one between two (interpolation would give 1.5).
        assert_eq!(percentile(&[2.0, 1.0], 50.0), 1.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
