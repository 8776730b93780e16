//! The single writer of one of a camera's packet rings: creates (or takes over) the segment,
//! appends encoded packets to its byte ring, keeps the codec parameters in the header, and removes
//! the segment on drop.

use crate::error::BusError;
use crate::packet::{PacketMeta, PacketRingStats, StreamKind, StreamParams, Track};
use crate::packet_layout::{PacketHeader, PacketLayout, HEADER_SIZE};
use crate::platform::{self, Mapping, SegmentFile};
use crate::segment::{self, Ctx};
use crate::sync::Ordering;
use rustix::io::Errno;
use std::path::{Path, PathBuf};

/// How long a rate measurement window lasts before its figures replace the last ones.
const RATE_WINDOW_NS: u64 = 2_000_000_000;

/// The one writer of a camera's packet ring for one stream.
///
/// Like the frame ring's [`Writer`](crate::Writer): an exclusive `flock` for its whole life (a
/// second writer gets [`BusError::WriterActive`]), a crashed writer's segment is taken over in
/// place with a new generation, every page is reserved at creation (a full /dev/shm is
/// [`BusError::NoSpace`] then, never a SIGBUS later), and dropping it removes the segment.
#[derive(Debug)]
pub struct PacketWriter {
    camera_id: String,
    kind: StreamKind,
    path: PathBuf,
    file: SegmentFile,
    map: Mapping,
    layout: PacketLayout,
    generation: u64,
    next_seq: u64,
    /// Absolute position of the next payload byte.
    write_pos: u64,
    params: Option<StreamParams>,
    packets: u64,
    oversize_drops: u64,
    rates: Rates,
}

/// Rolling figures for [`PacketRingStats`].
#[derive(Debug, Default, Clone, Copy)]
struct Rates {
    window_start_ns: Option<u64>,
    window_bytes: u64,
    window_packets: u64,
    bytes_per_s: f64,
    packets_per_s: f64,
    last_key_ns: Option<u64>,
    gop_s: f64,
}

impl Rates {
    fn add(&mut self, arrival_ns: u64, len: usize, video_keyframe: bool) {
        let start = *self.window_start_ns.get_or_insert(arrival_ns);
        self.window_bytes += len as u64;
        self.window_packets += 1;
        let elapsed = arrival_ns.saturating_sub(start);
        if elapsed >= RATE_WINDOW_NS {
            let s = elapsed as f64 / 1e9;
            self.bytes_per_s = self.window_bytes as f64 / s;
            self.packets_per_s = self.window_packets as f64 / s;
            *self = Rates {
                window_start_ns: Some(arrival_ns),
                window_bytes: 0,
                window_packets: 0,
                ..*self
            };
        }
        if video_keyframe {
            if let Some(last) = self.last_key_ns {
                self.gop_s = arrival_ns.saturating_sub(last) as f64 / 1e9;
            }
            self.last_key_ns = Some(arrival_ns);
        }
    }
}

impl PacketWriter {
    /// Creates camera `camera_id`'s `kind` packet ring in [`shm_dir()`](crate::shm_dir) with at
    /// least `capacity_bytes` of payload (16 KiB to 1 GiB, rounded up to a page), or takes over an
    /// existing one (bumping its generation so readers still holding it re-attach).
    pub fn create(
        camera_id: &str,
        kind: StreamKind,
        capacity_bytes: u64,
    ) -> Result<PacketWriter, BusError> {
        Self::create_in(&crate::shm_dir(), camera_id, kind, capacity_bytes)
    }

    /// [`create`](Self::create) in directory `dir`.
    pub fn create_in(
        dir: &Path,
        camera_id: &str,
        kind: StreamKind,
        capacity_bytes: u64,
    ) -> Result<PacketWriter, BusError> {
        let path = segment::packet_segment_path_in(dir, camera_id, kind)?;
        let ctx = Ctx {
            camera_id,
            ring: kind.ring_name(),
            path: &path,
        };
        let layout =
            PacketLayout::new(capacity_bytes, platform::page_size()).map_err(|reason| {
                BusError::InvalidLayout {
                    camera_id: camera_id.to_owned(),
                    reason: format!("{}: {reason}", kind.ring_name()),
                }
            })?;
        let file = match SegmentFile::open_locked(&path, true) {
            Ok(f) => f,
            Err(Errno::WOULDBLOCK) => return Err(ctx.writer_active(segment::writer_pid_of(&path))),
            Err(e) => return Err(ctx.io("create", e)),
        };
        let (file, map) = match take_over(ctx, &file, &layout) {
            Ok((Some(replacement), map)) => (replacement, map),
            Ok((None, map)) => (file, map),
            Err(e) => {
                let _ = platform::unlink(&path);
                return Err(e);
            }
        };
        let mut writer = PacketWriter {
            camera_id: camera_id.to_owned(),
            kind,
            path,
            file,
            map,
            layout,
            generation: 0,
            next_seq: 1,
            write_pos: 0,
            params: None,
            packets: 0,
            oversize_drops: 0,
            rates: Rates::default(),
        };
        writer.configure();
        Ok(writer)
    }

