//! The packet ring's on-memory format and protocol, free of OS code (model-checked with `loom`
//! at the bottom of this file, like the frame ring's in `ring.rs`).
//!
//! ```text
//! offset 0                  PacketHeader (256 bytes), then the codec parameters (rest of page 0)
//! control_offset (1 page)   Control (futex word + waiter count; the only bytes readers write)
//! index_offset (2 pages)    index_len × Entry (64 bytes): one per packet, entry `seq % index_len`
//! data_offset               capacity bytes: the payload byte ring, packets back to back, wrapping
//! ```
//!
//! Positions in the byte ring are absolute (`u64`, never wrapping in practice); byte `p` lives at
//! `data_offset + p % capacity`. A packet's payload is contiguous in position space and may wrap
//! around the end of the data area in memory.
//!
//! **Publishing packet `seq`** (writer): 1. `reserve_pos = end` of the bytes about to be written
//! (relaxed), release fence; 2. entry `state = 2*seq - 1` (odd), release fence; 3. copy the
//! payload and write the entry's fields; 4. `state = 2*seq` (release); 5. `newest_seq = seq`
//! (release) and, for a video keyframe, `newest_key_seq = seq`; 6. bump the futex word, wake
//! only if someone sleeps.
//!
//! **Reading packet `seq`** (reader): `state` (acquire) must be `2*seq`; read the entry's fields and
//! copy the payload; acquire fence; `state` must still be `2*seq` (the entry was not reused) and
//! `reserve_pos - (pos + len)` must be at most `capacity - len`, i.e. `reserve_pos <= pos +
//! capacity` (no byte of the payload was overwritten). Otherwise the copy is dropped: the reader
//! fell behind. Nothing a reader does can make the writer wait.
//!
//! Codec parameters live under their own seqlock `params_seq` (odd while the writer changes
//! them; `params_seq / 2` is their version). The configuration fields are guarded by
//! `generation`, as in the frame ring.

use crate::packet::{PacketMeta, Track};
use crate::sync::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// `"NVRPRING"` little-endian: the first 8 bytes of every packet segment.
pub(crate) const PACKET_MAGIC: u64 = u64::from_le_bytes(*b"NVRPRING");
/// Bumped whenever the layout below changes incompatibly.
pub(crate) const PACKET_LAYOUT_VERSION: u32 = 1;
pub(crate) const HEADER_SIZE: usize = 256;
pub(crate) const ENTRY_SIZE: usize = 64;
/// Smallest and largest payload capacity.
pub(crate) const MIN_CAPACITY: u64 = 16 * 1024;
pub(crate) const MAX_CAPACITY: u64 = 1 << 30;
/// Fewest and most index entries.
pub(crate) const MIN_INDEX: u32 = 64;
pub(crate) const MAX_INDEX: u32 = 1 << 16;

/// The packet segment's header. Written only by the writer; readers map it read-only.
#[repr(C)]
pub(crate) struct PacketHeader {
    pub magic: AtomicU64,
    pub layout_version: AtomicU32,
    pub header_size: AtomicU32,
    /// Seqlock over the configuration below: odd while configuring or closed; every change tells
    /// readers to re-attach.
    pub generation: AtomicU64,
    pub page_size: AtomicU32,
    /// 1 sub, 2 main.
    pub kind: AtomicU32,
    /// Payload bytes.
    pub capacity: AtomicU64,
    pub index_len: AtomicU32,
    pub entry_size: AtomicU32,
    pub control_offset: AtomicU64,
    pub index_offset: AtomicU64,
    pub data_offset: AtomicU64,
    pub segment_len: AtomicU64,
    /// Where the encoded codec parameters start (right after this header) and how many bytes fit.
    pub params_offset: AtomicU32,
    pub params_capacity: AtomicU32,
    // ---- changed while the generation lasts ----
    /// Seqlock over `params_len` and the parameter bytes: odd while writing; even = 2 × version;
    /// 0 = none yet.
    pub params_seq: AtomicU64,
    pub params_len: AtomicU32,
    pub writer_pid: AtomicU32,
    /// Newest published packet; 0 = none in this generation.
    pub newest_seq: AtomicU64,
    /// Newest published video keyframe; 0 = none in this generation.
    pub newest_key_seq: AtomicU64,
    /// Absolute end position of the payload bytes written or being written.
    pub reserve_pos: AtomicU64,
    /// Packets dropped for being over a quarter of the ring (whole writer lifetime).
    pub oversize_drops: AtomicU64,
    /// First seq of this generation (older entries are of another stream).
    pub first_seq: AtomicU64,
    pub _reserved: [u64; 14],
}

