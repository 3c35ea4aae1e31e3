//! The HTTP side of Directo (warp): WHIP, WHEP, WebSocket signaling, the API and the pages.
//!
//! It owns no media state: every request becomes a command to the media engine through an
//! [`EngineHandle`], and every error leaves as a JSON `ErrorBody` from `signaling-proto`.
//! On a node of a cluster, [`ClusterNode`] is this node's part in it (`cluster/`).

mod admin;
mod api;
mod auth;
mod body;
mod chat;
mod cluster;
mod error;
mod limits;
mod names;
mod priority;
mod recordings;
mod restream;
mod retention;
mod series;
mod settings;
mod tls;
mod token;
mod web;
mod whip;
mod ws;

use directo_media::EngineHandle;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use warp::Filter;
use warp::Reply;

pub use auth::Access;
pub use chat::{ChatHandle, start as start_chat};
pub use cluster::{ClusterNode, ClusterOptions, Directory, OriginPolicy, StartError};
pub use error::ApiError;
pub use limits::{LimitConfig, RateLimiter, set_trusted_proxies};
pub use priority::deprioritize_current_thread;
pub use restream::{RestreamConfig, Restreams};
pub use series::ViewerSeries;
pub use settings::{SettingsStore, StreamSettings};
pub use token::{Claims, TokenRole, Tokens, load_or_create_secret, parse_ttl};

/// Everything the HTTP server serves.
#[derive(Clone)]
pub struct ServerConfig {
    /// The HTTP listen address.
    pub http: SocketAddr,
    /// Who may do what.
    pub access: Access,
    /// The chat service.
    pub chat: ChatHandle,
    /// Where recordings are kept.
    pub recordings: PathBuf,
    /// Renders `GET /metrics` (Prometheus text format).
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Per-address limits: new viewing sessions, other signaling requests, failed credentials.
    pub rate_limiter: RateLimiter,
    /// Viewer counts over time, sampled by the caller.
    pub series: ViewerSeries,
    /// Origins whose pages may call the API from a browser (CORS); empty means any origin.
    pub cors_origins: Vec<String>,
    /// This node's part in a cluster (`None`: a single node).
    pub cluster: Option<ClusterNode>,
    /// The restream service (`None`: no restream API).
    pub restreams: Option<Restreams>,
}

/// Every route, with CORS for pages on other origins and JSON errors.
pub fn routes(
    config: ServerConfig,
    engine: EngineHandle,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let ServerConfig {
        access,
        chat,
        recordings,
        metrics,
        rate_limiter,
        series,
        cors_origins,
        cluster,
        restreams,
        ..
    } = config;
    let cors = if cors_origins.is_empty() {
        warp::cors().allow_any_origin()
    } else {
        warp::cors().allow_origins(cors_origins.iter().map(String::as_str))
    };
    let cors = cors
        .allow_methods(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
        .allow_headers(["content-type", "authorization", "if-match"])
        .expose_headers(["location", "etag", "accept-post", "link", "retry-after"]);
    let trace = warp::log::custom(|info| {
        tracing::debug!(
            method = %info.method(),
            path = info.path(),
            status = info.status().as_u16(),
            "http"
        );
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::http::Response::builder()
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(metrics())
            .map(warp::Reply::into_response)
            .unwrap_or_else(|_| warp::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
    });
    // Signaling is rate limited per address: one flooding client is refused, others are not.
    let signaling = whip::routes(
        whip::Side::Publish,
        access.clone(),
        engine.clone(),
        chat.clone(),
        cluster.clone(),
    )
    .boxed()
    .or(whip::routes(
        whip::Side::Watch,
        access.clone(),
        engine.clone(),
        chat.clone(),
        cluster.clone(),
    )
    .boxed())
    .unify()
    .or(ws::routes(
        access.clone(),
        engine.clone(),
        chat.clone(),
        cluster.clone(),
        rate_limiter.clone(),
    )
    .boxed())
    .unify()
    .or(admin::routes(
        access.clone(),
        engine.clone(),
        chat.clone(),
        series,
        cluster.clone(),
    )
    .boxed())
    .unify()
    .boxed();
    let routes = rate_limiter
        .filter()
        .and(signaling)
        .or(api::routes(engine.clone(), chat, access.clone(), cluster).boxed())
        .unify()
        .or(metrics.boxed())
        .unify()
        .or(recordings::routes(recordings, access.clone(), engine).boxed())
        .unify()
        .or(match restreams {
            Some(restreams) => restream::routes(restreams, access).boxed(),
            None => warp::any()
                .and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::not_found()) })
                .boxed(),
        })
        .unify()
        .or(web::routes().boxed())
        .unify()
        .boxed()
        .recover(error::recover)
        .unify();
    // Failed credentials are counted per address, whichever route refused them.
    rate_limiter
        .guard(routes)
        .with(cors)
        .map(warp::Reply::into_response)
        .recover(error::recover)
        .unify()
        .with(trace)
}

/// Bind the HTTP (or, with `tls`, HTTPS) listener; returns its address and the future that
/// serves until `shutdown`.
pub async fn bind(
    config: ServerConfig,
    engine: EngineHandle,
    tls: Option<(PathBuf, PathBuf)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
)> {
    let tls = match tls {
        Some((cert, key)) => Some(tls::load_config(&cert, &key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http).await?;
    let addr = listener.local_addr()?;
    let routes = routes(config, engine);
    let server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match tls {
        Some(tls) => Box::pin(tls::serve(listener, tls, routes, shutdown)),
        None => Box::pin(
            warp::serve(routes)
                .incoming(listener)
                .graceful(shutdown)
                .run(),
        ),
    };
    Ok((addr, server))
}
