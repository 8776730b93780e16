//! The on-memory format of a ring segment: the versioned `#[repr(C)]` header, the control block
//! readers may write, per-slot metadata, and the geometry → byte layout computation.
//!
//! ```text
//! offset 0                 Header (256 bytes; readers map it read-only)
//! control_offset (1 page)  Control (futex word + waiter count; the only bytes readers write)
//! slots_offset (2 pages)   n_slots × slot_size, each: SlotMeta (64 bytes), then Y, U, V planes
//! ```
//!
//! Every field is an atomic so a reader in another process reads it without a data race; the
//! header's own fields are guarded by `generation` (a seqlock: odd while the writer configures).

use crate::frame::{Geometry, PixelFormat};
use crate::sync::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// `"NVRFRING"` little-endian: the first 8 bytes of every segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"NVRFRING");
/// Bumped whenever the layout below changes incompatibly.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Row alignment of every plane (cache line and AVX-512 friendly).
pub(crate) const STRIDE_ALIGN: usize = 64;
/// Bytes of [`SlotMeta`] at the start of every slot; pixel data follows.
pub(crate) const SLOT_META_SIZE: usize = 64;
/// Fewest and most slots a ring may have.
pub(crate) const MIN_SLOTS: usize = 2;
pub(crate) const MAX_SLOTS: usize = 256;
/// Start of the problem reported when the file is shorter than its header says.
pub(crate) const TRUNCATED: &str = "truncated";

/// Where one plane lives inside a slot's pixel data, as stored in the header.
#[repr(C)]
pub(crate) struct PlaneDesc {
    /// Byte offset from the start of the slot's pixel data.
    pub offset: AtomicU64,
    pub stride: AtomicU32,
    pub rows: AtomicU32,
    pub width_bytes: AtomicU32,
    pub _reserved: u32,
}

/// The segment header. Written only by the writer; read by readers through a read-only mapping.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub layout_version: AtomicU32,
    /// `size_of::<Header>()`, so a reader can tell a truncated or foreign header.
    pub header_size: AtomicU32,
    /// Seqlock over the fields below and the writer's identity: odd while (re)configuring or after
    /// the writer closed the segment; every change tells readers to re-attach.
    pub generation: AtomicU64,
    /// The writer's page size; `control_offset` and `slots_offset` are multiples of it.
    pub page_size: AtomicU32,
    pub pixel_format: AtomicU32,
    pub width: AtomicU32,
    pub height: AtomicU32,
    pub n_slots: AtomicU32,
    pub slot_meta_size: AtomicU32,
    pub control_offset: AtomicU64,
    pub slots_offset: AtomicU64,
    pub slot_size: AtomicU64,
    /// Bytes the layout needs; the file may be longer, never shorter.
    pub segment_len: AtomicU64,
    pub planes: [PlaneDesc; 3],
    /// Sequence number of the newest published frame; 0 = none yet. Its slot is `seq % n_slots`.
    pub newest_seq: AtomicU64,
    /// Process id of the writer, for diagnostics only.
    pub writer_pid: AtomicU32,
    pub _reserved0: u32,
    pub _reserved: [u64; 11],
}

/// The block readers write: a futex word the writer bumps on every publish, and how many readers
/// sleep on it. It has a page of its own so a reader maps only this page writable.
#[repr(C)]
pub(crate) struct Control {
    /// Incremented (wrapping) by the writer after each publish and each reconfiguration.
    pub wake_seq: AtomicU32,
    /// Readers currently about to sleep or sleeping on `wake_seq`; the writer makes the wake-up
    /// syscall only when this is non-zero. A reader killed while waiting leaves it too high, which
    /// costs the writer one cheap syscall per frame, never a block.
    pub waiters: AtomicU32,
    pub _reserved: [u64; 7],
}

