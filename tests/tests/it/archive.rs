//! The recordings index, the recordings/events API, retention and a full disk: real workers
//! recording the fake cameras into real files, judged against what is on disk.

use nvr_tests::clipcheck::{decodes_cleanly, files_ending, grey_frames};
use nvr_tests::fakecam::{FakeCam, FakeCamOpts};
use nvr_tests::nvr::{camera_config, request, signal, wait_until, Nvr, TempDir};
use nvr_tests::status::recording;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn camera(id: &str, fc: &FakeCam, recording: Value) -> Value {
    let mut camera = camera_config(id, fc, "motion/main", "motion/sub");
    camera["motion"] = json!({"post_motion_s": 1});
    camera["recording"] = recording;
    camera
}

fn config(cameras: Vec<Value>) -> Value {
    json!({"heartbeat_interval_s": 0.5, "retention": {"check_every_s": 1}, "cameras": cameras})
}

/// One GET with extra headers: (status, head, body bytes).
fn get(port: u16, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    request(port, "GET", path, headers).unwrap()
}

/// Waits for camera `id`'s first finished clip to be indexed; returns the indexed rows.
fn indexed_clips(nvr: &Nvr, id: &str) -> Vec<Value> {
    nvr.wait_camera(id, Duration::from_secs(40), "a clip", |c| {
        c["recordings"]["finished"].as_u64() >= Some(1)
    });
    wait_until(Duration::from_secs(5), "an indexed clip", || {
        let rows = api_list(nvr, &format!("/api/recordings?camera={id}"));
        rows.iter()
            .any(|r| r["state"] == "finished")
            .then_some(rows)
    })
}

fn api_list(nvr: &Nvr, path: &str) -> Vec<Value> {
    let (code, body) = nvr.get_json(path);
    assert_eq!(code, 200, "{path}: {body}");
    body.as_array().cloned().unwrap_or_default()
}

fn ids_of(rows: &[Value], state: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r["state"] == state)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The clip ids on disk (file stems), finished or not.
fn ids_on_disk(out: &Path, suffix: &str) -> BTreeSet<String> {
    files_ending(out, suffix)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.split('.').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn the_index_matches_the_files_and_is_rebuilt_with_the_same_ids() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut nvr = Nvr::start(
        config(vec![
            camera("cam5", &fc, json!({"pre_roll_s": 5, "post_roll_s": 2})),
            camera(
                "cont",
                &fc,
                json!({"mode": "continuous", "max_segment_s": 4}),
            ),
        ]),
        &[],
    );
    let out = nvr.output_dir();
    nvr.wait_camera("cam5", Duration::from_secs(40), "a motion clip", |c| {
        c["recordings"]["finished"].as_u64() >= Some(1)
    });
    // Kill the continuous camera mid-file, once its segment holds a fragment or two (one killed
    // before its first fragment reached the disk has nothing to keep): the restarted worker
    // finishes the .part.
    let c = nvr.wait_camera("cont", Duration::from_secs(20), "a segment 2 s old", |c| {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let age_ms = c["recordings"]["last_started"]["start_unix_ms"]
            .as_i64()
            .map_or(0, |s| now_ms - s);
        recording(c) && (2000..3000).contains(&age_ms)
    });
    signal(c["pid"].as_u64().unwrap() as u32, "KILL");
    nvr.wait_camera("cont", Duration::from_secs(20), "recovered", |c| {
        c["recordings"]["last_finished"]["recovered"] == true
    });
    // The index says what the disk says (the archive thread writes shortly after the events).
    wait_until(Duration::from_secs(5), "index = disk", || {
        let rows = api_list(&nvr, "/api/recordings");
        let finished = ids_of(&rows, "finished");
        (finished == ids_on_disk(&out, ".mp4")).then_some(())
    });
    let rows = api_list(&nvr, "/api/recordings?camera=cam5");
    assert!(rows.iter().all(|r| r["camera_id"] == "cam5"), "{rows:?}");
    let clip = rows.iter().find(|r| r["state"] == "finished").unwrap();
    assert_eq!(clip["codec"], "h264");
    let bytes = std::fs::metadata(out.join(clip["path"].as_str().unwrap()))
        .unwrap()
        .len();
    assert_eq!(clip["bytes"], bytes);
    let events = api_list(&nvr, "/api/events?camera=cam5");
    let ev = &events[0];
    assert_eq!(ev["kind"], "motion");
    assert_eq!(ev["recording_id"], clip["id"], "{ev} in {clip}");
    assert!(ev["end"].is_i64(), "{ev}");
    let (code, _, jpeg) = get(nvr.port, ev["thumbnail_url"].as_str().unwrap(), "");
    assert_eq!((code, &jpeg[..2]), (200, &b"\xff\xd8"[..]), "thumbnail");
    // Time filters.
    let start = clip["start"].as_i64().unwrap();
    assert!(api_list(
        &nvr,
        &format!("/api/recordings?camera=cam5&to={}", start - 1)
    )
    .is_empty());
    assert!(!api_list(&nvr, &format!("/api/events?camera=cam5&from={}", start)).is_empty());

    nvr.terminate().unwrap();
    let before = ids_on_disk(&out, ".mp4");
    let events_before: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    for damage in ["delete", "corrupt"] {
        let db = out.join("index.sqlite3");
        match damage {
            "delete" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, vec![0x5a; 8192]).unwrap(),
        }
        nvr.restart(&[]);
        let rows = api_list(&nvr, "/api/recordings");
        let after = ids_of(&rows, "finished");
        assert!(
            before.is_subset(&after),
            "{damage}: {before:?} vs {after:?}"
        );
        let events: BTreeSet<String> = api_list(&nvr, "/api/events?camera=cam5")
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert!(events_before.is_subset(&events), "{damage}: events");
        nvr.terminate().unwrap();
    }
}

