//! Integration tests of the frame ring as its users run it: writers and readers in separate
//! processes (the `shm-bus-stress` helper), killed and stopped readers, writer restarts,
//! resolution changes, damaged segments and a full tmpfs.

use shm_bus::{test_pattern, BusError, Geometry, PixelFormat, Reader, Wait, Writer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A camera id unique to this test run, so tests can share /dev/shm and run in parallel.
fn camera(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

fn geometry(width: u32, height: u32) -> Geometry {
    Geometry {
        width,
        height,
        format: PixelFormat::Yuv420p,
    }
}

/// A `shm-bus-stress` child; killed and reaped on drop.
struct Helper {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Helper {
    fn spawn(args: &[&str]) -> Helper {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shm-bus-stress"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn shm-bus-stress");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Helper { child, stdout }
    }

    /// The next line the helper prints (panics at EOF).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read helper stdout");
        assert!(!line.is_empty(), "helper exited without saying more");
        line
    }

    fn expect_ready(&mut self) -> String {
        let line = self.line();
        assert!(line.contains("\"ready\""), "expected ready, got {line}");
        line
    }

    fn signal(&self, sig: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig)
            .expect("signal helper");
    }

    /// Waits for the helper's summary line and exit.
    fn finish(mut self) -> String {
        let line = self.line();
        assert!(line.contains("\"done\""), "expected summary, got {line}");
        let status = self.child.wait().expect("wait helper");
        assert!(status.success(), "helper failed: {status}");
        line
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The integer value of `"key":N` in a JSON summary line.
fn field(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    line[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {line}"))
}

/// A fresh directory for segments of one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("shm-bus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Publishes `n` pattern frames flat out; returns each publish's duration in ns.
fn publish_timed(writer: &mut Writer, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            let now = shm_bus::monotonic_ns();
            let seq = writer.next_seq();
            writer.publish(0, now, now, |planes| test_pattern::fill(seq, planes));
            t0.elapsed().as_nanos() as u64
        })
        .collect()
}

/// Publishes one pattern frame; returns its seq.
fn publish_one(writer: &mut Writer) -> u64 {
    let seq = writer.next_seq();
    assert_eq!(
        writer.publish(7, 1, 2, |planes| test_pattern::fill(seq, planes)),
        seq
    );
    seq
}

#[test]
fn in_process_publish_and_read() {
    let id = camera("basic");
    let mut writer = Writer::create(&id, geometry(101, 51), 4).unwrap();
    assert!(writer.last_frame().is_none());
    let mut reader = Reader::attach(&id).unwrap();
    assert_eq!(reader.geometry(), geometry(101, 51));
    assert_eq!(reader.generation(), writer.generation());
    assert_eq!(reader.n_slots(), 4);
    assert!(
        reader.read_latest(|_| ()).unwrap().is_none(),
        "no frame yet"
    );
    let t0 = Instant::now();
    assert_eq!(
        reader.wait_next(Duration::from_millis(50)).unwrap(),
        Wait::Timeout
    );
    assert!(t0.elapsed() >= Duration::from_millis(45));

    for expected in 1..=10 {
        let seq = writer.publish(
            expected as i64 * 10,
            100 + expected,
            200 + expected,
            |planes| {
                assert_eq!(
                    (planes[0].stride, planes[0].rows, planes[0].width_bytes),
                    (128, 51, 101)
                );
                assert_eq!(
                    (planes[1].stride, planes[1].rows, planes[1].width_bytes),
                    (64, 26, 51)
                );
                test_pattern::fill(expected, planes)
            },
        );
        assert_eq!(seq, expected);
        let own = writer.last_frame().unwrap();
        assert_eq!(own.meta.seq, seq);
        assert!(test_pattern::verify(seq, &own));
        assert_eq!(
            reader.wait_next(Duration::from_secs(1)).unwrap(),
            Wait::Frame(seq)
        );
        let (meta, ok) = reader
            .read_latest(|f| test_pattern::verify(f.meta.seq, f))
            .unwrap()
            .expect("nothing overwrites it");
        assert!(ok);
        assert_eq!(
            meta,
            shm_bus::FrameMeta {
                seq,
                pts: seq as i64 * 10,
                arrival_ns: 100 + seq,
                decoded_ns: 200 + seq
            }
        );
    }
    // Seen everything: waiting again times out.
    assert_eq!(
        reader.wait_next(Duration::from_millis(10)).unwrap(),
        Wait::Timeout
    );
}

#[test]
fn a_reader_in_another_process_sees_only_intact_frames() {
    let id = camera("intact");
    let mut writer = Writer::create(&id, geometry(640, 360), 8).unwrap();
    let mut reader = Helper::spawn(&["read", &id, "--seconds", "2"]);
    reader.expect_ready();
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        publish_timed(&mut writer, 100);
    }
    let summary = reader.finish();
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert!(field(&summary, "intact") >= 10, "{summary}");

    // Paced like a camera, a reader keeps up with (nearly) every frame.
    let mut reader = Helper::spawn(&["read", &id, "--seconds", "5", "--frames", "100"]);
    reader.expect_ready();
    for _ in 0..100 {
        publish_timed(&mut writer, 1);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(writer);
    let summary = reader.finish();
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert!(field(&summary, "intact") >= 50, "{summary}");
}

#[test]
fn stopped_and_killed_readers_do_not_slow_the_writer() {
    let id = camera("stall");
    let mut writer = Writer::create(&id, geometry(640, 360), 8).unwrap();
    let mut stopped = Helper::spawn(&["read", &id, "--seconds", "60"]);
    let mut killed = Helper::spawn(&["read", &id, "--seconds", "60"]);
    stopped.expect_ready();
    killed.expect_ready();
    let _warm_up = publish_timed(&mut writer, 500);
    let before = publish_timed(&mut writer, 3000);

    // Let both readers fall asleep on the futex (registered as waiters), then stop one and kill
    // the other there: the first never unregisters while stopped, the second never will.
    std::thread::sleep(Duration::from_millis(200));
    stopped.signal(rustix::process::Signal::STOP);
    killed.signal(rustix::process::Signal::KILL);
    let _ = killed.child.wait();
    std::thread::sleep(Duration::from_millis(50));
    let after = publish_timed(&mut writer, 3000);
    stopped.signal(rustix::process::Signal::CONT);

    let worst_after = *after.iter().max().unwrap();
    let (before, after) = (median(before), median(after));
    eprintln!("publish median before {before} ns, after {after} ns, worst after {worst_after} ns");
    // Not a speed test: nothing may block, so the cost per frame must not jump. The floor
    // keeps sub-microsecond noise from failing it.
    assert!(
        after < 2 * before.max(2_000),
        "before {before} ns, after {after} ns"
    );
    assert!(worst_after < 200_000_000, "a publish took {worst_after} ns");
}

#[test]
fn a_restarted_writer_bumps_the_generation_and_readers_reattach() {
    let id = camera("restart");
    let mut child = Helper::spawn(&["write", &id, "--seconds", "30", "--fps", "200"]);
    child.expect_ready();
    let mut reader = Reader::attach(&id).unwrap();
    let first_generation = reader.generation();
    assert!(matches!(
        reader.wait_next(Duration::from_secs(5)).unwrap(),
        Wait::Frame(_)
    ));

    // Crash the writer: its segment stays behind, locked by nobody.
    child.signal(rustix::process::Signal::KILL);
    let _ = child.child.wait();

    let mut writer = Writer::create(&id, geometry(640, 360), 8).unwrap();
    assert!(writer.generation() > first_generation);
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::GenerationChanged,
        "the reader's old mapping sees the bump"
    );
    assert!(reader.read_latest(|_| ()).unwrap().is_none());
    reader.reattach().unwrap();
    assert_eq!(reader.generation(), writer.generation());
    let seq = publish_one(&mut writer);
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::Frame(seq)
    );
    let (_, ok) = reader
        .read_latest(|f| test_pattern::verify(seq, f))
        .unwrap()
        .unwrap();
    assert!(ok);

    // A clean stop removes the segment; a new writer comes back under the same name.
    drop(writer);
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::GenerationChanged
    );
    assert!(matches!(reader.reattach(), Err(BusError::NotFound { .. })));
    let writer = Writer::create(&id, geometry(320, 240), 4).unwrap();
    reader.reattach().unwrap();
    assert_eq!(reader.generation(), writer.generation());
    assert_eq!(reader.geometry(), geometry(320, 240));
}