/// Metadata at the start of each slot.
#[repr(C)]
pub(crate) struct SlotMeta {
    /// Seqlock word: `2*seq - 1` while frame `seq` is written, `2*seq` once published, 0 empty.
    pub state: AtomicU64,
    pub pts: AtomicI64,
    pub arrival_ns: AtomicU64,
    pub decoded_ns: AtomicU64,
    pub _reserved: [u64; 4],
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PlaneDesc>() == 24);
    assert!(size_of::<Header>() == 256);
    assert!(align_of::<Header>() == 8);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, layout_version) == 8);
    assert!(offset_of!(Header, header_size) == 12);
    assert!(offset_of!(Header, generation) == 16);
    assert!(offset_of!(Header, page_size) == 24);
    assert!(offset_of!(Header, pixel_format) == 28);
    assert!(offset_of!(Header, width) == 32);
    assert!(offset_of!(Header, height) == 36);
    assert!(offset_of!(Header, n_slots) == 40);
    assert!(offset_of!(Header, slot_meta_size) == 44);
    assert!(offset_of!(Header, control_offset) == 48);
    assert!(offset_of!(Header, slots_offset) == 56);
    assert!(offset_of!(Header, slot_size) == 64);
    assert!(offset_of!(Header, segment_len) == 72);
    assert!(offset_of!(Header, planes) == 80);
    assert!(offset_of!(Header, newest_seq) == 152);
    assert!(offset_of!(Header, writer_pid) == 160);
    assert!(size_of::<Control>() == 64);
    assert!(offset_of!(Control, wake_seq) == 0);
    assert!(offset_of!(Control, waiters) == 4);
    assert!(size_of::<SlotMeta>() == SLOT_META_SIZE);
    assert!(offset_of!(SlotMeta, state) == 0);
    assert!(offset_of!(SlotMeta, pts) == 8);
    assert!(offset_of!(SlotMeta, arrival_ns) == 16);
    assert!(offset_of!(SlotMeta, decoded_ns) == 24);
};

/// Where one plane lives inside a slot's pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlaneLayout {
    pub offset: usize,
    pub stride: usize,
    pub rows: usize,
    pub width_bytes: usize,
}

impl PlaneLayout {
    pub(crate) fn len(&self) -> usize {
        self.rows * self.stride
    }
}

/// The byte layout of a whole segment for one geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentLayout {
    pub geometry: Geometry,
    pub page_size: usize,
    pub control_offset: usize,
    pub slots_offset: usize,
    pub n_slots: usize,
    pub slot_size: usize,
    pub planes: [PlaneLayout; 3],
    /// Bytes the layout needs.
    pub total_len: usize,
}

fn align_up(n: usize, to: usize) -> Option<usize> {
    Some(n.checked_add(to - 1)? / to * to)
}

impl SegmentLayout {
    /// Lays out `n_slots` frames of `geometry`; `page_size` must be a power of two.
    pub(crate) fn new(
        geometry: Geometry,
        n_slots: usize,
        page_size: usize,
    ) -> Result<SegmentLayout, String> {
        if let Some(p) = geometry.problem() {
            return Err(format!(
                "geometry {}x{}: {p}",
                geometry.width, geometry.height
            ));
        }
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&n_slots) {
            return Err(format!(
                "{n_slots} slots; must be {MIN_SLOTS}..={MAX_SLOTS}"
            ));
        }
        if !page_size.is_power_of_two() || !(4096..=1 << 20).contains(&page_size) {
            return Err(format!(
                "page size {page_size} is not a power of two in 4 KiB..=1 MiB"
            ));
        }
        let PixelFormat::Yuv420p = geometry.format;
        let (w, h) = (geometry.width as usize, geometry.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |offset: usize, width_bytes: usize, rows: usize| PlaneLayout {
            offset,
            stride: align_up(width_bytes, STRIDE_ALIGN).unwrap_or(usize::MAX),
            rows,
            width_bytes,
        };
        // Dimensions are at most 16384, so none of this arithmetic can overflow on 64 bits.
        let y = plane(SLOT_META_SIZE, w, h);
        let u = plane(y.offset + y.len(), cw, ch);
        let v = plane(u.offset + u.len(), cw, ch);
        let slot_size = align_up(v.offset + v.len(), page_size).ok_or("slot size overflows")?;
        let slots_offset = 2 * page_size;
        let total_len = slot_size
            .checked_mul(n_slots)
            .and_then(|s| s.checked_add(slots_offset))
            .ok_or("segment size overflows")?;
        Ok(SegmentLayout {
            geometry,
            page_size,
            control_offset: page_size,
            slots_offset,
            n_slots,
            slot_size,
            planes: [y, u, v],
            total_len,
        })
    }

