//! Errors of the bus (frame and packet rings); each names the camera, the kind of ring and, where
//! there is one, the segment path.

use std::path::PathBuf;

/// What went wrong creating, attaching to or using a frame or packet ring. `ring` says which kind
/// ("frame ring", "sub packet ring", "main packet ring").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A camera id that can't name a segment (`[A-Za-z0-9_-]{1,64}`).
    #[error("invalid camera id {camera_id:?}: {reason}")]
    InvalidCameraId {
        camera_id: String,
        reason: &'static str,
    },
    /// A geometry, slot count or capacity the ring can't hold.
    #[error("camera {camera_id}: cannot lay out a frame ring: {reason}")]
    InvalidLayout { camera_id: String, reason: String },
    /// No segment by that name: the camera's worker is not running (yet).
    #[error("camera {camera_id}: no {ring} at {}; is its worker running?", .path.display())]
    NotFound {
        camera_id: String,
        ring: &'static str,
        path: PathBuf,
    },
    /// The shared-memory file system is full.
    #[error(
        "camera {camera_id}: no space for a {needed}-byte {ring} at {} (ENOSPC); \
         free space in its directory or make the ring smaller",
        .path.display()
    )]
    NoSpace {
        camera_id: String,
        ring: &'static str,
        path: PathBuf,
        needed: u64,
    },
    /// The file exists but is not a usable ring (foreign, truncated, corrupted, or the writer died
    /// while configuring it).
    #[error("camera {camera_id}: {} is not a usable {ring}: {reason}", .path.display())]
    BadHeader {
        camera_id: String,
        ring: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A ring written by a build with another layout version.
    #[error(
        "camera {camera_id}: {} has {ring} layout version {found}, this build reads version {expected}",
        .path.display()
    )]
    VersionMismatch {
        camera_id: String,
        ring: &'static str,
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// Another live process already writes this camera's ring.
    #[error("camera {camera_id}: another process (pid {pid}) is writing {}", .path.display())]
    WriterActive {
        camera_id: String,
        path: PathBuf,
        /// The pid the segment names as its writer; 0 if unknown.
        pid: u32,
    },
    /// A packet larger than a quarter of its packet ring: dropped (and counted in the ring's
    /// header, see `PacketRingStats::oversize_drops`).
    #[error(
        "camera {camera_id}: a {len}-byte packet is over a quarter of the {capacity}-byte {ring}; \
         dropped. Raise the ring size (live.main_ring_mb / live.sub_ring_mb)"
    )]
    PacketTooLarge {
        camera_id: String,
        ring: &'static str,
        len: usize,
        capacity: u64,
    },
    /// Codec parameters that do not fit the packet ring's header (or are not valid).
    #[error("camera {camera_id}: cannot store codec parameters in the {ring}: {reason}")]
    InvalidParams {
        camera_id: String,
        ring: &'static str,
        reason: String,
    },
    /// An operating-system call failed.
    #[error("camera {camera_id}: cannot {op} {}: {source}", .path.display())]
    Io {
        camera_id: String,
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}