/// A finished clip of `camera` from long ago, as a copy of a real clip.
fn plant_old_clip(out: &Path, camera: &str, day: u32, from: &Path) -> PathBuf {
    let rel = format!("{camera}/2020-01-{day:02}/{camera}_202001{day:02}T000000Z.mp4");
    let path = out.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(from, &path).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + u64::from(day) * 86_400),
    )
    .unwrap();
    path
}

#[test]
fn retention_deletes_the_oldest_first_and_never_the_file_in_progress() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let cont = json!({"mode": "continuous", "max_segment_s": 3});
    let mut aged = camera("aged", &fc, cont.clone());
    aged["recording"]["keep_days"] = json!(30);
    let mut sized = camera("sized", &fc, cont);
    sized["recording"]["max_gb"] = json!(0.004);
    let mut nvr = Nvr::start(config(vec![aged.clone(), sized.clone()]), &[]);
    let out = nvr.output_dir();
    nvr.wait_camera("aged", Duration::from_secs(30), "a clip", |c| {
        c["recordings"]["finished"].as_u64() >= Some(1)
    });
    let real = files_ending(&out.join("aged"), ".mp4")[0].clone();
    nvr.terminate().unwrap();
    // Old clips from 2020 appear (as after a restore from backup); the index picks them up at start.
    let old: Vec<PathBuf> = (1..=3)
        .map(|d| plant_old_clip(&out, "aged", d, &real))
        .collect();
    nvr.restart(&[]);
    wait_until(Duration::from_secs(20), "keep_days to remove 2020", || {
        old.iter().all(|p| !p.exists()).then_some(())
    });
    assert!(
        !out.join("aged/2020-01-01").exists(),
        "emptied day directories go too"
    );
    // max_gb 0.004: about two 3 s segments of 4 Mbit/s. Let several segments pass, up to one
    // being written (continuous mode: there is one but for an instant at each rotation).
    let c = nvr.wait_camera("sized", Duration::from_secs(40), "6 segments", |c| {
        c["recordings"]["finished"].as_u64() >= Some(6)
            && c["worker"]["recording"]["current_file"].is_string()
    });
    let in_progress = c["worker"]["recording"]["current_file"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(5), "size limit applied", || {
        let total: u64 = files_ending(&out.join("sized"), ".mp4")
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        (total <= 4_000_000).then_some(())
    });
    let left = ids_on_disk(&out.join("sized"), ".mp4");
    let indexed: Vec<Value> = api_list(&nvr, "/api/recordings?camera=sized");
    let all_ids: BTreeSet<String> = ids_of(&indexed, "finished");
    assert_eq!(left, all_ids, "removed files leave the index");
    // The survivors are the newest: every deleted one started before every kept one.
    let log = nvr.log_text();
    assert!(
        log.contains("retention: deleted a recording") && log.contains("max_gb"),
        "deletions are logged with their reason"
    );
    // The file in progress survives retention to be finished by its worker: a deleted `.part`
    // could not be renamed, so the worker would report an error instead.
    let finished = nvr.wait_camera("sized", Duration::from_secs(20), "its file finished", |c| {
        c["recordings"]["last_finished"]["path"] == in_progress.as_str()
            || c["worker"]["recording"]["state"] == "error"
    });
    assert_eq!(
        finished["recordings"]["last_finished"]["path"], in_progress,
        "the file in progress was not finished: {finished}"
    );
    let newest_deleted = log
        .lines()
        .filter(|l| l.contains("retention: deleted") && l.contains("sized_"))
        .filter_map(|l| l.split("sized_").nth(1).map(|s| s[..16].to_string()))
        .max()
        .unwrap();
    let oldest_kept = left
        .iter()
        .map(|id| id.trim_start_matches("sized_")[..16].to_string())
        .min()
        .unwrap();
    assert!(
        newest_deleted <= oldest_kept,
        "{newest_deleted} deleted, {oldest_kept} kept"
    );
}

