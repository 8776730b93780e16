//! Everything that talks to the operating system: segment files, mappings, futexes and clocks.
//! The ring itself ([`crate::ring`], [`crate::layout`]) knows nothing of it.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("shm-bus supports Linux only (futexes, /dev/shm); add a platform module to port it");
