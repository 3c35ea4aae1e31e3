//! Every HTTP error leaves as an `ErrorBody` with the status its code implies.

use signaling_proto::{ErrorBody, ErrorCode};
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::reply::Reply;

/// An error an HTTP handler returns; it becomes a JSON `ErrorBody`.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    /// An error with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, message))
    }
}

impl From<directo_media::MediaError> for ApiError {
    fn from(e: directo_media::MediaError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        warp::reply::with_status(warp::reply::json(&self.0), status).into_response()
    }
}

/// Turn warp's own rejections (no route, body too large, bad method) into JSON errors.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        ApiError(e.0.clone())
    } else if rejection.is_not_found() {
        ApiError::new(ErrorCode::StreamNotFound, "no such resource")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is over the limit of 64 KiB",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed on this resource",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(ErrorCode::BadRequest, "a Content-Length header is required")
    } else {
        ApiError::new(ErrorCode::BadRequest, format!("bad request: {rejection:?}"))
    };
    Ok(error.into_response())
}
