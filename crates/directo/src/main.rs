//! `directo`: the binary. Parses the command line, wires the media engine to the HTTP server
//! (and, with `--cluster`, to the cluster), and shuts both down cleanly on Ctrl-C or SIGTERM;
//! a node of a cluster drains first.

mod cli;
mod cluster;

use anyhow::Context;
use clap::Parser;
use directo_media::{Limits, MediaConfig};
use directo_server::{
    Access, ClusterNode, Directory, LimitConfig, OriginPolicy, RateLimiter, ServerConfig,
    SettingsStore, TokenRole, Tokens, ViewerSeries,
};
use rand::Rng;
use rand::distr::Alphanumeric;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cli::{Cli, Command, ServeArgs};

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr, so stdout carries only what a command prints (`directo token`).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rtc's DTLS logs every unknown TLS extension a browser offers; not news.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rtc_dtls=error")),
        )
        .init();
    // HTTP, WebSockets and chat yield the core to the media thread when it is busy.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(directo_server::deprioritize_current_thread)
        .build()
        .context("starting the async runtime")?;
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.serve))) {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Token(args) => token(args),
        Command::Recover { file } => recover(&file),
    }
}

fn secret(explicit: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    match explicit.filter(|s| !s.is_empty()) {
        Some(secret) => Ok(secret.as_bytes().to_vec()),
        None => directo_server::load_or_create_secret(data_dir)
            .with_context(|| format!("reading the secret in {}", data_dir.display())),
    }
}

fn token(args: cli::TokenArgs) -> anyhow::Result<()> {
    let role: TokenRole = serde_json::from_value(serde_json::Value::String(args.role.clone()))
        .ok()
        .filter(|role| *role != TokenRole::Node)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--role {} is not one of publisher, viewer, moderator, admin",
                args.role
            )
        })?;
    let ttl = directo_server::parse_ttl(&args.ttl)
        .ok_or_else(|| anyhow::anyhow!("--ttl {} is not like 90s, 15m, 2h or 7d", args.ttl))?;
    let tokens = Tokens::new(&secret(args.secret.as_deref(), &args.data_dir)?);
    let (token, _) = tokens.mint(&args.stream, role, args.name, ttl)?;
    println!("{token}");
    Ok(())
}

