//! The single writer of a camera's ring: creates (or takes over) the segment, fills slots in place
//! and publishes them, reconfigures on a resolution change, and removes the segment on drop.

use crate::error::BusError;
use crate::frame::{FrameMeta, FrameView, Geometry, Plane, PlaneMut};
use crate::layout::{Header, SegmentLayout};
use crate::platform::{self, Mapping, SegmentFile};
use crate::segment::{self, Ctx};
use rustix::io::Errno;
use std::mem::size_of;
use std::path::{Path, PathBuf};

/// A file this many times larger than a new layout needs is replaced by a right-sized one
/// (shrinking in place could SIGBUS readers still mapping the tail).
const OVERSIZE_FACTOR: usize = 2;

/// The one writer of a camera's frame ring.
///
/// Holds an exclusive `flock` on the segment for its whole life, so a second writer for the same
/// camera fails with [`BusError::WriterActive`] while a crashed writer's segment is taken over in
/// place (the kernel drops the lock of a dead process).
#[derive(Debug)]
pub struct Writer {
    camera_id: String,
    /// Directory the segment lives in (kept to place a replacement file next to it).
    dir: PathBuf,
    path: PathBuf,
    /// The locked segment file.
    file: SegmentFile,
    /// Read-write mapping of at least `layout.total_len` bytes.
    map: Mapping,
    layout: SegmentLayout,
    /// The (even) generation readers see while this configuration lasts.
    generation: u64,
    /// Seq of the next frame; continues across reconfigurations.
    next_seq: u64,
    /// The last frame published in the current configuration.
    last_seq: Option<u64>,
}

impl Writer {
    /// Creates camera `camera_id`'s ring in [`shm_dir()`](crate::shm_dir) with `n_slots` slots of
    /// `geometry`, or takes over an existing one in place (bumping its generation, so readers
    /// still holding it notice). Every page is reserved now: a full /dev/shm is
    /// [`BusError::NoSpace`] here, never a SIGBUS later.
    pub fn create(camera_id: &str, geometry: Geometry, n_slots: usize) -> Result<Writer, BusError> {
        Self::create_in(&crate::shm_dir(), camera_id, geometry, n_slots)
    }

    /// [`create`](Self::create) in directory `dir`.
    pub fn create_in(
        dir: &Path,
        camera_id: &str,
        geometry: Geometry,
        n_slots: usize,
    ) -> Result<Writer, BusError> {
        let path = segment::segment_path_in(dir, camera_id)?;
        let ctx = Ctx {
            camera_id,
            ring: crate::segment::FRAME_RING,
            path: &path,
        };
        let layout =
            SegmentLayout::new(geometry, n_slots, platform::page_size()).map_err(|reason| {
                BusError::InvalidLayout {
                    camera_id: camera_id.to_owned(),
                    reason,
                }
            })?;
        let file = match SegmentFile::open_locked(&path, true) {
            Ok(f) => f,
            Err(Errno::WOULDBLOCK) => return Err(ctx.writer_active(segment::writer_pid_of(&path))),
            Err(e) => return Err(ctx.io("create", e)),
        };
        let (file, map) = match take_over(ctx, dir, &file, &layout) {
            Ok((Some(replacement), map)) => (replacement, map),
            Ok((None, map)) => (file, map),
            Err(e) => {
                // No writer stands behind this segment now: don't leave a name readers would
                // attach to and wait on forever. (Still holding the lock, so it is ours.)
                let _ = platform::unlink(&path);
                return Err(e);
            }
        };
        let generation = configure(&map, &layout);
        Ok(Writer {
            camera_id: camera_id.to_owned(),
            dir: dir.to_owned(),
            path,
            file,
            map,
            layout,
            generation,
            next_seq: 1,
            last_seq: None,
        })
    }

