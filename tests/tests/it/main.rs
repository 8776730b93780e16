//! The one integration-test binary; each module covers one area.

mod archive;
mod bench;
mod deploy;
mod detection;
mod fakecam;
mod history;
mod live;
mod media;
mod metrics;
mod notify;
mod onvif_client;
mod ops;
mod packets;
mod ptz;
mod recording;
mod reliability;
mod schedule;
mod security;
mod setup;
mod supervisor;
mod ui;
mod webhooks;
