//! Integration tests of the packet ring as its users run it: in-process reads of packets that wrap
//! around the byte ring, codec parameters and generations, writers and readers in separate
//! processes (the `shm-bus-stress` helper), readers that never read, are stopped or killed
//! mid-read, a killed writer, damaged segments, stale-segment removal and a full tmpfs.

use shm_bus::{
    test_pattern, AudioParams, BusError, Codec, PacketReader, PacketWait, PacketWriter, Read,
    StreamKind, StreamParams, Track,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn camera(name: &str) -> String {
    format!("p{}-{name}", std::process::id())
}

fn h264(width: u32) -> StreamParams {
    StreamParams {
        codec: Codec::H264,
        width,
        height: 360,
        parameter_sets: vec![vec![0x67, 0x64, 0, 0x1f], vec![0x68, 0xee]],
        audio: None,
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

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read stdout");
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

/// The value of `"key":N` (or `true`/`false` as 1/0) in a JSON summary line.
fn field(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    if rest.starts_with("true") {
        return 1;
    }
    if rest.starts_with("false") {
        return 0;
    }
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {line}"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("shm-bus-p{}-{name}", std::process::id()));
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

/// Publishes pattern packet `seq` (the writer's next) as video, a keyframe every 10th.
fn publish_pattern(w: &mut PacketWriter) -> u64 {
    let seq = w.next_seq();
    let data = test_pattern::packet(seq, w.max_packet() as usize);
    let key = seq % 10 == 1;
    assert_eq!(
        w.publish(
            Track::Video,
            seq as i64 * 3000,
            seq as i64 * 3000 - 1500,
            key,
            1000 + seq,
            &data
        )
        .unwrap(),
        seq
    );
    seq
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn packets_of_every_size_wrap_around_and_read_back_intact() {
    let id = camera("basic");
    let mut w = PacketWriter::create(&id, StreamKind::Sub, 64 * 1024).unwrap();
    assert_eq!(w.capacity(), 64 * 1024);
    assert_eq!(w.max_packet(), 16 * 1024);
    let mut r = PacketReader::attach(&id, StreamKind::Sub).unwrap();
    assert_eq!(r.generation(), w.generation());
    assert!(
        r.params().is_none(),
        "no parameters before the writer saw them"
    );
    assert_eq!((r.newest_seq(), r.newest_keyframe_seq()), (None, None));
    assert_eq!(r.next_seq(), 1);
    let mut buf = Vec::new();
    assert_eq!(r.read(1, &mut buf).unwrap(), Read::NotYet);
    assert_eq!(
        r.wait(Duration::from_millis(30)).unwrap(),
        PacketWait::Timeout
    );

    // Twenty laps of the byte ring, read as they come.
    let mut bytes = 0;
    while bytes < 20 * w.capacity() {
        let seq = publish_pattern(&mut w);
        assert_eq!(
            r.wait(Duration::from_secs(1)).unwrap(),
            PacketWait::Published(seq)
        );
        let Read::Packet(meta) = r.read(seq, &mut buf).unwrap() else {
            panic!("packet {seq} unreadable");
        };
        assert!(test_pattern::verify_packet(seq, &buf), "packet {seq}");
        assert_eq!(meta.len as usize, buf.len());
        assert_eq!(
            (meta.pts, meta.dts),
            (seq as i64 * 3000, seq as i64 * 3000 - 1500)
        );
        assert_eq!(
            (meta.arrival_ns, meta.keyframe, meta.track),
            (1000 + seq, seq % 10 == 1, Track::Video)
        );
        bytes += buf.len() as u64;
    }
    let newest = r.newest_seq().unwrap();
    let key = r.newest_keyframe_seq().unwrap();
    assert!(key <= newest && newest - key < 10 && key % 10 == 1);

    // Everything still in the ring reads back; the rest is Overwritten, never wrong bytes.
    let (mut intact, mut gone) = (0, 0);
    for seq in 1..=newest {
        match r.read(seq, &mut buf).unwrap() {
            Read::Packet(_) => {
                assert!(test_pattern::verify_packet(seq, &buf));
                intact += 1;
            }
            Read::Overwritten => gone += 1,
            other => panic!("{seq}: {other:?}"),
        }
    }
    assert!(intact >= 4 && gone > 0, "{intact} intact, {gone} gone");
    // The packets that are left are the newest ones, back to back.
    let total: u64 = (newest - intact + 1..=newest)
        .map(|s| test_pattern::packet_len(s, w.max_packet() as usize) as u64)
        .sum();
    assert!(total <= w.capacity());
    assert_eq!(r.read(newest + 1, &mut buf).unwrap(), Read::NotYet);
    assert_eq!(r.read(0, &mut buf).unwrap(), Read::Overwritten);
}

#[test]
fn the_index_runs_out_before_the_bytes_with_tiny_packets() {
    let id = camera("index");
    let mut w = PacketWriter::create(&id, StreamKind::Main, 16 * 1024).unwrap();
    let mut r = PacketReader::attach(&id, StreamKind::Main).unwrap();
    let n = u64::from(r.index_len());
    let mut buf = Vec::new();
    for seq in 1..=3 * n {
        w.publish(
            Track::Audio,
            seq as i64,
            seq as i64,
            true,
            seq,
            &seq.to_le_bytes(),
        )
        .unwrap();
    }
    assert_eq!(r.oldest_seq(), 2 * n + 1);
    assert_eq!(r.read(2 * n, &mut buf).unwrap(), Read::Overwritten);
    let Read::Packet(meta) = r.read(2 * n + 1, &mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(
        (meta.track, buf.as_slice()),
        (Track::Audio, &(2 * n + 1).to_le_bytes()[..])
    );
    assert_eq!(
        r.newest_keyframe_seq(),
        None,
        "audio packets are no video keyframes"
    );
}

#[test]
fn an_oversized_packet_is_dropped_and_counted() {
    let id = camera("oversize");
    let mut w = PacketWriter::create(&id, StreamKind::Sub, 64 * 1024).unwrap();
    let r = PacketReader::attach(&id, StreamKind::Sub).unwrap();
    let big = vec![0u8; 16 * 1024 + 1];
    let err = w.publish(Track::Video, 0, 0, true, 0, &big).unwrap_err();
    assert!(
        matches!(err, BusError::PacketTooLarge { len: 16385, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("sub_ring_mb"), "{err}");
    assert_eq!(w.stats().oversize_drops, 1);
    assert_eq!(r.oversize_drops(), 1);
    assert_eq!(r.newest_seq(), None, "nothing was published");
    let ok = vec![0u8; 16 * 1024];
    assert_eq!(
        w.publish(Track::Video, 0, 0, true, 0, &ok).unwrap(),
        1,
        "a quarter fits"
    );
}

#[test]
fn params_changes_bump_the_version_and_a_new_size_the_generation() {
    let id = camera("params");
    let mut w = PacketWriter::create(&id, StreamKind::Main, 64 * 1024).unwrap();
    let mut r = PacketReader::attach(&id, StreamKind::Main).unwrap();
    let mut p = h264(640);
    assert!(w.set_params(&p).unwrap());
    assert!(!w.set_params(&p).unwrap(), "the same again changes nothing");
    let (v1, got) = r.params().unwrap();
    assert_eq!(got, p);

    // New parameter-set bytes and an audio track: same generation, new version.
    p.parameter_sets[1] = vec![0x68, 0xef];
    p.audio = Some(AudioParams {
        sample_rate: 16_000,
        channels: 1,
        config: vec![0x14, 0x08],
    });
    publish_pattern(&mut w);
    assert!(w.set_params(&p).unwrap());
    let (v2, got) = r.params().unwrap();
    assert!(v2 > v1);
    assert_eq!(got, p);
    let mut buf = Vec::new();
    assert!(matches!(r.read(1, &mut buf).unwrap(), Read::Packet(_)));

    // A new size is a new stream: new generation, packets and parameters of the old one gone.
    let g = w.generation();
    assert!(w.set_params(&h264(1280)).unwrap());
    assert!(w.generation() > g);
    assert_eq!(r.read(1, &mut buf).unwrap(), Read::Restarted);
    assert_eq!(
        r.wait(Duration::from_millis(10)).unwrap(),
        PacketWait::Restarted
    );
    r.reattach().unwrap();
    assert_eq!(r.params().unwrap().1, h264(1280));
    assert_eq!(r.newest_seq(), None);
    assert_eq!(r.next_seq(), 2, "seq continues across generations");
    assert_eq!(r.read(1, &mut buf).unwrap(), Read::Overwritten);
    let seq = publish_pattern(&mut w);
    assert_eq!(seq, 2);
    assert!(matches!(r.read(2, &mut buf).unwrap(), Read::Packet(_)));

    // A reconnect: new generation, parameters forgotten until seen again.
    w.restart();
    assert_eq!(r.read(2, &mut buf).unwrap(), Read::Restarted);
    r.reattach().unwrap();
    assert!(r.params().is_none());
    // Parameters that don't fit are an error, and the old ones stay.
    let mut huge = h264(640);
    huge.parameter_sets = vec![vec![1; 3000], vec![2; 3000]];
    assert!(matches!(
        w.set_params(&huge),
        Err(BusError::InvalidParams { .. })
    ));
}

#[test]
fn a_stalled_reader_loses_packets_but_never_sees_wrong_ones() {
    let id = camera("stall");
    let mut w = PacketWriter::create(&id, StreamKind::Sub, 64 * 1024).unwrap();
    let mut r = PacketReader::attach(&id, StreamKind::Sub).unwrap();
    let mut buf = Vec::new();
    // Three packets of at most a quarter of the ring each: all still there.
    for _ in 0..3 {
        publish_pattern(&mut w);
    }
    assert!(matches!(r.read(1, &mut buf).unwrap(), Read::Packet(_)));
    // The reader stalls while the writer laps the ring many times.
    for _ in 0..500 {
        publish_pattern(&mut w);
    }
    assert_eq!(r.read(2, &mut buf).unwrap(), Read::Overwritten);
    let key = r.newest_keyframe_seq().unwrap();
    let Read::Packet(meta) = r.read(key, &mut buf).unwrap() else {
        panic!("the newest keyframe is readable");
    };
    assert!(meta.keyframe && test_pattern::verify_packet(key, &buf));
}

#[test]
fn readers_in_other_processes_see_only_intact_packets() {
    let id = camera("xproc");
    let mut w = PacketWriter::create(&id, StreamKind::Sub, 256 * 1024).unwrap();
    w.set_params(&pattern_params()).unwrap();
    let mut reader = Helper::spawn(&["pread", &id, "--seconds", "3"]);
    reader.expect_ready();
    // Flat out: the reader falls behind and skips, but never accepts a torn packet.
    let until = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < until {
        publish_pattern(&mut w);
    }
    let summary = reader.finish();
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert!(field(&summary, "intact") >= 100, "{summary}");
    assert_eq!(field(&summary, "params_ok"), 1, "{summary}");

    // Paced like a camera, it reads every packet.
    let mut reader = Helper::spawn(&["pread", &id, "--seconds", "10", "--frames", "200"]);
    reader.expect_ready();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..260 {
        publish_pattern(&mut w);
        std::thread::sleep(Duration::from_millis(2));
    }
    let summary = reader.finish();
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert_eq!(field(&summary, "intact"), 200, "{summary}");
    assert_eq!(field(&summary, "overwritten"), 0, "{summary}");
}

/// What `shm-bus-stress pwrite` stores.
fn pattern_params() -> StreamParams {
    StreamParams {
        codec: Codec::H264,
        width: 640,
        height: 360,
        parameter_sets: vec![vec![0x67, 1, 2, 3], vec![0x68, 4]],
        audio: None,
    }
}

fn publish_timed(w: &mut PacketWriter, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let seq = w.next_seq();
            let data = test_pattern::packet(seq, 8192);
            let t0 = Instant::now();
            w.publish(
                Track::Video,
                0,
                0,
                seq % 30 == 1,
                shm_bus::monotonic_ns(),
                &data,
            )
            .unwrap();
            t0.elapsed().as_nanos() as u64
        })
        .collect()
}

#[test]
fn readers_that_never_read_stop_or_die_mid_read_do_not_slow_the_writer() {
    let id = camera("slow");
    let mut w = PacketWriter::create(&id, StreamKind::Main, 1 << 20).unwrap();
    w.set_params(&pattern_params()).unwrap();
    let mut never = Helper::spawn(&[
        "pread",
        &id,
        "--kind",
        "main",
        "--seconds",
        "60",
        "--never-read",
        "1",
    ]);
    let mut stopped = Helper::spawn(&["pread", &id, "--kind", "main", "--seconds", "5"]);
    let mut killed = Helper::spawn(&["pread", &id, "--kind", "main", "--seconds", "60"]);
    for h in [&mut never, &mut stopped, &mut killed] {
        h.expect_ready();
    }
    let _warm_up = publish_timed(&mut w, 500);
    let before = publish_timed(&mut w, 3000);
    // The two reading readers are busy copying packets (or asleep on the futex): stop one and kill
    // the other wherever they are, most likely in the middle of a copy.
    stopped.signal(rustix::process::Signal::STOP);
    killed.signal(rustix::process::Signal::KILL);
    let _ = killed.child.wait();
    let after = publish_timed(&mut w, 3000);
    stopped.signal(rustix::process::Signal::CONT);
    let worst = *after.iter().max().unwrap();
    let (before, after) = (median(before), median(after));
    eprintln!("publish median before {before} ns, after {after} ns, worst after {worst} ns");
    // Not a speed test: nothing may block, so the cost per packet must not jump.
    assert!(
        after < 2 * before.max(2_000),
        "before {before} ns, after {after} ns"
    );
    assert!(worst < 200_000_000, "a publish took {worst} ns");
    // The stopped reader, resumed, carries on from the newest keyframe with intact packets.
    drop(w);
    let summary = stopped.finish();
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
}

#[test]
fn a_killed_writer_is_taken_over_with_a_new_generation_and_stale_rings_are_removed() {
    let id = camera("restart");
    let mut child = Helper::spawn(&["pwrite", &id, "--seconds", "30", "--fps", "200"]);
    child.expect_ready();
    let mut r = PacketReader::attach(&id, StreamKind::Sub).unwrap();
    let g0 = r.generation();
    assert!(matches!(
        r.wait(Duration::from_secs(5)).unwrap(),
        PacketWait::Published(_)
    ));
    assert_eq!(r.params().unwrap().1, pattern_params());
    child.signal(rustix::process::Signal::KILL);
    let _ = child.child.wait();
    assert!(shm_bus::packet_segment_path(&id, StreamKind::Sub)
        .unwrap()
        .exists());

    // A second writer while one lives is refused; after the kill it takes over.
    let mut w = PacketWriter::create(&id, StreamKind::Sub, 1 << 20).unwrap();
    assert!(matches!(
        PacketWriter::create(&id, StreamKind::Sub, 1 << 20),
        Err(BusError::WriterActive { .. })
    ));
    assert!(w.generation() > g0);
    assert_eq!(
        r.wait(Duration::from_secs(1)).unwrap(),
        PacketWait::Restarted
    );
    r.reattach().unwrap();
    assert_eq!(r.generation(), w.generation());
    let seq = publish_pattern(&mut w);
    let mut buf = Vec::new();
    assert!(matches!(r.read(seq, &mut buf).unwrap(), Read::Packet(_)));

    // A different size replaces the file; readers of the old one are told.
    drop(w);
    assert!(matches!(r.reattach(), Err(BusError::NotFound { .. })));
    let w = PacketWriter::create(&id, StreamKind::Sub, 2 << 20).unwrap();
    r.reattach().unwrap();
    assert_eq!(r.capacity(), 2 << 20);
    drop(w);

    // Stale rings (writers killed) are removed by the supervisor's clean-up, frame ring apart.
    for kind in ["sub", "main"] {
        let mut c = Helper::spawn(&[
            "pwrite",
            &id,
            "--kind",
            kind,
            "--seconds",
            "30",
            "--fps",
            "100",
        ]);
        c.expect_ready();
        c.signal(rustix::process::Signal::KILL);
        let _ = c.child.wait();
    }
    let mut r = PacketReader::attach(&id, StreamKind::Main).unwrap();
    assert_eq!(shm_bus::remove_stale_packet_rings(&id).unwrap(), 2);
    assert!(!shm_bus::packet_segment_path(&id, StreamKind::Main)
        .unwrap()
        .exists());
    assert_eq!(
        r.wait(Duration::from_secs(1)).unwrap(),
        PacketWait::Restarted
    );
    assert!(matches!(r.reattach(), Err(BusError::NotFound { .. })));
    assert_eq!(shm_bus::remove_stale_packet_rings(&id).unwrap(), 0);
    let live = PacketWriter::create(&id, StreamKind::Sub, 1 << 20).unwrap();
    assert!(matches!(
        shm_bus::remove_stale_packet_rings(&id),
        Err(BusError::WriterActive { .. })
    ));
    drop(live);
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// A good segment in `dir` under `name`: parameters and 40 packets that wrapped the ring.
fn good_segment(dir: &Path, name: &str, kind: StreamKind) -> PacketWriter {
    let mut w = PacketWriter::create_in(dir, name, kind, 16 * 1024).unwrap();
    w.set_params(&h264(640)).unwrap();
    for _ in 0..40 {
        publish_pattern(&mut w);
    }
    w
}

#[test]
fn damaged_or_foreign_packet_segments_are_clear_errors() {
    let tmp = TempDir::new("damaged");
    let dir = &tmp.0;
    let seg = |name: &str| shm_bus::packet_segment_path_in(dir, name, StreamKind::Sub).unwrap();
    let attach = |name: &str| {
        PacketReader::attach_in(dir, name, StreamKind::Sub)
            .map(|_| ())
            .unwrap_err()
    };
    std::fs::write(seg("empty"), b"").unwrap();
    std::fs::write(seg("short"), [0u8; 100]).unwrap();
    std::fs::write(seg("foreign"), vec![0xab; 1 << 16]).unwrap();
    for name in ["empty", "short", "foreign"] {
        let err = attach(name);
        assert!(matches!(err, BusError::BadHeader { .. }), "{name}: {err}");
        assert!(
            err.to_string().contains(name) && err.to_string().contains("sub packet ring"),
            "{err}"
        );
    }
    let w = good_segment(dir, "good", StreamKind::Sub);
    let copy = |name: &str| {
        std::fs::copy(w.path(), seg(name)).unwrap();
        seg(name)
    };
    poke(&copy("version"), 8, &7u32.to_le_bytes());
    assert!(matches!(
        attach("version"),
        BusError::VersionMismatch { found: 7, .. }
    ));
    poke(&copy("capacity"), 32, &(1u64 << 40).to_le_bytes());
    assert!(matches!(attach("capacity"), BusError::BadHeader { .. }));
    poke(&copy("index"), 40, &1000u32.to_le_bytes());
    assert!(matches!(attach("index"), BusError::BadHeader { .. }));
    poke(&copy("kind"), 28, &2u32.to_le_bytes());
    assert!(attach("kind").to_string().contains("kind"));
    poke(&copy("unsettled"), 16, &7u64.to_le_bytes());
    assert!(matches!(attach("unsettled"), BusError::BadHeader { .. }));
    let truncated = copy("truncated");
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(attach("truncated").to_string().contains("truncated"));
    // A frame ring is not a packet ring.
    let frame = shm_bus::Writer::create_in(
        dir,
        "frames",
        shm_bus::Geometry {
            width: 64,
            height: 48,
            format: shm_bus::PixelFormat::Yuv420p,
        },
        2,
    )
    .unwrap();
    std::fs::copy(frame.path(), seg("frames")).unwrap();
    assert!(attach("frames")
        .to_string()
        .contains("not an NVR packet ring"));

    // Hostile dynamic fields attach, then read as nothing rather than as garbage.
    let mut buf = Vec::new();
    let hostile = copy("params");
    poke(&hostile, 96, &u32::MAX.to_le_bytes()); // params_len
    let r = PacketReader::attach_in(dir, "params", StreamKind::Sub).unwrap();
    assert!(r.params().is_none());
    let hostile = copy("entries");
    let index_offset = 2 * 4096u64;
    for i in 0..64u64 {
        poke(
            &hostile,
            index_offset + i * 64 + 16,
            &u32::MAX.to_le_bytes(),
        ); // len
    }
    let mut r = PacketReader::attach_in(dir, "entries", StreamKind::Sub).unwrap();
    for seq in r.oldest_seq()..=r.newest_seq().unwrap() {
        assert_eq!(r.read(seq, &mut buf).unwrap(), Read::Overwritten);
    }
    let hostile = copy("newest");
    poke(&hostile, 104, &u64::MAX.to_le_bytes());
    let mut r = PacketReader::attach_in(dir, "newest", StreamKind::Sub).unwrap();
    for seq in [0, 1, u64::MAX - 1, u64::MAX] {
        let _ = r.read(seq, &mut buf).unwrap();
    }
    assert_eq!(
        r.wait(Duration::from_millis(1)).unwrap(),
        PacketWait::Published(u64::MAX)
    );

    // A writer takes any of them over.
    for name in ["foreign", "short", "truncated", "version", "kind"] {
        let w = PacketWriter::create_in(dir, name, StreamKind::Sub, 16 * 1024).unwrap();
        let r = PacketReader::attach_in(dir, name, StreamKind::Sub).unwrap();
        assert_eq!(r.generation(), w.generation(), "{name}");
    }
    drop(w);
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_is_no_space_for_a_packet_ring() {
    let tmp = TempDir::new("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&tmp.0)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "cannot mount a tmpfs (this test needs root, as CI has)"
    );
    let _mount = Mount(tmp.0.clone());
    let err = PacketWriter::create_in(&tmp.0, "full", StreamKind::Main, 4 << 20).unwrap_err();
    assert!(matches!(err, BusError::NoSpace { .. }), "{err}");
    assert!(
        err.to_string().contains("ENOSPC") && err.to_string().contains("main packet ring"),
        "{err}"
    );
    assert!(
        !tmp.0.join("nvr-full.main").exists(),
        "no half-made segment left"
    );
    PacketWriter::create_in(&tmp.0, "full", StreamKind::Main, 256 * 1024).unwrap();
}

#[test]
fn bad_names_and_sizes_are_rejected() {
    for bad in ["", "a/b", "../x", "a.b"] {
        assert!(matches!(
            PacketReader::attach(bad, StreamKind::Sub),
            Err(BusError::InvalidCameraId { .. })
        ));
        assert!(matches!(
            PacketWriter::create(bad, StreamKind::Main, 1 << 20),
            Err(BusError::InvalidCameraId { .. })
        ));
    }
    for size in [0, 1000, 1 << 31] {
        assert!(matches!(
            PacketWriter::create(&camera("size"), StreamKind::Sub, size),
            Err(BusError::InvalidLayout { .. })
        ));
    }
    assert!(matches!(
        PacketReader::attach(&camera("nobody"), StreamKind::Main),
        Err(BusError::NotFound { .. })
    ));
    assert_eq!("main".parse::<StreamKind>(), Ok(StreamKind::Main));
    assert!("hd".parse::<StreamKind>().is_err());
}

/// Regenerates `fuzz/corpus/packet_attach/` (run by hand with `--ignored`): good segments and
/// damaged copies, small enough to keep in git.
#[test]
#[ignore]
fn write_packet_fuzz_corpus() {
    let tmp = TempDir::new("corpus");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/packet_attach");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut w = good_segment(&tmp.0, "fuzz", StreamKind::Sub);
    let mut with_audio = h264(640);
    with_audio.codec = Codec::H265;
    with_audio.parameter_sets.insert(0, vec![0x40, 1]);
    with_audio.audio = Some(AudioParams {
        sample_rate: 48_000,
        channels: 2,
        config: vec![0x11, 0x90],
    });
    let good = std::fs::read(w.path()).unwrap();
    w.set_params(&with_audio).unwrap();
    let audio = std::fs::read(w.path()).unwrap();
    let put = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).unwrap();
    let poked = |offset: usize, value: &[u8]| {
        let mut b = good.clone();
        b[offset..offset + value.len()].copy_from_slice(value);
        b
    };
    put("good", &good);
    put("good-h265-aac", &audio);
    put("bad-magic", &poked(0, b"NVRFRING"));
    put("bad-version", &poked(8, &9u32.to_le_bytes()));
    put("kind-main", &poked(28, &2u32.to_le_bytes()));
    put("truncated", &good[..good.len() / 2]);
    put("params-len-huge", &poked(96, &u32::MAX.to_le_bytes()));
    put("params-garbage", &poked(256, &[0xff; 64]));
    put("newest-max", &poked(104, &u64::MAX.to_le_bytes()));
    put("first-seq-max", &poked(136, &u64::MAX.to_le_bytes()));
    put("entry-len-huge", &poked(8192 + 16, &u32::MAX.to_le_bytes()));
    put("entry-pos-huge", &poked(8192 + 8, &u64::MAX.to_le_bytes()));
    put("short", &good[..100]);
}
