//! The NVR supervisor.
//!
//! `supervisor [--config PATH] [--listen ADDR:PORT] [--worker-bin PATH]` loads the config, starts one
//! `worker` process per enabled camera (see [`manager`]), and serves the HTTP API (see [`api`]).
//! `supervisor --check-config [PATH]` validates a config and exits 0 (valid) or 2 (invalid).
//! `supervisor --reindex [--config PATH]` rebuilds the recordings index from the files and exits.
//! `supervisor --hash-password` reads a password on stdin and prints the hash for `api.auth`.
//!
//! Signals: SIGTERM and SIGINT stop every worker (gracefully, then by force) and exit 0; SIGHUP reloads
//! the config.
//!
//! The modules live in the library (`src/lib.rs`), so the fuzz targets can drive the HTTP API in-process.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use supervisor::api::{self, auth, server};
use supervisor::archive::{self, index};
use supervisor::manager::{self, Command, Manager, Msg};
use supervisor::{preview, state, status};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

const USAGE: &str = "usage: supervisor [--config PATH] [--listen ADDR:PORT] [--worker-bin PATH]\n       supervisor --check-config [PATH]\n       supervisor --reindex [--config PATH]\n       supervisor --hash-password < password.txt";

/// Exit code for an unusable config or command line.
const EXIT_CONFIG: u8 = 2;

struct Args {
    config: PathBuf,
    listen: Option<SocketAddr>,
    worker_bin: Option<PathBuf>,
    check_config: bool,
    reindex: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1).peekable();
    let mut out = Args {
        config: PathBuf::from("config/cameras.json"),
        listen: None,
        worker_bin: None,
        check_config: false,
        reindex: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => out.config = args.next().context("--config needs a PATH")?.into(),
            "--listen" => {
                let addr = args.next().context("--listen needs ADDR:PORT")?;
                out.listen = Some(addr.parse().with_context(|| {
                    format!(
                        "--listen {addr:?} is not an address; write IP:port, e.g. 127.0.0.1:5001"
                    )
                })?);
            }
            "--worker-bin" => {
                out.worker_bin = Some(args.next().context("--worker-bin needs a PATH")?.into())
            }
            "--check-config" => {
                out.check_config = true;
                if let Some(path) = args.next_if(|a| !a.starts_with('-')) {
                    out.config = path.into();
                }
            }
            "--reindex" => out.reindex = true,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--hash-password") {
        let mut password = String::new();
        if std::io::stdin().read_line(&mut password).is_err() {
            eprintln!("supervisor: cannot read the password from stdin");
            return ExitCode::from(EXIT_CONFIG);
        }
        let password = password.trim_end_matches(['\r', '\n']);
        return match auth::hash_password(password) {
            Ok(h) => {
                println!("{h}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("supervisor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("supervisor: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = match nvr_config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "supervisor: {} problem(s) in the config; nothing was started",
                e.problems.len()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        print_summary(&args.config, &config);
        return ExitCode::SUCCESS;
    }
    if args.reindex {
        return match std::fs::create_dir_all(&config.output_dir)
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
                eprintln!("supervisor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        // A broken stderr (its reader gone) must not panic the thread that logs.
        .log_internal_errors(false)
        .init();
    match run(args, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("supervisor: {e:#}");
            ExitCode::from(EXIT_CONFIG)
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

fn run(args: Args, config: nvr_config::Config) -> anyhow::Result<()> {
    let listen = args.listen.unwrap_or(config.api.listen);
    if !listen.ip().is_loopback() && config.api.auth.is_none() {
        bail!(
            "refusing to serve the API on {listen} without a login: set api.auth in the config (user name and a hash from `supervisor --hash-password`), or listen on 127.0.0.1:PORT"
        );
    }
    for note in &config.notes {
        tracing::warn!(path = %note.path, note = %note.message, "config note");
    }
    let auth = auth::Auth::from_api(&config.api, listen.ip().is_loopback());
    let limits = server::Limits::from_config(&config.api);
    // Connections, workers, the index and the archive all need descriptors: take all we may have.
    match server::raise_fd_limit() {
        Ok((soft, hard)) => info!(?soft, ?hard, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let worker_bin = match args.worker_bin {
        Some(p) => p,
        None => std::env::current_exe()
            .context("cannot find the supervisor's own executable")?
            .with_file_name("worker"),
    };
    if !worker_bin.is_file() {
        bail!(
            "worker executable not found at {}; build it (cargo build --release) or pass --worker-bin PATH",
            worker_bin.display()
        );
    }
    std::fs::create_dir_all(&config.output_dir).with_context(|| {
        format!(
            "cannot create the output directory {}",
            config.output_dir.display()
        )
    })?;
    // Bind before starting any worker, so a taken port costs nothing.
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    let output_dir = config.output_dir.clone();
    let (index, reconciled) =
        index::Index::open(&output_dir).context("cannot open the recordings index")?;
    info!(?reconciled, "recordings index reconciled with the files");
    let preview: Arc<preview::PreviewHub> = Arc::default();
    let archive =
        archive::spawn(index, Arc::clone(&preview)).context("cannot start the archive thread")?;

    let store = match state::StateStore::open(&output_dir) {
        Ok((store, _)) => Some(store),
        Err(e) => {
            error!(error = %e, "cannot open the state file; mode overrides cannot be set");
            None
        }
    };
    let status = Arc::new(RwLock::new(status::Snapshot::default()));
    let config_path = args.config.display().to_string();
    let (manager, inbox) = Manager::new(
        config,
        config_path,
        local.to_string(),
        worker_bin,
        Arc::clone(&status),
        archive,
        store,
    );
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
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(addr = %local, "API listening");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(signals(inbox, args.config, auth_for_reload, stop_tx));
        server::serve(listener, api::app(state), limits, async {
            let _ = stop_rx.await;
        })
        .await;
        anyhow::Ok(())
    })?;
    let _ = manager_thread.join();
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