    /// The camera this ring belongs to.
    pub fn camera_id(&self) -> &str {
        &self.camera_id
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size and format of the frames.
    pub fn geometry(&self) -> Geometry {
        self.layout.geometry
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.layout.n_slots
    }

    /// The seq the next [`publish`](Self::publish) will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The generation readers see; changes on every (re)configuration and restart.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changes the frame geometry (a camera's resolution changed). Bumps the generation: readers'
    /// `wait_next` reports [`Wait::GenerationChanged`](crate::Wait::GenerationChanged) and they
    /// [`reattach`](crate::Reader::reattach). The segment is resized in place when it grows
    /// (readers' shorter mappings stay valid) and replaced by a new file when it would shrink a
    /// lot. On error the ring keeps its old geometry and stays usable.
    pub fn reconfigure(&mut self, geometry: Geometry) -> Result<(), BusError> {
        let ctx = Ctx {
            camera_id: &self.camera_id,
            ring: crate::segment::FRAME_RING,
            path: &self.path,
        };
        let layout = SegmentLayout::new(geometry, self.layout.n_slots, self.layout.page_size)
            .map_err(|reason| BusError::InvalidLayout {
                camera_id: self.camera_id.clone(),
                reason,
            })?;
        if layout == self.layout {
            return Ok(());
        }
        let len = self.file.len().map_err(|e| ctx.io("stat", e))? as usize;
        if len > OVERSIZE_FACTOR * layout.total_len {
            let (file, map) = replace(ctx, &self.dir, &layout, self.generation)?;
            segment::close(&self.map);
            self.file = file;
            self.map = map;
        } else if layout.total_len > self.map.len() {
            self.map = allocate_and_map(ctx, &self.file, &layout)?;
        }
        self.generation = configure(&self.map, &layout);
        self.layout = layout;
        self.last_seq = None;
        Ok(())
    }

    /// Fills the next slot in place via `fill` (one copy: decoder → slot) and publishes it;
    /// returns its seq. Never waits for readers: a reader reading the slot being overwritten
    /// notices and drops its copy. Rows past `width_bytes` and bytes `fill` leaves alone keep
    /// whatever the slot held before. Wakes sleeping readers (a syscall only if any sleep).
    pub fn publish(
        &mut self,
        pts: i64,
        arrival_ns: u64,
        decoded_ns: u64,
        fill: impl FnOnce(&mut [PlaneMut<'_>; 3]),
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let offset = self
            .layout
            .slot_offset((seq % self.layout.n_slots as u64) as usize);
        let meta = segment::slot_meta(&self.map, offset);
        meta.begin_write(seq);
        {
            let [y, u, v] = self.layout.planes;
            let plane = |p: crate::layout::PlaneLayout| {
                // SAFETY: the validated layout keeps the slot (meta + three planes) inside
                // `total_len <= map.len()`; the planes are disjoint ranges after the 64-byte slot
                // metadata, so these three `&mut` never alias each other or `meta`. `&mut self`
                // guarantees no other reference into the mapping's pixel bytes exists in this
                // process; other processes map them read-only and only read (the seqlock tells
                // them when what they read is stale).
                let data = unsafe {
                    std::slice::from_raw_parts_mut(
                        self.map.as_ptr().add(offset + p.offset),
                        p.len(),
                    )
                };
                PlaneMut {
                    data,
                    stride: p.stride,
                    rows: p.rows,
                    width_bytes: p.width_bytes,
                }
            };
            let mut planes = [plane(y), plane(u), plane(v)];
            fill(&mut planes);
        }
        meta.end_write(&FrameMeta {
            seq,
            pts,
            arrival_ns,
            decoded_ns,
        });
        let header = segment::header(&self.map);
        header.set_newest(seq);
        self.last_seq = Some(seq);
        let control = segment::control(&self.map, self.layout.control_offset);
        if control.announce() {
            platform::futex_wake_all(&control.wake_seq);
        }
        seq
    }

    /// Read access to the slot just published (for motion detection in the writer's own process,
    /// no copy). `None` before the first publish after creation or reconfiguration.
    pub fn last_frame(&self) -> Option<FrameView<'_>> {
        let seq = self.last_seq?;
        let offset = self
            .layout
            .slot_offset((seq % self.layout.n_slots as u64) as usize);
        let meta = segment::slot_meta(&self.map, offset).meta(seq);
        let plane = |p: crate::layout::PlaneLayout| Plane {
            // SAFETY: inside the mapping (validated layout, see `publish`). Only this writer
            // writes pixel bytes, and it can't while `&self` is borrowed, so the bytes don't
            // change for the view's lifetime.
            data: unsafe {
                std::slice::from_raw_parts(self.map.as_ptr().add(offset + p.offset), p.len())
            },
            stride: p.stride,
            rows: p.rows,
            width_bytes: p.width_bytes,
        };
        Some(FrameView {
            meta,
            geometry: self.layout.geometry,
            planes: self.layout.planes.map(plane),
        })
    }
}

impl Drop for Writer {
    /// Removes the segment's name (new readers get `NotFound`) and marks it closed, waking readers
    /// so they re-attach.
    fn drop(&mut self) {
        if self.file.is_at(&self.path) == Ok(true) {
            let _ = platform::unlink(&self.path);
        }
        segment::close(&self.map);
    }
}

/// Prepares the locked segment `file` at `ctx.path` for `layout`: reuses a ring of ours in place
/// (growing it if needed), replaces one that would be far too big, and wipes anything else.
/// Returns the replacement file, if it made one, and the mapping to configure.
fn take_over(
    ctx: Ctx<'_>,
    dir: &Path,
    file: &SegmentFile,
    layout: &SegmentLayout,
) -> Result<(Option<SegmentFile>, Mapping), BusError> {
    let len = file.len().map_err(|e| ctx.io("stat", e))?;
    let old = if len >= size_of::<Header>() as u64 {
        Some(
            file.map(0, len as usize, true)
                .map_err(|e| ctx.io("map", e))?,
        )
    } else {
        None
    };
    match old {
        Some(old) if segment::is_ours(&old) => {
            let result = if len as usize > OVERSIZE_FACTOR * layout.total_len {
                let generation = segment::header(&old).generation();
                replace(ctx, dir, layout, generation).map(|(f, map)| (Some(f), map))
            } else {
                allocate_and_map(ctx, file, layout).map(|map| (None, map))
            };
            // Readers still attached to the old writer's ring: re-attach (to the new ring, or
            // to nothing if this failed).
            segment::close(&old);
            result
        }
        // Empty, too short to be a header, or foreign: nobody can be attached, start afresh.
        _ => {
            drop(old);
            file.truncate_to_zero().map_err(|e| ctx.io("truncate", e))?;
            let map = allocate_and_map(ctx, file, layout)?;
            Ok((None, map))
        }
    }
}

/// Reserves `layout.total_len` bytes in `file` (growing only) and maps that much read-write.
fn allocate_and_map(
    ctx: Ctx<'_>,
    file: &SegmentFile,
    layout: &SegmentLayout,
) -> Result<Mapping, BusError> {
    file.allocate(layout.total_len as u64)
        .map_err(|e| match e {
            Errno::NOSPC | Errno::FBIG => ctx.no_space(layout.total_len as u64),
            e => ctx.io("allocate", e),
        })?;
    file.map(0, layout.total_len, true)
        .map_err(|e| ctx.io("map", e))
}

/// Builds a right-sized segment under a temporary name next to `ctx.path`, configured with a
/// generation after `generation`, and renames it over `ctx.path`. The caller closes the old one.
fn replace(
    ctx: Ctx<'_>,
    dir: &Path,
    layout: &SegmentLayout,
    generation: u64,
) -> Result<(SegmentFile, Mapping), BusError> {
    // '.' can't occur in a camera id, so this never names another camera's segment.
    let tmp = dir.join(format!(
        "{}.new",
        ctx.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("nvr-segment")
    ));
    let tmp_ctx = Ctx {
        camera_id: ctx.camera_id,
        ring: crate::segment::FRAME_RING,
        path: &tmp,
    };
    // A leftover from a writer that died mid-replace: only a writer holding the real segment's
    // lock (us) gets here, so it is garbage.
    let _ = platform::unlink(&tmp);
    let file = SegmentFile::create_new_locked(&tmp).map_err(|e| tmp_ctx.io("create", e))?;
    let map = match allocate_and_map(tmp_ctx, &file, layout) {
        Ok(m) => m,
        Err(e) => {
            let _ = platform::unlink(&tmp);
            return Err(e);
        }
    };
    // Continue the old generation so anyone comparing numbers sees it move forward.
    segment::header(&map)
        .generation
        .store(generation | 1, crate::sync::Ordering::Relaxed);
    if let Err(e) = platform::rename(&tmp, ctx.path) {
        let _ = platform::unlink(&tmp);
        return Err(ctx.io("rename into place", e));
    }
    Ok((file, map))
}

/// Lays `layout` out in the mapped segment under the header seqlock, forgets every published
/// frame, and wakes all readers so they notice the new generation. Returns the generation.
fn configure(map: &Mapping, layout: &SegmentLayout) -> u64 {
    let header = segment::header(map);
    let odd = header.begin_configure();
    for slot_idx in 0..layout.n_slots {
        segment::slot_meta(map, layout.slot_offset(slot_idx)).clear();
    }
    header.store_layout(layout, platform::pid());
    let generation = header.end_configure(odd);
    let control = segment::control(map, layout.control_offset);
    control.announce();
    platform::futex_wake_all(&control.wake_seq);
    generation
}
