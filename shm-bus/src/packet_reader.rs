//! A reader of one of a camera's packet rings, in any process: attaches by name, reads packets by
//! sequence number into its own buffer, tells torn or overwritten ones from good ones, reads the
//! codec parameters under their seqlock, and sleeps on the futex until the writer publishes.

use crate::error::BusError;
use crate::packet::{PacketWait, Read, StreamKind, StreamParams};
use crate::packet_layout::{
    PacketHeader, PacketHeaderProblem, PacketLayout, HEADER_SIZE, PACKET_LAYOUT_VERSION,
};
use crate::platform::{self, Access, Mapping, SegmentFile};
use crate::segment::{self, Ctx};
use crate::sync::Ordering;
use rustix::io::Errno;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `attach` waits for a writer that is configuring the segment.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest sleep of a reader that can't register as a waiter (read-only access): it polls.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How often `params` retries while the writer is changing them.
const PARAMS_TRIES: usize = 100;

/// A reader of one packet ring. Never blocks or slows the writer, whatever it does or however it
/// dies: the payload is mapped read-only; only the control page is mapped writable, to count this
/// reader as a sleeper (without write permission it polls every 5 ms instead).
#[derive(Debug)]
pub struct PacketReader {
    camera_id: String,
    kind: StreamKind,
    dir: PathBuf,
    path: PathBuf,
    map: Mapping,
    control: Option<Mapping>,
    layout: PacketLayout,
    generation: u64,
    /// The newest seq this reader read, was told about, or asked for too early (minus one).
    last_seen: u64,
}

impl PacketReader {
    /// Attaches to camera `camera_id`'s `kind` packet ring in [`shm_dir()`](crate::shm_dir).
    pub fn attach(camera_id: &str, kind: StreamKind) -> Result<PacketReader, BusError> {
        Self::attach_in(&crate::shm_dir(), camera_id, kind)
    }

    /// [`attach`](Self::attach) in directory `dir`. A file that is not a complete, consistent
    /// packet ring of this layout version and kind is a [`BusError`]; its length is checked before
    /// any byte of it is trusted.
    pub fn attach_in(
        dir: &Path,
        camera_id: &str,
        kind: StreamKind,
    ) -> Result<PacketReader, BusError> {
        let mut tries = 0;
        loop {
            match Self::attach_once(dir, camera_id, kind) {
                Err(BusError::BadHeader { reason, .. })
                    if reason.starts_with(crate::layout::TRUNCATED) && tries < 3 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                result => return result,
            }
        }
    }

    fn attach_once(
        dir: &Path,
        camera_id: &str,
        kind: StreamKind,
    ) -> Result<PacketReader, BusError> {
        let path = segment::packet_segment_path_in(dir, camera_id, kind)?;
        let ctx = Ctx {
            camera_id,
            ring: kind.ring_name(),
            path: &path,
        };
        let (file, access) = SegmentFile::open_reader(&path).map_err(|e| match e {
            Errno::NOENT => ctx.not_found(),
            e => ctx.io("open", e),
        })?;
        let len = file.len().map_err(|e| ctx.io("stat", e))?;
        if len < HEADER_SIZE as u64 {
            return Err(ctx.bad(format!(
                "the file is {len} bytes, shorter than a {HEADER_SIZE}-byte header"
            )));
        }
        let map = file
            .map(0, len as usize, false)
            .map_err(|e| ctx.io("map", e))?;
        let header = segment::packet_header(&map);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let (layout, generation) = loop {
            let problem = match header.snapshot() {
                Some(snap) => match snap.layout(kind.code(), len) {
                    Ok(layout) => break (layout, snap.generation),
                    Err(p) => p,
                },
                None => PacketHeaderProblem::Unsettled,
            };
            match problem {
                PacketHeaderProblem::Unsettled if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                PacketHeaderProblem::Unsettled => return Err(ctx.bad(
                    "its writer is still configuring it, closed it, or died while configuring it",
                )),
                PacketHeaderProblem::Version(found) => {
                    return Err(BusError::VersionMismatch {
                        camera_id: camera_id.to_owned(),
                        ring: kind.ring_name(),
                        path: path.clone(),
                        found,
                        expected: PACKET_LAYOUT_VERSION,
                    })
                }
                PacketHeaderProblem::Bad(reason) => return Err(ctx.bad(reason)),
            }
        };
        let control = match access {
            Access::ReadWrite => file
                .map(
                    layout.control_offset as u64,
                    std::mem::size_of::<crate::layout::Control>(),
                    true,
                )
                .ok(),
            Access::ReadOnly => None,
        };
        Ok(PacketReader {
            camera_id: camera_id.to_owned(),
            kind,
            dir: dir.to_owned(),
            path,
            map,
            control,
            layout,
            generation,
            last_seen: 0,
        })
    }

