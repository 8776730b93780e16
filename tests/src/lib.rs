//! Helpers for the integration tests: find the built binaries, make temp dirs, run and stop the
//! supervisor and talk to its API (`nvr`), read its `/status` (`status`), start fake cameras
//! (`fakecam`), run the web UI's Chromium checks (`chromium`), ONVIF PTZ devices (`onvif`), run an MQTT broker and subscriber (`mqtt`), and judge recorded files (`clipcheck`).

pub mod chromium;
pub mod clipcheck;
pub mod fakecam;
pub mod live;
pub mod motion_conf;
pub mod mqtt;
pub mod nvr;
pub mod onvif;
pub mod procstat;
pub mod prometheus;
pub mod status;
