//! Shared-memory frame ring: one writer per camera publishes decoded frames into a segment in
//! `/dev/shm`, any number of readers in other processes read them in place, lock-free. And packet
//! rings: the same for the camera's encoded packets (see "Packet rings" below).
//!
//! # Design
//! - One segment per camera, `/dev/shm/nvr-<camera_id>` (`$NVR_SHM_DIR` overrides the directory):
//!   a versioned `#[repr(C)]` header, a control page (futex word and waiter count), then
//!   `n_slots` slots of metadata and YUV 4:2:0 planes. `src/layout.rs` documents the byte
//!   layout.
//! - **No lock a reader can hold.** Each slot carries a sequence counter, odd while it is being
//!   written; a reader reads it, reads the frame in place, fences, re-reads it, and drops the
//!   frame if it changed. A reader that stalls, is stopped or is killed never blocks or slows the
//!   writer; the worst a dead reader leaves behind is a waiter count that makes the writer issue
//!   one needless FUTEX_WAKE per frame.
//! - Wake-ups: the writer bumps a futex word after each publish and calls FUTEX_WAKE only when a
//!   reader announced it sleeps, so publishing without sleepers costs no syscall.
//! - Generations: a restarted writer takes the segment over in place and a resolution change
//!   reconfigures it; both bump the header's generation. [`Reader::wait_next`] then reports
//!   [`Wait::GenerationChanged`] and the reader calls [`Reader::reattach`]. The writer's `Drop`
//!   removes the segment; [`remove_stale`] cleans up after a crash at start-up.
//! - Space: every page is reserved when the segment is created or grown (`fallocate`), so a full
//!   /dev/shm is [`BusError::NoSpace`] at creation, never a SIGBUS later. Readers check the file
//!   length before trusting the header.
//!
//! # Packet rings
//! Beside each camera's frame ring, one packet ring per stream (`nvr-<camera_id>.sub`, `.main`):
//! the encoded access units as the camera sent them (H.264/H.265 Annex B, AAC on MAIN), each with
//! PTS/DTS, keyframe flag and arrival time, and the codec parameters in the header.
//! [`PacketWriter`] appends variable-size packets to a byte ring indexed by fixed entries;
//! [`PacketReader`] reads them by sequence number into its own buffer and tells intact packets from
//! overwritten ones by the entry's sequence counter and the writer's byte position
//! (`src/packet_layout.rs` documents the layout and protocol). Same guarantees as the frame ring:
//! no reader can block or slow the writer, generations, reserved pages, owner-only files, removal on
//! drop and [`remove_stale_packet_rings`].
//!
//! The protocols (`src/ring.rs`, `src/packet_layout.rs`) are platform-free and model-checked with `loom`:
//! `RUSTFLAGS="--cfg loom" cargo test --release -p shm-bus --lib loom`. All OS code lives in
//! `platform/linux.rs`.
//!
//! **Architecture invariant:** this is the only crate of the workspace with `unsafe` code, besides
//! the worker's FFI edge (`worker/src/ffi.rs`). Typed views of the mapping exist only for the
//! layout structs (`segment.rs`).

// The one crate allowed `unsafe` throughout: mapping shared memory and viewing it as typed data.
#![allow(unsafe_code)]
// Under `--cfg loom` only the protocol is built; the OS-facing code that uses the rest is not.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod frame;
mod layout;
mod packet;
mod packet_layout;
mod ring;
mod sync;
#[cfg(not(loom))]
pub mod test_pattern;

#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(not(loom))]
mod packet_reader;
#[cfg(not(loom))]
mod packet_writer;
#[cfg(not(loom))]
mod platform;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod writer;

pub use frame::{FrameMeta, FrameView, Geometry, PixelFormat, Plane, PlaneMut, MAX_DIMENSION};
pub use packet::{
    AudioParams, Codec, PacketMeta, PacketRingStats, PacketWait, Read, StreamKind, StreamParams,
    Track, MAX_PARAMETER_SETS,
};

