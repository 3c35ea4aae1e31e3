//! The admin API (admin token): mint tokens, set a stream's viewing policy and branding.
//!
//! On a node of a cluster, kicking a session and ending a stream reach the node that holds
//! the session (see `cluster::admin`), and a stream's stats carry the cluster's viewers.

use directo_media::EngineHandle;
use serde::Deserialize;
use signaling_proto::{ErrorCode, MintedToken, StreamSessions};
use warp::Filter;
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::body::limited_body;
use crate::chat::ChatHandle;
use crate::cluster::ClusterNode;
use crate::error::{ApiError, parse_json};
use crate::names::{check_name, check_stream_name};
use crate::series::ViewerSeries;
use crate::settings::StreamSettings;
use crate::token::{TokenRole, parse_ttl};
use signaling_proto::AdminAction;

/// The largest admin request body.
const MAX_ADMIN_BODY: u64 = 16 * 1024;

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    stream: String,
    role: TokenRole,
    #[serde(default)]
    name: Option<String>,
    /// Lifetime such as `2h` (default `1h`).
    #[serde(default)]
    ttl: Option<String>,
}

async fn mint(
    access: Access,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.authorize_admin(bearer(authorization.as_deref()))?;
    let request: TokenRequest = parse_json(&body?)?;
    if request.role == TokenRole::Node {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "role node is minted by the nodes of a cluster only: use publisher, viewer, \
             moderator or admin",
        ));
    }
    if request.stream != "*" {
        check_stream_name(&request.stream)?;
    }
    let ttl = match request.ttl.as_deref() {
        None => std::time::Duration::from_secs(3600),
        Some(text) => parse_ttl(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                "ttl is a number with s, m, h or d, e.g. 2h",
            )
        })?,
    };
    let name = request.name.as_deref().map(check_name).transpose()?;
    let (token, exp) = access
        .tokens
        .mint(&request.stream, request.role, name, ttl)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(warp::reply::with_status(
        warp::reply::json(&MintedToken {
            token,
            expires_at: exp,
        }),
        warp::http::StatusCode::CREATED,
    )
    .into_response())
}

async fn get_settings(access: Access, stream: String) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    Ok(warp::reply::json(&access.settings.get(&stream)).into_response())
}

async fn put_settings(
    access: Access,
    engine: EngineHandle,
    stream: String,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    let settings: StreamSettings = parse_json(&body?)?;
    if let Some(color) = &settings.accent_color {
        let ok = color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "accent_color is #rrggbb",
            ));
        }
    }
    if let Some(url) = &settings.logo_url
        && !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "logo_url is an http(s) URL or a path on this server",
        ));
    }
    access
        .settings
        .set(&stream, settings.clone())
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("saving settings: {e}")))?;
    // The settings own the recording policy: a live stream starts or stops recording now.
    engine.apply_recording(&stream).await?;
    Ok(warp::reply::json(&settings).into_response())
}

/// Every live stream with its sessions.
async fn streams(
    access: Access,
    engine: EngineHandle,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    access.authorize_admin(bearer(authorization.as_deref()))?;
    let mut out = Vec::new();
    for info in engine.streams().iter() {
        let sessions = engine.sessions(&info.name).await?;
        out.push(StreamSessions {
            stream: info.clone(),
            sessions,
        });
    }
    Ok(warp::reply::json(&out).into_response())
}

/// Kick one session of a stream, on whichever node holds it.
async fn kick(
    access: Access,
    (engine, cluster): (EngineHandle, Option<ClusterNode>),
    stream: String,
    session: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    check_session_id(&session)?;
    let found = engine
        .sessions(&stream)
        .await?
        .into_iter()
        .find(|s| s.session == session);
    let kicked = match (found, &cluster) {
        (Some(found), _) => {
            engine.close(&session).await?;
            if found.role == signaling_proto::Role::Publisher
                && let Some(node) = &cluster
            {
                node.release(&stream).await;
            }
            true
        }
        (None, Some(node)) => {
            let action = AdminAction::Kick {
                stream: stream.clone(),
                session: session.clone(),
            };
            node.ask_others(action).await? > 0
        }
        (None, None) => false,
    };
    if !kicked {
        return Err(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("stream {stream} has no session {session}"),
        ));
    }
    Ok(warp::http::StatusCode::NO_CONTENT.into_response())
}

/// A session id from a URL: what the server issues (letters, digits, `-`, `_`), so nothing
/// else is ever passed on to other nodes.
fn check_session_id(session: &str) -> Result<(), ApiError> {
    let valid = (1..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::SessionNotFound,
            "a session id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'",
        ))
    }
}

/// End a stream: its publisher and every viewer are disconnected, on every node.
async fn end(
    access: Access,
    (engine, cluster): (EngineHandle, Option<ClusterNode>),
    stream: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    // Other nodes first: if they cannot be reached, nothing has ended and a retry is whole.
    let elsewhere = match &cluster {
        Some(node) => {
            node.ask_others(AdminAction::EndStream {
                stream: stream.clone(),
            })
            .await?
        }
        None => 0,
    };
    let closed = engine.end_stream(&stream).await?;
    if let Some(node) = &cluster {
        node.release(&stream).await;
    }
    Ok(
        warp::reply::json(&serde_json::json!({ "stream": stream, "closed": closed + elsewhere }))
            .into_response(),
    )
}