fn recover(file: &std::path::Path) -> anyhow::Result<()> {
    let info = directo_recorder::recover(file)
        .with_context(|| format!("recovering {}", file.display()))?;
    anyhow::ensure!(
        info.seekable,
        "{}: nothing recoverable (no complete cluster before the cut)",
        file.display()
    );
    println!(
        "{}: {:.3} s, seekable",
        file.display(),
        info.duration.as_secs_f64()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;

    // Checked before anything starts: a bad cluster flag is reported at once.
    let cluster_options = cluster::options(&args, args.secret.as_deref())?;
    let publish_key = if args.dev {
        tracing::warn!("--dev: anyone who can reach this server may publish");
        None
    } else if let Some(key) = args.publish_key.filter(|k| !k.is_empty()) {
        tracing::info!("publishing needs the configured publish key");
        Some(key)
    } else {
        let key: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        // The one secret ever logged: generated here, for local use, so the operator can publish.
        tracing::info!(publish_key = %key, "generated a publish key (set --publish-key to choose one)");
        Some(key)
    };

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    // The stream settings own the recording policy; the engine asks them. In a cluster only
    // the stream's origin records it, so the policy asks the directory too.
    let settings = SettingsStore::load(args.data_dir.join("streams.json"), !args.no_record);
    let directory = Directory::new();
    let recording_policy: Arc<dyn directo_media::RecordingPolicy> = match &cluster_options {
        Some(_) => Arc::new(OriginPolicy::new(settings.clone(), directory.clone())),
        None => Arc::new(settings.clone()),
    };
    // Restreaming to RTMP(S): the destinations are kept beside the stream settings; the
    // engine asks the service which live streams to tap.
    let restreams = directo_server::Restreams::new(
        directo_server::RestreamConfig {
            ffmpeg: args.ffmpeg.clone(),
            video_kbps: args.restream_video_kbps,
            audio_kbps: args.restream_audio_kbps,
            max_per_stream: args.restream_max,
        },
        Some(args.data_dir.join("restreams.json")),
    );
    let media = MediaConfig {
        bind: SocketAddr::new(args.media_bind, args.media_port),
        public_ips: args.public_ip.clone(),
        recordings: Some(args.data_dir.join("recordings")),
        recording_policy,
        restream: Some(Arc::new(restreams.clone())),
        srtp_audit: args.srtp_audit,
        idle_timeout: Duration::from_secs(args.idle_timeout_s.max(1)),
        limits: Limits {
            max_streams: args.max_streams,
            max_viewers_per_stream: args.max_viewers_per_stream,
            max_sessions_per_ip: args.max_sessions_per_ip,
        },
        fanout_threads: args.fanout_threads,
        release_viewer_connections: !args.keep_viewer_connections,
        ..MediaConfig::default()
    };
    let (chat_port, chat_service) = directo_media::chat_channels(16 * 1024);
    let engine = directo_media::start(media, Some(chat_port))
        .with_context(|| format!("binding the media port {}", args.media_port))?;
    // A draining node sends its notices on clients' chat channels, beside the chat service.
    let chat_out = chat_service.to_engine.clone();
    let chat = directo_server::start_chat(args.data_dir.clone(), chat_service, &engine)
        .context("starting the chat service")?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let tokens = Arc::new(Tokens::new(&secret(
        args.secret.as_deref(),
        &args.data_dir,
    )?));
    let cluster = match cluster_options {
        Some(options) => {
            let node =
                ClusterNode::start(options, directory, engine.clone(), tokens.clone(), chat_out)
                    .await
                    .context("joining the cluster")?;
            tracing::info!(
                node = node.node_id(),
                url = node.node_url(),
                "this node is in the cluster"
            );
            // Each stream's chat has one authority in the cluster: its origin.
            node.link_chat(chat.clone()).await;
            Some(node)
        }
        None => None,
    };
    for origin in &args.cors_origin {
        let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
        let valid = matches!(scheme, "http" | "https")
            && !host.is_empty()
            && !host.contains('/')
            && origin.chars().all(|c| c.is_ascii_graphic());
        anyhow::ensure!(
            valid,
            "--cors-origin {origin:?} is not an origin like https://shop.example or http://localhost:3000"
        );
    }
    let series = ViewerSeries::default();
    directo_server::set_trusted_proxies(args.trusted_proxy.clone());
    let config = ServerConfig {
        http: args.http,
        access: Access {
            dev: args.dev,
            publish_key,
            moderator_key: args.moderator_key.filter(|k| !k.is_empty()),
            tokens,
            settings,
        },
        chat,
        recordings: args.data_dir.join("recordings"),
        metrics: Arc::new(move || prometheus.render()),
        series: series.clone(),
        cors_origins: args.cors_origin.clone(),
        rate_limiter: RateLimiter::new(LimitConfig {
            requests_per_minute: args.max_requests_per_minute,
            sessions_per_second: args.new_sessions_per_second,
            sessions_burst: args.new_sessions_burst,
            auth_failures_per_minute: args.max_auth_failures_per_minute,
        }),
        cluster: cluster.clone(),
        restreams: Some(restreams.clone()),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (addr, server) = directo_server::bind(config, engine.clone(), tls, async {
        let _ = stop_rx.await;
    })
    .await
    .with_context(|| format!("binding the HTTP address {}", args.http))?;
    tracing::info!(
        http = %addr,
        media = %engine.local_addr(),
        "directo is up: open {scheme}://{addr}/"
    );

    let server = tokio::spawn(server);
    // Sample viewer counts for the stats page's viewers-over-time chart.
    let sampler = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                series.sample(&engine);
            }
        })
    };
    shutdown_signal().await;
    if let Some(node) = &cluster {
        // A second signal cuts the drain short.
        tokio::select! {
            () = node.drain(Duration::from_secs(args.drain_timeout_s)) => {}
            () = shutdown_signal() => tracing::info!("asked again: stopping without waiting"),
        }
    }
    tracing::info!("shutting down: closing peers");
    sampler.abort();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        engine.shutdown().await;
        // Every restream ffmpeg is killed with its task.
        restreams.shutdown();
        let _ = stop_tx.send(());
        let _ = server.await;
    })
    .await;
    if let Some(node) = &cluster {
        node.leave().await;
    }
    tracing::info!("bye");
    Ok(())
}