    /// Re-opens the ring by name (after [`Read::Restarted`]). On error this reader is left as it
    /// was.
    pub fn reattach(&mut self) -> Result<(), BusError> {
        *self = PacketReader::attach_in(&self.dir, &self.camera_id, self.kind)?;
        Ok(())
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

    /// The writer generation this reader attached to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the writer has moved to another generation (or closed the ring) since attaching.
    pub fn restarted(&self) -> bool {
        self.header().generation() != self.generation
    }

    /// Payload bytes the ring holds.
    pub fn capacity(&self) -> u64 {
        self.layout.capacity
    }

    /// Index entries: the most packets the ring holds, whatever their size.
    pub fn index_len(&self) -> u32 {
        self.layout.index_len
    }

    /// Packets the writer dropped for being over a quarter of the ring.
    pub fn oversize_drops(&self) -> u64 {
        self.header().oversize_drops.load(Ordering::Relaxed)
    }

    /// Whether this reader sleeps on the futex (true) or polls (read-only access).
    pub fn registers_as_waiter(&self) -> bool {
        self.control.is_some()
    }

    fn header(&self) -> &PacketHeader {
        segment::packet_header(&self.map)
    }

    /// The codec parameters and their version (which grows whenever they change), or `None` if the
    /// writer has not seen them yet in this generation (or they are being changed right now and
    /// stayed so, or the header holds something malformed).
    pub fn params(&self) -> Option<(u64, StreamParams)> {
        let header = self.header();
        let cap = self.layout.params_capacity as usize;
        let mut buf = vec![0u8; cap];
        for _ in 0..PARAMS_TRIES {
            let Some((seq, len)) = header.begin_read_params() else {
                std::thread::yield_now();
                continue;
            };
            if seq == 0 || len == 0 {
                return None;
            }
            let len = (len as usize).min(cap);
            // SAFETY: `HEADER_SIZE + params_capacity` is the validated first page, inside the
            // mapping. The writer (another process) may be rewriting these bytes: we copy them
            // as plain bytes (no invalid values for `u8`) and trust the copy only if the seqlock
            // shows no change (`end_read_params`); see `Reader::read_latest` on this race.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.map.as_ptr().add(HEADER_SIZE),
                    buf.as_mut_ptr(),
                    len,
                );
            }
            if header.end_read_params(seq) {
                return StreamParams::decode(&buf[..len]).map(|p| (seq / 2, p));
            }
        }
        None
    }

    /// The newest published packet's seq, if any in this generation.
    pub fn newest_seq(&self) -> Option<u64> {
        Some(self.header().newest()).filter(|&s| s != 0)
    }

    /// The newest published video keyframe's seq, if any in this generation: where a new viewer
    /// (or one that fell behind) starts.
    pub fn newest_keyframe_seq(&self) -> Option<u64> {
        Some(self.header().newest_key()).filter(|&s| s != 0)
    }

    /// The seq the writer will publish next: where a reader that wants only new packets starts.
    pub fn next_seq(&self) -> u64 {
        let h = self.header();
        h.newest()
            .max(h.first_seq.load(Ordering::Relaxed).saturating_sub(1))
            .saturating_add(1)
    }

    /// The oldest seq whose index entry may still hold its packet (its bytes may still be gone:
    /// [`read`](Self::read) says).
    pub fn oldest_seq(&self) -> u64 {
        let h = self.header();
        let newest = h.newest();
        let first = h.first_seq.load(Ordering::Relaxed);
        newest
            .saturating_sub(u64::from(self.layout.index_len) - 1)
            .max(first)
            .max(1)
    }

    /// Copies packet `seq`'s payload into `buf` (replacing its contents) and returns its metadata,
    /// or says why not. A [`Read::Packet`] is intact: its entry and every payload byte were checked
    /// after the copy. On anything else `buf`'s contents are unspecified.
    pub fn read(&mut self, seq: u64, buf: &mut Vec<u8>) -> Result<Read, BusError> {
        let header = segment::packet_header(&self.map);
        if header.generation() != self.generation {
            return Ok(Read::Restarted);
        }
        let newest = header.newest();
        let first = header.first_seq.load(Ordering::Relaxed);
        if seq == 0 || seq < first {
            // Of an earlier generation (or no seq at all).
            return Ok(Read::Overwritten);
        }
        if seq > newest {
            self.last_seen = self.last_seen.max(seq - 1);
            return Ok(Read::NotYet);
        }
        if newest - seq >= u64::from(self.layout.index_len) {
            return Ok(Read::Overwritten);
        }
        let entry = segment::entry(&self.map, self.layout.entry_offset(seq));
        let Some((meta, pos)) = entry.begin_read(seq) else {
            return Ok(Read::Overwritten);
        };
        if u64::from(meta.len) > self.layout.max_packet() {
            // Only a torn or hostile entry says so; the writer never publishes one.
            return Ok(Read::Overwritten);
        }
        buf.clear();
        buf.reserve(meta.len as usize);
        for (offset, n) in self.layout.data_ranges(pos, meta.len as usize) {
            // SAFETY: `data_ranges` keeps both ranges inside the data area of the layout, which
            // was validated against this mapping's length at attach (mappings never shrink:
            // writers replace a file rather than shrink it); `len <= capacity / 4` was checked
            // above. The writer (another process) may be overwriting these bytes now: we copy them
            // as plain bytes and keep the copy only if `end_read` and `payload_intact` below
            // show it was not touched, the seqlock race `Reader::read_latest` explains.
            unsafe {
                let src = std::slice::from_raw_parts(self.map.as_ptr().add(offset), n);
                buf.extend_from_slice(src);
            }
        }
        let intact = entry.end_read(seq)
            && header.payload_intact(pos, self.layout.capacity)
            && header.generation() == self.generation;
        if !intact {
            return Ok(Read::Overwritten);
        }
        self.last_seen = self.last_seen.max(seq);
        Ok(Read::Packet(meta))
    }

    /// Waits up to `timeout` for a packet newer than any this reader has read or asked for (returns
    /// at once if there is one), or for a generation change. Sleeps on the ring's futex (a
    /// reader without write access polls every 5 ms); costs the writer nothing unless a reader
    /// sleeps, and then one FUTEX_WAKE per packet.
    pub fn wait(&mut self, timeout: Duration) -> Result<PacketWait, BusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let header = self.header();
            if header.generation() != self.generation {
                return Ok(PacketWait::Restarted);
            }
            let newest = header.newest();
            if newest > self.last_seen {
                self.last_seen = newest;
                return Ok(PacketWait::Published(newest));
            }
            let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(PacketWait::Timeout);
            };
            if remaining.is_zero() {
                return Ok(PacketWait::Timeout);
            }
            let generation = self.generation;
            let last_seen = self.last_seen;
            let nothing_new =
                |h: &PacketHeader| h.generation() == generation && h.newest() <= last_seen;
            match &self.control {
                Some(control_map) => {
                    let control = segment::control(control_map, 0);
                    let expected = control.register_waiter();
                    if nothing_new(header) {
                        platform::futex_wait(&control.wake_seq, expected, remaining);
                    }
                    control.unregister_waiter();
                }
                None => {
                    let control = segment::control(&self.map, self.layout.control_offset);
                    let expected = control.wake_seq();
                    if nothing_new(header) {
                        platform::futex_wait(
                            &control.wake_seq,
                            expected,
                            remaining.min(POLL_INTERVAL),
                        );
                    }
                }
            }
        }
    }
}
