//! Errors of the frame bus; each names the camera and, where there is one, the segment path.

use std::path::PathBuf;

/// What went wrong creating, attaching to or using a frame ring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A camera id that can't name a segment (`[A-Za-z0-9_-]{1,64}`).
    #[error("invalid camera id {camera_id:?}: {reason}")]
    InvalidCameraId {
        camera_id: String,
        reason: &'static str,
    },
    /// A geometry or slot count the ring can't hold.
    #[error("camera {camera_id}: cannot lay out a frame ring: {reason}")]
    InvalidLayout { camera_id: String, reason: String },
    /// No segment by that name: the camera's worker is not running (yet).
    #[error("camera {camera_id}: no frame ring at {}; is its worker running?", .path.display())]
    NotFound { camera_id: String, path: PathBuf },
    /// The shared-memory file system is full.
    #[error(
        "camera {camera_id}: no space for a {needed}-byte frame ring at {} (ENOSPC); \
         free space in its directory or use fewer slots or a smaller resolution",
        .path.display()
    )]
    NoSpace {
        camera_id: String,
        path: PathBuf,
        needed: u64,
    },
    /// The file exists but is not a usable ring (foreign, truncated, corrupted, or the writer died
    /// while configuring it).
    #[error("camera {camera_id}: {} is not a usable frame ring: {reason}", .path.display())]
    BadHeader {
        camera_id: String,
        path: PathBuf,
        reason: String,
    },
    /// A ring written by a build with another layout version.
    #[error(
        "camera {camera_id}: {} has frame ring layout version {found}, this build reads version {expected}",
        .path.display()
    )]
    VersionMismatch {
        camera_id: String,
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
    /// An operating-system call failed.
    #[error("camera {camera_id}: cannot {op} {}: {source}", .path.display())]
    Io {
        camera_id: String,
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}
