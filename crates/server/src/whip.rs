//! WHIP (publish) and WHEP (watch), RFC 9725: one POST with the SDP offer answers `201 Created`
//! with the SDP answer and the session's `Location`; `DELETE` on that location ends it.
//!
//! The answer carries every server candidate (the server is ICE-lite and gathers nothing), so
//! trickle `PATCH` is answered `405`.
//!
//! On a node of a cluster: a publisher first claims the stream's origin (`409 stream_busy`
//! naming the node where it is live); a viewer is served here while the node has room, else
//! redirected (`307`) with a short-lived token in `?token=` (which WHEP takes in place of
//! `Authorization`); a WHEP POST with a node token is another node pulling the stream to
//! relay it; session `Location`s are absolute URLs of this node.

use bytes::Bytes;
use directo_media::EngineHandle;
use signaling_proto::{ErrorCode, Role};
use warp::Filter;
use warp::http::{Response, StatusCode};
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::body::limited_body;
use crate::chat::ChatHandle;
use crate::cluster::ClusterNode;
use crate::cluster::directory::Claimed;
use crate::cluster::relay::accept_relay_pull;
use crate::cluster::routing::{Route, ViewerRequest};
use crate::error::ApiError;
use crate::names::{check_name, check_stream_name};
use directo_media::{Identity, Quality};
use std::collections::HashMap;

/// The largest SDP offer accepted.
pub const MAX_OFFER_BYTES: u64 = 64 * 1024;
/// Largest quality-change body (`{"quality": "medium"}` and some room).
const MAX_QUALITY_BYTES: u64 = 1024;

/// Which side of WHIP/WHEP a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `/whip`: publishers.
    Publish,
    /// `/whep`: viewers.
    Watch,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Publish => "whip",
            Side::Watch => "whep",
        }
    }
}

/// What a WHIP/WHEP request carries besides its body.
struct SessionRequest {
    stream: String,
    query: HashMap<String, String>,
    content_type: Option<String>,
    authorization: Option<String>,
    remote: Option<std::net::IpAddr>,
}

async fn create_session(
    side: Side,
    req: SessionRequest,
    body: Result<Bytes, ApiError>,
    access: Access,
    engine: EngineHandle,
    chat: ChatHandle,
    cluster: Option<ClusterNode>,
) -> Result<warp::reply::Response, ApiError> {
    let SessionRequest {
        stream,
        query,
        content_type,
        authorization,
        remote,
    } = req;
    check_stream_name(&stream)?;
    // A redirected viewer's browser dropped `Authorization`: its token is in the URL.
    let credential = bearer(authorization.as_deref()).or_else(|| match side {
        Side::Watch => query
            .get("token")
            .map(String::as_str)
            .filter(|t| !t.is_empty()),
        Side::Publish => None,
    });
    let (token_name, moderator, relay_for) = match side {
        Side::Publish => (access.authorize_publish(&stream, credential)?, false, None),
        Side::Watch => {
            let grant = access.authorize_view(&stream, credential)?;
            (grant.name, grant.moderator, grant.relay_for)
        }
    };
    let name = match query.get("name") {
        Some(n) => Some(check_name(n)?),
        None => token_name.clone(),
    };
    let identity = Identity {
        name,
        moderator,
        // Another node's relay pull is no audience member and no client address to limit.
        origin: remote
            .filter(|_| relay_for.is_none())
            .map(|ip| ip.to_string()),
        relay: relay_for.is_some(),
    };
    if side == Side::Watch
        && relay_for.is_none()
        && chat
            .is_banned(
                &stream,
                identity.name.as_deref(),
                identity.origin.as_deref(),
            )
            .await
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "you were banned from this stream",
        ));
    }
    let body = body?;
    let is_sdp = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be an SDP offer with `Content-Type: application/sdp`",
        ));
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::InvalidSdp, "the SDP offer is not UTF-8 text"))?;
    let answer = match side {
        Side::Publish => {
            let claimed = match &cluster {
                Some(node) => Some(node.claim_for_publisher(&stream).await?),
                None => None,
            };
            let published = engine.publish(&stream, offer, identity).await;
            if published.is_err()
                && claimed == Some(Claimed::New)
                && let Some(node) = &cluster
            {
                node.release(&stream).await;
            }
            published?
        }
        Side::Watch => {
            let quality = match query.get("quality") {
                Some(text) => parse_quality(text)?,
                None => Quality::Auto,
            };
            match (&cluster, relay_for) {
                (Some(node), Some(relay_for)) => {
                    // A relay in the middle of a tree pulls what it is asked for itself.
                    node.prepare_viewer(&stream).await?;
                    accept_relay_pull(&engine, &stream, offer, identity, &relay_for, quality)
                        .await?
                }
                (Some(node), None) => {
                    let request = ViewerRequest {
                        stream: &stream,
                        name: query.get("name").map(String::as_str),
                        quality: query.get("quality").map(String::as_str),
                        token_name,
                        moderator,
                        hop: query.get("hop").and_then(|h| h.parse().ok()).unwrap_or(0),
                    };
                    if let Route::Redirect(location) = node.route_viewer(&request).await? {
                        return redirect(&location);
                    }
                    node.prepare_viewer(&stream).await?;
                    engine
                        .watch_with_quality(&stream, offer, identity, quality)
                        .await?
                }
                (None, _) => {
                    engine
                        .watch_with_quality(&stream, offer, identity, quality)
                        .await?
                }
            }
        }
    };
    let path = format!("/{}/{}/{}", side.prefix(), stream, answer.session);
    let location = match &cluster {
        Some(node) => node.absolute(&path),
        None => path,
    };
    Response::builder()
        .status(StatusCode::CREATED)
        .header("Content-Type", "application/sdp")
        .header("Location", location)
        .body(answer.sdp)
        .map(Reply::into_response)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// `307 Temporary Redirect` to `location`: the client repeats the POST, body and all, there.
