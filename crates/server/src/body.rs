//! Request bodies with a size limit: read whole, refused with `413` past the limit, whether or
//! not the client sent a `Content-Length`.

use bytes::Bytes;
use signaling_proto::ErrorCode;
use warp::Filter;

use crate::error::ApiError;

/// Read a request body of at most `limit` bytes, with or without a `Content-Length`.
pub async fn read_limited<S, B>(mut body: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    use futures::StreamExt;
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("reading the body failed: {e}"),
            )
        })?;
        if (out.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is over the limit of {} KiB", limit / 1024),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// A filter that yields the body (or the error saying why it was refused).
pub fn limited_body(
    limit: u64,
) -> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = warp::Rejection> + Clone {
    warp::body::stream()
        .then(move |stream| async move { read_limited(Box::pin(stream), limit).await })
}
