//! A reader of a camera's ring, in any process: attaches by name, sleeps on the futex until a
//! frame is published, reads the newest frame in place and tells torn reads from good ones.

use crate::error::BusError;
use crate::frame::{FrameMeta, FrameView, Geometry, Plane};
use crate::layout::{Control, Header, HeaderProblem, SegmentLayout, LAYOUT_VERSION};
use crate::platform::{self, Access, Mapping, SegmentFile};
use crate::segment::{self, Ctx};
use rustix::io::Errno;
use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `attach` waits for a writer that is configuring the segment.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest sleep of a reader that can't register as a waiter (read-only access): it polls.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How a header problem that may be a concurrent resize starts.
const TRUNCATED: &str = crate::layout::TRUNCATED;

/// What [`Reader::wait_next`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A frame newer than any this reader has seen was published; its seq.
    Frame(u64),
    /// Nothing new within the timeout. If this goes on while frames are expected, the writer may
    /// have been replaced without this reader noticing (e.g. someone removed the segment):
    /// [`Reader::reattach`] re-opens by name.
    Timeout,
    /// The writer restarted, changed resolution or closed the ring: call [`Reader::reattach`]
    /// (it fails with [`BusError::NotFound`] until a writer is back).
    GenerationChanged,
}

/// A reader of one camera's frame ring. Never blocks or slows the writer, whatever it does or
/// however it dies.
///
/// The segment's frame data is mapped read-only. Only the 64-byte control block (a page of its
/// own) is mapped writable, to count this reader as a sleeper so the writer knows to wake it;
/// without write permission on the file the reader polls every 5 ms instead.
#[derive(Debug)]
pub struct Reader {
    camera_id: String,
    dir: PathBuf,
    path: PathBuf,
    /// The whole file, read-only.
    map: Mapping,
    /// The control block, read-write; `None` if the file could only be opened read-only.
    control: Option<Mapping>,
    /// Layout at attach time, validated against the length of `map`.
    layout: SegmentLayout,
    /// Generation at attach time; any other value means re-attach.
    generation: u64,
    /// The newest seq reported by `wait_next` or read by `read_latest`.
    last_seen: u64,
}

impl Reader {
    /// Attaches to camera `camera_id`'s ring in [`shm_dir()`](crate::shm_dir).
    pub fn attach(camera_id: &str) -> Result<Reader, BusError> {
        Self::attach_in(&crate::shm_dir(), camera_id)
    }

    /// [`attach`](Self::attach) in directory `dir`. Any file that is not a complete, consistent
    /// ring of this layout version is a [`BusError`]; its length is checked before any byte of it
    /// is trusted, so a truncated file can't cause a SIGBUS.
    pub fn attach_in(dir: &Path, camera_id: &str) -> Result<Reader, BusError> {
        // A writer growing the segment between our fstat and our look at the header makes it look
        // truncated for a moment: look again (with a fresh length) before calling it damaged.
        let mut tries = 0;
        loop {
            match Self::attach_once(dir, camera_id) {
                Err(BusError::BadHeader { reason, .. })
                    if reason.starts_with(TRUNCATED) && tries < 3 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                result => return result,
            }
        }
    }

    fn attach_once(dir: &Path, camera_id: &str) -> Result<Reader, BusError> {
        let path = segment::segment_path_in(dir, camera_id)?;
        let ctx = Ctx {
            camera_id,
            ring: crate::segment::FRAME_RING,
            path: &path,
        };
        let (file, access) = SegmentFile::open_reader(&path).map_err(|e| match e {
            Errno::NOENT => ctx.not_found(),
            e => ctx.io("open", e),
        })?;
        let len = file.len().map_err(|e| ctx.io("stat", e))?;
        if len < size_of::<Header>() as u64 {
            return Err(ctx.bad(format!(
                "the file is {len} bytes, shorter than a {}-byte header",
                size_of::<Header>()
            )));
        }
        let map = file
            .map(0, len as usize, false)
            .map_err(|e| ctx.io("map", e))?;
        let header = segment::header(&map);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let layout = loop {
            let problem = match header.snapshot() {
                Some(snap) => match snap.layout(len) {
                    Ok(layout) => break Ok((layout, snap.generation)),
                    Err(p) => p,
                },
                None => HeaderProblem::Unsettled,
            };
            match problem {
                HeaderProblem::Unsettled if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                HeaderProblem::Unsettled => break Err(ctx.bad(
                    "its writer is still configuring it, closed it, or died while configuring it",
                )),
                HeaderProblem::Version(found) => {
                    break Err(BusError::VersionMismatch {
                        camera_id: camera_id.to_owned(),
                        ring: crate::segment::FRAME_RING,
                        path: path.clone(),
                        found,
                        expected: LAYOUT_VERSION,
                    })
                }
                HeaderProblem::Bad(reason) => break Err(ctx.bad(reason)),
            }
        };
        let (layout, generation) = layout?;
        let control = match access {
            Access::ReadWrite if layout.control_offset.is_multiple_of(platform::page_size()) => {
                file.map(layout.control_offset as u64, size_of::<Control>(), true)
                    .ok()
            }
            _ => None,
        };
        Ok(Reader {
            camera_id: camera_id.to_owned(),
            dir: dir.to_owned(),
            path,
            map,
            control,
            layout,
            generation,
            last_seen: 0,
        })
    }