/// One packet's index entry.
#[repr(C)]
pub(crate) struct Entry {
    /// Seqlock word: `2*seq - 1` while packet `seq` is written, `2*seq` once published, 0 empty.
    pub state: AtomicU64,
    /// Absolute position of the payload's first byte.
    pub pos: AtomicU64,
    pub len: AtomicU32,
    /// Bit 0: keyframe; bits 8..16: track.
    pub flags: AtomicU32,
    pub pts: AtomicI64,
    pub dts: AtomicI64,
    pub arrival_ns: AtomicU64,
    pub _reserved: [u64; 2],
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PacketHeader>() == HEADER_SIZE);
    assert!(offset_of!(PacketHeader, magic) == 0);
    assert!(offset_of!(PacketHeader, layout_version) == 8);
    assert!(offset_of!(PacketHeader, header_size) == 12);
    assert!(offset_of!(PacketHeader, generation) == 16);
    assert!(offset_of!(PacketHeader, page_size) == 24);
    assert!(offset_of!(PacketHeader, kind) == 28);
    assert!(offset_of!(PacketHeader, capacity) == 32);
    assert!(offset_of!(PacketHeader, index_len) == 40);
    assert!(offset_of!(PacketHeader, entry_size) == 44);
    assert!(offset_of!(PacketHeader, control_offset) == 48);
    assert!(offset_of!(PacketHeader, index_offset) == 56);
    assert!(offset_of!(PacketHeader, data_offset) == 64);
    assert!(offset_of!(PacketHeader, segment_len) == 72);
    assert!(offset_of!(PacketHeader, params_offset) == 80);
    assert!(offset_of!(PacketHeader, params_capacity) == 84);
    assert!(offset_of!(PacketHeader, params_seq) == 88);
    assert!(offset_of!(PacketHeader, params_len) == 96);
    assert!(offset_of!(PacketHeader, newest_seq) == 104);
    assert!(offset_of!(PacketHeader, newest_key_seq) == 112);
    assert!(offset_of!(PacketHeader, reserve_pos) == 120);
    assert!(offset_of!(PacketHeader, oversize_drops) == 128);
    assert!(offset_of!(PacketHeader, first_seq) == 136);
    assert!(size_of::<Entry>() == ENTRY_SIZE);
    assert!(offset_of!(Entry, state) == 0);
    assert!(offset_of!(Entry, pos) == 8);
    assert!(offset_of!(Entry, len) == 16);
    assert!(offset_of!(Entry, flags) == 20);
    assert!(offset_of!(Entry, pts) == 24);
    assert!(offset_of!(Entry, dts) == 32);
    assert!(offset_of!(Entry, arrival_ns) == 40);
};

/// The byte layout of a packet segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacketLayout {
    pub page_size: usize,
    pub capacity: u64,
    pub index_len: u32,
    pub control_offset: usize,
    pub index_offset: usize,
    pub data_offset: usize,
    pub params_capacity: u32,
    pub total_len: usize,
}

fn align_up(n: u64, to: u64) -> Option<u64> {
    Some(n.checked_add(to - 1)? / to * to)
}