#[test]
fn range_requests_and_paths_that_try_to_escape() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let nvr = Nvr::start(
        config(vec![camera(
            "cam3",
            &fc,
            json!({"mode": "continuous", "max_segment_s": 3}),
        )]),
        &[],
    );
    let out = nvr.output_dir();
    let rows = indexed_clips(&nvr, "cam3");
    let clip = rows.iter().find(|r| r["state"] == "finished").unwrap();
    let id = clip["id"].as_str().unwrap();
    let file = std::fs::read(out.join(clip["path"].as_str().unwrap())).unwrap();
    let url = format!("/api/recordings/{id}/file");

    let (code, head, body) = get(nvr.port, &url, "");
    assert_eq!((code, body.len()), (200, file.len()), "{head}");
    assert!(head.to_ascii_lowercase().contains("accept-ranges: bytes"));
    let (code, head, body) = get(nvr.port, &url, "Range: bytes=100-199\r\n");
    assert_eq!(code, 206, "{head}");
    assert_eq!(body, &file[100..200]);
    assert!(
        head.contains(&format!("bytes 100-199/{}", file.len())),
        "{head}"
    );
    let (code, _, body) = get(nvr.port, &url, "Range: bytes=-50\r\n");
    assert_eq!((code, body.as_slice()), (206, &file[file.len() - 50..]));
    let (code, _, _) = get(
        nvr.port,
        &url,
        &format!("Range: bytes={}-\r\n", file.len() + 10),
    );
    assert_eq!(code, 416);
    // An end beyond 2^64 is clamped to the file, a sign is refused, and validators are sent.
    let (code, _, body) = get(
        nvr.port,
        &url,
        "Range: bytes=100-99999999999999999999999\r\n",
    );
    assert_eq!((code, body.as_slice()), (206, &file[100..]));
    let (code, _, _) = get(nvr.port, &url, "Range: bytes=+100-199\r\n");
    assert_ne!(code, 206, "a signed range was served");
    let header = |head: &str, name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    let (_, head, _) = get(nvr.port, &url, "");
    let (etag, modified) = (header(&head, "etag"), header(&head, "last-modified"));
    // If-Range: the range only while the validator still matches, else the whole file.
    for (validator, want) in [
        (etag.as_str(), 206),
        (modified.as_str(), 206),
        ("\"stale\"", 200),
    ] {
        let (code, _, body) = get(
            nvr.port,
            &url,
            &format!("Range: bytes=100-199\r\nIf-Range: {validator}\r\n"),
        );
        assert_eq!(code, want, "If-Range: {validator}");
        let expected = if want == 206 {
            &file[100..200]
        } else {
            &file[..]
        };
        assert_eq!(body, expected, "If-Range: {validator}");
    }

    std::fs::write(out.join("secret.txt"), "do not serve").unwrap();
    for bad in [
        "/api/recordings/../file",
        "/api/recordings/..%2F..%2Fetc%2Fpasswd/file",
        "/api/recordings/%2e%2e/file",
        "/api/recordings/%2Fetc%2Fpasswd/file",
        "/api/recordings//etc/passwd/file",
        "/api/recordings/secret.txt/file",
        "/api/recordings/..%5csecret.txt/file",
        "/api/events/..%2Fsecret.txt/thumbnail.jpg",
        "/api/recordings/nonexistent_20200101T000000Z/file",
    ] {
        let (code, _, body) = get(nvr.port, bad, "");
        assert!(code == 400 || code == 404, "{bad}: {code}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("do not serve") && !text.contains("root:"),
            "{bad}"
        );
    }
}

