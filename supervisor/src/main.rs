//! The NVR supervisor.
//!
//! `supervisor [--config PATH] [--listen ADDR:PORT] [--worker-bin PATH]` loads the config, starts one
//! `worker` process per enabled camera (see [`manager`]), and serves the HTTP API (see [`api`]).
//! `supervisor check-config [PATH]` validates a config; `supervisor reindex` rebuilds the recordings
//! index from the files; `supervisor hash-password` reads a password (without echo on a terminal)
//! and prints the hash for `api.auth`; `supervisor probe [CAMERA_ID...]` tests the cameras' streams
//! (each in a short-lived `worker --probe`, see [`supervisor::probe`]). `--help` lists every flag, its `NVR_*` variable and the exit
//! codes ([`nvr_cli::exit`]); the old `--check-config`, `--reindex` and `--hash-password` flags still
//! work.
//!
//! Signals: SIGTERM and SIGINT stop every worker (gracefully, then by force) and exit 0; SIGHUP reloads
//! the config. Under systemd (`Type=notify`) it sends `READY=1` once the API is bound, and the
//! manager's loop sends the watchdog pings (see [`supervisor::systemd`]).
//!
//! The modules live in the library (`src/lib.rs`), so the fuzz targets can drive the HTTP API in-process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use nvr_cli::exit;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use supervisor::api::{self, auth, server};
use supervisor::archive::{self, index};
use supervisor::manager::{self, Command, Manager, Msg};
use supervisor::notify::Notifier;
use supervisor::{notify, preview, state, status, systemd};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

/// The NVR supervisor: one worker process per camera, kept alive, and the HTTP API.
#[derive(Debug, Parser)]
#[command(name = "supervisor", version = nvr_cli::VERSION, after_help = exit::HELP)]
struct Cli {
    /// The config file (JSON; every field is in docs/config.md).
    #[arg(
        long,
        short = 'c',
        env = "NVR_CONFIG",
        default_value = "config/cameras.json",
        value_name = "PATH",
        global = true
    )]
    config: PathBuf,
    /// Serve the API here instead of the config's `api.listen` (IP:port).
    #[arg(long, env = "NVR_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The worker executable. Default: `worker` beside this executable.
    #[arg(long, env = "NVR_WORKER_BIN", value_name = "PATH")]
    worker_bin: Option<PathBuf>,
    #[command(flatten)]
    log: nvr_cli::LogArgs,
    /// Old spelling of `check-config [PATH]`.
    #[arg(long = "check-config", hide = true, num_args = 0..=1, value_name = "PATH")]
    old_check_config: Option<Option<PathBuf>>,
    /// Old spelling of `reindex`.
    #[arg(long = "reindex", hide = true)]
    old_reindex: bool,
    /// Old spelling of `hash-password`.
    #[arg(long = "hash-password", hide = true)]
    old_hash_password: bool,
    /// Same as `probe [CAMERA_ID...]`.
    #[arg(long = "probe", num_args = 0.., value_name = "CAMERA_ID")]
    probe_flag: Option<Vec<String>>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the NVR (the default).
    Run,
    /// Validate the config, print a summary and exit: 0 valid, 2 not.
    CheckConfig {
        /// The config file (default: --config).
        path: Option<PathBuf>,
    },
    /// Rebuild the recordings index from the files in the output directory, then exit.
    Reindex,
    /// Read a password (without echo on a terminal, else one line of stdin) and print its Argon2id
    /// hash for `api.auth.password_hash`.
    HashPassword,
    /// Test the cameras' streams (all, or those named) with their configured credentials and
    /// transport: per stream reachable or not, codec, profile, size, fps, GOP, audio, whether MAIN
    /// can be recorded, or why not. Exit 0 only if every probed stream is usable, 5 if not.
    Probe {
        /// The cameras to test (default: every camera, enabled or not).
        #[arg(value_name = "CAMERA_ID")]
        cameras: Vec<String>,
    },
}

