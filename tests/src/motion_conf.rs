//! Configuration of Motion (Debian's `motion` 4.5) as an NVR user would set it up, for the
//! benchmark: detection on SUB, MAIN recorded without re-encoding (`movie_passthrough`), pre and
//! post capture, and an `on_event_start` hook that notes the wall time so detection latency is
//! measured the same way as ours. Option names were checked against 4.5.1 (e.g. `netcam_params
//! rtsp_transport=tcp`, which replaced `rtsp_uses_tcp` after 4.3.2); Motion expands `%` in inline
//! hook commands, hence the hook script.

use std::fmt::Write as _;
use std::path::Path;

/// The main file; cameras are appended as `camera <file>` lines. Writes the hook script into `dir`.
pub fn main_conf(dir: &Path, events: &Path) -> String {
    let hook = dir.join("on_event_start.sh");
    let _ = std::fs::write(
        &hook,
        format!("#!/bin/sh\ndate +%s%N >> {}\n", events.display()),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755));
    }
    let mut s = String::new();
    let _ = writeln!(s, "daemon off\nsetup_mode off\nlog_level 4");
    let _ = writeln!(s, "log_file {}", dir.join("motion.log").display());
    let _ = writeln!(s, "pid_file {}", dir.join("motion.pid").display());
    let _ = writeln!(s, "webcontrol_port 0\nstream_port 0");
    let _ = writeln!(s, "on_event_start {}", hook.display());
    s
}

/// One camera's file.
pub fn camera_conf(i: usize, sub_url: &str, main_url: &str, target: &Path) -> String {
    format!(
        "camera_id {}
camera_name cam{i}
netcam_url {sub_url}
netcam_params rtsp_transport=tcp
netcam_high_url {main_url}
netcam_high_params rtsp_transport=tcp
width 640
height 360
framerate 30
threshold 1500
despeckle_filter EedDl
minimum_motion_frames 1
event_gap 5
pre_capture 30
post_capture 30
picture_output off
movie_output on
movie_passthrough on
movie_max_time 0
target_dir {}
stream_port 0
",
        i + 1,
        target.display()
    )
}

/// One camera's file for the detection benchmark: SUB only (no recording), at the stream's own size
/// and rate, Motion's default `threshold` (1500 changed pixels), and a `mask_file` where the
/// camera's config masks an area.
pub fn detection_camera_conf(
    i: usize,
    sub_url: &str,
    (width, height, fps): (usize, usize, f64),
    mask_file: Option<&Path>,
    target: &Path,
) -> String {
    let mut s = format!(
        "camera_id {}
camera_name cam{i}
netcam_url {sub_url}
netcam_params rtsp_transport=tcp
width {width}
height {height}
framerate {}
despeckle_filter EedDl
minimum_motion_frames 1
event_gap 5
picture_output off
movie_output off
target_dir {}
stream_port 0
",
        i + 1,
        fps.round(),
        target.display()
    );
    if let Some(mask) = mask_file {
        let _ = writeln!(s, "mask_file {}", mask.display());
    }
    s
}

/// A PGM mask for Motion (white: watched, black: ignored) from polygons in 0..1 coordinates; only
/// axis-aligned rectangles (their bounding boxes) are drawn, which is what the benchmark's masks are.
pub fn pgm_mask(width: usize, height: usize, rects: &[[[f64; 2]; 2]]) -> Vec<u8> {
    let mut out = format!("P5\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (
                (x as f64 + 0.5) / width as f64,
                (y as f64 + 0.5) / height as f64,
            );
            let masked = rects
                .iter()
                .any(|[a, b]| (a[0]..=b[0]).contains(&fx) && (a[1]..=b[1]).contains(&fy));
            out.push(if masked { 0 } else { 255 });
        }
    }
    out
}
