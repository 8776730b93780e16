//! The `shm_attach` and `packet_attach` fuzz targets' bodies, shared with their replay test
//! (`tests/fuzz_corpus.rs`) so the two cannot drift: a reader attaches to a hostile segment file
//! and reads from it. A corrupted or truncated segment must be an error, never a panic, an
//! out-of-bounds read or a SIGBUS.

use crate::{PacketReader, PacketWait, Read, Reader, StreamKind};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The camera whose segment the input becomes.
pub const CAMERA: &str = "fuzz";

/// Byte offset of the header's `generation`; an odd one makes `attach` wait a second for the
/// writer to settle, so [`check`] makes it even (that wait is covered by the reader's own tests).
const GENERATION_OFFSET: usize = 16;

/// Writes `bytes` as camera [`CAMERA`]'s segment in a private directory and attaches to it. If
/// that works, waits for a frame without blocking and reads the newest one, touching every byte
/// of its planes. Returns whether the attach worked.
pub fn check(bytes: &[u8]) -> bool {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = std::env::temp_dir().join(format!("shm-bus-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the fuzz segment directory");
    let attached = attach_and_read(&dir, bytes);
    let _ = std::fs::remove_dir_all(&dir);
    attached
}

fn attach_and_read(dir: &Path, bytes: &[u8]) -> bool {
    let mut segment = bytes.to_vec();
    if let Some(b) = segment.get_mut(GENERATION_OFFSET) {
        *b &= !1;
    }
    let path = crate::segment_path_in(dir, CAMERA).expect("a valid camera id");
    std::fs::write(&path, &segment).expect("writing the fuzz segment");
    let Ok(mut reader) = Reader::attach_in(dir, CAMERA) else {
        return false;
    };
    let g = reader.geometry();
    assert!(g.width >= 1 && g.height >= 1 && g.width <= crate::MAX_DIMENSION);
    let _ = reader.wait_next(Duration::from_micros(50));
    // `black_box`: the reads must happen, not be optimised away with their unused result.
    let _ = std::hint::black_box(reader.read_latest(|frame| {
        frame
            .planes()
            .iter()
            .flat_map(|p| p.data.iter())
            .fold(0u8, |acc, &b| acc ^ b)
    }));
    true
}

/// Writes `bytes` as camera [`CAMERA`]'s SUB packet ring in a private directory and attaches a
/// [`PacketReader`] to it. If that works, reads the codec parameters, waits without blocking, and
/// reads every packet the index may hold (at most 512) from the oldest, keeping each payload.
/// Returns whether the attach worked.
pub fn check_packets(bytes: &[u8]) -> bool {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = std::env::temp_dir().join(format!("shm-bus-pfuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the fuzz segment directory");
    let attached = attach_and_read_packets(&dir, bytes);
    let _ = std::fs::remove_dir_all(&dir);
    attached
}

fn attach_and_read_packets(dir: &Path, bytes: &[u8]) -> bool {
    let mut segment = bytes.to_vec();
    if let Some(b) = segment.get_mut(GENERATION_OFFSET) {
        *b &= !1;
    }
    let path = crate::packet_segment_path_in(dir, CAMERA, StreamKind::Sub).expect("a valid id");
    std::fs::write(&path, &segment).expect("writing the fuzz segment");
    let Ok(mut reader) = PacketReader::attach_in(dir, CAMERA, StreamKind::Sub) else {
        return false;
    };
    if let Some((_, params)) = reader.params() {
        assert!(!params.parameter_sets.is_empty());
    }
    let _ = reader.newest_keyframe_seq();
    let _ = reader.next_seq();
    let _ = reader.oversize_drops();
    let _ = reader.wait(Duration::from_micros(50));
    let mut buf = Vec::new();
    let oldest = reader.oldest_seq();
    let mut total = 0usize;
    for seq in oldest..oldest.saturating_add(512) {
        match reader.read(seq, &mut buf) {
            Ok(Read::Packet(meta)) => {
                assert_eq!(meta.len as usize, buf.len());
                assert!(buf.len() as u64 <= reader.capacity() / 4);
                total = total.wrapping_add(std::hint::black_box(&buf).len());
            }
            Ok(Read::NotYet | Read::Restarted) => break,
            Ok(Read::Overwritten) | Err(_) => {}
        }
    }
    let _ = std::hint::black_box((total, PacketWait::Timeout));
    true
}