/// Why the supervisor stopped with an error: each has its own exit code.
#[derive(Debug)]
enum Failure {
    Config(anyhow::Error),
    Bind(anyhow::Error),
    Storage(anyhow::Error),
    Internal(anyhow::Error),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Config(_) => exit::BAD_CONFIG,
            Failure::Bind(_) => exit::CANNOT_BIND,
            Failure::Storage(_) => exit::CANNOT_OPEN_STORAGE,
            Failure::Internal(_) => exit::INTERNAL,
        }
    }
    fn error(&self) -> &anyhow::Error {
        match self {
            Failure::Config(e) | Failure::Bind(e) | Failure::Storage(e) | Failure::Internal(e) => e,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Internal(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Internal(e.into())
    }
}

fn main() -> ExitCode {
    // `--help` and `--version` exit 0; a bad command line exits 2 (exit::BAD_CONFIG).
    let mut cli = Cli::parse();
    let command = match (cli.command.take(), cli.old_check_config.take()) {
        (Some(c), _) => c,
        (None, Some(path)) => Cmd::CheckConfig { path },
        (None, None) if cli.old_reindex => Cmd::Reindex,
        (None, None) if cli.old_hash_password => Cmd::HashPassword,
        (None, None) if cli.probe_flag.is_some() => Cmd::Probe {
            cameras: cli.probe_flag.take().unwrap_or_default(),
        },
        (None, None) => Cmd::Run,
    };
    if let Cmd::HashPassword = command {
        return hash_password();
    }
    let config_path = match &command {
        Cmd::CheckConfig { path: Some(p) } => p.clone(),
        _ => cli.config.clone(),
    };
    let config = match nvr_config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "supervisor: {} problem(s) in the config; nothing was started",
                e.problems.len()
            );
            return ExitCode::from(exit::BAD_CONFIG);
        }
    };
    match command {
        Cmd::CheckConfig { .. } => {
            print_summary(&config_path, &config);
            ExitCode::SUCCESS
        }
        Cmd::Reindex => reindex(&config),
        Cmd::Probe { cameras } => probe(&config, &cameras, cli.worker_bin.as_deref()),
        Cmd::HashPassword => unreachable!("handled above"),
        Cmd::Run => {
            if let Err(e) = nvr_cli::init(&cli.log, &[]) {
                eprintln!("supervisor: {e}");
                return ExitCode::from(exit::BAD_CONFIG);
            }
            match run(cli, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => {
                    error!(
                        exit_code = f.code(),
                        error = format!("{:#}", f.error()),
                        "supervisor failed"
                    );
                    if std::io::stderr().is_terminal() {
                        eprintln!("supervisor: {:#}", f.error());
                    }
                    ExitCode::from(f.code())
                }
            }
        }
    }
}

/// `hash-password`: without echo when stdin is a terminal, else the first line of stdin.
fn hash_password() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("Password (not shown): ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("supervisor: cannot read the password from the terminal: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            eprintln!("supervisor: cannot read the password from stdin: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        eprintln!("supervisor: the password is empty");
        return ExitCode::from(exit::BAD_CONFIG);
    }
    match auth::hash_password(&password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("supervisor: {e:#}");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

/// `probe`: every named camera (default all) in its own probe worker, at once; one line per
/// stream. 0 when all are usable, 5 when one is not, 2 for an unknown camera id.
fn probe(
    config: &nvr_config::Config,
    ids: &[String],
    worker_bin: Option<&std::path::Path>,
) -> ExitCode {
    let unknown: Vec<&String> = ids
        .iter()
        .filter(|id| config.camera(id).is_none())
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        eprintln!(
            "supervisor: no camera with id {}; known ids: {}",
            unknown
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        );
        return ExitCode::from(exit::BAD_CONFIG);
    }
    let bin = match worker_bin {
        Some(p) => p.to_path_buf(),
        None => match std::env::current_exe() {
            Ok(p) => p.with_file_name("worker"),
            Err(e) => {
                eprintln!("supervisor: cannot find the supervisor's own executable: {e}");
                return ExitCode::from(exit::INTERNAL);
            }
        },
    };
    let cameras: Vec<&nvr_config::CameraConfig> = config
        .cameras
        .iter()
        .filter(|c| ids.is_empty() || ids.iter().any(|id| id == c.id.as_str()))
        .collect();
    let results: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = cameras
            .iter()
            .map(|c| {
                let bin = &bin;
                let settings = nvr_proto::CameraSettings::from(*c);
                scope.spawn(move || supervisor::probe::probe(bin, settings))
            })
            .collect();
        running
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or(Err(supervisor::probe::ProbeError::Protocol))
            })
            .collect()
    });
    let mut all_usable = true;
    for (camera, result) in cameras.iter().zip(results) {
        match result {
            Ok(report) => {
                all_usable &= report.usable();
                for s in &report.streams {
                    println!("{}", supervisor::probe::describe(camera.id.as_str(), s));
                }
            }
            Err(e) => {
                all_usable = false;
                println!("{}: probe failed: {e}", camera.id);
            }
        }
    }
    if all_usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBE_FAILED)
    }
}