/// Moderate a stream's chat as the admin (any moderation message: chat.delete, user.ban, …).
async fn moderate(
    access: Access,
    chat: ChatHandle,
    stream: String,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    let body = body?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, "the body is not UTF-8 JSON"))?;
    chat.admin(&stream, text).await;
    Ok(warp::http::StatusCode::ACCEPTED.into_response())
}

/// The stream's audience and chat figures, with the viewers-over-time series.
async fn stats(
    access: Access,
    (engine, cluster): (EngineHandle, Option<ClusterNode>),
    chat: ChatHandle,
    series: ViewerSeries,
    stream: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    access.admin_on_stream(authorization.as_deref(), &stream)?;
    let audience = engine.audience(&stream).await?.unwrap_or_default();
    let chat = chat.stats(&stream).await;
    let mut live = engine.stream(&stream).is_some_and(|s| s.live);
    let mut body = serde_json::json!({
        "stream": stream,
        "audience": audience,
        "chat": chat,
        "viewers_over_time": series.get(&stream),
    });
    // The audience figures (peaks, watch time) are this node's; the live count is the
    // cluster's, with each node's share.
    if let Some(node) = &cluster {
        let view = node.stream_view(&stream).await;
        live = view.as_ref().map_or(live, |v| v.stream.live);
        body["viewers"] = serde_json::json!(view.as_ref().map_or(0, |v| v.stream.viewers));
        body["nodes"] = serde_json::json!(view.map(|v| v.nodes).unwrap_or_default());
    }
    body["live"] = serde_json::json!(live);
    Ok(warp::reply::json(&body).into_response())
}

/// `POST /api/tokens`, `GET|PUT /api/streams/{stream}/settings`, the admin API under
/// `/api/admin/`, and `GET /api/streams/{stream}/stats`.
pub fn routes(
    access: Access,
    engine: EngineHandle,
    chat: ChatHandle,
    series: ViewerSeries,
    cluster: Option<ClusterNode>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_access = warp::any().map(move || access.clone());
    let with_node = {
        let engine = engine.clone();
        warp::any().map(move || (engine.clone(), cluster.clone()))
    };
    let with_engine = warp::any().map(move || engine.clone());
    let with_chat = warp::any().map(move || chat.clone());
    let with_series = warp::any().map(move || series.clone());
    let auth = warp::header::optional::<String>("authorization");
    let list = warp::path!("api" / "admin" / "streams")
        .and(warp::get())
        .and(with_access.clone())
        .and(with_engine.clone())
        .and(auth)
        .then(|access, engine, auth| async move {
            streams(access, engine, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let kick = warp::path!("api" / "admin" / "streams" / String / "sessions" / String)
        .and(warp::delete())
        .and(with_access.clone())
        .and(with_node.clone())
        .and(auth)
        .then(|stream, session, access, engine, auth| async move {
            kick(access, engine, stream, session, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let end = warp::path!("api" / "admin" / "streams" / String)
        .and(warp::delete())
        .and(with_access.clone())
        .and(with_node.clone())
        .and(auth)
        .then(|stream, access, engine, auth| async move {
            end(access, engine, stream, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let moderate = warp::path!("api" / "admin" / "streams" / String / "chat")
        .and(warp::post())
        .and(with_access.clone())
        .and(with_chat.clone())
        .and(auth)
        .and(limited_body(MAX_ADMIN_BODY))
        .then(|stream, access, chat, auth, body| async move {
            moderate(access, chat, stream, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let stats = warp::path!("api" / "streams" / String / "stats")
        .and(warp::get())
        .and(with_access.clone())
        .and(with_node)
        .and(with_chat)
        .and(with_series)
        .and(auth)
        .then(|stream, access, engine, chat, series, auth| async move {
            stats(access, engine, chat, series, stream, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let mint = warp::path!("api" / "tokens")
        .and(warp::post())
        .and(with_access.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(limited_body(MAX_ADMIN_BODY))
        .then(|access, auth, body| async move {
            mint(access, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let get = warp::path!("api" / "streams" / String / "settings")
        .and(warp::get())
        .and(with_access.clone())
        .then(|stream, access| async move {
            get_settings(access, stream)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let put = warp::path!("api" / "streams" / String / "settings")
        .and(warp::put())
        .and(with_access)
        .and(with_engine.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(limited_body(MAX_ADMIN_BODY))
        .then(|stream, access, engine, auth, body| async move {
            put_settings(access, engine, stream, auth, body)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    mint.or(get)
        .unify()
        .or(put)
        .unify()
        .or(list)
        .unify()
        .or(kick)
        .unify()
        .or(end)
        .unify()
        .or(moderate)
        .unify()
        .or(stats)
        .unify()
}
