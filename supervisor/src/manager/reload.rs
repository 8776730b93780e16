//! What a reload changes: the pure comparison of the cameras in force with a new config's.

use nvr_config::CameraConfig;
use nvr_proto::CameraSettings;
use serde::Serialize;

/// What a reload changed, camera by camera (ids in the new config's order; removed ones in the old).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct ReloadSummary {
    /// Cameras that are new: their workers start.
    pub added: Vec<String>,
    /// Cameras no longer in the config: their workers stop and they are forgotten.
    pub removed: Vec<String>,
    /// Cameras whose settings differ in what only a new worker can take (URLs, credentials,
    /// transport, enabled, recording on or off, pre-roll, detection on or off): their workers
    /// restart with the new settings.
    pub changed: Vec<String>,
    /// Cameras whose other settings changed (motion thresholds, zones, masks, recording mode,
    /// post-roll, segment length, name, limits, retention): applied in place, no restart.
    pub updated: Vec<String>,
    /// Cameras left exactly as they were.
    pub unchanged: usize,
    /// Settings outside the cameras that changed but wait for a restart (`output_dir`); the
    /// running values stay. The `Reload` command puts the API's own first; `/status` and the
    /// answer to `POST /api/reload` report the list as `restart_needed`.
    #[serde(skip)]
    pub restart_needed: Vec<String>,
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
            Some(old) if in_place(old, cam) => summary.updated.push(cam.id.to_string()),
            Some(_) => summary.changed.push(cam.id.to_string()),
        }
    }
    summary
}

/// Whether a running worker can take `new` without a restart.
pub fn in_place(old: &CameraConfig, new: &CameraConfig) -> bool {
    old.enabled == new.enabled
        && CameraSettings::from(old).live_only_change(&CameraSettings::from(new))
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
        let mut c2 = c.clone();
        c2.motion.threshold = 12;
        c2.limits.max_rss_mb = 500.0;
        let mut a_off = a.clone();
        a_off.enabled = false;
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
                    ..Default::default()
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
            (
                vec![a.clone(), c.clone()],
                vec![a_off, c2],
                ReloadSummary {
                    changed: vec!["a".into()],
                    updated: vec!["c".into()],
                    ..Default::default()
                },
            ),
        ];
        for (n, (current, new, want)) in table.into_iter().enumerate() {
            assert_eq!(diff(&current, &new), want, "case {n}");
        }
    }
}