#[cfg(not(loom))]
pub use error::BusError;
#[cfg(not(loom))]
pub use packet_reader::PacketReader;
#[cfg(not(loom))]
pub use packet_writer::PacketWriter;
#[cfg(not(loom))]
pub use reader::{Reader, Wait};
#[cfg(not(loom))]
pub use segment::{
    packet_segment_path_in, segment_path_in, shm_dir, validate_camera_id, SHM_DIR_ENV,
};
#[cfg(not(loom))]
pub use writer::Writer;

/// The segment file of `camera_id` in [`shm_dir()`].
#[cfg(not(loom))]
pub fn segment_path(camera_id: &str) -> Result<std::path::PathBuf, BusError> {
    segment_path_in(&shm_dir(), camera_id)
}

/// Removes camera `camera_id`'s segment left behind by a writer that died (for start-up
/// cleanup). Returns whether there was one. A segment a live writer holds is left alone:
/// [`BusError::WriterActive`]. Readers still holding the removed segment are told to re-attach.
#[cfg(not(loom))]
pub fn remove_stale(camera_id: &str) -> Result<bool, BusError> {
    remove_stale_in(&shm_dir(), camera_id)
}

/// [`remove_stale`] in directory `dir`.
#[cfg(not(loom))]
pub fn remove_stale_in(dir: &std::path::Path, camera_id: &str) -> Result<bool, BusError> {
    let path = segment_path_in(dir, camera_id)?;
    let ctx = segment::Ctx {
        camera_id,
        ring: crate::segment::FRAME_RING,
        path: &path,
    };
    let Some(file) = segment::lock_existing(ctx)? else {
        return Ok(false);
    };
    let len = file.len().map_err(|e| ctx.io("stat", e))?;
    if len >= std::mem::size_of::<layout::Header>() as u64 {
        if let Ok(map) = file.map(0, len as usize, true) {
            segment::close(&map);
        }
    }
    match platform::unlink(&path) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(ctx.io("remove", e)),
    }
}

/// The packet ring file of `camera_id`'s `kind` stream in [`shm_dir()`].
#[cfg(not(loom))]
pub fn packet_segment_path(
    camera_id: &str,
    kind: StreamKind,
) -> Result<std::path::PathBuf, BusError> {
    packet_segment_path_in(&shm_dir(), camera_id, kind)
}

/// Removes camera `camera_id`'s packet rings (both streams) left behind by writers that died;
/// returns how many there were. Rings a live writer holds are left alone:
/// [`BusError::WriterActive`] (the other is still removed). Readers still holding a removed ring
/// are told to re-attach.
#[cfg(not(loom))]
pub fn remove_stale_packet_rings(camera_id: &str) -> Result<usize, BusError> {
    remove_stale_packet_rings_in(&shm_dir(), camera_id)
}

/// [`remove_stale_packet_rings`] in directory `dir`.
#[cfg(not(loom))]
pub fn remove_stale_packet_rings_in(
    dir: &std::path::Path,
    camera_id: &str,
) -> Result<usize, BusError> {
    let mut removed = 0;
    let mut error = None;
    for kind in [StreamKind::Sub, StreamKind::Main] {
        let path = packet_segment_path_in(dir, camera_id, kind)?;
        let ctx = segment::Ctx {
            camera_id,
            ring: kind.ring_name(),
            path: &path,
        };
        let file = match segment::lock_existing(ctx) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                error = Some(e);
                continue;
            }
        };
        let len = file.len().map_err(|e| ctx.io("stat", e))?;
        if len >= std::mem::size_of::<packet_layout::PacketHeader>() as u64 {
            if let Ok(map) = file.map(0, len as usize, true) {
                segment::close_packet_ring(&map);
            }
        }
        match platform::unlink(&path) {
            Ok(()) => removed += 1,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => error = Some(ctx.io("remove", e)),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of [`FrameMeta::arrival_ns`] and
/// [`FrameMeta::decoded_ns`], comparable across processes on one machine.
#[cfg(not(loom))]
pub fn monotonic_ns() -> u64 {
    platform::monotonic_ns()
}
