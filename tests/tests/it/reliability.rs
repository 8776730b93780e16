//! The small version of the fault-injection suite (`reliability` with its default counts: 10
//! kills, 3 camera server restarts, a minute of bad cameras, read-only and full output, a
//! supervisor SIGKILL, a short soak). Every check it makes must pass; `--full` writes the figures
//! to RELIABILITY.md.

use nvr_tests::nvr::{bin, TempDir};
use std::process::Command;

#[test]
fn the_small_fault_injection_suite_passes_every_check() {
    let dir = TempDir::new("reliability");
    let report = dir.path().join("report.md");
    let run = Command::new(bin("reliability"))
        .arg("--out")
        .arg(&report)
        .output()
        .expect("run reliability");
    let md = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        run.status.success(),
        "{md}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for section in [
        "Worker kills, camera server restarts, clock jumps",
        "Bad cameras",
        "Read-only and full output",
        "Supervisor SIGKILL",
        "Soak",
    ] {
        assert!(md.contains(section), "no {section} in\n{md}");
    }
    let passes = md.matches("| pass |").count();
    assert!(passes >= 40, "only {passes} checks passed:\n{md}");
    assert!(!md.contains("FAIL"), "{md}");
}