#[test]
fn reconfigure_is_noticed_and_the_new_geometry_read() {
    let id = camera("reconf");
    let mut writer = Writer::create(&id, geometry(640, 360), 4).unwrap();
    let mut reader = Reader::attach(&id).unwrap();
    publish_one(&mut writer);
    let g0 = writer.generation();

    // Grow in place.
    writer.reconfigure(geometry(1280, 720)).unwrap();
    assert!(writer.generation() > g0);
    assert!(writer.last_frame().is_none());
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::GenerationChanged
    );
    reader.reattach().unwrap();
    assert_eq!(reader.geometry(), geometry(1280, 720));
    let seq = publish_one(&mut writer);
    assert_eq!(seq, 2, "seq continues across reconfigurations");
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::Frame(seq)
    );
    let (_, ok) = reader
        .read_latest(|f| test_pattern::verify(seq, f))
        .unwrap()
        .unwrap();
    assert!(ok);

    // Shrink a lot: the file is replaced; the old reader is told, and re-attaches by name.
    let g1 = writer.generation();
    let other = Reader::attach(&id).unwrap();
    writer.reconfigure(geometry(160, 90)).unwrap();
    assert!(writer.generation() > g1);
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::GenerationChanged
    );
    reader.reattach().unwrap();
    assert_eq!(reader.geometry(), geometry(160, 90));
    assert_eq!(reader.generation(), writer.generation());
    let seq = publish_one(&mut writer);
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::Frame(seq)
    );
    let (_, ok) = reader
        .read_latest(|f| test_pattern::verify(seq, f))
        .unwrap()
        .unwrap();
    assert!(ok);
    let len = std::fs::metadata(writer.path()).unwrap().len();
    assert!(len < 1 << 20, "replaced file is right-sized: {len}");
    // A reader of the replaced file still reads its (old, intact) mapping safely.
    drop(other);

    // Same geometry again: nothing changes.
    let g2 = writer.generation();
    writer.reconfigure(geometry(160, 90)).unwrap();
    assert_eq!(writer.generation(), g2);
}

