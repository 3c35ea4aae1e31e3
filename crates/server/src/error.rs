//! Every HTTP error leaves as an `ErrorBody` with the status its code implies.

use signaling_proto::{ErrorBody, ErrorCode};
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::reply::Reply;

/// An error an HTTP handler returns; it becomes a JSON `ErrorBody` (and a `Retry-After`
/// header for `429`/`503`).
#[derive(Debug, Clone)]
pub struct ApiError(pub ErrorBody, pub Option<u64>);

impl ApiError {
    /// An error with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, message), None)
    }

    /// The same error, telling the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.1 = Some(seconds);
        self
    }
}

impl From<directo_media::MediaError> for ApiError {
    fn from(e: directo_media::MediaError) -> Self {
        let error = ApiError::new(e.code(), e.to_string());
        match e.code() {
            ErrorCode::RateLimited => error.retry_after(30),
            ErrorCode::Unavailable => error.retry_after(10),
            _ => error,
        }
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            warp::reply::with_status(warp::reply::json(&self.0), status).into_response();
        if let Some(seconds) = self.1
            && let Ok(value) = seconds.to_string().parse()
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

/// Turn warp's own rejections (no route, body too large, bad method) into JSON errors.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
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

/// Parse a JSON request body, or say what is wrong with it.
pub(crate) fn parse_json<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("bad JSON body: {e}")))
}
