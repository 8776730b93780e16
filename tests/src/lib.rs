//! Helpers for the integration tests: find the built binaries, make temp dirs, run and stop the
//! supervisor and talk to its API (`nvr`), and start fake cameras (`fakecam`).

pub mod fakecam;
pub mod nvr;