    fn header(&self) -> &PacketHeader {
        segment::packet_header(&self.map)
    }

    /// (Re)lays out the ring under the header seqlock: forgets every packet and the parameters,
    /// bumps the generation, wakes all readers.
    fn configure(&mut self) {
        let header = segment::packet_header(&self.map);
        let odd = header.begin_configure();
        for i in 0..u64::from(self.layout.index_len) {
            segment::entry(&self.map, self.layout.entry_offset(i)).clear();
        }
        header.store_layout(
            &self.layout,
            self.kind.code(),
            platform::pid(),
            self.next_seq,
        );
        header
            .oversize_drops
            .store(self.oversize_drops, Ordering::Relaxed);
        self.generation = header.end_configure(odd);
        self.params = None;
        self.rates = Rates::default();
        let control = segment::control(&self.map, self.layout.control_offset);
        control.announce();
        platform::futex_wake_all(&control.wake_seq);
    }

    pub fn camera_id(&self) -> &str {
        &self.camera_id
    }

    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Payload bytes the ring holds.
    pub fn capacity(&self) -> u64 {
        self.layout.capacity
    }

    /// Largest packet accepted: a quarter of the capacity.
    pub fn max_packet(&self) -> u64 {
        self.layout.max_packet()
    }

    /// The generation readers see; changes on creation, [`restart`](Self::restart) and a codec or
    /// size change in [`set_params`](Self::set_params).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The seq the next [`publish`](Self::publish) will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The parameters in the header, if any were set in this generation.
    pub fn params(&self) -> Option<&StreamParams> {
        self.params.as_ref()
    }

    /// A new timeline (the stream reconnected): bumps the generation, forgets the packets and the
    /// parameters (they are set again when seen). Readers get [`Read::Restarted`](crate::Read).
    pub fn restart(&mut self) {
        self.configure();
    }