impl PacketLayout {
    /// Lays out a ring of at least `capacity` payload bytes (rounded up to a page).
    pub(crate) fn new(capacity: u64, page_size: usize) -> Result<PacketLayout, String> {
        if !page_size.is_power_of_two() || !(4096..=1 << 20).contains(&page_size) {
            return Err(format!(
                "page size {page_size} is not a power of two in 4 KiB..=1 MiB"
            ));
        }
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!(
                "capacity {capacity} bytes; must be {MIN_CAPACITY}..={MAX_CAPACITY}"
            ));
        }
        let page = page_size as u64;
        let capacity = align_up(capacity, page).ok_or("capacity overflows")?;
        // One entry per KiB of payload: packets average well over that at any useful bitrate
        // (a 256 kbit/s stream at 30 fps sends about 1 KiB per frame).
        let index_len = (capacity / 1024)
            .next_power_of_two()
            .clamp(MIN_INDEX.into(), MAX_INDEX.into()) as u32;
        let index_offset = 2 * page;
        let index_bytes = align_up(u64::from(index_len) * ENTRY_SIZE as u64, page)
            .ok_or("index size overflows")?;
        let data_offset = index_offset + index_bytes;
        let total_len = data_offset
            .checked_add(capacity)
            .ok_or("segment size overflows")?;
        Ok(PacketLayout {
            page_size,
            capacity,
            index_len,
            control_offset: page_size,
            index_offset: index_offset as usize,
            data_offset: data_offset as usize,
            params_capacity: (page_size - HEADER_SIZE) as u32,
            total_len: total_len as usize,
        })
    }

    /// Largest packet the ring takes: a quarter of it.
    pub(crate) fn max_packet(&self) -> u64 {
        self.capacity / 4
    }

    /// Byte offset of the entry of `seq` from the start of the segment.
    pub(crate) fn entry_offset(&self, seq: u64) -> usize {
        self.index_offset + (seq % u64::from(self.index_len)) as usize * ENTRY_SIZE
    }

    /// The two memory ranges (offsets from the segment start, lengths) that hold `len` payload
    /// bytes from absolute position `pos`. `len <= capacity`.
    pub(crate) fn data_ranges(&self, pos: u64, len: usize) -> [(usize, usize); 2] {
        let at = (pos % self.capacity) as usize;
        let first = len.min(self.capacity as usize - at);
        [
            (self.data_offset + at, first),
            (self.data_offset, len - first),
        ]
    }
}

/// Why a packet header can't be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PacketHeaderProblem {
    Bad(String),
    Version(u32),
    Unsettled,
}

/// A consistent copy of the header's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacketSnapshot {
    pub magic: u64,
    pub layout_version: u32,
    pub header_size: u32,
    pub generation: u64,
    pub page_size: u32,
    pub kind: u32,
    pub capacity: u64,
    pub index_len: u32,
    pub entry_size: u32,
    pub control_offset: u64,
    pub index_offset: u64,
    pub data_offset: u64,
    pub segment_len: u64,
    pub params_offset: u32,
    pub params_capacity: u32,
}

impl PacketSnapshot {
    /// Checks the snapshot against what this build would lay out for its capacity, the kind
    /// expected, and the file length.
    pub(crate) fn layout(
        &self,
        kind: u32,
        file_len: u64,
    ) -> Result<PacketLayout, PacketHeaderProblem> {
        let bad = |s: String| Err(PacketHeaderProblem::Bad(s));
        if self.magic != PACKET_MAGIC {
            return bad(format!(
                "bad magic {:#018x}, not an NVR packet ring",
                self.magic
            ));
        }
        if self.layout_version != PACKET_LAYOUT_VERSION {
            return Err(PacketHeaderProblem::Version(self.layout_version));
        }
        if self.header_size as usize != HEADER_SIZE {
            return bad(format!("header size {} (expected 256)", self.header_size));
        }
        if self.kind != kind {
            return bad(format!("stream kind {} (expected {kind})", self.kind));
        }
        let layout = PacketLayout::new(self.capacity, self.page_size as usize).or_else(bad)?;
        let stored = (
            self.capacity,
            self.index_len,
            self.entry_size as usize,
            self.control_offset,
            self.index_offset,
            self.data_offset,
            self.segment_len,
            self.params_offset as usize,
            self.params_capacity,
        );
        let expected = (
            layout.capacity,
            layout.index_len,
            ENTRY_SIZE,
            layout.control_offset as u64,
            layout.index_offset as u64,
            layout.data_offset as u64,
            layout.total_len as u64,
            HEADER_SIZE,
            layout.params_capacity,
        );
        if stored != expected {
            return bad(format!(
                "inconsistent layout: stored {stored:?}, expected {expected:?}"
            ));
        }
        if self.segment_len > file_len {
            return bad(format!(
                "{}: the layout needs {} bytes, the file has {file_len}",
                crate::layout::TRUNCATED,
                self.segment_len
            ));
        }
        Ok(layout)
    }
}

