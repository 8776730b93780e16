//! The index against real SQLite files and real (tiny) files in a temp directory.

use super::*;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(label: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("nvr-index-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

/// A file that looks like one of our clips to the index (name, size, codec tag).
fn clip(out: &Path, rel: &str) {
    let p = out.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut body = b"....ftypisom....moov....stsd....avc1".to_vec();
    body.resize(1000, 0);
    std::fs::write(p, body).unwrap();
}

const A: &str = "cam/2023-11-14/cam_20231114T221320Z.mp4";
const B: &str = "cam/2023-11-14/cam_20231114T221320Z-1.mp4";
const C: &str = "other/2023-11-14/other_20231114T230000Z.mp4";

#[test]
fn the_index_is_rebuilt_from_the_files_with_the_same_ids() {
    let d = dir("rebuild");
    for rel in [A, B, C] {
        clip(&d.0, rel);
    }
    std::fs::write(d.0.join("cam/2023-11-14/notes.txt"), "not a clip").unwrap();
    let (index, summary) = Index::open(&d.0).unwrap();
    assert_eq!(summary.recordings_added, 3);
    let facts = EventFacts {
        camera_id: "cam".into(),
        start: 1_700_000_000_500,
        end: None,
        score: 7.5,
        zones: vec!["drive way".into()],
    };
    let ev = index.motion_started(&facts, Some(b"\xff\xd8jpeg")).unwrap();
    index
        .motion_ended(
            &ev,
            1_700_000_004_000,
            9.0,
            &["drive way".into(), "porch".into()],
        )
        .unwrap();
    let before = (
        index.recordings(None, None, None).unwrap(),
        index.events(None, None, None).unwrap(),
    );
    assert_eq!(
        before.0.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [
            "cam_20231114T221320Z",
            "cam_20231114T221320Z-1",
            "other_20231114T230000Z"
        ]
    );
    assert_eq!(before.0[0].start, 1_700_000_000_000);
    assert_eq!(before.0[0].codec.as_deref(), Some("h264"));
    assert_eq!(before.1.len(), 1);
    assert_eq!(before.1[0].end, Some(1_700_000_004_000));
    assert_eq!(before.1[0].score, 9.0);
    assert_eq!(before.1[0].zones, ["drive way", "porch"]);
    assert!(before.1[0].recording_id.is_some(), "{:?}", before.1[0]);
    assert!(before.1[0].thumbnail_url.is_some());
    drop(index);

    // Deleted: rebuilt with the same ids.
    std::fs::remove_file(d.0.join(INDEX_FILE)).unwrap();
    let (index, _) = Index::open(&d.0).unwrap();
    let after = (
        index.recordings(None, None, None).unwrap(),
        index.events(None, None, None).unwrap(),
    );
    let ids = |v: &[Recording]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after.0), ids(&before.0));
    assert_eq!(after.1[0].id, before.1[0].id);
    assert_eq!(
        after.1[0].end, before.1[0].end,
        "event facts come from the sidecar"
    );
    drop(index);

    // Corrupted: moved aside and rebuilt.
    std::fs::write(
        d.0.join(INDEX_FILE),
        b"this is not an SQLite database, not at all......",
    )
    .unwrap();
    let (index, summary) = Index::open(&d.0).unwrap();
    assert_eq!(summary.recordings_added, 3);
    assert_eq!(
        ids(&index.recordings(None, None, None).unwrap()),
        ids(&before.0)
    );
}

#[test]
fn reconcile_follows_files_that_come_and_go() {
    let d = dir("reconcile");
    clip(&d.0, A);
    clip(&d.0, &format!("{B}{PART_SUFFIX}"));
    let (mut index, _) = Index::open(&d.0).unwrap();
    let states = |i: &Index| {
        i.recordings(None, None, None)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        states(&index),
        [
            ("cam_20231114T221320Z".to_string(), ClipState::Finished),
            ("cam_20231114T221320Z-1".to_string(), ClipState::Recording)
        ]
    );
    // The .part is finished (renamed) and the other file deleted behind the index's back.
    std::fs::rename(d.0.join(format!("{B}{PART_SUFFIX}")), d.0.join(B)).unwrap();
    std::fs::remove_file(d.0.join(A)).unwrap();
    let s = index.reconcile().unwrap();
    assert_eq!(s.recordings_removed, 1);
    assert_eq!(
        states(&index),
        [("cam_20231114T221320Z-1".to_string(), ClipState::Finished)]
    );
}

