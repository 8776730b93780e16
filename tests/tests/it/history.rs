//! The metrics history: a worker killed twice shows in the restarts series and as two markers;
//! the fps series has data; a damaged metrics file is set aside and the supervisor runs on; bad
//! parameters are a 400 naming the field; the metrics page draws it all in Chromium.

use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, signal, wait_until, Nvr, TempDir};
use nvr_tests::status::{camera_in, pid, stream_up};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn restarts_show_in_the_history_and_a_broken_file_is_set_aside() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let dir = TempDir::new("history");
    let output = dir.path().join("output");
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(
        output.join("metrics.sqlite3"),
        b"not a database ".repeat(100),
    )
    .unwrap();
    let cam = camera_config("hist18", &fc, "motion/main", "motion/sub");
    let nvr = Nvr::start_in(
        dir,
        json!({
            "heartbeat_interval_s": 0.5,
            "metrics": {"sample_every_s": 1},
            "cameras": [cam],
        }),
        &[],
    );
    let history = |query: &str| nvr.get_json(&format!("/api/metrics/history?{query}"));
    let restarts = || -> f64 {
        let (code, v) = history("camera=hist18&series=restarts");
        assert_eq!(code, 200, "{v}");
        v["series"]["restarts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .fold(0.0, f64::max)
    };
    for n in 1..=2 {
        let c = nvr.wait_camera(
            "hist18",
            Duration::from_secs(30),
            "a worker with SUB up",
            |c| stream_up(c, "sub"),
        );
        signal(pid(&c).unwrap(), "KILL");
        wait_until(
            Duration::from_secs(30),
            &format!("restart {n} in the history"),
            || (restarts() >= f64::from(n)).then_some(()),
        );
    }
    let (_, v) = history("camera=hist18&series=restarts,fps_sub,cpu,rss");
    assert_eq!(v["resolution"], "raw", "{v}");
    let markers = v["markers"].as_array().unwrap();
    assert_eq!(markers.len(), 2, "{v}");
    assert!(
        markers
            .iter()
            .all(|m| m["kind"] == "restart" && m["reason"] == "signal"),
        "{v}"
    );
    assert_eq!(restarts(), 2.0);
    let t = v["t"].as_array().unwrap();
    assert!(!t.is_empty() && t.len() == v["series"]["cpu"].as_array().unwrap().len());
    wait_until(Duration::from_secs(20), "fps_sub and rss samples", || {
        let (_, v) = history("camera=hist18&series=fps_sub,rss");
        let any = |s: &str| {
            v["series"][s]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x.as_f64().is_some_and(|x| x > 0.0))
        };
        (any("fps_sub") && any("rss")).then_some(())
    });
    // The system's series.
    let (code, v) = history("series=disk_free,rss");
    assert_eq!(code, 200, "{v}");
    assert!(
        v["series"]["disk_free"]
            .as_array()
            .unwrap()
            .iter()
            .any(Value::is_number),
        "{v}"
    );

    // The damaged file was set aside, with a warning, and the camera ran regardless.
    let aside = std::fs::read_dir(&output)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("metrics.sqlite3.broken-"))
        .count();
    assert_eq!(aside, 1);
    assert!(nvr.log_text().contains("set aside"), "a warning");

    for (query, field) in [
        ("camera=nope", "camera"),
        ("camera=hist18&series=cpu,bogus", "series"),
        ("from=abc", "from"),
        ("from=20&to=10", "from"),
        ("step=-5", "step"),
    ] {
        let (code, v) = history(query);
        assert_eq!(
            (code, v["field"].as_str()),
            (400, Some(field)),
            "{query}: {v}"
        );
    }
    assert!(camera_in(&nvr.status(), "hist18").is_some());

    // The metrics page in Chromium: charts with drawn data and both markers; a screenshot kept.
    let shots = nvr_tests::chromium::check_camera_page("metrics", nvr.port, "hist18");
    assert!(std::path::Path::new(&shots).join("metrics.png").is_file());
}