impl PacketHeader {
    /// Starts a (re)configuration: generation odd. Returns the odd value.
    pub(crate) fn begin_configure(&self) -> u64 {
        let odd = self.generation.load(Ordering::Relaxed) | 1;
        self.generation.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        odd
    }

    /// Writes the configuration, forgets every packet and the codec parameters. Between
    /// `begin_configure` and `end_configure`.
    pub(crate) fn store_layout(
        &self,
        layout: &PacketLayout,
        kind: u32,
        writer_pid: u32,
        next_seq: u64,
    ) {
        let r = Ordering::Relaxed;
        self.magic.store(PACKET_MAGIC, r);
        self.layout_version.store(PACKET_LAYOUT_VERSION, r);
        self.header_size.store(HEADER_SIZE as u32, r);
        self.page_size.store(layout.page_size as u32, r);
        self.kind.store(kind, r);
        self.capacity.store(layout.capacity, r);
        self.index_len.store(layout.index_len, r);
        self.entry_size.store(ENTRY_SIZE as u32, r);
        self.control_offset.store(layout.control_offset as u64, r);
        self.index_offset.store(layout.index_offset as u64, r);
        self.data_offset.store(layout.data_offset as u64, r);
        self.segment_len.store(layout.total_len as u64, r);
        self.params_offset.store(HEADER_SIZE as u32, r);
        self.params_capacity.store(layout.params_capacity, r);
        // Parameters of the old generation are gone; the version keeps counting up.
        let v = self.params_seq.load(r);
        self.params_seq.store((v + 1) & !1, r);
        self.params_len.store(0, r);
        self.newest_seq.store(0, r);
        self.newest_key_seq.store(0, r);
        self.first_seq.store(next_seq, r);
        self.writer_pid.store(writer_pid, r);
    }

    /// Ends a configuration started with `odd`; returns the new (even) generation.
    pub(crate) fn end_configure(&self, odd: u64) -> u64 {
        self.generation.store(odd + 1, Ordering::Release);
        odd + 1
    }

