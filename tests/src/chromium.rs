//! Running the web UI's checks in Debian's headless Chromium: the `tests/ui/*.mjs` scripts
//! (playwright-core) against a supervisor a test started.

use crate::fakecam::workspace_root;
use std::process::Command;

/// Runs `tests/ui/<script>` with `args` within `timeout_s`, handing each line it prints to
/// `on_line` as it comes (a script may ask for things only the test can do); panics with its
/// output unless every check passed. Returns the output.
pub fn run_script(
    script: &str,
    args: &[&str],
    timeout_s: u32,
    mut on_line: impl FnMut(&str),
) -> String {
    use std::io::{BufRead, BufReader};
    let root = workspace_root();
    let mut child = Command::new("timeout")
        .args(["-k", "5", &timeout_s.to_string(), "node"])
        .arg(root.join("tests/ui").join(script))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node (see scripts/setup.sh)");
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        eprintln!("{line}");
        on_line(&line);
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    eprintln!("{errors}");
    text.push_str(&errors);
    assert!(status.success(), "UI checks failed:\n{text}");
    text
}

/// Where a test's screenshots go: `target/ui-screenshots/<name>`.
pub fn shots(name: &str) -> String {
    workspace_root()
        .join("target/ui-screenshots")
        .join(name)
        .display()
        .to_string()
}

/// Runs `tests/ui/<name>.mjs` against the supervisor on `port` for one camera, as the camera-page
/// scripts take it (`--base`, `--shots`, `--camera`), within 120 s; returns the screenshot folder.
pub fn check_camera_page(name: &str, port: u16, camera: &str) -> String {
    let shots = shots(name);
    let base = format!("http://127.0.0.1:{port}");
    let args = ["--base", &base, "--shots", &shots, "--camera", camera];
    run_script(&format!("{name}.mjs"), &args, 120, |_| {});
    shots
}
