//! The read-only API: `/api/streams`, `/api/streams/{stream}`, `/healthz`.
//!
//! On a node of a cluster the streams are the cluster's, with viewers counted across every
//! node (per node under `nodes`).

use directo_media::EngineHandle;
use signaling_proto::ErrorCode;
use warp::Filter;
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::chat::ChatHandle;
use crate::cluster::ClusterNode;
use crate::error::ApiError;
use crate::names::check_stream_name;

async fn list(
    engine: EngineHandle,
    cluster: Option<ClusterNode>,
) -> Result<warp::reply::Response, ApiError> {
    match cluster {
        Some(node) => Ok(warp::reply::json(&node.streams_view().await).into_response()),
        None => Ok(warp::reply::json(engine.streams().as_ref()).into_response()),
    }
}

async fn one(
    stream: String,
    engine: EngineHandle,
    cluster: Option<ClusterNode>,
) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    let found = match cluster {
        Some(node) => node
            .stream_view(&stream)
            .await
            .map(|info| warp::reply::json(&info).into_response()),
        None => engine
            .stream(&stream)
            .map(|info| warp::reply::json(&info).into_response()),
    };
    found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::StreamNotFound,
            format!("no stream {stream} has a publisher or viewers now"),
        )
    })
}

async fn chat_export(
    stream: String,
    chat: ChatHandle,
    access: Access,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    // A private stream's chat is for those who may watch it.
    access.authorize_view(&stream, bearer(authorization.as_deref()))?;
    let messages = chat
        .export(&stream)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("reading the chat log: {e}")))?;
    Ok(warp::reply::json(&messages).into_response())
}

/// `GET /api/streams`, `GET /api/streams/{stream}`, `GET /api/streams/{stream}/chat` and
/// `GET /healthz`.
pub fn routes(
    engine: EngineHandle,
    chat: ChatHandle,
    access: Access,
    cluster: Option<ClusterNode>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_chat = warp::any().map(move || (chat.clone(), access.clone()));
    let export = warp::path!("api" / "streams" / String / "chat")
        .and(warp::get())
        .and(with_chat)
        .and(warp::header::optional::<String>("authorization"))
        .then(|stream, (chat, access), auth| async move {
            chat_export(stream, chat, access, auth)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let with_engine = warp::any().map(move || (engine.clone(), cluster.clone()));
    let list = warp::path!("api" / "streams")
        .and(warp::get())
        .and(with_engine.clone())
        .then(|(engine, cluster)| async move {
            list(engine, cluster)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let one = warp::path!("api" / "streams" / String)
        .and(warp::get())
        .and(with_engine)
        .then(|stream, (engine, cluster)| async move {
            one(stream, engine, cluster)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| "ok".into_response());
    list.or(one).unify().or(export).unify().or(health).unify()
}