    /// Byte offset of slot `slot_idx` from the start of the segment.
    pub(crate) fn slot_offset(&self, slot_idx: usize) -> usize {
        self.slots_offset + slot_idx * self.slot_size
    }
}

/// Why a header can't be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Not a ring at all (magic, size) or an inconsistent one.
    Bad(String),
    /// A ring of another layout version.
    Version(u32),
    /// The writer is configuring it, or closed it.
    Unsettled,
}

/// A consistent copy of the header's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSnapshot {
    pub magic: u64,
    pub layout_version: u32,
    pub header_size: u32,
    pub generation: u64,
    pub page_size: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub n_slots: u32,
    pub slot_meta_size: u32,
    pub control_offset: u64,
    pub slots_offset: u64,
    pub slot_size: u64,
    pub segment_len: u64,
    pub planes: [(u64, u32, u32, u32); 3],
}

impl HeaderSnapshot {
    /// Checks the snapshot against what this build would lay out, and against the file length.
    pub(crate) fn layout(&self, file_len: u64) -> Result<SegmentLayout, HeaderProblem> {
        let bad = |s: String| Err(HeaderProblem::Bad(s));
        if self.magic != MAGIC {
            return bad(format!(
                "bad magic {:#018x}, not an NVR frame ring",
                self.magic
            ));
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(HeaderProblem::Version(self.layout_version));
        }
        if self.header_size as usize != core::mem::size_of::<Header>() {
            return bad(format!("header size {} (expected 256)", self.header_size));
        }
        let Some(format) = PixelFormat::from_code(self.pixel_format) else {
            return bad(format!("unknown pixel format {}", self.pixel_format));
        };
        let geometry = Geometry {
            width: self.width,
            height: self.height,
            format,
        };
        let layout = SegmentLayout::new(geometry, self.n_slots as usize, self.page_size as usize)
            .or_else(bad)?;
        let stored = (
            self.slot_meta_size as usize,
            self.control_offset,
            self.slots_offset,
            self.slot_size,
            self.segment_len,
            self.planes,
        );
        let expected = (
            SLOT_META_SIZE,
            layout.control_offset as u64,
            layout.slots_offset as u64,
            layout.slot_size as u64,
            layout.total_len as u64,
            layout.planes.map(|p| {
                (
                    p.offset as u64,
                    p.stride as u32,
                    p.rows as u32,
                    p.width_bytes as u32,
                )
            }),
        );
        if stored != expected {
            return bad(format!(
                "inconsistent layout: stored {stored:?}, expected {expected:?}"
            ));
        }
        if self.segment_len > file_len {
            return bad(format!(
                "{TRUNCATED}: the layout needs {} bytes, the file has {file_len}",
                self.segment_len
            ));
        }
        Ok(layout)
    }
}

impl Header {
    /// Starts a (re)configuration: makes `generation` odd so readers hold off. Returns the odd value.
    pub(crate) fn begin_configure(&self) -> u64 {
        let odd = self.generation.load(Ordering::Relaxed) | 1;
        self.generation.store(odd, Ordering::Relaxed);
        // Orders the odd store before the field stores that follow (seqlock writer side).
        fence(Ordering::Release);
        odd
    }

    /// Writes the identity and layout fields and forgets any published frame. Call between
    /// [`begin_configure`](Self::begin_configure) and [`end_configure`](Self::end_configure).
    pub(crate) fn store_layout(&self, layout: &SegmentLayout, writer_pid: u32) {
        let r = Ordering::Relaxed;
        self.magic.store(MAGIC, r);
        self.layout_version.store(LAYOUT_VERSION, r);
        self.header_size
            .store(core::mem::size_of::<Header>() as u32, r);
        self.page_size.store(layout.page_size as u32, r);
        self.pixel_format.store(layout.geometry.format.code(), r);
        self.width.store(layout.geometry.width, r);
        self.height.store(layout.geometry.height, r);
        self.n_slots.store(layout.n_slots as u32, r);
        self.slot_meta_size.store(SLOT_META_SIZE as u32, r);
        self.control_offset.store(layout.control_offset as u64, r);
        self.slots_offset.store(layout.slots_offset as u64, r);
        self.slot_size.store(layout.slot_size as u64, r);
        self.segment_len.store(layout.total_len as u64, r);
        for (desc, p) in self.planes.iter().zip(&layout.planes) {
            desc.offset.store(p.offset as u64, r);
            desc.stride.store(p.stride as u32, r);
            desc.rows.store(p.rows as u32, r);
            desc.width_bytes.store(p.width_bytes as u32, r);
        }
        self.newest_seq.store(0, r);
        self.writer_pid.store(writer_pid, r);
    }