/// `reindex`: 0 when rebuilt, 4 when the output directory or the index cannot be opened.
fn reindex(config: &nvr_config::Config) -> ExitCode {
    match std::fs::create_dir_all(&config.output_dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(index::Index::rebuild(&config.output_dir)?))
    {
        Ok((_, summary)) => {
            println!(
                "{}: index rebuilt: {} recording(s), {} motion event(s)",
                config.output_dir.display(),
                summary.recordings_added,
                summary.events_added
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("supervisor: {}: {e:#}", config.output_dir.display());
            ExitCode::from(exit::CANNOT_OPEN_STORAGE)
        }
    }
}

fn print_summary(path: &std::path::Path, config: &nvr_config::Config) {
    let enabled = config.cameras.iter().filter(|c| c.enabled).count();
    println!(
        "{}: OK: {} camera(s), {} enabled; API on {}; recordings in {}",
        path.display(),
        config.cameras.len(),
        enabled,
        config.api.listen,
        config.output_dir.display()
    );
    for c in &config.cameras {
        println!(
            "  {} ({}){}: main {}{}",
            c.id,
            c.name,
            if c.enabled { "" } else { " [disabled]" },
            nvr_config::redact_url(&c.main_url),
            c.sub_url
                .as_deref()
                .map(|s| format!(", sub {}", nvr_config::redact_url(s)))
                .unwrap_or_default()
        );
    }
    for note in &config.notes {
        println!("  note: {}: {}", note.path, note.message);
    }
}

fn run(args: Cli, config: nvr_config::Config) -> Result<(), Failure> {
    info!(version = nvr_cli::VERSION, config = %args.config.display(), "supervisor starting");
    let listen = args.listen.unwrap_or(config.api.listen);
    if !listen.ip().is_loopback() && config.api.auth.is_none() {
        return Err(Failure::Config(anyhow::anyhow!(
            "refusing to serve the API on {listen} without a login: set api.auth in the config (user name and a hash from `supervisor --hash-password`), or listen on 127.0.0.1:PORT"
        )));
    }
    for note in &config.notes {
        tracing::warn!(path = %note.path, note = %note.message, "config note");
    }
    let auth = auth::Auth::from_api(&config.api, listen.ip().is_loopback());
    let limits = server::Limits::from_config(&config.api);
    // Connections, workers, the index and the archive all need descriptors: take all we may have.
    match server::raise_fd_limit() {
        Ok((soft, hard)) => info!(soft, hard, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let worker_bin = match args.worker_bin {
        Some(p) => p,
        None => std::env::current_exe()
            .context("cannot find the supervisor's own executable")?
            .with_file_name("worker"),
    };
    if !worker_bin.is_file() {
        return Err(Failure::Config(anyhow::anyhow!(
            "worker executable not found at {}; build it (cargo build --release) or pass --worker-bin PATH",
            worker_bin.display()
        )));
    }
    std::fs::create_dir_all(&config.output_dir)
        .with_context(|| {
            format!(
                "cannot create the output directory {}",
                config.output_dir.display()
            )
        })
        .map_err(Failure::Storage)?;
    // Bind before starting any worker, so a taken port costs nothing.
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))
        .map_err(Failure::Bind)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    let output_dir = config.output_dir.clone();
    let (index, reconciled) = index::Index::open(&output_dir)
        .with_context(|| {
            format!(
                "cannot open the recordings index in {}",
                output_dir.display()
            )
        })
        .map_err(Failure::Storage)?;
    info!(
        recordings_added = reconciled.recordings_added,
        recordings_removed = reconciled.recordings_removed,
        events_added = reconciled.events_added,
        events_removed = reconciled.events_removed,
        "recordings index reconciled with the files"
    );
    let preview: Arc<preview::PreviewHub> = Arc::default();
    // Notifications (MQTT) when configured: the channel now, the publisher once the manager's
    // inbox exists (`recordings/set` reaches the manager through it).
    let mqtt = config.mqtt.clone();
    let mut notifier = Notifier::default();
    let notes = mqtt.as_ref().map(|_| notifier.subscribe());
    // Webhooks (decision 92): their own consumer of the same notes.
    let webhooks = config.webhooks.clone();
    let hook_notes = (!webhooks.is_empty()).then(|| notifier.subscribe());
    let archive = archive::spawn(index, Arc::clone(&preview), notifier.clone())
        .context("cannot start the archive thread")?;

    let store = match state::StateStore::open(&output_dir) {
        Ok((store, _)) => Some(store),
        Err(e) => {
            error!(error = %e, "cannot open the state file; mode overrides cannot be set");
            None
        }
    };
    let status = Arc::new(RwLock::new(status::Snapshot::default()));
    // The metrics history samples the published snapshot on its own thread, never the manager.
    if let Err(e) = supervisor::metrics::sampler::spawn(
        output_dir.clone(),
        Arc::clone(&status),
        config.metrics.clone(),
    ) {
        error!(error = %e, "cannot start the metrics sampler; no metrics history is kept");
    }
    let config_path = args.config.display().to_string();
    let (mut manager, inbox) = Manager::new(
        config,
        config_path,
        local.to_string(),
        worker_bin.clone(),
        Arc::clone(&status),
        archive,
        store,
    );
    if notifier.enabled() {
        manager.set_notifier(notifier);
    }
    let publisher = match (&mqtt, notes) {
        (Some(m), Some(notes)) => Some(
            notify::start(m, notes, Arc::clone(&status), inbox.clone()).map_err(Failure::Config)?,
        ),
        _ => None,
    };
    let hook_sender = match hook_notes {
        Some(notes) => Some(
            notify::webhook::start(&webhooks, &output_dir, notes, Arc::clone(&status))
                .map_err(Failure::Config)?,
        ),
        None => None,
    };
    let pulse = manager.pulse();
    let manager_thread = std::thread::Builder::new()
        .name("manager".into())
        .spawn(move || manager.run())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let auth_for_reload = auth.clone();
    let state = api::AppState {
        status,
        inbox: inbox.clone(),
        config_path: args.config.clone(),
        preview,
        output_dir,
        auth,
        sockets: Arc::new(api::ws::Sockets::new(limits.idle)),
        worker_bin,
        pulse,
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(addr = %local, "API listening");
        systemd::ready();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(signals(inbox, args.config, auth_for_reload, stop_tx));
        server::serve(listener, api::app(state), limits, async {
            let _ = stop_rx.await;
        })
        .await;
        anyhow::Ok(())
    })?;
    let _ = manager_thread.join();
    if let Some(p) = publisher {
        p.stop(std::time::Duration::from_secs(3));
    }
    if let Some(w) = hook_sender {
        w.stop(std::time::Duration::from_secs(1));
    }
    info!("supervisor stopped");
    Ok(())
}

/// SIGTERM/SIGINT: stop all workers, then the HTTP server. SIGHUP: reload the config.
async fn signals(
    inbox: manager::Inbox,
    config_path: PathBuf,
    auth: auth::Auth,
    stop_http: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                info!("SIGHUP: reloading the config");
                let _ = api::reload_config(&config_path, &inbox, &auth).await;
            }
        }
    }
    info!("stop signal received");
    systemd::stopping();
    let (reply, done) = tokio::sync::oneshot::channel();
    if inbox
        .send(Msg::Command(Command::Shutdown { reply }))
        .is_ok()
    {
        let _ = done.await;
    }
    let _ = stop_http.send(());
    Ok(())
}