fn redirect(location: &str) -> Result<warp::reply::Response, ApiError> {
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header("Location", location)
        .header("Cache-Control", "no-store")
        .body(Bytes::new())
        .map(Reply::into_response)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

fn parse_quality(text: &str) -> Result<Quality, ApiError> {
    Quality::parse(text).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("quality `{text}` is not one of auto, low, medium, high"),
        )
    })
}

/// The body of `POST /whep/{stream}/{session}/quality`.
#[derive(serde::Deserialize)]
struct QualityRequest {
    quality: String,
}

/// Switch a viewer's simulcast layer: the session id in the URL is the authority, as for
/// DELETE.
async fn set_quality(
    stream: String,
    session: String,
    body: Result<Bytes, ApiError>,
    engine: EngineHandle,
) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    let body = body?;
    let request: QualityRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the body must be {{\"quality\": \"auto|low|medium|high\"}}: {e}"),
        )
    })?;
    let quality = parse_quality(&request.quality)?;
    let known = engine
        .sessions(&stream)
        .await?
        .iter()
        .any(|s| s.session == session && s.role == Role::Viewer);
    if !known {
        return Err(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("no viewer session {session} at /whep/{stream}"),
        ));
    }
    engine.set_quality(&session, quality).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_session(
    side: Side,
    stream: String,
    session: String,
    engine: EngineHandle,
    cluster: Option<ClusterNode>,
) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    // The URL names one resource: a session of this stream on this side (WHIP or WHEP).
    let role = match side {
        Side::Publish => Role::Publisher,
        Side::Watch => Role::Viewer,
    };
    let known = engine
        .sessions(&stream)
        .await?
        .iter()
        .any(|s| s.session == session && s.role == role);
    if !known {
        return Err(ApiError::new(
            ErrorCode::SessionNotFound,
            format!("no session {session} at /{}/{stream}", side.prefix()),
        ));
    }
    engine.close(&session).await?;
    // A publisher that leaves on purpose gives the stream up at once, for any node to take.
    if side == Side::Publish
        && let Some(node) = &cluster
    {
        node.release(&stream).await;
    }
    Ok(StatusCode::OK.into_response())
}

fn options_reply() -> warp::reply::Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("Accept-Post", "application/sdp")
        .body(Bytes::new())
        .map(Reply::into_response)
        .unwrap_or_else(|_| StatusCode::NO_CONTENT.into_response())
}

fn into_reply(r: Result<warp::reply::Response, ApiError>) -> warp::reply::Response {
    r.unwrap_or_else(Reply::into_response)
}

/// The routes of one side: POST, OPTIONS, DELETE and PATCH.
pub fn routes(
    side: Side,
    access: Access,
    engine: EngineHandle,
    chat: ChatHandle,
    cluster: Option<ClusterNode>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let base = warp::path(side.prefix());
    let with_engine = {
        let engine = engine.clone();
        let cluster = cluster.clone();
        warp::any().map(move || (engine.clone(), cluster.clone()))
    };
    let with_access = warp::any().map(move || (access.clone(), chat.clone()));

    let post = base
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("authorization"))
        .and(crate::limits::client_ip())
        .map(
            |stream, query, content_type, authorization, remote| SessionRequest {
                stream,
                query,
                content_type,
                authorization,
                remote,
            },
        )
        .and(limited_body(MAX_OFFER_BYTES))
        .and(with_access)
        .and(with_engine.clone())
        .then(
            move |req, body, (access, chat), (engine, cluster)| async move {
                into_reply(create_session(side, req, body, access, engine, chat, cluster).await)
            },
        );

    let options = base
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::options())
        .map(|_stream: String| options_reply());

    let delete = base
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::delete())
        .and(with_engine)
        .then(move |stream, session, (engine, cluster)| async move {
            into_reply(delete_session(side, stream, session, engine, cluster).await)
        });

    let quality_engine = engine.clone();
    let quality = base
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::path("quality"))
        .and(warp::path::end())
        .and(warp::post())
        .and(limited_body(MAX_QUALITY_BYTES))
        .and(warp::any().map(move || quality_engine.clone()))
        .then(move |stream, session, body, engine| async move {
            match side {
                Side::Watch => into_reply(set_quality(stream, session, body, engine).await),
                Side::Publish => ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "quality is chosen per viewer, at /whep/{stream}/{session}/quality",
                )
                .into_response(),
            }
        });

    let patch = base
        .and(warp::path::param::<String>())
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::patch())
        .map(|_stream: String, _session: String| {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "trickle ICE is not needed: the answer carries every server candidate",
            )
            .into_response()
        });

    post.or(options)
        .unify()
        .or(delete)
        .unify()
        .or(quality)
        .unify()
        .or(patch)
        .unify()
}
