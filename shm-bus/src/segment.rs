//! What the writer and readers share about a segment: its name and directory, typed views of the
//! mapped header, control block and slots, and turning OS errors into [`BusError`]s.

use crate::error::BusError;
use crate::layout::{Control, Header, SlotMeta, LAYOUT_VERSION, MAGIC};
use crate::packet::StreamKind;
use crate::packet_layout::{Entry, PacketHeader, PACKET_LAYOUT_VERSION, PACKET_MAGIC};
use crate::platform::{self, Mapping, SegmentFile};
use crate::sync::Ordering;
use rustix::io::Errno;
use std::mem::{align_of, size_of};
use std::path::{Path, PathBuf};

/// Environment variable naming the directory segments live in; default `/dev/shm`.
pub const SHM_DIR_ENV: &str = "NVR_SHM_DIR";

/// What errors about the frame ring call it.
pub(crate) const FRAME_RING: &str = "frame ring";

/// File name prefix of every segment: `nvr-<camera_id>`.
const PREFIX: &str = "nvr-";

/// The directory segments live in: `$NVR_SHM_DIR`, else `/dev/shm`.
pub fn shm_dir() -> PathBuf {
    std::env::var_os(SHM_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

/// Checks that `camera_id` matches `[A-Za-z0-9_-]{1,64}` (so it is a safe file name).
pub fn validate_camera_id(camera_id: &str) -> Result<(), BusError> {
    let reason = if camera_id.is_empty() {
        "it is empty"
    } else if camera_id.len() > 64 {
        "it is longer than 64 characters"
    } else if !camera_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "only ASCII letters, digits, '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(BusError::InvalidCameraId {
        camera_id: camera_id.to_owned(),
        reason,
    })
}

/// The segment file of `camera_id` in `dir`, after validating the id.
pub fn segment_path_in(dir: &Path, camera_id: &str) -> Result<PathBuf, BusError> {
    validate_camera_id(camera_id)?;
    Ok(dir.join(format!("{PREFIX}{camera_id}")))
}

/// The packet ring of `camera_id`'s `kind` stream in `dir`: `nvr-<camera_id>.<sub|main>` ('.'
/// can't occur in a camera id, so it never names another camera's frame ring).
pub fn packet_segment_path_in(
    dir: &Path,
    camera_id: &str,
    kind: StreamKind,
) -> Result<PathBuf, BusError> {
    validate_camera_id(camera_id)?;
    Ok(dir.join(format!("{PREFIX}{camera_id}.{}", kind.as_str())))
}

