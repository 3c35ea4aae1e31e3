//! `POST`, `GET /api/streams/{stream}/restreams` and `DELETE …/restreams/{id}`, for the
//! stream's publisher (a publisher token for it, or the publish key) or an admin.

use signaling_proto::{ErrorCode, RestreamRequest};
use warp::Filter;
use warp::reply::Reply;

use super::Restreams;
use crate::auth::{Access, bearer};
use crate::body::limited_body;
use crate::error::{ApiError, parse_json};
use crate::names::check_stream_name;

/// The largest request body.
const MAX_BODY: u64 = 16 * 1024;

/// The stream's publisher or an admin.
fn authorize(access: &Access, stream: &str, authorization: Option<&str>) -> Result<(), ApiError> {
    check_stream_name(stream)?;
    let credential = bearer(authorization);
    if access.authorize_admin(credential).is_ok() {
        return Ok(());
    }
    access
        .authorize_publish(stream, credential)
        .map(|_| ())
        .map_err(|e| match e.0.code {
            ErrorCode::Unauthorized if credential.is_none() => ApiError::new(
                ErrorCode::Unauthorized,
                "restreams need `Authorization: Bearer <publisher token, publish key or admin token>`",
            ),
            _ => e,
        })
}

async fn add(
    restreams: Restreams,
    access: Access,
    stream: String,
    authorization: Option<String>,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    authorize(&access, &stream, authorization.as_deref())?;
    let request: RestreamRequest = parse_json(&body?)?;
    let created = restreams.add(&stream, request)?;
    Ok(
        warp::reply::with_status(warp::reply::json(&created), warp::http::StatusCode::CREATED)
            .into_response(),
    )
}

/// The restream routes.
pub fn routes(
    restreams: Restreams,
    access: Access,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || (restreams.clone(), access.clone()));
    let auth = warp::header::optional::<String>("authorization");
    let post = warp::path!("api" / "streams" / String / "restreams")
        .and(warp::post())
        .and(with.clone())
        .and(auth)
        .and(limited_body(MAX_BODY))
        .then(
            |stream, (restreams, access), authorization, body| async move {
                add(restreams, access, stream, authorization, body)
                    .await
                    .unwrap_or_else(Reply::into_response)
            },
        );
    let list = warp::path!("api" / "streams" / String / "restreams")
        .and(warp::get())
        .and(with.clone())
        .and(auth)
        .map(
            |stream: String,
             (restreams, access): (Restreams, Access),
             authorization: Option<String>| {
                match authorize(&access, &stream, authorization.as_deref()) {
                    Ok(()) => warp::reply::json(&restreams.list(&stream)).into_response(),
                    Err(e) => e.into_response(),
                }
            },
        );
    let delete = warp::path!("api" / "streams" / String / "restreams" / String)
        .and(warp::delete())
        .and(with)
        .and(auth)
        .map(
            |stream: String,
             id: String,
             (restreams, access): (Restreams, Access),
             authorization: Option<String>| {
                authorize(&access, &stream, authorization.as_deref())
                    .and_then(|()| restreams.remove(&stream, &id))
                    .map(|()| warp::http::StatusCode::NO_CONTENT.into_response())
                    .unwrap_or_else(Reply::into_response)
            },
        );
    post.or(list).unify().or(delete).unify()
}
