//! The pages in `web/`, embedded in the binary so `directo` runs with nothing beside it.

use rust_embed::RustEmbed;
use warp::Filter;
use warp::http::{Response, StatusCode};
use warp::reply::Reply;

/// The `web/` directory (read from disk in debug builds, embedded in release builds).
#[derive(RustEmbed)]
#[folder = "../../web"]
#[exclude = "node_modules/*"]
#[exclude = "*.test.*"]
struct Assets;

fn serve(path: &str) -> warp::reply::Response {
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    match Assets::get(&path) {
        Some(file) => Response::builder()
            .header("Content-Type", file.metadata.mimetype())
            .header("Cache-Control", "no-cache")
            .body(file.data.into_owned())
            .map(Reply::into_response)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /` and every file below it.
pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
{
    warp::get()
        .and(warp::path::tail())
        .map(|tail: warp::path::Tail| serve(tail.as_str()))
}