    /// Re-opens the ring by name (after [`Wait::GenerationChanged`], or when frames stopped
    /// coming). On error this reader is left as it was.
    pub fn reattach(&mut self) -> Result<(), BusError> {
        *self = Reader::attach_in(&self.dir, &self.camera_id)?;
        Ok(())
    }

    /// The camera this ring belongs to.
    pub fn camera_id(&self) -> &str {
        &self.camera_id
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size and format of the frames (as of attaching).
    pub fn geometry(&self) -> Geometry {
        self.layout.geometry
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.layout.n_slots
    }

    /// The writer generation this reader attached to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this reader sleeps on the futex (true) or has to poll (read-only access).
    pub fn registers_as_waiter(&self) -> bool {
        self.control.is_some()
    }

    fn header(&self) -> &Header {
        segment::header(&self.map)
    }

    /// Waits up to `timeout` for a frame newer than any this reader has seen (returns at once if
    /// there already is one), or for a generation change. Costs the writer nothing unless this
    /// reader actually sleeps, and then one FUTEX_WAKE per publish.
    pub fn wait_next(&mut self, timeout: Duration) -> Result<Wait, BusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let header = self.header();
            if header.generation() != self.generation {
                return Ok(Wait::GenerationChanged);
            }
            let newest = header.newest();
            if newest > self.last_seen {
                self.last_seen = newest;
                return Ok(Wait::Frame(newest));
            }
            let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(Wait::Timeout);
            };
            if remaining.is_zero() {
                return Ok(Wait::Timeout);
            }
            let nothing_new =
                |h: &Header| h.generation() == self.generation && h.newest() <= self.last_seen;
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

    /// Reads the newest frame in place; `f` sees planes + meta. Returns `None` if there is no
    /// frame yet, the generation changed, or the frame was torn/overwritten during the read (then
    /// `f`'s result is discarded).
    ///
    /// `f` runs on bytes the writer may be overwriting at that moment (that is what makes the
    /// ring lock-free); its result is only returned if the slot's sequence counter shows the
    /// frame stayed intact. Keep `f` short: a read longer than `n_slots` frame intervals is
    /// always torn.
    pub fn read_latest<T>(
        &mut self,
        f: impl FnOnce(&FrameView<'_>) -> T,
    ) -> Result<Option<(FrameMeta, T)>, BusError> {
        let header = self.header();
        if header.generation() != self.generation {
            return Ok(None);
        }
        let seq = header.newest();
        if seq == 0 {
            return Ok(None);
        }
        let offset = self
            .layout
            .slot_offset((seq % self.layout.n_slots as u64) as usize);
        let slot = segment::slot_meta(&self.map, offset);
        if !slot.begin_read(seq) {
            return Ok(None);
        }
        let meta = slot.meta(seq);
        let base = self.map.as_ptr();
        let plane = |p: crate::layout::PlaneLayout| Plane {
            // SAFETY: in bounds: the layout was validated against this mapping's length at
            // attach and the mapping never shrinks (writers never shrink a file in place). The
            // bytes are never written through this read-only mapping, but the writer process may
            // overwrite them while `f` looks at them, which Rust's model calls a data race on
            // `&[u8]`. We accept that, as every cross-process seqlock must (Rust has no atomic
            // memcpy yet): the writer is another process, outside what this compiler can see or
            // reorder; the worst a concurrent write can do is change byte values `f` reads, and
            // `end_read` below detects that and discards `f`'s result. `u8` has no invalid bit
            // patterns, and the slice's length and address do not depend on the shared bytes.
            data: unsafe { std::slice::from_raw_parts(base.add(offset + p.offset), p.len()) },
            stride: p.stride,
            rows: p.rows,
            width_bytes: p.width_bytes,
        };
        let view = FrameView {
            meta,
            geometry: self.layout.geometry,
            planes: self.layout.planes.map(plane),
        };
        let out = f(&view);
        let intact = slot.end_read(seq) && header.generation() == self.generation;
        if !intact {
            return Ok(None);
        }
        self.last_seen = self.last_seen.max(seq);
        Ok(Some((meta, out)))
    }
}
