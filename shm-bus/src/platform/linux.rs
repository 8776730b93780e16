//! Linux: segment files in a tmpfs directory (flock-guarded for the single writer), `mmap`
//! mappings, shared (not process-private) futexes, and CLOCK_MONOTONIC.

use rustix::fs::{self, FallocateFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Permissions of a new segment: frames are camera pictures, so only the NVR's own user.
const SEGMENT_MODE: u32 = 0o600;

/// An open segment file. The writer's copy holds an exclusive `flock` for as long as it lives, so
/// a second writer (or `remove_stale`) can tell the segment is in use; the kernel drops the lock
/// when the process dies, however it dies.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    fd: OwnedFd,
}

/// How a reader could open a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Opened read-write: it can map the control page writable and register as a waiter.
    ReadWrite,
    /// Read-only (no write permission): it polls instead of registering.
    ReadOnly,
}

impl SegmentFile {
    /// Opens `path` for writing (creating it if `create`) and locks it exclusively without
    /// blocking. `Err(Errno::WOULDBLOCK)` means another live writer holds it.
    pub(crate) fn open_locked(path: &Path, create: bool) -> Result<SegmentFile, Errno> {
        loop {
            let mut flags = OFlags::RDWR | OFlags::CLOEXEC;
            if create {
                flags |= OFlags::CREATE;
            }
            let fd = fs::open(path, flags, Mode::from_raw_mode(SEGMENT_MODE))?;
            fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
            let file = SegmentFile { fd };
            // Between open and flock the previous holder may have unlinked or replaced the file;
            // a lock on an inode no longer at `path` is worthless, so start again.
            match file.is_at(path) {
                Ok(true) => return Ok(file),
                Ok(false) | Err(Errno::NOENT) if create => continue,
                Ok(false) => return Err(Errno::NOENT),
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a new file at `path` (which must not exist) and locks it.
    pub(crate) fn create_new_locked(path: &Path) -> Result<SegmentFile, Errno> {
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::CREATE | OFlags::EXCL;
        let fd = fs::open(path, flags, Mode::from_raw_mode(SEGMENT_MODE))?;
        fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
        Ok(SegmentFile { fd })
    }

    /// Opens `path` for a reader: read-write if permitted (only the control page will be mapped
    /// writable), else read-only.
    pub(crate) fn open_reader(path: &Path) -> Result<(SegmentFile, Access), Errno> {
        match fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok((SegmentFile { fd }, Access::ReadWrite)),
            Err(Errno::ACCESS | Errno::PERM | Errno::ROFS) => {
                let fd = fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
                Ok((SegmentFile { fd }, Access::ReadOnly))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `path` still names this file.
    pub(crate) fn is_at(&self, path: &Path) -> Result<bool, Errno> {
        let held = fs::fstat(&self.fd)?;
        let named = fs::stat(path)?;
        Ok((held.st_dev, held.st_ino) == (named.st_dev, named.st_ino))
    }

    /// The file's length in bytes.
    pub(crate) fn len(&self) -> Result<u64, Errno> {
        Ok(fs::fstat(&self.fd)?.st_size as u64)
    }

    /// Makes the file at least `len` bytes long with every page reserved now, so a full tmpfs
    /// fails here with `ENOSPC` instead of with SIGBUS on first touch. Never shrinks the file.
    pub(crate) fn allocate(&self, len: u64) -> Result<(), Errno> {
        match fs::fallocate(&self.fd, FallocateFlags::empty(), 0, len) {
            // A file system without fallocate: at least size it (pages then come on first touch).
            Err(Errno::OPNOTSUPP) if self.len()? < len => fs::ftruncate(&self.fd, len),
            Err(Errno::OPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    /// Cuts the file to zero bytes. Only for a file no reader can have mapped usefully.
    pub(crate) fn truncate_to_zero(&self) -> Result<(), Errno> {
        fs::ftruncate(&self.fd, 0)
    }

    /// Maps `len` bytes from `offset` (a multiple of the page size), shared, read-write or
    /// read-only.
    pub(crate) fn map(&self, offset: u64, len: usize, writable: bool) -> Result<Mapping, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks (null hint, no MAP_FIXED) cannot
        // alias or replace any memory Rust knows about; the returned `Mapping` owns it.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                &self.fd,
                offset,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(Mapping { ptr, len })
    }
}

/// Removes `path`.
pub(crate) fn unlink(path: &Path) -> Result<(), Errno> {
    fs::unlink(path)
}

/// Atomically replaces `to` with `from`.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), Errno> {
    fs::rename(from, to)
}

/// A shared mapping of part of a segment file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` is an owned region of address space with no thread affinity; moving it to
// another thread moves nothing but the pointer and length. Access to the bytes goes through the
// atomics and seqlock protocol of the owner (`Writer`/`Reader`), never through `Mapping` itself.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Start of the mapped bytes (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing else unmaps them; every
        // borrow of the mapped bytes is tied to the owner's lifetime, so none outlives this.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sleeps until `word` is woken, no longer holds `expected`, `timeout` passes, or a signal
/// arrives. Shared futex (no FUTEX_PRIVATE_FLAG): the word lives in a file mapping that other
/// processes map, and the kernel keys it by (inode, offset), so a read-only and a writable
/// mapping of the same page meet on the same futex.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::thread::futex::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "look again"; the caller re-checks.
    let _ = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::empty(),
        expected,
        Some(&ts),
    );
}

/// Wakes every process sleeping on `word`. Never blocks: a stopped or dead sleeper is just
/// marked runnable (or skipped).
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    let _ =
        rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), i32::MAX as u32);
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// CLOCK_MONOTONIC in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