    /// Ends a configuration started with generation `odd`; returns the new (even) generation.
    pub(crate) fn end_configure(&self, odd: u64) -> u64 {
        self.generation.store(odd + 1, Ordering::Release);
        odd + 1
    }

    /// Marks the segment closed (generation odd) so readers holding it re-attach by name.
    pub(crate) fn close(&self) {
        let g = self.generation.load(Ordering::Relaxed);
        if g.is_multiple_of(2) {
            self.generation.store(g + 1, Ordering::Release);
        }
    }

    /// Reads the configuration consistently, or `None` while the writer is configuring.
    pub(crate) fn snapshot(&self) -> Option<HeaderSnapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation % 2 == 1 {
            return None;
        }
        let r = Ordering::Relaxed;
        let snap = HeaderSnapshot {
            magic: self.magic.load(r),
            layout_version: self.layout_version.load(r),
            header_size: self.header_size.load(r),
            generation,
            page_size: self.page_size.load(r),
            pixel_format: self.pixel_format.load(r),
            width: self.width.load(r),
            height: self.height.load(r),
            n_slots: self.n_slots.load(r),
            slot_meta_size: self.slot_meta_size.load(r),
            control_offset: self.control_offset.load(r),
            slots_offset: self.slots_offset.load(r),
            slot_size: self.slot_size.load(r),
            segment_len: self.segment_len.load(r),
            planes: [0, 1, 2].map(|i| {
                let d = &self.planes[i];
                (
                    d.offset.load(r),
                    d.stride.load(r),
                    d.rows.load(r),
                    d.width_bytes.load(r),
                )
            }),
        };
        // Orders the field loads before the re-check (seqlock reader side).
        fence(Ordering::Acquire);
        (self.generation.load(Ordering::Relaxed) == generation).then_some(snap)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn geometry(width: u32, height: u32) -> Geometry {
        Geometry {
            width,
            height,
            format: PixelFormat::Yuv420p,
        }
    }

    #[test]
    fn layout_of_640x360() {
        let l = SegmentLayout::new(geometry(640, 360), 8, 4096).unwrap();
        assert_eq!(
            l.planes[0],
            PlaneLayout {
                offset: 64,
                stride: 640,
                rows: 360,
                width_bytes: 640
            }
        );
        assert_eq!(l.planes[1].stride, 320);
        assert_eq!(l.planes[1].rows, 180);
        assert_eq!(l.planes[2].offset, 64 + 640 * 360 + 320 * 180);
        assert_eq!(l.slot_size % 4096, 0);
        assert_eq!(l.total_len, 8192 + 8 * l.slot_size);
    }

    #[test]
    fn odd_sizes_round_chroma_up_and_align_strides() {
        let l = SegmentLayout::new(geometry(101, 51), 2, 4096).unwrap();
        assert_eq!((l.planes[0].stride, l.planes[0].width_bytes), (128, 101));
        assert_eq!(
            (
                l.planes[1].stride,
                l.planes[1].width_bytes,
                l.planes[1].rows
            ),
            (64, 51, 26)
        );
        assert!(l.planes.iter().all(|p| p.offset % STRIDE_ALIGN == 0));
    }

    #[test]
    fn rejects_bad_geometry_and_slot_counts() {
        assert!(SegmentLayout::new(geometry(0, 10), 4, 4096).is_err());
        assert!(SegmentLayout::new(geometry(20_000, 10), 4, 4096).is_err());
        assert!(SegmentLayout::new(geometry(16, 16), 1, 4096).is_err());
        assert!(SegmentLayout::new(geometry(16, 16), 257, 4096).is_err());
        assert!(SegmentLayout::new(geometry(16, 16), 4, 3000).is_err());
    }
}