/// A small tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs on {} (this test needs root, as CI has)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_recording_cleanly_and_recording_resumes_when_space_returns() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let dir = TempDir::new("diskfull");
    let out = dir.path().join("output");
    let tmpfs = Tmpfs::mount(&out, "16m");
    // Leave about 5 MB: ten seconds of the 4 Mbit/s MAIN stream.
    let filler = out.join("filler");
    std::fs::write(&filler, vec![0u8; 11 * 1024 * 1024]).unwrap();
    let mut cfg = config(vec![
        camera(
            "cam1",
            &fc,
            json!({"mode": "continuous", "max_segment_s": 300}),
        ),
        camera("other", &fc, json!({"mode": "off"})),
    ]);
    cfg["output_dir"] = json!(out.display().to_string());
    cfg["retention"]["min_free_gb"] = json!(0);
    let mut nvr = Nvr::start_in(dir, cfg, &[]);
    let c = nvr.wait_camera("cam1", Duration::from_secs(60), "disk full", |c| {
        c["worker"]["recording"]["state"] == "error"
    });
    assert_eq!(c["worker"]["recording"]["last_error"], "disk full", "{c}");
    assert_eq!(c["state"], "running", "the worker did not crash");
    let (code, health) = nvr.get_json("/ready");
    assert_eq!(code, 503);
    assert!(
        health["problems"]["cam1"]
            .as_str()
            .is_some_and(|p| p.contains("disk full")),
        "{health}"
    );
    assert!(health["problems"].get("other").is_none(), "{health}");
    std::fs::remove_file(&filler).unwrap();
    nvr.wait_camera("cam1", Duration::from_secs(30), "recording again", |c| {
        recording(c)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(nvr.camera("cam1")["restarts"], 0);
    nvr.terminate().unwrap();
    assert!(files_ending(&out, ".part").is_empty(), "a .part was left");
    let clips = files_ending(&out, ".mp4");
    assert!(
        clips.len() >= 2,
        "the cut clip and the resumed one: {clips:?}"
    );
    for clip in &clips {
        let frames = grey_frames(clip, 16, 9).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            frames.len() > 30,
            "{}: {} frames",
            clip.display(),
            frames.len()
        );
    }
    // The clip after the disk came back is whole.
    decodes_cleanly(clips.last().unwrap()).unwrap();
    drop(nvr);
    drop(tmpfs);
}

/// Bytes free to an unprivileged user on the file system holding `path` (`stat -f`).
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    n.next().unwrap() * n.next().unwrap()
}

