//! The read-only API: `/api/streams`, `/api/streams/{stream}`, `/healthz`.

use directo_media::EngineHandle;
use signaling_proto::ErrorCode;
use warp::Filter;
use warp::reply::Reply;

use crate::auth::{Access, bearer};
use crate::chat::ChatHandle;
use crate::error::ApiError;
use crate::names::check_stream_name;

async fn list(engine: EngineHandle) -> Result<warp::reply::Response, ApiError> {
    Ok(warp::reply::json(engine.streams().as_ref()).into_response())
}

async fn one(stream: String, engine: EngineHandle) -> Result<warp::reply::Response, ApiError> {
    check_stream_name(&stream)?;
    match engine.stream(&stream) {
        Some(info) => Ok(warp::reply::json(&info).into_response()),
        None => Err(ApiError::new(
            ErrorCode::StreamNotFound,
            format!("no stream {stream} has a publisher or viewers now"),
        )),
    }
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
    let with_engine = warp::any().map(move || engine.clone());
    let list = warp::path!("api" / "streams")
        .and(warp::get())
        .and(with_engine.clone())
        .then(|engine| async move { list(engine).await.unwrap_or_else(Reply::into_response) });
    let one = warp::path!("api" / "streams" / String)
        .and(warp::get())
        .and(with_engine)
        .then(|stream, engine| async move {
            one(stream, engine)
                .await
                .unwrap_or_else(Reply::into_response)
        });
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| "ok".into_response());
    list.or(one).unify().or(export).unify().or(health).unify()
}
