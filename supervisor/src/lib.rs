//! The NVR supervisor's parts, used by its binary (`src/main.rs`) and, in-process, by the fuzz
//! targets (`fuzz/`) and their replay tests through the hidden `fuzzing` module.
//!
//! See `ARCHITECTURE.md` for what each module does.

pub mod api;
pub mod archive;
pub mod auth;
mod backoff;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod index;
pub mod manager;
mod police;
pub mod preview;
mod process;
mod retention;
pub mod server;
pub mod status;
mod throttle;
mod ui;
