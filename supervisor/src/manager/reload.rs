//! What a reload changes: the pure comparison of the cameras in force with a new config's.

use nvr_config::CameraConfig;
use serde::Serialize;

/// What a reload changed, camera by camera (ids in the new config's order; removed ones in the old).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct ReloadSummary {
    /// Cameras that are new: their workers start.
    pub added: Vec<String>,
    /// Cameras no longer in the config: their workers stop and they are forgotten.
    pub removed: Vec<String>,
    /// Cameras whose settings differ: their workers restart with the new settings.
    pub changed: Vec<String>,
    /// Cameras left exactly as they were.
    pub unchanged: usize,
}

/// Compares the cameras in force with the new config's.
pub fn diff(current: &[CameraConfig], new: &[CameraConfig]) -> ReloadSummary {
    let mut summary = ReloadSummary::default();
    for old in current {
        if !new.iter().any(|c| c.id == old.id) {
            summary.removed.push(old.id.to_string());
        }
    }
    for cam in new {
        match current.iter().find(|c| c.id == cam.id) {
            None => summary.added.push(cam.id.to_string()),
            Some(old) if old == cam => summary.unchanged += 1,
            Some(_) => summary.changed.push(cam.id.to_string()),
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera as the config loader makes it (defaults applied).
    fn camera(id: &str, url: &str) -> CameraConfig {
        let json = format!(r#"{{"cameras": [{{"id": "{id}", "main_url": "{url}"}}]}}"#);
        let config = nvr_config::parse(&json, "test.json".as_ref(), &|_| None).unwrap();
        config.cameras[0].clone()
    }

    #[test]
    fn a_reload_is_sorted_into_added_removed_changed_and_unchanged() {
        let a = camera("a", "rtsp://127.0.0.1/a");
        let b = camera("b", "rtsp://127.0.0.1/b");
        let c = camera("c", "rtsp://127.0.0.1/c");
        let b2 = camera("b", "rtsp://127.0.0.1/b2");
        let d = camera("d", "rtsp://127.0.0.1/d");
        // (in force, new config, expected summary)
        let table = [
            (vec![], vec![], ReloadSummary::default()),
            (
                vec![a.clone(), b.clone()],
                vec![a.clone(), b.clone()],
                ReloadSummary {
                    unchanged: 2,
                    ..Default::default()
                },
            ),
            (
                vec![a.clone(), b.clone(), c.clone()],
                vec![d.clone(), b2.clone(), a.clone()],
                ReloadSummary {
                    added: vec!["d".into()],
                    removed: vec!["c".into()],
                    changed: vec!["b".into()],
                    unchanged: 1,
                },
            ),
            (
                vec![a.clone()],
                vec![],
                ReloadSummary {
                    removed: vec!["a".into()],
                    ..Default::default()
                },
            ),
        ];
        for (n, (current, new, want)) in table.into_iter().enumerate() {
            assert_eq!(diff(&current, &new), want, "case {n}");
        }
    }
}