#[test]
fn deleting_a_clip_takes_its_events_and_never_a_clip_in_progress() {
    let d = dir("delete");
    clip(&d.0, A);
    let (index, _) = Index::open(&d.0).unwrap();
    index
        .recording_started("cam", B, 1_700_000_000_900, "h264")
        .unwrap();
    let ev = index
        .motion_started(
            &EventFacts {
                camera_id: "cam".into(),
                start: 1_700_000_000_000,
                end: Some(1_700_000_000_300),
                score: 3.0,
                zones: Vec::new(),
            },
            None,
        )
        .unwrap();
    let all = index.recordings(Some("cam"), None, None).unwrap();
    let (finished, writing): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|r| r.state == ClipState::Finished);
    // Its end is the file's mtime, after the event.
    index.delete_recording(&writing[0]).unwrap();
    assert_eq!(index.recordings(Some("cam"), None, None).unwrap().len(), 2);
    index.delete_recording(&finished[0]).unwrap();
    assert!(!d.0.join(A).exists());
    let left = index.recordings(Some("cam"), None, None).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, ClipState::Recording);
    assert!(index
        .events(None, None, None)
        .unwrap()
        .iter()
        .all(|e| e.id != ev));
}

#[test]
fn a_recovered_clip_keeps_the_start_it_was_opened_with() {
    let d = dir("recovered");
    let (index, _) = Index::open(&d.0).unwrap();
    // The worker opened the clip at .758 s; after a crash the next worker only knows the
    // second from the file name.
    index
        .recording_started("cam", A, 1_700_000_000_758, "h264")
        .unwrap();
    clip(&d.0, A);
    index
        .recording_finished("cam", A, 1_700_000_000_000, 3.966, 1000, true)
        .unwrap();
    let r = index.recording(&stem(A)).unwrap().unwrap();
    assert_eq!(r.state, ClipState::Finished);
    assert_eq!(r.start, 1_700_000_000_758);
    assert_eq!(r.end, Some(1_700_000_004_724));
}

#[test]
fn a_finished_clip_takes_the_start_its_worker_knows_at_the_end() {
    let d = dir("settled");
    let (index, _) = Index::open(&d.0).unwrap();
    // Opened while the stream was settling after a connect: its first packets, read while
    // probing, were back-dated by a second once the live ones came.
    index
        .recording_started("cam", A, 1_700_000_001_758, "h264")
        .unwrap();
    clip(&d.0, A);
    index
        .recording_finished("cam", A, 1_700_000_000_758, 3.966, 1000, false)
        .unwrap();
    let r = index.recording(&stem(A)).unwrap().unwrap();
    assert_eq!(r.start, 1_700_000_000_758);
    assert_eq!(r.end, Some(1_700_000_004_724));
}

#[test]
fn an_index_from_before_zones_gains_the_column() {
    let d = dir("zones-column");
    let conn = Connection::open(d.0.join(INDEX_FILE)).unwrap();
    conn.execute_batch(
        "CREATE TABLE events (id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, start_ms INTEGER NOT NULL,
           end_ms INTEGER, score REAL NOT NULL, thumbnail TEXT, sidecar TEXT NOT NULL);",
    )
    .unwrap();
    drop(conn);
    let (index, _) = Index::open(&d.0).unwrap();
    let facts = EventFacts {
        camera_id: "cam".into(),
        start: 1_700_000_000_500,
        end: None,
        score: 2.0,
        zones: vec!["porch".into()],
    };
    let ev = index.motion_started(&facts, None).unwrap();
    assert_eq!(
        index.event(&ev).unwrap().map(|e| e.zones),
        Some(vec!["porch".to_string()])
    );
}
