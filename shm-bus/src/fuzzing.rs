//! The `shm_attach` fuzz target's body, shared with its replay test (`tests/fuzz_corpus.rs`) so the
//! two cannot drift: a reader attaches to a hostile segment file and reads from it. A corrupted or
//! truncated segment must be an error, never a panic, an out-of-bounds read or a SIGBUS.

use crate::Reader;
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