#[test]
fn retention_keeps_min_free_gb_free_by_deleting_the_oldest_clips() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let dir = TempDir::new("minfree");
    let out = dir.path().join("output");
    let tmpfs = Tmpfs::mount(&out, "24m");
    let mut cfg = config(vec![camera(
        "cam4",
        &fc,
        json!({"mode": "continuous", "max_segment_s": 2}),
    )]);
    cfg["output_dir"] = json!(out.display().to_string());
    // Keep 16 MB of the 24 MB free: room for some 8 MB of clips, about 16 s of the 4 Mbit/s
    // stream. No `keep_days` or `max_gb`: only free space can delete.
    const NEED: u64 = 16_000_000;
    cfg["retention"]["min_free_gb"] = json!(NEED as f64 / 1e9);
    let nvr = Nvr::start_in(dir, cfg, &[]);
    let deletions = |nvr: &Nvr| {
        nvr.log_text()
            .lines()
            .filter(|l| l.contains("retention: deleted") && l.contains("min_free"))
            .count()
    };
    wait_until(Duration::from_secs(60), "a deletion for free space", || {
        (deletions(&nvr) >= 1).then_some(())
    });
    // Three more segments, each of which has to make room.
    let n = nvr.camera("cam4")["recordings"]["finished"]
        .as_u64()
        .unwrap();
    nvr.wait_camera("cam4", Duration::from_secs(20), "3 more segments", |c| {
        c["recordings"]["finished"].as_u64() >= Some(n + 3)
    });
    // Retention runs every second; in between the clip being written takes up to a second's
    // worth (0.5 MB) of the reserve.
    wait_until(Duration::from_secs(10), "the free space kept", || {
        (free_bytes(&out) >= NEED - 1_000_000).then_some(())
    });
    let c = nvr.camera("cam4");
    assert!(c["recordings"]["last_error"].is_null(), "{c}");
    assert_eq!(c["restarts"], 0, "{c}");
    assert!(recording(&c), "{c}");
    // Removed files leave the index, and the survivors are the newest.
    let left = ids_on_disk(&out.join("cam4"), ".mp4");
    wait_until(Duration::from_secs(5), "index = disk", || {
        let rows = api_list(&nvr, "/api/recordings?camera=cam4");
        (ids_of(&rows, "finished") == left).then_some(())
    });
    let log = nvr.log_text();
    let stamp = |s: &str| s.split("cam4_").nth(1).map(|s| s[..16].to_string());
    let newest_deleted = log
        .lines()
        .filter(|l| l.contains("retention: deleted"))
        .filter_map(stamp)
        .max()
        .unwrap();
    let oldest_kept = left.iter().filter_map(|id| stamp(id)).min().unwrap();
    assert!(
        newest_deleted <= oldest_kept,
        "{newest_deleted} deleted, {oldest_kept} kept"
    );
    assert!(
        left.len() >= 2,
        "kept {left:?}: only what free space requires goes"
    );
    drop(nvr);
    drop(tmpfs);
}

#[test]
fn a_recording_plays_and_seeks_in_chromium() {
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let nvr = Nvr::start(
        config(vec![camera(
            "cam2",
            &fc,
            json!({"mode": "continuous", "max_segment_s": 8}),
        )]),
        &[],
    );
    let rows = indexed_clips(&nvr, "cam2");
    let id = rows.iter().find(|r| r["state"] == "finished").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = nvr.dir.path().join("seek.html");
    std::fs::write(
        &page,
        format!(
            r#"<!doctype html><video id="v" muted src="http://127.0.0.1:{}/api/recordings/{id}/file"></video>
<script>
const v = document.getElementById('v');
const say = (m) => console.log('NVRTEST ' + m);
v.addEventListener('loadedmetadata', () => {{ say('duration ' + v.duration); v.currentTime = v.duration * 0.6; }});
v.addEventListener('seeked', () => {{ say('seeked ' + v.currentTime);
  v.play().then(() => setTimeout(() => say('playing ' + v.currentTime), 1200)).catch(e => say('error ' + e)); }});
v.addEventListener('error', () => say('error ' + (v.error && v.error.code)));
</script>"#,
            nvr.port
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .args([
            "-k",
            "2",
            "30",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .args([
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(["--autoplay-policy=no-user-gesture-required"])
        .arg(format!(
            "--user-data-dir={}",
            nvr.dir.path().join("chromium").display()
        ))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (apt install chromium)");
    let log = String::from_utf8_lossy(&out.stderr);
    let said = |what: &str| -> Option<f64> {
        log.lines()
            .find_map(|l| l.split(&format!("NVRTEST {what} ")).nth(1))
            .and_then(|v| v.split('"').next()?.parse().ok())
    };
    let duration = said("duration").unwrap_or_else(|| panic!("no metadata: {log}"));
    assert!((7.0..=11.0).contains(&duration), "duration {duration}");
    let seeked = said("seeked").unwrap_or_else(|| panic!("no seek: {log}"));
    assert!(
        (seeked - duration * 0.6).abs() < 2.1,
        "seeked to {seeked} of {duration}"
    );
    let playing = said("playing").unwrap_or_else(|| panic!("did not play: {log}"));
    assert!(
        playing > seeked + 0.3,
        "currentTime did not advance: {seeked} → {playing}"
    );
}