#[test]
fn one_writer_per_camera_and_stale_segments_are_removed() {
    let id = camera("single");
    let writer = Writer::create(&id, geometry(64, 64), 2).unwrap();
    let err = Writer::create(&id, geometry(64, 64), 2).unwrap_err();
    assert!(
        matches!(err, BusError::WriterActive { pid, .. } if pid == std::process::id()),
        "{err}"
    );
    assert!(matches!(
        shm_bus::remove_stale(&id),
        Err(BusError::WriterActive { .. })
    ));
    drop(writer);
    assert!(
        !shm_bus::segment_path(&id).unwrap().exists(),
        "drop removes the segment"
    );
    assert!(!shm_bus::remove_stale(&id).unwrap());

    // A crashed writer leaves its segment; start-up cleanup removes it and tells its readers.
    let mut child = Helper::spawn(&["write", &id, "--seconds", "30", "--fps", "100"]);
    child.expect_ready();
    let mut reader = Reader::attach(&id).unwrap();
    child.signal(rustix::process::Signal::KILL);
    let _ = child.child.wait();
    assert!(shm_bus::segment_path(&id).unwrap().exists());
    assert!(shm_bus::remove_stale(&id).unwrap());
    assert!(!shm_bus::segment_path(&id).unwrap().exists());
    assert_eq!(
        reader.wait_next(Duration::from_secs(1)).unwrap(),
        Wait::GenerationChanged
    );
    assert!(matches!(reader.reattach(), Err(BusError::NotFound { .. })));
}

#[test]
fn bad_names_and_layouts_are_rejected() {
    for bad in ["", "a/b", "../x", "with space", "é", &"x".repeat(65)] {
        assert!(
            matches!(Reader::attach(bad), Err(BusError::InvalidCameraId { .. })),
            "{bad:?}"
        );
        assert!(matches!(
            Writer::create(bad, geometry(8, 8), 2),
            Err(BusError::InvalidCameraId { .. })
        ));
    }
    shm_bus::validate_camera_id(&"A-z_9".repeat(12)).unwrap();
    for (g, n) in [
        (geometry(0, 8), 2),
        (geometry(8, 20_000), 2),
        (geometry(8, 8), 1),
    ] {
        let err = Writer::create(&camera("layout"), g, n).unwrap_err();
        assert!(matches!(err, BusError::InvalidLayout { .. }), "{err}");
    }
    assert!(matches!(
        Reader::attach(&camera("nobody")),
        Err(BusError::NotFound { .. })
    ));
}

