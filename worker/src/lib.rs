//! The parts of the worker that are pure code, as a library so benchmarks can drive them too.
//! The worker process itself is `src/main.rs`.

pub mod annexb;
pub mod clock;
#[doc(hidden)]
pub mod fuzzing;
pub mod motion;
pub mod onvif;
pub mod preroll;
pub mod reconnect;
pub mod timeline;
pub mod trigger;