    /// Marks the segment closed (generation odd).
    pub(crate) fn close(&self) {
        let g = self.generation.load(Ordering::Relaxed);
        if g.is_multiple_of(2) {
            self.generation.store(g + 1, Ordering::Release);
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reads the configuration consistently, or `None` while the writer configures.
    pub(crate) fn snapshot(&self) -> Option<PacketSnapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation % 2 == 1 {
            return None;
        }
        let r = Ordering::Relaxed;
        let snap = PacketSnapshot {
            magic: self.magic.load(r),
            layout_version: self.layout_version.load(r),
            header_size: self.header_size.load(r),
            generation,
            page_size: self.page_size.load(r),
            kind: self.kind.load(r),
            capacity: self.capacity.load(r),
            index_len: self.index_len.load(r),
            entry_size: self.entry_size.load(r),
            control_offset: self.control_offset.load(r),
            index_offset: self.index_offset.load(r),
            data_offset: self.data_offset.load(r),
            segment_len: self.segment_len.load(r),
            params_offset: self.params_offset.load(r),
            params_capacity: self.params_capacity.load(r),
        };
        fence(Ordering::Acquire);
        (self.generation.load(Ordering::Relaxed) == generation).then_some(snap)
    }

    // ---- the packet protocol ----

    /// Writer, before copying the payload of a packet ending at absolute position `end`: claims
    /// those bytes, so a reader that sees any of them changed also sees this claim.
    pub(crate) fn reserve(&self, end: u64) {
        self.reserve_pos.store(end, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Writer: announces `seq` (already published in its entry) as the newest.
    pub(crate) fn set_newest(&self, seq: u64, keyframe: bool) {
        if keyframe {
            self.newest_key_seq.store(seq, Ordering::Release);
        }
        self.newest_seq.store(seq, Ordering::Release);
    }

    pub(crate) fn newest(&self) -> u64 {
        self.newest_seq.load(Ordering::Acquire)
    }

    pub(crate) fn newest_key(&self) -> u64 {
        self.newest_key_seq.load(Ordering::Acquire)
    }

    /// Reader, after copying a payload from `pos` (and the fence in `Entry::end_read`): whether
    /// none of the `capacity` bytes before the writer's claim reached back to `pos`.
    pub(crate) fn payload_intact(&self, pos: u64, capacity: u64) -> bool {
        self.reserve_pos.load(Ordering::Relaxed) <= pos.saturating_add(capacity)
    }

    // ---- codec parameters ----

    /// Writer: starts changing the parameters (odd). Returns the odd value.
    pub(crate) fn begin_params(&self) -> u64 {
        let odd = self.params_seq.load(Ordering::Relaxed) | 1;
        self.params_seq.store(odd, Ordering::Relaxed);
        fence(Ordering::Release);
        odd
    }

    /// Writer: publishes `len` parameter bytes written since `begin_params`.
    pub(crate) fn end_params(&self, odd: u64, len: u32) {
        self.params_len.store(len, Ordering::Relaxed);
        self.params_seq.store(odd + 1, Ordering::Release);
    }

    /// Reader: the parameters' seqlock value and length to copy, if settled and present.
    pub(crate) fn begin_read_params(&self) -> Option<(u64, u32)> {
        let seq = self.params_seq.load(Ordering::Acquire);
        if seq % 2 == 1 {
            return None;
        }
        Some((seq, self.params_len.load(Ordering::Relaxed)))
    }

    /// Reader: whether the parameter bytes copied since `begin_read_params` are intact.
    pub(crate) fn end_read_params(&self, seq: u64) -> bool {
        fence(Ordering::Acquire);
        self.params_seq.load(Ordering::Relaxed) == seq
    }
}

/// Entry state while packet `seq` is written / once published (wrapping: `seq` may come from a
/// hostile header).
fn writing(seq: u64) -> u64 {
    published(seq).wrapping_sub(1)
}

fn published(seq: u64) -> u64 {
    seq.wrapping_mul(2)
}

impl Entry {
    /// Writer: marks the entry as being overwritten with packet `seq`.
    pub(crate) fn begin_write(&self, seq: u64) {
        self.state.store(writing(seq), Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Writer: publishes packet `meta.seq` at `pos`.
    pub(crate) fn end_write(&self, meta: &PacketMeta, pos: u64) {
        let r = Ordering::Relaxed;
        self.pos.store(pos, r);
        self.len.store(meta.len, r);
        self.flags
            .store(u32::from(meta.keyframe) | meta.track.code() << 8, r);
        self.pts.store(meta.pts, r);
        self.dts.store(meta.dts, r);
        self.arrival_ns.store(meta.arrival_ns, r);
        self.state.store(published(meta.seq), Ordering::Release);
    }

    /// Reader: starts reading packet `seq`; its metadata and payload position if the entry holds
    /// it (only valid once [`end_read`](Self::end_read) agrees). `None` for an entry naming an
    /// unknown track.
    pub(crate) fn begin_read(&self, seq: u64) -> Option<(PacketMeta, u64)> {
        if self.state.load(Ordering::Acquire) != published(seq) {
            return None;
        }
        let r = Ordering::Relaxed;
        let flags = self.flags.load(r);
        Some((
            PacketMeta {
                seq,
                track: Track::from_code(flags >> 8).unwrap_or(Track::Video),
                pts: self.pts.load(r),
                dts: self.dts.load(r),
                keyframe: flags & 1 == 1,
                arrival_ns: self.arrival_ns.load(r),
                len: self.len.load(r),
            },
            self.pos.load(r),
        ))
    }

    /// Reader: true if the entry still holds `seq` (after the payload copy).
    pub(crate) fn end_read(&self, seq: u64) -> bool {
        fence(Ordering::Acquire);
        self.state.load(Ordering::Relaxed) == published(seq)
    }

    /// Forgets the entry (while configuring).
    pub(crate) fn clear(&self) {
        self.state.store(0, Ordering::Relaxed);
    }
}

#[cfg(loom)]
mod loom_tests {
    //! The packet ring's own protocol: payloads of different sizes wrap around a byte ring and a
    //! reader must never accept bytes the writer overwrote, even when the entry it read is intact
    //! (the byte ring, not the index, ran out). `RUSTFLAGS="--cfg loom" cargo test --release -p
    //! shm-bus --lib loom`.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn entry() -> Entry {
        Entry {
            state: AtomicU64::new(0),
            pos: AtomicU64::new(0),
            len: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            pts: AtomicI64::new(0),
            dts: AtomicI64::new(0),
            arrival_ns: AtomicU64::new(0),
            _reserved: [0; 2],
        }
    }

    /// Two index entries (more than the byte ring holds packets, so the byte check matters) over
    /// a 3-byte ring of relaxed atomics (so loom sees each byte's race); packet `seq` is 2 bytes of
    /// value `seq`.
    struct Ring {
        entries: Vec<Entry>,
        data: Vec<AtomicU64>,
        reserve_pos: AtomicU64,
        newest: AtomicU64,
    }

    const CAPACITY: u64 = 3;
    const LEN: u64 = 2;

    impl Ring {
        fn new() -> Ring {
            Ring {
                entries: (0..2).map(|_| entry()).collect(),
                data: (0..CAPACITY).map(|_| AtomicU64::new(0)).collect(),
                reserve_pos: AtomicU64::new(0),
                newest: AtomicU64::new(0),
            }
        }

        fn publish(&self, seq: u64) {
            let pos = (seq - 1) * LEN;
            self.reserve_pos.store(pos + LEN, Ordering::Relaxed);
            fence(Ordering::Release);
            let e = &self.entries[(seq % 2) as usize];
            e.begin_write(seq);
            for p in pos..pos + LEN {
                self.data[(p % CAPACITY) as usize].store(seq, Ordering::Relaxed);
            }
            e.end_write(
                &PacketMeta {
                    seq,
                    track: Track::Video,
                    pts: seq as i64,
                    dts: seq as i64,
                    keyframe: false,
                    arrival_ns: seq,
                    len: LEN as u32,
                },
                pos,
            );
            self.newest.store(seq, Ordering::Release);
        }

        fn read(&self, seq: u64) -> Option<(PacketMeta, Vec<u64>)> {
            let e = &self.entries[(seq % 2) as usize];
            let (meta, pos) = e.begin_read(seq)?;
            let bytes = (pos..pos + u64::from(meta.len))
                .map(|p| self.data[(p % CAPACITY) as usize].load(Ordering::Relaxed))
                .collect();
            let ok = e.end_read(seq)
                && self.reserve_pos.load(Ordering::Relaxed) <= pos.saturating_add(CAPACITY);
            ok.then_some((meta, bytes))
        }
    }

    #[test]
    fn loom_packet_payloads_are_never_torn() {
        // Sizes: CI runs this (scripts/test.sh). Two packets of two bytes in a three-byte ring:
        // packet 2 overwrites packet 1's first byte while packet 1's entry stays intact, so only
        // the position check can reject a read of packet 1 that raced it.
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let ring = Arc::new(Ring::new());
            let writer = {
                let ring = ring.clone();
                thread::spawn(move || (1..=2).for_each(|seq| ring.publish(seq)))
            };
            for seq in [1, 2] {
                if let Some((meta, bytes)) = ring.read(seq) {
                    assert_eq!(bytes, vec![seq; LEN as usize], "torn payload passed");
                    assert_eq!(meta.pts, seq as i64, "torn entry passed");
                }
            }
            writer.join().unwrap();
            let (meta, bytes) = ring.read(2).expect("a quiescent ring reads cleanly");
            assert_eq!((meta.seq, bytes), (2, vec![2; 2]));
            assert!(
                ring.read(1).is_none(),
                "packet 1's first byte was overwritten"
            );
        });
    }
}