/// Writes `bytes` at `offset` of `path`.
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn damaged_or_foreign_segments_are_clear_errors() {
    let tmp = TempDir::new("damaged");
    let dir = &tmp.0;
    let seg = |name: &str| shm_bus::segment_path_in(dir, name).unwrap();
    let attach = |name: &str| Reader::attach_in(dir, name).map(|_| ()).unwrap_err();

    std::fs::write(seg("empty"), b"").unwrap();
    std::fs::write(seg("short"), [0u8; 100]).unwrap();
    std::fs::write(seg("foreign"), vec![0xab; 1 << 20]).unwrap();
    std::fs::create_dir(seg("dir")).unwrap();
    for name in ["empty", "short", "foreign"] {
        let err = attach(name);
        assert!(matches!(err, BusError::BadHeader { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "names the camera: {err}");
    }
    assert!(matches!(attach("dir"), BusError::Io { .. }));

    // Copies of a real segment, then damaged.
    let writer = Writer::create_in(dir, "good", geometry(320, 240), 4).unwrap();
    let copy = |name: &str| {
        std::fs::copy(writer.path(), seg(name)).unwrap();
        seg(name)
    };
    Reader::attach_in(dir, "good").unwrap();
    poke(&copy("version"), 8, &99u32.to_le_bytes());
    let err = attach("version");
    assert!(
        matches!(
            err,
            BusError::VersionMismatch {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
    poke(&copy("width"), 32, &321u32.to_le_bytes());
    assert!(matches!(attach("width"), BusError::BadHeader { .. }));
    poke(&copy("slots"), 40, &1000u32.to_le_bytes());
    assert!(matches!(attach("slots"), BusError::BadHeader { .. }));
    let truncated = copy("truncated");
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = attach("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");
    // A writer that died while configuring leaves an odd generation.
    poke(&copy("unsettled"), 16, &7u64.to_le_bytes());
    assert!(matches!(attach("unsettled"), BusError::BadHeader { .. }));

    // A writer takes any of them over and readers are happy again.
    for name in ["foreign", "short", "truncated", "version"] {
        let w = Writer::create_in(dir, name, geometry(64, 48), 2).unwrap();
        let r = Reader::attach_in(dir, name).unwrap();
        assert_eq!(r.generation(), w.generation(), "{name}");
    }
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_is_no_space_not_a_bus_error() {
    let tmp = TempDir::new("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&tmp.0)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "cannot mount a tmpfs on {} (this test needs root, as CI has)",
        tmp.0.display()
    );
    let _mount = Mount(tmp.0.clone());
    // 640x360 × 8 slots needs about 2.8 MB.
    let err = Writer::create_in(&tmp.0, "full", geometry(640, 360), 8).unwrap_err();
    assert!(matches!(err, BusError::NoSpace { .. }), "{err}");
    assert!(err.to_string().contains("ENOSPC"), "{err}");
    assert!(
        !tmp.0.join("nvr-full").exists(),
        "no half-made segment left"
    );
    // What fits, works; growing past the space fails cleanly and keeps the ring usable.
    let mut w = Writer::create_in(&tmp.0, "full", geometry(320, 180), 4).unwrap();
    let err = w.reconfigure(geometry(1280, 720)).unwrap_err();
    assert!(matches!(err, BusError::NoSpace { .. }), "{err}");
    assert_eq!(w.geometry(), geometry(320, 180));
    let seq = publish_one(&mut w);
    assert!(test_pattern::verify(seq, &w.last_frame().unwrap()));

    // Same from another process via $NVR_SHM_DIR.
    drop(w);
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bus-stress"))
        .args(["write", "full2", "--frames", "1"])
        .env(shm_bus::SHM_DIR_ENV, &tmp.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENOSPC"));
}
