//! The NVR supervisor's parts, used by its binary (`src/main.rs`) and, in-process, by the fuzz
//! targets (`fuzz/`) and their replay tests through the hidden `fuzzing` module.
//!
//! See `ARCHITECTURE.md` for what each module does.

pub mod api;
pub mod archive;
pub mod config_writer;
#[doc(hidden)]
pub mod fuzzing;
pub mod liveness;
pub mod manager;
pub mod metrics;
pub mod mode;
pub mod notify;
pub mod preview;
pub mod probe;
pub mod state;
pub mod status;
pub mod systemd;