/// Who and where, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub camera_id: &'a str,
    /// The kind of ring, for messages: "frame ring", "sub packet ring", ...
    pub ring: &'static str,
    pub path: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn io(&self, op: &'static str, errno: Errno) -> BusError {
        BusError::Io {
            camera_id: self.camera_id.to_owned(),
            path: self.path.to_owned(),
            op,
            source: errno.into(),
        }
    }

    pub(crate) fn bad(&self, reason: impl Into<String>) -> BusError {
        BusError::BadHeader {
            camera_id: self.camera_id.to_owned(),
            ring: self.ring,
            path: self.path.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(&self) -> BusError {
        BusError::NotFound {
            camera_id: self.camera_id.to_owned(),
            ring: self.ring,
            path: self.path.to_owned(),
        }
    }

    pub(crate) fn no_space(&self, needed: u64) -> BusError {
        BusError::NoSpace {
            camera_id: self.camera_id.to_owned(),
            ring: self.ring,
            path: self.path.to_owned(),
            needed,
        }
    }

    pub(crate) fn writer_active(&self, pid: u32) -> BusError {
        BusError::WriterActive {
            camera_id: self.camera_id.to_owned(),
            path: self.path.to_owned(),
            pid,
        }
    }
}

/// The types [`at`] may view mapped bytes as: the `#[repr(C)]` layout structs. Sealed (private to
/// this module, so implemented here and nowhere else).
///
/// # Safety
/// An implementor is made of atomics and plain integers only, so every bit pattern is a valid
/// value (any file content is a valid `Self`), and other processes change its bytes only through
/// atomic operations on those atomics (plain integers are never written after the file is created).
unsafe trait Mapped {}

// SAFETY: atomics (its `PlaneDesc`s too) and `_reserved` integers never written after creation.
unsafe impl Mapped for Header {}
// SAFETY: two atomics and `_reserved` integers never written after creation.
unsafe impl Mapped for Control {}
// SAFETY: atomics and `_reserved` integers never written after creation.
unsafe impl Mapped for SlotMeta {}
// SAFETY: atomics and `_reserved` integers never written after creation.
unsafe impl Mapped for PacketHeader {}
// SAFETY: atomics and `_reserved` integers never written after creation.
unsafe impl Mapped for Entry {}

/// A `T` at `offset` in `map`. Panics if it would not fit or would be misaligned: callers pass
/// offsets from a validated layout, so that is a bug, never a property of the file.
fn at<T: Mapped>(map: &Mapping, offset: usize) -> &T {
    let fits = offset
        .checked_add(size_of::<T>())
        .is_some_and(|end| end <= map.len());
    assert!(
        fits,
        "{offset}+{} outside a {}-byte mapping",
        size_of::<T>(),
        map.len()
    );
    // SAFETY: `map.as_ptr()` is page aligned and in bounds for `map.len()` bytes, checked above.
    let ptr = unsafe { map.as_ptr().add(offset) };
    assert!(
        (ptr as usize).is_multiple_of(align_of::<T>()),
        "misaligned offset {offset}"
    );
    // SAFETY: in bounds and aligned (checked above), and the mapping lives as long as `map`, which
    // the returned reference borrows. `T: Mapped` is one of the layout structs, valid for every
    // bit pattern and changed by other processes only through its atomics (the trait's contract).
    // Atomic loads through a read-only mapping are fine: they are plain loads (≤ 64 bits, no RMW).
    unsafe { &*ptr.cast::<T>() }
}

/// The header at the start of `map`.
pub(crate) fn header(map: &Mapping) -> &Header {
    at(map, 0)
}

/// The control block at `offset` in `map`.
pub(crate) fn control(map: &Mapping, offset: usize) -> &Control {
    at(map, offset)
}

/// The metadata of the slot at `offset` in `map`.
pub(crate) fn slot_meta(map: &Mapping, offset: usize) -> &SlotMeta {
    at(map, offset)
}

/// The packet ring header at the start of `map`.
pub(crate) fn packet_header(map: &Mapping) -> &PacketHeader {
    at(map, 0)
}

/// The packet index entry at `offset` in `map`.
pub(crate) fn entry(map: &Mapping, offset: usize) -> &Entry {
    at(map, offset)
}

/// Whether the packet header in `map` is one of ours, of this layout version, whatever its state.
pub(crate) fn is_our_packet_ring(map: &Mapping) -> bool {
    let h = packet_header(map);
    h.magic.load(Ordering::Acquire) == PACKET_MAGIC
        && h.layout_version.load(Ordering::Acquire) == PACKET_LAYOUT_VERSION
}

/// Marks a packet segment closed and wakes its sleepers (see [`close`]).
pub(crate) fn close_packet_ring(map: &Mapping) {
    if !is_our_packet_ring(map) {
        return;
    }
    let h = packet_header(map);
    h.close();
    let offset = h.control_offset.load(Ordering::Acquire) as usize;
    if offset.is_multiple_of(8) && offset.saturating_add(size_of::<Control>()) <= map.len() {
        let c = control(map, offset);
        c.announce();
        platform::futex_wake_all(&c.wake_seq);
    }
}

/// Whether the header in `map` is one of ours, of this layout version, whatever its state.
pub(crate) fn is_ours(map: &Mapping) -> bool {
    let h = header(map);
    h.magic.load(Ordering::Acquire) == MAGIC
        && h.layout_version.load(Ordering::Acquire) == LAYOUT_VERSION
}

/// Marks a segment closed and wakes its sleepers so they re-attach by name. `map` must cover the
/// whole header; the control block is only touched if the header places it inside `map`.
pub(crate) fn close(map: &Mapping) {
    if !is_ours(map) {
        return;
    }
    let h = header(map);
    h.close();
    let offset = h.control_offset.load(Ordering::Acquire) as usize;
    if offset.is_multiple_of(8) && offset.saturating_add(size_of::<Control>()) <= map.len() {
        let c = control(map, offset);
        c.announce();
        platform::futex_wake_all(&c.wake_seq);
    }
}

/// Opens an existing segment for removal or replacement and closes it: `Ok(None)` if there is
/// none, `WriterActive` if a live writer holds it.
pub(crate) fn lock_existing(ctx: Ctx<'_>) -> Result<Option<SegmentFile>, BusError> {
    match SegmentFile::open_locked(ctx.path, false) {
        Ok(f) => Ok(Some(f)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::WOULDBLOCK) => Err(ctx.writer_active(writer_pid_of(ctx.path))),
        Err(e) => Err(ctx.io("open", e)),
    }
}

/// The pid a segment's header names as its writer, 0 if it can't be read.
pub(crate) fn writer_pid_of(path: &Path) -> u32 {
    let Ok((file, _)) = SegmentFile::open_reader(path) else {
        return 0;
    };
    if file.len().unwrap_or(0) < size_of::<Header>() as u64 {
        return 0;
    }
    match file.map(0, size_of::<Header>(), false) {
        Ok(map) if is_ours(&map) => header(&map).writer_pid.load(Ordering::Acquire),
        Ok(map) if is_our_packet_ring(&map) => {
            packet_header(&map).writer_pid.load(Ordering::Acquire)
        }
        _ => 0,
    }
}