    /// Stores the stream's codec parameters in the header. Nothing happens if they are what the
    /// header holds; a change of codec or size starts a new generation first (readers re-attach
    /// and start from a keyframe of the new stream); any other change (new parameter-set bytes,
    /// the audio track) bumps the parameters' version under their seqlock. Returns whether
    /// anything changed.
    pub fn set_params(&mut self, params: &StreamParams) -> Result<bool, BusError> {
        if self.params.as_ref() == Some(params) {
            return Ok(false);
        }
        let invalid = |reason: String| BusError::InvalidParams {
            camera_id: self.camera_id.clone(),
            ring: self.kind.ring_name(),
            reason,
        };
        let bytes = params.encode().map_err(invalid)?;
        if bytes.len() > self.layout.params_capacity as usize {
            return Err(invalid(format!(
                "{} bytes encoded, the header holds {}",
                bytes.len(),
                self.layout.params_capacity
            )));
        }
        if let Some(old) = &self.params {
            if (old.codec, old.width, old.height) != (params.codec, params.width, params.height) {
                self.configure();
            }
        }
        let header = segment::packet_header(&self.map);
        let odd = header.begin_params();
        // SAFETY: `HEADER_SIZE + params_capacity` is the first page, inside the mapping (the
        // layout puts the control block at one page); `bytes.len() <= params_capacity` was
        // checked above. Only this writer writes these bytes (`&mut self`); readers in other
        // processes copy them under the `params_seq` seqlock and discard torn copies.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_ptr().add(HEADER_SIZE),
                bytes.len(),
            );
        }
        header.end_params(odd, bytes.len() as u32);
        self.params = Some(params.clone());
        Ok(true)
    }

    /// Appends one packet (a video access unit in Annex B form, or an AAC frame) and returns its
    /// seq. Never waits for readers: one still reading bytes this overwrites notices and drops its
    /// copy. A packet over a quarter of the ring is dropped and counted
    /// ([`BusError::PacketTooLarge`]); nothing else fails.
    pub fn publish(
        &mut self,
        track: Track,
        pts: i64,
        dts: i64,
        keyframe: bool,
        arrival_ns: u64,
        data: &[u8],
    ) -> Result<u64, BusError> {
        let len = data.len();
        if len as u64 > self.layout.max_packet() {
            self.oversize_drops += 1;
            self.header()
                .oversize_drops
                .store(self.oversize_drops, Ordering::Relaxed);
            return Err(BusError::PacketTooLarge {
                camera_id: self.camera_id.clone(),
                ring: self.kind.ring_name(),
                len,
                capacity: self.layout.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let pos = self.write_pos;
        self.write_pos += len as u64;
        let header = segment::packet_header(&self.map);
        header.reserve(self.write_pos);
        let entry = segment::entry(&self.map, self.layout.entry_offset(seq));
        entry.begin_write(seq);
        let mut rest = data;
        for (offset, n) in self.layout.data_ranges(pos, len) {
            let (now, later) = rest.split_at(n);
            // SAFETY: `data_ranges` keeps both ranges inside the data area, which the validated
            // layout places inside the mapping (`data_offset + capacity = total_len <=
            // map.len()`), and `len <= capacity / 4`. Only this writer writes payload bytes
            // (`&mut self`); readers copy them and check `reserve_pos` afterwards, discarding
            // anything this write could have changed.
            unsafe {
                std::ptr::copy_nonoverlapping(now.as_ptr(), self.map.as_ptr().add(offset), n);
            }
            rest = later;
        }
        let video_keyframe = keyframe && track == Track::Video;
        entry.end_write(
            &PacketMeta {
                seq,
                track,
                pts,
                dts,
                keyframe,
                arrival_ns,
                len: len as u32,
            },
            pos,
        );
        header.set_newest(seq, video_keyframe);
        self.packets += 1;
        self.rates.add(arrival_ns, len, video_keyframe);
        let control = segment::control(&self.map, self.layout.control_offset);
        if control.announce() {
            platform::futex_wake_all(&control.wake_seq);
        }
        Ok(seq)
    }

    /// The ring's figures: capacity, counts, byte rate, GOP length and how long the ring holds.
    pub fn stats(&self) -> PacketRingStats {
        let r = &self.rates;
        let by_bytes = if r.bytes_per_s > 0.0 {
            self.layout.capacity as f64 / r.bytes_per_s
        } else {
            0.0
        };
        let by_index = if r.packets_per_s > 0.0 {
            f64::from(self.layout.index_len) / r.packets_per_s
        } else {
            0.0
        };
        PacketRingStats {
            capacity_bytes: self.layout.capacity,
            packets: self.packets,
            oversize_drops: self.oversize_drops,
            bytes_per_s: r.bytes_per_s,
            gop_s: r.gop_s,
            holds_s: by_bytes.min(by_index),
        }
    }
}

impl Drop for PacketWriter {
    /// Removes the segment's name and marks it closed, waking readers so they re-attach.
    fn drop(&mut self) {
        if self.file.is_at(&self.path) == Ok(true) {
            let _ = platform::unlink(&self.path);
        }
        segment::close_packet_ring(&self.map);
    }
}

/// Prepares the locked `file` for `layout`: a packet ring of ours of exactly the right size is
/// reused in place; one of another size is replaced by a new file (readers of the old one are told
/// to re-attach); anything else is wiped. Returns the replacement file, if any, and the mapping.
fn take_over(
    ctx: Ctx<'_>,
    file: &SegmentFile,
    layout: &PacketLayout,
) -> Result<(Option<SegmentFile>, Mapping), BusError> {
    let len = file.len().map_err(|e| ctx.io("stat", e))?;
    let old = if len >= HEADER_SIZE as u64 {
        Some(
            file.map(0, len as usize, true)
                .map_err(|e| ctx.io("map", e))?,
        )
    } else {
        None
    };
    match old {
        Some(old) if segment::is_our_packet_ring(&old) => {
            let generation = segment::packet_header(&old).generation();
            let result = if len == layout.total_len as u64 {
                allocate_and_map(ctx, file, layout).map(|m| (None, m))
            } else {
                replace(ctx, layout, generation).map(|(f, m)| (Some(f), m))
            };
            segment::close_packet_ring(&old);
            result
        }
        _ => {
            drop(old);
            file.truncate_to_zero().map_err(|e| ctx.io("truncate", e))?;
            allocate_and_map(ctx, file, layout).map(|m| (None, m))
        }
    }
}

fn allocate_and_map(
    ctx: Ctx<'_>,
    file: &SegmentFile,
    layout: &PacketLayout,
) -> Result<Mapping, BusError> {
    file.allocate(layout.total_len as u64)
        .map_err(|e| match e {
            Errno::NOSPC | Errno::FBIG => ctx.no_space(layout.total_len as u64),
            e => ctx.io("allocate", e),
        })?;
    file.map(0, layout.total_len, true)
        .map_err(|e| ctx.io("map", e))
}

/// A right-sized segment built under `<name>.new` and renamed over `ctx.path`, continuing
/// `generation`.
fn replace(
    ctx: Ctx<'_>,
    layout: &PacketLayout,
    generation: u64,
) -> Result<(SegmentFile, Mapping), BusError> {
    let mut tmp = ctx.path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let tmp_ctx = Ctx { path: &tmp, ..ctx };
    let _ = platform::unlink(&tmp);
    let file = SegmentFile::create_new_locked(&tmp).map_err(|e| tmp_ctx.io("create", e))?;
    let map = match allocate_and_map(tmp_ctx, &file, layout) {
        Ok(m) => m,
        Err(e) => {
            let _ = platform::unlink(&tmp);
            return Err(e);
        }
    };
    segment::packet_header(&map)
        .generation
        .store(generation | 1, Ordering::Relaxed);
    if let Err(e) = platform::rename(&tmp, ctx.path) {
        let _ = platform::unlink(&tmp);
        return Err(ctx.io("rename into place", e));
    }
    Ok((file, map))
}
